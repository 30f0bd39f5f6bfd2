"""An example method plugin: a semi-supervised auto-encoder with one Gaussian N(mu_k, I) per class.

It is deliberately simple (a toy, not a competitor of SeGMA) and complete: it trains, classifies,
samples per class, encodes and decodes, so the shared training loop and evaluation harness can run it
exactly like the built-in methods. Walk-through: docs/adding-a-method.md.

    python cli.py --plugin examples/my_method.py methods
    python cli.py --plugin examples/my_method.py train --method my-method --dataset mnist --epochs 5

Objective per batch (labeled and unlabeled rows stacked, as for SeGMA):
    MSE (pixels summed, batch averaged)
  + prior_weight * moment matching: the codes' per-dimension mean and second moment against those of the
    mixture sum_k p_k N(mu_k, I) (a crude, sampling-free stand-in for SeGMA's Cramer-Wold distance)
  + beta * cross-entropy of the Gaussian classifier log p_k - |z - mu_k|^2 / 2 on the labeled rows.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from segma_bench.api import GenerativeMethod, MethodConfig, Unflatten, mlp, register


@dataclass
class MyMethodConfig(MethodConfig):
    """Every field can be overridden from the command line: --set latent_dim=16 --set beta=2."""
    hidden: int = 256
    latent_dim: int = 8
    beta: float = 5.0              # weight of the cross-entropy on the labeled rows
    prior_weight: float = 1.0      # weight of the moment-matching penalty
    mean_init_scale: float = 2.0   # the class means start as scale * (random unit vectors)
    learning_rate: float = 1e-3    # overrides MethodConfig's 3e-4
    grad_clip_norm: float = 5.0    # the shared loop clips the global gradient norm when > 0


@register("my-method")
class MyMethod(GenerativeMethod):
    """Example plugin: auto-encoder with one N(mu_k, I) per class, fitted by moment matching."""
    config_class = MyMethodConfig
    has_classifier = True          # classify() gives class posteriors: the harness reports a test error
    has_class_components = True    # class_means() exists: latent-space operations per class work

    @classmethod
    def default_config(cls, spec):
        """Per-dataset settings; spec.dataset is 'mnist', 'svhn', 'celeba' or a test's toy name."""
        config = cls.config_class()
        if spec.dataset in ("svhn", "celeba"):
            config.latent_dim = 32
        return config

    def __init__(self, config, spec):
        super().__init__(config, spec)
        pixels = math.prod(spec.image_shape)
        self.encoder = nn.Sequential(nn.Flatten(), mlp([pixels, config.hidden, config.latent_dim]))
        self.decoder = nn.Sequential(mlp([config.latent_dim, config.hidden, pixels], nn.Sigmoid()),
                                     Unflatten(spec.image_shape))
        # Parameters are initialised under the run's seed (the training loop seeds torch before build).
        directions = F.normalize(torch.randn(spec.num_classes, config.latent_dim), dim=1)
        self.means = nn.Parameter(config.mean_init_scale * directions)
        # Buffers are saved in checkpoints and moved with .to(device), but not trained.
        self.register_buffer("priors", torch.tensor(spec.class_priors, dtype=torch.float32))

    # ---- helpers --------------------------------------------------------------------------------
    def logits(self, z):
        """log p_k + log N(z; mu_k, I) up to a constant shared by all k."""
        return self.priors.clamp_min(1e-12).log() - 0.5 * torch.cdist(z, self.means).pow(2)

    def moment_penalty(self, z):
        p = self.priors[:, None]
        mixture_mean = (p * self.means).sum(0)
        mixture_second = (p * (self.means.pow(2) + 1.0)).sum(0)   # E[z_d^2] of the mixture, per dimension
        return (z.mean(0) - mixture_mean).pow(2).sum() + (z.pow(2).mean(0) - mixture_second).pow(2).sum()

    # ---- training -------------------------------------------------------------------------------
    def training_step(self, batch):
        x = torch.cat([batch.x_unlabeled, batch.x_labeled])
        z = self.encoder(x)
        mse = (self.decoder(z) - x).flatten(1).pow(2).sum(1).mean()
        prior = self.moment_penalty(z)
        terms = {"mse": mse, "prior": prior}
        loss = mse + self.config.prior_weight * prior
        if len(batch.y_labeled):
            ce = F.cross_entropy(self.logits(z[len(batch.x_unlabeled):]), batch.y_labeled)
            terms["ce"] = ce
            loss = loss + self.config.beta * ce
        terms["loss"] = loss   # the key the loop minimises; every term is logged to metrics.json
        return terms

    # ---- generative interface -------------------------------------------------------------------
    def encode(self, x):
        return self.encoder(x)

    def decode(self, code):
        return self.decoder(code)

    def classify(self, x):
        return torch.log_softmax(self.logits(self.encoder(x)), dim=1)

    def class_means(self):
        return self.means.detach()

    def sample(self, classes, generator=None):
        classes = torch.as_tensor(classes).cpu()
        noise = torch.randn(len(classes), self.config.latent_dim, generator=generator)  # CPU generator
        z = self.means.detach().cpu()[classes] + noise
        return self.decoder(z.to(self.device))
