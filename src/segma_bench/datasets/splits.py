"""The labeled subset. Two protocols (`LABELED_SUBSETS`):

balanced: drawn by the run seed, class-balanced where the classes allow it (the suite's default; how the
          spread over label draws is measured);
first:    the first N training images, whatever the seed, as the SeGMA authors' code actually ran
          (`Dataset.remove_labels_fraction` in their data_loader.py applies np.where(...)[0] to an array of
          indices, which yields the positions 0..N-1; docs/protocol.md, "Labeled subset"). The class
          priors p_k are then that subset's class proportions."""
import json
from pathlib import Path

import torch

from segma_bench.core.errors import BadValueError
from segma_bench.core.storage import atomic_write_json


def balanced_quota(class_counts, num_labeled):
    """Per-class labeled counts: equal shares, and a class too small for its share gives the rest to
    the others (water-filling). The remainder of an uneven division goes to the largest classes."""
    counts = [int(c) for c in class_counts]
    if num_labeled > sum(counts):
        raise BadValueError(f"asked for {num_labeled} labeled examples but the data has only {sum(counts)}")
    quota = [0] * len(counts)
    open_classes = [k for k, c in enumerate(counts) if c > 0]
    left = num_labeled
    while left > 0 and open_classes:
        share = left // len(open_classes)
        if share == 0:  # remainder: one more each for the classes with the most examples left
            for k in sorted(open_classes, key=lambda k: (-(counts[k] - quota[k]), k))[:left]:
                quota[k] += 1
            break
        for k in list(open_classes):
            take = min(share, counts[k] - quota[k])
            quota[k] += take
            left -= take
            if quota[k] == counts[k]:
                open_classes.remove(k)
    return quota


def labeled_indices(labels, num_labeled, seed):
    """Indices into the training set, sorted, chosen with a torch.Generator seeded by `seed` only: every
    method gets the same labeled examples for the same seed."""
    labels = torch.as_tensor(labels)
    num_classes = int(labels.max()) + 1
    quota = balanced_quota(torch.bincount(labels, minlength=num_classes).tolist(), num_labeled)
    generator = torch.Generator().manual_seed(int(seed))
    chosen = []
    for k in range(num_classes):
        members = (labels == k).nonzero().flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:quota[k]]])
    return torch.sort(torch.cat(chosen)).values


LABELED_SUBSETS = ("balanced", "first")


def first_indices(labels, num_labeled):
    """The first `num_labeled` training images (the authors' code, see the module docstring)."""
    if num_labeled > len(labels):
        raise BadValueError(f"asked for {num_labeled} labeled examples but the data has only {len(labels)}")
    return torch.arange(num_labeled)


def choose_labeled(labels, num_labeled, seed, subset="balanced"):
    """The labeled subset of a run under protocol `subset` (one of LABELED_SUBSETS)."""
    if subset == "balanced":
        return labeled_indices(labels, num_labeled, seed)
    if subset == "first":
        return first_indices(labels, num_labeled)
    raise BadValueError(f"unknown labeled subset {subset!r}; choose one of {', '.join(LABELED_SUBSETS)}")


def class_proportions(labels, num_classes):
    counts = torch.bincount(torch.as_tensor(labels), minlength=num_classes).double()
    return tuple((counts / counts.sum()).tolist())


def save_indices(path, indices, meta):
    """Record exactly which labels a run saw."""
    atomic_write_json(path, {**meta, "indices": [int(i) for i in indices]})


def load_indices(path):
    return torch.tensor(json.loads(Path(path).read_text())["indices"], dtype=torch.long)
