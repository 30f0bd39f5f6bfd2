"""How representative is the labeled subset a seed draws? 1-nearest-neighbour test error in pixel space.

A model-free diagnostic for the spread of semi-supervised results over seeds: with 100 labels on MNIST the
labeled subset alone changes what any method can reach. Run:
    python -m evaluation.label_subsets --dataset mnist --data-root ../shared/data --seeds 0-9
    python -m evaluation.label_subsets --dataset mnist --data-root ../shared/data --labeled first
"""
import click
import torch

from datasets import load_dataset
from datasets.splits import LABELED_SUBSETS, choose_labeled
from user_errors import user_errors


def nearest_neighbour_error(train_images, train_labels, test_images, test_labels, indices, chunk=2000):
    """Test error of the 1-NN classifier (Euclidean, pixels / 255) that only knows the images at `indices`."""
    reference = train_images[indices].flatten(1).float() / 255
    reference_labels = train_labels[indices]
    wrong = 0
    for start in range(0, len(test_images), chunk):
        queries = test_images[start:start + chunk].flatten(1).float() / 255
        nearest = torch.cdist(queries, reference).argmin(1)
        wrong += int((reference_labels[nearest] != test_labels[start:start + chunk]).sum())
    return wrong / len(test_images)


def parse_seeds(text):
    """'0-9' or '0,3,5'."""
    if "-" in text:
        low, high = (int(part) for part in text.split("-"))
        return list(range(low, high + 1))
    return [int(part) for part in text.split(",")]


@click.command()
@click.option("--dataset", default="mnist", show_default=True)
@click.option("--data-root", type=click.Path(file_okay=False), default=None)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@click.option("--num-labeled", type=int, default=100, show_default=True)
@click.option("--seeds", default="0-9", show_default=True, help="'0-9' or '0,3,5'.")
@click.option("--labeled", "subset", type=click.Choice(LABELED_SUBSETS), default="balanced", show_default=True,
              help="balanced: each seed's class-balanced draw; first: the first N training images (the same for "
                   "every seed, as the SeGMA authors' code ran).")
@user_errors
def main(dataset, data_root, cache_dir, num_labeled, seeds, subset):
    data = load_dataset(dataset, data_root, cache_dir)
    print(f"| seed | 1-NN test error of the {num_labeled} labeled {dataset} images (pixels, subset {subset}) |")
    print("|---|---|")
    for seed in parse_seeds(seeds) if subset == "balanced" else ["any"]:
        indices = torch.as_tensor(choose_labeled(data.train_labels, num_labeled, 0 if seed == "any" else seed, subset))
        error = nearest_neighbour_error(data.train_images, data.train_labels, data.test_images,
                                        data.test_labels, indices)
        print(f"| {seed} | {100 * error:.2f}% |")


if __name__ == "__main__":
    main()
