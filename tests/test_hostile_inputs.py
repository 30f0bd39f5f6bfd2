"""Nothing accepted that is wrong. Each case a hostile but realistic user tried, and its neighbours:
a malformed record, setting, count, image file or run folder gives one line naming what is wrong (or a stated
warning), exits non-zero where nothing useful was done, and loses nothing; a run folder is trained by one process
at a time; a log file gets one line per epoch, not progress-bar frames; a table's footnote names every option it
was made with, and a plugin's row renders the same without the plugin."""
import errno
import json
import os
import shlex
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import segma_bench.datasets as datasets
import segma_bench.methods as methods
from conftest import invoke, one_line_error
from segma_bench.cli.main import cli
from segma_bench.core import storage
from segma_bench.evaluation.classification import train
from segma_bench.reporting import results as results_module
from segma_bench.reporting.results import SCHEMA_VERSION, load_records, read_record, record_path, write_record
from segma_bench.training import RunSpec
from segma_bench.training.loop import run_lock_path

REPO = Path(__file__).resolve().parents[1]


def train_args(*extra, run_dir=None):
    args = ["train", "--method", "segma", "--dataset", "fake-cli", "--set", "hidden=16", "--epochs", "1"]
    return args + (["--run-dir", str(run_dir)] if run_dir else []) + list(extra)


# ---- records: one reader that validates ----------------------------------------------------------------------
def good_record(method="segma", seed=0, **metrics):
    return {"method": method, "dataset": "mnist", "seed": seed, "budget": "quick",
            "metrics": metrics or {"test_error": 0.1}, "run_dir": f"runs/x/seed{seed}",
            "protocol": {"test_error": "argmax of classify() over all 10000 test images"},
            "training": {"epochs": 5, "train_seconds": 60.0}, "timing": {}}


def write_raw(results, record, name=None, text=None):
    """A record file as a hand edit or a bug could leave it (no check on the way in)."""
    path = record_path(results, record["budget"], record["dataset"], record["method"], record["seed"])
    path = path.with_name(name) if name else path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else json.dumps(record))
    return path


def table_fails(results, *fragments):
    result = invoke("table", "--table", 2, "--budget", "quick", "--results-dir", results)
    err = one_line_error(result, *fragments)
    assert not (Path(results) / "table2-quick.md").exists()  # nothing rendered from a bad record
    return err


def test_every_committed_record_loads_through_the_reader_and_both_older_key_sets_migrate(tmp_path):
    paths = sorted((REPO / "results" / "runs").glob("*/*.json"))
    if not paths:
        pytest.skip("no committed records")
    versions = set()
    for path in paths:
        raw = json.loads(path.read_text())
        versions.add(raw.get("schema_version", 2 if "command_by_metric" in raw else 1))
        record = read_record(path, path.parent.name)
        assert record["schema_version"] == SCHEMA_VERSION and isinstance(record["command_by_metric"], dict)
        assert record["display_name"] and record["paper_epochs"]  # built-ins on MNIST: the paper's length
    assert 2 in versions  # the comparable records predate schema_version (they have command_by_metric)
    # version 1 (no command_by_metric) is no longer committed since the quick records were re-made: one made
    # from a committed version-2 record by dropping the key, read from a file like any record
    version2 = next(p for p in paths if "schema_version" not in json.loads(p.read_text()))
    older = {k: v for k, v in json.loads(version2.read_text()).items() if k != "command_by_metric"}
    copy = tmp_path / version2.parent.name / version2.name
    copy.parent.mkdir()
    copy.write_text(json.dumps(older))
    record = read_record(copy, copy.parent.name)
    assert record["schema_version"] == SCHEMA_VERSION and record["command_by_metric"] == {}
    assert record["metrics"] == older["metrics"] and record["display_name"] and record["paper_epochs"]
    for budget in {p.parent.name for p in paths}:
        assert not load_records(REPO / "results", budget).empty


