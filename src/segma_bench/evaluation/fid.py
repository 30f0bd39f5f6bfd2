"""Frechet Inception Distance: activations -> statistics -> distance, with cached reference statistics.

    extractor = FeatureExtractor(weights_path)              # once per process
    ref_features, ref_mu, ref_sigma = cached_reference(cache_dir, key, load_real_images, extractor)  # KID uses the features
    fid = frechet_distance(*activation_statistics(extractor(generated_images)), ref_mu, ref_sigma)
"""
import hashlib
import json
import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from segma_bench.core.devices import cuda_index
from segma_bench.core.errors import BadValueError
from segma_bench.core.storage import file_lock
from segma_bench.evaluation.inception import FeatureExtractor, FIDWeightsError  # noqa: F401 (re-exported for callers)

# Bump when anything that changes cached statistics changes without showing in the key.
CACHE_KEY_VERSION = 1
REQUIRED_KEY_FIELDS = ("dataset", "split", "num_samples", "preprocessing")


# ---------------------------------------------------------------- statistics and distance

def activation_statistics(features):
    """Mean and covariance (unbiased, as np.cov and pytorch-fid) of (N, D) features, in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise BadValueError(f"expected (N, D) features with N >= 2, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)), in float64.

    With S1 = F F^T (pivoted Cholesky, which accepts singular PSD matrices), F^T S2 F is symmetric
    PSD and has the nonzero eigenvalues of S1 S2, so tr(sqrt(S1 S2)) is the sum of the square
    roots of its eigenvalues (eigvalsh, clipped at 0). This stays real and finite for singular
    covariances (fewer samples than dimensions), where scipy's sqrtm(S1 S2), as used by
    pytorch-fid, can return large imaginary parts; it is also several times faster.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = _symmetric(sigma1), _symmetric(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise BadValueError(f"shapes do not match: mu {mu1.shape}, {mu2.shape}; sigma {sigma1.shape}, {sigma2.shape}")
    if not all(np.isfinite(a).all() for a in (mu1, mu2, sigma1, sigma2)):
        raise BadValueError("statistics contain NaN or infinite values")

    factor = _psd_factor(sigma1)
    eigenvalues = np.linalg.eigvalsh(_symmetric(factor.T @ sigma2 @ factor))
    trace_sqrt_product = np.sqrt(np.clip(eigenvalues, 0, None)).sum()

    diff = mu1 - mu2
    distance = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product
    # The exact value is >= 0; rounding can leave about -1e-12 for identical statistics.
    return max(float(distance), 0.0)


def _symmetric(matrix):
    matrix = np.atleast_2d(np.asarray(matrix, np.float64))
    return (matrix + matrix.T) / 2


def _psd_factor(matrix):
    """F of shape (D, rank) with F F^T = matrix, for a symmetric PSD, possibly singular, matrix."""
    # LAPACK's pivoted Cholesky stops at the numerical rank, dropping rounding-noise directions.
    lower, pivots, rank, info = scipy.linalg.lapack.dpstrf(matrix, lower=1)
    if info < 0:
        raise BadValueError(f"LAPACK dpstrf rejected argument {-info}")
    factor = np.zeros((len(matrix), rank))
    factor[pivots - 1] = np.tril(lower)[:, :rank]  # undo the pivoting: P L -> rows in original order
    return factor


def fid_protocol(extractor):
    """How FID was computed, for the run JSONs."""
    return {
        **extractor.protocol(),
        "statistics": "float64 mean and covariance (np.cov, ddof=1)",
        "frechet_distance": "float64; tr sqrt(S1 S2) from eigvalsh of F^T S2 F, S1 = F F^T (pivoted Cholesky)",
        "reference_cache_key_version": CACHE_KEY_VERSION,
    }


# ---------------------------------------------------------------- cached reference statistics

def extraction_device(extractor):
    """Where the extractor computes, for the cache key: None on the CPU (the keys written before the device was
    part of them were all computed there, so their files stay valid); 'cuda (GPU model)' on a GPU, whose
    features differ from the CPU's by float32 rounding (about 1e-5), so neither reuses the other's file."""
    device = getattr(extractor, "device", None)
    if device is None or torch.device(device).type == "cpu":
        return None
    if torch.device(device).type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(cuda_index(device))})"
    return torch.device(device).type


def reference_key(key, extractor):
    """The full cache key: the caller's description of the real images, the weights' sha256, the key version,
    and the extraction device where it is not the CPU."""
    missing = [field for field in REQUIRED_KEY_FIELDS if field not in key]
    if missing:
        raise BadValueError(f"reference statistics key lacks {missing}; required: {list(REQUIRED_KEY_FIELDS)}")
    if key.get("weights_sha256", extractor.weights_sha256) != extractor.weights_sha256:
        raise BadValueError(f"key names weights {key['weights_sha256']}, "
                         f"the extractor uses {extractor.weights_sha256}")
    device = extraction_device(extractor)
    return {**key, "weights_sha256": extractor.weights_sha256, "key_version": CACHE_KEY_VERSION,
            **({"extraction_device": device} if device else {})}


def reference_cache_path(cache_dir, full_key):
    """Cache file for a full key: readable prefix, then a hash of the whole key."""
    digest = hashlib.sha256(_canonical_json(full_key).encode()).hexdigest()[:16]
    label = re.sub(r"[^A-Za-z0-9.]+", "-", f"{full_key['dataset']}-{full_key['split']}-{full_key['num_samples']}")
    return Path(cache_dir) / f"fid_ref_{label}_{digest}.npz"


def cached_reference(cache_dir, key, compute_images, extractor):
    """(features, mu, sigma) of the real images described by `key`, from the cache or computed once and stored;
    the cache file keeps the features too (KID needs them). A file written before features were kept is recomputed.

    key: JSON-serialisable dict with at least dataset, split, num_samples and preprocessing.
    compute_images: called only on a cache miss; returns float images (num_samples, C, H, W) in [0, 1].
    """
    full_key = reference_key(key, extractor)
    path = reference_cache_path(cache_dir, full_key)
    cached = _load_statistics(path, full_key)
    if cached is not None and cached[0] is not None:
        return cached
    # Parallel cells share the cache: the first takes the lock and computes, the others wait for it
    # and then load its file, so the minutes of feature extraction are spent once.
    with file_lock(path.parent / ".locks" / f"{path.name}.lock"):
        cached = _load_statistics(path, full_key)
        if cached is not None and cached[0] is not None:
            return cached
        images = compute_images()
        if len(images) != full_key["num_samples"]:
            raise BadValueError(f"compute_images returned {len(images)} images, the key says {full_key['num_samples']}")
        print(f"FID reference statistics: {len(images)} {full_key['dataset']} {full_key['split']} images "
              f"(cached afterwards in {path.name})", file=sys.stderr, flush=True)
        features = np.asarray(extractor(images))
        mu, sigma = activation_statistics(features)
        _save_statistics(path, features, mu, sigma, full_key)
    return features, mu, sigma


def _canonical_json(key):
    return json.dumps(key, sort_keys=True)


def _load_statistics(path, full_key):
    """(features or None, mu, sigma) stored at `path` for exactly this key, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            # The key inside the file, not only its hash in the name, must match.
            if str(stored["key"]) != _canonical_json(full_key):
                return None
            features = stored["features"] if "features" in stored.files else None
            return features, stored["mu"], stored["sigma"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # unreadable: recompute and overwrite


def _save_statistics(path, features, mu, sigma, full_key):
    # Write a temporary file beside the target, then rename: readers see the old file or the whole new one.
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, features=features, mu=mu, sigma=sigma, key=np.array(_canonical_json(full_key)))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
