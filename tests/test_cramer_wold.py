"""Eq. 3, 4, 7 and 8 of the paper (methods/cramer_wold.py) against independent float64 computations."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from segma_bench.methods.cramer_wold import (
    cramer_wold_distance_sq,
    gaussian_class_log_posterior,
    log_cramer_wold,
    silverman_gamma,
)


# ---- independent reference: Eq. 3 pair by pair, plain Python floats ---------------------------------------
def phi_approx(s, dim):
    return (1.0 + 4.0 * s / (2.0 * dim - 3.0)) ** -0.5


def inner(a, alpha, b, beta, gamma):
    """<N(a, alpha I), N(b, beta I)>_gamma of Eq. 3, for a and b given as lists of floats."""
    width = alpha + beta + 2.0 * gamma
    sq = sum((ai - bi) ** 2 for ai, bi in zip(a, b))
    return phi_approx(sq / (2.0 * width), len(a)) / math.sqrt(2.0 * math.pi * width)


def cw_pairwise(z, means, priors, variances, gamma):
    """<Z,Z> - 2<Z,P> + <P,P> with Z the uniform mixture of N(z_i, 0) (Eq. 4 generalised to Eq. 8)."""
    z, means = z.tolist(), means.tolist()
    priors, variances = [float(p) for p in priors], [float(v) for v in variances]
    m, k = len(z), len(means)
    zz = sum(inner(z[i], 0.0, z[j], 0.0, gamma) for i in range(m) for j in range(m)) / m ** 2
    zp = sum(priors[c] * inner(z[i], 0.0, means[c], variances[c], gamma)
             for i in range(m) for c in range(k)) / m
    pp = sum(priors[c] * priors[d] * inner(means[c], variances[c], means[d], variances[d], gamma)
             for c in range(k) for d in range(k))
    return zz - 2.0 * zp + pp


def cwae_reference(x, gamma):
    """The gmum CWAE formula for a sample against N(0, I), plain Python floats."""
    x = x.tolist()
    n, dim = len(x), len(x[0])
    c = 2.0 * dim - 3.0
    sq = lambda a, b: sum((ai - bi) ** 2 for ai, bi in zip(a, b))  # noqa: E731
    pairs = sum((gamma + sq(x[i], x[j]) / c) ** -0.5 for i in range(n) for j in range(n)) / n ** 2
    single = sum((gamma + 0.5 + sq(x[i], [0.0] * dim) / c) ** -0.5 for i in range(n)) * 2.0 / n
    return 1.0 / math.sqrt(1.0 + gamma) + pairs - single


def mixture(dim=10, dtype=torch.float64, seed=0):
    """Three components with unequal priors and unequal variances, and a sample of 7 points near them."""
    g = torch.Generator().manual_seed(seed)
    means = 2.0 * torch.randn(3, dim, generator=g, dtype=dtype)
    priors = torch.tensor([0.5, 0.3, 0.2], dtype=dtype)
    variances = torch.tensor([1.0, 0.25, 2.5], dtype=dtype)
    z = means[torch.tensor([0, 0, 1, 2, 0, 1, 2])] + torch.randn(7, dim, generator=g, dtype=dtype)
    return z, means, priors, variances


# ---- Eq. 8 ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim,gamma", [(10, 0.4467), (20, 1.0), (32, 0.05)])
def test_eq8_matches_pairwise_kernel_form(dim, gamma):
    z, means, priors, variances = mixture(dim)
    expected = cw_pairwise(z, means, priors, variances, gamma)
    got = cramer_wold_distance_sq(z, means, priors, variances, gamma).item()
    assert expected > 1e-4  # a genuine, non-degenerate distance
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-14)


def test_eq8_float32_close_to_float64_reference():
    z, means, priors, variances = mixture(10)
    expected = cw_pairwise(z, means, priors, variances, 0.3)
    got = cramer_wold_distance_sq(z.float(), means.float(), priors.float(), variances.float(), 0.3).item()
    assert got == pytest.approx(expected, rel=1e-4)


def test_eq8_gamma_may_be_a_tensor():
    z, means, priors, variances = mixture(10)
    a = cramer_wold_distance_sq(z, means, priors, variances, 0.3)
    b = cramer_wold_distance_sq(z, means, priors, variances, torch.tensor(0.3, dtype=torch.float64))
    assert a.item() == pytest.approx(b.item(), rel=1e-14)


def test_sample_against_itself_as_mixture_is_zero():
    """The sample written as the mixture sum_i (1/m) N(z_i, 0): <Z,Z> - 2<Z,Z> + <Z,Z> = 0."""
    z, *_ = mixture(10)
    m = len(z)
    uniform = torch.full((m,), 1.0 / m, dtype=torch.float64)
    zero = torch.zeros(m, dtype=torch.float64)
    d2 = cramer_wold_distance_sq(z, z, uniform, zero, 0.5).item()
    assert abs(d2) < 1e-13
    # the same points with other weights are a different distribution: strictly positive distance
    skewed = torch.arange(1.0, m + 1, dtype=torch.float64)
    d2_skewed = cramer_wold_distance_sq(z, z, skewed / skewed.sum(), zero, 0.5).item()
    assert d2_skewed > 1e-4
    assert d2_skewed == pytest.approx(cw_pairwise(z, z, skewed / skewed.sum(), zero, 0.5), rel=1e-10)


def test_invariant_to_row_permutation_and_common_translation():
    z, means, priors, variances = mixture(10)
    base = cramer_wold_distance_sq(z, means, priors, variances, 0.4).item()
    perm = torch.tensor([3, 6, 0, 5, 1, 4, 2])
    assert cramer_wold_distance_sq(z[perm], means, priors, variances, 0.4).item() == pytest.approx(base, rel=1e-12)
    shift = torch.linspace(-3.0, 5.0, 10, dtype=torch.float64)
    moved = cramer_wold_distance_sq(z + shift, means + shift, priors, variances, 0.4).item()
    assert moved == pytest.approx(base, rel=1e-9)
    # permuting the components together with their priors and variances changes nothing either
    k = torch.tensor([2, 0, 1])
    assert cramer_wold_distance_sq(z, means[k], priors[k], variances[k], 0.4).item() == pytest.approx(base, rel=1e-12)
    # but permuting the priors alone does
    assert abs(cramer_wold_distance_sq(z, means, priors[k], variances, 0.4).item() - base) > 1e-4


def test_grows_as_the_sample_moves_away():
    g = torch.Generator().manual_seed(1)
    means = torch.zeros(1, 10, dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    z = torch.randn(200, 10, generator=g, dtype=torch.float64)  # a sample of the target itself
    direction = torch.randn(10, generator=g, dtype=torch.float64)
    direction /= direction.norm()
    values = [cramer_wold_distance_sq(z + s * direction, means, one, one, 0.3).item() for s in (0, 0.5, 1, 2, 4, 8)]
    assert all(b > a for a, b in zip(values, values[1:])), values
    assert values[-1] > 10 * values[0]


@pytest.mark.parametrize("seed,dim,gamma,n", [(0, 10, 0.4467, 12), (1, 20, 0.2, 9), (2, 10, 1.5, 5)])
def test_k1_equals_cwae_reference_up_to_one_over_two_sqrt_pi(seed, dim, gamma, n):
    """Eq. 8 with K = 1, mu = 0, sigma^2 = 1 is the gmum CWAE formula times 1 / (2 sqrt(pi)):
    1/sqrt(2pi 2g) phi(d/4g) = sqrt(g)/sqrt(4 pi g) (g + d/(2D-3))^-1/2, and likewise for the other two
    terms, so the factor is the same for every sample (and disappears under the log up to a constant)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.7 * torch.randn(n, dim, generator=g, dtype=torch.float64) + 0.3
    ours = cramer_wold_distance_sq(x, torch.zeros(1, dim, dtype=torch.float64), torch.ones(1, dtype=torch.float64),
                                   torch.ones(1, dtype=torch.float64), gamma).item()
    assert ours / cwae_reference(x, gamma) == pytest.approx(1.0 / (2.0 * math.sqrt(math.pi)), rel=1e-10)


