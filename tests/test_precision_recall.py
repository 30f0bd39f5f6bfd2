"""Precision and recall (evaluation/prc.py): against a brute-force computation written out here on small
hand-made feature sets, against torch-fidelity's own function where it is installed, and wired into the
harness, `prc`, reproduce's cells and Tables I/III."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import segma_bench.cli.main as cli
from conftest import tiny_options, tiny_spec
from segma_bench.datasets.registry import DATASETS
from segma_bench.evaluation import compare, harness
from segma_bench.evaluation.prc import fraction_inside, knn_radii, precision_recall
from segma_bench.methods import get_method
from segma_bench.reporting import budgets
from segma_bench.reporting import reproduce as reproduce_module
from segma_bench.reporting.cell import lacks_precision_recall
from segma_bench.reporting.results import record_path, write_record
from segma_bench.reporting.tables import render
from test_harness import StubExtractor
from test_table_files import TINY, write_cell


def brute_force(generated, real, k=3):
    """Kynkäänniemi et al.'s definition, one point at a time, with sorted distance lists."""
    def radius(point_index, points):
        distances = sorted(np.linalg.norm(points[point_index] - other) for j, other in enumerate(points)
                           if j != point_index)
        return distances[k - 1]

    def inside(point, centres):
        radii = [radius(j, centres) for j in range(len(centres))]
        return any(np.linalg.norm(point - centre) <= r for centre, r in zip(centres, radii))

    precision = np.mean([inside(point, real) for point in generated])
    recall = np.mean([inside(point, generated) for point in real])
    return precision, recall


def circle(angles, radius=1.0, centre=(0.0, 0.0)):
    return np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], axis=1)


def test_identical_sets_have_precision_and_recall_one():
    points = np.random.default_rng(0).normal(size=(40, 5))
    assert precision_recall(points, points) == {"precision": 1.0, "recall": 1.0}


def test_disjoint_far_sets_have_precision_and_recall_zero():
    rng = np.random.default_rng(1)
    near, far = rng.normal(size=(30, 4)), rng.normal(size=(25, 4)) + 100.0
    assert precision_recall(near, far) == {"precision": 0.0, "recall": 0.0}


def test_half_a_circle_against_the_whole_circle_matches_brute_force_and_geometry():
    # real: 60 points evenly round the unit circle; generated: 30 points on its upper half (mode dropping)
    real = circle(np.linspace(0, 2 * np.pi, 60, endpoint=False))
    generated = circle(np.linspace(0.05, np.pi - 0.05, 30))
    result = precision_recall(generated, real)
    assert (result["precision"], result["recall"]) == pytest.approx(brute_force(generated, real), abs=0)
    assert result["precision"] == 1.0  # every generated point lies on the real manifold
    assert 0.45 <= result["recall"] <= 0.6  # about half the real circle is covered


def test_two_manifolds_one_of_them_generated_three_times_as_wide():
    # real: a unit circle and a line segment; generated: a circle of radius 3 and the same segment. The k-NN
    # balls (k = 3) have radii 3 x the spacing: 0.47 on the unit circle, 1.41 on the wide one, 0.31 on the
    # segments; the circles are 2 apart, so neither reaches the other and each segment covers the other.
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    real = np.concatenate([circle(angles, 1.0), np.stack([np.linspace(5, 9, 40), np.zeros(40)], axis=1)])
    generated = np.concatenate([circle(angles + 0.05, 3.0), np.stack([np.linspace(5.05, 8.95, 40), np.zeros(40)],
                                                                      axis=1)])
    result = precision_recall(generated, real)
    assert (result["precision"], result["recall"]) == pytest.approx(brute_force(generated, real), abs=0)
    assert result == {"precision": 0.5, "recall": 0.5}  # the segment is made and covered, the circle neither


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_sets_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    generated, real = rng.normal(size=(37, 3)), rng.normal(0.8, 0.6, size=(45, 3))  # wider, off-centre samples
    result = precision_recall(generated, real, k=3)
    assert (result["precision"], result["recall"]) == pytest.approx(brute_force(generated, real), abs=0)
    assert 0 < result["precision"] < 1 and 0 < result["recall"] < 1
    assert precision_recall(generated, real, k=5) == pytest.approx(dict(zip(
        ("precision", "recall"), brute_force(generated, real, k=5))), abs=0)


def test_results_do_not_depend_on_the_chunk_size():
    rng = np.random.default_rng(3)
    generated, real = rng.normal(size=(103, 8)), rng.normal(0.2, 1.0, size=(97, 8))
    results = [precision_recall(generated, real, chunk_size=size) for size in (1, 7, 50, 1000)]
    assert all(r == results[0] for r in results)
    radii = [knn_radii(real, 3, size) for size in (1, 10, 1000)]
    assert all(np.allclose(r, radii[0], rtol=1e-12, atol=0) for r in radii)


