"""Trend charts for the dashboard as inline SVG: no chart library, no JavaScript, nothing to download.

A chart is a few hundred bytes of markup that the server renders with the page, so a fleet of
machines or a slow plant network costs nothing extra.
"""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT, PAD = 640, 180, 36


def trend_svg(points: list[dict], value: str, title: str, low: str | None = None, high: str | None = None,
              limit: float | None = None, limit_label: str = "", fixed_range: tuple[float, float] | None = None,
              empty: str = "not enough readings yet", width: int = WIDTH, height: int = HEIGHT) -> str:
    """A line of `value` over `time`, with an optional band between `low` and `high` and a dashed limit line.

    `points` are dicts holding "time" and the named keys; rows where `value` is missing are skipped. With fewer
    than two, the chart says `empty` instead.
    """
    rows = [p for p in points if _number(p.get(value)) and _number(p.get("time"))]
    if len(rows) < 2:
        return (f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
                f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="muted">'
                f'{escape(title)}: {escape(empty)}</text></svg>')
    times = [float(p["time"]) for p in rows]
    series = [float(p[value]) for p in rows]
    band = [(float(p[low]), float(p[high])) for p in rows if _number(p.get(low)) and _number(p.get(high))] if low else []
    ys = series + [v for pair in band for v in pair] + ([limit] if limit is not None else [])
    y_min, y_max = fixed_range or (min(ys), max(ys))
    t_min, t_max = min(times), max(times)
    x, y, y_min, y_max = _axes(t_min, t_max, y_min, y_max, width, height)
    parts = _opened("chart", title, width, height)
    if len(band) == len(rows):
        upper = " ".join(f"{x(t):.1f},{y(h):.1f}" for t, (_, h) in zip(times, band, strict=True))
        lower = " ".join(f"{x(t):.1f},{y(lo):.1f}" for t, (lo, _) in reversed(list(zip(times, band, strict=True))))
        parts.append(f'<polygon class="band" points="{upper} {lower}"/>')
    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(times, series, strict=True))
    parts.append(f'<polyline class="line" points="{line}"/>')
    if limit is not None and y_min <= limit <= y_max:
        parts.append(f'<line class="limit" x1="{PAD}" x2="{width - PAD}" y1="{y(limit):.1f}" y2="{y(limit):.1f}"/>'
                     f'<text x="{width - PAD}" y="{y(limit) - 4:.1f}" text-anchor="end" class="muted">'
                     f'{escape(limit_label)}</text>')
    for v in (y_min, y_max):
        parts.append(f'<text x="{PAD - 4}" y="{y(v) + 4:.1f}" text-anchor="end" class="axis">{_short(v)}</text>')
    for t in (t_min, t_max):
        parts.append(f'<text x="{x(t):.1f}" y="{height - 6}" text-anchor="middle" class="axis">{_short(t)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _axes(t_min: float, t_max: float, y_min: float, y_max: float, width: int, height: int):
    """The chart's x (time) and y (value) in SVG units, and the value range drawn (a flat line gets +-1)."""
    if y_max - y_min < 1e-9:
        y_min, y_max = y_min - 1, y_max + 1
    t_span = max(t_max - t_min, 1e-9)

    def x(t: float) -> float:
        return PAD + (t - t_min) / t_span * (width - 2 * PAD)

    def y(v: float) -> float:
        return height - PAD + 8 - (v - y_min) / (y_max - y_min) * (height - 2 * PAD)

    return x, y, y_min, y_max


def _opened(kind: str, title: str, width: int, height: int) -> list[str]:
    return [f'<svg class="{kind}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
            f'<text x="{PAD}" y="16" class="chart-title">{escape(title)}</text>']


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _short(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def fan_svg(past_times, past, times, forecast, bands: list[tuple], title: str, time_words=_short,
            width: int = WIDTH, height: int = HEIGHT) -> str:
    """A forecast fan beside the readings it came from: the readings as a line, then after the last one the point
    forecast (dashed) inside its quantile bands, widest palest (`bands`: (low, high, nominal coverage) arrays over
    the forecast's `times`). The axis spans readings and fan; `time_words` labels its ends (a date for stamps)."""
    seen = [(float(t), float(v)) for t, v in zip(past_times, past, strict=True) if _number(float(v))]
    ahead = [float(t) for t in times]
    ys = [v for _, v in seen] + [float(v) for v in forecast] + [float(v) for low, high, _ in bands for v in (*low, *high)]
    ys = [v for v in ys if math.isfinite(v)]
    if not ahead or not ys:
        return trend_svg([], "value", title, empty="no forecast")
    t_min, t_max = min([t for t, _ in seen] + ahead), max(ahead)
    x, y, y_min, y_max = _axes(t_min, t_max, min(ys), max(ys), width, height)
    parts = _opened("chart fan", title, width, height)
    for low, high, nominal in bands:
        upper = " ".join(f"{x(t):.1f},{y(float(v)):.1f}" for t, v in zip(ahead, high, strict=True))
        lower = " ".join(f"{x(t):.1f},{y(float(v)):.1f}" for t, v in reversed(list(zip(ahead, low, strict=True))))
        parts.append(f'<polygon class="band" points="{upper} {lower}"><title>{nominal * 100:g} % interval</title></polygon>')
    if seen:
        line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in seen)
        parts.append(f'<polyline class="line" points="{line}"/>')
        parts.append(f'<line class="now" x1="{x(seen[-1][0]):.1f}" x2="{x(seen[-1][0]):.1f}" y1="{PAD - 8}" '
                     f'y2="{height - PAD + 8}"/>')
    start = [seen[-1]] if seen else []  # the forecast line starts at the last reading
    points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in start + list(zip(ahead, map(float, forecast), strict=True)))
    parts.append(f'<polyline class="forecast" points="{points}"/>')
    for v in (y_min, y_max):
        parts.append(f'<text x="{PAD - 4}" y="{y(v) + 4:.1f}" text-anchor="end" class="axis">{_short(v)}</text>')
    for t, anchor in ((t_min, "start"), (t_max, "end")):
        parts.append(f'<text x="{x(t):.1f}" y="{height - 6}" text-anchor="{anchor}" class="axis">'
                     f'{escape(time_words(t))}</text>')
    parts.append("</svg>")
    return "".join(parts)
