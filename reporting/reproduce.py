"""`reproduce`: train every missing (method, dataset, seed) cell, evaluate it, render the table.

Finished work is never redone: a trained run is resumed or skipped, and a metric already in a cell's
JSON is not recomputed (unless --recompute: then every cell is evaluated again, and trained again where
its run folder is not on this machine, as on a fresh clone). Interrupt at any point and run the same
command again. Budgets that reuse runs evaluate a run folder of the same identity with at least the
budget's epochs (e.g. a long run made by `train`) instead of training (reporting/run_reuse.py). No record
is replaced by one from a shorter run, and no table by one with fewer filled cells, without --force."""
import json
import time
from pathlib import Path

import methods
from datasets import get_loader, load_dataset
from training import RunSpec, load_trained, train
from training.loop import resolve_protocol

from . import launch
from .budgets import get_budget, table_file_name
from .guards import check_record_replacement, check_table_replacement
from .launch import (Cell, CellsFailedError, CellTask, GridProgress, failure_message, loaded_plugin_files,
                     run_cell_locked, run_in_processes, threads_per_job)
from .paper_reference import PAPER_TABLES
from .results import KID_OF_FID, load_records, read_record, record_path, software_versions, write_record
from .run_reuse import completed_epochs, find_reusable_run
from .tables import render


def check_writable(results_dir):
    from cli_checks import unwritable_reason
    reason = unwritable_reason(results_dir, want_dir=True)
    if reason:
        raise NotADirectoryError(f"results folder {results_dir}: {reason}; pass another --results-dir")


def table_methods(table):
    return [method for (_, method), _ in PAPER_TABLES[table]["rows"]]


def trained_further(run_dir, record, metric):
    """True when the run has more epochs than the checkpoint a stored metric was computed from (its
    metric is then stale). A deleted run folder keeps the stored results."""
    metrics_file = Path(run_dir) / "metrics.json"
    if not metrics_file.exists():
        return False
    epochs = json.loads(metrics_file.read_text())["epochs_completed"]
    return record.get("evaluated_at_epoch", {}).get(metric, epochs) != epochs


# What each epoch logged about how it ran (a run's bits depend on it), and the record field it is copied to.
EXECUTION_BY_EPOCH = {"threads": "torch_threads_by_epoch", "denormals_flushed": "denormals_flushed_by_epoch"}


def execution_by_epoch(history):
    """{"torch_threads_by_epoch": [...], "denormals_flushed_by_epoch": [...]}, each where the run logged it
    (epochs made before a field existed: None; runs made before it entirely: no key)."""
    logged = {field: [h.get(key) for h in history] for key, field in EXECUTION_BY_EPOCH.items()}
    return {field: values for field, values in logged.items() if any(v is not None for v in values)}


def wanted_metrics(metric):
    """The table's metric and the KID computed from the same images."""
    return {metric, KID_OF_FID[metric]} if metric in KID_OF_FID else {metric}


def choose_run(spec, data, own_dir, budget, options):
    """(run folder, reused?): a run with this identity and at least the budget's epochs, found under the
    runs root, where the budget reuses runs; else the budget's own folder (trained or resumed there)."""
    resolved = resolve_protocol(spec, data, methods.get_method(spec.method))
    if budget.reuse_runs:
        found, _ = find_reusable_run(options["runs_root"], resolved.identity(), resolved.epochs)
        if found is not None:
            return found, Path(found).resolve() != Path(own_dir).resolve(), resolved.epochs
    return own_dir, False, resolved.epochs


def reproduce_cell(method, dataset, seed, budget, metric, data, extractor_factory, options, log):
    path = record_path(options["results_dir"], budget.name, dataset, method, seed)
    record = read_record(path) or {}
    own_dir = Path(options["runs_root"]) / "reproduce" / budget.name / dataset / method / f"seed{seed}"
    wanted = wanted_metrics(metric)
    if (wanted <= set(record.get("metrics", {})) and not options.get("recompute")
            and not trained_further(record.get("run_dir", own_dir), record, metric)):
        log(f"{dataset}/{method}/seed{seed}: {metric} already in {path}")
        return
    spec = RunSpec(method=method, dataset=dataset, seed=seed, **budget.run_settings(method, dataset),
                   device=options["device"], progress=options["progress"])
    run_dir, reused, budget_epochs = choose_run(spec, data, own_dir, budget, options)
    planned = max(budget_epochs, completed_epochs(run_dir))
    check_record_replacement(path, record, planned, options.get("force", False))  # before any training
    if reused:
        log(f"{dataset}/{method}/seed{seed}: evaluating {run_dir} ({completed_epochs(run_dir)} epochs), not retraining")
        training = json.loads((Path(run_dir) / "metrics.json").read_text())
    else:
        training = train(spec, run_dir, data=data)
    spec, data, model = load_trained(run_dir, data=data, device=options["device"])
    from evaluation.harness import evaluate  # imports the FID stack only when a cell is evaluated
    extractor = extractor_factory() if metric != "test_error" else None
    started = time.time()
    metrics, protocol = evaluate(model, data, wanted, budget.fid_samples, extractor, options["cache_dir"], seed)
    record.setdefault("metrics", {}).update(metrics)
    record.setdefault("evaluated_at_epoch", {})[metric] = training["epochs_completed"]
    # a record holds several tables' metrics, each computed by its own call; "command" is only the latest
    record.setdefault("command_by_metric", {})[metric] = options.get("command")
    record.setdefault("protocol", {}).update(protocol)
    record.update({
        "method": method, "dataset": dataset, "seed": seed, "budget": budget.name, "run_dir": str(run_dir),
        "run_reused": reused, "budget_epochs": budget_epochs, "data_source": data.source,
        "command": options.get("command"),
        "table_variant": type(model).table_variant,
        **({"plugin": methods.plugin_source(type(model))} if methods.plugin_source(type(model)) else {}),
        "config": {"run": spec.identity(), "method_config": {k: v for k, v in vars(model.config).items()}},
        "training": {"epochs": training["epochs_completed"], "train_seconds": training["train_seconds"],
                     "test_error_by_epoch": [h["test_error"] for h in training["history"]],
                     **execution_by_epoch(training["history"])},
        "versions": software_versions()})
    record.setdefault("timing", {})[f"evaluate_{metric}_seconds"] = round(time.time() - started, 1)
    write_record(path, record)
    log(f"{dataset}/{method}/seed{seed}: {metric} = {metrics[metric]} -> {path}")


