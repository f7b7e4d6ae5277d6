"""What a diagnosis is judged by: windows, recordings, the confusion matrix and the unknown verdict; and
cross-validation of a long table by whole runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopfloor.errors import BadOption


def by_recording(table: pd.DataFrame) -> pd.DataFrame:
    """One row per recording of a window table (`DiagnoseModel.predict`): its majority class, that class's share of
    the windows and mean probability, the share of unknown windows and unknown (most windows unknown)."""
    rows = []
    for name, windows in table.groupby("recording", sort=False):
        counts = windows["class"].value_counts()
        verdict = counts.index[0]
        row = {"recording": name}
        if "truth" in windows:
            row["truth"] = windows["truth"].iloc[0]
        row.update({"windows": len(windows), "class": verdict, "share": float(counts.iloc[0] / len(windows)),
                    "probability": float(windows.loc[windows["class"] == verdict, "probability"].mean()),
                    "unknown_share": float(windows["unknown"].mean()),
                    "unknown": int(windows["unknown"].mean() > 0.5)})
        rows.append(row)
    return pd.DataFrame(rows)


def diagnosis_metrics(table: pd.DataFrame, classes: list[str]) -> dict[str, float]:
    """Metrics of a labelled window table; windows of classes the model never saw count only towards
    `unseen_unknown_rate` (the share of them called unknown)."""
    from sklearn.metrics import f1_score

    truth = table["truth"].astype(str).to_numpy()
    known = np.isin(truth, classes)
    out: dict[str, float] = {"windows": float(len(table)), "known_windows": float(known.sum())}
    if known.any():
        seen = table[known]
        right = seen["class"].to_numpy() == truth[known]
        unknown = seen["unknown"].to_numpy() == 1
        recordings = by_recording(seen)
        out.update({
            "accuracy": float(right.mean()),
            "f1_macro": float(f1_score(truth[known], seen["class"].astype(str), labels=sorted(set(truth[known])),
                                       average="macro", zero_division=0)),
            "recording_accuracy": float((recordings["class"] == recordings["truth"]).mean()),
            "unknown_rate": float(unknown.mean()),
            "accepted_accuracy": float((right & ~unknown).mean()),
        })
    if (~known).any():
        out["unseen_unknown_rate"] = float((table["unknown"].to_numpy()[~known] == 1).mean())
    cells = pd.crosstab(table["truth"].astype(str), table["class"].astype(str))
    for true_class in cells.index:
        for predicted in cells.columns:
            if cells.loc[true_class, predicted]:
                out[f"confusion: {true_class} -> {predicted}"] = float(cells.loc[true_class, predicted])
    return out


def check_cv(model) -> None:
    if not (model.time and model.run):
        raise BadOption("--cv folds a long table by its runs: give --time, --label and --run (a folder of "
                        "recordings is split by the model's own hold-out)")


def run_folds(model, frame: pd.DataFrame, k: int):
    """(train rows, test rows) of `k` folds of a long table, whole runs on one side (`DiagnoseModel.cv_folds`)."""
    from shopfloor.crossval import Folds, fold_indices

    check_cv(model)
    stratify = frame[model.label].astype(str) if model.label in frame.columns else None
    return Folds(fold_indices(frame, k, stratify=stratify, group=model.run, seed=model.seed),
                 split=f"whole runs of '{model.run}'")


def cross_validate_by_runs(model, data, k: int) -> dict:
    """What `DiagnoseModel.cross_validate` does: score a fresh model per fold, then fit `model` on all of `data`."""
    from shopfloor.crossval import cross_validate
    from shopfloor.tasks.base import as_frame

    check_cv(model)  # before reading: a folder is not a table
    frame, _ = as_frame(data)
    folds = run_folds(model, frame, k)

    def fit_and_score(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, float]:
        scores = type(model)(**{**model.get_params(), "progress": False}).fit(train).evaluate(test)
        return {name: value for name, value in scores.items() if not name.startswith("confusion")}

    result = {**cross_validate(fit_and_score, frame, folds), "split": folds.split}
    model.fit(frame)
    model.cv_metrics_ = result
    return result
