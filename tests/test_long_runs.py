"""Statistics of a set of long runs against the paper's value, on hand-made histories."""
import json

import pytest
from click.testing import CliRunner

from segma_bench.cli.main import cli
from segma_bench.core.errors import BadValueError
from segma_bench.reporting.long_runs import RunCurve, across_runs, render_long_runs, run_statistics


def record(errors):
    return {"history": [{"epoch": i + 1, "test_error": e} for i, e in enumerate(errors)]}


def test_last_and_best_pass_of_one_run():
    stats = run_statistics(RunCurve.from_record("a", record([0.30, 0.12, 0.15, 0.12, 0.14])))
    assert (stats.passes, stats.last_error, stats.best_error, stats.best_pass) == (5, 0.14, 0.12, 2)  # first best


def test_passes_without_a_test_error_are_skipped_not_counted_as_zero():
    curve = RunCurve.from_record("a", {"history": [{"epoch": 1, "test_error": None}, {"epoch": 2, "test_error": 0.2}]})
    assert curve.passes == (2,) and run_statistics(curve).best_error == 0.2


def test_mean_std_and_best_run_over_runs():
    stats = [run_statistics(RunCurve.from_record(label, record(errors)))
             for label, errors in [("a", [0.2, 0.10, 0.14]), ("b", [0.2, 0.16, 0.16]), ("c", [0.2, 0.13, 0.12])]]
    summary = across_runs(stats)
    assert summary["mean_last"] == pytest.approx((0.14 + 0.16 + 0.12) / 3)
    assert summary["std_last"] == pytest.approx(0.02)  # sample std (ddof=1) of 14, 16, 12 %
    assert summary["mean_best"] == pytest.approx((0.10 + 0.16 + 0.12) / 3)
    assert summary["best_run_by_last"] == "c" and summary["best_run_by_best"] == "a"
    assert across_runs(stats[:1])["std_last"] is None  # one run: no spread to state


