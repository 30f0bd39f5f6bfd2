"""The evaluation harness: sampling and interpolation protocols, test error, FID wiring and caching.

FID itself (Inception features, Frechet distance) is tested in test_fid.py; here a cheap stub extractor
stands in for the network so that the protocols can be checked exactly and fast."""

import numpy as np
import pytest
import torch

from conftest import tiny_spec
from segma_bench.evaluation import harness
from segma_bench.evaluation.classification import test_error as classification_error
from segma_bench.methods import DataSpec, GenerativeMethod, get_method


class StubExtractor:
    """Deterministic 'features': a fixed random projection of the pixels (counts its calls)."""
    weights_sha256 = "0" * 64

    def __init__(self):
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        flat = images.flatten(1).double()
        projection = torch.randn(flat.shape[1], 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        return (flat @ projection).numpy()

    def protocol(self):
        return {"weights_sha256": self.weights_sha256, "pytorch_fid_version": "stub", "network": "stub"}


class LinearCodes(GenerativeMethod):
    """encode = flatten, decode = reshape: interpolated images are exactly the pixel interpolations."""
    def __init__(self, spec):
        super().__init__(None, spec)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def encode(self, x):
        return x.flatten(1)

    def decode(self, code):
        return code.reshape(len(code), *self.spec.image_shape)

    def sample(self, classes, generator=None):
        return torch.full((len(classes), *self.spec.image_shape), 1.0) * classes[:, None, None, None] / 10

    def classify(self, x):
        # predicts class 0 for dark images, 1 for bright ones
        bright = (x.flatten(1).mean(1) > 0.5).long()
        return torch.log_softmax(torch.nn.functional.one_hot(bright, 2).double() * 10, 1)


SPEC = DataSpec(dataset="toy", image_shape=(1, 4, 4), num_classes=3, class_priors=(0.5, 0.3, 0.2),
                num_train=10, num_labeled=3)


def test_generated_samples_follow_the_priors_and_the_seed():
    method = LinearCodes(SPEC)
    images = harness.generated_samples(method, 6000, seed=3)
    assert images.shape == (6000, 1, 4, 4)
    classes = (images[:, 0, 0, 0] * 10).round().long()
    proportions = torch.bincount(classes, minlength=3).double() / 6000
    # multinomial std at n = 6000 is <= 0.0065: a 4-sigma band
    assert torch.allclose(proportions, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), atol=0.026)
    assert torch.equal(images, harness.generated_samples(method, 6000, seed=3))
    assert not torch.equal(images, harness.generated_samples(method, 6000, seed=4))


def test_generated_samples_of_segma_are_clipped_and_sized_across_decode_batches():
    method = get_method("segma").build(SPEC)
    images = harness.generated_samples(method, harness.DECODE_BATCH + 7, seed=0)
    assert images.shape == (harness.DECODE_BATCH + 7, 1, 4, 4)
    assert images.min() >= 0 and images.max() <= 1
    # a decoder that leaves [0, 1] (a plugin's may): the harness clips what the FID network sees
    ramp = torch.linspace(-1, 2, 16).reshape(1, 1, 4, 4)
    method.sample = lambda classes, generator=None: ramp.repeat(len(classes), 1, 1, 1)
    assert torch.equal(harness.generated_samples(method, 3, seed=0), ramp.clamp(0, 1).repeat(3, 1, 1, 1))


