"""Experiment trackers (training/trackers.py): `train --tracker tensorboard` logs every pass and `evaluate
--tracker tensorboard` the final metrics, read back from TensorBoard's event files; off by default; a missing
package or an unknown name is one line before any work."""
import json
import sys

import pytest
from click.testing import CliRunner

import segma_bench.cli.main as cli
import segma_bench.datasets as datasets
from segma_bench.evaluation import inception
from segma_bench.training import trackers
from test_harness import StubExtractor

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                        reason="tensorboard is not installed (pip install 'segma-bench[tensorboard]')")


@pytest.fixture
def fake_dataset(monkeypatch, make_fake):
    monkeypatch.setitem(datasets.DATASETS, "fake-track", lambda root, cache_dir: make_fake(name="fake-track"))
    return "fake-track"


def scalars(log_dir):
    """{tag: [(step, value)]} of every scalar in the event files under log_dir."""
    accumulator = event_accumulator.EventAccumulator(str(log_dir))
    accumulator.Reload()
    return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]}


def invoke(*args):
    return CliRunner().invoke(cli.cli, [*map(str, args)])


def train_args(dataset, run_dir, epochs):
    return ["train", "--method", "segma", "--dataset", dataset, "--set", "hidden=[16]", "--epochs", epochs,
            "--run-dir", run_dir, "--device", "cpu"]


def test_train_logs_every_pass_and_evaluate_the_final_metrics(tmp_path, fake_dataset, monkeypatch):
    run = tmp_path / "run"
    result = invoke(*train_args(fake_dataset, run, 2), "--tracker", "tensorboard")
    assert result.exit_code == 0, result.output
    history = json.loads((run / "metrics.json").read_text())["history"]
    logged = scalars(run / "tensorboard")
    for term in ("loss", "test_error", "seconds"):
        assert logged[f"epoch/{term}"] == [(h["epoch"], pytest.approx(h[term], rel=1e-6)) for h in history]
    assert "epoch/denormals_flushed" not in logged and "epoch/epoch" not in logged  # flags and steps are not scalars
    # resumed: the new pass goes to the same folder, after the others
    assert invoke(*train_args(fake_dataset, run, 3), "--tracker", "tensorboard").exit_code == 0
    assert [step for step, _ in scalars(run / "tensorboard")["epoch/loss"]] == [1, 2, 3]

    monkeypatch.setattr(inception, "FeatureExtractor", lambda weights_path, device: StubExtractor())
    result = invoke("evaluate", "--run", run, "--metric", "test_error", "--metric", "sample_fid", "--fid-samples", 20,
                    "--cache-dir", tmp_path / "cache", "--device", "cpu", "--tracker", "tensorboard")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    final = scalars(run / "tensorboard")
    for name in ("sample_fid", "sample_kid", "sample_precision", "sample_recall", "test_error"):
        assert final[f"final/{name}"] == [(3, pytest.approx(metrics[name], rel=1e-6))]


def test_no_tracker_by_default(tmp_path, fake_dataset):
    assert invoke(*train_args(fake_dataset, tmp_path / "run", 1)).exit_code == 0
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_missing_tensorboard_is_one_line_before_any_training(tmp_path, fake_dataset, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    result = invoke(*train_args(fake_dataset, tmp_path / "run", 1), "--tracker", "tensorboard")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "pip install 'segma-bench[tensorboard]'" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
    with pytest.raises(trackers.TrackerUnavailableError):
        trackers.make_tracker("tensorboard", tmp_path / "run")


def test_unknown_tracker_is_one_line_naming_the_known_ones(tmp_path, fake_dataset):
    result = invoke(*train_args(fake_dataset, tmp_path / "run", 1), "--tracker", "mlflow")
    assert result.exit_code == 2 and "unknown tracker 'mlflow'" in result.stderr and "tensorboard" in result.stderr
    assert not (tmp_path / "run").exists()


def test_the_interface_is_small_and_the_default_does_nothing(tmp_path):
    tracker = trackers.make_tracker(None, tmp_path)
    tracker.log_epoch({"epoch": 1, "loss": 1.0})
    tracker.log_final({"sample_fid": 1.0}, 1)
    tracker.close()
    assert list(tmp_path.iterdir()) == []
    writer = trackers.make_tracker("tensorboard", tmp_path / "run")
    writer.log_final({"sample_fid": 12.5, "note": "text", "missing": None}, step=7)
    writer.close()
    assert scalars(tmp_path / "run" / "tensorboard") == {"final/sample_fid": [(7, 12.5)]}


def test_reproduce_cells_log_their_passes_and_final_metrics(tmp_path, fake_dataset):
    """`reproduce --tracker tensorboard`: each cell's run folder gets its passes and its table metric."""
    from conftest import tiny_options
    from segma_bench.reporting import budgets
    from segma_bench.reporting.reproduce import reproduce
    tiny = budgets.Budget("tiny-track", epochs={fake_dataset: 2}, fid_samples=20, default_seeds=1)
    budgets.BUDGETS["tiny-track"] = tiny
    try:
        reproduce(2, [fake_dataset], ["segma"], 1, "tiny-track", tiny_options(tmp_path, tracker="tensorboard"), "cmd",
                  log=lambda *_: None)
    finally:
        del budgets.BUDGETS["tiny-track"]
    run = next((tmp_path / "runs").rglob("metrics.json")).parent
    history = json.loads((run / "metrics.json").read_text())["history"]
    logged = scalars(run / "tensorboard")
    assert [step for step, _ in logged["epoch/loss"]] == [1, 2]
    assert logged["final/test_error"] == [(2, pytest.approx(history[-1]["test_error"], rel=1e-6))]
