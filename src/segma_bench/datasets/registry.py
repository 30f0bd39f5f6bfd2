"""Dataset loaders by name: `@register_dataset("name")` on a function (root, cache_dir) -> ImageDataset."""
from segma_bench.core.registry import Register

REGISTRY = Register("dataset")
DATASETS = REGISTRY.entries  # name -> loader; the registry's own dict


def register_dataset(name):
    return REGISTRY.register(name)


def get_loader(name):
    return REGISTRY.get(name)
