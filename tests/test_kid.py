"""KID: the unbiased MMD² estimator against a brute-force sum, its expectation (0 for equal distributions,
the same at every sample count), and the subset protocol."""
import itertools

import numpy as np
import pytest

from segma_bench.evaluation.kid import kernel_inception_distance, mmd2_unbiased


def brute_force_mmd2(x, y):
    """Bińkowski et al.'s unbiased estimator written as explicit sums over index pairs."""
    def k(a, b):
        return (np.dot(a, b) / len(a) + 1) ** 3
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_unbiased_mmd2_equals_the_brute_force_sums():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 4)), rng.normal(0.5, 1.2, size=(9, 4))  # different sizes on purpose
    assert mmd2_unbiased(x, y) == pytest.approx(brute_force_mmd2(x, y), rel=1e-12)


def kid_draws(shift, size, repeats=400, dims=4):
    """(mean, standard error) of MMD²_u over independent draws of two sets of `size` Gaussian features."""
    rng = np.random.default_rng(size)
    values = [mmd2_unbiased(rng.normal(size=(size, dims)), rng.normal(shift, 1, size=(size, dims)))
              for _ in range(repeats)]
    return np.mean(values), np.std(values) / np.sqrt(repeats)


def test_expectation_is_zero_for_one_distribution_and_does_not_depend_on_the_sample_count():
    # Equal distributions: the mean is 0 within 3 standard errors (the biased V-statistic gives about 2.1
    # at 10 samples and 0.33 at 60, tens of standard errors away).
    for size in (10, 60):
        mean, error = kid_draws(0.0, size)
        assert abs(mean) < 3 * error
    # Different distributions: the same expectation at 10 and at 60 samples per set (the biased
    # statistic: 3.7 against 1.7).
    (small, small_error), (large, large_error) = kid_draws(0.5, 10), kid_draws(0.5, 60)
    assert large > 10 * large_error and abs(small - large) < 3 * np.hypot(small_error, large_error)


def test_subsets_are_seeded_and_cover_small_sets_whole():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 3)), rng.normal(1, 1, size=(40, 3))
    first = kernel_inception_distance(a, b, num_subsets=5, subset_size=30, seed=3)
    assert first == kernel_inception_distance(a, b, num_subsets=5, subset_size=30, seed=3)
    assert first["kid_std"] > 0 and first["subset_size"] == [30, 30]
    whole = kernel_inception_distance(a, b, num_subsets=3, subset_size=1000)
    assert whole["subset_size"] == [50, 40] and whole["kid"] == pytest.approx(mmd2_unbiased(a, b))
    assert whole["kid_std"] == pytest.approx(0, abs=1e-12)  # every subset is the whole of both sets


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="expected"):
        mmd2_unbiased(np.zeros((5, 3)), np.zeros((5, 4)))


def test_sets_no_larger_than_a_subset_are_one_subset_with_no_spread():
    """The harness's rule: 100 subsets of 1,000 only where a set holds more than 1,000 images; a smaller set
    is used whole, once, and its KID has no std (a spread of 100 identical draws would be a meaningless 0)."""
    from segma_bench.evaluation.kid import kid_plan
    assert kid_plan(10000, 10000) == (100, 1000, None) and kid_plan(1001, 5000) == (100, 1000, None)
    subsets, size, warning = kid_plan(1000, 1000)
    assert (subsets, size) == (1, 1000) and "no spread" in warning and "not comparable" not in warning
    subsets, size, warning = kid_plan(500, 2000)
    assert (subsets, size) == (1, 500) and "not comparable" in warning  # smaller subsets: a noisier estimate
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(30, 3)), rng.normal(1, 1, size=(30, 3))
    once = kernel_inception_distance(a, b, *kid_plan(30, 30)[:2])
    assert once["kid_std"] is None and once["kid"] == pytest.approx(mmd2_unbiased(a, b))
    repeated = kernel_inception_distance(a, b, num_subsets=100, subset_size=1000)
    assert repeated["kid"] == pytest.approx(once["kid"])  # the mean is the same: only the protocol changes
