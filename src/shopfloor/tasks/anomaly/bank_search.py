"""The int8 anomaly detector's memory-bank search: int8 products to find a few candidates, float to rank them.

Why not the quantiser's own int8 product: most of the float graph's time is the search, one product of
every patch against every bank patch and a minimum over it (57 % of a run of the demo's detector in ONNX
Runtime's profiler, 65 % of the magnetic-tile detector's at 256 pixels), so an int8 backbone alone cannot
make the file much faster; and ONNX Runtime's static quantiser writes that product as a QDQ matrix
product whose float result (patches x bank patches) is quantised and dequantised again: 0.65-0.71x the
float file's speed on magnetic tile (benchmarks/README.md, int8.py).

What `int8_search` writes instead, in place of the float graph's product and minimum:
1. the bank as int8 with one scale per bank patch (symmetric), the only copy of it in the file;
2. the patches quantised per batch (`DynamicQuantizeLinear`) and multiplied by the int8 bank
   (`MatMulInteger`, which ONNX Runtime fuses with the scaling into one int8 kernel), ranking each bank
   patch by |b|^2 - 2 p.b: the `CANDIDATES` nearest by that estimate are kept (`TopK`);
3. those candidates' distances again in float, from the float patch and the dequantised bank patch, and
   their minimum: what the rest of the graph (|p|^2 added, square root, heatmap) receives as before.

The result differs from the float model's only where the int8 estimate misses the true nearest bank
patch among its candidates, and then by the gap between two near neighbours; the int8 bank's rounding
adds to each distance in quadrature (its error is small against a patch's distance to its neighbour).
Nodes from the patch features on stay out of the static quantiser's reach (`float_tail`), so the heatmap's
resizing and smoothing stay float too.
"""

from __future__ import annotations

import numpy as np

# bank patches per image patch compared again in float: on magnetic tile 1 and 4 gave the same image AUROC
# (0.9696 against 0.9692 float) and 1 ran faster (benchmarks/README.md, int8.py, which measures 4 beside it)
CANDIDATES = 1
PREFIX = "int8_bank_search"


def search_nodes(proto):
    """The float graph's bank search: its product (the Gemm against the bank) and the minimum over its result."""
    from shopfloor.errors import NotSupported

    consumers = _consumers(proto)
    for node in proto.graph.node:
        if node.op_type == "Gemm":
            after = consumers.get(node.output[0], [])
            if len(after) == 1 and after[0].op_type == "ReduceMin":
                return node, after[0]
    raise NotSupported("the anomaly graph has no memory-bank search (a product followed by a minimum) to quantise; "
                       "export it again with this version of shopfloor")


def float_tail(proto) -> list[str]:
    """Names of the nodes fed, directly or not, by the patch features (the search's input): the search, the
    distances and the heatmap, which the static quantiser leaves in float."""
    gemm, _ = search_nodes(proto)
    consumers = _consumers(proto)
    names, seen, todo = [], set(), [gemm.input[0]]
    while todo:
        for node in consumers.get(todo.pop(), []):
            if node.name not in seen:
                seen.add(node.name)
                names.append(node.name)
                todo.extend(node.output)
    return names


