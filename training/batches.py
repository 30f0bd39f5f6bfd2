"""Batches of the semi-supervised protocol, indexed from uint8 tensors in memory.

Each step stacks an unlabeled slice (one pass over the pool per epoch, reshuffled per epoch) and a
labeled slice of the same size, or all labeled examples where there are fewer (MNIST: all 100 in every
batch). The order depends only on (seed, epoch), so a resumed run sees exactly the batches it would have."""
import torch

from datasets.base import to_float
from methods.base import Batch


def epoch_generator(seed, epoch):
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


def labeled_slices(num_labeled, batch_size, num_steps, generator):
    """Successive slices of reshuffled copies of the labeled set; all of it when it fits in a slice."""
    if num_labeled <= batch_size:
        return [torch.arange(num_labeled)] * num_steps
    order = torch.cat([torch.randperm(num_labeled, generator=generator)
                       for _ in range(num_steps * batch_size // num_labeled + 1)])
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(num_steps)]


def epoch_batches(data, labeled_idx, seed, epoch, unlabeled_batch_size, labeled_batch_size, device):
    """Yields the Batch objects of one epoch (the last incomplete unlabeled slice is dropped so that
    every batch has the same size, and so the same gamma)."""
    generator = epoch_generator(seed, epoch)
    pool = torch.randperm(len(data.train_images), generator=generator)
    num_steps = len(pool) // unlabeled_batch_size
    if num_steps == 0:
        raise ValueError(f"the unlabeled pool ({len(pool)}) is smaller than one batch ({unlabeled_batch_size})")
    labeled_x, labeled_y = data.train_images[labeled_idx], data.train_labels[labeled_idx]
    for step, labeled in enumerate(labeled_slices(len(labeled_idx), labeled_batch_size, num_steps, generator)):
        unlabeled = pool[step * unlabeled_batch_size:(step + 1) * unlabeled_batch_size]
        yield Batch(x_unlabeled=to_float(data.train_images[unlabeled]).to(device),
                    x_labeled=to_float(labeled_x[labeled]).to(device),
                    y_labeled=labeled_y[labeled].to(device))


def steps_per_epoch(data, unlabeled_batch_size):
    return len(data.train_images) // unlabeled_batch_size
