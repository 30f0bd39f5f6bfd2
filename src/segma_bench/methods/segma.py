"""SeGMA: a Cramer-Wold auto-encoder whose latent target is a Gaussian mixture, one component per class.

Objective (Eq. 9):  MSE (Eq. 1)  +  alpha * log d^2_gamma(E X, P_Z) (Eq. 8)  +  beta * CE of Eq. 7 on the
labeled part (Eq. 5), with P_Z = sum_k p_k N(mu_k, I). `segma-unsup` is beta = 0 and `cwae` is K = 1
with the component fixed at the origin (Table I's variants)."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from segma_bench.core.errors import BadValueError

from .base import GenerativeMethod, MethodConfig, Recipe
from .cramer_wold import gaussian_class_log_posterior, log_cramer_wold, silverman_gamma
from .networks import SEGMA_ARCHITECTURES, WEIGHT_INITS, architecture_for, autoencoder, glorot_init_
from .registry import register

# Initial distance between any two means (the paper is silent; docs/protocol.md, "Mean initialisation").
MEAN_INIT_DISTANCE = 8.5
# The authors' per-dataset mean initialisation value `init` (configs/*.yaml of maciejwolczyk/ssCWAE).
AUTHORS_MEAN_INIT = {"mnist": 0.1, "svhn": 2.0, "celeba": 1.0}
LOSS_ROWS = ("batch", "unlabeled")


@dataclass
class SeGMAConfig(MethodConfig):
    architecture: str = "mlp"
    hidden: tuple = (1024, 1024)
    latent_dim: int = 10
    alpha: float = 5.0               # weight of log d^2_gamma (Section VI.A)
    beta: float = 10.0               # weight of the cross-entropy (Section VI.A)
    num_components: int = 0          # 0: one per class
    learn_means: bool = True         # Section V: the means mu_k are updated by back-propagation
    uniform_priors: bool = False     # False: p_k = class proportions of the labeled set (Section V)
    mean_init_distance: float = MEAN_INIT_DISTANCE
    log_floor: float = 1e-10
    grad_clip_norm: float = 5.0      # authors' code; the paper is silent
    # Rows that d^2 (and gamma's N_c) is computed on: 'batch' = labeled and unlabeled (Section V's text),
    # 'unlabeled' = the unlabeled rows only (the authors' code). docs/protocol.md, "Cramér-Wold term".
    divergence_rows: str = "batch"
    # Rows the squared error (Eq. 1) averages over, the same two choices ("Loss rows" in docs/protocol.md).
    reconstruction_rows: str = "batch"
    weight_init: str = "torch"       # 'glorot': Glorot-uniform weights, zero biases (the authors' TF1 code)
    # > 0: the authors' mean initialisation, dimension d of component d mod K set to mean_init_scale * K / D,
    # plus N(0, mean_init_noise^2) noise; 0: means `mean_init_distance` apart (initial_means).
    mean_init_scale: float = 0.0
    mean_init_noise: float = 0.0


def initial_means(num_components, latent_dim, distance):
    """Latent dimension d belongs to component d mod K (the authors' scheme), with one value chosen so
    that any two means start `distance` apart: for K = D this is mu_k = (distance / sqrt 2) e_k.
    A single component sits at the origin. Needs K <= D."""
    means = torch.zeros(num_components, latent_dim)
    if num_components == 1:
        return means
    if num_components > latent_dim:
        raise BadValueError(f"{num_components} components need a latent dimension of at least that (got {latent_dim})")
    dims_per_component = latent_dim // num_components  # components own floor(D/K) or more dimensions
    for d in range(dims_per_component * num_components):
        means[d % num_components, d] = distance / (2.0 * dims_per_component) ** 0.5
    return means


def authors_initial_means(num_components, latent_dim, scale, noise_std, generator=None):
    """The authors' scheme (cwae.py of maciejwolczyk/ssCWAE): latent dimension d belongs to component
    d mod K and is set to scale * K / D, plus N(0, noise_std^2) noise on every entry. MNIST: scale 0.1,
    K = D = 10, so mu_k = 0.1 e_k (means 0.14 apart). Needs K <= D."""
    if num_components > latent_dim:
        raise BadValueError(f"{num_components} components need a latent dimension of at least that (got {latent_dim})")
    means = torch.zeros(num_components, latent_dim)
    for d in range(latent_dim):
        means[d % num_components, d] = scale * num_components / latent_dim
    return means + noise_std * torch.randn(num_components, latent_dim, generator=generator)


class LatentMixtureAutoencoder(GenerativeMethod):
    """Shared body of SeGMA, unsupervised SeGMA and CWAE: they differ only in their settings."""
    config_class = SeGMAConfig
    has_class_components = True
    uses_labels = True  # False: training sees only the unlabeled rows of each batch (segma-unsup, cwae)

    @classmethod
    def default_config(cls, spec):
        return cls.config_class(**architecture_for(spec.dataset, SEGMA_ARCHITECTURES))

    @classmethod
    def recipes(cls, dataset):
        """`authors-code`: the settings of the first author's public TensorFlow code (maciejwolczyk/ssCWAE),
        setting by setting in docs/protocol.md ("The authors-code recipe")."""
        authors = {"reconstruction_rows": "unlabeled", "divergence_rows": "unlabeled", "weight_init": "glorot",
                   "mean_init_scale": AUTHORS_MEAN_INIT.get(dataset, 1.0), "mean_init_noise": 1e-3,
                   "grad_clip_norm": 5.0, "grad_clip_value": 1.0}
        if not cls.uses_labels:  # no labeled rows to leave out; CWAE's single mean stays at the origin
            authors = {k: v for k, v in authors.items() if not k.endswith("_rows")}
        if cls.name == "cwae":
            authors = {k: v for k, v in authors.items() if not k.startswith("mean_init")}
        return {"authors-code": Recipe(settings=authors, labeled_subset="first",
                                       source="maciejwolczyk/ssCWAE: cwae.py, data_loader.py, configs/*.yaml")}

    def __init__(self, config, spec):
        super().__init__(config, spec)
        for option in ("divergence_rows", "reconstruction_rows"):
            if getattr(config, option) not in LOSS_ROWS:
                raise BadValueError(f"{option} must be 'batch' or 'unlabeled', got {getattr(config, option)!r}")
        if config.weight_init not in WEIGHT_INITS:
            raise BadValueError(f"weight_init must be one of {', '.join(WEIGHT_INITS)}, got {config.weight_init!r}")
        self.encoder, self.decoder = autoencoder(spec.image_shape, config.latent_dim, config.hidden,
                                                 config.architecture)
        if config.weight_init == "glorot":
            glorot_init_(self.encoder), glorot_init_(self.decoder)
        k = config.num_components or spec.num_classes
        if config.mean_init_scale > 0 and k > 1:
            means = authors_initial_means(k, config.latent_dim, config.mean_init_scale, config.mean_init_noise)
        else:
            means = initial_means(k, config.latent_dim, config.mean_init_distance)
        if config.learn_means:
            self.means = torch.nn.Parameter(means)
        else:
            self.register_buffer("means", means)
        priors = torch.full((k,), 1.0 / k) if config.uniform_priors else torch.tensor(spec.class_priors)
        if len(priors) != k:
            raise BadValueError(f"{k} components but {len(priors)} class priors")
        self.register_buffer("priors", priors.float())
        self.register_buffer("variances", torch.ones(k))  # spherical, identity covariance (Definition 1)

    def encode(self, x):
        return self.encoder(x)

    def decode(self, code):
        return self.decoder(code)

    def loss_terms(self, x, z, x_labeled_codes=None, y_labeled=None, divergence_codes=None):
        """MSE of decoding the codes z against x; `divergence_codes` (default: all of z) are the codes
        that d^2 compares with the mixture."""
        mse = (self.decoder(z) - x).flatten(1).pow(2).sum(1).mean()                    # Eq. 1
        cw_codes = z if divergence_codes is None else divergence_codes
        gamma = silverman_gamma(len(cw_codes) / len(self.means))                       # N_c = m / K
        log_cw = log_cramer_wold(cw_codes, self.means, self.priors, self.variances,    # Eq. 8
                                 gamma, floor=self.config.log_floor)
        terms = {"mse": mse, "log_cw": log_cw}
        loss = mse + self.config.alpha * log_cw
        if self.config.beta > 0 and y_labeled is not None and len(y_labeled):
            # Eq. 5 with the posterior of Eq. 7: mean of -log P(y_i | E(x_i)) over the labeled rows.
            ce = F.nll_loss(gaussian_class_log_posterior(x_labeled_codes, self.means, self.priors), y_labeled)
            terms["ce"] = ce
            loss = loss + self.config.beta * ce
        terms["loss"] = loss                                                             # Eq. 9
        return terms

    def training_step(self, batch):
        # Section V: MSE and d^2 over the whole batch (labeled and unlabeled), CE over the labeled part.
        # The authors' code takes MSE and d^2 over the unlabeled rows only (`reconstruction_rows`,
        # `divergence_rows`). Methods without labels never see the labeled rows.
        if not self.uses_labels:
            z = self.encoder(batch.x_unlabeled)
            return self.loss_terms(batch.x_unlabeled, z)
        x = torch.cat([batch.x_unlabeled, batch.x_labeled])
        z = self.encoder(x)
        num_unlabeled = len(batch.x_unlabeled)
        unlabeled_only = slice(0, num_unlabeled)
        rows = {"batch": slice(None), "unlabeled": unlabeled_only}
        recon = rows[self.config.reconstruction_rows]
        return self.loss_terms(x[recon], z[recon], z[num_unlabeled:], batch.y_labeled,
                               z[rows[self.config.divergence_rows]])

    def classify(self, x):
        return gaussian_class_log_posterior(self.encoder(x), self.means, self.priors)  # Eq. 7

    def class_means(self):
        return self.means.detach()

    def sample(self, classes, generator=None):
        noise = torch.randn(len(classes), self.config.latent_dim, generator=generator)
        z = self.means.detach().cpu()[classes] + noise * self.variances.cpu()[classes, None].sqrt()
        return self.decoder(z.to(self.device))


@register("segma")
class SeGMA(LatentMixtureAutoencoder):
    """SeGMA (semi-supervised): Gaussian-mixture CWAE with a Gaussian classifier on the labeled part."""
    table_variant = "semi-supervised"


@register("segma-unsup")
class SeGMAUnsupervised(LatentMixtureAutoencoder):
    """SeGMA without labels (beta = 0): a K-component Gaussian-mixture CWAE (Table I)."""
    has_classifier = False  # components are not tied to classes
    uses_labels = False
    table_variant = "unsupervised"

    @classmethod
    def default_config(cls, spec):
        config = super().default_config(spec)
        config.beta = 0.0
        config.uniform_priors = True
        return config

    def draw_classes(self, num_samples, generator=None):
        return torch.multinomial(self.priors.double().cpu(), num_samples, replacement=True, generator=generator)