def test_records_written_from_now_on_carry_the_schema_version(tmp_path):
    path = record_path(tmp_path, "quick", "mnist", "segma", 0)
    write_record(path, good_record())
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_a_record_whose_number_is_a_list_is_one_line_not_a_type_error(tmp_path):
    path = write_raw(tmp_path, good_record(test_error=[0.1, 0.2]))
    table_fails(tmp_path, str(path), "test_error", "not a number")


@pytest.mark.parametrize("literal", ["1e308", "1e999", "NaN", "Infinity", "-1e400"])
def test_a_record_with_a_huge_or_non_finite_number_is_refused_not_rendered_as_inf(tmp_path, literal):
    write_raw(tmp_path, good_record(seed=1, test_error=0.2))
    text = json.dumps(good_record(test_error=0.123456)).replace("0.123456", literal)
    path = write_raw(tmp_path, good_record(), text=text)
    err = table_fails(tmp_path, str(path))
    assert "inf" not in err.split(str(path))[0]


def test_a_nan_seed_is_never_dropped_silently(tmp_path):
    """Before: the NaN seed vanished from the mean (n=1) while the footnote said seeds [0, 1]."""
    write_raw(tmp_path, good_record(seed=0, test_error=0.1))
    path = write_raw(tmp_path, good_record(seed=1), text=json.dumps(good_record(seed=1, test_error=0.5)).replace("0.5", "NaN"))
    table_fails(tmp_path, str(path), "NaN is not a finite number")


@pytest.mark.parametrize("method", ["../../x", "a/b", ".hidden", "x y", ""])
def test_a_method_name_with_a_path_never_reaches_a_footnote(tmp_path, method):
    record = good_record()
    path = tmp_path / "runs" / "quick" / "mnist-weird-seed0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**record, "method": method}))
    table_fails(tmp_path, str(path), "is not a method name")


@pytest.mark.parametrize("change, reason", [
    ({"seed": "0"}, "'seed' is '0'"), ({"seed": -1}, "'seed' is -1"), ({"budget": "paper"}, "folder of budget 'quick'"),
    ({"dataset": "nope"}, "dataset 'nope' is unknown"), ({"method": "nope"}, "not registered"),
    ({"metrics": [0.1]}, "'metrics' is [0.1]"), ({"training": {"epochs": 5}}, "no 'train_seconds'"),
    ({"metrics": {"test_error": 1.5}}, "not a fraction"), ({"schema_version": 99}, "schema_version 99"),
    ({"display_name": "a | b"}, "display name"), ({"paper_epochs": 0}, "'paper_epochs' is 0")])
def test_each_field_is_checked_and_named(tmp_path, change, reason):
    record = {**good_record(), **change}
    path = tmp_path / "runs" / "quick" / "mnist-segma-seed0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    table_fails(tmp_path, str(path), reason)


def test_a_record_under_another_name_is_refused_so_no_cell_counts_twice(tmp_path):
    write_raw(tmp_path, good_record())
    path = write_raw(tmp_path, good_record(), name="mnist-segma-seed0 (copy).json")
    table_fails(tmp_path, str(path), "should be named mnist-segma-seed0.json")


def test_a_record_that_would_not_read_back_is_not_written(tmp_path):
    path = record_path(tmp_path, "quick", "mnist", "segma", 0)
    with pytest.raises(results_module.RecordError, match="test_error = nan is not a finite number"):
        write_record(path, good_record(test_error=float("nan")))
    assert not path.exists()


def test_extrapolate_refuses_non_finite_and_non_numeric_input_naming_the_file(tmp_path):
    history = [{"epoch": e, "test_error": 0.5 / e} for e in range(1, 30)]
    cases = {"list.json": "[1, 2]",
             "nan.json": json.dumps({"history": history}).replace('"test_error": 0.25', '"test_error": NaN', 1),
             "huge.json": json.dumps({"history": history}).replace('"test_error": 0.25', '"test_error": 1e999', 1),
             "text.json": json.dumps({"history": [{**h, "test_error": "low"} for h in history]}),
             "history.json": json.dumps({"history": {"epoch": 1}})}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        one_line_error(invoke("extrapolate", tmp_path / name), name)
        one_line_error(invoke("ablation", "--out", tmp_path / "a.md", f"x={tmp_path / name}"), name)  # same records
        assert not (tmp_path / "a.md").exists()


