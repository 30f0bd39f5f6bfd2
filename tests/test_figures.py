"""Figures (Section VI, Figs. 3-8) and the latent operations of Eq. 10 / Eq. 11 on tiny untrained methods,
plus the `figures` command end to end on a 1-epoch run of a fake 8x8 dataset registered as 'toy-figures'."""
import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import tiny_spec
from segma_bench.datasets import DATASETS, ImageDataset, Protocol, to_float
from segma_bench.evaluation import latent_ops
from segma_bench.figures import grids, make
from segma_bench.methods import get_method
from segma_bench.methods.base import GenerativeMethod, OperationNotSupported

SPEC = tiny_spec()
MEANS = torch.tensor([[1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                      [0, 2.0, 0, 0, 0, 0, 0, 0, 0, 0],
                      [0, 0, -3.0, 0, 0, 0, 0, 0, 0, 0.5]])


def fake_data(name="toy", seed=0):
    g = torch.Generator().manual_seed(seed)
    return ImageDataset(
        name=name,
        train_images=torch.randint(0, 256, (30, 1, 8, 8), generator=g, dtype=torch.uint8),
        train_labels=torch.arange(30) % 3,
        test_images=torch.randint(0, 256, (12, 1, 8, 8), generator=g, dtype=torch.uint8),
        test_labels=torch.arange(12) % 3,
        class_names=("0", "1", "2"),
        protocol=Protocol(num_labeled=6, unlabeled_batch_size=10, labeled_batch_size=6, paper_epochs=1))


def build(name="segma", means=MEANS):
    torch.manual_seed(0)
    method = get_method(name).build(SPEC).eval()
    if means is not None and method.has_class_components:
        with torch.no_grad():
            method.means.copy_(means)
    return method


class OneHotBaseline(GenerativeMethod):
    """A stand-in for M1+M2 / ADGM: codes [z, one-hot y], no class components (not registered)."""
    name = "onehot-test"
    has_class_components = False

    def __init__(self, spec):
        super().__init__(None, spec)
        self.latent_dim = 4
        self.class_code_slice = slice(self.latent_dim, self.latent_dim + spec.num_classes)
        self.enc = torch.nn.Linear(64, self.latent_dim + spec.num_classes)
        self.dec = torch.nn.Linear(self.latent_dim + spec.num_classes, 64)

    def classify(self, x):
        return self.enc(x.flatten(1))[:, self.class_code_slice].log_softmax(1)

    def encode(self, x):
        z = self.enc(x.flatten(1))[:, :self.latent_dim]
        y = torch.nn.functional.one_hot(self.classify(x).argmax(1), self.spec.num_classes).float()
        return torch.cat([z, y], 1)

    def decode(self, code):
        return torch.sigmoid(self.dec(code)).reshape(-1, *self.spec.image_shape)

    def sample(self, classes, generator=None):
        z = torch.randn(len(classes), self.latent_dim, generator=generator)
        y = torch.nn.functional.one_hot(classes, self.spec.num_classes).float()
        return self.decode(torch.cat([z, y], 1))


# ---- Eq. 10, Eq. 11, interpolation ---------------------------------------------------------------------

def test_style_transfer_eq10_exact():
    method = build()
    code = torch.arange(20, dtype=torch.float32).reshape(2, 10) / 4
    out = latent_ops.style_transfer(method, code, torch.tensor([0, 1]), torch.tensor([2, 0]))
    expected = torch.stack([code[0] + (MEANS[2] - MEANS[0]), code[1] + (MEANS[0] - MEANS[1])])
    assert torch.equal(out, expected)
    assert torch.equal(out[0, :3], code[0, :3] + torch.tensor([-1.0, 0.0, -3.0]))
    path = latent_ops.style_transfer_path(method, code, torch.tensor([0, 1]), torch.tensor([2, 0]), steps=5)
    assert path.shape == (2, 5, 10)
    assert torch.equal(path[:, 0], code) and torch.equal(path[:, -1], out)
    assert torch.allclose(path[:, 2], code + 0.5 * (out - code))


def test_class_intensity_eq11_exact():
    method = build()
    code = torch.ones(1, 10)
    out = latent_ops.class_intensity(method, code, torch.tensor([1]), torch.tensor([2]), 0.5)
    assert torch.equal(out, code + 0.5 * (MEANS[1] - MEANS[2]))
    assert torch.equal(out[0, :3], torch.tensor([1.0, 2.0, 2.5])) and out[0, 9] == 0.75  # 1 + 0.5 (mu_1 - mu_2)
    path = latent_ops.intensity_path(method, code, torch.tensor([1]), torch.tensor([2]), (0, 0.5, 1.0))
    assert torch.equal(path[:, 0], code) and torch.equal(path[:, 1], out)
    assert torch.equal(path[:, 2], code + (MEANS[1] - MEANS[2]))
    with pytest.raises(ValueError):
        latent_ops.class_intensity(method, code, torch.tensor([1]), torch.tensor([2]), 0.0)


def test_interpolation_endpoints_reproduce_the_codes():
    method, data = build(), fake_data()
    with torch.no_grad():
        x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
        a, b = method.encode(x[:1]), method.encode(x[1:])
        ends = latent_ops.interpolate(a.expand(2, -1), b.expand(2, -1), torch.tensor([0.0, 1.0]))
        assert torch.equal(ends[0], a[0]) and torch.equal(ends[1], b[0])
        assert torch.equal(method.decode(ends), method.decode(torch.cat([a, b])))
    figure = make.interpolation_figure(method, data, seed=3, n_rows=4, steps=5)
    images = figure.images.reshape(4, 7, 1, 8, 8)
    ia, ib = make.pick_pairs(data.test_labels, 4, make.generator(3))
    assert (data.test_labels[ia] != data.test_labels[ib]).all()
    xa, xb = to_float(data.test_images[ia]), to_float(data.test_images[ib])
    assert torch.equal(images[:, 0], xa) and torch.equal(images[:, -1], xb)      # real endpoints
    with torch.no_grad():
        assert torch.equal(images[:, 1], method.decode(method.encode(xa)))      # t = 0 decoded
        assert torch.equal(images[:, -2], method.decode(method.encode(xb)))     # t = 1 decoded


def test_source_class_is_nearest_component_without_classifier():
    method = build("segma-unsup")
    code = torch.stack([MEANS[2] + 0.1, MEANS[0] - 0.1])
    assert latent_ops.source_classes(method, None, code).tolist() == [2, 0]


def test_one_hot_baseline_moves_the_class_part_only():
    torch.manual_seed(0)
    method = OneHotBaseline(SPEC).eval()
    code = torch.cat([torch.full((1, 4), 0.5), torch.tensor([[1.0, 0, 0]])], 1)
    out = latent_ops.style_transfer(method, code, torch.tensor([0]), torch.tensor([2]))
    assert torch.equal(out, torch.tensor([[0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 1.0]]))
    figure = make.style_transfer_figure(method, fake_data(), seed=0, n_rows=3, steps=4)
    assert figure.images.shape == (3 * 5, 1, 8, 8)
    with pytest.raises(OperationNotSupported):
        make.make_means(method, fake_data(), 0, "unused")


# ---- figures ----------------------------------------------------------------------------------------------

def png_size(path):
    with Image.open(path) as image:
        return image.size


def test_grid_shapes(tmp_path):
    method, data = build(), fake_data()
    make.make_samples(method, data, 0, tmp_path, n_cols=7)
    assert png_size(tmp_path / "samples.png") == grids.grid_size(3, 7, (8, 8)) == (7 * 10 + 2, 3 * 10 + 2)
    make.make_interpolation(method, data, 0, tmp_path, n_rows=5, steps=6)
    assert png_size(tmp_path / "interpolation.png") == grids.grid_size(5, 8, (8, 8))
    make.make_style_transfer(method, data, 0, tmp_path, n_rows=4, steps=5)
    assert png_size(tmp_path / "style_transfer.png") == grids.grid_size(4, 6, (8, 8))
    make.make_intensity(method, data, 0, tmp_path)
    assert png_size(tmp_path / "intensity.png") == grids.grid_size(4, 6, (8, 8))
    labelled_w, labelled_h = png_size(tmp_path / "samples_labelled.png")
    assert labelled_w > 7 * 10 + 2 and labelled_h > 3 * 10 + 2
    caption = (tmp_path / "samples.txt").read_text()
    assert "Rows (3)" in caption and "Seed: 0" in caption and "Command:" in caption


def test_samples_rows_are_components():
    method = build()
    calls = []
    original = method.sample

    def spy(classes, generator=None):
        calls.append(classes.clone())
        return original(classes, generator)
    method.sample = spy
    figure = make.samples_figure(method, fake_data(), 0, n_cols=4)
    assert calls[0].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert figure.row_labels == ["0", "1", "2"]


def test_means_distances_table_and_heatmap(tmp_path):
    method = build()
    paths = make.make_means(method, fake_data(), 0, tmp_path)
    assert {p.name for p in paths} == {"means_distances.png", "means_distances.md", "means_distances.txt"}
    distances = latent_ops.means_distances(method)
    assert torch.allclose(distances, torch.cdist(MEANS.double(), MEANS.double()))
    assert abs(float(distances[0, 1]) - 5 ** 0.5) < 1e-12
    table = (tmp_path / "means_distances.md").read_text()
    assert "| **0** | 0.00 | 2.24 |" in table
    width, height = png_size(tmp_path / "means_distances.png")
    assert width >= 3 * 36 and height >= 3 * 36


def test_cwae_unsupported_operations(tmp_path):
    method, data = build("cwae"), fake_data()
    with pytest.raises(OperationNotSupported, match="cwae"):
        make.make_style_transfer(method, data, 0, tmp_path)
    with pytest.raises(OperationNotSupported, match="cwae"):
        make.make_intensity(method, data, 0, tmp_path)
    with pytest.raises(OperationNotSupported, match="cwae"):
        make.make_means(method, data, 0, tmp_path)
    with pytest.raises(OperationNotSupported):
        latent_ops.style_transfer(method, torch.zeros(1, 10), torch.tensor([0]), torch.tensor([1]))
    notes = []
    written = make.make_figures(method, data, 0, tmp_path, echo=notes.append)
    assert len(notes) == 3 and all(n.startswith("skipped") for n in notes)
    assert {p.name for p in written if p.suffix == ".png"} == {
        "samples.png", "samples_labelled.png", "interpolation.png", "interpolation_labelled.png"}


def test_deterministic_under_seed(tmp_path):
    data = fake_data()
    for run in ("a", "b", "c"):
        make.make_figures(build(), data, 1 if run == "c" else 0, tmp_path / run, echo=lambda _: None)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(names) == 15
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "samples.png").read_bytes() != (tmp_path / "c" / "samples.png").read_bytes()


