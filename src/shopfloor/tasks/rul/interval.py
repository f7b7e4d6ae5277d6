"""The RUL interval: split-conformal margins below and above the estimate, per band of the estimate.

Out-of-fold estimates (cycles of units no ensemble member trained on) are cut into bands of the
estimate, equal shares of the training cap (Mondrian conformal prediction: the estimate is known
when predicting, the true RUL is not). In each band the interval reaches below the estimate by the
conformal quantile of how far estimates overshot the truth, and above it by the quantile of how far
they fell short, each side missing at most half of 1 - coverage. One margin on the P10-P90 band for
every unit (the models saved before) had to cover the spread of healthy units, whose uncapped RUL
no sensor tells, and gave FD001 engines 10 cycles from failure intervals of 0-80 cycles.

`nn.rul.finish` applies the bands inside the network's module, so Python, the stream worker, the
REST service and ONNX give the same interval.
"""

from __future__ import annotations

import numpy as np

ESTIMATE_BANDS = 5  # the estimate's range 0..rul_cap in equal bands, each with its own margins
MIN_BAND_WINDOWS = 200  # a band with fewer out-of-fold windows joins the band above it (the top one, below)


def conformal_margin(score: np.ndarray, coverage: float) -> float:
    """The finite-sample conformal quantile: at least `coverage` of new cycles like these score at or below it."""
    level = min(1.0, np.ceil((len(score) + 1) * coverage) / len(score))
    return float(np.quantile(score, level))


def band_edges(estimate: np.ndarray, cap: float) -> list[float]:
    """Edges between estimate bands: equal shares of the cap, merged upwards until every band holds
    `MIN_BAND_WINDOWS` out-of-fold windows (so that its conformal quantiles rest on enough cycles)."""
    shares = [float(np.float32(cap * k / ESTIMATE_BANDS)) for k in range(1, ESTIMATE_BANDS)]
    edges, lower = [], -np.inf
    for edge in shares:
        if np.count_nonzero((estimate >= lower) & (estimate < edge)) >= MIN_BAND_WINDOWS:
            edges.append(edge)
            lower = edge
    if edges and np.count_nonzero(estimate >= edges[-1]) < MIN_BAND_WINDOWS:
        edges.pop()  # too few above the last edge: the top band joins the one below
    return edges


def fit_bands(estimate: np.ndarray, rul: np.ndarray, cap: float, coverage: float) -> dict:
    """Band edges and the margins below and above the estimate in each band, from out-of-fold cycles.

    `estimate` as the model gives it (capped head, at least 0), `rul` the true uncapped RUL.
    """
    edges = band_edges(estimate, cap)
    band = np.searchsorted(edges, estimate, side="right")  # as `finish` counts the edges at or below
    side = 1 - (1 - coverage) / 2
    return {"around": "estimate", "edges": edges,
            "below": [conformal_margin((estimate - rul)[band == b], side) for b in range(len(edges) + 1)],
            "above": [conformal_margin((rul - estimate)[band == b], side) for b in range(len(edges) + 1)]}


def one_margin(margin: float) -> dict:
    """The interval of models saved before bands: P10-P90 widened by one margin for every unit."""
    return {"around": "quantiles", "edges": [], "below": [margin], "above": [margin]}


def finish_arguments(bands: dict) -> tuple[list[float], list[float], list[float], str]:
    """Below, above, edges and around as `nn.rul.finish` takes them; one band gets edges [inf]."""
    below, above, edges = list(bands["below"]), list(bands["above"]), list(bands["edges"])
    if not edges:
        below, above, edges = below * 2, above * 2, [float("inf")]
    return below, above, edges, bands["around"]


def by_band(key: np.ndarray, truth: np.ndarray, low: np.ndarray, high: np.ndarray, edges) -> list[dict]:
    """Coverage and mean width of the intervals in each band of `key` (the true RUL, or the estimate)."""
    key, truth, low, high = (np.asarray(a, dtype=np.float64) for a in (key, truth, low, high))
    bounds = [-np.inf, *edges, np.inf]
    rows = []
    for lower, upper in zip(bounds[:-1], bounds[1:], strict=True):
        chosen = (key >= lower) & (key < upper)
        inside = (low[chosen] <= truth[chosen]) & (truth[chosen] <= high[chosen])
        name = f"{max(lower, 0):g}-{upper:g}" if np.isfinite(upper) else f">= {lower:g}" if np.isfinite(lower) else "all"
        rows.append({"band": name,
                     "count": int(chosen.sum()),
                     "coverage": float(inside.mean()) if chosen.any() else float("nan"),
                     "interval_width": float((high - low)[chosen].mean()) if chosen.any() else float("nan")})
    return rows
