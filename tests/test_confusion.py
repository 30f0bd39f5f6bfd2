"""evaluation/confusion.py and `cli.py confusion`: the matrix accounts for exactly the harness's test error."""
import json
import re

import pytest
import torch
from click.testing import CliRunner

import datasets
from cli import cli
from evaluation.confusion import confusion_matrix, largest_confusions


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
                                                      ([0, 3], [0, 1], "0..2"), ([0, 1], [-1, 1], "0..2")])
def test_bad_input_is_refused(predictions, labels, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(torch.tensor(predictions), torch.tensor(labels), 3)


def test_cli_confusion_error_is_the_harness_test_error(tmp_path, monkeypatch, make_fake):
    monkeypatch.setitem(datasets.DATASETS, "fake-cli", lambda root, cache_dir: make_fake(name="fake-cli"))
    run_dir = tmp_path / "run"

    def invoke(*args):
        result = CliRunner().invoke(cli, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout
    invoke("train", "--method", "segma", "--dataset", "fake-cli", "--set", "hidden=16", "--epochs", "1",
           "--run-dir", str(run_dir))
    report = invoke("confusion", "--run", str(run_dir))
    harness = json.loads(invoke("evaluate", "--run", str(run_dir), "--metric", "test_error"))
    error = float(re.search(r"Test error ([\d.]+)% on 30 test images", report).group(1))
    assert error == pytest.approx(100 * harness["metrics"]["test_error"], abs=0.005)
    rows = [line for line in report.splitlines() if line.startswith("|")][2:]  # after header and separator
    assert len(rows) == 3 and sum(sum(map(int, r.split("|")[2:5])) for r in rows) == 30
