"""pytorch-fid's FID Inception network and fast, exact extraction of its 2048-d pool3 features.

The network is pytorch-fid's InceptionV3(output_blocks=[3], use_fid_inception=True) with the
TensorFlow FID weights, and images are prepared exactly as its forward() does (bilinear resize
to 299x299, then 2x - 1), so the features equal pytorch_fid.fid_score.get_activations on the same
images up to float32 rounding (about 1e-5; tests/test_fid.py checks 1e-4).

It is faster on CPU (benchmarks/README.md) because it
  - folds every batch norm into its convolution (one pass over the activations less per layer),
  - runs in channels_last memory format, the layout oneDNN convolutions work in,
  - uses a smaller default batch on CPU, whose activations stay in cache,
  - resizes a grayscale image once instead of three times.

Weights are taken from, in this order: the `weights_path` argument (--fid-weights), the
environment variable SEGMA_FID_WEIGHTS, pytorch-fid's own download into torch.hub's cache.
"""
import functools
import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytorch_fid
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from pytorch_fid import inception as pytorch_fid_inception
from torchvision.models.inception import BasicConv2d
from tqdm import tqdm

from segma_bench.core.errors import BadValueError, UserError
from segma_bench.core.progress import on_terminal

WEIGHTS_ENV_VAR = "SEGMA_FID_WEIGHTS"
OFFLINE_WEIGHTS_HINT = "../shared/weights/pt_inception-2015-12-05.pth"  # relative to the repository root
OFFLINE_WEIGHTS_SHA256 = "3f2fe0d6bd3354e03fdb0b561a554a02f252f6cb114f507db12c2cfd5d67600b"
PYTORCH_FID_WEIGHTS_URL = pytorch_fid_inception.FID_WEIGHTS_URL
# pytorch-fid's release file names the first hex digits of its sha256 (torch.hub's convention).
PYTORCH_FID_SHA256_PREFIX = "6726825d"

FEATURE_DIMS = 2048
INCEPTION_SIZE = 299
# Batch 10 keeps a batch's activations in cache on CPU; larger batches measured slower there.
DEFAULT_BATCH_SIZE = {"cpu": 10, "cuda": 100}
PROGRESS_DELAY_S = 5  # extractions shorter than this print nothing


class FIDWeightsError(UserError):
    """The FID Inception weights are missing, are not the expected file, or could not be downloaded."""


def _how_to_fix():
    hint = (f"Pass --fid-weights PATH or set {WEIGHTS_ENV_VAR}=PATH to the FID Inception weights "
            f"(pt_inception-2015-12-05.pth); the offline copy is {OFFLINE_WEIGHTS_HINT} relative to "
            "the repository root")
    return hint + "."


# ---------------------------------------------------------------- locating and checking the weights

def resolve_weights_path(weights_path=None):
    """Where the weights are: `weights_path`, else $SEGMA_FID_WEIGHTS, else pytorch-fid's download."""
    if weights_path:
        return Path(weights_path).expanduser()
    if os.environ.get(WEIGHTS_ENV_VAR):
        return Path(os.environ[WEIGHTS_ENV_VAR]).expanduser()
    return download_pytorch_fid_weights()


def download_pytorch_fid_weights(url=PYTORCH_FID_WEIGHTS_URL, cache_dir=None):
    """Path of pytorch-fid's own weights file, downloaded once into torch.hub's checkpoint folder."""
    cache_dir = Path(cache_dir) if cache_dir else Path(torch.hub.get_dir()) / "checkpoints"
    path = cache_dir / os.path.basename(urlparse(url).path)
    if path.is_file():
        return path
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), hash_prefix=PYTORCH_FID_SHA256_PREFIX)
    except Exception as error:  # no network, HTTP error, timeout or bad hash: the fix is the same
        raise FIDWeightsError(f"Could not download the FID Inception weights from {url} ({error}). "
                              f"{_how_to_fix()}") from error
    return path


def file_sha256(path):
    """sha256 of a file, computed once per (path, mtime, size) in this process."""
    stat = os.stat(path)
    return _sha256_once(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=None)
