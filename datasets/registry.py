"""Dataset loaders by name: `@register_dataset("name")` on a function (root, cache_dir) -> ImageDataset."""
from methods.registry import UnknownNameError

DATASETS = {}


def register_dataset(name):
    def wrap(loader):
        DATASETS[name] = loader
        return loader
    return wrap


def get_loader(name):
    if name not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; available datasets: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]
