"""The ONNX kit: what every task's exporter does the same way, so that each exporter holds only its graph.

Each task's package writes its own graph (`tasks/tabular/export.py`, `tasks/rul/export.py`,
`vision/export.py`) and asks this kit for the rest:

- `check_request`: a fitted model, a '.onnx' file name and an opset this exporter can write, refused in
  one line before any work;
- `export_module`: a torch network with a dynamic batch axis (and any other axes the task names dynamic:
  a sensor sequence's time), through torch.export (the dynamo exporter) and, when that fails, the
  TorchScript exporter, which has handled every shopfloor network; both quiet;
- `frozen_copy`: the inference copy of a network that torch.export accepts;
- `file_facts` and `write_onnx`: the metadata keys every file carries, then the checked file written
  through `shopfloor.artifacts.atomic_write`, so a reader finds the old file or the new one, never half;
- `run_onnx` (`onnx_session` for many runs), `largest_difference`, `read_metadata`: running a file with
  onnxruntime and comparing it with torch, which is how every task's parity check measures its export.

Metadata keys every file carries (strings, as ONNX stores them):
    shopfloor_version  the package version that wrote the file
    task               the task's name, as in `shopfloor.tasks.TASKS` ("tabular", "rul", "defects", ...)
    exporter           "torch.export" or "torchscript" (the fallback)
    outputs            JSON list of the graph's output names
    input_contract     what a caller must feed, in words
A task adds its own keys beside these (a table model's `kind`, a RUL model's `window`, ...).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper

from shopfloor.artifacts import atomic_write
from shopfloor.errors import BadOption, NotAModel

MIN_OPSET = 17  # older runtimes: the TorchScript exporter still writes 17
DYNAMO_MIN_OPSET = 18  # below this the dynamo exporter silently writes 18
EXAMPLE_ROWS = 4  # a batch size that no exporter mistakes for a constant 0 or 1
TORCH_ONNX_LOGGER = "torch.onnx._internal.exporter._registration"
log = logging.getLogger(__name__)


def check_request(model, path: str | os.PathLike, opset: int) -> Path:
    """Refuse, before any work, an unfitted model, a file that is not '.onnx' and an opset out of range."""
    path = Path(path)
    model._check_fitted()
    if path.suffix.lower() != ".onnx":
        raise BadOption(f"{path}: ONNX export writes a '.onnx' file; other formats ('{path.suffix or 'none'}') "
                        "are not supported")
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise BadOption(f"ONNX opset {opset} is not supported: choose {MIN_OPSET} to {newest} "
                        "(18 runs on most runtimes)")
    return path


# -- from torch ---------------------------------------------------------------------------
def export_module(net: torch.nn.Module, example: tuple, opset: int, inputs: list[str],
                  output: str | Iterable[str], dynamic: dict[str, dict[int, str]] | None = None,
                  ) -> tuple[onnx.ModelProto, str]:
    """Any module with a dynamic batch axis on every input -> (proto, exporter name): torch.export first,
    TorchScript if that fails.

    `dynamic` names the dynamic axes of inputs and outputs instead, name -> {axis: dimension name}: axes
    that share a dimension name have one length ({"readings": {0: "batch", 2: "time"}, "score": {0: "batch",
    1: "time"}}). An input or output it leaves out has axis 0 dynamic, named "batch", as without it.
    """
    outputs = [output] if isinstance(output, str) else list(output)
    axes = {name: {0: "batch"} for name in [*inputs, *outputs]} | (dynamic or {})
    if opset >= DYNAMO_MIN_OPSET:
        try:
            return _export_dynamo(net, example, opset, inputs, outputs, axes), "torch.export"
        except Exception as err:  # whatever stops the new exporter, the TorchScript one has handled this network
            log.info("torch.export could not export the network (%s: %s); using the TorchScript exporter",
                     type(err).__name__, str(err).splitlines()[0] if str(err) else "")
    return _export_torchscript(net, example, opset, inputs, outputs, axes), "torchscript"


def _export_dynamo(net: torch.nn.Module, example: tuple, opset: int, inputs: list[str], outputs: list[str],
                   axes: dict[str, dict[int, str]]) -> onnx.ModelProto:
    dims = {dim: torch.export.Dim(dim) for name in inputs for dim in axes[name].values()}  # one Dim per name
    with warnings.catch_warnings(), quiet(TORCH_ONNX_LOGGER):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, example, dynamo=True, verbose=False, opset_version=opset,
                                    input_names=inputs, output_names=outputs,
                                    dynamic_shapes=tuple({axis: dims[dim] for axis, dim in axes[name].items()}
                                                         for name in inputs))
    proto = program.model_proto
    got = {entry.domain: entry.version for entry in proto.opset_import}.get("")
    if got != opset:
        raise ValueError(f"the dynamo exporter wrote opset {got}, not {opset}")
    check_dynamic_axes(proto, inputs, axes)
    return proto


def check_dynamic_axes(proto: onnx.ModelProto, inputs: list[str], axes: dict[str, dict[int, str]]) -> None:
    """Refuse a graph whose input came out with a fixed length on an axis asked to be dynamic: the new exporter
    may fix an axis to the example's length (an operation it cannot trace symbolically) and say nothing, and
    the file would then refuse every other length on the line."""
    for entry in proto.graph.input:
        if entry.name not in inputs:
            continue
        dims = entry.type.tensor_type.shape.dim
        fixed = [axis for axis in axes.get(entry.name, {}) if axis < len(dims) and dims[axis].HasField("dim_value")]
        if fixed:
            raise ValueError(f"input {entry.name} came out with fixed axes {fixed}, asked to be dynamic")


def _export_torchscript(net: torch.nn.Module, example: tuple, opset: int, inputs: list[str], outputs: list[str],
                        axes: dict[str, dict[int, str]]) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, example, buffer, dynamo=False, opset_version=opset,
                          input_names=inputs, output_names=outputs, dynamic_axes=axes)
    return onnx.load_from_string(buffer.getvalue())


@contextlib.contextmanager
def quiet(name: str):
    """Silence the exporter's line per missing optional package (torchvision): not a shopfloor model's concern."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def frozen_copy(net: torch.nn.Module) -> torch.nn.Module:
    """An inference copy: leftover gradients (merged members change parameter shapes) break torch.export."""
    frozen = copy.deepcopy(net).eval()
    for parameter in frozen.parameters():
        parameter.grad = None
        parameter.requires_grad_(False)
    return frozen


