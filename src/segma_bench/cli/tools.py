"""Commands over committed records and data that train nothing: status, extrapolate, ablation, label-subsets."""
import math
import shlex
from pathlib import Path

import click

from segma_bench.cli.checks import data_options
from segma_bench.cli.errors import user_errors
from segma_bench.core.errors import BadValueError


@click.command("status")
@click.argument("results_dir", default="results", type=click.Path(file_okay=False))
@click.option("--readme", default="README.md", show_default=True, type=click.Path(dir_okay=False),
              help="Also refresh this file's headline table (the block between its headline markers), if it has one.")
@user_errors
def status(results_dir, readme):
    """Write RESULTS_DIR/README.md (where the suite stands against the paper, made from the files there)
    and refresh the headline table of the project README."""
    from segma_bench.core.storage import atomic_write_text
    from segma_bench.reporting.status import render_status, update_readme_headline
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise click.BadParameter(f"{results_dir} is not a folder of results", param_hint="RESULTS_DIR")
    path = results_dir / "README.md"
    atomic_write_text(path, render_status(results_dir))
    click.echo(f"written to {path}")
    if Path(readme).is_file():
        text = update_readme_headline(readme, results_dir)
        if text is not None and text != Path(readme).read_text():
            atomic_write_text(readme, text)
            click.echo(f"headline table refreshed in {readme}")


@click.command("extrapolate")
@click.argument("record", type=click.Path(dir_okay=False, exists=True))
@click.option("--first", default=20, show_default=True, type=click.IntRange(min=1), help="First epoch fitted.")
@click.option("--last", type=click.IntRange(min=1), help="Last epoch fitted (default: the record's last).")
@click.option("--at", "at", multiple=True, type=click.IntRange(min=1), help="Epoch to predict (repeatable; "
              "default 150, 200, 400).")
@click.option("--target", type=click.FloatRange(0, 1, min_open=True),
              help="Test error to reach, a fraction (default: the paper's Table II value for the record's method "
                   "and dataset, reporting/paper_reference.py).")
@user_errors
def extrapolate(record, first, last, at, target):
    """Fit an exponential and a power law to a record's per-epoch test error; print where each levels off
    and when it reaches a target (RECORD: `report`'s JSON or a table cell's record)."""
    from segma_bench.core.json_files import JSONFileError, read_json_file
    from segma_bench.reporting.extrapolate import describe, error_curve, fit_curves
    try:
        content = read_json_file(record)  # NaN, Infinity and 1e999 are refused here, naming the file
    except JSONFileError as error:
        raise BadValueError(str(error)) from error
    try:
        epochs, errors = error_curve(content)
        last = last if last is not None else int(epochs.max())
        fits = fit_curves(epochs, errors, first, last)
    except (BadValueError, RuntimeError) as error:  # RuntimeError: curve_fit did not converge
        raise BadValueError(f"{record}: {error}") from error
    if target is None:
        from segma_bench.reporting.long_runs import paper_error_of
        target = round(paper_error_of([("record", record)], "--target (a fraction)") / 100, 6)
    click.echo(f"{record}: fitted to epochs {first}..{last} ({len(epochs)} epochs with a test error)")
    click.echo(describe(fits, list(at) or [150, 200, 400], target))


def _ablation_row(ctx, param, values):
    rows = []
    for text in values:
        label, sep, path = text.rpartition("=")
        if not sep or not label:
            raise click.BadParameter(f"expected LABEL=RECORD.json, got {text!r}")
        if not Path(path).is_file():
            raise click.BadParameter(f"record {path} does not exist (make it with `report`)")
        rows.append((label, path))
    return rows


