"""`python cli.py figures`: the paper's figures from a run folder, or the comparison figures across runs."""
import shlex
from pathlib import Path

import click

from segma_bench.cli.checks import SEED, data_device_options, writable_dir
from segma_bench.cli.errors import user_errors
from segma_bench.figures.make import KINDS, TABLE_KINDS


def command_line(params):
    """The command as a user would type it, for the captions (options in a fixed order)."""
    parts = ["python", "cli.py", "figures"]
    for name, value in params:
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    return shlex.join(parts)


@click.command("figures")
@click.option("--run", "run_dir", type=click.Path(file_okay=False), help="A run folder (config.json + "
              "checkpoint.pt); a run still training uses its latest checkpoint.")
@click.option("--kind", type=click.Choice([*KINDS, "all"]), default="all", show_default=True,
              help="Which figure; 'all' skips the kinds the method does not support, with a note.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seeds every random choice (test "
              "images, pairs, target classes, sampling noise): the same seed gives identical PNGs.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), callback=writable_dir, help="Output folder. Default RUN/figures, "
              "or RUNS_ROOT/figures-DATASET with --table-figures.")
@data_device_options
@click.option("--table-figures", is_flag=True, help="Side-by-side comparison figures (M1+M2, ADGM, SeGMA: "
              "samples, interpolation, style transfer) from the runs under --runs-root.")
@click.option("--dataset", help="With --table-figures: the dataset whose runs are compared.")
@click.option("--runs-root", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="With --table-figures: where to look for run folders (by their config.json).")
@user_errors
def figures_command(run_dir, kind, seed, out_dir, data_root, cache_dir, device, table_figures, dataset, runs_root):
    """Figures of Section VI (Figs. 3-8) and the learned class structure (Section V) as PNG grids with
    captions (.txt): samples per class, interpolation, style transfer (Eq. 10), class intensity (Eq. 11),
    distances between the means."""
    from segma_bench.figures import make

    if table_figures:
        if run_dir:
            raise click.UsageError("use either --run or --table-figures, not both")
        if not dataset:
            raise click.UsageError("--table-figures needs --dataset (e.g. mnist)")
        if kind not in (*TABLE_KINDS, "all"):
            raise click.UsageError(f"the comparison figures are {', '.join(TABLE_KINDS)} (or all)")
        out = Path(out_dir or Path(runs_root) / f"figures-{dataset}")
        command = command_line([("table_figures", True), ("dataset", dataset), ("runs_root", runs_root),
                                ("kind", kind), ("seed", seed), ("out", out_dir), ("data_root", data_root)])
        written = make.make_table_figures(runs_root, dataset, out, seed=seed, data_root=data_root,
                                          cache_dir=cache_dir, device=device,
                                          kinds=TABLE_KINDS if kind == "all" else (kind,), command=command,
                                          echo=click.echo)
    else:
        if not run_dir:
            raise click.UsageError("give --run RUN_DIR (or --table-figures --dataset NAME)")
        from segma_bench.datasets import load_dataset
        from segma_bench.training import load_trained, read_run_config

        out = Path(out_dir or Path(run_dir) / "figures")
        writable_dir(None, None, out)  # before the data and the model are loaded
        dataset_name = read_run_config(run_dir)["run"]["dataset"]
        data = load_dataset(dataset_name, data_root, cache_dir)
        _, data, method = load_trained(run_dir, data=data, device=device)
        command = command_line([("run", run_dir), ("kind", kind), ("seed", seed), ("out", out_dir),
                                ("data_root", data_root)])
        context = make.FigureContext(run=make.describe_run(run_dir), seed=seed, command=command)
        written = make.make_figures(method, data, seed, out, KINDS if kind == "all" else (kind,), context,
                                    echo=click.echo)
    pngs = [p for p in written if p.suffix == ".png"]
    click.echo(f"wrote {len(pngs)} PNG(s) with captions to {out}")
