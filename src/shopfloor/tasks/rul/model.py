"""Remaining useful life (RUL) from run-to-failure sensor histories, with calibrated intervals.

How a fit goes:
1. the run histories are read (`data.runs`): one row per unit and cycle, settings and sensors;
2. operating conditions are found by clustering the settings (k chosen by silhouette), and
   every sensor is standardised per condition; sensors that never move are dropped;
3. every cycle of every unit becomes a window of the last `window` cycles (the start of a
   run is padded with its first cycle, as short test histories are), joined by the unit's
   first `baseline_cycles` cycles (its as-new readings: units differ by manufacture and initial
   wear) and its age in cycles; the training target is the RUL capped at `rul_cap` (an engine in
   good health shows no sign of how long it has left), the quantile heads learn the uncapped RUL.
   Measured on FD001 (one seed, test RMSE, window 30): 15.0 without the baseline (with or
   without age), 13.8 with the baseline but no age, 12.7 with both; window 40: 12.0;
4. the units are split into `members` folds; member k learns on the other folds and stops
   early on its own (cross-fitting, one grouped network for all members);
5. the out-of-fold predictions, on units no member trained on, give honest validation metrics and
   the interval: conformal margins below and above the estimate per band of the estimate, each
   side missing at most half of 1 - `interval_coverage` (`rul_interval`).

Beside it in this package: windows.py (the inputs cut from histories), fitting.py (normalisation, folds,
loss), interval.py (the interval), attributions.py (explanations), checks.py (options, saved sizes).

Length: about 420 lines: the estimator's steps share its fitted state (net_, interval_bands_, the columns), and the
drift watch's view (20 lines) reads the same windows as predicting does.
"""

from __future__ import annotations

import os
import time
from functools import partial
from typing import Literal

import numpy as np
import pandas as pd
import torch

from shopfloor.devices import scoring_on, to_device
from shopfloor.errors import BadOption, BadTarget
from shopfloor.metrics import interval_metrics, rul_metrics
from shopfloor.tasks.base import Estimator
from shopfloor.tasks.rul.attributions import sensor_attributions
from shopfloor.tasks.rul.checks import check_columns, check_options, check_saved_sizes
from shopfloor.tasks.rul.conditions import fit_conditions, sensor_moves
from shopfloor.tasks.rul.fitting import capped_rul_error, rul_loss, set_normalisation, unit_folds
from shopfloor.tasks.rul.interval import conformal_margin, finish_arguments, fit_bands, one_margin
from shopfloor.tasks.rul.network import RULEstimate, RULNet, finish
from shopfloor.tasks.rul.windows import run_windows
from shopfloor.training import TrainConfig, fit_module, seed_everything
from shopfloor.watch.profile import ModelView, build_profile

PREDICT_BATCH = 1_024  # windows per forward pass: 4,096 was half as fast (activations leave the cache)
VALID_WINDOWS = 20_000  # early stopping scores a fixed sample of the held-out windows
STORED_VALIDATION_WINDOWS = 5_000  # out-of-fold estimates kept in the model folder for the report
IMPORTANCE_WINDOWS = 256
PROFILE_OUTPUT_WINDOWS = 20_000  # cycles whose estimates describe the model's outputs in the drift profile


