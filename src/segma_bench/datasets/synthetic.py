"""A tiny structured synthetic dataset for smoke tests and plugin development: trains in well under a
second per epoch on one CPU core, and is learnable (each class is a bright blob in its own spot)."""
import torch

from .base import ImageDataset, Protocol

TINY_PROTOCOL = Protocol(num_labeled=6, unlabeled_batch_size=10, labeled_batch_size=6, paper_epochs=3)


def make_fake_dataset(num_train=60, num_test=30, num_classes=3, side=8, seed=0, protocol=TINY_PROTOCOL,
                      name="fake"):
    """uint8 images (N, 1, side, side): class k is a bright square blob in its own spot (k-th
    diagonal cell) on a dim noisy background, so the classes are learnable but not identical copies.
    Labels cycle 0, 1, ..., K-1 so that every class has the same size."""
    generator = torch.Generator().manual_seed(seed)
    total = num_train + num_test
    labels = torch.arange(total) % num_classes
    images = torch.randint(0, 40, (total, 1, side, side), generator=generator, dtype=torch.int64)
    cell = side // num_classes
    for k in range(num_classes):
        rows = labels == k
        brightness = torch.randint(150, 256, (int(rows.sum()), 1, 1, 1), generator=generator)
        patch = images[rows]
        patch[:, :, k * cell:(k + 1) * cell, k * cell:(k + 1) * cell] = brightness
        images[rows] = patch
    images = images.to(torch.uint8)
    return ImageDataset(name=name, train_images=images[:num_train], train_labels=labels[:num_train],
                        test_images=images[num_train:], test_labels=labels[num_train:],
                        class_names=tuple(f"class {k}" for k in range(num_classes)), protocol=protocol,
                        source={"generator": "segma_bench.datasets.synthetic.make_fake_dataset", "seed": seed})
