"""Dataset loaders sharing one in-memory format and the paper's semi-supervised protocol."""
from . import celeba, mnist, svhn  # noqa: E402,F401  (registers the built-in datasets)
from .base import (
    CACHE_DIR_ENV,
    DATA_ROOT_ENV,
    DataCorruptError,
    DataNotFoundError,
    ImageDataset,
    Protocol,
    resolve_cache_dir,
    resolve_data_root,
    to_float,
)
from .registry import DATASETS, get_loader, register_dataset


def load_dataset(name, data_root=None, cache_dir=None):
    """Load a registered dataset; data_root None means $SEGMA_DATA_ROOT or the default download."""
    loader = get_loader(name)
    return loader(resolve_data_root(data_root), resolve_cache_dir(cache_dir))


__all__ = ["CACHE_DIR_ENV", "DATA_ROOT_ENV", "DATASETS", "DataCorruptError", "DataNotFoundError", "ImageDataset",
           "Protocol", "get_loader", "load_dataset", "register_dataset", "resolve_cache_dir", "resolve_data_root", "to_float"]
