"""`shopfloor demo`: train, evaluate, explain, report and export on data shipped in the package.

The demo is what `make demo` runs on a fresh machine:
1. AI4I 2020 machine-failure prediction, trained on 80 % of the rows and evaluated on the 20 % it
   never saw;
2. remaining useful life of NASA C-MAPSS FD001 turbofan engines: trained on 100 run-to-failure
   histories, evaluated on the 100 test engines whose histories stop before failure;
3. visual inspection of generated metal surfaces (the NEU and magnetic-tile images may not ship with
   shopfloor): a defect classifier (crack, scratch, spot) and a good-only anomaly detector with heatmaps;
4. process optimisation of a simulated flow reactor (published SnAr kinetics): settings recommended
   from 40 past runs under an E-factor limit, then three rounds of the suggested experiments;
5. sensor monitoring of three generated pumps (`demo.pumps`: SKAB may not ship with shopfloor): normal
   behaviour learnt from two days of their unlabelled readings, then a new day in which one pump's bearing
   starts to wear, found, explained per sensor, grouped into events and exported;
6. on the line (`demo.line`): the models of parts 1-4 in a registry behind the REST service and a stream
   worker, recorded engines and machines replayed over MQTT, and the live dashboard's address.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from shopfloor.demo.data import AI4I_FAILURE_MODES, AI4I_TARGET, demo_file
from shopfloor.display import metrics_table, plain


def run_demo(out: Path, console: Console, quick: bool = False, line: bool = True, port: int = 8000,
             serve_seconds: float = 0.0) -> dict:
    from sklearn.model_selection import train_test_split

    from shopfloor.data.tables import read_table, write_table
    from shopfloor.tasks.tabular.model import TabularModel
    from shopfloor.tasks.tabular.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    data = read_table(demo_file("ai4i2020.csv.gz"))
    train, test = train_test_split(data, test_size=0.2, stratify=data[AI4I_TARGET], random_state=0)
    write_table(test, out / "ai4i-holdout.csv")
    console.rule("[bold]1. Failure prediction: AI4I 2020 (10,000 machine snapshots, 3.4 % failures)")
    console.print(f"training on {len(train)} rows; the failure-mode columns {AI4I_FAILURE_MODES} are dropped "
                  "because each one gives the answer away")
    model = TabularModel(AI4I_TARGET, drop=AI4I_FAILURE_MODES, max_epochs=30 if quick else 200)
    model.fit(train)
    model_dir = model.save(out / "ai4i-model")
    metrics = model.evaluate(test)
    (out / "ai4i-metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    console.print(metrics_table(f"held-out evaluation ({len(test)} rows never seen in training)", metrics))
    console.print(f"a failure is flagged when its probability is at least {model.thresholds_[0]:.3f} "
                  "(chosen on out-of-fold training rows for the best F1)")
    explanation = model.explain(test.head(200))
    write_table(explanation, out / "ai4i-explanations.csv")
    top = ", ".join(f"{k} ({v:.3f})" for k, v in list(model.importance_.items())[:3])
    console.print(f"most influential sensors (mean |attribution|): {plain(top)}")
    write_report(model, out / "ai4i-report.html", test, source="the demo's held-out rows")
    onnx_path = model.export_onnx(out / "ai4i-model.onnx")
    difference = model.onnx_parity(onnx_path, test)
    console.print(f"ONNX export {onnx_path.name}: ONNX Runtime vs torch max abs difference {difference:.1e}")
    rul_metrics = run_rul_demo(out, console, quick)
    inspection_metrics = run_inspection_demo(out, console, quick)
    optimize_result = run_optimize_demo(out, console, quick)
    monitor_metrics = run_monitor_demo(out, console, quick)
    line_result = None
    if line:
        from shopfloor.demo.line import run_line_demo

        line_result = run_line_demo(out, console, port=port, serve_seconds=serve_seconds)
    console.rule("[bold]done")
    for name, what in [(model_dir, "model folder (safetensors + JSON)"), (out / "ai4i-report.html", "report"),
                       (out / "ai4i-model.onnx", "ONNX model for edge devices"),
                       (out / "ai4i-explanations.csv", "per-row explanations"),
                       (out / "cmapss-model", "RUL model folder"), (out / "cmapss-report.html", "RUL report"),
                       (out / "cmapss-predictions.csv", "RUL per test engine with its 90 % interval"),
                       (out / "cmapss-model.onnx", "RUL model for edge devices"),
                       (out / "defects-report.html", "defect classifier report (confusion matrix, heatmaps)"),
                       (out / "defects-predictions.csv", "class per test image, overlays beside it"),
                       (out / "anomaly-report.html", "anomaly detector report (ROC, score histogram, heatmaps)"),
                       (out / "anomaly-predictions.csv", "verdict per test part, overlays beside it"),
                       (out / "anomaly-model.onnx", "anomaly detector for edge devices"),
                       (out / "reactor-records.csv", "past runs of the simulated reactor"),
                       (out / "reactor-optimize.json", "recommended settings, predictions, next experiments"),
                       (out / "reactor-report.html", "optimisation report (partial dependence)"),
                       (out / "pumps-model", "sensor-monitoring model folder"),
                       (out / "pumps-predictions.csv", "score, anomaly and top sensors per pump and minute"),
                       (out / "pumps-predictions-events.csv", "the anomalous minutes grouped into events"),
                       (out / "pumps-report.html", "monitoring report (sensors and score over time, events)"),
                       (out / "pumps-model.onnx", "monitoring model for edge devices"),
                       (out / "line", "registry, database, broker and logs of the simulated line")]:
        console.print(f"  {plain(name)}  [dim]{what}[/]")
    return {"ai4i": metrics, "cmapss": rul_metrics, **inspection_metrics, "optimize": optimize_result,
            "monitor": monitor_metrics, "line": line_result}


def run_rul_demo(out: Path, console: Console, quick: bool = False) -> dict:
    from shopfloor.data.runs import read_runs
    from shopfloor.data.tables import write_table
    from shopfloor.tasks.rul.model import RULModel
    from shopfloor.tasks.rul.report import write_report

    console.rule("[bold]2. Remaining useful life: NASA C-MAPSS FD001 (100 turbofan engines run to failure)")
    train, test = read_runs(demo_file("train_FD001.txt.gz")), read_runs(demo_file("test_FD001.txt.gz"))
    truth = demo_file("RUL_FD001.txt.gz")
    model = RULModel(max_epochs=3 if quick else 60).fit(train)
    model.save(out / "cmapss-model")
    console.print(f"{len(train)} engines, {len(model.sensor_columns_)} moving sensors "
                  f"(constant ones dropped: {', '.join(model.dropped_sensors_)}), trained in {model.train_seconds_:.0f} s")
    metrics = model.evaluate(test, truth)
    (out / "cmapss-metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    console.print(metrics_table(f"{len(test)} test engines, last cycle, true RUL as given", metrics))
    predictions = model.predict(test)
    write_table(predictions, out / "cmapss-predictions.csv")
    unit, rul, low, high = (predictions[c].iloc[0] for c in ("unit", "rul", "rul_low", "rul_high"))
    console.print(f"engine {unit}: {rul:.0f} cycles left (90 % interval {low:.0f} to {high:.0f})")
    write_table(model.explain(test), out / "cmapss-explanations.csv")
    top = ", ".join(f"{k} ({v:.1f} cycles)" for k, v in list(model.importance_.items())[:3])
    console.print(f"most influential sensors (mean |attribution|): {plain(top)}")
    write_report(model, out / "cmapss-report.html", test, truth, source="the 100 FD001 test engines")
    onnx_path = model.export_onnx(out / "cmapss-model.onnx")
    difference = model.onnx_parity(onnx_path, test)
    console.print(f"ONNX export {onnx_path.name}: ONNX Runtime vs torch max abs difference {difference:.1e}")
    return metrics


def run_inspection_demo(out: Path, console: Console, quick: bool = False) -> dict:
    from shopfloor.tasks.anomaly.model import AnomalyModel
    from shopfloor.tasks.anomaly.report import write_report as write_anomaly_report
    from shopfloor.tasks.defects.model import DefectModel
    from shopfloor.tasks.defects.report import write_report as write_defects_report
    from shopfloor.vision.efficientnet import lite0_installed
    from shopfloor.vision.folders import read_class_folders, read_inspection_folder
    from shopfloor.vision.surfaces import write_defect_classes, write_inspection_set

    console.rule("[bold]3. Visual inspection: generated metal surfaces with cracks, scratches and spots")
    images = out / "surfaces"
    classes = write_defect_classes(images / "classes", per_class=60, seed=0)
    classes_test = write_defect_classes(images / "classes-test", per_class=20, seed=1)
    inspection = write_inspection_set(images / "inspection", seed=0)
    console.print(f"generated 128 x 128 grey images in {plain(images)}: 3 defect classes x 60 for training and x 20 "
                  "for testing; 120 good parts for the anomaly detector, 75 test parts with masks")
    backbone = "lite0" if lite0_installed() else "scratch"
    model = DefectModel(backbone=backbone, max_epochs=3 if quick else None).fit(classes)
    model.save(out / "defects-model")
    metrics = model.evaluate(classes_test)
    console.print(metrics_table(f"defect classifier ({backbone} backbone, {model.train_seconds_:.0f} s): "
                                f"{int(metrics['images'])} test images", {k: metrics[k] for k in ("accuracy", "f1_macro")}))
    model.predict_file(classes_test, out / "defects-predictions.csv")
    write_defects_report(model, out / "defects-report.html", read_class_folders(classes_test),
                         source="the generated test images")
    if backbone == "scratch":
        console.print("[yellow]the anomaly detector needs ImageNet features: pip install 'shopfloor[pretrained]'[/]")
        return {"defects": metrics}

    detector = AnomalyModel(image_size=128).fit(inspection)
    detector.save(out / "anomaly-model")
    found = detector.evaluate(inspection)
    console.print(f"anomaly detector learned from {detector.fingerprint_['good_images']} good parts only in "
                  f"{detector.train_seconds_:.0f} s; threshold: {plain(detector.threshold_rule_)}")
    console.print(metrics_table(f"{int(found['images'])} test parts (good and defective)",
                                {k: found[k] for k in ("image_auroc", "pixel_auroc", "aupro", "f1")}))
    detector.predict_file(inspection / "test", out / "anomaly-predictions.csv")
    write_anomaly_report(detector, out / "anomaly-report.html", read_inspection_folder(inspection, "test"),
                         source="the generated test parts")
    onnx_path = detector.export_onnx(out / "anomaly-model.onnx")
    difference = detector.onnx_parity(onnx_path, inspection / "test")
    console.print(f"ONNX export {onnx_path.name}: ONNX Runtime vs torch max abs difference {difference:.1e}")
    (out / "inspection-metrics.json").write_text(json.dumps({"defects": metrics, "anomaly": found}, indent=2) + "\n")
    return {"defects": metrics, "anomaly": found}


def run_optimize_demo(out: Path, console: Console, quick: bool = False) -> dict:
    import numpy as np
    import pandas as pd

    from shopfloor.display import optimize_tables
    from shopfloor.tasks.optimize.model import ProcessOptimizer
    from shopfloor.tasks.optimize.report import write_report
    from shopfloor.tasks.optimize.simulators import SIMULATORS

    console.rule("[bold]4. Process optimisation: a simulated SnAr flow reactor (Hone et al. 2017 kinetics)")
    reactor = SIMULATORS["snar"]
    records = reactor.history(40, seed=0, noise=0.02)
    records.to_csv(out / "reactor-records.csv", index=False)
    best_past = float(records.loc[records["e_factor"] <= 10.5, "sty"].max())
    console.print(f"40 past runs in the usual operating window (residence time >= 0.8 min, <= 3 equivalents); best "
                  f"space-time yield with E-factor <= 10.5: {best_past:,.0f} kg/m3/h "
                  f"(the best possible is {reactor.optimum:,.0f})")
    optimizer = ProcessOptimizer([*reactor.settings[:3], "temperature=30:120:1"], maximize=["sty"],
                                 constraints=["e_factor <= 10.5"])
    result = optimizer.fit(records).optimize()
    for table in optimize_tables(result, optimizer.validation_metrics_)[:2]:
        console.print(table)
    actual = reactor.run(pd.DataFrame([result["recommended"]]))
    console.print(f"run on the simulated reactor: space-time yield {actual['sty'].iloc[0]:,.0f}, E-factor "
                  f"{actual['e_factor'].iloc[0]:.2f} (predicted {result['predicted']['sty']['mean']:,.0f} and "
                  f"{result['predicted']['e_factor']['mean']:.2f})")
    (out / "reactor-optimize.json").write_text(json.dumps(result, indent=2) + "\n")
    optimizer.save(out / "reactor-model")
    write_report(optimizer, out / "reactor-report.html", result=result)
    rounds = 1 if quick else 3
    rng = np.random.default_rng(1)
    for round_ in range(1, rounds + 1):
        ran = reactor.run(pd.DataFrame(result["experiments"]), noise=0.02, rng=rng)
        records = pd.concat([records, ran], ignore_index=True)
        result = optimizer.set_params(seed=round_).fit(records).optimize()
        actual = reactor.run(pd.DataFrame([result["recommended"]]))
        console.print(f"round {round_}: ran the {len(ran)} suggested experiments; the new recommendation gives "
                      f"{actual['sty'].iloc[0]:,.0f} kg/m3/h at E-factor {actual['e_factor'].iloc[0]:.2f} "
                      f"({actual['sty'].iloc[0] / reactor.optimum:.1%} of the best possible)")
    return {"best_past_sty": best_past, "recommended_sty": float(actual["sty"].iloc[0]),
            "recommended_e_factor": float(actual["e_factor"].iloc[0]), "rounds": rounds}


def run_monitor_demo(out: Path, console: Console, quick: bool = False) -> dict:
    """Part 5: three generated pumps, normal behaviour learnt from two days, a new day with a wearing bearing."""
    import warnings

    from shopfloor.data.tables import read_table, write_table
    from shopfloor.demo.pumps import FAULT_MINUTE, FAULTY_PUMP, FAULTY_SENSOR, SENSORS, pump_fleet
    from shopfloor.tasks.monitor.model import MonitorModel

    console.rule("[bold]5. Sensor monitoring: three generated pumps, one reading a minute, one bearing starting to wear")
    out.mkdir(parents=True, exist_ok=True)
    history, today = out / "pumps-history.csv", out / "pumps-today.csv"
    write_table(pump_fleet(pumps=3, days=2.0, seed=0), history)
    write_table(pump_fleet(pumps=3, days=1.0, start="2026-03-04", seed=1, fault=True), today)
    console.print(f"{plain(history.name)}: two days of 3 pumps x {len(SENSORS)} sensors, idle and under load, no labels; "
                  f"{plain(today.name)}: the next day, in which {FAULTY_PUMP}'s bearing starts to wear at "
                  f"{FAULT_MINUTE // 60:02d}:{FAULT_MINUTE % 60:02d} (its column 'fault' says so, for the evaluation only)")
    model = MonitorModel(time="time", machine="pump", max_epochs=3 if quick else 8, progress=False).fit(history)
    model.save(out / "pumps-model")
    console.print(f"learnt normal behaviour in {model.train_seconds_:.0f} s; judged by their movement: "
                  f"{plain(', '.join(model.slow_sensors_))}; threshold: {plain(model.threshold_rule_)}")
    with warnings.catch_warnings():  # the fault column is a numeric column the model did not learn: known here
        warnings.simplefilter("ignore")
        metrics = model.evaluate(today, truth="fault")
        model.predict_file(today, out / "pumps-predictions.csv")
        model.write_report(out / "pumps-report.html", today, "fault")
        onnx_path = model.export_onnx(out / "pumps-model.onnx")
        difference = model.onnx_parity(onnx_path, today)
    (out / "pumps-metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    minutes = int(metrics["tp"] + metrics["fp"] + metrics["fn"] + metrics["tn"])
    console.print(metrics_table(f"{minutes:,} pump-minutes, row by row",
                                {k: metrics[k] for k in ("f1", "precision", "recall", "far", "event_f1")}))
    events = read_table(out / "pumps-predictions-events.csv")
    console.print(f"{len(events)} event(s) in pumps-predictions-events.csv")
    for _, event in events.sort_values("peak_score", ascending=False).head(3).iterrows():
        console.print(f"  {plain(event['pump'])} from {plain(event['start'])} to {plain(event['end'])}, peak score "
                      f"{event['peak_score']:.2f}: {plain(event['sensors'])}")
    delay = metrics["detection_delay"]
    console.print(f"the fault was {plain(FAULTY_SENSOR)} on {FAULTY_PUMP}: "
                  + (f"flagged {delay / 60:.0f} min after it began" if delay == delay else "not flagged"))
    console.print(f"ONNX export {onnx_path.name}: ONNX Runtime vs torch max abs difference {difference:.1e}")
    return metrics
