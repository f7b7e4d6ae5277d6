"""Do heavy image requests stall light ones? Single-row predictions timed while clients send batches of large images.

    python benchmarks/heavy_images.py [--clients 4] [--requests 2] [--images 4] [--side 4000] [--json FILE]

Trains two tiny models (a table model and an anomaly detector, seconds), serves them with uvicorn on a free port,
then times one-row predictions every 0.1 s, first alone and then while `clients` threads each send `requests`
batches of `images` generated PNGs of side x side pixels (a smooth gradient: small files, full decoding work).
Bounded: the heavy phase stops after 120 s whatever is left. Prints a table; --json writes the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import failure_table  # noqa: E402  (the tests' generated table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=2)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--side", type=int, default=4000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import torch
    import uvicorn

    from shopfloor import TabularModel
    from shopfloor.registry import Registry
    from shopfloor.serve.app import create_app
    from shopfloor.serve.auth import create_token
    from shopfloor.tasks.anomaly.model import AnomalyModel
    from shopfloor.vision.surfaces import write_inspection_set

    torch.set_num_threads(1)  # as `shopfloor serve` does
    work = Path(tempfile.mkdtemp(prefix="heavy-images-"))
    registry = Registry(work / "models", create=True)
    registry.add("failure", TabularModel("failure", bags=2, max_epochs=2, progress=False)
                 .fit(failure_table(300, seed=0)).save(work / "failure"))
    images = write_inspection_set(work / "set", train_good=12, test_good=2, test_per_defect=1, size=64, seed=0)
    registry.add("anomaly", AnomalyModel(image_size=64, bank_size=500, progress=False).fit(images).save(work / "anomaly"))
    token = create_token(registry.root, "bench", "read")
    cameras = [create_token(registry.root, f"camera-{c}", "read") for c in range(args.clients)]  # a client each
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(registry.root), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    auth = {"Authorization": f"Bearer {token}"}
    while True:
        try:
            if httpx.get(url + "/ready", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    row = {"rows": failure_table(1, seed=9).drop(columns="failure").to_dict(orient="records")}
    light = httpx.Client(base_url=url, headers=auth, timeout=300)

    def timed_predicts(stop: threading.Event, limit: float) -> list[float]:
        times, deadline = [], time.monotonic() + limit
        while not stop.is_set() and time.monotonic() < deadline:
            begun = time.perf_counter()
            assert light.post("/api/models/failure/predict", json=row).status_code == 200
            times.append(time.perf_counter() - begun)
            time.sleep(0.1)
        return times

    idle = timed_predicts(threading.Event(), 2.0)
    from PIL import Image

    gradient = np.add.outer(np.arange(args.side), np.arange(args.side)) % 256
    buffer = io.BytesIO()
    Image.fromarray(gradient.astype(np.uint8)).save(buffer, format="PNG")
    picture = buffer.getvalue()
    statuses: list[int] = []

    def client(c: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {cameras[c]}"}, timeout=300) as heavy:
            for _ in range(args.requests):
                files = [("images", (f"frame-{i}.png", picture, "image/png")) for i in range(args.images)]
                statuses.append(heavy.post("/api/models/anomaly/inspect/batch", files=files).status_code)

    stop = threading.Event()
    begun = time.perf_counter()
    with ThreadPoolExecutor(args.clients + 1) as pool:
        busy = pool.submit(timed_predicts, stop, 120.0)
        for done in [pool.submit(client, c) for c in range(args.clients)]:
            done.result()
        stop.set()
        loaded = busy.result()
    heavy_seconds = time.perf_counter() - begun
    server.should_exit = True
    figures = {"clients": args.clients, "requests": args.requests, "images": args.images, "side": args.side,
               "png_bytes": len(picture), "heavy_seconds": round(heavy_seconds, 2),
               "heavy_statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
               "idle_predict_ms": _summary(idle), "loaded_predict_ms": _summary(loaded),
               "cpus": os.cpu_count(), "load_average": os.getloadavg()[0]}
    print(f"{'phase':<28}{'predicts':>9}{'median ms':>11}{'p95 ms':>9}{'max ms':>9}")
    for phase, key in (("alone", "idle_predict_ms"), ("while images are sent", "loaded_predict_ms")):
        f = figures[key]
        print(f"{phase:<28}{f['count']:>9}{f['median']:>11.1f}{f['p95']:>9.1f}{f['max']:>9.1f}")
    print(f"heavy phase {heavy_seconds:.1f} s; image answers {figures['heavy_statuses']}; load {figures['load_average']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def _summary(times: list[float]) -> dict:
    ms = sorted(t * 1000 for t in times) or [float("nan")]
    return {"count": len(times), "median": round(statistics.median(ms), 1),
            "p95": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1), "max": round(ms[-1], 1)}


if __name__ == "__main__":
    main()