def _sha256_once(path, mtime_ns, size):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights(path):
    """sha256 of the file at `path`; FIDWeightsError unless it is one of the known FID weight files."""
    path = Path(path)
    if not path.is_file():
        raise FIDWeightsError(f"FID Inception weights not found at {path}. {_how_to_fix()}")
    sha256 = file_sha256(path)
    if sha256 != OFFLINE_WEIGHTS_SHA256 and not sha256.startswith(PYTORCH_FID_SHA256_PREFIX):
        raise FIDWeightsError(
            f"{path} is not the FID Inception weights file: its sha256 is {sha256}, expected "
            f"{OFFLINE_WEIGHTS_SHA256} (offline copy) or {PYTORCH_FID_SHA256_PREFIX}... (pytorch-fid's "
            f"download). {_how_to_fix()}")
    return sha256


# ---------------------------------------------------------------- the network

def fid_inception_v3(state_dict):
    """pytorch_fid.inception.fid_inception_v3(), with the weights given instead of downloaded."""
    with torch.device("meta"):  # no random initialisation: every tensor comes from state_dict
        inception = _fid_inception_v3_structure()
    inception.load_state_dict(state_dict, assign=True)
    return inception


def _fid_inception_v3_structure():
    inception = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False,
                                                init_weights=False)
    inception.Mixed_5b = pytorch_fid_inception.FIDInceptionA(192, pool_features=32)
    inception.Mixed_5c = pytorch_fid_inception.FIDInceptionA(256, pool_features=64)
    inception.Mixed_5d = pytorch_fid_inception.FIDInceptionA(288, pool_features=64)
    inception.Mixed_6b = pytorch_fid_inception.FIDInceptionC(768, channels_7x7=128)
    inception.Mixed_6c = pytorch_fid_inception.FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6d = pytorch_fid_inception.FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6e = pytorch_fid_inception.FIDInceptionC(768, channels_7x7=192)
    inception.Mixed_7b = pytorch_fid_inception.FIDInceptionE_1(1280)
    inception.Mixed_7c = pytorch_fid_inception.FIDInceptionE_2(2048)
    return inception


class InceptionPool3(nn.Module):
    """The layers of pytorch-fid's InceptionV3(output_blocks=[3]), input to 2048-d pool3 features.

    Expects its input already resized and scaled to [-1, 1] (see `inception_input`).
    """

    def __init__(self, inception):
        super().__init__()
        self.layers = nn.Sequential(
            # pytorch-fid block 0
            inception.Conv2d_1a_3x3, inception.Conv2d_2a_3x3, inception.Conv2d_2b_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            # block 1
            inception.Conv2d_3b_1x1, inception.Conv2d_4a_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            # block 2
            inception.Mixed_5b, inception.Mixed_5c, inception.Mixed_5d, inception.Mixed_6a,
            inception.Mixed_6b, inception.Mixed_6c, inception.Mixed_6d, inception.Mixed_6e,
            # block 3
            inception.Mixed_7a, inception.Mixed_7b, inception.Mixed_7c,
            nn.AdaptiveAvgPool2d(output_size=(1, 1)),
        )

    def forward(self, x):
        return self.layers(x).flatten(1)


def fold_batch_norms(network):
    """Fold each eval-mode batch norm into the convolution before it, in place."""
    for module in list(network.modules()):
        if isinstance(module, BasicConv2d) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv = _conv_with_batch_norm(module.conv, module.bn)
            module.bn = nn.Identity()
    return network


def _conv_with_batch_norm(conv, bn):
    # In float64, so the folded float32 weights carry one rounding, not two.
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    bias = bn.bias.double() - bn.running_mean.double() * scale
    if conv.bias is not None:
        bias = bias + conv.bias.double() * scale
    folded = nn.utils.skip_init(nn.Conv2d, conv.in_channels, conv.out_channels, conv.kernel_size,
                                stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                                groups=conv.groups, bias=True)
    with torch.no_grad():
        folded.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
        folded.bias.copy_(bias)
    return folded


