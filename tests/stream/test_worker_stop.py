"""A worker told to stop by a signal stops, whenever the signal lands (CPython 3.11's `SimpleQueue.get(timeout=...)`
waits for good when a signal lands near its deadline: a benchmark's worker ignored SIGTERM that way)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SIGNALLED = """
import signal, sys
sys.path.insert(0, {tests!r})
from services import offline_worker
from shopfloor.store import Store
from shopfloor.registry import Registry

Registry({root!r}, create=True)
worker = offline_worker({root!r}, Store({database!r}))
signals = 0

def handler(*_):  # a signal every 100 us; the 20,000th asks the worker to stop, as SIGTERM does
    global signals
    signals += 1
    if signals == 20_000:
        worker.stop()

signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 1e-4, 1e-4)
while not worker.stopping.is_set():
    worker._gather()
signal.setitimer(signal.ITIMER_REAL, 0)
print("stopped after", signals, "signals")
"""


def test_a_worker_stops_whenever_the_signal_lands(tmp_path):
    tests = str(Path(__file__).resolve().parents[1])
    code = SIGNALLED.format(tests=tests, root=str(tmp_path / "models"), database=f"sqlite:///{tmp_path / 'plant.db'}")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "stopped after" in done.stdout, done.stderr[-2000:]
