"""One JSON per (budget, dataset, method, seed) with config, metrics, protocol, versions and timing;
tables are a pandas aggregation over these files."""
import json
import re
from pathlib import Path

import pandas as pd

from segma_bench.core.errors import BadValueError
from segma_bench.core.json_files import JSONFileError, non_finite_places, read_json_file
from segma_bench.core.provenance import software_versions  # noqa: F401 (re-exported: every record carries it)
from segma_bench.core.storage import atomic_write_json
from segma_bench.evaluation.metric_names import KID_OF_FID, METRICS  # noqa: F401 (re-exported for the tables)

from .paper_reference import DISPLAY_NAMES

SCHEMA_VERSION = 3
# Records without "schema_version" were written before it existed: version 1 (no "command_by_metric"; the quick
# records until they were re-made) and version 2 (with it; results/runs/comparable/). migrate() reads
# both as version 3, which adds "schema_version", "display_name" and "paper_epochs" (see record_identity).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")  # method and dataset names: no path separators, no dots
MAX_METRIC = 1e6  # no metric of the suite comes near it: a larger number is not a measurement (1e308 overflows the std)
UNIT_METRICS = ("test_error", "_precision", "_recall")  # fractions in [0, 1]


class RecordError(BadValueError):
    """A result record that is malformed; the message names the file and every reason."""


def record_path(results_dir, budget, dataset, method, seed):
    return Path(results_dir) / "runs" / budget / f"{dataset}-{method}-seed{seed}.json"


def _builtin_protocols():
    from segma_bench.datasets import celeba, mnist, svhn
    return {"mnist": mnist.PROTOCOL, "svhn": svhn.PROTOCOL, "celeba": celeba.PROTOCOL}


def record_identity(method_class, dataset):
    """{"display_name", "paper_epochs"} a record stores for a method, so that its table row renders the same
    with or without the method's plugin loaded. display_name: the class's `display_name`, else the paper's
    name of a built-in (paper_reference.DISPLAY_NAMES), else the registry name. paper_epochs: for a plugin, its
    class's `paper_epochs(dataset)` (None: the table shows no original length for it, whatever the dataset
    protocol's); for a built-in on the paper's datasets, its own or the dataset protocol's (the SeGMA
    paper's); None on other (toy) datasets."""
    import segma_bench.methods as methods
    name = method_class.name
    display = getattr(method_class, "display_name", "") or DISPLAY_NAMES.get(name, name)
    epochs = method_class.paper_epochs(dataset)
    if methods.plugin_source(method_class) is None:
        protocol = _builtin_protocols().get(dataset)
        epochs = (epochs or protocol.paper_epochs) if protocol is not None else None
    return {"display_name": display, "paper_epochs": epochs}


def migrate(record):
    """A record of any earlier schema as the current one (a new dict; the file is not rewritten)."""
    record = dict(record)
    version = record.get("schema_version", 2 if "command_by_metric" in record else 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
        return record  # not a version this suite knows: record_problems says so
    if version == 1:
        record["command_by_metric"] = {}  # which command computed each metric was not kept; "command" is the latest
    method = record.get("method")
    if ("display_name" not in record or "paper_epochs" not in record) and isinstance(method, str) and NAME.match(method):
        import segma_bench.methods as methods  # (version 3 records of cell.py have both)
        if record.get("plugin") is None and method in methods.METHODS:
            identity = record_identity(methods.get_method(method), record.get("dataset"))
        else:  # a plugin's record made before records kept its names: no original length is known
            identity = {"display_name": method, "paper_epochs": None}
        record = {**identity, **record}
    record["schema_version"] = SCHEMA_VERSION
    return record


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value, minimum=0):
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def metric_problem(name, value):
    """Why a stored metric value is wrong, or None (None itself is allowed: the method cannot give it)."""
    if value is None:
        return None
    if not _is_number(value):
        return f"metric {name} is {value!r}, not a number"
    if non_finite_places(value):
        return f"metric {name} = {value!r} is not a finite number"
    if abs(value) > MAX_METRIC:
        return f"metric {name} = {value!r} is not a measurement (more than {MAX_METRIC:g} in size)"
    if (name == UNIT_METRICS[0] or name.endswith(UNIT_METRICS[1:])) and not 0 <= value <= 1:
        return f"metric {name} = {value!r} is not a fraction in [0, 1]"
    if (name.endswith("_fid") or name.endswith("_std")) and value < 0:
        return f"metric {name} = {value!r} is negative"
    return None


