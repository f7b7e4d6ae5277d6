"""A process optimiser's answer, computed once per live version: the search takes seconds, the page must not."""

from __future__ import annotations

import threading

_answers: dict[tuple[str, int, int], dict] = {}
_lock = threading.Lock()


def recommendation(live) -> dict:
    """`optimize()` of a live optimiser (`registry.LiveModel`): recommended settings, predictions, experiments."""
    key = (live.name, live.version, id(live.estimator))  # the loaded model itself: two registries may share a name
    with _lock:  # two first visitors must not both start a search of several seconds
        if key not in _answers:
            _answers[key] = live.estimator.optimize()
        return _answers[key]
