"""The SeGMA authors-code recipe: the first-N labeled set and its priors, the rows each loss term
uses, Glorot and the authors' mean initialisation, and the unsupervised variants never seeing labels."""
import json
import math

import pytest
import torch

import segma_bench.methods as methods
from segma_bench.core.errors import UnknownNameError
from segma_bench.datasets.splits import choose_labeled, class_proportions
from segma_bench.evaluation.classification import train
from segma_bench.methods.base import DataSpec
from segma_bench.methods.segma import authors_initial_means
from segma_bench.training import RunMismatchError, RunSpec, prepare
from test_segma import SMALL, build, toy_batch


# ---- the labeled set ------------------------------------------------------------------------------------------
def test_first_subset_is_the_first_n_images_whatever_the_seed():
    labels = torch.tensor([2, 0, 1, 1, 2, 0, 0, 1, 2, 2])
    for seed in (0, 1, 7):
        assert choose_labeled(labels, 4, seed, "first").tolist() == [0, 1, 2, 3]
    # the seeded draw is class-balanced instead, and depends on the seed
    draws = {tuple(choose_labeled(labels, 3, seed, "balanced").tolist()) for seed in range(6)}
    assert len(draws) > 1
    for draw in draws:
        assert sorted(labels[list(draw)].tolist()) == [0, 1, 2]


def test_unknown_subset_and_too_many_labels_are_refused():
    labels = torch.arange(5) % 2
    with pytest.raises(ValueError, match="unknown labeled subset 'last'"):
        choose_labeled(labels, 2, 0, "last")
    with pytest.raises(ValueError, match="only 5"):
        choose_labeled(labels, 6, 0, "first")


def test_first_subset_priors_are_its_class_proportions(fake_data, tmp_path):
    # make the first 6 training labels unbalanced: 3 x class 0, 2 x class 1, 1 x class 2
    fake_data.train_labels[:6] = torch.tensor([0, 1, 0, 1, 0, 2])
    spec = RunSpec(method="segma", dataset="fake", overrides=dict(SMALL), labeled_subset="first", progress=False)
    spec, data, labeled, method = prepare(spec, tmp_path, fake_data)
    assert labeled.tolist() == list(range(6))
    assert method.spec.class_priors == pytest.approx((3 / 6, 2 / 6, 1 / 6))
    assert method.priors.tolist() == pytest.approx([0.5, 1 / 3, 1 / 6])
    assert class_proportions(data.train_labels[labeled], 3) == method.spec.class_priors


def test_the_recipe_brings_its_labeled_subset_and_an_explicit_choice_wins(fake_data, tmp_path):
    spec = RunSpec(method="segma", dataset="fake", overrides=dict(SMALL), recipe="authors-code", progress=False)
    assert prepare(spec, tmp_path, fake_data)[0].labeled_subset == "first"
    spec.labeled_subset = "balanced"
    assert prepare(spec, tmp_path, fake_data)[0].labeled_subset == "balanced"
    spec = RunSpec(method="segma", dataset="fake", overrides=dict(SMALL), progress=False)
    assert prepare(spec, tmp_path, fake_data)[0].labeled_subset == "balanced"


# ---- the recipe -----------------------------------------------------------------------------------------------
SPEC = DataSpec(dataset="mnist", image_shape=(1, 6, 6), num_classes=3, class_priors=(0.5, 0.3, 0.2),
                num_train=30, num_labeled=10)


def test_authors_code_recipe_settings_and_set_overrides_win():
    segma = methods.get_method("segma")
    config = segma.build(SPEC, dict(SMALL), "authors-code").config
    assert (config.reconstruction_rows, config.divergence_rows, config.weight_init) == ("unlabeled", "unlabeled", "glorot")
    assert (config.mean_init_scale, config.mean_init_noise) == (0.1, 1e-3)
    assert (config.grad_clip_norm, config.grad_clip_value) == (5.0, 1.0)
    assert (config.alpha, config.beta, config.learning_rate) == (5.0, 10.0, 3e-4)  # the paper's, unchanged
    ablated = segma.build(SPEC, {**SMALL, "grad_clip_value": 0.0}, "authors-code").config
    assert ablated.grad_clip_value == 0.0 and ablated.weight_init == "glorot"
    assert segma.recipe("authors-code", "svhn").settings["mean_init_scale"] == 2.0
    assert segma.recipe("authors-code", "celeba").settings["mean_init_scale"] == 1.0