def test_interpolation_samples_lie_on_segments_between_random_test_pairs():
    method = LinearCodes(SPEC)
    test_images = torch.randint(0, 256, (50, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    n = 700  # more than one decode batch
    images = harness.interpolation_samples(method, test_images, n, seed=5)
    generator = torch.Generator().manual_seed(5)  # the documented draw order: first, second, t
    first = torch.randint(50, (n,), generator=generator)
    second = torch.randint(50, (n,), generator=generator)
    t = torch.rand(n, generator=generator)
    a, b = test_images[first].float() / 255, test_images[second].float() / 255
    expected = (1 - t)[:, None, None, None] * a + t[:, None, None, None] * b
    assert torch.allclose(images, expected, atol=1e-6)
    assert 0.4 < t.mean() < 0.6 and len(set(first.tolist())) > 40  # uniform t, many distinct pairs
    assert torch.equal(images, harness.interpolation_samples(method, test_images, n, seed=5))


def test_test_error_counts_misclassified_images():
    method = LinearCodes(SPEC)
    images = torch.cat([torch.zeros(6, 1, 4, 4), torch.full((4, 1, 4, 4), 255.0)]).to(torch.uint8)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 0])  # 2 dark ones labeled 1, 1 bright one labeled 0
    assert classification_error(method, images, labels, batch_size=3) == pytest.approx(0.3)


def test_evaluate_reports_metrics_protocol_and_floor(fake_data, tmp_path):
    method = get_method("segma").build(tiny_spec(fake_data))
    extractor = StubExtractor()
    wanted = {"test_error", "sample_fid", "interpolation_fid"}
    metrics, protocol = harness.evaluate(method, fake_data, wanted, 20, extractor, tmp_path / "cache", seed=0)
    kids = {"sample_kid", "sample_kid_std", "interpolation_kid", "interpolation_kid_std"}  # from the same features
    prcs = {"sample_precision", "sample_recall", "interpolation_precision", "interpolation_recall"}  # these too
    assert set(metrics) == wanted | kids | prcs and 0 <= metrics["test_error"] <= 1
    assert metrics["sample_fid"] > 0 and metrics["interpolation_fid"] > 0
    assert metrics["sample_kid"] > protocol["kid"]["floor_kid"]  # a fresh model's samples are unlike the data
    fid = protocol["fid"]
    assert fid["generated_images"] == 20 and fid["weights_sha256"] == extractor.weights_sha256
    assert "20 random fake train images" in fid["reference"]
    assert "20 random fake test images" in fid["floor"] and fid["floor_fid"] >= 0
    calls = extractor.calls  # reference and floor statistics are cached: only generated images are extracted
    harness.evaluate(method, fake_data, {"sample_fid"}, 20, extractor, tmp_path / "cache", seed=0)
    assert extractor.calls == calls + 1


def test_real_statistics_key_changes_with_sample_count(fake_data, tmp_path):
    extractor = StubExtractor()
    (features10, mu10, _), n10 = harness.real_statistics(fake_data, "train", 10, extractor, tmp_path)
    (_, mu20, _), n20 = harness.real_statistics(fake_data, "train", 20, extractor, tmp_path)
    (_, _, _), n_all = harness.real_statistics(fake_data, "test", 10_000, extractor, tmp_path)
    assert features10.shape == (10, 6)  # the features are kept, for KID
    assert (n10, n20, n_all) == (10, 20, len(fake_data.test_images))  # capped at the split size
    assert not np.allclose(mu10, mu20)
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_evaluate_is_seeded_and_leaves_the_callers_rng_alone(fake_data, tmp_path):
    method = get_method("adgm").build(tiny_spec(fake_data), {"eval_samples": 3})  # classify and encode draw the auxiliary a
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = harness.evaluate(method, fake_data, {"test_error", "interpolation_fid"}, 12, StubExtractor(),
                             tmp_path, seed=7)[0]
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(999)  # another global state must not change a seeded evaluation
    assert harness.evaluate(method, fake_data, {"test_error", "interpolation_fid"}, 12, StubExtractor(),
                            tmp_path, seed=7)[0] == first


def test_unknown_metric_is_an_error(fake_data, tmp_path):
    method = LinearCodes(SPEC)
    with pytest.raises(ValueError, match="unknown metric"):
        harness.evaluate(method, fake_data, {"fid"}, 10, StubExtractor(), tmp_path, seed=0)
