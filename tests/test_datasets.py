"""The labeled split (datasets/splits.py) and the loaders, on files in the real formats."""
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

import segma_bench.datasets as datasets
from segma_bench.datasets import DataNotFoundError, load_dataset
from segma_bench.datasets.splits import balanced_quota, class_proportions, labeled_indices, load_indices, save_indices
from segma_bench.methods import UnknownNameError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ---- the labeled subset -----------------------------------------------------------------------------------
def test_balanced_quota_equal_shares_and_water_filling():
    assert balanced_quota([50, 50, 50], 30) == [10, 10, 10]
    assert balanced_quota([2, 50, 50], 30) == [2, 14, 14]
    assert balanced_quota([2, 5, 50, 50], 40) == [2, 5, 17, 16]
    assert balanced_quota([10, 10, 10], 8) == [3, 3, 2]          # remainder to the largest, then lowest index
    assert balanced_quota([10, 0, 10], 6) == [3, 0, 3]           # an empty class gets nothing
    assert balanced_quota([3, 4], 7) == [3, 4]                   # everything
    with pytest.raises(ValueError, match="only 7"):
        balanced_quota([3, 4], 8)


def test_balanced_quota_properties_on_random_counts():
    rng = random.Random(0)
    for _ in range(300):
        counts = [rng.randint(0, 40) for _ in range(rng.randint(1, 8))]
        if sum(counts) == 0:
            continue
        n = rng.randint(0, sum(counts))
        quota = balanced_quota(counts, n)
        assert sum(quota) == n
        assert all(0 <= q <= c for q, c in zip(quota, counts))
        free = [q for q, c in zip(quota, counts) if q < c]       # classes that could take more
        if free:
            assert max(free) - min(free) <= 1, (counts, n, quota)
            assert all(q <= max(free) for q, c in zip(quota, counts) if q == c)  # full classes are the small ones


def test_labeled_indices_sizes_balance_determinism():
    g = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.full((2,), 0), torch.full((50,), 1), torch.full((50,), 2)])
    labels = labels[torch.randperm(len(labels), generator=g)]
    idx = labeled_indices(labels, 30, seed=7)
    assert idx.dtype == torch.long and len(idx) == 30
    assert len(set(idx.tolist())) == 30
    assert idx.min() >= 0 and idx.max() < len(labels)
    assert torch.equal(idx, torch.sort(idx).values)
    assert torch.bincount(labels[idx], minlength=3).tolist() == [2, 14, 14]
    assert torch.equal(idx, labeled_indices(labels, 30, seed=7))
    assert not torch.equal(idx, labeled_indices(labels, 30, seed=8))
    balanced = torch.arange(1000) % 10
    chosen = labeled_indices(balanced, 100, seed=0)
    assert torch.bincount(balanced[chosen], minlength=10).tolist() == [10] * 10


def test_labeled_indices_saved_file_round_trips(tmp_path):
    labels = torch.arange(200) % 4
    idx = labeled_indices(labels, 20, seed=3)
    path = tmp_path / "sub" / "labeled_indices.json"
    save_indices(path, idx, {"dataset": "toy", "seed": 3})
    back = load_indices(path)
    assert back.dtype == torch.long and torch.equal(back, idx)
    import json
    saved = json.loads(path.read_text())
    assert saved["dataset"] == "toy" and saved["seed"] == 3 and len(saved["indices"]) == 20


def test_class_proportions():
    props = class_proportions(torch.tensor([0, 0, 1, 3, 3, 3, 3, 3]), 4)
    assert props == pytest.approx((0.25, 0.125, 0.0, 0.625))
    assert len(class_proportions(torch.tensor([1, 1]), 5)) == 5


# ---- SVHN in torchvision's .mat format --------------------------------------------------------------------
def write_svhn_mat(path, pixels, labels):
    """pixels: list of (row, col, channel, value), one bright pixel per image; y as torchvision has it."""
    n = len(labels)
    x = np.zeros((32, 32, 3, n), dtype=np.uint8)
    for i, (r, c, ch, v) in enumerate(pixels):
        x[r, c, ch, i] = v
    y = np.array(labels, dtype=np.uint8).reshape(n, 1)
    scipy.io.savemat(str(path), {"X": x, "y": y})


@pytest.fixture
def svhn_root(tmp_path):
    folder = tmp_path / "svhn_root" / "SVHN"
    folder.mkdir(parents=True)
    write_svhn_mat(folder / "train_32x32.mat", [(1, 30, 0, 201), (5, 7, 1, 202), (31, 0, 2, 203)], [10, 3, 7])
    write_svhn_mat(folder / "extra_32x32.mat", [(0, 2, 2, 204), (17, 9, 0, 205)], [1, 10])
    write_svhn_mat(folder / "test_32x32.mat", [(2, 3, 1, 206), (30, 31, 0, 207)], [10, 9])
    return tmp_path / "svhn_root"