def test_unsupervised_recipes_keep_only_what_applies_and_unknown_recipes_are_named():
    cwae = methods.get_method("cwae").recipe("authors-code", "mnist")
    assert set(cwae.settings) == {"weight_init", "grad_clip_norm", "grad_clip_value"}
    unsup = methods.get_method("segma-unsup").recipe("authors-code", "mnist")
    assert "reconstruction_rows" not in unsup.settings and unsup.settings["mean_init_scale"] == 0.1
    with pytest.raises(UnknownNameError, match="no recipe 'nope'.*authors-code"):
        methods.get_method("segma").build(SPEC, dict(SMALL), "nope")

    class NoRecipes(methods.GenerativeMethod):
        name = "no-recipes"
    with pytest.raises(UnknownNameError, match="'no-recipes' has no recipe 'x'; its recipes: none"):
        NoRecipes.recipe("x", "mnist")


# ---- the rows each loss term uses -----------------------------------------------------------------------------
def _with_other_labeled_images(batch, seed=5):
    g = torch.Generator().manual_seed(seed)
    return type(batch)(x_unlabeled=batch.x_unlabeled, x_labeled=torch.rand(batch.x_labeled.shape, generator=g),
                       y_labeled=batch.y_labeled)


@pytest.mark.parametrize("rows", ["batch", "unlabeled"])
def test_reconstruction_and_divergence_rows(rows):
    model = build("segma", dict(reconstruction_rows=rows, divergence_rows=rows))
    batch = toy_batch()
    with torch.no_grad():
        terms = model.training_step(batch)
        other = model.training_step(_with_other_labeled_images(batch))
        x = batch.x_unlabeled if rows == "unlabeled" else torch.cat([batch.x_unlabeled, batch.x_labeled])
        expected_mse = (model.decode(model.encode(x)) - x).pow(2).sum((1, 2, 3)).mean()
    assert terms["mse"].item() == pytest.approx(expected_mse.item(), rel=1e-6)
    assert not torch.equal(terms["ce"], other["ce"])  # the cross-entropy always uses the labeled rows
    same = torch.equal(terms["mse"], other["mse"]) and torch.equal(terms["log_cw"], other["log_cw"])
    assert same == (rows == "unlabeled")


def test_unlabeled_divergence_rows_take_gamma_from_the_unlabeled_count(monkeypatch):
    import segma_bench.methods.segma as segma_module
    seen = []
    real = segma_module.silverman_gamma
    monkeypatch.setattr(segma_module, "silverman_gamma", lambda n: seen.append(n) or real(n))
    batch = toy_batch(unlabeled=9, labeled=6)
    build("segma", dict(divergence_rows="unlabeled")).training_step(batch)
    build("segma").training_step(batch)
    assert seen == [9 / 3, 15 / 3]


@pytest.mark.parametrize("name", ["cwae", "segma-unsup"])
def test_unsupervised_variants_never_see_the_labeled_rows(name):
    """Fails on the earlier code, which stacked the 100 labeled images into every batch."""
    model = build(name)
    batch = toy_batch()
    grads = []
    for b in (batch, _with_other_labeled_images(batch)):
        model.zero_grad()
        terms = model.training_step(b)
        terms["loss"].backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert all(torch.equal(a, b) for a, b in zip(*grads))
    x = batch.x_unlabeled
    with torch.no_grad():
        expected = (model.decode(model.encode(x)) - x).pow(2).sum((1, 2, 3)).mean()
    assert terms["mse"].item() == pytest.approx(expected.item(), rel=1e-6)


