"""One cell of a table (a method, dataset and seed): choose or train its run, evaluate it, write its record.
`reproduce` runs cells here or in worker processes (launch.py); both call reproduce_cell."""
import time
from pathlib import Path

import segma_bench.methods as methods
from segma_bench.evaluation.classification import train
from segma_bench.evaluation.metric_names import PRC_OF_FID
from segma_bench.training import RunSpec, load_trained
from segma_bench.training.loop import resolve_protocol
from segma_bench.training.run_folder import RunFolder, read_run_metrics
from segma_bench.training.trackers import make_tracker

from .guards import check_record_replacement
from .options import SKIPPED
from .results import KID_OF_FID, read_record, record_identity, record_path, software_versions, write_record
from .run_reuse import completed_epochs, find_reusable_run


def trained_on_past(run, record, budget_epochs):
    """True when `run_dir` holds the record's own run, trained on since past the record's length, and that
    length had reached the budget's: the folder's per-pass test errors up to it equal the record's (a folder
    retrained from scratch in its place differs, as two runs of one identity can), and it has more passes.
    `run`: the folder's metrics.json, as read_run_metrics returns it."""
    length = record.get("training", {}).get("epochs")
    recorded = record.get("training", {}).get("test_error_by_epoch")
    if not isinstance(length, int) or budget_epochs is None or length < budget_epochs or not recorded:
        return False
    history = run.get("history", [])
    return (run.get("epochs_completed", 0) > length and len(history) >= length
            and [h.get("test_error") for h in history[:length]] == list(recorded[:length]))


def trained_further(run_dir, record, metric, budget_epochs=None):
    """True when a stored metric is stale: its run folder now holds other epochs than the checkpoint the
    metric was computed from. Except where the folder holds the record's own run trained on past the
    record's length, which had reached the budget's (`budget_epochs`; trained_on_past): a 150-pass
    `comparable` cell whose run went on to 501 passes for the `paper` budget keeps its numbers, so the
    budget's number does not drift with the run (`--recompute --force` evaluates the longer run). A deleted
    run folder keeps the stored results."""
    if not RunFolder(run_dir).metrics.exists():
        return False
    run = read_run_metrics(run_dir)
    epochs = run["epochs_completed"]
    evaluated = record.get("evaluated_at_epoch", {}).get(metric, epochs)
    if evaluated == epochs:
        return False
    return not (evaluated == record.get("training", {}).get("epochs") and trained_on_past(run, record, budget_epochs))


# What each epoch logged about how it ran (a run's bits depend on it), and the record field it is copied to.
EXECUTION_BY_EPOCH = {"threads": "torch_threads_by_epoch", "denormals_flushed": "denormals_flushed_by_epoch",
                      "device": "device_by_epoch"}


def execution_by_epoch(history):
    """{"torch_threads_by_epoch": [...], "denormals_flushed_by_epoch": [...]}, each where the run logged it
    (epochs made before a field existed: None; runs made before it entirely: no key)."""
    logged = {field: [h.get(key) for h in history] for key, field in EXECUTION_BY_EPOCH.items()}
    return {field: values for field, values in logged.items() if any(v is not None for v in values)}


def wanted_metrics(metric):
    """The table's metric and the KID computed from the same images."""
    return {metric, KID_OF_FID[metric]} if metric in KID_OF_FID else {metric}


def lacks_precision_recall(record, run_dir, metric):
    """True when a record's image metric has no precision and recall beside it (it predates them) and its run
    folder is still here to evaluate them from. A record whose folder is gone keeps what it has: its table
    says "not computed" rather than retraining the run for them; so does one whose run has trained on since
    (its checkpoint is no longer the one the FID came from)."""
    if metric not in PRC_OF_FID or set(PRC_OF_FID[metric]) <= set(record.get("metrics", {})):
        return False
    epochs = completed_epochs(run_dir)  # a record without the field: its metric counts as current (trained_further)
    return RunFolder(run_dir).checkpoint.is_file() and record.get("evaluated_at_epoch", {}).get(metric, epochs) == epochs


def metrics_of(metric):
    """Every record key computed with a table's metric: itself, its KID, its precision and recall."""
    return wanted_metrics(metric) | set(PRC_OF_FID.get(metric, ()))


def drop_other_lengths(record, length, log, cell):
    """Remove from `record` the metrics evaluated at another training length than `length` (a --force that
    changed the record's length): a record's numbers all come from one checkpoint, the one it names."""
    stale = sorted(m for m, epoch in record.get("evaluated_at_epoch", {}).items() if epoch != length)
    for metric in stale:
        for key in metrics_of(metric):
            record.get("metrics", {}).pop(key, None)
        record["evaluated_at_epoch"].pop(metric)
        record.get("command_by_metric", {}).pop(metric, None)
    if stale:
        log(f"{cell}: dropped {', '.join(stale)} (evaluated at another length than {length} epochs); "
            f"`reproduce` with their tables evaluates them again")


def own_run(record, budget_epochs):
    """The record's own run folder, where it still holds exactly the record's length and that length reaches
    the budget's: a missing metric (or precision and recall) is then evaluated from the checkpoint the
    record's other numbers came from, not from a longer run of the same identity elsewhere."""
    run_dir, length = record.get("run_dir"), record.get("training", {}).get("epochs")
    if run_dir and isinstance(length, int) and length >= budget_epochs and completed_epochs(run_dir) == length \
            and RunFolder(run_dir).checkpoint.is_file():
        return Path(run_dir)
    return None


