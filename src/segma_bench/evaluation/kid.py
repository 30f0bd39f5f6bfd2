"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs"), on the same 2048-d
Inception pool features as FID.

KID is the squared maximum mean discrepancy between the two feature distributions under the polynomial
kernel k(x, y) = (x·y / d + 1)^3 (d = feature dimension), estimated without bias:

    MMD²_u = sum_{i≠j} k(x_i, x_j) / (m(m-1)) + sum_{i≠j} k(y_i, y_j) / (n(n-1)) - 2 sum_{i,j} k(x_i, y_j) / (mn)

Because the estimator is unbiased its expectation does not depend on the number of images, so KIDs from
2,000 and from 10,000 images estimate the same quantity (FID's expectation grows as the count falls). It can
be slightly negative when the distributions are equal.

Protocol (as the authors' code and torch-fidelity): `num_subsets` times, draw `subset_size` rows without
replacement from each set (a seeded numpy generator), compute MMD²_u on the pair; report the mean and the
standard deviation (ddof=1) over subsets. With 10,000 images: 100 subsets of 1,000. A set smaller than
`subset_size` uses all its rows in every subset (then the subsets differ only in the other set)."""
import numpy as np

from segma_bench.core.errors import BadValueError

DEFAULT_SUBSETS = 100
DEFAULT_SUBSET_SIZE = 1000
DEFAULT_SEED = 0


def polynomial_kernel(x, y):
    """(x·y / d + 1)^3 for every pair of rows, float64."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y):
    """Unbiased squared MMD between feature sets x (m, d) and y (n, d) under the polynomial kernel."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise BadValueError(f"expected (N, D) features with N >= 2 and equal D, got {x.shape} and {y.shape}")
    m, n = len(x), len(y)
    k_xx, k_yy = polynomial_kernel(x, x), polynomial_kernel(y, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * polynomial_kernel(x, y).mean())


def kernel_inception_distance(features_a, features_b, num_subsets=DEFAULT_SUBSETS, subset_size=DEFAULT_SUBSET_SIZE,
                              seed=DEFAULT_SEED):
    """{"kid": mean MMD²_u over subsets, "kid_std": its std over subsets (ddof=1), and the protocol}."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    generator = np.random.default_rng(seed)
    size_a, size_b = min(subset_size, len(a)), min(subset_size, len(b))
    values = []
    for _ in range(num_subsets):
        rows_a = generator.choice(len(a), size_a, replace=False)
        rows_b = generator.choice(len(b), size_b, replace=False)
        values.append(mmd2_unbiased(a[rows_a], b[rows_b]))
    values = np.array(values)
    return {"kid": float(values.mean()), "kid_std": float(values.std(ddof=1)) if num_subsets > 1 else None,
            "subsets": num_subsets, "subset_size": [size_a, size_b]}


MIN_IMAGES = 2  # per set: the unbiased estimator's sums over pairs i != j need two rows


def kid_plan(count_a, count_b, num_subsets=DEFAULT_SUBSETS, subset_size=DEFAULT_SUBSET_SIZE):
    """(subsets, subset size, warning or None): how KID is drawn for sets of count_a and count_b images, by the
    harness (`evaluate`, `reproduce`) and by the `kid` command alike. The protocol's `num_subsets` subsets of
    `subset_size` rows of each set where both sets hold more than one subset; otherwise one subset of as many
    rows as the smaller set holds (100 draws of all of a set would all be the same pair, and their spread a
    meaningless 0), with a warning that says so. Fewer than MIN_IMAGES images in a set: refused."""
    smaller = min(count_a, count_b)
    if smaller < MIN_IMAGES:
        raise BadValueError(f"KID needs at least {MIN_IMAGES} images in each set, got {count_a} and {count_b}")
    if smaller > subset_size:
        return num_subsets, subset_size, None
    warning = (f"KID from one subset of {smaller} images of each set (the sets hold {count_a} and {count_b}), not the "
               f"protocol's {num_subsets} subsets of {subset_size}: no spread over subsets (kid_std: null)")
    if smaller < subset_size:
        warning += f", and not comparable with KIDs from subsets of {subset_size} (unbiased, but far noisier)"
    return 1, smaller, warning


def kid_protocol(num_subsets=DEFAULT_SUBSETS, subset_size=DEFAULT_SUBSET_SIZE, seed=DEFAULT_SEED):
    return {"kernel": "polynomial (x·y/d + 1)^3, d = 2048 Inception pool3 features",
            "estimator": "unbiased MMD² (Bińkowski et al. 2018), mean and std (ddof=1) over subsets",
            "subsets": num_subsets, "subset_size": subset_size, "subset_seed": seed}
