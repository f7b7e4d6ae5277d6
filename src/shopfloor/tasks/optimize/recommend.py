"""How a fitted process optimiser answers an engineer: the settings to run (`recommend`), the next experiments
(`suggest_experiments`), the best trade-offs between objectives (`pareto_front`), all three at once (`optimize`),
and any settings in plant units with their predicted outputs (`describe`).

Every answer is a search over candidate settings (`search.py`: pools, L-BFGS-B polish, acquisition) scored with
what the fitted process models say about a candidate: its predicted outputs, its chance of meeting the output
constraints, whether it meets the constraints on settings and lies inside the trust region. `SettingSearch`
holds those steps for `ProcessOptimizer` (model.py), which fits the models they read: `models_` (one Gaussian
process per output), `space_` (the encoded setting space), `records_` (the settings the plant has run) and
`constraints_`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from shopfloor.data.targets import plain
from shopfloor.errors import BadOption, Infeasible
from shopfloor.tasks.optimize.constraints import Constraint
from shopfloor.tasks.optimize.gaussian_process import GaussianProcess
from shopfloor.tasks.optimize.search import (
    best_of,
    candidate_pool,
    column_weights,
    distance_to_data,
    log_expected_improvement,
    nondominated,
)

INTERVAL_Z = 1.6448536269514722  # 90 % two-sided
POOL_GLOBAL, POOL_LOCAL = 2048, 512
MONTE_CARLO = 256  # draws for constraints that combine outputs with arithmetic
UCB_BETA = 2.0
INFEASIBLE_PENALTY = 50.0
PARETO_WEIGHTS = 8
POLISH_STARTS, POLISH_RECORDS = 6, 1000
# Experiments may go this many trust radii from past runs: the history then grows toward better regions
# round by round. With 1 (experiments held to the trust radius) the SnAr benchmark stalled on one seed of 10
# at regret 84 (the optimum lies 0.33 of a setting's range outside the records); with 2 it reached 0.005.
EXPERIMENT_REACH = 2.0


class SettingSearch:
    """The answers of a fitted `ProcessOptimizer` (its parameters and fitted state are read from `self`)."""

    # -- what the model says about candidate settings ----------------------------------
    @property
    def known_constraints(self) -> list[Constraint]:
        """Constraints on the settings and fixed context only: checked exactly."""
        names = set(self.space_.names) | set(self.space_.fixed)
        return [c for c in self.constraints_ if c.names <= names]

    @property
    def output_constraints(self) -> list[Constraint]:
        """Constraints that name a measured output: met with a probability."""
        names = set(self.space_.names) | set(self.space_.fixed)
        return [c for c in self.constraints_ if not c.names <= names]

    def _inputs(self, encoded: torch.Tensor) -> torch.Tensor:
        if getattr(self, "_context", None) is None:
            self._context = self.space_.context_row()
        return torch.cat([encoded, self._context.expand(len(encoded), -1)], dim=1)

    def _settings_columns(self, encoded: torch.Tensor) -> dict[str, torch.Tensor]:
        """Numeric settings (plant units, differentiable) and numeric fixed context, for constraint arithmetic."""
        columns = {}
        for s, part in zip(self.space_.settings, self.space_.slices(), strict=True):
            if not s.is_choice:
                columns[s.name] = s.low + encoded[:, part.start] * (s.high - s.low)
        for name in self.space_.context_ranges:
            columns[name] = torch.full((len(encoded),), float(self.space_.fixed[name]), dtype=torch.float64)
        return columns

    def _known_violation(self, encoded: torch.Tensor) -> torch.Tensor:
        columns = self._settings_columns(encoded)
        total = torch.zeros(len(encoded), dtype=torch.float64)
        for constraint in self.known_constraints:
            total = total + constraint(columns).clamp_min(0)
        return total

    def _allowed(self, encoded: torch.Tensor, trust: bool = True, reach: float = 1.0) -> torch.Tensor:
        """Settings that meet the constraints on settings and lie within `reach` trust radii of a past run."""
        with torch.no_grad():
            ok = self._known_violation(encoded) <= 1e-9
            if trust and self.trust_radius is not None:
                ok &= self._distance(encoded) <= reach * self.trust_radius
        return ok

    def _distance(self, encoded: torch.Tensor) -> torch.Tensor:
        """Distance from each encoded setting to the nearest past run (see `distance_to_data`)."""
        return distance_to_data(encoded, self.records_, column_weights(self.space_))

    def _range(self, column: str, mean: torch.Tensor, variance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Low and high of the 90 % range of a single run: the model's uncertainty plus the measurement noise."""
        spread = INTERVAL_Z * (variance + self.models_[column].noise_variance).sqrt()
        return mean - spread, mean + spread

    def _experiment_allowed(self, encoded: torch.Tensor) -> torch.Tensor:
        return self._allowed(encoded, reach=EXPERIMENT_REACH)

    def _log_feasible(self, encoded: torch.Tensor, predictions: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """log P(every output constraint is met) under the models (constraints taken as independent)."""
        total = torch.zeros(len(encoded), dtype=torch.float64)
        for constraint in self.output_constraints:
            if constraint.bound is not None and constraint.bound[0] in predictions:
                column, sense, bound = constraint.bound
                mean, variance = predictions[column]
                z = (bound - mean) / variance.sqrt()
                total = total + torch.special.log_ndtr(z if sense == "<=" else -z)
            else:
                generator = torch.Generator().manual_seed(self.seed)
                columns = self._settings_columns(encoded)
                for column in constraint.names & set(predictions):
                    mean, variance = predictions[column]
                    z = torch.randn((MONTE_CARLO, 1), generator=generator, dtype=torch.float64)
                    columns[column] = mean[None] + variance.sqrt()[None] * z
                met = (constraint(columns) <= 0).double().mean(0)
                total = total + torch.log(met.clamp_min(0.5 / MONTE_CARLO))
        return total

    def _standardised(self, predictions: dict, column: str, up: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """An objective's mean and sd on the model's standard scale, higher = better."""
        gp = self.models_[column]
        mean, variance = predictions[column]
        sign = 1.0 if up else -1.0
        return sign * (mean - gp.center) / gp.scale, variance.sqrt() / gp.scale

    def _predict_encoded(self, encoded: torch.Tensor, models: dict[str, GaussianProcess] | None = None) -> dict:
        x = self._inputs(encoded)
        return {c: m(x) for c, m in (models or self.models_).items()}

    # -- scores ----------------------------------------------------------------------
    def _objective_score(self, weights: torch.Tensor | None = None):
        """Predicted objective (one objective) or balanced trade-off (several), penalised below the confidence level."""
        log_confidence = math.log(self.confidence)
        reference = self._objective_reference() if len(self.objectives) > 1 else None

        def score(encoded: torch.Tensor) -> torch.Tensor:
            predictions = self._predict_encoded(encoded)
            value = self._scalarised(predictions, reference, weights, optimism=0.0)
            shortfall = (log_confidence - self._log_feasible(encoded, predictions)).clamp_min(0)
            return value - INFEASIBLE_PENALTY * shortfall

        return score

    def _scalarised(self, predictions: dict, reference, weights, optimism: float) -> torch.Tensor:
        parts = []
        for column, up in self.objectives:
            mean, sd = self._standardised(predictions, column, up)
            parts.append(mean + optimism * sd)
        if len(parts) == 1:
            return parts[0]
        low, high = reference
        normalised = (torch.stack(parts, dim=1) - low) / (high - low)
        weights = weights if weights is not None else torch.full((len(parts),), 1.0 / len(parts), dtype=torch.float64)
        weighted = normalised * weights
        return weighted.min(1).values + 0.05 * weighted.sum(1)  # augmented Chebyshev: every point it picks is Pareto-optimal

    def _objective_reference(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Worst and best predicted value of each objective over the records (the trade-off's scale)."""
        with torch.no_grad():
            predictions = self._predict_encoded(self.records_)
            values = torch.stack([self._standardised(predictions, c, up)[0] for c, up in self.objectives], dim=1)
        low, high = values.min(0).values, values.max(0).values
        return low, torch.maximum(high, low + 1e-6)

    def _acquisition(self, models: dict[str, GaussianProcess], weights: torch.Tensor | None):
        if len(self.objectives) > 1 or self.acquisition == "ucb":
            reference = self._objective_reference() if len(self.objectives) > 1 else None

            def ucb(encoded: torch.Tensor) -> torch.Tensor:
                predictions = self._predict_encoded(encoded, models)
                return self._scalarised(predictions, reference, weights, UCB_BETA) + self._log_feasible(encoded, predictions)

            return ucb
        column, up = self.objectives[0]
        best = self._incumbent(models)

        def expected_improvement(encoded: torch.Tensor) -> torch.Tensor:
            predictions = self._predict_encoded(encoded, models)
            log_feasible = self._log_feasible(encoded, predictions)
            if best is None:  # nothing feasible yet: look for the feasible region first
                return log_feasible
            mean, sd = self._standardised(predictions, column, up)
            return log_expected_improvement(mean, sd.clamp_min(1e-9), best) + log_feasible

        return expected_improvement

    def _incumbent(self, models: dict[str, GaussianProcess]) -> float | None:
        """Best predicted objective over the records that meet the constraints (a noise-robust 'best so far')."""
        column, up = self.objectives[0]
        gp = models[column]
        encoded = gp.inputs[:, : self.space_.setting_width]
        with torch.no_grad():
            predictions = self._predict_encoded(encoded, models)
            mean, _ = self._standardised(predictions, column, up)
            ok = (self._log_feasible(encoded, predictions) >= math.log(0.5)) & (self._known_violation(encoded) <= 1e-9)
        return float(mean[ok].max()) if ok.any() else None

    @property
    def _polish_starts(self) -> int:
        """Candidates polished by L-BFGS-B per search: fewer on long histories, where each prediction costs O(n^2)."""
        return POLISH_STARTS if self.fit_info_["records_modelled"] <= POLISH_RECORDS else POLISH_STARTS // 2

    def _pool(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return candidate_pool(self.space_, anchors, POOL_GLOBAL, POOL_LOCAL, generator)

    def _anchors(self, score, count: int = 8) -> torch.Tensor:
        """The best-scoring records: where small moves are tried."""
        records = self.records_
        if len(records) > 4096:
            records = records[torch.randperm(len(records), generator=torch.Generator().manual_seed(self.seed))[:4096]]
        with torch.no_grad():
            values = score(records)
        return records[torch.argsort(values, descending=True)[:count]]

    # -- answers ---------------------------------------------------------------------
    def recommend(self) -> dict:
        """The settings with the best predicted objective that meet the constraints, inside the trust region."""
        self._check_fitted()
        generator = torch.Generator().manual_seed(self.seed)
        score = self._objective_score()
        pool = self._pool(self._anchors(score), generator)
        self._check_feasible_settings(pool)
        best, _ = best_of(score, self._allowed, self.space_, pool, polish=self._polish_starts)
        answer = self.describe(best[None])[0]
        if answer["probability_feasible"] < self.confidence - 1e-6:
            self._raise_infeasible()
        return answer

    def _check_feasible_settings(self, pool: torch.Tensor) -> None:
        """Say so, with the nearest miss, when no setting meets the constraints on settings inside the trust region."""
        if self._allowed(pool).any():
            return
        inside_bounds = self._allowed(pool, trust=False)
        if inside_bounds.any():
            distances = self._distance(pool[inside_bounds])
            nearest = self.describe(pool[inside_bounds][distances.argmin()][None])[0]
            raise Infeasible(f"no settings within the trust radius {self.trust_radius} of the records meet "
                             f"{'; '.join(c.text for c in self.known_constraints)}; the closest that does is "
                             f"{_settings_text(nearest['settings'])} at distance {nearest['distance_to_data']:.3f}: "
                             f"widen the trust radius to reach it", closest=nearest)
        violation = self._known_violation(pool)
        nearest = self.describe(pool[violation.argmin()][None])[0]
        raise Infeasible(f"no settings inside the bounds meet {'; '.join(c.text for c in self.known_constraints)}; "
                         f"the closest is {_settings_text(nearest['settings'])} (off by {float(violation.min()):.4g})",
                         closest=nearest)

    def _raise_infeasible(self) -> None:
        """No setting meets the output constraints confidently: say so, with the setting predicted to come closest."""
        generator = torch.Generator().manual_seed(self.seed + 1)
        closest_x, _ = best_of(self._nearness, self._allowed, self.space_, self._pool(self._anchors(self._nearness), generator))
        closest = self.describe(closest_x[None])[0]
        outputs = ", ".join(f"{c} {p['mean']:.4g} ({p['low']:.4g} to {p['high']:.4g})" for c, p in closest["predicted"].items())
        raise Infeasible(f"no settings inside the bounds and trust region are predicted to meet "
                         f"{'; '.join(c.text for c in self.output_constraints)} with {self.confidence:.0%} confidence; the "
                         f"closest is {_settings_text(closest['settings'])} (predicted {outputs}; chance "
                         f"{closest['probability_feasible']:.0%})", closest=closest)

    def _nearness(self, encoded: torch.Tensor) -> torch.Tensor:
        """Minus how far the predicted outputs miss the output constraints (each miss in units of the output's spread)."""
        predictions = self._predict_encoded(encoded)
        columns = {**self._settings_columns(encoded), **{c: mean for c, (mean, _) in predictions.items()}}
        miss = torch.zeros(len(encoded), dtype=torch.float64)
        for constraint in self.output_constraints:
            scale = self.models_[constraint.bound[0]].scale if constraint.bound and constraint.bound[0] in self.models_ else 1.0
            miss = miss + constraint(columns).clamp_min(0) / scale
        return -miss

    def suggest_experiments(self, batch: int | None = None) -> list[dict]:
        """The next `batch` runs that would teach the most about the optimum, spread out."""
        self._check_fitted()
        batch = int(batch or self.batch)
        generator = torch.Generator().manual_seed(self.seed + 7)
        models, chosen = dict(self.models_), []
        anchors = self._anchors(self._objective_score())
        for i in range(batch):
            weights = _random_weights(len(self.objectives), generator) if len(self.objectives) > 1 else None
            pool = self._pool(anchors, generator)
            if not self._experiment_allowed(pool).any():
                self._check_feasible_settings(pool)  # says why, with the nearest miss
            if self.acquisition == "thompson" and len(self.objectives) == 1:
                x = self._thompson_pick(pool, models, generator)
            else:
                x, _ = best_of(self._acquisition(models, weights), self._experiment_allowed, self.space_, pool,
                               polish=self._polish_starts)
            chosen.append(x)
            if i + 1 < batch:  # believe the prediction at x, so the next pick goes elsewhere
                full = self._inputs(x[None])
                with torch.no_grad():
                    models = {c: m.condition_on(full, m(full)[0]) for c, m in models.items()}
        return self.describe(torch.stack(chosen))

    def _thompson_pick(self, pool: torch.Tensor, models: dict, generator: torch.Generator) -> torch.Tensor:
        pool = pool[self._experiment_allowed(pool)][:1500]
        with torch.no_grad():
            x = self._inputs(pool)
            draws = {c: m.joint_sample(x, 1, generator)[0] for c, m in models.items()}
            column, up = self.objectives[0]
            value = draws[column] if up else -draws[column]
            columns = {**self._settings_columns(pool), **draws}
            for constraint in self.output_constraints:
                value = torch.where(constraint(columns) <= 0, value, torch.full_like(value, -math.inf))
        return pool[int(value.argmax())]

    def pareto_front(self, points: int = PARETO_WEIGHTS) -> pd.DataFrame:
        """Settings whose predicted objectives no other allowed setting beats on all of them at once."""
        self._check_fitted()
        if len(self.objectives) < 2:
            raise BadOption("a Pareto front needs at least two objectives")
        generator = torch.Generator().manual_seed(self.seed + 3)
        pool = self._pool(self._anchors(self._objective_score()), generator)
        pool = pool[self._allowed(pool)]
        found = [pool[:1000]]
        for w in _spread_weights(len(self.objectives), points):
            try:
                found.append(best_of(self._objective_score(w), self._allowed, self.space_, pool, polish=1)[0][None])
            except ValueError:
                break
        candidates = torch.cat(found)
        with torch.no_grad():
            predictions = self._predict_encoded(candidates)
            feasible = self._log_feasible(candidates, predictions) >= math.log(self.confidence) - 1e-9
            values = torch.stack([self._standardised(predictions, c, up)[0] for c, up in self.objectives], dim=1)
        candidates, values = candidates[feasible], values[feasible]
        front = candidates[nondominated(values)]
        table = pd.DataFrame([{**a["settings"], **{c: a["predicted"][c]["mean"] for c, _ in self.objectives}}
                              for a in self.describe(front)])
        table = table.sort_values(self.objectives[0][0], ascending=not self.objectives[0][1])
        return table.drop_duplicates().reset_index(drop=True)

    def optimize(self, batch: int | None = None) -> dict:
        """Everything an engineer asks at once: the recommendation, the next experiments and, for several
        objectives, the Pareto front."""
        recommended = self.recommend()
        result = {"recommended": recommended["settings"], "predicted": recommended["predicted"],
                  "distance_to_data": recommended["distance_to_data"],
                  "probability_feasible": recommended["probability_feasible"],
                  "inside_trust_region": recommended["inside_trust_region"],
                  "experiments": [e["settings"] for e in self.suggest_experiments(batch)],
                  "objectives": [{"column": c, "goal": "maximize" if up else "minimize"} for c, up in self.objectives],
                  "constraints": [c.text for c in self.known_constraints + self.output_constraints],
                  "fixed": self.space_.fixed, "trust_radius": self.trust_radius, "confidence": self.confidence,
                  "records": self.fit_info_["records"], "records_modelled": self.fit_info_["records_modelled"]}
        if len(self.objectives) > 1:
            result["pareto_front"] = self.pareto_front().to_dict(orient="records")
        return result

    def describe(self, encoded: torch.Tensor) -> list[dict]:
        """Settings in plant units with predicted outputs (mean and 90 % range of a single run), the chance of meeting
        the output constraints and the distance to the nearest past run."""
        with torch.no_grad():
            predictions = self._predict_encoded(encoded)
            log_feasible = self._log_feasible(encoded, predictions)
            distance = self._distance(encoded)
            ranges = {c: self._range(c, mean, variance) for c, (mean, variance) in predictions.items()}
        table = self.space_.decode(encoded)
        out = []
        for i, row in enumerate(table.to_dict(orient="records")):
            predicted = {c: {"mean": float(mean[i]), "low": float(ranges[c][0][i]), "high": float(ranges[c][1][i])}
                         for c, (mean, _) in predictions.items()}
            out.append({"settings": {k: plain(v) for k, v in row.items()}, "predicted": predicted,
                        "probability_feasible": float(log_feasible[i].exp()), "distance_to_data": float(distance[i]),
                        "inside_trust_region": self.trust_radius is None or float(distance[i]) <= self.trust_radius + 1e-9})
        return out


def _settings_text(settings: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items())


def _random_weights(k: int, generator: torch.Generator) -> torch.Tensor:
    w = -torch.log(torch.rand(k, generator=generator, dtype=torch.float64))  # uniform on the simplex
    return w / w.sum()


def _spread_weights(k: int, n: int) -> list[torch.Tensor]:
    """Weight vectors spread over the simplex (evenly for two objectives)."""
    if k == 2:
        return [torch.tensor([t, 1 - t], dtype=torch.float64) for t in np.linspace(0.02, 0.98, n)]
    generator = torch.Generator().manual_seed(0)
    return [_random_weights(k, generator) for _ in range(n)]