def test_svhn_mat_files(svhn_root):
    data = load_dataset("svhn", data_root=svhn_root)
    assert data.train_images.shape == (5, 3, 32, 32) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (2, 3, 32, 32)
    assert data.train_labels.tolist() == [0, 3, 7, 1, 0]          # train then extra; 10 is the digit 0
    assert data.test_labels.tolist() == [0, 9]
    assert data.train_labels.dtype == torch.long
    expected = [(1, 30, 0, 201), (5, 7, 1, 202), (31, 0, 2, 203), (0, 2, 2, 204), (17, 9, 0, 205)]
    for i, (r, c, ch, v) in enumerate(expected):
        assert data.train_images[i, ch, r, c].item() == v         # channel, row, column land where they were
        assert data.train_images[i].sum().item() == v             # and nowhere else
    assert data.test_images[1, 0, 30, 31].item() == 207 and data.test_images[0, 1, 2, 3].item() == 206
    assert data.num_classes == 10 and data.protocol.num_labeled == 1000


def test_svhn_missing_split_is_a_clear_error(svhn_root):
    (svhn_root / "SVHN" / "extra_32x32.mat").unlink()
    with pytest.raises(DataNotFoundError, match="extra_32x32.mat") as info:
        load_dataset("svhn", data_root=svhn_root)
    assert "--data-root" in str(info.value) and "SEGMA_DATA_ROOT" in str(info.value)


# ---- CelebA -----------------------------------------------------------------------------------------------
FAKE_ATTRS = ["Smiling", "Bald", "Male", "Young"]  # Smiling before Male, unlike the real file
FAKE_ROWS = {  # filename: (partition, Smiling, Bald, Male, Young)
    "000001.jpg": (0, 1, -1, -1, 1), "000002.jpg": (0, -1, -1, 1, 1), "000003.jpg": (1, 1, 1, 1, -1),
    "000004.jpg": (2, -1, -1, -1, 1), "000005.jpg": (0, -1, 1, -1, -1), "000006.jpg": (2, 1, -1, 1, 1),
}


def fake_celeba_image(i):
    """178 x 218 RGB: red outside the 140 x 140 centre crop (x 19..158, y 39..178); inside, the left
    half green at a level that identifies the file and the right half blue."""
    a = np.zeros((218, 178, 3), dtype=np.uint8)
    a[..., 0] = 255
    a[39:179, 19:89] = (0, 60 + 30 * i, 0)
    a[39:179, 89:159] = (0, 0, 255)
    return Image.fromarray(a)


@pytest.fixture
def fake_celeba_root(tmp_path):
    folder = tmp_path / "celeba_root" / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    for i, name in enumerate(FAKE_ROWS):
        fake_celeba_image(i).save(folder / "img_align_celeba" / name, quality=100, subsampling=0)
    attr = [str(len(FAKE_ROWS)), " ".join(FAKE_ATTRS)]
    attr += [f"{name} " + " ".join(f"{v:2d}" for v in row[1:]) for name, row in FAKE_ROWS.items()]
    (folder / "list_attr_celeba.txt").write_bytes(("\r\n".join(attr) + "\r\n").encode())
    part = [f"{name} {row[0]}" for name, row in FAKE_ROWS.items()]
    (folder / "list_eval_partition.txt").write_bytes(("\r\n".join(part) + "\r\n").encode())
    return tmp_path / "celeba_root"


def test_fake_celeba_full_path(fake_celeba_root, tmp_path):
    data = load_dataset("celeba", data_root=fake_celeba_root, cache_dir=tmp_path / "cache")
    assert data.train_images.shape == (4, 3, 64, 64) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (2, 3, 64, 64)
    # 2 * male + smiling; train = partitions 0 and 1 in file order (1, 2, 3, 5), test = 4, 6
    assert data.train_labels.tolist() == [1, 2, 3, 0]
    assert data.test_labels.tolist() == [0, 3]
    assert data.class_names[3] == "male, smiling" and data.num_classes == 4
    img = data.train_images.int()
    assert img[:, 0].float().mean() < 3 and img[:, 0].max() < 60        # the red border is cropped away
    for row, i in enumerate([0, 1, 2, 4]):                              # left half green of file i, right blue
        left, right = img[row, :, 4:60, 2:29], img[row, :, 4:60, 35:62]
        assert (left[1] - (60 + 30 * i)).abs().max() <= 6 and left[2].max() <= 6
        assert right[2].min() >= 249 and right[1].max() <= 6
    assert len(list((tmp_path / "cache").glob("celeba-*.pt"))) == 1


def test_fake_celeba_missing_image_is_a_clear_error(fake_celeba_root, tmp_path):
    (fake_celeba_root / "celeba" / "img_align_celeba" / "000004.jpg").unlink()
    with pytest.raises(DataNotFoundError, match="000004.jpg"):
        load_dataset("celeba", data_root=fake_celeba_root, cache_dir=tmp_path / "cache")


def test_celeba_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("celeba", data_root=tmp_path, cache_dir=tmp_path / "cache")
    assert "list_attr_celeba.txt" in str(info.value) and "--data-root" in str(info.value)


