"""Old models keep loading (issue 15): every saved model fixture still loads and gives its stored answers.

Each fixture was written once by the code of its time (tests/fixtures/make_<task>_v<N>.py says which
commit) and is never regenerated, so a change to preprocessing, training or the model files that would
give a plant's saved models other answers fails here. A fixture NAME in tests/fixtures/models/ is:

    NAME/                  the model folder (manifest.json, model.safetensors)
    NAME.inputs.csv        rows to predict, or NAME.inputs/ with image files
    NAME.expected.csv      what predict gave when the fixture was written (image files by name)
    NAME.heatmaps.npy      optional: the heatmaps explain gave, one per image in file order

A new fixture folder is found without touching this file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES

import shopfloor
from shopfloor.artifacts import MANIFEST, read_manifest
from shopfloor.tasks import TASKS

MODELS = FIXTURES / "models"
SAVED = sorted(p for p in MODELS.iterdir() if (p / MANIFEST).is_file())
# The expected tables hold 8 decimals; float32 networks may differ in the last bits with another thread
# count or batch split (about 1e-7 of the value). Anything a change of preprocessing or weights does is far larger.
TOLERANCE = {"rtol": 1e-6, "atol": 1e-6}
SIZE_LIMIT = 200_000
# The from-scratch defect CNN has fixed widths (32..192 channels): 3.4 MB is the smallest defect model there is.
TASK_SIZE_LIMIT = {"defects": 3_500_000}
# Columns a task's predict has added since its fixtures were written; the old columns must keep their answers.
ADDED_COLUMNS = {"rul": {"time"}}  # each unit's last time or cycle, since the readers kept time columns (98b6f55)


def _inputs(name: str):
    table = MODELS / f"{name}.inputs.csv"
    return pd.read_csv(table) if table.is_file() else MODELS / f"{name}.inputs"


def _by_name(table: pd.DataFrame) -> pd.DataFrame:
    """Image files by name: the fixture was written in another folder."""
    if "file" in table.columns:
        table = table.assign(file=[Path(f).name for f in table["file"]])
    return table


def test_the_fixtures_are_found_and_complete():
    assert SAVED, f"no saved model in {MODELS}"
    names = {p.name for p in SAVED}
    for expected in MODELS.glob("*.expected.csv"):
        assert expected.name.removesuffix(".expected.csv") in names, f"{expected.name} has no model folder beside it"
    for folder in SAVED:
        assert (MODELS / f"{folder.name}.expected.csv").is_file(), f"{folder.name} has no expected outputs"
        assert (MODELS / f"{folder.name}.inputs.csv").is_file() or (MODELS / f"{folder.name}.inputs").is_dir()
        assert read_manifest(folder)["task"] in TASKS, folder.name


@pytest.mark.parametrize("folder", SAVED, ids=[p.name for p in SAVED])
def test_saved_model_loads_and_predicts_as_when_it_was_saved(folder):
    inputs = _inputs(folder.name)
    expected = pd.read_csv(MODELS / f"{folder.name}.expected.csv")
    model = shopfloor.load(folder)
    got = _by_name(model.predict(inputs)).reset_index(drop=True)
    # outputs may keep input columns beside them (a tabular model's dates since issue 13.6)
    kept = set(inputs.columns) if isinstance(inputs, pd.DataFrame) else set()
    kept |= ADDED_COLUMNS.get(read_manifest(folder)["task"], set())
    assert [c for c in got.columns if c not in set(expected.columns) and c not in kept] == []
    assert list(got.columns.intersection(expected.columns, sort=False)) == list(expected.columns)
    assert len(got) == len(expected)
    for column in expected.columns:
        if pd.api.types.is_float_dtype(expected[column]):
            np.testing.assert_allclose(got[column].to_numpy(float), expected[column], **TOLERANCE, err_msg=column)
        else:
            assert got[column].tolist() == expected[column].tolist(), column


@pytest.mark.parametrize("folder", [p for p in SAVED if (MODELS / f"{p.name}.heatmaps.npy").is_file()],
                         ids=lambda p: p.name)
def test_saved_model_draws_the_same_heatmaps(folder):
    expected = np.load(MODELS / f"{folder.name}.heatmaps.npy")
    table, maps = shopfloor.load(folder).heatmaps(_inputs(folder.name))
    assert _by_name(table)["file"].tolist() == pd.read_csv(MODELS / f"{folder.name}.expected.csv")["file"].tolist()
    np.testing.assert_allclose(np.asarray(maps, dtype=np.float32), expected, **TOLERANCE)


@pytest.mark.parametrize("folder", SAVED, ids=[p.name for p in SAVED])
def test_saved_model_fixture_stays_small(folder):
    limit = TASK_SIZE_LIMIT.get(read_manifest(folder)["task"], SIZE_LIMIT)
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < limit, f"keep the fixture small ({size} bytes)"
