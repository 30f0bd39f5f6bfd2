"""Tables from result JSONs, and `reproduce` end to end on a tiny dataset."""
import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

import segma_bench.cli.main as cli
import segma_bench.methods as methods
from conftest import tiny_options
from segma_bench.datasets.registry import DATASETS
from segma_bench.reporting import cell as cell_module
from segma_bench.reporting import reproduce as reproduce_module
from segma_bench.reporting.paper_reference import DATASETS as PAPER_DATASETS
from segma_bench.reporting.results import aggregate, load_records, record_path, write_record
from segma_bench.reporting.tables import render


def fid_protocol(n=2000):
    return {"fid": {"generated_images": n, "reference": f"{n} random mnist train images (seed 0)",
                    "floor": f"{n} random mnist test images against the reference", "floor_fid": 9.5,
                    "weights_sha256": "3f2fe0d6bd33" + "0" * 52, "pytorch_fid_version": "0.3.0"},
            "test_error": "argmax of classify() over all 10000 test images"}


def write_cell(results, method, dataset, seed, metrics, budget="quick", **fields):
    write_record(record_path(results, budget, dataset, method, seed), {
        "method": method, "dataset": dataset, "seed": seed, "budget": budget, "metrics": metrics,
        "protocol": fid_protocol(), "training": {"epochs": 5, "train_seconds": 60.0},
        "timing": {"evaluate_sample_fid_seconds": 30.0}, **fields})


PLUGIN = {"plugin": {"path": "/elsewhere/my_method.py", "sha256": "ab" * 32}}  # a plugin's record names its file


def test_aggregate_gives_mean_and_sample_std(tmp_path):
    write_cell(tmp_path, "segma", "mnist", 0, {"test_error": 0.10})
    write_cell(tmp_path, "segma", "mnist", 1, {"test_error": 0.14})
    stats = aggregate(load_records(tmp_path, "quick"))
    row = stats[(stats.method == "segma") & (stats.metric == "test_error")].iloc[0]
    assert row["mean"] == pytest.approx(0.12) and row["std"] == pytest.approx(0.0282842712) and row["n"] == 2


def test_table_two_renders_ours_beside_the_paper_with_missing_cells(tmp_path):
    write_cell(tmp_path, "segma", "mnist", 0, {"test_error": 0.10})
    write_cell(tmp_path, "segma", "mnist", 1, {"test_error": 0.14})
    write_cell(tmp_path, "adgm", "mnist", 0, {"test_error": 0.05})
    text = render(2, tmp_path, "quick", methods_available={"segma", "adgm"}, datasets=PAPER_DATASETS)
    segma_row = next(line for line in text.splitlines() if "| SeGMA " in line)
    assert "12.00 ± 2.83 (n=2)" in segma_row and "12.70" in segma_row and "-0.70" in segma_row
    adgm_row = next(line for line in text.splitlines() if "| ADGM " in line)
    assert "5.00 (n=1)" in adgm_row and "±" not in adgm_row.split("|")[3]
    m1m2_row = next(line for line in text.splitlines() if "| M1+M2 " in line)
    assert "not implemented" in m1m2_row and "17.00" in m1m2_row  # paper value shown even without ours
    assert "missing" in segma_row  # SVHN and CelebA cells were not run
    # the methods with records (not M1+M2) and the records' folder: the command remakes this table as it is
    assert "budget `quick`" in text and "`python cli.py reproduce --table 2 --budget quick --method adgm --method " \
        f"segma --dataset mnist --dataset svhn --dataset celeba --results-dir {tmp_path}`" in text


def test_table_one_says_small_sample_fids_are_not_comparable(tmp_path):
    write_cell(tmp_path, "cwae", "mnist", 0, {"sample_fid": 30.0})
    text = render(1, tmp_path, "quick", methods_available=set(methods.METHODS))
    assert "FIDs not comparable with the paper's" in text and "9.50" in text
    cwae_row = next(line for line in text.splitlines() if "| CWAE" in line)
    assert "30.00 (n=1)" in cwae_row and "+9.24" in cwae_row


