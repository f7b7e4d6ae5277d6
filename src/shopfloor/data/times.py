"""Time columns: one parser for every reader, so that a date means the same thing everywhere.

Plant exports write dates in the local order: `02-01-2018` is 2 January in Europe and
1 February in the US. pandas' `format="mixed"` guesses the order value by value, so one
column could be read half one way and half the other, without a word. Here the order is
decided once per column and used for every value of it:

- a first field above 12 (`13-01-2018`) can only be a day, a second field above 12 only a day
  too (`01-13-2018`): either settles the column; both in one column is refused, as two orders;
- a column whose fields all stay at 12 or below is read the way that keeps time running
  forward (within each unit for run histories), when only one of the two ways does; when both
  do, the way that gives readings at a steady pace where the other leaps a month at midnight;
- a column that stays ambiguous is refused with a message naming `--dayfirst/--monthfirst`.

Year-first dates (`2018-01-02`, ISO 8601) and month names are not ambiguous and are read as
written. The order a model was trained with is stored in it, so new files are read the same way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopfloor.errors import BadColumn, BadOption

DATE_ORDERS = ("auto", "dayfirst", "monthfirst")
# day and month as one or two digits, then a 2- or 4-digit year, then the time of day if any
_NUMERIC_DATE = r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})((?:[T\s].*)?)$"


def date_order(dayfirst: bool | None) -> str:
    """The CLI's --dayfirst/--monthfirst flag (None when neither is given) as a date order."""
    return "auto" if dayfirst is None else "dayfirst" if dayfirst else "monthfirst"


def check_date_order(order: str | None) -> str:
    order = order or "auto"
    if order not in DATE_ORDERS:
        raise BadOption(f"date order '{order}' is unknown; use {', '.join(DATE_ORDERS)}")
    return order


def parse_times(column: pd.Series, name: str, source: str = "the data", order: str | None = "auto",
                groups: pd.Series | None = None, row_offset: int = 0) -> tuple[pd.Series, str | None]:
    """Time stamps (naive, UTC where the text had an offset; NaT where missing) and the date order used.

    The order is None when no value was written day-month-year or month-day-year, or when both
    orders read every value alike. `groups` (unit
    ids) lets run histories count time running forward within each unit. Text that is not a
    time stamp raises `BadColumn` naming the row (counted from `row_offset`).
    """
    order = check_date_order(order)
    if pd.api.types.is_datetime64_any_dtype(column):
        return _naive(column), None
    text = column.astype("string").str.strip().reset_index(drop=True)  # positions, whatever the index
    text = text.mask(text == "")
    fields = text.str.extract(_NUMERIC_DATE)
    numeric = fields[0].notna().to_numpy()
    stamps = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    used = None
    if numeric.any():
        first, second = fields[0][numeric].astype(int), fields[2][numeric].astype(int)
        year = fields[3][numeric].astype(int)
        year = year.where(year >= 100, year + np.where(year < 69, 2000, 1900))  # as strptime's %y
        rest = fields[4][numeric].fillna("")
        if order == "auto":
            used = _decide(text[numeric], first, second, year, rest, name, source,
                           None if groups is None else np.asarray(groups)[numeric], row_offset, np.flatnonzero(numeric))
        else:
            used = order
        day, month = (second, first) if used == "monthfirst" else (first, second)
        stamps[numeric] = _stamps(year, month, day, rest).to_numpy()
    other = text.notna().to_numpy() & ~numeric
    if other.any():
        stamps[other] = _naive(pd.to_datetime(text[other], errors="coerce", format="mixed", utc=True)).to_numpy()
    bad = stamps.isna().to_numpy() & text.notna().to_numpy()
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise BadColumn(f"column '{name}' of {source} holds time stamps but row {row_offset + position + 1} has "
                        f"{str(column.iloc[position])!r}, which is not a date"
                        + (f" (read {used.replace('first', '-first')})" if used and numeric[position] else ""))
    return pd.Series(stamps.to_numpy(), index=column.index), used


