"""Int8 ONNX models for edge boxes: ONNX Runtime quantisation of a task's float export, checked against it.

Why a check and not a flag: int8 weights and activations change a network's answers, a little for most
graphs and a lot for some (a memory-bank distance, a model that leans on one wide-ranged input). A plant
that puts the smaller file on a line PC must know what it costs, so `export_int8` writes the quantised
file only beside the float one and only when the task's metric on the given data stays within the stated
tolerance (`TOLERANCES`: accuracy within 0.5 points, image AUROC within 0.005, RUL RMSE within 2 %);
otherwise it refuses with both figures and writes nothing.

A task takes part through one contract hook, `Estimator.edge_data(data)`, which returns an `EdgeData`:
its graph's inputs for the data (`feeds`, one row per item: image, window, table row), how to score the
graph's outputs against the data's labels (`score`), the metric's name, and the method that suits its graph:

- static (QDQ format, ranges calibrated on the data through `CalibrationReader`): the convolutional nets of
  the image tasks, whose activations need ranges measured on real images; needs `MIN_CALIBRATION` items;
- dynamic (weights int8, activation ranges taken per batch at run time): the MLPs and recurrent nets of
  tables and RUL, whose inputs vary in range from batch to batch; the data only checks the metric, and
  still needs `MIN_CHECK` items.

`export_int8` reports, for the CLI and the benchmark: both files' sizes, ONNX Runtime's median time for
the same batch through each file (with 2 threads and with 1), and the metric of each on the data.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shopfloor.errors import BadOption, NotSupported

MIN_CALIBRATION = 32  # static ranges from fewer items swing with the sample (ORT's own examples use 100+)
MIN_CHECK = 20  # a metric on fewer items cannot tell a 0.5-point change from chance
MAX_CALIBRATION = 128  # ORT keeps every calibration batch's activations until it computes the ranges
CALIBRATION_BATCH = 8
SPEED_REPEATS = 7
SPEED_SECONDS = 0.5
# metric -> (largest allowed change, relative?): the tolerances, in the direction that hurts (a monitor's
# score: its AUROC against labels as image AUROC; without them, at most 0.5 % of steps flagged otherwise than float)
TOLERANCES: dict[str, tuple[float, bool]] = {"accuracy": (0.005, False), "f1": (0.005, False),
                                             "image_auroc": (0.005, False), "rmse": (0.02, True),
                                             "auroc": (0.005, False), "flag_agreement": (0.005, False)}
LOWER_IS_BETTER = {"rmse"}


@dataclass
class EdgeData:
    """What a task gives `export_int8` for one data set (see the module docstring)."""

    feeds: dict[str, np.ndarray]  # graph input -> array, axis 0 = items
    score: Callable[[dict[str, np.ndarray]], float]  # the graph's outputs for every item -> the task's metric
    metric: str  # a key of TOLERANCES
    method: str  # "static" or "dynamic"
    reason: str  # why this method suits the task's graph, in a sentence
    items: str = "rows"  # what one item is, for messages ("images", "windows")
    speed_batch: int = 8  # items per timed run: what the task sends at once on the line
    keep_float: list[str] = field(default_factory=list)  # node names left in float
    op_types: list[str] | None = None  # only these operators are quantised (None: every one ONNX Runtime can)
    # the task's own graph work, each given the ONNX model: node names its static quantiser must leave in float
    # (found on the prepared float graph), and a rewrite of the quantised graph (the anomaly bank search, the
    # diagnose network's float readers of the CNN's input)
    float_nodes: Callable | None = None
    rewrite: Callable | None = None

    @property
    def count(self) -> int:
        return len(next(iter(self.feeds.values())))

    def batches(self, size: int, rows: np.ndarray | None = None) -> Iterator[dict[str, np.ndarray]]:
        """The feeds `size` items at a time: all of them, or those of `rows` in that order."""
        rows = np.arange(self.count) if rows is None else rows
        for start in range(0, len(rows), size):
            yield {name: value[rows[start:start + size]] for name, value in self.feeds.items()}


def calibration_reader(edge: EdgeData):
    """An onnxruntime `CalibrationDataReader` over the task's inputs, CALIBRATION_BATCH items at a time: all of
    them, or MAX_CALIBRATION drawn at random (seed 0) from a larger set."""
    from onnxruntime.quantization import CalibrationDataReader

    from shopfloor.kits.sampling import spread_rows

    rows = spread_rows(edge.count, MAX_CALIBRATION)

    class CalibrationReader(CalibrationDataReader):
        def __init__(self):
            self.batches = edge.batches(CALIBRATION_BATCH, rows)

        def get_next(self):
            return next(self.batches, None)

    return CalibrationReader()


def check_enough(edge: EdgeData, source: str) -> None:
    """Refuse a data set too small to calibrate (static) or to measure the metric on (both), saying how many
    are needed."""
    needed = MIN_CALIBRATION if edge.method == "static" else MIN_CHECK
    if edge.count < needed:
        purpose = "calibrate static int8 ranges and check the metric" if edge.method == "static" else "check the metric"
        raise BadOption(f"{source} has {edge.count} {edge.items}; int8 export needs at least {needed} to {purpose} "
                        f"(give --data a larger set)")


def quantise_file(float_path: Path, int8_path: Path, edge: EdgeData, per_channel: bool = True) -> Path:
    """Write the int8 file of `float_path` by the task's method (`per_channel` weight scales: static only); the
    float graph is first simplified and its
    shapes inferred (`quant_pre_process`), which ONNX Runtime recommends; a graph it cannot simplify (one
    with a domain it does not know) is quantised as it is."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from shopfloor.kits.onnx import quiet

    # quiet: ONNX Runtime's quantiser logs advice on the root logger ("consider pre-processing"), not for people
    with quiet("root"):
        prepared = int8_path.with_suffix(".prepared.onnx")
        try:
            quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=False)
        except Exception:  # noqa: BLE001  (any failure: the original graph is a valid input too)
            shutil.copyfile(float_path, prepared)
        keep_float = list(edge.keep_float)
        if edge.float_nodes is not None:
            import onnx

            keep_float += edge.float_nodes(onnx.load(str(prepared)))
        if edge.method == "static":
            # U8 activations, S8 weights: the pairing ONNX Runtime's x86 kernels run fastest
            options = {"ActivationSymmetric": False}
            settings = dict(quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, nodes_to_exclude=keep_float,
                            op_types_to_quantize=edge.op_types)
            try:
                quantize_static(str(prepared), str(int8_path), calibration_reader(edge), **settings,
                                extra_options=options)
            except ValueError:
                # ONNX Runtime 1.32 fails to widen a per-channel weight scale for an int32 bias on some graphs
                # (the EfficientNet-Lite0 anomaly net: "truth value of an array ... is ambiguous"): without
                # that adjustment, which only guards very small weight scales, it quantises them
                quantize_static(str(prepared), str(int8_path), calibration_reader(edge), **settings,
                                extra_options=options | {"QDQDisableWeightAdjustForInt32Bias": True})
        else:
            # per tensor: ONNX Runtime's dynamic kernels refuse per-channel scales on the batched products of an
            # ensemble's members ("b zero point is not valid")
            quantize_dynamic(str(prepared), str(int8_path), per_channel=False, weight_type=QuantType.QInt8,
                             nodes_to_exclude=keep_float)
    prepared.unlink(missing_ok=True)
    if edge.rewrite is not None:
        import onnx

        onnx.save(edge.rewrite(onnx.load(str(int8_path))), str(int8_path))
    return int8_path


