"""What the semi-supervised VAEs (M1+M2 and ADGM) share: log-densities, small stochastic building blocks,
and the skeleton of a model p(y) p(z) p(x|y,z) with a classifier (labels summed out for unlabeled data).

Conventions: every density is elementwise (callers sum over the event dimensions they mean, which keeps
masking and broadcasting explicit); Gaussians are parametrised by their mean and their LOG-VARIANCE, taken
directly from a linear layer (no softplus on it, no clamping); Bernoulli likelihoods take logits and use
BCE-with-logits; class posteriors are log_softmax outputs, so no epsilon ever enters a log.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from segma_bench.core.errors import BadValueError

from .base import Batch, GenerativeMethod, MethodConfig
from .networks import CONV_FEATURES, conv_decoder_head, conv_encoder_trunk

LOG_2PI = math.log(2.0 * math.pi)


# ---- densities (elementwise) -------------------------------------------------------------------------

def gaussian_log_pdf(x, mean, logvar):
    """log N(x; mean, exp(logvar)), elementwise; broadcasts."""
    return -0.5 * (LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar))


def bernoulli_log_likelihood(logits, x):
    """log Bernoulli(x; sigmoid(logits)) = -BCE-with-logits, elementwise, for intensities x in [0, 1]
    (the originals' likelihood on [0, 1] pixels); `x` broadcasts against `logits`."""
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")


def gaussian_kl_to_standard(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, 1)) in closed form, elementwise (Kingma & Welling 2014, App. B)."""
    return 0.5 * (mean.pow(2) + torch.exp(logvar) - 1.0 - logvar)


def gaussian_entropy(logvar):
    """Entropy of N(., exp(logvar)) in closed form, elementwise: -E_q[log q]."""
    return 0.5 * (LOG_2PI + 1.0 + logvar)


def reparameterize(mean, logvar, noise):
    """mean + std * noise with noise ~ N(0, I) given explicitly (tests pass the same noise twice)."""
    return mean + torch.exp(0.5 * logvar) * noise


def log_mean_exp(log_values, dim):
    """log(mean(exp(log_values))) along `dim`, via log-sum-exp."""
    return torch.logsumexp(log_values, dim) - math.log(log_values.shape[dim])


def expectation_over_labels(log_q, elbo_per_label):
    """Labels summed out (Kingma et al. 2014, Eq. 7): U = sum_y q(y) L(y) + H(q) = sum_y q(y) (L(y) - log q(y)).

    log_q: (B, K) log-probabilities from log_softmax; elbo_per_label: (K, B), the bound with each label
    plugged in. Returns (B,)."""
    q = torch.exp(log_q)
    return (q * (elbo_per_label.transpose(0, 1) - log_q)).sum(1)


def classification_weight(alpha, spec):
    """Weight of the labeled cross-entropy: alpha * N / N_labeled, from the data sizes (never from batch counts).
    N is the whole training set (the unlabeled pool, labeled images included), as in both original codes."""
    return alpha * spec.num_train / spec.num_labeled


OBJECTIVES = ("halves", "rows")


def semi_supervised_loss(elbo_unlabeled, elbo_labeled, ce_labeled, class_weight, objective="halves"):
    """The minimised objective from per-row bounds U(x), L(x, y) and cross-entropies -log q(y|x). Returns the terms.

    'halves' (Maaloe et al.'s code, sdgmssl.py): -(mean_u U + mean_l L) + class_weight * mean_l CE, each bound
    averaged over its own part of the batch.
    'rows' (Kingma et al.'s code, learn_yz_x_ss.py lines 248-296): the batch sums divided by the batch's row
    count, -(sum_u U + sum_l L - class_weight * sum_l CE) / (B_u + B_l); with a batch that is 1/M of the data
    set this is their dataset sum times M divided by the total count."""
    if objective == "halves":
        loss = -(elbo_unlabeled.mean() + elbo_labeled.mean()) + class_weight * ce_labeled.mean()
    elif objective == "rows":
        rows = len(elbo_unlabeled) + len(elbo_labeled)
        loss = -(elbo_unlabeled.sum() + elbo_labeled.sum() - class_weight * ce_labeled.sum()) / rows
    else:
        raise BadValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    return {"loss": loss, "elbo_u": elbo_unlabeled.mean().detach(), "elbo_l": elbo_labeled.mean().detach(),
            "ce": ce_labeled.mean().detach()}


def weight_log_prior(parameters):
    """log N(W; 0, I) summed over the weight matrices, without its constant: both original codes add it to the
    bound (divided by the training-set size); biases and normalisation parameters are left out."""
    return -0.5 * sum(p.pow(2).sum() for p in parameters if p.dim() >= 2)


# ---- building blocks ---------------------------------------------------------------------------------

ACTIVATIONS = {"relu": nn.ReLU, "softplus": nn.Softplus}


class BatchNormOverLeadingDims(nn.BatchNorm1d):
    """Batch normalisation of the last dimension with statistics over all leading ones (batch, enumerated
    labels, draws of a), as Lasagne's BatchNormLayer on the originals' flattened (rows, units) matrices.
    Lasagne's defaults: epsilon 1e-4, running averages updated with weight 0.1."""

    def __init__(self, units):
        super().__init__(units, eps=1e-4, momentum=0.1)

    def forward(self, x):
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class DenseNet(nn.Module):
    """Fully connected network on several inputs: the first layer sums one linear map per input (the same
    as one linear map of their concatenation, as in the original Theano codes), so inputs broadcast, e.g.
    x of shape (B, D) with all K labels (K, 1, K) gives (K, B, out). Hidden layers use `activation`, after a
    batch normalisation when `batch_norm` (as sdgmssl.py's dense_layer: linear, normalise, activate); the
    output layer (if `out_size`) is linear."""

    def __init__(self, in_sizes, hidden, out_size=None, activation="relu", batch_norm=False):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise BadValueError(f"unknown activation {activation!r}; one of {sorted(ACTIVATIONS)}")
        widths = list(hidden) + ([out_size] if out_size is not None else [])
        if not widths:
            raise BadValueError("a DenseNet needs hidden layers or an output size")

        def hidden_unit(n):  # what follows each hidden layer's linear map
            return ([BatchNormOverLeadingDims(n)] if batch_norm else []) + [ACTIVATIONS[activation]()]

        self.inputs = nn.ModuleList(nn.Linear(n, widths[0], bias=(i == 0)) for i, n in enumerate(in_sizes))
        layers = []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            layers += [*hidden_unit(n_in), nn.Linear(n_in, n_out)]
        if out_size is None:
            layers += hidden_unit(widths[-1])
        self.rest = nn.Sequential(*layers)

    def forward(self, *inputs):
        if len(inputs) != len(self.inputs):
            raise BadValueError(f"expected {len(self.inputs)} inputs, got {len(inputs)}")
        total = self.inputs[0](inputs[0])
        for layer, x in zip(self.inputs[1:], inputs[1:]):
            total = total + layer(x)
        return self.rest(total)


class GaussianLayer(nn.Module):
    """A DenseNet whose output is (mean, log-variance) of a diagonal Gaussian; the log-variance is the raw
    linear output (parametrised directly, as in both original codes)."""

    def __init__(self, in_sizes, hidden, dim, activation="relu", batch_norm=False):
        super().__init__()
        self.net = DenseNet(in_sizes, hidden, 2 * dim, activation, batch_norm)

    def forward(self, *inputs):
        mean, logvar = self.net(*inputs).chunk(2, dim=-1)
        return mean, logvar


def image_features(image_shape, architecture):
    """x -> the flat vector the inference networks read, and its size: the pixels themselves ('mlp') or the
    appendix's convolutional trunk, 32-32-64-64 filters 4x4 stride 2 ('conv', 64x64 images only)."""
    if architecture == "mlp":
        return nn.Flatten(), math.prod(image_shape)
    if architecture == "conv":
        if tuple(image_shape[1:]) != (64, 64):
            raise BadValueError(f"the convolutional networks expect 64x64 images, got {image_shape}")
        return conv_encoder_trunk(image_shape[0]), CONV_FEATURES
    raise BadValueError(f"unknown architecture {architecture!r} (mlp or conv)")


class PixelDecoder(nn.Module):
    """Inputs -> Bernoulli logits of the flattened image, shape (..., C*H*W); any leading dimensions.
    'mlp': a DenseNet with `hidden` layers. 'conv': a DenseNet to 1024 units, the activation, then the
    appendix's transposed convolutions 64-32-32-C (their final sigmoid left out: we need logits)."""

    def __init__(self, in_sizes, hidden, image_shape, architecture, activation="relu", batch_norm=False):
        super().__init__()
        self.pixels = math.prod(image_shape)
        self.architecture = architecture
        if architecture == "mlp":
            self.dense = DenseNet(in_sizes, hidden, self.pixels, activation, batch_norm)
            self.head = None
        elif architecture == "conv":
            if tuple(image_shape[1:]) != (64, 64):
                raise BadValueError(f"the convolutional networks expect 64x64 images, got {image_shape}")
            self.dense = DenseNet(in_sizes, hidden, CONV_FEATURES, activation, batch_norm)
            self.head = nn.Sequential(ACTIVATIONS[activation](), *conv_decoder_head(image_shape[0])[:-1])
        else:
            raise BadValueError(f"unknown architecture {architecture!r} (mlp or conv)")

    def forward(self, *inputs):
        out = self.dense(*inputs)
        if self.head is None:
            return out
        lead = out.shape[:-1]
        return self.head(out.reshape(-1, CONV_FEATURES)).reshape(*lead, self.pixels)


# ---- the shared skeleton -----------------------------------------------------------------------------

@dataclass
class SemiSupervisedVAEConfig(MethodConfig):
    """Settings the skeleton itself reads; M1+M2 and ADGM add their architectures."""
    alpha: float = 0.1          # classification weight alpha * N / N_labeled
    binarize: str = "none"      # 'dynamic': train on x ~ Bernoulli(intensity) per step (both original codes)
    objective: str = "halves"   # how the batch's rows are weighted: semi_supervised_loss, OBJECTIVES
    weight_prior: bool = False  # add -log N(W; 0, I) / N to the loss (both original codes)


class SemiSupervisedVAE(GenerativeMethod):
    """Skeleton of M2-type models: p(y) p(z) p(x|y,z) with q(y|.) and q(z|., y).

    A subclass builds its networks and implements
      draw_noise(x, enumerate_labels)  the N(0, I) noise of one bound evaluation: 'z' of shape (K, B, Z) when
                                       the labels are enumerated, else (B, Z), plus its own (M1 features, a);
      _prepare(x, noise)               what does not depend on y (features, the auxiliary sample a), once per x;
      _log_q(ctx)                      log q(y | .) of shape (B, K), from log_softmax;
      _bound(ctx, y, z_noise)          the labeled bound L(x, y) for one-hot (or enumerated (K, 1, K)) y;
      _posterior_mean_z(x, y), _decode_logits(z, y) for encode/decode.
    Codes are [z, one-hot y] with the one-hot last (Section VI.C interpolates both)."""
    has_classifier = True
    has_class_components = False
    table_variant = "semi-supervised"
    binarize_modes = ("none", "dynamic")

    def _init_skeleton(self, spec, z_dim):
        priors = torch.tensor(spec.class_priors, dtype=torch.float64)
        if len(priors) != spec.num_classes or (priors <= 0).any():
            raise BadValueError(f"p(y) needs a positive prior for each of the {spec.num_classes} classes, "
                             f"got {spec.class_priors}")
        # p(y): the labeled class proportions (uniform for the balanced MNIST/SVHN subsets, as in the originals).
        self.register_buffer("log_prior", (priors / priors.sum()).log().float())
        self.z_dim = z_dim
        self.class_weight = classification_weight(self.config.alpha, spec)
        self.class_code_slice = slice(z_dim, z_dim + spec.num_classes)
        if self.config.binarize not in self.binarize_modes:
            raise BadValueError(f"binarize must be one of {self.binarize_modes}, got {self.config.binarize!r}")
        if self.config.objective not in OBJECTIVES:
            raise BadValueError(f"objective must be one of {OBJECTIVES}, got {self.config.objective!r}")

    def training_batch(self, batch):
        """The images the bounds see: the [0, 1] intensities ('none'), or ('dynamic') x ~ Bernoulli(intensity)
        redrawn at every step, as both original codes trained on MNIST. Test images are never binarised."""
        if self.config.binarize == "none":
            return batch
        return Batch(x_unlabeled=torch.bernoulli(batch.x_unlabeled), x_labeled=torch.bernoulli(batch.x_labeled),
                     y_labeled=batch.y_labeled)

    # ---- bounds ---------------------------------------------------------------------------------------
    def one_hot(self, y):
        return F.one_hot(y, self.spec.num_classes).to(self.log_prior.dtype)

    def all_labels(self):
        """Every label at once, shaped (K, 1, K) so that it broadcasts against a batch."""
        k = self.spec.num_classes
        return torch.eye(k, dtype=self.log_prior.dtype, device=self.log_prior.device).unsqueeze(1)

    def labeled_terms(self, x, y, noise):
        """(L(x, y), -log q(y|.)) per row, for labels y (B,) and noise['z'] of shape (B, Z); x prepared once."""
        ctx = self._prepare(x, noise)
        return self._bound(ctx, self.one_hot(y), noise["z"]), self.cross_entropy(ctx, y)

    def unlabeled_elbo(self, x, noise):
        """U(x) per row: the bound with every label plugged in, summed under q(y|.), plus its entropy."""
        ctx = self._prepare(x, noise)
        return expectation_over_labels(self._log_q(ctx), self._bound(ctx, self.all_labels(), noise["z"]))

    def cross_entropy(self, ctx, y):
        """-log q(y|.) per labeled row (ADGM with several draws of a averages it over the draws)."""
        return F.nll_loss(self._log_q(ctx), y, reduction="none")

    def prior_parameters(self):
        """The parameters under the weight prior: those this phase trains."""
        return self.parameters()

    def semi_supervised_step(self, batch):
        x_u, x_l, y_l = batch.x_unlabeled, batch.x_labeled, batch.y_labeled
        elbo_u = self.unlabeled_elbo(x_u, self.draw_noise(x_u, enumerate_labels=True))
        elbo_l, ce_l = self.labeled_terms(x_l, y_l, self.draw_noise(x_l, enumerate_labels=False))
        terms = semi_supervised_loss(elbo_u, elbo_l, ce_l, self.class_weight, self.config.objective)
        if self.config.weight_prior:
            # Both codes: (bound summed over the data + log p(W)) / N, i.e. log p(W) / N next to per-row bounds.
            terms["loss"] = terms["loss"] - weight_log_prior(self.prior_parameters()) / self.spec.num_train
        return terms

    # ---- generative interface -------------------------------------------------------------------------
    def encode(self, x):
        """[posterior mean of z given the predicted class, one-hot of the predicted class]."""
        y = self.one_hot(self.classify(x).argmax(1))
        return torch.cat([self._posterior_mean_z(x, y), y], 1)

    def decode(self, code):
        """Images in [0, 1] (the Bernoulli means); the class part may be any vector (interpolations)."""
        z, y = code[:, :self.z_dim], code[:, self.class_code_slice]
        return torch.sigmoid(self._decode_logits(z, y)).reshape(len(code), *self.spec.image_shape)

    def sample(self, classes, generator=None):
        """z ~ N(0, I) drawn on the CPU with `generator`, the given classes one-hot, decoded to means."""
        classes = torch.as_tensor(classes, dtype=torch.long).reshape(-1)
        z = torch.randn(len(classes), self.z_dim, generator=generator)
        y = F.one_hot(classes, self.spec.num_classes).float()
        return self.decode(torch.cat([z, y], 1).to(self.device))
