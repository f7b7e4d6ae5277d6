"""Shared fixtures: generated plant tables, one tiny trained model, and the real data in ../shared/data.

Generated tables are small and follow easy rules, so that a tiny network (2 bags x 2 members,
a handful of epochs) learns them in seconds; a broken model still fails the floors the tests set.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: a second thread per worker only waits on the other
    # worker (image networks ran 4x slower with 2 threads each)
    torch.set_num_threads(1)

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


def run_histories(units: int = 16, conditions: int = 1, seed: int = 0, min_life: int = 60,
                  max_life: int = 120) -> pd.DataFrame:
    """Run-to-failure histories: per unit and cycle, settings (one operating condition of `conditions`
    per cycle), three sensors that drift as the unit wears out (offset by the condition) and one
    that is pure noise. Wear grows as (cycle / life)^2, so the last third of a life is visible."""
    rng = np.random.default_rng(seed)
    levels = np.array([[0.0, 100.0], [20.0, 80.0], [35.0, 60.0], [10.0, 90.0]])[:conditions]
    frames = []
    for unit in range(1, units + 1):
        life = int(rng.integers(min_life, max_life + 1))
        cycle = np.arange(1, life + 1)
        wear = (cycle / life) ** 2
        condition = rng.integers(0, conditions, life)
        altitude, throttle = levels[condition].T
        frames.append(pd.DataFrame({
            "engine": unit, "cycle": cycle,
            "altitude": altitude + rng.normal(0, 0.01, life), "throttle": throttle + rng.normal(0, 0.01, life),
            "temperature": 500 + 3 * altitude + 40 * wear + rng.normal(0, 1.0, life),
            "pressure": 20 - 0.05 * throttle - 3 * wear + rng.normal(0, 0.1, life),
            "vibration": 1 + 0.02 * altitude + 2 * wear + rng.normal(0, 0.1, life),
            "noise": rng.normal(0, 1, life),
        }))
    return pd.concat(frames, ignore_index=True)


def cut_short(frame: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test histories: each unit cut at a random cycle; returns the cut runs and a unit,rul table."""
    rng = np.random.default_rng(seed)
    parts, truth = [], []
    for unit, run in frame.groupby("engine", sort=True):
        keep = int(rng.integers(max(2, len(run) // 3), len(run)))
        parts.append(run.iloc[:keep])
        truth.append({"unit": unit, "rul": len(run) - keep})
    return pd.concat(parts, ignore_index=True), pd.DataFrame(truth)


RUL_COLUMNS = {"unit": "engine", "time": "cycle", "settings": ["altitude", "throttle"]}


@pytest.fixture(scope="session")
def rul_model(tmp_path_factory) -> SimpleNamespace:
    """A small RUL model on generated histories in 3 operating conditions, trained once per session."""
    from shopfloor.tasks.rul.model import RULModel

    train = run_histories(24, conditions=3, seed=0)
    test, truth = cut_short(run_histories(12, conditions=3, seed=1), seed=1)
    model = RULModel(**RUL_COLUMNS, window=20, rul_cap=60, members=2, max_epochs=12, patience=4,
                     progress=False).fit(train)
    folder = model.save(tmp_path_factory.mktemp("models") / "rul-model")
    return SimpleNamespace(model=model, folder=folder, train=train, test=test, truth=truth)


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


@pytest.fixture(scope="session")
def surfaces(tmp_path_factory) -> SimpleNamespace:
    """Generated surface images: defect classes (train and test) and an MVTec-layout inspection set."""
    from shopfloor.vision.surfaces import write_defect_classes, write_inspection_set

    root = tmp_path_factory.mktemp("surfaces")
    return SimpleNamespace(classes=write_defect_classes(root / "classes", per_class=30, size=64, seed=0),
                           classes_test=write_defect_classes(root / "classes-test", per_class=10, size=64, seed=1),
                           inspection=write_inspection_set(root / "inspection", train_good=40, test_good=10,
                                                           test_per_defect=6, size=96, seed=0))


@pytest.fixture(scope="session")
def defect_model(surfaces, tmp_path_factory) -> SimpleNamespace:
    """A small from-scratch defect classifier on the generated classes, trained once per session."""
    from shopfloor.tasks.defects.model import DefectModel

    model = DefectModel(backbone="scratch", image_size=64, max_epochs=30, patience=30, progress=False).fit(surfaces.classes)
    folder = model.save(tmp_path_factory.mktemp("models") / "defect-model")
    return SimpleNamespace(model=model, folder=folder)


@pytest.fixture(scope="session")
def anomaly_model(surfaces, tmp_path_factory) -> SimpleNamespace:
    """A good-only anomaly model on the generated inspection set, trained once per session."""
    from shopfloor.tasks.anomaly.model import AnomalyModel

    model = AnomalyModel(image_size=96, bank_size=2000).fit(surfaces.inspection)
    folder = model.save(tmp_path_factory.mktemp("models") / "anomaly-model")
    return SimpleNamespace(model=model, folder=folder)
