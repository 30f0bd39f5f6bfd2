"""The pca-gaussian example plugin, trained through the real loop on the tiny fake dataset."""
import json
import math
from pathlib import Path

import pytest
import torch

import segma_bench.methods as methods
from segma_bench.evaluation.classification import train
from segma_bench.methods.base import DataSpec
from segma_bench.training import RunSpec

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "pca_gaussian.py"


@pytest.fixture(scope="module")
def method_class():
    methods.load_plugin(str(PLUGIN))
    return methods.get_method("pca-gaussian")


@pytest.fixture
def trained(method_class, fake_data, tmp_path):
    """Train 2 epochs, then rebuild the model from the run folder (config.json + checkpoint.pt)."""
    run = tmp_path / "run"
    metrics = train(RunSpec(method="pca-gaussian", dataset="fake", epochs=2, progress=False), run, data=fake_data)
    assert metrics["epochs_completed"] == 2
    config = json.loads((run / "config.json").read_text())
    spec_fields = dict(config["data_spec"], image_shape=tuple(config["data_spec"]["image_shape"]),
                       class_priors=tuple(config["data_spec"]["class_priors"]))
    model = method_class(method_class.config_class(**config["method_config"]), DataSpec(**spec_fields))
    # strict load: the fitted Gaussians must be in the checkpoint (buffers), not only in Python attributes
    model.load_state_dict(torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)["model"])
    model.eval()
    labeled = json.loads((run / "labeled_indices.json").read_text())["indices"]
    return model, metrics, labeled


def images(uint8):
    return uint8.float() / 255


def test_declares_its_table_variant(method_class):
    assert method_class.table_variant == "linear AE + fitted Gaussians"  # its own row label, not the default
    assert method_class.has_classifier and method_class.has_class_components


def test_classify_is_bayes_rule_with_fitted_gaussians(trained, fake_data):
    model, _, labeled = trained
    x = images(fake_data.train_images)
    with torch.no_grad():
        log_post = model.classify(x).double()
        codes = model.encode(x).double()
    k = fake_data.num_classes
    assert log_post.shape == (len(x), k)
    # normalised: sum_k P(k | x) = 1
    torch.testing.assert_close(log_post.logsumexp(1), torch.zeros(len(x), dtype=torch.float64), atol=1e-5, rtol=0)

    # Redo the fit by hand on the labeled codes: class means, pooled (unbiased) diagonal variance, proportions.
    z_l, y_l = codes[labeled], fake_data.train_labels[labeled]
    means = torch.stack([z_l[y_l == c].mean(0) for c in range(k)])
    pooled = sum(((z_l[y_l == c] - means[c]) ** 2).sum(0) for c in range(k)) / (len(y_l) - k)
    var = pooled + model.config.var_floor
    priors = torch.tensor([(y_l == c).double().mean().item() for c in range(k)], dtype=torch.float64)
    torch.testing.assert_close(model.class_means().double(), means, atol=1e-4, rtol=1e-4)

    # Bayes' rule on a few points: log p(k) + sum_d log N(z_d; mu_kd, var_d), normalised over k.
    for i in (0, 7, 25, 59):
        joint = torch.tensor([
            math.log(priors[c]) + sum(-0.5 * math.log(2 * math.pi * var[d]) - (codes[i, d] - means[c, d]) ** 2 / (2 * var[d])
                                      for d in range(codes.shape[1]))
            for c in range(k)], dtype=torch.float64)
        torch.testing.assert_close(log_post[i], joint - joint.logsumexp(0), atol=1e-3, rtol=1e-3)


def test_classifies_training_data_better_than_chance(trained, fake_data):
    model, metrics, _ = trained
    with torch.no_grad():
        predicted = model.classify(images(fake_data.train_images)).argmax(1)
    accuracy = (predicted == fake_data.train_labels).float().mean().item()
    assert accuracy > 1 / fake_data.num_classes + 0.2
    assert metrics["test_error"] < 1 - 1 / fake_data.num_classes      # the loop's own test error, after the hook


def test_sample_shape_range_and_reproducibility(trained, fake_data):
    model, _, _ = trained
    classes = torch.tensor([0, 1, 2, 2, 1, 0])
    with torch.no_grad():
        a = model.sample(classes, generator=torch.Generator().manual_seed(3)).cpu()
        b = model.sample(classes, generator=torch.Generator().manual_seed(3)).cpu()
    assert a.shape == (6, *fake_data.image_shape) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b)
