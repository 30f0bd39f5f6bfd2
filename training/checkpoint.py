"""Checkpoints: written atomically at the end of every epoch; a corrupt file gets a clear error."""
from pathlib import Path

import torch

from storage import atomic_torch_save


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(path, method, optimizer, epoch, history):
    atomic_torch_save({"model": method.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                       "history": history, "torch_rng": torch.get_rng_state(),
                       "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}, path)


def restore_rng(state):
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


REQUIRED_KEYS = {"model", "optimizer", "epoch", "history", "torch_rng"}


def load_checkpoint(path):
    if not Path(path).exists():
        raise CheckpointError(f"{path} does not exist: this run has not finished an epoch yet (train it first)")
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=False)
        if not isinstance(state, dict) or not REQUIRED_KEYS <= set(state):
            raise ValueError("not a checkpoint of this suite")
        return state
    except Exception as error:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({error}). It is left untouched: move it away (or delete "
            f"it) to retrain this run from scratch, or pass another --run-dir.") from error


def restore_model(method, state, path):
    """Load a checkpoint's weights; weights of another model (method, settings) get a CheckpointError."""
    try:
        method.load_state_dict(state["model"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:2])[:300]
        raise CheckpointError(
            f"checkpoint {path} holds the weights of another model than this run's {type(method).name!r} with "
            f"its settings ({detail}). It is left untouched: move it away to retrain this run, or pass the "
            "run folder it belongs to.") from error
