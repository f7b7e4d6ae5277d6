"""The training loop: best weights restored, seeds reproduce, checkpoints resume, threads restored."""

import torch
from torch import nn

from shopfloor.training import TrainConfig, fit_module


def _regression_problem(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 3, generator=generator)
    y = (x @ torch.tensor([[1.5], [-2.0], [0.5]])) + 0.1 * torch.randn(512, 1, generator=generator)
    return (x[:400], y[:400]), (x[400:], y[400:])


def _mse(module, x, y):
    return nn.functional.mse_loss(module(x), y)


def test_training_learns_and_restores_the_best_weights():
    train, valid = _regression_problem()
    module = nn.Linear(3, 1)
    result = fit_module(module, _mse, train, valid, TrainConfig(max_epochs=60, batch_size=32, lr=0.05, progress=False))
    losses = [h["valid_loss"] for h in result.history]
    assert result.best_loss == min(losses) < 0.05 < losses[0]
    with torch.no_grad():
        assert abs(_mse(module, *valid).item() - result.best_loss) < 1e-6  # the best epoch's weights are back


def test_early_stopping_stops_after_patience_epochs_without_progress():
    train, valid = _regression_problem()
    # a validation score that never improves after the first epoch
    result = fit_module(nn.Linear(3, 1), _mse, train, valid, TrainConfig(max_epochs=100, patience=5, progress=False),
                        score_fn=lambda module, x, y: 1.0)
    assert result.best_epoch == 0 and result.epochs_run == 6


def test_same_seed_same_weights_other_seed_other_weights():
    train, valid = _regression_problem()

    def trained(seed):
        torch.manual_seed(123)  # same initial weights; the seed must drive the batch order
        module = nn.Linear(3, 1)
        fit_module(module, _mse, train, valid, TrainConfig(max_epochs=3, batch_size=16, seed=seed, progress=False))
        return module.weight.detach().clone()

    assert torch.equal(trained(1), trained(1))
    assert not torch.equal(trained(1), trained(2))


def test_checkpoint_holds_the_best_weights_and_resumes(tmp_path):
    train, valid = _regression_problem()
    config = TrainConfig(max_epochs=5, batch_size=32, lr=0.05, progress=False, checkpoint_dir=tmp_path)
    first = nn.Linear(3, 1)
    result = fit_module(first, _mse, train, valid, config)
    assert (tmp_path / "checkpoint.safetensors").is_file() and (tmp_path / "checkpoint.json").is_file()
    resumed = nn.Linear(3, 1)
    more = fit_module(resumed, _mse, train, valid, TrainConfig(**{**config.__dict__, "max_epochs": 10}))
    assert more.history[0]["epoch"] == 5  # carried on after the saved epoch
    assert more.best_loss <= result.best_loss


def test_thread_count_is_restored():
    train, valid = _regression_problem()
    before = torch.get_num_threads()
    fit_module(nn.Linear(3, 1), _mse, train, valid, TrainConfig(max_epochs=1, progress=False, threads=1))
    assert torch.get_num_threads() == before


def test_no_epochs_is_refused_rather_than_saving_random_weights():
    import pytest

    from shopfloor.errors import BadOption

    train, valid = _regression_problem()
    with pytest.raises(BadOption, match="max_epochs must be at least 1, not 0"):
        fit_module(nn.Linear(3, 1), _mse, train, valid, TrainConfig(max_epochs=0, progress=False))
