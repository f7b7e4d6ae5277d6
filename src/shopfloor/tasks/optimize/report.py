"""The report page of a process optimiser: recommendation, next experiments, partial dependence, Pareto front.

Built from the kit (`shopfloor.kits.page`: CSS, inline figures, tables, the atomic write), so the page
is one self-contained HTML file like every other shopfloor report.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from shopfloor.errors import NotFitted
from shopfloor.kits.page import (
    escape,
    figure_to_img,
    label,
    metrics_table,
    new_figure,
    number,
    page_header,
    plots,
    section,
    table,
    write_page,
)


def write_report(model, path: str | os.PathLike, data=None, truth=None, source: str | None = None, *,
                 result: dict | None = None) -> Path:
    """Write the page of a fitted ProcessOptimizer to `path` and return the path.

    The page is about the records the optimiser keeps, so `data` and `source` are not used; true values
    (`truth`) are refused. `result` is what `optimize()` returned, computed when absent (a caller that has
    it already saves a second search).
    """
    model.refuse_truth(truth)
    if not model.is_fitted:
        raise NotFitted("the report needs a fitted optimiser: call fit() first or load a saved one")
    result = result or model.optimize()
    goals = ", ".join(f"{o['goal']} {o['column']}" for o in result["objectives"])
    header = page_header("Process optimisation", {
        "Objectives": goals,
        "Constraints": "; ".join(result["constraints"]) or "none",
        "Fixed context": ", ".join(f"{k}={v}" for k, v in result["fixed"].items()) or "none",
        "Records": f"{result['records']:,}" + (f" ({result['records_modelled']:,} modelled)"
                                               if result["records_modelled"] < result["records"] else ""),
        "Trust radius": "none (whole range)" if result["trust_radius"] is None else f"{result['trust_radius']:g}",
    }, model.fit_info_["fit_seconds"], "leave-one-out predictions of the records")
    body = [header, _recommendation_section(result), _experiments_section(result),
            _partial_dependence_section(model, result)]
    if result.get("pareto_front"):
        body.append(_pareto_section(model, result))
    body.append(section("How well the models predict", '<p class="note">Each past run predicted by a model of all the '
                        "others (exact leave-one-out of the Gaussian process); coverage is the share inside the 90 % "
                        "range.</p>" + metrics_table(model.validation_metrics_)))
    return write_page(path, f"shopfloor report: optimise {goals}", "".join(body))


def _recommendation_section(result: dict) -> str:
    settings = table(["setting", "value"], [[escape(k), _cell(v)] for k, v in result["recommended"].items()], ["", "number"])
    predicted = table(["output", "predicted", "low (5 %)", "high (95 %)"],
                       [[escape(k), number(p["mean"]), number(p["low"]), number(p["high"])]
                        for k, p in result["predicted"].items()],
                       ["", "number", "number", "number"])
    inside = "inside" if result["inside_trust_region"] else "OUTSIDE"
    note = (f"Chance that every output constraint is met: {result['probability_feasible']:.0%} (required "
            f"{result['confidence']:.0%}). Distance to the nearest past run: {result['distance_to_data']:.3f} "
            f"(root-mean-square share of each setting's range; {inside} the trust region). The range is where a single "
            f"run at these settings should land 9 times in 10.")
    return section("Recommended settings", f'<p class="note">{escape(note)}</p>{plots([settings, predicted])}')


def _experiments_section(result: dict) -> str:
    names = list(result["recommended"])
    rows = [[str(i), *(_cell(e[n]) for n in names)] for i, e in enumerate(result["experiments"], 1)]
    text = ('<p class="note">The next runs that would teach the most about where the optimum lies (expected improvement '
            "under the constraints, each pick spread away from the others). Run them and add the results to the records.</p>")
    return section("Next experiments", text + table(["#", *names], rows, ["number"] * (len(names) + 1)))


def _partial_dependence_section(model, result: dict) -> str:
    images = []
    recorded = model.space_.decode(model.records_)
    for setting in model.space_.settings:
        curve = model.partial_dependence(setting.name)
        for column in model.outputs_:
            fig, ax = new_figure(3.6, 2.8)
            if setting.is_choice:
                ax.bar([str(v) for v in curve["value"]], curve[column], color="#486581")
            else:
                ax.plot(curve["value"], curve[column], color="#243b53")
                ax.axvspan(float(recorded[setting.name].min()), float(recorded[setting.name].max()), color="#d9e2ec", alpha=0.6,
                           label="range of past runs")
                ax.axvline(float(result["recommended"][setting.name]), color="#d64545", linestyle="--", label="recommended")
                ax.legend(fontsize=7, loc="best")
            for constraint in model.output_constraints:
                if constraint.bound is not None and constraint.bound[0] == column:
                    ax.axhline(constraint.bound[2], color="#9f580a", linestyle=":", linewidth=1)
            ax.set_xlabel(label(setting.name))
            ax.set_ylabel(label(column))
            images.append(figure_to_img(fig, f"{column} against {setting.name}"))
    text = ('<p class="note">How each output moves with one setting on average, the other settings as in past runs '
            "(partial dependence of the models' mean). Dotted: a constraint's limit.</p>")
    return section("Partial dependence", text + plots(images))


def _pareto_section(model, result: dict) -> str:
    (first, first_up), (second, second_up) = [(o["column"], o["goal"] == "maximize") for o in result["objectives"][:2]]
    front = result["pareto_front"]
    fig, ax = new_figure(5.0, 3.8)
    gp_first, gp_second = model.models_[first], model.models_[second]
    ax.scatter((gp_first.center + gp_first.scale * gp_first.targets).numpy(),
               (gp_second.center + gp_second.scale * gp_second.targets).numpy(), s=8, color="#9fb3c8", label="past runs")
    xs, ys = np.array([p[first] for p in front]), np.array([p[second] for p in front])
    order = np.argsort(xs)
    ax.plot(xs[order], ys[order], "o-", color="#243b53", markersize=3, label="Pareto front (predicted)")
    ax.scatter([result["predicted"][first]["mean"]], [result["predicted"][second]["mean"]], marker="*", s=160,
               color="#d64545", zorder=5, label="recommended (balanced)")
    ax.set_xlabel(label(f"{first} ({'max' if first_up else 'min'})"))
    ax.set_ylabel(label(f"{second} ({'max' if second_up else 'min'})"))
    ax.legend(fontsize=7)
    names = list(front[0])
    rows = [[_cell(p[n]) for n in names] for p in front]
    text = ('<p class="note">Settings no other allowed setting beats on every objective at once (predicted means, '
            "constraints met with the required confidence, inside the trust region).</p>")
    return section("Pareto front", text + plots([figure_to_img(fig, f"{first} against {second}")], wide=True)
                   + table(names, rows, ["number"] * len(names)))


def _cell(value) -> str:
    return number(value) if isinstance(value, float) else escape(value)
