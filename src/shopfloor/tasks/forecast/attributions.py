"""What a forecast rests on: gradient x input of every series' next forecast, per input column and lag band.

For the forecast `predict` makes (the window ending at every series' last row), the point forecast of each
target, summed over the horizon, is differentiated with respect to the standardised inputs (the network's own
units: a column's value in spreads from its training mean), and each gradient is multiplied by its input. The
products are summed per input column (targets' own past, past-only covariates, calendar features, known
covariates) and per lag band: the look-back cut into four bands of lags (1 = the last step before the forecast),
and the horizon ('ahead') for the known covariates' future values. Each row's `attribution` is in the target's
standardised units; `share` is its absolute value over the sum of the absolute values of its target and series.
Explanations take no future file: a known covariate's future values are taken as its last value.
Gradient x input is exact for a linear network and a first-order reading of the rest (Shrikumar et al. 2017).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from shopfloor.tasks.forecast.calendar import calendar_columns
from shopfloor.tasks.forecast.windows import last_windows

BANDS = 4


def lag_bands(lookback: int, bands: int = BANDS) -> list[tuple[int, int]]:
    """(first lag, last lag) of every band, nearest first: lookback 96 -> (1, 24), (25, 48), (49, 72), (73, 96)."""
    edges = np.unique(np.linspace(0, lookback, min(bands, lookback) + 1).round().astype(int))
    return [(int(a) + 1, int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def explain(model, data) -> pd.DataFrame:
    history = model.read(data)
    model.check_lookback(history)
    series = model.series_index(history)
    raw = last_windows(model, history)
    index = torch.as_tensor(series)
    net = model.net_
    with torch.no_grad():
        inputs = [t.detach().requires_grad_(True) for t in net.standardise(*raw, index)]
    out = net.net(*inputs, index)[..., 0]  # [series, horizon, targets], standardised
    names_past = [*model.target_columns_, *model.past_columns_]
    names_known = [*calendar_columns(model.calendar_cycles_), *model.known_columns_]
    bands = lag_bands(model.lookback)
    rows = []
    for k, target in enumerate(model.target_columns_):
        grads = torch.autograd.grad(out[..., k].sum(), inputs, retain_graph=True, allow_unused=True)
        products = [(g * x).detach().numpy() if g is not None else np.zeros(x.shape, np.float32)
                    for g, x in zip(grads, inputs, strict=True)]
        history_part, known_history, known_future = products
        for s, name in enumerate(history.ids):
            for column, values in [*[(c, history_part[s, :, j]) for j, c in enumerate(names_past)],
                                   *[(c, known_history[s, :, j]) for j, c in enumerate(names_known)]]:
                for first, last in bands:
                    window = values[::-1][first - 1:last]  # lag 1 is the last step of the look-back
                    rows.append((name, target, column, f"{first}-{last}", float(window.sum())))
            for j, column in enumerate(names_known):
                rows.append((name, target, column, "ahead", float(known_future[s, :, j].sum())))
    table = pd.DataFrame(rows, columns=["series", "target", "input", "lags", "attribution"])
    total = table.groupby(["series", "target"])["attribution"].transform(lambda a: np.abs(a).sum())
    table["share"] = np.abs(table["attribution"]) / np.maximum(total, 1e-12)
    if model.series_column_:
        return table.rename(columns={"series": model.series_column_})
    return table.drop(columns="series")
