"""Which live models score which machines, and scoring a batch of readings with one forward pass per model.

The stream asks each model's class what it takes (`accepts`, the estimator contract in tasks/base.py): a
model of table rows or of run histories may score sensor readings; images and process settings are never
loaded here. A machine is scored by every live model whose input columns its readings carry: a model of
rows that gives a failure risk (a yes/no table model) gives a risk per reading; a model of run histories
(RUL) gives the remaining useful life with its interval at the newest reading of each message (every reading
moves the window one cycle; the estimates of a whole batch come from one forward pass, and depend on the
messages, not on the batching); a model of rows that gives an anomaly score (a sensor-monitoring model) scores
every reading after its machine's latest steps (`stream.sequences`), a message's readings as one sequence, with
the sensors behind each score; a fault-diagnosis model (a model of runs that reads windows of samples) scores the
blocks of high-rate samples that carry its channels, every window they complete (`stream.blocks`). Risk, RUL with
its interval, the score with its sensors and the verdict are the line's quantities: the store keeps them in their
own columns (risk; rul, rul_low, rul_high; score, score_sensors; verdict, verdict_probability, runner_up, unknown),
whatever task gives them.
The registry is asked every few seconds whether another version went
live; a promotion or a rollback takes effect at the next batch. A new RUL version starts with empty
windows when its window length or columns differ.
"""

from __future__ import annotations

import logging
import time as clock
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
import pandas as pd

from shopfloor.alarms import AlarmRule
from shopfloor.registry import Registry, settle_memory
from shopfloor.stream.blocks import Blocks, refusal
from shopfloor.stream.machines import Windows
from shopfloor.stream.sequences import Sequences

log = logging.getLogger("shopfloor.stream")
REFRESH_SECONDS = 2.0
STREAMED = ("rows", "runs")  # what a model must take (`accepts`) to score sensor readings


@dataclass
class Scorer:
    name: str
    version: int
    # "risk" or "score" (per reading, a model of rows), "rul" (per message, a model of run histories) or "verdict" (per
    # window of a block of samples, a fault-diagnosis model)
    kind: str
    columns: frozenset
    estimator: object
    threshold: float | None = None  # the risk model's alarm threshold
    windows: Windows | Sequences | Blocks | None = None  # the RUL, monitor or diagnose model's per-machine windows
    numeric: frozenset = frozenset()  # inputs that must be numbers
    alarm: AlarmRule | None = None  # the model's own alarm rule from the registry (None: the worker's default)
    normal: str | None = None  # a fault-diagnosis model's class for the machine's normal state

    @property
    def features(self) -> list[str]:
        return self.estimator.input_columns


def streamed(manifest: dict) -> bool:
    """Whether the stream may apply a saved model, from its manifest alone: it must take readings (`accepts`) and
    give a value the line judges (`gives`), so images, optimisers and forecasters are not loaded.
    A task this shopfloor does not know is not applied (said once: the version is then skipped)."""
    from shopfloor.errors import NotAModel
    from shopfloor.tasks import estimator_class

    try:
        estimator = estimator_class(manifest.get("task", "?"))
        return estimator.accepts in STREAMED and bool(estimator.gives)
    except NotAModel as err:
        log.warning("%s; the stream skips it", err)
        return False


def scorer_for(name: str, version: int, estimator) -> Scorer | None:
    """A scorer for a live model, or None for a model the stream does not apply (images, regression, ...).

    A model of rows that gives a failure risk scores each reading; a model of run histories keeps a window of
    each machine's cycles and scores the newest reading of each message; a model of rows that gives an anomaly
    score keeps each machine's latest steps and scores every reading; a fault-diagnosis model keeps each machine's
    samples that wait for a full window and scores every window its blocks complete."""
    accepts = type(estimator).accepts
    if accepts == "runs" and "fault_run" in estimator.quantities():
        from shopfloor.tasks.diagnose.records import normal_class

        channels = list(estimator.channels_)
        return Scorer(name, version, "verdict", frozenset(channels), estimator, normal=normal_class(estimator),
                      windows=Blocks(channels, estimator.window, estimator.sample_rate_))
    if accepts == "rows" and "score" in estimator.quantities():
        sensors, net = estimator.sensor_columns_, estimator.net_
        sequences = Sequences(sensors, net.reach(), estimator.step_, estimator.max_gap, net.mean.numpy())
        return Scorer(name, version, "score", frozenset(sensors), estimator, windows=sequences, numeric=frozenset(sensors))
    if accepts == "rows" and "risk" in estimator.quantities():
        columns = estimator.input_columns
        return Scorer(name, version, "risk", frozenset(columns), estimator, estimator.risk_threshold,
                      numeric=frozenset(estimator.numeric_columns))
    if accepts == "runs" and "rul" in estimator.quantities():  # not a diagnose model: its runs are recordings
        columns = estimator.input_columns
        return Scorer(name, version, "rul", frozenset(columns), estimator,
                      windows=Windows(columns, estimator.window, estimator.baseline_cycles), numeric=frozenset(columns))
    return None


