"""What the progress bars say: training names its metric and its epoch cap as a cap; explaining counts rows."""

import sys

import torch
from torch import nn

from shopfloor.training import TrainConfig, fit_module


class RecordingProgress:
    """Stands in for rich's Progress: keeps every description the loop shows."""

    shown: list[str] = []
    advanced: list[tuple[int, int]] = []  # (rows, torch threads at the time)

    def __init__(self, *columns, **options):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, description, total):
        RecordingProgress.shown.append(description)
        return 0

    def update(self, task, advance=0, description=""):
        RecordingProgress.shown.append(description)
        RecordingProgress.advanced.append((advance, torch.get_num_threads()))


def _mse(module, x, y):
    return nn.functional.mse_loss(module(x), y)


def _lowest_error(module, x, y):
    return float(_mse(module, x, y))


def test_the_progress_bar_names_the_metric_and_says_the_epoch_limit_is_a_limit(monkeypatch):
    """It showed 'training valid 0.0072' beside '12/200': people read 200 as the epochs it would run."""
    import rich.progress

    monkeypatch.setattr(rich.progress, "Progress", RecordingProgress)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    y = x.sum(1, keepdim=True)
    RecordingProgress.shown = []
    fit_module(nn.Linear(3, 1), _mse, (x, y), (x, y), TrainConfig(max_epochs=3, description="fold 1/2"))
    assert RecordingProgress.shown[1].startswith("fold 1/2: epoch 1 (at most 3), validation loss ")
    assert RecordingProgress.shown[-1].startswith("fold 1/2: epoch 3 (at most 3), validation loss ")
    RecordingProgress.shown = []
    fit_module(nn.Linear(3, 1), _mse, (x, y), (x, y), TrainConfig(max_epochs=2), score_fn=_lowest_error)
    assert "epoch 2 (at most 2), validation lowest error " in RecordingProgress.shown[-1]
    assert RecordingProgress.shown[-1].endswith("(lower is better)")


def test_explaining_many_rows_shows_progress_and_runs_on_one_thread(monkeypatch):
    """7,000 rows took 46 s with no word; with two torch threads on a busy machine the small passes ran 7x slower."""
    import rich.progress
    from conftest import failure_table

    from shopfloor import TabularModel

    model = TabularModel("failure", bags=2, max_epochs=1, progress=False).fit(failure_table(200, seed=0))
    monkeypatch.setattr(rich.progress, "Progress", RecordingProgress)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    RecordingProgress.shown, RecordingProgress.advanced = [], []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        explained = model.explain(failure_table(1100, seed=1))
        assert torch.get_num_threads() == 2  # given back
    finally:
        torch.set_num_threads(before)
    assert len(explained) == 1100
    assert RecordingProgress.shown[0] == "explaining rows"
    assert RecordingProgress.advanced == [(512, 1), (512, 1), (76, 1)]
