"""What a monitor model shows the world beyond its answers in Python, mixed into `MonitorModel`: the files
`shopfloor predict` writes (the rows and, beside them, the events), the ONNX file and its parity, the report
page. The work is in `export.py` and `report.py`, imported when it is asked for (onnx and matplotlib are
not loaded with a model)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

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
        rows = self.predict(source)
        with warnings.catch_warnings():  # the file is read again: its warnings were given once already
            warnings.simplefilter("ignore")
            events = self.events(source)
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
