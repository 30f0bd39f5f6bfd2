"""Table files and records: committed records render the committed tables byte for byte, and no command
replaces a table or a record with less than it had unless --force (the data-loss cases)."""
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

import segma_bench.cli.main as cli
from conftest import tiny_options
from segma_bench.datasets.registry import DATASETS
from segma_bench.evaluation.classification import train
from segma_bench.reporting import budgets
from segma_bench.reporting import reproduce as reproduce_module
from segma_bench.reporting.budgets import Budget, MethodBudget, table_file_name
from segma_bench.reporting.guards import WouldLoseResults
from segma_bench.reporting.paper_reference import PAPER_TABLES
from segma_bench.reporting.results import load_records, record_path, write_record
from segma_bench.training import RunSpec

REPO = Path(__file__).resolve().parents[1]


def write_cell(results, method, seed, metrics, budget="comparable", epochs=5, dataset="mnist"):
    write_record(record_path(results, budget, dataset, method, seed), {
        "method": method, "dataset": dataset, "seed": seed, "budget": budget, "metrics": metrics,
        "run_dir": f"runs/reproduce/{budget}/{dataset}/{method}/seed{seed}",
        "protocol": {"test_error": "argmax of classify() over all 10000 test images",
                     "fid": {"generated_images": 10000, "reference": "10000 random mnist train images (seed 0)",
                             "floor": "10000 random mnist test images against the reference", "floor_fid": 1.1,
                             "weights_sha256": "3f" * 32, "pytorch_fid_version": "0.3.0"},
                     "kid": {"estimator": "unbiased MMD²", "subsets": 100, "subset_size": 1000,
                             "kernel": "cubic", "floor_kid": 0.0001}},
        "training": {"epochs": epochs, "train_seconds": 61.0}, "timing": {}})


def table_command(*args):
    return CliRunner().invoke(cli.cli, ["table", *map(str, args)])


def test_records_under_results_are_not_ignored_by_git():
    result = subprocess.run(["git", "check-ignore", "-q", "results/runs/comparable/mnist-segma-seed0.json"],
                            cwd=REPO, capture_output=True)
    if result.returncode == 128:
        pytest.skip("not a git checkout")
    assert result.returncode == 1, "results/runs/ records would not be committed (.gitignore matches them)"


def committed_tables():
    """(table, budget) of every committed table file whose metric has committed records at that budget."""
    for budget in sorted(budgets.BUDGETS):
        frame = load_records(REPO / "results", budget)
        for table, spec in PAPER_TABLES.items():
            if (REPO / "results" / table_file_name(table, budget)).exists() and \
                    not frame[frame.metric == spec["metric"]].empty:
                yield table, budget


@pytest.mark.parametrize("table, budget", list(committed_tables()) or [pytest.param(0, "", marks=pytest.mark.skip(
    reason="no committed records yet (results/runs/BUDGET/); the lead commits the comparable budget's"))])
def test_a_fresh_clone_renders_the_committed_tables_byte_for_byte(tmp_path, table, budget):
    # a clone elsewhere: its own results/ folder, the command run from the clone's root (the tests' cwd)
    shutil.copytree(REPO / "results" / "runs", tmp_path / "results" / "runs")
    from segma_bench.reporting.tables import LONG_RUN_STATISTICS, OWN_RECIPE_RECORDS
    own_recipe = {name for by_method in OWN_RECIPE_RECORDS.values() for names in by_method.values() for name in names}
    for name in set(LONG_RUN_STATISTICS.values()) | own_recipe:  # the long-run records a table quotes: committed too
        if (REPO / "results" / name).is_file():
            shutil.copy(REPO / "results" / name, tmp_path / "results" / name)
    result = table_command("--table", table, "--budget", budget)
    assert result.exit_code == 0, result.output
    name = table_file_name(table, budget)
    assert (tmp_path / "results" / name).read_bytes() == (REPO / "results" / name).read_bytes()


