"""Markdown tables laid out as the paper's Tables I-III: ours (mean ± std over seeds) beside the paper's,
with KID beside every FID.

The text depends only on the records it is rendered from (no clock, no command line, stable order), so
the same records always give the same bytes (tests/test_table_files.py)."""
import math
import shlex
from pathlib import Path

from tabulate import tabulate

from segma_bench.core.errors import BadValueError, UserError
from segma_bench.core.json_files import read_json_file
from segma_bench.evaluation.metric_names import PRC_OF_FID

from .budgets import BUDGETS
from .long_runs import load_statistics, recipe_runs_summary
from .long_runs import table_note as long_run_note
from .paper_reference import DATASETS, DISPLAY_NAMES, PAPER_TABLES, paper_value
from .results import KID_OF_FID, aggregate, load_records
from .significance import cell_markers, table_tests
from .significance import footnote as significance_footnote

DATASET_TITLES = {"mnist": "MNIST", "svhn": "SVHN", "celeba": "CelebA"}
KID_SCALE = 1000  # KIDs are shown × 10³ (MNIST values are around 0.001-0.1)
PAPER_FID_SAMPLES = 10000
# Statistics files of long runs at the length the paper's code ran (`python cli.py long-runs`) that a table's footnote quotes:
# (table, dataset) -> file in the results folder. The 501-pass SeGMA runs are the paper's own length, so the
# paper-comparable tables show them whatever budget their SeGMA row has.
LONG_RUN_STATISTICS = {(2, "mnist"): "segma_mnist_501.json"}
# Baselines trained with their own authors' recipe, as long runs of their own (`train`, then `report`'s records
# in the results folder). At a paper-comparable budget that trains them otherwise, Table II shows them as rows of
# their own under the budget's row: what each baseline's own code reached here, beside the budget's protocol.
# (table, dataset) -> {method: the records' file names, one per seed; those present are shown}. Commit a
# run's record under its name once it is comparable with the others: a run still in M1+M2's M1 phase has no
# trained classifier yet, and runs of different lengths are flagged in the footnote.
OWN_RECIPE_RECORDS = {(2, "mnist"): {
    "m1m2": ("m1m2_mnist_kingma_code_m1_1000.json", "m1m2_mnist_kingma_code_m1_1000_seed1.json"),
    "adgm": ("adgm_mnist_maaloe_code.json", "adgm_mnist_maaloe_code_seed1.json")}}
OWN_RECIPE_MARK = "§"


def format_value(mean, std, n, scale=1.0, with_n=True):
    text = f"{mean * scale:.2f}"
    if n > 1 and not math.isnan(std):
        text += f" ± {std * scale:.2f}"
    return f"{text} (n={n})" if with_n else text


def cell_stats(stats, metric, method, dataset):
    cell = stats[(stats.metric == metric) & (stats.method == method) & (stats.dataset == dataset)]
    return None if cell.empty else cell.iloc[0]


def table_rows(table, stats, methods_available, extra_methods, datasets, markers=None, names=None):
    spec = PAPER_TABLES[table]
    metric, percent = spec["metric"], spec["metric"] == "test_error"
    kid_metric = KID_OF_FID.get(metric)
    rows = [(variant, method, values) for (variant, method), values in spec["rows"]]
    rows += [(variant, method, {}) for method, variant in extra_methods.items()]
    out = []  # (method, row): the method keeps its row when rows are inserted (insert_rows_after)
    for variant, method, paper in rows:
        row = [variant, (names or {}).get(method) or DISPLAY_NAMES.get(method, method)]
        for dataset in datasets:
            cell = cell_stats(stats, metric, method, dataset)
            ours_value = None
            if cell is not None and cell["n"] == 0:
                ours = "n/a"  # evaluated, but the method cannot produce this metric
            elif cell is not None:
                ours = format_value(cell["mean"], cell["std"], int(cell["n"]), 100.0 if percent else 1.0)
                ours += (markers or {}).get((method, dataset), "")  # significance (reporting/significance.py)
                ours_value = cell["mean"] * (100.0 if percent else 1.0)
            else:
                # a method with records somewhere in this table exists, loaded here or not
                ours = "missing" if method in methods_available or method in extra_methods else "not implemented"
            reference = paper.get(dataset)
            row += [ours, "—" if reference is None else f"{reference:.2f}",
                    "" if ours_value is None or reference is None else f"{ours_value - reference:+.2f}"]
            if kid_metric:
                kid = cell_stats(stats, kid_metric, method, dataset)
                row.append("" if kid is None or kid["n"] == 0 else
                           format_value(kid["mean"], kid["std"], int(kid["n"]), KID_SCALE, with_n=False))
                row.append(precision_recall_text(stats, metric, method, dataset))
        out.append((method, row))
    return out


