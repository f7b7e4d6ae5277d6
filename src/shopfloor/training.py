"""The one training loop: mini-batches, AdamW, early stopping, seeds, progress, checkpoints.

Every estimator trains its network through `fit_module`. The loop knows nothing about the
task: the estimator hands it a module, a loss function and tensors for training and
validation. The best weights (lowest validation loss) are restored at the end.

Where it trains is the run's choice, not the task's: the device of the innermost
`devices.use_device` block (`--device`), and, under torchrun (`--processes N`), DistributedDataParallel
over every rank (`distributed`). Every rank takes the same shuffled order and its own slice of each
batch, so a step sees the same rows as one process would and DDP averages the gradients; the
validation score is averaged over the ranks, so every rank stops on the same epoch. The module goes
back to the CPU at the end: a model folder never depends on where it was trained.
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

LossFn = Callable[..., torch.Tensor]  # loss_fn(module, *batch_tensors) -> scalar
ScoreFn = Callable[..., float]  # score_fn(module, *valid_tensors) -> float, lower is better


@dataclass
class TrainConfig:
    max_epochs: int = 200
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 16
    seed: int = 0
    progress: bool = True
    description: str = "training"
    # Tabular and sequence nets are small: per-step work is too little to share between
    # threads, and on a busy machine OpenMP synchronisation made steps 50x slower
    # (7.8 ms with one thread vs 414 ms with two, measured on the 2-core CI machine).
    threads: int = 1
    checkpoint_dir: Path | None = None  # best weights so far, resumable


@dataclass
class TrainResult:
    best_epoch: int
    best_loss: float
    epochs_run: int
    history: list[dict] = field(default_factory=list)


def available_cores() -> int:
    """Threads for training an image network: every core this process may use, but one inside a
    pytest-xdist worker, whose sibling workers already keep the other cores busy.

    Image networks, unlike the small tabular ones, do enough work per step to share it: a from-scratch
    CNN trained on one core for 25 minutes while the second sat idle (issue 13)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity mask
        return max(1, os.cpu_count() or 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def evaluate_loss(module: nn.Module, loss_fn: LossFn, tensors: tuple[torch.Tensor, ...],
                  batch_size: int = 8192) -> float:
    module.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(tensors[0]), batch_size):
            batch = [t[start:start + batch_size] for t in tensors]
            total += float(loss_fn(module, *batch)) * len(batch[0])
            count += len(batch[0])
    return total / max(count, 1)


def fit_module(module: nn.Module, loss_fn: LossFn, train: tuple[torch.Tensor, ...],
               valid: tuple[torch.Tensor, ...], config: TrainConfig, score_fn: ScoreFn | None = None) -> TrainResult:
    """Train `module` on `train`; keep the weights with the best validation score.

    The score is the validation loss unless `score_fn` is given: with label noise (random
    failures nobody can predict) the log-loss rises as soon as the boundaries sharpen, so
    classifiers stop on a ranking score instead.
    """
    if config.max_epochs < 1:  # no epoch would leave the random initial weights in a saved model
        from shopfloor.errors import BadOption

        raise BadOption(f"max_epochs must be at least 1, not {config.max_epochs}")
    from shopfloor import distributed
    from shopfloor.devices import current_device, to_device

    device = current_device()  # in a distributed run, this rank's own GPU
    if distributed.is_distributed():
        distributed.ensure_process_group(device)
    seed_everything(config.seed)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        module.to(device)
        return _fit(module, loss_fn, to_device(train, device), to_device(valid, device), config, score_fn, device)
    finally:
        module.cpu()
        torch.set_num_threads(previous_threads)