class Models:
    """The live models of a registry that the stream applies, kept current with promotions."""

    def __init__(self, registry: Registry | None, names: list[str] | None = None):
        self.registry, self.names = registry, list(names) if names else None
        self.scorers: dict[str, Scorer] = {}
        self._checked = -np.inf
        self._by_columns: dict[frozenset, list[Scorer]] = {}
        self._skipped: set[tuple[str, int]] = set()  # live versions the stream cannot use (regression, images ...)
        self.refresh(force=True)

    @property
    def numeric(self) -> frozenset:
        """Columns that some live model reads as numbers: text there makes a message a dead letter."""
        return frozenset().union(*(s.numeric for s in self.scorers.values()))

    def refresh(self, force: bool = False) -> bool:
        """Load versions that went live since the last look; True when anything changed."""
        if self.registry is None or (not force and clock.monotonic() - self._checked < REFRESH_SECONDS):
            return False
        self._checked = clock.monotonic()
        changed = False
        names = self.names if self.names is not None else self.registry.names()
        for name in names:
            try:
                version = self.registry.live_version(name)
                current = self.scorers.get(name)
                if current and current.version == version:
                    current.alarm = self._alarm(name, current.alarm)  # set with 'shopfloor models alarm' meanwhile
                    continue
                if version is None or (name, version) in self._skipped:
                    continue
                if not streamed(self.registry.manifest(name, version)):  # images, optimisers: not loaded
                    self._skipped.add((name, version))
                    continue
                live = self.registry.live(name)
                scorer = scorer_for(name, live.version, live.estimator)
            except Exception as err:  # a half-written or damaged model must not stop the stream
                log.warning("model %s could not be loaded and is skipped: %s", name, err)
                continue
            if scorer is None:
                if self.names is not None:
                    log.warning("model %s (%s) gives no failure risk, RUL or anomaly score; the stream skips it", name,
                                live.task)
                self._skipped.add((name, version))
                continue
            if current and current.windows is not None and type(scorer.windows) is type(current.windows) \
                    and current.windows.columns == scorer.windows.columns \
                    and current.windows.window == scorer.windows.window \
                    and current.windows.baseline == scorer.windows.baseline \
                    and getattr(current.windows, "rate", None) == getattr(scorer.windows, "rate", None):
                scorer.windows = current.windows  # same inputs: the machines keep their history
            scorer.alarm = self._alarm(name, None)
            log.info("scoring with %s v%d (%s)", name, scorer.version, scorer.kind)
            self.scorers[name] = scorer
            changed = True
        if changed:
            self._by_columns.clear()
            settle_memory(forgotten=True)  # a worker runs for months: no collector pauses over the models
        return changed

    def _alarm(self, name: str, current: AlarmRule | None) -> AlarmRule | None:
        try:
            return self.registry.alarm(name)
        except Exception as err:  # a hand-edited rule that cannot be read: keep the one in force
            log.warning("the alarm rule of model %s cannot be read (%s); the one in force stays", name, err)
            return current

    def for_columns(self, columns: frozenset) -> list[Scorer]:
        """The scorers whose every input column is among a reading's columns (a diagnose model reads blocks only)."""
        scorers = self._by_columns.get(columns)
        if scorers is None:
            scorers = self._by_columns[columns] = [s for s in self.scorers.values()
                                                   if s.columns <= columns and s.kind != "verdict"]
        return scorers

    def for_block(self, channels) -> list[Scorer]:
        """The fault-diagnosis scorers whose every channel a block of samples carries."""
        return [s for s in self.block_scorers() if s.columns <= frozenset(channels)]

    def block_scorers(self) -> list[Scorer]:
        return [s for s in self.scorers.values() if s.kind == "verdict"]

    def refusal(self, reading: dict) -> str | None:
        """Why a block cannot be scored by a live model whose channels it carries (its rate is another), or None (and
        for readings that are not blocks)."""
        block = reading.get("block")
        if block is None:
            return None
        for scorer in self.for_block(block["channels"]):
            reason = refusal(block["rate"], scorer.estimator.sample_rate_, scorer.name, scorer.version)
            if reason:
                return reason
        return None

    def tails(self) -> list[dict]:
        """The waiting samples of blocks (`stream.blocks`) changed since the last call, as the store's rows."""
        rows = []
        for scorer in self.block_scorers():
            if scorer.windows.dirty:
                keys = {slot: key for key, slot in scorer.windows.slots.items()}
                rows += scorer.windows.dirty_tails(scorer.name, keys)
        return rows


