"""Integrated gradients: how much each input moved a prediction away from a typical row.

Attributions are in the units of the explained output (probability for classification,
target units for regression) and add up, per row, to prediction(row) - prediction(baseline),
the baseline being the training medians and most frequent categories. Numeric inputs are
interpolated in raw units; categories are interpolated in embedding space.

The network is piecewise linear with sharp bin edges, so a Riemann sum of the gradients
misses part of the change where the path crosses an edge. That remainder is measured
exactly (prediction minus baseline prediction, minus the sum) and shared among the inputs
in proportion to their |attribution|, so that every row adds up.

Explaining 7,000 rows took 46 s without a word: a progress bar now counts the rows (when a person
is watching), and the work runs on one torch thread, as training does: the many small backward
passes gain nothing from a second thread, and on a busy two-core machine they ran 7x slower with it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import torch

from shopfloor.tasks.tabular.network import TabularNet


def integrated_gradients(net: TabularNet, numbers: torch.Tensor, codes: torch.Tensor,
                         baseline_codes: torch.Tensor, output: torch.Tensor, steps: int = 32,
                         batch_rows: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Attributions [N, n_numeric] and [N, n_categorical] for output column `output[i]` of row i."""
    net.eval()
    numeric_parts, category_parts = [], []
    with one_thread(), rows_done(len(numbers), shown=len(numbers) > batch_rows) as advance:
        for start in range(0, len(numbers), batch_rows):
            stop = start + batch_rows
            a, b = _ig_batch(net, numbers[start:stop], codes[start:stop], baseline_codes, output[start:stop], steps)
            numeric_parts.append(a)
            category_parts.append(b)
            advance(len(a))
    return torch.cat(numeric_parts), torch.cat(category_parts)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread while the block runs (restored after)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def rows_done(total: int, shown: bool = True) -> Iterator[Callable[[int], None]]:
    """`advance(rows)` for a transient 'explaining rows' bar on stderr when a person watches; a no-op otherwise."""
    if not shown or not sys.stderr.isatty():
        yield lambda rows: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("explaining rows"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True) as bar:
        task = bar.add_task("explaining rows", total=total)
        yield lambda rows: bar.update(task, advance=rows)


def _ig_batch(net, numbers, codes, baseline_codes, output, steps):
    n, n_cat = codes.shape
    missing = torch.isnan(numbers)
    x = torch.where(missing, net.preprocess.fill, numbers)
    x0 = net.preprocess.fill.expand_as(x)
    with torch.no_grad():
        e = net.embed_categories(codes)  # [k, n, d*n_cat]
        e0 = net.embed_categories(baseline_codes.expand(n, n_cat))
    # Riemann midpoints along the straight path from the baseline to the row
    alphas = (torch.arange(steps, dtype=x.dtype) + 0.5) / steps
    grad_x = torch.zeros_like(x)
    grad_e = torch.zeros_like(e)
    rows = torch.arange(n)
    for alpha in alphas:
        xa = (x0 + alpha * (x - x0)).requires_grad_(True)
        ea = (e0 + alpha * (e - e0)).requires_grad_(True)
        out = net.squash(net.calibrate(net.from_embedded(net.embed_numbers(xa, missing), ea)))
        gx, ge = torch.autograd.grad(out[rows, output].sum(), [xa, ea])
        grad_x += gx
        grad_e += ge
    numeric = grad_x / steps * (x - x0)
    per_dim = (grad_e / steps * (e - e0))  # [k, n, d*n_cat]
    categorical = per_dim.view(per_dim.shape[0], n, n_cat, -1).sum(dim=(0, 3)) if n_cat else torch.zeros(n, 0)
    with torch.no_grad():
        def output_at(xs, es):
            return net.squash(net.calibrate(net.from_embedded(net.embed_numbers(xs, missing), es)))[rows, output]

        change = output_at(x, e) - output_at(x0, e0)
    attributions = share_remainder(torch.cat([numeric, categorical], dim=1).detach(), change)
    return attributions[:, :numeric.shape[1]], attributions[:, numeric.shape[1]:]


def share_remainder(attributions: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
    """Add what the Riemann sum missed, per row, in proportion to |attribution|: rows add up to `change`."""
    weight = attributions.abs()
    total = weight.sum(1, keepdim=True)
    share = torch.where(total > 0, weight / total.clamp(min=1e-12), torch.full_like(weight, 1 / max(weight.shape[1], 1)))
    return attributions + (change - attributions.sum(1))[:, None] * share


def path_attributions(fn, x: torch.Tensor, reference: torch.Tensor, steps: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrated gradients of `fn` (one number per row) for any input shape [N, ...].

    Returns attributions shaped like `x` that add up per row to fn(x) - fn(reference) (the
    Riemann remainder is shared in proportion to |attribution|, as above), and fn(reference).
    """
    grad = torch.zeros_like(x)
    for alpha in (torch.arange(steps, dtype=x.dtype) + 0.5) / steps:
        point = (reference + alpha * (x - reference)).requires_grad_(True)
        grad += torch.autograd.grad(fn(point).sum(), point)[0]
    attributions = (grad / steps * (x - reference)).detach()
    with torch.no_grad():
        at_reference = fn(reference)
        change = fn(x) - at_reference
    return share_remainder(attributions.reshape(len(x), -1), change).reshape(x.shape), at_reference
