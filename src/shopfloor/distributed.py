"""Several processes training one network: torchrun's environment, the process group, and who writes.

A run is distributed when torchrun (or `shopfloor train ... --processes N`, which starts torchrun's
launcher) set `WORLD_SIZE` above 1. Every rank then runs the whole command: it reads the data, fits
the same preprocessing and calls `training.fit_module`, which wraps the network in
DistributedDataParallel, gives each rank its share of every batch and agrees on early stopping.
Only rank 0 writes (`artifacts.save_artifact` asks `is_writer`), and it writes atomically, so a
run that dies leaves no model folder. The process group uses gloo on a CPU and NCCL on a GPU.

A rank that dies is noticed by torchrun's agent, which stops the others; a rank left waiting in a
collective without an agent (a hand-made launch) gives up after `COLLECTIVE_TIMEOUT`.
"""

from __future__ import annotations

import datetime
import os
import socket
import sys

import torch

from shopfloor.errors import ShopfloorError

COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=5)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def is_distributed() -> bool:
    return world_size() > 1


def rank_device(device: torch.device) -> torch.device:
    """Each rank on its own GPU of its node (torchrun's LOCAL_RANK); CPUs are shared."""
    if device.type != "cuda":
        return device
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0") or 0) % max(torch.cuda.device_count(), 1))


def is_writer() -> bool:
    """True in the process that writes files: the only one, or rank 0 of a distributed run."""
    return rank() == 0


def ensure_process_group(device: torch.device) -> None:
    """Join the run's process group once (gloo on CPU, NCCL on GPU), from torchrun's environment."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL and every CUDA call without a device: this rank's GPU, not GPU 0
    dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)


def rank_seed(seed: int) -> int:
    """Each rank's own seed for dropout and shuffling inside a step: equal seeds would make the ranks'
    dropout masks equal and waste half the noise. Weights start equal anyway (DDP copies rank 0's)."""
    return seed + 1_000_003 * rank()


def mean_over_ranks(value: float, device: torch.device) -> float:
    """`value` averaged over every rank: the validation score every rank stops on, the same epoch everywhere."""
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / world_size()


def free_port() -> int:
    """A TCP port nobody listens on now, for a run's rendezvous (each test run gets its own)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(processes: int, argv: list[str]) -> None:
    """Run `python -m shopfloor ARGV` in `processes` processes on this machine under torchrun's elastic agent.

    A rank that fails makes the agent stop the others; the error names the rank and its exit code and says that
    nothing was written (rank 0 writes only at the end, atomically).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes, run_id=f"shopfloor-{os.getpid()}",
                          rdzv_backend="c10d", rdzv_endpoint=f"127.0.0.1:{free_port()}", max_restarts=0,
                          monitor_interval=0.5, start_method="spawn")
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's own default; training sets its threads anyway
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "shopfloor", *argv)
    except ChildFailedError as err:
        first, failure = err.get_first_failure()  # the others were stopped by the agent (SIGTERM) after it
        raise TrainingProcessDied(f"training process rank {first} of {processes} {how_it_ended(failure.exitcode)}; "
                                  "torchrun stopped the others and no model folder was written") from None


def how_it_ended(exitcode: int) -> str:
    """'was killed (SIGKILL)' for a signal (negative exit codes), 'exited with code 1' otherwise."""
    import signal

    if exitcode < 0:
        try:
            return f"was killed ({signal.Signals(-exitcode).name})"
        except ValueError:
            return f"was killed (signal {-exitcode})"
    return f"exited with code {exitcode}"


class TrainingProcessDied(ShopfloorError):
    """A rank of a multi-process training run died; torchrun stopped the others and nothing was written."""
