"""Process optimisation: recommend machine settings from production records.

How it goes:
1. the engineer declares the settings the optimiser may change (bounds, steps, choices), the
   fixed context (product type, material lot), one or more objectives and constraints;
2. one Gaussian process per measured output learns how the settings drive it (records beyond
   `max_records` are thinned, keeping the best ones);
3. `recommend()` maximises the predicted objective over settings that meet every constraint on
   the settings exactly and every constraint on an output with probability >= `confidence`,
   inside the trust region: no further than `trust_radius` (root-mean-square fraction of each
   setting's range) from a setting the plant has actually run;
4. `suggest_experiments()` proposes the next batch: constrained expected improvement (or UCB,
   or Thompson sampling), each pick added to the model as if its predicted result had been
   observed ("kriging believer"), which spreads the batch out. Experiments may step twice the
   trust radius from past runs, so that the history can grow toward a better region;
5. with several objectives, `pareto_front()` lists the best trade-offs and the recommendation is
   the balanced one (equal weights on each objective's range in the records).

This module fits the process models and gives the estimator's usual answers (predict, evaluate, explain, save
and load); the answers of steps 3 to 5 are in recommend.py (`SettingSearch`, which the optimiser inherits:
they read the models fitted here), the candidate pools and acquisition in search.py.
"""

from __future__ import annotations

import os
import time
from typing import Literal

import numpy as np
import pandas as pd
import torch

from shopfloor.artifacts import check_count, check_size, declared_size
from shopfloor.data.tables import column_name, did_you_mean
from shopfloor.errors import BadColumn, BadOption, BadTarget, ColumnMissing, NotAModel, warn
from shopfloor.tasks.base import Estimator, as_frame
from shopfloor.tasks.optimize.constraints import Constraint, parse_constraints
from shopfloor.tasks.optimize.gaussian_process import GaussianProcess
from shopfloor.tasks.optimize.recommend import INTERVAL_Z, SettingSearch
from shopfloor.tasks.optimize.settings import Setting, SettingSpace, build_space, parse_fixed
from shopfloor.tasks.optimize.surrogate import choose_records, fit_gaussian_process

MIN_RECORDS = 5


