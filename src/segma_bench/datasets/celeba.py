"""CelebA: aligned images, centre crop 140x140, resize to 64x64; four classes Male x Smiling.

Unlabeled pool: the official train + valid partitions (182,637 images in the full set, as in
Section VI.A); test: the test partition; 1,000 labeled. Reads ROOT/celeba/{img_align_celeba/,
list_attr_celeba.txt, list_eval_partition.txt}; torchvision's CelebA class is not used because it
needs the bbox and landmark files too. Images are decoded once into a cached uint8 tensor file."""
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segma_bench.core.storage import atomic_torch_save

from .base import DataNotFoundError, ImageDataset, Protocol, missing_data_message
from .registry import register_dataset

PROTOCOL = Protocol(num_labeled=1000, unlabeled_batch_size=256, labeled_batch_size=256, paper_epochs=500)
CLASS_NAMES = ("not male, not smiling", "not male, smiling", "male, not smiling", "male, smiling")
CROP, SIZE = 140, 64
PREPROCESSING = f"centre-crop {CROP}, PIL bilinear resize {SIZE}, uint8 RGB; cache v1"


def read_table(path, skip):
    """{filename: [ints]} from a CelebA annotation file (whitespace separated, CRLF or LF)."""
    lines = Path(path).read_text().splitlines()[skip:]
    return {parts[0]: [int(v) for v in parts[1:]] for parts in map(str.split, lines) if parts}


def four_classes(attr_names, attributes):
    """Class index 2 * male + smiling, matching CLASS_NAMES."""
    male, smiling = attr_names.index("Male"), attr_names.index("Smiling")
    return 2 * int(attributes[male] == 1) + int(attributes[smiling] == 1)


def preprocess(path):
    image = Image.open(path).convert("RGB")
    w, h = image.size
    left, top = (w - CROP) // 2, (h - CROP) // 2
    image = image.crop((left, top, left + CROP, top + CROP)).resize((SIZE, SIZE), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def cache_key(folder, filenames):
    """Covers the annotation files' contents, every image's name and size, and the preprocessing."""
    digest = hashlib.sha256(PREPROCESSING.encode())
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        digest.update((folder / name).read_bytes())
    images = folder / "img_align_celeba"
    for name in filenames:
        digest.update(f"{name}:{(images / name).stat().st_size};".encode())
    return digest.hexdigest()[:20]


def find_folder(root, download):
    folder = Path(root or "data") / "celeba"
    needed = ["list_attr_celeba.txt", "list_eval_partition.txt", "img_align_celeba"]
    if download and not all((folder / n).exists() for n in needed):
        import torchvision
        try:
            torchvision.datasets.CelebA(folder.parent, split="all", download=True)
        except Exception as error:
            raise DataNotFoundError(missing_data_message("CelebA", folder.resolve(), "The download failed.")) from error
    missing = [n for n in needed if not (folder / n).exists()]
    if missing:
        raise DataNotFoundError(missing_data_message(
            f"CelebA files {missing}", folder.resolve(),
            "Online, run without --data-root and torchvision downloads CelebA to ./data/celeba."))
    return folder


@register_dataset("celeba")
def load_celeba(root, cache_dir):
    folder = find_folder(root, download=root is None)
    attr_lines = (folder / "list_attr_celeba.txt").read_text().splitlines()
    attr_names = attr_lines[1].split()
    attributes = read_table(folder / "list_attr_celeba.txt", skip=2)
    partition = read_table(folder / "list_eval_partition.txt", skip=0)
    filenames = sorted(partition)
    absent = [f for f in filenames if not (folder / "img_align_celeba" / f).is_file()]
    if absent:
        raise DataNotFoundError(missing_data_message(
            f"{len(absent)} CelebA images listed in list_eval_partition.txt (e.g. {absent[0]})",
            folder / "img_align_celeba", "The partition file and the image folder must match."))
    cache_file = Path(cache_dir) / f"celeba-{cache_key(folder, filenames)}.pt"
    images = None
    if cache_file.is_file():
        try:
            images = torch.load(cache_file)
        except Exception:  # a damaged cache is rebuilt, never trusted
            images = None
    if images is None:
        from tqdm import tqdm
        images = torch.stack([preprocess(folder / "img_align_celeba" / f)
                              for f in tqdm(filenames, desc="CelebA: decode and crop (cached once)")])
        atomic_torch_save(images, cache_file)
    labels = torch.tensor([four_classes(attr_names, attributes[f]) for f in filenames])
    split = torch.tensor([partition[f][0] for f in filenames])
    train, test = split <= 1, split == 2  # 0 train, 1 valid, 2 test
    return ImageDataset(
        name="celeba", train_images=images[train], train_labels=labels[train],
        test_images=images[test], test_labels=labels[test], class_names=CLASS_NAMES, protocol=PROTOCOL,
        source={"root": str(folder.resolve()), "images": len(filenames), "cache": str(cache_file),
                "preprocessing": PREPROCESSING, "partition": json.dumps({"train+valid": int(train.sum()),
                                                                         "test": int(test.sum())})})
