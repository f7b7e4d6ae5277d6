"""Fault diagnosis: which fault a window of a machine's signals shows, or that it is like none seen in training.

How a fit goes:
1. recordings are read (`signals.read_folder`: class folders of CSV, .npy, WAV or .mat files; or
   `table.read_long_table` with `time`, `label`, `run`); all are resampled to the lowest rate among them;
2. per class, the last runs (or the last `holdout` share of each recording, for a class of one run) are held
   out (`windows.holdout_segments`): no window of the held-out samples overlaps a training window;
3. the network (`network.DiagnoseNet`) learns windows drawn afresh every epoch at random shifts, scaled in
   amplitude and with noise added (augmentation for small data), with classes weighted equally; it stops when
   the held-out loss stops falling;
4. the temperature of the probabilities is fitted on the held-out windows (`metrics.fit_temperature`);
5. the unknown verdict: each class's mean and covariance of the windows' spectral descriptions (training
   windows), and its radius: its median held-out distance times one level for all classes (`unknown_margin`
   times the `unknown_quantile` of the held-out windows' distances in those units); a window farther than its
   radius from every class is unknown (`network` says why the spectra, not the embedding).
   `benchmarks/cwru.py` measures it by holding one class out.

The front end was chosen by measurement (`network` describes the branches; benchmarks/cwru.py and hydraulic.py, on 2 cores shared
with other jobs, so the timings are inflated). On CWRU (first 70 % of each recording trains, last 30 % tests, 5 seeds) every
front classified every test window right (accuracy 1.000, as did the WDCNN-style baseline; gradient boosting on condition
indicators 0.994), training in 7 s (spectrum), 21 s (raw) and 26 s (both) on average on one thread; with noise added to the test
part (0 dB) 0.82-0.84 against the CNN's 0.72. On the hydraulic rig's valve condition (1 Hz process signals, a window per cycle,
seed 0, its test blocks) the spectrum front reached 0.34, raw 0.70-0.82, both 0.75-0.80 (hydraulic.py now chooses on validation
blocks). `both` is the default, the one front far behind on neither kind of data; `front="spectrum"` trains a vibration model 3-4
times faster, `raw` suits slow process signals. Scoring: 6,400 windows/s of 2,048 samples with `both` on one thread
(`score_windows`). The service scores blocks of samples (`records`), and so does the stream (`stream.blocks`).
Length: about 405 lines, 30 of them this docstring: the fit, its calibration and the scoring paths share the
fitted state (network, classes, rates, window) and read best together; the drift view's work is in `drift`.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from shopfloor.artifacts import check_size, declared_size
from shopfloor.devices import LossTensors, scoring_on, to_device
from shopfloor.errors import BadColumn, BadOption, BadTarget
from shopfloor.tasks.base import Estimator
from shopfloor.tasks.diagnose.drift import signal_profile, signal_view
from shopfloor.tasks.diagnose.network import FRONTS, DiagnoseNet
from shopfloor.tasks.diagnose.signals import Recording, check_channels, check_rates, parse_rates, read_folder, resample
from shopfloor.tasks.diagnose.windows import WindowSampler, cut_windows, holdout_segments
from shopfloor.training import TrainConfig, fit_module, seed_everything

BATCH = 512  # windows per network pass when scoring


class DiagnoseModel(Estimator):
    """Fault class per window of a machine's signals, with calibrated probabilities and an unknown verdict."""

    task_name = "diagnose"
    title = "fault diagnosis"
    described_as = "a fault-diagnosis model"
    # "runs": each request's block of samples is scored on its own (`records`); "rows" are batched across requests
    accepts = "runs"
    group_column = property(lambda self: (self.run or self.machine) if self.time else None)  # a long table's recordings
    gives = ("fault_run",)  # the stream judges windows in a row with a fault verdict (`alarms.verdict_rule`)
    predicted_items = "windows: recording, class, probability, runner-up, unknown"
    explained_items = "windows"
    edge_hooks = "shopfloor.tasks.diagnose.edge"  # int8 export, robustness report
    saved_state: ClassVar[dict[str, str]] = {"classes": "classes_", "channels": "channels_", "rate": "sample_rate_",
                                             "unknown_rule": "unknown_rule_"}

    def __init__(self, *, window: int = 2048, rate: float | None = None, rates: dict[str, float] | None = None,
                 channels: list[str] | None = None, time: str | None = None, label: str | None = None,
                 run: str | None = None, machine: str | None = None, mixed_runs: bool = False, front: str = "both",
                 width: int = 32, embedding: int = 64, holdout: float = 0.2, unknown_quantile: float = 0.99,
                 unknown_margin: float = 1.1, augment: bool = True, scale: float = 0.2, noise: float = 0.05,
                 lr: float = 2e-3, weight_decay: float = 1e-4, batch_size: int = 64, max_epochs: int = 40,
                 patience: int = 6, seed: int = 0, progress: bool = True):
        self.window = window
        self.rate = rate
        self.rates = rates
        self.channels = channels
        self.time = time
        self.label = label
        self.run = run
        self.machine = machine
        self.mixed_runs = mixed_runs
        self.front = front
        self.width = width
        self.embedding = embedding
        self.holdout = holdout
        self.unknown_quantile = unknown_quantile
        self.unknown_margin = unknown_margin
        self.augment = augment
        self.scale = scale
        self.noise = noise
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.seed = seed
        self.progress = progress

    # -- reading ---------------------------------------------------------------------------
    def read(self, data, label: str | None = None) -> tuple[list[Recording], bool]:
        """Recordings of `data` as given (a folder, a file, a long table, or a list of `Recording`) and whether
        they are labelled; not yet resampled."""
        parse_rates(self.rate, self.rates)
        if isinstance(data, list):
            if not data or not all(isinstance(r, Recording) for r in data):
                raise BadOption("a list of data must hold Recording objects (shopfloor.tasks.diagnose.signals)")
            return data, all(r.label is not None for r in data)
        if self.time:
            from shopfloor.tasks.diagnose.table import read_long_table

            return read_long_table(data, time=self.time, label=label or self.label, run=self.run, machine=self.machine,
                                   channels=self.channels, rate=self.rate, mixed_runs=self.mixed_runs)
        if isinstance(data, pd.DataFrame):
            raise BadOption("a table of samples needs its time column (--time COL, with --label and --run)")
        return read_folder(data, rate=self.rate, rates=self.rates, channels=self.channels)

    def _prepared(self, recordings: list[Recording]) -> list[Recording]:
        """The recordings at the model's rate, with the model's channels, each at least a window long."""
        check_channels(recordings, self.channels_)
        check_rates(recordings)
        if self.sample_rate_ is not None and any(r.rate is None for r in recordings):
            raise BadOption(f"{recordings[0].source} has no sample rate; the model works at {self.sample_rate_:g} Hz: "
                            "give --rate HZ for files that do not carry their own")
        out = [resample(r, self.sample_rate_) if self.sample_rate_ else r for r in recordings]
        at = f" at {self.sample_rate_:g} Hz" if self.sample_rate_ else ""
        for r in out:
            if r.samples < self.window:
                raise BadColumn(f"{r.source} has {r.samples} samples{at}, shorter than one window of {self.window}; "
                                "give a longer recording (or train with a smaller --window)")
        return out

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, data) -> DiagnoseModel:
        started = time.perf_counter()
        self._check_options()
        seed_everything(self.seed)
        recordings, labelled = self.read(data)
        if not labelled:
            raise BadTarget("training needs the fault type of every recording: class sub-folders (normal/, "
                            "inner_race/, ...) or a long table's --label column")
        self.channels_ = check_channels(recordings)
        check_rates(recordings)
        rates = [r.rate for r in recordings if r.rate is not None]
        self.sample_rate_ = float(min(rates)) if rates else None  # never invent a band a recording lacks
        recordings = self._prepared(recordings)
        self.classes_ = sorted({str(r.label) for r in recordings})
        if len(self.classes_) < 2:
            raise BadTarget(f"every recording is of class '{self.classes_[0]}'; a diagnosis needs two classes or more")
        index = {c: k for k, c in enumerate(self.classes_)}
        train, held = holdout_segments(recordings, self.holdout, self.window)
        self.net_ = self._build_net()
        self._set_normalisation(recordings, train)
        sampler = WindowSampler(recordings, train, [index[recordings[s.recording].label] for s in train], self.window,
                                max(1, self.window // 4))
        valid = [(cut_windows(recordings[s.recording].values[:, s.start:s.stop], self.window, max(1, self.window // 4)),
                  index[recordings[s.recording].label]) for s in held]
        x_valid = torch.as_tensor(np.concatenate([w for w, _ in valid]))
        y_valid = torch.as_tensor(np.concatenate([np.full(len(w), k) for w, k in valid]), dtype=torch.long)
        self._train(sampler, x_valid, y_valid)
        self._calibrate(sampler, x_valid, y_valid)
        self.fingerprint_ = {"recordings": len(recordings), "classes": len(self.classes_),
                             "samples": int(sum(r.samples for r in recordings)), "rate": self.sample_rate_,
                             "training_windows": int(len(sampler.base)), "held_out_windows": int(len(y_valid))}
        self.drift_profile_ = signal_profile(self, recordings, x_valid.numpy())
        self.train_seconds_ = time.perf_counter() - started
        return self

    def _check_options(self) -> None:
        if self.window < 8:
            raise BadOption(f"window must be at least 8 samples, not {self.window}")
        if self.front not in FRONTS:
            raise BadOption(f"front '{self.front}' is not one of {', '.join(FRONTS)}")
        if not 0 < self.holdout < 1:
            raise BadOption(f"holdout is the share of each class held out for validation, between 0 and 1, not {self.holdout}")
        if not 0 < self.unknown_quantile <= 1 or self.unknown_margin <= 0:
            raise BadOption("unknown_quantile must be in (0, 1] and unknown_margin positive")

    def _build_net(self) -> DiagnoseNet:
        return DiagnoseNet(len(self.channels_), len(self.classes_), self.window, front=self.front, width=self.width,
                           embedding=self.embedding)

    def _set_normalisation(self, recordings: list[Recording], train) -> None:
        samples = np.concatenate([recordings[s.recording].values[:, s.start:s.stop] for s in train], axis=1)
        mean, std = samples.mean(1), samples.std(1)
        with torch.no_grad():
            self.net_.mean.copy_(torch.as_tensor(mean))
            self.net_.std.copy_(torch.as_tensor(np.where(std > 1e-12, std, 1.0)))

    def _train(self, sampler: WindowSampler, x_valid: torch.Tensor, y_valid: torch.Tensor) -> None:
        counts = torch.bincount(sampler.labels, minlength=len(self.classes_)).float()
        # every class counts alike (the weights); the channels' levels: on the device the batch arrives on
        beside = LossTensors(weight=counts.sum() / (len(counts) * counts.clamp(min=1)),
                             mean=self.net_.mean.clone()[None, :, None], std=self.net_.std.clone()[None, :, None])

        def loss(net: DiagnoseNet, items: torch.Tensor) -> torch.Tensor:
            windows, held = sampler.windows(items, shift=self.augment), beside.on(items.device)
            if self.augment:
                gain = torch.exp(torch.empty(len(items), 1, 1, device=items.device).uniform_(-self.scale, self.scale))
                # amplitude scaled about the channel's mean (a process signal's level is what tells its classes apart)
                windows = held.mean + (windows - held.mean) * gain + self.noise * held.std * torch.randn_like(windows)
            logits, _ = net.logits(windows)
            return torch.nn.functional.cross_entropy(logits, sampler.placed.on(items.device).labels[items], weight=held.weight)

        def held_out_loss(net: DiagnoseNet, x: torch.Tensor, y: torch.Tensor) -> float:
            logits = torch.cat([net.logits(x[i:i + BATCH])[0] for i in range(0, len(x), BATCH)])
            return float(torch.nn.functional.cross_entropy(logits, y, weight=beside.on(y.device).weight))

        config = TrainConfig(max_epochs=self.max_epochs, batch_size=self.batch_size, lr=self.lr,
                             weight_decay=self.weight_decay, patience=self.patience, seed=self.seed,
                             progress=self.progress, description="diagnosis network")
        result = fit_module(self.net_, loss, (torch.arange(len(sampler.base)),), (x_valid, y_valid), config,
                            score_fn=held_out_loss)
        self.training_log_ = [{"best_epoch": result.best_epoch, "epochs": result.epochs_run,
                               "history": [{"epoch": h["epoch"], "train_loss": h["train_loss"],
                                            "held_out_loss": h["valid_loss"]} for h in result.history]}]

    def _calibrate(self, sampler: WindowSampler, x_valid: torch.Tensor, y_valid: torch.Tensor) -> None:
        from shopfloor.tasks.diagnose.calibration import calibrate

        calibrate(self, sampler, x_valid, y_valid)

    # -- scoring ---------------------------------------------------------------------------
    def logits_of(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncalibrated class scores and embeddings of windows [n, channels, window] (tensors), in batches."""
        with torch.inference_mode(), scoring_on(self.net_) as device:  # --device: the windows go where the net is
            self.net_.eval()
            parts = [[t.cpu() for t in self.net_.logits(*to_device((windows[i:i + BATCH],), device))]
                     for i in range(0, len(windows), BATCH)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def answers_of(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities and novelty of windows [n, channels, window] (tensors), in batches."""
        with torch.inference_mode(), scoring_on(self.net_) as device:
            self.net_.eval()
            parts = [[t.cpu() for t in self.net_(*to_device((windows[i:i + BATCH],), device))]
                     for i in range(0, len(windows), BATCH)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def windows_of(self, data, label: str | None = None) -> tuple[list[Recording], np.ndarray, np.ndarray, np.ndarray]:
        """The recordings of `data` at the model's rate, their non-overlapping windows [n, channels, window], each
        window's recording index and first sample."""
        self._check_fitted()
        recordings = self._prepared(self.read(data, label)[0])
        cut = [cut_windows(r.values, self.window) for r in recordings]
        owner = np.concatenate([np.full(len(w), i) for i, w in enumerate(cut)])
        first = np.concatenate([np.arange(len(w)) * self.window for w in cut])
        return recordings, np.concatenate(cut), owner, first

    def score_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities [n, classes] and novelty [n] of windows [n, channels, window] in plant units."""
        self._check_fitted()
        previous = torch.get_num_threads()
        torch.set_num_threads(max(1, min(previous, 4)))
        try:
            probability, novelty = self.answers_of(torch.as_tensor(np.asarray(windows, dtype=np.float32)))
        finally:
            torch.set_num_threads(previous)
        return probability.numpy(), novelty.numpy()

    def predict(self, data) -> pd.DataFrame:
        """One row per non-overlapping window: recording, start and end (s), class, probability, runner_up and its
        probability, novelty (distance to the nearest class in its radii) and unknown (1: like no class)."""
        recordings, windows, owner, first = self.windows_of(data)
        probability, novelty = self.score_windows(windows)
        return self.window_table(recordings, owner, first, probability, novelty)

    def window_table(self, recordings, owner, first, probability, novelty) -> pd.DataFrame:
        """The answer per window (`predict`'s table) from `windows_of`'s places and `score_windows`' outputs."""
        rate = self.sample_rate_ or 1.0
        order = np.argsort(-probability, axis=1, kind="stable")
        names = np.asarray(self.classes_, dtype=object)
        table = pd.DataFrame({
            "recording": [recordings[i].name for i in owner],
            "start": np.array([recordings[i].start for i in owner]) + first / rate,
            "end": np.array([recordings[i].start for i in owner]) + (first + self.window) / rate,
            "class": names[order[:, 0]],
            "probability": probability[np.arange(len(order)), order[:, 0]].astype(np.float64),
        })
        if len(self.classes_) > 1:
            table["runner_up"] = names[order[:, 1]]
            table["runner_up_probability"] = probability[np.arange(len(order)), order[:, 1]].astype(np.float64)
        table["novelty"] = novelty.astype(np.float64)
        table["unknown"] = (novelty > 1).astype(np.int64)
        if all(r.label is not None for r in recordings):
            table.insert(1, "truth", [recordings[i].label for i in owner])
        return table

    def drift_view(self, data):
        """Per non-overlapping window: each channel's RMS, kurtosis and crest factor, and the answers (`drift`)."""
        return signal_view(self, self.windows_of(data)[1])

    @property
    def input_columns(self) -> list[str]:
        return list(getattr(self, "channels_", []))

    def predict_records(self, rows: list[dict]) -> list[dict]:
        """A gateway's block of samples (one JSON row per sample) scored per window and per block (`records`)."""
        from shopfloor.tasks.diagnose.records import block_answers

        self._check_fitted()
        return block_answers(self, rows)

    def predict_file(self, source, destination, chunk_rows: int = 200_000) -> int:
        """The windows' answers into `destination`, and each recording's beside it (NAME.recordings.csv for NAME.csv)."""
        from pathlib import Path

        from shopfloor.data.tables import write_table
        from shopfloor.tasks.diagnose.evaluation import by_recording

        table = self.predict(source)
        destination = Path(destination)
        write_table(table, destination)
        write_table(by_recording(table), destination.with_name(f"{destination.stem}.recordings{destination.suffix}"))
        return len(table)

    def predict_recordings(self, data) -> pd.DataFrame:
        """One row per recording: the class most of its windows give, that share, the mean probability of the class,
        the share of unknown windows, and unknown (1 when most windows are unknown)."""
        from shopfloor.tasks.diagnose.evaluation import by_recording

        return by_recording(self.predict(data))

    def evaluate(self, data, truth=None) -> dict[str, float]:
        """accuracy and f1_macro over non-overlapping windows of the classes the model knows, recording_accuracy
        (majority of each recording's windows), unknown_rate (known classes' windows called unknown), accepted_accuracy
        (right and not unknown), unseen_unknown_rate (windows of classes not in training that are called unknown),
        and the confusion matrix's non-zero cells ('confusion: true -> predicted')."""
        from shopfloor.tasks.diagnose.evaluation import diagnosis_metrics

        label = truth if isinstance(truth, str) else None
        if truth is not None and label is None:
            self.refuse_truth(truth)
        table = self.predict(data) if label is None else self._predict_labelled(data, label)
        if "truth" not in table.columns:
            raise BadTarget("evaluating needs the fault type of every recording: class sub-folders, or the long "
                            f"table's label column{f' ({self.label})' if self.label else ''}")
        return diagnosis_metrics(table, self.classes_)

    def _predict_labelled(self, data, label: str) -> pd.DataFrame:
        recordings, windows, owner, first = self.windows_of(data, label)
        return self.window_table(recordings, owner, first, *self.score_windows(windows))

    def explain(self, data) -> pd.DataFrame:
        """Per window, which time span and which frequency band drove its verdict: the drop of the class's probability
        when each of 8 spans (or bands) is taken out, and the spans and bands that matter most."""
        from shopfloor.tasks.diagnose.explanations import occlusion_table

        recordings, windows, owner, first = self.windows_of(data)
        table = self.window_table(recordings, owner, first, *self.score_windows(windows))
        return occlusion_table(self, windows, table)

    def export_onnx(self, path, opset: int = 18):
        """Raw windows in, probabilities and novelty out (`diagnose.export` says what the graph takes)."""
        from shopfloor.tasks.diagnose.export import export_onnx

        return export_onnx(self, path, opset)

    def onnx_parity(self, path, data) -> float:
        from shopfloor.tasks.diagnose.export import check_parity

        return check_parity(self, path, data)

    def write_report(self, path, data=None, truth=None):
        """One HTML page: metrics, confusion matrix, each class's average spectrum, explained examples."""
        from shopfloor.tasks.diagnose.report import write_report

        return write_report(self, path, data, truth)

    def cv_folds(self, frame: pd.DataFrame, k: int) -> list[tuple]:
        """K folds of a long table by whole runs (stratified by fault type where every type has k runs)."""
        from shopfloor.tasks.diagnose.evaluation import run_folds

        return run_folds(self, frame, k)

    def cross_validate(self, data, k: int) -> dict:
        """`k`-fold cross-validation by runs (`cv_folds`), then this model fitted on all of `data`; the mean, spread
        and folds of every metric but the confusion cells are kept in `cv_metrics_` and returned."""
        from shopfloor.tasks.diagnose.evaluation import cross_validate_by_runs

        return cross_validate_by_runs(self, data, k)

    # -- persistence -------------------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        return self._net_tensors()

    def _restore(self, state: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.net_ = self._load_net(self._build_net, tensors)

    @classmethod
    def summary(cls, manifest: dict) -> dict:
        out = super().summary(manifest)
        state, params = manifest.get("state", {}), manifest.get("params", {})
        rate = state.get("rate")
        out["headline"] = "fault diagnosis"
        out["inputs"] = {"channels": state.get("channels"), "rate": rate, "window": params.get("window")}
        out["outputs"] = {"class": ", ".join(state.get("classes") or []), "unknown": state.get("unknown_rule")}
        out["lines"] = [f"classes: {', '.join(state.get('classes') or [])}",
                        f"channels: {', '.join(state.get('channels') or [])}; windows of {params.get('window')} samples"
                        + (f" at {rate:g} Hz ({params.get('window', 0) / rate:.3g} s)" if rate else ""),
                        f"front end: {params.get('front')}; unknown when {state.get('unknown_rule')}"]
        return out

    @classmethod
    def check_sizes(cls, manifest: dict, shapes: dict[str, tuple[int, ...]]) -> None:
        state = manifest.get("state", {})
        check_size("state.classes (its length)", len(state.get("classes") or []), shapes, "net.radius", 0)
        check_size("state.channels (its length)", len(state.get("channels") or []), shapes, "net.mean", 0)
        check_size("params.embedding", declared_size(manifest, "params.embedding"), shapes, "net.embed.0.weight", 0)
        declared_size(manifest, "params.window", limit=1 << 22)
        declared_size(manifest, "params.width", limit=4096)
