"""Recordings from every file kind, rate and layout, and a one-line refusal for every bad input (issue 17)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bearings import RATE, vibration
from scipy.io import savemat, wavfile

from shopfloor.errors import BadColumn, BadOption, BadTarget, DataFileError
from shopfloor.tasks.diagnose.model import DiagnoseModel
from shopfloor.tasks.diagnose.signals import check_channels, read_folder, resample
from shopfloor.tasks.diagnose.table import read_long_table
from shopfloor.tasks.diagnose.windows import holdout_segments, time_split


def sine(hz: float, seconds: float, rate: float) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)


def peak_hz(values: np.ndarray, rate: float) -> float:
    spectrum = np.abs(np.fft.rfft(values))
    return float(np.argmax(spectrum) * rate / len(values))


def test_every_file_kind_is_read_with_its_channels_and_rate(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    signal = vibration(None, 0.5)
    pd.DataFrame({"x": signal, "y": -signal}).to_csv(tmp_path / "good" / "a.csv", index=False)
    np.save(tmp_path / "good" / "b.npy", np.stack([signal, -signal], 1))  # [samples, channels]
    wavfile.write(tmp_path / "bad" / "c.wav", 8_000, (np.stack([signal, -signal], 1) * 3_000).astype(np.int16))
    savemat(tmp_path / "bad" / "d.mat", {"X097_DE_time": signal[:, None], "X097_FE_time": -signal[:, None],
                                         "X097RPM": np.array([[1796]])})
    # a rate given for a file that carries its own must agree with it: the WAV file keeps its header's
    recordings, labelled = read_folder(tmp_path, rates={"*.csv": RATE, "*.npy": RATE, "*.mat": RATE})
    by_name = {r.name: r for r in recordings}
    assert labelled and set(by_name) == {"good/a.csv", "good/b.npy", "bad/c.wav", "bad/d.mat"}
    assert by_name["good/a.csv"].channels == ["x", "y"] and by_name["good/a.csv"].values.shape == (2, len(signal))
    assert by_name["good/b.npy"].values.shape == (2, len(signal))
    assert by_name["bad/c.wav"].rate == 8_000  # from the header
    assert by_name["bad/c.wav"].values.shape == (2, len(signal))
    assert np.abs(by_name["bad/c.wav"].values).max() < 1  # int16 samples scaled to -1..1
    assert by_name["bad/d.mat"].channels == ["DE_time"]  # the CWRU convention without --channels
    assert by_name["good/a.csv"].rate == RATE and by_name["bad/d.mat"].label == "bad"
    np.testing.assert_allclose(by_name["bad/d.mat"].values[0], signal, atol=1e-6)


def test_mat_channels_are_chosen_by_name_or_end_and_a_missing_one_is_listed(tmp_path):
    path = tmp_path / "r.mat"
    savemat(path, {"X105_DE_time": np.ones((100, 1)), "X105_FE_time": np.zeros((100, 1))})
    recordings, _ = read_folder(path, rate=RATE, channels=["FE_time", "X105_DE_time"])
    assert recordings[0].channels == ["FE_time", "X105_DE_time"] and recordings[0].values[:, 0].tolist() == [0, 1]
    with pytest.raises(BadColumn, match=r"r.mat has no variable named 'BA_time'.*X105_DE_time, X105_FE_time"):
        read_folder(path, rate=RATE, channels=["BA_time"])


def test_rates_by_pattern_and_resampling_keep_a_tone_where_it_is(tmp_path):
    (tmp_path / "normal").mkdir()
    (tmp_path / "fault").mkdir()
    np.save(tmp_path / "normal" / "normal_0_97.npy", sine(100.0, 1.0, 48_000))
    np.save(tmp_path / "fault" / "ir.npy", sine(160.0, 1.0, 12_000))
    recordings, _ = read_folder(tmp_path, rate=12_000, rates={"normal*": 48_000})
    rates = {r.label: r.rate for r in recordings}
    assert rates == {"normal": 48_000, "fault": 12_000}
    normal = resample(next(r for r in recordings if r.label == "normal"), 12_000)
    assert normal.rate == 12_000 and normal.samples == 12_000
    assert peak_hz(normal.values[0], 12_000) == pytest.approx(100.0, abs=1.0)


def test_a_model_works_at_the_lowest_rate_and_reads_new_files_at_it(tmp_path):
    """The 48 kHz file is brought down to 12 kHz inside the model's reading path, for training and for new data."""
    for name, rate in (("normal", 48_000), ("fault", 12_000)):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / f"{name}.npy", vibration(None if name == "normal" else 162.2, 1.0, rate=rate))
    model = DiagnoseModel(window=512, rate=12_000, rates={"normal*": 48_000}, max_epochs=1, progress=False)
    model.fit(tmp_path)
    assert model.sample_rate_ == 12_000
    recordings, windows, _, _ = model.windows_of(tmp_path)
    assert {r.samples for r in recordings} == {12_000} and windows.shape[1:] == (1, 512)