def reproduce(table, datasets, method_names, seeds, budget_name, options, command, log=print):
    if table not in PAPER_TABLES:
        raise methods.UnknownNameError(f"unknown table {table}; tables: {', '.join(map(str, PAPER_TABLES))}")
    budget = get_budget(budget_name)
    check_writable(options["results_dir"])  # before any metric is computed, not at its write
    method_names = list(method_names) or table_methods(table)
    for name in method_names:
        methods.get_method(name)  # fail on unknown names before any training
    for dataset in datasets:
        get_loader(dataset)
    if seeds is not None and seeds < 0:
        raise ValueError(f"--seeds must be a count of seeds (0 or more; 0: the budget's {budget.default_seeds}), "
                         f"got {seeds}")
    seeds = seeds or budget.default_seeds
    options = {**options, "command": command}  # each record names the command that made it
    started = time.time()
    cells = [Cell(dataset, name, seed) for dataset in datasets for name in method_names for seed in range(seeds)]
    jobs, launcher = options.get("jobs", 1), options.get("launcher")
    if launcher or jobs > 1:
        failed = run_cells_elsewhere(cells, table, budget, options, log)
    else:
        failed = run_cells_here(cells, table, budget, options, log)
    log(f"reproduce --table {table}: {(time.time() - started) / 60:.1f} min")
    written = write_table(table, budget.name, options["results_dir"], datasets, options.get("force", False))
    if failed:  # the table shows what finished; the command still fails, naming what did not
        raise CellsFailedError(failure_message(failed, len(cells)))
    return written


def run_cells_here(cells, table, budget, options, log):
    """One cell after another in this process (--jobs 1); the first failure stops the grid."""
    extractor_factory = launch.extractor_factory(options)
    progress = GridProgress(len(cells))
    data = {}
    for cell in cells:
        if cell.dataset not in data:
            data = {cell.dataset: load_dataset(cell.dataset, options["data_root"], options["cache_dir"])}
        run_cell_locked(cell, table, budget, data[cell.dataset], extractor_factory, options, log)
        progress.done += 1
        log(progress.line())
    return []


def run_cells_elsewhere(cells, table, budget, options, log):
    """Each cell in its own process: spawned here (--jobs N) or a submitit job (--launcher). Returns the
    tasks that failed."""
    jobs = options.get("jobs", 1)
    threads = options.get("threads") or threads_per_job(jobs)
    tasks = [CellTask(cell, table, budget.name, options, threads, loaded_plugin_files()) for cell in cells]
    log(f"reproduce: {len(cells)} cells, {jobs} at a time, {threads} torch thread(s) each; logs in "
        f"{tasks[0].log_path.parent}" if tasks else "reproduce: no cells")
    if options.get("launcher"):
        from .cluster import run_with_submitit  # submitit is needed only here
        return run_with_submitit(tasks, options["launcher"], options.get("launcher_settings", {}), jobs)
    return run_in_processes(tasks, jobs)


class NoRecords(ValueError):
    """A table was asked for where its budget has no records."""


def write_table(table, budget_name, results_dir, datasets=None, force=False):
    """Render results/tableN[-BUDGET].md from the records; refuses (writing nothing) where there are no
    records, or where the table on disk has more filled cells (unless force)."""
    from storage import atomic_write_text
    frame = load_records(results_dir, budget_name)
    metric = PAPER_TABLES[table]["metric"]
    have = frame[(frame.metric == metric) & (frame.dataset.isin(datasets) if datasets else True)]
    if have.empty:
        where = Path(results_dir) / "runs" / budget_name
        raise NoRecords(f"no records for table {table} at budget {budget_name!r}"
                        + (f" on {', '.join(datasets)}" if datasets else "") + f" in {where}; nothing written. "
                        f"Make them with `python cli.py reproduce --table {table} --budget {budget_name}`.")
    text = render(table, results_dir, budget_name, set(methods.METHODS), datasets)
    path = Path(results_dir) / table_file_name(table, budget_name)
    check_table_replacement(path, text, force)
    atomic_write_text(path, text)
    return path, text