def score_risk(scorer: Scorer, readings: list[dict]) -> np.ndarray:
    """Failure probability per reading: one forward pass for the whole list. A reading the model refuses
    (a value such as 1e308, far beyond any reading) gets no risk (NaN); the others of the batch keep theirs."""
    from shopfloor.errors import BadColumn

    features = scorer.features
    frame = pd.DataFrame([r["values"] for r in readings], columns=features)
    try:
        return np.asarray(scorer.estimator.predict_proba(frame))[:, 0].astype(np.float64)
    except BadColumn as err:
        if len(readings) == 1:
            log.warning("model %s v%d refused a reading of %s/%s: %s", scorer.name, scorer.version,
                        readings[0].get("line"), readings[0].get("machine"), err)
            return np.array([np.nan])
        half = len(readings) // 2  # halves until the refused readings are alone: a few passes, not one per reading
        return np.concatenate([score_risk(scorer, readings[:half]), score_risk(scorer, readings[half:])])


def _seed(windows: Windows, key: tuple[str, str], stored: dict | None) -> None:
    slot = windows.slot_of(key)
    if not stored or not stored["count"]:
        return
    try:
        first = _matrix([{"values": v} for v in stored["first"]], windows.columns)
        last = _matrix([{"values": v} for v in stored["last"]], windows.columns)
    except KeyError:  # stored under other sensors (an older model's): start afresh
        return
    windows.seed(slot, first, last, stored["count"], stored["newest"])


def _matrix(readings: list[dict], columns: list[str]) -> np.ndarray:
    """[readings, columns] float32 of the readings' values; null (missing) becomes NaN.

    `itemgetter` pulls a reading's columns in one C call: a Python loop over columns was the worker's
    largest single cost at 20,000 readings/s.
    """
    pick = itemgetter(*columns) if len(columns) > 1 else (lambda values: (values[columns[0]],))
    rows = [pick(r["values"]) for r in readings]
    try:
        return np.array(rows, dtype=np.float32)
    except TypeError:  # a null somewhere: the slow path
        return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float32)


