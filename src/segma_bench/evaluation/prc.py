"""Precision and recall of generated images (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for
Assessing Generative Models"), on the same 2048-d Inception pool3 features as FID and KID.

Each feature set stands for a manifold: the union of balls around its points, each ball reaching to the point's
k-th nearest neighbour in its own set (k = 3, as in the paper and torch-fidelity). Then

    precision = fraction of generated points inside the real manifold   (quality: do samples look like data?)
    recall    = fraction of real points inside the generated manifold   (coverage: is the data's variety made?)

A point is inside when its distance to some centre is at most that centre's radius (`<=`, as torch-fidelity).
FID mixes both; a model that drops modes (few kinds of digits, one style per class) keeps its precision and
loses recall.

Distances are Euclidean, in float64, computed a block of `chunk_size` rows at a time: two sets of 10,000 need
a (chunk_size x 10,000) block in memory, never the 10,000 x 10,000 matrix, and the result does not depend on
the block size.

Read top-down: features -> radii -> precision, recall."""
import numpy as np

from segma_bench.core.errors import BadValueError

DEFAULT_K = 3
DEFAULT_CHUNK_SIZE = 1000  # rows per block: 1,000 x 10,000 float64 distances = 80 MB


def precision_recall(generated, real, k=DEFAULT_K, chunk_size=DEFAULT_CHUNK_SIZE, real_radii=None):
    """{"precision", "recall"} of `generated` (N, D) features against `real` (M, D) features.

    real_radii: the real set's k-NN radii when the caller already has them (several generated sets scored
    against one reference compute them once)."""
    generated, real = features_pair(generated, real, k)
    if real_radii is None:
        real_radii = knn_radii(real, k, chunk_size)
    generated_radii = knn_radii(generated, k, chunk_size)
    return {"precision": fraction_inside(generated, real, real_radii, chunk_size),
            "recall": fraction_inside(real, generated, generated_radii, chunk_size)}


def features_pair(a, b, k=DEFAULT_K):
    """Both sets as float64 (N, D) arrays with equal D and more than k rows each (else no k-th neighbour)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise BadValueError(f"expected (N, D) features with equal D, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) <= k:
        raise BadValueError(f"precision and recall with k = {k} need more than {k} points per set, "
                            f"got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise BadValueError("features contain NaN or infinite values")
    return a, b


# ---------------------------------------------------------------- radii

def knn_radii(features, k=DEFAULT_K, chunk_size=DEFAULT_CHUNK_SIZE):
    """Distance from each row to its k-th nearest neighbour among the other rows of the same set."""
    features = np.asarray(features, np.float64)
    check_k(k, len(features))
    squared_norms = (features ** 2).sum(1)
    radii = np.empty(len(features))
    for start in range(0, len(features), chunk_size):
        block = features[start:start + chunk_size]
        distances = pairwise_distances(block, features, squared_norms)
        rows = np.arange(len(block))
        distances[rows, start + rows] = 0.0  # a point's distance to itself, exactly (rounding can leave ~1e-7)
        # the (k+1)-th smallest distance of a row, its own 0 counted first (torch-fidelity's kthvalue(k + 1))
        radii[start:start + len(block)] = np.partition(distances, k, axis=1)[:, k]
    return radii


def check_k(k, count):
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise BadValueError(f"k must be a positive integer, got {k!r}")
    if count <= k:
        raise BadValueError(f"a k-NN radius with k = {k} needs more than {k} points, got {count}")


def pairwise_distances(a, b, b_squared_norms=None):
    """Euclidean distances (len(a), len(b)) in float64: sqrt(|a|² + |b|² - 2 a·b), clipped at 0."""
    if b_squared_norms is None:
        b_squared_norms = (b ** 2).sum(1)
    squared = (a ** 2).sum(1)[:, None] + b_squared_norms[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.clip(squared, 0.0, None, out=squared), out=squared)


# ---------------------------------------------------------------- precision, recall

def fraction_inside(points, centres, radii, chunk_size=DEFAULT_CHUNK_SIZE):
    """Fraction of `points` within radii[j] of at least one centres[j] (points inside the centres' manifold)."""
    points, centres = np.asarray(points, np.float64), np.asarray(centres, np.float64)
    radii = np.asarray(radii, np.float64)
    if radii.shape != (len(centres),):
        raise BadValueError(f"expected one radius per centre ({len(centres)}), got shape {radii.shape}")
    centre_norms = (centres ** 2).sum(1)
    inside = np.zeros(len(points), dtype=bool)
    for start in range(0, len(points), chunk_size):
        distances = pairwise_distances(points[start:start + chunk_size], centres, centre_norms)
        inside[start:start + chunk_size] = (distances <= radii[None, :]).any(axis=1)
    return float(inside.mean())


def prc_protocol(k=DEFAULT_K):
    """How precision and recall were computed, for the run JSONs."""
    return {"method": "k-NN manifolds (Kynkäänniemi et al. 2019), as torch-fidelity's prc",
            "k": k, "features": "the FID pass's 2048-d Inception pool3 features",
            "distance": "Euclidean, float64",
            "precision": "fraction of generated images inside the reference images' manifold",
            "recall": "fraction of reference images inside the generated images' manifold"}
