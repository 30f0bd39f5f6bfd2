"""Markdown tables laid out as the paper's Tables I-III: ours (mean ± std over seeds) beside the paper's."""
import math

from tabulate import tabulate

from .paper_reference import DATASETS, PAPER_TABLES
from .results import aggregate, load_records

DATASET_TITLES = {"mnist": "MNIST", "svhn": "SVHN", "celeba": "CelebA"}


def format_value(mean, std, n, percent):
    scale = 100.0 if percent else 1.0
    text = f"{mean * scale:.2f}"
    if n > 1 and not math.isnan(std):
        text += f" ± {std * scale:.2f}"
    return f"{text} (n={n})"


def table_rows(table, stats, methods_available, extra_methods):
    spec = PAPER_TABLES[table]
    metric, percent = spec["metric"], spec["metric"] == "test_error"
    rows = [(variant, method, values) for (variant, method), values in spec["rows"]]
    rows += [(variant, method, {}) for method, variant in extra_methods.items()]
    out = []
    for variant, method, paper in rows:
        row = [variant, method]
        for dataset in DATASETS:
            cell = stats[(stats.metric == metric) & (stats.method == method) & (stats.dataset == dataset)]
            if not cell.empty and cell.iloc[0]["n"] == 0:
                ours, ours_value = "n/a", None  # evaluated, but the method cannot produce this metric
            elif not cell.empty:
                c = cell.iloc[0]
                ours = format_value(c["mean"], c["std"], int(c["n"]), percent)
                ours_value = c["mean"] * (100.0 if percent else 1.0)
            else:
                ours = "missing" if method in methods_available else "not implemented"
                ours_value = None
            reference = paper.get(dataset)
            row += [ours, "—" if reference is None else f"{reference:.2f}",
                    "" if ours_value is None or reference is None else f"{ours_value - reference:+.2f}"]
        out.append(row)
    return out


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


def protocol_notes(table, frame, budget):
    """Footnotes gathered from the records: budget, epochs, FID sample counts, floor, weights, seeds."""
    notes = []
    metric = PAPER_TABLES[table]["metric"]
    for dataset in DATASETS:
        records = [r for r in frame[(frame.dataset == dataset) & (frame.metric == metric)]["record"]]
        if not records:
            continue
        epochs = sorted({r["training"]["epochs"] for r in records})
        seeds = sorted({r["seed"] for r in records})
        line = f"- {DATASET_TITLES[dataset]}: budget `{budget}`, {'/'.join(map(str, epochs))} epochs, seeds {seeds}"
        overrides = sorted({f"{r['method']}: {k}={v}" for r in records
                            for k, v in r.get("config", {}).get("run", {}).get("overrides", {}).items()})
        if overrides:
            line += f" (settings of the budget: {', '.join(overrides)})"
        fid = records[0]["protocol"].get("fid")
        if metric != "test_error" and fid:
            line += (f"; FID of {fid['generated_images']} generated images against {fid['reference']}; "
                     f"floor (real against real, same count: {fid['floor']}) = {fid['floor_fid']:.2f}; "
                     f"Inception weights sha256 {fid['weights_sha256'][:12]}…, pytorch-fid {fid['pytorch_fid_version']}")
            if fid["generated_images"] < 10000:
                line += ". **Not comparable with the paper's FIDs**, which used 10,000 images: FID is biased " \
                        "upward at small sample counts (compare with the floor)"
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


def render(table, results_dir, budget, methods_available, command=None):
    frame = load_records(results_dir, budget)
    stats = aggregate(frame)
    paper_methods = {m for (_, m), _ in PAPER_TABLES[table]["rows"]}
    metric = PAPER_TABLES[table]["metric"]
    extra = extra_rows(frame[frame.metric == metric], paper_methods) if not frame.empty else {}
    headers = ["Variant", "Model"]
    for dataset in DATASETS:
        name = DATASET_TITLES[dataset]
        headers += [f"{name} ours", f"{name} paper", "Δ"]
    body = tabulate(table_rows(table, stats, methods_available, extra), headers=headers, tablefmt="github",
                    disable_numparse=True)  # keep our formatting (12.70, +0.30)
    lines = [f"# {PAPER_TABLES[table]['title']} — budget `{budget}`", "", body, "",
             "Ours: mean ± sample standard deviation over seeds (n = number of seeds); Δ = ours − paper. "
             "Paper: the SeGMA paper's published value (evaluation/paper_reference.py). "
             "`missing`: implemented but not run at this budget; `not implemented`: no such method in the suite; "
             "`n/a`: the method cannot give this metric (no classifier).",
             "", "Protocol:", *protocol_notes(table, frame, budget)]
    if not frame.empty:
        lines += ["", compute_note(frame, table)]
        lines += plugin_notes(frame[frame.metric == metric])
    if command:
        lines += ["", f"Produced by `{command}` (it skips cells whose results exist)."]
    return "\n".join(lines) + "\n"
