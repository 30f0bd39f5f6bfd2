"""How representative is the labeled subset a seed draws? 1-nearest-neighbour test error in pixel space.

A model-free diagnostic for the spread of semi-supervised results over seeds: with 100 labels on MNIST the
labeled subset alone changes what any method can reach. Run:
    segma-bench label-subsets --dataset mnist --data-root ../shared/data --seeds 0-9
    segma-bench label-subsets --dataset mnist --data-root ../shared/data --labeled first
"""
import torch


def nearest_neighbour_error(train_images, train_labels, test_images, test_labels, indices, chunk=2000):
    """Test error of the 1-NN classifier (Euclidean, pixels / 255) that only knows the images at `indices`."""
    reference = train_images[indices].flatten(1).float() / 255
    reference_labels = train_labels[indices]
    wrong = 0
    for start in range(0, len(test_images), chunk):
        queries = test_images[start:start + chunk].flatten(1).float() / 255
        nearest = torch.cdist(queries, reference).argmin(1)
        wrong += int((reference_labels[nearest] != test_labels[start:start + chunk]).sum())
    return wrong / len(test_images) if len(test_images) else float("nan")  # no test image: no error rate


def parse_seeds(text):
    """'0-9' or '0,3,5'."""
    if "-" in text:
        low, high = (int(part) for part in text.split("-"))
        return list(range(low, high + 1))
    return [int(part) for part in text.split(",")]