# ---- the command, end to end on a 1-epoch run of a fake dataset ------------------------------------------------

@pytest.fixture
def toy_runs(tmp_path, monkeypatch):
    """Runs of segma (seeds 1 and 0) and cwae on 'toy-figures', a registered loader returning fake data."""
    from segma_bench.evaluation.classification import train
    from segma_bench.training import RunSpec
    data = fake_data("toy-figures")
    monkeypatch.setitem(DATASETS, "toy-figures", lambda root, cache_dir: data)  # undone after the test
    runs = tmp_path / "runs"
    for method, seed in (("segma", 1), ("segma", 0), ("cwae", 0)):
        train(RunSpec(method, "toy-figures", seed=seed, epochs=1, progress=False, device="cpu"),
              runs / method / f"seed{seed}", data=data)
    return runs


def test_cli_figures_end_to_end(toy_runs, tmp_path):
    from segma_bench.cli.main import cli
    runner = CliRunner()
    run = toy_runs / "segma" / "seed0"
    result = runner.invoke(cli, ["figures", "--run", str(run), "--seed", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    pngs = sorted(p.name for p in (run / "figures").glob("*.png"))
    assert len(pngs) == 9 and "means_distances.png" in pngs
    caption = (run / "figures" / "style_transfer.txt").read_text()
    assert "python cli.py figures --run" in caption and "--seed 2" in caption and "run seed 0" in caption

    cwae = toy_runs / "cwae" / "seed0"
    result = runner.invoke(cli, ["figures", "--run", str(cwae), "--kind", "means", "--device", "cpu"])
    assert result.exit_code == 1 and "OperationNotSupported" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(cli, ["figures", "--run", str(cwae), "--out", str(tmp_path / "c"), "--device", "cpu"])
    assert result.exit_code == 0 and result.output.count("skipped") == 3

    result = runner.invoke(cli, ["figures", "--run", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "FileNotFoundError" in result.output

    out = tmp_path / "table"
    result = runner.invoke(cli, ["figures", "--table-figures", "--dataset", "toy-figures", "--runs-root",
                                 str(toy_runs), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "no m1m2 run" in result.output and "no adgm run" in result.output
    assert (out / "fig3-5_samples_toy-figures.png").exists()
    assert (out / "fig6_interpolation_toy-figures.png").exists()
    assert (out / "fig7_style_transfer_toy-figures.png").exists() and (out / "segma" / "samples.png").exists()
    caption = (out / "fig7_style_transfer_toy-figures.txt").read_text()
    assert "seed0" in caption and "seed1" not in caption          # the first (lowest) seed is used
    assert make.find_runs(toy_runs, "toy-figures") == {"segma": toy_runs / "segma" / "seed0"}
    assert json.loads((toy_runs / "segma" / "seed0" / "config.json").read_text())["run"]["seed"] == 0
