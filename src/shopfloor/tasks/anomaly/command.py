"""`shopfloor train anomaly`: good-only anomaly detection from a folder of good parts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopfloor.cli.app import friendly, on_devices, stderr, train_app
from shopfloor.display import metrics_table, plain


@train_app.command("anomaly")
@friendly
@on_devices(trains=True)
def train_anomaly(
    data: Annotated[Path, typer.Option("--data", help="Folder in the MVTec layout; only DIR/train/good is learned.")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    validation: Annotated[Path | None, typer.Option("--validation", help="MVTec-layout folder whose test/ images "
                                                    "(good and defective) choose an F1-optimal threshold.")] = None,
    false_alarm_rate: Annotated[float, typer.Option("--false-alarm-rate", help="Without --validation: share of good "
                                                    "parts the threshold may flag.")] = 0.05,
    image_size: Annotated[int, typer.Option("--image-size", help="Pixels a side the network sees.")] = 256,
    tile: Annotated[int | None, typer.Option("--tile", help="Cut large images into tiles of this many pixels "
                                             "(native resolution) instead of shrinking them.")] = None,
    keep_aspect: Annotated[bool, typer.Option("--keep-aspect/--squash", help="Scale images to --image-size across "
                                              "their shorter side, in tiles along the longer (default), or squash "
                                              "every image into a square as models saved before this option.")] = True,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
):
    """Train an anomaly detector on good images only: a score and a heatmap per image."""
    from shopfloor.artifacts import check_destination
    from shopfloor.tasks.anomaly.model import AnomalyModel

    check_destination(out)
    model = AnomalyModel(image_size=image_size, tile=tile, keep_aspect=keep_aspect, false_alarm_rate=false_alarm_rate,
                         seed=seed, progress=not quiet)
    model.fit(data, validation=validation)
    model.save(out)
    console = stderr()
    if model.validation_metrics_:
        console.print(metrics_table("validation (--validation images)", model.validation_metrics_))
    console.print(f"[green]saved[/] {plain(out)}  ({model.fingerprint_['good_images']} good images; threshold "
                  f"{float(model.net_.threshold):.4g}: {plain(model.threshold_rule_)}; {model.train_seconds_:.1f} s)")