def precision_recall_text(stats, metric, method, dataset):
    """"precision / recall" (means over the cell's seeds), "not computed" where the cell's records predate
    them, "" where the cell has no FID."""
    fid = cell_stats(stats, metric, method, dataset)
    if fid is None or fid["n"] == 0:
        return ""
    cells = [cell_stats(stats, name, method, dataset) for name in PRC_OF_FID[metric]]
    if any(cell is None or cell["n"] == 0 for cell in cells):
        return "not computed"
    text = " / ".join(f"{cell['mean']:.2f}" for cell in cells)
    n = int(min(cell["n"] for cell in cells))
    return text if n == fid["n"] else f"{text} ({n} of {int(fid['n'])} seeds)"


def precision_recall_notes(table, frame, datasets):
    """Footnote lines on precision and recall: how they are computed, their real-against-real values, and
    what "not computed" means; none for a table without images (Table II)."""
    metric = PAPER_TABLES[table]["metric"]
    if metric not in PRC_OF_FID or frame.empty:
        return []
    notes = []
    for dataset in datasets:
        records = list(frame[(frame.dataset == dataset) & (frame.metric == metric)]["record"])
        if not records:
            continue
        with_prc = [r for r in records if set(PRC_OF_FID[metric]) <= set(r.get("metrics", {}))]
        line = (f"- {DATASET_TITLES.get(dataset, dataset)} P / R: precision / recall (k-NN manifolds, k = 3, "
                "Kynkäänniemi et al. 2019; evaluation/prc.py) of the same generated images' Inception features "
                "against the same reference, mean over seeds: precision, the share of generated images inside the "
                "real images' manifold (quality); recall, the share of real images inside the generated images' "
                "manifold (coverage)")
        prc = next((r["protocol"]["prc"] for r in with_prc if "prc" in r.get("protocol", {})), None)
        if prc and prc.get("floor_precision") is not None:
            line += (f"; real against real (the floor's images): P = {prc['floor_precision']:.2f}, "
                     f"R = {prc['floor_recall']:.2f}")
        if len(with_prc) < len(records):
            line += ("; `not computed`: the cell's records were evaluated before precision and recall were added; "
                     "`reproduce` adds them where the cell's run folder is on the machine that runs it, and does "
                     "not retrain a run for them")
        notes.append(line + ".")
    return notes


def display_names(records):
    """{method: the name its records store for the Model column} (results.record_identity)."""
    names = {}
    for record in sorted(records, key=lambda r: (r["method"], r["seed"])):
        names.setdefault(record["method"], record.get("display_name") or DISPLAY_NAMES.get(record["method"], record["method"]))
    return names


def paper_length(records):
    """The original training length stored in a method's records (epochs), None where none is known: a plugin
    that declares no `paper_epochs` has none, whatever the dataset protocol says. The SeGMA paper states no
    training length; this is what the authors' released code runs (docs/protocol.md, reference-settings)."""
    return next((r["paper_epochs"] for r in sorted(records, key=lambda r: r["seed"]) if r.get("paper_epochs")), None)


LABELED_SET_WORDS = {"first": "the first training images, the same set for every seed",
                     "balanced": "a class-balanced draw, made again for each seed"}


def labeled_set_note(records, dataset):
    """A line where the rows of a column train on different labeled sets (the `labeled_subset` of their runs):
    then a difference between rows, and a significance marker, is the method's and its labeled set's together."""
    from segma_bench.training import RunSpec
    by_subset = {}
    for record in records:
        if record.get("table_variant") == "unsupervised":
            continue  # trained without labels: its labeled set plays no part
        run = record.get("config", {}).get("run")
        if not isinstance(run, dict):
            continue
        subset = run.get("labeled_subset") or RunSpec.IDENTITY_DEFAULTS.get("labeled_subset", "balanced")
        by_subset.setdefault(subset, set()).add(record.get("display_name") or DISPLAY_NAMES.get(record["method"],
                                                                                                 record["method"]))
    if len(by_subset) < 2:
        return []
    groups = "; ".join(f"{', '.join(sorted(names))}: {LABELED_SET_WORDS.get(subset, subset)}"
                       for subset, names in sorted(by_subset.items()))
    return [f"- {DATASET_TITLES.get(dataset, dataset)}, labeled sets differ between rows ({groups}): a difference "
            "between rows, and a significance marker, is the method's and its labeled set's together, and the "
            "± of a `first` row holds no labeled-set spread (docs/protocol.md compares the sets)."]


