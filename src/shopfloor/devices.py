"""Where a network trains: `--device auto|cpu|cuda[:N]`, and the same choice in Python with `use_device`.

The device is a setting of the run, not of the model: it lives in a context (`use_device`) that the
one training loop reads, never in an estimator's parameters. A parameter would be written to the
manifest, and a model trained on a GPU must give the same model folder as one trained on a CPU
(weights are saved from the CPU; `shopfloor.load` always maps to the CPU). A context also reaches
every task at once without a keyword on seven estimators, and the CLI sets it with one decorator.

Mixed precision (bfloat16 autocast) is used on a GPU only: on a CPU it is slower for these small
networks and changes the numbers the tests and benchmarks compare.
"""

from __future__ import annotations

import contextlib
import contextvars
import re

import torch

from shopfloor.errors import BadOption

_chosen: contextvars.ContextVar[str] = contextvars.ContextVar("shopfloor_device", default="cpu")
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """The torch device for 'auto', 'cpu', 'cuda' or 'cuda:N'; one line when the GPU asked for is not there.

    'auto' is a GPU when torch sees one and the CPU otherwise; None is 'cpu' (the default, as before devices).
    """
    text = "cpu" if spec is None else str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise BadOption(f"--device '{spec}' is not a device; give {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        raise BadOption(f"--device {text}: no GPU was found (torch {torch.__version__} sees no CUDA device); "
                        "use --device cpu or auto")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise BadOption(f"--device {text}: there is no GPU {index} (this machine has {torch.cuda.device_count()}: "
                        f"cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return torch.device("cuda", index)


@contextlib.contextmanager
def use_device(spec: str | torch.device | None):
    """Train (in `training.fit_module`) on `spec` inside this block: `with shopfloor.use_device("cuda"): model.fit(...)`.

    The device is checked on entry, so a missing GPU fails before any data is read.
    """
    device = resolve_device(spec)
    token = _chosen.set(str(device))
    try:
        yield device
    finally:
        _chosen.reset(token)


def current_device() -> torch.device:
    """The device chosen by the innermost `use_device` block (the CPU outside any)."""
    return torch.device(_chosen.get())


def on_gpu(device: torch.device) -> bool:
    return device.type == "cuda"


def autocast(device: torch.device):
    """bfloat16 mixed precision on a GPU; nothing on a CPU."""
    if on_gpu(device):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(tensors: tuple[torch.Tensor, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """The tensors on `device`; on a GPU the whole (small) training set is copied there once, from pinned
    memory, so that no step waits on a host-to-device copy (these data sets fit a GPU many times over)."""
    if not on_gpu(device):
        return tensors
    return tuple(t.pin_memory().to(device, non_blocking=True) for t in tensors)
