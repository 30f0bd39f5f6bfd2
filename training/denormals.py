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
its torch threads). The mode is a CPU register of the calling thread: it reaches the intra-op threads
created after it is set, which is why `train` sets it before its first epoch; one-thread runs (the
suite's default under `reproduce`) are covered in every case.

On by default for training on the CPU; SEGMA_FLUSH_DENORMAL=0 keeps denormals (the behaviour of runs made
before this switch existed). CUDA has its own flush-to-zero rules and is left alone."""
import os
from contextlib import contextmanager

import torch

ENVIRONMENT_VARIABLE = "SEGMA_FLUSH_DENORMAL"


def denormals_flushed():
    """Whether this thread flushes denormals now (torch has a setter, no getter): 1e-300 * 1e-20 = 1e-320 is
    denormal in float64, so it comes out as 0 exactly when flushing is on."""
    return (torch.tensor([1e-300], dtype=torch.float64) * 1e-20).item() == 0.0


def flush_wanted(device):
    """Flush when training on the CPU, unless SEGMA_FLUSH_DENORMAL=0."""
    return torch.device(device).type == "cpu" and os.environ.get(ENVIRONMENT_VARIABLE, "1") != "0"


@contextmanager
def denormal_mode(flush):
    """Flush denormals (or keep them) inside the block; the process's previous mode comes back after it.
    Where the CPU cannot flush (no SSE3), torch leaves the mode unchanged and `denormals_flushed` says so."""
    previous = denormals_flushed()
    torch.set_flush_denormal(flush)
    try:
        yield
    finally:
        torch.set_flush_denormal(previous)
