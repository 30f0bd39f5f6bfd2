"""The evaluation harness: the same three metrics for every method (Tables I-III).

- test error (Table II): argmax of method.classify on the whole test set (Eq. 7 for the SeGMA family);
- sample FID (Table I): images generated from the target distribution, classes drawn from the priors;
- interpolation FID (Table III): pairs of random test images, encoded, a random point t ~ U(0, 1) on
  the segment between their codes, decoded (Section VI.C).
- sample KID and interpolation KID (evaluation/kid.py): from the same Inception features as the FIDs;
- sample and interpolation precision and recall (evaluation/prc.py, k-NN manifolds, k = 3): from them too.
FIDs, KIDs, precisions and recalls are against a fixed random subset of the real training images of the same
size (the reference); the floor is the FID (and KID, precision, recall) of as many real test images against
that reference."""
import torch

from segma_bench.core.devices import seeded_rng
from segma_bench.core.errors import BadValueError
from segma_bench.datasets.base import to_float

from .classification import test_error
from .fid import activation_statistics, cached_reference, fid_protocol, frechet_distance
from .kid import kernel_inception_distance, kid_plan, kid_protocol
from .latent_ops import interpolate
from .metric_names import KID_OF_FID, METRICS, PRC_OF_FID
from .prc import DEFAULT_K, knn_radii, prc_protocol, precision_recall

REFERENCE_SPLIT = "train"
REFERENCE_SEED = 0  # the reference subset is the same for every method and seed
DECODE_BATCH = 500


@torch.no_grad()
def generated_samples(method, num_samples, seed):
    """num_samples decoded images, classes ~ Categorical(priors), each from its own component/class."""
    method.eval()
    generator = torch.Generator().manual_seed(seed)
    classes = method.draw_classes(num_samples, generator)
    chunks = [method.sample(classes[i:i + DECODE_BATCH], generator=generator).cpu()
              for i in range(0, num_samples, DECODE_BATCH)]
    return torch.cat(chunks).clamp_(0, 1)


@torch.no_grad()
def interpolation_samples(method, test_images_uint8, num_samples, seed):
    """One image per random pair of test images at a random point t ~ U(0, 1) between their codes."""
    method.eval()
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(len(test_images_uint8), (num_samples,), generator=generator)
    second = torch.randint(len(test_images_uint8), (num_samples,), generator=generator)
    t = torch.rand(num_samples, generator=generator)
    chunks = []
    for i in range(0, num_samples, DECODE_BATCH):
        part = slice(i, i + DECODE_BATCH)
        code_a = method.encode(to_float(test_images_uint8[first[part]]).to(method.device))
        code_b = method.encode(to_float(test_images_uint8[second[part]]).to(method.device))
        chunks.append(method.decode(interpolate(code_a, code_b, t[part])).cpu())
    return torch.cat(chunks).clamp_(0, 1)


def split_images(data, split):
    return data.train_images if split == "train" else data.test_images


def real_subset(data, split, num_images, seed=REFERENCE_SEED):
    images = split_images(data, split)
    num_images = min(num_images, len(images))
    index = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:num_images]
    return to_float(images[index])


def real_statistics(data, split, num_images, extractor, cache_dir):
    """Cached (features, mu, sigma) of real images, and their count; the key covers everything that
    changes them."""
    split_size = len(split_images(data, split))
    size = min(num_images, split_size)
    key = {"dataset": data.name, "split": split, "num_samples": size, "subset_seed": REFERENCE_SEED,
           "split_size": split_size,
           "source": {k: v for k, v in data.source.items() if k != "root"},
           "preprocessing": "uint8 / 255, grey repeated to RGB, pytorch-fid bilinear resize to 299"}
    return cached_reference(cache_dir, key, lambda: real_subset(data, split, num_images), extractor), size


def evaluate(method, data, wanted, fid_samples, extractor, cache_dir, seed):
    """The metrics in `wanted` (results.METRICS) and their protocol.

    Every random draw, including a method's own (ADGM samples a in classify and encode), comes from
    `seed`, in a forked RNG that leaves the caller's state alone."""
    unknown = set(wanted) - set(METRICS)
    if unknown:
        raise BadValueError(f"unknown metric(s) {sorted(unknown)}; metrics: {', '.join(METRICS)}")
    with seeded_rng(seed, method.device):  # the CPU's and the method's GPU's generators, nothing else
        return _evaluate(method, data, wanted, fid_samples, extractor, cache_dir, seed)


def _evaluate(method, data, wanted, fid_samples, extractor, cache_dir, seed):
    metrics, protocol = {}, {"eval_seed": seed}
    if "test_error" in wanted:
        metrics["test_error"] = test_error(method, data.test_images, data.test_labels) if method.has_classifier else None
        protocol["test_error"] = f"argmax of classify() over all {len(data.test_images)} test images"
    image_wanted = [fid for fid, kid in KID_OF_FID.items() if {fid, kid, *PRC_OF_FID[fid]} & set(wanted)]
    if not image_wanted:
        return metrics, protocol
    reference, ref_size = real_statistics(data, REFERENCE_SPLIT, fid_samples, extractor, cache_dir)
    floor, floor_size = real_statistics(data, "test", fid_samples, extractor, cache_dir)
    kid_subsets, kid_size, _ = kid_plan(fid_samples, min(len(reference[0]), len(floor[0])))  # subsets and size go into the protocol
    floor_kid = kernel_inception_distance(floor[0], reference[0], kid_subsets, kid_size)
    protocol["fid"] = {**fid_protocol(extractor), "generated_images": fid_samples,
                       "reference": f"{ref_size} random {data.name} {REFERENCE_SPLIT} images (seed {REFERENCE_SEED})",
                       "floor": f"{floor_size} random {data.name} test images against the reference",
                       "floor_fid": frechet_distance(*floor[1:], *reference[1:])}
    protocol["kid"] = {**kid_protocol(kid_subsets, kid_size), "floor_kid": floor_kid["kid"], "floor_kid_std": floor_kid["kid_std"]}
    reference_radii = knn_radii(reference[0]) if len(reference[0]) > DEFAULT_K else None  # once for all sets
    floor_prc = precision_recall_against(floor[0], reference[0], reference_radii)
    protocol["prc"] = {**prc_protocol(), "floor_precision": floor_prc["precision"], "floor_recall": floor_prc["recall"]}
    for name in image_wanted:
        if name == "sample_fid":
            images = generated_samples(method, fid_samples, seed)
        else:
            images = interpolation_samples(method, data.test_images, fid_samples, seed)
        features = extractor(images)
        metrics[name] = frechet_distance(*activation_statistics(features), *reference[1:])
        kid = kernel_inception_distance(features, reference[0], kid_subsets, kid_size)
        metrics[KID_OF_FID[name]], metrics[KID_OF_FID[name] + "_std"] = kid["kid"], kid["kid_std"]
        prc = precision_recall_against(features, reference[0], reference_radii)
        metrics[PRC_OF_FID[name][0]], metrics[PRC_OF_FID[name][1]] = prc["precision"], prc["recall"]
    return metrics, protocol


def precision_recall_against(features, reference_features, reference_radii):
    """Precision and recall of `features` against the reference; None for both where either set has too few
    images for a k-th neighbour (--fid-samples below k + 1)."""
    if reference_radii is None or len(features) <= DEFAULT_K:
        return {"precision": None, "recall": None}
    return precision_recall(features, reference_features, real_radii=reference_radii)
