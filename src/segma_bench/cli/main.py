"""Command line of the SeGMA reproduction suite: `python cli.py --help`."""
import hashlib
import json
import os
from pathlib import Path

import click

import segma_bench.methods as methods
from segma_bench.cli.checks import (
    DEVICE_OPTION,
    PLUGINS_ENV,
    SEED,
    OneLineErrorsGroup,
    data_device_options,
    data_options,
    evaluation_options,
    invocation,
    refuse_overwrite,
    writable_dir,
    writable_file,
)
from segma_bench.cli.errors import user_errors
from segma_bench.core.errors import UnknownNameError
from segma_bench.core.settings import SET_SYNTAX, describe_settings, typed_settings

RUNS_DIR = Path("runs")


def parse_settings(pairs):
    """--set key=value pairs as {key: raw text}; settings_parsing.typed_settings converts them per method."""
    settings = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--set")
        settings[key] = raw
    return settings


def default_run_dir(method, dataset, seed, settings, recipe="", labeled_subset=""):
    name = method + (f"-{recipe}" if recipe else "") + (f"-labeled-{labeled_subset}" if labeled_subset else "")
    if settings:  # different settings are a different run: never resume one from the other
        name += "-" + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return RUNS_DIR / dataset / name / f"seed{seed}"


def check_tracker(ctx, param, value):
    """--tracker: a registered tracker whose package is installed, checked before any data is read."""
    if not value:
        return None
    from segma_bench.training.trackers import tracker_class
    try:
        tracker_class(value)
    except (UnknownNameError, ImportError) as error:
        raise click.BadParameter(str(error), param=param) from None
    return value


TRACKER_OPTION = click.option(
    "--tracker", callback=check_tracker, metavar="NAME",
    help="Also log to an experiment tracker: tensorboard (RUN_DIR/tensorboard/; `pip install "
         "'segma-bench[tensorboard]'`; view with `tensorboard --logdir runs`). Off by default.")


@click.group(cls=OneLineErrorsGroup)
@click.option("--plugin", "plugins", multiple=True, metavar="FILE|MODULE",
              help=f"Python file (or importable module) registering extra methods with @register (repeatable; also "
                   f"${PLUGINS_ENV}, separated by ':'). Installed distributions with an entry point in the group "
                   f"'{methods.ENTRY_POINT_GROUP}' load without it.")
def cli(plugins):
    """Reproduce and benchmark SeGMA and semi-supervised generative baselines."""
    env_plugins = [p for p in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if p]
    try:
        methods.load_entry_point_plugins()  # installed distributions' `segma_bench.methods` entry points
        for plugin in [*env_plugins, *plugins]:
            if plugin.endswith(".py") or os.sep in plugin:
                methods.load_plugin(plugin)          # a file
            else:
                methods.load_plugin_module(plugin)   # an importable module or package, e.g. my_method
    except (FileNotFoundError, methods.PluginError) as error:
        raise click.ClickException(str(error)) from error


@cli.command("methods")
@click.option("--settings", "settings_of", metavar="METHOD", help="List this method's settings (what --set "
              "accepts) with their types and defaults.")
@user_errors
def list_methods(settings_of):
    """List the registered methods."""
    if settings_of:
        for line in describe_settings(methods.get_method(settings_of)):
            click.echo(line)
        return
    for name, cls in sorted(methods.METHODS.items()):
        click.echo(f"{name:14s} {methods.describe(cls)}")


@cli.command()
@click.option("--method", required=True, help="A registered method (see `methods`).")
@click.option("--dataset", required=True, help="mnist, svhn or celeba.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seeds the labeled subset, the "
              "initialisation and the batch order.")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs to train in all (a run trained further "
              "resumes). Default: the authors' length for the dataset.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Override a method setting "
              f"(repeatable). {SET_SYNTAX}")
@click.option("--recipe", default="", help="A method's named preset reproducing an original code, applied "
              "before --set (e.g. segma: authors-code; docs/protocol.md).")
@click.option("--labeled", "labeled_subset", default="", type=click.Choice(["", "balanced", "first"]),
              help="Labeled subset: balanced (drawn by the seed, class-balanced) or first (the first N training "
                   "images, as the SeGMA authors' code ran). Default: the recipe's, else balanced.")
@data_options
@click.option("--run-dir", type=click.Path(file_okay=False), callback=writable_dir,
              help="Default runs/DATASET/METHOD/seedN.")
