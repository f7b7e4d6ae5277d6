"""How well anomalous rows and events are found: row-wise counts, events, delays and the NAB score.

Row-wise figures are un-adjusted: a row counts as found only if it was flagged itself. "Point
adjustment" (a whole true event counts as found once one of its rows is flagged) inflates published
figures (Anomaly-Transformer #4) and is not used. F1 = TP / (TP + (FP + FN) / 2), as SKAB's leaderboard.

The NAB score follows the `tsad` package that SKAB's leaderboard uses: a detection window after every
true changepoint (60 s to the right on SKAB); the first detected changepoint in a window scores from
A_tp (at its start) down to A_fp (at its end) along a tanh curve; a window without one scores A_fn; a
detected changepoint outside every window scores A_fp. The sum over all series is normalised so that
no detection scores 0 and a perfect one 100. A detected changepoint is a row where the flag changes.
"""

from __future__ import annotations

import numpy as np

NAB_PROFILES = {"standard": (1.0, -0.11, -1.0), "low_fp": (1.0, -0.22, -1.0), "low_fn": (1.0, -0.11, -2.0)}


def counts(truth: np.ndarray, flagged: np.ndarray) -> dict[str, int]:
    truth, flagged = np.asarray(truth, bool), np.asarray(flagged, bool)
    return {"tp": int((truth & flagged).sum()), "fp": int((~truth & flagged).sum()),
            "fn": int((truth & ~flagged).sum()), "tn": int((~truth & ~flagged).sum())}


def row_metrics(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """f1, precision, recall, far (false alarms / normal rows), mar (missed / anomalous rows)."""
    def ratio(a, b):
        return float(a / b) if b else 0.0

    return {"f1": ratio(tp, tp + (fp + fn) / 2), "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
            "far": ratio(fp, fp + tn), "mar": ratio(fn, fn + tp)}


def segments(flags: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) row of every run of consecutive ones."""
    flags = np.asarray(flags, bool).astype(np.int8)
    edges = np.diff(np.r_[0, flags, 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist(), strict=True))


def event_counts(truth: np.ndarray, flagged: np.ndarray, times: np.ndarray) -> dict:
    """One series' events: a true event is found when one of its rows is flagged (its delay: from its start to
    that first flag); a flagged event is right when it touches a true one. Add them up with `event_metrics`."""
    truth, flagged = np.asarray(truth, bool), np.asarray(flagged, bool)
    true_events, flagged_events = segments(truth), segments(flagged)
    delays = []
    for first, last in true_events:
        hits = np.flatnonzero(flagged[first:last + 1])
        if len(hits):
            delays.append(float(times[first + hits[0]] - times[first]))
    return {"true": len(true_events), "found": len(delays), "flagged": len(flagged_events),
            "right": sum(1 for a, b in flagged_events if truth[a:b + 1].any()), "delays": delays}


def event_metrics(parts: list[dict]) -> dict[str, float]:
    """event_f1 and detection_delay (the median delay of the found events) over every series' `event_counts`."""
    true, found = sum(p["true"] for p in parts), sum(p["found"] for p in parts)
    flagged, right = sum(p["flagged"] for p in parts), sum(p["right"] for p in parts)
    recall = found / true if true else 0.0
    precision = right / flagged if flagged else 0.0
    delays = [d for p in parts for d in p["delays"]]
    return {"event_f1": float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0,
            "events_true": float(true), "events_found": float(found),
            "detection_delay": float(np.median(delays)) if delays else float("nan")}


def changepoints(flags: np.ndarray) -> np.ndarray:
    """Rows where a 0/1 series changes (the first row counts when it starts at 1)."""
    flags = np.asarray(flags, bool).astype(np.int8)
    return np.flatnonzero(np.diff(np.r_[0, flags]) != 0)


def nab_parts(true_points: np.ndarray, detected_points: np.ndarray, times: np.ndarray, window: float) -> dict:
    """One series' NAB sums per profile, with the null and perfect sums, to be added over series."""
    times = np.asarray(times, np.float64)
    starts = times[np.asarray(true_points, np.int64)]
    ends = starts + window
    for i in range(len(starts) - 1):  # overlapping windows: the later one starts where the earlier ends (tsad's default)
        if ends[i] >= starts[i + 1]:
            starts[i + 1] = ends[i]
    detected = np.sort(times[np.asarray(detected_points, np.int64)])
    inside = np.zeros(len(detected), bool)
    positions = []  # where in its window the first detection fell (0 = at the changepoint)
    for a, b in zip(starts, ends, strict=True):
        hit = (detected >= a) & (detected <= b)
        inside |= hit
        positions.append(None if not hit.any() else (detected[hit][0] - a) / max(b - a, 1e-12))
    false = int((~inside).sum())
    out = {}
    for name, (a_tp, a_fp, a_fn) in NAB_PROFILES.items():
        score = a_fp * false + sum(a_fn if p is None else _nab_curve(p, a_tp, a_fp) for p in positions)
        out[name] = (score, len(starts) * a_fn, len(starts) * a_tp)
    out["missed"] = sum(p is None for p in positions)
    out["false"] = false
    return out


def nab_score(parts: list[dict]) -> dict[str, float]:
    """100 x (score - null) / (perfect - null) per profile, over every series' `nab_parts`."""
    out = {}
    for name in NAB_PROFILES:
        score, null, perfect = (sum(p[name][i] for p in parts) for i in range(3))
        out[f"nab_{name}"] = float(100 * (score - null) / (perfect - null)) if perfect != null else float("nan")
    out["nab_missed"] = int(sum(p["missed"] for p in parts))
    out["nab_false"] = int(sum(p["false"] for p in parts))
    return out


def _nab_curve(position: float, a_tp: float, a_fp: float, detail: int = 1000) -> float:
    """tsad's "improved" scale: A_tp at the window's start, falling along tanh to A_fp at its end."""
    step = min(int(position * detail), detail - 1)
    x = np.linspace(-np.pi / 2, np.pi / 2, detail)[step]
    return float((a_tp - a_fp) / 2 * -np.tanh(x) / np.tanh(np.pi / 2) + (a_tp - a_fp) / 2 + a_fp)
