"""ONNX export of tabular models, with the table preprocessing inside the graph, and a parity check.

Why the preprocessing is in the graph: a model often runs where Python is not welcome (an MES
plug-in, an edge box next to the line, a C# or Java service with onnxruntime). If every caller
had to rebuild the network's inputs (missing values, category codes, column order), each would
do it slightly differently and the answers would drift from Python's (anomalib's issues
#2303/#2747 are that story). So the exported graph takes the table itself: one input per
feature column, named exactly as the column.

- numeric and date columns: float32 [N, 1], NaN = missing; dates as days since 1970-01-01
  (fractional), as `TableSchema` computes them;
- categorical columns: string [N, 1]. The Python reader strips surrounding whitespace and
  treats an empty cell as missing, so callers must strip whitespace too and send "" for a
  missing value; any text the model never saw in training counts as 'unseen'.

The graph is three parts joined with `onnx.compose`:

    columns --prepare--> numbers, codes --net--> scores --decide--> probabilities|values [, decision]

`prepare` concatenates the numeric inputs and maps every categorical input to its code with an
`ai.onnx.ml` LabelEncoder (levels -> 2.., "" -> 1, anything else -> 0); `net` is the TabularNet
exported by torch; `decide` names the outputs and, for yes/no targets, compares each
probability with the model's thresholds, baked in as constants. `onnx_inputs` builds the feed
from a DataFrame and `check_parity` measures how far onnxruntime is from torch on real rows.

Length: one exporter per task beside the fallback exporter and parity helpers they share; issue 15
moves each exporter into its task's package and leaves the shared kit here.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import torch
from onnx import TensorProto, compose, helper

from shopfloor.artifacts import atomic_write
from shopfloor.errors import BadOption, NotAModel

MIN_OPSET = 17  # older runtimes: the TorchScript exporter still writes 17
DYNAMO_MIN_OPSET = 18  # below this the dynamo exporter silently writes 18
ML_DOMAIN, ML_OPSET = "ai.onnx.ml", 3  # LabelEncoder-2: keys_strings / values_int64s / default_int64
UNSEEN, MISSING, FIRST_LEVEL = 0, 1, 2  # the category codes of TableSchema
log = logging.getLogger(__name__)
TORCH_ONNX_LOGGER = "torch.onnx._internal.exporter._registration"
EXAMPLE_ROWS = 4  # a batch size that no exporter mistakes for a constant 0 or 1


def export_onnx(model, path: str | os.PathLike, opset: int = 18) -> Path:
    """Write `model` (a fitted TabularModel or RULModel) as one self-contained ONNX file; returns its path."""
    path = Path(path)
    if model.task_name == "optimize":
        raise BadOption("a process optimiser is not exported to ONNX: it answers by searching its records' models, which "
                        "runs where the records are; use 'shopfloor predict' for its predictions at given settings")
    if model.task_name in TASK_EXPORTERS:
        return TASK_EXPORTERS[model.task_name](model, path, opset)
    _check_request(model, path, opset)
    net, exporter = _export_net(model, opset)
    prepare = _prepare_graph(model.schema_, opset, net.ir_version)
    decide = _decide_graph(model, opset, net.ir_version)
    graph = compose.merge_models(prepare, net, io_map=_io_map(net), outputs=["net/scores"], prefix2="net/")
    graph = compose.merge_models(graph, decide, io_map=[("net/scores", "decide/scores")])
    _dedupe_opsets(graph)
    graph.graph.name = f"shopfloor tabular: {', '.join(model.targets)}"
    helper.set_model_props(graph, _metadata(model) | {"exporter": exporter})
    onnx.checker.check_model(graph, full_check=True)
    _write_atomically(graph, path)
    return path


def output_name(model) -> str:
    return "values" if model.kind_ == "regression" else "probabilities"


def _check_request(model, path: Path, opset: int) -> None:
    _check_file_and_opset(model, path, opset)
    outputs = _output_names(model)
    clashes = [c for c in model.schema_.features if c in outputs or c.startswith(("net/", "prepare/", "decide/"))]
    if clashes:
        raise BadOption(f"feature column(s) {clashes} clash with names the ONNX graph uses itself (outputs "
                        f"{outputs}, names starting net/, prepare/, decide/); rename them and train again to export")


def _check_file_and_opset(model, path: Path, opset: int) -> None:
    model._check_fitted()
    if path.suffix.lower() != ".onnx":
        raise BadOption(f"{path}: ONNX export writes a '.onnx' file; other formats ('{path.suffix or 'none'}') "
                        "are not supported")
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise BadOption(f"ONNX opset {opset} is not supported: choose {MIN_OPSET} to {newest} "
                        "(18 runs on most runtimes)")


def _output_names(model) -> list[str]:
    return [output_name(model)] + (["decision"] if model.kind_ in ("binary", "multiclass") else [])


# -- the network --------------------------------------------------------------------------
def _export_net(model, opset: int) -> tuple[onnx.ModelProto, str]:
    """TabularNet (numbers, codes) -> scores, batch axis dynamic; torch.export first, TorchScript if that fails."""
    net = _frozen_copy(model.net_)
    schema = model.schema_
    example = (torch.zeros(EXAMPLE_ROWS, len(schema.numeric) + len(schema.dates)),
               torch.full((EXAMPLE_ROWS, len(schema.categorical)), MISSING, dtype=torch.int64))
    return _export_module(net, example, opset, ["numbers", "codes"], "scores")


def _export_module(net: torch.nn.Module, example: tuple, opset: int, inputs: list[str],
                   output: str | list[str]) -> tuple[onnx.ModelProto, str]:
    """Any module with a dynamic batch axis on every input: torch.export first, TorchScript if that fails."""
    if opset >= DYNAMO_MIN_OPSET:
        try:
            return _export_dynamo(net, example, opset, inputs, output), "torch.export"
        except Exception as err:  # whatever stops the new exporter, the TorchScript one has handled this network
            log.info("torch.export could not export the network (%s: %s); using the TorchScript exporter",
                     type(err).__name__, str(err).splitlines()[0] if str(err) else "")
    return _export_torchscript(net, example, opset, inputs, output), "torchscript"


def _export_dynamo(net: torch.nn.Module, example: tuple, opset: int, inputs: list[str],
                   output: str | list[str]) -> onnx.ModelProto:
    batch = torch.export.Dim("batch")
    outputs = [output] if isinstance(output, str) else list(output)
    with warnings.catch_warnings(), _quiet(TORCH_ONNX_LOGGER):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, example, dynamo=True, verbose=False, opset_version=opset,
                                    input_names=inputs, output_names=outputs,
                                    dynamic_shapes=tuple({0: batch} for _ in inputs))
    proto = program.model_proto
    got = {entry.domain: entry.version for entry in proto.opset_import}.get("")
    if got != opset:
        raise ValueError(f"the dynamo exporter wrote opset {got}, not {opset}")
    return proto


@contextlib.contextmanager
def _quiet(name: str):
    """Silence the exporter's line per missing optional package (torchvision): not a table model's concern."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _export_torchscript(net: torch.nn.Module, example: tuple, opset: int, inputs: list[str],
                        output: str | list[str]) -> onnx.ModelProto:
    buffer = io.BytesIO()
    outputs = [output] if isinstance(output, str) else list(output)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, example, buffer, dynamo=False, opset_version=opset,
                          input_names=inputs, output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in [*inputs, *outputs]})
    return onnx.load_from_string(buffer.getvalue())