def dedupe_opsets(proto: onnx.ModelProto) -> None:
    """`onnx.compose.merge_models` concatenates the parts' opset imports; some runtimes refuse a domain
    listed twice, so each domain is kept once."""
    versions = {entry.domain: entry.version for entry in proto.opset_import}
    del proto.opset_import[:]
    proto.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in versions.items())


# -- the file -----------------------------------------------------------------------------
def file_facts(model, exporter: str, outputs: Iterable[str], input_contract: str) -> dict[str, str]:
    """The metadata keys every exported file carries (see the module docstring); tasks add their own."""
    from shopfloor import __version__

    return {"shopfloor_version": __version__, "task": model.task_name, "exporter": exporter,
            "outputs": json.dumps(list(outputs)), "input_contract": input_contract}


def write_onnx(proto: onnx.ModelProto, path: str | os.PathLike, facts: dict[str, str]) -> Path:
    """Attach `facts` as metadata, check the whole model and write it atomically; returns the path."""
    path = Path(path)
    helper.set_model_props(proto, facts)
    onnx.checker.check_model(proto, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda temporary: onnx.save_model(proto, temporary))
    return path


def read_metadata(onnx_path: str | os.PathLike) -> dict[str, str]:
    """An exported file's metadata, key -> string (without loading onnxruntime)."""
    return {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}


# -- running and checking -----------------------------------------------------------------
def onnx_session(onnx_path: str | os.PathLike):
    """An onnxruntime session on the CPU, for a check that runs one file many times (one call per sequence)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


def run_onnx(onnx_path: str | os.PathLike, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run an exported model with onnxruntime on the CPU; outputs by name."""
    session = onnx_session(onnx_path)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


def largest_difference(onnx_path, exported: np.ndarray, expected: np.ndarray) -> float:
    """The largest absolute difference between onnxruntime's and torch's answers; outputs of another shape
    mean the file is not this model's."""
    if exported.shape != expected.shape:
        raise NotAModel(f"{onnx_path} gives outputs of shape {exported.shape}, the model {expected.shape}: "
                        "the file was exported from a different model")
    return float(np.max(np.abs(exported - expected), initial=0.0))
