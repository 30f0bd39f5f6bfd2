"""SeGMA's objective (Eq. 9 = Eq. 1 + alpha log Eq. 8 + beta Eq. 5 with Eq. 7) and the CWAE reduction."""
import math
from dataclasses import asdict

import pytest
import torch

import segma_bench.methods as methods
from segma_bench.methods.base import Batch, DataSpec, OperationNotSupported
from segma_bench.methods.cramer_wold import silverman_gamma
from segma_bench.methods.segma import initial_means
from test_cramer_wold import cw_pairwise, cwae_reference

SPEC = DataSpec(dataset="toy", image_shape=(1, 6, 6), num_classes=3, class_priors=(0.5, 0.3, 0.2),
                num_train=30, num_labeled=10)
SMALL = {"hidden": (16,)}


def toy_batch(seed=0, unlabeled=8, labeled=6):
    g = torch.Generator().manual_seed(seed)
    return Batch(x_unlabeled=torch.rand(unlabeled, 1, 6, 6, generator=g),
                 x_labeled=torch.rand(labeled, 1, 6, 6, generator=g),
                 y_labeled=torch.tensor([0, 1, 2, 0, 2, 1][:labeled]))


def build(name, overrides=None, seed=0):
    torch.manual_seed(seed)
    return methods.get_method(name).build(SPEC, {**SMALL, **(overrides or {})})


def log_posterior_reference(z, means, priors):
    """log of Eq. 7 in float64 from the Gaussian log densities (the (2 pi)^(-D/2) factor cancels)."""
    z, means, priors = z.detach().double(), means.detach().double(), priors.detach().double()
    rows = []
    for zi in z:
        log_joint = [math.log(p) - 0.5 * float(((zi - mu) ** 2).sum()) for p, mu in zip(priors.tolist(), means)]
        top = max(log_joint)
        norm = top + math.log(sum(math.exp(v - top) for v in log_joint))
        rows.append([v - norm for v in log_joint])
    return torch.tensor(rows, dtype=torch.float64)


# ---- CWAE is SeGMA with one fixed component at the origin -------------------------------------------------
def test_cwae_equals_segma_with_one_fixed_component_at_origin_on_unlabeled_rows():
    cwae = build("cwae", seed=1)
    segma = build("segma", dict(num_components=1, learn_means=False, beta=0.0, uniform_priors=True,
                                reconstruction_rows="unlabeled", divergence_rows="unlabeled"), seed=2)
    rows = {"reconstruction_rows", "divergence_rows"}  # CWAE has no labeled rows to choose between
    assert {k: v for k, v in asdict(cwae.config).items() if k not in rows} == \
        {k: v for k, v in asdict(segma.config).items() if k not in rows}
    segma.load_state_dict(cwae.state_dict())  # same keys: encoder, decoder, means, priors, variances
    assert "means" in dict(cwae.named_buffers())
    assert "means" not in dict(cwae.named_parameters())
    assert torch.equal(cwae.means, torch.zeros(1, 10))
    assert torch.equal(cwae.priors, torch.ones(1))
    for seed in (0, 1):
        batch = toy_batch(seed)
        a, b = cwae.training_step(batch), segma.training_step(batch)
        assert set(a) == set(b) == {"mse", "log_cw", "loss"}
        for key in a:
            assert torch.equal(a[key], b[key]), key
    # and the default SeGMA on the same weights is a different objective
    full = build("segma")
    assert len(full.means) == 3
    assert not torch.equal(cwae.training_step(toy_batch())["log_cw"], full.training_step(toy_batch())["log_cw"])


def test_cwae_penalty_is_log_of_the_gmum_formula_plus_a_constant():
    cwae = build("cwae")
    batch = toy_batch()
    x = batch.x_unlabeled  # CWAE trains on the unlabeled rows only
    with torch.no_grad():
        terms = cwae.training_step(batch)
        z = cwae.encode(x).double()
    gamma = silverman_gamma(len(z))  # N_c = m / K with K = 1
    expected = math.log(cwae_reference(z, gamma) / (2.0 * math.sqrt(math.pi)))
    assert terms["log_cw"].item() == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_cwae_has_no_classifier_and_no_class_components():
    cwae = build("cwae")
    assert cwae.has_classifier is False and cwae.has_class_components is False
    with pytest.raises(OperationNotSupported):
        cwae.class_means()
    assert torch.equal(cwae.draw_classes(5), torch.zeros(5, dtype=torch.long))


