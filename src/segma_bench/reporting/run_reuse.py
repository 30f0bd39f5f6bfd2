"""Find a run folder that already holds a cell's run, so that `reproduce` evaluates it instead of
training it again (e.g. a long run made by `train` under runs/DATASET/METHOD.../seedN).

A folder qualifies when its config.json's saved run identity equals the cell's (the fields
RunSpec.IDENTITY, with the defaults older folders meant, as training/loop.py check_same_run compares
them) and its metrics.json has at least the budget's epochs. Among several, the one with the most epochs
wins (ties: the first path in sorted order), so the choice does not depend on the file system's order."""
import json
from pathlib import Path

from segma_bench.training import RunSpec
from segma_bench.training.run_folder import RunFolder, find_run_folders


def completed_epochs(run_dir):
    try:
        return json.loads(RunFolder(run_dir).metrics.read_text())["epochs_completed"]
    except (OSError, ValueError, KeyError):
        return 0


def find_reusable_run(search_root, identity, min_epochs, exclude=()):
    """(run folder, epochs) of the best run under `search_root` (training/run_folder.py find_run_folders: a
    readable config.json and a checkpoint) with this identity and at least `min_epochs` completed epochs,
    else (None, 0)."""
    wanted = json.loads(json.dumps(identity, default=str))  # as config.json stores it: tuples become lists
    excluded = {Path(p).resolve() for p in exclude}
    best, best_epochs = None, 0
    for run_dir, saved in find_run_folders(search_root):
        if run_dir.resolve() in excluded or {**RunSpec.IDENTITY_DEFAULTS, **saved} != wanted:
            continue
        epochs = completed_epochs(run_dir)
        if epochs >= min_epochs and epochs > best_epochs:
            best, best_epochs = run_dir, epochs
    return best, best_epochs