@DEVICE_OPTION
@TRACKER_OPTION
@user_errors
def train(method, dataset, seed, epochs, settings, recipe, labeled_subset, data_root, cache_dir, run_dir, device,
          tracker):
    """Train one run (or resume it from its last checkpoint)."""
    from segma_bench.datasets import get_loader
    from segma_bench.evaluation.classification import train as train_run
    from segma_bench.training import RunSpec, pick_device
    from segma_bench.training.denormals import flush_for_process
    method_class = methods.get_method(method)  # every name and value is checked before any data is read
    get_loader(dataset)
    if recipe:
        method_class.recipe(recipe, dataset)
    settings = typed_settings(method_class, parse_settings(settings))
    run_dir = Path(run_dir or default_run_dir(method, dataset, seed, settings, recipe, labeled_subset))
    writable_dir(None, None, run_dir)
    spec = RunSpec(method=method, dataset=dataset, seed=seed, overrides=settings, recipe=recipe,
                   labeled_subset=labeled_subset, epochs=epochs or 0, data_root=data_root, cache_dir=cache_dir,
                   device=device)
    flush_for_process(pick_device(device))  # before the first torch operation: training/denormals.py
    metrics = train_with_tracker(spec, run_dir, tracker, train_run)
    error = metrics["test_error"]
    click.echo(f"{run_dir}: {metrics['epochs_completed']} epochs"
               + (f", test error {100 * error:.2f}%" if error is not None else ""))


@cli.command()
@click.option("--table", "table", required=True, type=int, help="1, 2 or 3 (the paper's Tables I-III).")
@click.option("--dataset", "datasets", multiple=True, default=("mnist",), show_default=True,
              help="Repeatable; 'all' means mnist, svhn and celeba.")
@click.option("--method", "method_names", multiple=True, help="Repeatable; default: the table's methods. "
              "A plugin method named here gets its own row.")
@click.option("--seeds", type=click.IntRange(min=1), help="Seeds 0..N-1. Default: the budget's (quick and "
              "comparable: 2, paper: 3).")
@click.option("--budget", default="quick", show_default=True, help="quick, comparable, paper, or "
              "celeba-subset (CelebA only: the offline 6,097-image copy) (reporting/budgets.py).")
@click.option("--runs-root", default="runs", show_default=True, type=click.Path(file_okay=False),
              callback=writable_dir)
@click.option("--results-dir", default="results", show_default=True, type=click.Path(file_okay=False),
              callback=writable_dir)
@click.option("--recompute", is_flag=True, help="Evaluate every cell again even where its result exists "
              "(training only what has no run folder here): how a fresh clone reproduces the committed tables.")
@click.option("--force", is_flag=True, help="Replace a record with one from a shorter run, or a table with one "
              "with fewer filled cells (refused otherwise).")
@click.option("--no-train", is_flag=True, help="Train nothing: evaluate only the cells whose run already holds "
              "the budget's epochs (e.g. long runs made by `train`); the others stay missing.")
@click.option("--jobs", type=click.IntRange(min=1), help="Cells run at once, each in its own process with its "
              "log under RUNS_ROOT/reproduce/BUDGET/logs/ (default: one per visible GPU where the cells train on "
              "GPUs, each worker on its own GPU; else this machine's cores; 1 runs them one after another in this "
              "process).")
@click.option("--threads", type=click.IntRange(min=1), help="torch threads per cell (default: cores // jobs).")
@click.option("--launcher", type=click.Choice(["slurm", "local"]), is_eager=True, help="Run each cell as a submitit job: a "
              "SLURM job array, or submitit's local executor on this machine (at most --jobs at once).")
@click.option("--partition", help="SLURM partition (--launcher slurm).")
@click.option("--timeout", "timeout_min", type=click.IntRange(min=1), help="Minutes per job before it is "
              "requeued and resumed (--launcher; default 240).")
@click.option("--slurm-setting", "slurm_settings", multiple=True, metavar="KEY=VALUE", help="Any submitit "
              "SLURM parameter, e.g. account=abc, gpus_per_node=1, mem_gb=8 (repeatable).")
@evaluation_options
@TRACKER_OPTION
@user_errors
def reproduce(table, datasets, method_names, seeds, budget, runs_root, results_dir, recompute, force, no_train, jobs, threads,
              launcher, partition, timeout_min, slurm_settings, data_root, cache_dir, fid_weights, device, tracker):
    """Train and evaluate every missing cell of a paper table, then render results/tableN.md (budget
    comparable) or results/tableN-BUDGET.md."""
    from segma_bench.datasets import resolve_cache_dir
    from segma_bench.reporting.launch import CellsFailedError, default_jobs
    from segma_bench.reporting.paper_reference import DATASETS
    from segma_bench.reporting.reproduce import reproduce as run_reproduce
    from segma_bench.training import pick_device
    datasets = DATASETS if "all" in datasets else datasets
    if not launcher and (partition or timeout_min or slurm_settings):
        raise click.UsageError("--partition, --timeout and --slurm-setting apply to submitit jobs only: add "
                               "--launcher slurm (or local)")
    jobs = jobs or default_jobs(device, launcher)
    if jobs == 1 and not launcher:  # the cells train in this process
        from segma_bench.training.denormals import flush_for_process
        if threads:
            import torch
            torch.set_num_threads(threads)
        flush_for_process(pick_device(device))
    from segma_bench.reporting.options import ReproduceOptions
    options = ReproduceOptions(  # fid_device None: decided where each cell runs, with its training device
        data_root=data_root, cache_dir=resolve_cache_dir(cache_dir), fid_weights=fid_weights, device=device,
        runs_root=runs_root, results_dir=results_dir, recompute=recompute, force=force, no_train=no_train, jobs=jobs,
        threads=threads, launcher=launcher, launcher_settings={"partition": partition, "timeout_min": timeout_min,
                                              "slurm": parse_settings(slurm_settings)}, tracker=tracker)
    command = invocation()
    try:
        path, text = run_reproduce(table, datasets, method_names, seeds, budget, options, command, log=click.echo)
    except CellsFailedError as error:
        raise click.ClickException(str(error)) from error
    click.echo(text)
    click.echo(f"written to {path}")


