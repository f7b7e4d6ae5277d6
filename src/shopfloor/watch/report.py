"""The drift page: one self-contained HTML file (no script, no network), a row per input and output with its
verdict, the distances and the data-quality findings, then the estimated (and measured) performance."""

from __future__ import annotations

from html import escape

COLOURS = {"ok": "#2e8b57", "watch": "#e8a317", "drift": "#c92a2a"}  # the dashboard's health page uses these too


def _number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _rows(results: list[dict]) -> str:
    rows = []
    for r in results:
        size = f"PSI {_number(r.get('psi'))}, W {_number(r.get('wasserstein_sd'))} sd" if r["kind"] == "numeric" \
            else f"JS {_number(r.get('js'))}" if r["kind"] == "category" else f"MMD {_number(r.get('mmd'))}"
        findings = "; ".join(f"{f['finding']}: {f['detail']}" for f in r["findings"]) or "-"
        rows.append(f"<tr><td>{escape(r['input'])}</td><td style='color:{COLOURS[r['verdict']]}'><b>{r['verdict']}</b></td>"
                    f"<td>{size}</td><td>{_number(r.get('p_value'), 2)}</td><td>{r['readings']}</td>"
                    f"<td>{escape(findings)}</td></tr>")
    return "\n".join(rows)


def drift_page(report: dict, model: str, data: str) -> str:
    """The page's HTML for a `compare.compare_view` report of `data` against `model`'s profile."""
    head = "<tr><th>input</th><th>verdict</th><th>size</th><th>p-value</th><th>readings</th><th>findings</th></tr>"
    parts = [f"<h1>Drift: {escape(data)}</h1>",
             f"<p>Model {escape(model)}, {report['readings']} readings. Overall verdict: "
             f"<b style='color:{COLOURS[report['verdict']]}'>{report['verdict']}</b>. Drifting: "
             f"{escape(', '.join(report['drifting']) or 'none')}; to watch: {escape(', '.join(report['watch']) or 'none')}.</p>",
             f"<h2>Inputs</h2><table>{head}{_rows(report['inputs'])}</table>",
             f"<h2>Outputs</h2><table>{head}{_rows(report['outputs'])}</table>"]
    if "embedding" in report:
        parts.append(f"<h2>Pooled features</h2><table>{head}{_rows([report['embedding']])}</table>")
    if "performance" in report:
        performance = report["performance"]
        columns = [k for k in ("estimated", "measured") if performance.get(k)]
        lines = "".join(f"<tr><td>{metric}</td>" + "".join(f"<td>{_number(performance[c][metric])}</td>" for c in columns)
                        + "</tr>" for metric in performance["estimated"])
        parts.append("<h2>Performance without labels (CBPE)</h2><p>Expected from the calibrated failure probabilities; "
                     "it holds while failures follow the inputs as in training.</p>"
                     f"<table><tr><th>metric</th>{''.join(f'<th>{c}</th>' for c in columns)}</tr>{lines}</table>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Drift: {escape(data)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
