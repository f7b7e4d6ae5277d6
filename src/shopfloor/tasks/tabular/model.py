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

Length: one estimator (fit, calibration, predict, explain, save and load) that shares its fitted state
throughout; the per-task package of issue 15 gives the checks of inputs and of saved sizes modules of
their own.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from shopfloor.artifacts import check_count, check_size, declared_size
from shopfloor.crossval import Folds, Split, choose_split, fold_indices, holdout_folds, stratification_labels
from shopfloor.data.tables import column_names, iter_table
from shopfloor.data.targets import encode_labels, rows_with_targets, target_kind
from shopfloor.data.times import check_date_order
from shopfloor.errors import BadColumn, BadOption, BadTarget, ColumnMissing
from shopfloor.explain import integrated_gradients
from shopfloor.metrics import (
    best_threshold,
    binary_metrics,
    fit_platt,
    fit_temperature,
    multiclass_metrics,
    regression_metrics,
)
from shopfloor.tasks.base import Estimator, as_frame
from shopfloor.tasks.tabular.leaks import warn_target_leaks
from shopfloor.tasks.tabular.network import TabularNet, merge_members
from shopfloor.tasks.tabular.schema import TableSchema, infer_schema, report_extra_columns
from shopfloor.training import TrainConfig, fit_module, seed_everything

STORED_VALIDATION_ROWS = 20_000
IMPORTANCE_ROWS = 500
SMALL_TABLE_ROWS, SMALL_TABLE_BAGS = 5_000, 8
PREDICT_BATCH = 2_048  # rows per forward pass: the activations stay in cache (8,192 was half as fast)


