"""Per-machine levels: a fleet of like machines at different levels shares one model.

Two pumps of one type rarely read alike: one runs at 32 l/min and 0.03 g of vibration, its neighbour at
125 l/min and 0.2 g, and both are normal. Standardised together, each machine's own variation is small
against the spread between machines, and a fault on one moves it less than the gap to the other: on SKAB
(a file's 400 rows learnt beside anomaly-free.csv, another session at other levels) one shared
standardisation found 11 % of the anomalous rows (benchmarks/skab.py, second protocol).

So every machine is standardised on its own normal history: its readings are mapped into the units of
the fleet's reference machine (`fleet = readings * gain + offset`, one gain and offset per machine and
sensor) before the network, whose inputs, layers and outputs stay those of a one-machine model. The
same affine map serves `predict`, the stream (which holds windows per machine) and an exported network:
only the two small tables travel beside it. A machine not seen in training is judged against the
fleet's reference level, which is what a like machine would read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def machine_key(machine) -> str:
    """One spelling per machine id: 7, '7' and np.int64(7) are one machine, read back from JSON or a file."""
    if isinstance(machine, float | np.floating) and float(machine).is_integer():
        machine = int(machine)
    return str(machine.item() if isinstance(machine, np.generic) else machine)


@dataclass
class MachineLevels:
    """Every machine's mean and spread on its normal rows, and the fleet's reference they map onto."""

    machines: list[str]  # machine_key of each machine
    mean: np.ndarray  # [machines, sensors], plant units
    std: np.ndarray  # [machines, sensors], plant units, positive
    fleet_mean: np.ndarray  # [sensors]
    fleet_std: np.ndarray  # [sensors]

    def gain_offset(self, machines) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Per machine asked for: gain and offset [n, sensors] into fleet units, and the ids not learnt
        (gain 1, offset 0: judged against the fleet's reference level)."""
        index = {m: i for i, m in enumerate(self.machines)}
        gain = np.ones((len(machines), len(self.fleet_mean)))
        offset = np.zeros_like(gain)
        unknown = []
        for row, machine in enumerate(machines):
            i = index.get(machine_key(machine))
            if i is None:
                unknown.append(machine_key(machine))
                continue
            gain[row] = self.fleet_std / self.std[i]
            offset[row] = self.fleet_mean - self.mean[i] * gain[row]
        return gain, offset, unknown

    def to_fleet(self, values: np.ndarray, machines: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Readings [rows, sensors] of the machines named row by row -> fleet units; and the unknown ids."""
        codes, ids = pd.factorize(np.asarray(machines, dtype=object), sort=False)  # 7 and '7' meet in gain_offset
        gain, offset, unknown = self.gain_offset(list(ids))
        return values * gain[codes] + offset[codes], list(dict.fromkeys(unknown))

    def to_json(self) -> dict:
        return {"machines": self.machines, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "fleet_mean": self.fleet_mean.tolist(), "fleet_std": self.fleet_std.tolist()}

    @classmethod
    def from_json(cls, state: dict) -> MachineLevels:
        levels = cls([str(m) for m in state["machines"]], np.asarray(state["mean"], np.float64),
                     np.asarray(state["std"], np.float64), np.asarray(state["fleet_mean"], np.float64),
                     np.asarray(state["fleet_std"], np.float64))
        sensors = len(levels.fleet_mean)
        if (levels.mean.shape != (len(levels.machines), sensors) or levels.std.shape != levels.mean.shape
                or levels.fleet_std.shape != (sensors,) or not (levels.std > 0).all() or not (levels.fleet_std > 0).all()):
            raise ValueError("the machine levels' tables do not match their machines and sensors")
        return levels


ALIKE = 1.0  # machines whose means of a sensor lie within this many usual spreads of each other read it alike
SPREAD_RATIO = 2.0  # ... and whose spreads of it differ by less than this factor


def learn_levels(values: np.ndarray, machines: np.ndarray, normal: np.ndarray) -> MachineLevels:
    """Every machine's level on its `normal` rows of `values` [rows, sensors] (a machine without such rows is
    left out: judged against the fleet). A sensor that never moves on one machine keeps the fleet's spread
    there, so that its gain stays 1 rather than infinite.

    A sensor the machines read alike (means within `ALIKE` usual spreads, spreads within `SPREAD_RATIO` of each
    other) keeps the fleet's standardisation on every machine. A machine's mean and spread mix its operating
    modes in the shares it happened to run them: three like pumps standardised on their own day moved each
    pump's idle and load levels by a fifth of a spread, far more than its noise, and the network blamed the
    motor current of a pump whose bearing was wearing (the demo's pumps; with this rule the vibration leads
    again)."""
    codes, ids = _factorize(machines)
    pooled = values[normal].std(0)
    pooled = np.where(pooled > 1e-12, pooled, 1.0)
    kept, means, stds, counts = [], [], [], []
    for i, machine in enumerate(ids):
        rows = values[normal & (codes == i)]
        if not len(rows):
            continue
        mean, std = rows.mean(0), rows.std(0)
        kept.append(machine_key(machine))
        means.append(mean)
        stds.append(np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, pooled))
        counts.append(len(rows))
    weights = np.asarray(counts, np.float64)[:, None] / sum(counts)
    mean, std = np.asarray(means), np.asarray(stds)
    fleet_mean, fleet_std = (weights * mean).sum(0), np.sqrt((weights * std ** 2).sum(0))
    alike = (np.ptp(mean, axis=0) <= ALIKE * fleet_std) & (std.max(0) <= SPREAD_RATIO * std.min(0))
    mean[:, alike], std[:, alike] = fleet_mean[alike], fleet_std[alike]  # gain 1, offset 0: judged as one fleet
    return MachineLevels(kept, mean, std, fleet_mean, fleet_std)


def _factorize(machines) -> tuple[np.ndarray, list[str]]:
    """Every row's machine as a code, and the machine_key of each code (7 and '7' are one code)."""
    codes, uniques = pd.factorize(pd.Series(np.asarray(machines, dtype=object)), sort=False)
    keys, merged = np.unique(np.asarray([machine_key(m) for m in uniques], dtype=object), return_inverse=True)
    return merged.reshape(-1)[codes], list(keys)
