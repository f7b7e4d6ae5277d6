"""`shopfloor robustness`: the model's metric as its inputs are perturbed (noise, stuck and missing sensors,
image changes, adversarial attacks), as JSON and an optional report page. The estimator gives its view of the
data through the contract (`robustness_probe`); this command never asks which task it is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopfloor.cli.app import DataOpt, ModelOpt, app, friendly, json_safe, refuse_output_over_input, stderr, write_json
from shopfloor.cli.use import LABEL_TRUTH_HELP, one_truth
from shopfloor.display import plain


@app.command()
@friendly
def robustness(model: ModelOpt, data: DataOpt,
               json_out: Annotated[Path, typer.Option("--json", help="Write the curves as JSON.")],
               report: Annotated[Path | None, typer.Option("--report", help="Also write an HTML page of the curves.")] = None,
               rul: Annotated[Path | None, typer.Option(
                   "--rul", help="RUL models: true RUL per test unit (else the data are runs to failure).")] = None,
               label: Annotated[str | None, typer.Option("--label", help=LABEL_TRUTH_HELP)] = None):
    """The metric as a function of perturbation strength: noise, stuck or missing sensors, blur, brightness,
    JPEG, rotation, FGSM and PGD; names the inputs the model leans on most."""
    import shopfloor
    from shopfloor.robustness.curves import robustness_curves

    refuse_output_over_input(json_out, "--json", data=data, rul=rul)
    refuse_output_over_input(report, "--report", data=data, rul=rul)
    truth = one_truth(rul, label)
    from shopfloor.errors import DataFileError

    for path in (json_out, report):
        if path is not None and not path.parent.is_dir():
            raise DataFileError(f"{path}: the folder {path.parent} does not exist")
    estimator = shopfloor.load(model)
    found = json_safe(robustness_curves(estimator, data, truth))
    if report is not None:
        from shopfloor.robustness.page import write_robustness_page

        write_robustness_page(report, found, model.name, str(data))
    write_json(json_out, found)
    console = stderr()
    for curve in found["curves"]:
        points = ", ".join(f"{s:g}: {m:.3f}" for s, m in curve["points"])
        console.print(plain(f"{curve['name']} ({curve['strength']}) -> {found['metric']} {points}"))
    if found.get("leans_on"):
        console.print(plain(f"leans most on: {', '.join(found['leans_on'])}"))
    console.print(f"[green]wrote[/] {plain(json_out)}" + (f" and {plain(report)}" if report is not None else "")
                  + f" ({found['seconds']:.0f} s)")