def _typed(record, key, check, wanted, problems, required=False):
    if key not in record:
        if required:
            problems.append(f"no {key!r}")
        return
    if not check(record[key]):
        problems.append(f"{key!r} is {record[key]!r}, not {wanted}")


def _protocol_problems(protocol):
    problems = []
    fid, kid = protocol.get("fid"), protocol.get("kid")
    if fid is not None:
        if not isinstance(fid, dict):
            return ["protocol.fid is not an object"]
        _typed(fid, "generated_images", lambda v: _is_count(v, 1), "a positive count", problems, required=True)
        _typed(fid, "floor_fid", _is_number, "a number", problems, required=True)
        for key in ("reference", "floor", "weights_sha256", "pytorch_fid_version"):
            _typed(fid, key, lambda v: isinstance(v, str), "text", problems, required=True)
    if kid is not None:
        if not isinstance(kid, dict):
            return problems + ["protocol.kid is not an object"]
        _typed(kid, "subsets", lambda v: _is_count(v, 1), "a positive count", problems, required=True)
        _typed(kid, "subset_size", lambda v: _is_count(v, 1) or (isinstance(v, list) and all(_is_count(x, 1) for x in v)),
               "a positive count", problems, required=True)
        _typed(kid, "floor_kid", _is_number, "a number", problems, required=True)
        for key in ("estimator", "kernel"):
            _typed(kid, key, lambda v: isinstance(v, str), "text", problems, required=True)
    _typed(protocol, "test_error", lambda v: isinstance(v, str), "text", problems)
    return [f"protocol: {p}" for p in problems]


