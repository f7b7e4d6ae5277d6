"""What a table model refuses, each with a message that names the option, the row and column, or the manifest
entry: options out of bounds before a fit, readings no network should answer for, and saved sizes that disagree
with the weights before a network is built from them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopfloor.artifacts import check_count, check_size, declared_size
from shopfloor.data.times import check_date_order
from shopfloor.errors import BadColumn, BadOption


def check_options(model) -> None:
    """A TabularModel's parameters, before anything is read or trained."""
    if not model.targets:
        raise BadOption("name at least one target column")
    if model.task not in ("auto", "classification", "regression"):
        raise BadOption(f"task must be auto, classification or regression, not '{model.task}'")
    if (model.bags is not None and model.bags < 1) or model.members < 1:
        raise BadOption(f"bags and members must be at least 1, not bags={model.bags}, members={model.members}")
    if model.max_epochs < 1:
        raise BadOption(f"max_epochs must be at least 1, not {model.max_epochs}: a model that never trained "
                        "would predict noise")
    if model.patience < 1 or model.batch_size < 1 or not model.lr > 0:
        raise BadOption("patience and batch_size must be at least 1 and lr positive")
    for name in ("miss_cost", "false_alarm_cost"):
        value = getattr(model, name)
        if value is not None and not value > 0:
            raise BadOption(f"{name} must be a positive number, not {value}")
    if not 0 < model.interval_coverage < 1:
        raise BadOption("interval_coverage must be between 0 and 1")
    check_date_order(model.date_order)


def check_finite(frame: pd.DataFrame, numbers: np.ndarray, numeric_inputs: list[str], source: str) -> None:
    """Training numbers: infinity (or a value beyond the float range) is refused with its row and column."""
    if not np.isinf(numbers).any():
        return
    position, column = (int(i[0]) for i in np.nonzero(np.isinf(numbers)))
    name = numeric_inputs[column]
    raise BadColumn(f"row {position + 1} of {source}: '{name}' is {shown(frame[name].iloc[position])}, which is not "
                    "a reading (infinite, or beyond the float range); correct it or leave the cell empty")


def check_readings(frame: pd.DataFrame, numbers: np.ndarray, preprocess, numeric_inputs: list[str], source: str,
                   row_offset: int) -> None:
    """Infinity, or a number beyond the float range or far outside training, is refused with its row and
    column: the network holds such a value at a bound, and an answer from it would look like any other."""
    low, high = (b.numpy() for b in preprocess.reading_bounds())
    with np.errstate(invalid="ignore"):
        bad = ~np.isnan(numbers) & ((numbers < low) | (numbers > high))
    if not bad.any():
        return
    position, column = (int(i[0]) for i in np.nonzero(bad))
    name = numeric_inputs[column]
    center = float(preprocess.center[column])
    raise BadColumn(f"row {row_offset + position + 1} of {source}: '{name}' is {shown(frame[name].iloc[position])}, "
                    f"not a plausible reading (training values centre on {center:.4g}; this model takes "
                    f"{float(low[column]):.4g} to {float(high[column]):.4g}); correct it, or leave the cell empty "
                    f"to treat it as missing ({int(bad.any(axis=1).sum())} such row(s))")


def check_saved_sizes(manifest: dict, shapes: dict[str, tuple[int, ...]]) -> None:
    """Every size the manifest declares for the network against the weights' shapes (see `Estimator.check_sizes`)."""
    architecture = manifest.get("state", {}).get("architecture", {})
    n_numeric = declared_size(manifest, "state.architecture.n_numeric")
    check_size("state.architecture.n_numeric", n_numeric, shapes, "net.preprocess.fill", 0)
    pairs = n_numeric * (n_numeric - 1) // 2 if architecture.get("pairs") else 0
    check_size("state.architecture.pairs", pairs, shapes, "net.preprocess.diff_a", 0)
    for name, key in (("log_index", "log_offset"), ("missing_index", "missing_index")):
        check_size(f"state.architecture.{name} (its length)", len(architecture.get(name) or []), shapes,
                   f"net.preprocess.{key}", 0)
    for path, key, axis in (("state.architecture.n_outputs", "net.output_scale", 0),
                            ("state.architecture.members", "net.head.weight", 0),
                            ("params.hidden", "net.head.weight", 1),
                            ("params.n_bins", "net.numeric_embedding.weight", 2),
                            ("params.d_embedding", "net.numeric_embedding.weight", 3)):
        check_size(path, declared_size(manifest, path), shapes, key, axis)
    check_count("params.depth", declared_size(manifest, "params.depth"), shapes, r"net\.backbone\.\d+\.weight")
    categorical = (manifest.get("state", {}).get("schema") or {}).get("categorical") or {}
    check_count("state.schema.categorical (columns)", len(categorical), shapes,
                r"net\.category_embeddings\.\d+\.weight")


def shown(value) -> str:
    """A cell as a person wrote it: 1e+308, inf, 'text' (not np.float64(1e+308))."""
    return repr(value.item() if hasattr(value, "item") else value)