def test_silverman_gamma():
    assert silverman_gamma(10) == pytest.approx((4.0 / 30.0) ** 0.4, rel=1e-12)
    assert silverman_gamma(10) == pytest.approx(0.4467, abs=1e-4)   # MNIST: 100 rows, 10 classes
    assert silverman_gamma(1) == pytest.approx(1.1219, abs=1e-4)
    assert silverman_gamma(200 / 3) == pytest.approx(math.exp(0.4 * math.log(4.0 / 200.0)), rel=1e-12)
    assert silverman_gamma(100) < silverman_gamma(10)  # more points per component, narrower kernel


def test_log_cramer_wold_is_finite_when_the_distance_vanishes():
    z, *_ = mixture(10, dtype=torch.float32)
    m = len(z)
    z.requires_grad_(True)
    d2 = cramer_wold_distance_sq(z, z.detach(), torch.full((m,), 1.0 / m), torch.zeros(m), 0.5)
    assert abs(d2.item()) < 1e-6  # zero by construction, up to rounding
    value = log_cramer_wold(z, z.detach(), torch.full((m,), 1.0 / m), torch.zeros(m), 0.5, floor=1e-10)
    assert torch.isfinite(value)
    assert value.item() >= math.log(1e-10) - 1e-4
    value.backward()
    assert torch.isfinite(z.grad).all()