def test_table_renders_the_same_bytes_from_the_same_records_anywhere(tmp_path, monkeypatch):
    for seed in (0, 1):
        write_cell(tmp_path / "a" / "results", "segma", seed, {"sample_fid": 20.0 + seed, "sample_kid": 0.01 + seed / 100})
        write_cell(tmp_path / "a" / "results", "adgm", seed, {"sample_fid": 30.0 + seed, "sample_kid": 0.02})
    monkeypatch.chdir(tmp_path / "a")  # each checkout renders its own results/ from its root
    assert table_command("--table", 1).exit_code == 0
    shutil.copytree(tmp_path / "a" / "results" / "runs", tmp_path / "fresh-clone" / "results" / "runs")
    monkeypatch.chdir(tmp_path / "fresh-clone")
    assert table_command("--table", 1).exit_code == 0
    committed = (tmp_path / "a" / "results" / "table1.md").read_bytes()
    assert committed == (tmp_path / "fresh-clone" / "results" / "table1.md").read_bytes()
    text = committed.decode()
    # MNIST only: the dataset columns are those with records, so no half-`missing` table
    assert "SVHN" not in text and "| SeGMA " in text and "20.50 ± 0.71 (n=2)" in text
    assert "15.00 ± 7.07" in text  # KID × 10³ beside the FID
    assert "SeGMA 5 (original code: 500)" in text  # training length against the authors' code's
    assert "the paper states none" in text


def test_table_without_records_fails_and_writes_nothing(tmp_path):
    (tmp_path / "table2-quick.md").write_text("committed table\n")
    write_cell(tmp_path, "segma", 0, {"test_error": 0.1})  # another budget's records do not count
    result = table_command("--table", 2, "--budget", "quick", "--results-dir", tmp_path)
    assert result.exit_code == 1 and "no records for table 2 at budget 'quick'" in result.output
    assert (tmp_path / "table2-quick.md").read_text() == "committed table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "table2-quick.md"]


def test_dataset_filter_without_records_for_it_fails(tmp_path):
    write_cell(tmp_path, "segma", 0, {"test_error": 0.1})
    result = table_command("--table", 2, "--dataset", "svhn", "--results-dir", tmp_path)
    assert result.exit_code == 1 and "on svhn" in result.output and not (tmp_path / "table2.md").exists()


def test_a_table_with_fewer_filled_cells_replaces_one_only_with_force(tmp_path):
    write_cell(tmp_path, "segma", 0, {"test_error": 0.1})
    write_cell(tmp_path, "segma", 1, {"test_error": 0.2})
    write_cell(tmp_path, "adgm", 0, {"test_error": 0.05})
    assert table_command("--table", 2, "--results-dir", tmp_path).exit_code == 0
    before = (tmp_path / "table2.md").read_text()
    record_path(tmp_path, "comparable", "mnist", "segma", 1).unlink()  # fewer seeds behind a cell
    result = table_command("--table", 2, "--results-dir", tmp_path)
    assert result.exit_code == 1 and "--force" in result.output and len(result.output.strip().splitlines()) == 1
    assert (tmp_path / "table2.md").read_text() == before
    assert table_command("--table", 2, "--results-dir", tmp_path, "--force").exit_code == 0
    assert (tmp_path / "table2.md").read_text() != before


def test_reproduce_with_negative_seeds_fails_and_writes_nothing(tmp_path):
    result = CliRunner().invoke(cli.cli, ["reproduce", "--table", "2", "--seeds", "-1", "--results-dir",
                                          str(tmp_path)])
    assert result.exit_code == 2 and "--seeds" in result.output and list(tmp_path.iterdir()) == []  # usage error


TINY = Budget("tiny", epochs={}, fid_samples=20, default_seeds=1, reuse_runs=True,
              methods={"segma": MethodBudget(epochs=2, recipe="authors-code")})


@pytest.fixture
def toy(monkeypatch, make_fake, tmp_path):
    fake = make_fake(name="toy-files")
    monkeypatch.setitem(DATASETS, "toy-files", lambda root, cache: fake)
    monkeypatch.setitem(budgets.BUDGETS, "tiny", TINY)
    options = tiny_options(tmp_path, device="cpu", fid_device="cpu")
    return fake, options


