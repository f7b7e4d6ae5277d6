"""The REST service under load: single-row table predictions from 64 clients, image inspections, memory.

1. A registry is built in a temporary folder from model folders (default: every model the demo
   wrote to demo-output/), with a read token; `shopfloor.serve.app.run_service` serves it in a
   subprocess (one process, uvloop + httptools, inference in a thread pool).
2. A load client in its own process (raw asyncio HTTP/1.1 over keep-alive connections: a
   client library would spend more CPU than the server on the same two cores) runs 64
   concurrent clients, each sending single-row predictions back to back for `--seconds`:
   requests/s, p50/p99 latency (send to last byte), errors (anything but a 200).
3. The same client uploads images to /inspect from `--image-clients` concurrent clients for
   each inspection model: images/s, p50/p99.
4. The server's peak resident memory (VmHWM) with every model loaded and after the load.

Targets (issue 6): >= 1,000 predictions/s, p99 <= 50 ms, 0 errors; >= 20 images/s; <= 1.5 GiB RSS.

    python benchmarks/serve_load.py                       # demo-output models; writes results/serve_load.json
    python benchmarks/serve_load.py --models A B --seconds 5   # other model folders; a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from _common import REPO_ROOT, machine, print_table, versions, write_json

from shopfloor.artifacts import read_manifest
from shopfloor.stream.broker import free_port, stop_process

DEMO = REPO_ROOT / "demo-output"
TARGETS = {"requests_per_s": 1_000, "p99_ms": 50, "images_per_s": 20, "peak_rss_gib": 1.5}


# -- the load client (runs in its own process: `python serve_load.py --client SPEC.json`) --------------
async def _client(port: int, requests: list[bytes], until: float, latencies: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line[:15].lower() == b"content-length:")
            body = await reader.readexactly(length)
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors.append(f"{status}: {body[:200].decode(errors='replace')}")
                if b"connection: close" in head.lower():
                    return
    except (OSError, asyncio.IncompleteReadError) as err:
        errors.append(f"{type(err).__name__}: {err}")
    finally:
        writer.close()


async def _load(port: int, requests: list[bytes], clients: int, seconds: float) -> dict:
    latencies, errors = [], []
    until = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, requests[c::clients] or requests, until, latencies, errors)
                           for c in range(clients)))
    elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000 if latencies else np.asarray([np.nan])
    return {"clients": clients, "seconds": elapsed, "ok": len(latencies), "errors": len(errors),
            "error_examples": errors[:5], "per_s": len(latencies) / elapsed, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(np.max(ms))}


def client_main(spec_path: str) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    spec = json.loads(Path(spec_path).read_text())
    requests = [bytes.fromhex(r) for r in spec["requests"]]
    print(json.dumps(asyncio.run(_load(spec["port"], requests, spec["clients"], spec["seconds"]))))


def run_client(port: int, requests: list[bytes], clients: int, seconds: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump({"port": port, "clients": clients, "seconds": seconds, "requests": [r.hex() for r in requests]}, spec)
    try:
        done = subprocess.run([sys.executable, __file__, "--client", spec.name], capture_output=True, text=True, check=True)
    finally:
        os.unlink(spec.name)
    return json.loads(done.stdout)


# -- requests ----------------------------------------------------------------------------------------
def http_post(path: str, body: bytes, token: str, content_type: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def table_requests(name: str, model_folder: Path, token: str, count: int = 512) -> list[bytes]:
    """Single-row predictions on the model's holdout rows (AI4I) or on rows generated from its schema."""
    manifest = read_manifest(model_folder)
    schema = manifest["state"]["schema"]
    holdout = DEMO / "ai4i-holdout.csv"
    rng = np.random.default_rng(0)
    if holdout.is_file() and set(schema["numeric"]) <= set(holdout.read_text().splitlines()[0].split(",")):
        import pandas as pd

        rows = pd.read_csv(holdout).head(count)[schema["numeric"] + list(schema["categorical"])].to_dict(orient="records")
    else:
        rows = [{**{c: float(rng.normal()) for c in schema["numeric"] + schema["dates"]},
                 **{c: (levels[int(rng.integers(len(levels)))] if levels else None)
                    for c, levels in schema["categorical"].items()}} for _ in range(count)]
    return [http_post(f"/api/models/{name}/predict", json.dumps({"rows": [row]}).encode(), token, "application/json")
            for row in rows]


def image_requests(name: str, images: list[Path], token: str) -> list[bytes]:
    out = []
    for path in images:
        boundary = "shopfloorbench"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{path.name}\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        out.append(http_post(f"/api/models/{name}/inspect", body, token, f"multipart/form-data; boundary={boundary}"))
    return out