def test_rendered_file_says_which_statistic_reaches_the_paper():
    curves = [RunCurve.from_record("a", record([0.3, 0.126, 0.14])), RunCurve.from_record("b", record([0.3, 0.2, 0.18]))]
    text, data = render_long_runs(curves, 0.127, "t", "cmd", planned_passes=5)
    rows = {cells[0]: cells[1:] for line in text.splitlines() if line.startswith("| ")
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    assert rows["best run by its best pass (a)"] == ["12.60", "yes"] and rows["mean ± std of the last-pass errors"][1] == "no"
    assert data["reaches_paper"] == ["best run by its best pass (a)"]
    assert "Still training" in text and "not final" in text
    text, data = render_long_runs(curves[1:], 0.127, "t", "cmd")
    assert "None of these statistics reaches the paper's 12.70%" in text and data["reaches_paper"] == []


@pytest.mark.parametrize("bad", [{"history": []}, [1, 2], {"history": [{"epoch": 1, "test_error": float("nan")}]},
                                 {"history": [{"epoch": 1, "test_error": 3.0}]}, {"metrics": {}}])
def test_bad_records_are_refused(bad):
    with pytest.raises(BadValueError):
        RunCurve.from_record("x", bad)


def test_the_command_writes_markdown_and_json_and_refuses_to_replace_them(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(record([0.3, 0.12])))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(json.dumps(record([0.3, 0.2])))
    out = tmp_path / "stats.md"
    args = ["long-runs", f"a={tmp_path / 'a.json'}", f"b={run_dir}", "--paper", "12.7", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.with_suffix(".json").read_text())
    assert [r["label"] for r in data["runs"]] == ["a", "b"] and data["paper_error"] == pytest.approx(0.127)
    assert "python cli.py long-runs" in out.read_text()
    assert "--out " + str(out) + " --force`" in out.read_text()  # the written command remakes the file as it is
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and "--force" in again.output
    assert CliRunner().invoke(cli, [*args[:-1], str(tmp_path / "x.json")]).exit_code == 2  # twin would be itself


def test_a_long_run_record_carries_its_config(tmp_path, fake_data):
    """`report`'s JSON holds the run's config (recipe, labeled subset, settings) beside the per-pass history."""
    from segma_bench.evaluation.classification import train
    from segma_bench.reporting.run_report import write_run_report
    from segma_bench.training import RunSpec
    train(RunSpec(method="segma", dataset="fake", epochs=2, progress=False, recipe="authors-code",
                  labeled_subset="first", overrides={"hidden": (8,)}), tmp_path / "run", data=fake_data)
    path, _ = write_run_report(tmp_path / "run", tmp_path / "out" / "r.md", "python cli.py report x")
    saved = json.loads(path.with_suffix(".json").read_text())
    assert saved["config"]["run"]["recipe"] == "authors-code" and saved["config"]["run"]["labeled_subset"] == "first"
    assert saved["config"]["run"]["overrides"] == {"hidden": [8]} and saved["config"]["method_config"]["hidden"] == [8]
    assert len(saved["history"]) == 2 and "--recipe authors-code" in saved["train_command"]


def test_every_committed_long_run_record_names_its_protocol():
    from pathlib import Path
    results = Path(__file__).resolve().parents[1] / "results"
    records = [p for p in [*results.glob("*.json"), *results.glob("segma_ablation/*.json")]
               if "history" in json.loads(p.read_text())]
    assert len(records) >= 20
    for path in records:
        run = json.loads(path.read_text())["config"]["run"]
        assert {"method", "dataset", "seed", "recipe", "labeled_subset", "overrides"} <= set(run), path
    authors = json.loads((results / "segma_mnist_authors_code.json").read_text())["config"]["run"]
    assert authors["labeled_subset"] == "first" and authors["recipe"] == "authors-code"


@pytest.mark.parametrize("run", [
    {"method": "segma", "dataset": "mnist", "seed": 3, "recipe": "authors-code", "labeled_subset": "first",
     "overrides": {}},
    {"method": "segma", "dataset": "mnist", "seed": 0, "recipe": "authors-code", "labeled_subset": "balanced",
     "overrides": {"hidden": (64, 64), "learning_rate": 0.001}},
    {"method": "m1m2", "dataset": "mnist", "seed": 1, "recipe": "", "labeled_subset": "balanced",
     "overrides": {"m1_epochs": 30}}])
def test_the_train_command_of_a_record_gives_back_its_identity(run):
    from segma_bench.reporting.run_report import identity_from_train_command, train_command
    command = train_command(run, 10, "runs/x")
    assert identity_from_train_command(command) == run


def test_table_two_quotes_the_long_run_statistics_at_paper_comparable_budgets_only(tmp_path):
    from segma_bench.reporting.tables import render
    from test_tables import write_cell
    curves = [RunCurve.from_record("seed0", record([0.3, 0.14, 0.15])), RunCurve.from_record("seed1", record([0.3, 0.12]))]
    _, data = render_long_runs(curves, 0.127, "SeGMA long", "cmd", planned_passes=3)
    (tmp_path / "segma_mnist_501.json").write_text(json.dumps(data))
    for budget in ("comparable", "quick"):
        write_cell(tmp_path, "segma", "mnist", 0, {"test_error": 0.10}, budget=budget)
    note = next(line for line in render(2, tmp_path, "comparable", {"segma"}).splitlines()
                if "at the length the paper's code ran" in line)
    # unequal lengths: the mean at pass 2 (14 and 12 %: 13.00 ± 1.41), not over last passes 3 and 2; seed1's
    # best 12.00 reaches 12.70
    assert "SeGMA long ([segma_mnist_501.md](segma_mnist_501.md), 2 run(s))" in note
    assert "at pass 2, the last all runs have, 13.00 ± 1.41%" in note and "last pass 13.50" not in note
    assert "the lowest error of any run at any pass, seed1's 12.00%, is chosen on the test set" in note
    assert "best run by its best pass (seed1)" in note and "seed1 at pass 2 of 3" in note
    assert "at the length the paper's code ran" not in render(2, tmp_path, "quick", {"segma"})  # few-pass tables: not their place
    assert "at the length the paper's code ran" not in render(1, tmp_path, "comparable", {"segma"})  # Table II's statistic only


def test_runs_of_unequal_lengths_are_also_compared_at_the_last_pass_all_have():
    from segma_bench.reporting.long_runs import at_common_pass
    long = RunCurve.from_record("a", record([0.30, 0.20, 0.15, 0.10]))
    short = RunCurve.from_record("b", record([0.40, 0.24]))
    common = at_common_pass([long, short])
    assert common["common_pass"] == 2 and common["mean_common"] == pytest.approx(0.22)
    gap = RunCurve.from_record("c", {"history": [{"epoch": 1, "test_error": 0.5}, {"epoch": 2, "test_error": None},
                                                 {"epoch": 3, "test_error": 0.3}]})
    common = at_common_pass([long, short, gap])  # c has no error at pass 2: pass 1 is the last all have
    assert common["common_pass"] == 1 and common["mean_common"] == pytest.approx((0.30 + 0.40 + 0.5) / 3)
    late = RunCurve.from_record("d", {"history": [{"epoch": 1, "test_error": None}, {"epoch": 2, "test_error": None},
                                                  {"epoch": 3, "test_error": 0.3}]})
    assert at_common_pass([short, late])["common_pass"] is None  # no pass in common: no mean, no crash
    text, data = render_long_runs([short, late], 0.127, "t", "cmd")
    assert "all runs have" not in text and data["summary"]["common_pass"] is None
    text, data = render_long_runs([long, short], 0.127, "t", "cmd", planned_passes=4)
    assert "| mean ± std at pass 2, the last all runs have | 22.00 ± 2.83" in text
    assert data["summary"]["common_pass"] == 2
    equal, _ = render_long_runs([long, long], 0.127, "t", "cmd")
    assert "the last all runs have" not in equal  # equal lengths: the last-pass mean already compares like with like


@pytest.mark.parametrize("bad, message", [
    ([1], "a JSON object"), ({"runs": []}, "`paper_error` missing"),
    ({"paper_error": 0.127, "summary": {}, "runs": [], "reaches_paper": []}, "summary lacks runs"),
])
def test_a_malformed_statistics_file_is_refused_in_one_line_by_table(tmp_path, bad, message):
    from test_tables import write_cell
    (tmp_path / "segma_mnist_501.json").write_text(json.dumps(bad))
    write_cell(tmp_path, "segma", "mnist", 0, {"test_error": 0.10}, budget="comparable")
    result = CliRunner().invoke(cli, ["table", "--table", "2", "--budget", "comparable", "--results-dir", str(tmp_path)])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert "remake it with `python cli.py long-runs" in result.output


@pytest.mark.parametrize("history, message", [
    ([{"epoch": 2, "test_error": 0.2}, {"epoch": 1, "test_error": 0.1}], "must increase"),
    ([{"epoch": 1, "test_error": 0.2}, {"epoch": 1, "test_error": 0.1}], "must increase"),
    ([{"epoch": True, "test_error": 0.2}], "integer `epoch`"), ([{"test_error": 0.2}], "integer `epoch`"),
    ([{"epoch": 1, "test_error": "0.2"}], "not a finite fraction"),
])
def test_the_one_curve_reader_refuses_passes_out_of_order_and_bad_values(history, message):
    from segma_bench.reporting.error_curve import per_pass_test_error
    with pytest.raises(BadValueError, match=message):
        per_pass_test_error({"history": history})
    assert per_pass_test_error({"training": {"test_error_by_epoch": [None, 0.5]}}) == [(1, None), (2, 0.5)]


def test_the_readme_headline_gives_the_paper_length_runs_under_the_table(tmp_path):
    from segma_bench.reporting.status import render_headline
    from test_tables import write_cell
    results = tmp_path / "results"
    write_cell(results, "segma", "mnist", 0, {"test_error": 0.19}, budget="comparable")
    assert "the paper's code ran" not in render_headline(results)  # no statistics file: no line
    _, data = render_long_runs([RunCurve.from_record("seed0", record([0.3, 0.2]))], 0.127, "Long SeGMA", "cmd", 501)
    (results / "segma_mnist_501.json").write_text(json.dumps(data))
    line = render_headline(results).splitlines()[-1]
    assert line.startswith("**At the length the paper's code ran** (MNIST, Table II): Long SeGMA ([results/segma_mnist_501.md]")
    assert "seed0 at pass 2 of 501" in line


def test_the_papers_value_defaults_from_the_reference_table_for_the_runs_method(tmp_path):
    (tmp_path / "segma.json").write_text(json.dumps({"method": "segma", "dataset": "mnist", **record([0.3, 0.2])}))
    (tmp_path / "adgm.json").write_text(json.dumps({"method": "adgm", "dataset": "mnist", **record([0.3, 0.2])}))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(json.dumps(record([0.3, 0.1])))
    (run_dir / "config.json").write_text(json.dumps({"run": {"method": "segma", "dataset": "mnist"}}))
    out = tmp_path / "stats.md"
    result = CliRunner().invoke(cli, ["long-runs", f"a={tmp_path / 'segma.json'}", f"b={run_dir}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.with_suffix(".json").read_text())["paper_error"] == pytest.approx(0.127)
    assert "--paper" not in out.read_text()  # the command remakes it with the same default
    mixed = CliRunner().invoke(cli, ["long-runs", f"a={tmp_path / 'segma.json'}", f"b={tmp_path / 'adgm.json'}",
                                     "--out", str(tmp_path / "mixed.md")])
    assert mixed.exit_code == 1 and "give it with --paper" in mixed.output
    assert not (tmp_path / "mixed.md").exists()


def own_recipe_record(seed, errors, recipe="maaloe-code", method="adgm"):
    return {**record(errors), "epochs_planned": 1000, "config": {"run": {
        "method": method, "dataset": "mnist", "seed": seed, "recipe": recipe, "labeled_subset": "balanced",
        "overrides": {}}}}


def test_a_recipe_summary_is_the_mean_and_std_of_last_passes_of_one_protocol():
    from segma_bench.reporting.long_runs import recipe_runs_summary
    summary = recipe_runs_summary([("a", own_recipe_record(0, [0.3, 0.02, 0.04])),
                                   ("b", own_recipe_record(1, [0.3, 0.06]))])
    assert summary["n"] == 2 and summary["mean_last"] == pytest.approx(0.05)  # last passes, not the best (0.02)
    assert summary["std_last"] == pytest.approx(0.0141421356) and summary["recipe"] == "maaloe-code"
    assert [(r["seed"], r["passes"], r["planned"], r["best_pass"]) for r in summary["runs"]] == [(0, 3, 1000, 2),
                                                                                               (1, 2, 1000, 2)]
    assert recipe_runs_summary([("a", own_recipe_record(0, [0.1]))])["std_last"] is None
    with pytest.raises(BadValueError, match="not runs of one protocol"):
        recipe_runs_summary([("a", own_recipe_record(0, [0.1])), ("b", own_recipe_record(1, [0.1], recipe=""))])
    with pytest.raises(BadValueError, match="no `config.run`"):
        recipe_runs_summary([("a", record([0.1]))])
    counted = [own_recipe_record(seed, [0.1]) for seed in (0, 1, 2)]
    counted[0]["config"]["run"]["num_labeled"] = 100  # a record rebuilt from its command does not state it
    counted[1]["config"]["run"]["num_labeled"] = 100
    assert recipe_runs_summary([("a", counted[0]), ("b", counted[1]), ("c", counted[2])])["n"] == 3
    counted[2]["config"]["run"]["num_labeled"] = 1000
    with pytest.raises(BadValueError, match="number of labels"):
        recipe_runs_summary([("a", counted[0]), ("c", counted[2])])


@pytest.mark.parametrize("path, value, message", [
    (("config",), [1], "no `config.run`"), (("config", "run"), "x", "no `config.run`"),
    (("config", "run", "recipe"), ["a"], "malformed recipe"), (("config", "run", "method"), {"a": 1}, "malformed method"),
    (("config", "run", "overrides"), [1], "malformed overrides"), (("config", "run", "num_labeled"), "100", "num_labeled"),
    (("history",), "x", "not a list"), (("history",), [{"epoch": 1, "test_error": 7}], "not a finite fraction")])
def test_a_malformed_own_recipe_record_is_refused_in_one_line(path, value, message):
    from segma_bench.reporting.long_runs import recipe_runs_summary
    bad = own_recipe_record(0, [0.1])
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(BadValueError, match=message):
        recipe_runs_summary([("a", bad)])


def test_table_two_shows_a_baselines_own_recipe_as_its_own_row_at_paper_comparable_budgets(tmp_path, monkeypatch):
    from segma_bench.reporting import tables
    from test_tables import PLUGIN, write_cell
    monkeypatch.setattr(tables, "OWN_RECIPE_RECORDS", {(2, "mnist"): {"adgm": ("a0.json", "a1.json", "absent.json")}})
    (tmp_path / "a0.json").write_text(json.dumps(own_recipe_record(0, [0.3, 0.04])))
    (tmp_path / "a1.json").write_text(json.dumps(own_recipe_record(1, [0.3, 0.2, 0.05])))
    for budget in ("comparable", "quick", "paper"):
        for method in ("adgm", "segma", "my-plugin"):  # a method beyond the paper's rows: its row stays its own
            write_cell(tmp_path, method, "mnist", 0, {"test_error": 0.10}, budget=budget,
                       **(PLUGIN if method == "my-plugin" else {}))
        write_cell(tmp_path, "segma", "svhn", 0, {"test_error": 0.20}, budget=budget)
    lines = tables.render(2, tmp_path, "comparable", {"segma", "adgm"}).splitlines()
    rows = [line for line in lines if line.startswith("| semi-supervised")]
    assert [row.split("|")[2].strip() for row in rows] == ["M1+M2", "ADGM", "ADGM, `maaloe-code` §", "SeGMA"]
    assert "my-plugin" in lines[lines.index(rows[-1]) + 1]  # after the paper's rows, not displaced
    cells = [cell.strip() for cell in rows[2].split("|")]
    assert cells[3:9] == ["4.50 ± 0.71 (n=2)", "4.10", "+0.40", "—", "41.20", ""]  # no SVHN run: a dash
    note = "\n".join(lines)
    assert "seed 0 ([a0.md](a0.md)), 2 of 1000 planned passes: last 4.00% (lowest 4.00% at pass 2), short" in note
    assert "seed 1 ([a1.md](a1.md)), 3 of 1000 planned passes: last 5.00% (lowest 5.00% at pass 3)" in note
    assert "not what it reaches at its full length" in note
    assert "The runs differ in length (2, 3 passes): their mean mixes lengths." in note
    assert "`maaloe-code` §" not in tables.render(2, tmp_path, "quick", {"segma", "adgm"})  # not comparable
    assert "`maaloe-code` §" not in tables.render(2, tmp_path, "paper", {"segma", "adgm"})  # its own recipe already
    (tmp_path / "a1.json").write_text(json.dumps(own_recipe_record(1, [0.05], method="m1m2")))
    with pytest.raises(BadValueError, match="not runs of one protocol"):
        tables.render(2, tmp_path, "comparable", {"segma", "adgm"})
    (tmp_path / "a1.json").unlink()
    (tmp_path / "a0.json").write_text(json.dumps(own_recipe_record(0, [0.05], method="m1m2", recipe="kingma-code")))
    with pytest.raises(BadValueError, match="a record of m1m2 on mnist, listed for adgm on mnist"):
        tables.render(2, tmp_path, "comparable", {"segma", "adgm"})


def test_an_overridden_recipe_setting_is_named_beside_the_recipes_own_value(tmp_path, monkeypatch):
    from segma_bench.reporting import tables
    from test_tables import write_cell
    monkeypatch.setattr(tables, "OWN_RECIPE_RECORDS", {(2, "mnist"): {"m1m2": ("m.json",)}})
    run = own_recipe_record(0, [0.3, 0.03], method="m1m2", recipe="kingma-code")
    run["config"]["run"]["overrides"] = {"m1_epochs": 1000}
    (tmp_path / "m.json").write_text(json.dumps(run))
    write_cell(tmp_path, "m1m2", "mnist", 0, {"test_error": 0.10}, budget="comparable")
    text = tables.render(2, tmp_path, "comparable", {"m1m2"})
    assert "| M1+M2, `kingma-code` (m1_epochs=1000) § |" in text and "differ in length" not in text
    assert "settings: m1_epochs=1000 (the recipe's: 5000)" in text


def test_a_report_up_to_a_pass_is_the_record_as_it_stood_then(tmp_path, fake_data):
    """A run that trained on past its record stays repeatable: `report --up-to-pass N` cuts the history at N."""
    from segma_bench.evaluation.classification import train
    from segma_bench.reporting.run_report import write_run_report
    from segma_bench.training import RunSpec
    train(RunSpec(method="segma", dataset="fake", epochs=3, progress=False, overrides={"hidden": (8,)}),
          tmp_path / "run", data=fake_data)
    full = json.loads((tmp_path / "run" / "metrics.json").read_text())
    path, text = write_run_report(tmp_path / "run", tmp_path / "r.md", "cmd", up_to_pass=2)
    saved = json.loads(path.with_suffix(".json").read_text())
    assert [h["epoch"] for h in saved["history"]] == [1, 2] and saved["epochs_completed"] == 2
    assert saved["history"] == full["history"][:2] and saved["epochs_planned"] == 3
    assert saved["test_error"] == full["history"][1]["test_error"]  # pass 2's, not the folder's last
    assert saved["train_seconds"] == pytest.approx(sum(h["seconds"] for h in full["history"][:2]), abs=0.1)
    assert "2 of 3 planned epochs" in text and "the record stops at pass 2" in text
    from segma_bench.reporting.status import epochs_text
    assert epochs_text(saved) == "2 (cut)" and epochs_text(full) == "3"  # not shown as a run still training
    with pytest.raises(BadValueError, match="between 1 and 3"):
        write_run_report(tmp_path / "run", tmp_path / "r.md", "cmd", up_to_pass=4)
    path, text = write_run_report(tmp_path / "run", tmp_path / "w.md", "cmd", up_to_pass=3)  # the last: no cut
    assert "up_to_pass" not in json.loads(path.with_suffix(".json").read_text()) and "stops at" not in text
    result = CliRunner().invoke(cli, ["report", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "s.md"),
                                      "--up-to-pass", "9"])
    assert result.exit_code != 0 and "between 1 and 3" in result.output and not (tmp_path / "s.md").exists()