# ---- initialisation -------------------------------------------------------------------------------------------
def test_glorot_weights_are_uniform_with_the_glorot_bound_and_zero_biases():
    model = build("segma", dict(weight_init="glorot", hidden=(300, 200)))
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(layers) == 6
    for layer in layers:
        fan_out, fan_in = layer.weight.shape
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        w = layer.weight.detach()
        assert w.abs().max() <= bound
        if w.numel() > 5000:  # uniform(-b, b) has variance b^2 / 3
            assert w.var().item() == pytest.approx(bound ** 2 / 3, rel=0.05)
        assert torch.count_nonzero(layer.bias) == 0
    default = build("segma", dict(hidden=(300, 200)))
    assert torch.count_nonzero(default.encoder[1][0].bias) > 0  # PyTorch's default: fan-in-scaled biases


def test_authors_mean_initialisation_statistics():
    means = authors_initial_means(10, 10, 0.1, 0.0)
    assert torch.equal(means, 0.1 * torch.eye(10))
    wide = authors_initial_means(10, 20, 2.0, 0.0)  # SVHN: every component owns two dimensions at 2 * 10/20
    assert torch.equal(wide, torch.cat([torch.eye(10), torch.eye(10)], 1))
    g = torch.Generator().manual_seed(0)
    noisy = authors_initial_means(40, 200, 0.1, 1e-3, generator=g)
    noise = noisy - authors_initial_means(40, 200, 0.1, 0.0)
    assert noise.mean().abs().item() < 1e-4 and noise.std().item() == pytest.approx(1e-3, rel=0.05)
    model = build("segma", dict(mean_init_scale=0.1, mean_init_noise=1e-3))
    expected = torch.zeros(3, 10)
    for d in range(10):  # K = 3 components own dimensions d mod 3, each at 0.1 * K / D = 0.03
        expected[d % 3, d] = 0.03
    assert (model.means.detach() - expected).abs().max() < 0.006


# ---- run identity ---------------------------------------------------------------------------------------------
def test_recipe_is_part_of_the_run_identity(tmp_path, fake_data):
    run = tmp_path / "run"
    base = dict(method="segma", dataset="fake", overrides=dict(SMALL), epochs=1, progress=False)
    train(RunSpec(**base, recipe="authors-code"), run, data=fake_data)
    saved = json.loads((run / "config.json").read_text())
    assert saved["run"]["recipe"] == "authors-code" and saved["run"]["labeled_subset"] == "first"
    assert saved["method_config"]["weight_init"] == "glorot"
    with pytest.raises(RunMismatchError, match="recipe"):
        train(RunSpec(**base), run, data=fake_data)


def test_run_folders_from_before_recipes_still_resume(tmp_path, fake_data):
    run = tmp_path / "run"
    spec = dict(method="segma", dataset="fake", overrides=dict(SMALL), progress=False)
    first = train(RunSpec(**spec, epochs=1), run, data=fake_data)
    config = json.loads((run / "config.json").read_text())
    for key in ("recipe", "labeled_subset"):  # as config.json was written before these fields existed
        del config["run"][key]
    (run / "config.json").write_text(json.dumps(config))
    metrics = train(RunSpec(**spec, epochs=2), run, data=fake_data)
    # resumed (not refused as another run, nor trained again from scratch): epoch 1 is the one already trained
    assert metrics["epochs_completed"] == 2 and metrics["history"][0] == first["history"][0]
    assert "resumed from the end of epoch 1" in (run / "train.log").read_text()
    assert json.loads((run / "config.json").read_text()) == config  # the old folder is left as it was


def test_a_run_report_names_the_recipe_and_labeled_subset_its_run_was_made_with(tmp_path, fake_data):
    from segma_bench.reporting.run_report import render_run_report
    run = tmp_path / "run"
    train(RunSpec(method="segma", dataset="fake", overrides=dict(SMALL), recipe="authors-code",
                  labeled_subset="balanced", epochs=1, progress=False), run, data=fake_data)
    text, _ = render_run_report(run, "cmd")
    assert "--recipe authors-code --labeled balanced --set hidden=16 --run-dir " + str(run) in text
    assert "Recipe: authors-code; labeled subset: balanced" in text
