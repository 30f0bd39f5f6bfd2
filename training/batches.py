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


def training_split(data, device):
    """(images, labels) of the training split, where the batches are cut from.

    On a GPU the split is copied there once when it takes under a quarter of the free memory (MNIST: 47 MB
    of uint8), so that no step waits for a transfer; a larger split stays on the host in pinned memory,
    whose copies to the GPU do not block. On the CPU: the tensors themselves."""
    device = torch.device(device)
    images, labels = data.train_images, data.train_labels
    if device.type != "cuda":
        return images, labels
    free_bytes, _ = torch.cuda.mem_get_info(device)
    if images.numel() * images.element_size() < free_bytes // 4:
        return images.to(device), labels.to(device)
    return images.pin_memory(), labels.pin_memory()


def to_device(tensor, device):
    if tensor.device == device:
        return tensor
    if device.type == "cuda":  # from pinned memory the copy is queued, not waited for
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def epoch_batches(data, labeled_idx, seed, epoch, unlabeled_batch_size, labeled_batch_size, device, split=None):
    """Yields the Batch objects of one epoch (the last incomplete unlabeled slice is dropped so that
    every batch has the same size, and so the same gamma). `split`: the (images, labels) of
    `training_split`, default the dataset's own tensors."""
    device = torch.device(device)
    images, labels = split if split is not None else (data.train_images, data.train_labels)
    generator = epoch_generator(seed, epoch)
    pool = torch.randperm(len(images), generator=generator)
    num_steps = len(pool) // unlabeled_batch_size
    if num_steps == 0:
        raise ValueError(f"the unlabeled pool ({len(pool)}) is smaller than one batch ({unlabeled_batch_size})")
    # Index on the split's device: all of an epoch's indices move there at once, none per step.
    labeled_order = torch.stack(labeled_slices(len(labeled_idx), labeled_batch_size, num_steps, generator))
    pool, labeled_order = pool.to(images.device), labeled_order.to(images.device)
    labeled_idx = torch.as_tensor(labeled_idx).to(images.device)
    labeled_x, labeled_y = images[labeled_idx], labels[labeled_idx]
    for step in range(num_steps):
        unlabeled = pool[step * unlabeled_batch_size:(step + 1) * unlabeled_batch_size]
        labeled = labeled_order[step]
        # uint8 travels, float is made on the device (a quarter of the bytes to copy)
        yield Batch(x_unlabeled=to_float(to_device(images[unlabeled], device)),
                    x_labeled=to_float(to_device(labeled_x[labeled], device)),
                    y_labeled=to_device(labeled_y[labeled], device))


def steps_per_epoch(data, unlabeled_batch_size):
    return len(data.train_images) // unlabeled_batch_size
