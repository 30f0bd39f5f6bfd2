"""`curves`: test error against pass from run folders and records, as a PNG of the asked size, with the paper's
value; sources without a test error are refused with one line; results/README.md shows the curves."""
import json

import pytest
from click.testing import CliRunner
from PIL import Image

import segma_bench.cli.main as cli
from segma_bench.reporting.curves import load_curve, paper_lines
from segma_bench.reporting.status import render_status


def history_record(path, method="segma", errors=(0.30, 0.20, 0.15), **extra):
    history = [{"epoch": i + 1, "loss": 1.0 / (i + 1), "ce": 0.1, "seconds": 1.0, "threads": 1,
                "denormals_flushed": True, "test_error": error} for i, error in enumerate(errors)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"method": method, "dataset": "mnist", "seed": 0, "epochs_completed": len(errors),
                                "test_error": errors[-1], "history": history, **extra}))
    return path


def cell_record(path, method="adgm", errors=(0.5, 0.3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"method": method, "dataset": "mnist", "seed": 1, "metrics": {},
                                "training": {"epochs": len(errors), "test_error_by_epoch": list(errors)}}))
    return path


def invoke(*args):
    return CliRunner().invoke(cli.cli, ["curves", *map(str, args)])


def test_curves_of_a_run_folder_a_history_record_and_a_cell_record(tmp_path):
    run = tmp_path / "runs" / "mnist" / "segma" / "seed0"
    history_record(run / "metrics.json")
    long_run = history_record(tmp_path / "results" / "segma_long.json", errors=(0.25, 0.2))
    cell = cell_record(tmp_path / "results" / "runs" / "comparable" / "mnist-adgm-seed1.json")
    out = tmp_path / "figures" / "curves.png"
    result = invoke(run, long_run, cell, "--out", out, "--losses", "--label", "my run")
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (900, 500)
    caption = out.with_suffix(".txt").read_text()
    assert "my run" in caption and "segma_long" in caption and "mnist-adgm-seed1" in caption
    assert "python cli.py curves" in caption and "--losses" in caption


def test_size_and_dpi_are_honoured_and_the_same_inputs_give_the_same_bytes(tmp_path):
    record = history_record(tmp_path / "r.json")
    assert invoke(record, "--out", tmp_path / "a.png", "--size", "640x360", "--dpi", 80, "--paper", 12.7).exit_code == 0
    assert invoke(record, "--out", tmp_path / "b.png", "--size", "640x360", "--dpi", 80, "--paper", 12.7).exit_code == 0
    with Image.open(tmp_path / "a.png") as image:
        assert image.size == (640, 360)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_a_record_without_any_test_error_is_refused_with_one_line(tmp_path):
    record = cell_record(tmp_path / "mnist-cwae-seed0.json", method="cwae", errors=(None, None))
    result = invoke(record, "--out", tmp_path / "x.png")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert "no test error in any of its 2 passes" in result.stderr and "CWAE has no classifier" in result.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("content, message", [
    ("not json", "not a JSON file"),
    (json.dumps({"metrics": {}}), "neither a run's metrics"),
])
def test_other_files_are_refused_with_one_line(tmp_path, content, message):
    (tmp_path / "f.json").write_text(content)
    result = invoke(tmp_path / "f.json", "--out", tmp_path / "x.png")
    assert result.exit_code == 1 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_folder_without_metrics_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke(tmp_path / "empty", "--out", tmp_path / "x.png")
    assert result.exit_code == 1 and "not a run folder" in result.stderr


def test_the_paper_value_is_looked_up_per_method_or_given(tmp_path):
    segma = load_curve(history_record(tmp_path / "s.json"))
    adgm = load_curve(cell_record(tmp_path / "a.json"))
    assert segma.test_error == pytest.approx([30.0, 20.0, 15.0]) and set(segma.losses) == {"loss", "ce"}
    assert paper_lines([segma, adgm]) == [(4.1, "paper: ADGM 4.10%", "adgm"), (12.7, "paper: SeGMA 12.70%", "segma")]
    assert paper_lines([segma], paper=11.0) == [(11.0, "paper: 11.00%", None)]


def test_results_readme_shows_the_curves_with_their_captions(tmp_path):
    record = history_record(tmp_path / "segma_mnist_long_run.json")
    out = tmp_path / "figures" / "curves" / "long-runs-segma.png"
    assert invoke(record, "--out", out).exit_code == 0
    text = render_status(tmp_path)
    assert "## Training curves" in text
    assert "![long-runs-segma](figures/curves/long-runs-segma.png)" in text
    assert "Made by `python cli.py curves" in text
