"""Run-to-failure sensor histories for remaining-useful-life models.

A run history is one row per (unit, time stamp): a unit id, a time or cycle column,
operating settings and sensors. NASA's C-MAPSS text files (no header, 26 numbers a line)
are recognised by their shape; any other CSV or Parquet file needs `--unit` and `--time`.
The frame that comes out is sorted by unit then time, gap-free where a unit has values,
and holds only the unit, time, setting and sensor columns, settings and sensors as float64.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shopfloor.data.tables import column_name, column_names, did_you_mean, read_table, tidy_columns
from shopfloor.data.times import parse_times
from shopfloor.errors import BadColumn, BadOption, BadTarget, ColumnMissing, DataFileError, warn

CMAPSS_COLUMNS = (["unit", "cycle", "setting_1", "setting_2", "setting_3"]
                  + [f"sensor_{i}" for i in range(1, 22)])
_INTEGRAL_TEXT = re.compile(r"^-?\d+\.0*$")


@dataclass
class RunHistory:
    frame: pd.DataFrame
    unit: str
    time: str
    settings: list[str]
    sensors: list[str]
    source: str
    time_order: str | None = None  # how dates in the time column were read: 'dayfirst', 'monthfirst', None
    time_is_stamp: bool = False  # the time column held dates (kept in the frame as seconds since 1970)

    def times(self, values) -> pd.Series | np.ndarray:
        """Values of the frame's time column as the file wrote them: dates again, or cycle numbers."""
        values = np.asarray(values)
        if not self.time_is_stamp:
            return values
        return pd.to_datetime(np.round(values.astype("float64") * 1e6).astype("int64"), unit="us")  # float seconds

    @property
    def units(self) -> list:
        """Unit ids in the order of the (sorted) frame."""
        return pd.unique(self.frame[self.unit]).tolist()

    def __len__(self) -> int:
        return int(self.frame[self.unit].nunique())


def is_cmapss_file(path) -> bool:
    """True when the first non-empty line of the file is exactly 26 numbers separated by spaces."""
    try:
        path = Path(path)
        opener = gzip.open if path.suffix.lower() == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            for _ in range(100):
                line = handle.readline(8192)
                if not line:
                    return False
                if line.strip():
                    break
            else:
                return False
    except (OSError, TypeError, EOFError, ValueError):
        return False
    tokens = line.split()
    return len(tokens) == len(CMAPSS_COLUMNS) and all(_is_number(token) for token in tokens)


def read_runs(data: pd.DataFrame | str | os.PathLike, unit: str | None = None, time: str | None = None,
              settings: list[str] | None = None, drop: list[str] | None = None,
              date_order: str = "auto") -> RunHistory:
    """Read run histories from a C-MAPSS text file, a CSV/Parquet file or a DataFrame.

    date_order: how a time column of dates is read ('auto', 'dayfirst', 'monthfirst'; see data.times).
    """
    unit, time = (None if name is None else column_name(name) for name in (unit, time))
    settings = None if settings is None else column_names(settings)
    if isinstance(data, pd.DataFrame):
        frame, source = tidy_columns(data.copy()), "the data"
    elif is_cmapss_file(data):
        frame, source = _read_cmapss(Path(data)), Path(data).name
        unit, time = unit or "unit", time or "cycle"
        settings = CMAPSS_COLUMNS[2:5] if settings is None else settings
    else:
        frame, source = read_table(data), Path(data).name
    if frame.empty:
        raise DataFileError(f"{source} has no rows of run history")
    if unit is None or time is None:
        raise BadOption(f"{source} is not a C-MAPSS text file, so name its unit and time columns: "
                        f"pass --unit COL --time COL (columns found: {_names(frame)})")
    settings, drop = list(settings or []), column_names(drop)
    for role, names in [("unit", [unit]), ("time", [time]), ("setting", settings), ("dropped", drop)]:
        for name in names:
            if name not in frame.columns:
                raise ColumnMissing(f"the {role} column '{name}' is not in {source} "
                                    f"(columns found: {_names(frame)}){did_you_mean(name, frame.columns)}")
    roles = [unit, time, *settings, *drop]
    if len(set(roles)) < len(roles):
        raise BadOption(f"a column of {source} is named twice among unit '{unit}', time '{time}', "
                        f"settings {settings} and --drop {drop}; give each column one role")
    for name in settings:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            raise BadColumn(f"setting '{name}' in {source} is not numeric "
                            f"(e.g. {frame[name].dropna().iloc[0]!r}); settings must be numbers")
    rest = [c for c in frame.columns if c not in roles]
    sensors = [c for c in rest if pd.api.types.is_numeric_dtype(frame[c])]
    ignored = [c for c in rest if c not in sensors]
    if ignored:
        warn(f"ignored {len(ignored)} non-numeric columns of {source}: {', '.join(map(repr, ignored))}")
    if not sensors:
        raise BadColumn(f"{source} has no numeric sensor columns besides unit '{unit}', time '{time}' "
                        f"and the settings (columns found: {_names(frame)})")

    missing = (frame[unit].isna() | frame[time].isna()).to_numpy()
    if missing.any():
        raise BadColumn(f"{int(missing.sum())} rows of {source} have no {unit} or no {time} "
                        f"(first: data row {int(np.argmax(missing)) + 1}); every row needs both")
    frame = frame[[unit, time, *settings, *sensors]]
    frame[unit] = _tidy_units(frame[unit])
    is_stamp = not pd.api.types.is_numeric_dtype(frame[time]) or pd.api.types.is_bool_dtype(frame[time])
    frame[time], time_order = _time_values(frame[time], time, source, frame[unit], date_order)
    for name in settings + sensors:
        frame[name] = frame[name].astype("float64")
        if frame[name].isna().all():
            kind = "setting" if name in settings else "sensor"
            raise BadColumn(f"{kind} '{name}' in {source} has no values at all; drop it with --drop {name}")
    frame = _sort(frame, unit, time, source)
    _fill_gaps(frame, unit, settings + sensors, source)
    return RunHistory(frame, unit, time, settings, sensors, source, time_order, is_stamp)


