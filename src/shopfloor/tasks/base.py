"""The estimator contract every shopfloor task follows (scikit-learn style), declared in one class.

- `__init__` only stores typed keyword arguments: the signature is the config schema.
- `fit(data) -> self`; learned state ends in `_`.
- Every face of the project (CLI, report, ONNX export, REST service, stream, dashboard) asks the
  estimator through the methods below and never switches on a task's name. A task that lacks a
  capability keeps the default, which raises `NotSupported` naming the task and the capability:
  one line from the CLI (exit 2), 422 from the service.
- `save(folder)` and `shopfloor.load(folder)`: safetensors + JSON through `artifacts`. The state that
  every task has (`COMMON_STATE`) is saved and restored here; a task declares its own plain values
  once in `saved_state` and writes `_state()` / `_restore()` only for what needs converting.
"""

from __future__ import annotations

import copy
import inspect
import os
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch

from shopfloor.artifacts import check_shapes, read_artifact, save_artifact
from shopfloor.errors import BadOption, NotAModel, NotFitted, NotSupported

# manifest key -> attribute, for the learned state that every task keeps (the default when absent)
COMMON_STATE: dict[str, tuple[str, Any]] = {
    "validation_metrics": ("validation_metrics_", None),
    "training_log": ("training_log_", []),
    "train_seconds": ("train_seconds_", None),
    "data_fingerprint": ("fingerprint_", None),
    "cross_validation": ("cv_metrics_", None),
    "drift_profile": ("drift_profile_", None),  # `watch.profile`: absent from models saved before drift profiles
}


