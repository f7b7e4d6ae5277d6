"""Recordings of a machine's signals, read from files: one recording per file, a class per sub-folder.

A diagnosis model learns from a folder of class sub-folders (`normal/`, `inner_race_007/`, ...), each holding
recordings; it predicts a folder of recordings (labelled or not) or a single file. The file kinds:

- CSV: a column per channel (numeric columns; `channels` picks them by name), a row per sample;
- NumPy `.npy`: [samples] or [samples, channels] (an array with more columns than rows is [channels, samples]);
- WAV: channels and sample rate from the header; integer samples scaled to -1..1;
- MATLAB `.mat` (CWRU's files): the variables named by `channels`, each matched whole or as the end of the
  variable's name ("DE_time" finds `X097_DE_time`); without `channels`, the one ending in `_DE_time`, the CWRU
  convention (a file without it is refused, listing what it has, rather than read from a guessed variable).

Sample rates. A WAV file carries its own; other files take `rate` (Hz), or the rate of the first `rates` pattern
(a file-name pattern such as "normal_*", or a class folder's name) that matches the file. This is how CWRU's
normal baseline, recorded at 48 kHz among 12 kHz fault files, is read: `rate=12000, rates={"normal*": 48000}`.
A rate given for a WAV file that disagrees with its header is refused. The model resamples every recording to
one rate (`resample`, polyphase with scipy's anti-alias filter) before cutting windows, so that the network
never sees a fault's frequency at two places.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from shopfloor.errors import BadColumn, BadOption, DataFileError

SIGNAL_SUFFIXES = (".csv", ".npy", ".wav", ".mat")
MAT_SUFFIX = "_DE_time"  # CWRU's drive-end accelerometer, the channel its 10-class protocol reads


@dataclass
class Recording:
    """One recording: samples [channels, samples] at `rate` Hz (None: not known), its class when labelled, and
    the run it belongs to (recordings of one run are never split between training and testing)."""

    name: str
    values: np.ndarray
    rate: float | None
    channels: list[str]
    label: str | None = None
    run: str = ""
    start: float = 0.0  # seconds from the start of its run (a long table's segment)
    source: str = field(default="", repr=False)

    def __post_init__(self):
        self.run = self.run or self.name
        self.source = self.source or self.name

    @property
    def samples(self) -> int:
        return int(self.values.shape[1])


def parse_rates(rate: float | None, rates: dict[str, float] | None) -> None:
    """Refuse rates that are not positive numbers, before any file is read."""
    for name, value in [("rate", rate), *((f"rate of '{k}'", v) for k, v in (rates or {}).items())]:
        if value is not None and (not isinstance(value, int | float) or not np.isfinite(value) or value <= 0):
            raise BadOption(f"the {name} must be a positive number of samples per second (Hz), not {value!r}")


def rate_for(path: Path, label: str | None, rate: float | None, rates: dict[str, float] | None) -> float | None:
    """The rate the user gave for this file: the first `rates` pattern its name or class folder matches, else `rate`."""
    for pattern, value in (rates or {}).items():
        if fnmatch.fnmatch(path.name, pattern) or (label is not None and fnmatch.fnmatch(label, pattern)):
            return float(value)
    return None if rate is None else float(rate)


def read_folder(source: str | os.PathLike, *, rate: float | None = None, rates: dict[str, float] | None = None,
                channels: list[str] | None = None) -> tuple[list[Recording], bool]:
    """Recordings from a file, a folder of files (unlabelled) or a folder of class folders (labelled).

    Returns the recordings and whether they are labelled."""
    root = Path(source)
    if not root.exists():
        raise DataFileError(f"{root}: no such file or folder")
    if root.is_file():
        return [read_signal(root, None, rate, rates, channels, name=root.name)], False
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if folders:
        recordings = []
        for folder in folders:
            files = signal_files(folder)
            if not files:
                raise DataFileError(f"class folder {folder} holds no signal file ({', '.join(SIGNAL_SUFFIXES)})")
            recordings += [read_signal(f, folder.name, rate, rates, channels, name=f"{folder.name}/{f.name}")
                           for f in files]
        return recordings, True
    files = signal_files(root)
    if not files:
        raise DataFileError(f"{root} holds neither class folders nor signal files ({', '.join(SIGNAL_SUFFIXES)})")
    return [read_signal(f, None, rate, rates, channels, name=f.name) for f in files], False


def signal_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SIGNAL_SUFFIXES
                  and not p.name.startswith("."))


def read_signal(path: Path, label: str | None, rate: float | None, rates: dict[str, float] | None,
                channels: list[str] | None, name: str) -> Recording:
    """One file as a recording; every failure names the file."""
    if path.stat().st_size == 0:
        raise DataFileError(f"{path} is empty (0 bytes)")
    given = rate_for(path, label, rate, rates)
    suffix = path.suffix.lower()
    try:
        if suffix == ".wav":
            values, names, own = _read_wav(path)
            if given is not None and abs(given - own) > 1e-6 * own:
                raise BadOption(f"{path} says it was recorded at {own:g} Hz, but a rate of {given:g} Hz was given for "
                                "it; leave the rate out for WAV files (or fix --rate)")
            given = own
        elif suffix == ".mat":
            values, names = _read_mat(path, channels)
        elif suffix == ".npy":
            values, names = _read_npy(path)
        else:
            values, names = _read_csv(path, channels)
    except (BadOption, BadColumn, DataFileError):
        raise
    except (ValueError, OSError, TypeError, KeyError, NotImplementedError) as err:
        raise DataFileError(f"{path} could not be read as a signal: {' '.join(str(err).split())[:200]}") from None
    if values.size == 0:
        raise DataFileError(f"{path} holds no samples")
    if not np.isfinite(values).all():
        raise BadColumn(f"{path} has missing or infinite samples; fill or cut them before training")
    if suffix in (".npy", ".wav") and channels:
        values, names = _pick(values, names, channels, path)
    return Recording(name=name, values=np.ascontiguousarray(values, dtype=np.float32), rate=given, channels=names,
                     label=label, source=str(path))


def _pick(values: np.ndarray, names: list[str], channels: list[str], path: Path) -> tuple[np.ndarray, list[str]]:
    missing = [c for c in channels if c not in names]
    if missing:
        raise BadColumn(f"{path} has no channel {', '.join(map(repr, missing))} (it has: {', '.join(names)})")
    return values[[names.index(c) for c in channels]], list(channels)


def _read_wav(path: Path) -> tuple[np.ndarray, list[str], float]:
    import warnings

    from scipy.io import wavfile

    with warnings.catch_warnings():  # scipy's remarks on chunks it skips: a broken file fails below, named
        warnings.simplefilter("ignore", wavfile.WavFileWarning)
        own, data = wavfile.read(path)
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        data = (data.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    data = data.reshape(len(data), -1).T
    return data, [f"channel_{i}" for i in range(len(data))], float(own)


def _read_npy(path: Path) -> tuple[np.ndarray, list[str]]:
    data = np.load(path, allow_pickle=False)  # never pickle: a signal file must not run code
    if data.ndim == 1:
        data = data[None]
    elif data.ndim == 2:
        data = data if data.shape[1] > data.shape[0] else data.T
    else:
        raise DataFileError(f"{path} holds an array of shape {list(data.shape)}; a signal is [samples] or "
                            "[samples, channels]")
    if not np.issubdtype(data.dtype, np.number):
        raise DataFileError(f"{path} holds {data.dtype} values, not numbers")
    return data.astype(np.float64), [f"channel_{i}" for i in range(len(data))]


def _read_csv(path: Path, channels: list[str] | None) -> tuple[np.ndarray, list[str]]:
    import pandas as pd

    from shopfloor.data.tables import read_table

    frame = read_table(path)
    if channels:
        missing = [c for c in channels if c not in frame.columns]
        if missing:
            raise BadColumn(f"{path} has no column {', '.join(map(repr, missing))} (columns: {', '.join(frame.columns)})")
        frame = frame[channels]
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    if not numeric or (channels and len(numeric) < len(channels)):
        text = [c for c in frame.columns if c not in numeric]
        raise BadColumn(f"{path} has no numeric channel column" if not numeric else
                        f"{path}: column(s) {', '.join(map(repr, text))} hold text, not samples")
    return frame[numeric].to_numpy(np.float64).T, [str(c) for c in numeric]


def _read_mat(path: Path, channels: list[str] | None) -> tuple[np.ndarray, list[str]]:
    from scipy.io import loadmat

    content = {k: np.asarray(v) for k, v in loadmat(path).items() if not k.startswith("__")}
    signals = {k: v.reshape(-1) for k, v in content.items()
               if np.issubdtype(v.dtype, np.number) and v.ndim <= 2 and min(v.shape or (1,)) == 1 and v.size > 1}
    wanted = channels or [MAT_SUFFIX.lstrip("_")]
    values, names = [], []
    for channel in wanted:
        found = [k for k in signals if k == channel or k.endswith(channel if channel.startswith("_") else "_" + channel)]
        if len(found) != 1:
            what = "no variable" if not found else f"{len(found)} variables ({', '.join(found)})"
            raise BadColumn(f"{path} has {what} named '{channel}'{'' if channels else ' (the CWRU convention)'}; "
                            f"it has: {', '.join(content) or 'nothing'} (choose with --channels)")
        values.append(signals[found[0]])
        names.append(channel.lstrip("_"))
    lengths = {len(v) for v in values}
    if len(lengths) > 1:
        raise BadColumn(f"{path}: the channels {', '.join(names)} have different lengths ({sorted(lengths)})")
    return np.stack(values).astype(np.float64), names


def resample(recording: Recording, rate: float) -> Recording:
    """The recording at `rate` Hz (polyphase, with scipy's anti-alias filter); unchanged when already there."""
    from scipy.signal import resample_poly

    if recording.rate is None or abs(recording.rate - rate) <= 1e-9 * rate:
        return recording
    ratio = Fraction(rate / recording.rate).limit_denominator(1000)
    values = resample_poly(recording.values.astype(np.float64), ratio.numerator, ratio.denominator, axis=1)
    return Recording(name=recording.name, values=values.astype(np.float32), rate=rate, channels=recording.channels,
                     label=recording.label, run=recording.run, start=recording.start, source=recording.source)


def check_channels(recordings: list[Recording], channels: list[str] | None = None) -> list[str]:
    """The channel names every recording shares (or `channels`, those a model was trained on); refuses a mix."""
    expected = channels if channels is not None else recordings[0].channels
    for recording in recordings:
        if len(recording.channels) != len(expected):
            raise BadColumn(f"{recording.source} has {len(recording.channels)} channel(s) ({', '.join(recording.channels)}) "
                            f"but {'the model was trained on' if channels is not None else recordings[0].source + ' has'} "
                            f"{len(expected)} ({', '.join(expected)}); give every recording the same channels")
    return list(expected)


def check_rates(recordings: list[Recording]) -> None:
    """Every recording must have a rate, or none (then all are taken to share one)."""
    known = [r for r in recordings if r.rate is not None]
    if known and len(known) < len(recordings):
        lacking = next(r for r in recordings if r.rate is None)
        raise BadOption(f"{lacking.source} has no sample rate while {known[0].source} has {known[0].rate:g} Hz; give "
                        "--rate HZ for files that do not carry their own")
