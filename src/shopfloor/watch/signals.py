"""The drift watch of a fault-diagnosis model on the line: the windows its blocks completed, in the profile's terms.

A diagnose model's profile (`tasks.diagnose.drift`) is of windows: each channel's RMS, kurtosis and crest factor
per window in, the model's confidence and novelty out. The stream cuts the windows for scoring anyway
(`stream.blocks.score_blocks`); a watched model's `Blocks` keeps the last batch's windows and verdicts (`watched`,
set here the first time the watch sees the model) until the watch takes them, so nothing is cut twice and nothing
is scored twice. Of a batch's windows at most `per_batch`, evenly spaced, are summarised: the statistics of one
window of 2 channels x 2,048 samples take some tens of microseconds, the network's pass over it about a millisecond.
The outputs fed are the top class's probability (the profile's 'confidence') and the novelty; each class's
probability is not kept by the stream's verdicts, so those outputs are not fed and say nothing.
"""

from __future__ import annotations

import pandas as pd

from shopfloor.stream.blocks import Blocks
from shopfloor.tasks.diagnose.drift import window_statistics


def reads_blocks(scorer) -> bool:
    """Whether a live model scores blocks of samples (its per-machine windows are `Blocks`), not readings."""
    return isinstance(getattr(scorer, "windows", None), Blocks)


def block_view(scorer, per_batch: int) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(inputs, outputs) of at most `per_batch` windows the last batch completed, one row each, or None (none came,
    or the model was not watched yet: from now on it is)."""
    blocks: Blocks = scorer.windows
    blocks.watched = True
    scored, blocks.scored = blocks.scored, None
    if scored is None:
        return None
    windows, verdicts = scored
    stride = max(1, -(-len(windows) // per_batch))
    inputs = window_statistics(windows[::stride], blocks.columns)
    outputs = pd.DataFrame({"confidence": verdicts["probability"][::stride], "novelty": verdicts["novelty"][::stride]})
    return inputs, outputs
