"""Sets of images named on the command line, for `fid` and `kid`:

- a folder of PNG/JPG files (sorted by name; all of one size; greyscale kept as one channel, which the
  extractor repeats to RGB as it does for MNIST);
- an .npy file, or an .npz file holding one array (or one called `images`): (N, H, W), (N, H, W, C) or
  (N, C, H, W) with C in {1, 3}; uint8 is divided by 255, floats are taken as [0, 1];
- a dataset split, DATASET:SPLIT (e.g. mnist:test): the same seeded random subset of that split, and the
  same cached statistics, that `evaluate` uses for its reference (train) and floor (test)."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from segma_bench.core.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
SPLITS = ("train", "test")


class ImageSetError(UserError, ValueError):
    """An image set could not be read; the message says which and why."""


@dataclass
class ImageSet:
    description: str
    images: torch.Tensor = None      # float (N, C, H, W) in [0, 1]; None for a dataset split
    dataset: str = None
    split: str = None


def parse_image_set(text):
    """An ImageSet for a path (folder, .npy, .npz) or a DATASET:SPLIT name."""
    path = Path(text)
    if path.is_dir():
        return ImageSet(f"folder {text}", images=load_folder(path))
    if path.suffix in (".npy", ".npz"):
        if not path.is_file():
            raise ImageSetError(f"{text}: no such file")
        return ImageSet(f"array {text}", images=load_array(path))
    name, sep, split = text.partition(":")
    if sep and split in SPLITS:
        from segma_bench.datasets import get_loader
        get_loader(name)  # unknown names fail here, listing the datasets
        return ImageSet(f"{name} {split} split", dataset=name, split=split)
    raise ImageSetError(f"{text!r} is neither a folder, an .npy/.npz file nor DATASET:SPLIT "
                        f"(split one of {', '.join(SPLITS)}, e.g. mnist:test)")


def load_folder(folder):
    from PIL import Image
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise ImageSetError(f"{folder} holds {len(files)} PNG/JPG images; at least 2 are needed")
    arrays, modes, unreadable = [], [], []
    for file in files:
        try:
            with Image.open(file) as image:
                modes.append(image.mode)
                arrays.append(np.asarray(image.convert("RGB")))  # decodes the whole file: truncation shows here
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
            unreadable.append(f"{file.name} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})")
    if unreadable:  # every bad file at once, so that one pass fixes the folder
        shown = "; ".join(unreadable[:10]) + (f"; and {len(unreadable) - 10} more" if len(unreadable) > 10 else "")
        raise ImageSetError(f"{folder}: {len(unreadable)} of {len(files)} image files cannot be read as images "
                            f"(truncated, not an image, or a folder named like one): {shown}. Remove or replace them")
    if all(mode in ("L", "1") for mode in modes):  # greyscale stays one channel, as the datasets hold it
        arrays = [array[..., 0] for array in arrays]
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:
        raise ImageSetError(f"{folder}: images have different sizes {sorted(sizes)}")
    return to_image_tensor(np.stack(arrays), f"{folder}")


def load_array(path):
    try:
        stored = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ImageSetError(f"{path}: not a readable numpy file ({error})") from error
    if isinstance(stored, np.lib.npyio.NpzFile):
        with stored:
            names = stored.files
            if len(names) != 1 and "images" not in names:
                raise ImageSetError(f"{path} holds arrays {names}; expected one, or one called 'images'")
            stored = stored["images" if "images" in names else names[0]]
    return to_image_tensor(stored, str(path))


def to_image_tensor(array, where):
    """float (N, C, H, W) in [0, 1] from uint8 or float arrays in the layouts the module docstring lists."""
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 3) and array.shape[1] not in (1, 3):
        array = array.transpose(0, 3, 1, 2)
    if array.ndim != 4 or array.shape[1] not in (1, 3) or len(array) < 2:
        raise ImageSetError(f"{where}: expected at least 2 images as (N, H, W), (N, H, W, C) or (N, C, H, W) "
                            f"with C 1 or 3, got shape {array.shape}")
    if array.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(array)).float() / 255
    if not np.issubdtype(array.dtype, np.floating):
        raise ImageSetError(f"{where}: expected uint8 or float images, got {array.dtype}")
    if array.min() < 0 or array.max() > 1:
        raise ImageSetError(f"{where}: float images must lie in [0, 1] (got {array.min():.3g} to {array.max():.3g})")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
