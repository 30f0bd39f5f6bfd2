"""FID harness: weights checks, features equal to pytorch-fid's, Frechet distance, reference cache.

Feature tests compare with pytorch-fid itself in two ways: its get_activations on PNG files (the
way users run it), and its model's inner loop (model(batch)[0].squeeze) on in-memory tensors.
Both use pytorch-fid's own InceptionV3 class; only its weight download is replaced by the
offline file, the same file our extractor loads.
"""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_fid import inception as pytorch_fid_inception
from pytorch_fid.fid_score import calculate_frechet_distance, get_activations

from segma_bench.evaluation import inception
from segma_bench.evaluation.fid import (
    activation_statistics,
    cached_reference,
    fid_protocol,
    frechet_distance,
    reference_cache_path,
    reference_key,
)
from segma_bench.evaluation.inception import FeatureExtractor, FIDWeightsError

WEIGHTS = Path(os.environ.get(inception.WEIGHTS_ENV_VAR) or
               Path(__file__).resolve().parents[1].parent / "shared/weights/pt_inception-2015-12-05.pth")
needs_weights = pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"FID Inception weights not found at {WEIGHTS} "
                                   f"(set {inception.WEIGHTS_ENV_VAR} to run the network tests)")


def mnist_like(n, channels=1, size=28, seed=0):
    """Smooth blobs in [0, 1]: low-resolution noise upsampled, closer to digits than white noise."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, 7, 7, generator=generator)
    images = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (images ** 3).clamp(0, 1)


# ---------------------------------------------------------------- weights

def test_missing_weights_raise_a_helpful_error(tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(FIDWeightsError) as error:
        FeatureExtractor(weights_path=missing, device="cpu")
    message = str(error.value)
    assert str(missing) in message and "not found" in message
    assert "--fid-weights" in message and "SEGMA_FID_WEIGHTS" in message
    assert "shared/weights/pt_inception-2015-12-05.pth" in message


def test_weights_with_another_hash_are_refused(tmp_path, monkeypatch):
    bogus = tmp_path / "pt_inception-2015-12-05.pth"
    bogus.write_bytes(b"not the inception weights")
    monkeypatch.setenv(inception.WEIGHTS_ENV_VAR, str(bogus))  # also checks the environment variable is used
    with pytest.raises(FIDWeightsError) as error:
        FeatureExtractor(device="cpu")
    message = str(error.value)
    assert str(bogus) in message and inception.file_sha256(bogus) in message
    assert inception.OFFLINE_WEIGHTS_SHA256 in message and "SEGMA_FID_WEIGHTS" in message


def test_explicit_path_wins_over_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(inception.WEIGHTS_ENV_VAR, str(tmp_path / "from_env.pth"))
    assert inception.resolve_weights_path(tmp_path / "explicit.pth") == tmp_path / "explicit.pth"
    assert inception.resolve_weights_path() == tmp_path / "from_env.pth"


def test_failed_download_raises_the_same_clear_error(tmp_path):
    unreachable = (tmp_path / "server" / "pt_inception-2015-12-05-6726825d.pth").as_uri()
    with pytest.raises(FIDWeightsError, match="SEGMA_FID_WEIGHTS"):
        inception.download_pytorch_fid_weights(url=unreachable, cache_dir=tmp_path / "hub")


def test_download_with_a_wrong_hash_is_refused(tmp_path):
    served = tmp_path / "server" / "pt_inception-2015-12-05-6726825d.pth"
    served.parent.mkdir()
    served.write_bytes(b"a corrupted download")
    with pytest.raises(FIDWeightsError, match="--fid-weights"):
        inception.download_pytorch_fid_weights(url=served.as_uri(), cache_dir=tmp_path / "hub")
    assert not (tmp_path / "hub" / served.name).exists()


def test_weights_hash_is_computed_once_per_file_version(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"version 1")
    misses = inception._sha256_once.cache_info().misses
    first = inception.file_sha256(path)
    assert inception.file_sha256(path) == first
    assert inception._sha256_once.cache_info().misses == misses + 1
    path.write_bytes(b"version 2, longer")  # new size and mtime: hashed again
    assert inception.file_sha256(path) != first
    assert inception._sha256_once.cache_info().misses == misses + 2


# ---------------------------------------------------------------- features

@pytest.fixture(scope="module")
def extractor():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if not WEIGHTS.is_file():
        pytest.skip(f"FID Inception weights not found at {WEIGHTS}")
    return FeatureExtractor(weights_path=WEIGHTS, device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def pytorch_fid_model():
    """pytorch-fid's own InceptionV3([3]), its download replaced by the offline weights file."""
    if not WEIGHTS.is_file():
        pytest.skip(f"FID Inception weights not found at {WEIGHTS}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pytorch_fid_inception, "load_state_dict_from_url",
                      lambda *args, **kwargs: torch.load(WEIGHTS, map_location="cpu", weights_only=True))
        return pytorch_fid_inception.InceptionV3([3], use_fid_inception=True).eval()