def test_a_run_folder_json_that_is_malformed_is_one_line(tmp_path, loads):
    run_dir = tmp_path / "run"
    assert invoke(*train_args(run_dir=run_dir)).exit_code == 0
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "run": {**config["run"], "seed": "zero"}}))
    one_line_error(invoke(*train_args(run_dir=run_dir)), "config.json", "'seed' is 'zero'")
    (run_dir / "config.json").write_text(json.dumps(config))
    metrics = (run_dir / "metrics.json").read_text()
    (run_dir / "metrics.json").write_text(metrics.replace('"epochs_completed": 1', '"epochs_completed": NaN'))
    one_line_error(invoke("report", "--run", run_dir, "--out", tmp_path / "r.md"), "metrics.json", "not finite")
    assert not (tmp_path / "r.md").exists()


# ---- ranges, not only types ----------------------------------------------------------------------------------
@pytest.mark.parametrize("setting, fragment", [("latent_dim=-4", "at least 1"), ("hidden=64,-1", "entry -1"),
                                               ("hidden=0", "at least 1"), ("learning_rate=0", "greater than 0"),
                                               ("grad_clip_norm=-1", "at least 0")])
def test_a_setting_out_of_range_is_one_line_before_any_data_is_read(tmp_path, loads, setting, fragment):
    result = invoke("train", "--method", "segma", "--dataset", "fake-cli", "--set", setting, "--run-dir",
                    tmp_path / "run")
    one_line_error(result, f"--set {setting}", fragment)
    assert loads == [] and not (tmp_path / "run").exists()


def test_settings_whose_zero_means_automatic_or_off_accept_zero(loads, tmp_path):
    from segma_bench.core.settings import typed_settings
    assert typed_settings(methods.get_method("segma"), {"num_components": "0", "grad_clip_value": "0"}) == \
        {"num_components": 0, "grad_clip_value": 0.0}
    assert typed_settings(methods.get_method("m1m2"), {"m1_epochs": "0"}) == {"m1_epochs": 0}


@pytest.fixture
def stub_extractor(monkeypatch):
    from segma_bench.evaluation import compare
    from test_harness import StubExtractor
    monkeypatch.setattr(compare, "build_extractor", lambda weights, device: StubExtractor())


@pytest.mark.parametrize("value", ["-5", "1"])
def test_num_real_is_refused_before_any_data_is_loaded(tmp_path, loads, stub_extractor, value):
    np.save(tmp_path / "a.npy", np.zeros((5, 8, 8), np.uint8))
    one_line_error(invoke("fid", tmp_path / "a.npy", "fake-cli:train", "--num-real", value), "--num-real")
    assert loads == []


@pytest.mark.parametrize("command", ["fid", "kid"])
def test_fid_and_kid_refuse_a_device_that_is_not_there(tmp_path, command):
    np.save(tmp_path / "a.npy", np.zeros((5, 8, 8), np.uint8))
    one_line_error(invoke(command, tmp_path / "a.npy", tmp_path / "a.npy", "--device", "foo"), "'foo'")


def test_kid_of_fewer_images_than_its_subsets_says_so_and_prints_the_subset_size(tmp_path, stub_extractor):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.integers(0, 256, (10, 8, 8), dtype=np.uint8))
    np.save(tmp_path / "b.npy", rng.integers(0, 256, (12, 8, 8), dtype=np.uint8))
    result = invoke("kid", tmp_path / "a.npy", tmp_path / "b.npy")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["kid_subset_size"] == [10, 10] and printed["kid_std"] is None  # no meaningless 1e-16
    assert "not comparable" in printed["warning"] and "warning: KID from one subset of 10 images" in result.stderr


def test_kid_refuses_a_set_too_small_for_its_estimator():
    from segma_bench.evaluation.kid import kid_plan
    with pytest.raises(ValueError, match="at least 2 images in each set"):
        kid_plan(1, 500)
    assert kid_plan(5000, 2000) == (100, 1000, None)