def test_reproduce_refuses_to_replace_a_record_with_a_shorter_run(tmp_path, toy):
    _, options = toy
    write_cell(options.results_dir, "segma", 0, {}, budget="tiny", epochs=40, dataset="toy-files")
    path = record_path(options.results_dir, "tiny", "toy-files", "segma", 0)
    before = path.read_text()
    with pytest.raises(WouldLoseResults, match="40 epochs"):
        reproduce_module.reproduce(2, ["toy-files"], ["segma"], 1, "tiny", options, "cmd", log=lambda _: None)
    trained = tmp_path / "runs" / "reproduce" / "tiny" / "toy-files"  # (the cells' lock folder may exist)
    assert path.read_text() == before and not trained.exists()  # refused before any training
    reproduce_module.reproduce(2, ["toy-files"], ["segma"], 1, "tiny", replace(options, force=True), "cmd",
                               log=lambda _: None)
    assert json.loads(path.read_text())["training"]["epochs"] == 2


def test_a_long_run_of_the_same_identity_is_evaluated_not_retrained(tmp_path, toy):
    fake, options = toy
    long_run = tmp_path / "runs" / "toy-files" / "segma-authors-code" / "seed0"
    other_seed = tmp_path / "runs" / "toy-files" / "segma-authors-code" / "seed1-renamed"
    train(RunSpec("segma", "toy-files", seed=0, recipe="authors-code", epochs=3, progress=False), long_run, data=fake)
    train(RunSpec("segma", "toy-files", seed=1, recipe="authors-code", epochs=4, progress=False), other_seed,
          data=fake)
    log = []
    reproduce_module.reproduce(2, ["toy-files"], ["segma"], 1, "tiny", options, "cmd", log=log.append)
    record = json.loads(record_path(options.results_dir, "tiny", "toy-files", "segma", 0).read_text())
    assert record["run_dir"] == str(long_run) and record["run_reused"] and record["training"]["epochs"] == 3
    assert record["budget_epochs"] == 2 and record["command"] == "cmd"
    assert not (tmp_path / "runs" / "reproduce" / "tiny" / "toy-files").exists()  # nothing trained (only the lock folder)
    text = (options.results_dir / "table2-tiny.md").read_text()
    assert f"SeGMA 3 (budget: at least 2) [runs reused: `{long_run}`]" in text


def test_a_cell_keeps_its_budget_length_when_its_run_trains_on_and_recompute_needs_force(tmp_path, toy):
    """A 2-pass cell whose run is then trained to 4 passes (as the 150-pass comparable SeGMA cells' runs went on
    to 501 for the paper budget) stays at 2 passes; --recompute would change its length, so it needs --force."""
    fake, options = toy
    run_dir = tmp_path / "runs" / "toy-files" / "segma-authors-code" / "seed0"
    spec = RunSpec("segma", "toy-files", seed=0, recipe="authors-code", epochs=2, progress=False)
    train(spec, run_dir, data=fake)
    reproduce_module.reproduce(2, ["toy-files"], ["segma"], 1, "tiny", options, "cmd", log=lambda _: None)
    path = record_path(options.results_dir, "tiny", "toy-files", "segma", 0)
    before = path.read_text()
    train(replace(spec, epochs=4), run_dir, data=fake)  # trained on, past the budget's 2
    log = []
    reproduce_module.reproduce(2, ["toy-files"], ["segma"], 1, "tiny", options, "cmd", log=log.append)
    assert path.read_text() == before and any("already in" in line for line in log)
    with pytest.raises(WouldLoseResults, match="holds a run of 2 epochs; this one would have 4"):
        reproduce_module.reproduce(2, ["toy-files"], ["segma"], 1, "tiny", replace(options, recompute=True), "cmd",
                                   log=lambda _: None)
    assert path.read_text() == before
    reproduce_module.reproduce(2, ["toy-files"], ["segma"], 1, "tiny", replace(options, recompute=True, force=True),
                               "cmd", log=lambda _: None)
    assert json.loads(path.read_text())["training"]["epochs"] == 4