# ---- the SeGMA loss terms ---------------------------------------------------------------------------------
def test_segma_loss_terms_match_the_paper():
    model = build("segma")
    cfg = model.config
    assert (cfg.alpha, cfg.beta, cfg.learning_rate) == (5.0, 10.0, 3e-4)  # Section VI.A
    batch = toy_batch(3)
    with torch.no_grad():
        terms = model.training_step(batch)
        x = torch.cat([batch.x_unlabeled, batch.x_labeled])
        z = model.encode(x)
        recon = model.decode(z)
    # Eq. 1: (1/n) sum_i ||x_i - D(E(x_i))||^2 over the whole batch, pixels summed
    mse = sum(float(torch.dist(recon[i].double(), x[i].double())) ** 2 for i in range(len(x))) / len(x)
    assert terms["mse"].item() == pytest.approx(mse, rel=1e-5)
    # Eq. 8 over the whole batch, gamma from Silverman's rule with N_c = m / K
    d2 = cw_pairwise(z.double(), model.means.double(), model.priors.double(), model.variances.double(),
                     silverman_gamma(len(x) / 3))
    assert terms["log_cw"].item() == pytest.approx(math.log(d2), rel=1e-4, abs=1e-4)
    # Eq. 5 with Eq. 7 over the labeled rows only (they come after the unlabeled ones)
    log_post = log_posterior_reference(z[len(batch.x_unlabeled):], model.means, model.priors)
    ce = -log_post[torch.arange(len(batch.y_labeled)), batch.y_labeled].mean().item()
    assert terms["ce"].item() == pytest.approx(ce, rel=1e-5)
    assert ce > 0.1  # an untrained classifier: a real cross-entropy, not ~0
    # Eq. 9 with the defaults alpha = 5, beta = 10
    assert terms["loss"].item() == pytest.approx(mse + 5.0 * math.log(d2) + 10.0 * ce, rel=1e-5)