class LossStep(nn.Module):
    """The loss as a module's forward, so that DistributedDataParallel sees every step: the tasks' losses call
    their networks' own methods (`member_outputs`, `errors`), which DDP's wrapper would not pass through."""

    def __init__(self, net: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.net, self.loss_fn = net, loss_fn

    def forward(self, *batch: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self.net, *batch)


def _fit(module, loss_fn, train, valid, config, score_fn, device) -> TrainResult:
    from shopfloor import distributed
    from shopfloor.devices import autocast

    optimizer = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step, ranks, rank = partial(loss_fn, module), distributed.world_size(), distributed.rank()
    if ranks > 1:
        from torch.nn.parallel import DistributedDataParallel

        step = DistributedDataParallel(LossStep(module, loss_fn), device_ids=[device] if device.type == "cuda" else None)
        seed_everything(distributed.rank_seed(config.seed))  # own dropout per rank; weights came from rank 0
    generator = torch.Generator().manual_seed(config.seed)
    n = len(train[0])
    batch_size = min(config.batch_size, n)
    best_loss, best_epoch, best_state = float("inf"), -1, None
    history: list[dict] = []
    start_epoch = 0
    checkpoint = _Checkpoint(config.checkpoint_dir) if config.checkpoint_dir else None
    if checkpoint and checkpoint.exists():
        best_state, info = checkpoint.load()
        module.load_state_dict(best_state)
        best_loss, best_epoch, start_epoch = info["best_loss"], info["best_epoch"], info["epoch"] + 1

    with _progress(config) as (bar, task):
        for epoch in range(start_epoch, config.max_epochs):
            module.train()
            order = torch.randperm(n, generator=generator).to(device)  # once an epoch, not a copy a step
            running = torch.zeros((), dtype=torch.float64, device=device)  # summed there: no wait on the GPU a step
            # drop the last incomplete batch: a batch of a handful of rows gives noisy steps
            for start in range(0, n - batch_size + 1, batch_size):
                index = order[start:start + batch_size][rank::ranks]  # this rank's share of the batch
                with autocast(device):
                    loss = step(*(t[index] for t in train))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                running += loss.detach()
            if score_fn is None:
                valid_loss = evaluate_loss(module, loss_fn, valid)
            else:
                module.eval()
                with torch.no_grad():
                    valid_loss = float(score_fn(module, *valid))
            if ranks > 1:  # equal already (equal weights, equal rows), made equal to the last bit: one stopping epoch
                valid_loss = distributed.mean_over_ranks(valid_loss, device)
            history.append({"epoch": epoch, "train_loss": float(running) / max(n // batch_size, 1), "valid_loss": valid_loss})
            if best_state is None or valid_loss < best_loss - 1e-6 * abs(best_loss):
                best_loss, best_epoch = valid_loss, epoch
                best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                if checkpoint and distributed.is_writer():
                    checkpoint.save(best_state, {"epoch": epoch, "best_epoch": epoch, "best_loss": best_loss})
            if bar is not None:
                bar.update(task, advance=1, description=progress_text(config, epoch, valid_loss, score_fn))
            if epoch - best_epoch >= config.patience:
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return TrainResult(best_epoch=best_epoch, best_loss=best_loss, epochs_run=len(history), history=history)


def progress_text(config: TrainConfig, epoch: int, score: float, score_fn: ScoreFn | None) -> str:
    """'fold 2/8: epoch 12 (at most 200), validation loss 0.0072': the metric named, the epoch cap said to be a cap
    (early stopping usually ends well before it)."""
    metric = "loss" if score_fn is None else getattr(score_fn, "__name__", "score").strip("_").replace("_", " ")
    return (f"{config.description}: epoch {epoch + 1} (at most {config.max_epochs}), validation {metric} {score:.4g}"
            + ("" if score_fn is None else " (lower is better)"))


class _progress:
    """A rich progress bar when a person is watching, nothing otherwise."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.bar = None

    def __enter__(self):
        if not self.config.progress or not sys.stderr.isatty():
            return None, None
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True)
        self.bar.__enter__()
        return self.bar, self.bar.add_task(self.config.description, total=self.config.max_epochs)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


class _Checkpoint:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.weights = self.folder / "checkpoint.safetensors"
        self.info = self.folder / "checkpoint.json"

    def exists(self) -> bool:
        return self.weights.is_file() and self.info.is_file()

    def save(self, state: dict, info: dict) -> None:
        from safetensors.torch import save_file

        from shopfloor.artifacts import atomic_write

        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.weights, lambda tmp: save_file({k: v.contiguous() for k, v in state.items()}, str(tmp)))
        atomic_write(self.info, json.dumps(info))

    def load(self) -> tuple[dict, dict]:
        from safetensors.torch import load_file

        return load_file(str(self.weights)), json.loads(self.info.read_text())
