"""Denormal floats on the CPU, and the flush-to-zero switch that keeps long trainings from slowing down.

As a CPU training goes on, some values (gradients of saturated units, Adam's moments of parameters that
barely move, activations near underflow) become denormal: smaller than float32's normal range. x86 CPUs
compute with denormals through a slow microcode path, so epochs get slower and slower. Measured on two
runs of this suite (benchmarks/denormals.py, README "Speed"): a CWAE run slowed from 34 to 51 s per epoch
over 90 epochs and an M1 run from 5.8 to 7.6 s over 550, and with denormals flushed the same steps of the
same checkpoints ran 1.3-1.5x faster. They sat in Adam's moments (up to 4% of them), not in the weights.

Flushing (torch.set_flush_denormal: x86 FTZ and DAZ) turns them into zeros. Values that small do not move
a float32 training, but the bits change: a run trained with flushing is deterministic under its seed, yet
not bit-identical to the same run without it, so every epoch records the mode it ran with (as it records
its torch threads). The mode is a CPU register of each thread. Threads inherit it when they are created, and torch's
intra-op (OpenMP) threads are created by the first parallel operation of the process (loading a dataset is
enough) and then kept. So `train`'s switch reaches only the calling thread once they exist: a two-thread
run resumed that way flushed in one thread and not the other, and ran at half the speed of one thread
(measured on the ADGM `maaloe-code` run, 2026-12-01). The command-line entry points therefore call
`flush_for_process` before their first torch operation; `denormals_flushed` asks every intra-op thread,
so an epoch's record says False when any thread keeps denormals, and `train` warns.

On by default for training on the CPU; SEGMA_FLUSH_DENORMAL=0 keeps denormals (the behaviour of runs made
before this switch existed). CUDA has its own flush-to-zero rules and is left alone."""
import os
import warnings
from contextlib import contextmanager

import torch

ENVIRONMENT_VARIABLE = "SEGMA_FLUSH_DENORMAL"


def denormals_flushed():
    """Whether every intra-op thread flushes denormals now (torch has a setter, no getter): 1e-300 * 1e-20 =
    1e-320 is denormal in float64, so it comes out as 0 exactly where flushing is on. The product is taken
    over enough elements that torch splits it across all its threads (32768 per thread at least)."""
    n = 65536 * torch.get_num_threads()
    return not torch.full((n,), 1e-300, dtype=torch.float64).mul_(1e-20).any().item()


def calling_thread_flushes():
    """Whether this thread flushes denormals (one element: no other thread takes part)."""
    return (torch.tensor([1e-300], dtype=torch.float64) * 1e-20).item() == 0.0


def flush_for_process(device):
    """Set the mode `flush_wanted(device)` on this thread before any intra-op thread exists, so that they all
    inherit it; for entry points (`cli.py train`, a `reproduce` cell's process), before their first torch
    operation. Returns whether every thread now has the wanted mode."""
    flush = flush_wanted(device)
    torch.set_flush_denormal(flush)
    return denormals_flushed() == flush


def flush_wanted(device):
    """Flush when training on the CPU, unless SEGMA_FLUSH_DENORMAL=0."""
    return torch.device(device).type == "cpu" and os.environ.get(ENVIRONMENT_VARIABLE, "1") != "0"


@contextmanager
def denormal_mode(flush):
    """Flush denormals (or keep them) inside the block; the calling thread's previous mode comes back after it
    (intra-op threads created inside the block keep the block's mode).
    Where the CPU cannot flush (no SSE3), torch leaves the mode unchanged and `denormals_flushed` says so."""
    previous = calling_thread_flushes()
    torch.set_flush_denormal(flush)
    if flush and not denormals_flushed():
        warnings.warn("denormal flushing reached only the calling thread: torch's other threads existed before "
                      "it was set and keep denormals (slow). Call training.denormals.flush_for_process before "
                      "the process's first torch operation, or train with one thread.", RuntimeWarning)
    try:
        yield
    finally:
        torch.set_flush_denormal(previous)
