"""Dataset loaders by name: `@register_dataset("name")` on a function (root, cache_dir) -> ImageDataset."""
from segma_bench.core.registry import Register

# Replaceable: a dataset plugin loaded again (a new file registering the same toy names, as the tests' worker
# plugins do) replaces its loaders; methods, whose records name their code, refuse a second class instead.
REGISTRY = Register("dataset", replaceable=True)
DATASETS = REGISTRY.entries  # name -> loader; the registry's own dict


def register_dataset(name):
    return REGISTRY.register(name)


def get_loader(name):
    return REGISTRY.get(name)
