"""Reading and writing tables: CSV in the shapes plants export it, Parquet, chunks, atomic writes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfloor.data.tables import TableWriter, iter_table, read_table, write_table
from shopfloor.errors import DataFileError, ShopfloorWarning

# Words pandas reads as missing, boolean or infinite whatever the column: not plain text.
SPECIAL_WORDS = {"na", "n/a", "nan", "null", "none", "true", "false", "inf", "infinity", "-inf", "-nan", "<na>"}
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 []()_-/%°."
TEXT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_./:#äöüé"

names = st.text(alphabet=NAME_CHARS, min_size=1, max_size=14).map(str.strip).filter(
    lambda s: s != "" and not s.lower().startswith("unnamed")) | st.sampled_from(
    ["Torque [Nm]", "Air temperature [K]", "Rotational speed [rpm]", "Tool wear [min]", "Product ID"])
words = st.text(alphabet=TEXT_CHARS, min_size=1, max_size=12).filter(
    lambda s: s[0].isalpha() and s.strip().lower() not in SPECIAL_WORDS)
floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda x: round(x, 3))


@st.composite
def frames(draw) -> pd.DataFrame:
    rows = draw(st.integers(1, 12))
    columns = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    data = {}
    for name in columns:
        kind = draw(st.sampled_from(["float", "int", "text"]))
        if kind == "int":
            data[name] = draw(st.lists(st.integers(-10**6, 10**6), min_size=rows, max_size=rows))
        else:
            values = floats if kind == "float" else words
            cells = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
            data[name] = pd.Series(cells, dtype=float if kind == "float" else object)
    return pd.DataFrame(data)


def write_csv(frame: pd.DataFrame, path: Path, sep: str = ",", bom: bool = False, crlf: bool = False) -> Path:
    frame.to_csv(path, sep=sep, index=False, lineterminator="\r\n" if crlf else "\n",
                 encoding="utf-8-sig" if bom else "utf-8")
    return path


def assert_same_values(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same column names in the same order, same missing cells, same numbers and texts."""
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    for name in expected.columns:
        want, have = expected[name].reset_index(drop=True), got[name].reset_index(drop=True)
        assert have.isna().tolist() == want.isna().tolist(), name
        present = want.notna()
        if pd.api.types.is_numeric_dtype(want.dropna().infer_objects()) and present.any():
            assert pd.api.types.is_numeric_dtype(have[present]), name
            np.testing.assert_allclose(have[present].astype(float), want[present].astype(float), rtol=1e-12)
        else:
            assert have[present].tolist() == want[present].tolist(), name


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=frames(), sep=st.sampled_from([",", ";", "\t", "|"]), bom=st.booleans(), crlf=st.booleans())
def test_csv_round_trip_any_delimiter_bom_and_line_ending(frame, sep, bom, crlf):
    with tempfile.TemporaryDirectory() as folder:
        path = write_csv(frame, Path(folder) / "export.csv", sep, bom, crlf)
        assert_same_values(read_table(path), frame)


@settings(max_examples=40, deadline=None)
@given(frame=frames(), sep=st.sampled_from([",", ";", "\t", "|"]), chunk_rows=st.integers(1, 5))
def test_csv_chunks_concatenate_to_the_whole_table(frame, sep, chunk_rows):
    with tempfile.TemporaryDirectory() as folder:
        path = write_csv(frame, Path(folder) / "log.csv", sep)
        chunks = list(iter_table(path, chunk_rows=chunk_rows))
        assert len(chunks) == math.ceil(len(frame) / chunk_rows)
        assert all(len(c) <= chunk_rows for c in chunks)
        assert_same_values(pd.concat(chunks, ignore_index=True), read_table(path))


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_quoted_cells_holding_the_delimiter(tmp_path, sep):
    frame = pd.DataFrame({"Operator": ["Smith, J.", "Doe; K.", "Roe | L.", "Poe\tM."] * 3,
                          "Torque [Nm]": [40.5, 41.0, 39.25, 42.0] * 3})
    assert_same_values(read_table(write_csv(frame, tmp_path / "shift.csv", sep)), frame)


def test_parquet_round_trip_keeps_types(tmp_path):
    frame = pd.DataFrame({
        "Torque [Nm]": [40.5, np.nan, 39.25],
        "Type": ["L", None, "H"],
        "count": np.array([1, 2, 3], dtype=np.int64),
        "stamp": pd.to_datetime(["2024-01-01 06:00", "2024-01-01 14:00", "2024-01-01 22:00"]),
        "ok": [True, False, True],
    })
    frame.to_parquet(tmp_path / "log.parquet", index=False)
    pd.testing.assert_frame_equal(read_table(tmp_path / "log.parquet"), frame)
    # recognised by its magic bytes whatever the extension
    (tmp_path / "log.bin").write_bytes((tmp_path / "log.parquet").read_bytes())
    pd.testing.assert_frame_equal(read_table(tmp_path / "log.bin"), frame)


def test_parquet_chunks_concatenate_to_the_whole_table(tmp_path):
    frame = pd.DataFrame({"x": np.arange(23, dtype=float), "y": [f"u{i}" for i in range(23)]})
    frame.to_parquet(tmp_path / "log.parquet", index=False, row_group_size=10)
    chunks = list(iter_table(tmp_path / "log.parquet", chunk_rows=4))
    assert max(len(c) for c in chunks) <= 4
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), frame)


