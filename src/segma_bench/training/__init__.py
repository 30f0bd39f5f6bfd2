"""The shared training loop and its run folders."""
from .checkpoint import CheckpointError
from .loop import NonFiniteLossError, RunMismatchError, RunSpec, load_trained, pick_device, prepare, train
from .run_folder import RunFolder, RunFolderError, find_run_folders, read_run_config

__all__ = ["CheckpointError", "NonFiniteLossError", "RunFolder", "RunFolderError", "RunMismatchError", "RunSpec",
           "find_run_folders", "load_trained", "pick_device", "prepare", "read_run_config", "train"]
