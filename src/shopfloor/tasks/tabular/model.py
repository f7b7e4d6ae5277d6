"""Tabular estimator: failure prediction (binary, multiclass, multi-label) and KPI regression.

How a fit goes:
1. the schema is inferred (numeric sensors, categorical settings, dates, ids) and checked;
2. the training rows are split into `bags` folds (in time order or by whole runs when the
   table has a time or a run id, since neighbouring rows are near copies; random otherwise);
   one ensemble network per fold is trained on the other folds (in time order: on the earlier
   rows only), with early stopping on its own fold (cross-fitting);
3. the out-of-fold predictions, which no network saw in training, calibrate the
   probabilities (Platt / temperature scaling), choose the decision threshold (best F1, or
   least cost when the user prices a missed failure and a false alarm) and give honest
   validation metrics and regression intervals;
4. the fold networks are merged into one ensemble module for prediction and export.

The pieces that need no fitted model live beside it: fitting.py (network shape, bin edges, losses),
validation.py (calibration, thresholds, intervals, metrics), predictions.py (the prediction columns),
attributions.py (explanations), checks.py (options, readings, saved sizes).

Length: about 500 lines, 50 of them the 25 parameters, 80 the faces (report, ONNX, the service's rows, info) and 30
the drift watch's view,
each a thin call into this package; the rest are the estimator's own steps, each a few lines that read and set
the same fitted state (kind_, schema_, split_, net_, thresholds_), which is clearer in one class than passed
between modules.
"""

from __future__ import annotations

import os
import time
from functools import partial
from typing import Literal

import numpy as np
import pandas as pd
import torch

from shopfloor.crossval import Folds, Split, choose_split, fold_indices, holdout_folds, stratification_labels
from shopfloor.data.tables import column_names, iter_table
from shopfloor.data.targets import encode_labels, rows_with_targets, target_kind
from shopfloor.devices import scoring_on, to_device
from shopfloor.errors import BadOption, BadTarget, ColumnMissing
from shopfloor.tasks.base import Estimator, as_frame
from shopfloor.tasks.tabular.attributions import attribution_columns, feature_importance
from shopfloor.tasks.tabular.checks import check_finite, check_options, check_readings, check_saved_sizes
from shopfloor.tasks.tabular.fitting import architecture, bin_edges, frame_digest, member_loss, ranking_score, strata
from shopfloor.tasks.tabular.leaks import warn_target_leaks
from shopfloor.tasks.tabular.network import TabularNet, merge_members
from shopfloor.tasks.tabular.predictions import decisions, prediction_columns
from shopfloor.tasks.tabular.schema import TableSchema, infer_schema, report_extra_columns
from shopfloor.tasks.tabular.validation import (
    decision_thresholds,
    interval_halfwidths,
    output_calibration,
    table_metrics,
)
from shopfloor.training import TrainConfig, fit_module, seed_everything
from shopfloor.watch.performance import classifier_profile
from shopfloor.watch.profile import ModelView, build_profile

STORED_VALIDATION_ROWS = 20_000
IMPORTANCE_ROWS = 500
SMALL_TABLE_ROWS, SMALL_TABLE_BAGS = 5_000, 8
PROFILE_OUTPUT_ROWS = 50_000  # training rows whose outputs describe the model's in the drift profile
PREDICT_BATCH = 2_048  # rows per forward pass: the activations stay in cache (8,192 was half as fast)