def score_rul(scorer: Scorer, readings: list[dict], histories=None) -> tuple[list[dict], np.ndarray]:
    """Add the readings to the machines' windows; RUL, low, high [scored readings, 3].

    Every reading goes into its machine's window; the RUL is estimated at the newest reading of each message
    (a gateway's block of cycles), which depends on what the gateway sent, not on how the worker batched it.
    At 25 readings per message, an estimate per reading cost 25 forward passes and stored rows per message and
    cut the line from 20,000 to about 13,000 readings/s.

    `histories(machines, first, last)` (the store's) gives what machines sent before this worker first
    heard of them: its window then starts from the machine's stored first and last readings and its count,
    as the batch path starts from the whole history, instead of from nothing (a restarted worker would
    otherwise take a worn machine for a new one). The readings go in round by round (each machine's oldest
    first) and the window of each scored reading is taken as it stands after it, so that its estimate is the
    same however the readings were batched. Returns the scored readings (each machine's in time order) and
    their estimates; one forward pass for all of them.
    """
    windows = scorer.windows
    columns = windows.columns
    new = {(r["line"], r["machine"]) for r in readings} - windows.slots.keys()
    if histories is not None and new:
        for key, stored in histories(new, windows.baseline, windows.window).items():
            _seed(windows, key, stored)
    slots = np.fromiter((windows.slot_of((r["line"], r["machine"])) for r in readings), np.int64, len(readings))
    times = np.fromiter((r["time"] for r in readings), np.float64, len(readings))
    values = _matrix(readings, columns)
    order = np.lexsort((times, slots))
    sorted_slots = slots[order]
    starts = np.flatnonzero(np.r_[True, sorted_slots[1:] != sorted_slots[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    scored, inputs = [], []
    for r in range(int(rank.max()) + 1 if len(order) else 0):
        rows = order[rank == r]  # at most one reading per machine
        rows = rows[windows.add(slots[rows], times[rows], values[rows])]
        rows = rows[[readings[i].get("newest", True) for i in rows.tolist()]]  # one estimate per message
        if len(rows):
            scored.extend(rows.tolist())
            inputs.append(windows.inputs(slots[rows]))
    if not scored:
        return [], np.zeros((0, 3))
    history, start, age = (np.concatenate(parts) for parts in zip(*inputs, strict=True))
    return [readings[i] for i in scored], scorer.estimator.predict_windows(history, start, age)


def score_readings(scorer: Scorer, readings: list[dict], histories=None) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """A monitor model's anomaly score of every reading (0-1, anomaly at 0.5) and the sensors behind it; returns the
    scored readings (each machine's together, in time order), their scores and contributions [readings, sensors]
    (`sensor_shares` names the top ones).

    A fleet model's readings go into its rings in the units its network learnt (each machine from its own level:
    `in_fleet_units`). Each machine's readings are scored after the steps before them that its ring holds
    (`stream.sequences`), so a score is the one `predict` gives that reading in the machine's whole history,
    however the readings were batched; the sequences of a batch go through the network in one pass per length
    (one in a running line).
    `histories`: as for `score_rul`, a machine first heard of starts from what the store holds of it."""
    sequences = scorer.windows
    new = {(r["line"], r["machine"]) for r in readings} - sequences.slots.keys()
    if histories is not None and new:
        for key, stored in histories(new, sequences.baseline, sequences.window).items():
            if not stored["count"]:
                continue
            try:
                last = _matrix([{"values": v} for v in stored["last"]], sequences.columns)
            except KeyError:  # stored under other sensors (an older model's): start afresh
                continue
            last = scorer.estimator.in_fleet_units(last, [key[1]] * len(last))
            sequences.restore(sequences.slot_of(key), stored["times"], last)
    slots = np.fromiter((sequences.slot_of((r["line"], r["machine"])) for r in readings), np.int64, len(readings))
    times = np.fromiter((r["time"] for r in readings), np.float64, len(readings))
    values = scorer.estimator.in_fleet_units(_matrix(readings, sequences.columns), [r["machine"] for r in readings])
    rows, scores, contributions = [], [], []
    for group in sequences.take(slots, times, values):
        score, contribution = scorer.estimator.score_windows(group.inputs, group.newest)
        rows.append(group.rows)
        scores.append(score[group.sequence, group.step])
        contributions.append(contribution[group.sequence, group.step])
    if not rows:
        return [], np.zeros(0), np.zeros((0, len(sequences.columns)), np.float32)
    rows, scores, contributions = np.concatenate(rows), np.concatenate(scores), np.concatenate(contributions)
    order = np.lexsort((times[rows], slots[rows]))
    return [readings[i] for i in rows[order].tolist()], scores[order].astype(np.float64), contributions[order]


def sensor_shares(sensors: list[str], contributions: np.ndarray, top: int = 3) -> list[str]:
    """"flow 0.62, pressure 0.21, current 0.09" per row of contributions [rows, sensors]: the `top` sensors behind
    each score, with their shares of its contributions (as `predict`'s sensor_1..3 and share_1..3)."""
    if not len(contributions):
        return []
    shares = contributions / np.maximum(contributions.sum(1, keepdims=True), 1e-12)
    best = np.argsort(-contributions, axis=1, kind="stable")[:, :top]
    picked = np.take_along_axis(shares, best, axis=1).tolist()
    return [", ".join(f"{sensors[j]} {share:.2f}" for j, share in zip(row, values, strict=True))
            for row, values in zip(best.tolist(), picked, strict=True)]
