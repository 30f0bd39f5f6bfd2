"""Cramer-Wold distance between a sample and a mixture of spherical Gaussians, in closed form.

Paper: Eq. 3 (scalar product of two spherical Gaussians), Eq. 4 (sample vs N(0, I)) and
Eq. 8 (sample vs sum_k p_k N(mu_k, s_k I)). Used as the MMD penalty of CWAE and SeGMA.
"""
import math

import torch


def phi_d(s, dim):
    """phi_D(s) ~ (1 + 4s / (2D - 3))^(-1/2), the approximation of Eq. 3 (accurate for D >= 10).

    The authors' code uses the same form for D = 10 (MNIST); we follow it for every D."""
    return (1.0 + 4.0 * s / (2.0 * dim - 3.0)).rsqrt()


def silverman_gamma(samples_per_component):
    """gamma = (4 / (3 N_c))^(2/5): Silverman's rule with N_c samples per class in a batch (Section VI.A)."""
    return (4.0 / (3.0 * samples_per_component)) ** 0.4


def squared_distances(a, b):
    """||a_i - b_j||^2 for all pairs, via the Gram matrix (memory O(n m), not O(n m D))."""
    sq = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2.0 * a @ b.T
    return sq.clamp_min(0.0)  # rounding can make the exact zeros slightly negative


def gaussian_inner_product(sq_dist, var_sum, gamma, dim):
    """Eq. 3: <N(a, alpha I), N(b, beta I)>_gamma with sq_dist = ||a-b||^2 and var_sum = alpha + beta."""
    width = var_sum + 2.0 * gamma
    return phi_d(sq_dist / (2.0 * width), dim) / torch.sqrt(2.0 * math.pi * width)


def cramer_wold_distance_sq(z, means, priors, variances, gamma):
    """Eq. 8: d^2_gamma(Z, P) for a sample z (m, D) and P = sum_k priors_k N(means_k, variances_k I).

    Written as <Z,Z> - 2 <Z,P> + <P,P> with each sample point a Gaussian of zero variance (Eq. 4).
    `gamma`: a Python float (or a tensor on z's device); a float stays one, since a tensor made from it
    would be copied to the GPU, and the host would wait for the device at every step."""
    m, dim = z.shape
    if torch.is_tensor(gamma):
        gamma = gamma.to(dtype=z.dtype, device=z.device)
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    sample_sample = gaussian_inner_product(squared_distances(z, z), zero, gamma, dim).sum() / m**2
    sample_mixture = (gaussian_inner_product(squared_distances(z, means), variances[None, :], gamma, dim)
                      * priors[None, :]).sum() / m
    mixture_mixture = (gaussian_inner_product(squared_distances(means, means),
                                              variances[:, None] + variances[None, :], gamma, dim)
                       * priors[:, None] * priors[None, :]).sum()
    return sample_sample - 2.0 * sample_mixture + mixture_mixture


def log_cramer_wold(z, means, priors, variances, gamma, floor=1e-10):
    """log d^2 as in Eq. 9 (the log balances it against the MSE, [12, Footnote 2]).

    With the approximate phi_D the closed form can dip to or below zero when the sample fits the
    mixture closely; the floor keeps the log finite (the authors' code had no guard)."""
    return torch.log(cramer_wold_distance_sq(z, means, priors, variances, gamma).clamp_min(floor))


def gaussian_class_log_posterior(z, means, priors):
    """Eq. 7 with identity covariances: log P(Y=k | z), by log-softmax of log p_k - ||z - mu_k||^2 / 2.

    The Gaussian normalising constants are equal for all k and cancel; log-softmax never forms the
    densities themselves, so far-away codes do not underflow."""
    logits = priors.log()[None, :] - 0.5 * squared_distances(z, means)
    return torch.log_softmax(logits, dim=1)