@cli.command()
@click.option("--table", "table", required=True, type=int, help="1, 2 or 3.")
@click.option("--budget", default="comparable", show_default=True, help="Whose records to render.")
@click.option("--dataset", "datasets", multiple=True, help="Repeatable; the table's dataset columns "
              "(default: those with records at this budget).")
@click.option("--results-dir", default="results", show_default=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Replace the table even if it had more filled cells.")
@user_errors
def table(table, budget, datasets, results_dir, force):
    """Render results/tableN.md (budget comparable) or results/tableN-BUDGET.md from the committed records
    in results/runs/BUDGET/ (and, for Table II's footnote, the long-run statistics results/segma_mnist_501.json),
    without training or evaluating. With no records it writes nothing and fails."""
    from segma_bench.reporting.budgets import get_budget
    from segma_bench.reporting.paper_reference import PAPER_TABLES
    from segma_bench.reporting.reproduce import write_table
    if table not in PAPER_TABLES:
        raise UnknownNameError(f"unknown table {table}; tables: {', '.join(map(str, PAPER_TABLES))}")
    get_budget(budget)
    path, text = write_table(table, budget, results_dir, list(datasets), force)
    click.echo(text)
    click.echo(f"written to {path}")


def train_with_tracker(spec, run_dir, tracker_name, train_run):
    """train_run(spec, run_dir) with every pass's record also sent to the tracker (training/trackers.py)."""
    if not tracker_name:
        return train_run(spec, run_dir)
    from segma_bench.training.trackers import make_tracker
    tracker = make_tracker(tracker_name, run_dir)
    try:
        return train_run(spec, run_dir, on_epoch=tracker.log_epoch)
    finally:
        tracker.close()


def log_final_metrics(tracker_name, run_dir, metrics):
    """`evaluate --tracker`: the run's final metrics, at its last pass as the step."""
    if not tracker_name:
        return
    from segma_bench.training.run_folder import RunFolder
    from segma_bench.training.trackers import make_tracker
    metrics_file = RunFolder(run_dir).metrics
    step = json.loads(metrics_file.read_text()).get("epochs_completed", 0) if metrics_file.is_file() else 0
    tracker = make_tracker(tracker_name, run_dir)
    try:
        tracker.log_final(metrics, step)
    finally:
        tracker.close()


def check_num_real(ctx, param, value):
    """--num-real: 0 (the default) or at least 2 images, refused before any data is loaded."""
    if value == 1:
        raise click.BadParameter("a set of 1 image has no spread; give at least 2 (or 0: the default)", param=param)
    return value


def image_set_command(kind):
    """`fid`, `kid` or `prc`: score two image sets with evaluate's extractor, cache and protocol."""
    metric = {"fid": "FID", "kid": "KID (unbiased, polynomial kernel, 100 subsets of 1,000; a set of fewer images is "
                                   "used whole, with a warning that the KID is not comparable; at least 2 per set)",
              "prc": "Precision and recall (k-NN manifolds, k = 3, Kynkäänniemi et al. 2019) of FIRST (the "
                     "generated images) against SECOND (the real ones)"}[kind]

    @click.argument("first")
    @click.argument("second")
    @click.option("--num-real", default=0, callback=check_num_real, type=click.IntRange(min=0),
                  help="Images drawn from a DATASET:SPLIT set, at least 2 (default: as many as the other set holds; "
                       "10,000 when both are splits).")
    @evaluation_options
    @user_errors
    def command(first, second, num_real, data_root, cache_dir, fid_weights, device):
        from segma_bench.datasets import resolve_cache_dir
        from segma_bench.evaluation import compare
        from segma_bench.training import pick_device
        extractor = compare.build_extractor(fid_weights, str(pick_device(device)))
        result = compare.compare_image_sets(first, second, {kind}, extractor, data_root,
                                            resolve_cache_dir(cache_dir), num_real)
        click.echo(json.dumps(result, indent=2, default=str, ensure_ascii=False))
        if result.get("warning"):
            click.echo(f"warning: {result['warning']}", err=True)

    command.__doc__ = (f"{metric} between two image sets FIRST and SECOND: each a folder of PNG/JPG images, an "
                       f".npy/.npz array, or DATASET:SPLIT.\n\n"
                       f"Example: python cli.py {kind} samples/ mnist:train --data-root ../shared/data "
                       f"--fid-weights ../shared/weights/pt_inception-2015-12-05.pth")
    return cli.command(kind)(command)


image_set_command("fid")
image_set_command("kid")
image_set_command("prc")


@cli.command()
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--metric", "metric_names", multiple=True, default=("test_error", "sample_fid", "interpolation_fid"),
              show_default=True)
