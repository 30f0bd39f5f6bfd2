"""Plugin: linear auto-encoder whose classifier and sampler are Gaussians fitted on the labeled codes.

The network is trained without labels (MSE on the unlabeled rows); labels are used only by the
end-of-epoch hook, which fits one Gaussian per class with a shared diagonal covariance on the codes of
the labeled subset (a linear-discriminant-analysis-style model in the learned PCA-like subspace).
"""
import math
from dataclasses import dataclass

import torch
from torch import nn

from segma_bench.api import Batch, DataSpec, GenerativeMethod, LabeledSet, MethodConfig, Unflatten, register


@dataclass
class PCAGaussianConfig(MethodConfig):
    latent_dim: int = 8
    learning_rate: float = 1e-2    # a single linear layer each way tolerates (and needs) a larger step
    var_floor: float = 1e-4        # keeps the pooled variance positive when there are few labeled codes


@register("pca-gaussian")
class PCAGaussian(GenerativeMethod):
    """Linear auto-encoder (MSE) + per-class Gaussians with shared diagonal covariance fitted on labeled codes."""
    config_class = PCAGaussianConfig
    has_classifier = True
    has_class_components = True
    table_variant = "linear AE + fitted Gaussians"

    def __init__(self, config: PCAGaussianConfig, spec: DataSpec):
        super().__init__(config, spec)
        pixels = math.prod(spec.image_shape)
        k, d = spec.num_classes, config.latent_dim
        # A linear encoder/decoder trained with MSE spans the principal subspace (hence "PCA").
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, d))
        self.decoder = nn.Sequential(nn.Linear(d, pixels), nn.Sigmoid(), Unflatten(spec.image_shape))
        # The fitted model lives in buffers so that the checkpoint saves it and evaluate/reproduce reload it.
        # Before the first fit: means at 0, unit variance, the spec's labeled priors.
        self.register_buffer("means", torch.zeros(k, d))
        self.register_buffer("variance", torch.ones(d))
        self.register_buffer("log_priors", torch.tensor(spec.class_priors, dtype=torch.float32).log())

    # --- training: unsupervised -------------------------------------------------------------------
    def training_step(self, batch: Batch):
        # Only the unlabeled rows train the auto-encoder; fall back to the labeled ones if a batch has none
        # (a loss without a graph would break the loop's backward()).
        x = batch.x_unlabeled if len(batch.x_unlabeled) else batch.x_labeled
        mse = (self.decoder(self.encoder(x)) - x).flatten(1).pow(2).sum(1).mean()
        return {"loss": mse, "mse": mse}

    # --- fitting: supervised, on the labeled codes ------------------------------------------------
    @torch.no_grad()
    def fit_gaussians(self, labeled: LabeledSet):
        z = self.encode(labeled.images)
        y = labeled.labels
        k = self.spec.num_classes
        counts = torch.bincount(y, minlength=k).to(z.dtype)                        # (K,)
        sums = torch.zeros(k, z.shape[1], device=z.device).index_add_(0, y, z)
        means = sums / counts.clamp_min(1).unsqueeze(1)                            # a class with no label keeps mean 0
        residuals = z - means[y]
        # Pooled (shared) diagonal variance, unbiased: divide by N - (number of classes present).
        dof = max(len(y) - int((counts > 0).sum()), 1)
        variance = residuals.pow(2).sum(0) / dof + self.config.var_floor
        self.means.copy_(means)
        self.variance.copy_(variance)
        self.log_priors.copy_((counts / counts.sum()).log())                      # labeled class proportions

    def on_epoch_end(self, epoch: int, labeled: LabeledSet):
        # Refit every epoch so the per-epoch test error describes the current codes. The loop calls this
        # after the last epoch too, so on_train_end would refit the same weights: not needed.
        self.fit_gaussians(labeled)

    # --- the generative interface -----------------------------------------------------------------
    def encode(self, x):
        return self.encoder(x)

    def decode(self, code):
        return self.decoder(code)

    def log_joint(self, z):
        """log p(y=k) + log N(z; mu_k, diag(variance)), shape (N, K)."""
        sq = ((z.unsqueeze(1) - self.means.unsqueeze(0)) ** 2 / self.variance).sum(2)
        log_norm = torch.log(2 * math.pi * self.variance).sum()
        return self.log_priors - 0.5 * (sq + log_norm)

    def classify(self, x):
        # Bayes' rule: normalise the joint over the classes.
        return torch.log_softmax(self.log_joint(self.encode(x)), dim=1)

    def class_means(self):
        return self.means

    def sample(self, classes, generator=None):
        # Noise on the CPU with the harness's generator (reproducible), then moved to the device.
        noise = torch.randn(len(classes), self.means.shape[1], generator=generator)
        z = self.means[classes.to(self.device)] + noise.to(self.device) * self.variance.sqrt()
        return self.decode(z)
