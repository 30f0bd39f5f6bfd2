"""`python cli.py curves`: test error (and the loss terms) against pass for runs and records, as a PNG."""
import re
import shlex

import click

from segma_bench.cli.checks import writable_file
from segma_bench.cli.errors import user_errors


def parse_size(ctx, param, value):
    match = re.fullmatch(r"(\d+)x(\d+)", value or "")
    if not match or not all(100 <= int(n) <= 10000 for n in match.groups()):
        raise click.BadParameter(f"expected WIDTHxHEIGHT in pixels, each 100-10000, got {value!r}", param=param)
    return int(match.group(1)), int(match.group(2))


def command_line(sources, out, labels, paper, losses, title, size, dpi, log_x):
    """The command as a user would type it, for the caption (options in a fixed order)."""
    parts = ["python", "cli.py", "curves", *sources, "--out", out]
    for label in labels:
        parts += ["--label", label]
    parts += ["--paper", f"{paper:g}"] if paper is not None else []
    parts += ["--losses"] if losses else []
    parts += ["--title", title] if title else []
    parts += ["--size", f"{size[0]}x{size[1]}"] if tuple(size) != (900, 500) else []
    parts += ["--dpi", str(dpi)] if dpi != 100 else []
    parts += ["--log-x"] if log_x else []
    return shlex.join(parts)


@click.command("curves")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option("--out", required=True, type=click.Path(dir_okay=False), callback=writable_file,
              help="PNG to write; a caption with the sources and this command goes to OUT with .txt.")
@click.option("--label", "labels", multiple=True, help="Legend label of each SOURCE, in order (repeatable; "
              "default: the record's file name, or a run folder's method/seed).")
@click.option("--paper", type=click.FloatRange(0, 100), help="The paper's test error in % (a dashed line). "
              "Default: Table II's value for each method and dataset among the sources.")
@click.option("--losses", is_flag=True, help="A second panel with the loss terms of each pass (sources "
              "with a `history`; table cell records hold no loss terms).")
@click.option("--title", help="Plot title (default: 'Test error against pass').")
@click.option("--size", default="900x500", show_default=True, callback=parse_size, help="WIDTHxHEIGHT in pixels.")
@click.option("--dpi", default=100, show_default=True, type=click.IntRange(50, 600))
@click.option("--log-x", is_flag=True, help="Logarithmic pass axis (for runs of very different lengths).")
@user_errors
def curves(sources, out, labels, paper, losses, title, size, dpi, log_x):
    """Plot test error against pass for SOURCE... (run folders, metrics.json or `report` JSON with a
    `history`, or table cell records results/runs/BUDGET/*.json) with the paper's value as a line.

    Example: python cli.py curves results/segma_mnist_long_run.json results/segma_mnist_long_run_seed1.json
    --out results/figures/curves/segma.png"""
    from segma_bench.core.storage import atomic_write_text
    from segma_bench.reporting.curves import caption, load_curve, plot_curves
    if len(labels) > len(sources):
        raise click.BadParameter(f"{len(labels)} labels for {len(sources)} sources", param_hint="--label")
    loaded = [load_curve(source, labels[i] if i < len(labels) else None) for i, source in enumerate(sources)]
    path = plot_curves(loaded, out, paper=paper, losses=losses, title=title, size=size, dpi=dpi, log_x=log_x)
    command = command_line(sources, out, labels, paper, losses, title, size, dpi, log_x)
    atomic_write_text(path.with_suffix(".txt"), caption(loaded, command))
    click.echo(f"wrote {path} ({size[0]}x{size[1]}) and its caption {path.with_suffix('.txt')}")


COMMANDS = [curves]
