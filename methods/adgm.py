"""ADGM (Maaloe, Sonderby, Sonderby & Winther 2016, "Auxiliary deep generative models").

Generative model p(y) p(z) p(x|y,z) p(a|x,y,z); inference q(a|x) q(y|a,x) q(z|a,y,x). One sample of a per data
point is shared by every enumerated label (the expectation over a is outside the sum over y, as in the
authors' code); z is sampled per (x, y). Bounds (a ~ q(a|x), z ~ q(z|a,y,x)):

    L(x, y) = log p(x|y,z) + log p(a|x,y,z) + log p(y) - KL(q(z|a,y,x) || p(z)) + H(q(a|x))
    U(x)    = sum_y q(y|a,x) (L(x, y) - log q(y|a,x))

with the two Gaussian terms that have closed forms (KL of z, entropy of a) taken in closed form. Test-time
q(y|x) averages q(y|a,x) over `eval_samples` draws of a (100 in the authors' evaluation).
docs/baselines.md lists every setting and its source.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .distributions import (DenseNet, GaussianLayer, PixelDecoder, SemiSupervisedVAE, SemiSupervisedVAEConfig,
                            bernoulli_log_likelihood, gaussian_entropy, gaussian_kl_to_standard, gaussian_log_pdf,
                            image_features, log_mean_exp, reparameterize)
from .networks import architecture_for
from .registry import register

# Hidden layers of every edge of the graph, and the size of z (and of a unless aux_dim is set).
ADGM_ARCHITECTURES = {
    "mnist": dict(architecture="mlp", hidden=(500, 500), latent_dim=100),    # authors' run_mnist.py
    "svhn": dict(architecture="mlp", hidden=(500, 500), latent_dim=300),     # SeGMA Section VII: 300 for SVHN
    "celeba": dict(architecture="conv", hidden=(500, 500), latent_dim=300),  # SeGMA appendix
}

EVAL_CHUNK = 10  # draws of a evaluated together in classify (bounds memory, not the result)


@dataclass
class ADGMConfig(SemiSupervisedVAEConfig):
    architecture: str = "mlp"
    hidden: tuple = (500, 500)     # every edge: q(a|x), q(y|a,x), q(z|a,y,x), p(x|y,z), p(a|x,y,z)
    latent_dim: int = 100          # z
    aux_dim: int = 0               # a; 0: the same as latent_dim
    activation: str = "relu"
    eval_samples: int = 100        # draws of a averaged in classify()
    lr_decay: float = 0.75         # learning rate x lr_decay every lr_decay_every epochs, not below lr_floor
    lr_decay_every: int = 200
    lr_floor: float = 3e-5
    grad_clip_norm: float = 5.0    # authors' code: total norm 5, then elementwise to [-1, 1]
    grad_clip_value: float = 1.0


@register("adgm")
class ADGM(SemiSupervisedVAE):
    """ADGM (Maaloe et al. 2016): semi-supervised VAE with an auxiliary a; q(a|x) q(y|a,x) q(z|a,y,x)."""
    config_class = ADGMConfig

    @classmethod
    def default_config(cls, spec):
        return cls.config_class(**architecture_for(spec.dataset, ADGM_ARCHITECTURES))

    @classmethod
    def paper_epochs(cls, dataset):
        return 1000  # the authors' schedule: up to 1000 epochs (reference-settings.md)

    def __init__(self, config, spec):
        super().__init__(config, spec)
        if config.eval_samples < 1:
            raise ValueError(f"eval_samples must be at least 1, got {config.eval_samples}")
        k, dz, act, hidden = spec.num_classes, config.latent_dim, config.activation, config.hidden
        da = config.aux_dim or config.latent_dim
        self.aux_dim = da
        # x enters every edge through the same features: the pixels, or the appendix's conv trunk (CelebA).
        self.features, nx = image_features(spec.image_shape, config.architecture)
        self.q_a = GaussianLayer([nx], hidden, da, act)                     # q(a|x)
        self.q_y = DenseNet([nx, da], hidden, k, act)                       # q(y|a,x), logits
        self.q_z = GaussianLayer([nx, da, k], hidden, dz, act)              # q(z|a,y,x)
        self.p_x = PixelDecoder([k, dz], hidden, spec.image_shape, config.architecture, act)  # p(x|y,z)
        self.p_a = GaussianLayer([nx, k, dz], hidden, da, act)              # p(a|x,y,z)
        self._init_skeleton(spec, dz)

    # ---- pieces for the skeleton ------------------------------------------------------------------------
    def draw_noise(self, x, enumerate_labels):
        lead = (self.spec.num_classes, len(x)) if enumerate_labels else (len(x),)
        return {"a": torch.randn(len(x), self.aux_dim, device=x.device),
                "z": torch.randn(*lead, self.config.latent_dim, device=x.device)}

    def _prepare(self, x, noise):
        """Everything that does not depend on y: the features of x and ONE sample a ~ q(a|x) per row."""
        h = self.features(x)
        a_mean, a_logvar = self.q_a(h)
        return {"x": x.flatten(1), "h": h, "a": reparameterize(a_mean, a_logvar, noise["a"]),
                "entropy_a": gaussian_entropy(a_logvar).sum(-1)}

    def _log_q(self, ctx):
        return F.log_softmax(self.q_y(ctx["h"], ctx["a"]), -1)

    def _bound(self, ctx, y, z_noise):
        h, a = ctx["h"], ctx["a"]
        z_mean, z_logvar = self.q_z(h, a, y)
        z = reparameterize(z_mean, z_logvar, z_noise)
        log_px = bernoulli_log_likelihood(self.p_x(y, z), ctx["x"]).sum(-1)
        a_mean, a_logvar = self.p_a(h, y, z)
        log_pa = gaussian_log_pdf(a, a_mean, a_logvar).sum(-1)
        return (log_px + log_pa + y @ self.log_prior - gaussian_kl_to_standard(z_mean, z_logvar).sum(-1)
                + ctx["entropy_a"])

    def _posterior_mean_z(self, x, y):
        h = self.features(x)
        return self.q_z(h, self.q_a(h)[0], y)[0]   # at the mean of q(a|x)

    def _decode_logits(self, z, y):
        return self.p_x(y, z)

    # ---- training and classification --------------------------------------------------------------------
    def learning_rate_at(self, epoch):
        c = self.config
        if c.lr_decay_every <= 0:
            return c.learning_rate
        return max(c.learning_rate * c.lr_decay ** (epoch // c.lr_decay_every), c.lr_floor)

    def on_epoch_start(self, epoch, optimizer):
        for group in optimizer.param_groups:
            group["lr"] = self.learning_rate_at(epoch)

    def training_step(self, batch):
        return self.semi_supervised_step(self.training_batch(batch))

    def classify(self, x):
        """log of q(y|a,x) averaged over `eval_samples` draws of a ~ q(a|x) (log-mean-exp of log_softmax)."""
        h = self.features(x)
        a_mean, a_logvar = self.q_a(h)
        draws = []
        for start in range(0, self.config.eval_samples, EVAL_CHUNK):
            n = min(EVAL_CHUNK, self.config.eval_samples - start)
            a = reparameterize(a_mean, a_logvar, torch.randn(n, *a_mean.shape, device=x.device))
            draws.append(F.log_softmax(self.q_y(h, a), -1))       # (n, B, K): h broadcasts over the draws
        return log_mean_exp(torch.cat(draws), 0)
