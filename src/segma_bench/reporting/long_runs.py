"""Every statistic the paper might have reported for a set of long runs of one setting, side by side.

The SeGMA paper gives 12.7% MNIST test error without saying which statistic it is, and the authors' code
logs the test error after every pass and selects nothing. So for each run: the last pass's error, the best
pass's error and where it was; across runs: the mean ± std (ddof=1) of the last-pass errors, the mean of
the best-pass errors, and the best run by either. Each beside the paper's value."""
import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from tabulate import tabulate

from segma_bench.core.errors import BadValueError
from segma_bench.core.json_files import read_json_file
from segma_bench.training.run_folder import RunFolder

from .error_curve import test_error_points


@dataclass(frozen=True)
class RunCurve:
    """One run's per-pass test error: passes 1..n in order (None where a pass has no test error)."""
    label: str
    passes: tuple
    errors: tuple

    @classmethod
    def from_record(cls, label, record):
        """From any record with a per-pass test error (reporting/error_curve.py): passes without one are left out."""
        try:
            passes, errors = test_error_points(record)
        except BadValueError as error:
            raise BadValueError(f"{label}: {error}") from None
        return cls(label, tuple(passes), tuple(errors))


@dataclass(frozen=True)
class RunStatistics:
    label: str
    passes: int          # the last pass with a test error
    last_error: float
    best_error: float
    best_pass: int       # the first pass reaching the best error


def run_statistics(curve: RunCurve) -> RunStatistics:
    best = min(range(len(curve.errors)), key=lambda i: (curve.errors[i], curve.passes[i]))
    return RunStatistics(curve.label, curve.passes[-1], curve.errors[-1], curve.errors[best], curve.passes[best])


def across_runs(stats):
    """Mean ± std (ddof=1; None for one run) of the last-pass and best-pass errors, and the best run by each."""
    last = [s.last_error for s in stats]
    best = [s.best_error for s in stats]
    return {"runs": len(stats),
            "mean_last": statistics.fmean(last), "std_last": statistics.stdev(last) if len(last) > 1 else None,
            "mean_best": statistics.fmean(best), "std_best": statistics.stdev(best) if len(best) > 1 else None,
            "best_run_by_last": min(stats, key=lambda s: s.last_error).label,
            "best_run_by_best": min(stats, key=lambda s: s.best_error).label,
            "lowest_last": min(last), "lowest_best": min(best)}


def at_common_pass(curves):
    """{"common_pass": the last pass at which every run has a test error (None: there is none),
    "mean_common"/"std_common": the errors there}: the one mean over runs of unequal lengths that compares like
    with like (a run at pass 21 and one at pass 280 have no meaningful mean of their last passes)."""
    shared = set.intersection(*(set(c.passes) for c in curves))
    if not shared:
        return {"common_pass": None, "mean_common": None, "std_common": None}
    common = max(shared)
    values = [c.errors[c.passes.index(common)] for c in curves]
    return {"common_pass": common, "mean_common": statistics.fmean(values),
            "std_common": statistics.stdev(values) if len(values) > 1 else None}


def _pct(value):
    return f"{100 * value:.2f}"


def render_long_runs(curves, paper_error, title, command, planned_passes=None):
    """Markdown and the JSON dict of the statistics of `curves` against `paper_error` (a fraction)."""
    stats = [run_statistics(c) for c in curves]
    summary = {**across_runs(stats), **at_common_pass(curves)}
    reaches = lambda value: "yes" if value <= paper_error else "no"  # noqa: E731
    rows = [[s.label, s.passes if planned_passes is None else f"{s.passes} of {planned_passes}", _pct(s.last_error),
             reaches(s.last_error), f"{_pct(s.best_error)} (pass {s.best_pass})", reaches(s.best_error)] for s in stats]
    std_last = "" if summary["std_last"] is None else f" ± {_pct(summary['std_last'])}"
    std_best = "" if summary["std_best"] is None else f" ± {_pct(summary['std_best'])}"
    statistic_rows = [
        ["mean ± std of the last-pass errors", f"{_pct(summary['mean_last'])}{std_last}", reaches(summary["mean_last"])],
        ["mean ± std of the best-pass errors", f"{_pct(summary['mean_best'])}{std_best}", reaches(summary["mean_best"])],
        [f"best run by its last pass ({summary['best_run_by_last']})", _pct(summary["lowest_last"]),
         reaches(summary["lowest_last"])],
        [f"best run by its best pass ({summary['best_run_by_best']})", _pct(summary["lowest_best"]),
         reaches(summary["lowest_best"])]]
    if len({s.passes for s in stats}) > 1 and summary["common_pass"]:  # unequal lengths: also like with like
        std_common = "" if summary["std_common"] is None else f" ± {_pct(summary['std_common'])}"
        statistic_rows.insert(0, [f"mean ± std at pass {summary['common_pass']}, the last all runs have",
                                  f"{_pct(summary['mean_common'])}{std_common}", reaches(summary["mean_common"])])
    reached = [row[0] for row in statistic_rows if row[2] == "yes"]
    unfinished = [s.label for s in stats if planned_passes is not None and s.passes < planned_passes]
    lines = [f"# {title}", "",
             f"Test error, % (the whole test set, after each pass). The paper's value: **{_pct(paper_error)}%** "
             "(which statistic it is, the paper does not say; the authors' code logs every pass and selects none).",
             "", tabulate(rows, headers=["run", "passes", "last pass %", f"≤ {_pct(paper_error)}?",
                                         "best pass % (pass)", f"≤ {_pct(paper_error)}?"],
                          tablefmt="github", disable_numparse=True), "",
             tabulate(statistic_rows, headers=[f"statistic over {len(stats)} run(s)", "%", f"≤ {_pct(paper_error)}?"],
                      tablefmt="github", disable_numparse=True), "",
             ("Reaches the paper's value: " + "; ".join(reached) + "." if reached
              else f"None of these statistics reaches the paper's {_pct(paper_error)}%."),
             *([f"Still training (fewer passes than the {planned_passes} planned): {', '.join(unfinished)}; "
                "these numbers are not final."] if unfinished else []),
             "", f"Made by `{command}`."]
    data = {"title": title, "paper_error": paper_error, "planned_passes": planned_passes, "runs": [asdict(s) for s in stats],
            "summary": summary, "reaches_paper": reached, "command": command}
    return "\n".join(lines) + "\n", data


