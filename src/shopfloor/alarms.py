"""Alarm rules with hysteresis: when a machine enters the alarm state of a model, and when it leaves it.

An alert means one thing: a machine *entered* alarm. A rule names the value it watches and two levels,

    enter "rul<=20"   clear "rul>=30"

and the state moves off -> on when the enter condition holds, on -> off when the clear condition holds, and
stays where it is in between. Without that gap a value that wobbles around one level (a failure risk near its
threshold, a RUL estimate near 20 cycles) raised an alert at every wobble and swamped the operators.

The values a rule may watch are those the stream stores per reading: `risk` (a failure model's probability of
failure, 0-1), `rul`, `rul_low`, `rul_high` (a RUL model's estimate and its 90 % interval), `score` (a
sensor-monitoring model's anomaly score, 0-1, anomaly at 0.5) and `fault_run` (a fault-diagnosis model's windows in
a row whose verdict is a fault class or unknown, counted negative for windows in a row of the normal class). Each task
declares which of them it gives (`gives` on its estimator class); a rule set on a model is checked against its
class, so a new task that gives one of these values needs no line here. A rule belongs to a model in the
registry (`shopfloor models alarm`), so that the plant sets it where it knows the model.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from shopfloor.errors import ShopfloorError

# the values an alarm may watch: those the line stores (`store`'s prediction columns), in words for messages
WORDS = {"risk": "failure risk", "rul": "remaining useful life", "rul_low": "low end of the RUL interval",
         "rul_high": "high end of the RUL interval", "score": "anomaly score",
         "fault_run": "fault run (windows in a row with a fault verdict)"}
# the kinds of prediction the line stores, each with its own columns in the store (risk; rul, rul_low, rul_high;
# score, score_sensors; verdict, verdict_probability, runner_up, unknown): a failure risk per reading, a remaining
# useful life with its interval per message, an anomaly score with the sensors behind it per reading, a fault verdict
# per window of a block of samples. An alert has one of them.
KINDS = ("risk", "rul", "score", "verdict")
ALERT_KINDS = (*KINDS, "drift")  # an alert's kind: a prediction's, or an input that drifts (`watch.line`)
SCORE_ALARM, SCORE_CLEAR = 0.5, 0.4  # a monitor model's default rule: its own decision level in, clear a step lower
# A fault-diagnosis model's default rule: alarm after 3 windows in a row with a fault verdict (a fault class or
# unknown), clear after 3 in a row of the normal class. One window of 2,048 samples at 12 kHz is 0.17 s, so 3 take
# half a second; a model right on 99.5 % of windows (CWRU's target) that erred independently would raise a false
# alarm on a healthy machine once in 8 million windows at 3, and about every 200 windows (half a minute) at 1.
FAULT_WINDOWS, NORMAL_WINDOWS = 3, 3
OPERATORS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
OPPOSITE = {"<=": ">", "<": ">=", ">=": "<", ">": "<="}
CONDITION = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def givers(quantity: str) -> list[type]:
    """The estimator classes that give `quantity`, in the registry's order (for messages: it imports every task)."""
    from shopfloor.tasks import TASKS, estimator_class

    return [cls for cls in map(estimator_class, TASKS) if quantity in cls.gives]


def described(cls) -> str:
    """The model in a few words ("a remaining-useful-life model"), also for a task that declares none."""
    return cls.described_as or f"a {cls.task_name} model"


def plural(cls) -> str:
    """"remaining-useful-life models" from "a remaining-useful-life model"."""
    return described(cls).split(" ", 1)[-1] + "s"


class BadAlarm(ShopfloorError):
    """An alarm rule that cannot be read, or does not fit the model it is set on."""


@dataclass(frozen=True)
class Condition:
    quantity: str
    op: str
    level: float

    @classmethod
    def parse(cls, text: str, role: str = "alarm") -> Condition:
        match = CONDITION.match(str(text))
        if match is None:
            raise BadAlarm(f"'{text}' is not an {role} condition: write VALUE OP LEVEL, e.g. 'rul<=20' or 'risk>=0.7' "
                           f"(values: {', '.join(WORDS)}; OP: <=, >=, <, >)")
        quantity, op, level = match.groups()
        if quantity not in WORDS:
            raise BadAlarm(f"'{quantity}' in '{text}' is not a value an alarm can watch: use one of "
                           f"{', '.join(WORDS)}")
        return cls(quantity, op, float(level))

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.level)

    @property
    def upward(self) -> bool:
        """True for 'at or above' conditions (>, >=)."""
        return self.op.startswith(">")

    @property
    def text(self) -> str:
        return f"{self.quantity}{self.op}{self.level:g}"