class RULModel(Estimator):
    """How many cycles each unit has left, with a P10-P90 interval and a health-index curve."""

    task_name = "rul"
    title = "remaining useful life"
    described_as = "a remaining-useful-life model"
    accepts = "runs"
    group_column = property(lambda self: getattr(self, "unit_column_", None))  # a unit's estimate reads its whole run
    edge_hooks = "shopfloor.tasks.rul.edge"  # int8 export, robustness report
    gives = ("rul", "rul_low", "rul_high")
    predicted_items = "units: unit, time, rul, rul_low, rul_high"

    def __init__(self, *, unit: str | None = None, time: str | None = None, settings: list[str] = (),
                 drop: list[str] = (), window: int = 40, rul_cap: float = 125.0, conditions: int | None = None,
                 members: int = 5, channels: int = 16, layers: int = 3, kernel: int = 5, hidden: int = 64,
                 dropout: float = 0.1, baseline_cycles: int = 10, use_age: bool = True, train_stride: int = 2,
                 lr: float = 2e-3, weight_decay: float = 1e-4, batch_size: int = 256,
                 max_epochs: int = 60, patience: int = 8, interval_coverage: float = 0.9,
                 date_order: Literal["auto", "dayfirst", "monthfirst"] = "auto", seed: int = 0,
                 progress: bool = True):
        self.unit = unit
        self.time = time
        self.settings = settings
        self.drop = drop
        self.window = window
        self.rul_cap = rul_cap
        self.conditions = conditions
        self.members = members
        self.channels = channels
        self.layers = layers
        self.kernel = kernel
        self.hidden = hidden
        self.dropout = dropout
        self.baseline_cycles = baseline_cycles
        self.use_age = use_age
        self.train_stride = train_stride
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.interval_coverage = interval_coverage
        self.date_order = date_order
        self.seed = seed
        self.progress = progress

    # -- reading ----------------------------------------------------------------------
    def _runs(self, data, fitting: bool = False):
        from shopfloor.data.runs import RunHistory, read_runs

        if isinstance(data, RunHistory):
            return data
        return read_runs(data, unit=self.unit, time=self.time, settings=list(self.settings) or None,
                         drop=list(self.drop) or None,
                         date_order=self.date_order if fitting else self.new_data_date_order())

    def new_data_date_order(self) -> str:
        """How dates in new histories are read: as the caller says, else in the training data's order."""
        return (self.date_order if self.date_order != "auto" else getattr(self, "time_order_", None)) or "auto"

    # -- fitting ----------------------------------------------------------------------
    def fit(self, data) -> RULModel:
        started = time.perf_counter()
        self._check_options()
        runs = self._runs(data, fitting=True)
        if len(runs) < 2:
            raise BadTarget(f"{runs.source} has {len(runs)} unit; a RUL model needs the histories of at least 2 units")
        seed_everything(self.seed)
        self.unit_column_, self.time_column_, self.time_order_ = runs.unit, runs.time, runs.time_order
        self.setting_columns_ = list(runs.settings)
        settings = runs.frame[self.setting_columns_].to_numpy(np.float64)
        condition_model = fit_conditions(settings, self.conditions, self.seed)
        sensors = runs.frame[runs.sensors].to_numpy(np.float64)
        moving = [j for j in range(sensors.shape[1]) if sensor_moves(sensors[:, j], condition_model["labels"])]
        if not moving:
            raise BadTarget(f"no sensor in {runs.source} changes within an operating condition; nothing to learn from")
        self.sensor_columns_ = [runs.sensors[j] for j in moving]
        self.dropped_sensors_ = [s for s in runs.sensors if s not in self.sensor_columns_]

        self.net_ = self._build_net(len(self.setting_columns_), len(self.sensor_columns_), condition_model["k"])
        set_normalisation(self.net_, condition_model, sensors[:, moving])
        inputs, rul, unit_index, _ = self._windows(runs)
        targets = torch.from_numpy(rul.astype(np.float32))
        fold = unit_folds(len(runs), self.members, self.seed)[unit_index]
        trains_on = torch.from_numpy(fold[:, None] != np.arange(self.members)[None, :])  # [windows, members]
        valid = np.random.default_rng(self.seed).permutation(len(rul))[:VALID_WINDOWS]
        # neighbouring windows differ by one cycle: learning from every `train_stride`-th one (always
        # including the failure) halves an epoch; FD001 scored within seed noise of every window
        train = torch.from_numpy(np.flatnonzero(rul % self.train_stride == 0))
        config = TrainConfig(max_epochs=self.max_epochs, batch_size=self.batch_size, lr=self.lr,
                             weight_decay=self.weight_decay, patience=self.patience, seed=self.seed,
                             progress=self.progress, description="RUL ensemble")
        result = fit_module(self.net_, partial(rul_loss, self.rul_cap),
                            (*(x[train] for x in inputs), targets[train], trains_on[train]),
                            (*(x[valid] for x in inputs), targets[valid], ~trains_on[valid]), config,
                            score_fn=self._rul_error)
        self.training_log_ = [{"best_epoch": result.best_epoch, "epochs": result.epochs_run,
                               "valid_loss": result.best_loss}]  # one grouped network: one record

        held = np.flatnonzero(fold < self.members)  # every window, or the held-out fifth for one network
        out_of_fold = self._member_outputs(tuple(x[held] for x in inputs), member=torch.from_numpy(fold[held]))
        self._calibrate(out_of_fold, rul[held])
        self._remember_validation(out_of_fold, rul[held])
        self.drift_profile_ = self._drift_profile(runs, inputs)
        sample = np.random.default_rng(self.seed).permutation(len(rul))[:IMPORTANCE_WINDOWS]
        attributions, _ = self._attributions(tuple(x[sample] for x in inputs))
        self.importance_ = dict(sorted(zip(self.sensor_columns_, np.abs(attributions).mean(0).tolist(), strict=True),
                                       key=lambda kv: -kv[1]))
        self.fingerprint_ = {"units": len(runs), "rows": int(len(runs.frame)), "source": runs.source}
        self.train_seconds_ = time.perf_counter() - started
        return self

    def _check_options(self) -> None:
        check_options(self)

    def _build_net(self, n_settings: int, n_sensors: int, n_conditions: int) -> RULNet:
        return RULNet(n_settings, n_sensors, n_conditions, window=self.window, members=self.members,
                      channels=self.channels, kernel=self.kernel, layers=self.layers, hidden=self.hidden,
                      dropout=self.dropout, scale=float(self.rul_cap), baseline=self.baseline_cycles > 0,
                      age=self.use_age)

    def _rul_error(self, net: RULNet, *batch) -> float:
        """Early stopping watches the capped-RUL error alone (`capped_rul_error`)."""
        return capped_rul_error(self.rul_cap, net, *batch)

    # -- windows ----------------------------------------------------------------------
    def _windows(self, runs, last_only: bool = False):
        """The network's inputs at every cycle (or the last) of every unit, the RUL at each, the unit of each
        window and each unit's length (see `windows.run_windows`)."""
        values = runs.frame[self.setting_columns_ + self.sensor_columns_].to_numpy(np.float32)
        return run_windows(values, runs.frame[runs.unit].to_numpy(), self.window, self.baseline_cycles, last_only)

    def _member_outputs(self, inputs: tuple[torch.Tensor, ...], member: torch.Tensor | None = None) -> np.ndarray:
        """Raw outputs [windows, 4]: the ensemble mean, or the given member's for each window."""
        parts = []
        with torch.inference_mode(), scoring_on(self.net_) as device:  # --device: the windows go where the net is
            for s in range(0, len(inputs[0]), PREDICT_BATCH):
                batch = to_device(tuple(x[s:s + PREDICT_BATCH] for x in inputs), device)
                if member is None:
                    parts.append(self.net_(*batch).cpu())
                else:
                    out = self.net_.member_outputs(*batch).cpu()
                    parts.append(out[member[s:s + PREDICT_BATCH], torch.arange(out.shape[1])])
        return torch.cat(parts).numpy().astype(np.float64)

    # -- calibration ------------------------------------------------------------------
    def _calibrate(self, outputs: np.ndarray, rul: np.ndarray) -> None:
        """The interval from out-of-fold cycles: margins below and above the estimate per band of the
        estimate (`rul_interval`). `interval_margin_`, the one conformal margin on P10-P90 that models
        saved before bands use, stays as the reference."""
        low, high = outputs[:, 1], outputs[:, 3]
        self.interval_margin_ = conformal_margin(np.maximum(low - rul, rul - high), self.interval_coverage)
        self.interval_bands_ = fit_bands(np.maximum(outputs[:, 0], 0), rul, self.rul_cap, self.interval_coverage)

    def _finish(self, outputs: np.ndarray) -> np.ndarray:
        """Raw outputs -> [rul, low, high] in cycles (`nn.rul.finish`, as in the ONNX graph)."""
        *margins, around = finish_arguments(self.interval_bands_)
        below, above, edges = (torch.tensor(x, dtype=torch.float32) for x in margins)
        with torch.no_grad():
            finished = finish(torch.as_tensor(outputs, dtype=torch.float32), below, above, edges, around)
        return finished.numpy().astype(np.float64)

    def estimator_module(self) -> RULEstimate:
        """The whole prediction as one module: raw windows in, estimate and interval out (for export)."""
        self._check_fitted()
        return RULEstimate(self.net_, *finish_arguments(self.interval_bands_)).eval()

    def _remember_validation(self, outputs: np.ndarray, rul: np.ndarray) -> None:
        """Out-of-fold metrics at every cycle of the held-out units, against the capped and true RUL."""
        finished = self._finish(outputs)
        metrics = rul_metrics(np.minimum(rul, self.rul_cap), finished[:, 0])
        metrics.update(interval_metrics(rul, finished[:, 1], finished[:, 2]))
        metrics["cycles"] = float(metrics.pop("units"))
        self.validation_metrics_ = metrics
        keep = np.sort(np.random.default_rng(self.seed).permutation(len(rul))[:STORED_VALIDATION_WINDOWS])
        self.validation_outputs_ = torch.from_numpy(finished[keep].astype(np.float32))  # rul, low, high
        self.validation_targets_ = torch.from_numpy(rul[keep].astype(np.float32))

    # -- the drift watch (`shopfloor.watch`): every cycle's readings and the RUL estimated at it --------------
    def drift_view(self, data) -> ModelView:
        runs = self._checked_runs(data)
        inputs, _, _, _ = self._windows(runs)
        return ModelView(runs.frame[self.input_columns].astype(np.float64).reset_index(drop=True),
                         pd.DataFrame({"rul": self._finish(self._member_outputs(inputs))[:, 0]}), ages=inputs[2].numpy())

    def _drift_profile(self, runs, inputs: tuple[torch.Tensor, ...]) -> dict:
        """The training readings (with how much engines differ from each other), and the ensemble's estimates at
        (a sample of) their cycles: what the line's model gives, not the out-of-fold members'."""
        rows = np.sort(np.random.default_rng(self.seed).permutation(len(inputs[0]))[:PROFILE_OUTPUT_WINDOWS])
        rul = self._finish(self._member_outputs(tuple(x[rows] for x in inputs)))[:, 0]
        return build_profile(runs.frame[self.input_columns].astype(np.float64), pd.DataFrame({"rul": rul}),
                             groups=runs.frame[runs.unit].to_numpy(), ages=inputs[2].numpy(), seed=self.seed)

    # -- predicting -------------------------------------------------------------------
    def _checked_runs(self, data):
        """Run histories to predict on, with every setting and sensor the model was trained on."""
        self._check_fitted()
        runs = self._runs(data)
        check_columns(runs, self.setting_columns_ + self.sensor_columns_)
        return runs

    def last_windows(self, data) -> tuple[tuple[torch.Tensor, ...], list]:
        """The network's inputs at every unit's last cycle (history, start, age), and the unit ids."""
        inputs, runs = self._last_windows(data)
        return inputs, runs.units

    def _last_windows(self, data):
        runs = self._checked_runs(data)
        inputs, _, _, _ = self._windows(runs, last_only=True)
        return inputs, runs

    @staticmethod
    def _last_times(runs) -> pd.Series | np.ndarray:
        """Each unit's last time or cycle as the file wrote it, in the order of `runs.units`: joins results back."""
        return runs.times(runs.frame.groupby(runs.unit, sort=False)[runs.time].last().to_numpy())

    @property
    def input_columns(self) -> list[str]:
        """The settings then the sensors: the order of the last axis of `predict_windows`' arrays."""
        self._check_fitted()
        return self.setting_columns_ + self.sensor_columns_

    def predict_windows(self, history: np.ndarray, start: np.ndarray, age: np.ndarray) -> np.ndarray:
        """RUL, low, high [n, 3] in cycles from windows a caller keeps itself (the stream worker).

        history [n, window, features]: the unit's last `window` cycles, raw, oldest first, padded at
        the front with its first cycle while it has fewer (as `_windows` pads); start [n, k, features]
        with k = max(baseline_cycles, 1): its first cycles, the last one repeated while it has fewer;
        age [n]: cycles seen. Features in `input_columns` order. Normalisation stays in the network.
        """
        self._check_fitted()
        features, k = len(self.input_columns), max(self.baseline_cycles, 1)
        history, start = np.asarray(history, np.float32), np.asarray(start, np.float32)
        age = np.asarray(age, np.float32).reshape(-1)
        if history.shape[1:] != (self.window, features) or start.shape[1:] != (k, features) \
                or not len(history) == len(start) == len(age):
            raise BadOption(f"windows must be history [n, {self.window}, {features}], start [n, {k}, {features}] and "
                            f"age [n]; got {history.shape}, {start.shape} and {age.shape}")
        if not len(history):
            return np.zeros((0, 3))
        inputs = tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in (history, start, age))
        return self._finish(self._member_outputs(inputs))

    def predict(self, data) -> pd.DataFrame:
        """One row per unit, at its last cycle: unit, time (of that cycle), rul, rul_low, rul_high (cycles)."""
        inputs, runs = self._last_windows(data)
        finished = self._finish(self._member_outputs(inputs))
        return pd.DataFrame({"unit": runs.units, "time": self._last_times(runs), "rul": finished[:, 0],
                             "rul_low": finished[:, 1], "rul_high": finished[:, 2]})

    # predict_file is the contract's: a unit's estimate needs its whole history, so the file is read at once

    def health(self, data) -> pd.DataFrame:
        """Per unit and cycle: predicted RUL and a health index from 1 (as new) to 0 (at failure)."""
        runs = self._checked_runs(data)
        inputs, _, unit_index, _ = self._windows(runs)
        finished = self._finish(self._member_outputs(inputs))
        return pd.DataFrame({"unit": np.asarray(runs.units, dtype=object)[unit_index],
                             "time": runs.frame[runs.time].to_numpy(), "rul": finished[:, 0],
                             "health": np.clip(finished[:, 0] / self.rul_cap, 0, 1)})

    def evaluate(self, data, truth=None) -> dict[str, float]:
        """RMSE, MAE and NASA score of the last-cycle estimates against the true RUL, and interval coverage.

        `truth`: the true remaining life of each test unit (a file such as C-MAPSS's RUL_FD001.txt, or a table):
        test histories stop before failure, so their labels cannot be in the data itself."""
        from shopfloor.data.runs import read_rul

        if truth is None:
            raise BadOption("a RUL model is scored against the true remaining life of each test unit: add --rul FILE")
        table = self.predict(data)
        truth = read_rul(truth, list(table["unit"]), source_units=self._runs_source(data))
        return {**rul_metrics(truth, table["rul"].to_numpy()), **interval_metrics(truth, table["rul_low"], table["rul_high"])}

    # -- explaining -------------------------------------------------------------------
    def explain(self, data, steps: int = 32) -> pd.DataFrame:
        """Per unit, at its last cycle: how many cycles of the RUL estimate each sensor accounts for.

        Integrated gradients from a reference window in which every sensor reads as it did when the
        unit's history began (its first `baseline_cycles`, in each cycle's operating condition;
        settings and age unchanged). `reference_rul` is the estimate for that as-new window; each
        row's sensor columns add up to rul - reference_rul. Negative: this sensor shortens the life.
        """
        inputs, runs = self._last_windows(data)
        attributions, reference = self._attributions(inputs, steps)
        table = pd.DataFrame({"unit": runs.units, "time": self._last_times(runs),
                              "rul": self._member_outputs(inputs)[:, 0], "reference_rul": reference})
        for j, sensor in enumerate(self.sensor_columns_):
            table[sensor] = attributions[:, j]
        return table

    def _attributions(self, inputs: tuple[torch.Tensor, ...], steps: int = 32) -> tuple[np.ndarray, np.ndarray]:
        return sensor_attributions(self.net_, inputs, len(self.setting_columns_), steps)

    # -- persistence ------------------------------------------------------------------
    # manifest key -> attribute: the fitted values that are JSON as they are (`_state` converts the rest)
    saved_state = {"unit": "unit_column_", "time": "time_column_", "settings": "setting_columns_",
                   "sensors": "sensor_columns_", "dropped_sensors": "dropped_sensors_",
                   "interval_margin": "interval_margin_", "importance": "importance_"}

    def _state(self) -> dict:
        return {"time_order": self.time_order_, "conditions": self.net_.conditions.n_conditions,
                "interval_bands": self.interval_bands_}

    def _tensors(self) -> dict[str, torch.Tensor]:
        tensors = self._net_tensors()
        tensors["validation.outputs"] = self.validation_outputs_
        tensors["validation.targets"] = self.validation_targets_
        return tensors

    # -- the faces: report, ONNX, the line, info --------------------------------------------
    def predict_records(self, rows: list[dict]) -> list[dict]:
        """Remaining useful life per unit, at its last cycle, from the rows of its run history."""
        from shopfloor.data.runs import read_runs

        frame = pd.DataFrame.from_records(rows)
        runs = read_runs(frame, unit=self.unit_column_, time=self.time_column_,
                         settings=list(self.setting_columns_), date_order=self.new_data_date_order())
        table = self.predict(runs)
        if pd.api.types.is_datetime64_any_dtype(table["time"]):  # a JSON answer holds text, not time stamps
            table["time"] = table["time"].dt.strftime("%Y-%m-%dT%H:%M:%S")
        return table.to_dict(orient="records")

    def write_report(self, path, data=None, truth=None):
        from shopfloor.tasks.rul.report import write_report

        runs = self._runs(data) if data is not None else None  # read once, used by every section of the page
        return write_report(self, path, runs, truth, source=self._runs_source(data) if data is not None else None)

    def export_onnx(self, path, opset: int = 18):
        from shopfloor.tasks.rul.export import export_onnx

        return export_onnx(self, path, opset)

    def onnx_parity(self, path, data) -> float:
        from shopfloor.tasks.rul.export import check_parity

        return check_parity(self, path, data)

    @classmethod
    def summary(cls, manifest: dict) -> dict:
        out = super().summary(manifest)
        state = manifest.get("state", {})
        out["inputs"] = {k: state.get(k) for k in ("unit", "time", "settings", "sensors")}
        out["headline"] = "remaining useful life"
        out["lines"] = [f"units: {state['unit']}, time: {state['time']}, settings: {', '.join(state['settings']) or 'none'} "
                        f"({state['conditions']} operating condition(s))", f"sensors: {', '.join(state['sensors'])}"]
        return out

    @classmethod
    def check_sizes(cls, manifest: dict, shapes: dict[str, tuple[int, ...]]) -> None:
        check_saved_sizes(manifest, shapes)

    def _restore(self, state: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.time_order_ = state.get("time_order")  # absent from models saved before it was kept
        self.net_ = self._load_net(lambda: self._build_net(len(self.setting_columns_), len(self.sensor_columns_),
                                                          state["conditions"]), tensors)
        # saved before the interval followed the estimate: P10-P90 widened by the one margin
        self.interval_bands_ = state.get("interval_bands") or one_margin(self.interval_margin_)
        self.validation_outputs_ = tensors["validation.outputs"]
        self.validation_targets_ = tensors["validation.targets"]

    @staticmethod
    def _runs_source(data) -> str:
        return getattr(data, "source", None) or (str(data) if isinstance(data, str | os.PathLike) else "the data")