class ProcessOptimizer(SettingSearch, Estimator):
    """Recommend settings that maximise (or minimise) KPIs under constraints, from historical records."""

    task_name = "optimize"
    title = "process optimiser"
    described_as = "a process optimiser"
    accepts = "settings"
    edge_hooks = "shopfloor.tasks.optimize.edge"  # int8 export, robustness report: neither, and why
    fitted_attribute = "models_"

    def __init__(self, settings: list[str] = (), *, maximize: list[str] = (), minimize: list[str] = (),
                 fixed: dict[str, object] | None = None, constraints: list[str] = (),
                 trust_radius: float | None = 0.15, confidence: float = 0.9,
                 acquisition: Literal["ei", "ucb", "thompson"] = "ei", batch: int = 5,
                 max_records: int = 1000, seed: int = 0):
        self.settings = settings
        self.maximize = maximize
        self.minimize = minimize
        self.fixed = fixed
        self.constraints = constraints
        self.trust_radius = trust_radius
        self.confidence = confidence
        self.acquisition = acquisition
        self.batch = batch
        self.max_records = max_records
        self.seed = seed

    # -- fitting ----------------------------------------------------------------------
    @property
    def objectives(self) -> list[tuple[str, bool]]:
        """(column, maximised?) in the order given: maximised ones first."""
        return ([(column_name(c), True) for c in _listed(self.maximize)]
                + [(column_name(c), False) for c in _listed(self.minimize)])

    def fit(self, data: pd.DataFrame | str | os.PathLike) -> ProcessOptimizer:
        started = time.perf_counter()
        self._check_options()
        frame, source = as_frame(data)
        settings = [s if isinstance(s, Setting) else Setting.parse(s) for s in self.settings]
        fixed = parse_fixed([f"{k}={v}" for k, v in (self.fixed or {}).items()])
        space = build_space(settings, fixed, frame, source)
        constraints = parse_constraints(_listed(self.constraints))
        outputs = self._output_columns(space, constraints, frame, source)
        frame = _complete_rows(frame, [*space.names, *space.fixed, *outputs], source)

        inputs = space.encode(frame)
        values = torch.from_numpy(frame[outputs].to_numpy(np.float64, copy=True))
        objective_values = values[:, : len(self.objectives)].numpy()
        rows = torch.from_numpy(choose_records(objective_values, self.max_records, [up for _, up in self.objectives], self.seed))
        previous = getattr(self, "models_", None) or {}
        torch.manual_seed(self.seed)
        self.models_ = {}
        for j, column in enumerate(outputs):
            warm = previous.get(column)
            warm = warm if warm is not None and warm.inputs.shape[1] == inputs.shape[1] else None
            self.models_[column] = fit_gaussian_process(inputs[rows], values[rows, j], previous=warm, seed=self.seed)
        self.space_, self._context = space, None
        self.constraints_ = constraints
        self.outputs_ = outputs
        self.records_ = inputs[:, : space.setting_width].clone()
        self.validation_metrics_ = self._leave_one_out_metrics()
        self.fit_info_ = {"records": len(frame), "records_modelled": len(rows), "source": source,
                          "fit_seconds": round(time.perf_counter() - started, 3)}
        return self

    def _leave_one_out_metrics(self) -> dict[str, float]:
        """Per output: how well each modelled record is predicted by the model of all the others."""
        metrics = {}
        for column, gp in self.models_.items():
            mean, variance = gp.leave_one_out()
            truth = gp.center + gp.scale * gp.targets
            error = (mean - truth).numpy()
            spread = INTERVAL_Z * variance.sqrt()
            metrics[f"{column} rmse"] = float(np.sqrt(np.mean(error**2)))
            metrics[f"{column} mae"] = float(np.mean(np.abs(error)))
            metrics[f"{column} r2"] = float(1 - np.mean(error**2) / max(float(truth.var(unbiased=False)), 1e-300))
            metrics[f"{column} interval_coverage"] = float(((truth - mean).abs() <= spread).double().mean())
        return metrics

    def _check_options(self) -> None:
        if not self.objectives:
            raise BadOption("name what to optimise: --target COL with --maximize or --minimize (or maximize=[...] in Python)")
        if self.acquisition not in ("ei", "ucb", "thompson"):
            raise BadOption(f"acquisition '{self.acquisition}' is unknown; use ei, ucb or thompson")
        if not 0.5 <= self.confidence < 1:
            raise BadOption(f"confidence {self.confidence} must be at least 0.5 and below 1 (e.g. 0.9)")
        if self.trust_radius is not None and not self.trust_radius > 0:
            raise BadOption(f"trust radius {self.trust_radius} must be positive (or None to allow the whole range)")
        if int(self.batch) < 1:
            raise BadOption(f"batch {self.batch} must be at least 1")
        if int(self.max_records) < 50:
            raise BadOption(f"max_records {self.max_records} is too small; use at least 50")

    def _output_columns(self, space: SettingSpace, constraints: list[Constraint], frame: pd.DataFrame, source: str) -> list[str]:
        """Objectives, then every measured column a constraint names; all checked against the records."""
        known = set(space.names) | set(space.fixed)
        outputs = [c for c, _ in self.objectives]
        for constraint in constraints:
            outputs += sorted(constraint.names - known - set(outputs))
            unusable = [n for n in constraint.names if n in space.context_levels
                        or any(s.name == n and s.is_choice for s in space.settings)]
            if unusable:
                raise BadOption(f"constraint '{constraint.text}' does arithmetic on {unusable[0]!r}, which holds choices, "
                                "not numbers")
        for column in outputs:
            if column not in frame.columns:
                found = ", ".join(map(str, frame.columns))
                is_objective = column in [c for c, _ in self.objectives]
                what = f"objective '{column}'" if is_objective else f"a constraint names '{column}', but it"
                raise ColumnMissing(f"{what} is not a column of {source} (columns found: {found})"
                                    f"{did_you_mean(column, frame.columns)}")
            if not pd.api.types.is_numeric_dtype(frame[column]):
                raise BadColumn(f"'{column}' in {source} holds text (e.g. {frame[column].dropna().astype(str).iloc[0]!r}); "
                                f"objectives and constrained outputs must be numbers")
            if column in known:
                raise BadOption(f"'{column}' is a setting or fixed context, so it cannot also be an objective")
        return outputs

    # -- the usual estimator answers ----------------------------------------------------
    def predict(self, data: pd.DataFrame | str | os.PathLike) -> pd.DataFrame:
        """Predicted outputs (mean, low, high) at the settings in each row; fixed context from the row, else from `fixed`."""
        self._check_fitted()
        frame, source = as_frame(data)
        missing = [n for n in self.space_.names if n not in frame.columns]
        if missing:
            found = ", ".join(map(str, frame.columns))
            raise ColumnMissing(f"setting '{missing[0]}' is not a column of {source} (columns found: {found})"
                                f"{did_you_mean(missing[0], frame.columns)}")
        frame = frame.copy()
        for name, value in self.space_.fixed.items():
            if name not in frame.columns:
                frame[name] = value
        x = self.space_.encode(frame)
        with torch.no_grad():
            predictions = {c: m(x) for c, m in self.models_.items()}
            distance = self._distance(x[:, : self.space_.setting_width])
        table = {}
        for column, (mean, variance) in predictions.items():
            table[f"{column} predicted"] = mean
            table[f"{column} low"], table[f"{column} high"] = self._range(column, mean, variance)
        table["distance_to_data"] = distance
        return pd.DataFrame({k: v.numpy() for k, v in table.items()}, index=frame.index)

    def predict_file(self, source: str | os.PathLike, destination: str | os.PathLike, chunk_rows: int = 200_000) -> int:
        """Predicted outputs for every row of a settings file, the settings kept beside them; returns the row count."""
        from shopfloor.data.tables import TableWriter, iter_table

        rows = 0
        with TableWriter(destination) as writer:
            for chunk in iter_table(source, chunk_rows):
                predicted = self.predict(chunk.reset_index(drop=True))
                writer.write(pd.concat([chunk.reset_index(drop=True)[self.space_.names], predicted], axis=1))
                rows += len(chunk)
        return rows

    def evaluate(self, data: pd.DataFrame | str | os.PathLike, truth=None) -> dict[str, float]:
        """How well the process models predict records they did not see: RMSE, MAE and 90 % interval coverage per output."""
        self.refuse_truth(truth)
        frame, source = as_frame(data)
        frame = _complete_rows(frame, [c for c in self.outputs_ if c in frame.columns], source)
        predicted = self.predict(frame)
        metrics = {}
        for column in self.outputs_:
            if column not in frame.columns:
                continue
            y = frame[column].to_numpy(float)
            error = predicted[f"{column} predicted"].to_numpy() - y
            inside = (y >= predicted[f"{column} low"].to_numpy()) & (y <= predicted[f"{column} high"].to_numpy())
            metrics[f"{column} rmse"] = float(np.sqrt(np.mean(error**2)))
            metrics[f"{column} mae"] = float(np.mean(np.abs(error)))
            metrics[f"{column} interval_coverage"] = float(inside.mean())
        return metrics

    def explain(self, data=None, points: int = 25) -> pd.DataFrame:
        """Partial dependence: each output's average prediction as one setting moves over its range, the other
        settings as in the records."""
        return pd.concat([self.partial_dependence(s.name, points) for s in self.space_.settings], ignore_index=True)

    def partial_dependence(self, setting: str, points: int = 25, rows: int = 200) -> pd.DataFrame:
        self._check_fitted()
        index = {s.name: i for i, s in enumerate(self.space_.settings)}
        if setting not in index:
            raise BadOption(f"'{setting}' is not a setting of this optimiser (settings: {', '.join(index)})")
        s, part = self.space_.settings[index[setting]], self.space_.slices()[index[setting]]
        generator = torch.Generator().manual_seed(self.seed)
        base = self.records_[torch.randperm(len(self.records_), generator=generator)[:rows]]
        if s.is_choice:
            grid = torch.eye(s.width, dtype=torch.float64)
        else:
            grid = torch.linspace(0, 1, points, dtype=torch.float64)[:, None]
        labels = list(s.choices) if s.is_choice else (s.low + grid[:, 0] * (s.high - s.low)).tolist()
        out = []
        for label, value in zip(labels, grid, strict=True):
            moved = base.clone()
            moved[:, part] = value
            with torch.no_grad():
                predictions = self._predict_encoded(moved)
            out.append({"setting": setting, "value": label, **{c: float(m.mean()) for c, (m, _) in predictions.items()}})
        return pd.DataFrame(out)

    # -- persistence -----------------------------------------------------------------
    # manifest key -> attribute: the fitted values that are JSON as they are (`_state` converts the rest)
    saved_state = {"outputs": "outputs_", "fit": "fit_info_"}

    def _state(self) -> dict:
        return {"space": self.space_.to_json()}

    def _tensors(self) -> dict[str, torch.Tensor]:
        tensors = {"records": self.records_.contiguous()}
        for j, column in enumerate(self.outputs_):
            tensors.update({f"gp{j}.{k}": v.contiguous() for k, v in self.models_[column].state_dict().items()})
        return tensors

    MAX_BATCH = 1000  # experiments proposed at once: no weight sizes it

    # -- the faces: report, the service, info ------------------------------------------------
    def predict_records(self, rows: list[dict]) -> list[dict]:
        """Predicted outputs (mean and range) at each row's settings."""
        return self.predict(pd.DataFrame.from_records(rows)).to_dict(orient="records")

    def write_report(self, path, data=None, truth=None):
        from shopfloor.tasks.optimize.report import write_report

        self.refuse_truth(truth)
        return write_report(self, path)

    def export_onnx(self, path, opset: int = 18):
        raise self._unsupported("ONNX export", "it answers by searching its records' models, which runs where the "
                                "records are; use 'shopfloor predict' for its predictions at given settings")

    def onnx_parity(self, path, data) -> float:
        return self.export_onnx(path)

    @classmethod
    def summary(cls, manifest: dict) -> dict:
        out = super().summary(manifest)
        state, params = manifest.get("state", {}), manifest.get("params", {})
        space = state.get("space", {})
        out["inputs"] = {"settings": space.get("settings"), "fixed": space.get("fixed")}
        out["outputs"] = {"columns": state.get("outputs")}
        goals = [f"maximize {c}" for c in params["maximize"]] + [f"minimize {c}" for c in params["minimize"]]
        out["headline"] = "process optimiser"
        out["lines"] = [f"{', '.join(goals)}; constraints: {'; '.join(params['constraints']) or 'none'}",
                        f"settings: {', '.join(space['settings'])}; fixed: {space['fixed'] or 'none'}; "
                        f"{state['fit']['records']} records"]
        return out

    @classmethod
    def check_sizes(cls, manifest: dict, shapes: dict[str, tuple[int, ...]]) -> None:
        try:
            cls(**manifest["params"])._check_options()
        except BadOption as err:
            raise NotAModel(f"the manifest's params are out of bounds: {err} (the folder was damaged or edited)") from None
        declared_size(manifest, "params.batch", limit=cls.MAX_BATCH)
        outputs = manifest.get("state", {}).get("outputs") or []
        check_count("state.outputs (their number)", len(outputs), shapes, r"gp\d+\.inputs")
        try:
            space = SettingSpace.from_json(manifest["state"]["space"])
            context = len(space.context_ranges) + sum(len(levels) for levels in space.context_levels.values())
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise NotAModel(f"the manifest's state.space is not a setting space ({err}); the folder was damaged or "
                            "edited") from None
        records = (shapes.get("records") or (0, 0))[-1]
        check_size("the width of the encoded settings", space.setting_width, shapes, "records", 1)
        for j in range(len(outputs)):  # each output's model sees the settings and the fixed context
            check_size(f"the width of records ({records}) and fixed context ({context})", records + context, shapes,
                       f"gp{j}.inputs", 1)

    def _restore(self, state: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.space_, self._context = SettingSpace.from_json(state["space"]), None
        self.constraints_ = parse_constraints(_listed(self.constraints))
        self.outputs_ = list(self.outputs_)
        self.records_ = tensors["records"].to(torch.float64)
        self.models_ = {}
        for j, column in enumerate(self.outputs_):
            prefix = f"gp{j}."
            part = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            gp = GaussianProcess(part["inputs"].shape[1], part["inputs"].shape[0])
            gp.load_state_dict(part)
            self.models_[column] = gp.refresh()


def _listed(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _complete_rows(frame: pd.DataFrame, columns: list[str], source: str) -> pd.DataFrame:
    incomplete = frame[columns].isna().any(axis=1)
    if incomplete.any():
        warn(f"{int(incomplete.sum())} records of {source} miss a setting or output value and are left out")
        frame = frame.loc[~incomplete].reset_index(drop=True)
    if len(frame) < MIN_RECORDS:
        raise BadTarget(f"{source} has only {len(frame)} complete records; the optimiser needs at least {MIN_RECORDS}")
    return frame
