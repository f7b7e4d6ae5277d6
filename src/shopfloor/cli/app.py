"""The frame every `shopfloor` command runs in: the Typer app, one-line errors, and the options and output
helpers that several commands share.

Known problems with the user's input (`ShopfloorError`, `NotSupported` among them) become a one-line message
and exit code 2; nothing is written when a command fails. Heavy imports happen inside the commands so that
`shopfloor --help` answers at once (no torch). This module imports none of the command modules: they import
it and register their commands on `app` (see `shopfloor.cli`).
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from pathlib import Path
from typing import Annotated

import typer

from shopfloor.display import plain

# rich_markup_mode=None: plain help, since rich's markup ate '[pretrained]' from option help, and its option
# table showed every flag as '<bool>' although a flag takes no value
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Deep learning for the factory floor: train, evaluate, explain and export models.")
# `train <task>`: each task's package adds its command here (tasks/<task>/command.py, gathered by cli/train.py)
train_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Train a model on your data.")
app.add_typer(train_app, name="train")

DataOpt = Annotated[Path, typer.Option("--data", help="CSV or Parquet file; for image models a folder or an image.")]
ModelOpt = Annotated[Path, typer.Option("--model", help="A model folder written by 'shopfloor train'.")]
DayFirstOpt = Annotated[bool | None, typer.Option(
    "--dayfirst/--monthfirst", help="Dates such as 02-01-2018 are 2 January (--dayfirst) or 1 February (--monthfirst); "
    "by default the data decides, and a model reads new files the way it was trained.", show_default=False)]


DeviceOpt = Annotated[str, typer.Option(
    "--device", help="Where networks train and score: auto (a GPU when there is one), cpu, cuda or cuda:N. Model "
    "folders do not depend on it.")]
ProcessesOpt = Annotated[int, typer.Option(
    "--processes", help="Train one model in N processes on this machine (torchrun, DistributedDataParallel); "
    "or start the command under 'torchrun --nproc-per-node N -m shopfloor'.", min=1)]


def on_devices(trains: bool):
    """Give a command `--device` (and, for a command that trains, `--processes N`) with one decorator line.

    The command runs inside `devices.use_device`, which the training loop reads; `--processes N` above 1 starts
    the same command line in N processes under torchrun's agent (`distributed.launch`) and returns when they
    are done. Put it under `@friendly`, so that a missing GPU or a dead rank is one line and exit 2.
    """
    import inspect

    def decorate(command):
        extra = {"device": (DeviceOpt, "cpu")} | ({"processes": (ProcessesOpt, 1)} if trains else {})

        @functools.wraps(command)
        def wrapper(*args, device: str = "cpu", processes: int = 1, **kwargs):
            import sys

            from shopfloor import distributed
            from shopfloor.devices import resolve_device, use_device

            resolve_device(device)  # before any process starts: no GPU, one line
            if processes > 1 and not distributed.is_distributed():
                return distributed.launch(processes, without_processes_option(sys.argv[1:]))
            with use_device(device), silent_unless_writer():
                return command(*args, **kwargs)

        signature = inspect.signature(command, eval_str=True)  # Typer reads __signature__ as it is
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=option)
                 for name, (option, default) in extra.items()]
        wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *added])
        wrapper.__annotations__ = {**command.__annotations__, **{name: option for name, (option, _) in extra.items()}}
        return wrapper
    return decorate


def silent_unless_writer():
    """Ranks other than 0 print nothing: they save nothing, and N copies of every table and 'saved ...' line would
    say otherwise. Their errors still reach the terminal (`friendly` prints them after this block)."""
    import contextlib
    import os

    from shopfloor.distributed import is_writer

    if is_writer():
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    sink = stack.enter_context(open(os.devnull, "w"))  # noqa: SIM115 (closed by the stack)
    stack.enter_context(contextlib.redirect_stdout(sink))
    stack.enter_context(contextlib.redirect_stderr(sink))
    return stack


def without_processes_option(argv: list[str]) -> list[str]:
    """The command line each process runs: the same, less `--processes N` (they must not launch again)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--processes":
            skip = True
        elif not arg.startswith("--processes="):
            kept.append(arg)
    return kept


def stderr():
    """The console for messages (progress, 'wrote ...', warnings, errors); results go to stdout."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)  # a path in a message is never broken across lines


def stdout():
    """The console for a command's result (metrics tables, `info`), which a script may read."""
    from rich.console import Console

    return Console()


def friendly(command):
    """Turn known input problems into one line on stderr and exit code 2."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from shopfloor.errors import ShopfloorError

        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            try:
                return command(*args, **kwargs)
            except ShopfloorError as err:
                stderr().print(f"[bold red]error:[/] {plain(_one_line(err))}", soft_wrap=True)
                raise typer.Exit(2) from None
            except KeyboardInterrupt:
                stderr().print("[bold red]interrupted[/]: nothing was written")
                raise typer.Exit(130) from None
    return wrapper


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    from shopfloor.errors import ShopfloorWarning

    if issubclass(category, ShopfloorWarning):
        stderr().print(f"[yellow]warning:[/] {plain(message)}", soft_wrap=True)


def json_safe(metrics: dict) -> dict:
    """Metrics for a JSON file: NaN and infinities (a metric with no answer on this data) become null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}


def refuse_output_over_input(output: Path | None, option: str, **inputs: Path | None) -> None:
    """Refuse an output that is one of the command's input files: writing it would replace the input.

    Paths are compared resolved (./a.csv, links) and, where both exist, as the same file on disk.
    Input folders (images) are left to the command: outputs written there replace nothing.
    """
    from shopfloor.errors import BadOption

    if output is None:
        return
    for name, source in inputs.items():
        if source is not None and not source.is_dir() and _same_file(output, source):
            raise BadOption(f"{option} {output} is the --{name.replace('_', '-')} file {source}: writing it would "
                            f"replace your input; give {option} another file name")


def _same_file(a: Path, b: Path) -> bool:
    import os

    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def set_date_order(estimator, dayfirst: bool | None) -> None:
    """--dayfirst/--monthfirst for a loaded model: how its time or date columns are read in new files."""
    from shopfloor.data.times import date_order
    from shopfloor.errors import BadOption

    if dayfirst is None:
        return
    if "date_order" not in estimator.param_names():
        raise BadOption(f"--dayfirst/--monthfirst is for table and run-history models; this is a {estimator.task_name} model")
    estimator.set_params(date_order=date_order(dayfirst))


def write_json(path: Path, data: dict) -> None:
    """A JSON file written whole or not at all, into a folder that must exist."""
    from shopfloor.artifacts import atomic_write
    from shopfloor.errors import DataFileError

    if not path.parent.is_dir():
        raise DataFileError(f"{path}: the folder {path.parent} does not exist")
    atomic_write(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


@app.callback(invoke_without_command=True)
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False):
    if version:
        from shopfloor import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    app()