def session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_all(path: Path, edge: EdgeData, batch: int = 32) -> dict[str, np.ndarray]:
    """The graph's outputs for every item, by name."""
    runner = session(path, threads=max(1, min(2, os.cpu_count() or 1)))
    names = [o.name for o in runner.get_outputs()]
    parts = [runner.run(names, feed) for feed in edge.batches(batch)]
    return {name: np.concatenate([p[k] for p in parts]) for k, name in enumerate(names)}


def median_seconds(path: Path, edge: EdgeData, threads: int, repeats: int = SPEED_REPEATS) -> float:
    """Median wall time of one run of the same `speed_batch` items, after a warm-up run: `repeats` runs, or more
    for a fast graph (until SPEED_SECONDS have passed, at most 500 runs), whose single runs other jobs skew most."""
    runner = session(path, threads)
    feed = next(edge.batches(edge.speed_batch))
    runner.run(None, feed)
    times: list[float] = []
    while len(times) < repeats or (sum(times) < SPEED_SECONDS and len(times) < 500):
        start = time.perf_counter()
        runner.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def within_tolerance(metric: str, float_value: float, int8_value: float) -> bool:
    allowed, relative = TOLERANCES[metric]
    loss = (int8_value - float_value) if metric in LOWER_IS_BETTER else (float_value - int8_value)
    return loss <= allowed * (abs(float_value) if relative else 1.0) + 1e-12


def tolerance_words(metric: str) -> str:
    allowed, relative = TOLERANCES[metric]
    return f"{allowed:.0%} of the float model's" if relative else f"{allowed:g}"