def test_decimal_comma_with_semicolons(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffTemperatur [°C];Typ;Drehmoment\r\n21,5;A;40\r\n-3,25;B;41,5\r\n0,125;A;\r\n".encode())
    frame = read_table(path)
    assert list(frame.columns) == ["Temperatur [°C]", "Typ", "Drehmoment"]
    np.testing.assert_array_equal(frame["Temperatur [°C]"].to_numpy(), [21.5, -3.25, 0.125])
    np.testing.assert_array_equal(frame["Drehmoment"].to_numpy(), [40.0, 41.5, np.nan])
    assert frame["Typ"].tolist() == ["A", "B", "A"]


def test_windows_1252_file_is_read_with_a_warning(tmp_path):
    path = tmp_path / "legacy.csv"
    path.write_bytes("Temperatur °C,Bemerkung\n21.5,Öl nachgefüllt\n22.0,ok\n".encode("cp1252"))
    with pytest.warns(ShopfloorWarning, match="not UTF-8"):
        frame = read_table(path)
    assert list(frame.columns) == ["Temperatur °C", "Bemerkung"]
    assert frame["Bemerkung"].tolist() == ["Öl nachgefüllt", "ok"]


def test_header_names_are_stripped(tmp_path):
    path = tmp_path / "padded.csv"
    path.write_text(" Torque [Nm] , Type \n40,L\n41,M\n")
    assert list(read_table(path).columns) == ["Torque [Nm]", "Type"]


@pytest.mark.parametrize("reader", [read_table, lambda p: list(iter_table(p))], ids=["read_table", "iter_table"])
@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty"),
    (b"\n\n  \n", "no header"),
    (b"Torque [Nm],Type,failure\n", "no data rows"),
    (b"\xef\xbb\xbfTorque [Nm];Type;failure\r\n", "no data rows"),
])
def test_files_without_data_are_refused(tmp_path, reader, content, reason):
    path = tmp_path / "nothing.csv"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=reason) as caught:
        reader(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("reader", [read_table, lambda p: list(iter_table(p))], ids=["read_table", "iter_table"])
def test_missing_file_and_folder_are_refused(tmp_path, reader):
    with pytest.raises(DataFileError, match="no such file"):
        reader(tmp_path / "absent.csv")
    with pytest.raises(DataFileError, match="is a folder"):
        reader(tmp_path)


@pytest.mark.parametrize("reader", [read_table, lambda p: list(iter_table(p))], ids=["read_table", "iter_table"])
@pytest.mark.parametrize("header", ["Torque,Type,Torque", "Torque;Type;Torque ", "Type,Torque,Torque"])
def test_duplicate_header_names_are_refused(tmp_path, reader, header):
    sep = ";" if ";" in header else ","
    path = tmp_path / "twice.csv"
    path.write_text(f"{header}\n" + "\n".join(sep.join(["1", "L", "2"]) for _ in range(3)) + "\n")
    with pytest.raises(DataFileError, match="'Torque' appears twice"):
        reader(path)


def test_table_writer_writes_csv_and_parquet(tmp_path):
    frame = pd.DataFrame({"UDI": [1, 2, 3], "failure probability": [0.1, 0.5, 0.9], "failure predicted": [0, 1, 1]})
    for name in ("out.csv", "out.parquet"):
        with TableWriter(tmp_path / name) as writer:
            writer.write(frame.iloc[:2])
            writer.write(frame.iloc[2:])
        pd.testing.assert_frame_equal(read_table(tmp_path / name), frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.parquet"]


@pytest.mark.parametrize("name", ["out.csv", "out.parquet"])
@pytest.mark.parametrize("existing", [False, True])
def test_table_writer_leaves_nothing_when_interrupted(tmp_path, name, existing):
    target = tmp_path / name
    if existing:
        target.write_bytes(b"yesterday's predictions\n")
    frame = pd.DataFrame({"x": np.arange(5.0)})
    with pytest.raises(RuntimeError, match="sensor feed lost"), TableWriter(target) as writer:
        writer.write(frame)
        writer.write(frame)
        raise RuntimeError("sensor feed lost")
    if existing:
        assert target.read_bytes() == b"yesterday's predictions\n"
        assert [p.name for p in tmp_path.iterdir()] == [name]
    else:
        assert list(tmp_path.iterdir()) == []


def test_table_writer_removes_what_a_killed_writer_left_and_keeps_a_live_one(tmp_path):
    """A fixed temporary name (`.NAME.PID.tmp`) was never cleaned up after a kill; now the next writer of the same
    file removes a dead process's temporary, and leaves alone the one a running process is still writing."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead, running = child.pid, os.getppid()
    (tmp_path / f".out.csv.tmp-{dead}-1").write_text("x\n1\n")
    (tmp_path / f".out.csv.tmp-{running}-1").write_text("x\n2\n")
    write_table(pd.DataFrame({"x": [3]}), tmp_path / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".out.csv.tmp-{running}-1", "out.csv"]
    assert read_table(tmp_path / "out.csv")["x"].tolist() == [3]


def test_write_table_refuses_unknown_extension_and_missing_folder(tmp_path):
    frame = pd.DataFrame({"x": [1]})
    with pytest.raises(DataFileError, match=r"\.csv or \.parquet"):
        write_table(frame, tmp_path / "out.xlsx")
    with pytest.raises(DataFileError, match="does not exist"):
        write_table(frame, tmp_path / "no-such-folder" / "out.csv")
    assert list(tmp_path.iterdir()) == []
