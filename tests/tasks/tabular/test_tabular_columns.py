"""Columns the user names and columns the outputs keep: names as the header is read, time kept in results."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import failure_table

from shopfloor import TabularModel
from shopfloor.crossval import fold_indices
from shopfloor.data.runs import read_runs
from shopfloor.data.tables import read_table
from shopfloor.errors import BadColumn, ColumnMissing, ShopfloorWarning
from shopfloor.tasks.tabular.schema import infer_schema, numeric_column

TINY = dict(bags=2, members=1, hidden=8, max_epochs=2, progress=False)


def excel_export(tmp_path, rows: int = 80):
    """A failure log whose header has the spaces Excel exports leave around names, and a time column."""
    frame = failure_table(rows, seed=0)
    frame.insert(1, "time", pd.date_range("2018-01-01", periods=rows, freq="h").strftime("%d-%m-%Y %H:%M"))
    path = tmp_path / "export.csv"
    frame.rename(columns={"failure": "failure ", "Torque [Nm]": " Torque [Nm]", "Type": "Type "}).to_csv(path, index=False)
    return frame, path


def test_names_copied_from_the_header_with_their_spaces_find_the_columns(tmp_path):
    """Issue 13.3: the reader strips 'failure ' to 'failure'; the names the user gives are stripped alike."""
    _, path = excel_export(tmp_path)
    assert "failure" in read_table(path).columns
    model = TabularModel("failure ", drop=["Type "], ids=[" UDI"], **TINY).fit(path)
    assert model.targets == ["failure"] and "Type" not in model.schema_.features and "UDI" in model.schema_.ids
    assert "failure probability" in model.predict(path).columns
    # a DataFrame given in Python is read as a file would be: its names are stripped too
    frame = pd.read_csv(path)
    assert "failure " in frame.columns
    assert model.predict(frame)["failure probability"].equals(model.predict(path)["failure probability"])
    assert len(fold_indices(read_table(path), 2, time=" time", date_order="dayfirst")) == 2


def test_a_name_not_found_suggests_the_nearest_column(tmp_path):
    _, path = excel_export(tmp_path)
    with pytest.raises(ColumnMissing, match=r"target 'Torqe \[Nm\]' is not a column .*did you mean 'Torque \[Nm\]'\?"):
        TabularModel("Torqe [Nm]", **TINY).fit(path)
    with pytest.raises(ColumnMissing, match=r"--drop 'type': no such column .*did you mean 'Type'\?"):
        TabularModel("failure", drop=["type"], **TINY).fit(path)
    with pytest.raises(ColumnMissing, match=r"--id 'udi' is not a column .*did you mean 'UDI'\?"):
        infer_schema(read_table(path), ["failure"], ids=["udi"])
    with pytest.raises(ColumnMissing, match=r"'Time' is not a column .*did you mean 'time'\?"):
        fold_indices(read_table(path), 2, time="Time")
    runs = pd.DataFrame({"engine ": [1, 1, 2, 2], "cycle": [1, 2, 1, 2], "temperature": [1.0, 2.0, 3.0, 4.0]})
    assert read_runs(runs, unit=" engine", time="cycle ").unit == "engine"
    with pytest.raises(ColumnMissing, match=r"the time column 'cycles' .*did you mean 'cycle'\?"):
        read_runs(runs, unit="engine", time="cycles")


def test_predictions_and_explanations_keep_the_time_column(tmp_path):
    """Issue 13.6: results join back to the rows by id and time, not only by row order."""
    frame, path = excel_export(tmp_path)
    model = TabularModel("failure", **TINY).fit(path)
    assert model.schema_.dates == ["time"] and model.schema_.date_orders == {"time": "dayfirst"}
    shuffled = frame.drop(columns="failure").sample(frac=1, random_state=0)
    table = model.predict(shuffled)
    assert list(table.columns[:3]) == ["UDI", "Product ID", "time"]
    assert table["time"].tolist() == shuffled["time"].tolist()
    why = model.explain(shuffled.head(5))
    assert why["time"].tolist() == shuffled["time"].head(5).tolist()
    assert "time attribution" in why.columns  # the date's own share of the prediction, beside its value


def test_a_numeric_time_column_named_for_validation_is_kept_in_outputs():
    """Operating hours as the time: a number, a feature too, and the key results join back by."""
    frame = failure_table(120).assign(hours=np.arange(120) * 0.25)
    model = TabularModel("failure", time="hours", **TINY).fit(frame)
    assert model.split_.kind == "time" and "hours" in model.schema_.features
    table = model.predict(frame.drop(columns="failure").iloc[::-1])
    assert "hours" in table.columns and table["hours"].tolist() == frame["hours"].iloc[::-1].tolist()
    why = model.explain(frame.drop(columns="failure").head(4))
    assert why["hours"].tolist() == frame["hours"].head(4).tolist() and "hours attribution" in why.columns


def test_rul_predictions_and_explanations_keep_each_units_last_time(rul_model):
    test = rul_model.test
    last = test.groupby("engine")["cycle"].max()
    table = rul_model.model.predict(test)
    assert table["time"].tolist() == last.loc[table["unit"]].tolist()
    assert rul_model.model.explain(test)["time"].tolist() == table["time"].tolist()


def test_true_false_values_in_a_numeric_column_are_named_as_such():
    """Issue 14.12: not 'holds the text True' but what the column is and what to do."""
    with pytest.warns(ShopfloorWarning, match="'coolant on' is a true/false column .* true is read as 1 and false as 0"):
        values = numeric_column(pd.Series([True, False, True]), "coolant on")
    np.testing.assert_array_equal(values, [1, 0, 1])
    with pytest.raises(BadColumn, match=r"'coolant on' is numeric but row 3 holds the true/false value 'TRUE' .*as 1/0"):
        numeric_column(pd.Series(["1", "0", "TRUE", "0.5"]), "coolant on")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(numeric_column(pd.Series([1, 0, 1]), "coolant on"), [1, 0, 1])
