"""CWAE (Tabor et al.): the Cramer-Wold auto-encoder with target N(0, I), i.e. SeGMA with K = 1 fixed at 0."""
import torch

from .base import OperationNotSupported
from .registry import register
from .segma import LatentMixtureAutoencoder


@register("cwae")
class CWAE(LatentMixtureAutoencoder):
    """CWAE: Cramer-Wold auto-encoder with a single N(0, I) target (SeGMA with K = 1, beta = 0)."""
    has_classifier = False
    has_class_components = False
    uses_labels = False  # Tabor et al.'s CWAE is unsupervised: it trains on the unlabeled rows only
    table_variant = "unsupervised"

    @classmethod
    def default_config(cls, spec):
        config = super().default_config(spec)
        config.num_components = 1
        config.learn_means = False
        config.beta = 0.0
        config.uniform_priors = True
        return config

    def draw_classes(self, num_samples, generator=None):
        return torch.zeros(num_samples, dtype=torch.long)

    def class_means(self):
        raise OperationNotSupported(f"method {self.name!r} has a single component, no class components")
