"""Column roles (numeric, categorical, date, id) and turning tables into model inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.errors import BadColumn, ColumnMissing
from shopfloor.tasks.tabular.schema import MISSING, UNKNOWN, TableSchema, category_codes, category_levels, infer_schema


def plant_log(rows: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "UDI": np.arange(1, rows + 1),
        "Product ID": [f"M{14860 + 7 * i}" for i in range(rows)],
        "Type": rng.choice(["L", "M", "H"], size=rows),
        "date": [f"{1 + i % 12}/{1 + i % 28}/2015" for i in range(rows)],
        "Torque [Nm]": rng.normal(40, 10, rows).round(1),
        "Tool wear [min]": rng.integers(0, 250, rows),
        "Machine failure": rng.integers(0, 2, rows),
    })


def test_roles_are_inferred():
    schema = infer_schema(plant_log(), targets=["Machine failure"])
    assert schema.ids == ["UDI", "Product ID"]  # a row counter and unique serial strings
    assert schema.numeric == ["Torque [Nm]", "Tool wear [min]"]
    assert schema.dates == ["date"]
    assert schema.categorical == {"Type": ["H", "L", "M"]}
    assert schema.features == ["Torque [Nm]", "Tool wear [min]", "date", "Type"]


def test_unique_numbers_without_an_id_name_are_sensors():
    frame = plant_log()
    frame["UDI"] = frame["UDI"] * 3  # unique integers, but no counter and no id-like name...
    frame = frame.rename(columns={"UDI": "Spindle load"})
    assert "Spindle load" in infer_schema(frame, targets=["Machine failure"]).numeric


def test_targets_dropped_and_declared_ids_are_not_features():
    schema = infer_schema(plant_log(), targets=["Machine failure"], drop=["Tool wear [min]"], ids=["Type"])
    assert "Machine failure" not in schema.features and "Tool wear [min]" not in schema.features
    assert schema.ids == ["UDI", "Product ID", "Type"]  # declared or inferred, in column order
    assert "Type" not in schema.categorical


def test_dates_become_days_since_1970():
    schema = infer_schema(plant_log(), targets=["Machine failure"])
    numbers, _ = schema.to_arrays(pd.DataFrame({
        "Torque [Nm]": [40.0], "Tool wear [min]": [3], "Type": ["L"], "date": ["1/2/2015"]}))
    expected = (pd.Timestamp("2015-01-02") - pd.Timestamp("1970-01-01")).days
    assert numbers[0, schema.numeric_inputs.index("date")] == expected


@pytest.mark.parametrize("position", [0, 17, 39])
def test_stray_text_in_a_numeric_column_names_column_and_row(position):
    frame = plant_log()
    torque = frame["Torque [Nm]"].astype(str)
    torque.iloc[position] = "sensor fault"
    frame["Torque [Nm]"] = torque
    with pytest.raises(BadColumn, match=rf"'Torque \[Nm\]'.* row {position + 1} .*'sensor fault'"):
        infer_schema(frame, targets=["Machine failure"])


def test_stray_text_at_predict_time_counts_rows_from_the_chunk_offset():
    schema = infer_schema(plant_log(), targets=["Machine failure"])
    new = plant_log(10).astype({"Torque [Nm]": str})
    new.loc[4, "Torque [Nm]"] = "#REF!"
    with pytest.raises(BadColumn, match=r"'Torque \[Nm\]'.* row 105 .*'#REF!'"):
        schema.to_arrays(new, row_offset=100)
    bad_date = plant_log(10)
    bad_date.loc[2, "date"] = "yesterday"
    with pytest.raises(BadColumn, match=r"'date'.* row 3 .*'yesterday'"):
        schema.to_arrays(bad_date)


def test_numbers_written_as_text_are_read_as_numbers():
    frame = plant_log().astype({"Torque [Nm]": str})
    frame.loc[3, "Torque [Nm]"] = " 41.5 "
    frame.loc[5, "Torque [Nm]"] = ""
    schema = infer_schema(frame, targets=["Machine failure"])
    numbers, _ = schema.to_arrays(frame)
    column = numbers[:, schema.numeric.index("Torque [Nm]")]
    assert column[3] == np.float32(41.5) and np.isnan(column[5])


def test_all_missing_column_is_refused_by_name():
    frame = plant_log()
    frame["Humidity [%]"] = np.nan
    with pytest.raises(BadColumn, match=r"'Humidity \[%\]' has no values"):
        infer_schema(frame, targets=["Machine failure"])
    infer_schema(frame, targets=["Machine failure"], drop=["Humidity [%]"])  # the way out the message names


def test_no_features_left_is_refused():
    with pytest.raises(BadColumn, match="no feature columns"):
        infer_schema(plant_log()[["UDI", "Product ID", "Machine failure"]], targets=["Machine failure"])


def test_category_codes_unseen_missing_and_whitespace():
    levels = category_levels(pd.Series(["L", "M", "M ", "H", " H", "L", "rare"]))
    assert levels == ["H", "L", "M"]  # stripped; 'rare' seen once shares the unknown code
    codes = category_codes(pd.Series(["L", " M ", "H", "X", None, "", "rare", np.nan]), levels)
    assert codes.tolist() == [3, 4, 2, UNKNOWN, MISSING, MISSING, UNKNOWN, MISSING]


@settings(max_examples=80, deadline=None)
@given(levels=st.lists(st.text("abcXYZ12 ", min_size=1, max_size=4).map(str.strip).filter(bool), unique=True),
       values=st.lists(st.none() | st.text("abcXYZ12 ", max_size=5), max_size=30))
def test_category_codes_property(levels, values):
    levels = sorted(levels)
    codes = category_codes(pd.Series(values, dtype=object), levels)
    for value, code in zip(values, codes, strict=True):
        if value is None or value.strip() == "":
            assert code == MISSING
        elif value.strip() in levels:
            assert code == levels.index(value.strip()) + 2
        else:
            assert code == UNKNOWN


def test_missing_columns_are_named():
    schema = infer_schema(plant_log(), targets=["Machine failure"])
    with pytest.raises(ColumnMissing, match=r"'Torque \[Nm\]', 'Type' are in the model's schema but not in new\.csv"):
        schema.check_columns(plant_log().drop(columns=["Torque [Nm]", "Type"]), "new.csv")


def test_column_order_and_extra_columns_do_not_matter():
    schema = infer_schema(plant_log(), targets=["Machine failure"])
    frame = plant_log()
    shuffled = frame[frame.columns[::-1]].assign(operator="anna")
    for a, b in zip(schema.to_arrays(frame), schema.to_arrays(shuffled), strict=True):
        np.testing.assert_array_equal(a, b)


def test_schema_json_round_trip():
    schema = infer_schema(plant_log(), targets=["Machine failure"])
    assert TableSchema.from_json(schema.to_json()) == schema