def _frozen_copy(net: torch.nn.Module) -> torch.nn.Module:
    """An inference copy: leftover gradients (merged members change parameter shapes) break torch.export."""
    frozen = copy.deepcopy(net).eval()
    for parameter in frozen.parameters():
        parameter.grad = None
        parameter.requires_grad_(False)
    return frozen


def _io_map(net: onnx.ModelProto) -> list[tuple[str, str]]:
    # An exporter may drop an input the network never reads (e.g. codes of a table without categories).
    present = {i.name for i in net.graph.input}
    return [(f"prepare/{name}", name) for name in ("numbers", "codes") if name in present]


# -- before and after the network ---------------------------------------------------------
def _prepare_graph(schema, opset: int, ir_version: int) -> onnx.ModelProto:
    """Column inputs -> prepare/numbers float32 [N, numeric] and prepare/codes int64 [N, categorical]."""
    numeric = schema.numeric + schema.dates
    inputs = [helper.make_tensor_value_info(c, TensorProto.FLOAT, ["N", 1]) for c in numeric]
    inputs += [helper.make_tensor_value_info(c, TensorProto.STRING, ["N", 1]) for c in schema.categorical]
    nodes, initializers = [], []
    code_names = []
    for column, levels in schema.categorical.items():
        code_names.append(f"prepare/code/{column}")
        nodes.append(helper.make_node(
            "LabelEncoder", [column], [code_names[-1]], domain=ML_DOMAIN, name=f"prepare/encode/{column}",
            keys_strings=list(levels) + [""],
            values_int64s=list(range(FIRST_LEVEL, FIRST_LEVEL + len(levels))) + [MISSING],
            default_int64=UNSEEN))
    for output, parts, dtype in (("prepare/numbers", numeric, TensorProto.FLOAT),
                                 ("prepare/codes", code_names, TensorProto.INT64)):
        if parts:
            nodes.append(helper.make_node("Concat", parts, [output], axis=1, name=output))
        else:  # no such columns: an empty [N, 0] tensor keeps the network's signature
            nodes += _empty_columns(inputs[0].name, output, dtype, initializers)
    outputs = [helper.make_tensor_value_info("prepare/numbers", TensorProto.FLOAT, ["N", len(numeric)]),
               helper.make_tensor_value_info("prepare/codes", TensorProto.INT64, ["N", len(code_names)])]
    graph = helper.make_graph(nodes, "prepare", inputs, outputs, initializers)
    return _model(graph, opset, ir_version, {ML_DOMAIN: ML_OPSET})


