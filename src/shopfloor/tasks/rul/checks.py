"""What a RUL model refuses: options out of bounds before a fit, histories without its columns, and saved
sizes that disagree with the weights (or that would make every prediction allocate too much) before a network
is built from them.
"""

from __future__ import annotations

from shopfloor.artifacts import check_count, check_size, declared_size
from shopfloor.data.times import check_date_order
from shopfloor.errors import BadOption, ColumnMissing
from shopfloor.tasks.rul.conditions import MAX_CONDITIONS

MAX_BASELINE_CYCLES = 10_000  # no weight sizes it, and every prediction holds that many cycles per unit


def check_options(model) -> None:
    """A RULModel's parameters, before anything is read or trained."""
    if model.window < 1 or model.members < 1 or model.rul_cap <= 0:
        raise BadOption("window and members must be at least 1 and rul_cap positive")
    if not 0 < model.interval_coverage < 1:
        raise BadOption("interval_coverage must be between 0 and 1")
    if model.conditions is not None and not 1 <= model.conditions <= MAX_CONDITIONS:
        raise BadOption(f"conditions must be between 1 and {MAX_CONDITIONS} (or left out to find them)")
    check_date_order(model.date_order)


def check_columns(runs, columns: list[str]) -> None:
    """Run histories to predict on must have every setting and sensor the model was trained on."""
    missing = [c for c in columns if c not in runs.frame.columns]
    if missing:
        raise ColumnMissing(f"{runs.source} lacks {', '.join(map(repr, missing))}, which the model was trained on "
                            f"(columns found: {', '.join(map(str, runs.frame.columns))})")


def check_saved_sizes(manifest: dict, shapes: dict[str, tuple[int, ...]]) -> None:
    """Every size the manifest declares for the network against the weights' shapes (see `Estimator.check_sizes`)."""
    state = manifest.get("state", {})
    members, channels = declared_size(manifest, "params.members"), declared_size(manifest, "params.channels")
    check_size("params.members", members, shapes, "net.hidden.weight", 0)
    check_size("params.hidden", declared_size(manifest, "params.hidden"), shapes, "net.hidden.weight", 2)
    check_size("params.members x params.channels", members * channels, shapes, "net.convs.0.weight", 0)
    check_size("params.kernel", declared_size(manifest, "params.kernel"), shapes, "net.convs.0.weight", 2)
    check_count("params.layers", declared_size(manifest, "params.layers"), shapes, r"net\.convs\.\d+\.weight")
    window = declared_size(manifest, "params.window") * channels + int(bool(manifest["params"].get("use_age")))
    check_size("params.window x params.channels (+ 1 for use_age)", window, shapes, "net.hidden.weight", 1)
    check_size("state.conditions", declared_size(manifest, "state.conditions"), shapes,
               "net.conditions.sensor_mean", 0)
    check_size("state.sensors (its length)", len(state.get("sensors") or []), shapes, "net.conditions.sensor_mean", 1)
    check_size("state.settings (its length, at least 1)", max(len(state.get("settings") or []), 1), shapes,
               "net.conditions.centroids", 1)
    declared_size(manifest, "params.baseline_cycles", limit=MAX_BASELINE_CYCLES)
