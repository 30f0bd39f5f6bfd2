"""results/README.md: where the suite stands against the paper, in one screen, made from the files in
results/ alone (so it is never out of step with them):

    python cli.py status            # writes results/README.md

One line per paper cell (table, model, dataset) with our number under each budget marked paper_comparable
(reporting/budgets.py), side by side: no budget is picked for having the lowest value, which would select
on the test set; then the single long training runs' test errors (results/*.json, same test protocol, one
seed each); then links to every table, figure and record."""
from pathlib import Path

from segma_bench.core.errors import BadValueError
from segma_bench.core.json_files import read_json_file

from .budgets import BUDGETS, HEADLINE_BUDGET, table_file_name
from .long_runs import load_statistics
from .long_runs import table_note as long_run_note
from .paper_reference import DISPLAY_NAMES, PAPER_TABLES, paper_test_error, paper_value, table_methods
from .results import aggregate, load_records
from .tables import DATASET_TITLES, LONG_RUN_STATISTICS, format_value

METRIC_TITLES = {"test_error": "test error %", "sample_fid": "sample FID", "interpolation_fid": "interpolation FID"}


def comparable_budgets():
    """The paper-comparable budgets, the headline one first."""
    return sorted((n for n in BUDGETS if BUDGETS[n].paper_comparable), key=lambda n: (n != HEADLINE_BUDGET, n))


def cell_lines(results_dir):
    """One line per paper cell that any paper-comparable budget has a record for, every such budget's
    mean ± std in its own column."""
    budgets = comparable_budgets()
    stats = {name: aggregate(load_records(results_dir, name)) for name in budgets}
    lines = []
    for table, spec in PAPER_TABLES.items():
        metric = spec["metric"]
        scale = 100.0 if metric == "test_error" else 1.0
        for (_, method), paper in spec["rows"]:
            for dataset, reference in paper.items():
                found = {name: budget_cell(stats[name], metric, method, dataset) for name in budgets}
                if not any(found.values()):
                    continue
                ours = [format_value(*found[name], scale) if found[name] else "—" for name in budgets]
                records = ", ".join(f"[{name}](runs/{name}/)" for name in budgets if found[name])
                lines.append(f"| {table} | {DISPLAY_NAMES.get(method, method)} | {DATASET_TITLES[dataset]} | "
                             f"{METRIC_TITLES[metric]} | {' | '.join(ours)} | {reference:.2f} | {records} |")
    return lines


def budget_cell(stats, metric, method, dataset):
    """(mean, std, n) of one cell in a budget's aggregated records, else None (std is NaN for one seed:
    format_value then shows no ±)."""
    cell = stats[(stats.metric == metric) & (stats.method == method) & (stats.dataset == dataset)]
    if cell.empty or cell.iloc[0]["n"] == 0:
        return None
    return cell.iloc[0]["mean"], cell.iloc[0]["std"], int(cell.iloc[0]["n"])


def long_run_lines(results_dir):
    lines = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            run = read_json_file(path)
        except BadValueError:
            continue  # not a record of this kind (results/ may hold other JSON); the record reader names bad ones
        if not isinstance(run, dict) or run.get("test_error") is None or not {"epochs_completed", "method", "dataset",
                                                                              "seed"} <= set(run):
            continue
        reference = paper_test_error(run["method"], run["dataset"])
        lines.append(f"| {DISPLAY_NAMES.get(run['method'], run['method'])} | {DATASET_TITLES.get(run['dataset'])} | "
                     f"{run['seed']} | {epochs_text(run)} | {100 * run['test_error']:.2f} | "
                     f"{'—' if reference is None else f'{reference:.2f}'} | [{path.stem}]({path.with_suffix('.md').name}) |")
    return lines


def epochs_text(run):
    """'150', or '41 of 501' for a run short of its planned length (stopped, or still training), or '150 (cut)'
    for a record cut at a pass of a run that trained on (`report --up-to-pass`)."""
    done, planned = run["epochs_completed"], run.get("epochs_planned")
    if run.get("up_to_pass"):
        return f"{done} (cut)"
    return f"{done} of {planned}" if isinstance(planned, int) and planned > done else f"{done}"


def curve_lines(results_dir):
    """The training curves (figures/curves/*.png, drawn by `python cli.py curves`) as images, each with its
    caption (the .txt beside it: sources and command)."""
    pngs = sorted((Path(results_dir) / "figures" / "curves").glob("*.png"))
    if not pngs:
        return []
    lines = ["", "## Training curves: test error after every pass", "",
             "Each long run above and each `comparable` cell with a test error; horizontal lines: the paper's value."]
    for png in pngs:
        about = png.with_suffix(".txt")
        lines += ["", f"![{png.stem}](figures/curves/{png.name})"]
        if about.is_file():
            lines += ["", about.read_text().strip()]
    return lines


