"""Int8 edge models: size, ONNX Runtime speed and metric of each task's int8 file against its float one.

Protocol (fixed before any tuning, also written into the JSON):
- defect classes: NEU (../shared/data/neu-det/images, 6 classes x 300), DefectModel(backbone="lite0") as
  benchmarks/neu.py trains it, on a stratified 80 % (seed 0); the other 20 % (360 images) calibrate and
  score: accuracy;
- anomaly detection: magnetic tile, AnomalyModel() defaults (seed 0) fit on train/good as
  benchmarks/magnetic_tile.py does (or a saved model given with --anomaly-model, trained the same way); test/
  (good and the 5 defect folders) calibrates and scores: image AUROC;
- remaining useful life: C-MAPSS FD001, RULModel() defaults (seed 0) on train_FD001 as benchmarks/cmapss.py
  trains it (or a saved model given with --rul-model, e.g. the demo's, which is trained the same way on the
  same file); scored at each test unit's last cycle against RUL_FD001: RMSE;
- fault diagnosis: CWRU (../shared/data/cwru, the 10 classes at load 0, drive end, 12 kHz) as benchmarks/cwru.py
  splits it: DiagnoseModel(rate=12000) defaults (front both, window 2,048, seed 0) fit on the first 70 % of every
  recording; the non-overlapping windows of the last 30 % calibrate and score: window accuracy (f1_macro and the
  share of windows whose unknown verdict changes are reported beside it);
- sensor monitoring: SKAB (../shared/data/skab) as one fleet model in the way benchmarks/skab.py trains one per
  file: MonitorModel(time="datetime", machine="session") defaults (seed 0) fit on anomaly-free.csv and the
  first 400 rows of each of the 34 experiment files (each file its own session); the rest of every file
  calibrates and scores: AUROC of the score against its `anomaly` column, and, scored again without the label,
  the share of steps whose flag is the float model's (`flag_agreement`). Static and dynamic are both measured;
- int8 as `shopfloor export --int8` makes it (`shopfloor.kits.quantise`): static QDQ with per-channel weights
  for the CNNs (at most 128 calibration images drawn from the scored set), dynamic for RUL. When a target is
  missed, the variants are measured too: per-tensor weights, first and last layers kept in float, dynamic
  instead of static (the shipped method stays the first one; the variants are reported, not chosen on the
  scored images);
- the anomaly detector (second protocol, issue 19's int8 rework): its backbone static QDQ per-channel and its
  memory-bank search int8 products that rank the bank for each patch, its nearest by that estimate compared
  in float (shopfloor.tasks.anomaly.bank_search); measured beside it in every run: 4 candidates compared in
  float, per-tensor weights, and the quantiser's own int8 search (the method shipped before); the float
  file's metric is measured once for all of them;
- speed, paired (added with the anomaly rework, after a run whose float figures moved 2x between variants as
  the load changed): for the shipped file, 15 float and int8 runs of the same batch in turn, the median of
  each pair's ratio (and its quartiles), with 2 threads and 1;
- speed: ONNX Runtime on the CPU, the same batch (8 images, 64 RUL windows) through each file, median of 7
  runs after a warm-up, with intra_op_num_threads=2 and =1 (other jobs share the machine's two cores: the
  1-thread figure is the steadier one);
- size: bytes on disk of each .onnx file;
- `--demo DIR` (cheaper, and the only image figures recorded so far): the demo's defect classifier and anomaly
  detector instead, scored on the demo's generated test images (surfaces/classes-test, surfaces/inspection),
  and the demo's pumps monitor on pumps-today.csv (AUROC against its `fault` column, and flag agreement
  without it), written to results/int8-demo.json.

    .venv/bin/python benchmarks/int8.py                             # all three (trains each model)
    .venv/bin/python benchmarks/int8.py --tasks rul --rul-model demo-output/cmapss-model
    .venv/bin/python benchmarks/int8.py --tasks defects,anomaly --demo demo-output   # the demo's image models
    .venv/bin/python benchmarks/int8.py --tasks diagnose,monitor    # CWRU and SKAB (trains both, a few minutes)
    .venv/bin/python benchmarks/int8.py --tasks anomaly --anomaly-model mt-model    # a saved magnetic-tile model
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import DATA_ROOT, RESULTS, check, data_file, limit_threads, machine, print_table, print_targets, versions, write_json

from shopfloor.kits import quantise

TASKS = ("defects", "anomaly", "rul", "diagnose", "monitor")
BOTH_METHODS = {"diagnose", "monitor"}  # the other method is measured even when the shipped one meets the targets
SKAB_TRAIN_ROWS = 400  # as benchmarks/skab.py (SKAB's leaderboard protocol)
TARGETS = {"size_ratio": 3.0, "speed_ratio": 1.5}
FLOAT_METRIC: dict[tuple[Path, str], float] = {}  # (float file, metric) -> its value, once for all int8 variants


def neu_model():
    from sklearn.model_selection import train_test_split

    from shopfloor.tasks.defects.model import DefectModel
    from shopfloor.vision.folders import read_class_folders

    folders = read_class_folders(DATA_ROOT / "neu-det" / "images")
    rows = np.arange(len(folders.paths))
    train, test = train_test_split(rows, test_size=0.2, stratify=np.array(folders.labels), random_state=0)
    model = DefectModel(backbone="lite0", progress=False).fit(folders.subset(list(train)))
    return model, folders.subset(list(test)), None


def magnetic_tile_model(saved: str | None = None):
    import shopfloor
    from shopfloor.tasks.anomaly.model import AnomalyModel

    root = DATA_ROOT / "magnetic-tile"
    if saved:
        return shopfloor.load(saved), root, None
    return AnomalyModel(seed=0, progress=False).fit(root), root, None


def anomaly_variants(edge) -> list[tuple[str, object, bool]]:
    """The anomaly detector's alternatives to the shipped int8 graph, measured in the same run: another number of
    candidates compared in float, per-tensor weights, and what the quantiser makes of the whole graph on its own
    (the method shipped before, its search int8 QDQ)."""
    from functools import partial

    from shopfloor.tasks.anomaly.bank_search import CANDIDATES, int8_search

    return [*((f"int8 search, {k} candidate(s) in float", dataclasses.replace(edge, rewrite=partial(
                int8_search, candidates=k)), True) for k in (1, 4) if k != CANDIDATES),
            ("int8 search, per-tensor weights", edge, False),
            ("the quantiser's own int8 search (shipped before), per-tensor",
             dataclasses.replace(edge, float_nodes=None, rewrite=None), False)]


def demo_model(task: str, demo: Path):
    """The demo's model of `task` and the data the demo evaluates it on (its generated surfaces)."""
    import pandas as pd

    import shopfloor

    if task == "monitor":  # the pumps, scored on the next day against its `fault` column
        return shopfloor.load(demo / "pumps-model"), pd.read_csv(demo / "pumps-today.csv"), "fault"
    model = shopfloor.load(demo / f"{task}-model")
    return model, demo / "surfaces" / ("classes-test" if task == "defects" else "inspection"), None