def test_radii_are_each_points_kth_neighbour_distance():
    points = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
    # distances to the others: 0 -> 1, 3, 6, 10; 1 -> 1, 2, 5, 9; 3 -> 2, 3, 3, 7; 6 -> 3, 4, 5, 6; 10 -> 4, 7, 9, 10
    assert knn_radii(points, k=1).tolist() == [1, 1, 2, 3, 4]
    assert knn_radii(points, k=3).tolist() == [6, 5, 3, 5, 9]
    assert fraction_inside(np.array([[2.0], [20.0]]), points, knn_radii(points, k=1)) == 0.5


@pytest.mark.parametrize("a, b, message", [
    (np.zeros((3, 2)), np.zeros((10, 2)), "more than 3 points"),
    (np.zeros((10, 2)), np.zeros((10, 3)), "equal D"),
    (np.full((10, 2), np.nan), np.zeros((10, 2)), "NaN"),
])
def test_bad_feature_sets_are_refused(a, b, message):
    with pytest.raises(ValueError, match=message):
        precision_recall(a, b)


def test_same_as_torch_fidelity_on_the_same_features():
    torch = pytest.importorskip("torch")
    metric_prc = pytest.importorskip("torch_fidelity.metric_prc", reason="torch-fidelity is not installed")
    rng = np.random.default_rng(4)
    generated = np.concatenate([rng.normal(0, 1, (120, 16)), rng.normal(3, 0.5, (30, 16))])
    real = np.concatenate([rng.normal(0, 1.1, (90, 16)), rng.normal(-3, 0.5, (70, 16))])
    theirs = metric_prc.calculate_precision_recall_full(torch.from_numpy(generated), torch.from_numpy(real), 3, 64)
    theirs_part = metric_prc.calculate_precision_recall_part(torch.from_numpy(generated), torch.from_numpy(real), 3, 64)
    ours = precision_recall(generated, real, chunk_size=50)
    # theirs are float32 means: the same counts of points inside, to float32 rounding
    assert (ours["precision"], ours["recall"]) == pytest.approx(theirs, abs=1e-6)
    assert (ours["precision"], ours["recall"]) == pytest.approx(theirs_part, abs=1e-6)
    assert 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1


# ---------------------------------------------------------------- wiring

def fake_method(fake_data):
    return get_method("segma").build(tiny_spec(fake_data))


def test_evaluate_stores_precision_and_recall_beside_fid_and_kid_with_a_real_reference(fake_data, tmp_path):
    extractor = StubExtractor()
    metrics, protocol = harness.evaluate(fake_method(fake_data), fake_data, {"sample_fid", "interpolation_fid"}, 20,
                                         extractor, tmp_path, seed=0)
    for name in ("sample_precision", "sample_recall", "interpolation_precision", "interpolation_recall"):
        assert 0 <= metrics[name] <= 1
    prc = protocol["prc"]
    assert prc["k"] == 3 and 0 < prc["floor_precision"] <= 1 and 0 < prc["floor_recall"] <= 1
    # the same numbers as prc.py on the features the harness used
    reference = harness.real_statistics(fake_data, "train", 20, extractor, tmp_path)[0][0]
    floor = harness.real_statistics(fake_data, "test", 20, extractor, tmp_path)[0][0]
    assert precision_recall(floor, reference) == {"precision": prc["floor_precision"], "recall": prc["floor_recall"]}
    samples = extractor(harness.generated_samples(fake_method(fake_data), 20, seed=0))
    expected = precision_recall(samples, reference)
    assert (metrics["sample_precision"], metrics["sample_recall"]) == (expected["precision"], expected["recall"])


def test_too_few_images_for_a_kth_neighbour_give_none_not_a_failure(fake_data, tmp_path):
    metrics, protocol = harness.evaluate(fake_method(fake_data), fake_data, {"sample_fid"}, 3, StubExtractor(),
                                         tmp_path, seed=0)
    assert metrics["sample_fid"] >= 0 and metrics["sample_precision"] is None and metrics["sample_recall"] is None
    assert protocol["prc"]["floor_precision"] is None