def training_length_note(records, dataset):
    """Per method: our epochs (the runs' own, from the records) against the original code's."""
    parts = []
    names = display_names(records)
    for method in sorted(names, key=lambda m: (names[m], m)):
        mine = sorted({r["training"]["epochs"] for r in records if r["method"] == method})
        reused = sorted({r["run_dir"] for r in records if r["method"] == method and r.get("run_reused")})
        paper = paper_length([r for r in records if r["method"] == method])
        budget = sorted({r["budget_epochs"] for r in records if r["method"] == method and r.get("budget_epochs")})
        text = f"{names[method]} {'/'.join(map(str, mine))}"
        notes = ([f"budget: at least {'/'.join(map(str, budget))}"] if budget and budget != mine else []) \
            + ([f"original code: {paper}"] if paper else [])
        text += f" ({'; '.join(notes)})" if notes else ""
        if reused:
            text += f" [runs reused: {', '.join(f'`{r}`' for r in reused)}]"
        parts.append(text)
    return ("training length in epochs, ours (the original code's epoch count, as its authors released it; the "
            "paper states none; the SeGMA authors' loop makes one pass more than its count): " + "; ".join(parts))


def extra_rows(frame, paper_methods):
    """{method: table variant} of the methods beyond the paper's rows; the variant is what the method's
    class declared (`table_variant`) when its cells were made, else "plugin"."""
    extra = {}
    for record in frame["record"]:
        if record["method"] not in paper_methods:
            extra[record["method"]] = record.get("table_variant", "plugin")
    return dict(sorted(extra.items()))


def plugin_notes(frame):
    """Which plugin made the plugin rows (a file and its sha256, or a distribution and its version): what
    the command needs to run again."""
    def source(plugin):
        if plugin.get("distribution"):
            return f"the distribution `{plugin['distribution']}` {plugin.get('version', '')}".rstrip()
        return f"`{plugin.get('path')}` (sha256 {str(plugin.get('sha256'))[:12]}…)"
    sources = sorted({(r["method"], source(r["plugin"])) for r in frame["record"] if r.get("plugin")})
    return ["", "Plugins: " + "; ".join(f"`{method}` from {where}" for method, where in sources) + "."] if sources else []


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
                subsets = (f"{kid['subsets']} subsets of {kid['subset_size']}" if kid["subsets"] > 1 else
                           f"one subset: all {kid['subset_size']} images of each set (no spread over subsets)")
                line += (f"; KID × 10³: {kid['estimator']}, {subsets}, "
                         f"kernel {kid['kernel']}; its floor = {kid['floor_kid'] * KID_SCALE:.2f}")
            if fid["generated_images"] < PAPER_FID_SAMPLES:
                line += ". **FIDs not comparable with the paper's**, which used 10,000 images: FID is biased " \
                        "upward at small sample counts (compare with the floor); KID is unbiased"
        if metric == "test_error":
            line += f"; {records[0]['protocol']['test_error']}"
        notes.append(line + ".")
        notes += labeled_set_note(records, dataset)
        unrun = [m for (_, m), paper in PAPER_TABLES[table]["rows"] if dataset in paper
                 and m not in {r["method"] for r in records}]
        if unrun and budget in BUDGETS:  # say what the budget would train for the rows still missing
            notes.append(f"- {DATASET_TITLES.get(dataset, dataset)}, not run at this budget yet; it trains "
                         + "; ".join(f"{DISPLAY_NAMES.get(m, m)}: {planned_training(BUDGETS[budget], m, dataset)}"
                                     for m in unrun) + ".")
    budget_note = BUDGETS[budget].note if budget in BUDGETS else ""
    if budget_note and notes:
        source = frame["record"].iloc[0].get("data_source", {}) if not frame.empty else {}
        notes.append("- " + budget_note.format(images=f"{source.get('images', '?'):,}" if isinstance(
            source.get("images"), int) else "?", partition=_partition_text(source.get("partition"))))
    return notes


