"""ADGM (Maaloe, Sonderby, Sonderby & Winther 2016, "Auxiliary deep generative models"), and its skip variant SDGM.

ADGM: generative model p(y) p(z) p(x|y,z) p(a|x,y,z); inference q(a|x) q(y|a,x) q(z|a,y,x). SDGM (`skip`, the
model of the authors' released code, models/sdgmssl.py): p(y) p(z) p(a|y,z) p(x|a,y,z), the same inference model.
Each of `train_samples` draws of a per data point is shared by every enumerated label (the expectation over a is
outside the sum over y, as in the authors' code); z is sampled per (draw of a, y). Bounds (a ~ q(a|x),
z ~ q(z|a,y,x)), for ADGM:

    L(x, y) = log p(x|y,z) + log p(a|x,y,z) + log p(y) - KL(q(z|a,y,x) || p(z)) + H(q(a|x))
    U(x)    = sum_y q(y|x) (L(x, y) - log q(y|x))

with L averaged over the draws and q(y|x) the mean of q(y|a,x) over the draws (sdgmssl.py l.247, 279-285); the
two Gaussian terms that have closed forms (KL of z, entropy of a) are taken in closed form. Test-time q(y|x)
averages q(y|a,x) over `eval_samples` draws of a (100 in the authors' evaluation).
docs/baselines.md lists every setting and its source.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from segma_bench.core.errors import BadValueError

from .base import Recipe
from .distributions import (
    DenseNet,
    GaussianLayer,
    PixelDecoder,
    SemiSupervisedVAE,
    SemiSupervisedVAEConfig,
    bernoulli_log_likelihood,
    gaussian_entropy,
    gaussian_kl_to_standard,
    gaussian_log_pdf,
    image_features,
    log_mean_exp,
    reparameterize,
)
from .networks import architecture_for
from .registry import register

# Hidden layers of every edge of the graph, and the size of z (and of a unless aux_dim is set).
ADGM_ARCHITECTURES = {
    "mnist": dict(architecture="mlp", hidden=(500, 500), latent_dim=100),    # authors' run_mnist.py
    "svhn": dict(architecture="mlp", hidden=(500, 500), latent_dim=300),     # SeGMA Section VII: 300 for SVHN
    "celeba": dict(architecture="conv", hidden=(500, 500), latent_dim=300),  # SeGMA appendix
}

EVAL_CHUNK = 10  # draws of a evaluated together in classify (bounds memory, not the result)

# The `maaloe-code` recipe: larsmaaloee/auxiliary-deep-generative-models, run_mnist.py as of commit fa6d33b (the
# last version without batch norm, which the paper's numbers did not use: the author in the repository's issue
# #1), on the paper's ADGM graph; `maaloe-code-sdgm` is the same on the released code's skip graph.
# docs/baselines.md ("The maaloe-code recipes") gives the file and line of each setting.
MAALOE_MNIST = dict(train_samples=5,       # run_mnist.py l.38-40 at e53400d/fa6d33b ('samples' = 5)
                    batch_norm=False,      # run_mnist.py l.27 at fa6d33b (True from 478ce5a on)
                    weight_prior=True,     # sdgmssl.py l.293-301: N(0, 1) prior on the weights, divided by n
                    binarize="dynamic")    # sdgmssl.py l.319-321: x ~ Bernoulli(intensity) per batch


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
    train_samples: int = 1         # draws of a (each with its z) per data point and step; bounds averaged
    batch_norm: bool = False       # normalise every hidden layer (sdgmssl.py dense_layer), batch statistics
    skip: bool = False             # SDGM: p(a|y,z) and p(x|a,y,z) instead of p(a|x,y,z) and p(x|y,z)


@register("adgm")
class ADGM(SemiSupervisedVAE):
    """ADGM (Maaloe et al. 2016): semi-supervised VAE with an auxiliary a; q(a|x) q(y|a,x) q(z|a,y,x)."""
    config_class = ADGMConfig

    @classmethod
    def default_config(cls, spec):
        return cls.config_class(**architecture_for(spec.dataset, ADGM_ARCHITECTURES))

    @classmethod
    def recipes(cls, dataset):
        """`maaloe-code` (ADGM) and `maaloe-code-sdgm` (the released skip model): the authors' run_mnist.py;
        MNIST only, the one script they released."""
        if dataset != "mnist":
            return {}
        source = "larsmaaloee/auxiliary-deep-generative-models: run_mnist.py (fa6d33b), models/sdgmssl.py"
        return {"maaloe-code": Recipe(settings=dict(MAALOE_MNIST), source=source),
                "maaloe-code-sdgm": Recipe(settings=dict(MAALOE_MNIST, skip=True), source=source)}

    @classmethod
    def paper_epochs(cls, dataset):
        return 1000  # the authors' schedule: up to 1000 epochs (reference-settings.md)

    def __init__(self, config, spec):
        super().__init__(config, spec)
        for name in ("eval_samples", "train_samples"):
            if getattr(config, name) < 1:
                raise BadValueError(f"{name} must be at least 1, got {getattr(config, name)}")
        k, dz, act, hidden = spec.num_classes, config.latent_dim, config.activation, config.hidden
        bn = config.batch_norm
        da = config.aux_dim or config.latent_dim
        self.aux_dim = da
        # x enters every edge through the same features: the pixels, or the appendix's conv trunk (CelebA).
        self.features, nx = image_features(spec.image_shape, config.architecture)
        self.q_a = GaussianLayer([nx], hidden, da, act, bn)                 # q(a|x)
        self.q_y = DenseNet([nx, da], hidden, k, act, bn)                   # q(y|a,x), logits
        self.q_z = GaussianLayer([nx, da, k], hidden, dz, act, bn)          # q(z|a,y,x)
        if config.skip:
            self.p_x = PixelDecoder([k, dz, da], hidden, spec.image_shape, config.architecture, act, bn)  # p(x|y,z,a)
            self.p_a = GaussianLayer([k, dz], hidden, da, act, bn)          # p(a|y,z)
        else:
            self.p_x = PixelDecoder([k, dz], hidden, spec.image_shape, config.architecture, act, bn)  # p(x|y,z)
            self.p_a = GaussianLayer([nx, k, dz], hidden, da, act, bn)      # p(a|x,y,z)
        self._init_skeleton(spec, dz)

    # ---- pieces for the skeleton ------------------------------------------------------------------------
    def draw_noise(self, x, enumerate_labels):
        """Noise of `train_samples` draws: 'a' (S, B, A); 'z' (S, K, B, Z) with enumerated labels, else (S, B, Z)."""
        s = self.config.train_samples
        lead = (self.spec.num_classes, len(x)) if enumerate_labels else (len(x),)
        return {"a": torch.randn(s, len(x), self.aux_dim, device=x.device),
                "z": torch.randn(s, *lead, self.config.latent_dim, device=x.device)}

    def _prepare(self, x, noise):
        """Everything that does not depend on y: the features of x and the draws a ~ q(a|x), (S, B, A)."""
        h = self.features(x)
        a_mean, a_logvar = self.q_a(h)
        return {"x": x.flatten(1), "h": h, "a": reparameterize(a_mean, a_logvar, noise["a"]),
                "entropy_a": gaussian_entropy(a_logvar).sum(-1)}

    def _log_q_per_draw(self, ctx):
        return F.log_softmax(self.q_y(ctx["h"], ctx["a"]), -1)               # (S, B, K)

    def _log_q(self, ctx):
        """log of q(y|a,x) averaged over the draws of a (sdgmssl.py l.281-284, without its 1e-8)."""
        return log_mean_exp(self._log_q_per_draw(ctx), 0)

    def cross_entropy(self, ctx, y):
        """-log q(y|a,x) averaged over the draws of a (sdgmssl.py l.248-249)."""
        log_q = self._log_q_per_draw(ctx)
        return -log_q.gather(-1, y.expand(len(log_q), -1).unsqueeze(-1)).squeeze(-1).mean(0)

    def _bound(self, ctx, y, z_noise):
        """L(x, y) averaged over the draws; y is one-hot (B, K) or all labels (K, 1, K)."""
        h, a = ctx["h"], ctx["a"]
        if y.dim() == 3:
            a = a.unsqueeze(-3)   # (S, 1, B, A): one draw of a shared by every label
        z_mean, z_logvar = self.q_z(h, a, y)
        z = reparameterize(z_mean, z_logvar, z_noise)
        if self.config.skip:
            logits, (a_mean, a_logvar) = self.p_x(y, z, a), self.p_a(y, z)
        else:
            logits, (a_mean, a_logvar) = self.p_x(y, z), self.p_a(h, y, z)
        log_px = bernoulli_log_likelihood(logits, ctx["x"]).sum(-1)
        log_pa = gaussian_log_pdf(a, a_mean, a_logvar).sum(-1)
        bound = (log_px + log_pa + y @ self.log_prior - gaussian_kl_to_standard(z_mean, z_logvar).sum(-1)
                 + ctx["entropy_a"])
        return bound.mean(0)

    def _posterior_mean_z(self, x, y):
        h = self.features(x)
        return self.q_z(h, self.q_a(h)[0], y)[0]   # at the mean of q(a|x)

    def _decode_logits(self, z, y):
        if self.config.skip:   # SDGM: a at the mean of p(a|y,z)
            return self.p_x(y, z, self.p_a(y, z)[0])
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