def demo_images(task: str) -> list[Path]:
    folder = DEMO / "surfaces" / ("classes-test" if task == "defects" else "inspection/test")
    return sorted(folder.glob("*/*.png"))[:64]


# -- the service ---------------------------------------------------------------------------------------
def build_registry(folders: list[Path], root: Path) -> tuple[dict[str, tuple[str, Path]], str]:
    """name -> (task, folder) of every model added, and a read token."""
    from shopfloor.registry import Registry
    from shopfloor.serve.auth import create_token

    registry, models = Registry(root / "models", create=True), {}
    for folder in folders:
        name = folder.name.removesuffix("-model").replace(".", "-")
        registry.add(name, folder)
        models[name] = (read_manifest(folder)["task"], folder)
    return models, create_token(registry.root, "load-test", "read")


def start_service(models: Path, threads: int, workers: int | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    code = (f"from shopfloor.serve.app import run_service; run_service({str(models)!r}, port={port}, threads={threads}, "
            f"workers={workers!r}, log_level='warning')")
    server = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT)
    deadline = time.time() + 180
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the service exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
                if answer.status == 200:
                    return server, port
        except OSError:
            pass
        time.sleep(0.5)
    server.kill()
    raise RuntimeError("the service was not ready within 180 s")


def memory(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmHWM", "VmRSS")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--models", nargs="*", type=Path, help="model folders (default: demo-output/*-model)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the table run")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--image-seconds", type=float, default=10.0)
    parser.add_argument("--image-clients", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per inference call in the service")
    parser.add_argument("--workers", type=int, default=None, help="inference threads in the service")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default: results/serve_load.json)")
    args = parser.parse_args()
    if args.client:
        client_main(args.client)
        return
    folders = args.models or sorted(p for p in DEMO.glob("*-model") if (p / "manifest.json").is_file())
    if not folders:
        sys.exit(f"no model folders: run 'make demo' (it writes {DEMO}) or pass --models FOLDER ...")
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        models, token = build_registry(folders, Path(tmp))
        tasks = {name: task for name, (task, _) in models.items()}
        server, port = start_service(Path(tmp) / "models", args.threads, args.workers)
        try:
            loaded = memory(server.pid)
            results = {"models": tasks, "rss_all_models_loaded_bytes": loaded["VmRSS"], "runs": {}}
            table = next((n for n, t in tasks.items() if t == "tabular"), None)
            if table:
                requests = table_requests(table, models[table][1], token)
                run_client(port, requests[:64], args.clients, 1.0)  # warm-up: connections, first batches
                results["runs"]["predict"] = {"model": table, **run_client(port, requests, args.clients, args.seconds)}
            for name, task in tasks.items():
                images = demo_images(task) if task in ("defects", "anomaly") else []
                if images:
                    requests = image_requests(name, images, token)
                    run_client(port, requests[:4], 2, 1.0)
                    results["runs"][f"inspect {name}"] = {"model": name, **run_client(port, requests, args.image_clients,
                                                                                       args.image_seconds)}
            results["peak_rss_bytes"] = memory(server.pid)["VmHWM"]
        finally:
            stop_process(server, timeout=30)
    report(results, args)


def report(results: dict, args) -> None:
    rows = [[what, r["model"], str(r["clients"]), f"{r['per_s']:,.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
             str(r["errors"])] for what, r in results["runs"].items()]
    print_table(f"REST service under load (models: {', '.join(results['models'])})",
                ["run", "model", "clients", "per s", "p50 ms", "p99 ms", "errors"], rows)
    predict = results["runs"].get("predict", {})
    images = [r["per_s"] for k, r in results["runs"].items() if k.startswith("inspect")]
    met = {"requests_per_s": predict.get("per_s", 0) >= TARGETS["requests_per_s"],
           "p99_ms": predict.get("p99_ms", 1e9) <= TARGETS["p99_ms"], "errors": predict.get("errors", 1) == 0 and all(
               r["errors"] == 0 for r in results["runs"].values()),
           "images_per_s": bool(images) and min(images) >= TARGETS["images_per_s"],
           "peak_rss_gib": results["peak_rss_bytes"] / 2**30 <= TARGETS["peak_rss_gib"]}
    print(f"peak RSS {results['peak_rss_bytes'] / 2**30:.2f} GiB (all models loaded: "
          f"{results['rss_all_models_loaded_bytes'] / 2**30:.2f} GiB); targets met: {met}")
    path = write_json("serve_load", {"protocol": {"seconds": args.seconds, "clients": args.clients,
                                                  "image_seconds": args.image_seconds, "image_clients": args.image_clients,
                                                  "server_torch_threads": args.threads, "server_workers": args.workers},
                                     "machine": machine(), "versions": versions(("shopfloor", "torch", "fastapi", "uvicorn")),
                                     "targets": TARGETS, "met": met, **results}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