def planned_training(budget, method, dataset):
    """What `budget` trains for `method` on `dataset`, in words (reporting/budgets.py)."""
    settings = budget.run_settings(method, dataset)
    parts = [f"{settings['epochs']} epochs" if settings["epochs"] else "the length its recipe or its original code sets"]
    parts += [f"recipe {settings['recipe']}"] if settings["recipe"] else []
    parts += [f"{k}={v}" for k, v in sorted(settings["overrides"].items())]
    return ", ".join(parts)


def _partition_text(partition):
    """'5,437 train+valid and 660 test images' from a data source's partition (a JSON text or a dict)."""
    import json
    try:
        parts = json.loads(partition) if isinstance(partition, str) else dict(partition or {})
    except (ValueError, TypeError):
        return "?"
    return " and ".join(f"{count:,} {split}" for split, count in parts.items()) + " images" if parts else "?"


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


DEFAULT_RESULTS_DIR = "results"


def results_dir_shown(results_dir):
    """How the footnote names the results folder: None for the default (`results` here), else as given."""
    return None if Path(results_dir).resolve() == Path(DEFAULT_RESULTS_DIR).resolve() else str(results_dir)


def plugin_loads(records):
    """What SEGMA_PLUGINS must hold for a command to load the plugins that made `records`: each plugin file
    (relative to this folder where it lies under it) or module; installed distributions load by themselves."""
    loads = set()
    for plugin in (r["plugin"] for r in records if r.get("plugin")):
        if plugin.get("distribution"):
            continue
        if plugin.get("module"):
            loads.add(plugin["module"])
        elif plugin.get("path"):
            path = Path(plugin["path"])
            try:
                loads.add(str(path.relative_to(Path.cwd())))
            except ValueError:
                loads.add(str(path))
    return sorted(loads)


def footnote_commands(table, budget, results_dir, frame, datasets, all_datasets):
    """The "Made by" and "rendered again" sentence: every option the table was made with (methods beyond the
    table's own, seeds other than the budget's, datasets, results folder, the plugins to load), read from the
    records, so that the command run as written makes this table again, plugin rows included."""
    from .budgets import BUDGETS
    metric = PAPER_TABLES[table]["metric"]
    records = list(frame[frame.metric == metric]["record"]) if not frame.empty else []
    own = [method for (_, method), _ in PAPER_TABLES[table]["rows"]]
    present = {r["method"] for r in records}
    method_options = [] if not records or present == set(own) else \
        [f"--method {shlex.quote(m)}" for m in [m for m in own if m in present] + sorted(present - set(own))]
    seeds = max((r["seed"] for r in records), default=-1) + 1
    default_seeds = BUDGETS[budget].default_seeds if budget in BUDGETS else None
    seed_options = [f"--seeds {seeds}"] if records and seeds != default_seeds else []
    shown = results_dir_shown(results_dir)
    dir_options = [f"--results-dir {shlex.quote(shown)}"] if shown else []
    loads = plugin_loads(records)
    prefix = f"SEGMA_PLUGINS={shlex.quote(':'.join(loads))} " if loads else ""  # the command must load them to re-run
    # cells evaluated from runs that `train` made, with --no-train: the command must not train them instead
    no_train = bool(records) and all("--no-train" in (r.get("command_by_metric", {}).get(metric) or r.get("command") or "").split()
                   for r in records)
    reproduce = " ".join([f"{prefix}python cli.py reproduce --table {table} --budget {budget}", *method_options,
                          *seed_options, *(f"--dataset {d}" for d in datasets), *dir_options,
                          *(["--no-train"] if no_train else [])])
    table_options = [] if list(datasets) == list(all_datasets) else [f"--dataset {d}" for d in datasets]
    again = " ".join([f"python cli.py table --table {table} --budget {budget}", *table_options, *dir_options])
    what = ("it evaluates only runs that already hold the budget's length, such as those `train` made, and trains "
            "nothing" if no_train else "it trains and evaluates only what is missing")
    seeds_meant = f"; `--seeds {seeds}`: seeds 0 to {seeds - 1}" if seed_options and seeds > 1 else \
        ("; `--seeds 1`: seed 0 only" if seed_options else "")
    return (f"Made by `{reproduce}` ({what}{seeds_meant}); rendered again from the records "
            f"in `{shown or DEFAULT_RESULTS_DIR}/runs/{budget}/` by `{again}`.")


