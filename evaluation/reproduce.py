"""`reproduce`: train every missing (method, dataset, seed) cell, evaluate it, render the table.

Finished work is never redone: a trained run is resumed or skipped, and a metric already in a cell's
JSON is not recomputed (unless --recompute: then every cell is evaluated again, and trained again where
its run folder is not on this machine, as on a fresh clone). Interrupt at any point and run the same
command again."""
import json
import time
from pathlib import Path

import methods
from datasets import get_loader, load_dataset
from training import RunSpec, load_trained, train

from .budgets import get_budget
from .paper_reference import PAPER_TABLES
from .results import read_record, record_path, software_versions, write_record
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


def reproduce_cell(method, dataset, seed, budget, metric, data, extractor_factory, options, log):
    path = record_path(options["results_dir"], budget.name, dataset, method, seed)
    record = read_record(path) or {}
    run_dir = Path(options["runs_root"]) / "reproduce" / budget.name / dataset / method / f"seed{seed}"
    if (metric in record.get("metrics", {}) and not options.get("recompute")
            and not trained_further(run_dir, record, metric)):
        log(f"{dataset}/{method}/seed{seed}: {metric} already in {path}")
        return
    overrides = (budget.method_overrides or {}).get(method, {})
    spec = RunSpec(method=method, dataset=dataset, seed=seed, epochs=budget.epochs.get(dataset, 0), overrides=overrides,
                   device=options["device"], progress=options["progress"])
    training = train(spec, run_dir, data=data)
    spec, data, model = load_trained(run_dir, data=data, device=options["device"])
    from .harness import evaluate  # imports the FID stack only when a cell is evaluated
    extractor = extractor_factory() if metric != "test_error" else None
    started = time.time()
    metrics, protocol = evaluate(model, data, {metric}, budget.fid_samples, extractor, options["cache_dir"], seed)
    record.setdefault("metrics", {}).update(metrics)
    record.setdefault("evaluated_at_epoch", {})[metric] = training["epochs_completed"]
    record.setdefault("protocol", {}).update(protocol)
    record.update({
        "method": method, "dataset": dataset, "seed": seed, "budget": budget.name, "run_dir": str(run_dir),
        "data_source": data.source, "table_variant": type(model).table_variant,
        **({"plugin": methods.plugin_source(type(model))} if methods.plugin_source(type(model)) else {}),
        "config": {"run": spec.identity(), "method_config": {k: v for k, v in vars(model.config).items()}},
        "training": {"epochs": training["epochs_completed"], "train_seconds": training["train_seconds"],
                     "test_error_by_epoch": [h["test_error"] for h in training["history"]]},
        "versions": software_versions()})
    record.setdefault("timing", {})[f"evaluate_{metric}_seconds"] = round(time.time() - started, 1)
    write_record(path, record)
    log(f"{dataset}/{method}/seed{seed}: {metric} = {metrics[metric]} -> {path}")


def reproduce(table, datasets, method_names, seeds, budget_name, options, command, log=print):
    if table not in PAPER_TABLES:
        raise methods.UnknownNameError(f"unknown table {table}; tables: {', '.join(map(str, PAPER_TABLES))}")
    budget = get_budget(budget_name)
    check_writable(options["results_dir"])  # before any metric is computed, not at its write
    metric = PAPER_TABLES[table]["metric"]
    method_names = list(method_names) or table_methods(table)
    for name in method_names:
        methods.get_method(name)  # fail on unknown names before any training
    for dataset in datasets:
        get_loader(dataset)
    seeds = seeds or budget.default_seeds
    started = time.time()
    extractor = {}  # built once, on first use

    def extractor_factory():
        if "fid" not in extractor:
            from .inception import FeatureExtractor
            extractor["fid"] = FeatureExtractor(weights_path=options["fid_weights"], device=options["fid_device"])
        return extractor["fid"]

    for dataset in datasets:
        data = load_dataset(dataset, options["data_root"], options["cache_dir"])
        for name in method_names:
            for seed in range(seeds):
                reproduce_cell(name, dataset, seed, budget, metric, data, extractor_factory, options, log)
    log(f"reproduce --table {table}: {(time.time() - started) / 60:.1f} min")
    return write_table(table, budget.name, options["results_dir"], command)


def write_table(table, budget_name, results_dir, command=None):
    from storage import atomic_write_text
    text = render(table, results_dir, budget_name, set(methods.METHODS), command)
    path = Path(results_dir) / f"table{table}.md"
    atomic_write_text(path, text)
    return path, text