def cmapss_model(saved: str | None):
    import shopfloor
    from shopfloor.data.runs import read_runs
    from shopfloor.tasks.rul.model import RULModel

    test = data_file("cmapss/test_FD001.txt")
    if saved:
        return shopfloor.load(saved), test, data_file("cmapss/RUL_FD001.txt")
    model = RULModel(seed=0, progress=False).fit(read_runs(data_file("cmapss/train_FD001.txt")))
    return model, test, data_file("cmapss/RUL_FD001.txt")


def cwru_model():
    import cwru

    from shopfloor.tasks.diagnose.model import DiagnoseModel
    from shopfloor.tasks.diagnose.windows import time_split

    with tempfile.TemporaryDirectory() as tmp:
        train, test = time_split(cwru.recordings(Path(tmp)), cwru.SHARE)
    return DiagnoseModel(rate=cwru.RATE, seed=0, progress=False).fit(train), test, None


def skab_frames() -> tuple:
    """SKAB's anomaly-free history and its 34 experiment files, each as one session: (training rows, test rows)."""
    import pandas as pd

    root = DATA_ROOT / "skab"
    free = pd.read_csv(root / "anomaly-free" / "anomaly-free.csv", sep=";").assign(session="anomaly-free")
    train, test = [free], []
    for group in ("valve1", "valve2", "other"):
        for path in sorted((root / group).glob("*.csv"), key=lambda p: int(p.stem)):
            frame = pd.read_csv(path, sep=";").drop(columns=["changepoint"]).assign(session=f"{group}/{path.stem}")
            train.append(frame.iloc[:SKAB_TRAIN_ROWS].drop(columns=["anomaly"]))
            test.append(frame.iloc[SKAB_TRAIN_ROWS:])
    return pd.concat(train, ignore_index=True), pd.concat(test, ignore_index=True)


def skab_model():
    import warnings

    from shopfloor.tasks.monitor.model import MonitorModel

    train, test = skab_frames()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant sensor in a file: said once per session otherwise
        model = MonitorModel(time="datetime", machine="session", seed=0, progress=False).fit(train)
    return model, test, "anomaly"