def choose_run(resolved, own_dir, budget, options, record=None):
    """(run folder, reused?, budget epochs): the record's own run where it still holds the record's length
    (own_run); else a run with this identity and at least the budget's epochs, found under the runs root,
    where the budget reuses runs; else the budget's own folder (trained or resumed there). `resolved`: the
    cell's RunSpec with its protocol resolved (training/loop.py resolve_protocol)."""
    found = own_run(record or {}, resolved.epochs)
    if found is None and budget.reuse_runs:
        found, _ = find_reusable_run(options.runs_root, resolved.identity(), resolved.epochs)
    if found is not None:
        return found, Path(found).resolve() != Path(own_dir).resolve(), resolved.epochs
    return own_dir, False, resolved.epochs


def train_logged(spec, run_dir, data, tracker_name):
    """Train the cell's run, every pass's record also sent to the tracker when one is named."""
    if not tracker_name:
        return train(spec, run_dir, data=data)
    tracker = make_tracker(tracker_name, run_dir)
    try:
        return train(spec, run_dir, data=data, on_epoch=tracker.log_epoch)
    finally:
        tracker.close()


def reproduce_cell(method, dataset, seed, budget, metric, data, extractor_factory, options, log):
    path = record_path(options.results_dir, budget.name, dataset, method, seed)
    record = read_record(path) or {}
    own_dir = Path(options.runs_root) / "reproduce" / budget.name / dataset / method / f"seed{seed}"
    wanted = wanted_metrics(metric)
    spec = RunSpec(method=method, dataset=dataset, seed=seed, **budget.run_settings(method, dataset),
                   device=options.device, progress=options.progress)
    resolved = resolve_protocol(spec, data, methods.get_method(spec.method))  # the budget's length for this cell
    if (wanted <= set(record.get("metrics", {})) and not options.recompute
            and not trained_further(record.get("run_dir", own_dir), record, metric, resolved.epochs)
            and not lacks_precision_recall(record, record.get("run_dir", own_dir), metric)):
        log(f"{dataset}/{method}/seed{seed}: {metric} already in {path}")
        return
    run_dir, reused, budget_epochs = choose_run(resolved, own_dir, budget, options, record)
    found = completed_epochs(run_dir)
    if options.no_train and found < budget_epochs:
        where = f"under {options.runs_root}" if budget.reuse_runs else f"in {own_dir}"
        log(f"{dataset}/{method}/seed{seed}: skipped (--no-train): no run with its identity and at least "
            f"{budget_epochs} epochs {where}" + (f" ({run_dir} has {found})" if found else ""))
        return SKIPPED
    planned = max(budget_epochs, found)
    check_record_replacement(path, record, planned, options.force)  # before any training
    if reused:
        log(f"{dataset}/{method}/seed{seed}: evaluating {run_dir} ({completed_epochs(run_dir)} epochs), not retraining")
        training = read_run_metrics(run_dir)
    else:
        training = train_logged(spec, run_dir, data, options.tracker)
    spec, data, model = load_trained(run_dir, data=data, device=options.device)
    from segma_bench.evaluation.harness import evaluate  # imports the FID stack only when a cell is evaluated
    extractor = extractor_factory() if metric != "test_error" else None
    started = time.time()
    metrics, protocol = evaluate(model, data, wanted, budget.fid_samples, extractor, options.cache_dir, seed)
    drop_other_lengths(record, training["epochs_completed"], log, f"{dataset}/{method}/seed{seed}")
    record.setdefault("metrics", {}).update(metrics)
    record.setdefault("evaluated_at_epoch", {})[metric] = training["epochs_completed"]
    # a record holds several tables' metrics, each computed by its own call; "command" is only the latest
    record.setdefault("command_by_metric", {})[metric] = options.command
    record.setdefault("protocol", {}).update(protocol)
    record.update({
        "method": method, "dataset": dataset, "seed": seed, "budget": budget.name, "run_dir": str(run_dir),
        "run_reused": reused, "budget_epochs": budget_epochs, "data_source": data.source,
        "command": options.command,
        "table_variant": type(model).table_variant,
        **record_identity(type(model), dataset),  # display name and original length, for the table
        **({"plugin": methods.plugin_source(type(model))} if methods.plugin_source(type(model)) else {}),
        "config": {"run": spec.identity(), "method_config": {k: v for k, v in vars(model.config).items()}},
        "training": {"epochs": training["epochs_completed"], "train_seconds": training["train_seconds"],
                     "test_error_by_epoch": [h["test_error"] for h in training["history"]],
                     **execution_by_epoch(training["history"]),
                     # the device, GPU model, CUDA/cuDNN versions and TF32 state of the session that trained last
                     **({"execution": training["execution"]} if training.get("execution") else {})},
        "versions": software_versions()})
    record.setdefault("timing", {})[f"evaluate_{metric}_seconds"] = round(time.time() - started, 1)
    write_record(path, record)
    if options.tracker:  # the cell's final metrics, at its last pass as the step
        tracker = make_tracker(options.tracker, run_dir)
        try:
            tracker.log_final(metrics, training["epochs_completed"])
        finally:
            tracker.close()
    log(f"{dataset}/{method}/seed{seed}: {metric} = {metrics[metric]} -> {path}")