class TabularModel(Estimator):
    """Predict failures (yes/no, failure mode, several failure modes at once) or a KPI from a table."""

    task_name = "tabular"
    title = "failure / KPI"
    described_as = "a table model"
    accepts = "rows"
    edge_hooks = "shopfloor.tasks.tabular.edge"  # int8 export, robustness report
    gives = ("risk",)

    def __init__(self, target: str | list[str] = "target", *, drop: list[str] = (), ids: list[str] = (),
                 task: Literal["auto", "classification", "regression"] = "auto",
                 split: Literal["auto", "random", "time", "group"] = "auto", time: str | None = None,
                 group: str | None = None,
                 members: int = 1, bags: int | None = None, hidden: int = 64, depth: int = 2, dropout: float = 0.3,
                 n_bins: int = 16, d_embedding: int = 4, interactions: int = 12,
                 lr: float = 2e-3, weight_decay: float = 1e-2, batch_size: int = 256,
                 max_epochs: int = 200, patience: int = 16,
                 miss_cost: float | None = None, false_alarm_cost: float | None = None,
                 interval_coverage: float = 0.9, date_order: Literal["auto", "dayfirst", "monthfirst"] = "auto",
                 seed: int = 0, progress: bool = True):
        self.target = target
        self.drop = drop
        self.ids = ids
        self.task = task
        self.split = split
        self.time = time
        self.group = group
        self.members = members
        self.bags = bags
        self.hidden = hidden
        self.depth = depth
        self.dropout = dropout
        self.n_bins = n_bins
        self.d_embedding = d_embedding
        self.interactions = interactions
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.miss_cost = miss_cost
        self.false_alarm_cost = false_alarm_cost
        self.interval_coverage = interval_coverage
        self.date_order = date_order
        self.seed = seed
        self.progress = progress

    # -- fitting ----------------------------------------------------------------------
    @property
    def targets(self) -> list[str]:
        return column_names([self.target] if isinstance(self.target, str) else self.target)

    def fit(self, data: pd.DataFrame | str | os.PathLike) -> TabularModel:
        started = time.perf_counter()
        self._check_options()
        frame, source = as_frame(data)
        frame = rows_with_targets(frame, self.targets, column_names(self.drop), source)
        # Small tables leave each cross-fitted network few rows to learn from and few to stop
        # on; more bags average that noise out, and on small tables they cost little. (Garment
        # data, 958 training rows: RMSE 0.1256 with 5 bags, 0.1242 with 8.)
        self.bags_ = self.bags or (SMALL_TABLE_BAGS if len(frame) < SMALL_TABLE_ROWS else 5)
        self.kind_, self.classes_ = target_kind(frame, self.targets, self.task)
        self.schema_ = infer_schema(frame, self.targets, column_names(self.drop), column_names(self.ids),
                                    self.date_order, source)
        self.split_ = self.validation_split(frame, self.schema_)
        numbers, codes = self.schema_.to_arrays(frame)
        check_finite(frame, numbers, self.schema_.numeric_inputs, source)
        y = self._standardise(encode_labels(frame, self.targets, self.kind_, self.classes_))
        warn_target_leaks(numbers, codes, y, self.kind_, self.schema_.features, self.targets, self.classes_, self.seed)
        seed_everything(self.seed)

        numbers_t, codes_t, y_t = torch.from_numpy(numbers), torch.from_numpy(codes), torch.tensor(y)
        template = self._fitted_template(numbers_t, y)
        nets, out_of_fold = [], torch.zeros((len(frame), template.head.weight.shape[-1]))
        held_out = np.zeros(len(frame), dtype=bool)  # rows with an out-of-fold prediction
        self.training_log_ = []
        folds = holdout_folds(frame, self.split_, self.bags_, strata(self.kind_, y, self.bags_), self.seed,
                              self.schema_.date_orders.get(self.split_.column, self.date_order))
        self.bags_ = len(folds)  # fewer runs than bags: one network per run
        for bag, (train_rows, valid_rows) in enumerate(folds):
            held_out[valid_rows] = True
            train_rows, valid_rows = torch.from_numpy(train_rows), torch.from_numpy(valid_rows)
            net = self._train_bag(bag, template, (numbers_t[train_rows], codes_t[train_rows], y_t[train_rows]),
                                  (numbers_t[valid_rows], codes_t[valid_rows], y_t[valid_rows]))
            with torch.inference_mode():
                out_of_fold[valid_rows] = net.member_logits(numbers_t[valid_rows], codes_t[valid_rows]).mean(0)
            nets.append(net)
        self.net_ = merge_members(nets)
        # Calibration, thresholds and metrics read only rows that some network did not train on:
        # with one bag that is the held-out fifth (the other rows have no out-of-fold prediction).
        self.validated_rows_ = int(held_out.sum())
        self._calibrate(out_of_fold.numpy()[held_out], y[held_out])
        self._remember_validation(out_of_fold.numpy()[held_out], y[held_out])
        self.drift_profile_ = self._drift_profile(frame, numbers, codes, out_of_fold.numpy()[held_out], y[held_out])
        self.baseline_codes_ = torch.from_numpy(np.array(
            [int(np.bincount(codes[:, j]).argmax()) for j in range(codes.shape[1])], dtype=np.int64))
        self.importance_ = self._global_importance(numbers, codes)
        self.fingerprint_ = {"rows": int(len(frame)), "columns": list(map(str, frame.columns)),
                             "sha256": frame_digest(frame)}
        self.train_seconds_ = time.perf_counter() - started
        return self

    def _fitted_template(self, numbers: torch.Tensor, y: np.ndarray) -> TabularNet:
        """A net whose preprocessing statistics and bin edges are fitted; every bag copies them."""
        n_outputs = len(self.classes_[0]) if self.kind_ == "multiclass" else len(self.targets)
        self.architecture_ = architecture(numbers.numpy(), n_outputs, self.interactions)
        template = self._build_net(self.architecture_, self.members)
        template.preprocess.fit(numbers)
        with torch.no_grad():
            features = template.preprocess(numbers).numpy()
        template.numeric_embedding.set_edges(bin_edges(features, y, self.n_bins, self.kind_))
        return template

    def _train_bag(self, bag: int, template: TabularNet, train: tuple, valid: tuple) -> TabularNet:
        """One ensemble network, trained on `train`, stopped early on `valid`."""
        net = self._build_net(self.architecture_, self.members)
        net.load_state_dict({name: value for name, value in template.named_buffers()}, strict=False)
        # small tables get smaller batches: at least 16 optimiser steps per epoch
        batch_size = min(self.batch_size, max(32, len(train[0]) // 16))
        config = TrainConfig(max_epochs=self.max_epochs, batch_size=batch_size, lr=self.lr,
                             weight_decay=self.weight_decay, patience=self.patience, seed=self.seed * 1000 + bag,
                             progress=self.progress, description=f"fold {bag + 1}/{self.bags_}")
        # a validation block without failures (time order) ranks nothing: stop on the loss there
        ranks = self.kind_ == "binary" and bool((valid[2].amin(0) < valid[2].amax(0)).any())
        result = fit_module(net, partial(member_loss, self.kind_), train, valid, config,
                            score_fn=ranking_score if ranks else None)
        self.training_log_.append({"bag": bag, "best_epoch": result.best_epoch,
                                   "epochs": result.epochs_run, "valid_score": result.best_loss})
        return net

    def _check_options(self) -> None:
        check_options(self)

    def _standardise(self, y: np.ndarray) -> np.ndarray:
        """Regression targets are learned in standard units and reported in their own."""
        if self.kind_ != "regression":
            return y
        self.target_center_ = y.mean(0)
        self.target_scale_ = np.where(y.std(0) > 0, y.std(0), 1.0)
        return ((y - self.target_center_) / self.target_scale_).astype(np.float32)

    def validation_split(self, frame: pd.DataFrame, schema: TableSchema | None = None) -> Split:
        """How rows are held out for validation (and by `--cv`): time order or whole runs when the table
        has a time or a run id, random rows otherwise (see `crossval.choose_split`)."""
        schema = schema or infer_schema(frame, self.targets, column_names(self.drop), column_names(self.ids),
                                        self.date_order)
        time, group = (None if n is None else column_names([n])[0] for n in (self.time, self.group))
        return choose_split(frame, self.split, time, group, schema.dates, schema.features + schema.ids)

    def cv_folds(self, frame: pd.DataFrame, k: int) -> Folds:
        """K folds of `frame` for `crossval.fit_with_cross_validation`: in time order or by whole runs as this
        model's own validation splits (`validation_split`), else random rows stratified on the target (labels
        of every target together) for classification."""
        self._check_options()
        labelled = rows_with_targets(frame, self.targets, column_names(self.drop), "the data")
        kind, _ = target_kind(labelled, self.targets, self.task)
        chosen = self.validation_split(labelled)
        folds = fold_indices(frame, k, stratification_labels(frame, self.targets, kind != "regression"),
                             group=chosen.column if chosen.kind == "group" else None,
                             time=chosen.column if chosen.kind == "time" else None, seed=self.seed,
                             date_order=self.date_order)
        return Folds(folds, chosen.words())

    def _build_net(self, architecture: dict, members: int) -> TabularNet:
        return TabularNet(kind=self.kind_, n_outputs=architecture["n_outputs"], n_numeric=architecture["n_numeric"],
                          log_index=architecture["log_index"], missing_index=architecture["missing_index"],
                          pairs=architecture["pairs"], category_sizes=[len(v) for v in self.schema_.categorical.values()],
                          members=members, hidden=self.hidden, depth=self.depth, dropout=self.dropout,
                          n_bins=self.n_bins, d_embedding=self.d_embedding)

    def _calibrate(self, logits: np.ndarray, y: np.ndarray) -> None:
        """Fit the output calibration into the net, then thresholds or intervals on its outputs."""
        scale, shift = output_calibration(self.kind_, logits, y, getattr(self, "target_scale_", None),
                                          getattr(self, "target_center_", None))
        self.net_.output_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
        self.net_.output_shift.copy_(torch.as_tensor(shift, dtype=torch.float32))
        outputs = self._calibrated(logits)
        self.thresholds_ = decision_thresholds(y, outputs, self.miss_cost, self.false_alarm_cost) \
            if self.kind_ == "binary" else []
        self.interval_halfwidth_ = []
        if self.kind_ == "regression":  # out-of-fold residuals, split conformal
            self.interval_halfwidth_ = interval_halfwidths(self._in_target_units(y), outputs, self.interval_coverage)

    def _calibrated(self, mean_logits: np.ndarray) -> np.ndarray:
        """Ensemble-mean raw outputs -> what the net returns (probabilities or target units)."""
        with torch.no_grad():
            z = self.net_.calibrate(torch.as_tensor(mean_logits, dtype=torch.float32)[None])
            return self.net_.squash(z).numpy()

    def _in_target_units(self, y: np.ndarray) -> np.ndarray:
        return y * self.target_scale_ + self.target_center_ if self.kind_ == "regression" else y

    def _remember_validation(self, logits: np.ndarray, y: np.ndarray) -> None:
        """Out-of-fold predictions and metrics: what the model scores on rows it never trained on."""
        outputs, y = self._calibrated(logits), self._in_target_units(y)
        self.validation_metrics_ = {**self._metrics(y, outputs), "split": self.split_.words()}
        keep = np.sort(np.random.default_rng(self.seed).permutation(len(y))[:STORED_VALIDATION_ROWS])
        self.validation_outputs_ = torch.from_numpy(outputs[keep].astype(np.float32))
        self.validation_targets_ = torch.from_numpy(np.asarray(y)[keep])

    # -- predicting -------------------------------------------------------------------
    def _outputs(self, numbers: np.ndarray, codes: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), scoring_on(self.net_) as device:  # --device: the rows go where the net is
            parts = [self.net_(*to_device((torch.from_numpy(numbers[s:s + PREDICT_BATCH]),
                                           torch.from_numpy(codes[s:s + PREDICT_BATCH])), device)).cpu()
                     for s in range(0, len(numbers), PREDICT_BATCH)]
        return torch.cat(parts).numpy()

    def _prepare(self, data, source: str | None = None, row_offset: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        self._check_fitted()
        frame, name = as_frame(data)
        source = source or name
        self.schema_.check_columns(frame, source)
        numbers, codes = self.schema_.to_arrays(frame, row_offset, self.date_order)
        check_readings(frame, numbers, self.net_.preprocess, self.schema_.numeric_inputs, source, row_offset)
        return frame, numbers, codes

    def predict_proba(self, data) -> np.ndarray:
        """Calibrated probabilities: [N, labels] (yes/no targets) or [N, classes]."""
        if self.kind_ == "regression":
            raise BadOption("predict_proba is for classification models; this one predicts a number")
        _, numbers, codes = self._prepare(data)
        return self._outputs(numbers, codes)

    def predict(self, data, row_offset: int = 0, source: str | None = None) -> pd.DataFrame:
        """A prediction table: the id and date (time) columns, then probabilities and decisions (or values and intervals)."""
        frame, numbers, codes = self._prepare(data, source, row_offset)
        return self._prediction_table(frame, self._outputs(numbers, codes))

    def _decisions(self, outputs: np.ndarray) -> np.ndarray:
        return decisions(self.kind_, outputs, self.thresholds_)

    def _kept_columns(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The id, date and time/run columns as they came: results join back to the rows by them, not by row order
        (a numeric time such as operating hours is kept too when validation ran in its order or by its runs)."""
        kept = self.schema_.ids + self.schema_.dates
        if self.split_.column is not None and self.split_.column not in kept:
            kept = [*kept, self.split_.column]
        return {c: frame[c].to_numpy() for c in kept if c in frame.columns}

    def _prediction_table(self, frame: pd.DataFrame, outputs: np.ndarray) -> pd.DataFrame:
        table = prediction_columns(self._kept_columns(frame), self.kind_, self.targets, self.classes_, outputs,
                                   self._decisions(outputs), self.interval_halfwidth_)
        return pd.DataFrame(table, index=frame.index)

    def predict_file(self, source: str | os.PathLike, destination: str | os.PathLike,
                     chunk_rows: int = 200_000) -> int:
        """Stream a CSV/Parquet file through the model in chunks; returns the row count.

        Memory is bounded by the chunk size; the output appears only when complete.
        """
        from shopfloor.data.tables import TableWriter

        self._check_fitted()
        rows = 0
        with TableWriter(destination) as writer:
            for chunk in iter_table(source, chunk_rows):
                if rows == 0:
                    report_extra_columns(chunk, self.schema_.features + self.schema_.ids + self.targets, str(source))
                writer.write(self.predict(chunk, row_offset=rows, source=str(source)))
                rows += len(chunk)
        return rows

    # -- the drift watch: the inputs as read, the outputs on held-out rows (`shopfloor.watch`) --------------
    def drift_view(self, data) -> ModelView:
        frame, numbers, codes = self._prepare(data)
        labels = None
        if self.kind_ == "binary" and self.targets[0] in frame.columns and frame[self.targets[0]].notna().all():
            labels = encode_labels(frame, self.targets, self.kind_, self.classes_)[:, 0]
        return ModelView(self._watched_inputs(frame, numbers), self._output_frame(self._outputs(numbers, codes)),
                         labels=labels)

    def _watched_inputs(self, frame: pd.DataFrame, numbers: np.ndarray) -> pd.DataFrame:
        inputs = pd.DataFrame(numbers.astype(np.float64), columns=self.schema_.numeric_inputs)
        for name in self.schema_.categorical:
            inputs[name] = frame[name].astype(object).to_numpy()
        return inputs

    def _output_frame(self, outputs: np.ndarray) -> pd.DataFrame:
        names = ([f"p({c})" for c in self.classes_[0]] if self.kind_ == "multiclass" else list(self.targets)
                 if self.kind_ == "regression" else ["risk"] if len(self.targets) == 1 else [f"risk {t}" for t in self.targets])
        return pd.DataFrame(np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1), columns=names)

    def _drift_profile(self, frame: pd.DataFrame, numbers: np.ndarray, codes: np.ndarray, logits: np.ndarray,
                       y: np.ndarray) -> dict:
        """Training inputs, and the outputs of the merged network on (a sample of) them: the out-of-fold outputs
        come from single fold networks, whose spread differs from the merged ensemble's (AI4I: PSI 0.20 against
        the final model's outputs on held-out rows, 0.005 for its own outputs on training rows). A yes/no model
        also gets CBPE's threshold and reliability curve, from the out-of-fold outputs and their labels."""
        rows = np.sort(np.random.default_rng(self.seed).permutation(len(numbers))[:PROFILE_OUTPUT_ROWS])
        outputs = self._output_frame(self._outputs(numbers[rows], codes[rows]))
        classifier = None
        if self.kind_ == "binary" and len(self.targets) == 1:
            classifier = classifier_profile(self._calibrated(logits)[:, 0], y[:, 0], self.thresholds_[0])
        return build_profile(self._watched_inputs(frame, numbers), outputs, classifier=classifier, seed=self.seed)

    # -- evaluating and explaining ----------------------------------------------------
    def evaluate(self, data, truth=None) -> dict[str, float]:
        """Metrics on labelled data: see metrics.CLASSIFICATION_KEYS / REGRESSION_KEYS."""
        self.refuse_truth(truth)
        frame, numbers, codes = self._prepare(data)
        missing = [t for t in self.targets if t not in frame.columns]
        if missing:
            raise ColumnMissing(f"evaluation needs the target column(s) {missing}, which the data does not have")
        labelled = ~frame[self.targets].isna().any(axis=1).to_numpy()
        frame, numbers, codes = frame[labelled], numbers[labelled], codes[labelled]
        y = encode_labels(frame, self.targets, self.kind_, self.classes_)
        if self.kind_ == "multiclass" and (y < 0).any():
            unknown = sorted(set(frame[self.targets[0]][y < 0].map(str)))
            raise BadTarget(f"the data has target values the model never saw: {unknown[:5]}")
        return self._metrics(y, self._outputs(numbers, codes))

    def _metrics(self, y: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        return table_metrics(self.kind_, self.targets, y, outputs, self._decisions(outputs), self.interval_halfwidth_)

    def explain(self, data, steps: int = 32) -> pd.DataFrame:
        """Per-row attributions (integrated gradients) of every feature column.

        Explained output: the probability of the positive class (yes/no), of the predicted
        class (multiclass), or the predicted value (regression; first target, then each label
        for several yes/no targets). Each row's attributions add up to its prediction minus
        the baseline prediction for a typical row (column 'baseline'). Id and date columns are
        kept as they came; a date's own attribution is then '<date> attribution'.
        """
        frame, numbers, codes = self._prepare(data)
        table = attribution_columns(self.net_, numbers, codes, self._outputs(numbers, codes), self.baseline_codes_,
                                    self.kind_, self.targets, self.schema_.features, self._kept_columns(frame), steps)
        return pd.DataFrame(table, index=frame.index)

    def _global_importance(self, numbers: np.ndarray, codes: np.ndarray) -> dict[str, float]:
        """Mean |attribution| per feature over a sample of training rows, largest first."""
        rows = np.random.default_rng(self.seed).permutation(len(numbers))[:IMPORTANCE_ROWS]
        return feature_importance(self.net_, numbers[rows], codes[rows], self._outputs(numbers[rows], codes[rows]),
                                  self.baseline_codes_, self.kind_, self.schema_.features)

    # -- persistence ------------------------------------------------------------------
    # manifest key -> attribute: the fitted values that are JSON as they are (`_state` converts the rest)
    saved_state = {"kind": "kind_", "classes": "classes_", "thresholds": "thresholds_",
                   "interval_halfwidth": "interval_halfwidth_", "importance": "importance_"}

    def _state(self) -> dict:
        state = {
            "schema": self.schema_.to_json(),
            "architecture": {**self.architecture_, "members": self.net_.members},
            "split": {**self.split_.to_json(), "validated_rows": int(self.validated_rows_)},
        }
        if self.kind_ == "regression":
            state["target_center"] = np.asarray(self.target_center_).tolist()
            state["target_scale"] = np.asarray(self.target_scale_).tolist()
        return state

    def _tensors(self) -> dict[str, torch.Tensor]:
        tensors = self._net_tensors()
        tensors["baseline_codes"] = self.baseline_codes_
        tensors["validation.outputs"] = self.validation_outputs_
        tensors["validation.targets"] = self.validation_targets_
        return tensors

    # -- the faces: report, ONNX, the line, info --------------------------------------------
    def quantities(self) -> tuple[str, ...]:
        return self.gives if getattr(self, "kind_", None) == "binary" else ()

    def write_report(self, path, data=None, truth=None):
        from shopfloor.data.tables import read_table
        from shopfloor.tasks.tabular.report import write_report

        self.refuse_truth(truth)
        frame = read_table(data) if data is not None and not isinstance(data, pd.DataFrame) else data
        source = None if data is None else "the data" if isinstance(data, pd.DataFrame) else str(data)
        return write_report(self, path, frame, source=source)

    def export_onnx(self, path, opset: int = 18):
        from shopfloor.tasks.tabular.export import export_onnx

        return export_onnx(self, path, opset)

    def onnx_parity(self, path, data) -> float:
        from shopfloor.data.tables import read_table
        from shopfloor.tasks.tabular.export import check_parity

        frame = data if isinstance(data, pd.DataFrame) else read_table(data).head(5000)
        return check_parity(self, path, frame)

    @classmethod
    def summary(cls, manifest: dict) -> dict:
        out = super().summary(manifest)
        saved = manifest.get("state", {})
        schema = saved.get("schema", {})
        out["inputs"] = {"numeric": schema.get("numeric", []), "dates": schema.get("dates", []),
                         "categorical": schema.get("categorical", {}), "ids": schema.get("ids", [])}
        out["outputs"] = {"kind": saved.get("kind"), "classes": saved.get("classes"), "thresholds": saved.get("thresholds")}
        features = schema.get("numeric", []) + schema.get("dates", []) + list(schema.get("categorical", {}))
        out["headline"] = f"{manifest['task']} ({saved.get('kind')})"
        out["lines"] = [f"targets: {manifest['params'].get('target')}", f"features: {', '.join(features)}"]
        return out

    # the service and the stream: a row (or a reading) carries the input columns; ids are echoed back
    @property
    def input_columns(self) -> list[str]:
        """The columns every row must carry (null for a missing reading), as RULModel's for every reading."""
        self._check_fitted()
        return list(self.schema_.features)

    @property
    def numeric_columns(self) -> list[str]:
        """The inputs that must be numbers: text there makes a stream message a dead letter."""
        self._check_fitted()
        return list(self.schema_.numeric)

    @property
    def risk_threshold(self) -> float:
        """The failure probability at and above which the model says failure: the line's alarm when none is set."""
        self._check_fitted()
        return float(self.thresholds_[0])

    def predict_records(self, rows: list[dict]) -> list[dict]:
        """One answer per row, with the row's id columns first (only the input columns are read)."""
        frame = pd.DataFrame.from_records(rows, columns=self.schema_.features)
        answers = self.predict(frame, source="the request").to_dict(orient="records")
        ids = self.schema_.ids
        if not ids:
            return answers
        return [{**{c: row[c] for c in ids if c in row}, **answer} for row, answer in zip(rows, answers, strict=True)]

    @classmethod
    def check_sizes(cls, manifest: dict, shapes: dict[str, tuple[int, ...]]) -> None:
        check_saved_sizes(manifest, shapes)

    def _restore(self, state: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.schema_ = TableSchema.from_json(state["schema"])
        self.architecture_ = {k: v for k, v in state["architecture"].items() if k != "members"}
        members = state["architecture"]["members"]
        self.net_ = self._load_net(lambda: self._build_net(self.architecture_, members), tensors)
        split = state.get("split") or {"kind": "random", "column": None}  # models saved before splits were chosen
        self.split_ = Split(split["kind"], split["column"])
        self.validated_rows_ = split.get("validated_rows", self.fingerprint_["rows"])
        self.baseline_codes_ = tensors["baseline_codes"]
        self.validation_outputs_ = tensors["validation.outputs"]
        self.validation_targets_ = tensors["validation.targets"]
        if self.kind_ == "regression":
            self.target_center_ = np.asarray(state["target_center"])
            self.target_scale_ = np.asarray(state["target_scale"])

