"""Shared fixtures of the test suite: a tiny structured fake dataset and the offline shared data.

Everything here is small enough to train in well under a second per epoch on one CPU core."""
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import segma_bench.datasets
from segma_bench.datasets.synthetic import TINY_PROTOCOL, make_fake_dataset  # noqa: F401  (tests import both)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(1)  # the test machines are shared; these models are far too small to gain from threads


@pytest.fixture
def fake_data():
    return make_fake_dataset()


@pytest.fixture
def make_fake():
    """The factory itself, for tests that need other sizes or seeds (conftest is not imported by name)."""
    return make_fake_dataset


@pytest.fixture
def shared_data():
    """The offline copy of the real data (../shared/data); the test is skipped where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _cpu_unless_device_test(request, monkeypatch):
    """Tests are CPU tests, on a GPU machine too: torch.cuda reports no GPU to them (so `--device auto` is the
    CPU), and CUDA_VISIBLE_DEVICES="" hides it from the processes they start. Tests marked `device` see the
    GPU and run there (`device_under_test`); benchmarks/gpu_check.py runs them with `-m device`."""
    if request.node.get_closest_marker("device") is None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture
def device_under_test(request):
    """cuda where a GPU is visible, else cpu: the device of a test marked `device`."""
    assert request.node.get_closest_marker("device") is not None, "mark the test @pytest.mark.device"
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test reads the user's data root, cache or plugins, or writes runs/ into the repository."""
    for var in ("SEGMA_DATA_ROOT", "SEGMA_CACHE_DIR", "SEGMA_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def tiny_options(tmp_path, **overrides):
    """`reproduce`'s options for a test: everything under tmp_path, on the CPU, no progress output."""
    from segma_bench.reporting.options import ReproduceOptions
    return ReproduceOptions(**{"cache_dir": tmp_path / "cache", "device": "cpu", "fid_device": "cpu",
                               "runs_root": tmp_path / "runs", "results_dir": tmp_path / "results", "progress": False,
                               **overrides})


def tiny_spec(data=None, **overrides):
    """A DataSpec for a tiny toy dataset: 8x8 grey images, 3 equally likely classes, 30 training images, 6 labeled.
    With `data` (an ImageDataset, e.g. the fake_data fixture): its name, image shape, classes (equally likely) and
    training-set size instead. `overrides` replace any field (name there what the test depends on)."""
    from segma_bench.methods.base import DataSpec
    fields = {"dataset": "toy", "image_shape": (1, 8, 8), "num_classes": 3, "class_priors": (1 / 3,) * 3,
              "num_train": 30, "num_labeled": 6}
    if data is not None:
        fields.update(dataset=data.name, image_shape=data.image_shape, num_classes=data.num_classes,
                      class_priors=(1 / data.num_classes,) * data.num_classes, num_train=len(data.train_images))
    return DataSpec(**{**fields, **overrides})


# ---------------------------------------------------------------- the command line, as the hostile-input tests drive it

@pytest.fixture
def loads(monkeypatch, make_fake):
    """A dataset 'fake-cli' the CLI can load; the list records every load, to prove checks come first."""
    calls = []

    def load(root, cache_dir):
        calls.append(root)
        return make_fake(name="fake-cli")
    monkeypatch.setitem(segma_bench.datasets.DATASETS, "fake-cli", load)
    return calls


def invoke(*args, env=None):
    from segma_bench.cli.main import cli
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def one_line_error(result, *fragments):
    assert result.exit_code in (1, 2), (result.exit_code, result.output)
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("Error:") and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err
