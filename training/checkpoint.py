"""Checkpoints: written atomically at the end of every epoch; a corrupt file gets a clear error."""
from pathlib import Path

import torch

from storage import atomic_torch_save


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(path, method, optimizer, epoch, history):
    atomic_torch_save({"model": method.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                       "history": history, "torch_rng": torch.get_rng_state()}, path)


def load_checkpoint(path):
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=False)
        if not isinstance(state, dict) or not {"model", "optimizer", "epoch"} <= set(state):
            raise ValueError("not a checkpoint of this suite")
        return state
    except Exception as error:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({error}). It is left untouched: move it away (or delete "
            f"it) to retrain this run from scratch, or pass another --run-dir.") from error
