"""Inputs that give the target away: a column computed from the target, or recorded from the outcome.

A cost computed from the metered quantity that is the target, or AI4I's failure-mode flags (TWF,
HDF, ...) next to 'Machine failure', let a model score almost perfectly in validation and then fail
on the line, where such a column is not known before the outcome. Each input is tried alone on
rows held out from a small tree fitted to it; an input that predicts the target almost perfectly
there, or a flag whose set rows are all of one rare class, is named in a warning with `--drop`.
A sample of at most `LEAK_ROWS` rows keeps this to a second or so on any table.
"""

from __future__ import annotations

import numpy as np

from shopfloor.errors import warn

LEAK_ROWS = 10_000
HELD_OUT = 0.3
R2_LEAK = 0.98  # regression: one input alone explains this share of the variance on held-out rows
AUC_LEAK = 0.995  # yes/no: one input alone ranks held-out rows almost perfectly
ACCURACY_LEAK = 0.99  # several classes: balanced accuracy of one input alone
FLAG_LEVELS = 10  # inputs with at most this many values are also checked as flags
FLAG_PURITY = 0.99  # rows of a flag level that belong to one rare class, in training and held-out rows
FLAG_SHARE = 0.1  # ... and the share of that class's held-out rows they hold


def target_leaks(numbers: np.ndarray, codes: np.ndarray, y: np.ndarray, kind: str, features: list[str],
                 targets: list[str], classes: list, seed: int = 0) -> list[str]:
    """One sentence per input that gives a target away (empty when none does).

    y: encoded labels as the estimator learns them; classes: the estimator's `classes_`.
    """
    from sklearn.model_selection import train_test_split

    rows = np.random.default_rng(seed).permutation(len(y))[:LEAK_ROWS]
    inputs = np.concatenate([numbers[rows].astype(np.float64), codes[rows].astype(np.float64)], axis=1)
    labels = np.asarray(y)[rows]
    labels = labels[:, None] if labels.ndim == 1 else labels
    try:
        train, test = train_test_split(np.arange(len(rows)), test_size=HELD_OUT, random_state=seed)
    except ValueError:  # too few rows to hold any out
        return []
    findings = []
    for j, feature in enumerate(features):
        column = inputs[:, j]
        column = np.where(np.isnan(column), np.nanmin(column) - 1 if np.isfinite(column).any() else 0.0, column)
        for t, target in enumerate(targets if kind != "multiclass" else targets[:1]):
            names = classes[t] if kind == "binary" else classes[0] if kind == "multiclass" else []
            why = _gives_away(column, labels[:, t], kind, train, test, [f"'{target}' = {c}" for c in names])
            if why:
                findings.append(f"'{feature}' alone gives the target '{target}' away: {why}. If it is computed "
                                f"from the target or recorded after the outcome, leave it out with --drop '{feature}'")
                break
    return findings


def warn_target_leaks(*args, **kwargs) -> list[str]:
    findings = target_leaks(*args, **kwargs)
    for finding in findings:
        warn(finding)
    return findings


def _gives_away(x: np.ndarray, y: np.ndarray, kind: str, train: np.ndarray, test: np.ndarray,
                outcomes: list[str]) -> str | None:
    from sklearn.metrics import balanced_accuracy_score, r2_score, roc_auc_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if kind == "regression":
        tree = DecisionTreeRegressor(max_leaf_nodes=64, min_samples_leaf=5, random_state=0)
        r2 = r2_score(y[test], tree.fit(x[train, None], y[train]).predict(x[test, None]))
        return f"on held-out rows it explains R2 {r2:.3f} of it by itself" if r2 > R2_LEAK else None
    y = y.astype(np.int64)
    if len(np.unique(y[train])) < 2 or len(np.unique(y[test])) < 2:
        return None
    tree = DecisionTreeClassifier(max_leaf_nodes=64, min_samples_leaf=5, random_state=0).fit(x[train, None], y[train])
    if kind == "binary":
        auc = roc_auc_score(y[test], tree.predict_proba(x[test, None])[:, 1])
        if auc >= AUC_LEAK:
            return f"on held-out rows it ranks them with ROC-AUC {auc:.3f} by itself"
    else:
        accuracy = balanced_accuracy_score(y[test], tree.predict(x[test, None]))
        if accuracy >= ACCURACY_LEAK:
            return f"on held-out rows it tells the classes apart with balanced accuracy {accuracy:.3f} by itself"
    return _flag_gives_away(x, y, train, test, outcomes)


def _flag_gives_away(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                     outcomes: list[str]) -> str | None:
    """A few-valued input (a failure-mode flag) whose set rows all belong to one rare class."""
    levels = np.unique(x[train])
    if len(levels) > FLAG_LEVELS:
        return None
    classes, counts = np.unique(y[train], return_counts=True)
    for c in classes[counts < counts.max()]:  # every class but the most common
        pure = [v for v in levels if (x[train] == v).sum() >= 5 and np.mean(y[train][x[train] == v] == c) >= FLAG_PURITY]
        flagged = np.isin(x[test], pure)
        of_class = int((y[test] == c).sum())
        if pure and flagged.sum() >= 3 and np.mean(y[test][flagged] == c) >= FLAG_PURITY \
                and flagged.sum() >= FLAG_SHARE * of_class:
            shown = ", ".join(f"{v:g}" for v in pure)
            return (f"every held-out row where it is {shown} has {outcomes[int(c)]} ({int(flagged.sum())} of "
                    f"the {of_class} held-out rows with that outcome)")
    return None
