"""The anomaly detector's memory bank is a coreset: the good patches that cover all the others best, chosen
one by one (farthest-point sampling, as in PatchCore), so that a saved model has a fixed size whatever the
number of training images.
"""

from __future__ import annotations

import math

import torch


def greedy_coreset(points: torch.Tensor, size: int, generator: torch.Generator, dims: int = 128) -> torch.Tensor:
    """Indexes of `size` points chosen one by one, each the farthest from those already chosen
    (farthest-point sampling), measured on a random projection to `dims` dimensions for speed."""
    n = len(points)
    if n <= size:
        return torch.arange(n)
    with torch.inference_mode():
        projected = points @ (torch.randn(points.shape[1], dims, generator=generator) / math.sqrt(dims))
        norms = (projected * projected).sum(1)
        chosen = torch.empty(size, dtype=torch.long)
        chosen[0] = int(torch.randint(n, (1,), generator=generator))
        nearest = torch.full((n,), float("inf"))
        distance = torch.empty(n)
        for i in range(1, size):
            last = int(chosen[i - 1])
            torch.mv(projected, projected[last], out=distance)  # squared distance = |p|^2 + |c|^2 - 2 p.c
            distance.mul_(-2).add_(norms).add_(norms[last])
            torch.minimum(nearest, distance, out=nearest)
            chosen[i] = int(nearest.argmax())
    return chosen
