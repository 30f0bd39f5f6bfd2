"""One JSON per (budget, dataset, method, seed) with config, metrics, protocol, versions and timing;
tables are a pandas aggregation over these files."""
import json
import platform
import subprocess
from pathlib import Path

import pandas as pd

from storage import atomic_write_json

METRICS = ("test_error", "sample_fid", "interpolation_fid", "sample_kid", "interpolation_kid")
# Each image metric and the KID computed from the same generated images' Inception features.
KID_OF_FID = {"sample_fid": "sample_kid", "interpolation_fid": "interpolation_kid"}


def record_path(results_dir, budget, dataset, method, seed):
    return Path(results_dir) / "runs" / budget / f"{dataset}-{method}-seed{seed}.json"


def read_record(path):
    path = Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"result file {path} is not valid JSON ({error}); delete it to recompute that cell") from error


def write_record(path, record):
    atomic_write_json(path, record)


def software_versions():
    import numpy
    import pytorch_fid
    import scipy
    import torch
    import torchvision
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "pytorch_fid": pytorch_fid.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "suite_commit": commit}


def load_records(results_dir, budget):
    """Long-form frame: one row per (dataset, method, seed, metric) with its value and the record."""
    rows = []
    for path in sorted((Path(results_dir) / "runs" / budget).glob("*.json")):
        record = read_record(path)
        for metric in METRICS:
            if metric in record.get("metrics", {}):  # None (e.g. no classifier) becomes NaN: shown as n/a
                value = record["metrics"][metric]
                rows.append({"dataset": record["dataset"], "method": record["method"], "seed": record["seed"],
                             "metric": metric, "value": float("nan") if value is None else float(value),
                             "record": record})
    return pd.DataFrame(rows, columns=["dataset", "method", "seed", "metric", "value", "record"])


def aggregate(frame):
    """mean, sample std (ddof=1; NaN for one seed) and count per (metric, method, dataset)."""
    if frame.empty:
        return pd.DataFrame(columns=["metric", "method", "dataset", "mean", "std", "n"])
    return (frame.groupby(["metric", "method", "dataset"])["value"]
            .agg(mean="mean", std="std", n="count").reset_index())
