"""M1+M2 (Kingma, Rezende, Mohamed & Welling 2014, "Semi-supervised learning with deep generative models").

M1 is a VAE q(z1|x), p(x|z1) trained alone on all images for the first `m1_epochs` epochs of the run. Then
M1 is frozen and M2, the semi-supervised model p(y) p(z) p(z1|y,z) with q(y|z1) and q(z|z1,y), is trained
on M1's codes z1: a fresh sample z1 ~ q(z1|x) per batch in training and the posterior mean for classify /
encode, as in the authors' code (learn_yz_x_ss.py). M1 dimensions whose posterior-mean std is at most
`drop_threshold` are dropped (zeroed in M2's inputs, left out of its likelihood, fed as 0 to M1's decoder),
measured once on the first M2 batch. docs/baselines.md lists every setting and its source.
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
    gaussian_kl_to_standard,
    gaussian_log_pdf,
    image_features,
    reparameterize,
)
from .networks import architecture_for
from .registry import register

# M1: hidden layers of the encoder (the decoder mirrors them) and latent size.
M1_ARCHITECTURES = {
    "mnist": dict(architecture="mlp", hidden=(500, 500), latent_dim=50),     # authors' code, MNIST
    "svhn": dict(architecture="mlp", hidden=(500, 500), latent_dim=300),     # authors' code, SVHN (no PCA here)
    "celeba": dict(architecture="conv", hidden=(300,), latent_dim=300),      # SeGMA appendix
}
# M2 and the schedule; unknown datasets (tests on toy data) get a small model and one M1 epoch.
M2_SETTINGS = {
    "mnist": dict(activation="softplus", m2_hidden=(500,), m2_decoder_hidden=(500,), m2_latent_dim=50,
                  drop_threshold=0.1, m1_epochs=100),
    "svhn": dict(activation="softplus", m2_hidden=(500, 500), m2_decoder_hidden=(500, 500), m2_latent_dim=300,
                 drop_threshold=0.0, m1_epochs=100),
    "celeba": dict(activation="relu", m2_hidden=(300,), m2_decoder_hidden=(300, 300), m2_latent_dim=50,
                   drop_threshold=0.1, m1_epochs=100),
}
TOY_M2_SETTINGS = dict(activation="softplus", m2_hidden=(64,), m2_decoder_hidden=(64,), m2_latent_dim=10,
                       drop_threshold=0.1, m1_epochs=1)

# The `kingma-code` recipe: dpkingma/nips14-ssl as run for MNIST with 100 labels (docs/baselines.md, "The
# kingma-code recipe", lists the file and line of each setting).
KINGMA_BATCHES_PER_PASS = 100   # run_2layer_ssl.py l.13 (n_minibatches=100)
KINGMA_M2_PASSES = 3000         # run_2layer_ssl.py l.13 (n_passes=3000)
KINGMA_M1_EPOCHS = 5000         # gpulearn_z_x.py: >= 10,000 passes of 50 batches = 500,000 updates = 5,000 of ours
KINGMA_MNIST = dict(m2_hidden=(300,), m2_decoder_hidden=(300,),   # run_2layer_ssl.py l.13: n_hidden=(300,)
                    objective="rows",                             # learn_yz_x_ss.py l.293-296: sums / n_tot
                    weight_prior=True,                            # learn_yz_x_ss.py l.289-296: N(0, 1) prior / n_tot
                    binarize="dynamic-m1",                        # gpulearn_z_x.py l.56, 399 (M1 only)
                    m1_epochs=KINGMA_M1_EPOCHS)


def _forget_kept_dims(module, incompatible_keys):
    """After load_state_dict: the host's copy of m1_keep_fixed is read again from the loaded buffer."""
    module._kept_dims_fixed = None