def load_pool3_network(weights_path, device="cpu"):
    """The pool3 network with verified weights from `weights_path`, batch norms folded, channels_last."""
    state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
    network = fold_batch_norms(InceptionPool3(fid_inception_v3(state_dict)))
    network = network.eval().requires_grad_(False)
    return network.to(device=device, memory_format=torch.channels_last)


# ---------------------------------------------------------------- images to features

def as_image_batch(images):
    """`images` as a float tensor (N, C, H, W) with C = 1 or 3, after checking it is one."""
    images = torch.as_tensor(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise BadValueError(f"expected images of shape (N, C, H, W) with C = 1 or 3, got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"expected float images in [0, 1], got {images.dtype}; "
                        "convert uint8 images with images.float() / 255")
    if not torch.isfinite(images).all():
        raise BadValueError("images contain NaN or infinite values")
    return images


def inception_input(batch):
    """Images in [0, 1] -> network input, prepared as pytorch-fid's InceptionV3.forward does."""
    x = batch.to(torch.float32).clamp(0, 1)
    x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    # Resizing works per channel: one resized gray channel, repeated, equals three resized copies.
    x = x.expand(-1, 3, -1, -1)
    return x.contiguous(memory_format=torch.channels_last)


@contextmanager
def _ieee_fp32_convolutions(device):
    # cuDNN convolutions default to TF32 on recent GPUs, which moves features by ~1e-3;
    # full float32 keeps them equal to pytorch-fid's on CPU. Restored on exit.
    if device.type != "cuda":
        yield
        return
    conv = torch.backends.cudnn.conv
    saved = conv.fp32_precision
    conv.fp32_precision = "ieee"
    try:
        yield
    finally:
        conv.fp32_precision = saved


def default_device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class FeatureExtractor:
    """pool3 features of the FID Inception network; build once, call on many image sets.

    Features do not depend on `batch_size`, only speed and memory do.
    """

    def __init__(self, weights_path=None, device=None, batch_size=None, progress=True):
        self.progress = progress
        self.weights_path = resolve_weights_path(weights_path)
        self.weights_sha256 = verify_weights(self.weights_path)
        self.device = torch.device(device) if device is not None else default_device()
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE.get(self.device.type, 50)
        self.model = load_pool3_network(self.weights_path, self.device)

    def __call__(self, images):
        """Float images (N, C, H, W) in [0, 1] (clipped), C = 1 or 3 -> (N, 2048) float64 features."""
        images = as_image_batch(images)
        features = np.empty((len(images), FEATURE_DIMS), dtype=np.float64)  # as get_activations
        # A bar with images/s and ETA, shown only when extraction takes longer than a few seconds.
        bar = tqdm(total=len(images), unit="img", desc="FID features", delay=PROGRESS_DELAY_S, mininterval=2,
                   leave=False, disable=not on_terminal(self.progress))  # a log file gets no bar frames
        with bar, torch.inference_mode(), _ieee_fp32_convolutions(self.device):
            for start in range(0, len(images), self.batch_size):
                batch = images[start:start + self.batch_size].to(self.device)
                features[start:start + len(batch)] = self.model(inception_input(batch)).cpu().numpy()
                bar.update(len(batch))
        return features

    def protocol(self):
        """What defines the features, for run records (batch size is left out: it changes nothing)."""
        return {
            "network": "pytorch_fid.inception.InceptionV3(output_blocks=[3], use_fid_inception=True), "
                       "2048-d pool3",
            "weights_file": self.weights_path.name,
            "weights_sha256": self.weights_sha256,
            "pytorch_fid_version": pytorch_fid.__version__,
            "torch_version": torch.__version__,
            "input": "float images clipped to [0, 1]; grayscale repeated to 3 channels",
            "resize": f"bilinear to {INCEPTION_SIZE}x{INCEPTION_SIZE}, align_corners=False, no antialias "
                      "(pytorch-fid resize_input=True)",
            "normalize": "2x - 1 (pytorch-fid normalize_input=True)",
            "batch_norm_folded": True,
            "device": str(self.device),
        }