def _empty_columns(reference: str, output: str, dtype: int, initializers: list) -> list[onnx.NodeProto]:
    initializers.append(helper.make_tensor(f"{output}/width", TensorProto.INT64, [1], [0]))
    return [helper.make_node("Shape", [reference], [f"{output}/rows"], start=0, end=1),
            helper.make_node("Concat", [f"{output}/rows", f"{output}/width"], [f"{output}/shape"], axis=0),
            helper.make_node("ConstantOfShape", [f"{output}/shape"], [output],
                             value=helper.make_tensor("zero", dtype, [1], [0]))]


def _decide_graph(model, opset: int, ir_version: int) -> onnx.ModelProto:
    """decide/scores -> the named outputs; yes/no decisions against the model's thresholds."""
    width = len(model.classes_[0]) if model.kind_ == "multiclass" else len(model.targets)
    scores = helper.make_tensor_value_info("decide/scores", TensorProto.FLOAT, ["N", width])
    name = output_name(model)
    nodes = [helper.make_node("Identity", ["decide/scores"], [name])]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width])]
    initializers = []
    if model.kind_ == "binary":
        # Compared in float64, as the Python model compares float32 probabilities with float thresholds.
        thresholds = np.asarray(model.thresholds_, dtype=np.float64).reshape(1, width)
        initializers.append(onnx.numpy_helper.from_array(thresholds, "decide/thresholds"))
        nodes += [helper.make_node("Cast", [name], ["decide/scores64"], to=TensorProto.DOUBLE),
                  helper.make_node("GreaterOrEqual", ["decide/scores64", "decide/thresholds"], ["decision"])]
        outputs.append(helper.make_tensor_value_info("decision", TensorProto.BOOL, ["N", width]))
    elif model.kind_ == "multiclass":  # index into classes (metadata), first of equal maxima as numpy
        nodes.append(helper.make_node("ArgMax", [name], ["decision"], axis=1, keepdims=0,
                                      select_last_index=0))
        outputs.append(helper.make_tensor_value_info("decision", TensorProto.INT64, ["N"]))
    graph = helper.make_graph(nodes, "decide", [scores], outputs, initializers)
    return _model(graph, opset, ir_version, {})


def _model(graph: onnx.GraphProto, opset: int, ir_version: int, extra: dict[str, int]) -> onnx.ModelProto:
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra.items()]
    return helper.make_model(graph, opset_imports=imports, ir_version=ir_version)


def _dedupe_opsets(proto: onnx.ModelProto) -> None:
    """merge_models concatenates the parts' opset imports; some runtimes refuse a domain listed twice."""
    versions = {entry.domain: entry.version for entry in proto.opset_import}
    del proto.opset_import[:]
    proto.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in versions.items())


def _metadata(model) -> dict[str, str]:
    from shopfloor import __version__

    schema = model.schema_
    return {
        "shopfloor_version": __version__,
        "task": model.kind_,
        "targets": json.dumps(model.targets),
        "classes": json.dumps(model.classes_, default=str),
        "thresholds": json.dumps([float(t) for t in getattr(model, "thresholds_", [])]),
        "inputs": json.dumps(schema.features),
        "dates": json.dumps(schema.dates),
        "categorical": json.dumps(schema.categorical),
        "outputs": json.dumps(_output_names(model)),
        "input_contract": "one input per column, shape [N, 1]; numbers and dates (days since 1970-01-01) as "
                          "float32 with NaN for missing; categories as strings stripped of surrounding "
                          "whitespace, \"\" for missing",
    }


