"""Reading and writing tables: CSV (any common delimiter, BOM, CRLF) and Parquet.

Plant data arrives from Excel exports, historians and MES dumps, so the CSV reader
sniffs the delimiter, accepts a UTF-8 byte-order mark and Windows line endings, and
understands the European ``;`` + decimal comma convention. Large files are read in
chunks (`iter_table`) and results are written through `TableWriter`, which writes to a
temporary file and renames it only when everything went well: nothing half-written.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from shopfloor.artifacts import remove_debris
from shopfloor.errors import DataFileError, warn

SNIFF_BYTES = 64 * 1024
DELIMITERS = ",;\t|"
_DECIMAL_COMMA = re.compile(r"(?:^|;)\s*-?\d+,\d+\s*(?:;|$)", re.MULTILINE)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    if path.is_dir():
        raise DataFileError(f"{path} is a folder, expected a CSV or Parquet file")
    if path.stat().st_size == 0:
        raise DataFileError(f"{path} is empty (0 bytes)")


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in {".parquet", ".pq"}:
        return True
    with path.open("rb") as handle:
        return handle.read(4) == b"PAR1"


def _csv_options(path: Path) -> dict:
    """Encoding, delimiter and decimal mark, guessed from the start of the file."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read(SNIFF_BYTES)
    encoding = "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        if err.start < len(raw) - 4:  # not just a multi-byte character cut by the sample
            warn(f"{path.name} is not UTF-8; reading it as Windows-1252")
            encoding = "cp1252"
            text = raw.decode(encoding, errors="replace")
        else:
            text = raw[: err.start].decode(encoding)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataFileError(f"{path} has no header line")
    sample = "\n".join(lines[:50])
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = lines[0]
        delimiter = max(DELIMITERS, key=header.count) if any(d in header for d in DELIMITERS) else ","
    decimal = "," if delimiter == ";" and _DECIMAL_COMMA.search(sample) else "."
    # pandas renames a repeated name to 'name.1'; catch it here, where the header is still as written
    _check_unique([str(c).strip() for c in next(csv.reader([lines[0]], delimiter=delimiter))], path)
    return {"sep": delimiter, "encoding": encoding, "decimal": decimal}


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a whole CSV or Parquet file. Raises `DataFileError` with the reason."""
    path = Path(path)
    _check_file(path)
    try:
        if _is_parquet(path):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, low_memory=False, **_csv_options(path))
    except DataFileError:
        raise
    except (ValueError, OSError, pd.errors.ParserError, ImportError) as err:
        raise DataFileError(f"{path} could not be read as a table: {_first_line(err)}") from None
    if frame.empty:
        raise DataFileError(f"{path} has a header but no data rows")
    return _tidy_header(frame, path)


def iter_table(path: str | os.PathLike, chunk_rows: int = 200_000) -> Iterator[pd.DataFrame]:
    """Yield a large CSV or Parquet file in chunks of about `chunk_rows` rows.

    Memory stays bounded by the chunk size, whatever the file size.
    """
    path = Path(path)
    _check_file(path)
    empty = True
    try:
        if _is_parquet(path):
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                empty = False
                yield _tidy_header(batch.to_pandas(), path)
        else:
            reader = pd.read_csv(path, chunksize=chunk_rows, low_memory=False, **_csv_options(path))
            with reader:
                for chunk in reader:
                    if chunk.empty:  # a header-only file gives one empty chunk
                        continue
                    empty = False
                    yield _tidy_header(chunk, path)
    except (ValueError, OSError, pd.errors.ParserError, ImportError) as err:
        raise DataFileError(f"{path} could not be read as a table: {_first_line(err)}") from None
    if empty:
        raise DataFileError(f"{path} has a header but no data rows")


def _tidy_header(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    names = column_names(frame.columns)
    _check_unique(names, path)
    frame.columns = names
    return frame


def column_name(name) -> str:
    """A column name as the readers store it: without the spaces around it that Excel exports leave.

    Names the user gives (--target, --drop, --time, ...) go through the same function, so that
    'Torque [Nm] ' copied from a file's header finds the column the reader calls 'Torque [Nm]'.
    """
    return str(name).strip()


def column_names(names) -> list[str]:
    return [] if names is None else [column_name(n) for n in names]


def tidy_columns(frame: pd.DataFrame, source: str = "the data") -> pd.DataFrame:
    """A DataFrame given in Python with its column names as a file's would be read (a new frame if any changed)."""
    names = column_names(frame.columns)
    if names == list(frame.columns):
        return frame
    _check_unique(names, source)
    return frame.set_axis(names, axis=1)


def did_you_mean(name, columns) -> str:
    """'; did you mean 'X'?' naming the column most like `name` (spelling, case), or '' when none is close."""
    names = [str(c) for c in columns]
    by_lower = {n.lower(): n for n in names}
    match = difflib.get_close_matches(column_name(name).lower(), list(by_lower), n=1, cutoff=0.6)
    return f"; did you mean '{by_lower[match[0]]}'?" if match else ""


def _check_unique(names: list[str], path: Path | str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataFileError(f"{path}: the column name '{name}' appears twice in the header")
        seen.add(name)


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class TableWriter:
    """Write a table chunk by chunk to CSV or Parquet (chosen by the file extension).

    Writes to a hidden temporary file next to the target and renames it into place on
    `close()`; if anything fails before, the temporary file is removed and an existing
    file at the target is left untouched.

    Not `artifacts.atomic_write`, which takes the whole content at once: a table of predictions can be larger
    than memory, so it is written chunk by chunk. The temporary file follows the same rules: its own name per
    process and thread (`.NAME.tmp-PID-THREAD`), removed on failure, and what a killed writer left is removed
    by the next writer of the same file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in {".csv", ".parquet", ".pq"}:
            raise DataFileError(f"{self.path}: output must end in .csv or .parquet")
        self.parquet = suffix != ".csv"
        if not self.path.parent.exists():
            raise DataFileError(f"{self.path}: the folder {self.path.parent} does not exist")
        remove_debris(self.path.parent, f".{self.path.name}.tmp-")
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        self._parquet_writer = None
        self._csv_handle: io.TextIOBase | None = None

    def write(self, frame: pd.DataFrame) -> None:
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet_writer is None:
                self._parquet_writer = pq.ParquetWriter(self._tmp, table.schema)
            self._parquet_writer.write_table(table.cast(self._parquet_writer.schema))
        else:
            first = self._csv_handle is None
            if first:
                self._csv_handle = self._tmp.open("w", encoding="utf-8", newline="")
            frame.to_csv(self._csv_handle, index=False, header=first)

    def close(self) -> None:
        try:
            if self._parquet_writer is not None:
                self._parquet_writer.close()
            if self._csv_handle is not None:
                self._csv_handle.close()
            _flush_to_disk(self._tmp)
            os.replace(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def abort(self) -> None:
        if self._parquet_writer is not None:
            self._parquet_writer.close()
        if self._csv_handle is not None:
            self._csv_handle.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _flush_to_disk(path: Path) -> None:
    """Make the written bytes durable before the rename makes them visible (as `atomic_write` does)."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with TableWriter(path) as writer:
        writer.write(frame)