def test_prc_command_scores_two_image_sets(monkeypatch, make_fake, tmp_path):
    fake = make_fake(name="toy-prc")
    monkeypatch.setitem(DATASETS, "toy-prc", lambda root, cache: fake)
    monkeypatch.setattr(compare, "build_extractor", lambda weights, device: StubExtractor())
    result = CliRunner().invoke(cli.cli, ["prc", "toy-prc:test", "toy-prc:train", "--num-real", "20",
                                          "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    # two splits: evaluate's floor, the real-against-real reference of the tables
    _, protocol = harness.evaluate(fake_method(fake), fake, {"sample_fid"}, 20, StubExtractor(), tmp_path, seed=0)
    assert output["precision"] == protocol["prc"]["floor_precision"] and output["recall"] == protocol["prc"]["floor_recall"]
    assert output["protocol"]["prc"]["k"] == 3


def test_a_record_without_precision_and_recall_is_evaluated_again_only_where_its_run_folder_is(tmp_path):
    old = {"metrics": {"sample_fid": 20.0, "sample_kid": 0.01}, "evaluated_at_epoch": {"sample_fid": 5}}
    new = {**old, "metrics": {**old["metrics"], "sample_precision": 0.7, "sample_recall": 0.6}}
    run = tmp_path / "run"
    assert not lacks_precision_recall(old, run, "sample_fid")  # folder gone: "not computed", nothing retrained
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")
    (run / "metrics.json").write_text(json.dumps({"epochs_completed": 5}))
    assert lacks_precision_recall(old, run, "sample_fid")
    assert not lacks_precision_recall(new, run, "sample_fid")
    assert not lacks_precision_recall(old, run, "test_error")  # Table II has no precision or recall
    (run / "metrics.json").write_text(json.dumps({"epochs_completed": 9}))
    assert not lacks_precision_recall(old, run, "sample_fid")  # trained on since: not the FID's checkpoint


@pytest.fixture
def tiny_budget(monkeypatch, make_fake, tmp_path):
    """test_table_files' tiny budget (SeGMA, 2 epochs, 20 images per FID) on a fake dataset, and reproduce's options."""
    fake = make_fake(name="toy-files")
    monkeypatch.setitem(DATASETS, "toy-files", lambda root, cache: fake)
    monkeypatch.setitem(budgets.BUDGETS, "tiny", TINY)
    return tiny_options(tmp_path, device="cpu", fid_device="cpu")


def test_reproduce_adds_them_where_the_run_folder_is_and_never_retrains_for_them(tiny_budget, monkeypatch):
    options = tiny_budget
    monkeypatch.setattr(reproduce_module.launch, "extractor_factory", lambda options: StubExtractor)

    def reproduce():
        reproduce_module.reproduce(1, ["toy-files"], ["segma"], 1, "tiny", options, "cmd", log=lambda _: None)

    def drop_precision_recall():  # as a record made before them
        record = json.loads(path.read_text())
        del record["metrics"]["sample_precision"], record["metrics"]["sample_recall"]
        write_record(path, record)
        return record

    reproduce()
    path = record_path(options.results_dir, "tiny", "toy-files", "segma", 0)
    first = json.loads(path.read_text())
    assert 0 <= first["metrics"]["sample_precision"] <= 1 and "prc" in first["protocol"]
    checkpoint = Path(first["run_dir"]) / "checkpoint.pt"
    trained = checkpoint.stat().st_mtime_ns
    drop_precision_recall()
    reproduce()  # the run folder is here: evaluated again, not trained
    assert json.loads(path.read_text())["metrics"] == first["metrics"] and checkpoint.stat().st_mtime_ns == trained
    old = drop_precision_recall()
    shutil.rmtree(checkpoint.parent)
    reproduce()  # the run folder is gone: the record stays as it is, nothing is trained
    assert json.loads(path.read_text()) == old and not checkpoint.parent.exists()
    assert "| not computed" in (options.results_dir / "table1-tiny.md").read_text()


def test_tables_show_precision_and_recall_or_say_not_computed(tmp_path):
    with_prc = {"sample_fid": 20.0, "sample_kid": 0.01, "sample_precision": 0.7, "sample_recall": 0.5}
    write_cell(tmp_path, "segma", 0, with_prc)
    write_cell(tmp_path, "segma", 1, {**with_prc, "sample_precision": 0.8, "sample_recall": 0.6})
    write_cell(tmp_path, "adgm", 0, {"sample_fid": 30.0, "sample_kid": 0.02})  # made before precision and recall existed
    write_cell(tmp_path, "cwae", 0, with_prc)
    write_cell(tmp_path, "cwae", 1, {"sample_fid": 22.0, "sample_kid": 0.02})
    text = render(1, tmp_path, "comparable", {"segma", "adgm", "cwae", "m1m2", "segma-unsup"})
    rows = {line.split("|")[2].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "MNIST P / R ours" in text
    assert rows["SeGMA"].rstrip(" |").endswith("0.75 / 0.55")
    assert rows["ADGM"].rstrip(" |").endswith("not computed")
    assert rows["CWAE"].rstrip(" |").endswith("0.70 / 0.50 (1 of 2 seeds)")
    assert "precision / recall (k-NN manifolds, k = 3" in text and "`not computed`: the cell's records" in text
