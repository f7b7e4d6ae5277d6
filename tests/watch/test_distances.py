"""The distances on samples whose answer is known."""

import numpy as np

from shopfloor.watch.distances import bin_counts, chi_squared_p, js_distance, mmd_test, psi, smoothed, wasserstein


def test_psi_is_near_zero_for_the_same_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=20_000)
    edges = np.quantile(reference, np.linspace(0.1, 0.9, 9))
    proportions = smoothed(bin_counts(edges, reference))
    same, shifted = rng.normal(size=5_000), rng.normal(0.5, 1, 5_000)
    assert psi(proportions, bin_counts(edges, same)) < 0.01
    assert 0.15 < psi(proportions, bin_counts(edges, shifted)) < 0.4
    assert chi_squared_p(proportions, bin_counts(edges, same)) > 1e-3
    assert chi_squared_p(proportions, bin_counts(edges, shifted)) < 1e-10


def test_wasserstein_of_a_shift_is_the_shift():
    rng = np.random.default_rng(1)
    quantiles = np.quantile(rng.normal(size=50_000), np.linspace(0, 1, 101))
    assert abs(wasserstein(quantiles, rng.normal(2.0, 1, 50_000)) - 2.0) < 0.1


def test_jensen_shannon_is_zero_for_the_same_mix_and_one_for_none_in_common():
    assert js_distance(smoothed([5000, 5000, 0]), np.array([5000, 5000, 0])) < 1e-3
    assert js_distance(smoothed([10000, 0, 0]), np.array([0, 0, 10000])) > 0.95


def test_mmd_tells_shifted_embeddings_from_resampled_ones():
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(150, 8))
    _, p_same = mmd_test(reference, rng.normal(size=(150, 8)), permutations=100)
    _, p_moved = mmd_test(reference, rng.normal(0.4, 1, size=(150, 8)), permutations=100)
    assert p_same > 0.05
    assert p_moved < 0.02


def test_the_tail_test_allows_for_a_small_reference_percentile():
    from shopfloor.watch.distances import tail_p

    # 14 of 161 beyond the 1st percentile of 283 held-out rows (CWRU's novelty) against about 3 of 283 there
    few, exact = tail_p((14 / 161, 0.0), 161, 283), tail_p((14 / 161, 0.0), 161)
    assert exact < 1e-8 and 1e-6 < few < 1e-3, (few, exact)
    # a training set of 7,000 rows: the fewest AI4I's tool wear x1.1 put above its 99th percentile (4.6 % of 500)
    # is still past the drift level, as against an exact 1 %
    assert tail_p((23 / 500, 0.0), 500) < tail_p((23 / 500, 0.0), 500, 7000) < 1e-6
    assert tail_p((0.01, 0.0), 500, 7000) > 0.1
