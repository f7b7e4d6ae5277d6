"""A machine's fault verdicts on the dashboard: the latest one, and a strip of the recent windows' verdicts over time.

A fault-diagnosis model on the line gives one verdict per window of the machine's samples (`stream.blocks`): a strip of
cells, one per window, oldest left, reads at a glance whether a fault came once or stays. The normal class is green,
unknown (a window like no class seen in training) dark grey, each fault class a colour of its own, the same on every
machine of a page (by its place in `PALETTE`, in the order the page meets the classes).
"""

from __future__ import annotations

STRIP = 120  # windows in a machine's strip (at 12 kHz and 2,048 samples, the last 20 s)
NORMAL, UNKNOWN = "#2e8b57", "#444b55"
PALETTE = ("#d9480f", "#7048e8", "#c2255c", "#1971c2", "#e8590c", "#5c940d", "#862e9c", "#0b7285")


def verdict_strip(points: list[dict], limit: int = STRIP) -> dict | None:
    """The cells (time, class, probability, unknown, colour, title) of the latest `limit` verdicts among a machine's
    stored predictions (`Store.trend`), oldest first, and the legend (class, colour); None when it has none."""
    from shopfloor.tasks.diagnose.records import is_normal

    verdicts = [p for p in points if p.get("verdict") is not None][-limit:]
    if not verdicts:
        return None
    colours: dict[str, str] = {}
    cells = []
    for p in verdicts:
        name = str(p["verdict"])
        if p.get("unknown"):
            colour, shown = UNKNOWN, f"unknown (nearest {name})"
        elif is_normal(name):
            colour, shown = NORMAL, name
        else:
            colour, shown = colours.setdefault(name, PALETTE[len(colours) % len(PALETTE)]), name
        probability = p.get("verdict_probability")
        title = f"{when(p['time'])}: {shown}" + (f", probability {probability:.2f}" if probability is not None else "") \
            + (f", runner-up {p['runner_up']}" if p.get("runner_up") else "")
        cells.append({"time": p["time"], "class": shown, "colour": colour, "title": title})
    legend = sorted({(c["class"] if c["colour"] != UNKNOWN else "unknown", c["colour"]) for c in cells})
    return {"cells": cells, "legend": legend, "first": when(verdicts[0]["time"]), "last": when(verdicts[-1]["time"])}


def when(time: float) -> str:
    """A window's time to the millisecond (windows of 2,048 samples at 12 kHz are 0.17 s apart): a UTC date for epoch
    seconds, else the machine's own count."""
    from shopfloor.stream.machines import EPOCH_SECONDS

    if time >= EPOCH_SECONDS:
        import datetime as dt

        return dt.datetime.fromtimestamp(time, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    return f"time {time:g}"