def read_rul(data: str | os.PathLike | pd.DataFrame, units: list, source_units: str = "the test data") -> np.ndarray:
    """True remaining useful life per unit, float64, in the order of `units`.

    Accepts C-MAPSS `RUL_FD00x.txt` (one number a line, in unit order) or a table with the
    columns `unit` and `rul` (any case, any row order).
    """
    if isinstance(data, pd.DataFrame):
        table, source = data, "the RUL data"
    else:
        source = Path(data).name
        values = _rul_lines(Path(data))
        if values is not None:
            if len(values) != len(units):
                raise BadTarget(f"{source} has {len(values)} values but {source_units} has {len(units)} units; "
                                "one line per unit in unit order")
            return _check_rul(np.asarray(values, dtype="float64"), units, source)
        table = read_table(data)
    lower = {str(c).strip().lower(): c for c in table.columns}
    if "unit" not in lower or "rul" not in lower:
        raise ColumnMissing(f"{source} needs the columns 'unit' and 'rul' (columns found: {_names(table)})")
    keys = [_unit_key(u) for u in table[lower["unit"]]]
    rul = pd.to_numeric(table[lower["rul"]], errors="coerce").to_numpy(dtype="float64")
    by_unit = dict(zip(keys, rul, strict=True))
    if len(by_unit) < len(keys):
        twice = pd.Series(keys)[pd.Series(keys).duplicated()].iloc[0]
        raise BadTarget(f"unit {twice} appears twice in {source}; give one RUL per unit")
    wanted = [_unit_key(u) for u in units]
    absent = [k for k in wanted if k not in by_unit]
    if absent:
        raise BadTarget(f"{source} has no RUL for {len(absent)} units of {source_units} "
                        f"(e.g. unit {', '.join(absent[:5])}); add one row per unit")
    extra = set(by_unit) - set(wanted)
    if extra:
        warn(f"ignored {len(extra)} units in {source} that are not in {source_units}")
    return _check_rul(np.array([by_unit[k] for k in wanted], dtype="float64"), units, source)


def _read_cmapss(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, sep=r"\s+", header=None)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise DataFileError(f"{path.name} looks like a C-MAPSS text file but could not be read: "
                            f"{str(err).strip().splitlines()[0]}") from None
    if frame.shape[1] != len(CMAPSS_COLUMNS) or not all(map(pd.api.types.is_numeric_dtype, frame.dtypes)):
        raise DataFileError(f"{path.name} looks like a C-MAPSS text file but not every line holds "
                            f"{len(CMAPSS_COLUMNS)} numbers; fix the file or convert it to CSV with a header")
    frame.columns = CMAPSS_COLUMNS
    return frame