# ---- one lock per run folder ---------------------------------------------------------------------------------
def test_a_second_train_of_the_same_folder_waits_for_the_first_and_says_so(tmp_path, fake_data, capfd):
    run_dir = tmp_path / "run"
    held, release = threading.Event(), threading.Event()

    def other_process():  # flock locks of two open files conflict within one process too
        with storage.file_lock(run_lock_path(run_dir)):
            held.set()
            release.wait(10)
    holder = threading.Thread(target=other_process)
    holder.start()
    held.wait(10)
    threading.Timer(0.5, release.set).start()
    started = time.time()
    metrics = train(RunSpec("segma", "fake", epochs=1, progress=False, overrides={"hidden": (16,)}), run_dir,
                    data=fake_data)
    holder.join()
    assert time.time() - started >= 0.4 and metrics["epochs_completed"] == 1
    assert "another process is training this run folder; waiting" in capfd.readouterr().err
    assert not (run_dir / ".locks").exists() and (tmp_path / ".locks" / "run.lock").exists()  # beside, not inside


def test_two_trains_of_one_folder_train_each_epoch_once(tmp_path, fake_data):
    run_dir = tmp_path / "run"
    spec = RunSpec("segma", "fake", epochs=2, progress=False, overrides={"hidden": (16,)})
    threads = [threading.Thread(target=train, args=(spec, run_dir), kwargs={"data": fake_data}) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "train.log").read_text().splitlines()
              if line.startswith("{")]
    assert epochs == [1, 2]  # before: both trained epoch 1 at once and train.log held it twice


def test_a_checkpoint_without_config_is_never_resumed_blindly(tmp_path, loads):
    run_dir = tmp_path / "run"
    assert invoke(*train_args(run_dir=run_dir)).exit_code == 0
    (run_dir / "config.json").unlink()
    before = (run_dir / "checkpoint.pt").read_bytes()
    for seed in ("0", "5"):  # before: seed 5 resumed seed 0's weights on seed 5's data
        one_line_error(invoke(*train_args("--epochs", "2", "--seed", seed, run_dir=run_dir)), "no config.json",
                       "move checkpoint.pt away")
    assert (run_dir / "checkpoint.pt").read_bytes() == before and not (run_dir / "config.json").exists()


# ---- image inputs -------------------------------------------------------------------------------------------
def test_every_unreadable_png_of_a_folder_is_named_in_one_line(tmp_path, stub_extractor):
    from PIL import Image
    folder = tmp_path / "samples"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8), mode="L").save(folder / f"{i}.png")
    whole = (folder / "0.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (folder / "notes.png").write_text("not an image at all")
    (folder / "folder.png").mkdir()
    err = one_line_error(invoke("fid", folder, folder), "truncated.png", "notes.png", "folder.png", "3 of 6")
    assert "PIL" not in err


# ---- writes --------------------------------------------------------------------------------------------------
@pytest.fixture
def trained_run(tmp_path, loads):
    run_dir = tmp_path / "run"
    assert invoke(*train_args(run_dir=run_dir)).exit_code == 0
    return run_dir


def test_report_refuses_an_out_that_is_its_own_json_twin(tmp_path, trained_run):
    out = tmp_path / "record.json"
    one_line_error(invoke("report", "--run", trained_run, "--out", out), "record.json", "twin")
    assert not out.exists()


def test_force_never_replaces_what_is_not_a_regular_file(tmp_path, trained_run):
    """A FIFO stands for /dev/full here (a test must never rename a file over a device)."""
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    one_line_error(invoke("report", "--run", trained_run, "--out", fifo, "--force"), "pipe.md", "not a regular file")
    assert fifo.is_fifo()
    with pytest.raises(storage.NotARegularFileError):
        storage.atomic_write_text(fifo, "x")
    assert fifo.is_fifo()


def table_args(results):
    return ["table", "--table", 2, "--budget", "quick", "--results-dir", results]


@pytest.fixture
def results_with_a_table(tmp_path):
    results = tmp_path / "results"
    write_record(record_path(results, "quick", "mnist", "segma", 0), good_record())
    assert invoke(*table_args(results)).exit_code == 0
    return results, (results / "table2-quick.md").read_text()


def test_a_full_disk_is_one_line_naming_the_file_and_nothing_is_half_written(results_with_a_table, monkeypatch):
    results, before = results_with_a_table
    write_record(record_path(results, "quick", "mnist", "segma", 1), good_record(seed=1, test_error=0.3))

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(storage.os, "replace", full)
    one_line_error(invoke(*table_args(results)), str(results / "table2-quick.md"), "No space left on device")
    monkeypatch.undo()
    assert (results / "table2-quick.md").read_text() == before
    assert not [p for p in results.iterdir() if p.name.endswith(".tmp")]


def test_a_read_only_results_folder_is_one_line_naming_the_file(results_with_a_table, monkeypatch):
    results, before = results_with_a_table
    write_record(record_path(results, "quick", "mnist", "segma", 1), good_record(seed=1, test_error=0.3))

    def read_only(tmp, data):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp))
    monkeypatch.setattr(storage, "_write_synced", read_only)
    one_line_error(invoke(*table_args(results)), str(results / "table2-quick.md"), "Read-only file system")
    assert (results / "table2-quick.md").read_text() == before


