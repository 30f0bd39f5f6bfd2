"""The shared training loop and its run folders."""
from .checkpoint import CheckpointError
from .loop import NonFiniteLossError, RunMismatchError, RunSpec, load_trained, pick_device, prepare, train
from .run_folder import RunFolderError, read_run_config

__all__ = ["CheckpointError", "NonFiniteLossError", "RunFolderError", "RunMismatchError", "RunSpec", "load_trained",
           "pick_device", "prepare", "read_run_config", "train"]
