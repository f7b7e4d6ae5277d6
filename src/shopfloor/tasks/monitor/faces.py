"""What a monitor model shows the world beyond its answers in Python, mixed into `MonitorModel`: the files
`shopfloor predict` writes (the rows and, beside them, the events), the ONNX file and its parity, the report
page, the service's window of readings and the stream worker's windows per machine. The export and the page
are in `export.py` and `report.py`, imported when they are asked for (onnx and matplotlib are not loaded
with a model)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

EVENTS_SUFFIX = "-events"  # PREDS.csv -> PREDS-events.csv beside it


def events_path(destination: str | os.PathLike) -> Path:
    """Where `predict_file` writes the events of a prediction file: beside it, '-events' before the suffix."""
    destination = Path(destination)
    return destination.with_name(destination.stem + EVENTS_SUFFIX + destination.suffix)


class MonitorFaces:
    def predict_file(self, source, destination, chunk_rows: int = 0) -> int:
        """The answer rows to `destination` and the events (`events`) to `events_path(destination)`, in the same
        format. Both are worked out before either is written: a bad file leaves neither."""
        from shopfloor.data.tables import write_table
        from shopfloor.errors import BadOption

        events_file = events_path(destination)
        if isinstance(source, (str, os.PathLike)) and Path(source).resolve() == events_file.resolve():
            raise BadOption(f"the events of {destination} go to {events_file}, which is the data file itself; "
                            "give --out another name")
        scored = self._scored(source)  # read and scored once for both tables
        rows, events = self._answer_rows(*scored), self._events(*scored)
        write_table(rows, destination)
        write_table(events, events_file)
        return len(rows)

    def export_onnx(self, path, opset: int = 18):
        from shopfloor.tasks.monitor.export import export_onnx

        return export_onnx(self, path, opset)

    def onnx_parity(self, path, data) -> float:
        from shopfloor.tasks.monitor.export import check_parity

        return check_parity(self, path, data)

    def write_report(self, path, data=None, truth=None):
        from shopfloor.tasks.monitor.report import write_report

        return write_report(self, path, data, truth)

    # -- the service: a window of readings per request --------------------------------------
    reads_windows: ClassVar[bool] = True  # the rows of one request are one window: never merged with another's

    def predict_records(self, rows: list[dict]) -> list[dict]:
        """The service's JSON predictions: the readings of a window (one or more machines) in, one answer per row."""
        table = self.predict(pd.DataFrame.from_records(rows))
        if pd.api.types.is_datetime64_any_dtype(table[self.time_column_]):  # a JSON answer holds text
            table[self.time_column_] = table[self.time_column_].dt.strftime("%Y-%m-%dT%H:%M:%S")
        return table.to_dict(orient="records")

    # -- the stream worker: windows of live readings per machine ------------------------------
    def in_fleet_units(self, values: np.ndarray, machines) -> np.ndarray:
        """Readings [rows, sensors] of the machines named row by row, in the units the network learnt: each machine
        moved from its own level where it reads a sensor unlike the fleet (`levels.py`); unchanged for a model
        without per-machine levels and for a machine it never saw."""
        if self.machine_levels_ is None:
            return values
        return self.machine_levels_.to_fleet(values, np.asarray(machines, dtype=object))[0].astype(values.dtype)

    def score_windows(self, readings: np.ndarray, newest: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores [machines, newest] (0..1) and contributions [machines, newest, sensors] of the `newest` last steps of
        each machine's readings [machines, steps, sensors] (`in_fleet_units`, `sensor_columns_` order, one per step).

        A step's answer depends on the `net_.reach()` steps before it: where a sequence holds them, its newest steps
        score as `predict` scores those rows of the whole history; a sequence that starts a machine's history
        scores as the first rows of a file do. One network pass for all the machines."""
        self._check_fitted()
        with torch.inference_mode():
            contributions, raw = self.net_(torch.as_tensor(readings, dtype=torch.float32).permute(0, 2, 1))
            score = self.net_.squash(raw[:, -newest:])
        return score.numpy(), contributions[:, :, -newest:].permute(0, 2, 1).numpy()
