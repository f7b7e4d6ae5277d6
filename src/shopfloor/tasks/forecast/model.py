"""Forecasting: production, energy, temperatures or parts demand H steps ahead, with calibrated intervals.

Length: about 450 lines, 35 of them this docstring, 40 the 18 parameters and 40 the info and size checks every
task's model carries; the fit, its windows and the calibration read best together with the one answering path
they share. Reading, windows, calibration,
backtests, explanations, export and the report page are their own modules.

How a fit goes:
1. the history is read (`history.read_series`): a time column, one or more targets, an optional series column
   (one global model learns every line, machine or part), known covariates (`known`: values known ahead, such
   as planned production or the shift calendar, which `predict` then needs for the future steps) and every
   other numeric column as a past-only covariate; calendar features come from the time column (`calendar.py`);
   the rows go on a grid of the inferred step, gaps filled by linear interpolation and flagged;
2. the last `holdout` share of every series' steps (at least one horizon) is held out: training windows end
   before it, held-out windows forecast into it (their look-back may reach back into the training part);
   a window whose horizon holds a filled (flagged) target step is not used, so filled values weigh nothing;
   at most `max_windows` training windows, evenly spread over every series' history, are used in each epoch;
   a series too short for any window is skipped with a warning naming it (an error when every series is);
3. every series and column is standardised with its own mean and spread over its training part
   (`forecaster.series_statistics`), inside the model;
4. the network (`network.ForecastNet`, forecast-net's, chosen by measurement in benchmarks/forecast.py) is
   trained with `training.fit_module` on `network.forecast_loss` (MSE of the point forecast plus the pinball
   loss of the quantiles), stopping on the held-out windows' loss;
5. the quantiles are recalibrated on the same held-out windows by split conformal prediction, per horizon step,
   target and quantile (`conformal.py` says exactly how), so that the stated coverage holds as well as the
   held-out end resembles the future; `validation_metrics_` keeps the held-out coverage before and after.

The answers (predict, backtest, explain, the service) all go through `forecaster.Forecaster`: plant units in,
plant units out. Backtests, explanations, the ONNX file and the report page are their own modules.
"""

from __future__ import annotations

import dataclasses
import time
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import torch

from shopfloor.artifacts import check_size, declared_size
from shopfloor.data.times import check_date_order
from shopfloor.devices import LossTensors, scoring_on, to_device
from shopfloor.errors import BadColumn, BadOption, BadTarget, warn
from shopfloor.tasks.base import Estimator
from shopfloor.tasks.forecast.calendar import calendar_columns, calendar_cycles
from shopfloor.tasks.forecast.conformal import conformal_offsets, intervals
from shopfloor.tasks.forecast.forecaster import Forecaster, series_statistics
from shopfloor.tasks.forecast.history import SeriesHistory, read_series, step_words
from shopfloor.tasks.forecast.windows import Flat, flatten, gather, recent, spread_evenly, starts_of
from shopfloor.training import TrainConfig, fit_module, seed_everything

BATCH = 4096  # windows per network pass when answering


def network():
    """The network class and its loss (forecast-net's `network.py`); tests may put a stand-in here."""
    from shopfloor.tasks.forecast import network as module

    return module.ForecastNet, module.forecast_loss


