"""M1+M2 and ADGM: one test template for both (parametrised over the method names), plus the closed forms.

Toy data only (8x8 images, 3 classes, N = 60, N_labeled = 6); the whole file runs in seconds on a CPU."""
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_spec
from segma_bench.methods import Batch, DataSpec, get_method
from segma_bench.methods.distributions import (
    bernoulli_log_likelihood,
    classification_weight,
    gaussian_entropy,
    gaussian_kl_to_standard,
    gaussian_log_pdf,
    log_mean_exp,
    reparameterize,
)

NAMES = ["m1m2", "adgm"]
SPEC = tiny_spec(num_train=60)  # N = 60 and N_labeled = 6 set the classification weight the tests check


def toy_images(labels, seed=0):
    """Class c lights up rows 2c..2c+2 of an 8x8 image, plus a little noise, in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    images = 0.1 * torch.rand(len(labels), 1, 8, 8, generator=generator)
    for i, c in enumerate(labels.tolist()):
        images[i, 0, 2 * c:2 * c + 3] += 0.85
    return images.clamp(0, 1)


def toy_batch(seed=0, unlabeled=12):
    y_u = torch.arange(unlabeled) % 3
    y_l = torch.tensor([0, 1, 2, 0, 1, 2])
    return Batch(x_unlabeled=toy_images(y_u, seed), x_labeled=toy_images(y_l, seed + 1), y_labeled=y_l)


def build(name, spec=SPEC, seed=0, **overrides):
    torch.manual_seed(seed)
    return get_method(name).build(spec, overrides)


def start_semi_supervised_phase(method, optimizer=None):
    """M1+M2 trains M2 from epoch m1_epochs on; ADGM has one phase. Returns the epoch index used."""
    epoch = getattr(method.config, "m1_epochs", 0)
    method.on_epoch_start(epoch, optimizer or method.configure_optimizer())
    return epoch


def with_label(noise, k):
    """The noise of one enumerated label: its own z noise, everything else (ADGM's a, M1's code) shared.
    The label axis of z is the third from the end (ADGM puts its draws of a in front)."""
    return {**noise, "z": noise["z"].select(-3, k)}


# ---- closed forms ------------------------------------------------------------------------------------------

def test_gaussian_kl_and_entropy_match_monte_carlo():
    generator = torch.Generator().manual_seed(0)
    mean = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    logvar = torch.tensor([0.3, -1.2, 0.8, -3.0], dtype=torch.float64)
    n = 200_000
    z = reparameterize(mean, logvar, torch.randn(n, 4, generator=generator, dtype=torch.float64))
    log_q = gaussian_log_pdf(z, mean, logvar).sum(1)
    log_p = gaussian_log_pdf(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)     # log N(z; 0, I)
    for mc_values, closed_form in [(log_q - log_p,
                                    gaussian_kl_to_standard(mean, logvar).sum()),
                                   (-log_q, gaussian_entropy(logvar).sum())]:
        tolerance = 5 * mc_values.std() / math.sqrt(n)   # five Monte Carlo standard errors
        assert abs(mc_values.mean() - closed_form) < tolerance


def test_log_densities_match_torch_distributions():
    generator = torch.Generator().manual_seed(1)
    x, mean = torch.randn(2, 50, generator=generator, dtype=torch.float64)
    logvar = torch.randn(50, generator=generator, dtype=torch.float64)
    expected = torch.distributions.Normal(mean, (0.5 * logvar).exp()).log_prob(x)
    torch.testing.assert_close(gaussian_log_pdf(x, mean, logvar), expected)
    logits = 4 * torch.randn(50, generator=generator, dtype=torch.float64)
    target = torch.rand(50, generator=generator, dtype=torch.float64)   # intensities in [0, 1], not only 0/1
    p = torch.sigmoid(logits)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, target),
                               target * p.log() + (1 - target) * (1 - p).log())
    # Stable where sigmoid saturates: log p = -softplus(-l) exactly, no -inf.
    assert torch.isfinite(bernoulli_log_likelihood(torch.tensor([-200.0, 200.0]), torch.tensor([1.0, 0.0]))).all()
    values = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(log_mean_exp(values, 0), values.exp().mean(0).log())


# ---- the template, once per method ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, overrides", [("m1m2", {}), ("adgm", {}), ("adgm", {"skip": True, "train_samples": 2})])
def test_enumerated_labels_equal_an_explicit_loop(name, overrides):
    method = build(name, **overrides).double()
    x = toy_batch().x_unlabeled.double()
    torch.manual_seed(5)
    noise = {k: v.double() for k, v in method.draw_noise(x, enumerate_labels=True).items()}
    assert noise["z"].shape[-3:-1] == (SPEC.num_classes, len(x))
    vectorised = method.unlabeled_elbo(x, noise)                 # what semi_supervised_step minimises
    log_q = method._log_q(method._prepare(x, noise))
    loop = torch.zeros(len(x), dtype=torch.float64)
    for k in range(SPEC.num_classes):
        label = torch.full((len(x),), k, dtype=torch.long)
        elbo_k, _ = method.labeled_terms(x, label, with_label(noise, k))
        loop += log_q[:, k].exp() * elbo_k                   # sum_y q(y|.) L(x, y)
    loop += -(log_q.exp() * log_q).sum(1)                    # + H(q(y|.))
    torch.testing.assert_close(vectorised, loop, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_classification_weight_is_alpha_n_over_n_labeled(name):
    bigger = DataSpec(**{**SPEC.__dict__, "num_train": 120})
    methods = [build(name, SPEC), build(name, bigger)]
    methods[1].load_state_dict(methods[0].state_dict())
    assert methods[0].class_weight == pytest.approx(0.1 * 60 / 6)
    assert methods[1].class_weight == pytest.approx(0.1 * 120 / 6) == classification_weight(0.1, bigger)
    batch, terms = toy_batch(), []
    for method in methods:
        start_semi_supervised_phase(method)
        torch.manual_seed(7)
        terms.append(method.training_step(batch))
    assert terms[0]["ce"] == terms[1]["ce"]
    difference = terms[1]["loss"] - terms[0]["loss"]
    torch.testing.assert_close(difference, 0.1 * (120 - 60) / 6 * terms[0]["ce"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_sample_decodes_the_requested_class_with_standard_normal_z(name, monkeypatch):
    # decode() replaced by a spy: the codes sample() hands it are [z ~ N(0, I), one-hot of the asked class]
    method = build(name)
    seen = []
    monkeypatch.setattr(method, "decode", lambda code: seen.append(code) or torch.zeros(len(code), *SPEC.image_shape))
    classes = torch.tensor([2, 0, 1]).repeat_interleave(2000)
    method.sample(classes, generator=torch.Generator().manual_seed(0))
    code = seen[0].double()
    z, y = code[:, :method.z_dim], code[:, method.class_code_slice]
    assert torch.equal(y.argmax(1), classes) and torch.equal(y.sum(1), torch.ones(len(classes), dtype=y.dtype))
    n = len(classes)
    assert z.mean(0).abs().max() < 5 / math.sqrt(n)                # mean 0: 5 standard errors
    assert (z.var(0) - 1).abs().max() < 5 * math.sqrt(2 / n)        # variance 1: 5 standard errors


@pytest.mark.parametrize("name", NAMES)
def test_sample_one_image_per_class_and_seeded(name):
    method = build(name)
    classes = torch.tensor([0, 1, 2, 2, 1])
    images = method.sample(classes, generator=torch.Generator().manual_seed(3))
    assert images.shape == (5, *SPEC.image_shape)
    assert images.min() >= 0 and images.max() <= 1
    again = method.sample(classes, generator=torch.Generator().manual_seed(3))
    other = method.sample(classes, generator=torch.Generator().manual_seed(4))
    assert torch.equal(images, again) and not torch.equal(images, other)
    assert method.draw_classes(100, generator=torch.Generator().manual_seed(0)).max() < SPEC.num_classes


@pytest.mark.parametrize("name", NAMES)
def test_training_step_is_deterministic_under_manual_seed(name):
    method, batch = build(name), toy_batch()
    epochs = [0, start_semi_supervised_phase(method)] if name == "m1m2" else [0]
    optimizer = method.configure_optimizer()
    for epoch in epochs:
        method.on_epoch_start(epoch, optimizer)
        runs = []
        for _ in range(2):
            torch.manual_seed(11)
            runs.append(method.training_step(batch))
        assert runs[0].keys() == runs[1].keys() and "loss" in runs[0]
        for key in runs[0]:
            assert runs[0][key].dim() == 0 and torch.isfinite(runs[0][key])
            assert torch.equal(runs[0][key], runs[1][key])


def fixed_seed_loss(method, batch):
    torch.manual_seed(123)
    with torch.no_grad():
        return method.training_step(batch)["loss"].item()


def optimise(method, batch, optimizer, steps):
    for _ in range(steps):
        loss = method.training_step(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("name", NAMES)
def test_a_few_optimiser_steps_lower_the_loss(name):
    method, batch = build(name, learning_rate=1e-3), toy_batch()
    optimizer = method.configure_optimizer()
    if name == "m1m2":   # phase 1: M1 alone
        method.on_epoch_start(0, optimizer)
        before = fixed_seed_loss(method, batch)
        optimise(method, batch, optimizer, 40)
        assert fixed_seed_loss(method, batch) < before - 1.0
    epoch = start_semi_supervised_phase(method, optimizer)
    if name == "adgm":
        assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)   # no decay in epoch 0
    method.training_step(batch)     # M1+M2 fixes its kept M1 dims on the first M2 batch
    before = fixed_seed_loss(method, batch)
    optimise(method, batch, optimizer, 40)
    after = fixed_seed_loss(method, batch)
    assert after < before - 1.0, (epoch, before, after)


@pytest.mark.parametrize("name", NAMES)
def test_encode_decode_and_class_code_slice(name):
    method = build(name)
    method.eval()
    x = toy_batch().x_unlabeled
    k, z_dim = SPEC.num_classes, method.z_dim
    assert method.class_code_slice == slice(z_dim, z_dim + k)
    assert method.has_classifier and not method.has_class_components
    with torch.no_grad():
        torch.manual_seed(2)
        code = method.encode(x)
        torch.manual_seed(2)
        predicted = method.classify(x).argmax(1)
        assert code.shape == (len(x), z_dim + k)
        torch.testing.assert_close(code[:, method.class_code_slice], F.one_hot(predicted, k).float())
        images = method.decode(code)
        assert images.shape == (len(x), *SPEC.image_shape) and images.min() >= 0 and images.max() <= 1
        halfway = method.decode(0.5 * code[:1] + 0.5 * code[1:2])   # interpolates z and the one-hot together
        assert halfway.shape == (1, *SPEC.image_shape) and torch.isfinite(halfway).all()


@pytest.mark.parametrize("name", NAMES)
def test_classify_returns_log_probabilities(name):
    method = build(name)
    with torch.no_grad():
        log_p = method.classify(toy_batch().x_unlabeled)
    assert log_p.shape == (12, SPEC.num_classes) and (log_p <= 0).all()
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(12))


# ---- method-specific -------------------------------------------------------------------------------------------

def test_adgm_classify_averages_probabilities_over_draws_of_a():
    method = build("adgm", eval_samples=25)
    x = toy_batch().x_unlabeled
    with torch.no_grad():
        torch.manual_seed(4)
        log_p = method.classify(x)
        torch.manual_seed(4)   # the same draws, 10 + 10 + 5 (classify's chunks)
        h = method.features(x)
        mean, logvar = method.q_a(h)
        probs = [F.softmax(method.q_y(h, reparameterize(mean, logvar, torch.randn(n, *mean.shape))), -1)
                 for n in (10, 10, 5)]
    torch.testing.assert_close(log_p, torch.cat(probs).mean(0).log(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_dynamic_binarisation_draws_bernoulli_pixels_of_the_intensities(name):
    batch = toy_batch()
    assert build(name).training_batch(batch) is batch            # default: the intensities themselves
    method = build(name, binarize="dynamic")
    torch.manual_seed(0)
    draws = [method.training_batch(batch) for _ in range(4000)]
    for field in ("x_unlabeled", "x_labeled"):
        stacked = torch.stack([getattr(d, field) for d in draws])
        assert set(stacked.unique().tolist()) <= {0.0, 1.0}
        # E[x] = intensity; 4,000 draws give a standard error below 0.008 per pixel
        assert (stacked.mean(0) - getattr(batch, field)).abs().max() < 0.04
    assert all(torch.equal(d.y_labeled, batch.y_labeled) for d in draws)
    torch.manual_seed(1)
    first = method.training_batch(batch).x_unlabeled
    torch.manual_seed(1)
    assert torch.equal(method.training_batch(batch).x_unlabeled, first)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_binarisation_mode_is_refused(name):
    with pytest.raises(ValueError, match="binarize"):
        build(name, binarize="static")


def test_adgm_learning_rate_schedule():
    method = build("adgm", lr_floor=1.5e-4)
    optimizer = method.configure_optimizer()
    for epoch, lr in [(0, 3e-4), (199, 3e-4), (200, 2.25e-4), (399, 2.25e-4), (400, 1.6875e-4), (600, 1.5e-4)]:
        method.on_epoch_start(epoch, optimizer)
        assert all(group["lr"] == pytest.approx(lr) for group in optimizer.param_groups), epoch


def test_m1m2_phases_train_disjoint_parameters_and_keep_dims_persist():
    method, batch = build("m1m2", drop_threshold=0.05), toy_batch()
    m1 = [p for n, p in method.named_parameters() if n.startswith("m1_")]
    m2 = [p for n, p in method.named_parameters() if not n.startswith("m1_")]
    optimizer = method.configure_optimizer()
    method.on_epoch_start(0, optimizer)
    method.training_step(batch)["loss"].backward()
    assert all(p.grad is not None for p in m1) and all(p.grad is None for p in m2)
    method.zero_grad(set_to_none=True)
    # M1 is frozen from here, so the spread of its posterior means on this batch is what M2's first batch
    # sees; a threshold at its median keeps some dims and drops others (an untrained toy M1's spreads all
    # lie below 0.05, where keeping everything would pass without any mask being computed)
    with torch.no_grad():
        std = method.m1_posterior(torch.cat([batch.x_unlabeled, batch.x_labeled]))[0].std(0)
    method.config.drop_threshold = std.median().item()
    expected = (std > std.median()).float()
    assert 0 < expected.sum() < len(expected)
    method.on_epoch_start(1, optimizer)   # m1_epochs = 1 on toy data
    method.training_step(batch)["loss"].backward()
    assert all(p.grad is None for p in m1) and all(p.grad is not None for p in m2)
    # The kept M1 dims were fixed on that first M2 batch, from the spread of M1's posterior means.
    assert bool(method.m1_keep_fixed) and torch.equal(method.m1_keep, expected)
    fresh = build("m1m2", drop_threshold=0.05, seed=1)
    fresh.load_state_dict(method.state_dict())   # a resumed run gets the same dims back
    assert torch.equal(fresh.m1_keep, method.m1_keep) and bool(fresh.m1_keep_fixed)


def test_settings_of_the_three_datasets():
    for dataset, shape, k in [("mnist", (1, 28, 28), 10), ("svhn", (3, 32, 32), 10), ("celeba", (3, 64, 64), 4)]:
        spec = DataSpec(dataset=dataset, image_shape=shape, num_classes=k, class_priors=(1 / k,) * k,
                        num_train=1000, num_labeled=100)
        m1m2 = get_method("m1m2").default_config(spec)
        adgm = get_method("adgm").default_config(spec)
        assert m1m2.architecture == adgm.architecture == ("conv" if dataset == "celeba" else "mlp")
        if dataset == "mnist":
            assert (m1m2.hidden, m1m2.latent_dim, m1m2.m2_latent_dim, m1m2.activation) == ((500, 500), 50, 50,
                                                                                          "softplus")
            assert (adgm.hidden, adgm.latent_dim, adgm.aux_dim) == ((500, 500), 100, 0)
        if dataset == "celeba":
            assert (m1m2.hidden, m1m2.latent_dim, m1m2.m2_hidden, m1m2.m2_decoder_hidden,
                    m1m2.m2_latent_dim) == ((300,), 300, (300,), (300, 300), 50)
            assert adgm.latent_dim == 300


@pytest.mark.device  # on a GPU where one is visible: M1+M2's and ADGM's resume is bit-identical there too
@pytest.mark.parametrize("name", NAMES)
def test_through_the_training_loop_with_resume(name, tmp_path, fake_data):
    from segma_bench.evaluation.classification import train
    from segma_bench.training import RunSpec
    overrides = {"eval_samples": 5} if name == "adgm" else {}   # the fake dataset gets toy defaults (1 M1 epoch)
    run = RunSpec(method=name, dataset="fake", overrides=overrides, epochs=3, progress=False)
    straight = train(run, tmp_path / "straight", data=fake_data)["history"]
    train(RunSpec(**{**run.__dict__, "epochs": 2}), tmp_path / "resumed", data=fake_data)
    resumed = train(run, tmp_path / "resumed", data=fake_data)["history"]
    first_keys = {"loss", "m1_rec", "m1_kl"} if name == "m1m2" else {"loss", "elbo_u", "elbo_l", "ce"}
    assert first_keys <= straight[0].keys() and {"elbo_u", "elbo_l", "ce"} <= straight[-1].keys()
    assert all(0 <= h["test_error"] <= 1 for h in straight)
    state = [torch.load(tmp_path / d / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]
             for d in ("straight", "resumed")]
    assert state[0].keys() == state[1].keys()
    for key in state[0]:   # M1+M2's kept dims (a buffer) and the phase survive the resume
        assert torch.equal(state[0][key], state[1][key]), key
    assert [h["loss"] for h in resumed] == [h["loss"] for h in straight]


# ---- the original codes' settings (recipes) and the switches they set ----------------------------------------

MNIST_SPEC = tiny_spec(dataset="mnist", num_train=60)  # the recipes are MNIST's


def test_kingma_code_recipe_settings():
    recipe = get_method("m1m2").recipe("kingma-code", "mnist")
    assert recipe.settings == {"m2_hidden": (300,), "m2_decoder_hidden": (300,), "objective": "rows",
                               "weight_prior": True, "binarize": "dynamic-m1", "m1_epochs": 5000}
    assert (recipe.batches_per_pass, recipe.epochs, recipe.labeled_subset) == (100, 5000 + 3000, "balanced")
    config = get_method("m1m2").build(MNIST_SPEC, {"m1_epochs": 7}, recipe="kingma-code").config
    assert (config.m2_hidden, config.m2_latent_dim, config.hidden, config.latent_dim) == ((300,), 50, (500, 500), 50)
    assert (config.alpha, config.learning_rate, config.m1_epochs) == (0.1, 3e-4, 7)   # --set still wins


def test_maaloe_code_recipes_settings():
    adgm = get_method("adgm")
    recipe = adgm.recipe("maaloe-code", "mnist")
    assert recipe.settings == {"train_samples": 5, "batch_norm": False, "weight_prior": True, "binarize": "dynamic"}
    assert (recipe.batches_per_pass, recipe.epochs) == (0, 0)      # the protocol's 100 + 100 and 1,000 epochs
    assert adgm.recipe("maaloe-code-sdgm", "mnist").settings == {**recipe.settings, "skip": True}
    config = adgm.build(MNIST_SPEC, recipe="maaloe-code").config
    assert (config.objective, config.alpha, config.lr_decay, config.lr_decay_every, config.lr_floor) == (
        "halves", 0.1, 0.75, 200, 3e-5)
    assert (config.hidden, config.latent_dim, config.grad_clip_norm, config.grad_clip_value) == ((500, 500), 100, 5, 1)
    assert adgm.paper_epochs("mnist") == 1000


@pytest.mark.parametrize("name, recipe", [("m1m2", "kingma-code"), ("adgm", "maaloe-code")])
def test_recipes_exist_for_mnist_only(name, recipe):
    from segma_bench.core.errors import UnknownNameError
    with pytest.raises(UnknownNameError, match="no recipe"):
        get_method(name).recipe(recipe, "svhn")


def test_batches_per_pass_sets_the_run_batch_sizes(make_fake):
    from segma_bench.datasets.base import Protocol
    from segma_bench.training.loop import RunSpec, resolve_protocol
    data = make_fake(num_train=1000, name="mnist", protocol=Protocol(num_labeled=100, unlabeled_batch_size=50,
                                                                     labeled_batch_size=50, paper_epochs=3))
    m1m2 = get_method("m1m2")
    spec = resolve_protocol(RunSpec(method="m1m2", dataset="mnist", recipe="kingma-code"), data, m1m2)
    assert (spec.unlabeled_batch_size, spec.labeled_batch_size, spec.epochs) == (10, 1, 8000)
    assert spec.identity()["unlabeled_batch_size"] == 10 and spec.identity()["labeled_batch_size"] == 1
    explicit = RunSpec(method="m1m2", dataset="mnist", recipe="kingma-code", unlabeled_batch_size=20, epochs=4)
    assert (lambda s: (s.unlabeled_batch_size, s.labeled_batch_size, s.epochs))(
        resolve_protocol(explicit, data, m1m2)) == (20, 1, 4)
    plain = resolve_protocol(RunSpec(method="m1m2", dataset="mnist"), data, m1m2)
    assert (plain.unlabeled_batch_size, plain.labeled_batch_size) == (50, 50)
    small = make_fake(num_train=60, name="mnist", protocol=Protocol(num_labeled=6, unlabeled_batch_size=10,
                                                                    labeled_batch_size=6, paper_epochs=3))
    with pytest.raises(ValueError, match="100 minibatches"):
        resolve_protocol(RunSpec(method="m1m2", dataset="mnist", recipe="kingma-code"), small, m1m2)


def test_objectives_against_hand_computed_values():
    from segma_bench.methods.distributions import semi_supervised_loss
    elbo_u, elbo_l, ce = torch.tensor([-10.0, -20.0]), torch.tensor([-5.0]), torch.tensor([2.0])
    # Maaloe et al.: each bound averaged over its part of the batch, weight 3 on the mean cross-entropy.
    assert semi_supervised_loss(elbo_u, elbo_l, ce, 3.0, "halves")["loss"].item() == pytest.approx(15 + 5 + 6)
    # Kingma et al. (learn_yz_x_ss.py l.296): f = -(sum_l (L + beta log q) + sum_u U) * n_minibatches / n_tot,
    # here one minibatch of 1 labeled + 2 unlabeled rows out of n_tot = 300 rows in 100 minibatches.
    kingma = -((-5.0 + 3.0 * -2.0) + (-10.0 - 20.0)) * 100 / 300
    assert semi_supervised_loss(elbo_u, elbo_l, ce, 3.0, "rows")["loss"].item() == pytest.approx(kingma)
    with pytest.raises(ValueError, match="objective"):
        semi_supervised_loss(elbo_u, elbo_l, ce, 3.0, "sum")


@pytest.mark.parametrize("name", NAMES)
def test_rows_objective_weights_each_row_once(name):
    batch, terms = toy_batch(), {}
    for objective in ("halves", "rows"):
        method = build(name, objective=objective)
        start_semi_supervised_phase(method)
        torch.manual_seed(7)
        terms[objective] = method.training_step(batch)
    halves, rows = terms["halves"], terms["rows"]
    for key in ("elbo_u", "elbo_l", "ce"):   # the same draws: only the weighting differs
        assert halves[key] == rows[key]
    w, n_u, n_l = 0.1 * 60 / 6, len(batch.x_unlabeled), len(batch.x_labeled)
    torch.testing.assert_close(halves["loss"], -(halves["elbo_u"] + halves["elbo_l"]) + w * halves["ce"])
    expected = -(n_u * rows["elbo_u"] + n_l * rows["elbo_l"] - w * n_l * rows["ce"]) / (n_u + n_l)
    torch.testing.assert_close(rows["loss"], expected)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_objective_is_refused(name):
    with pytest.raises(ValueError, match="objective"):
        build(name, objective="sum")


@pytest.mark.parametrize("name", NAMES)
def test_weight_prior_adds_half_the_squared_weights_over_n(name):
    batch, losses = toy_batch(), []
    for prior in (False, True):
        method = build(name, weight_prior=prior)
        start_semi_supervised_phase(method)
        torch.manual_seed(3)
        losses.append(method.training_step(batch)["loss"])
    # M1+M2: M2's weight matrices only (M1 is frozen by then); never biases.
    matrices = [p for n, p in method.named_parameters() if p.dim() >= 2 and not n.startswith("m1_")]
    assert matrices
    expected = 0.5 * sum(p.pow(2).sum() for p in matrices).item() / SPEC.num_train
    assert (losses[1] - losses[0]).item() == pytest.approx(expected, rel=1e-4)


def test_m1m2_dynamic_m1_binarises_only_the_m1_phase():
    batch = toy_batch()

    def loss(binarize, epoch):
        method = build("m1m2", binarize=binarize)
        method.on_epoch_start(epoch, method.configure_optimizer())
        torch.manual_seed(9)
        return method.training_step(batch)["loss"].item()

    assert loss("dynamic-m1", 0) == loss("dynamic", 0) != loss("none", 0)       # M1 on Bernoulli draws
    assert loss("dynamic-m1", 1) == loss("none", 1) != loss("dynamic", 1)       # M2 on codes of intensities
    with pytest.raises(ValueError, match="binarize"):
        build("adgm", binarize="dynamic-m1")                                    # an M1+M2 mode only


# ---- ADGM: draws of a per step, skip variant, batch norm ---------------------------------------------------

def test_adgm_several_draws_average_the_bound_and_the_class_probabilities():
    method = build("adgm", train_samples=3).double()
    x, y = toy_batch().x_unlabeled.double(), torch.arange(12) % 3
    torch.manual_seed(5)
    noise = {k: v.double() for k, v in method.draw_noise(x, enumerate_labels=True).items()}
    assert noise["a"].shape[0] == noise["z"].shape[0] == 3
    single = build("adgm", train_samples=1).double()
    single.load_state_dict(method.state_dict())
    draws = [{k: v[s:s + 1] for k, v in noise.items()} for s in range(3)]
    bounds = torch.stack([torch.stack([single.labeled_terms(x, torch.full_like(y, k), with_label(d, k))[0]
                                       for k in range(3)], 1) for d in draws])           # (S, B, K)
    q = torch.stack([single._log_q(single._prepare(x, d)).exp() for d in draws]).mean(0)  # mean over draws
    expected = (q * (bounds.mean(0) - q.log())).sum(1)                                 # sdgmssl.py l.279-285
    torch.testing.assert_close(method.unlabeled_elbo(x, noise), expected, rtol=1e-12, atol=1e-9)
    # The labeled cross-entropy is the mean over the draws of -log q(y|a,x) (sdgmssl.py l.248-249).
    labeled_noise = {"a": noise["a"], "z": noise["z"][:, 0]}
    per_draw = [F.nll_loss(single._log_q(single._prepare(x, {"a": labeled_noise["a"][s:s + 1]})), y, reduction="none")
                for s in range(3)]
    torch.testing.assert_close(method.labeled_terms(x, y, labeled_noise)[1], torch.stack(per_draw).mean(0))


def test_adgm_skip_variant_graph():
    torch.manual_seed(0)
    sdgm, adgm = build("adgm", skip=True), build("adgm")
    assert len(sdgm.p_x.dense.inputs) == 3 and len(sdgm.p_a.net.inputs) == 2      # p(x|y,z,a), p(a|y,z)
    assert len(adgm.p_x.dense.inputs) == 2 and len(adgm.p_a.net.inputs) == 3      # p(x|y,z), p(a|x,y,z)
    x = toy_batch().x_unlabeled
    torch.manual_seed(1)
    noise = sdgm.draw_noise(x, enumerate_labels=False)
    y = torch.arange(12) % 3
    shifted = {**noise, "a": noise["a"] + 1.0}      # the bound of SDGM reads a through p(x|a,y,z) as well
    elbo, _ = sdgm.labeled_terms(x, y, noise)
    assert not torch.allclose(elbo, sdgm.labeled_terms(x, y, shifted)[0])
    # Generation needs no x: a comes from p(a|y,z).
    images = sdgm.sample(torch.tensor([0, 1, 2]), generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, *SPEC.image_shape) and 0 <= images.min() and images.max() <= 1


def test_batch_norm_uses_batch_statistics_in_training_and_running_ones_in_eval():
    from segma_bench.methods.distributions import BatchNormOverLeadingDims
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in build("adgm").modules())
    method = build("adgm", batch_norm=True)
    norms = [m for m in method.modules() if isinstance(m, BatchNormOverLeadingDims)]
    assert len(norms) == 2 * 5      # two hidden layers on each of the five edges
    x = toy_batch().x_unlabeled
    h = method.features(x)
    first = method.q_a.net.rest[0]  # the normalisation of q(a|x)'s first hidden layer
    pre_activation = method.q_a.net.inputs[0](h)
    method.train()
    before = first.running_mean.clone()
    normalised = first(pre_activation)
    units = pre_activation.shape[-1]
    torch.testing.assert_close(normalised.mean(0), torch.zeros(units), atol=1e-5, rtol=0)
    variance = pre_activation.var(0, unbiased=False).detach()      # Lasagne's epsilon 1e-4 under the root
    torch.testing.assert_close(normalised.var(0, unbiased=False), variance / (variance + 1e-4), atol=1e-4, rtol=1e-4)
    assert not torch.equal(first.running_mean, before)                          # updated from the batch
    mean_train_row0 = method.q_a(h)[0][:1]
    assert not torch.allclose(mean_train_row0, method.q_a(h[:2])[0][:1])        # depends on the rest of the batch
    method.eval()
    frozen = first.running_mean.clone()
    with torch.no_grad():
        together, alone = method.q_a(h)[0][:1], method.q_a(h[:1])[0]
    torch.testing.assert_close(together, alone)                                 # running statistics: row by row
    assert torch.equal(first.running_mean, frozen)
    # Statistics are over every leading dimension (draws of a, enumerated labels, batch), as over flat rows.
    layer, values = BatchNormOverLeadingDims(4).train(), torch.randn(2, 3, 5, 4)
    flat = torch.nn.BatchNorm1d(4, eps=1e-4).train()
    torch.testing.assert_close(layer(values), flat(values.reshape(-1, 4)).reshape(values.shape))


def test_adgm_refuses_zero_training_draws():
    with pytest.raises(ValueError, match="train_samples"):
        build("adgm", train_samples=0)


@pytest.mark.parametrize("name, recipe, overrides", [
    ("m1m2", "kingma-code", {"m1_epochs": 1}),
    ("adgm", "maaloe-code-sdgm", {"eval_samples": 2, "batch_norm": True, "train_samples": 2}),
])
def test_recipes_through_the_training_loop(name, recipe, overrides, tmp_path, make_fake):
    from segma_bench.datasets.base import Protocol
    from segma_bench.evaluation.classification import train
    from segma_bench.training import RunSpec
    data = make_fake(num_train=200, name="mnist", protocol=Protocol(num_labeled=100, unlabeled_batch_size=20,
                                                                    labeled_batch_size=100, paper_epochs=3))
    steps = []
    run = RunSpec(method=name, dataset="mnist", recipe=recipe, overrides=overrides, epochs=2, progress=False)
    history = train(run, tmp_path / "run", data=data, on_step=lambda epoch, step: steps.append(epoch))["history"]
    saved = __import__("json").loads((tmp_path / "run" / "config.json").read_text())
    if name == "m1m2":   # 100 minibatches per pass: 2 unlabeled + 1 labeled rows, 100 steps per epoch
        assert (saved["run"]["unlabeled_batch_size"], saved["run"]["labeled_batch_size"]) == (2, 1)
        assert steps.count(0) == steps.count(1) == 100
        assert saved["method_config"]["objective"] == "rows" and list(saved["method_config"]["m2_hidden"]) == [300]
    else:
        assert saved["method_config"]["skip"] and saved["method_config"]["train_samples"] == 2
    assert all(math.isfinite(h["loss"]) and 0 <= h["test_error"] <= 1 for h in history)
