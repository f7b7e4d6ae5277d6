"""Shared fixtures: generated plant tables, one tiny trained model, and the real data in ../shared/data.

Generated tables are small and follow easy rules, so that a tiny network (2 bags x 2 members,
a handful of epochs) learns them in seconds; a broken model still fails the floors the tests set.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FAILURE_PRODUCT = 100_000  # failure when torque [Nm] x speed [rpm] exceeds this (about 30 % of rows)


def failure_table(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """A milling machine log: ids, product type, sensors; failure = torque x speed > FAILURE_PRODUCT."""
    rng = np.random.default_rng(seed)
    torque = rng.uniform(10, 70, rows).round(1)
    speed = rng.uniform(1200, 2800, rows).round(0)
    return pd.DataFrame({
        "UDI": np.arange(1, rows + 1) + 1000 * seed,
        "Product ID": [f"P{seed}-{i:05d}" for i in range(rows)],
        "Type": rng.choice(["L", "M", "H"], size=rows, p=[0.5, 0.3, 0.2]),
        "Air temperature [K]": rng.normal(300, 2, rows).round(1),
        "Torque [Nm]": torque,
        "Rotational speed [rpm]": speed,
        "failure": (torque * speed > FAILURE_PRODUCT).astype(int),
    })


def kpi_table(rows: int = 500, seed: int = 0) -> pd.DataFrame:
    """A line KPI that is a smooth function of two settings and a shift, plus a little noise."""
    rng = np.random.default_rng(seed)
    speed, load = rng.uniform(-2, 2, rows), rng.uniform(-2, 2, rows)
    shift = rng.choice(["early", "late", "night"], size=rows)
    kpi = np.sin(speed) + 0.5 * load + 0.3 * (shift == "night") + 0.05 * rng.normal(size=rows)
    return pd.DataFrame({"line speed": speed, "load [%]": load, "shift": shift, "kpi": kpi})


def mode_table(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Failure modes from one sensor score: 'wear' below, 'ok' in the middle, 'overheat' above."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    score = x1 + 0.5 * x2
    return pd.DataFrame({
        "vibration": x1,
        "temperature": x2,
        "Type": rng.choice(["L", "M"], size=rows),
        "mode": np.select([score < -0.6, score < 0.6], ["wear", "ok"], "overheat"),
        "second failure": (x2 > 0.5).astype(int),
    })


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data next to the repository; tests on real data skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real plant data not found: {SHARED_DATA} is absent "
                    "(AI4I and garment tests need the shared data folder next to the repository)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def binary_model(tmp_path_factory) -> SimpleNamespace:
    """A tiny failure model trained once per session, and its saved folder (do not modify it)."""
    from shopfloor import TabularModel

    train = failure_table(600, seed=0)
    model = TabularModel("failure", bags=2, members=2, max_epochs=8, progress=False).fit(train)
    folder = model.save(tmp_path_factory.mktemp("models") / "failure-model")
    return SimpleNamespace(model=model, folder=folder, train=train, new=failure_table(300, seed=1))
