"""The interface every method implements; the training loop and the evaluation harness use only this."""
from dataclasses import dataclass, fields, replace

import torch
from torch import nn

from segma_bench.core.errors import BadValueError, UserError


@dataclass(frozen=True)
class DataSpec:
    """What a method needs to know about the data it is built for."""
    dataset: str
    image_shape: tuple          # (C, H, W)
    num_classes: int
    class_priors: tuple         # class proportions of the labeled set
    num_train: int              # size of the unlabeled pool (the whole training set)
    num_labeled: int


@dataclass
class Batch:
    """One training batch: float images in [0, 1]. Half labeled, half unlabeled (Section V)."""
    x_unlabeled: torch.Tensor
    x_labeled: torch.Tensor
    y_labeled: torch.Tensor


@dataclass
class LabeledSet:
    """The run's whole labeled subset, as the end-of-epoch and end-of-training hooks receive it."""
    images: torch.Tensor   # float32 in [0, 1], (N_labeled, C, H, W), on the method's device
    labels: torch.Tensor   # int64 class indices, (N_labeled,), on the method's device


@dataclass
class MethodConfig:
    learning_rate: float = 3e-4
    grad_clip_norm: float = 0.0     # 0 disables; clipping of the global gradient norm
    grad_clip_value: float = 0.0    # 0 disables; elementwise clipping after the norm clipping


@dataclass(frozen=True)
class Recipe:
    """A named preset: method settings plus the run protocol it implies (docs/protocol.md, docs/baselines.md)."""
    settings: dict
    labeled_subset: str = "balanced"   # datasets/splits.py LABELED_SUBSETS
    source: str = ""                   # which original code (file) the settings come from
    # Batch composition as "so many minibatches per pass": each batch holds 1/batches_per_pass of the
    # training set and of the labeled set (Kingma et al.'s code); 0 keeps the dataset protocol's sizes.
    batches_per_pass: int = 0
    epochs: int = 0                    # the original's run length in our epochs; 0: the method's default


class OperationNotSupported(UserError, NotImplementedError):
    """A method was asked for something it cannot do (e.g. classify without a classifier)."""


class GenerativeMethod(nn.Module):
    """Base class. Subclasses set `config_class`, implement the abstract methods, and register."""
    name = "abstract"
    config_class = MethodConfig
    has_classifier = True        # classify() gives class posteriors tied to the data's labels
    has_class_components = False  # latent space has one Gaussian per class (style transfer, Eq. 10/11)
    table_variant = "plugin"     # the "Variant" column of a table row this method gets beyond the paper's
    display_name = ""            # the "Model" column (e.g. "GMVAE"); "": the paper's name of a built-in, else the
    #                              registry name. Records store it, so tables render the same without the plugin

    def __init__(self, config, spec: DataSpec):
        super().__init__()
        self.config = config
        self.spec = spec

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def default_config(cls, spec: DataSpec):
        """The method's settings for this dataset (architecture sizes, paper hyperparameters)."""
        return cls.config_class()

    @classmethod
    def recipes(cls, dataset) -> dict:
        """Named presets that reproduce an original code's settings, e.g. {"authors-code": Recipe(...)}.
        A recipe is applied before --set overrides, so each of its settings can be ablated alone."""
        return {}

    @classmethod
    def recipe(cls, name, dataset):
        """The Recipe called `name` for `dataset`; an unknown name lists the method's recipes."""
        available = cls.recipes(dataset)
        if name not in available:
            from segma_bench.core.errors import UnknownNameError
            raise UnknownNameError(f"method {cls.name!r} has no recipe {name!r}; its recipes: "
                                   f"{', '.join(sorted(available)) or 'none'}")
        return available[name]

    @classmethod
    def build(cls, spec: DataSpec, overrides=None, recipe=None):
        config = cls.default_config(spec)
        if recipe:
            config = replace(config, **cls.recipe(recipe, spec.dataset).settings)
        overrides = dict(overrides or {})
        known = {f.name for f in fields(config)}
        unknown = set(overrides) - known
        if unknown:
            raise BadValueError(f"unknown setting(s) {sorted(unknown)} for method {cls.name!r}; "
                             f"known: {sorted(known)}")
        return cls(replace(config, **overrides), spec)

    @classmethod
    def paper_epochs(cls, dataset):
        """The method's original training length (its authors' released code) where it differs from the
        dataset protocol's (None: same). Tables show it beside ours as "original code"."""
        return None

    def configure_optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=self.config.learning_rate)

    # ---- training -------------------------------------------------------------------------------
    def training_step(self, batch: Batch) -> dict:
        """Loss terms of one batch as scalar tensors; the key 'loss' is the one minimised."""
        raise NotImplementedError

    def on_epoch_start(self, epoch: int, optimizer) -> None:
        """Hook for staged training or learning-rate schedules; epoch counts from 0."""

    def on_epoch_end(self, epoch: int, labeled: LabeledSet) -> None:
        """Hook after the last step of each epoch (counted from 0), before that epoch's test error and
        checkpoint: e.g. fit something on the codes of the labeled set. Runs in eval mode; what it fits must
        live in parameters or buffers to survive a resume."""

    def on_train_end(self, labeled: LabeledSet) -> None:
        """Hook once the last planned epoch has run (after its on_epoch_end, before its test error and
        checkpoint): e.g. fit a classifier or a sampler on the labeled codes of the trained model."""

    # ---- generative interface -------------------------------------------------------------------
    def encode(self, x) -> torch.Tensor:
        """A point in the space that decode() inverts; interpolation is linear in this space."""
        raise NotImplementedError

    def decode(self, code) -> torch.Tensor:
        """Images in [0, 1] from codes of encode()'s space."""
        raise NotImplementedError

    def sample(self, classes: torch.Tensor, generator=None) -> torch.Tensor:
        """One image per entry of `classes` (class or component index), decoded to [0, 1]."""
        raise NotImplementedError

    def classify(self, x) -> torch.Tensor:
        """log P(y | x), shape (N, K)."""
        raise OperationNotSupported(f"method {self.name!r} has no classifier")

    def class_means(self) -> torch.Tensor:
        """Latent means of the class components (style transfer, class intensity, class structure)."""
        raise OperationNotSupported(f"method {self.name!r} has no class components in latent space")

    def draw_classes(self, num_samples, generator=None):
        """Class indices drawn from the class priors (Table I samples from the target distribution)."""
        priors = torch.tensor(self.spec.class_priors, dtype=torch.float64)
        return torch.multinomial(priors, num_samples, replacement=True, generator=generator)

    @property
    def device(self):
        return next(self.parameters()).device
