"""Spark (local[2]): scoring gives every row `shopfloor predict` gives, for a table, a RUL, a forecasting and an
image model;
one model per group into a registry; the DataFrame's missing columns named in one line."""

from __future__ import annotations

import os
import shutil
import warnings

import pandas as pd
import pytest
from conftest import failure_table
from typer.testing import CliRunner

from shopfloor.cli import app
from shopfloor.errors import ColumnMissing, ShopfloorWarning

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'shopfloor[spark]')")
if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
    pytest.skip("Spark needs Java 17 or newer and none was found", allow_module_level=True)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark():
    from shopfloor.spark import spark_session

    session = spark_session("local[2]", app_name="shopfloor-tests")
    yield session
    session.stop()


def cli_predictions(model, data, out) -> pd.DataFrame:
    result = CliRunner().invoke(app, ["predict", "--model", str(model), "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return pd.read_parquet(out) if str(out).endswith(".parquet") else pd.read_csv(out)


def same_rows(spark_rows: pd.DataFrame, cli_rows: pd.DataFrame, key: list[str]) -> None:
    """Every row, every column: text and integers exactly; floats to float32 rounding (a network's output for a
    row may differ in its last bits with the size of the batch it was computed in, here and between two
    `shopfloor predict` runs with different --chunk-rows)."""
    assert list(spark_rows.columns) == list(cli_rows.columns)
    left = spark_rows.sort_values(key).reset_index(drop=True)
    right = cli_rows.sort_values(key).reset_index(drop=True)
    floats = [c for c in left.columns if pd.api.types.is_float_dtype(right[c])]
    pd.testing.assert_frame_equal(left.drop(columns=floats), right.drop(columns=floats), check_dtype=False,
                                  check_exact=True)
    pd.testing.assert_frame_equal(left[floats], right[floats], check_dtype=False, rtol=1e-5, atol=1e-7)


def test_table_rows_score_as_shopfloor_predict_scores_them(spark, binary_model, tmp_path):
    from shopfloor import spark as on_spark

    data = tmp_path / "new.parquet"
    binary_model.new.to_parquet(data, index=False)
    frame = spark.read.parquet(str(data)).repartition(3)  # several batches, in another order
    scored = on_spark.predict(frame, binary_model.folder).toPandas()
    assert len(scored) == len(binary_model.new)
    same_rows(scored, cli_predictions(binary_model.folder, data, tmp_path / "cli.parquet"), ["UDI"])


def test_run_histories_score_per_unit_as_shopfloor_predict_scores_them(spark, rul_model, tmp_path):
    from shopfloor import spark as on_spark

    data = tmp_path / "runs.parquet"
    rul_model.test.to_parquet(data, index=False)
    scored = on_spark.predict(spark.read.parquet(str(data)).repartition(4), rul_model.folder).toPandas()
    cli = cli_predictions(rul_model.folder, data, tmp_path / "cli.parquet")
    assert len(scored) == rul_model.test["engine"].nunique()
    same_rows(scored, cli, ["unit"])
    import shopfloor

    assert shopfloor.load(rul_model.folder).group_column == "engine"  # what Spark grouped by


def test_series_forecast_per_series_as_shopfloor_predict_forecasts_them(spark, tmp_path):
    from tasks.forecast.forecast_series import FAST, plant_output

    import shopfloor
    from shopfloor import spark as on_spark
    from shopfloor.tasks.forecast.model import ForecastModel

    # a model trained two epochs on three short lines: forecasting equality needs no good model
    history = plant_output(steps=160, lines=3, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShopfloorWarning)
        model = ForecastModel(time="time", targets=["output"], series="line", **{**FAST, "max_epochs": 2}).fit(history)
    folder = model.save(tmp_path / "forecast-model")
    assert on_spark.scoring.scoring_plan(shopfloor.load(folder), None) == ("groups", "line")  # one group per series
    data = tmp_path / "history.parquet"
    history.to_parquet(data, index=False, coerce_timestamps="us")  # Spark reads no nanosecond stamps
    frame = spark.read.parquet(str(data)).repartition(3)  # the lines' rows spread over partitions, out of order
    scored = on_spark.predict(frame, folder).toPandas()
    cli = cli_predictions(folder, data, tmp_path / "cli.parquet")
    assert len(cli) == 3 * FAST["horizon"] and sorted(scored["line"].unique()) == ["L1", "L2", "L3"]
    same_rows(scored, cli, ["line", "time", "target"])


def test_images_score_as_shopfloor_predict_scores_them(spark, tmp_path):
    from shopfloor import spark as on_spark
    from shopfloor.tasks.defects.model import DefectModel
    from shopfloor.vision.surfaces import write_defect_classes

    # a model trained one epoch on a few small images: scoring equality needs no good model
    images = write_defect_classes(tmp_path / "classes", per_class=4, size=32, seed=0)
    model = DefectModel(backbone="scratch", image_size=32, max_epochs=1, progress=False).fit(images)
    folder = model.save(tmp_path / "defect-model")
    cli = cli_predictions(folder, images, tmp_path / "cli.csv")
    assert set(cli.columns) - {"heatmap"} == set(cli.columns[:-1])  # the CLI adds its overlays' file names
    cli = cli.drop(columns=["heatmap"])
    paths = spark.createDataFrame(pd.DataFrame({"path": cli["file"].astype(str)})).repartition(2)
    same_rows(on_spark.predict(paths, folder).toPandas(), cli, ["file"])
    binary = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(str(images))
    from_bytes = on_spark.predict(binary, folder).toPandas()  # executors need not see the files
    assert sorted(from_bytes["defect"]) == sorted(cli["defect"]) and len(from_bytes) == len(cli)


def test_a_dataframe_missing_the_model_columns_is_one_line_naming_them(spark, binary_model):
    from shopfloor import spark as on_spark

    frame = spark.createDataFrame(binary_model.new.drop(columns=["Torque [Nm]", "Type"]))
    with pytest.raises(ColumnMissing) as error:
        on_spark.predict(frame, binary_model.folder)
    message = str(error.value)
    assert "'Type'" in message and "'Torque [Nm]'" in message and "\n" not in message


def test_one_model_per_machine_into_the_registry_small_groups_skipped(spark, tmp_path):
    import shopfloor
    from shopfloor import spark as on_spark
    from shopfloor.registry import Registry

    parts = [failure_table(rows, seed=i).assign(machine=name)
             for i, (name, rows) in enumerate([("press-1", 300), ("press-2", 300), ("lathe-9", 8)])]
    frame = spark.createDataFrame(pd.concat(parts, ignore_index=True).drop(columns=["Product ID"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = on_spark.train_per_group(frame, "machine", "tabular",
                                           {"target": "failure", "drop": ["UDI"], "bags": 2, "members": 2,
                                            "max_epochs": 3}, tmp_path / "models", min_rows=50)
    assert summary.set_index("group")["status"].to_dict() == {"lathe-9": "skipped", "press-1": "trained",
                                                              "press-2": "trained"}
    shown = [str(w.message) for w in caught if issubclass(w.category, ShopfloorWarning)]
    assert shown == ["1 of 3 groups were not trained: lathe-9 (8 rows, fewer than 50)"]
    registry = Registry(tmp_path / "models")
    assert registry.names() == ["press-1", "press-2"]
    model = shopfloor.load(registry.path("press-1", 1))
    assert model.fingerprint_["rows"] == 300 and len(model.predict(parts[0])) == 300


def test_spark_commands_write_parquet_folders_and_refuse_missing_columns_in_one_line(spark, binary_model, tmp_path):
    data = tmp_path / "lake"
    data.mkdir()
    binary_model.new.iloc[:150].to_parquet(data / "part-0.parquet", index=False)
    binary_model.new.iloc[150:].to_parquet(data / "part-1.parquet", index=False)
    result = CliRunner().invoke(app, ["spark", "predict", "--model", str(binary_model.folder), "--data", str(data),
                                      "--out", str(tmp_path / "scored")])
    assert result.exit_code == 0, result.output
    assert f"({len(binary_model.new)} rows)" in result.output
    scored = pd.read_parquet(tmp_path / "scored")
    same_rows(scored, cli_predictions(binary_model.folder, data / "part-0.parquet", tmp_path / "a.parquet")
              .pipe(lambda a: pd.concat([a, cli_predictions(binary_model.folder, data / "part-1.parquet",
                                                             tmp_path / "b.parquet")])), ["UDI"])
    binary_model.new.drop(columns=["Type"]).to_parquet(tmp_path / "no-type.parquet", index=False)
    result = CliRunner().invoke(app, ["spark", "predict", "--model", str(binary_model.folder), "--data",
                                      str(tmp_path / "no-type.parquet"), "--out", str(tmp_path / "never")])
    assert result.exit_code == 2 and result.output.startswith("error: the Spark DataFrame lacks 'Type'")
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "never").exists()
    result = CliRunner().invoke(app, ["spark", "train", "--data", str(data), "--task", "tabular", "--group", "Type",
                                      "--models", str(tmp_path / "models"), "--set", "target=failure", "--set", "colour=red"])
    assert result.exit_code == 2 and "no parameter 'colour'" in result.output and len(result.output.strip().splitlines()) == 1


def test_a_diagnose_model_groups_a_long_table_by_its_runs_and_a_folder_model_not_at_all():
    from shopfloor.spark.scoring import scoring_plan
    from shopfloor.tasks.diagnose.model import DiagnoseModel

    assert scoring_plan(DiagnoseModel(time="t", run="test", machine="rig"), None) == ("groups", "test")
    assert scoring_plan(DiagnoseModel(time="t", machine="rig"), None) == ("groups", "rig")
    assert scoring_plan(DiagnoseModel(), None) == ("groups", None)  # a folder's recordings: one table, one group