def _tidy_units(ids: pd.Series) -> pd.Series:
    """Whole-number ids as int64 (so unit 3, not 3.0), text ids as str; both sort without surprise."""
    if pd.api.types.is_numeric_dtype(ids):
        values = ids.to_numpy(dtype="float64")
        return ids.astype("int64") if np.all(values == np.round(values)) else ids.astype("float64")
    return ids.astype(str)


def _time_values(stamps: pd.Series, name: str, source: str, units: pd.Series,
                 date_order: str) -> tuple[pd.Series, str | None]:
    """Numbers as they are; time stamps as float seconds (epoch), so that the model sees numbers.

    Also the order dates were read in (None for numbers): time runs forward within each unit.
    """
    if pd.api.types.is_numeric_dtype(stamps) and not pd.api.types.is_bool_dtype(stamps):
        return stamps, None
    stamps, order = parse_times(stamps, name, source, date_order, groups=units)
    return pd.Series(stamps.to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9, index=stamps.index), order


def _sort(frame: pd.DataFrame, unit: str, time: str, source: str) -> pd.DataFrame:
    steps = frame.groupby(unit, sort=False)[time].diff()
    backwards = frame.loc[steps.to_numpy() < 0, unit]
    if len(backwards):
        warn(f"time stamps in {source} are not in order within {backwards.nunique()} units "
             f"(e.g. unit {backwards.iloc[0]}); sorted")
    codes, _ = pd.factorize(frame[unit], sort=True)
    order = np.lexsort((frame[time].to_numpy(), codes))  # stable: ties keep their file order
    frame = frame.iloc[order].reset_index(drop=True)
    ids, stamps = frame[unit].to_numpy(), frame[time].to_numpy()
    twice = np.flatnonzero((ids[1:] == ids[:-1]) & (stamps[1:] == stamps[:-1]))
    if len(twice):
        raise BadColumn(f"unit {ids[twice[0]]} has two rows at {time} {_plain(stamps[twice[0]])} in {source}; "
                        "each unit needs one row per time stamp")
    return frame


def _fill_gaps(frame: pd.DataFrame, unit: str, columns: list[str], source: str) -> None:
    """Interpolate missing values linearly within each unit, in place (rows are already in time order)."""
    gappy = [c for c in columns if frame[c].isna().any()]
    if not gappy:
        return
    before = int(frame[gappy].isna().sum().sum())
    frame[gappy] = frame.groupby(unit, sort=False)[gappy].transform(
        lambda values: values.interpolate(limit_direction="both"))
    empty = frame[gappy].isna().groupby(frame[unit], sort=False).all()
    filled = before - int(frame[gappy].isna().sum().sum())
    if filled:
        warn(f"filled {filled} missing values in {source} by linear interpolation within each unit")
    for name in empty.columns[empty.any()]:
        units = empty.index[empty[name]]
        warn(f"'{name}' has no values in {len(units)} units of {source} (e.g. unit {units[0]}); "
             "left missing there for the model to fill")


def _rul_lines(path: Path) -> list[float] | None:
    """The numbers of a one-number-a-line text file, or None when it is not one."""
    name = path.name.lower()
    if not (name.endswith(".txt") or name.endswith(".txt.gz")) or not path.is_file():
        return None
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except (OSError, EOFError) as err:
        raise DataFileError(f"{path.name} could not be read: {err}") from None
    if not lines:
        raise DataFileError(f"{path.name} is empty; expected one RUL value per line")
    if not all(len(line.split()) == 1 and _is_number(line) for line in lines):
        return None
    return [float(line) for line in lines]


def _check_rul(rul: np.ndarray, units: list, source: str) -> np.ndarray:
    bad = np.flatnonzero(~(rul >= 0))
    if len(bad):
        raise BadTarget(f"{source} has {len(bad)} missing or negative RUL values (e.g. unit "
                        f"{_unit_key(units[bad[0]])}: {rul[bad[0]]}); RUL must be a number of cycles >= 0")
    return rul


def _unit_key(unit) -> str:
    """Unit ids as text for matching across files: 3, 3.0, '3' and '3.0' all become '3'."""
    if isinstance(unit, (int, float, np.integer, np.floating)) and not isinstance(unit, bool):
        return _plain(unit)
    text = str(unit).strip()
    return text.split(".")[0] if _INTEGRAL_TEXT.match(text) else text


def _plain(value) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else str(value)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _names(frame: pd.DataFrame, limit: int = 12) -> str:
    names = [repr(str(c)) for c in frame.columns]
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