def test_alpha_and_beta_weigh_the_terms():
    batch = toy_batch(4)
    base = build("segma").training_step(batch)
    tuned = build("segma", {"alpha": 2.0, "beta": 0.5}).training_step(batch)
    for key in ("mse", "log_cw", "ce"):
        assert torch.allclose(base[key], tuned[key])  # same seed, same weights
    expected = tuned["mse"] + 2.0 * tuned["log_cw"] + 0.5 * tuned["ce"]
    assert tuned["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert abs(tuned["loss"].item() - base["loss"].item()) > 1e-3


def test_ce_only_on_labeled_rows():
    """Changing the unlabeled images changes the MSE and the CW term but not the cross-entropy."""
    model = build("segma")
    a, b = toy_batch(5), toy_batch(5)
    b.x_unlabeled = torch.rand_like(b.x_unlabeled)
    ta, tb = model.training_step(a), model.training_step(b)
    assert torch.equal(ta["ce"], tb["ce"])
    assert not torch.equal(ta["mse"], tb["mse"])
    assert not torch.equal(ta["log_cw"], tb["log_cw"])


def test_divergence_on_unlabeled_rows_only():
    """divergence_rows='unlabeled' (the authors' code): d^2 over the unlabeled codes with gamma from their
    count; the labeled images still enter the MSE and the CE but no longer the CW term."""
    model = build("segma", {"divergence_rows": "unlabeled"})
    a, b = toy_batch(6), toy_batch(6)
    b.x_labeled = torch.rand_like(b.x_labeled)
    ta, tb = model.training_step(a), model.training_step(b)
    assert torch.equal(ta["log_cw"], tb["log_cw"])
    assert not torch.equal(ta["mse"], tb["mse"]) and not torch.equal(ta["ce"], tb["ce"])
    with torch.no_grad():
        z = model.encode(a.x_unlabeled).double()
    d2 = cw_pairwise(z, model.means.double(), model.priors.double(), model.variances.double(),
                     silverman_gamma(len(z) / 3))
    assert ta["log_cw"].item() == pytest.approx(math.log(d2), rel=1e-4, abs=1e-4)
    # the default (Section V's text) differs on the same weights
    model.config.divergence_rows = "batch"
    assert abs(model.training_step(a)["log_cw"].item() - ta["log_cw"].item()) > 1e-4
    with pytest.raises(ValueError, match="divergence_rows"):
        build("segma", {"divergence_rows": "labeled"})


def test_segma_unsup_has_no_ce_and_uniform_priors():
    model = build("segma-unsup")
    assert model.config.beta == 0.0
    assert torch.allclose(model.priors, torch.full((3,), 1.0 / 3))
    terms = model.training_step(toy_batch())
    assert "ce" not in terms
    assert terms["loss"].item() == pytest.approx((terms["mse"] + 5.0 * terms["log_cw"]).item(), rel=1e-6)
    assert model.has_classifier is False and model.has_class_components is True


def test_priors_are_the_labeled_class_proportions_and_means_are_learned():
    model = build("segma")
    assert torch.allclose(model.priors, torch.tensor([0.5, 0.3, 0.2]))
    assert "means" in dict(model.named_parameters())
    before = model.means.detach().clone()
    optimizer = model.configure_optimizer()
    model.training_step(toy_batch())["loss"].backward()
    assert model.means.grad is not None and model.means.grad.abs().sum() > 0
    optimizer.step()
    assert not torch.equal(before, model.means.detach())


def test_initial_means_are_equidistant_and_symmetric():
    for k, d, distance in ((3, 10, 2.0), (10, 10, 8.5), (4, 20, 5.0), (2, 3, 1.0)):
        means = initial_means(k, d, distance)
        assert means.shape == (k, d)
        pairwise = torch.cdist(means.double(), means.double())
        off = pairwise[~torch.eye(k, dtype=torch.bool)]
        assert torch.allclose(off, torch.full_like(off, distance), rtol=1e-6), (k, d, off)
        assert torch.allclose(means.norm(dim=1), torch.full((k,), distance / 2 ** 0.5), rtol=1e-6)
        owners = (means != 0).int()
        assert owners.sum(0).max() <= 1                      # a latent dimension belongs to one component
        for c in range(k):                                    # latent dimension j belongs to component j mod K
            assert all(j % k == c for j in means[c].nonzero().flatten().tolist())
    assert torch.allclose(initial_means(10, 10, 8.5), (8.5 / 2 ** 0.5) * torch.eye(10))
    assert torch.equal(initial_means(1, 10, 5.0), torch.zeros(1, 10))  # CWAE: the origin
    with pytest.raises(ValueError, match="latent dimension"):
        initial_means(12, 10, 1.0)


def test_log_guard_keeps_the_loss_finite_when_d2_is_not_positive(monkeypatch):
    import segma_bench.methods.cramer_wold as cw
    model = build("segma")
    for fake in (0.0, -1e-4):
        monkeypatch.setattr(cw, "cramer_wold_distance_sq", lambda z, *a, _v=fake: z.sum() * 0 + _v)
        terms = model.training_step(toy_batch())
        assert torch.isfinite(terms["loss"]) and torch.isfinite(terms["log_cw"])
        assert terms["log_cw"].item() == pytest.approx(math.log(model.config.log_floor), rel=1e-6)
        model.zero_grad()
        terms["loss"].backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_sample_draws_from_the_asked_component(monkeypatch):
    # decoder replaced by the identity: the codes must be N(means[k], variances[k] I) for the asked class k
    model = build("segma")
    with torch.no_grad():
        model.variances.copy_(torch.tensor([0.25, 1.0, 4.0]))
    monkeypatch.setattr(model, "decoder", torch.nn.Identity())
    per_class = 4000
    classes = torch.tensor([1, 2, 0]).repeat_interleave(per_class)
    with torch.no_grad():
        codes = model.sample(classes, generator=torch.Generator().manual_seed(0)).double()
    for k in range(3):
        z = codes[classes == k]
        var = model.variances[k].item()
        assert (z.mean(0) - model.means[k].double()).abs().max() < 5 * math.sqrt(var / per_class)
        assert ((z.var(0) / var) - 1).abs().max() < 5 * math.sqrt(2 / per_class)


def test_classify_sample_and_draw_classes():
    model = build("segma")
    batch = toy_batch()
    with torch.no_grad():
        log_post = model.classify(batch.x_labeled)
        ref = log_posterior_reference(model.encode(batch.x_labeled), model.means, model.priors)
        assert torch.allclose(log_post.double(), ref, atol=1e-5)
        images = model.sample(torch.tensor([0, 1, 2, 2]), generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 1, 6, 6)
    assert images.min() >= 0 and images.max() <= 1
    draws = model.draw_classes(4000, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=3).double() / 4000
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), atol=0.03)


def test_build_rejects_unknown_settings():
    with pytest.raises(ValueError, match="no_such_setting"):
        methods.get_method("segma").build(SPEC, {"no_such_setting": 1})
