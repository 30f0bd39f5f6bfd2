"""The 1-NN diagnostic of a labeled subset, against an explicit loop; chunking must not change it."""
import torch

from segma_bench.evaluation.label_subsets import nearest_neighbour_error, parse_seeds


def test_nearest_neighbour_error_matches_an_explicit_loop_and_ignores_chunking():
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (40, 1, 4, 4), generator=g, dtype=torch.uint8)
    train_labels = torch.randint(0, 3, (40,), generator=g)
    test = torch.randint(0, 256, (25, 1, 4, 4), generator=g, dtype=torch.uint8)
    test_labels = torch.randint(0, 3, (25,), generator=g)
    indices = torch.tensor([1, 5, 7, 11, 20, 33])
    wrong = 0
    for image, label in zip(test, test_labels):
        distances = [float(((image.double() - train[i].double()) ** 2).sum()) for i in indices]
        wrong += int(train_labels[indices[distances.index(min(distances))]] != label)
    expected = wrong / len(test)
    assert 0 < expected < 1
    for chunk in (1, 7, 100):
        assert nearest_neighbour_error(train, train_labels, test, test_labels, indices, chunk) == expected


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("2,5") == [2, 5]


def test_missing_data_is_a_one_line_error(tmp_path):
    from click.testing import CliRunner

    from segma_bench.cli.main import cli
    missing = CliRunner().invoke(cli, ["label-subsets", "--data-root", str(tmp_path), "--cache-dir", str(tmp_path)])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert "DataNotFoundError" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
