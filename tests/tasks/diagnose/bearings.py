"""Generated bearing vibration: an impulse train at a defect frequency, each impact ringing a structural resonance,
its strength modulated by the shaft rate, in noise. Classes differ only in the defect frequency, as an inner
race, an outer race and a ball fault of one bearing do (SKF 6205 at 1797 rpm: 162, 107 and 141 Hz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 12_000
SHAFT = 29.95  # Hz
DEFECTS = {"inner": 162.2, "outer": 107.4, "ball": 141.2, "looseness": 2 * SHAFT}
RESONANCE = {"looseness": 900.0}  # a fault that rings another part of the machine (3 kHz otherwise)


def vibration(defect: float | None, seconds: float = 2.0, rate: int = RATE, seed: int = 0,
              resonance: float = 3_000.0) -> np.ndarray:
    """[samples] of vibration in g; `defect` None: a healthy bearing (shaft rate and noise only)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.05 * np.sin(2 * np.pi * SHAFT * t + rng.uniform(0, 6.28)) + 0.1 * rng.normal(size=len(t))
    if defect is not None:
        impacts = np.zeros(len(t))
        times = np.arange(rng.uniform(0, 1 / defect), seconds, 1 / defect)
        times = times + rng.normal(0, 0.01 / defect, len(times))  # slip
        where = np.clip((times * rate).astype(int), 0, len(t) - 1)
        impacts[where] = 1.0 + 0.5 * np.cos(2 * np.pi * SHAFT * times)
        after = np.arange(int(0.01 * rate)) / rate
        ring = np.exp(-after / 0.002) * np.sin(2 * np.pi * resonance * after)  # a lightly damped resonance
        signal += 0.6 * np.convolve(impacts, ring)[: len(t)]
    return signal.astype(np.float32)


def write_classes(root: Path, classes=("normal", "inner", "outer", "ball"), recordings: int = 1, seconds: float = 2.0,
                  seed: int = 0, kind: str = "npy") -> Path:
    """Class folders of generated recordings, one file each."""
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(recordings):
            values = vibration(DEFECTS.get(name), seconds, seed=seed * 1000 + 10 * c + i,
                               resonance=RESONANCE.get(name, 3_000.0))
            if kind == "npy":
                np.save(folder / f"{name}_{i}.npy", values)
            else:
                import pandas as pd

                pd.DataFrame({"acceleration": values}).to_csv(folder / f"{name}_{i}.csv", index=False)
    return root