def test_a_plugin_method_gets_its_own_row_only_in_tables_of_its_metrics(tmp_path):
    write_cell(tmp_path, "my-method", "mnist", 0, {"test_error": 0.5}, **PLUGIN)
    text = render(2, tmp_path, "quick", methods_available={"my-method"})
    assert any("plugin" in line and "my-method" in line and "50.00 (n=1)" in line for line in text.splitlines())
    assert "my-method" not in render(3, tmp_path, "quick", methods_available={"my-method"})


def test_every_built_in_method_declares_the_variant_the_papers_tables_give_it():
    # Records store the class's variant; a built-in saying "plugin" would mislabel its cells.
    from segma_bench.reporting.paper_reference import PAPER_TABLES
    paper_variants = {method: variant for spec in PAPER_TABLES.values() for (variant, method), _ in spec["rows"]}
    assert set(paper_variants) <= set(methods.METHODS)
    for method, variant in paper_variants.items():
        assert methods.get_method(method).table_variant == variant, method


def test_unknown_table_method_and_budget_are_clear_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli.cli, ["table", "--table", "4", "--results-dir", str(tmp_path)])
    assert result.exit_code == 1 and "unknown table 4" in result.output
    result = runner.invoke(cli.cli, ["reproduce", "--table", "2", "--method", "nope"])
    assert result.exit_code == 1 and "unknown method 'nope'" in result.output
    result = runner.invoke(cli.cli, ["reproduce", "--table", "2", "--budget", "huge"])
    assert result.exit_code == 1 and "unknown budget 'huge'" in result.output
    result = runner.invoke(cli.cli, ["reproduce", "--table", "2", "--dataset", "nope"])
    assert result.exit_code == 1 and "unknown dataset 'nope'" in result.output


def test_reproduce_trains_evaluates_renders_and_then_skips(tmp_path, monkeypatch, make_fake):
    fake = make_fake(name="toy-repro")
    monkeypatch.setitem(DATASETS, "toy-repro", lambda root, cache: fake)
    options = tiny_options(tmp_path, device="cpu", fid_device="cpu")
    log = []
    path, text = reproduce_module.reproduce(2, ["toy-repro"], ["segma", "cwae"], 2, "quick", options,
                                            "python cli.py reproduce --table 2", log=log.append)
    records = sorted((tmp_path / "results" / "runs" / "quick").glob("*.json"))
    assert [p.name for p in records] == ["toy-repro-cwae-seed0.json", "toy-repro-cwae-seed1.json",
                                         "toy-repro-segma-seed0.json", "toy-repro-segma-seed1.json"]
    record = json.loads(records[2].read_text())
    assert 0 <= record["metrics"]["test_error"] <= 1 and record["training"]["epochs"] == 3  # protocol's epochs
    assert record["versions"]["torch"] and record["config"]["run"]["seed"] == 0
    assert json.loads(records[0].read_text())["metrics"]["test_error"] is None  # cwae has no classifier
    assert path == tmp_path / "results" / "table2-quick.md" and path.read_text() == text
    log.clear()
    reproduce_module.reproduce(2, ["toy-repro"], ["segma"], 2, "quick", options, "again", log=log.append)
    assert sum("already in" in line for line in log) == 2
    log.clear()
    reproduce_module.reproduce(2, ["toy-repro"], ["segma"], 2, "quick", replace(options, recompute=True), "fresh",
                               log=log.append)
    assert not any("already in" in line for line in log) and sum("test_error =" in line for line in log) == 2


def test_a_metric_the_method_cannot_give_is_shown_as_na(tmp_path):
    write_cell(tmp_path, "my-method", "mnist", 0, {"test_error": None}, **PLUGIN)
    text = render(2, tmp_path, "quick", methods_available={"my-method"})
    row = next(line for line in text.splitlines() if "my-method" in line)
    assert "n/a" in row.split("|")[3]


