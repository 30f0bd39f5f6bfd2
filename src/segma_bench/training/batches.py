"""Batches of the semi-supervised protocol, indexed from uint8 tensors in memory.

Each step stacks an unlabeled slice (one pass over the pool per epoch, reshuffled per epoch) and a
labeled slice of the same size, or all labeled examples where there are fewer (MNIST: all 100 in every
batch). The order depends only on (seed, epoch), so a resumed run sees exactly the batches it would have."""
import torch

from segma_bench.core.devices import cuda_index, same_device
from segma_bench.core.errors import BadValueError
from segma_bench.datasets.base import to_float
from segma_bench.methods.base import Batch


def epoch_generator(seed, epoch):
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


def labeled_slices(num_labeled, batch_size, num_steps, generator):
    """Successive slices of reshuffled copies of the labeled set; all of it when it fits in a slice."""
    if num_labeled <= batch_size:
        return [torch.arange(num_labeled)] * num_steps
    order = torch.cat([torch.randperm(num_labeled, generator=generator)
                       for _ in range(num_steps * batch_size // num_labeled + 1)])
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(num_steps)]


# A split is copied to the GPU when it takes at most this fraction of the GPU's total memory: a fixed rule,
# the same in every worker, where a free-memory check raced with the workers sharing the GPU. `reproduce`
# runs one worker per GPU by default (reporting/launch.py); eight sharing one would still fit.
GPU_SPLIT_FRACTION = 1 / 8


def training_split(data, device):
    """(images, labels) of the training split, where the batches are cut from.

    On a GPU the split is copied there once when it takes at most GPU_SPLIT_FRACTION of the GPU's memory
    (MNIST: 47 MB of uint8, CelebA's full 202,599 images 2.5 GB), so that no step waits for a transfer;
    a larger split stays on the host as it is (pinning all of it would lock gigabytes of host memory to
    no purpose), and each batch is gathered into pinned memory and copied without blocking (`gather`).
    On the CPU: the tensors themselves."""
    device = torch.device(device)
    images, labels = data.train_images, data.train_labels
    if device.type != "cuda":
        return images, labels
    if split_fits_on_gpu(images.numel() * images.element_size(), device):
        return images.to(device), labels.to(device)
    return images, labels


def split_fits_on_gpu(num_bytes, device):
    """Whether a split of `num_bytes` goes to the GPU: at most GPU_SPLIT_FRACTION of its total memory (a fixed
    property, the same answer in every worker whatever the others have allocated)."""
    return num_bytes <= torch.cuda.get_device_properties(cuda_index(device)).total_memory * GPU_SPLIT_FRACTION


def pinned_empty(shape, dtype):
    """A page-locked host tensor from torch's caching host allocator, which keeps a block until the copies
    queued from it have run, so a new batch never overwrites one still being copied."""
    return torch.empty(shape, dtype=dtype, pin_memory=True)


def gather(source, index, device):
    """source[index] on `device`. From the host to a GPU the rows are gathered straight into pinned memory
    and copied without blocking; indexing first and pinning after would copy every batch twice."""
    if source.device.type == "cpu" and device.type == "cuda":
        rows = pinned_empty((len(index), *source.shape[1:]), source.dtype)
        torch.index_select(source, 0, index, out=rows)
        return rows.to(device, non_blocking=True)
    rows = source[index]
    return rows if same_device(rows.device, device) else rows.to(device)


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
        raise BadValueError(f"the unlabeled pool ({len(pool)}) is smaller than one batch ({unlabeled_batch_size})")
    # Index on the split's device: all of an epoch's indices move there at once, none per step.
    labeled_order = torch.stack(labeled_slices(len(labeled_idx), labeled_batch_size, num_steps, generator))
    pool, labeled_order = pool.to(images.device), labeled_order.to(images.device)
    labeled_idx = torch.as_tensor(labeled_idx).to(images.device)
    labeled_x, labeled_y = images[labeled_idx], labels[labeled_idx]
    for step in range(num_steps):
        unlabeled = pool[step * unlabeled_batch_size:(step + 1) * unlabeled_batch_size]
        labeled = labeled_order[step]
        # uint8 travels, float is made on the device (a quarter of the bytes to copy)
        yield Batch(x_unlabeled=to_float(gather(images, unlabeled, device)),
                    x_labeled=to_float(gather(labeled_x, labeled, device)),
                    y_labeled=gather(labeled_y, labeled, device))


def steps_per_epoch(data, unlabeled_batch_size):
    return len(data.train_images) // unlabeled_batch_size
