"""Run under torchrun by test_ddp.py: fit a small regression with the one training loop and save the weights.

`python ddp_linear.py OUT.safetensors` trains in one process; under `torchrun --nproc-per-node 2` every rank
trains with DistributedDataParallel and rank 0 writes OUT.
"""

from __future__ import annotations

import sys

import torch
from torch import nn


def regression(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 3, generator=generator)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.1 * torch.randn(512, 1, generator=generator)
    return (x[:384], y[:384]), (x[384:], y[384:])


def mse(module, x, y):
    return nn.functional.mse_loss(module(x), y)


def train(max_epochs: int = 12, patience: int = 4) -> tuple[nn.Module, object]:
    from shopfloor.training import TrainConfig, fit_module

    train_rows, valid_rows = regression()
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    result = fit_module(module, mse, train_rows, valid_rows,
                        TrainConfig(max_epochs=max_epochs, patience=patience, batch_size=64, lr=0.01, progress=False))
    return module, result


if __name__ == "__main__":
    from safetensors.torch import save_file

    from shopfloor.distributed import is_writer

    module, result = train()
    if is_writer():
        state = {k: v.contiguous() for k, v in module.state_dict().items()}
        state["epochs_run"] = torch.tensor([result.epochs_run])
        save_file(state, sys.argv[1])
