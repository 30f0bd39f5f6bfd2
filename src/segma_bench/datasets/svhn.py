"""SVHN: train + extra = 604,388 unlabeled pool, test 26,032, 1,000 labeled, pixels / 255.

Read from torchvision's files ({split}_32x32.mat with X of shape 32x32x3xN uint8 and y with label 10
for the digit 0) in ROOT/SVHN/, where torchvision.datasets.SVHN(ROOT/'SVHN', download=True) puts them.
We read the .mat files ourselves because torchvision's class insists on the full files' MD5 sums."""
from pathlib import Path

import numpy as np
import scipy.io
import torch

from .base import DataNotFoundError, ImageDataset, Protocol, missing_data_message
from .registry import register_dataset

PROTOCOL = Protocol(num_labeled=1000, unlabeled_batch_size=1000, labeled_batch_size=1000, paper_epochs=400)
SPLITS = {"train": "train_32x32.mat", "extra": "extra_32x32.mat", "test": "test_32x32.mat"}


def read_svhn_mat(path):
    """(images uint8 (N, 3, 32, 32), labels long (N,) with 0..9) from one torchvision SVHN .mat file."""
    mat = scipy.io.loadmat(str(path))
    images = torch.from_numpy(np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1))))
    labels = torch.from_numpy(mat["y"].astype(np.int64).reshape(-1))
    labels[labels == 10] = 0  # SVHN stores the digit 0 as class 10
    return images, labels


def ensure_files(folder, download):
    missing = [name for name in SPLITS.values() if not (folder / name).is_file()]
    if missing and download:
        import torchvision
        try:
            for split in SPLITS:
                torchvision.datasets.SVHN(folder, split=split, download=True)
        except Exception as error:
            raise DataNotFoundError(missing_data_message(
                f"SVHN files {missing}", folder.resolve(), "The download failed.")) from error
    elif missing:
        raise DataNotFoundError(missing_data_message(
            f"SVHN files {missing}", folder.resolve(),
            "Online, run without --data-root and torchvision downloads them (about 1.6 GB) to ./data/SVHN."))


@register_dataset("svhn")
def load_svhn(root, cache_dir):
    download = root is None
    folder = Path(root or "data") / "SVHN"
    ensure_files(folder, download)
    parts = {split: read_svhn_mat(folder / name) for split, name in SPLITS.items()}
    return ImageDataset(
        name="svhn",
        train_images=torch.cat([parts["train"][0], parts["extra"][0]]),
        train_labels=torch.cat([parts["train"][1], parts["extra"][1]]),
        test_images=parts["test"][0], test_labels=parts["test"][1],
        class_names=tuple(str(d) for d in range(10)), protocol=PROTOCOL,
        source={"root": str(folder.resolve()), "format": "torchvision SVHN .mat"})
