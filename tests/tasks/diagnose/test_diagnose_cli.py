"""The diagnose task through the command line: its own `train diagnose` command and the faces every task shares;
every bad input is one line, exit 2, and no model folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from bearings import write_classes
from scipy.io import savemat, wavfile
from typer.testing import CliRunner

from shopfloor.cli import app


def shopfloor(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line(result) -> str:
    return " ".join(result.output.split())


def test_train_info_predict_evaluate_and_explain_class_folders_of_csv_files(tmp_path):
    write_classes(tmp_path / "train", ("normal", "inner", "outer"), seconds=1.0, seed=0, kind="csv")
    write_classes(tmp_path / "test", ("normal", "inner", "outer"), seconds=0.5, seed=1, kind="csv")
    trained = shopfloor("train", "diagnose", "--data", tmp_path / "train", "--out", tmp_path / "model", "--rate", 12000,
                        "--window", 512, "--quiet")
    assert trained.exit_code == 0, trained.output
    info = one_line(shopfloor("info", "--model", tmp_path / "model"))
    assert "fault diagnosis" in info and "classes: inner, normal, outer" in info and "12000 Hz" in info

    predicted = shopfloor("predict", "--model", tmp_path / "model", "--data", tmp_path / "test", "--out", tmp_path / "p.csv")
    assert predicted.exit_code == 0, predicted.output
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 3 * 11 and (table["class"] == table["truth"]).mean() > 0.8
    recordings = pd.read_csv(tmp_path / "p.recordings.csv")  # and one answer per recording beside it
    assert len(recordings) == 3 and (recordings["class"] == recordings["truth"]).all()

    scored = shopfloor("evaluate", "--model", tmp_path / "model", "--data", tmp_path / "test", "--json", tmp_path / "m.json")
    assert scored.exit_code == 0, scored.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert {"accuracy", "f1_macro", "recording_accuracy", "unknown_rate"} <= set(metrics) and metrics["accuracy"] > 0.8

    explained = shopfloor("explain", "--model", tmp_path / "model", "--data", tmp_path / "test" / "inner",
                          "--out", tmp_path / "e.csv")
    assert explained.exit_code == 0 and "11 windows" in one_line(explained)
    assert {"top_band_low_hz", "top_span_start", "band_8"} <= set(pd.read_csv(tmp_path / "e.csv").columns)


def test_a_long_table_trains_from_the_command_line_and_its_mixed_runs_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"cycle": c, "t": t, "pressure": 10 + 3 * (c % 2) + rng.normal(0, 0.3), "state": ["ok", "leak"][c % 2]}
            for c in range(12) for t in range(20)]
    table = pd.DataFrame(rows)
    table.to_csv(tmp_path / "cycles.csv", index=False)
    ok = shopfloor("train", "diagnose", "--data", tmp_path / "cycles.csv", "--out", tmp_path / "model", "--time", "t",
                   "--label", "state", "--run", "cycle", "--window", 20, "--quiet")
    assert ok.exit_code == 0, ok.output
    scored = shopfloor("evaluate", "--model", tmp_path / "model", "--data", tmp_path / "cycles.csv")
    assert scored.exit_code == 0 and "recording_accuracy" in scored.output
    crossed = shopfloor("train", "diagnose", "--data", tmp_path / "cycles.csv", "--out", tmp_path / "cv", "--time", "t",
                        "--label", "state", "--run", "cycle", "--window", 20, "--cv", 3, "--quiet")
    assert crossed.exit_code == 0 and "3-fold cross-validation (whole runs of 'cycle')" in one_line(crossed)
    saved = json.loads((tmp_path / "cv" / "manifest.json").read_text())["state"]["cross_validation"]
    assert saved["folds"] == 3 and "accuracy" in saved["mean"] and not any(k.startswith("confusion") for k in saved["mean"])
    table.loc[5, "state"] = "leak"  # cycle 0 changes type part-way
    table.to_csv(tmp_path / "mixed.csv", index=False)
    mixed = shopfloor("train", "diagnose", "--data", tmp_path / "mixed.csv", "--out", tmp_path / "m2", "--time", "t",
                      "--label", "state", "--run", "cycle", "--window", 10, "--quiet")
    assert mixed.exit_code == 2 and "run '0'" in one_line(mixed) and "--mixed-runs" in one_line(mixed)
    assert not (tmp_path / "m2").exists()


def _empty_class(root):
    write_classes(root, ("normal", "inner"), seconds=0.3)
    (root / "outer").mkdir()


def _mat_without_channel(root):
    for name in ("normal", "inner"):
        (root / name).mkdir(parents=True)
        savemat(root / name / "r.mat", {"X097_FE_time": np.zeros((5000, 1))})


def _mixed_channels(root):
    write_classes(root, ("normal",), seconds=0.3)
    (root / "inner").mkdir()
    np.save(root / "inner" / "two.npy", np.zeros((5000, 2)))


def _short(root):
    write_classes(root, ("normal",), seconds=0.3)
    (root / "inner").mkdir()
    np.save(root / "inner" / "tiny.npy", np.zeros(100))


def _wav_rate(root):
    for name in ("normal", "inner"):
        (root / name).mkdir(parents=True)
        wavfile.write(root / name / "r.wav", 8_000, np.zeros(5000, np.int16))


def _unreadable(root):
    write_classes(root, ("normal",), seconds=0.3)
    (root / "inner").mkdir()
    (root / "inner" / "broken.npy").write_bytes(b"\x93NUMPY garbage")


@pytest.mark.parametrize("make, words", [
    (_empty_class, "class folder .*outer holds no signal file"),
    (_mat_without_channel, "r.mat has no variable named 'DE_time' .*it has: X097_FE_time"),
    (_mixed_channels, "normal_0.npy has 1 channel.* but .*two.npy has 2"),
    (_short, "tiny.npy has 100 samples at 12000 Hz, shorter than one window of 512"),
    (_wav_rate, "r.wav says it was recorded at 8000 Hz, but a rate of 12000 Hz"),
    (_unreadable, "broken.npy could not be read as a signal"),
], ids=["empty class", "mat channel", "channels", "short", "wav rate", "unreadable"])
def test_bad_inputs_are_one_line_exit_2_and_nothing_written(tmp_path, make, words):
    make(tmp_path / "data")
    result = shopfloor("train", "diagnose", "--data", tmp_path / "data", "--out", tmp_path / "model", "--rate", 12000,
                       "--window", 512, "--quiet")
    assert result.exit_code == 2, result.output
    text = one_line(result)
    assert text.startswith("error:") and "Traceback" not in result.output
    import re

    assert re.search(words, text), text
    assert not (tmp_path / "model").exists()


def test_bad_rate_options_are_refused(tmp_path):
    write_classes(tmp_path / "data", ("normal", "inner"), seconds=0.3)
    for option, words in (("fast", "--rate 'fast' is neither"), ("-5", "must be a positive number")):
        result = shopfloor("train", "diagnose", "--data", tmp_path / "data", "--out", tmp_path / "model", "--rate", option)
        assert result.exit_code == 2 and words in one_line(result), result.output
    result = shopfloor("train", "diagnose", "--data", tmp_path / "data", "--out", tmp_path / "model", "--run", "cycle")
    assert result.exit_code == 2 and "give its --time column too" in one_line(result)
    result = shopfloor("train", "diagnose", "--data", tmp_path / "data", "--out", tmp_path / "model", "--rate", 12000,
                       "--cv", 2)
    assert result.exit_code == 2 and "--cv folds a long table by its runs" in one_line(result)
    assert not (tmp_path / "model").exists()


def test_the_report_page_shows_the_confusion_matrix_spectra_and_explained_examples(tmp_path):
    write_classes(tmp_path / "train", ("normal", "inner"), seconds=0.6, seed=0)
    write_classes(tmp_path / "test", ("normal", "inner"), seconds=0.3, seed=1)
    assert shopfloor("train", "diagnose", "--data", tmp_path / "train", "--out", tmp_path / "model", "--rate", 12000,
                     "--window", 256, "--front", "spectrum", "--quiet").exit_code == 0
    done = shopfloor("report", "--model", tmp_path / "model", "--data", tmp_path / "test", "--out", tmp_path / "r.html")
    assert done.exit_code == 0, done.output
    page = (tmp_path / "r.html").read_text()
    for words in ("Fault diagnosis report", "Confusion matrix", "Average spectrum of each class", "Explained examples",
                  "band that mattered most", "recording_accuracy"):
        assert words in page, words
    assert page.count("data:image/png;base64") == 3
