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
from types import SimpleNamespace

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
    """The device chosen by the innermost `use_device` block (the CPU outside any); in a distributed run on GPUs,
    this rank's own GPU, for training and for the scoring around it (calibration, out-of-fold outputs)."""
    device = torch.device(_chosen.get())
    if device.type == "cuda":
        from shopfloor import distributed

        if distributed.is_distributed():
            return distributed.rank_device(device)
    return device


def on_gpu(device: torch.device) -> bool:
    return device.type == "cuda"


def autocast(device: torch.device):
    """bfloat16 mixed precision on a GPU; nothing on a CPU."""
    if on_gpu(device):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(tensors: tuple[torch.Tensor, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """The tensors on `device` (the same tensors on the CPU); on a GPU the whole (small) training set is copied there
    once, so that no step waits on a host-to-device copy (these data sets fit a GPU many times over). Not through
    pinned memory: pinning is itself a full host copy, and nothing overlaps a one-time transfer to hide it."""
    return tuple(t.to(device) for t in tensors)


@contextlib.contextmanager
def scoring_on(module: torch.nn.Module):
    """Score with `module` on the chosen device inside this block: `with scoring_on(net) as device: net(x.to(device))`.

    The module moves there on entry and back to the CPU on exit (an error included), so a loaded model stays a CPU
    model: its saved weights never change and a service thread outside any `use_device` block keeps scoring on the
    CPU. On the CPU nothing moves and nothing is copied: the answers are the very ones scoring gave before devices.
    A module already there (a block inside another) stays there.
    """
    device = current_device()
    first = next(iter([*module.parameters(), *module.buffers()]), None)
    if device.type == "cpu" or first is None or first.device == device:
        yield device
        return
    with torch.inference_mode(False):  # moved inside `inference_mode`, the weights would become inference tensors
        module.to(device)              # that no later fit, calibration or in-place update may touch
    try:
        yield device
    finally:
        with torch.inference_mode(False):
            module.cpu()


class LossTensors:
    """Tensors a loss reads beside its batch (a whole series that crops are cut from, class weights, offsets), where
    the batch is: `held = beside.on(batch.device)`, then `held.series[...]`.

    The training loop moves the batch and the network to the chosen device; a tensor the loss built on the CPU before
    the fit would meet them there and fail on a GPU ("Expected all tensors to be on the same device"). Each is copied
    to a device once, the first time a batch arrives there; on the CPU they are the very tensors given.
    """

    def __init__(self, **tensors: torch.Tensor):
        self._cpu = tensors
        self._placed: dict[torch.device, SimpleNamespace] = {torch.device("cpu"): SimpleNamespace(**tensors)}

    def on(self, device: torch.device) -> SimpleNamespace:
        if device not in self._placed:
            moved = to_device(tuple(self._cpu.values()), device)
            self._placed[device] = SimpleNamespace(**dict(zip(self._cpu, moved, strict=True)))
        return self._placed[device]