def run_identity(path):
    """(method, dataset) of a record JSON (its own fields) or a run folder (its config.json's "run"); (None,
    None) where the file does not say."""
    path = Path(path)
    try:
        content = read_json_file(RunFolder(path).config if path.is_dir() else path)
    except (BadValueError, OSError):
        return None, None
    content = content.get("run", content) if isinstance(content, dict) and path.is_dir() else content
    if not isinstance(content, dict):
        return None, None
    return content.get("method"), content.get("dataset")


def paper_error_of(labelled_paths, option="--paper"):
    """The paper's Table II test error (%) shared by all the runs' (method, dataset), from the one reference
    table (paper_reference.py); raises where the runs have none or differ."""
    from .paper_reference import paper_test_error
    identities = {run_identity(path) for _, path in labelled_paths}
    values = {paper_test_error(method, dataset) for method, dataset in identities}
    if len(identities) != 1 or None in values:
        named = ", ".join(sorted(f"{m or '?'} on {d or '?'}" for m, d in identities))
        raise BadValueError(f"the run(s) ({named}) share no test error in the paper's Table II; give it with {option}")
    return values.pop()


def read_curves(labelled_paths):
    """[(label, path)] -> [RunCurve]; a path is a record JSON or a run folder (its metrics.json), read with the
    suite's strict JSON reader (core/json_files.py)."""
    curves = []
    for label, path in labelled_paths:
        path = Path(path)
        file = RunFolder(path).metrics if path.is_dir() else path
        if not file.is_file():
            raise BadValueError(f"{file} does not exist")
        curves.append(RunCurve.from_record(label, read_json_file(file)))
    return curves


STATISTICS_KEYS = {"paper_error": float, "summary": dict, "runs": list, "reaches_paper": list}
SUMMARY_KEYS = ("runs", "mean_last", "std_last", "mean_best", "std_best", "best_run_by_best", "lowest_best")


def check_statistics(data, name):
    """Refuse (one line) a JSON that is not a statistics file written by `long-runs`."""
    if not isinstance(data, dict):
        raise BadValueError(f"{name}: not a long-runs statistics file (a JSON object); remake it with "
                            "`python cli.py long-runs ...` (the command is in its .md twin)")
    for key, kind in STATISTICS_KEYS.items():
        if not isinstance(data.get(key), (int, float) if kind is float else kind) or isinstance(data.get(key), bool):
            raise BadValueError(f"{name}: not a long-runs statistics file (`{key}` missing or not a "
                                f"{kind.__name__}); remake it with `python cli.py long-runs ...`")
    missing = [key for key in SUMMARY_KEYS if key not in data["summary"]]
    bad_runs = [r for r in data["runs"] if not (isinstance(r, dict) and isinstance(r.get("label"), str)
                                                and isinstance(r.get("passes"), int))]
    if missing or bad_runs or not data["runs"]:
        raise BadValueError(f"{name}: not a long-runs statistics file ("
                            + (f"summary lacks {', '.join(missing)}" if missing else "its `runs` are not runs")
                            + "); remake it with `python cli.py long-runs ...`")


def load_statistics(path):
    """A statistics JSON written by `long-runs`, read strictly and checked (one line if it is not one)."""
    data = read_json_file(path)
    check_statistics(data, path)
    return data