class TabularModel(Estimator):
    """Predict failures (yes/no, failure mode, several failure modes at once) or a KPI from a table."""

    task_name = "tabular"
    title = "failure / KPI"
    described_as = "a table model"
    accepts = "rows"
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
        if np.isinf(numbers).any():
            position, column = (int(i[0]) for i in np.nonzero(np.isinf(numbers)))
            name = self.schema_.numeric_inputs[column]
            raise BadColumn(f"row {position + 1} of {source}: '{name}' is {_shown(frame[name].iloc[position])}, which is not "
                            "a reading (infinite, or beyond the float range); correct it or leave the cell empty")
        y = self._standardise(encode_labels(frame, self.targets, self.kind_, self.classes_))
        warn_target_leaks(numbers, codes, y, self.kind_, self.schema_.features, self.targets, self.classes_, self.seed)
        seed_everything(self.seed)

        numbers_t, codes_t, y_t = torch.from_numpy(numbers), torch.from_numpy(codes), torch.tensor(y)
        template = self._fitted_template(numbers_t, y)
        nets, out_of_fold = [], torch.zeros((len(frame), template.head.weight.shape[-1]))
        held_out = np.zeros(len(frame), dtype=bool)  # rows with an out-of-fold prediction
        self.training_log_ = []
        folds = holdout_folds(frame, self.split_, self.bags_, self._strata(y), self.seed,
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
        self.baseline_codes_ = torch.from_numpy(np.array(
            [int(np.bincount(codes[:, j]).argmax()) for j in range(codes.shape[1])], dtype=np.int64))
        self.importance_ = self._global_importance(numbers, codes)
        self.fingerprint_ = {"rows": int(len(frame)), "columns": list(map(str, frame.columns)),
                             "sha256": _frame_digest(frame)}
        self.train_seconds_ = time.perf_counter() - started
        return self

    def _fitted_template(self, numbers: torch.Tensor, y: np.ndarray) -> TabularNet:
        """A net whose preprocessing statistics and bin edges are fitted; every bag copies them."""
        self.architecture_ = self._architecture(numbers.numpy())
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
        result = fit_module(net, self._loss, train, valid, config, score_fn=self._ranking_score if ranks else None)
        self.training_log_.append({"bag": bag, "best_epoch": result.best_epoch,
                                   "epochs": result.epochs_run, "valid_score": result.best_loss})
        return net

    def _check_options(self) -> None:
        if not self.targets:
            raise BadOption("name at least one target column")
        if self.task not in ("auto", "classification", "regression"):
            raise BadOption(f"task must be auto, classification or regression, not '{self.task}'")
        if (self.bags is not None and self.bags < 1) or self.members < 1:
            raise BadOption(f"bags and members must be at least 1, not bags={self.bags}, members={self.members}")
        if self.max_epochs < 1:
            raise BadOption(f"max_epochs must be at least 1, not {self.max_epochs}: a model that never trained "
                            "would predict noise")
        if self.patience < 1 or self.batch_size < 1 or not self.lr > 0:
            raise BadOption("patience and batch_size must be at least 1 and lr positive")
        for name in ("miss_cost", "false_alarm_cost"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise BadOption(f"{name} must be a positive number, not {value}")
        if not 0 < self.interval_coverage < 1:
            raise BadOption("interval_coverage must be between 0 and 1")
        check_date_order(self.date_order)

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

    def _strata(self, y: np.ndarray) -> np.ndarray | None:
        if self.kind_ == "regression":
            return None
        labels = y if self.kind_ == "multiclass" else (y * (2 ** np.arange(y.shape[1]))).sum(1).astype(int)
        counts = np.bincount(labels)
        folds = max(self.bags_, 5)
        if (counts[labels] < folds).any():  # rare label combinations: stratify on 'any failure'
            labels = np.where(counts[labels] < folds, -1, labels)
            labels = np.unique(labels, return_inverse=True)[1]
            if (np.bincount(labels) < folds).any():
                return None
        return labels

    def _architecture(self, numbers: np.ndarray) -> dict:
        """The shape of the network for these training numbers (saved in the manifest)."""
        with np.errstate(invalid="ignore"):
            minimum = np.nanmin(numbers, axis=0) if len(numbers) else np.zeros(numbers.shape[1])
            levels = [len(np.unique(c[~np.isnan(c)])) for c in numbers.T]
        return {
            "n_outputs": len(self.classes_[0]) if self.kind_ == "multiclass" else len(self.targets),
            "n_numeric": int(numbers.shape[1]),
            "log_index": [j for j in range(numbers.shape[1]) if minimum[j] >= 0 and levels[j] > 2],
            "missing_index": [j for j in range(numbers.shape[1]) if np.isnan(numbers[:, j]).any()],
            "pairs": 1 < numbers.shape[1] <= self.interactions,
        }

    def _build_net(self, architecture: dict, members: int) -> TabularNet:
        return TabularNet(kind=self.kind_, n_outputs=architecture["n_outputs"], n_numeric=architecture["n_numeric"],
                          log_index=architecture["log_index"], missing_index=architecture["missing_index"],
                          pairs=architecture["pairs"], category_sizes=[len(v) for v in self.schema_.categorical.values()],
                          members=members, hidden=self.hidden, depth=self.depth, dropout=self.dropout,
                          n_bins=self.n_bins, d_embedding=self.d_embedding)

    def _loss(self, net: TabularNet, numbers: torch.Tensor, codes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = net.member_logits(numbers, codes)  # [k, batch, outputs]: every member learns on its own
        if self.kind_ == "binary":
            return F.binary_cross_entropy_with_logits(z, y.expand_as(z))
        if self.kind_ == "multiclass":
            return F.cross_entropy(z.flatten(0, 1), y.repeat(z.shape[0]))
        return F.mse_loss(z, y.expand_as(z))

    @staticmethod
    def _ranking_score(net: TabularNet, numbers: torch.Tensor, codes: torch.Tensor, y: torch.Tensor) -> float:
        """Minus the mean average precision of the labels: insensitive to overconfidence on random failures."""
        from sklearn.metrics import average_precision_score

        z = net.member_logits(numbers, codes).mean(0).numpy()
        y = y.numpy()
        scores = [average_precision_score(y[:, j], z[:, j]) for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
        return -float(np.mean(scores)) if scores else 0.0

    def _calibrate(self, logits: np.ndarray, y: np.ndarray) -> None:
        """Fit the output calibration into the net, then thresholds or intervals on its outputs."""
        scale, shift = np.ones(logits.shape[1]), np.zeros(logits.shape[1])
        if self.kind_ == "binary":
            for j in range(logits.shape[1]):
                scale[j], shift[j] = fit_platt(logits[:, j], y[:, j])
        elif self.kind_ == "multiclass":
            scale[:] = 1 / fit_temperature(logits, y)
        else:
            scale, shift = self.target_scale_, self.target_center_
        self.net_.output_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
        self.net_.output_shift.copy_(torch.as_tensor(shift, dtype=torch.float32))
        outputs = self._calibrated(logits)
        self.thresholds_ = [best_threshold(y[:, j], outputs[:, j], self.miss_cost, self.false_alarm_cost)
                            for j in range(outputs.shape[1])] if self.kind_ == "binary" else []
        self.interval_halfwidth_ = []
        if self.kind_ == "regression":
            residual = np.abs(outputs - self._in_target_units(y))  # out-of-fold
            level = min(1.0, np.ceil((len(y) + 1) * self.interval_coverage) / len(y))  # split conformal
            self.interval_halfwidth_ = np.quantile(residual, level, axis=0).tolist()

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
        with torch.inference_mode():
            parts = [self.net_(torch.from_numpy(numbers[s:s + PREDICT_BATCH]), torch.from_numpy(codes[s:s + PREDICT_BATCH]))
                     for s in range(0, len(numbers), PREDICT_BATCH)]
        return torch.cat(parts).numpy()

    def _prepare(self, data, source: str | None = None, row_offset: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        self._check_fitted()
        frame, name = as_frame(data)
        source = source or name
        self.schema_.check_columns(frame, source)
        numbers, codes = self.schema_.to_arrays(frame, row_offset, self.date_order)
        self._check_readings(frame, numbers, source, row_offset)
        return frame, numbers, codes

    def _check_readings(self, frame: pd.DataFrame, numbers: np.ndarray, source: str, row_offset: int) -> None:
        """Infinity, or a number beyond the float range or far outside training, is refused with its row and
        column: the network holds such a value at a bound, and an answer from it would look like any other."""
        low, high = (b.numpy() for b in self.net_.preprocess.reading_bounds())
        with np.errstate(invalid="ignore"):
            bad = ~np.isnan(numbers) & ((numbers < low) | (numbers > high))
        if not bad.any():
            return
        position, column = (int(i[0]) for i in np.nonzero(bad))
        name = self.schema_.numeric_inputs[column]
        center = float(self.net_.preprocess.center[column])
        raise BadColumn(f"row {row_offset + position + 1} of {source}: '{name}' is {_shown(frame[name].iloc[position])}, "
                        f"not a plausible reading (training values centre on {center:.4g}; this model takes "
                        f"{float(low[column]):.4g} to {float(high[column]):.4g}); correct it, or leave the cell empty "
                        f"to treat it as missing ({int(bad.any(axis=1).sum())} such row(s))")

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
        if self.kind_ == "binary":
            return outputs >= np.asarray(self.thresholds_)[None, :]
        if self.kind_ == "multiclass":
            return outputs.argmax(1)
        return outputs

    def _kept_columns(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The id, date and time/run columns as they came: results join back to the rows by them, not by row order
        (a numeric time such as operating hours is kept too when validation ran in its order or by its runs)."""
        kept = self.schema_.ids + self.schema_.dates
        if self.split_.column is not None and self.split_.column not in kept:
            kept = [*kept, self.split_.column]
        return {c: frame[c].to_numpy() for c in kept if c in frame.columns}

    def _prediction_table(self, frame: pd.DataFrame, outputs: np.ndarray) -> pd.DataFrame:
        table = self._kept_columns(frame)
        decisions = self._decisions(outputs)
        if self.kind_ == "binary":
            for j, (name, classes) in enumerate(zip(self.targets, self.classes_, strict=True)):
                table[f"{name} probability"] = outputs[:, j]
                table[f"{name} predicted"] = np.where(decisions[:, j], classes[1], classes[0])
        elif self.kind_ == "multiclass":
            name, classes = self.targets[0], self.classes_[0]
            for i, level in enumerate(classes):
                table[f"{name} probability {level}"] = outputs[:, i]
            table[f"{name} predicted"] = np.asarray(classes, dtype=object)[decisions]
            table[f"{name} predicted"] = pd.Series(table[f"{name} predicted"]).infer_objects().to_numpy()
        else:
            for j, name in enumerate(self.targets):
                table[f"{name} predicted"] = outputs[:, j]
                table[f"{name} low"] = outputs[:, j] - self.interval_halfwidth_[j]
                table[f"{name} high"] = outputs[:, j] + self.interval_halfwidth_[j]
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
        if self.kind_ == "binary":
            decisions = self._decisions(outputs)
            per_label = [binary_metrics(y[:, j], outputs[:, j], decisions[:, j]) for j in range(y.shape[1])]
            if len(per_label) == 1:
                return per_label[0]
            result = {k: float(np.mean([m[k] for m in per_label])) for k in per_label[0]}
            for name, m in zip(self.targets, per_label, strict=True):
                result.update({f"{name} {k}": v for k, v in m.items() if k in ("f1", "pr_auc", "recall", "precision")})
            return result
        if self.kind_ == "multiclass":
            return multiclass_metrics(np.asarray(y), outputs, outputs.argmax(1))
        per_target = [regression_metrics(y[:, j], outputs[:, j]) for j in range(y.shape[1])]
        if len(per_target) == 1:
            result = per_target[0]
            result["interval_coverage"] = float(np.mean(np.abs(y[:, 0] - outputs[:, 0]) <= self.interval_halfwidth_[0])) \
                if self.interval_halfwidth_ else float("nan")
            return result
        result = {k: float(np.mean([m[k] for m in per_target])) for k in per_target[0]}
        for name, m in zip(self.targets, per_target, strict=True):
            result.update({f"{name} {k}": v for k, v in m.items()})
        return result

    def explain(self, data, steps: int = 32) -> pd.DataFrame:
        """Per-row attributions (integrated gradients) of every feature column.

        Explained output: the probability of the positive class (yes/no), of the predicted
        class (multiclass), or the predicted value (regression; first target, then each label
        for several yes/no targets). Each row's attributions add up to its prediction minus
        the baseline prediction for a typical row (column 'baseline'). Id and date columns are
        kept as they came; a date's own attribution is then '<date> attribution'.
        """
        frame, numbers, codes = self._prepare(data)
        outputs = self._outputs(numbers, codes)
        table = self._kept_columns(frame)
        labels = range(outputs.shape[1]) if self.kind_ != "multiclass" else [None]
        for j in labels:
            chosen = outputs.argmax(1) if j is None else np.full(len(frame), j)
            num_attr, cat_attr = integrated_gradients(self.net_, torch.from_numpy(numbers), torch.from_numpy(codes),
                                                      self.baseline_codes_, torch.from_numpy(chosen), steps)
            prefix = "" if len(labels) == 1 else f"{self.targets[j]}: "
            table[f"{prefix}prediction"] = outputs[np.arange(len(frame)), chosen]
            attributions = np.concatenate([num_attr.numpy(), cat_attr.numpy()], axis=1)
            table[f"{prefix}baseline"] = table[f"{prefix}prediction"] - attributions.sum(1)
            for k, feature in enumerate(self.schema_.features):
                name = f"{prefix}{feature}"
                table[f"{name} attribution" if name in table else name] = attributions[:, k]
        return pd.DataFrame(table, index=frame.index)

    def _global_importance(self, numbers: np.ndarray, codes: np.ndarray) -> dict[str, float]:
        """Mean |attribution| per feature over a sample of training rows, largest first."""
        rows = np.random.default_rng(self.seed).permutation(len(numbers))[:IMPORTANCE_ROWS]
        outputs = self._outputs(numbers[rows], codes[rows])
        chosen = outputs.argmax(1) if self.kind_ == "multiclass" else np.zeros(len(rows), dtype=np.int64)
        num_attr, cat_attr = integrated_gradients(self.net_, torch.from_numpy(numbers[rows]),
                                                  torch.from_numpy(codes[rows]), self.baseline_codes_,
                                                  torch.from_numpy(chosen), steps=16)
        scores = np.abs(np.concatenate([num_attr.numpy(), cat_attr.numpy()], axis=1)).mean(0)
        ranked = sorted(zip(self.schema_.features, scores.tolist(), strict=True), key=lambda kv: -kv[1])
        return dict(ranked)

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

    @classmethod
    def check_sizes(cls, manifest: dict, shapes: dict[str, tuple[int, ...]]) -> None:
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


def bin_edges(features: np.ndarray, y: np.ndarray, n_bins: int, kind: str) -> list[list[float]]:
    """Target-aware bin edges per feature: the split points of a shallow decision tree.

    Edges are fitted on all training rows, the cross-fitting folds included; a tree of at
    most `n_bins` leaves per feature is too small to carry more than a trace of the labels.
    """
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    tree_class = DecisionTreeRegressor if kind == "regression" else DecisionTreeClassifier
    min_leaf = max(3, len(features) // (40 * n_bins))
    edges = []
    for column in features.T:
        tree = tree_class(max_leaf_nodes=n_bins, min_samples_leaf=min_leaf, random_state=0)
        tree.fit(column[:, None], y)
        splits = tree.tree_.threshold[tree.tree_.feature >= 0]
        low, high = float(column.min()), float(column.max())
        inner = sorted(float(t) for t in np.unique(splits) if low < t < high)
        edges.append([low, *inner, high] if high > low else [low, low + 1.0])
    return edges


def _frame_digest(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def _shown(value) -> str:
    """A cell as a person wrote it: 1e+308, inf, 'text' (not np.float64(1e+308))."""
    return repr(value.item() if hasattr(value, "item") else value)
