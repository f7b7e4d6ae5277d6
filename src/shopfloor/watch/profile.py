"""The reference profile: what a model's inputs and outputs looked like in training, without a single raw row.

A model writes it once at fit time (`build_profile`) into its manifest, where `shopfloor drift` and the stream's
rolling profile read it. Per numeric input: 101 quantiles, decile bin edges with the share of rows in each bin,
mean, spread, range, missing share and the longest run of one repeated value (how long a working sensor may
read the same); per categorical input: the share of each level (at most `MAX_LEVELS`); per output: as a numeric
input, measured on held-out rows; for image and signal models a random projection of pooled features (its mean,
and a small sample for the MMD test). Its size is bounded whatever the training set's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shopfloor.watch.distances import bin_counts, psi, smoothed, wasserstein

PROFILE_VERSION = 1
QUANTILES = 101
BINS = 10
MAX_LEVELS = 50
EMBEDDING_DIMS = 32
EMBEDDING_SAMPLE = 200
STAGES = 8  # life-stage bands of a RUL model's readings (quantile edges of the training readings' ages)
STAGE_QUANTILES = 21


@dataclass
class ModelView:
    """What the watch compares: the inputs as the model sees them (one row per reading, row or image), the
    model's outputs on them, for images and signals the pooled features, and labels where the data has them."""

    inputs: pd.DataFrame
    outputs: pd.DataFrame
    features: np.ndarray | None = None
    labels: np.ndarray | None = None
    ages: np.ndarray | None = None  # per input row, cycles since its unit's first reading (RUL models), not compared


def longest_run(values: np.ndarray) -> int:
    """The longest stretch of one value repeated in a row (missing readings break a run)."""
    if len(values) == 0:
        return 0
    change = np.flatnonzero(np.diff(values) != 0)  # NaN != NaN: every missing reading ends a run
    bounds = np.concatenate([[-1], change, [len(values) - 1]])
    return int(np.diff(bounds).max())


def numeric_profile(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return {"kind": "numeric", "rows": len(values), "missing": 1.0, "edges": [], "proportions": [1.0],
                "quantiles": [], "mean": None, "std": None, "min": None, "max": None, "longest_run": len(values)}
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1])).tolist()
    return {"kind": "numeric", "rows": len(values), "missing": float(1 - len(finite) / len(values)),
            "edges": edges, "proportions": smoothed(bin_counts(edges, finite)).tolist(),
            "quantiles": np.quantile(finite, np.linspace(0, 1, QUANTILES)).tolist(),
            "mean": float(finite.mean()), "std": float(finite.std()), "min": float(finite.min()),
            "max": float(finite.max()), "longest_run": longest_run(values)}


def stage_edges(ages: np.ndarray) -> list[float]:
    """Edges of `STAGES` life-stage bands: quantiles of the training readings' ages."""
    ages = np.asarray(ages, dtype=np.float64)
    return np.unique(np.quantile(ages[np.isfinite(ages)], np.linspace(0, 1, STAGES + 1)[1:-1])).tolist()