def test_a_full_disk_while_a_checkpoint_is_written_is_one_line_and_the_last_checkpoint_stays(tmp_path, trained_run,
                                                                                          monkeypatch):
    before = (trained_run / "checkpoint.pt").read_bytes()
    write = storage._write_synced

    def full_for_checkpoints(tmp, data):
        if "checkpoint" in Path(tmp).name:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        write(tmp, data)
    monkeypatch.setattr(storage, "_write_synced", full_for_checkpoints)
    one_line_error(invoke(*train_args("--epochs", "2", run_dir=trained_run)), "checkpoint.pt", "No space left")
    assert (trained_run / "checkpoint.pt").read_bytes() == before
    assert not [p for p in trained_run.iterdir() if p.name.endswith(".tmp")]


# ---- logs ----------------------------------------------------------------------------------------------------
def test_a_training_log_that_is_not_a_terminal_gets_lines_per_epoch_not_bar_frames(tmp_path, fake_data, capsys):
    epochs = 3
    train(RunSpec("segma", "fake", epochs=epochs, progress=True, overrides={"hidden": (16,)}), tmp_path / "run",
          data=fake_data)
    captured = capsys.readouterr()
    assert "\r" not in captured.err and len(captured.err.splitlines()) <= epochs  # before: a frame per step
    assert len([line for line in captured.out.splitlines() if line.startswith("epoch ")]) == epochs


# ---- footnotes and plugins -----------------------------------------------------------------------------------
def test_a_table_made_from_another_results_folder_names_it(tmp_path):
    results = tmp_path / "scratch results"
    for seed in (0, 1, 2):
        write_record(record_path(results, "quick", "mnist", "segma", seed), good_record(seed=seed))
    assert invoke(*table_args(results)).exit_code == 0
    text = (results / "table2-quick.md").read_text()
    quoted = shlex.quote(str(results))
    assert f"--method segma --seeds 3 --dataset mnist --results-dir {quoted}`" in text
    assert f"from the records in `{results}/runs/quick/` by `python cli.py table --table 2 --budget quick " \
           f"--results-dir {quoted}`" in text
    assert "`results/runs/quick/`" not in text