def diagnosis_extras(model, edge, folder: Path, variants: list[dict], data) -> None:
    """f1_macro of each file's classes and the share of windows whose unknown verdict the int8 file changes."""
    from sklearn.metrics import f1_score

    from shopfloor.tasks.diagnose.edge import labelled_windows

    _, labels = labelled_windows(model, data)
    reference = quantise.run_all(folder / "float.onnx", edge)
    for v in variants:
        path = folder / f"{v['variant']}.onnx"
        if "error" in v or not path.exists():
            continue
        got = quantise.run_all(path, edge)
        v["float_f1_macro"] = float(f1_score(labels, reference["probabilities"].argmax(1), average="macro"))
        v["int8_f1_macro"] = float(f1_score(labels, got["probabilities"].argmax(1), average="macro"))
        v["unknown_verdict_changed"] = float(np.mean((reference["novelty"] > 1) != (got["novelty"] > 1)))


def edge_nodes(int8_free: Path) -> list[str]:
    """The first and the last node that carry weights (Conv, Gemm, MatMul) of a float graph."""
    import onnx

    weighted = [n.name for n in onnx.load(str(int8_free)).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    return [weighted[0], weighted[-1]] if weighted else []


def measure(model, edge, folder: Path, name: str, per_channel: bool = True) -> dict:
    float_path = folder / "float.onnx"
    if not float_path.exists():
        model.export_onnx(float_path)
    started = time.perf_counter()
    try:
        int8_path = quantise.quantise_file(float_path, folder / f"{name}.onnx", edge, per_channel=per_channel)
        quantise_s = time.perf_counter() - started
        report = quantise.compare(float_path, int8_path, edge, FLOAT_METRIC.get((float_path, edge.metric)))
        FLOAT_METRIC[float_path, edge.metric] = report[f"float_{edge.metric}"]
    except Exception as err:  # noqa: BLE001  (a variant ONNX Runtime cannot make or run is a result too)
        return {"variant": name, "error": str(err).splitlines()[0][:300]}
    before, after = report[f"float_{edge.metric}"], report[f"int8_{edge.metric}"]
    return report | {"variant": name, "quantise_seconds": quantise_s, "keep_float": edge.keep_float,
                     "metric_within_tolerance": quantise.within_tolerance(edge.metric, before, after)}


def paired_speed(float_path: Path, int8_path: Path, edge, threads: int, pairs: int = 15) -> dict:
    """Float and int8 runs of the same batch taken in turn (after a warm-up of each), and the median of each
    pair's ratio: a change of load on the shared cores then falls on both files of a pair alike, where the
    protocol's figure times each file's runs as a block, minutes apart when the graph is slow."""
    runners = [quantise.session(path, threads) for path in (float_path, int8_path)]
    feed = next(edge.batches(edge.speed_batch))
    ratios = []
    for runner in runners:
        runner.run(None, feed)
    for _ in range(pairs):
        spent = []
        for runner in runners:
            started = time.perf_counter()
            runner.run(None, feed)
            spent.append(time.perf_counter() - started)
        ratios.append(spent[0] / spent[1])
    return {f"paired_speed_ratio_{threads}_threads": float(np.median(ratios)),
            f"paired_speed_ratio_{threads}_threads_quartiles": [float(q) for q in np.quantile(ratios, [0.25, 0.75])]}


def met(result: dict) -> bool:
    return ("error" not in result and result["metric_within_tolerance"] and result["size_ratio"] >= TARGETS["size_ratio"]
            and result["speed_ratio_1_threads"] >= TARGETS["speed_ratio"])


def run_task(task: str, rul_model: str | None, demo: Path | None = None, anomaly_model: str | None = None) -> dict:
    started = time.perf_counter()
    if demo is not None and task not in ("rul", "diagnose"):
        model, data, truth = demo_model(task, demo)
    elif task == "rul":
        model, data, truth = cmapss_model(rul_model)
    elif task == "diagnose":
        model, data, truth = cwru_model()
    elif task == "monitor":
        model, data, truth = skab_model()
    else:
        model, data, truth = neu_model() if task == "defects" else magnetic_tile_model(anomaly_model)
    train_minutes = (time.perf_counter() - started) / 60
    edge = model.edge_data(data, truth)
    variants = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        variants.append(measure(model, edge, folder, f"{edge.method} (shipped)"))
        if "error" not in variants[0]:
            for threads in (2, 1):
                variants[0] |= paired_speed(folder / "float.onnx", folder / f"{edge.method} (shipped).onnx", edge, threads)
        if task == "monitor":  # the same file scored without the label: its flags against the float model's
            unlabelled = model.edge_data(data.drop(columns=[truth]))
            variants.append(measure(model, unlabelled, folder, f"{edge.method}, scored without the label"))
            variants.append(measure(model, dataclasses.replace(unlabelled, method="dynamic"), folder,
                                    "dynamic, scored without the label"))
        if task in BOTH_METHODS and met(variants[0]):
            other = "dynamic" if edge.method == "static" else "static"
            variants.append(measure(model, dataclasses.replace(edge, method=other), folder, other))
        if task == "diagnose":
            variants.append(measure(model, dataclasses.replace(edge, rewrite=None), folder,
                                    "static, the CNN's input rounded for every reader (ONNX Runtime's default)"))
            variants.append(measure(model, dataclasses.replace(edge, op_types=None), folder,
                                    "static, every operator (spectra and distances too), per-tensor", per_channel=False))
        if task == "anomaly":
            for name, variant, per_channel in anomaly_variants(edge):
                variants.append(measure(model, variant, folder, name, per_channel=per_channel))
        elif not met(variants[0]):
            if edge.method == "static":
                variants.append(measure(model, edge, folder, "static, per-tensor weights", per_channel=False))
            kept = dataclasses.replace(edge, keep_float=edge_nodes(folder / "float.onnx"))
            variants.append(measure(model, kept, folder, f"{edge.method}, first and last layers float"))
            other = "dynamic" if edge.method == "static" else "static"
            variants.append(measure(model, dataclasses.replace(edge, method=other), folder, other))
        if task == "diagnose":
            diagnosis_extras(model, edge, folder, variants, data)
    return {"task": task, "metric": edge.metric, "items": edge.count, "model_minutes": train_minutes,
            "model": (rul_model if task == "rul" and rul_model else f"the demo's, {demo}" if demo is not None
                      else anomaly_model if task == "anomaly" and anomaly_model else "trained in this run"),
            "variants": variants}


def targets(results: dict) -> list[dict]:
    found = []
    for task, result in results.items():
        shipped = result["variants"][0]
        if "error" in shipped:
            found.append(check(f"{task}: int8 file runs", 0.0, "runs", False))
            continue
        metric = result["metric"]
        change = shipped[f"int8_{metric}"] - shipped[f"float_{metric}"]
        found.append(check(f"{task}: {metric} change int8 - float", change, quantise.tolerance_words(metric) + " " + metric,
                           shipped["metric_within_tolerance"]))
        if task in ("defects", "anomaly"):  # the size and speed targets name these two
            found.append(check(f"{task}: size ratio", shipped["size_ratio"], ">= 3", shipped["size_ratio"] >= 3))
            for threads in (2, 1):
                ratio = shipped[f"speed_ratio_{threads}_threads"]
                found.append(check(f"{task}: speed ratio, {threads} thread(s)", ratio, ">= 1.5", ratio >= 1.5))
    return found


def variant_row(task: str, metric: str, v: dict) -> list[str]:
    if "error" in v:
        return [task, v["variant"], *["error"] * 5]
    metric = v.get("metric", metric)  # a monitor scored without its label: flag agreement
    return [task, v["variant"], f"{v['size_ratio']:.1f}x", f"{v['speed_ratio_2_threads']:.2f}x",
            f"{v['speed_ratio_1_threads']:.2f}x", f"{v['float_' + metric]:.4f}", f"{v['int8_' + metric]:.4f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--rul-model", default=None, help="a saved FD001 RUL model folder instead of training one")
    parser.add_argument("--demo", type=Path, default=None,
                        help="the image tasks on the demo's models and generated surfaces (results: int8-demo.json)")
    parser.add_argument("--anomaly-model", default=None,
                        help="a saved magnetic-tile anomaly model folder (AnomalyModel(seed=0) on train/good, as this "
                             "script trains it) instead of training one")
    args = parser.parse_args()
    limit_threads(2)
    name = "int8-demo" if args.demo else "int8"
    path = RESULTS / f"{name}.json"
    results = json.loads(path.read_text()).get("results", {}) if path.exists() else {}
    for task in args.tasks.split(","):
        results[task] = run_task(task, args.rul_model, args.demo, args.anomaly_model)
        rows = [variant_row(task, results[task]["metric"], v) for v in results[task]["variants"]]
        print_table(f"int8 against float: {task}", ["task", "variant", "smaller", "faster 2 thr", "faster 1 thr",
                                                    "float", "int8"], rows)
        save(name, results)  # after each task: a later task's failure keeps this one's figures


def save(name: str, results: dict) -> None:
    found = targets(results)
    print_targets(found)
    write_json(name, {"protocol": __doc__.split("Protocol")[1].split("    .venv")[0].strip(), "machine": machine(),
                      "versions": versions(("shopfloor", "torch", "onnxruntime", "onnx")),
                      "note": "timings taken while other jobs shared the 2 CPU cores", "results": results,
                      "targets": found})


if __name__ == "__main__":
    main()
