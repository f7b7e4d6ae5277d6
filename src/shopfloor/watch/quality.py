"""Data-quality findings: readings out of the training range, categories never seen, sensors stuck or missing.

Each finding is a plain dict {input, finding, severity, detail}; `severity` 'drift' (the input cannot be trusted:
a stuck or mostly missing sensor) or 'watch' (worth a look). Thresholds are fixed here, not tuned per dataset.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OUT_OF_RANGE_SHARE = 0.01  # 1 % of readings outside the training range (a resample of training rows: ~0.02 %)
NEW_CATEGORY_SHARE = 0.01
MIN_STUCK_RUN = 30  # at least this many identical readings in a row ...
STUCK_FACTOR = 2  # ... and twice the longest such run in the training data
MISSING_WATCH, MISSING_DRIFT = 0.1, 0.5  # share of missing readings above the training share


def stuck_run_needed(reference: dict) -> int:
    return max(MIN_STUCK_RUN, STUCK_FACTOR * int(reference.get("longest_run") or 0))


def trailing_run(values: np.ndarray) -> int:
    """How many of the last readings are one value repeated (0 when the last reading is missing)."""
    if len(values) == 0 or not np.isfinite(values[-1]):
        return 0
    different = np.flatnonzero(values != values[-1])
    return int(len(values) - (different[-1] + 1 if len(different) else 0))


def numeric_findings(name: str, reference: dict, values: np.ndarray, margin: float = 0.0) -> list[dict]:
    """`margin`: how far beyond the training range a reading must lie to count as outside it (a model output's
    resolution, `compare.output_resolution`; 0 for inputs)."""
    findings = []
    n = len(values)
    finite = values[np.isfinite(values)]
    missing = 1 - len(finite) / n if n else 0.0
    findings += missing_findings(name, reference, missing)
    if reference["min"] is not None and len(finite):
        outside = int(np.sum((finite < reference["min"] - margin) | (finite > reference["max"] + margin)))
        if outside / len(finite) > OUT_OF_RANGE_SHARE:
            findings.append({"input": name, "finding": "out of range", "severity": "watch",
                             "detail": f"{outside} of {len(finite)} readings outside the training range "
                                       f"[{reference['min']:.6g}, {reference['max']:.6g}]"})
    needed = stuck_run_needed(reference)
    run = trailing_run(values)
    if run >= needed and (reference["std"] or 0) > 0:
        findings.append({"input": name, "finding": "stuck", "severity": "drift",
                         "detail": f"the last {run} readings are all {values[-1]:.6g} (training: at most "
                                   f"{reference.get('longest_run')} in a row)"})
    return findings


def category_findings(name: str, reference: dict, values: pd.Series) -> list[dict]:
    present = values.dropna().astype(str)
    known = set(reference["levels"])
    new = present[~present.isin(known)]
    findings = []
    # levels beyond the profile's cap were folded into 'other': only a model with fewer levels can tell new ones
    if len(present) and len(new) / len(present) > NEW_CATEGORY_SHARE and reference["proportions"][-1] < 0.01:
        levels = ", ".join(f"'{v}'" for v in new.value_counts().index[:5])
        findings.append({"input": name, "finding": "new categories", "severity": "watch",
                         "detail": f"{len(new)} of {len(present)} readings are levels never seen in training: {levels}"})
    return findings + missing_findings(name, reference, float(values.isna().mean()) if len(values) else 0.0)


def missing_findings(name: str, reference: dict, missing: float) -> list[dict]:
    """A 'missing' finding when the share of missing readings rose by MISSING_WATCH or more since training."""
    rise = missing - reference["missing"]
    if rise < MISSING_WATCH:
        return []
    return [{"input": name, "finding": "missing", "severity": "drift" if rise >= MISSING_DRIFT else "watch",
             "detail": f"{missing:.0%} of readings missing (training: {reference['missing']:.0%})"}]

