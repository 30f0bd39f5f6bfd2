"""A second example plugin: a plain auto-encoder whose classifier and sampler are fitted after training.

Training minimises the reconstruction error only; the labels are not used by the loss. After every epoch
(on_epoch_end) the labeled images are encoded and each class gets a centroid and a per-dimension spread
of its codes; the classifier is nearest-centroid (a Gaussian with that spread per class) and sampling
decodes centroid + spread * N(0, I). Written from docs/adding-a-method.md alone.

    python cli.py --plugin examples/fitted_autoencoder.py train --method fitted-ae --dataset mnist --epochs 5
"""
from dataclasses import dataclass

import torch

from segma_bench.api import (
    SEGMA_ARCHITECTURES,
    Batch,
    DataSpec,
    GenerativeMethod,
    LabeledSet,
    MethodConfig,
    architecture_for,
    autoencoder,
    register,
)


@dataclass
class FittedAutoencoderConfig(MethodConfig):
    architecture: str = "mlp"
    hidden: tuple = (1024, 1024)
    latent_dim: int = 10
    min_spread: float = 0.05       # floor of the fitted per-dimension standard deviation
    learning_rate: float = 1e-3


@register("fitted-ae")
class FittedAutoencoder(GenerativeMethod):
    """Example plugin: plain auto-encoder; nearest-centroid classifier and per-class sampler fitted on codes."""
    config_class = FittedAutoencoderConfig
    has_classifier = True
    has_class_components = True
    table_variant = "AE + fitted centroids"

    @classmethod
    def default_config(cls, spec: DataSpec):
        return cls.config_class(**architecture_for(spec.dataset, SEGMA_ARCHITECTURES))

    def __init__(self, config, spec: DataSpec):
        super().__init__(config, spec)
        self.encoder, self.decoder = autoencoder(spec.image_shape, config.latent_dim, config.hidden,
                                                 config.architecture)
        # Fitted by the hooks, not by the optimiser; buffers, so checkpoints keep them.
        self.register_buffer("centroids", torch.zeros(spec.num_classes, config.latent_dim))
        self.register_buffer("spreads", torch.ones(spec.num_classes, config.latent_dim))

    # ---- training: reconstruction only --------------------------------------------------------------
    def training_step(self, batch: Batch):
        x = torch.cat([batch.x_unlabeled, batch.x_labeled])
        mse = (self.decoder(self.encoder(x)) - x).flatten(1).pow(2).sum(1).mean()
        return {"loss": mse, "mse": mse}

    # ---- the fit on the labeled codes ---------------------------------------------------------------
    @torch.no_grad()
    def fit_classes(self, labeled: LabeledSet):
        codes = self.encoder(labeled.images)
        for k in range(self.spec.num_classes):
            mine = codes[labeled.labels == k]
            if len(mine) == 0:
                continue  # a class without labels keeps its previous fit
            self.centroids[k] = mine.mean(0)
            spread = mine.std(0) if len(mine) > 1 else torch.ones_like(mine[0])
            self.spreads[k] = spread.clamp_min(self.config.min_spread)

    def on_epoch_end(self, epoch: int, labeled: LabeledSet) -> None:
        self.fit_classes(labeled)  # every epoch, so the per-epoch test error is that of a fitted classifier

    def on_train_end(self, labeled: LabeledSet) -> None:
        self.fit_classes(labeled)  # the final fit (already done by on_epoch_end; shown for the lifecycle)

    # ---- generative interface -----------------------------------------------------------------------
    def encode(self, x):
        return self.encoder(x)

    def decode(self, code):
        return self.decoder(code)

    def classify(self, x):
        z = self.encoder(x)[:, None, :]                                   # (N, 1, D)
        log_density = -0.5 * ((z - self.centroids) / self.spreads).pow(2).sum(2) - self.spreads.log().sum(1)
        return torch.log_softmax(log_density, dim=1)                      # (N, K)

    def class_means(self):
        return self.centroids.clone()

    def sample(self, classes, generator=None):
        classes = torch.as_tensor(classes).cpu()
        noise = torch.randn(len(classes), self.config.latent_dim, generator=generator)   # CPU generator
        z = self.centroids.cpu()[classes] + self.spreads.cpu()[classes] * noise
        return self.decoder(z.to(self.device))