def run_folder_with(tmp_path, errors):
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps({"epochs_completed": len(errors), "history": [
        {"epoch": e + 1, "test_error": error} for e, error in enumerate(errors)]}))
    return run_dir


def cell_record(evaluated, errors):
    return {"metrics": {"test_error": errors[evaluated - 1]}, "evaluated_at_epoch": {"test_error": evaluated},
            "training": {"epochs": evaluated, "test_error_by_epoch": errors[:evaluated]}}


def test_a_stored_metric_is_recomputed_when_its_run_has_trained_further(tmp_path):
    errors = [0.5, 0.4, 0.3, 0.25, 0.2]
    run_dir = run_folder_with(tmp_path, errors)
    record = cell_record(3, errors)
    assert cell_module.trained_further(run_dir, record, "test_error", 4)  # evaluated before the budget's length
    assert not cell_module.trained_further(run_dir, cell_record(5, errors), "test_error", 4)
    assert not cell_module.trained_further(tmp_path / "deleted-run", record, "test_error", 4)
    longer = cell_record(7, errors + [0.1, 0.1])  # the folder now holds a shorter run than the one evaluated
    assert cell_module.trained_further(run_dir, longer, "test_error", 4)


def test_a_cell_at_its_budget_length_stays_when_its_run_trains_on_past_it(tmp_path):
    """A 150-pass `comparable` cell whose run went on to 501 passes keeps its 150-pass numbers; a folder
    retrained in its place, or a budget that now asks for more, does not."""
    errors = [0.5, 0.4, 0.3, 0.25, 0.2, 0.18, 0.17, 0.16, 0.15]
    run_dir = run_folder_with(tmp_path, errors)
    record = cell_record(4, errors)
    assert not cell_module.trained_further(run_dir, record, "test_error", 4)
    assert cell_module.trained_further(run_dir, record, "test_error", 6)  # the budget asks for more than was evaluated
    assert cell_module.trained_further(run_dir, record, "test_error", None)  # budget length unknown: no exemption
    run_folder_with(tmp_path, [0.5, 0.4, 0.31] + errors[3:])  # another run of the same identity in its place
    assert cell_module.trained_further(run_dir, record, "test_error", 4)


def test_run_report_lists_every_epoch_and_the_command(tmp_path, fake_data):
    from segma_bench.evaluation.classification import train
    from segma_bench.reporting.run_report import write_run_report
    from segma_bench.training import RunSpec
    train(RunSpec("segma", "fake", seed=0, epochs=2, progress=False), tmp_path / "run", data=fake_data)
    path, text = write_run_report(tmp_path / "run", tmp_path / "out" / "curve.md", "python cli.py report x")
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    for h in history:
        assert f"| {h['epoch']}       | {100 * h['test_error']:.2f}" in text
    assert "2 of 2 planned epochs" in text and "Produced by `python cli.py report x`" in text
    assert json.loads(path.with_suffix(".json").read_text())["history"] == history


def ablation_main(argv):
    from click.testing import CliRunner

    from segma_bench.cli.main import cli
    return CliRunner().invoke(cli, ["ablation", *argv])


