"""`fid A B` and `kid A B`: any two image sets, scored with evaluate's extractor, reference cache and
protocol, so a folder of a model's samples against DATASET:train gives evaluate's own number."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import segma_bench.cli.main as cli
from conftest import tiny_spec
from segma_bench.datasets.registry import DATASETS
from segma_bench.evaluation import compare, harness
from test_harness import LinearCodes, StubExtractor


class ByteExactSamples(LinearCodes):
    """Samples on the uint8 grid (k / 255), so that PNG files hold exactly the images evaluate scores."""
    def sample(self, classes, generator=None):
        pixels = torch.randint(0, 256, (len(classes), *self.spec.image_shape), generator=generator)
        return pixels.float() / 255


@pytest.fixture
def toy(monkeypatch, make_fake):
    fake = make_fake(name="toy-cmp")
    monkeypatch.setitem(DATASETS, "toy-cmp", lambda root, cache: fake)
    monkeypatch.setattr(compare, "build_extractor", lambda weights, device: StubExtractor())
    return fake


def save_pngs(images, folder):
    folder.mkdir()
    for i, image in enumerate(images):
        pixels = (image[0] * 255).round().to(torch.uint8).numpy()
        Image.fromarray(pixels, mode="L").save(folder / f"{i:04d}.png")


def run(*args, stdout_only=True):
    result = CliRunner().invoke(cli.cli, list(map(str, args)))
    # stdout is the JSON; progress lines and errors go to stderr
    return result.exit_code, result.stdout if stdout_only else result.output


def test_fid_and_kid_of_a_folder_equal_evaluates_for_the_same_images(toy, tmp_path):
    method = ByteExactSamples(tiny_spec(toy))
    metrics, protocol = harness.evaluate(method, toy, {"sample_fid"}, 20, StubExtractor(), tmp_path / "cache", seed=4)
    save_pngs(harness.generated_samples(method, 20, seed=4), tmp_path / "samples")
    cache = ["--cache-dir", tmp_path / "cache"]
    code, output = run("fid", tmp_path / "samples", "toy-cmp:train", *cache)
    assert code == 0, output
    result = json.loads(output)
    assert result["fid"] == pytest.approx(metrics["sample_fid"], rel=1e-12)
    assert result["sets"][1] == "20 random toy-cmp train images (seed 0)" and "weights_sha256" in result["protocol"]["fid"]
    kid = json.loads(run("kid", tmp_path / "samples", "toy-cmp:train", *cache)[1])
    assert kid["kid"] == pytest.approx(metrics["sample_kid"], rel=1e-12)
    # two dataset splits: evaluate's floor (its test subset against its train reference)
    floor = json.loads(run("fid", "toy-cmp:test", "toy-cmp:train", "--num-real", 20, *cache)[1])
    assert floor["fid"] == pytest.approx(protocol["fid"]["floor_fid"], rel=1e-12)


def test_an_array_file_and_a_folder_of_the_same_images_score_the_same(toy, tmp_path):
    images = torch.randint(0, 256, (12, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    save_pngs(images.float() / 255, tmp_path / "folder")
    np.save(tmp_path / "nhwc.npy", images.permute(0, 2, 3, 1).numpy())
    np.savez(tmp_path / "float.npz", images=(images.float() / 255).numpy())
    scores = [json.loads(run("fid", source, "toy-cmp:test", "--cache-dir", tmp_path / "c")[1])["fid"]
              for source in (tmp_path / "folder", tmp_path / "nhwc.npy", tmp_path / "float.npz")]
    assert scores[0] > 0 and scores[1] == pytest.approx(scores[0]) and scores[2] == pytest.approx(scores[0])


@pytest.mark.parametrize("source, message", [
    ("no-such-thing", "neither a folder"),
    ("toy-cmp:validation", "neither a folder"),
    ("nope:test", "unknown dataset 'nope'"),
    ("missing.npy", "no such file"),
])
def test_bad_image_sets_are_one_clear_line(toy, tmp_path, source, message):
    code, output = run("fid", source, "toy-cmp:test", stdout_only=False)
    assert code == 1 and message in output and len(output.strip().splitlines()) == 1 and "Traceback" not in output


def test_help_gives_an_example():
    code, output = run("kid", "--help")
    assert code == 0 and "Example: python cli.py kid" in output and "mnist:train" in output
