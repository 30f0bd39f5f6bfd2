"""In-memory image datasets and the per-dataset semi-supervised protocol."""
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from segma_bench.core.errors import UserError

DATA_ROOT_ENV = "SEGMA_DATA_ROOT"
CACHE_DIR_ENV = "SEGMA_CACHE_DIR"


class DataNotFoundError(UserError, FileNotFoundError):
    """Data that is not where we looked; the message says what is missing and how to get it."""


class DataCorruptError(UserError, ValueError):
    """Data files that are there but unreadable (truncated, wrong size); the message names the file."""


@dataclass(frozen=True)
class Protocol:
    """The paper's semi-supervised setting for one dataset (Section VI.A and docs/protocol.md)."""
    num_labeled: int
    unlabeled_batch_size: int
    labeled_batch_size: int      # half of each batch is labeled (Section V)
    paper_epochs: int            # the SeGMA authors' code's training length (docs/protocol.md; the paper states none)


@dataclass
class ImageDataset:
    """uint8 images (N, C, H, W) held in memory, so batches are indexed, not built sample by sample."""
    name: str
    train_images: torch.Tensor   # the unlabeled pool (labeled examples are drawn from it too)
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: tuple
    protocol: Protocol
    source: dict = field(default_factory=dict)  # where it was read from, for the run record

    @property
    def image_shape(self):
        return tuple(self.train_images.shape[1:])

    @property
    def num_classes(self):
        return len(self.class_names)


def to_float(images_uint8):
    """Pixels / 255, no other preprocessing (Section VI.A)."""
    return images_uint8.float().div_(255.0)


def resolve_data_root(data_root=None):
    """--data-root, then $SEGMA_DATA_ROOT; None means the default ./data with downloads allowed."""
    root = data_root or os.environ.get(DATA_ROOT_ENV)
    return Path(root) if root else None


def resolve_cache_dir(cache_dir=None):
    return Path(cache_dir or os.environ.get(CACHE_DIR_ENV) or ".cache")


def missing_data_message(what, looked_in, how_to_get):
    return (f"{what} not found in {looked_in}. {how_to_get} Point the suite at existing data with "
            f"--data-root DIR or the environment variable {DATA_ROOT_ENV}=DIR (offline copy: ../shared/data).")