def compare(float_path: Path, int8_path: Path, edge: EdgeData, float_metric: float | None = None) -> dict:
    """Sizes, speeds (2 threads and 1) and the metric of both files on the data (the float file's metric
    measured again unless given: a benchmark comparing several int8 files with one float file measures it once)."""
    if float_metric is None:
        float_metric = float(edge.score(run_all(float_path, edge)))
    report = {"method": edge.method, "why": edge.reason, "metric": edge.metric, "items": edge.count,
              "float_bytes": float_path.stat().st_size, "int8_bytes": int8_path.stat().st_size,
              f"float_{edge.metric}": float_metric,
              f"int8_{edge.metric}": float(edge.score(run_all(int8_path, edge))), "speed_batch": edge.speed_batch}
    report["size_ratio"] = report["float_bytes"] / report["int8_bytes"]
    for threads in (2, 1):
        float_s, int8_s = (median_seconds(p, edge, threads) for p in (float_path, int8_path))
        report[f"float_ms_{threads}_threads"] = 1000 * float_s
        report[f"int8_ms_{threads}_threads"] = 1000 * int8_s
        report[f"speed_ratio_{threads}_threads"] = float_s / int8_s
    return report


def int8_path_for(out: str | os.PathLike) -> Path:
    """Where the int8 file goes beside the float one: model.onnx -> model.int8.onnx."""
    out = Path(out)
    return out.with_name(out.stem + ".int8.onnx")


def export_int8(model, out: str | os.PathLike, data, truth=None) -> dict:
    """Export `model` as float ONNX to `out` and int8 ONNX beside it (`int8_path_for`), both only when the int8
    file keeps the task's metric on `data` within tolerance; returns `compare`'s report plus both paths.

    Everything is written in a temporary folder beside `out` and moved into place at the end, so a refusal
    (too few items, a metric outside tolerance) leaves neither file."""
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise BadOption(f"{out}: ONNX export writes a '.onnx' file; other formats ('{out.suffix or 'none'}') "
                        "are not supported")
    edge = model.edge_data(data, truth)
    check_enough(edge, str(data) if isinstance(data, (str, os.PathLike)) else "the data")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".int8-") as folder:
        float_path = model.export_onnx(Path(folder) / "float.onnx")
        int8_path = quantise_file(float_path, Path(folder) / "int8.onnx", edge)
        try:
            report = compare(float_path, int8_path, edge)
        except Exception as err:  # noqa: BLE001  (onnxruntime's own errors have no common class)
            raise NotSupported(f"the int8 graph ({edge.method}) does not run in ONNX Runtime "
                               f"({str(err).splitlines()[0][:200]}); no file written (keep the float model)") from None
        before, after = report[f"float_{edge.metric}"], report[f"int8_{edge.metric}"]
        if not within_tolerance(edge.metric, before, after):
            raise NotSupported(f"int8 quantisation ({edge.method}) would change {edge.metric} on {edge.count} "
                               f"{edge.items} from {before:.4f} to {after:.4f}, beyond the tolerance of "
                               f"{tolerance_words(edge.metric)} {edge.metric}; no file written (keep the float model)")
        os.replace(float_path, out)
        os.replace(int8_path, int8_path_for(out))
    return report | {"float_path": str(out), "int8_path": str(int8_path_for(out))}


def report_lines(report: dict) -> list[str]:
    """`export_int8`'s report for a person: what was written, and size, speed and metric against float."""
    metric = report["metric"]
    slower = ["the int8 file ran slower than the float one on this CPU: it saves memory and disk, not time; keep "
              "the float file where speed matters"] if max(report["speed_ratio_1_threads"],
                                                             report["speed_ratio_2_threads"]) < 1 else []
    return [f"wrote {report['float_path']} (float) and {report['int8_path']} (int8, {report['method']}: {report['why']})",
            f"size {report['float_bytes'] / 1e6:.2f} MB -> {report['int8_bytes'] / 1e6:.2f} MB "
            f"({report['size_ratio']:.1f}x smaller)",
            f"ONNX Runtime, batch of {report['speed_batch']}: {report['float_ms_2_threads']:.1f} ms -> "
            f"{report['int8_ms_2_threads']:.1f} ms on 2 threads ({report['speed_ratio_2_threads']:.2f}x), "
            f"{report['float_ms_1_threads']:.1f} ms -> {report['int8_ms_1_threads']:.1f} ms on 1 "
            f"({report['speed_ratio_1_threads']:.2f}x)",
            f"{metric} on {report['items']} items: {report[f'float_{metric}']:.4f} float, "
            f"{report[f'int8_{metric}']:.4f} int8 (tolerance {tolerance_words(metric)} {metric})", *slower]
