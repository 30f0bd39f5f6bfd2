"""Method plugins: a file with @register loads via methods.load_plugin, --plugin and SEGMA_PLUGINS, and trains
through the same loop as the built-in methods. Also the shipped example, examples/my_method.py."""
import json
import os
import sys
import uuid
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import segma_bench.datasets as datasets
import segma_bench.methods as methods
from conftest import tiny_options, tiny_spec
from segma_bench.cli.main import cli
from segma_bench.evaluation.classification import train
from segma_bench.methods.base import Batch, DataSpec
from segma_bench.training import RunSpec, load_trained

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my_method.py"

PLUGIN_SOURCE = '''
"""A toy plugin written by tests/test_plugins.py."""
import math
import torch
from torch import nn
from segma_bench.api import GenerativeMethod, MethodConfig, register


@register("{name}")
class ToyLinearAutoencoder(GenerativeMethod):
    """Toy plugin: a linear auto-encoder with a sigmoid output."""
    has_classifier = False

    def __init__(self, config, spec):
        super().__init__(config, spec)
        pixels = math.prod(spec.image_shape)
        self.enc = nn.Linear(pixels, 4)
        self.dec = nn.Linear(4, pixels)

    def encode(self, x):
        return self.enc(x.flatten(1))

    def decode(self, code):
        return torch.sigmoid(self.dec(code)).reshape(len(code), *self.spec.image_shape)

    def training_step(self, batch):
        x = torch.cat([batch.x_unlabeled, batch.x_labeled])
        mse = (self.decode(self.encode(x)) - x).flatten(1).pow(2).sum(1).mean()
        return {{"loss": mse, "mse": mse}}

    def sample(self, classes, generator=None):
        return self.decode(torch.randn(len(classes), 4, generator=generator))
'''


@pytest.fixture(autouse=True)
def restore_registry():
    """Plugins register globally; each test starts and ends with the registry it found."""
    methods_before, modules_before = dict(methods.METHODS), set(sys.modules)
    yield
    methods.METHODS.clear()
    methods.METHODS.update(methods_before)
    for name in set(sys.modules) - modules_before:
        if name.startswith("segma_plugin_"):
            del sys.modules[name]


@pytest.fixture
def plugin_file(tmp_path):
    """(path, method name) of a freshly written plugin with a name no other test uses."""
    name = f"toy-plugin-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "plugins" / f"toy_{name.replace('-', '_')}.py"
    path.parent.mkdir()
    path.write_text(PLUGIN_SOURCE.format(name=name))
    return path, name


def listed(result):
    assert result.exit_code == 0, result.output
    return {line.split()[0]: line.split(None, 1)[1] for line in result.stdout.splitlines() if line.strip()}


def test_load_plugin_registers_the_method(plugin_file):
    path, name = plugin_file
    assert name not in methods.METHODS
    module = methods.load_plugin(path)
    cls = methods.get_method(name)
    assert cls is module.ToyLinearAutoencoder and cls.name == name
    assert methods.describe(cls) == "Toy plugin: a linear auto-encoder with a sigmoid output."
    assert methods.load_plugin(path) is module          # loading the same file again is a no-op
    assert methods.get_method(name) is cls


def test_cli_plugin_option(plugin_file):
    path, name = plugin_file
    assert name not in listed(CliRunner().invoke(cli, ["methods"]))
    names = listed(CliRunner().invoke(cli, ["--plugin", str(path), "methods"]))
    assert names[name] == "Toy plugin: a linear auto-encoder with a sigmoid output."
    assert {"segma", "segma-unsup", "cwae"} <= set(names)


def test_plugins_environment_variable(plugin_file, tmp_path):
    path, name = plugin_file
    second = tmp_path / "second.py"
    second_name = name + "-b"
    second.write_text(PLUGIN_SOURCE.format(name=second_name))
    env = {"SEGMA_PLUGINS": os.pathsep.join([str(path), str(second)])}
    names = listed(CliRunner().invoke(cli, ["methods"], env=env))
    assert name in names and second_name in names
    # named both in the environment and with --plugin: loaded once, no "already registered" error
    names = listed(CliRunner().invoke(cli, ["--plugin", str(path), "methods"], env=env))
    assert name in names


def test_a_plugin_cannot_take_a_builtin_name(tmp_path):
    path = tmp_path / "clash.py"
    path.write_text(PLUGIN_SOURCE.format(name="segma"))
    for _ in range(2):  # a failed import is not remembered as loaded
        with pytest.raises(ValueError, match="already registered"):
            methods.load_plugin(path)
    assert methods.get_method("segma").__module__ == "segma_bench.methods.segma"


