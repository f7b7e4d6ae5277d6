"""Readings stamped implausibly far ahead are quarantined: one of them must not freeze a machine's state.

A machine's state (its latest risk and RUL, its alarm) follows its newest reading, and a reading older than
the newest is taken for a late redelivery, which must not turn the clock back. So one stamp from the future
(`time` 1e308, or one epoch-millisecond stamp in a stream of epoch seconds) became the machine's newest for
good: every later reading looked late, failing readings raised no alert, and the machines table brought the
frozen state back at every restart. Two rules keep such readings out, for both kinds of machine clock:

- ahead of the wall clock: a time more than `ahead_of_clock` seconds past now is no reading that exists yet,
  whatever the clock (cycle numbers stay far below today's epoch seconds, 1.7e9);
- a jump, where times are cycle numbers (below EPOCH_FLOOR; epoch seconds may jump over a stop of any length,
  the wall clock bounds them): more than `jump_steps` of the machine's typical step past its newest reading.
  A machine whose counter really moved on confirms it: `confirm` readings in a row past the jump start its
  new timeline, while a lone glitch between ordinary readings never does.

A quarantined reading is neither stored nor scored nor counted in the machine's time: the worker sends it to
the dead letters with the reason. Late readings (at or before the newest) pass: the usual rules apply to them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("shopfloor.stream")
EPOCH_FLOOR = 1e9  # 2001-09-09 as epoch seconds: a clock past it counts epoch seconds, below it cycles
AHEAD_OF_CLOCK = 300.0  # seconds a gateway's clock may run ahead of the worker's
JUMP_STEPS = 1_000
CONFIRM = 3


@dataclass
class Track:
    newest: float
    step: float | None = None  # typical time between readings (moving average); None until a second reading
    jumps: int = 0  # readings in a row past a jump, not yet taken for the machine's new timeline


class Stamps:
    """Per machine: the newest accepted time and the typical step, to judge each new reading's time."""

    def __init__(self, ahead_of_clock: float = AHEAD_OF_CLOCK, jump_steps: float = JUMP_STEPS, confirm: int = CONFIRM):
        self.ahead_of_clock, self.jump_steps, self.confirm = ahead_of_clock, jump_steps, confirm
        self.tracks: dict[tuple[str, str], Track] = {}

    def restore(self, rows: list[dict], now: float) -> list[dict]:
        """The machines table's rows with each one's time as the newest; a time beyond the clock (stored before
        this check existed) is dropped from the returned rows, so that it freezes nothing after a restart."""
        out = []
        for row in rows:
            time = row.get("time")
            if time is not None and time > now + self.ahead_of_clock:
                log.warning("%s on %s: its stored time %g is ahead of the clock; the next reading sets it again",
                            row["machine"], row["line"], time)
                row = {**row, "time": None}
            elif time is not None:
                self.tracks[(row["line"], row["machine"])] = Track(float(time))
            out.append(row)
        return out

    def check(self, line: str, machine: str, time: float, now: float) -> str | None:
        """None when the reading may go on (its machine's track moves on), else why it is quarantined."""
        if time > now + self.ahead_of_clock:
            return (f"{machine} on {line}: time {time:g} is {_span(time - now)} ahead of the clock; send epoch "
                    "seconds (not milliseconds) or cycle numbers")
        track = self.tracks.get((line, machine))
        if track is None:
            self.tracks[(line, machine)] = Track(time)
            return None
        gap = time - track.newest
        if gap <= 0:
            return None
        if track.newest < EPOCH_FLOOR and track.step and gap > self.jump_steps * track.step:
            track.jumps += 1
            if track.jumps < self.confirm:
                return (f"{machine} on {line}: time {time:g} jumps {gap:g} past its newest reading {track.newest:g}, "
                        f"over {self.jump_steps:g} times its usual step of {track.step:g}; {self.confirm} readings "
                        "in a row past such a jump start its new timeline")
            gap = track.step  # the new timeline starts here, at the machine's usual pace
        track.step = gap if track.step is None else 0.9 * track.step + 0.1 * gap
        track.newest, track.jumps = time, 0
        return None


def _span(seconds: float) -> str:
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:,.3g} {unit}"
    return f"{seconds:.0f} s"