class ForecastModel(Estimator):
    """The next `horizon` steps of every target of every series, a point forecast and calibrated quantiles."""

    task_name = "forecast"
    title = "forecasting"
    described_as = "a forecasting model"
    accepts = "rows"
    reads_windows = True  # the service's rows are histories, answered per series, not per row
    group_column = property(lambda self: getattr(self, "series_column_", None))  # a forecast reads its series' history
    forecasts_readings = True  # the dashboard draws its fan after a machine's readings (serve/forecasts.py)
    validated_on = "held-out end of each series"
    predicted_items = "forecast rows (series x step x target)"
    explained_items = "attribution rows (series x target x input x lags)"
    saved_state: ClassVar[dict[str, str]] = {
        "time": "time_column_", "series_column": "series_column_", "targets": "target_columns_",
        "past": "past_columns_", "known": "known_columns_", "calendar": "calendar_cycles_", "step": "step_",
        "stamped": "stamped_", "series_ids": "series_ids_", "time_order": "time_order_", "skipped": "skipped_series_",
        "architecture": "architecture_",
    }

    def __init__(self, *, time: str | None = None, targets: list[str] = (), series: str | None = None,
                 known: list[str] = (), horizon: int = 24, lookback: int = 96,
                 quantiles: tuple[float, ...] = (0.1, 0.5, 0.9), holdout: float = 0.15,
                 architecture: dict | None = None, lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 64,
                 max_epochs: int = 60, patience: int = 8, max_windows: int = 20_000,
                 date_order: Literal["auto", "dayfirst", "monthfirst"] = "auto", seed: int = 0, progress: bool = True):
        self.time = time
        self.targets = targets
        self.series = series
        self.known = known
        self.horizon = horizon
        self.lookback = lookback
        self.quantiles = quantiles
        self.holdout = holdout
        self.architecture = architecture
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.max_windows = max_windows
        self.date_order = date_order
        self.seed = seed
        self.progress = progress

    # -- fitting ----------------------------------------------------------------------
    def fit(self, data) -> ForecastModel:
        started = time.perf_counter()
        self._check_options()
        self.architecture_ = self._architecture()
        seed_everything(self.seed)
        if not self.time:
            raise BadOption("name the time column (--time COL, time='COL' in Python)")
        history = read_series(data, time=self.time, targets=list(self.targets), series=self.series,
                              known=list(self.known), fill="linear", date_order=self.date_order)
        self._learn_schema(history)
        cuts = self._cuts(history)
        train, valid = self._windows(history, cuts)
        self.net_ = self._build(len(history.ids))
        center, scale = series_statistics(history.values, cuts)
        with torch.no_grad():
            self.net_.center.copy_(torch.as_tensor(center, dtype=torch.float32))
            self.net_.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
        flat = flatten(history, self.calendar_cycles_)
        self._train(flat, train, valid)
        self._calibrate(flat, valid)
        self.fingerprint_ = {"rows": int(history.lengths().sum()), "series": len(history.ids),
                             "targets": len(self.target_columns_), "source": history.source,
                             "filled_stamps": history.filled.get("stamps", 0),
                             "filled_values": history.filled.get("values", 0)}
        self.train_seconds_ = time.perf_counter() - started
        return self

    def _check_options(self) -> None:
        if self.horizon < 1 or self.lookback < 1:
            raise BadOption(f"horizon and lookback must be at least 1 step (horizon {self.horizon}, "
                            f"lookback {self.lookback})")
        levels = self.levels
        if not levels or any(not 0 < q < 1 for q in levels) or sorted(set(levels)) != list(levels):
            raise BadOption(f"quantiles are distinct levels between 0 and 1 in rising order (0.1,0.5,0.9), "
                            f"not {','.join(map(str, self.quantiles))}")
        if not 0 < self.holdout < 1:
            raise BadOption(f"holdout is the share of every series held out for early stopping and calibration, "
                            f"between 0 and 1, not {self.holdout}")
        check_date_order(self.date_order)

    @property
    def levels(self) -> tuple[float, ...]:
        return tuple(float(q) for q in self.quantiles)

    def _learn_schema(self, history: SeriesHistory) -> None:
        self.time_column_, self.series_column_ = history.time, history.series_column
        self.target_columns_, self.past_columns_, self.known_columns_ = history.targets, history.past, history.known
        self.step_, self.stamped_, self.time_order_ = history.step, history.stamped, history.time_order
        span = max(float(t[-1] - t[0]) + history.step for t in history.seconds)
        self.calendar_cycles_ = calendar_cycles(history.step, history.stamped, span)
        self.series_ids_ = [str(name) for name in history.ids]

    def _cuts(self, history: SeriesHistory) -> list[int]:
        """Where every series' held-out end begins."""
        return [max(1, len(v) - max(int(np.ceil(self.holdout * len(v))), self.horizon)) for v in history.values]

    def _windows(self, history: SeriesHistory, cuts: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(series, origin) pairs [windows, 2] of the training and of the held-out windows."""
        train, valid, short = [], [], []
        for i, (flags, cut) in enumerate(zip(history.flagged, cuts, strict=True)):
            length = len(flags)
            origins = np.arange(self.lookback, length - self.horizon + 1)
            filled = np.concatenate([[0], np.cumsum(flags)])
            clean = filled[origins + self.horizon] == filled[origins]  # no filled target step in the horizon
            fit_part = origins[(origins + self.horizon <= cut) & clean]
            held = origins[(origins >= cut) & clean]
            if not len(fit_part) and not len(held):
                short.append((history.ids[i], length))
            train.append(np.column_stack([np.full(len(fit_part), i), fit_part]))
            valid.append(np.column_stack([np.full(len(held), i), held]))
        train, valid = np.concatenate(train).astype(np.int64), np.concatenate(valid).astype(np.int64)
        self.skipped_series_ = [str(name) for name, _ in short]
        if not len(train) or not len(valid):
            longest = int(history.lengths().max())
            raise BadTarget(f"a horizon of {self.horizon} steps with a look-back of {self.lookback} needs at least "
                            f"{self.lookback + 2 * self.horizon + 1} steps in a series (more with --holdout "
                            f"{self.holdout:g}); the longest series of {history.source} has {longest}: lower "
                            "--horizon or --lookback, or give a longer history")
        if short:
            warn(f"{len(short)} series of {history.source} are shorter than lookback + horizon "
                 f"({self.lookback} + {self.horizon} steps) and were left out of training: "
                 + ", ".join(f"{name} ({n} steps)" for name, n in short[:5]) + (" ..." if len(short) > 5 else ""))
        return train, valid

    def _architecture(self) -> dict:
        """Every architecture keyword of the network, the defaults included: a saved model is rebuilt as it was
        trained, whatever later versions choose as their defaults."""
        import inspect

        net_class, _ = network()
        fixed = {"self", "lookback", "horizon", "targets", "past", "known", "quantiles", "series"}
        defaults = {name: p.default for name, p in inspect.signature(net_class.__init__).parameters.items()
                    if name not in fixed and p.default is not inspect.Parameter.empty}
        unknown = set(self.architecture or {}) - set(defaults)
        if unknown:
            raise BadOption(f"the forecast network has no architecture option {', '.join(sorted(unknown))} (it has: "
                            f"{', '.join(defaults)})")
        return {**defaults, **(self.architecture or {})}

    def _build(self, n_series: int) -> Forecaster:
        net_class, _ = network()
        calendar = 2 * len(self.calendar_cycles_)
        net = net_class(lookback=self.lookback, horizon=self.horizon, targets=len(self.target_columns_),
                        past=len(self.past_columns_), known=calendar + len(self.known_columns_),
                        quantiles=self.levels, series=n_series, **self.architecture_)
        return Forecaster(net, series=n_series, targets=len(self.target_columns_), past=len(self.past_columns_),
                          calendar=calendar, known=len(self.known_columns_), horizon=self.horizon,
                          quantiles=len(self.levels))

    def _pairs(self, flat: Flat, pairs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return starts_of(flat, pairs[:, 0], pairs[:, 1], self.lookback), torch.as_tensor(pairs[:, 0])

    def _standard_batch(self, forecaster: Forecaster, flat: Flat, starts: torch.Tensor, series: torch.Tensor):
        """Standardised (output, actual) of a batch of windows: what the loss and the calibration compare."""
        ends, targets = len(self.target_columns_) + len(self.past_columns_), len(self.target_columns_)
        history, known_history, known_future, actual = gather(flat, starts, self.lookback, self.horizon, ends, targets)
        out = forecaster.net(*forecaster.standardise(history, known_history, known_future, series), series)
        actual = (actual - forecaster.center[series][:, None, :targets]) / forecaster.scale[series][:, None, :targets]
        return out, actual

    def _train(self, flat: Flat, train: np.ndarray, valid: np.ndarray) -> None:
        _, forecast_loss = network()
        keep = spread_evenly(len(train), self.max_windows)
        train_tensors = self._pairs(flat, train[keep])
        valid_tensors = self._pairs(flat, valid[spread_evenly(len(valid), self.max_windows)])
        # windows are cut from the series where the batch's starts are (a copy on the device)
        levels, beside = self.levels, LossTensors(values=flat.values, calendar=flat.calendar)

        def loss(forecaster: Forecaster, starts: torch.Tensor, series: torch.Tensor) -> torch.Tensor:
            held = beside.on(starts.device)
            placed = dataclasses.replace(flat, values=held.values, calendar=held.calendar)
            return forecast_loss(*self._standard_batch(forecaster, placed, starts, series), levels)

        config = TrainConfig(max_epochs=self.max_epochs, batch_size=self.batch_size, lr=self.lr,
                             weight_decay=self.weight_decay, patience=self.patience, seed=self.seed,
                             progress=self.progress, description="forecast network")
        result = fit_module(self.net_, loss, train_tensors, valid_tensors, config)
        self.training_log_ = [{"best_epoch": result.best_epoch, "epochs": result.epochs_run,
                               "training_windows": len(keep), "held_out_windows": len(valid), "history": result.history}]

    def _calibrate(self, flat: Flat, valid: np.ndarray) -> None:
        starts, series = self._pairs(flat, valid)
        outs, actuals = [], []
        with torch.no_grad():
            for k in range(0, len(starts), BATCH):
                out, actual = self._standard_batch(self.net_, flat, starts[k:k + BATCH], series[k:k + BATCH])
                outs.append(out.numpy())
                actuals.append(actual.numpy())
        out, actual = np.concatenate(outs), np.concatenate(actuals)
        before = self._held_out_coverage(out[..., 1:], actual)
        offsets = conformal_offsets(out[..., 1:], actual, self.levels)
        with torch.no_grad():
            self.net_.offsets.copy_(torch.as_tensor(offsets, dtype=torch.float32))
        after = np.sort(out[..., 1:] + offsets, axis=-1)
        error = out[..., 0] - actual
        self.validation_metrics_ = {"held_out_windows": float(len(actual)), "mae_standardised": float(np.abs(error).mean()),
                                    "rmse_standardised": float(np.sqrt((error ** 2).mean()))}
        for key, value in before.items():
            self.validation_metrics_[f"{key}_before_calibration"] = value
        self.validation_metrics_.update(self._held_out_coverage(after, actual))

    def _held_out_coverage(self, quantiles: np.ndarray, actual: np.ndarray) -> dict[str, float]:
        return {f"coverage_{nominal * 100:g}": float(((actual >= quantiles[..., low]) & (actual <= quantiles[..., high])).mean())
                for low, high, nominal in intervals(self.levels)}

    # -- answering ----------------------------------------------------------------------
    def read(self, data) -> SeriesHistory:
        """New data on the model's grid, gaps carried forward (only earlier values fill a gap)."""
        self._check_fitted()
        return read_series(data, time=self.time_column_, targets=self.target_columns_, series=self.series_column_,
                           known=self.known_columns_, past=self.past_columns_, step=self.step_, fill="carry",
                           date_order=self.new_data_date_order())

    def new_data_date_order(self) -> str:
        return (self.date_order if self.date_order != "auto" else self.time_order_) or "auto"

    def series_index(self, history: SeriesHistory) -> np.ndarray:
        """The model's index of every series of `history`; a series it never learnt is refused, naming it."""
        known = {str(name): k for k, name in enumerate(self.series_ids_)}
        unknown = [str(name) for name in history.ids if str(name) not in known]
        if unknown:
            raise BadColumn(f"series {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''} of {history.source} "
                            f"{'was' if len(unknown) == 1 else 'were'} not in the training history; the model knows "
                            f"{len(self.series_ids_)} series ({', '.join(map(str, self.series_ids_[:5]))}"
                            f"{' ...' if len(self.series_ids_) > 5 else ''}): retrain with them")
        return np.array([known[str(name)] for name in history.ids], dtype=np.int64)

    def answer(self, flat: Flat, positions: np.ndarray, origins: np.ndarray, series: np.ndarray) -> np.ndarray:
        """Forecasts [windows, horizon, targets, 1 + quantiles] in plant units for the windows whose origins are
        given (positions: the series' place in `flat`; series: the model's index of it)."""
        starts = starts_of(flat, positions, origins, self.lookback)
        ends, targets = len(self.target_columns_) + len(self.past_columns_), len(self.target_columns_)
        index = torch.as_tensor(series)
        parts = []
        with torch.inference_mode(), scoring_on(self.net_) as device:  # --device: the windows go where the net is
            for k in range(0, len(starts), BATCH):
                history, known_history, known_future, _ = gather(flat, starts[k:k + BATCH], self.lookback,
                                                                 self.horizon, ends, targets)
                inputs = to_device((history, known_history, known_future, index[k:k + BATCH]), device)
                parts.append(self.net_(*inputs).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, self.horizon, targets, 1 + len(self.levels)))

    def check_lookback(self, history: SeriesHistory) -> None:
        short = [(name, n) for name, n in zip(history.ids, history.lengths(), strict=True) if n < self.lookback]
        if short:
            name, n = short[0]
            raise BadTarget(f"series {name} of {history.source} has {n} steps; the model looks back {self.lookback} "
                            f"steps ({step_words(self.step_ * self.lookback, self.stamped_)}) before a forecast"
                            + (f" ({len(short)} series are as short)" if len(short) > 1 else "")
                            + ": give a longer history")

    def predict(self, data, future=None) -> pd.DataFrame:
        """The next `horizon` steps after every series' last row: series, time, target (the column's name),
        forecast, and one column per quantile ('q0.1', ...). `future` (a file or table: time, series and the
        known covariates) gives the known covariates over those steps; a model without them needs none."""
        history = self.read(data)
        self.check_lookback(history)
        series = self.series_index(history)
        known_future = self._future_known(history, future)
        history = recent(history, self.lookback)  # only the look-back reaches the network
        flat = flatten(history, self.calendar_cycles_, self.horizon, known_future)
        origins = history.lengths()
        out = self.answer(flat, np.arange(len(series)), origins, series)
        last = np.array([seconds[-1] for seconds in history.seconds])
        times = last[:, None] + self.step_ * np.arange(1, self.horizon + 1)[None, :]  # [series, horizon]
        return self.rows(history, out, times, origins=None)

    def _future_known(self, history: SeriesHistory, future) -> list[np.ndarray] | None:
        from shopfloor.tasks.forecast.future import read_future

        if not self.known_columns_:
            return None
        return read_future(self, history, future)

    def rows(self, history: SeriesHistory, out: np.ndarray, times: list[np.ndarray] | np.ndarray, origins: list | None,
             series_of: np.ndarray | None = None, actual: np.ndarray | None = None) -> pd.DataFrame:
        """The long answer table: one row per window, step and target."""
        n, horizon, targets, _ = out.shape
        series_of = np.arange(n) if series_of is None else series_of
        table = {}
        if self.series_column_:
            table[self.series_column_] = np.repeat(np.asarray(history.ids, dtype=object)[series_of], horizon * targets)
        if origins is not None:
            table["origin"] = np.repeat(history.stamp(np.asarray(origins, dtype=np.float64)), horizon * targets)
        table[self.time_column_] = np.repeat(history.stamp(np.concatenate(times)), targets)
        table["target"] = np.tile(np.asarray(self.target_columns_, dtype=object), n * horizon)
        if actual is not None:
            table["actual"] = actual.reshape(-1).astype(np.float64)
        table["forecast"] = out[..., 0].reshape(-1).astype(np.float64)
        for j, level in enumerate(self.levels):
            table[f"q{level:g}"] = out[..., 1 + j].reshape(-1).astype(np.float64)
        return pd.DataFrame(table)

    def predict_file(self, source, destination, chunk_rows: int = 200_000, future=None) -> int:
        from shopfloor.data.tables import write_table

        table = self.predict(source, future=future)
        write_table(table, destination)
        return len(table)

    def predict_records(self, rows: list[dict]) -> list[dict]:
        """The service: JSON rows of history (time, series, targets, covariates; rows after the history with the
        known covariates and no targets are the future) -> one JSON row per series, step and target."""
        from shopfloor.tasks.forecast.future import split_records

        history, future = split_records(self, rows)
        table = self.predict(history, future=future)
        if self.stamped_:
            table[self.time_column_] = table[self.time_column_].dt.strftime("%Y-%m-%dT%H:%M:%S")
        return table.to_dict(orient="records")

    def backtest(self, data, start, stride: int = 1, refit: bool = False, refit_every: int = 0):
        """Rolling-origin forecasts from `start` (`backtest.py`): (rows, metrics)."""
        from shopfloor.tasks.forecast.backtest import backtest

        return backtest(self, data, start, stride=stride, refit=refit, refit_every=refit_every)

    def evaluate(self, data, truth=None) -> dict[str, float]:
        """A backtest over the last fifth of the data's steps (at least one horizon), every origin: its metrics."""
        from shopfloor.tasks.forecast.backtest import evaluation_start

        self.refuse_truth(truth)
        return self.backtest(data, evaluation_start(self, data))[1]

    def explain(self, data) -> pd.DataFrame:
        """What every series' next forecast rests on: gradient x input summed per input column and lag band
        (`attributions.py`)."""
        from shopfloor.tasks.forecast.attributions import explain

        return explain(self, data)

    def export_onnx(self, path, opset: int = 18):
        from shopfloor.tasks.forecast.export import export_onnx

        return export_onnx(self, path, opset)

    def onnx_parity(self, path, data) -> float:
        from shopfloor.tasks.forecast.export import check_parity

        return check_parity(self, path, data)

    def write_report(self, path, data=None, truth=None):
        from shopfloor.tasks.forecast.report import write_report

        self.refuse_truth(truth)
        return write_report(self, path, data)

    @property
    def input_columns(self) -> list[str]:
        return []  # `predict_records` checks its rows: future rows carry no targets

    # -- persistence ------------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        return self._net_tensors()

    def _restore(self, state: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.quantiles = tuple(self.quantiles)
        self.net_ = self._load_net(lambda: self._build(len(self.series_ids_)), tensors)

    # -- info and size checks --------------------------------------------------------------
    @classmethod
    def summary(cls, manifest: dict) -> dict:
        out = super().summary(manifest)
        state, params = manifest.get("state", {}), manifest.get("params", {})
        levels = params.get("quantiles") or []
        out["headline"] = f"forecast {', '.join(state.get('targets') or [])} {params.get('horizon')} steps ahead"
        out["inputs"] = {"time": state.get("time"), "series": state.get("series_column"),
                         "targets": state.get("targets"), "past": state.get("past"), "known": state.get("known")}
        out["outputs"] = {"forecast": "point forecast (mean)", **{f"q{q:g}": f"quantile {q:g}, conformal" for q in levels}}
        out["lines"] = [f"{len(state.get('series_ids') or [])} series, one step every "
                        f"{step_words(state.get('step', 0.0), state.get('stamped', False))}; look-back "
                        f"{params.get('lookback')}, horizon {params.get('horizon')} steps",
                        f"calendar: {', '.join(calendar_columns(state.get('calendar') or [])) or 'none'}; known "
                        f"covariates: {', '.join(state.get('known') or []) or 'none'}; past-only: "
                        f"{', '.join(state.get('past') or []) or 'none'}"]
        return out

    @classmethod
    def check_sizes(cls, manifest: dict, shapes: dict[str, tuple[int, ...]]) -> None:
        state = manifest.get("state", {})
        check_size("state.series_ids (its length)", len(state.get("series_ids") or []), shapes, "net.center", 0)
        check_size("params.horizon", declared_size(manifest, "params.horizon"), shapes, "net.offsets", 0)
        check_size("state.targets (its length)", len(state.get("targets") or []), shapes, "net.offsets", 1)
        declared_size(manifest, "params.lookback", limit=1_000_000)