def own_recipe_runs(table, results_dir, budget, datasets):
    """{method: {dataset: long_runs.recipe_runs_summary}} of the OWN_RECIPE_RECORDS present in results_dir, at
    the paper-comparable budgets whose own recipe for the method is another one."""
    if budget not in BUDGETS or not BUDGETS[budget].paper_comparable:
        return {}
    found = {}
    for dataset in datasets:
        for method, names in OWN_RECIPE_RECORDS.get((table, dataset), {}).items():
            paths = [Path(results_dir) / name for name in names if (Path(results_dir) / name).is_file()]
            if not paths:
                continue
            summary = recipe_runs_summary([(path.stem, read_json_file(path)) for path in paths])
            if (summary["method"], summary["dataset"]) != (method, dataset):
                raise BadValueError(f"{paths[0]}: a record of {summary['method']} on {summary['dataset']}, listed "
                                    f"for {method} on {dataset} (reporting/tables.py OWN_RECIPE_RECORDS)")
            if summary["recipe"] != BUDGETS[budget].run_settings(method, dataset)["recipe"]:
                found.setdefault(method, {})[dataset] = summary
    return found


def own_recipe_rows(table, runs, datasets, names):
    """{method: its row} for own_recipe_runs: the last pass's test error, mean ± std over runs, beside the
    paper's value for the method."""
    spec = PAPER_TABLES[table]
    variants = {method: variant for (variant, method), _ in spec["rows"]}
    rows = {}
    for method, by_dataset in runs.items():
        recipes = "; ".join(sorted({f"`{summary['recipe']}`" + (f" ({overrides_text(summary['overrides'])})"
                                                                if summary["overrides"] else "")
                                    for summary in by_dataset.values()}))
        row = [variants.get(method, ""), f"{names.get(method) or DISPLAY_NAMES.get(method, method)}, {recipes} "
               f"{OWN_RECIPE_MARK}"]
        for dataset in datasets:
            summary, reference = by_dataset.get(dataset), paper_value(table, method, dataset)
            std = math.nan if summary is None or summary["std_last"] is None else summary["std_last"]
            ours = "—" if summary is None else format_value(summary["mean_last"], std, summary["n"], 100.0)
            row += [ours, "—" if reference is None else f"{reference:.2f}",
                    "" if summary is None or reference is None else f"{100 * summary['mean_last'] - reference:+.2f}"]
            row += ["", ""] if spec["metric"] in KID_OF_FID else []
        rows[method] = row
    return rows


def overrides_text(overrides, recipe_settings=None):
    """'m1_epochs=1000', with each override beside the recipe's own value where recipe_settings has it:
    'm1_epochs=1000 (the recipe's: 5000)'."""
    own = recipe_settings or {}
    return ", ".join(f"{key}={value}" + (f" (the recipe's: {own[key]})" if key in own else "")
                     for key, value in overrides.items())


def recipe_settings(method, recipe, dataset):
    """The settings of `method`'s named recipe on `dataset`; {} for a method or recipe this install lacks."""
    import segma_bench.methods as methods
    try:
        return methods.get_method(method).recipe(recipe, dataset).settings
    except UserError:
        return {}


def own_recipe_notes(runs, names):
    """The footnote of the own-recipe rows: what they are, and each run with its length, its last and lowest
    error and its record; a run short of its planned length is said to be not final."""
    lines = []
    for method, by_dataset in runs.items():
        for dataset, summary in by_dataset.items():
            each = []
            for run in summary["runs"]:
                short = run["planned"] is not None and run["passes"] < run["planned"]
                each.append(f"seed {run['seed']} ([{run['label']}.md]({run['label']}.md)), {run['passes']}"
                            + (f" of {run['planned']} planned" if run["planned"] else "")
                            + f" passes: last {100 * run['last_error']:.2f}% (lowest {100 * run['best_error']:.2f}% at "
                            f"pass {run['best_pass']})" + (", short of its planned length (stopped or still "
                                                             "training): not final" if short else ""))
            settings = (overrides_text(summary["overrides"], recipe_settings(method, summary["recipe"], dataset))
                        or "the recipe's")
            lengths = sorted({run["passes"] for run in summary["runs"]})
            mixed = (f" The runs differ in length ({', '.join(map(str, lengths))} passes): their mean mixes lengths."
                     if len(lengths) > 1 else "")
            lines.append(f"- {DATASET_TITLES.get(dataset, dataset)}, "
                         f"{names.get(method) or DISPLAY_NAMES.get(method, method)} with `{summary['recipe']}` "
                         f"(labeled set: {summary['labeled_subset']}; settings: {settings}): {'; '.join(each)}.{mixed}")
    if not lines:
        return []
    return ["", f"{OWN_RECIPE_MARK} A baseline trained with its own authors' recipe (docs/baselines.md), as a row of its "
                "own: long runs made by `train` (records by `report`, in this folder), each trained for the length "
                "given here, not for this budget's; ours is the last pass's test error, mean ± std over runs "
                "(n = runs). They show what the recipe reached in these runs, not what it reaches at its full "
                "length. These rows are not in the significance tests.", *lines]