def pytorch_fid_features(model, images):
    """get_activations' inner loop on in-memory tensors (grayscale repeated, as PIL's convert('RGB'))."""
    with torch.no_grad():
        return model(images.expand(-1, 3, -1, -1))[0].squeeze(3).squeeze(2).double().numpy()


@needs_weights
def test_features_equal_pytorch_fid_in_memory(extractor, pytorch_fid_model):
    for images in (mnist_like(3, channels=1, size=28, seed=1), mnist_like(3, channels=3, size=32, seed=2)):
        ours = extractor(images)
        theirs = pytorch_fid_features(pytorch_fid_model, images)
        assert ours.shape == (3, 2048) and ours.dtype == np.float64
        assert np.abs(theirs).mean() > 0.05  # real features, not zeros
        assert np.abs(ours - theirs).max() <= 1e-4


@needs_weights
def test_features_equal_pytorch_fid_get_activations_on_pngs(extractor, pytorch_fid_model, tmp_path):
    pixels = (mnist_like(4, seed=3)[:, 0] * 255).round().to(torch.uint8).numpy()
    files = []
    for index, image in enumerate(pixels):
        files.append(tmp_path / f"{index}.png")
        Image.fromarray(image, mode="L").save(files[-1])
    theirs = get_activations(files, pytorch_fid_model, batch_size=4, dims=2048, device="cpu", num_workers=0)
    ours = extractor(torch.from_numpy(pixels).float()[:, None] / 255)  # ToTensor's scaling of the same PNGs
    assert np.abs(ours - theirs).max() <= 1e-4


@needs_weights
def test_features_do_not_depend_on_batch_size(extractor):
    images = mnist_like(8, seed=4)
    saved = extractor.batch_size
    try:
        extractor.batch_size = 3
        by_three = extractor(images)
        extractor.batch_size = 7
        by_seven = extractor(images)
    finally:
        extractor.batch_size = saved
    assert np.abs(by_three - by_seven).max() <= 1e-5


@needs_weights
def test_grayscale_is_repeated_and_inputs_are_clipped(extractor):
    gray = mnist_like(2, seed=5)
    assert np.abs(extractor(gray) - extractor(gray.repeat(1, 3, 1, 1))).max() <= 1e-5
    overshoot = gray * 1.6 - 0.3  # values beyond both ends of [0, 1]
    assert np.abs(extractor(overshoot) - extractor(overshoot.clamp(0, 1))).max() == 0
    assert np.abs(extractor(overshoot) - extractor(gray)).max() > 1e-2  # clipping changed the images


def test_bad_images_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        inception.as_image_batch(torch.zeros(2, 2, 28, 28))
    with pytest.raises(TypeError, match="uint8"):
        inception.as_image_batch(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="NaN"):
        inception.as_image_batch(torch.full((2, 1, 28, 28), float("nan")))


def fid_of(images, ref_mu, ref_sigma, extractor):
    """FID as the harness computes it (evaluation/harness.py): statistics of the features, then the distance."""
    return frechet_distance(*activation_statistics(extractor(images)), ref_mu, ref_sigma)


@needs_weights
def test_fid_of_images(extractor):
    real = mnist_like(6, seed=6)
    ref_mu, ref_sigma = activation_statistics(extractor(real))
    assert fid_of(real, ref_mu, ref_sigma, extractor) == pytest.approx(0, abs=1e-6)
    fid_noise = fid_of(torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(7)),
                       ref_mu, ref_sigma, extractor)
    assert np.isfinite(fid_noise) and fid_noise > 1.0
    protocol = fid_protocol(extractor)
    assert protocol["weights_sha256"] == inception.OFFLINE_WEIGHTS_SHA256 == extractor.weights_sha256
    assert protocol["pytorch_fid_version"] == "0.3.0" and "batch_size" not in protocol


