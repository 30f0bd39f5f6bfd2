"""Shared fixtures of the test suite: a tiny structured fake dataset and the offline shared data.

Everything here is small enough to train in well under a second per epoch on one CPU core."""
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "tests"):  # the suite's packages, and test modules sharing reference helpers
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from datasets.base import ImageDataset, Protocol  # noqa: E402

SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(1)  # the test machines are shared; these models are far too small to gain from threads

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
                        source={"generator": "tests/conftest.py make_fake_dataset", "seed": seed})


@pytest.fixture
def fake_data():
    return make_fake_dataset()


@pytest.fixture
def make_fake():
    """The factory itself, for tests that need other sizes or seeds (conftest is not imported by name)."""
    return make_fake_dataset


@pytest.fixture
def shared_data():
    """The offline copy of the real data (../shared/data); the test is skipped where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test reads the user's data root, cache or plugins, or writes runs/ into the repository."""
    for var in ("SEGMA_DATA_ROOT", "SEGMA_CACHE_DIR", "SEGMA_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