GMVAE_PLUGIN = '''
"""A semi-supervised VAE written from docs/adding-a-method.md (tests/test_hostile_inputs.py)."""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from segma_bench.api import GenerativeMethod, MethodConfig, Unflatten, mlp, register


@dataclass
class TinyVAEConfig(MethodConfig):
    hidden: tuple[int, ...] = (16,)
    latent_dim: int = 3
    learning_rate: float = 3e-3


@register("gmvae-test")
class TinyVAE(GenerativeMethod):
    """Test plugin: a VAE with a stochastic encoder and a classifier on its mean."""
    config_class = TinyVAEConfig
    display_name = "GMVAE"
    table_variant = "semi-supervised"

    def __init__(self, config, spec):
        super().__init__(config, spec)
        pixels = math.prod(spec.image_shape)
        self.encoder = nn.Sequential(nn.Flatten(), mlp([pixels, *config.hidden, 2 * config.latent_dim]))
        self.decoder = nn.Sequential(mlp([config.latent_dim, *config.hidden[::-1], pixels], nn.Sigmoid()),
                                     Unflatten(spec.image_shape))
        self.head = nn.Linear(config.latent_dim, spec.num_classes)

    def posterior(self, x):
        mean, log_var = self.encoder(x).chunk(2, dim=1)
        return mean, log_var.clamp(-10.0, 10.0)

    def training_step(self, batch):
        x = torch.cat([batch.x_unlabeled, batch.x_labeled])
        mean, log_var = self.posterior(x)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        reconstruction = F.binary_cross_entropy(self.decoder(z), x, reduction="none").flatten(1).sum(1).mean()
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(1).mean()
        ce = F.cross_entropy(self.head(mean[len(batch.x_unlabeled):]), batch.y_labeled)
        return {"loss": reconstruction + kl + 10 * ce, "reconstruction": reconstruction, "kl": kl, "ce": ce}

    def encode(self, x):
        return self.posterior(x)[0]

    def decode(self, code):
        return self.decoder(code)

    def sample(self, classes, generator=None):
        return self.decode(torch.randn(len(classes), self.config.latent_dim, generator=generator).to(self.device))

    def classify(self, x):
        return F.log_softmax(self.head(self.encode(x)), dim=1)
'''


@pytest.fixture
def restore_registry():
    before = dict(methods.METHODS)
    yield
    methods.METHODS.clear()
    methods.METHODS.update(before)
    for name in [n for n in sys.modules if n.startswith("segma_plugin_gmvae")]:
        del sys.modules[name]


def forget_plugin():
    """As in a new process that was not given the plugin."""
    methods.METHODS.pop("gmvae-test", None)
    sys.modules.pop("segma_plugin_gmvae", None)


def test_a_plugin_row_renders_the_same_without_the_plugin_and_its_footnote_command_remakes_it(
        tmp_path, monkeypatch, make_fake, restore_registry):
    monkeypatch.setitem(datasets.DATASETS, "mnist", lambda root, cache: make_fake(name="mnist"))
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "gmvae.py").write_text(GMVAE_PLUGIN)
    common = ["--table", 2, "--budget", "quick", "--dataset", "mnist", "--results-dir", "scratch"]
    made = invoke("--plugin", "plugins/gmvae.py", "reproduce", *common, "--method", "gmvae-test", "--seeds", 1,
                  "--jobs", 1, "--device", "cpu")
    assert made.exit_code == 0, made.output
    table_file = tmp_path / "scratch" / "table2-quick.md"
    text = table_file.read_text()
    record = json.loads((tmp_path / "scratch" / "runs" / "quick" / "mnist-gmvae-test-seed0.json").read_text())
    assert record["display_name"] == "GMVAE" and record["paper_epochs"] is None
    row = next(line for line in text.splitlines() if "GMVAE" in line)
    assert row.startswith("| semi-supervised | GMVAE ") and "gmvae-test" not in row
    assert "GMVAE 5" in text and "GMVAE 5 (original" not in text  # no original length (before: "(paper: 500)")
    made_by = text.split("Made by `", 1)[1].split("`", 1)[0]
    assert made_by == ("SEGMA_PLUGINS=plugins/gmvae.py python cli.py reproduce --table 2 --budget quick --method "
                       "gmvae-test --seeds 1 --dataset mnist --results-dir scratch")

    forget_plugin()  # rendered again without the plugin: the same bytes
    table_file.unlink()
    again = invoke("table", "--table", 2, "--budget", "quick", "--results-dir", "scratch")
    assert again.exit_code == 0, again.output
    assert table_file.read_text() == text

    forget_plugin()  # the footnote's command, run as written (one job: the toy dataset lives in this process)
    words = shlex.split(made_by)
    env = dict(word.split("=", 1) for word in words[:1])
    assert words[1:3] == ["python", "cli.py"]
    table_file.unlink()
    rerun = invoke(*words[3:], "--jobs", 1, "--device", "cpu", env=env)
    assert rerun.exit_code == 0, rerun.output
    assert "already in" in rerun.output and table_file.read_text() == text


