"""A run folder: the names of the files `train` writes there, the one rule that finds run folders under a root, and
reading its JSON files with errors that name the file and say what to do."""
import json
from pathlib import Path

from segma_bench.core.errors import UserError
from segma_bench.core.json_files import JSONFileError, read_json_file

# The files of a run folder (training/loop.py writes them; everything else reads them by these names).
CONFIG = "config.json"                      # the run's identity ("run"), settings, data, versions
LABELED_INDICES = "labeled_indices.json"    # which training images are labeled
CHECKPOINT = "checkpoint.pt"                # weights, optimiser and RNG states at the end of the last epoch
METRICS = "metrics.json"                    # per-epoch history and the latest test error
LOG = "train.log"                           # one line per epoch, resumes and device changes


class RunFolder:
    """The paths of a run folder's files: RunFolder(run_dir).config, .checkpoint, ..."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self):
        return f"RunFolder({str(self.path)!r})"

    @property
    def config(self):
        return self.path / CONFIG

    @property
    def labeled_indices(self):
        return self.path / LABELED_INDICES

    @property
    def checkpoint(self):
        return self.path / CHECKPOINT

    @property
    def metrics(self):
        return self.path / METRICS

    @property
    def log(self):
        return self.path / LOG


def find_run_folders(root):
    """[(run folder, its config.json "run" entry)] for every run folder under `root` (itself included), in sorted
    path order: a folder whose config.json is a JSON object with a "run" object and that holds a checkpoint.
    Folders whose config.json cannot be read are skipped (a search must not stop at one broken folder)."""
    found = []
    for config in sorted(Path(root).glob(f"**/{CONFIG}")):
        try:
            run = json.loads(config.read_text())["run"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(run, dict) and RunFolder(config.parent).checkpoint.exists():
            found.append((config.parent, run))
    return found


class RunFolderError(UserError, ValueError):
    """A run folder's config.json or metrics.json that is missing, empty or not valid JSON."""


def read_run_json(run_dir, name=CONFIG):
    path = Path(run_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no {name}): give a folder written by `train` "
                                "that has finished at least one epoch")
    try:
        return read_json_file(path)
    except JSONFileError as error:
        raise RunFolderError(f"{error}: empty, not valid JSON or not finite; restore it, or remove the run folder "
                             "and train again") from error


def _count(value, minimum=0):
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


# The identity fields config.json stores under "run" (training/loop.py RunSpec.IDENTITY) and what each must be.
RUN_FIELDS = {"method": (lambda v: isinstance(v, str) and bool(v), "a method name"),
              "dataset": (lambda v: isinstance(v, str) and bool(v), "a dataset name"),
              "seed": (_count, "a seed (an integer, 0 or more)"),
              "overrides": (lambda v: isinstance(v, dict), "an object of settings"),
              "recipe": (lambda v: isinstance(v, str), "a recipe name"),
              "labeled_subset": (lambda v: isinstance(v, str), "a labeled-subset name"),
              "num_labeled": (_count, "a count"),
              "unlabeled_batch_size": (_count, "a count"),
              "labeled_batch_size": (_count, "a count")}
REQUIRED_RUN_FIELDS = ("method", "dataset", "seed", "overrides")  # older folders lack the others (their defaults)


def read_run_config(run_dir):
    """config.json of a run folder; its "run" entry must be there, with the identity fields of the right types."""
    config = read_run_json(run_dir, CONFIG)
    path = RunFolder(run_dir).config
    if not isinstance(config, dict) or not isinstance(config.get("run"), dict):
        raise RunFolderError(f"{path} has no \"run\" entry: not a {CONFIG} written "
                             "by `train`; restore it, or remove the run folder and train again")
    run = config["run"]
    problems = [f"no {key!r}" for key in REQUIRED_RUN_FIELDS if key not in run]
    problems += [f"{key!r} is {run[key]!r}, not {wanted}" for key, (check, wanted) in RUN_FIELDS.items()
                 if key in run and not check(run[key])]
    problems += [f"unknown field {key!r}" for key in sorted(set(run) - set(RUN_FIELDS))]
    if problems:
        raise RunFolderError(f"{path}: its \"run\" entry is not a run identity written by `train` "
                             f"({'; '.join(problems)}); restore it, or remove the run folder and train again")
    return config


def read_run_metrics(run_dir):
    """metrics.json of a run folder: epochs_completed a count, history a list of per-epoch objects whose epoch
    numbers count up from 1 and whose test errors are fractions (or null)."""
    metrics = read_run_json(run_dir, METRICS)
    path = RunFolder(run_dir).metrics
    problems = []
    if not isinstance(metrics, dict):
        problems.append(f"a JSON object is expected, not a {type(metrics).__name__}")
    else:
        history = metrics.get("history")
        if not _count(metrics.get("epochs_completed")):
            problems.append(f"epochs_completed is {metrics.get('epochs_completed')!r}, not a count")
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            problems.append("history is not a list of per-epoch objects")
        else:
            if [h.get("epoch") for h in history] != list(range(1, len(history) + 1)):
                problems.append("the history's epochs do not count 1, 2, 3, ...")
            if _count(metrics.get("epochs_completed")) and metrics["epochs_completed"] != len(history):
                problems.append(f"epochs_completed {metrics['epochs_completed']} but {len(history)} epochs in the history")
            errors = [h.get("test_error") for h in history]
            if any(e is not None and (isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 <= e <= 1)
                   for e in errors):
                problems.append("a test_error in the history is not a fraction in [0, 1]")
    if problems:
        raise RunFolderError(f"{path} is not a {METRICS} written by `train` ({'; '.join(problems)}); restore "
                             "it, or remove the run folder and train again")
    return metrics
