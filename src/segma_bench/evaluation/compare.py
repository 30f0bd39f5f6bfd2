"""`fid A B`, `kid A B` and `prc A B`: score any two image sets with the extractor, reference cache and protocol
record that `evaluate` uses, so a folder of a model's samples scored against mnist:train gives the number
`evaluate` gives for the same images.

A dataset split is the seeded random subset `evaluate` draws (harness.real_subset), of --num-real images;
by default as many as the other set holds (as `evaluate` uses as many real as generated images), or
10,000 (the paper's count) when both sets are splits. Its features come from, and go to, the same cache."""
from segma_bench.core.errors import BadValueError

from .fid import activation_statistics, fid_protocol, frechet_distance
from .image_sets import parse_image_set
from .kid import kernel_inception_distance, kid_plan, kid_protocol
from .prc import prc_protocol, precision_recall

PAPER_COUNT = 10000


def build_extractor(weights_path, device):
    """The FID Inception network (a function, so that tests can stand a cheap one in)."""
    from .inception import FeatureExtractor
    return FeatureExtractor(weights_path=weights_path, device=device)


def set_features(image_set, count, extractor, data_root, cache_dir, loaded):
    """(features, description) of one set; dataset splits through the reference cache."""
    if image_set.images is not None:
        return extractor(image_set.images), image_set.description
    from segma_bench.datasets import load_dataset

    from .harness import real_statistics
    if image_set.dataset not in loaded:
        loaded[image_set.dataset] = load_dataset(image_set.dataset, data_root, cache_dir)
    (features, _, _), size = real_statistics(loaded[image_set.dataset], image_set.split, count, extractor, cache_dir)
    return features, f"{size} random {image_set.dataset} {image_set.split} images (seed 0)"


def compare_image_sets(first, second, kinds, extractor, data_root=None, cache_dir=".cache", num_real=0):
    """{"fid": ..., "kid": ..., "kid_std": ..., "precision": ..., "recall": ..., "sets": [...], "protocol": {...}}
    for the kinds asked (fid, kid, prc). For prc, `first` is the generated set and `second` the real one."""
    if num_real < 0 or num_real == 1:
        raise BadValueError(f"--num-real must be at least 2 real images (0: the default), got {num_real}")
    sets = [parse_image_set(first), parse_image_set(second)]
    sizes = [len(s.images) for s in sets if s.images is not None]
    count = num_real or (sizes[0] if sizes else PAPER_COUNT)
    if "kid" in kinds:  # refused before any image goes through the network
        kid_plan(*[len(s.images) if s.images is not None else count for s in sets])
    loaded = {}
    (features_a, about_a), (features_b, about_b) = [set_features(s, count, extractor, data_root, cache_dir, loaded)
                                                    for s in sets]
    result = {"sets": [about_a, about_b], "protocol": {}}
    if "fid" in kinds:
        result["fid"] = frechet_distance(*activation_statistics(features_a), *activation_statistics(features_b))
        result["protocol"]["fid"] = fid_protocol(extractor)
    if "kid" in kinds:
        subsets, size, warning = kid_plan(len(features_a), len(features_b))  # as `evaluate` draws it
        kid = kernel_inception_distance(features_a, features_b, subsets, size)
        result.update(kid=kid["kid"], kid_std=kid["kid_std"], kid_subset_size=kid["subset_size"])
        result["protocol"]["kid"] = {**kid_protocol(subsets, size), "subset_size_used": kid["subset_size"]}
        if warning:
            result["warning"] = warning
    if "prc" in kinds:
        result.update(precision_recall(features_a, features_b))
        result["protocol"]["prc"] = prc_protocol()
    return result
