"""Checkpoints: written atomically at the end of every epoch; a corrupt file gets a clear error.

A checkpoint keeps the CPU's RNG state and, for a run on a GPU, that GPU's alone (with the device it was
saved from): a CPU run never asks CUDA for anything, a run resumes where fewer GPUs are visible, and a run
moved from cuda:1 to cuda:0 continues cuda:1's random stream. Checkpoints written before this kept every
visible GPU's state in a list; they are restored tolerantly (`restore_rng`)."""
import warnings
from pathlib import Path

import torch

from segma_bench.core.devices import cuda_index, device_label
from segma_bench.core.errors import BadValueError, UserError
from segma_bench.core.storage import atomic_torch_save


class CheckpointError(UserError, RuntimeError):
    pass


def save_checkpoint(path, method, optimizer, epoch, history, execution=None):
    """`execution`: core.devices.execution_environment of the device this session trained on."""
    device = method.device
    atomic_torch_save({"model": method.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                       "history": history, "torch_rng": torch.get_rng_state(), "device": str(device),
                       "cuda_rng": torch.cuda.get_rng_state(cuda_index(device)) if device.type == "cuda" else None,
                       **({"execution": execution} if execution else {})}, path)


def restore_rng(state, device="cpu"):
    """Restore the CPU's RNG state and, for a run now on a GPU, that GPU's from the checkpoint. Returns a note
    (for train.log) where the GPU state could not be restored, else None; never raises for missing GPUs."""
    torch.set_rng_state(state["torch_rng"])
    device = torch.device(device)
    saved = state.get("cuda_rng")
    if device.type != "cuda" or saved is None:
        return None  # a CPU run draws from the CPU generator only; a run that was on the CPU has no GPU state
    index = cuda_index(device)
    if isinstance(saved, (list, tuple)):  # an older checkpoint: every GPU visible then, in index order
        if index >= len(saved):
            note = (f"the checkpoint holds the RNG state of {len(saved)} GPU(s), none for cuda:{index}: that GPU's "
                    "generator continues from the run's seed (not bit-identical to an uninterrupted run)")
            warnings.warn(note, RuntimeWarning)
            return note
        saved = saved[index]
    torch.cuda.set_rng_state(saved, index)
    return None


def device_change_note(state, execution):
    """A line for train.log when a run resumes on another device than the one its last epoch trained on, else
    None. Another device type (cpu <-> cuda) changes the numbers and is warned about (RuntimeWarning), not
    refused: finishing a run elsewhere is legitimate, and each epoch's record names its device. Checkpoints
    that name no device (made before devices were recorded) are not compared."""
    before = state.get("execution")
    if not before:
        device = state.get("device") or (state.get("history") or [{}])[-1].get("device")
        before = {"device": device} if device else None
    if not before or (before["device"] == execution["device"] and before.get("gpu_name") == execution.get("gpu_name")):
        return None
    other_type = torch.device(before["device"]).type != torch.device(execution["device"]).type
    text = (f"resumed on {device_label(execution)}; epoch {state['epoch']} was trained on {device_label(before)}"
            + (": another device type computes other numbers, so this run is not bit-identical to one trained on "
               "either alone (each epoch's record names its device)" if other_type else ""))
    if other_type:
        warnings.warn(text, RuntimeWarning)
    return text


REQUIRED_KEYS = {"model", "optimizer", "epoch", "history", "torch_rng"}


def load_checkpoint(path):
    if not Path(path).exists():
        raise CheckpointError(f"{path} does not exist: this run has not finished an epoch yet (train it first)")
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=False)
        if not isinstance(state, dict) or not REQUIRED_KEYS <= set(state):
            raise BadValueError("not a checkpoint of this suite")
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
