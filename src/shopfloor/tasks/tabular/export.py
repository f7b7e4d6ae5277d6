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

Metadata: the keys every shopfloor file carries (`shopfloor.kits.onnx`: shopfloor_version, task =
"tabular", exporter, outputs, input_contract) and the table's own:
    kind         the kind of target: "binary" (yes/no targets, one or several), "multiclass" or
                 "regression" (files written before this key had the kind under `task`:
                 `read_facts` reads those as task "tabular" and this kind)
    targets      JSON list of the target columns, in the order of the outputs' columns
    classes      JSON list per target of its classes (a multiclass `decision` indexes the first)
    thresholds   JSON list of the yes/no thresholds that `decision` applies, one per target
    inputs       JSON list of the feature columns, in the order of the graph's inputs
    dates        JSON list of the date columns among them
    categorical  JSON object: categorical column -> its levels seen in training

The exporting itself (torch.export with the TorchScript fallback, the checks, the atomic write) is the
shared kit's, `shopfloor.kits.onnx`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import torch
from onnx import TensorProto, compose, helper

from shopfloor.errors import BadOption
from shopfloor.kits.onnx import (
    EXAMPLE_ROWS,
    check_request,
    dedupe_opsets,
    export_module,
    file_facts,
    frozen_copy,
    largest_difference,
    read_metadata,
    run_onnx,
    write_onnx,
)

ML_DOMAIN, ML_OPSET = "ai.onnx.ml", 3  # LabelEncoder-2: keys_strings / values_int64s / default_int64
UNSEEN, MISSING, FIRST_LEVEL = 0, 1, 2  # the category codes of TableSchema
GRAPH_PREFIXES = ("net/", "prepare/", "decide/")  # names the graph's parts use for themselves
INPUT_CONTRACT = ("one input per column, shape [N, 1]; numbers and dates (days since 1970-01-01) as float32 with NaN "
                  "for missing; categories as strings stripped of surrounding whitespace, \"\" for missing")
KINDS = ("binary", "multiclass", "regression")  # what `kind` holds, and what `task` held in older files


def export_onnx(model, path: str | os.PathLike, opset: int = 18) -> Path:
    """Write a fitted TabularModel as one self-contained ONNX file; returns its path."""
    path = check_request(model, path, opset)
    _check_names(model)
    net, exporter = _export_net(model, opset)
    prepare = _prepare_graph(model.schema_, opset, net.ir_version)
    decide = _decide_graph(model, opset, net.ir_version)
    graph = compose.merge_models(prepare, net, io_map=_io_map(net), outputs=["net/scores"], prefix2="net/")
    graph = compose.merge_models(graph, decide, io_map=[("net/scores", "decide/scores")])
    dedupe_opsets(graph)
    graph.graph.name = f"shopfloor tabular: {', '.join(model.targets)}"
    return write_onnx(graph, path, _metadata(model, exporter))


def output_name(model) -> str:
    return "values" if model.kind_ == "regression" else "probabilities"


def output_names(model) -> list[str]:
    return [output_name(model)] + (["decision"] if model.kind_ in ("binary", "multiclass") else [])


def _check_names(model) -> None:
    outputs = output_names(model)
    clashes = [c for c in model.schema_.features if c in outputs or c.startswith(GRAPH_PREFIXES)]
    if clashes:
        raise BadOption(f"feature column(s) {clashes} clash with names the ONNX graph uses itself (outputs "
                        f"{outputs}, names starting net/, prepare/, decide/); rename them and train again to export")


# -- the network --------------------------------------------------------------------------
def _export_net(model, opset: int) -> tuple[onnx.ModelProto, str]:
    """TabularNet (numbers, codes) -> scores, batch axis dynamic; torch.export first, TorchScript if that fails."""
    net = frozen_copy(model.net_)
    schema = model.schema_
    example = (torch.zeros(EXAMPLE_ROWS, len(schema.numeric) + len(schema.dates)),
               torch.full((EXAMPLE_ROWS, len(schema.categorical)), MISSING, dtype=torch.int64))
    return export_module(net, example, opset, ["numbers", "codes"], "scores")


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


def _metadata(model, exporter: str) -> dict[str, str]:
    schema = model.schema_
    return file_facts(model, exporter, output_names(model), INPUT_CONTRACT) | {
        "kind": model.kind_,
        "targets": json.dumps(model.targets),
        "classes": json.dumps(model.classes_, default=str),
        "thresholds": json.dumps([float(t) for t in getattr(model, "thresholds_", [])]),
        "inputs": json.dumps(schema.features),
        "dates": json.dumps(schema.dates),
        "categorical": json.dumps(schema.categorical),
    }


def read_facts(onnx_path: str | os.PathLike) -> dict[str, str]:
    """A table model file's metadata, with files written before the `kind` key (whose `task` held the kind)
    read as task "tabular" and that kind, so that every reader sees one meaning of each key."""
    facts = read_metadata(onnx_path)
    if "kind" not in facts and facts.get("task") in KINDS:
        facts |= {"task": "tabular", "kind": facts["task"]}
    return facts


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


def check_parity(model, onnx_path: str | os.PathLike, frame: pd.DataFrame) -> float:
    """Largest absolute difference between onnxruntime's and torch's outputs on the rows of `frame`."""
    exported = run_onnx(onnx_path, onnx_inputs(model, frame))[output_name(model)]
    expected = model._outputs(*model.schema_.to_arrays(frame))
    return largest_difference(onnx_path, exported, expected)
