"""One JSON per (budget, dataset, method, seed) with config, metrics, protocol, versions and timing;
tables are a pandas aggregation over these files."""
import json
from pathlib import Path

import pandas as pd

from storage import atomic_write_json

from evaluation.metric_names import KID_OF_FID, METRICS  # noqa: F401 (re-exported for the tables)
from provenance import software_versions  # noqa: F401 (re-exported: every record carries it)


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