# ---------------------------------------------------------------- statistics and distance

def test_activation_statistics_are_float64_mean_and_unbiased_covariance():
    features = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    mu, sigma = activation_statistics(features)
    assert mu.dtype == sigma.dtype == np.float64
    centered = features.astype(np.float64) - features.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(sigma, centered.T @ centered / 49, rtol=1e-12)


def test_frechet_distance_of_diagonal_gaussians_has_its_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    s1, s2 = rng.uniform(0.1, 3, size=20), rng.uniform(0.1, 3, size=20)
    s1[:5] = 0  # singular too
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)
    # Rotating both Gaussians by the same orthogonal matrix changes nothing.
    rotation, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    rotated = frechet_distance(rotation @ mu1, rotation @ np.diag(s1) @ rotation.T,
                               rotation @ mu2, rotation @ np.diag(s2) @ rotation.T)
    assert rotated == pytest.approx(expected, rel=1e-8)


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated")  # inside pytorch-fid, scipy >= 1.16
def test_frechet_distance_agrees_with_pytorch_fid_when_well_conditioned():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(400, 32))
    b = rng.normal(size=(400, 32)) @ rng.normal(scale=0.3, size=(32, 32)) + 0.2
    stats_a, stats_b = activation_statistics(a), activation_statistics(b)
    theirs = calculate_frechet_distance(*stats_a, *stats_b)
    assert frechet_distance(*stats_a, *stats_b) == pytest.approx(theirs, rel=1e-6)


def frechet_distance_by_eigh(mu1, sigma1, mu2, sigma2):
    """Independent formula: tr sqrt(S1 S2) from the eigenvalues of sqrt(S1) S2 sqrt(S1), sqrt(S1) by eigh.

    Eigenvalues below 1e-10 of the largest are rounding noise of exact zeros: dropped, since their
    square roots (~1e-8 each) would otherwise add up.
    """
    def nonnegligible(values):
        return np.where(values > 1e-10 * values.max(), values, 0)

    values, vectors = np.linalg.eigh(sigma1)
    root = (vectors * np.sqrt(nonnegligible(values))) @ vectors.T
    trace_sqrt = np.sqrt(nonnegligible(np.linalg.eigvalsh(root @ sigma2 @ root))).sum()
    return np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt


def test_frechet_distance_of_singular_covariances_is_real_finite_and_nonnegative():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(10, 64)), rng.normal(size=(10, 64)) + 0.5  # rank 9 covariances in 64 dims
    distance = frechet_distance(*activation_statistics(a), *activation_statistics(b))
    assert isinstance(distance, float) and np.isfinite(distance) and distance > 0
    expected = frechet_distance_by_eigh(*activation_statistics(a), *activation_statistics(b))
    assert distance == pytest.approx(expected, rel=1e-10)
    # Sanity bound: 0 <= tr sqrt(S1 S2) <= sqrt(tr S1 tr S2), so the distance lies within these.
    (mu_a, s_a), (mu_b, s_b) = activation_statistics(a), activation_statistics(b)
    lower = np.sum((mu_a - mu_b) ** 2) + (np.sqrt(np.trace(s_a)) - np.sqrt(np.trace(s_b))) ** 2
    upper = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b)
    assert lower - 1e-9 <= distance <= upper


def test_frechet_distance_of_identical_statistics_is_zero():
    features = np.random.default_rng(4).normal(size=(30, 100))  # singular: 30 samples, 100 dims
    mu, sigma = activation_statistics(features)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ---------------------------------------------------------------- reference statistics cache

class FakeExtractor:
    """Deterministic stand-in features, so the cache tests need no network."""

    def __init__(self, weights_sha256="a" * 64):
        self.weights_sha256 = weights_sha256

    def __call__(self, images):
        flat = torch.as_tensor(images).flatten(1).double().numpy()
        return np.concatenate([flat[:, :5], flat[:, :5] ** 2], axis=1)