@pytest.fixture(scope="module")
def real_celeba(tmp_path_factory):
    if not (SHARED_DATA / "celeba" / "img_align_celeba").is_dir():
        pytest.skip("the CelebA subset of ../shared/data is absent")
    cache = tmp_path_factory.mktemp("celeba_cache")
    yield SHARED_DATA, cache, load_dataset("celeba", data_root=SHARED_DATA, cache_dir=cache)
    shutil.rmtree(cache)  # 75 MB per cache file: do not leave them in pytest's kept temp folders


def test_real_celeba_subset(real_celeba):
    root, _, data = real_celeba
    assert data.train_images.shape == (5437, 3, 64, 64) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (660, 3, 64, 64)
    assert data.num_classes == 4
    assert torch.bincount(data.train_labels, minlength=4).min() > 500  # all four classes are well present
    folder = root / "celeba"
    lines = (folder / "list_attr_celeba.txt").read_text().splitlines()
    names = lines[1].split()
    male, smiling = names.index("Male"), names.index("Smiling")
    attrs = {p[0]: p[1:] for p in map(str.split, lines[2:]) if p}
    part = {p[0]: int(p[1]) for p in map(str.split, (folder / "list_eval_partition.txt").read_text().splitlines()) if p}
    train_files = sorted(f for f, s in part.items() if s <= 1)
    test_files = sorted(f for f, s in part.items() if s == 2)
    expect = lambda f: 2 * (attrs[f][male] == "1") + (attrs[f][smiling] == "1")  # noqa: E731
    assert data.train_labels.tolist() == [expect(f) for f in train_files]
    assert data.test_labels.tolist() == [expect(f) for f in test_files]
    # the pixels of a few files: centre crop 140 (box 19, 39) and a bilinear resize to 64
    for split, files, images in (("train", train_files, data.train_images), ("test", test_files, data.test_images)):
        for j in (0, len(files) // 2, len(files) - 1):
            im = Image.open(folder / "img_align_celeba" / files[j]).convert("RGB")
            assert im.size == (178, 218)
            ref = np.asarray(im.crop((19, 39, 159, 179)).resize((64, 64), Image.BILINEAR))
            assert torch.equal(images[j], torch.from_numpy(ref.copy()).permute(2, 0, 1)), (split, files[j])


def test_real_celeba_cache_is_reused_and_keyed_by_preprocessing(real_celeba, monkeypatch):
    root, cache, data = real_celeba
    files = list(cache.glob("celeba-*.pt"))
    assert len(files) == 1

    def must_not_decode(path):
        raise AssertionError("the second load decoded an image instead of reading the cache")
    monkeypatch.setattr(datasets.celeba, "preprocess", must_not_decode)
    again = load_dataset("celeba", data_root=root, cache_dir=cache)
    assert torch.equal(again.train_images, data.train_images) and torch.equal(again.test_images, data.test_images)
    assert again.source["cache"] == str(files[0])

    calls = []

    def cheap(path):
        calls.append(path)
        return torch.zeros(3, 64, 64, dtype=torch.uint8)
    monkeypatch.setattr(datasets.celeba, "preprocess", cheap)
    monkeypatch.setattr(datasets.celeba, "PREPROCESSING", datasets.celeba.PREPROCESSING + " (changed)")
    changed = load_dataset("celeba", data_root=root, cache_dir=cache)
    assert len(calls) == 6097                      # a new key: everything decoded again
    assert changed.source["cache"] != str(files[0])
    assert len(list(cache.glob("celeba-*.pt"))) == 2
    assert changed.train_images.sum() == 0


# ---- MNIST ------------------------------------------------------------------------------------------------
def test_mnist_from_shared_data(shared_data):
    if not (shared_data / "MNIST" / "raw").is_dir():
        pytest.skip("MNIST is absent from ../shared/data")
    data = load_dataset("mnist", data_root=shared_data)
    assert data.train_images.shape == (60000, 1, 28, 28) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(data.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert data.train_images[:5000].float().mean().item() / 255 == pytest.approx(0.1307, abs=0.01)
    assert data.protocol.num_labeled == 100 and data.image_shape == (1, 28, 28)


# ---- errors -----------------------------------------------------------------------------------------------
def test_unknown_dataset():
    with pytest.raises(UnknownNameError, match="mnist") as info:
        load_dataset("imagenet-9000")
    assert "imagenet-9000" in str(info.value)
    assert not str(info.value).startswith("'")  # printed without KeyError's quotes


def test_missing_mnist_names_the_remedy(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("mnist", data_root=empty)
    message = str(info.value)
    assert "--data-root" in message and "SEGMA_DATA_ROOT" in message and str(empty.resolve()) in message
    assert isinstance(info.value, FileNotFoundError)


def test_data_root_from_environment(tmp_path, monkeypatch, svhn_root):
    monkeypatch.setenv("SEGMA_DATA_ROOT", str(svhn_root))
    assert len(load_dataset("svhn").train_images) == 5
    monkeypatch.setenv("SEGMA_DATA_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError):
        load_dataset("svhn")
    assert Path(datasets.resolve_data_root("explicit")) == Path("explicit")  # the option wins over the env
