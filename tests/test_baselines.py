"""M1+M2 and ADGM: one test template for both (parametrised over the method names), plus the closed forms.

Toy data only (8x8 images, 3 classes, N = 60, N_labeled = 6); the whole file runs in seconds on a CPU."""
import math

import pytest
import torch
import torch.nn.functional as F

from methods import Batch, DataSpec, get_method
from methods.distributions import (bernoulli_log_likelihood, classification_weight, gaussian_entropy,
                                   gaussian_kl_to_standard, gaussian_log_pdf, log_mean_exp, reparameterize,
                                   standard_normal_log_pdf)

NAMES = ["m1m2", "adgm"]
SPEC = DataSpec(dataset="toy", image_shape=(1, 8, 8), num_classes=3, class_priors=(1 / 3, 1 / 3, 1 / 3),
                num_train=60, num_labeled=6)


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
    for mc_values, closed_form in [(log_q - standard_normal_log_pdf(z).sum(1),
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

@pytest.mark.parametrize("name", NAMES)
def test_enumerated_labels_equal_an_explicit_loop(name):
    method = build(name).double()
    x = toy_batch().x_unlabeled.double()
    torch.manual_seed(5)
    noise = {k: v.double() for k, v in method.draw_noise(x, enumerate_labels=True).items()}
    assert noise["z"].shape[-3:-1] == (SPEC.num_classes, len(x))
    vectorised = method.unlabeled_elbo(x, noise)
    log_q = method.class_log_probs(x, noise)
    loop = torch.zeros(len(x), dtype=torch.float64)
    for k in range(SPEC.num_classes):
        label = torch.full((len(x),), k, dtype=torch.long)
        elbo_k = method.labeled_elbo(x, label, with_label(noise, k))
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
    method.on_epoch_start(1, optimizer)   # m1_epochs = 1 on toy data
    method.training_step(batch)["loss"].backward()
    assert all(p.grad is None for p in m1) and all(p.grad is not None for p in m2)
    # The kept M1 dims were fixed on that first M2 batch, from the spread of M1's posterior means.
    with torch.no_grad():
        std = method.m1_posterior(torch.cat([batch.x_unlabeled, batch.x_labeled]))[0].std(0)
    expected = (std > 0.05).float()
    if expected.sum() == 0:
        expected = torch.ones_like(expected)
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


@pytest.mark.parametrize("name", NAMES)
def test_through_the_training_loop_with_resume(name, tmp_path, fake_data):
    from training import RunSpec, train
    overrides = {"eval_samples": 5} if name == "adgm" else {}   # the fake dataset gets toy defaults (1 M1 epoch)
    run = RunSpec(method=name, dataset="fake", overrides=overrides, epochs=3, progress=False)
    straight = train(run, tmp_path / "straight", data=fake_data)["history"]
    train(RunSpec(**{**run.__dict__, "epochs": 2}), tmp_path / "resumed", data=fake_data)
    resumed = train(run, tmp_path / "resumed", data=fake_data)["history"]
    first_keys = {"loss", "m1_rec", "m1_kl"} if name == "m1m2" else {"loss", "elbo_u", "elbo_l", "ce"}
    assert first_keys <= straight[0].keys() and {"elbo_u", "elbo_l", "ce"} <= straight[-1].keys()
    assert all(0 <= h["test_error"] <= 1 for h in straight)
    state = [torch.load(tmp_path / d / "checkpoint.pt", weights_only=False)["model"] for d in ("straight", "resumed")]
    assert state[0].keys() == state[1].keys()
    for key in state[0]:   # M1+M2's kept dims (a buffer) and the phase survive the resume
        assert torch.equal(state[0][key], state[1][key]), key
    assert [h["loss"] for h in resumed] == [h["loss"] for h in straight]