def stage_of(edges: list[float], ages: np.ndarray) -> np.ndarray:
    """The band of each age (0 for the youngest)."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(ages, dtype=np.float64), side="right")


def stage_profiles(reference: dict, values: np.ndarray, stages: np.ndarray, bands: int) -> list[dict | None]:
    """Per life-stage band, the input's histogram on the reference's own bin edges, a few quantiles, mean and
    spread (None for a band without readings): the expected distribution is their mixture, weighted as the
    compared readings fall into bands (`compare.staged_reference`)."""
    values = np.asarray(values, dtype=np.float64)
    out = []
    for band in range(bands):
        part = values[(stages == band) & np.isfinite(values)]
        out.append(None if not len(part) else {
            "rows": int(len(part)), "proportions": smoothed(bin_counts(reference["edges"], part)).tolist(),
            "quantiles": np.quantile(part, np.linspace(0, 1, STAGE_QUANTILES)).tolist(),
            "mean": float(part.mean()), "std": float(part.std())})
    return out


def category_profile(values: pd.Series) -> dict:
    present = values.dropna().astype(str)
    counts = present.value_counts()
    kept = counts.iloc[:MAX_LEVELS]
    levels, shares = list(kept.index), kept.to_numpy(np.float64)
    other = float(counts.iloc[MAX_LEVELS:].sum())  # rare levels beyond the cap count together
    frequencies = smoothed(np.append(shares, other))
    return {"kind": "category", "rows": len(values), "missing": float(values.isna().mean()) if len(values) else 0.0,
            "levels": levels, "proportions": frequencies.tolist()}


def column_profile(column: pd.Series) -> dict:
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return numeric_profile(column.to_numpy(np.float64))
    return category_profile(column)


def embedding_profile(features: np.ndarray, seed: int = 0) -> dict:
    """Pooled features projected at random to `EMBEDDING_DIMS` (the same matrix, from `seed`, at check time):
    their mean and spread and a sample of `EMBEDDING_SAMPLE` for the MMD test."""
    projected = project(features, seed)
    keep = np.random.default_rng(seed).permutation(len(projected))[:EMBEDDING_SAMPLE]
    return {"dims": int(features.shape[1]), "seed": seed, "mean": projected.mean(0).tolist(),
            "std": projected.std(0).tolist(), "sample": np.round(projected[keep], 5).tolist()}


def project(features: np.ndarray, seed: int) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    matrix = np.random.default_rng(seed).standard_normal((features.shape[1], EMBEDDING_DIMS)) / np.sqrt(EMBEDDING_DIMS)
    return features @ matrix


def group_variation(values: np.ndarray, groups: np.ndarray, seed: int = 0, splits: int = 8,
                    strata: np.ndarray | None = None) -> dict:
    """How far one half of the training groups (engines, runs) is from the other half, at most over `splits`
    random halvings: PSI and Wasserstein in standard deviations.

    Readings of one engine resemble each other, so a new fleet differs from the training fleet by more than
    a resample of rows would; a verdict then needs a difference larger than this natural one. `strata` (one per
    row, each group within one): each half takes half the groups of every stratum, so that halves differ as two
    recordings of one fault do, not as a half of normal recordings from a half of faulty ones.
    """
    values = np.asarray(values, dtype=np.float64)
    names = pd.unique(groups)
    per_stratum = [names] if strata is None else \
        [pd.unique(groups[np.asarray(strata) == s]) for s in pd.unique(np.asarray(strata))]
    rng = np.random.default_rng(seed)
    worst = {"psi": 0.0, "sd": 0.0}
    std = np.nanstd(values)
    enough = len(names) >= 4 and all(len(n) >= 2 for n in per_stratum)
    for _ in range(splits if enough else 0):
        in_a = np.isin(groups, np.concatenate([rng.permutation(n)[:len(n) // 2] for n in per_stratum]))
        a, b = values[in_a], values[~in_a]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if not len(a) or not len(b) or not std:
            continue
        half = numeric_profile(b)
        worst["psi"] = max(worst["psi"], psi(half["proportions"], bin_counts(half["edges"], a)))
        worst["sd"] = max(worst["sd"], float(wasserstein(half["quantiles"], a) / std))
    return worst


def build_profile(inputs: pd.DataFrame, outputs: pd.DataFrame, *, classifier: dict | None = None,
                  features: np.ndarray | None = None, groups: np.ndarray | None = None,
                  strata: np.ndarray | None = None, ages: np.ndarray | None = None, seed: int = 0) -> dict:
    """The profile of training `inputs` (in the order they were read) and held-out `outputs`.

    `classifier`: for a calibrated yes/no model, {"output": column of the failure probability, "threshold": the
    decision threshold}, which lets `performance` estimate accuracy and F1 on new rows without labels.
    `groups`: the engine or run of each input row, where readings come in groups (see `group_variation`), and
    `strata` the class of each (a fault type), where the groups are of several kinds. `ages`: each input row's
    cycles since its unit's first reading (a RUL model's), which adds per-band histograms (`stage_profiles`), so that
    a young fleet is compared with young training engines, not with all cycles of run-to-failure histories.
    """
    profile = {"version": PROFILE_VERSION,
               "inputs": {str(c): column_profile(inputs[c]) for c in inputs.columns},
               "outputs": {str(c): column_profile(outputs[c]) for c in outputs.columns}}
    if groups is not None:
        for name, reference in profile["inputs"].items():
            if reference["kind"] == "numeric":
                reference["between_groups"] = group_variation(inputs[name].to_numpy(np.float64), groups, seed,
                                                               strata=strata)
    if ages is not None:
        edges = stage_edges(ages)
        stages = stage_of(edges, ages)
        profile["stages"] = {"of": "age in cycles", "edges": edges}
        for name, reference in profile["inputs"].items():
            if reference["kind"] == "numeric" and reference["quantiles"]:
                reference["stages"] = stage_profiles(reference, inputs[name].to_numpy(np.float64), stages,
                                                     len(edges) + 1)
    if classifier is not None:
        profile["classifier"] = classifier
    if features is not None and len(features) > 1:
        profile["embedding"] = embedding_profile(features, seed)
    return profile