@pytest.mark.parametrize("make, error, words", [
    (lambda d: (d / "a" / "notes.txt").write_text("not a signal"), DataFileError, "class folder .*a holds no signal file"),
    (lambda d: (d / "a" / "x.npy").write_bytes(b""), DataFileError, "x.npy is empty"),
    (lambda d: (d / "a" / "x.npy").write_bytes(b"not numpy at all"), DataFileError, "x.npy could not be read"),
    (lambda d: (d / "a" / "x.csv").write_text("day,state\nmon,on\ntue,off\n"), BadColumn, "x.csv has no numeric channel"),
    (lambda d: (d / "a" / "x.wav").write_bytes(b"RIFF0000WAVEjunk"), DataFileError, "x.wav could not be read"),
])
def test_bad_files_are_refused_naming_the_file(tmp_path, make, error, words):
    (tmp_path / "a").mkdir(exist_ok=True)
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "b" / "ok.npy", np.zeros(64))
    make(tmp_path)
    with pytest.raises(error, match=words):
        read_folder(tmp_path, rate=RATE)


def test_mixed_channel_counts_missing_rates_and_short_recordings_are_refused(tmp_path):
    for name, width in (("one", 1), ("two", 2)):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / f"{name}.npy", np.zeros((1000, width)) + np.arange(1000)[:, None])
    recordings, _ = read_folder(tmp_path, rate=RATE)
    with pytest.raises(BadColumn, match=r"two.npy has 2 channel\(s\).*one.npy has 1"):
        check_channels(recordings)
    with pytest.raises(BadColumn, match="two.npy has 2 channel"):
        DiagnoseModel(window=64, progress=False).fit(tmp_path)
    wav = tmp_path / "w.wav"
    wavfile.write(wav, 8_000, np.zeros(100, np.int16))
    with pytest.raises(BadOption, match="w.wav says it was recorded at 8000 Hz, but a rate of 12000 Hz"):
        read_folder(wav, rate=12_000)
    (tmp_path / "two" / "two.npy").unlink()
    np.save(tmp_path / "two" / "short.npy", np.zeros(100))
    with pytest.raises(BadColumn, match="short.npy has 100 samples at 12000 Hz, shorter than one window of 512"):
        DiagnoseModel(window=512, rate=RATE, progress=False).fit(tmp_path)


def long_table(runs: int = 6, steps: int = 60, mixed: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frames = []
    for run in range(runs):
        state = ["ok", "leak"][run % 2]
        level = 10.0 + 3.0 * (state == "leak")
        frame = pd.DataFrame({"cycle": run, "second": np.arange(steps, dtype=float),
                              "pressure": level + rng.normal(0, 0.5, steps), "flow": 5 + rng.normal(0, 0.5, steps),
                              "state": state})
        if mixed and run == 0:
            frame.loc[frame.index[steps // 2:], "state"] = "leak"
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_a_long_table_gives_a_recording_per_run_at_the_rate_of_its_time_column():
    recordings, labelled = read_long_table(long_table(), time="second", label="state", run="cycle")
    assert labelled and len(recordings) == 6 and recordings[0].channels == ["pressure", "flow"]
    assert {r.rate for r in recordings} == {1.0} and recordings[1].label == "leak" and recordings[1].samples == 60
    with pytest.raises(BadOption, match="steps 1 s \\(1 Hz\\), but --rate 100 was given"):
        read_long_table(long_table(), time="second", label="state", run="cycle", rate=100.0)


def test_a_run_that_mixes_labels_is_refused_unless_runs_may_change_type():
    with pytest.raises(BadTarget, match="run '0' of the data holds more than one 'state' \\(leak, ok\\).*--mixed-runs"):
        read_long_table(long_table(mixed=True), time="second", label="state", run="cycle")
    recordings, _ = read_long_table(long_table(mixed=True), time="second", label="state", run="cycle", mixed_runs=True)
    first = [r for r in recordings if r.run == "0"]
    assert [(r.label, r.samples, r.start) for r in first] == [("ok", 30, 0.0), ("leak", 30, 30.0)]


def test_held_out_samples_never_overlap_training_samples():
    one_run = [r for r in read_long_table(long_table(2, steps=400), time="second", label="state", run="cycle")[0]]
    train, held = holdout_segments(one_run, 0.25, 50)  # one run per class: the last quarter of each is held out
    assert [(s.start, s.stop) for s in train] == [(0, 300)] * 2 and [(s.start, s.stop) for s in held] == [(300, 400)] * 2
    many = read_long_table(long_table(8), time="second", label="state", run="cycle")[0]
    train, held = holdout_segments(many, 0.25, 50)  # four runs per class: the last run of each is held out
    assert {many[s.recording].run for s in held} == {"6", "7"}
    assert not {many[s.recording].run for s in train} & {"6", "7"}
    first, last = time_split(one_run, 0.7)
    assert first[0].samples == 280 and last[0].samples == 120 and last[0].start == 280.0