def _stamps(year: pd.Series, month: pd.Series, day: pd.Series, rest: pd.Series) -> pd.Series:
    """ISO text from the fields, then parsed: an impossible date (31 April) becomes NaT."""
    iso = (year.astype(str).str.zfill(4) + "-" + month.astype(str).str.zfill(2) + "-"
           + day.astype(str).str.zfill(2) + rest.str.replace(r"^\s+", " ", regex=True))
    valid = _valid(year, month, day)
    parsed = pd.to_datetime(iso.where(valid), errors="coerce", format="ISO8601", utc=True)
    retry = parsed.isna() & valid  # a time of day ISO 8601 does not know (1:15 PM): the date part is settled
    if retry.any():
        parsed[retry] = pd.to_datetime(iso[retry], errors="coerce", format="mixed", utc=True)
    return _naive(parsed)


def _valid(year: pd.Series, month: pd.Series, day: pd.Series) -> pd.Series:
    """Whether year-month-day is a date of the calendar."""
    dates = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": day}), errors="coerce")
    return dates.notna()


def _decide(text, first, second, year, rest, name, source, groups, row_offset, rows) -> str | None:
    """The one order that reads every value as a date, or that keeps time running forward.

    None when both orders give the same dates (day and month equal in every value)."""
    as_day_first, as_month_first = _valid(year, second, first).to_numpy(), _valid(year, first, second).to_numpy()
    only_day = np.flatnonzero(as_day_first & ~as_month_first)
    only_month = np.flatnonzero(as_month_first & ~as_day_first)
    if len(only_day) and len(only_month):
        a, b = only_day[0], only_month[0]
        raise BadColumn(f"column '{name}' of {source} mixes date orders: row {row_offset + rows[a] + 1} "
                        f"({text.iloc[a]!r}) can only be day-first, row {row_offset + rows[b] + 1} "
                        f"({text.iloc[b]!r}) only month-first; write every date of the column in one order")
    if len(only_day):
        return "dayfirst"
    if len(only_month):
        return "monthfirst"
    if (first == second).all():
        return None
    day_stamps = _stamps(year, second, first, rest)
    month_stamps = _stamps(year, first, second, rest)
    day_steps, month_steps = _steps(day_stamps, groups), _steps(month_stamps, groups)
    day_forward, month_forward = bool((day_steps >= 0).all()), bool((month_steps >= 0).all())
    if day_forward != month_forward:
        return "dayfirst" if day_forward else "monthfirst"
    if day_forward and _steady(day_steps) and _jumpy(month_steps):
        return "dayfirst"  # 15-minute readings of 1-12 January: month-first they jump a month each midnight
    if month_forward and _steady(month_steps) and _jumpy(day_steps):
        return "monthfirst"
    example = next((i for i in range(len(text)) if first.iloc[i] != second.iloc[i]), 0)
    raise BadColumn(f"the dates in column '{name}' of {source} can be read day-first or month-first "
                    f"(e.g. {text.iloc[example]!r}: {day_stamps.iloc[example]:%d %B %Y} or "
                    f"{month_stamps.iloc[example]:%d %B %Y}); say which with --dayfirst or --monthfirst "
                    "(date_order='dayfirst' or 'monthfirst' in Python)")


def _steps(stamps: pd.Series, groups: np.ndarray | None) -> np.ndarray:
    """Seconds from each stamp to the next in file order (within each group when given)."""
    frame = pd.DataFrame({"group": 0 if groups is None else groups, "stamp": stamps.to_numpy()}).dropna()
    steps = frame.groupby("group", sort=False)["stamp"].diff().dropna()
    return (steps / pd.Timedelta(seconds=1)).to_numpy()


def _steady(steps: np.ndarray) -> bool:
    """Readings at one pace: no step forward more than twice the usual one."""
    forward = steps[steps > 0]
    return len(forward) >= 3 and forward.max() <= 2 * np.median(forward)


def _jumpy(steps: np.ndarray) -> bool:
    """Steps of the usual pace broken by leaps twenty times longer."""
    forward = steps[steps > 0]
    return len(forward) >= 3 and forward.max() >= 20 * np.median(forward)


def _naive(stamps: pd.Series) -> pd.Series:
    """Time stamps without a zone (converted to UTC where they had one), as nanoseconds."""
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert(None)
    return stamps.astype("datetime64[ns]")