def test_log_cramer_wold_guards_zero_and_negative(monkeypatch):
    import segma_bench.methods.cramer_wold as cw
    z, means, priors, variances = mixture(10)
    for fake in (0.0, -1e-3):
        monkeypatch.setattr(cw, "cramer_wold_distance_sq",
                            lambda *args, _v=fake: torch.tensor(_v, dtype=torch.float64))
        value = cw.log_cramer_wold(z, means, priors, variances, 0.5, floor=1e-10)
        assert torch.isfinite(value)
        assert value.item() == pytest.approx(math.log(1e-10))
    # above the floor it is the plain log
    monkeypatch.undo()
    d2 = cw.cramer_wold_distance_sq(z, means, priors, variances, 0.5)
    assert cw.log_cramer_wold(z, means, priors, variances, 0.5).item() == pytest.approx(math.log(d2.item()), rel=1e-12)


# ---- Eq. 7 ----------------------------------------------------------------------------------------------
def test_eq7_posterior_is_bayes_rule_with_gaussian_densities():
    dim = 10
    g = torch.Generator().manual_seed(3)
    means = 0.4 * torch.randn(3, dim, generator=g, dtype=torch.float64)
    priors = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    z = means[torch.tensor([0, 1, 2, 2, 1])] + torch.randn(5, dim, generator=g, dtype=torch.float64)
    densities = np.stack([multivariate_normal.pdf(z.numpy(), mean=means[k].numpy(), cov=np.eye(dim))
                          for k in range(3)], axis=1)
    joint = densities * priors.numpy()[None, :]
    expected = joint / joint.sum(1, keepdims=True)
    got = gaussian_class_log_posterior(z, means, priors).exp().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-300)
    assert (expected.max(1) < 0.9).sum() >= 2  # not a trivially one-hot case
    got32 = gaussian_class_log_posterior(z.float(), means.float(), priors.float()).exp().numpy()
    np.testing.assert_allclose(got32, expected, rtol=2e-4, atol=1e-6)


def test_eq7_priors_matter():
    """A point exactly half way between two means goes to the class with the larger prior, in ratio p1/p2."""
    means = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    priors = torch.tensor([0.8, 0.2], dtype=torch.float64)
    post = gaussian_class_log_posterior(torch.zeros(1, 2, dtype=torch.float64), means, priors).exp()[0]
    assert post[0].item() == pytest.approx(0.8, rel=1e-12)


def test_eq7_far_away_codes_stay_finite_where_naive_normalisation_underflows():
    dim = 10
    g = torch.Generator().manual_seed(4)
    means = torch.randn(3, dim, generator=g, dtype=torch.float64)
    priors = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    z = 1e3 * torch.randn(4, dim, generator=g, dtype=torch.float64) / math.sqrt(dim)
    assert (z.norm(dim=1) > 300).all()
    # naive Bayes rule: every density underflows to 0 and the normalisation is 0 / 0
    sq = ((z[:, None, :] - means[None, :, :]) ** 2).sum(-1)
    naive = priors * (2 * math.pi) ** (-dim / 2) * torch.exp(-0.5 * sq)
    assert (naive == 0).all()
    assert torch.isnan(naive / naive.sum(1, keepdim=True)).all()
    # log-space reference from explicit differences
    logits = priors.log() - 0.5 * sq
    expected = logits - torch.logsumexp(logits, 1, keepdim=True)
    for dtype, tol in ((torch.float64, 1e-6), (torch.float32, None)):
        got = gaussian_class_log_posterior(z.to(dtype), means.to(dtype), priors.to(dtype))
        assert torch.isfinite(got).all()
        assert torch.allclose(torch.logsumexp(got.double(), 1), torch.zeros(4, dtype=torch.float64), atol=1e-5)
        assert torch.equal(got.argmax(1), expected.argmax(1))
        if tol is not None:
            assert torch.allclose(got, expected, rtol=tol, atol=tol)


def test_pairwise_helpers_are_really_independent():
    """Guard for the reference itself: Eq. 3 at a = b, alpha = beta = 0 is phi(0) / sqrt(4 pi gamma)."""
    assert inner([0.0] * 10, 0.0, [0.0] * 10, 0.0, 0.25) == pytest.approx(1.0 / math.sqrt(math.pi))
    # D = 10 (2D - 3 = 17), width = alpha + beta + 2 gamma = 1, |a - b|^2 = 72.25
    a, b = [0.0] * 10, [0.0] * 9 + [math.sqrt(17 * 17 / 4)]
    width = 0.5 + 0.25 + 2 * 0.125
    s = (17 * 17 / 4) / (2 * width)
    assert inner(a, 0.5, b, 0.25, 0.125) == pytest.approx((1 + 4 * s / 17) ** -0.5 / math.sqrt(2 * math.pi))
