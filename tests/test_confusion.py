"""evaluation/confusion.py and `cli.py confusion`: the matrix accounts for exactly the harness's test error."""
import json
import re

import pytest
import torch
from click.testing import CliRunner

import segma_bench.datasets as datasets
from segma_bench.cli.main import cli
from segma_bench.evaluation.confusion import confusion_matrix, largest_confusions


def test_matrix_counts_every_pair_once():
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 1, 2, 2, 0, 0, 2])
    counts = confusion_matrix(predictions, labels, 3)
    # the same matrix by a loop over the pairs
    expected = torch.zeros(3, 3, dtype=torch.long)
    for y, p in zip(labels.tolist(), predictions.tolist()):
        expected[y, p] += 1
    assert torch.equal(counts, expected)
    assert counts.sum(1).tolist() == [2, 3, 4]  # rows: the true classes' sizes
    assert largest_confusions(counts) == [(2, 2, 0), (1, 0, 1), (1, 1, 2)]  # largest first, diagonal left out


def test_no_confusion_gives_an_empty_list():
    assert largest_confusions(confusion_matrix(torch.arange(4), torch.arange(4), 4)) == []


@pytest.mark.parametrize("predictions,labels,match", [([0, 1], [0, 1, 1], "same length"),
                                                      ([0, 3], [0, 1], r"0\.\.2 .*got 3"),
                                                      ([0, 1], [-1, 1], r"0\.\.2 .*got -1"),
                                                      ([0.0, 1.0], [0, 1], "integers")])
def test_bad_input_is_refused(predictions, labels, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(torch.tensor(predictions), torch.tensor(labels), 3)


@pytest.fixture
def invoke(monkeypatch, make_fake):
    monkeypatch.setitem(datasets.DATASETS, "fake-cli", lambda root, cache_dir: make_fake(name="fake-cli"))

    def run(*args, ok=True):
        result = CliRunner().invoke(cli, list(args))
        assert (result.exit_code == 0) == ok, result.output
        return result
    return run


# ADGM's classifier draws a: the same --seed as `evaluate` must give the very same error
@pytest.mark.parametrize("method,settings", [("segma", ["hidden=16"]),
                                             ("adgm", ["hidden=16", "latent_dim=2", "eval_samples=3"])])
def test_cli_confusion_error_is_the_harness_test_error(tmp_path, invoke, method, settings):
    run_dir = tmp_path / "run"
    invoke("train", "--method", method, "--dataset", "fake-cli", *[a for s in settings for a in ("--set", s)],
           "--epochs", "1", "--run-dir", str(run_dir))
    for seed in ("0", "1"):
        report = invoke("confusion", "--run", str(run_dir), "--seed", seed).stdout
        harness = json.loads(invoke("evaluate", "--run", str(run_dir), "--metric", "test_error", "--seed", seed).stdout)
        error = float(re.search(r"Test error ([\d.]+)% on 30 test images", report).group(1))
        assert error == pytest.approx(100 * harness["metrics"]["test_error"], abs=0.005)
    rows = [line for line in report.splitlines() if line.startswith("|")][2:]  # after header and separator
    assert len(rows) == 3 and sum(sum(map(int, r.split("|")[2:5])) for r in rows) == 30


def test_cli_confusion_refuses_a_method_without_a_classifier(tmp_path, invoke):
    run_dir = tmp_path / "run"
    invoke("train", "--method", "segma-unsup", "--dataset", "fake-cli", "--set", "hidden=16", "--epochs", "1",
           "--run-dir", str(run_dir))
    result = invoke("confusion", "--run", str(run_dir), ok=False)
    assert "no classifier tied to the labels" in result.stderr and "Traceback" not in result.output