class Estimator:
    task_name: ClassVar[str] = ""  # key in shopfloor.tasks.TASKS, written to the manifest
    title: ClassVar[str] = ""  # what the task is, for pages and the dashboard: "remaining useful life"
    described_as: ClassVar[str] = ""  # the model in a sentence: "a remaining-useful-life model"
    # what one request to the service or one message on the stream carries to this model:
    # "rows" (table rows), "runs" (run histories), "images", "settings" (process settings), or "" (none)
    accepts: ClassVar[str] = ""
    reads_windows: ClassVar[bool] = False  # "rows" that make one window (a machine's recent readings), not rows alone
    gives: ClassVar[tuple[str, ...]] = ()  # values an alarm rule may watch on the line ("risk", "rul", ...)
    forecasts_readings: ClassVar[bool] = False  # forecasts a series' next steps from its recent readings (a fan)
    validated_on: ClassVar[str] = "out-of-fold validation"  # what its held-out metrics were measured on, for `info`
    predicted_items: ClassVar[str] = "rows"  # what `predict_file` counts, for the CLI's one-line summary
    explained_items: ClassVar[str] = "rows"  # what `explain_file` counts
    fitted_attribute: ClassVar[str] = "net_"
    saved_state: ClassVar[dict[str, str]] = {}  # manifest key -> attribute: this task's plain JSON state

    # -- the capabilities: defaults say plainly that this task has none ----------------------
    def _unsupported(self, capability: str, instead: str = "") -> NotSupported:
        return NotSupported(f"{self.described_as or self.task_name + ' model'} has no {capability}"
                            + (f": {instead}" if instead else ""))

    def fit(self, data) -> Estimator:
        raise self._unsupported("training")

    def predict(self, data) -> pd.DataFrame:
        raise self._unsupported("predictions")

    def predict_file(self, source: str | os.PathLike, destination: str | os.PathLike, chunk_rows: int = 200_000) -> int:
        """Predict a file into a file; returns how many `predicted_items` were written."""
        from shopfloor.data.tables import write_table

        table = self.predict(source)
        write_table(table, destination)
        return len(table)

    def predict_records(self, rows: list[dict]) -> list[dict]:
        """The service's predict route: JSON rows in, one JSON answer per row (or per run) out."""
        raise self._unsupported("JSON predictions")

    @property
    def input_columns(self) -> list[str]:
        """The columns every row, history or reading sent to this model must carry (the service names the
        missing ones before any work); empty when the task checks its rows itself."""
        return []

    @property
    def group_column(self) -> str | None:
        """The column whose rows must be scored together (a RUL model's unit, a monitoring model's machine, a
        forecasting model's series): Spark groups a DataFrame by it (`applyInPandas`) so that each group meets
        its whole history in one worker; None for a model that scores each row on its own."""
        return None

    def inspection_answer(self, row: dict) -> dict:
        """An image model's answer for one image, from its prediction row: verdict, score and the task's own
        fields (the service's /inspect route)."""
        raise self._unsupported("image inspection")

    def evaluate(self, data, truth=None) -> dict[str, float]:
        """Metrics on labelled data; `truth` is for tasks whose labels live in a file of their own (RUL)."""
        raise self._unsupported("evaluation")

    def refuse_truth(self, truth) -> None:
        """For tasks whose labels are in the data: a separate `truth` would be silently ignored."""
        if truth is not None:
            raise BadOption(f"{self.described_as or self.task_name} takes its labels from the data itself; "
                            "--rul (a file of true remaining life) is for remaining-useful-life models and --label "
                            "(a column of known anomalies) for sensor-monitoring models")

    def explain(self, data) -> pd.DataFrame:
        """Attributions, one row per prediction (per image for image tasks, whose heatmaps themselves come
        from their own `heatmaps` method and, as overlays, from `explain_file`)."""
        raise self._unsupported("explanations")

    def cv_folds(self, frame: pd.DataFrame, k: int) -> list[tuple]:
        """(train rows, test rows) for each of `k` folds of `frame`, split as this task's validation is
        (`crossval.fit_with_cross_validation` fits and scores a fresh estimator on each)."""
        raise self._unsupported("cross-validation")

    def explain_file(self, source: str | os.PathLike, destination: str | os.PathLike) -> int:
        """Explanations of a file into a file; returns how many rows (or images) were explained."""
        from shopfloor.data.tables import write_table

        table = self.explain(source)
        write_table(table, destination)
        return len(table)

    def export_onnx(self, path: str | os.PathLike, opset: int = 18) -> Path:
        raise self._unsupported("ONNX export")

    def drift_view(self, data):
        """The data as the model sees it, for the drift watch (`watch.profile.ModelView`): its inputs one row per
        reading, its outputs, for images and signals the pooled features, and labels where the data has them.
        The profile it is compared with is `drift_profile_`, written by `fit` from the same view."""
        raise self._unsupported("drift watch")

    def onnx_parity(self, path: str | os.PathLike, data) -> float:
        """The largest difference between onnxruntime on `path` and torch, on `data` (a file or a table)."""
        raise self._unsupported("ONNX export")

    def write_report(self, path: str | os.PathLike, data=None, truth=None) -> Path:
        raise self._unsupported("report page")

    def quantities(self) -> tuple[str, ...]:
        """The values this fitted model gives on the line: `gives`, or fewer (a table model gives a risk only
        for a yes/no target)."""
        return self.gives

    @classmethod
    def summary(cls, manifest: dict) -> dict:
        """What `info`, the service's catalog and the dashboard show of a saved model, without loading weights.

        Keys: task, title, headline, created, shopfloor_version, params, metrics, inputs, outputs, and `lines`:
        sentences that describe the model for a person. Tasks add their inputs, outputs and lines.
        """
        saved = manifest.get("state", {})
        return {"task": manifest["task"], "title": cls.title, "created": manifest.get("created"),
                "shopfloor_version": manifest.get("shopfloor_version"), "params": manifest.get("params", {}),
                "metrics": {"validation": saved.get("validation_metrics"),
                            "cross_validation": saved.get("cross_validation"),
                            "train_seconds": saved.get("train_seconds"),
                            "training_data": {k: v for k, v in (saved.get("data_fingerprint") or {}).items()
                                              if k != "columns"}},
                "headline": manifest["task"], "inputs": {}, "outputs": {}, "lines": []}

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
        common = {key: getattr(self, attr, default) for key, (attr, default) in COMMON_STATE.items()}
        declared = {key: getattr(self, attr) for key, attr in self.saved_state.items()}
        state = {**common, **declared, **self._state()}
        return save_artifact(folder, task=self.task_name, params=self.get_params(), state=state, tensors=self._tensors())

    @classmethod
    def from_artifact(cls, manifest: dict, tensors: dict[str, torch.Tensor], source: str) -> Estimator:
        unknown = set(manifest["params"]) - set(cls.param_names())
        if unknown:
            raise NotAModel(f"{source} has parameters this shopfloor does not know: {sorted(unknown)}")
        estimator = cls(**manifest["params"])
        state = manifest["state"]
        try:
            for key, (attr, default) in COMMON_STATE.items():
                setattr(estimator, attr, copy.deepcopy(state.get(key, default)))
            for key, attr in cls.saved_state.items():
                setattr(estimator, attr, state[key])
            estimator._restore(state, tensors)
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
        """State beyond `COMMON_STATE` and `saved_state` that needs converting to JSON."""
        return {}

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
        """Rebuild what `_state()` and `_tensors()` saved (the common and declared state is already set)."""

    # -- on the edge (issue 19): int8 export and the robustness report -----------------------
    # the import path of this task's module of edge hooks, functions of (model, data): `edge_data` (what
    # `kits.quantise.export_int8` needs) and `robustness_probe` (what `shopfloor.robustness` perturbs); a
    # path, not the functions, so that loading a model imports neither onnxruntime's quantiser nor the attacks
    edge_hooks: ClassVar[str] = ""

    def edge_data(self, data, truth=None):
        """The graph's inputs for `data`, its metric (against `truth` where labels live in a file of their own,
        as for `evaluate`) and the quantisation method that suits this task's network (a
        `shopfloor.kits.quantise.EdgeData`)."""
        return self._edge_hook("edge_data", "int8 export")(self, data, truth)

    def robustness_probe(self, data, truth=None):
        """A differentiable view of the model on `data` (and `truth`, as for `evaluate`) for the robustness
        report (a `shopfloor.robustness.probe.Probe`): its inputs and their spread, the loss and the metric."""
        return self._edge_hook("robustness_probe", "robustness report")(self, data, truth)

    def _edge_hook(self, name: str, capability: str):
        import importlib

        hook = getattr(importlib.import_module(self.edge_hooks), name, None) if self.edge_hooks else None
        if hook is None:
            raise self._unsupported(capability)
        return hook


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
