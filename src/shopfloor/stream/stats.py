"""What a stream worker counts: messages, readings, predictions, alerts, dead letters, and the latency from a
reading's `sent_at` to the commit of its batch, kept as a histogram so that a run of months stays in constant memory.
"""

from __future__ import annotations

import time as clock
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

LATENCY_BINS = 60_000  # 1 ms bins: a histogram keeps exact-enough percentiles of any run in constant memory


@dataclass
class Stats:
    messages: int = 0
    readings: int = 0
    predictions: int = 0
    alerts: int = 0
    dead_letters: int = 0
    batches: int = 0
    store_retries: int = 0
    scoring_errors: int = 0
    reasons: Counter = field(default_factory=Counter)
    latency_ms: np.ndarray = field(default_factory=lambda: np.zeros(LATENCY_BINS + 1, np.int64))  # sent_at -> commit
    started: float = field(default_factory=clock.time)

    def add_latencies(self, seconds: np.ndarray) -> None:
        bins = np.clip((seconds * 1e3).astype(np.int64), 0, LATENCY_BINS)
        self.latency_ms += np.bincount(bins, minlength=LATENCY_BINS + 1)

    def latency_percentiles(self) -> dict:
        total = int(self.latency_ms.sum())
        if not total:
            return {}
        cumulative = np.cumsum(self.latency_ms)
        out = {f"p{q}_ms": float(np.searchsorted(cumulative, total * q / 100) + 1) for q in (50, 90, 99)}
        return out | {"max_ms": float(np.flatnonzero(self.latency_ms)[-1] + 1), "readings": total}

    def summary(self) -> dict:
        counts = {k: getattr(self, k) for k in ("messages", "readings", "predictions", "alerts", "dead_letters",
                                                "batches", "store_retries", "scoring_errors")}
        return {**counts, "seconds": clock.time() - self.started, "dead_letter_reasons": dict(self.reasons),
                "latency": self.latency_percentiles()}
