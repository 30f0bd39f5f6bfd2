"""MNIST: 60,000 train (all of it the unlabeled pool) / 10,000 test, 100 labeled, pixels / 255."""
from pathlib import Path

import torchvision

from .base import DataNotFoundError, ImageDataset, Protocol, missing_data_message
from .registry import register_dataset

PROTOCOL = Protocol(num_labeled=100, unlabeled_batch_size=100, labeled_batch_size=100, paper_epochs=500)


@register_dataset("mnist")
def load_mnist(root, cache_dir):
    download = root is None
    root = Path(root or "data")
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