def _write_atomically(proto: onnx.ModelProto, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda temporary: onnx.save_model(proto, temporary))


# -- running and checking -----------------------------------------------------------------
def onnx_inputs(model, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The ONNX feed for a table: the same conversions as the Python model, one [N, 1] array per column."""
    schema = model.schema_
    numbers, _ = schema.to_arrays(frame)  # checks the columns and converts numbers and dates as in training
    feed = {name: numbers[:, [j]] for j, name in enumerate(schema.numeric + schema.dates)}
    for name in schema.categorical:
        text = frame[name].astype("string").str.strip().fillna("")
        feed[name] = text.to_numpy(dtype=object).reshape(-1, 1)
    return feed


def run_onnx(onnx_path: str | os.PathLike, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run an exported model with onnxruntime on the CPU; outputs by name."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


def check_parity(model, onnx_path: str | os.PathLike, frame) -> float:
    """Largest absolute difference between onnxruntime's and torch's outputs on `frame` (a table, run
    histories for a RUL model, an image folder or file for an inspection model)."""
    if model.task_name in TASK_PARITY:
        return TASK_PARITY[model.task_name](model, onnx_path, frame)
    exported = run_onnx(onnx_path, onnx_inputs(model, frame))[output_name(model)]
    expected = model._outputs(*model.schema_.to_arrays(frame))
    return _largest_difference(onnx_path, exported, expected)


def _largest_difference(onnx_path, exported: np.ndarray, expected: np.ndarray) -> float:
    if exported.shape != expected.shape:
        raise NotAModel(f"{onnx_path} gives outputs of shape {exported.shape}, the model {expected.shape}: "
                        "the file was exported from a different model")
    return float(np.max(np.abs(exported - expected), initial=0.0))


# -- remaining useful life ----------------------------------------------------------------
RUL_INPUTS = ("history", "start", "age")


def _rul_parity(model, onnx_path, runs) -> float:
    inputs, _ = model.last_windows(runs)
    exported = run_onnx(onnx_path, dict(zip(RUL_INPUTS, (x.numpy() for x in inputs), strict=True)))["rul"]
    with torch.no_grad():
        expected = model.estimator_module()(*inputs).numpy()
    return _largest_difference(onnx_path, exported, expected)


def _export_rul(model, path: Path, opset: int) -> Path:
    """RULModel -> one graph: raw windows in (condition normalisation inside), estimate and interval out.

    Inputs: history float32 [N, window, settings + sensors] (the unit's last cycles, oldest first,
    a short history padded at the front with its first cycle), start float32 [N, baseline cycles,
    same columns] (the unit's first cycles), age float32 [N] (cycles seen). Output: rul [N, 3] =
    estimate, interval low, interval high, in cycles.
    """
    _check_file_and_opset(model, path, opset)
    module = _frozen_copy(model.estimator_module())
    columns = model.setting_columns_ + model.sensor_columns_
    example = (torch.zeros(EXAMPLE_ROWS, model.window, len(columns)),
               torch.zeros(EXAMPLE_ROWS, max(model.baseline_cycles, 1), len(columns)),
               torch.full((EXAMPLE_ROWS,), 50.0))
    proto, exporter = _export_module(module, example, opset, list(RUL_INPUTS), "rul")
    proto.graph.name = "shopfloor remaining useful life"
    from shopfloor import __version__

    helper.set_model_props(proto, {
        "shopfloor_version": __version__, "task": "rul", "exporter": exporter, "columns": json.dumps(columns),
        "window": str(model.window), "baseline_cycles": str(max(model.baseline_cycles, 1)),
        "interval_coverage": str(model.interval_coverage), "outputs": json.dumps(["rul", "rul_low", "rul_high"]),
        "interval_bands": json.dumps(model.interval_bands_),
        "input_contract": "history [N, window, columns]: last cycles oldest first, padded at the front with the "
                          "first cycle; start [N, baseline_cycles, columns]: the first cycles (repeat the last "
                          "one if fewer); age [N]: cycles seen; NaN sensors read as their condition's mean"})
    onnx.checker.check_model(proto, full_check=True)
    _write_atomically(proto, path)
    return path


# -- visual inspection --------------------------------------------------------------------
INSPECTION_OUTPUTS = {"defects": ["probabilities", "heatmap"], "anomaly": ["score", "heatmap"]}
PARITY_IMAGES = 16


def _export_inspection(model, path: Path, opset: int) -> Path:
    """DefectModel or AnomalyModel -> one graph: images [N, channels, size, size], grey levels 0..255 as
    float32, in; scaling, network, memory-bank search (anomaly) and heatmap out. Decoding and resizing
    to size x size stay with the caller, as every image library does them."""
    _check_file_and_opset(model, path, opset)
    module = _frozen_copy(model.estimator_module())
    size = model.image_size_
    example = (torch.rand(2, model.channels_, size, size, generator=torch.Generator().manual_seed(0)) * 255,)
    outputs = INSPECTION_OUTPUTS[model.task_name]
    proto, exporter = _export_module(module, example, opset, ["images"], outputs)
    proto.graph.name = f"shopfloor {model.task_name}"
    from shopfloor import __version__

    facts = {"shopfloor_version": __version__, "task": model.task_name, "exporter": exporter,
             "image_size": str(size), "channels": str(model.channels_), "outputs": json.dumps(outputs),
             "input_contract": f"images float32 [N, {model.channels_}, {size}, {size}]: {_view(model)}, grey levels 0..255"
                               + (", grey" if model.channels_ == 1 else ", RGB order")}
    if model.task_name == "defects":
        facts["classes"] = json.dumps(model.classes_)
    else:
        facts["threshold"] = "scores and heatmaps are 0..1 with the decision at 0.5"
        facts["memory"] = "memory grows with the batch (every patch against the bank): feed a few images per call"
    helper.set_model_props(proto, facts)
    onnx.checker.check_model(proto, full_check=True)
    _write_atomically(proto, path)
    return path


def _view(model) -> str:
    """How a picture becomes the graph's input, in words: the same steps as `shopfloor.vision.images`."""
    size = model.image_size_
    if getattr(model, "tile", None) is not None:
        return (f"tiles of {model.tile} x {model.tile} native pixels overlapping by 1/8 or more, each resized to "
                f"{size} x {size} (bilinear); an image's heatmap is the maximum over its tiles, its score the "
                "maximum of that (shopfloor.vision.images.read_tiles and stitch)")
    if getattr(model, "keep_aspect_", False):
        return (f"the picture scaled so its shorter side is {size} pixels (bilinear, aspect ratio kept) and cut along "
                f"its longer side into {size} x {size} tiles overlapping by 1/8 or more; an image's heatmap is the "
                "maximum over its tiles, its score the maximum of that (shopfloor.vision.images.read_tiles with no "
                "tile size, and stitch)")
    return f"the picture resized to {size} x {size} (bilinear)"


def _inspection_parity(model, onnx_path, data) -> float:
    """Largest difference over every output, on up to PARITY_IMAGES images of a file or folder, fed as the
    model feeds its network (whole images, or their tiles)."""
    from shopfloor.vision.estimator import decode, image_set
    from shopfloor.vision.folders import list_images
    from shopfloor.vision.images import read_tiles

    found = image_set(data, list_images)
    found = found.subset(list(range(min(len(found), PARITY_IMAGES))))
    size = model.image_size_
    if getattr(model, "tile", None) is not None or getattr(model, "keep_aspect_", False):
        tiles = [read_tiles(path, model.channels_, model.tile, size)[0] for path in found.paths]
        images = torch.from_numpy(np.rint(np.concatenate(tiles)[:PARITY_IMAGES]).astype(np.float32))  # as the model rounds
    else:
        images = decode(found, model.channels_, size)[0].float()
    module = model.estimator_module()
    worst = 0.0
    for start in range(0, len(images), 4):
        batch = images[start:start + 4]
        exported = run_onnx(onnx_path, {"images": batch.numpy()})
        with torch.no_grad():
            expected = module(batch)
        for name, value in zip(INSPECTION_OUTPUTS[model.task_name], expected, strict=True):
            worst = max(worst, _largest_difference(onnx_path, exported[name], value.numpy()))
    return worst


# every task but the tabular one (the module's first part) has its own graph and parity check
TASK_EXPORTERS = {"rul": _export_rul, "defects": _export_inspection, "anomaly": _export_inspection}
TASK_PARITY = {"rul": _rul_parity, "defects": _inspection_parity, "anomaly": _inspection_parity}