@dataclass
class M1M2Config(SemiSupervisedVAEConfig):
    architecture: str = "mlp"
    hidden: tuple = (500, 500)          # M1 encoder; the decoder uses the reverse
    latent_dim: int = 50                # M1 latent z1
    activation: str = "softplus"        # authors' code; the SeGMA appendix uses ReLU for CelebA
    m2_hidden: tuple = (500,)           # q(z|z1,y) and q(y|z1)
    m2_decoder_hidden: tuple = (500,)   # p(z1|y,z)
    m2_latent_dim: int = 50             # z
    m1_epochs: int = 100                # the first m1_epochs epochs train M1 only
    m1_features: str = "sample"         # 'sample': z1 ~ q(z1|x) per batch (authors); 'mean': posterior mean
    # binarize (shared setting) may also be 'dynamic-m1': M1 trains on x ~ Bernoulli(intensity), M2 reads the
    # M1 codes of the intensities themselves (the authors' M1 and M2 scripts).
    drop_threshold: float = 0.1         # drop M1 dims with posterior-mean std <= this; <= 0 keeps all


@register("m1m2")
class M1M2(SemiSupervisedVAE):
    """M1+M2 (Kingma et al. 2014): a VAE (M1) pretrained on all images, then the semi-supervised M2 on its codes."""
    config_class = M1M2Config
    binarize_modes = ("none", "dynamic", "dynamic-m1")

    @classmethod
    def recipes(cls, dataset):
        """`kingma-code`: the authors' MNIST scripts (100 labels); not defined for the other datasets, for which
        their M2 script has no 100-minibatch setting of ours to follow."""
        if dataset != "mnist":
            return {}
        return {"kingma-code": Recipe(settings=dict(KINGMA_MNIST), batches_per_pass=KINGMA_BATCHES_PER_PASS,
                                      epochs=KINGMA_M1_EPOCHS + KINGMA_M2_PASSES,
                                      source="dpkingma/nips14-ssl: run_2layer_ssl.py, learn_yz_x_ss.py, "
                                             "gpulearn_z_x.py")}

    @classmethod
    def paper_epochs(cls, dataset):
        # M1, then 500 epochs of M2: the authors' 300,000 M2 updates (3,000 passes of 100 minibatches) at
        # our 600 steps per MNIST epoch. Computed from the default m1_epochs, not from a --set override.
        return M2_SETTINGS.get(dataset, TOY_M2_SETTINGS)["m1_epochs"] + 500

    @classmethod
    def default_config(cls, spec):
        return cls.config_class(**architecture_for(spec.dataset, M1_ARCHITECTURES),
                                **M2_SETTINGS.get(spec.dataset, TOY_M2_SETTINGS))

    def __init__(self, config, spec):
        super().__init__(config, spec)
        if config.m1_features not in ("sample", "mean"):
            raise BadValueError(f"m1_features must be 'sample' or 'mean', got {config.m1_features!r}")
        k, d1, act = spec.num_classes, config.latent_dim, config.activation
        # M1: x -> (features) -> q(z1|x); p(x|z1) Bernoulli.
        self.m1_features, n_features = image_features(spec.image_shape, config.architecture)
        self.m1_encoder = GaussianLayer([n_features], config.hidden, d1, act)
        self.m1_decoder = PixelDecoder([d1], config.hidden[::-1], spec.image_shape, config.architecture, act)
        # M2 on z1: q(y|z1), q(z|z1,y), p(z1|y,z) Gaussian with its own (log-)variance.
        self.classifier = DenseNet([d1], config.m2_hidden, k, act)
        self.m2_encoder = GaussianLayer([d1, k], config.m2_hidden, config.m2_latent_dim, act)
        self.m2_decoder = GaussianLayer([k, config.m2_latent_dim], config.m2_decoder_hidden, d1, act)
        self._init_skeleton(spec, config.m2_latent_dim)
        self.register_buffer("m1_keep", torch.ones(d1))                 # 1 for the M1 dims M2 uses
        self.register_buffer("m1_keep_fixed", torch.tensor(False))
        # The host's copy of m1_keep_fixed: reading the buffer on a GPU waits for the device, so it is read
        # once (None: not yet), set by fix_kept_dims, and read again after a checkpoint is loaded.
        self._kept_dims_fixed = None
        self.register_load_state_dict_post_hook(_forget_kept_dims)
        self.phase = "m1" if config.m1_epochs > 0 else "m2"

    # ---- M1 ---------------------------------------------------------------------------------------------
    def m1_posterior(self, x):
        return self.m1_encoder(self.m1_features(x))

    def m1_elbo_terms(self, x, noise):
        """Per row: log p(x|z1) with z1 = mean + std * noise, and the closed-form KL(q(z1|x) || N(0, I))."""
        mean, logvar = self.m1_posterior(x)
        logits = self.m1_decoder(reparameterize(mean, logvar, noise))
        rec = bernoulli_log_likelihood(logits, x.flatten(1)).sum(1)
        kl = gaussian_kl_to_standard(mean, logvar).sum(1)
        return rec, kl

    def m1_step(self, x):
        rec, kl = self.m1_elbo_terms(x, torch.randn(len(x), self.config.latent_dim, device=x.device))
        return {"loss": (kl - rec).mean(), "m1_rec": -rec.mean().detach(), "m1_kl": kl.mean().detach()}

    @torch.no_grad()
    def fix_kept_dims(self, x):
        """Kingma et al.'s code keeps the M1 dims whose posterior mean varies over the data (std > 0.1)."""
        if self.config.drop_threshold > 0:
            std = self.m1_posterior(x)[0].std(0)
            keep = (std > self.config.drop_threshold).to(self.m1_keep.dtype)
            if keep.sum() > 0:  # never drop everything (an untrained M1)
                self.m1_keep.copy_(keep)
        self.m1_keep_fixed.fill_(True)
        self._kept_dims_fixed = True

    # ---- M2 pieces for the skeleton ----------------------------------------------------------------------
    def draw_noise(self, x, enumerate_labels):
        lead = (self.spec.num_classes, len(x)) if enumerate_labels else (len(x),)
        return {"x1": torch.randn(len(x), self.config.latent_dim, device=x.device),
                "z": torch.randn(*lead, self.config.m2_latent_dim, device=x.device)}

    def m1_code(self, x, noise=None):
        """M2's input: M1's posterior mean, or a sample when noise is given; frozen M1, dropped dims at 0."""
        with torch.no_grad():
            mean, logvar = self.m1_posterior(x)
            code = mean if noise is None else reparameterize(mean, logvar, noise)
        return code * self.m1_keep

    def _prepare(self, x, noise):
        return self.m1_code(x, noise["x1"] if self.config.m1_features == "sample" else None)

    def _log_q(self, x1):
        return F.log_softmax(self.classifier(x1), -1)

    def _bound(self, x1, y, z_noise):
        """log p(z1|y,z) + log p(y) - KL(q(z|z1,y) || p(z)), z ~ q(z|z1,y); Gaussian p(z1|y,z) over kept dims."""
        mean, logvar = self.m2_encoder(x1, y)
        z = reparameterize(mean, logvar, z_noise)
        x1_mean, x1_logvar = self.m2_decoder(y, z)
        log_px = (gaussian_log_pdf(x1, x1_mean, x1_logvar) * self.m1_keep).sum(-1)
        return log_px + y @ self.log_prior - gaussian_kl_to_standard(mean, logvar).sum(-1)

    def _posterior_mean_z(self, x, y):
        return self.m2_encoder(self.m1_code(x), y)[0]

    def _decode_logits(self, z, y):
        return self.m1_decoder(self.m2_decoder(y, z)[0] * self.m1_keep)

    # ---- training and classification --------------------------------------------------------------------
    def on_epoch_start(self, epoch, optimizer):
        self.phase = "m1" if epoch < self.config.m1_epochs else "m2"

    def prior_parameters(self):
        """M2's parameters: the weight prior belongs to the M2 objective (M1 is frozen by then)."""
        return (p for name, p in self.named_parameters() if not name.startswith("m1_"))

    def training_step(self, batch):
        if self.phase == "m1":
            return self.m1_step(self.training_batch(batch).x_unlabeled)
        if self.config.binarize != "dynamic-m1":
            batch = self.training_batch(batch)
        if self._kept_dims_fixed is None:
            self._kept_dims_fixed = bool(self.m1_keep_fixed)  # once per process and loaded checkpoint
        if not self._kept_dims_fixed:
            self.fix_kept_dims(torch.cat([batch.x_unlabeled, batch.x_labeled]))
        return self.semi_supervised_step(batch)

    def classify(self, x):
        """log q(y | z1) at M1's posterior mean (the authors' test-time features)."""
        return self._log_q(self.m1_code(x))
