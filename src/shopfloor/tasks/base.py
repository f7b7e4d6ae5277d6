"""The estimator contract every shopfloor task follows (scikit-learn style).

- `__init__` only stores typed keyword arguments: the signature is the config schema.
- `fit(data) -> self`; learned state ends in `_`.
- `predict`, `evaluate(data) -> dict of floats`, `explain(data)`.
- `save(folder)` and `shopfloor.load(folder)`: safetensors + JSON through `artifacts`.
Subclasses implement `_state()` / `_tensors()` for saving and `_restore()` for loading.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch

from shopfloor.artifacts import check_shapes, read_artifact, save_artifact
from shopfloor.errors import BadOption, NotAModel, NotFitted


class Estimator:
    task_name: ClassVar[str] = ""  # key in shopfloor.tasks.TASKS, written to the manifest
    fitted_attribute: ClassVar[str] = "net_"

    @classmethod
    def param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p for p in signature.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        return {name: _jsonable(getattr(self, name)) for name in self.param_names()}

    def set_params(self, **params: Any) -> Estimator:
        for name, value in params.items():
            if name not in self.param_names():
                raise BadOption(f"{type(self).__name__} has no parameter '{name}' (it has: {', '.join(self.param_names())})")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {n: p.default for n, p in inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if _jsonable(defaults.get(k)) != v]
        return f"{type(self).__name__}({', '.join(changed)})"

    @property
    def is_fitted(self) -> bool:
        return getattr(self, self.fitted_attribute, None) is not None

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFitted(f"this {type(self).__name__} is not fitted yet: call fit() first or load a saved model")

    # -- persistence -------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> Path:
        self._check_fitted()
        state = {**self._state(), "cross_validation": getattr(self, "cv_metrics_", None)}
        return save_artifact(folder, task=self.task_name, params=self.get_params(), state=state, tensors=self._tensors())

    @classmethod
    def from_artifact(cls, manifest: dict, tensors: dict[str, torch.Tensor], source: str) -> Estimator:
        unknown = set(manifest["params"]) - set(cls.param_names())
        if unknown:
            raise NotAModel(f"{source} has parameters this shopfloor does not know: {sorted(unknown)}")
        estimator = cls(**manifest["params"])
        try:
            estimator._restore(manifest["state"], tensors)
            estimator.cv_metrics_ = manifest["state"].get("cross_validation")
        except NotAModel as err:
            raise NotAModel(f"{source}: {err}") from None
        except (AttributeError, IndexError, KeyError, RuntimeError, TypeError, ValueError) as err:  # a state of the wrong shape
            raise NotAModel(f"{source} could not be restored ({type(err).__name__}: {err}); the folder is damaged") from None
        return estimator

    @classmethod
    def check_sizes(cls, manifest: dict, shapes: dict[str, tuple[int, ...]]) -> None:
        """Refuse a manifest whose sizes disagree with the weights' shapes, or that are absurd, before anything
        is built from it: a network is allocated from these sizes, and `n_numeric = 1e6` asked for 22 GB.

        Each task checks the sizes that shape its network (with `artifacts.check_size`) or that set how
        much a prediction allocates (with `artifacts.declared_size`); `_load_net` then compares every
        tensor of the network it is about to build.
        """

    def _state(self) -> dict:
        raise NotImplementedError

    NET_PREFIX: ClassVar[str] = "net."  # the network's weights among a model file's tensors

    def _net_tensors(self) -> dict[str, torch.Tensor]:
        """The network's weights, named for the model file; subclasses add their other tensors."""
        return {f"{self.NET_PREFIX}{k}": v for k, v in self.net_.state_dict().items()}

    def _load_net(self, build, tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
        """The network `build()` makes, with the model file's weights, ready to predict.

        It is built first on the meta device (shapes, no memory) and compared tensor by tensor with the
        file, so that no size the manifest declares allocates more than the weights it comes with.
        """
        n = len(self.NET_PREFIX)
        saved = {k[n:]: v for k, v in tensors.items() if k.startswith(self.NET_PREFIX)}
        with torch.device("meta"):
            shapes_only = build()
        check_shapes({k: tuple(v.shape) for k, v in shapes_only.state_dict().items()},
                     {k: tuple(v.shape) for k, v in saved.items()}, prefix=self.NET_PREFIX)
        net = build()
        net.load_state_dict(saved)
        return net.eval()

    def _tensors(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _restore(self, state: dict, tensors: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError


def load(folder: str | os.PathLike, verify=None) -> Estimator:
    """Load any saved shopfloor model; only safetensors and JSON are read.

    `verify(manifest)` may refuse the model (a registry checks its signature) after the checksums and
    before any tensor is made.
    """
    from shopfloor.tasks import estimator_class

    def check(manifest: dict, shapes: dict[str, tuple[int, ...]]) -> None:
        if verify is not None:
            verify(manifest)
        cls = estimator_class(manifest.get("task", "?"), source=str(folder))
        try:
            cls.check_sizes(manifest, shapes)
        except NotAModel as err:
            raise NotAModel(f"{folder}: {err}") from None
        except (AttributeError, TypeError, ValueError) as err:  # a manifest whose parts are not what they should be
            raise NotAModel(f"{folder} could not be read ({type(err).__name__}: {err}); the folder is damaged") from None

    manifest, tensors = read_artifact(folder, check=check)
    cls = estimator_class(manifest.get("task", "?"), source=str(folder))
    return cls.from_artifact(manifest, tensors, source=str(folder))


def as_frame(data: pd.DataFrame | str | os.PathLike) -> tuple[pd.DataFrame, str]:
    """A table and a name for it in messages, from a DataFrame or a file path."""
    from shopfloor.data.tables import read_table, tidy_columns

    if isinstance(data, pd.DataFrame):
        return tidy_columns(data), "the data"  # names as a file's header would be read

    return read_table(data), str(data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
