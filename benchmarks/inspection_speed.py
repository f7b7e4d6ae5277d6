"""Inference speed of the inspection models at 256 x 256 on this machine's cores, on a quiet machine.

The accuracy benchmarks (neu.py, magnetic_tile.py) time inference too, but they run beside other
work; this script trains one small model of each kind (on a subsample: speed does not depend on how
many images were learned, the anomaly model's memory bank is full at its default size either way)
and times, with 2 threads, a median of 3 after a warm-up:
- files: predict() on 256 x 256 grey PNG files (decoding, resizing, network, verdict table);
- torch: the network alone on [batch, channels, 256, 256] tensors resized to the model's input;
- onnxruntime: the exported graph on the same tensors (2 intra-op threads).

    .venv/bin/python benchmarks/inspection_speed.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import DATA_ROOT, THREADS, limit_threads, machine, median_rate, peak_rss_bytes, print_table, versions, write_json
from PIL import Image

from shopfloor.tasks.anomaly.model import AnomalyModel
from shopfloor.tasks.defects.model import DefectModel
from shopfloor.vision.folders import list_images, read_class_folders, read_inspection_folder

IMAGES = 64


def measure(model, folder: Path, onnx_path: Path, outputs) -> dict:
    import onnxruntime as ort

    files = list_images(folder)
    result = {"files_per_s": median_rate(lambda: model.predict(files), len(files))}
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    module = model.estimator_module()
    for batch in (1, 8):
        images = torch.rand(batch, model.channels_, 256, 256, generator=torch.Generator().manual_seed(0)) * 255
        ready = F.interpolate(images, size=model.image_size_, mode="bilinear", align_corners=False)
        rounds = IMAGES // batch

        def torch_run(ready=ready, rounds=rounds):
            with torch.inference_mode():
                for _ in range(rounds):
                    module(ready)

        def onnx_run(ready=ready.numpy(), rounds=rounds):
            for _ in range(rounds):
                session.run(outputs, {"images": ready})

        result[f"torch_batch{batch}_per_s"] = median_rate(torch_run, IMAGES)
        result[f"onnxruntime_batch{batch}_per_s"] = median_rate(onnx_run, IMAGES)
    return result


def main() -> None:
    limit_threads(THREADS)
    work = Path(tempfile.mkdtemp(prefix="inspection-speed-"))
    rng = np.random.default_rng(0)
    for i in range(IMAGES):  # 256 x 256 grey files, as a line camera's crops would be
        Image.fromarray(rng.integers(90, 160, (256, 256), dtype=np.uint8)).save(work / f"{i:03d}.png")
    neu = read_class_folders(DATA_ROOT / "neu-det" / "images")
    labels = np.array(neu.labels)
    few = sorted(i for c in neu.classes for i in np.flatnonzero(labels == c)[:40])
    defects = DefectModel(backbone="lite0", progress=False).fit(neu.subset(few))
    tile = read_inspection_folder(DATA_ROOT / "magnetic-tile", "train")
    anomaly = AnomalyModel(progress=False).fit(tile.subset(list(range(200))))
    results = {}
    for name, model, outputs in (("defects (lite0)", defects, ["probabilities", "heatmap"]),
                                 ("anomaly", anomaly, ["score", "heatmap"])):
        onnx_path = model.export_onnx(work.with_name(work.name + "-onnx") / f"{name.split()[0]}.onnx")
        results[name] = measure(model, work, onnx_path, outputs)
        print(name, {k: round(v, 1) for k, v in results[name].items()}, flush=True)
    columns = list(next(iter(results.values())))
    print_table("images per second at 256 x 256, 2 threads", ["model", *columns],
                [[name, *(f"{r[c]:.1f}" for c in columns)] for name, r in results.items()])
    write_json("inspection_speed", {"results": results, "images": IMAGES, "machine": machine(), "versions": versions(),
                                    "peak_rss_gib": peak_rss_bytes() / 2**30, "protocol": __doc__.strip()})


if __name__ == "__main__":
    main()