def test_plugin_trains_through_the_shared_loop(plugin_file, tmp_path, fake_data):
    path, name = plugin_file
    methods.load_plugin(path)
    run_dir = tmp_path / "run"
    metrics = train(RunSpec(method=name, dataset="fake", epochs=4, progress=False,
                            overrides={"learning_rate": 3e-3}), run_dir, data=fake_data)
    assert metrics["epochs_completed"] == 4 and metrics["test_error"] is None  # no classifier
    history = metrics["history"]
    assert history[-1]["loss"] < 0.9 * history[0]["loss"]
    assert {"checkpoint.pt", "config.json", "labeled_indices.json", "metrics.json", "train.log"} <= \
        {p.name for p in run_dir.iterdir()}
    assert json.loads((run_dir / "config.json").read_text())["run"]["method"] == name
    _, _, method = load_trained(run_dir, data=fake_data)
    assert type(method).name == name


def test_plugin_trains_through_the_cli(plugin_file, tmp_path, monkeypatch, make_fake):
    path, name = plugin_file
    monkeypatch.setitem(datasets.DATASETS, "fake-plugin", lambda root, cache: make_fake(name="fake-plugin"))
    result = CliRunner().invoke(cli, ["--plugin", str(path), "train", "--method", name, "--dataset", "fake-plugin",
                                      "--epochs", "2", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "2 epochs" in result.stdout and "test error" not in result.stdout
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs_completed"] == 2


# ---- the shipped example ----------------------------------------------------------------------------------
def test_example_plugin_loads_and_is_listed():
    assert EXAMPLE.is_file()
    names = listed(CliRunner().invoke(cli, ["--plugin", str(EXAMPLE), "methods"]))
    assert "my-method" in names and "Example plugin" in names["my-method"]


def test_example_plugin_interface():
    methods.load_plugin(EXAMPLE)
    torch.manual_seed(0)
    spec = tiny_spec(image_shape=(1, 6, 6), class_priors=(0.5, 0.25, 0.25))
    model = methods.get_method("my-method").build(spec, {"hidden": 16, "beta": 2.0})
    assert model.config.beta == 2.0 and model.config.learning_rate == 1e-3
    g = torch.Generator().manual_seed(0)
    batch = Batch(x_unlabeled=torch.rand(8, 1, 6, 6, generator=g), x_labeled=torch.rand(6, 1, 6, 6, generator=g),
                  y_labeled=torch.tensor([0, 1, 2, 0, 1, 2]))
    terms = model.training_step(batch)
    expected = terms["mse"] + terms["prior"] + 2.0 * terms["ce"]
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    with torch.no_grad():
        log_post = model.classify(batch.x_labeled)
        assert log_post.shape == (6, 3)
        assert torch.allclose(log_post.exp().sum(1), torch.ones(6), atol=1e-5)
        images = model.sample(torch.tensor([0, 2, 2]), generator=g)
        assert images.shape == (3, 1, 6, 6) and images.min() >= 0 and images.max() <= 1
        assert model.decode(model.encode(batch.x_labeled)).shape == batch.x_labeled.shape
    assert model.class_means().shape == (3, 8)
    # the build of another dataset picks its own default
    svhn = DataSpec(dataset="svhn", image_shape=(3, 32, 32), num_classes=10, class_priors=(0.1,) * 10,
                    num_train=100, num_labeled=10)
    assert methods.get_method("my-method").default_config(svhn).latent_dim == 32


def test_example_plugin_learns_the_fake_classes(tmp_path, fake_data):
    methods.load_plugin(EXAMPLE)
    metrics = train(RunSpec(method="my-method", dataset="fake", epochs=6, progress=False,
                            overrides={"hidden": 32, "learning_rate": 3e-3}), tmp_path / "run", data=fake_data)
    history = metrics["history"]
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert history[-1]["ce"] < 0.7 * history[0]["ce"]
    assert history[-1]["prior"] < history[0]["prior"]
    assert metrics["test_error"] < 0.34  # three classes, 6 labels: well above chance (0.67)


def test_docs_walk_through_the_example():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "adding-a-method.md").read_text()
    for fragment in ("examples/my_method.py", "@register", "training_step", "--plugin", "SEGMA_PLUGINS",
                     "reproduce --table", "methods/base.py", "on_epoch_end(self, epoch: int, labeled: LabeledSet)",
                     "on_train_end(self, labeled: LabeledSet)", "from segma_bench.api import", "table_variant",
                     "sha256", "64,64", "on the CPU", "examples/fitted_autoencoder.py", "sys.path", "entry point"):
        assert fragment in doc, fragment
    assert doc.count("```") % 2 == 0


# ---- plugin folders, provenance, table variant, hooks ------------------------------------------------------
def test_a_plugin_package_imports_its_own_helper_module(tmp_path, monkeypatch):
    """A plugin with helpers is a package on the path, loaded by module name (no name is reserved)."""
    package = f"my_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "helpers.py").write_text("HIDDEN = 7\n")
    name = f"toy-helper-{uuid.uuid4().hex[:6]}"
    source = PLUGIN_SOURCE.format(name=name).replace('"""A toy plugin written by tests/test_plugins.py."""',
                                                     "from .helpers import HIDDEN")
    (tmp_path / package / "__init__.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))  # as PYTHONPATH or an install would
    result = CliRunner().invoke(cli, ["--plugin", package, "methods"])
    assert result.exit_code == 0 and name in result.output, result.output
    assert sys.modules[package].HIDDEN == 7
    assert methods.plugin_source(methods.get_method(name))["module"] == package
    from segma_bench.reporting.launch import loaded_plugin_files
    assert package in loaded_plugin_files()  # --jobs workers and submitit jobs import it again by name


@pytest.mark.slow
def test_an_installed_distribution_with_an_entry_point_appears_in_methods(tmp_path):
    """`pip install` a throwaway plugin distribution (entry point in the group segma_bench.methods) into a
    folder, then a fresh process with that folder on its path lists the method with no --plugin flag."""
    import subprocess
    dist = tmp_path / "dist"
    (dist / "toy_dist_plugin").mkdir(parents=True)
    (dist / "toy_dist_plugin" / "__init__.py").write_text(PLUGIN_SOURCE.format(name="toy-from-dist"))
    (dist / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "toy-dist-plugin"\nversion = "0.3"\n'
        '[project.entry-points."segma_bench.methods"]\ntoy-from-dist = "toy_dist_plugin"\n'
        '[tool.setuptools]\npackages = ["toy_dist_plugin"]\n')
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--no-index", "--target", str(target), str(dist)], capture_output=True, text=True)
    if install.returncode != 0 and "setuptools" in install.stderr:
        pytest.skip(f"setuptools is not available to build the throwaway distribution: {install.stderr[-200:]}")
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("SEGMA_PLUGINS", None)
    listed = subprocess.run([sys.executable, "-m", "segma_bench.cli.main", "methods"], capture_output=True, text=True,
                            env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "toy-from-dist" in listed.stdout
    without = subprocess.run([sys.executable, "-m", "segma_bench.cli.main", "methods"], capture_output=True, text=True,
                             cwd=tmp_path, env={k: v for k, v in env.items() if k != "PYTHONPATH"})
    assert "toy-from-dist" not in without.stdout  # it came from the installed distribution, nothing else
    source = subprocess.run([sys.executable, "-c", "import segma_bench.methods as m; m.load_entry_point_plugins(); "
                             "print(m.plugin_source(m.get_method('toy-from-dist')))"],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert "'distribution': 'toy-dist-plugin'" in source.stdout and "'version': '0.3'" in source.stdout, source.stderr


def test_plugin_path_and_sha256_are_in_config_json(plugin_file, tmp_path, fake_data):
    import hashlib
    path, name = plugin_file
    methods.load_plugin(path)
    train(RunSpec(method=name, dataset="fake", epochs=1, progress=False), tmp_path / "run", data=fake_data)
    plugin = json.loads((tmp_path / "run" / "config.json").read_text())["plugin"]
    assert plugin == {"path": str(path.resolve()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    train(RunSpec(method="segma", dataset="fake", epochs=1, progress=False, overrides={"hidden": (8,)}),
          tmp_path / "builtin", data=fake_data)
    assert "plugin" not in json.loads((tmp_path / "builtin" / "config.json").read_text())


def test_hooks_see_the_labeled_set_after_each_epoch_and_at_the_end(plugin_file, tmp_path, fake_data):
    path, name = plugin_file
    methods.load_plugin(path)
    cls = methods.get_method(name)
    calls = []
    cls.on_epoch_end = lambda self, epoch, labeled: calls.append(("epoch", epoch, labeled, self.training))
    cls.on_train_end = lambda self, labeled: calls.append(("end", None, labeled, self.training))
    train(RunSpec(method=name, dataset="fake", epochs=3, progress=False), tmp_path / "run", data=fake_data)
    assert [(kind, epoch) for kind, epoch, _, _ in calls] == [("epoch", 0), ("epoch", 1), ("epoch", 2), ("end", None)]
    labeled = calls[-1][2]
    indices = json.loads((tmp_path / "run" / "labeled_indices.json").read_text())["indices"]
    assert labeled.images.dtype == torch.float32 and labeled.images.shape == (6, 1, 8, 8)
    assert 0 <= labeled.images.min() and labeled.images.max() <= 1
    assert torch.equal(labeled.labels.cpu(), fake_data.train_labels[indices])
    assert torch.allclose(labeled.images.cpu(), fake_data.train_images[indices].float() / 255)
    assert not any(training for *_, training in calls)  # hooks run in eval mode
    calls.clear()  # training further: the epochs after the resume, and the end at the new length
    train(RunSpec(method=name, dataset="fake", epochs=4, progress=False), tmp_path / "run", data=fake_data)
    assert [(kind, epoch) for kind, epoch, _, _ in calls] == [("epoch", 3), ("end", None)]


def test_table_variant_and_plugin_file_reach_the_table(plugin_file, tmp_path, fake_data, monkeypatch, make_fake):
    from segma_bench.reporting.reproduce import reproduce
    path, name = plugin_file
    source = path.read_text().replace("    has_classifier = False", "    has_classifier = False\n"
                                      "    table_variant = \"toy variant\"")
    path.write_text(source)
    monkeypatch.setitem(datasets.DATASETS, "mnist", lambda root, cache: make_fake(name="mnist"))
    monkeypatch.setenv("SEGMA_PLUGINS", str(path))
    methods.load_plugin(path)
    options = tiny_options(tmp_path, device="cpu", fid_device="cpu")
    monkeypatch.setattr(sys, "argv", ["cli.py", "reproduce", "--table", "2", "--method", name])
    from segma_bench.cli.checks import invocation
    _, text = reproduce(2, ["mnist"], [name], 1, "quick", options, invocation(), log=lambda *_: None)
    record = json.loads(next((tmp_path / "results" / "runs" / "quick").glob("*.json")).read_text())
    assert record["table_variant"] == "toy variant" and record["plugin"]["path"] == str(path.resolve())
    row = next(line for line in text.splitlines() if f"| {name} " in line)
    assert row.startswith("| toy variant ")
    # the plugin file relative to the folder the command runs in, and every option it ran with: run as written,
    # the command makes this table again, the plugin's row included
    assert f"Made by `SEGMA_PLUGINS=plugins/{path.name} python cli.py reproduce --table 2 --budget quick --method " \
        f"{name} --seeds 1 --dataset mnist`" in text
    assert f"`{name}` from `{path.resolve()}` (sha256 {record['plugin']['sha256'][:12]}" in text


# ---- the second example, written from docs/adding-a-method.md ---------------------------------------------------
FITTED = Path(__file__).resolve().parents[1] / "examples" / "fitted_autoencoder.py"


@pytest.mark.device  # a plugin on a GPU where one is visible: its hooks get the labeled set on the model's device
def test_fitted_autoencoder_fits_classifier_and_sampler_after_each_epoch(tmp_path, fake_data, device_under_test):
    methods.load_plugin(FITTED)
    cls = methods.get_method("fitted-ae")
    assert cls.table_variant == "AE + fitted centroids"
    metrics = train(RunSpec(method="fitted-ae", dataset="fake", epochs=6, progress=False, device=str(device_under_test),
                            overrides={"hidden": (32,), "latent_dim": 4, "learning_rate": 3e-3}),
                    tmp_path / "run", data=fake_data)
    history = metrics["history"]
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert metrics["test_error"] < 0.34  # nearest centroid on 6 labels, three classes: chance is 0.67
    # the fitted centroids came with the checkpoint
    _, _, model = load_trained(tmp_path / "run", data=fake_data, device=str(device_under_test))
    assert model.device.type == device_under_test.type
    indices = json.loads((tmp_path / "run" / "labeled_indices.json").read_text())["indices"]
    with torch.no_grad():  # inputs go to the model's device, as the loop's and the harness's do
        codes = model.encode((fake_data.train_images[indices].float() / 255).to(model.device)).cpu()
        labels = fake_data.train_labels[indices]
        for k in range(3):
            assert torch.allclose(model.class_means()[k].cpu(), codes[labels == k].mean(0), atol=1e-5)
        log_post = model.classify((fake_data.test_images.float() / 255).to(model.device)).cpu()
        assert log_post.shape == (30, 3) and torch.allclose(log_post.exp().sum(1), torch.ones(30), atol=1e-5)
        images = model.sample(torch.tensor([0, 1, 2, 2]), generator=torch.Generator().manual_seed(0))
        assert images.shape == (4, 1, 8, 8) and 0 <= images.min() and images.max() <= 1


def test_fitted_autoencoder_through_the_cli(tmp_path, monkeypatch, make_fake):
    monkeypatch.setitem(datasets.DATASETS, "fake-plugin", lambda root, cache: make_fake(name="fake-plugin"))
    result = CliRunner().invoke(cli, ["--plugin", str(FITTED), "train", "--method", "fitted-ae", "--dataset",
                                      "fake-plugin", "--epochs", "2", "--set", "hidden=16,16", "--run-dir",
                                      str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "2 epochs, test error" in result.stdout
    assert json.loads((tmp_path / "run" / "config.json").read_text())["plugin"]["path"] == str(FITTED)