@click.command("ablation")
@click.argument("rows", nargs=-1, required=True, metavar="LABEL=RECORD.json...", callback=_ablation_row)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--epochs", default="10,20,40", show_default=True, help="Comma-separated epochs.")
@click.option("--title", default="Ablation", show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing table at --out.")
@user_errors
def ablation(rows, out, epochs, title, force):
    """An ablation table from training records: each run's test error at chosen epochs."""
    from segma_bench.cli.checks import refuse_overwrite
    from segma_bench.core.storage import atomic_write_text
    refuse_overwrite([Path(out)], force, "an ablation table")
    from segma_bench.reporting.ablation import render_ablation
    try:
        epoch_list = [int(e) for e in epochs.split(",")]
    except ValueError:
        raise click.BadParameter(f"must be comma-separated integers, got {epochs!r}", param_hint="--epochs")
    command = "python cli.py ablation " + shlex.join(["--out", str(out), "--epochs", epochs, "--title", title,
                                                      *(f"{label}={path}" for label, path in rows)])
    text = render_ablation(rows, epoch_list, title, command)
    atomic_write_text(out, text)
    click.echo(text, nl=False)


@click.command("label-subsets")
@click.option("--dataset", default="mnist", show_default=True)
@data_options
@click.option("--num-labeled", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--seeds", default="0-9", show_default=True, help="'0-9' or '0,3,5'.")
@click.option("--labeled", "subset", type=click.Choice(["balanced", "first"]), default="balanced",
              show_default=True, help="balanced: each seed's class-balanced draw; first: the first N training "
              "images (the same for every seed, as the SeGMA authors' code ran).")
@user_errors
def label_subsets(dataset, data_root, cache_dir, num_labeled, seeds, subset):
    """1-nearest-neighbour test error (pixels) of each seed's labeled subset: how representative it is."""
    import torch

    from segma_bench.datasets import load_dataset
    from segma_bench.datasets.splits import choose_labeled
    from segma_bench.evaluation.label_subsets import nearest_neighbour_error, parse_seeds
    try:
        seed_list = parse_seeds(seeds)
    except ValueError:
        raise click.BadParameter(f"expected '0-9' or '0,3,5', got {seeds!r}", param_hint="--seeds")
    data = load_dataset(dataset, data_root, cache_dir)
    click.echo(f"| seed | 1-NN test error of the {num_labeled} labeled {dataset} images (pixels, subset {subset}) |")
    click.echo("|---|---|")
    for seed in seed_list if subset == "balanced" else ["any"]:
        indices = torch.as_tensor(choose_labeled(data.train_labels, num_labeled, 0 if seed == "any" else seed,
                                                 subset))
        error = nearest_neighbour_error(data.train_images, data.train_labels, data.test_images,
                                        data.test_labels, indices)
        if math.isnan(error):
            raise BadValueError(f"the {dataset} test set holds no image: no error rate to compute")
        click.echo(f"| {seed} | {100 * error:.2f}% |")


@click.command("long-runs")
@click.argument("rows", nargs=-1, required=True, metavar="LABEL=RECORD_OR_RUN_DIR...")
@click.option("--paper", "paper_percent", type=click.FloatRange(0, 100), help="The test error to compare with, %% "
              "(default: the paper's Table II value for the runs' method and dataset, reporting/paper_reference.py).")
@click.option("--passes", "planned_passes", type=click.IntRange(min=1), help="Planned passes (runs short of it "
              "are marked as still training).")
@click.option("--title", default="Long runs against the paper", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Markdown file; its .json twin is "
              "written beside it.")
@click.option("--force", is_flag=True, help="Replace an existing file at --out (and its twin).")
@user_errors
def long_runs(rows, paper_percent, planned_passes, title, out, force):
    """Every statistic of a set of long runs side by side (each run's last and best pass, the mean ± std
    over runs, the best run) against the paper's value."""
    from segma_bench.cli.checks import refuse_overwrite
    from segma_bench.core.storage import atomic_write_json, atomic_write_text
    from segma_bench.reporting.long_runs import paper_error_of, read_curves, render_long_runs
    pairs = []
    for text in rows:
        label, sep, path = text.rpartition("=")
        if not sep or not label:
            raise click.BadParameter(f"expected LABEL=RECORD.json or LABEL=RUN_DIR, got {text!r}", param_hint="ROWS")
        pairs.append((label, path))
    out = Path(out)
    if out.suffix == ".json":
        raise click.BadParameter("give the markdown path; its .json twin is written beside it", param_hint="--out")
    refuse_overwrite([out, out.with_suffix(".json")], force, "a long-run statistics file")
    # the command that remakes this file: with --force, since the file it writes is then there
    command = "python cli.py long-runs " + shlex.join(
        [f"{label}={path}" for label, path in pairs]
        + (["--paper", f"{paper_percent:g}"] if paper_percent is not None else [])
        + (["--passes", str(planned_passes)] if planned_passes else [])
        + ["--title", title, "--out", str(out), "--force"])
    curves = read_curves(pairs)  # first: a missing or bad file is named before any other complaint
    paper = paper_percent if paper_percent is not None else paper_error_of(pairs)
    text, data = render_long_runs(curves, paper / 100, title, command, planned_passes)
    atomic_write_text(out, text)
    atomic_write_json(out.with_suffix(".json"), data)
    click.echo(text, nl=False)


COMMANDS = [status, extrapolate, ablation, label_subsets, long_runs]
