"""The RUL network's inputs cut from run histories: for every cycle (or each unit's last), the window of the
last `window` cycles, the unit's first cycles (its as-new readings) and its age.
"""

from __future__ import annotations

import numpy as np
import torch


def run_windows(values: np.ndarray, unit_ids: np.ndarray, window: int, baseline_cycles: int,
                last_only: bool = False) -> tuple[tuple[torch.Tensor, ...], np.ndarray, np.ndarray, np.ndarray]:
    """Windows of raw settings + sensors (`values`, rows grouped by unit in time order) ending at every cycle (or
    the last) of every unit.

    Returns the network's inputs (history [windows, window, features], padded at the front with the unit's first
    cycle; the unit's first `baseline_cycles` cycles, the last repeated while it has fewer; its age in cycles),
    the uncapped RUL at each window's end (training runs end in failure), the unit index of each window and each
    unit's length.
    """
    starts = np.flatnonzero(np.r_[True, unit_ids[1:] != unit_ids[:-1]])
    lengths = np.diff(np.r_[starts, len(values)])
    # one gather per input, no loop over units: row indices of every window, clamped to the
    # unit's first row (the padding) and, for the as-new baseline, to its last row
    unit_index = np.repeat(np.arange(len(starts)), lengths)
    ends = starts + lengths - 1 if last_only else np.arange(len(values))
    if last_only:
        unit_index = np.arange(len(starts))
    first, last = starts[unit_index], (starts + lengths - 1)[unit_index]
    history = values[np.maximum(ends[:, None] + np.arange(1 - window, 1), first[:, None])]
    start = values[np.minimum(first[:, None] + np.arange(max(baseline_cycles, 1)), last[:, None])]
    age = (ends - first + 1).astype(np.float32)
    inputs = tuple(torch.from_numpy(x) for x in (history, start, age))
    return inputs, (last - ends).astype(np.float64), unit_index, lengths
