"""A machine's forecast fans on the dashboard: what a live forecasting model makes of the machine's recent readings.

The stream stores every machine's readings (`Store.readings`: a time and a dict of sensor values). A live model
whose estimator forecasts series (`Estimator.forecasts_readings`) and whose targets are among a machine's sensors
forecasts from the machine's latest readings, put on the model's grid: the look-back's steps back from the newest
reading, each holding the latest reading at or before it (the way the model itself carries gaps forward), with the
machine as the series where the model has a series column and learnt that machine. The fan after the last
reading is the point forecast and the quantile bands.

What does not fit says so on the page instead of a fan, in one line: a model that needs known covariates (the
plan of the steps ahead, which the stream does not carry), one that reads past covariates the machine does not
send, readings without dates for a model of dated steps, a look-back longer than the stored readings. A model
trained on other series (a series column without this machine) and one whose targets the machine does not send
are not this machine's: nothing is shown for them.

The fan is made on page load and kept per model version, machine and newest reading (`CACHE` of them, the
oldest dropped first), so a page reloaded every few seconds between readings costs one forecast.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import pandas as pd

from shopfloor.serve.charts import fan_svg

CACHE = 256  # fans kept (model version x machine x newest reading)
SHOWN = 120  # readings drawn before the fan, at most
MAX_READINGS = 20_000  # readings read to fill a look-back on the model's grid, at most

_fans: OrderedDict[tuple, dict] = OrderedDict()
_lock = threading.Lock()


def forecast_fans(registry, store, line: str, machine: str) -> list[dict]:
    """One entry per live forecasting model that applies to the machine: {"model", "target", "chart"} per target
    with its fan, or {"model", "note"} saying why it gives none. Empty where no such model applies."""
    from shopfloor.errors import ShopfloorError
    from shopfloor.tasks import estimator_class

    fans = []
    for entry in registry.describe():
        try:
            if entry.get("live") is None or not getattr(estimator_class(entry["task"]), "forecasts_readings", False):
                continue
            live = registry.live(entry["name"])
        except (KeyError, ShopfloorError):  # a damaged or unknown model: the models page says why
            continue
        fans += machine_fans(live, store, line, machine)
    return fans


def machine_fans(live, store, line: str, machine: str) -> list[dict]:
    """The fans (or the one-line note) of one live forecasting model for one machine; [] when it is not the
    machine's (another series, or targets its newest reading does not hold)."""
    model, label = live.estimator, f"{live.name} v{live.version}"
    newest = store.readings(line, machine, limit=1)
    if not newest:
        return []
    sent = set(newest[-1]["values"])
    if not set(model.target_columns_) <= sent or not knows(model, machine):
        return []
    key = (live.name, live.version, id(model), line, machine, newest[-1]["time"])
    with _lock:
        if key in _fans:
            _fans.move_to_end(key)
            return _fans[key]
    fans = _fans_of(model, label, store, line, machine, sent)
    with _lock:
        _fans[key] = fans
        while len(_fans) > CACHE:
            _fans.popitem(last=False)
    return fans


def knows(model, machine: str) -> bool:
    """A model without a series column forecasts any machine; one with it, only the machines it learnt."""
    return not model.series_column_ or machine in {str(name) for name in model.series_ids_}


def _fans_of(model, label: str, store, line: str, machine: str, sent: set[str]) -> list[dict]:
    from shopfloor.errors import ShopfloorError
    from shopfloor.tasks.forecast.conformal import intervals

    if model.known_columns_:
        return [{"model": label, "note": f"needs the plan: its known covariates "
                 f"({', '.join(model.known_columns_)}) over the next {model.horizon} steps, which the line does not "
                 f"send (forecast with shopfloor predict --future, or the service with the plan's rows)"}]
    missing = [name for name in model.past_columns_ if name not in sent]
    if missing:
        return [{"model": label, "note": f"reads {', '.join(missing)} as well, which this machine does not send"}]
    readings = look_back(store, line, machine, model.lookback * model.step_)
    try:
        history = grid_history(model, readings, machine)
        table = model.predict(history)
    except ShopfloorError as err:
        return [{"model": label, "note": str(err)}]
    ahead = seconds_of(table[model.time_column_], model.stamped_)
    drawn = history.tail(SHOWN)
    past = seconds_of(drawn[model.time_column_], model.stamped_)
    fans = []
    for target in model.target_columns_:
        rows = (table["target"] == target).to_numpy()
        bands = [(table[f"q{model.levels[i]:g}"].to_numpy()[rows], table[f"q{model.levels[j]:g}"].to_numpy()[rows],
                  nominal) for i, j, nominal in intervals(model.levels)]
        chart = fan_svg(past, drawn[target].to_numpy(dtype=float), ahead[rows], table["forecast"].to_numpy()[rows],
                        bands, f"{target}: forecast {model.horizon} steps ahead ({label})",
                        time_words=_date if model.stamped_ else _number)
        fans.append({"model": label, "target": target, "chart": chart})
    return fans


def look_back(store, line: str, machine: str, span: float) -> list[dict]:
    """The machine's latest readings covering `span` (the look-back in time units) where the store holds them:
    the newest two tell how fast they come, then as many as cover the span at that pace (twice as many again
    while they fall short), at most `MAX_READINGS`."""
    readings = store.readings(line, machine, limit=1)
    wanted = 1
    while readings and len(readings) == wanted and wanted < MAX_READINGS:
        covered = readings[-1]["time"] - readings[0]["time"]
        if covered >= span:
            break
        rate = (len(readings) - 1) / covered if covered > 0 else 0.0
        wanted = min(MAX_READINGS, max(2 * wanted, int(rate * span * 1.1) + 2))
        readings = store.readings(line, machine, limit=wanted)
    return readings


def grid_history(model, readings: list[dict], machine: str) -> pd.DataFrame:
    """The look-back on the model's grid, back from the newest reading: at each step the latest reading at or
    before it (a step before the first reading is left out, so a short history gets the model's own message)."""
    from shopfloor.errors import BadTarget
    from shopfloor.stream.machines import EPOCH_SECONDS

    times = np.array([r["time"] for r in readings], dtype=np.float64)
    if model.stamped_ and times[-1] < EPOCH_SECONDS:
        raise BadTarget(f"machine {machine}'s readings count time without dates (time {times[-1]:g}); the model "
                        f"forecasts dated steps: send readings stamped in seconds since 1970")
    grid = times[-1] - model.step_ * np.arange(model.lookback - 1, -1, -1)
    grid = grid[grid >= times[0]]
    at = np.searchsorted(times, grid, side="right") - 1
    columns = [*model.target_columns_, *model.past_columns_]
    frame = pd.DataFrame({name: [_value(readings[k]["values"].get(name)) for k in at] for name in columns})
    frame.insert(0, model.time_column_, pd.to_datetime(grid, unit="s") if model.stamped_ else grid)
    if model.series_column_:
        frame.insert(1, model.series_column_, machine)
    return frame


def _date(seconds: float) -> str:
    return pd.Timestamp(seconds, unit="s").strftime("%Y-%m-%d %H:%M UTC")


def _number(seconds: float) -> str:
    return f"{seconds:g}"


def _value(value) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan


def seconds_of(times: pd.Series, stamped: bool) -> np.ndarray:
    """Grid times as the store counts them: seconds since 1970 for stamps, the numbers otherwise."""
    if stamped:
        return ((pd.to_datetime(times) - pd.Timestamp(0)) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
    return np.asarray(times, dtype=np.float64)