class CountingImages:
    def __init__(self, n, seed=0):
        self.n, self.seed, self.calls = n, seed, 0

    def __call__(self):
        self.calls += 1
        return mnist_like(self.n, seed=self.seed)


KEY = {"dataset": "mnist", "split": "test", "num_samples": 8, "preprocessing": "ToTensor, 28x28, [0, 1]"}


def test_reference_statistics_are_cached_on_disk(tmp_path):
    images = CountingImages(8)
    first = cached_reference(tmp_path, KEY, images, FakeExtractor())
    second = cached_reference(tmp_path, KEY, images, FakeExtractor())
    assert images.calls == 1
    for computed, cached in zip(first, second):
        np.testing.assert_array_equal(computed, cached)
    expected = activation_statistics(FakeExtractor()(mnist_like(8)))
    np.testing.assert_allclose(first[1], expected[0], rtol=1e-12)
    np.testing.assert_allclose(first[2], expected[1], rtol=1e-12)
    expected_file = reference_cache_path(tmp_path, reference_key(KEY, FakeExtractor()))
    # no temporary file left behind (.locks/ holds the lock that parallel cells take: see storage.file_lock)
    assert [p for p in tmp_path.iterdir() if p.name != ".locks"] == [expected_file]


@pytest.mark.parametrize("changed_key, extractor", [
    ({**KEY, "num_samples": 6}, FakeExtractor()),
    ({**KEY, "split": "train"}, FakeExtractor()),
    ({**KEY, "preprocessing": "ToTensor, padded to 32x32"}, FakeExtractor()),
    (KEY, FakeExtractor(weights_sha256="b" * 64)),
])
def test_a_changed_key_recomputes(tmp_path, changed_key, extractor):
    cached_reference(tmp_path, KEY, CountingImages(8), FakeExtractor())
    images = CountingImages(changed_key["num_samples"], seed=1)
    _, mu, _ = cached_reference(tmp_path, changed_key, images, extractor)
    assert images.calls == 1
    np.testing.assert_allclose(mu, activation_statistics(extractor(mnist_like(images.n, seed=1)))[0])


def test_a_file_with_another_key_inside_is_not_reused(tmp_path):
    cached_reference(tmp_path, KEY, CountingImages(8), FakeExtractor())
    other_key = {**KEY, "num_samples": 5}
    # Put the statistics for KEY under other_key's file name, as a hash collision would.
    cached = reference_cache_path(tmp_path, reference_key(KEY, FakeExtractor()))
    cached.rename(reference_cache_path(tmp_path, reference_key(other_key, FakeExtractor())))
    images = CountingImages(5)
    cached_reference(tmp_path, other_key, images, FakeExtractor())
    assert images.calls == 1


def test_reference_key_requires_its_fields_and_the_extractors_weights(tmp_path):
    with pytest.raises(ValueError, match="num_samples"):
        reference_key({"dataset": "mnist", "split": "test", "preprocessing": "x"}, FakeExtractor())
    with pytest.raises(ValueError, match="weights"):
        reference_key({**KEY, "weights_sha256": "c" * 64}, FakeExtractor())
    with pytest.raises(ValueError, match="returned 8 images"):
        cached_reference(tmp_path, {**KEY, "num_samples": 9}, CountingImages(8), FakeExtractor())


def test_the_cache_keeps_the_features_and_refills_a_file_written_without_them(tmp_path):
    images = CountingImages(8)
    features, mu, _ = cached_reference(tmp_path, KEY, images, FakeExtractor())
    np.testing.assert_array_equal(features, FakeExtractor()(mnist_like(8)))
    path = reference_cache_path(tmp_path, reference_key(KEY, FakeExtractor()))
    with np.load(path) as stored:  # rewrite it as a file from before features were kept
        old = {name: stored[name] for name in ("mu", "sigma", "key")}
    np.savez(path, **old)
    again, again_mu, _ = cached_reference(tmp_path, KEY, images, FakeExtractor())
    assert images.calls == 2 and np.array_equal(again, features) and np.array_equal(again_mu, mu)
    assert "features" in np.load(path).files
    cached_reference(tmp_path, KEY, images, FakeExtractor())
    assert images.calls == 2  # the refilled file is used from then on
