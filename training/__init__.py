"""The shared training loop and its run folders."""
from .checkpoint import CheckpointError
from .run_folder import RunFolderError, read_run_config
from .loop import NonFiniteLossError, RunMismatchError, RunSpec, load_trained, pick_device, prepare, train

__all__ = ["CheckpointError", "NonFiniteLossError", "RunFolderError", "RunMismatchError", "RunSpec", "load_trained",
           "pick_device", "prepare", "read_run_config", "train"]
