"""Markdown tables laid out as the paper's Tables I-III: ours (mean ± std over seeds) beside the paper's,
with KID beside every FID.

The text depends only on the records it is rendered from (no clock, no command line, stable order), so
the same records always give the same bytes (tests/test_table_files.py)."""
import math

from tabulate import tabulate

from .paper_reference import DATASETS, DISPLAY_NAMES, PAPER_TABLES
from .results import KID_OF_FID, aggregate, load_records

DATASET_TITLES = {"mnist": "MNIST", "svhn": "SVHN", "celeba": "CelebA"}
KID_SCALE = 1000  # KIDs are shown × 10³ (MNIST values are around 0.001-0.1)
PAPER_FID_SAMPLES = 10000


def format_value(mean, std, n, scale=1.0, with_n=True):
    text = f"{mean * scale:.2f}"
    if n > 1 and not math.isnan(std):
        text += f" ± {std * scale:.2f}"
    return f"{text} (n={n})" if with_n else text


def cell_stats(stats, metric, method, dataset):
    cell = stats[(stats.metric == metric) & (stats.method == method) & (stats.dataset == dataset)]
    return None if cell.empty else cell.iloc[0]


def table_rows(table, stats, methods_available, extra_methods, datasets):
    spec = PAPER_TABLES[table]
    metric, percent = spec["metric"], spec["metric"] == "test_error"
    kid_metric = KID_OF_FID.get(metric)
    rows = [(variant, method, values) for (variant, method), values in spec["rows"]]
    rows += [(variant, method, {}) for method, variant in extra_methods.items()]
    out = []
    for variant, method, paper in rows:
        row = [variant, DISPLAY_NAMES.get(method, method)]
        for dataset in datasets:
            cell = cell_stats(stats, metric, method, dataset)
            ours_value = None
            if cell is not None and cell["n"] == 0:
                ours = "n/a"  # evaluated, but the method cannot produce this metric
            elif cell is not None:
                ours = format_value(cell["mean"], cell["std"], int(cell["n"]), 100.0 if percent else 1.0)
                ours_value = cell["mean"] * (100.0 if percent else 1.0)
            else:
                ours = "missing" if method in methods_available else "not implemented"
            reference = paper.get(dataset)
            row += [ours, "—" if reference is None else f"{reference:.2f}",
                    "" if ours_value is None or reference is None else f"{ours_value - reference:+.2f}"]
            if kid_metric:
                kid = cell_stats(stats, kid_metric, method, dataset)
                row.append("" if kid is None or kid["n"] == 0 else
                           format_value(kid["mean"], kid["std"], int(kid["n"]), KID_SCALE, with_n=False))
        out.append(row)
    return out


def paper_length(method, dataset):
    """The paper's training length for a method on a dataset (epochs), None where unknown."""
    import importlib

    import methods
    try:
        own = methods.get_method(method).paper_epochs(dataset)
        protocol = importlib.import_module(f"datasets.{dataset}").PROTOCOL
    except (methods.UnknownNameError, ImportError, AttributeError):
        return None
    return own or protocol.paper_epochs


def training_length_note(records, dataset):
    """Per method: our epochs (the runs' own, from the records) against the paper's."""
    parts = []
    for method in sorted({r["method"] for r in records}, key=lambda m: (DISPLAY_NAMES.get(m, m))):
        mine = sorted({r["training"]["epochs"] for r in records if r["method"] == method})
        reused = sorted({r["run_dir"] for r in records if r["method"] == method and r.get("run_reused")})
        paper = paper_length(method, dataset)
        budget = sorted({r["budget_epochs"] for r in records if r["method"] == method and r.get("budget_epochs")})
        text = f"{DISPLAY_NAMES.get(method, method)} {'/'.join(map(str, mine))}"
        notes = ([f"budget: at least {'/'.join(map(str, budget))}"] if budget and budget != mine else []) \
            + ([f"paper: {paper}"] if paper else [])
        text += f" ({'; '.join(notes)})" if notes else ""
        if reused:
            text += f" [runs reused: {', '.join(f'`{r}`' for r in reused)}]"
        parts.append(text)
    return "training length in epochs, ours (the paper's): " + "; ".join(parts)


def protocol_notes(table, frame, budget, datasets):
    """Footnotes gathered from the records: budget, epochs against the paper's, sample counts, floors, seeds."""


def extra_rows(frame, paper_methods):
    """{method: table variant} of the methods beyond the paper's rows; the variant is what the method's
    class declared (`table_variant`) when its cells were made, else "plugin"."""
    extra = {}
    for record in frame["record"]:
        if record["method"] not in paper_methods:
            extra[record["method"]] = record.get("table_variant", "plugin")
    return dict(sorted(extra.items()))


def plugin_notes(frame):
    """Which plugin file (and its sha256) made the plugin rows: what the command needs to run again."""
    sources = sorted({(r["method"], r["plugin"]["path"], r["plugin"]["sha256"]) for r in frame["record"]
                      if r.get("plugin")})
    return ["", "Plugins: " + "; ".join(f"`{method}` from `{path}` (sha256 {sha[:12]}…)"
                                        for method, path, sha in sources) + "."] if sources else []


