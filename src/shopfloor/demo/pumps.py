"""Generated historian data for the demo's sensor monitoring: a few like centrifugal pumps, one reading a minute.

SKAB, the open benchmark of the monitor task, is GPL-licensed and may not ship in the package, so the demo
makes its own: each pump runs idle or under load for stretches of 40 minutes to 3 hours, its sensors follow
the load (current, flow, pressures, vibration) and the motor and bearing temperatures follow it slowly, as
temperatures do; every pump has its own small offsets and noise. In the day the model has not seen, one
pump's bearing starts to wear at a known minute: its vibration climbs slowly and its bearing runs warmer,
while flow and pressure stay as the load says.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SENSORS = ["motor current [A]", "flow [m3/h]", "suction pressure [bar]", "discharge pressure [bar]",
           "vibration RMS [mm/s]", "bearing temperature [C]", "motor temperature [C]"]
FAULTY_PUMP = "P2"
FAULTY_SENSOR = "vibration RMS [mm/s]"
FAULT_MINUTE = 14 * 60  # 14:00 on the new day
IDLE, LOAD = 0.35, 1.0  # the two operating modes, as a share of full load


def pump_day(number: int, start: str, minutes: int, seed: int, wear_from: int | None = None) -> pd.DataFrame:
    """Pump `number`'s readings from `start`, one a minute; its bearing wears from minute `wear_from` on. The
    pump's own offsets come from its number (the same pump on every day), its load and noise from `seed`."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    modes, level = [], float(rng.choice([IDLE, LOAD]))
    while len(modes) < minutes:  # idle and load in turn, for 40 minutes to 3 hours each
        modes += [level] * int(rng.integers(40, 180))
        level = IDLE + LOAD - level
    load = np.array(modes[:minutes]) + 0.05 * np.sin(np.arange(minutes) * 2 * np.pi / 23) + 0.02 * rng.normal(size=minutes)
    offset = np.random.default_rng(number).normal(scale=0.02, size=len(SENSORS))
    wear = np.zeros(minutes)
    if wear_from is not None:
        wear[wear_from:] = np.arange(minutes - wear_from) / 60  # grows by one per hour
    slow_motor = lfilter([0.02], [1, -0.98], load, zi=[0.98 * load[0]])[0]  # a time constant of about 50 minutes
    slow_bearing = lfilter([0.03], [1, -0.97], load + 0.1 * wear, zi=[0.97 * load[0]])[0]
    noise = rng.normal(size=(minutes, len(SENSORS)))
    readings = {
        SENSORS[0]: 12 + 30 * load + 0.3 * noise[:, 0],
        SENSORS[1]: 20 + 80 * load + 0.8 * noise[:, 1],
        SENSORS[2]: 1.2 - 0.3 * load + 0.01 * noise[:, 2],
        SENSORS[3]: 2 + 6 * load + 0.05 * noise[:, 3],
        SENSORS[4]: 1.0 + 1.8 * load + 0.6 * wear + 0.05 * noise[:, 4],
        SENSORS[5]: 35 + 25 * slow_bearing + 0.15 * noise[:, 5],
        SENSORS[6]: 40 + 30 * slow_motor + 0.15 * noise[:, 6],
    }
    frame = pd.DataFrame({"time": pd.date_range(start, periods=minutes, freq="min"), "pump": f"P{number}"})
    for (sensor, values), shift in zip(readings.items(), offset, strict=True):
        frame[sensor] = np.round(values * (1 + shift), 3)
    return frame


def pump_fleet(pumps: int = 3, days: float = 2.0, start: str = "2026-03-02", seed: int = 0,
               fault: bool = False) -> pd.DataFrame:
    """`pumps` like pumps (P1, P2, ...) for `days` days; with `fault`, FAULTY_PUMP's bearing wears from
    FAULT_MINUTE on and a `fault` column marks its rows from then (1) and every other row (0)."""
    minutes = int(days * 24 * 60)
    frames = []
    for k in range(1, pumps + 1):
        name = f"P{k}"
        wear = FAULT_MINUTE if fault and name == FAULTY_PUMP else None
        frame = pump_day(k, start, minutes, seed=1_000 * seed + k, wear_from=wear)
        if fault:
            frame["fault"] = (np.arange(minutes) >= FAULT_MINUTE).astype(int) if wear is not None else 0
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
