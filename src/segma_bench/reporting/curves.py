"""Training curves: test error (and optionally the loss terms) against pass, for one or more runs, as a PNG.

    python cli.py curves results/segma_mnist_long_run.json runs/mnist/segma/seed0 --out curve.png

A source is a run folder (its metrics.json), a run's metrics.json or `report`'s JSON (`history`: one record
per pass, with the test error and the loss terms), or a table cell's record (results/runs/**.json:
`training.test_error_by_epoch`, no loss terms). The paper's test error (Table II) is a dashed horizontal line:
--paper VALUE, else looked up by the runs' method and dataset.

Drawn with matplotlib (Agg, no display needed): axes, ticks, a legend. The PIL grids of figures/ show images;
a plot with scales and a legend is matplotlib's job."""
import math
from dataclasses import dataclass, field
from pathlib import Path

from segma_bench.core.errors import BadValueError
from segma_bench.core.json_files import JSONFileError, read_json_file
from segma_bench.core.storage import atomic_write_file
from segma_bench.training.run_folder import METRICS, RunFolder

from .error_curve import per_pass_test_error
from .paper_reference import DISPLAY_NAMES, paper_test_error

# What a history record holds besides the loss terms.
NOT_LOSS_TERMS = {"epoch", "seconds", "threads", "denormals_flushed", "test_error"}
DEFAULT_SIZE = (900, 500)
DEFAULT_DPI = 100


@dataclass
class Curve:
    label: str
    source: str
    method: str = None
    dataset: str = None
    epochs: list = field(default_factory=list)
    test_error: list = field(default_factory=list)    # percent, None for passes without one
    losses: dict = field(default_factory=dict)        # term -> per-pass mean

    def has_test_error(self):
        return any(value is not None for value in self.test_error)


# ---------------------------------------------------------------- reading runs and records

def load_curve(source, label=None):
    """The curve of a run folder, metrics.json, `report` JSON or table cell record; refuses (one line) a source
    without any test error."""
    path = Path(source)
    if path.is_dir():
        path = RunFolder(path).metrics
        if not path.is_file():
            raise BadValueError(f"{source}: a folder without {METRICS} (not a run folder)")
    if not path.is_file():
        raise BadValueError(f"{source}: no such file or folder")
    try:
        data = read_json_file(path)  # the suite's strict reader: invalid JSON or a non-finite number is refused
    except JSONFileError as error:
        raise BadValueError(f"{source}: not a JSON file with finite numbers ({error})") from None
    if not isinstance(data, dict):
        raise BadValueError(f"{source}: not a run's metrics nor a table cell record")
    label = label or default_label(Path(source))
    try:
        points = per_pass_test_error(data)  # the one reader and its checks (reporting/error_curve.py)
    except BadValueError as error:
        raise BadValueError(f"{source}: {error}") from None
    curve = Curve(label=label, source=str(source), method=data.get("method"), dataset=data.get("dataset"),
                  epochs=[epoch for epoch, _ in points], test_error=[percent(error) for _, error in points],
                  losses=loss_terms(data["history"]) if "history" in data else {})
    if not curve.has_test_error():
        what = f"{DISPLAY_NAMES.get(curve.method, curve.method)} has no classifier" if curve.method else "none recorded"
        raise BadValueError(f"{source}: no test error in any of its {len(curve.epochs)} passes ({what}); nothing to plot")
    return curve


def default_label(path):
    """A record's file name without .json; a run folder's last three parts (method/seed under the dataset)."""
    if path.is_dir():
        return "/".join(path.resolve().parts[-3:])
    return path.parent.name if path.name == METRICS else path.stem


def percent(value):
    return None if value is None else 100.0 * value


def loss_terms(history):
    """term -> per-pass value, for every numeric field of a `history` that is not the pass, its time or its error."""
    terms = sorted({key for record in history for key, value in record.items()
                    if key not in NOT_LOSS_TERMS and isinstance(value, (int, float)) and not isinstance(value, bool)})
    return {term: [record.get(term) for record in history] for term in terms}


