"""`reproduce`: train every missing (method, dataset, seed) cell, evaluate it, render the table.

Finished work is never redone: a trained run is resumed or skipped, and a metric already in a cell's
JSON is not recomputed (unless --recompute: then every cell is evaluated again, and trained again where
its run folder is not on this machine, as on a fresh clone). Interrupt at any point and run the same
command again. Budgets that reuse runs evaluate a run folder of the same identity with at least the
budget's epochs (e.g. a long run made by `train`) instead of training (reporting/run_reuse.py). No record
is replaced by one from a run of another length, and no table by one with fewer filled cells, without --force."""
import time
from dataclasses import replace
from pathlib import Path

import segma_bench.methods as methods
from segma_bench.core.errors import BadValueError, UserError
from segma_bench.core.storage import unwritable_reason
from segma_bench.datasets import get_loader, load_dataset

from . import launch
from .budgets import check_budget_datasets, get_budget, table_file_name
from .guards import check_table_replacement
from .launch import (
    Cell,
    CellsFailedError,
    CellTask,
    GridProgress,
    failure_message,
    loaded_plugin_files,
    run_cell_locked,
    run_in_processes,
    threads_per_job,
)
from .options import SKIPPED
from .paper_reference import (
    PAPER_TABLES,
    table_methods,  # noqa: F401  (also used by the CLI and tests from here)
)
from .results import load_records
from .tables import render


def check_writable(results_dir):
    reason = unwritable_reason(results_dir, want_dir=True)
    if reason:
        raise NotADirectoryError(f"results folder {results_dir}: {reason}; pass another --results-dir")


def check_launcher(launcher, which=None):
    """--launcher needs submitit, and slurm needs SLURM's commands on this machine: say what is missing
    before anything is submitted (submitit's own error comes only at submission, as a traceback)."""
    import importlib.util
    import shutil
    which = which or shutil.which
    if not launcher:
        return
    if importlib.util.find_spec("submitit") is None:
        raise BadValueError(f"--launcher {launcher} needs submitit: pip install 'segma-bench[slurm]' "
                            "(or pip install submitit==1.5.4)")
    if launcher == "slurm":
        missing = [command for command in ("sbatch", "squeue", "sacct") if which(command) is None]
        if missing:
            raise BadValueError(f"--launcher slurm needs SLURM's {', '.join(missing)} on the PATH (run reproduce "
                                "on a SLURM login node); without SLURM use --launcher local or --jobs N")


def reproduce(table, datasets, method_names, seeds, budget_name, options, command, log=print):
    if table not in PAPER_TABLES:
        raise methods.UnknownNameError(f"unknown table {table}; tables: {', '.join(map(str, PAPER_TABLES))}")
    budget = get_budget(budget_name)
    check_budget_datasets(budget, datasets)
    check_writable(options.results_dir)  # before any metric is computed, not at its write
    method_names = list(method_names) or table_methods(table)
    for name in method_names:
        methods.get_method(name)  # fail on unknown names before any training
    for dataset in datasets:
        get_loader(dataset)
    if seeds is not None and seeds < 0:
        raise BadValueError(f"--seeds must be a count of seeds (0 or more; 0: the budget's {budget.default_seeds}), "
                         f"got {seeds}")
    seeds = seeds or budget.default_seeds
    check_launcher(options.launcher)  # before any cell is trained
    options = replace(options, command=command)  # each record names the command that made it
    started = time.time()
    cells = [Cell(dataset, name, seed) for dataset in datasets for name in method_names for seed in range(seeds)]
    jobs, launcher = options.jobs, options.launcher
    if launcher or jobs > 1:
        failed = run_cells_elsewhere(cells, table, budget, options, log)
    else:
        failed = run_cells_here(cells, table, budget, options, log)
    log(f"reproduce --table {table}: {(time.time() - started) / 60:.1f} min")
    written = write_table(table, budget.name, options.results_dir, datasets, options.force)
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
            data = {cell.dataset: load_dataset(cell.dataset, options.data_root, options.cache_dir)}
        if run_cell_locked(cell, table, budget, data[cell.dataset], extractor_factory, options, log) == SKIPPED:
            progress.skipped += 1
        else:
            progress.done += 1
        log(progress.line())
    return []


def run_cells_elsewhere(cells, table, budget, options, log):
    """Each cell in its own process: spawned here (--jobs N) or a submitit job (--launcher). Returns the
    tasks that failed."""
    jobs = options.jobs
    # A SLURM job's threads are the cores it was given (decided in the job), not this login node's.
    threads = options.threads or (None if options.launcher == "slurm" else threads_per_job(jobs))
    tasks = [CellTask(cell, table, budget.name, options, threads, loaded_plugin_files()) for cell in cells]
    each = f"{threads} torch thread(s) each" if threads else "each job as many torch threads as it has cores"
    log(f"reproduce: {len(cells)} cells, {jobs} at a time, {each}; logs in {tasks[0].log_path.parent}"
        if tasks else "reproduce: no cells")
    if options.launcher:
        from .cluster import run_with_submitit  # submitit is needed only here
        return run_with_submitit(tasks, options.launcher, options.launcher_settings, jobs)
    return run_in_processes(tasks, jobs)


class NoRecords(UserError, ValueError):
    """A table was asked for where its budget has no records."""


def write_table(table, budget_name, results_dir, datasets=None, force=False):
    """Render results/tableN[-BUDGET].md from the records; refuses (writing nothing) where there are no
    records, or where the table on disk has more filled cells (unless force)."""
    from segma_bench.core.storage import atomic_write_text
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