def insert_rows_after(rows, extra):
    """The rows of [(method, row)] with extra[method] placed right after its method's row."""
    out = []
    for method, row in rows:
        out += [row] + ([extra[method]] if method in extra else [])
    return out


def long_run_notes(table, results_dir, budget, datasets):
    """Footnote lines quoting the long-run statistics files of this table's datasets (paper-comparable budgets)."""
    if budget in BUDGETS and not BUDGETS[budget].paper_comparable:
        return []
    lines = []
    for dataset in datasets:
        name = LONG_RUN_STATISTICS.get((table, dataset))
        if name and (Path(results_dir) / name).is_file():
            data = load_statistics(Path(results_dir) / name)
            markdown = Path(name).with_suffix(".md").name  # beside the table: a relative link
            lines.append(f"- {DATASET_TITLES.get(dataset, dataset)}, at the length the paper's code ran: "
                         + long_run_note(data, f"[{markdown}]({markdown})"))
    return ["", "Long runs:", *lines] if lines else []


def render(table, results_dir, budget, methods_available, datasets=None):
    """The table's markdown. datasets: its columns; default, those with records for this table."""
    frame = load_records(results_dir, budget)
    metric = PAPER_TABLES[table]["metric"]
    all_datasets = datasets_with_records(frame, table)
    datasets = list(datasets or all_datasets)
    if not frame.empty:
        frame = frame[frame.dataset.isin(datasets)]
    stats = aggregate(frame)
    tests = table_tests(frame, table, datasets,
                        against_paper=BUDGETS[budget].paper_comparable if budget in BUDGETS else True)
    paper_methods = {m for (_, m), _ in PAPER_TABLES[table]["rows"]}
    extra = extra_rows(frame[frame.metric == metric], paper_methods) if not frame.empty else {}
    kid = metric in KID_OF_FID
    headers = ["Variant", "Model"]
    for dataset in datasets:
        name = DATASET_TITLES.get(dataset, dataset)
        headers += [f"{name} {'FID ' if kid else ''}ours", f"{name} paper", "Δ"]
        headers += [f"{name} KID × 10³ ours", f"{name} P / R ours"] if kid else []
    names = display_names(frame["record"]) if not frame.empty else {}
    rows = table_rows(table, stats, methods_available, extra, datasets, cell_markers(tests), names)
    own_recipe = own_recipe_runs(table, results_dir, budget, datasets)
    rows = insert_rows_after(rows, own_recipe_rows(table, own_recipe, datasets, names))
    body = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)  # keep our formatting (12.70, +0.30)
    lines = [f"# {PAPER_TABLES[table]['title']} — budget `{budget}`", "", body, "",
             "Ours: mean ± sample standard deviation over seeds (n = number of seeds); Δ = ours − paper. "
             "Paper: the SeGMA paper's published value (reporting/paper_reference.py); the paper reports no KID. "
             "`missing`: implemented but not run at this budget; `not implemented`: no such method in the suite; "
             "`n/a`: the method cannot give this metric (no classifier).",
             "", "Protocol:", *protocol_notes(table, frame, budget, datasets)]
    lines += precision_recall_notes(table, frame, datasets)
    lines += own_recipe_notes(own_recipe, names)
    lines += long_run_notes(table, results_dir, budget, datasets)
    lines += significance_footnote(tests, {**DISPLAY_NAMES, **names}, DATASET_TITLES)
    if not frame.empty:
        lines += ["", compute_note(frame, table)]
        lines += plugin_notes(frame[frame.metric == metric])
    lines += ["", footnote_commands(table, budget, results_dir, frame, datasets, all_datasets)]
    return "\n".join(lines) + "\n"