def test_a_method_name_that_could_name_a_path_cannot_be_registered(restore_registry):
    from segma_bench.core.errors import BadValueError
    for name in ("../x", "a/b", "x.y", ""):
        with pytest.raises(BadValueError, match="letters, digits"):
            methods.register(name)


def test_architecture_for_returns_a_copy():
    from segma_bench.methods.networks import SEGMA_ARCHITECTURES, architecture_for
    found = architecture_for("mnist", SEGMA_ARCHITECTURES)
    found["latent_dim"] = 99
    assert SEGMA_ARCHITECTURES["mnist"]["latent_dim"] == 10


def test_the_docs_close_the_plugin_authors_gaps():
    doc = (REPO / "docs" / "adding-a-method.md").read_text()
    for fragment in ("A stochastic encoder", "chunk(2, dim=1)", "tuple[int, ...]", "display_name", "starts empty",
                     "`--metric` repeats", "makes of them for a dataset", "a new dict", 'metadata={"minimum"'):
        assert fragment in doc, fragment


def test_launcher_slurm_without_slurm_is_one_line_before_anything_runs(tmp_path, monkeypatch):
    """No SLURM here: `reproduce --launcher slurm` says what it needs instead of submitit's RuntimeError."""
    import shutil

    from segma_bench.core.errors import BadValueError
    from segma_bench.reporting.reproduce import check_launcher
    with pytest.raises(BadValueError, match="sbatch, squeue, sacct"):
        check_launcher("slurm", which=lambda command: None)
    check_launcher("slurm", which=lambda command: f"/usr/bin/{command}")  # with SLURM: no complaint
    check_launcher("local")
    if shutil.which("sbatch") is None:
        result = CliRunner().invoke(cli, ["reproduce", "--table", "2", "--launcher", "slurm", "--budget", "quick",
                                          "--runs-root", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "r")])
        assert result.exit_code == 1 and "needs SLURM's sbatch" in result.output and "Traceback" not in result.output
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("checkpoint.pt"))


def test_device_cuda_is_left_to_the_slurm_jobs_on_a_login_node_without_a_gpu(tmp_path):
    """On a login node with no GPU, `--launcher slurm --device cuda` is not refused for this machine's lack of
    one (the jobs get GPUs from SLURM); without --launcher the same --device cuda is refused up front."""
    import shutil

    import torch

    if torch.cuda.is_available() or shutil.which("sbatch"):
        pytest.skip("needs a machine with neither a GPU nor SLURM")
    common = ["--runs-root", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "r"), "--device", "cuda"]
    for args in (["--launcher", "slurm", *common], [*common, "--launcher", "slurm"]):  # whichever is typed first
        with_slurm = CliRunner().invoke(cli, ["reproduce", "--table", "2", *args])
        assert with_slurm.exit_code == 1 and "needs SLURM's sbatch" in with_slurm.output
    here = CliRunner().invoke(cli, ["reproduce", "--table", "2", *common])
    assert here.exit_code == 2 and "no CUDA GPU is visible" in here.output


def test_a_budget_sized_for_one_dataset_refuses_the_others_before_training(tmp_path):
    from segma_bench.core.errors import BadValueError
    from segma_bench.reporting.budgets import check_budget_datasets, get_budget
    with pytest.raises(BadValueError, match="sized for celeba only, not mnist"):
        check_budget_datasets(get_budget("celeba-subset"), ["mnist"])
    check_budget_datasets(get_budget("celeba-subset"), ["celeba"])
    check_budget_datasets(get_budget("quick"), ["mnist", "svhn", "celeba"])


def test_launcher_settings_without_a_launcher_are_refused_not_ignored(tmp_path):
    result = invoke("reproduce", "--table", "2", "--partition", "gpu", "--runs-root", tmp_path / "runs",
                    "--results-dir", tmp_path / "r")
    one_line_error(result, "--launcher slurm")
    assert not (tmp_path / "runs").exists()
