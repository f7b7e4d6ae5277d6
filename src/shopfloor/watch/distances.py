"""How far new data is from the reference: the numbers behind each verdict.

Every function takes the reference as the profile stores it (bin edges and proportions, quantiles,
category frequencies), never raw training rows, so that a model folder holds no data.
"""

from __future__ import annotations

import numpy as np

SMOOTHING = 0.5  # a pseudo-count per bin: an empty bin gives a large, finite PSI rather than infinity


def bin_counts(edges: list[float], values: np.ndarray) -> np.ndarray:
    """Counts of `values` in the bins that `edges` cut (below the first edge, between edges, from the last up)."""
    return np.bincount(np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right"),
                       minlength=len(edges) + 1)


def smoothed(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    return (counts + SMOOTHING) / (counts.sum() + SMOOTHING * len(counts))


def psi(reference: np.ndarray, counts: np.ndarray) -> float:
    """Population stability index of new bin `counts` against the reference proportions (0: the same;
    0.1 is the usual 'watch' and 0.25 the usual 'act' level for large samples)."""
    current = smoothed(counts)
    reference = np.asarray(reference, dtype=np.float64)
    return float(np.sum((current - reference) * np.log(current / reference)))


def chi_squared_p(reference: np.ndarray, counts: np.ndarray) -> float:
    """P-value of the counts under the reference proportions (Pearson's chi-squared goodness of fit).

    It is what makes a verdict depend on the sample size: 100 readings may wander where 10,000 may not.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum()
    if n == 0 or len(counts) < 2:
        return 1.0
    from scipy import stats  # lazy: the stream and `shopfloor --help` import this package

    expected = n * np.asarray(reference, dtype=np.float64)
    statistic = float(np.sum((counts - expected) ** 2 / expected))
    return float(stats.chi2.sf(statistic, len(counts) - 1))


def mean_shift_p(mean: float, std: float, values: np.ndarray) -> float:
    """Two-sided p-value of the sample mean of `values` against the reference mean and spread (a z-test).

    The bins' chi-squared cannot see a shift smaller than a sensor's resolution (integer readings moved by 0.8
    stay in their bins); the mean can."""
    from scipy import stats

    if not std or len(values) < 2:
        return 1.0
    z = (float(np.mean(values)) - mean) / (std / np.sqrt(len(values)))
    return float(2 * stats.norm.sf(abs(z)))


def wasserstein(reference_quantiles: np.ndarray, values: np.ndarray) -> float:
    """Earth mover's distance, in the input's own units, between the reference (its stored quantiles) and
    `values`: the mean gap between the two quantile functions at the stored levels."""
    levels = np.linspace(0, 1, len(reference_quantiles))
    return float(np.mean(np.abs(np.quantile(values, levels) - np.asarray(reference_quantiles))))


def js_distance(reference: np.ndarray, counts: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2: 0 the same, 1 nothing in common) of category counts to the reference."""
    current, reference = smoothed(counts), np.asarray(reference, dtype=np.float64)
    middle = (current + reference) / 2
    divergence = 0.5 * np.sum(current * np.log2(current / middle)) + 0.5 * np.sum(reference * np.log2(reference / middle))
    return float(np.sqrt(max(divergence, 0.0)))


def mmd_test(reference: np.ndarray, current: np.ndarray, permutations: int = 200, seed: int = 0) -> tuple[float, float]:
    """Maximum mean discrepancy (Gaussian kernel, median-distance bandwidth) between two samples of embeddings,
    and its permutation p-value: the multivariate two-sample test for image and signal features."""
    reference, current = np.asarray(reference, np.float64), np.asarray(current, np.float64)
    pooled = np.concatenate([reference, current])
    squared = np.sum(pooled ** 2, 1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * pooled @ pooled.T, 0)
    bandwidth = float(np.median(distances[np.triu_indices(len(pooled), 1)])) or 1.0
    kernel = np.exp(-distances / bandwidth)
    n = len(reference)

    def statistic(order: np.ndarray) -> float:
        k = kernel[np.ix_(order, order)]
        a, b = k[:n, :n], k[n:, n:]
        m = len(order) - n
        return float((a.sum() - np.trace(a)) / (n * (n - 1)) + (b.sum() - np.trace(b)) / (m * (m - 1))
                     - 2 * k[:n, n:].mean())

    observed = statistic(np.arange(len(pooled)))
    rng = np.random.default_rng(seed)
    exceed = sum(statistic(rng.permutation(len(pooled))) >= observed for _ in range(permutations))
    return observed, (exceed + 1) / (permutations + 1)


def coarsened(edges: list[float], proportions: list[float], span: tuple[float, float],
              resolution: float) -> tuple[list[float], np.ndarray]:
    """The reference's bins with each edge dropped that lies closer than `resolution` to the edge kept before it
    (to the reference's minimum, for the first) or to its maximum, and the shares of the bins it cut added up.

    Bins narrower than what the quantity resolves split rounding noise: a confidence of 1 - 1e-8 on every
    held-out row has its deciles a few 1e-9 apart, so a shift of 1e-7 moves all of it from one bin to another
    (PSI in the tens, chi-squared p of 0). With `resolution` 0 the bins are the reference's own."""
    low, high = span
    kept, merged = [], [float(proportions[0])]
    for edge, share in zip(edges, proportions[1:], strict=True):
        if edge - (kept[-1] if kept else low) >= resolution and high - edge >= resolution:
            kept.append(float(edge))
            merged.append(float(share))
        else:
            merged[-1] += float(share)
    return kept, np.asarray(merged, dtype=np.float64)


TAIL_LEVEL = 0.01  # the outer percentiles: below the reference's 1st, above its 99th


def tail_shares(reference_quantiles: np.ndarray, values: np.ndarray, margin: float = 0.0) -> tuple[float, float]:
    """Shares of `values` below the reference's 1st and above its 99th percentile by more than `margin` (at most
    1 % each in the reference; less where readings tie on the percentile, as whole-number sensors do)."""
    quantiles = np.asarray(reference_quantiles, dtype=np.float64)
    position = round(TAIL_LEVEL * (len(quantiles) - 1))
    low, high = quantiles[position] - margin, quantiles[-1 - position] + margin
    return float(np.mean(values < low)), float(np.mean(values > high))


def tail_p(shares: tuple[float, float], readings: int, reference_readings: int | None = None) -> float:
    """P-value of the larger of the two tail counts under the reference's 1 % each side (doubled for the two sides):
    where a rescaled sensor shows first, since a gain moves the farthest readings most. A sensor that reads from
    zero (AI4I's tool wear) x1.1 moves its mean by 0.17 sd and its deciles a little, but puts about 6.6 % of
    readings above the old 99th percentile.

    With `reference_readings` (how many readings the percentiles were taken from) the test is Fisher's exact test
    of the two counts, since the reference's 1st percentile is itself a sample's: of a model's 283 held-out windows
    (CWRU's diagnose profile) about 3 lie beyond it, and 14 of 161 new windows beyond it is p 2.6e-9 against an exact
    1 % but 2e-4 against those 3 of 283. Without it (or for a large reference, where the two agree) an exact
    binomial test against 1 %."""
    from scipy import stats

    if readings < 1:
        return 1.0
    count = round(max(shares) * readings)
    if reference_readings:
        beyond = round(TAIL_LEVEL * reference_readings)
        table = [[count, readings - count], [beyond, reference_readings - beyond]]
        return float(min(1.0, 2 * stats.fisher_exact(table, alternative="greater")[1]))
    return float(min(1.0, 2 * stats.binom.sf(count - 1, readings, TAIL_LEVEL)))