def test_ablation_table_reads_the_error_at_each_epoch_from_the_records(tmp_path):
    history = [{"epoch": e, "test_error": 0.5 - e / 100} for e in range(1, 31)]
    (tmp_path / "a.json").write_text(json.dumps({"history": history}))
    (tmp_path / "b.json").write_text(json.dumps({"history": history[:15]}))
    out = tmp_path / "ablation.md"
    assert ablation_main(["--out", str(out), "--epochs", "10,20", f"full={tmp_path / 'a.json'}",
                          f"short={tmp_path / 'b.json'}"]).exit_code == 0
    rows = {cells[0]: cells[1:4] for line in out.read_text().splitlines() if line.startswith("| ")
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    assert rows["full"] == ["40.00", "30.00", "20.00 (epoch 30)"]
    assert rows["short"] == ["40.00", "—", "35.00 (epoch 15)"]  # not run that far: no number made up
    before = out.read_bytes()
    result = ablation_main(["--out", str(out), f"x={tmp_path / 'missing.json'}"])
    assert result.exit_code == 2 and "missing.json does not exist" in result.output
    assert out.read_bytes() == before  # the table made before is left as it was


def test_the_committed_ablation_table_renders_byte_for_byte_from_its_command(tmp_path, monkeypatch):
    """results/segma_mnist_ablation.md names the command that made it; run on the committed records, the same
    command gives the same bytes (a fresh clone can check every number in it)."""
    import shlex
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    committed = repo / "results" / "segma_mnist_ablation.md"
    if not committed.exists():
        pytest.skip("no committed ablation table")
    command = committed.read_text().rsplit("Rendered by `", 1)[1].rsplit("`.", 1)[0]
    argv = shlex.split(command)[3:]                          # drop `python cli.py ablation`
    out_index = argv.index("--out") + 1
    argv[out_index] = str(tmp_path / "again.md")
    monkeypatch.chdir(repo)
    assert ablation_main(argv).exit_code == 0
    rendered = (tmp_path / "again.md").read_text().replace(str(tmp_path / "again.md"), "results/segma_mnist_ablation.md")
    assert rendered == committed.read_text()


def test_a_paper_budget_table_says_what_it_would_train_for_the_rows_still_missing(tmp_path):
    write_cell(tmp_path, "segma", "mnist", 0, {"test_error": 0.19}, budget="paper")
    text = render(2, tmp_path, "paper", {"segma", "adgm", "m1m2"})
    line = next(line for line in text.splitlines() if "not run at this budget yet" in line)
    assert "M1+M2: the length its recipe or its original code sets, recipe kingma-code" in line
    assert "ADGM: 1000 epochs, recipe maaloe-code" in line and "SeGMA" not in line


def test_a_column_whose_rows_train_on_different_labeled_sets_says_so():
    from segma_bench.reporting.tables import labeled_set_note

    def rec(method, subset):
        return {"method": method, "config": {"run": {"labeled_subset": subset}}}
    note = labeled_set_note([rec("segma", "first"), rec("adgm", "balanced"), rec("m1m2", "balanced")], "mnist")
    assert len(note) == 1 and "ADGM, M1+M2: a class-balanced draw" in note[0] and "SeGMA: the first" in note[0]
    assert labeled_set_note([rec("segma", "balanced"), rec("adgm", "balanced")], "mnist") == []
    assert labeled_set_note([rec("segma", "first"), {"method": "adgm"}], "mnist") == []  # unknown: no claim
    unsupervised = {**rec("cwae", "first"), "table_variant": "unsupervised"}  # no labels: its set plays no part
    assert labeled_set_note([unsupervised, rec("adgm", "balanced")], "mnist") == []
    assert "ADGM: a class-balanced" in labeled_set_note([rec("segma", "first"), rec("adgm", "")], "mnist")[0]


def test_the_made_by_command_keeps_no_train_where_the_cells_were_evaluated_with_it(tmp_path):
    write_cell(tmp_path, "segma", "mnist", 0, {"test_error": 0.19}, budget="paper",
               command_by_metric={"test_error": "python cli.py reproduce --table 2 --budget paper --no-train"})
    made_by = next(line for line in render(2, tmp_path, "paper", {"segma"}).splitlines() if line.startswith("Made by"))
    assert " --no-train` (" in made_by and "trains nothing" in made_by
    assert "`--seeds 1`: seed 0 only" in made_by
    write_cell(tmp_path, "segma", "mnist", 0, {"test_error": 0.19}, budget="quick")
    made_by = next(line for line in render(2, tmp_path, "quick", {"segma"}).splitlines() if line.startswith("Made by"))
    assert "--no-train" not in made_by and "trains and evaluates only what is missing" in made_by