def protocol_notes(table, frame, budget, datasets):
    """Footnotes gathered from the records: budget, epochs against the paper's, sample counts, floors, seeds."""
    notes = []
    metric = PAPER_TABLES[table]["metric"]
    for dataset in datasets:
        records = [r for r in frame[(frame.dataset == dataset) & (frame.metric == metric)]["record"]]
        if not records:
            continue
        seeds = sorted({r["seed"] for r in records})
        line = f"- {DATASET_TITLES.get(dataset, dataset)}: budget `{budget}`, seeds {seeds}; " \
               f"{training_length_note(records, dataset)}"
        settings = sorted({f"{r['method']}: {k}={v}" for r in records
                           for k, v in r.get("config", {}).get("run", {}).items()
                           if k in ("recipe", "labeled_subset") and v}
                          | {f"{r['method']}: {k}={v}" for r in records
                             for k, v in r.get("config", {}).get("run", {}).get("overrides", {}).items()})
        if settings:
            line += f" (settings of the budget: {', '.join(settings)})"
        fid = records[0]["protocol"].get("fid")
        if metric != "test_error" and fid:
            line += (f"; FID of {fid['generated_images']} generated images against {fid['reference']}; "
                     f"floor (real against real, same count: {fid['floor']}) = {fid['floor_fid']:.2f}; "
                     f"Inception weights sha256 {fid['weights_sha256'][:12]}…, pytorch-fid {fid['pytorch_fid_version']}")
            kid = records[0]["protocol"].get("kid")
            if kid:
                line += (f"; KID × 10³: {kid['estimator']}, {kid['subsets']} subsets of {kid['subset_size']}, "
                         f"kernel {kid['kernel']}; its floor = {kid['floor_kid'] * KID_SCALE:.2f}")
            if fid["generated_images"] < PAPER_FID_SAMPLES:
                line += ". **FIDs not comparable with the paper's**, which used 10,000 images: FID is biased " \
                        "upward at small sample counts (compare with the floor); KID is unbiased"
        if metric == "test_error":
            line += f"; {records[0]['protocol']['test_error']}"
        notes.append(line + ".")
    return notes


def compute_note(frame, table):
    """The compute the cells of this table took, summed from their records (not this command's wall time)."""
    metric = PAPER_TABLES[table]["metric"]
    records = {(r["dataset"], r["method"], r["seed"]): r for r in frame[frame.metric == metric]["record"]}
    train = sum(r["training"]["train_seconds"] for r in records.values())
    evaluation = sum(r.get("timing", {}).get(f"evaluate_{metric}_seconds", 0.0) for r in records.values())
    return f"Recorded compute for these cells: training {train / 60:.1f} min, evaluation {evaluation / 60:.1f} min."


def datasets_with_records(frame, table):
    metric = PAPER_TABLES[table]["metric"]
    present = set(frame[frame.metric == metric].dataset) if not frame.empty else set()
    return [d for d in DATASETS if d in present] + sorted(present - set(DATASETS))


def render(table, results_dir, budget, methods_available, datasets=None):
    """The table's markdown. datasets: its columns; default, those with records for this table."""
    frame = load_records(results_dir, budget)
    metric = PAPER_TABLES[table]["metric"]
    datasets = list(datasets or datasets_with_records(frame, table))
    if not frame.empty:
        frame = frame[frame.dataset.isin(datasets)]
    stats = aggregate(frame)
    paper_methods = {m for (_, m), _ in PAPER_TABLES[table]["rows"]}
    extra = extra_rows(frame[frame.metric == metric], paper_methods) if not frame.empty else {}
    kid = metric in KID_OF_FID
    headers = ["Variant", "Model"]
    for dataset in datasets:
        name = DATASET_TITLES.get(dataset, dataset)
        headers += [f"{name} {'FID ' if kid else ''}ours", f"{name} paper", "Δ"]
        headers += [f"{name} KID × 10³ ours"] if kid else []
    body = tabulate(table_rows(table, stats, methods_available, extra, datasets), headers=headers,
                    tablefmt="github", disable_numparse=True)  # keep our formatting (12.70, +0.30)
    lines = [f"# {PAPER_TABLES[table]['title']} — budget `{budget}`", "", body, "",
             "Ours: mean ± sample standard deviation over seeds (n = number of seeds); Δ = ours − paper. "
             "Paper: the SeGMA paper's published value (reporting/paper_reference.py); the paper reports no KID. "
             "`missing`: implemented but not run at this budget; `not implemented`: no such method in the suite; "
             "`n/a`: the method cannot give this metric (no classifier).",
             "", "Protocol:", *protocol_notes(table, frame, budget, datasets)]
    if not frame.empty:
        lines += ["", compute_note(frame, table)]
        lines += plugin_notes(frame[frame.metric == metric])
    dataset_options = " ".join(f"--dataset {d}" for d in datasets)
    plugins = sorted({r["plugin"]["path"] for r in frame["record"] if r.get("plugin")}) if not frame.empty else []
    prefix = f"SEGMA_PLUGINS={':'.join(plugins)} " if plugins else ""  # the command must load them to re-run
    lines += ["", f"Made by `{prefix}python cli.py reproduce --table {table} --budget {budget} {dataset_options}` "
                  f"(it trains and evaluates only what is missing); rendered again from the records in "
                  f"`results/runs/{budget}/` by `{prefix}python cli.py table --table {table} --budget {budget}`."]
    return "\n".join(lines) + "\n"