def quantise_bank(bank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 bank patches and one scale per patch (symmetric: the largest absolute value maps to 127)."""
    scale = np.abs(bank).max(1) / 127
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return np.clip(np.rint(bank / scale[:, None]), -127, 127).astype(np.int8), scale


def int8_search(proto, candidates: int = CANDIDATES):
    """`proto` with its float bank search replaced by the int8 search with float ranking of `candidates`
    (see the module docstring); the float bank and its norms leave the file."""
    from onnx import TensorProto, helper, numpy_helper

    gemm, minimum = search_nodes(proto)
    graph = proto.graph
    initial = {i.name: i for i in graph.initializer}
    attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
    if gemm.input[1] not in initial or attrs.get("transA", 0):
        from shopfloor.errors import NotSupported

        raise NotSupported("the anomaly graph's bank search does not read a stored bank; export it again with "
                           "this version of shopfloor")
    bank = numpy_helper.to_array(initial[gemm.input[1]]).astype(np.float32)
    bank = bank if attrs.get("transB", 0) else bank.T  # [bank patches, features]
    bank_q, scale = quantise_bank(bank)
    dequantised = bank_q.astype(np.float32) * scale[:, None]
    norms = (dequantised * dequantised).sum(1).astype(np.float32)
    k = min(candidates, len(bank))
    patches = gemm.input[0]

    def name(part: str) -> str:
        return f"{PREFIX}/{part}"

    constants = {"bank": bank_q, "bank_scale": scale, "minus_two_scale": (-2 * scale).astype(np.float32),
                 "bank_norm": norms, "k": np.array([k], np.int64), "axis1": np.array([1], np.int64),
                 "axis2": np.array([2], np.int64), "minus_two": np.array(-2, np.float32)}
    nodes = [
        helper.make_node("Transpose", [name("bank")], [name("bank_t")], perm=[1, 0], name=name("transpose")),
        helper.make_node("DynamicQuantizeLinear", [patches], [name("p_q"), name("p_scale"), name("p_zero")],
                         name=name("quantise_patches")),
        helper.make_node("MatMulInteger", [name("p_q"), name("bank_t"), name("p_zero")], [name("dot_i32")],
                         name=name("matmul_int8")),
        helper.make_node("Cast", [name("dot_i32")], [name("dot_f")], to=TensorProto.FLOAT, name=name("cast")),
        helper.make_node("Mul", [name("p_scale"), name("minus_two_scale")], [name("dot_scale")], name=name("scales")),
        helper.make_node("Mul", [name("dot_f"), name("dot_scale")], [name("minus_two_dot")], name=name("scale")),
        helper.make_node("Add", [name("minus_two_dot"), name("bank_norm")], [name("estimate")], name=name("estimate")),
        helper.make_node("TopK", [name("estimate"), name("k")], [name("estimate_k"), name("nearest")], axis=-1,
                         largest=0, sorted=0, name=name("candidates")),
        helper.make_node("DequantizeLinear", [name("bank"), name("bank_scale")], [name("bank_f")], axis=0,
                         name=name("dequantise_bank")),
        helper.make_node("Gather", [name("bank_f"), name("nearest")], [name("near_f")], axis=0, name=name("gather")),
        helper.make_node("Unsqueeze", [patches, name("axis1")], [name("p_row")], name=name("unsqueeze")),
        helper.make_node("Mul", [name("near_f"), name("p_row")], [name("products")], name=name("products")),
        helper.make_node("ReduceSum", [name("products"), name("axis2")], [name("dots")], keepdims=0, name=name("dots")),
        helper.make_node("Gather", [name("bank_norm"), name("nearest")], [name("near_norm")], axis=0,
                         name=name("gather_norm")),
        helper.make_node("Mul", [name("dots"), name("minus_two")], [name("minus_two_dots")], name=name("times_two")),
        helper.make_node("Add", [name("near_norm"), name("minus_two_dots")], [name("exact")], name=name("exact")),
        helper.make_node("ReduceMin", [name("exact"), name("axis1")], [minimum.output[0]],
                         keepdims=_keepdims(minimum), name=name("minimum")),
    ]
    position = list(graph.node).index(gemm)
    kept = [n for n in graph.node if n is not gemm and n is not minimum]
    del graph.node[:]
    graph.node.extend(kept[:position] + nodes + kept[position:])
    graph.initializer.extend(numpy_helper.from_array(value, name(key)) for key, value in constants.items())
    _drop_unused_initializers(graph)
    return proto


def _keepdims(node) -> int:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == "keepdims"), 1)


def _consumers(proto) -> dict[str, list]:
    found: dict[str, list] = {}
    for node in proto.graph.node:
        for tensor in node.input:
            found.setdefault(tensor, []).append(node)
    return found


def _drop_unused_initializers(graph) -> None:
    used = {tensor for node in graph.node for tensor in node.input} | {o.name for o in graph.output}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