def table_note(data, source):
    """One footnote line for a results table from a statistics JSON written by `render_long_runs` (checked
    with check_statistics): the mean ± std over runs (at the last pass all runs have when their lengths
    differ, else of their last and best passes), the best run, which statistic reaches the paper's value,
    and which runs are still short of the planned passes. `source` names the file (e.g. a markdown link)."""
    paper, summary, runs = data["paper_error"], data["summary"], data["runs"]
    spread = lambda key: "" if summary.get(f"std_{key}") is None else f" ± {_pct(summary[f'std_{key}'])}"  # noqa: E731
    reached = data["reaches_paper"]
    planned = data.get("planned_passes")
    short = [f"{r['label']} at pass {r['passes']}" for r in runs if planned and r["passes"] < planned]
    if len({r["passes"] for r in runs}) == 1:
        means = (f"last pass {_pct(summary['mean_last'])}{spread('last')}%, best pass "
                 f"{_pct(summary['mean_best'])}{spread('best')}% (mean ± std over runs)")
    elif summary.get("common_pass"):  # a mean over runs at different passes compares nothing
        means = (f"at pass {summary['common_pass']}, the last all runs have, {_pct(summary['mean_common'])}"
                 f"{spread('common')}% (mean ± std over runs)")
    else:
        means = "runs of unequal lengths with no pass in common: no mean over runs"
    return (f"{data.get('title') or 'Long runs'} ({source}, {summary['runs']} run(s)): {means}; the lowest "
            f"error of any run at any pass, {summary['best_run_by_best']}'s {_pct(summary['lowest_best'])}%, is "
            "chosen on the test set (an optimistic bound); "
            + (f"reaching the paper's {_pct(paper)}%: {'; '.join(reached)}." if reached
               else f"none of these reaches the paper's {_pct(paper)}%.")
            + (f" Still training ({', '.join(short)} of {planned}): not final." if short else ""))


IDENTITY_TEXT_KEYS = ("method", "dataset", "recipe", "labeled_subset")


def run_protocol(label, record):
    """(method, dataset, recipe, labeled set, settings as sorted JSON, number of labels or None) of a `report`
    record's `config.run`, each checked for its type (one line if the record is not one)."""
    config = record.get("config") if isinstance(record, dict) else None
    run = config.get("run") if isinstance(config, dict) else None
    if not isinstance(run, dict):
        raise BadValueError(f"{label}: the record has no `config.run` object (remake it with `python cli.py report`)")
    bad = [key for key in IDENTITY_TEXT_KEYS if not isinstance(run.get(key, ""), str)]
    overrides = run.get("overrides") or {}
    num_labeled = run.get("num_labeled")
    if bad or not isinstance(overrides, dict) or not (num_labeled is None or
                                                      (isinstance(num_labeled, int) and not isinstance(num_labeled, bool))):
        named = ", ".join(bad + ([] if isinstance(overrides, dict) else ["overrides"])) or "num_labeled"
        raise BadValueError(f"{label}: `config.run` has a malformed {named} (remake it with `python cli.py report`)")
    return (*(run.get(key, "") for key in IDENTITY_TEXT_KEYS), json.dumps(overrides, sort_keys=True), num_labeled)


def recipe_runs_summary(labelled_records):
    """[(label, record)] of `report` records (runs of one method with one recipe, e.g. a baseline's own authors'
    recipe) -> their identity and the mean ± std (ddof=1; None for one run) of their last-pass test errors, for a
    table row of their own. Refuses (one line) records of different methods, datasets, recipes, labeled sets,
    settings or numbers of labels (where the record states it): a mean over them would mix protocols."""
    protocols, stats, seeds, planned = [], [], [], []
    for label, record in labelled_records:
        protocols.append(run_protocol(label, record))
        stats.append(run_statistics(RunCurve.from_record(label, record)))
        seeds.append(record["config"]["run"].get("seed"))
        planned.append(record.get("epochs_planned") if isinstance(record.get("epochs_planned"), int) else None)
    label_counts = {protocol[-1] for protocol in protocols} - {None}  # records rebuilt from a command lack it
    if len({protocol[:-1] for protocol in protocols}) != 1 or len(label_counts) > 1:
        raise BadValueError("the records " + ", ".join(label for label, _ in labelled_records) + " are not runs of "
                            "one protocol (method, dataset, recipe, labeled set, settings, number of labels)")
    method, dataset, recipe, labeled_subset, overrides, _ = protocols[0]
    last = [s.last_error for s in stats]
    return {"method": method, "dataset": dataset, "recipe": recipe, "labeled_subset": labeled_subset,
            "overrides": json.loads(overrides), "n": len(stats), "mean_last": statistics.fmean(last),
            "std_last": statistics.stdev(last) if len(last) > 1 else None,
            "runs": [{"label": s.label, "seed": seed, "passes": s.passes, "planned": plan, "last_error": s.last_error,
                      "best_error": s.best_error, "best_pass": s.best_pass} for s, seed, plan in zip(stats, seeds, planned)]}
