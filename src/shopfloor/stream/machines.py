"""What the stream worker remembers per machine: the recent cycles a RUL model needs, and its alarm states.

Windows live in a few large numpy arrays, one slot per machine, rather than in Python objects per
machine: 10,000 machines with a 40-cycle window of 17 settings and sensors take 10,000 x (40 + 10) x 17
float32 = 34 MB, and a batch's windows come out with one fancy-indexing gather. A slot holds a ring of
the last `window` cycles, the machine's first `baseline` cycles (its as-new readings, which the RUL
network compares against) and how many cycles it has seen (its age).

A reading whose time is not later than the newest one already in a machine's window is left out of
the window: after a broker restart, QoS 1 may deliver a batch twice, and the second copy must not look
like a machine that repeated its last cycles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from shopfloor.alarms import WORDS, AlarmRule, show


class MachineSlots:
    """One slot per machine (line, machine) in arrays whose first axis is the slot and doubles when full.
    `GROWN` names the arrays and what a new slot holds."""

    GROWN: ClassVar[dict[str, float]] = {}
    slots: dict[tuple[str, str], int]
    seen: np.ndarray

    def __len__(self) -> int:
        return len(self.slots)

    def slot_of(self, key: tuple[str, str]) -> int:
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = len(self.slots)
            if slot >= len(self.seen):
                self._grow(2 * len(self.seen))
        return slot

    def _grow(self, capacity: int) -> None:
        for name, fill in self.GROWN.items():
            array = getattr(self, name)
            bigger = np.full((capacity, *array.shape[1:]), fill, array.dtype)
            bigger[:len(array)] = array
            setattr(self, name, bigger)


class Windows(MachineSlots):
    """Ring buffers of raw readings (in one model's column order) for many machines."""

    GROWN: ClassVar[dict[str, float]] = {"ring": 0, "first": 0, "seen": 0, "newest": -np.inf, "gappy": False}

    def __init__(self, columns: list[str], window: int, baseline: int, capacity: int = 256):
        self.columns = list(columns)
        self.window, self.baseline = int(window), max(int(baseline), 1)
        self.slots: dict[tuple[str, str], int] = {}
        features = len(self.columns)
        self.ring = np.zeros((capacity, self.window, features), np.float32)
        self.first = np.zeros((capacity, self.baseline, features), np.float32)
        self.seen = np.zeros(capacity, np.int64)
        self.newest = np.full(capacity, -np.inf)
        self.gappy = np.zeros(capacity, bool)  # machines with a sensor that has been null since their first reading

    @property
    def nbytes(self) -> int:
        return self.ring.nbytes + self.first.nbytes + self.seen.nbytes + self.newest.nbytes

    def add(self, slots: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Append readings (any order, several per machine); returns which ones were new to their window.

        slots [n] int, times [n] float, values [n, features] in `columns` order. Each round adds at
        most one reading per machine, so the ring writes of one round never collide.
        """
        slots, times = np.asarray(slots, np.int64), np.asarray(times, np.float64)
        values = np.asarray(values, np.float32)
        accepted = np.zeros(len(slots), bool)
        if not len(slots):
            return accepted
        order = np.lexsort((times, slots))
        sorted_slots = slots[order]
        group_start = np.r_[True, sorted_slots[1:] != sorted_slots[:-1]]
        starts = np.flatnonzero(group_start)
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        for r in range(int(rank.max()) + 1):
            rows = order[rank == r]
            s, t = slots[rows], times[rows]
            new = t > self.newest[s]
            rows, s, t = rows[new], s[new], t[new]
            seen = self.seen[s]
            fresh = values[rows]
            gaps = np.isnan(fresh) & (seen > 0)[:, None]
            if gaps.any():  # a sensor that sent null holds its last value (the batch path interpolates instead)
                fresh[gaps] = self.ring[s, (seen - 1) % self.window][gaps]
            self.ring[s, seen % self.window] = fresh
            young = seen < self.baseline
            self.first[s[young], seen[young]] = fresh[young]
            self._fill_first_gaps(s, fresh)
            self.seen[s] = seen + 1
            self.newest[s] = t
            accepted[rows] = True
        return accepted

    def _fill_first_gaps(self, slots: np.ndarray, fresh: np.ndarray) -> None:
        """A sensor null since a machine's first reading has nothing to hold: its earlier cycles take the first
        value that arrives (as the batch path back-fills the start of a run), else its as-new baseline would
        stay unknown for good. Only machines that ever sent such a gap are looked at."""
        self.gappy[slots[np.isnan(fresh).any(1)]] = True
        for i in np.flatnonzero(self.gappy[slots]):
            slot, value = slots[i], fresh[i]
            for block in (self.ring[slot], self.first[slot]):
                holes = np.isnan(block) & ~np.isnan(value)[None, :]
                block[holes] = np.broadcast_to(value, block.shape)[holes]
            self.gappy[slot] = bool(np.isnan(self.ring[slot]).any() or np.isnan(self.first[slot]).any())

    def seed(self, slot: int, first: np.ndarray, last: np.ndarray, count: int, newest: float) -> None:
        """Start a machine's window from its stored history: its first readings (up to `baseline`), its last
        ones (up to `window`, oldest first), how many it sent and the time of the newest."""
        self.first[slot, :len(first)] = first[:self.baseline]
        last = last[-self.window:]
        cycles = np.arange(count - len(last), count)
        self.ring[slot, cycles % self.window] = last
        self.seen[slot], self.newest[slot] = count, newest
        self.gappy[slot] = bool(np.isnan(self.ring[slot]).any() or np.isnan(self.first[slot]).any())

    def inputs(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The RUL network's raw inputs at each machine's newest cycle: history, start, age.

        Padding as in training: while a machine has fewer than `window` cycles, its first cycle
        repeats at the front (cycle 0 is still in ring position 0 then); while it has fewer than
        `baseline` cycles, its newest early cycle repeats at the back of `start`.
        """
        slots = np.asarray(slots, np.int64)
        seen = self.seen[slots]
        cycle = seen[:, None] - self.window + np.arange(self.window)[None, :]
        history = self.ring[slots[:, None], np.maximum(cycle, 0) % self.window]
        early = np.minimum(np.arange(self.baseline)[None, :], np.maximum(seen - 1, 0)[:, None])
        start = self.first[slots[:, None], early]
        return history, start, seen.astype(np.float32)


@dataclass
class MachineState:
    """A machine's latest predictions and its alarm state per model (one row of the machines table).

    `alarms` maps a model name to where its alarm stands: on or off, the time of the newest reading it judged
    (a reading not later than that is a duplicate or arrived late, and is not judged again), and while on, the
    rule and the value that tripped it. It is stored with the machine, in the batch's transaction, so that a
    restarted worker continues each alarm where the last one left it."""

    line: str
    machine: str
    time: float | None = None
    risk: float | None = None
    risk_threshold: float | None = None
    risk_model: str | None = None
    rul: float | None = None
    rul_low: float | None = None
    rul_high: float | None = None
    rul_model: str | None = None
    score: float | None = None
    score_sensors: str | None = None  # "flow 0.62, pressure 0.21, current 0.09": the sensors behind the score
    score_model: str | None = None
    verdict: str | None = None  # a fault-diagnosis model's latest window: its class, probability, runner-up, unknown
    verdict_probability: float | None = None
    runner_up: str | None = None
    unknown: bool | None = None
    verdict_model: str | None = None
    alarms: dict = field(default_factory=dict)  # model -> {"kind", "version", "on", "judged", "rule", "clear", "value", "since"}

    @property
    def alerting(self) -> bool:
        return any(a.get("on") for a in self.alarms.values())

    def row(self) -> dict:
        return {"line": self.line, "machine": self.machine, "time": self.time, "risk": self.risk,
                "risk_threshold": self.risk_threshold, "risk_model": self.risk_model, "rul": self.rul,
                "rul_low": self.rul_low, "rul_high": self.rul_high, "rul_model": self.rul_model,
                "score": self.score, "score_sensors": self.score_sensors, "score_model": self.score_model,
                "verdict": self.verdict, "verdict_probability": self.verdict_probability, "runner_up": self.runner_up,
                "unknown": self.unknown, "verdict_model": self.verdict_model,
                "alerting": self.alerting, "alarms": json.dumps(self.alarms, separators=(",", ":"))}


class Fleet:
    """Every machine the worker has heard of: its state, and an alert when it enters a model's alarm.

    Every reading is judged, in time order, through the model's `AlarmRule` (enter at one level, leave at
    another): an alert goes out when a machine enters the alarm, not on every reading in it, and the machine
    must leave the alarm before it can raise that model's alert again. What a machine alerts therefore does
    not depend on how the readings were batched, on redeliveries, or on a worker restart in between.
    """

    def __init__(self):
        self.machines: dict[tuple[str, str], MachineState] = {}

    def __len__(self) -> int:
        return len(self.machines)

    def state(self, line: str, machine: str) -> MachineState:
        key = (line, machine)
        state = self.machines.get(key)
        if state is None:
            state = self.machines[key] = MachineState(line, machine)
        return state

    def restore(self, rows: list[dict]) -> None:
        """States from the machines table, so that a restarted worker continues the alarms (and never alerts twice)."""
        for row in rows:
            state = self.machines[(row["line"], row["machine"])] = MachineState(row["line"], row["machine"])
            for name in ("time", "risk", "risk_threshold", "risk_model", "rul", "rul_low", "rul_high", "rul_model",
                         "score", "score_sensors", "score_model", "verdict", "verdict_probability", "runner_up",
                         "unknown", "verdict_model"):
                setattr(state, name, row.get(name))
            state.alarms = json.loads(row["alarms"]) if row.get("alarms") else _older_alarms(row)

    def forget(self, keys) -> None:
        for key in keys:
            self.machines.pop(key, None)

    def risk(self, state: MachineState, time: float, risk: float, threshold: float, model: str, version: int,
             rule: AlarmRule | None) -> dict | None:
        if self._judged(state, model, time):
            return None
        state.risk, state.risk_threshold, state.risk_model = risk, threshold, f"{model}@{version}"
        return self._judge(state, "risk", model, version, rule, time, {"risk": risk})

    def rul(self, state: MachineState, time: float, rul: float, low: float, high: float, model: str, version: int,
            rule: AlarmRule | None) -> dict | None:
        if self._judged(state, model, time):
            return None
        state.rul, state.rul_low, state.rul_high, state.rul_model = rul, low, high, f"{model}@{version}"
        return self._judge(state, "rul", model, version, rule, time, {"rul": rul, "rul_low": low, "rul_high": high})

    def score(self, state: MachineState, time: float, score: float, sensors: str, model: str, version: int,
              rule: AlarmRule | None) -> dict | None:
        """A monitor model's anomaly score of one reading; the alert, when the machine enters the alarm, names the
        sensors behind the score with their shares."""
        if self._judged(state, model, time):
            return None
        state.score, state.score_sensors, state.score_model = score, sensors, f"{model}@{version}"
        return self._judge(state, "score", model, version, rule, time, {"score": score}, sensors)

    def verdict(self, state: MachineState, time: float, verdict: dict, normal: str | None, model: str, version: int,
                rule: AlarmRule | None) -> dict | None:
        """A fault-diagnosis model's verdict on one window (class, probability, runner_up, unknown): the machine's
        fault run (windows in a row with a fault class or unknown; negative, in a row of the `normal` class) moves and
        is judged; it is kept with the alarm state, so a restarted worker counts on. Without a normal class (None) only
        unknown windows count as faults: no class can be told to be the healthy one."""
        if self._judged(state, model, time):
            return None
        faulty = bool(verdict["unknown"]) or (normal is not None and verdict["class"] != normal)
        run = float((state.alarms.get(model) or {}).get("run", 0))
        run = max(run, 0) + 1 if faulty else min(run, 0) - 1
        state.verdict, state.verdict_probability = verdict["class"], verdict["probability"]
        state.runner_up, state.unknown, state.verdict_model = verdict.get("runner_up"), bool(verdict["unknown"]), \
            f"{model}@{version}"
        said = f"unknown (nearest {verdict['class']})" if verdict["unknown"] else verdict["class"]
        detail = f"verdict {said}, probability {verdict['probability']:.2f}" + (
            f", runner-up {verdict['runner_up']}" if verdict.get("runner_up") is not None else "")
        alert = self._judge(state, "verdict", model, version, rule, time, {"fault_run": run}, detail=detail)
        state.alarms[model]["run"] = run
        return alert

    @staticmethod
    def _judged(state: MachineState, model: str, time: float) -> bool:
        """Whether this model has judged a reading of the machine at `time` or later already (a redelivery)."""
        entry = state.alarms.get(model)
        return entry is not None and entry.get("judged") is not None and time <= entry["judged"]

    @staticmethod
    def _judge(state: MachineState, kind: str, model: str, version: int, rule: AlarmRule | None, time: float,
               values: dict, sensors: str | None = None, detail: str | None = None) -> dict | None:
        before = state.alarms.get(model) or {}
        was = bool(before.get("on"))
        if rule is None:  # no alarm for this model (a RUL model without a rule): only remember what was judged
            state.alarms[model] = {"kind": kind, "version": version, "on": False, "judged": time}
            return None
        value = float(values[rule.quantity])
        on = rule.next(was, value)
        entry = {"kind": kind, "version": version, "on": on, "judged": time}
        if on:
            tripped = before if was else {"value": value, "since": time, "rule": rule.enter.text, "clear": rule.clear.text}
            entry.update({k: tripped.get(k) for k in ("value", "since", "rule", "clear")})
        state.alarms[model] = entry
        if not on or was:
            return None
        message = (f"{state.machine} on {state.line}: {WORDS[rule.quantity]} {show(rule.quantity, value)} at "
                   f"{shown_time(time)} meets the alarm rule {rule.enter.text} of model {model} v{version} "
                   f"(the alarm clears at {rule.clear.text})" + (f"; sensors: {sensors}" if sensors else "")
                   + (f"; {detail}" if detail else ""))
        return {"line": state.line, "machine": state.machine, "time": time, "kind": kind, "model": model,
                "version": version, "value": value, "threshold": rule.enter.level, "rule": rule.enter.text,
                "clear": rule.clear.text, "message": message, "sensors": sensors}


def shown_time(time: float) -> str:
    """A reading's time in an alert: a date for seconds since 1970 (a historian's stamps), else the number (cycles)."""
    if time >= EPOCH_SECONDS:
        import datetime as dt

        return dt.datetime.fromtimestamp(time, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"time {time:g}"


EPOCH_SECONDS = 1e8  # 1973 as seconds since 1970; no machine counts this many cycles


def _older_alarms(row: dict) -> dict:
    """Alarm states of a row written before they were stored: a failure model's from its threshold, else whether
    the machine was alerting (a RUL model's then stays on until its rule clears it). Monitor models came later
    than alarm states: no such row has their score."""
    alarms = {}
    for kind in ("risk", "rul"):
        model = row.get(f"{kind}_model")
        if not model:
            continue
        name, _, version = model.rpartition("@")
        if kind == "risk" and row.get("risk") is not None and row.get("risk_threshold") is not None:
            on = row["risk"] >= row["risk_threshold"]
        else:
            on = bool(row.get("alerting")) and "risk" not in {a["kind"] for a in alarms.values() if a["on"]}
        alarms[name] = {"kind": kind, "version": int(version) if version.isdigit() else None, "on": on,
                        "judged": row.get("time"), "value": row.get("risk" if kind == "risk" else "rul_low")}
    return alarms
