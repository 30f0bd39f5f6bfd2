"""Encoder/decoder architectures of Section VI.A and the appendix. ReLU, no weight decay, dropout or BN."""
import math

from torch import nn

from segma_bench.core.errors import BadValueError


def mlp(sizes, final_activation=None):
    """Fully connected ReLU network with layer widths `sizes` (input first); no activation on the output
    unless `final_activation` is given."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if final_activation is not None:
        layers.append(final_activation)
    return nn.Sequential(*layers)


class Unflatten(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


def conv_encoder_trunk(in_channels, channels=(32, 32, 64, 64)):
    """Appendix: 4x4 filters, stride 2, ReLU; 64x64 input -> 64 x 4 x 4 = 1024 features, flattened."""
    layers, c_in = [], in_channels
    for c_out in channels:
        layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        c_in = c_out
    return nn.Sequential(*layers, nn.Flatten())


def conv_decoder_head(out_channels, channels=(64, 32, 32)):
    """Appendix: transposed convolutions 64-32-32 then one with `out_channels`; 4x4 -> 64x64, sigmoid."""
    layers, c_in = [Unflatten((64, 4, 4))], 64
    for c_out in channels:
        layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        c_in = c_out
    layers += [nn.ConvTranspose2d(c_in, out_channels, 4, stride=2, padding=1), nn.Sigmoid()]
    return nn.Sequential(*layers)


CONV_FEATURES = 64 * 4 * 4  # what conv_encoder_trunk gives for a 64x64 image


def autoencoder(image_shape, latent_dim, hidden, architecture):
    """Deterministic encoder and decoder.

    mlp:  pixels - hidden... - latent - reversed(hidden)... - pixels (sigmoid), e.g. MNIST
          784-1024-1024-10-1024-1024-784 and SVHN 3072-786x5-20-786x5-3072.
    conv: conv 32-32-64-64, dense hidden..., latent; decoder dense reversed(hidden)..., 1024,
          transposed conv 64-32-32-C (the appendix's CelebA networks)."""
    pixels = math.prod(image_shape)
    hidden = list(hidden)
    if architecture == "mlp":
        encoder = nn.Sequential(nn.Flatten(), mlp([pixels, *hidden, latent_dim]))
        decoder = nn.Sequential(mlp([latent_dim, *hidden[::-1], pixels], nn.Sigmoid()), Unflatten(image_shape))
    elif architecture == "conv":
        if tuple(image_shape[1:]) != (64, 64):
            raise BadValueError(f"the convolutional networks expect 64x64 images, got {image_shape}")
        encoder = nn.Sequential(conv_encoder_trunk(image_shape[0]),
                                mlp([CONV_FEATURES, *hidden, latent_dim]))
        decoder = nn.Sequential(mlp([latent_dim, *hidden[::-1], CONV_FEATURES]), nn.ReLU(),
                                conv_decoder_head(image_shape[0]))
    else:
        raise BadValueError(f"unknown architecture {architecture!r} (mlp or conv)")
    return encoder, decoder


def glorot_init_(module):
    """Glorot-uniform weights and zero biases for every linear and (transposed) convolution layer: the
    TensorFlow 1 dense/conv defaults the SeGMA authors' code ran with (PyTorch's default is Kaiming-uniform
    with fan-in-scaled biases). Returns the module."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


WEIGHT_INITS = ("torch", "glorot")


# Per-dataset settings shared by the SeGMA family (Section VI.A and the appendix).
SEGMA_ARCHITECTURES = {
    "mnist": dict(architecture="mlp", hidden=(1024, 1024), latent_dim=10),
    "svhn": dict(architecture="mlp", hidden=(786,) * 5, latent_dim=20),
    "celeba": dict(architecture="conv", hidden=(786, 786), latent_dim=32),
}


def architecture_for(dataset, table):
    """A new dict {"architecture": "mlp" or "conv", "hidden": tuple of int, "latent_dim": int}: the dataset's entry
    of `table` (a copy: changing it leaves the table as it was); an unknown dataset gets a small MLP so plugins and
    tests on toy data work."""
    return dict(table.get(dataset, dict(architecture="mlp", hidden=(64, 64), latent_dim=10)))
