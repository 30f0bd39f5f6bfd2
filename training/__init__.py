"""The shared training loop and its run folders."""
from .checkpoint import CheckpointError
from .loop import NonFiniteLossError, RunMismatchError, RunSpec, load_trained, pick_device, prepare, train

__all__ = ["CheckpointError", "NonFiniteLossError", "RunMismatchError", "RunSpec", "load_trained",
           "pick_device", "prepare", "train"]