def record_problems(record, budget=None, file_name=None):
    """Every reason the (migrated) record is wrong; empty when it is fine."""
    import segma_bench.methods as methods
    from segma_bench.datasets import DATASETS
    if not isinstance(record, dict):
        return [f"a record is a JSON object, not a {type(record).__name__}"]
    problems = [f"a number that is not finite at {place}" for place in non_finite_places(record)
                if not place.startswith("$.metrics.")]  # (metrics: named with their metric below)
    version = record.get("schema_version")
    if not _is_count(version, 1) or version > SCHEMA_VERSION:
        problems.append(f"schema_version {version!r} is not one this suite reads (1 to {SCHEMA_VERSION}; a newer "
                        "suite wrote it?)")
    method, dataset = record.get("method"), record.get("dataset")
    if not isinstance(method, str) or not NAME.match(method):
        problems.append(f"method {method!r} is not a method name (letters, digits, '-' and '_')")
    elif method not in methods.METHODS and not isinstance(record.get("plugin"), dict):
        problems.append(f"method {method!r} is not registered, and the record names no plugin that made it")
    if not isinstance(dataset, str) or not NAME.match(dataset):
        problems.append(f"dataset {dataset!r} is not a dataset name")
    elif dataset not in DATASETS:
        problems.append(f"dataset {dataset!r} is unknown (datasets: {', '.join(sorted(DATASETS))})")
    _typed(record, "seed", _is_count, "a seed (an integer, 0 or more)", problems, required=True)
    _typed(record, "budget", lambda v: isinstance(v, str) and bool(NAME.match(v)), "a budget name", problems,
           required=True)
    if budget is not None and isinstance(record.get("budget"), str) and record["budget"] != budget:
        problems.append(f"its budget is {record['budget']!r} but it lies in the folder of budget {budget!r}")
    if not problems and file_name is not None and file_name != f"{dataset}-{method}-seed{record['seed']}.json":
        problems.append(f"its file should be named {dataset}-{method}-seed{record['seed']}.json for its dataset, "
                        "method and seed")
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        problems.append(f"'metrics' is {metrics!r}, not an object")
    else:
        problems += [p for name, value in metrics.items() for p in [metric_problem(name, value)] if p]
    training = record.get("training")
    if not isinstance(training, dict):
        problems.append(f"'training' is {training!r}, not an object")
    else:
        _typed(training, "epochs", _is_count, "a count of epochs", problems, required=True)
        _typed(training, "train_seconds", lambda v: _is_number(v) and v >= 0, "seconds (0 or more)", problems,
               required=True)
        _typed(training, "test_error_by_epoch", lambda v: isinstance(v, list) and not any(
            metric_problem("test_error", e) for e in v), "a list of test errors in [0, 1]", problems)
    if not isinstance(record.get("protocol"), dict):
        problems.append(f"'protocol' is {record.get('protocol')!r}, not an object")
    else:
        problems += _protocol_problems(record["protocol"])
    text = lambda v: isinstance(v, str)  # noqa: E731
    for key, check, wanted in [
            ("run_dir", text, "a folder"), ("run_reused", lambda v: isinstance(v, bool), "true or false"),
            ("budget_epochs", _is_count, "a count of epochs"), ("command", lambda v: v is None or text(v), "a command"),
            ("table_variant", lambda v: text(v) and "|" not in v and "\n" not in v, "a variant name"),
            ("display_name", lambda v: text(v) and v.strip() and "|" not in v and "\n" not in v and len(v) <= 60,
             "a display name (one line, no '|', at most 60 characters)"),
            ("paper_epochs", lambda v: v is None or _is_count(v, 1), "a count of epochs or null"),
            ("timing", lambda v: isinstance(v, dict) and all(_is_number(x) and x >= 0 for x in v.values()),
             "seconds per step"),
            ("evaluated_at_epoch", lambda v: isinstance(v, dict) and all(_is_count(x) for x in v.values()),
             "epochs per metric"),
            ("command_by_metric", lambda v: isinstance(v, dict) and all(x is None or text(x) for x in v.values()),
             "commands per metric"),
            ("plugin", lambda v: isinstance(v, dict), "where the plugin came from"),
            ("config", lambda v: isinstance(v, dict) and isinstance(v.get("run", {}), dict)
             and isinstance(v.get("run", {}).get("overrides", {}), dict), "a config with its run")]:
        _typed(record, key, check, wanted, problems)
    return problems


def check_record(record, where, budget=None, file_name=None):
    problems = record_problems(record, budget, file_name)
    if problems:
        raise RecordError(f"result file {where} is not a valid record: {'; '.join(problems)}. Fix it, or delete it "
                          "(`reproduce` computes a deleted cell again); no table is rendered from it")


def read_record(path, budget=None):
    """The record at `path` (migrated to the current schema and checked), or None where there is none.
    A file that is not valid JSON, holds a number that is not finite, or breaks the schema is refused with
    one line naming the file and the reasons."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        raw = read_json_file(path)
    except JSONFileError as error:
        raise RecordError(f"result file {error}; delete it to recompute that cell") from error
    record = migrate(raw) if isinstance(raw, dict) else raw
    check_record(record, path, budget, path.name)
    return record


def write_record(path, record):
    """Write a record of the current schema; a record that would not read back is refused, writing nothing."""
    record = {**record, "schema_version": SCHEMA_VERSION}
    check_record(json.loads(json.dumps(record, default=str)), path, file_name=Path(path).name)
    atomic_write_json(path, record)


def load_records(results_dir, budget):
    """Long-form frame: one row per (dataset, method, seed, metric) with its value and the record. Every record is
    checked as it is read: one bad record stops the table (RecordError names it), none is left out silently."""
    rows = []
    for path in sorted((Path(results_dir) / "runs" / budget).glob("*.json")):
        record = read_record(path, budget)
        for metric in METRICS:
            if metric in record["metrics"]:  # None (e.g. no classifier) becomes NaN: shown as n/a
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