@dataclass(frozen=True)
class AlarmRule:
    """Enter the alarm when `enter` holds, leave it when `clear` holds; in between the state stays."""

    enter: Condition
    clear: Condition

    @classmethod
    def parse(cls, enter: str, clear: str | None = None, task: str | None = None) -> AlarmRule:
        """A rule from its two conditions; without `clear` the alarm leaves as soon as `enter` no longer holds.

        `task` (the model's, e.g. "rul"): checks that the model's class gives the value the rule watches."""
        on = Condition.parse(enter)
        off = Condition.parse(clear, "alarm-clearing") if clear else Condition(on.quantity, OPPOSITE[on.op], on.level)
        if off.quantity != on.quantity:
            raise BadAlarm(f"the alarm enters on {on.quantity} ('{on.text}') but clears on {off.quantity} "
                           f"('{off.text}'): both must watch the same value")
        if off.upward == on.upward:
            raise BadAlarm(f"the clearing condition '{off.text}' points the same way as the alarm '{on.text}': it "
                           f"must be on the other side (e.g. enter 'rul<=20', clear 'rul>=30')")
        if _overlap(on, off):
            raise BadAlarm(f"'{on.text}' and '{off.text}' both hold at some values: the clearing level must lie beyond "
                           f"the alarm level (e.g. enter 'rul<=20', clear 'rul>=30')")
        if task is not None:
            _check_given(on, task)
        return cls(on, off)

    @classmethod
    def from_dict(cls, data: dict) -> AlarmRule:
        return cls.parse(data["enter"], data.get("clear"))

    def as_dict(self) -> dict:
        return {"enter": self.enter.text, "clear": self.clear.text}

    @property
    def quantity(self) -> str:
        return self.enter.quantity

    def next(self, on: bool, value: float) -> bool:
        """The alarm state after a reading whose watched value is `value`, from state `on` before it."""
        return not self.clear.holds(value) if on else self.enter.holds(value)

    @property
    def text(self) -> str:
        return f"{self.enter.text} (clears at {self.clear.text})"


def _check_given(on: Condition, task: str) -> None:
    """Refuse a rule on a value the model's task does not give, naming the models that give it."""
    from shopfloor.tasks import estimator_class

    model = estimator_class(task)
    if on.quantity in model.gives:
        return
    those = " and ".join(plural(c) for c in givers(on.quantity)) or "no models of this shopfloor"
    raise BadAlarm(f"'{on.text}' watches {WORDS[on.quantity]}, which only {those} give; this model's task is "
                   f"'{task}'" + (f" (use {', '.join(model.gives)})" if model.gives else ""))


def _overlap(on: Condition, off: Condition) -> bool:
    """Whether some value satisfies both conditions (which point opposite ways)."""
    low, high = (off, on) if on.upward else (on, off)  # `low` holds below its level, `high` above its own
    if high.level < low.level:
        return True
    return high.level == low.level and high.op == ">=" and low.op == "<="


def risk_rule(threshold: float) -> AlarmRule:
    """A failure model's rule when none is set: its own decision threshold, at or above it the model says failure."""
    return AlarmRule(Condition("risk", ">=", float(threshold)), Condition("risk", "<", float(threshold)))


def rul_rule(cycles: float) -> AlarmRule:
    """The stream's `--rul-alert N` for RUL models without a rule of their own: the interval's low end at or below N."""
    return AlarmRule(Condition("rul_low", "<=", float(cycles)), Condition("rul_low", ">", float(cycles)))


def score_rule(enter: float = SCORE_ALARM, clear: float = SCORE_CLEAR) -> AlarmRule:
    """A monitor model's rule when none is set: anomaly at its decision level (0.5), clearing only below 0.4, so
    that a score that wobbles around 0.5 through an event raises one alert, not one per wobble."""
    return AlarmRule(Condition("score", ">=", float(enter)), Condition("score", "<", float(clear)))


def verdict_rule(faults: int = FAULT_WINDOWS, normal: int = NORMAL_WINDOWS) -> AlarmRule:
    """A fault-diagnosis model's rule when none is set: `faults` windows in a row with a fault verdict enter the alarm,
    `normal` windows in a row of the normal class clear it (a verdict that flickers keeps the state it has)."""
    return AlarmRule(Condition("fault_run", ">=", float(faults)), Condition("fault_run", "<=", -float(normal)))


def show(quantity: str, value: float) -> str:
    """A watched value as people read it: a risk in percent, a score with two decimals, cycles as whole numbers."""
    if quantity == "fault_run":
        return f"{value:.0f}"
    if quantity == "score":
        return f"{value:.2f}"
    return f"{100 * value:.0f} %" if quantity == "risk" else f"{value:.0f} cycles"