def test_a_forced_change_of_length_drops_the_metrics_of_the_old_checkpoint(tmp_path, toy, monkeypatch):
    """A record's numbers all come from the checkpoint it names: after --force moves a 2-pass record to its
    run's 4 passes for Table I, its 2-pass test error is dropped, and Table II evaluates it again at 4."""
    from test_harness import StubExtractor
    fake, options = toy
    monkeypatch.setattr(reproduce_module.launch, "extractor_factory", lambda options: StubExtractor)
    run_dir = tmp_path / "runs" / "toy-files" / "segma-authors-code" / "seed0"
    spec = RunSpec("segma", "toy-files", seed=0, recipe="authors-code", epochs=2, progress=False)
    train(spec, run_dir, data=fake)
    reproduce_module.reproduce(2, ["toy-files"], ["segma"], 1, "tiny", options, "cmd", log=lambda _: None)
    train(replace(spec, epochs=4), run_dir, data=fake)
    with pytest.raises(WouldLoseResults, match="holds a run of 2 epochs; this one would have 4"):
        reproduce_module.reproduce(1, ["toy-files"], ["segma"], 1, "tiny", options, "cmd", log=lambda _: None)
    log = []
    reproduce_module.reproduce(1, ["toy-files"], ["segma"], 1, "tiny", replace(options, force=True), "cmd",
                               log=log.append)
    record = json.loads(record_path(options.results_dir, "tiny", "toy-files", "segma", 0).read_text())
    assert record["evaluated_at_epoch"] == {"sample_fid": 4} and "test_error" not in record["metrics"]
    assert record["training"]["epochs"] == 4 and any("dropped test_error" in line for line in log)
    reproduce_module.reproduce(2, ["toy-files"], ["segma"], 1, "tiny", options, "cmd", log=lambda _: None)
    record = json.loads(record_path(options.results_dir, "tiny", "toy-files", "segma", 0).read_text())
    assert record["evaluated_at_epoch"] == {"sample_fid": 4, "test_error": 4}


def test_a_missing_metric_is_evaluated_from_the_records_own_run_not_a_longer_one(tmp_path, toy, monkeypatch):
    from test_harness import StubExtractor
    fake, options = toy
    monkeypatch.setattr(reproduce_module.launch, "extractor_factory", lambda options: StubExtractor)
    reproduce_module.reproduce(2, ["toy-files"], ["segma"], 1, "tiny", options, "cmd", log=lambda _: None)
    own = tmp_path / "runs" / "reproduce" / "tiny" / "toy-files" / "segma" / "seed0"  # trained there: 2 passes
    longer = tmp_path / "runs" / "toy-files" / "segma-authors-code" / "seed0"  # same identity, 4 passes
    train(RunSpec("segma", "toy-files", seed=0, recipe="authors-code", epochs=4, progress=False), longer, data=fake)
    reproduce_module.reproduce(1, ["toy-files"], ["segma"], 1, "tiny", options, "cmd", log=lambda _: None)
    record = json.loads(record_path(options.results_dir, "tiny", "toy-files", "segma", 0).read_text())
    assert record["run_dir"] == str(own) and record["evaluated_at_epoch"] == {"test_error": 2, "sample_fid": 2}


def test_no_train_evaluates_the_runs_that_hold_the_budget_and_trains_nothing(tmp_path, toy):
    from segma_bench.training.run_folder import read_run_metrics
    fake, options = toy
    done = tmp_path / "runs" / "toy-files" / "segma-authors-code" / "seed0"
    short = tmp_path / "runs" / "toy-files" / "segma-authors-code" / "seed1"  # 1 pass: below the budget's 2
    train(RunSpec("segma", "toy-files", seed=0, recipe="authors-code", epochs=3, progress=False), done, data=fake)
    train(RunSpec("segma", "toy-files", seed=1, recipe="authors-code", epochs=1, progress=False), short, data=fake)
    log = []
    reproduce_module.reproduce(2, ["toy-files"], ["segma"], 2, "tiny", replace(options, no_train=True), "cmd",
                               log=log.append)
    assert json.loads(record_path(options.results_dir, "tiny", "toy-files", "segma", 0).read_text())["run_dir"] == str(done)
    assert not record_path(options.results_dir, "tiny", "toy-files", "segma", 1).exists()
    assert any("seed1: skipped (--no-train)" in line for line in log)
    assert read_run_metrics(short)["epochs_completed"] == 1  # not trained further
    assert not list((tmp_path / "runs" / "reproduce").rglob("checkpoint.pt"))  # nor trained from scratch