def paper_lines(curves, paper=None):
    """[(value %, label, method or None)] of the horizontal lines: --paper, else Table II's value for each of
    the curves' (method, dataset) pairs that the paper has."""
    if paper is not None:
        return [(paper, f"paper: {paper:.2f}%", None)]
    lines = []
    for method, dataset in sorted({(c.method, c.dataset) for c in curves if c.method}, key=str):
        value = paper_test_error(method, dataset)
        if value is not None:
            lines.append((value, f"paper: {DISPLAY_NAMES.get(method, method)} {value:.2f}%", method))
    return lines


# ---------------------------------------------------------------- drawing

def plot_curves(curves, out, paper=None, losses=False, title=None, size=DEFAULT_SIZE, dpi=DEFAULT_DPI, log_x=False):
    """Write the PNG (size in pixels) and return its path. losses: a second panel with each loss term."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise BadValueError("no curves to plot")
    width, height = size
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 1, sharex=True, height_ratios=[3, 2]) if losses else [figure.subplots()]
    colours = [f"C{i % 10}" for i in range(len(curves))]
    error_axes = axes[0]
    for curve, colour in zip(curves, colours):
        points = [(e, v) for e, v in zip(curve.epochs, curve.test_error) if v is not None]
        last_epoch, last = points[-1]
        error_axes.plot([e for e, _ in points], [v for _, v in points], color=colour, linewidth=1.2,
                        label=f"{curve.label} ({last:.2f}% at {last_epoch})")
    lines = paper_lines(curves, paper)
    for i, (value, label, method) in enumerate(lines):
        # one method: black; several: each line in the colour of that method's first curve
        colour = next((c for curve, c in zip(curves, colours) if curve.method == method), "black") \
            if len(lines) > 1 else "black"
        error_axes.axhline(value, color=colour, linestyle=("--", ":", "-.")[i % 3], linewidth=1.2, label=label)
    error_axes.set_ylabel("test error (%)")
    error_axes.grid(True, alpha=0.3)
    error_axes.legend(fontsize="small", loc="upper right")
    error_axes.set_title(title or "Test error against pass")
    if losses:
        draw_losses(axes[1], curves, colours)
    axes[-1].set_xlabel("pass (epoch)")
    if log_x:
        axes[-1].set_xscale("log")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # no version stamp: same inputs, same bytes; written through a temporary file like every output
    atomic_write_file(out, lambda tmp: figure.savefig(tmp, dpi=dpi, metadata={"Software": None}, format="png"))
    return out


def draw_losses(axes, curves, colours):
    """Each curve's loss terms, one colour per curve and one line style per term, on a symmetric log scale
    (terms differ by orders of magnitude and some, e.g. log_cw, are negative)."""
    styles = ["-", "--", ":", "-."]
    terms = sorted({term for curve in curves for term in curve.losses})
    if not terms:
        axes.text(0.5, 0.5, "no loss terms in these records", ha="center", va="center", transform=axes.transAxes)
    for curve, colour in zip(curves, colours):
        for term, values in curve.losses.items():
            points = [(e, v) for e, v in zip(curve.epochs, values) if v is not None and math.isfinite(v)]
            axes.plot([e for e, _ in points], [v for _, v in points], color=colour,
                      linestyle=styles[terms.index(term) % len(styles)], linewidth=1,
                      label=f"{curve.label}: {term}" if len(curves) > 1 else term)
    axes.set_yscale("symlog")
    axes.set_ylabel("loss terms (per-pass mean)")
    axes.grid(True, alpha=0.3)
    if terms:
        axes.legend(fontsize="x-small", loc="upper right", ncol=2)


def caption(curves, command):
    """The text beside the PNG (OUT.txt): what is drawn, from which files, and the command that drew it."""
    sources = "; ".join(f"{c.label}: `{c.source}`" for c in curves)
    return (f"Test error (%) on the full test set after every pass, for {sources}. Horizontal lines: the "
            f"paper's test error (Table II). Made by `{command}`.\n")
