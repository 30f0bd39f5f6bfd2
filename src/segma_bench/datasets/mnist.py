"""MNIST: 60,000 train (all of it the unlabeled pool) / 10,000 test, 100 labeled, pixels / 255."""
from pathlib import Path

import torchvision

from .base import DataCorruptError, DataNotFoundError, ImageDataset, Protocol, missing_data_message
from .registry import register_dataset

PROTOCOL = Protocol(num_labeled=100, unlabeled_batch_size=100, labeled_batch_size=100, paper_epochs=500)

# Sizes of the uncompressed IDX files: a 16- or 8-byte header, then one byte per pixel or label.
RAW_SIZES = {"train-images-idx3-ubyte": 16 + 60000 * 28 * 28, "train-labels-idx1-ubyte": 8 + 60000,
             "t10k-images-idx3-ubyte": 16 + 10000 * 28 * 28, "t10k-labels-idx1-ubyte": 8 + 10000}


def check_raw_sizes(root):
    """A truncated or padded file that is there is its own error, not "MNIST not found"."""
    for name, expected in RAW_SIZES.items():
        path = Path(root) / "MNIST" / "raw" / name
        if path.is_file() and path.stat().st_size != expected:
            raise DataCorruptError(f"{path.resolve()} is {path.stat().st_size:,} bytes, expected {expected:,} "
                                   "(truncated or corrupt); delete it and copy it again (offline copy: "
                                   "../shared/data/MNIST/raw), or download it again without --data-root")


@register_dataset("mnist")
def load_mnist(root, cache_dir):
    download = root is None
    root = Path(root or "data")
    check_raw_sizes(root)
    try:
        train = torchvision.datasets.MNIST(root, train=True, download=download)
        test = torchvision.datasets.MNIST(root, train=False, download=download)
    except Exception as error:  # torchvision raises RuntimeError (missing) or URLError (offline)
        raise DataNotFoundError(missing_data_message(
            "MNIST (MNIST/raw/*-idx*-ubyte)", root.resolve(),
            "Online, run without --data-root and torchvision downloads it to ./data.")) from error
    return ImageDataset(
        name="mnist",
        train_images=train.data.unsqueeze(1).contiguous(), train_labels=train.targets.long(),
        test_images=test.data.unsqueeze(1).contiguous(), test_labels=test.targets.long(),
        class_names=tuple(str(d) for d in range(10)), protocol=PROTOCOL,
        source={"root": str(root.resolve()), "format": "torchvision MNIST"})