@click.option("--fid-samples", default=10000, show_default=True, type=click.IntRange(min=2),
              help="Generated (and real reference) images per FID; at least 2.")
@click.option("--seed", default=0, show_default=True, type=SEED)
@evaluation_options
@TRACKER_OPTION
@user_errors
def evaluate(run_dir, metric_names, fid_samples, seed, data_root, cache_dir, fid_weights, device, tracker):
    """Evaluate one run folder with the shared harness and print its metrics and protocol as JSON."""
    from segma_bench.datasets import load_dataset, resolve_cache_dir
    from segma_bench.evaluation.harness import evaluate as run_evaluate
    from segma_bench.evaluation.inception import FeatureExtractor
    from segma_bench.training import load_trained, pick_device, read_run_config
    saved = read_run_config(run_dir)["run"]
    data = load_dataset(saved["dataset"], data_root, cache_dir)
    _, data, model = load_trained(run_dir, data=data, device=device)
    extractor = None
    if set(metric_names) - {"test_error"}:  # every other metric is computed from Inception features
        extractor = FeatureExtractor(weights_path=fid_weights, device=str(pick_device(device)))
    metrics, protocol = run_evaluate(model, data, set(metric_names), fid_samples, extractor,
                                     resolve_cache_dir(cache_dir), seed)
    log_final_metrics(tracker, run_dir, metrics)
    click.echo(json.dumps({"run": str(run_dir), "metrics": metrics, "protocol": protocol}, indent=2, default=str))


@cli.command()
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--seed", default=0, show_default=True, type=SEED,
              help="Seeds the classifier's own draws (e.g. ADGM's 100 draws of a), so the error can differ "
                   "from the record's last one by their Monte Carlo spread.")
@data_device_options
@user_errors
def confusion(run_dir, seed, data_root, cache_dir, device):
    """Print a run's test confusion matrix as markdown: which classes its test error comes from."""
    import torch

    from segma_bench.evaluation.confusion import confusion_report
    from segma_bench.training import load_trained
    _, data, model = load_trained(run_dir, device=device, data_root=data_root, cache_dir=cache_dir)
    torch.manual_seed(seed)
    click.echo(f"{run_dir} (seed {seed}, {invocation()})\n\n{confusion_report(model, data)}")


@cli.command()
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), callback=writable_file,
              help="Markdown file; its .json twin gets a copy of the run's metrics.json.")
@click.option("--force", is_flag=True, help="Replace an existing report (and its .json twin) at --out.")
@click.option("--up-to-pass", type=click.IntRange(min=1), default=None,
              help="The record as it stood after this pass (a run that has trained on since).")
@user_errors
def report(run_dir, out, force, up_to_pass):
    """Write a run's per-epoch training record (test error, loss, time) as markdown and JSON."""
    from segma_bench.reporting.run_report import write_run_report
    if Path(out).with_suffix(".json") == Path(out):  # the markdown would be overwritten by its own JSON twin
        raise click.BadParameter(f"{out}: the report's markdown and its .json twin would be the same file; name "
                                 "the markdown with another suffix, e.g. .md", param_hint="--out")
    refuse_overwrite([Path(out), Path(out).with_suffix(".json")], force, "a training record")
    path, text = write_run_report(run_dir, out, invocation(), up_to_pass)
    click.echo(text)
    click.echo(f"written to {path} and {path.with_suffix('.json')}")


from segma_bench.cli.curves import COMMANDS as CURVE_COMMANDS  # noqa: E402
from segma_bench.cli.figures import figures_command  # noqa: E402
from segma_bench.cli.help_text import add_examples  # noqa: E402
from segma_bench.cli.tools import COMMANDS as TOOL_COMMANDS  # noqa: E402

for _command in [figures_command, *TOOL_COMMANDS, *CURVE_COMMANDS]:
    cli.add_command(_command)
add_examples(cli)


def main():
    """Console script `segma-bench` and `python cli.py`."""
    cli()


if __name__ == "__main__":
    main()