def test_each_metric_of_a_record_keeps_the_command_that_computed_it(tmp_path, toy, monkeypatch):
    from test_harness import StubExtractor
    _, options = toy
    monkeypatch.setattr(reproduce_module.launch, "extractor_factory", lambda options: StubExtractor)
    reproduce_module.reproduce(2, ["toy-files"], ["segma"], 1, "tiny", options, "cmd-table-2", log=lambda _: None)
    reproduce_module.reproduce(1, ["toy-files"], ["segma"], 1, "tiny", options, "cmd-table-1", log=lambda _: None)
    record = json.loads(record_path(options.results_dir, "tiny", "toy-files", "segma", 0).read_text())
    assert {"test_error", "sample_fid", "sample_kid"} <= set(record["metrics"])
    assert record["command_by_metric"] == {"test_error": "cmd-table-2", "sample_fid": "cmd-table-1"}
    assert record["command"] == "cmd-table-1"  # the latest call


def test_comparable_budget_states_each_methods_length_recipe_and_labeled_protocol():
    comparable = budgets.get_budget("comparable")
    assert comparable.fid_samples == 10000 and comparable.default_seeds >= 2
    segma = comparable.run_settings("segma", "mnist")
    assert segma["recipe"] == "authors-code" and segma["epochs"] == comparable.methods["segma"].epochs
    assert comparable.run_settings("m1m2", "mnist")["overrides"] == comparable.methods["m1m2"].overrides
    assert budgets.get_budget("quick").run_settings("segma", "mnist")["epochs"] == 5
    assert table_file_name(2, "comparable") == "table2.md" and table_file_name(2, "quick") == "table2-quick.md"
    assert not load_records(REPO / "results", "no-such-budget").shape[0]


def test_results_readme_shows_every_comparable_budget_side_by_side_and_picks_none(tmp_path):
    from segma_bench.reporting.status import render_status
    write_cell(tmp_path, "segma", 0, {"test_error": 0.12})
    write_cell(tmp_path, "segma", 1, {"test_error": 0.14})
    write_cell(tmp_path, "segma", 0, {"test_error": 0.10}, budget="paper")  # lower, yet not chosen over the other
    write_cell(tmp_path, "segma", 0, {"test_error": 0.01}, budget="quick")  # not comparable: not shown
    text = render_status(tmp_path)
    header = next(line for line in text.splitlines() if line.startswith("| table | model"))
    assert "| ours, `comparable` | ours, `paper` | paper |" in header
    line = next(line for line in text.splitlines() if line.startswith("| 2 | SeGMA | MNIST"))
    assert "| 13.00 ± 1.41 (n=2) | 10.00 (n=1) | 12.70 |" in line and "1.00" not in line
    assert "[comparable](runs/comparable/), [paper](runs/paper/)" in line
    write_cell(tmp_path, "adgm", 0, {"test_error": 0.05})  # a budget without the cell shows a dash
    line = next(line for line in render_status(tmp_path).splitlines() if line.startswith("| 2 | ADGM | MNIST"))
    assert "| 5.00 (n=1) | — | 4.10 |" in line
    assert "[runs/comparable/](runs/comparable/)" in text and "[runs/quick/](runs/quick/)" in text


def test_results_readme_shows_no_spread_for_a_single_seed(tmp_path):
    from segma_bench.reporting.status import render_status
    write_cell(tmp_path, "adgm", 0, {"test_error": 0.05})
    line = next(line for line in render_status(tmp_path).splitlines() if line.startswith("| 2 | ADGM | MNIST"))
    assert "| 5.00 (n=1) |" in line and "±" not in line


def test_results_readme_links_only_the_headline_tables_that_exist(tmp_path):
    from segma_bench.reporting.status import render_status
    write_cell(tmp_path, "segma", 0, {"test_error": 0.12})
    (tmp_path / "table2.md").write_text("# Table II\n")
    headline = next(line for line in render_status(tmp_path).splitlines() if "Headline tables:" in line)
    assert "[table2.md](table2.md)" in headline and "[table1.md]" not in headline and "[table3.md]" not in headline
    assert "not written yet: table1.md, table3.md" in headline
