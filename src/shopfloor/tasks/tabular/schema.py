"""Column roles and the feature schema a tabular model is trained on.

`infer_schema` looks at a training table and decides, for every column, whether it is a
numeric sensor reading, a categorical setting (product type, material lot), a date, or an
identifier (serial numbers, row ids) that must not be learned from but is kept in the
output. `TableSchema.to_arrays` turns any later table into the model's numeric input,
checking it against the schema and naming the column and row of anything wrong.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from shopfloor.data.tables import did_you_mean
from shopfloor.data.times import check_date_order, parse_times
from shopfloor.errors import BadColumn, ColumnMissing, warn

ID_NAME = re.compile(r"(^|[\s_\-])(id|udi|uid|uuid|serial|serial[\s_]?no)$", re.IGNORECASE)
EPOCH = pd.Timestamp("1970-01-01")
UNKNOWN, MISSING = 0, 1  # reserved category codes: unseen (or rare) values, missing values
MIN_CATEGORY_COUNT = 2  # rarer categories share the 'unknown' code so that it gets trained
MAX_CATEGORIES = 1000
TRUE_FALSE = {"true": 1.0, "false": 0.0}


@dataclass
class TableSchema:
    """What the model expects of a table. Serialised into the model's manifest."""

    numeric: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)  # fed to the model as days since 1970-01-01
    categorical: dict[str, list[str]] = field(default_factory=dict)  # name -> known levels
    ids: list[str] = field(default_factory=list)
    # how each date column's numeric dates were read in training ('dayfirst' / 'monthfirst'), so that
    # new files are read the same way even when their own dates could be read either way
    date_orders: dict[str, str] = field(default_factory=dict)

    @property
    def numeric_inputs(self) -> list[str]:
        return self.numeric + self.dates

    @property
    def features(self) -> list[str]:
        return self.numeric + self.dates + list(self.categorical)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TableSchema:
        return cls(**data)

    def check_columns(self, frame: pd.DataFrame, source: str = "the data") -> None:
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise ColumnMissing(
                f"{_quote(missing)} {'is' if len(missing) == 1 else 'are'} in the model's schema "
                f"but not in {source} (columns found: {_quote(list(frame.columns), 12)})"
                f"{did_you_mean(missing[0], frame.columns)}"
            )

    def to_arrays(self, frame: pd.DataFrame, row_offset: int = 0,
                  date_order: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """The model's inputs: float32 numbers (NaN = missing) and int64 category codes.

        Dates are read in the order stored for their column, unless `date_order` says otherwise.
        """
        self.check_columns(frame)
        date_order = check_date_order(date_order)
        numbers = np.empty((len(frame), len(self.numeric_inputs)), dtype=np.float32)
        for j, name in enumerate(self.numeric):
            numbers[:, j] = numeric_column(frame[name], name, row_offset)
        for j, name in enumerate(self.dates, start=len(self.numeric)):
            order = date_order if date_order != "auto" else self.date_orders.get(name, "auto")
            numbers[:, j] = date_column(frame[name], name, row_offset, order)
        codes = np.empty((len(frame), len(self.categorical)), dtype=np.int64)
        for j, (name, levels) in enumerate(self.categorical.items()):
            codes[:, j] = category_codes(frame[name], levels)
        return numbers, codes


def infer_schema(frame: pd.DataFrame, targets: list[str], drop: list[str] = (), ids: list[str] = (),
                 date_order: str = "auto", source: str = "the data") -> TableSchema:
    """Decide each column's role from the training table (and the order of each date column's dates)."""
    schema = TableSchema()
    unknown = [name for name in ids if name not in frame.columns]
    if unknown:
        raise ColumnMissing(f"--id '{unknown[0]}' is not a column of {source} "
                            f"(columns found: {_quote(list(frame.columns), 12)}){did_you_mean(unknown[0], frame.columns)}")
    skip = set(targets) | set(drop)
    for name in frame.columns:
        if name in skip:
            continue
        column = frame[name]
        if name in ids:
            schema.ids.append(name)
            continue
        if column.isna().all():
            raise BadColumn(
                f"column '{name}' has no values at all; drop it with --drop '{name}' or fill it in"
            )
        kind = _column_kind(name, column)
        if kind == "id":
            schema.ids.append(name)
        elif kind == "numeric":
            numeric_column(column, name)  # raises on stray text, naming the row
            schema.numeric.append(name)
        elif kind == "date":
            schema.dates.append(name)
            _, order = parse_times(column, name, source, date_order)  # refuses a column readable two ways
            if order is not None:
                schema.date_orders[name] = order
        else:
            schema.categorical[name] = category_levels(column)
    if not schema.features:
        raise BadColumn("no feature columns are left after removing targets, dropped and id columns")
    return schema


def _column_kind(name: str, column: pd.Series) -> str:
    values = column.dropna()
    unique_ratio = values.nunique() / max(len(values), 1)
    if pd.api.types.is_bool_dtype(column):
        return "categorical"
    if pd.api.types.is_numeric_dtype(column):
        if len(values) >= 20 and unique_ratio == 1.0:
            ints = values.to_numpy()
            is_counter = np.all(np.mod(ints, 1) == 0) and np.all(np.diff(ints) == 1)
            if is_counter or ID_NAME.search(name):
                return "id"
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(column):
        return "date"
    text = values.astype(str).str.strip()
    as_numbers = pd.to_numeric(text, errors="coerce")
    if as_numbers.notna().mean() >= 0.9:
        return "numeric"  # a numeric column with some stray text: numeric_column names the row
    if _looks_like_dates(text):
        return "date"
    if len(values) >= 20 and (unique_ratio > 0.9 or (ID_NAME.search(name) and unique_ratio > 0.5)):
        return "id"
    if text.nunique() > MAX_CATEGORIES:
        return "id"
    return "categorical"


def _looks_like_dates(text: pd.Series) -> bool:
    sample = text.head(200)
    if not sample.str.contains(r"\d", regex=True).all() or not sample.str.contains(r"[-/.:]", regex=True).all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return parsed.notna().mean() >= 0.95


def numeric_column(column: pd.Series, name: str, row_offset: int = 0) -> np.ndarray:
    """Float values of a numeric column; stray text raises an error naming the row.

    A column of true/false values only (a flag exported as TRUE/FALSE where the model learned 1/0)
    is read as 1 and 0, with a warning; true/false among numbers is refused like other text.
    """
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=np.float32, na_value=np.nan)
    text = column.astype("string").str.strip()
    flags = text.str.lower().map(TRUE_FALSE.get, na_action="ignore")
    if text.notna().any() and flags.notna().sum() == text.notna().sum():
        warn(f"column '{name}' is a true/false column but the model reads it as a number: "
             "true is read as 1 and false as 0")
        return flags.to_numpy(dtype=np.float32, na_value=np.nan)
    as_numbers = pd.to_numeric(text, errors="coerce")
    bad = as_numbers.isna() & column.notna() & (text != "")
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        if pd.notna(flags.iloc[position]):
            raise BadColumn(
                f"column '{name}' is numeric but row {row_offset + position + 1} holds the true/false value "
                f"{str(column.iloc[position])!r} ({int(bad.sum())} such rows); write true/false as 1/0 "
                "in every row of the column, or fix those rows"
            )
        raise BadColumn(
            f"column '{name}' is numeric but row {row_offset + position + 1} holds the text "
            f"{str(column.iloc[position])!r} ({int(bad.sum())} such rows)"
        )
    return as_numbers.to_numpy(dtype=np.float32, na_value=np.nan)


