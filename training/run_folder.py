"""Reading a run folder's JSON files with errors that name the file and say what to do."""
import json
from pathlib import Path


class RunFolderError(ValueError):
    """A run folder's config.json or metrics.json that is missing, empty or not valid JSON."""


def read_run_json(run_dir, name="config.json"):
    path = Path(run_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no {name}): give a folder written by `train` "
                                "that has finished at least one epoch")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunFolderError(f"{path} is empty or not valid JSON ({error}); restore it, or remove the run "
                             "folder and train again") from error


def read_run_config(run_dir):
    """config.json of a run folder; its "run" entry must be there."""
    config = read_run_json(run_dir, "config.json")
    if not isinstance(config, dict) or not isinstance(config.get("run"), dict):
        raise RunFolderError(f"{Path(run_dir) / 'config.json'} has no \"run\" entry: not a config.json written "
                             "by `train`; restore it, or remove the run folder and train again")
    return config