def render_status(results_dir="results"):
    results_dir = Path(results_dir)
    cells = cell_lines(results_dir)
    tables = [f"[{name}]({name})" for name in sorted(p.name for p in results_dir.glob("table*.md"))]
    figures = sorted(str(p.relative_to(results_dir)) for p in results_dir.glob("figures/**/*.png"))
    comparable = comparable_budgets()
    budgets = ", ".join(f"`{n}`" for n in comparable)
    headline_names = [table_file_name(t, HEADLINE_BUDGET) for t in PAPER_TABLES]
    written = [name for name in headline_names if (results_dir / name).exists()]
    not_written = [name for name in headline_names if name not in written]
    headline = ", ".join(f"[{name}]({name})" for name in written) or "none yet"
    if not_written:  # a table file appears once its budget has a record for it
        headline += f" (not written yet: {', '.join(not_written)})"
    lines = ["# Where the suite stands against the SeGMA paper", "",
             f"Made by `python cli.py status` from the files in this folder. Paper-comparable budgets: "
             f"{budgets} (10,000 images per FID and KID; training lengths in reporting/budgets.py and in each "
             f"table's footnote). Headline tables: {headline}.",
             "", "## Each paper cell under each paper-comparable budget (mean ± std over seeds)", "",
             "Side by side, not the better of them: choosing a budget per cell by its result would select on the "
             "test set. The budgets differ in training length and seeds (n); each table's footnote gives both.", ""]
    if cells:
        lines += ["| table | model | dataset | metric | " + " | ".join(f"ours, `{n}`" for n in comparable)
                  + " | paper | records |", "|---|---|---|---|" + "---|" * len(comparable) + "---|---|", *cells]
    else:
        lines += ["None yet: no records of a paper-comparable budget are committed "
                  "(`python cli.py reproduce --table N --budget comparable --dataset mnist` makes them)."]
    lines += ["", "## Single long training runs: test error after the last epoch so far (full test set, 100 labels; "
              "'41 of 501': short of its planned 501, stopped or still training; each record's command resumes it; "
              "'(cut)': the record stops at that pass of a run that trained on)", "",
              "One seed each; each record names its settings (some are ablations) and the command that made it.", "",
              "| model | dataset | seed | epochs | test error % | paper | record |", "|---|---|---|---|---|---|---|",
              *long_run_lines(results_dir),
              *curve_lines(results_dir),
              "", "## Everything here", "",
              f"- Tables: {', '.join(tables) or 'none'} (`tableN.md`: budget `comparable`; "
              "`tableN-BUDGET.md`: other budgets; `quick` (5 epochs, 2,000 images per FID) and `celeba-subset` (the "
              "6,097-image CelebA copy, 5 epochs, 500 images per FID) are not paper-comparable).",
              "- Per-cell records: " + (", ".join(f"[runs/{p.name}/](runs/{p.name}/)"
                                                   for p in sorted((results_dir / 'runs').glob('*')) if p.is_dir())
                                          or "none committed"),
              f"- Figures: {', '.join(f'[{f}]({f})' for f in figures) or 'none'}."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the README's headline table

HEADLINE_START = "<!-- headline table: made by `python cli.py status`; do not edit by hand -->"
HEADLINE_END = "<!-- end of headline table -->"


def render_headline(results_dir="results", budget=HEADLINE_BUDGET):
    """One row per model of the paper's tables, one column per table, the `budget` cells' mean ± std over
    seeds (paper's value in parentheses): the README's first screen, made from the committed records."""
    stats = aggregate(load_records(Path(results_dir), budget))
    models, columns = [], []
    for table, spec in PAPER_TABLES.items():
        columns.append((table, spec["metric"]))
        for (_, method), _paper in spec["rows"]:
            if method not in models:
                models.append(method)
    datasets = sorted({d for spec in PAPER_TABLES.values() for _, paper in spec["rows"] for d in paper},
                      key=list(DATASET_TITLES).index)
    datasets = [d for d in datasets if not stats[stats.dataset == d].empty]
    header = ["model"] + [f"{DATASET_TITLES[d]} {METRIC_TITLES[m]} (Table {'I' * t})"
                          for d in datasets for t, m in columns]
    rows = []
    for method in models:
        cells = []
        for dataset in datasets:
            for table, metric in columns:
                paper = paper_value(table, method, dataset)
                if paper is None and method not in table_methods(table):
                    cells.append("—")  # the paper's table has no such row
                    continue
                cell = stats[(stats.metric == metric) & (stats.method == method) & (stats.dataset == dataset)]
                scale = 100.0 if metric == "test_error" else 1.0
                if cell.empty or cell.iloc[0]["n"] == 0:
                    ours = "—" if paper is None else "not run"
                else:
                    ours = format_value(cell.iloc[0]["mean"], cell.iloc[0]["std"], int(cell.iloc[0]["n"]), scale)
                cells.append(ours if paper is None else f"{ours}; paper {paper:.2f}")
        rows.append([DISPLAY_NAMES.get(method, method), *cells])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    for (table, dataset), name in LONG_RUN_STATISTICS.items():  # the paper-length runs, under the table
        path = Path(results_dir) / name
        if dataset in datasets and path.is_file():
            data = load_statistics(path)
            markdown = f"{Path(results_dir).name}/{Path(name).with_suffix('.md').name}"  # linked from the README
            lines += ["", f"**At the length the paper's code ran** ({DATASET_TITLES[dataset]}, Table {'I' * table}): "
                      + long_run_note(data, f"[{markdown}]({markdown})")]
    return "\n".join(lines) + "\n"


def update_readme_headline(readme_path, results_dir="results"):
    """Replace the block between HEADLINE_START and HEADLINE_END in `readme_path` with render_headline;
    returns the new text (None when the README has no such block)."""
    text = Path(readme_path).read_text()
    if HEADLINE_START not in text or HEADLINE_END not in text:
        return None
    before, rest = text.split(HEADLINE_START, 1)
    _, after = rest.split(HEADLINE_END, 1)
    return before + HEADLINE_START + "\n" + render_headline(results_dir) + HEADLINE_END + after