def date_column(column: pd.Series, name: str, row_offset: int = 0, date_order: str = "auto") -> np.ndarray:
    """Days since 1970-01-01 (fractional), NaN where missing; unparseable text raises."""
    stamps, _ = parse_times(column, name, order=date_order, row_offset=row_offset)
    days = (stamps - EPOCH) / pd.Timedelta(days=1)
    return days.to_numpy(dtype=np.float32, na_value=np.nan)


def _category_text(column: pd.Series) -> pd.Series:
    # Trailing spaces are data-entry noise ('finishing ' vs 'finishing'), not a new category.
    return column.astype("string").str.strip()


def category_levels(column: pd.Series) -> list[str]:
    counts = _category_text(column).value_counts(dropna=True)
    return sorted(str(v) for v, n in counts.items() if n >= MIN_CATEGORY_COUNT and v != "")


def category_codes(column: pd.Series, levels: list[str]) -> np.ndarray:
    """Codes: 0 unseen, 1 missing, 2.. the known levels in order."""
    lookup = pd.Index(levels)
    text = _category_text(column)
    codes = lookup.get_indexer(text.fillna("\x00").to_numpy(dtype=object)) + 2
    codes[codes == 1] = UNKNOWN  # get_indexer gives -1 for unseen values
    codes[(text.isna() | (text == "")).to_numpy()] = MISSING
    return codes.astype(np.int64)


def report_extra_columns(frame: pd.DataFrame, expected: list[str], source: str) -> None:
    extra = [c for c in frame.columns if c not in set(expected)]
    if extra:
        warn(f"{source}: ignoring {len(extra)} column(s) the model does not use: {_quote(extra, 8)}")


def _quote(names: list[str], limit: int | None = None) -> str:
    shown = names if limit is None else names[:limit]
    text = ", ".join(f"'{n}'" for n in shown)
    if limit is not None and len(names) > limit:
        text += f", ... ({len(names) - limit} more)"
    return text
