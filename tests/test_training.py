"""The shared training loop (training/loop.py), its run folders, resume, errors and batches, on a tiny fake dataset."""
import json

import pytest
import torch

import segma_bench.methods as methods
from segma_bench.datasets.base import ImageDataset, Protocol
from segma_bench.datasets.splits import labeled_indices, load_indices
from segma_bench.evaluation.classification import train
from segma_bench.training import CheckpointError, NonFiniteLossError, RunMismatchError, RunSpec, load_trained
from segma_bench.training.batches import epoch_batches, labeled_slices, steps_per_epoch

SMALL = {"hidden": (32,)}  # a tuple on purpose: config.json stores it as a list, resume must still match


def spec(**changes):
    base = dict(method="segma", dataset="fake", seed=0, overrides=dict(SMALL), progress=False)
    return RunSpec(**{**base, **changes})


def model_state(run_dir):
    return torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)


def assert_same_tensors(a, b):
    """Equal keys and bit-identical tensors, wherever each lives (a GPU model against a checkpoint on the CPU)."""
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key].cpu(), b[key].cpu()), key


def without_seconds(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


# ---- a run ------------------------------------------------------------------------------------------------
def test_training_lowers_the_loss_and_writes_the_run_folder(tmp_path, fake_data):
    run_dir = tmp_path / "run"
    metrics = train(spec(overrides={**SMALL, "learning_rate": 1e-3}, epochs=5), run_dir, data=fake_data)
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt", "config.json", "labeled_indices.json",
                                                          "metrics.json", "train.log"]
    history = metrics["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert history[-1]["loss"] < history[0]["loss"] - 1.0
    assert history[-1]["mse"] < history[0]["mse"]
    assert history[-1]["ce"] < history[0]["ce"]
    assert metrics["test_error"] < 0.2  # three well separated blobs, learned from 6 labels
    assert metrics["epochs_completed"] == 5 == metrics["epochs_planned"]
    assert json.loads((run_dir / "metrics.json").read_text())["history"] == json.loads(json.dumps(history))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["run"]["method"] == "segma" and config["run"]["num_labeled"] == 6
    assert config["run"]["overrides"] == {"hidden": [32], "learning_rate": 1e-3}
    assert config["method_config"]["alpha"] == 5.0 and config["data_spec"]["num_classes"] == 3
    assert torch.equal(load_indices(run_dir / "labeled_indices.json"), labeled_indices(fake_data.train_labels, 6, 0))
    log = (run_dir / "train.log").read_text().splitlines()
    assert len(log) == 5 and json.loads(log[-1])["epoch"] == 5
    assert model_state(run_dir)["epoch"] == 5


def test_protocol_defaults_fill_the_run_spec(tmp_path, fake_data):
    metrics = train(spec(), tmp_path / "run", data=fake_data)   # epochs 0 -> the protocol's paper_epochs = 3
    assert metrics["epochs_completed"] == 3
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["run"]
    assert (saved["num_labeled"], saved["unlabeled_batch_size"], saved["labeled_batch_size"]) == (6, 10, 6)


@pytest.mark.device  # on a GPU where one is visible: resuming there is bit-identical too
def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path, fake_data, device_under_test):
    straight = tmp_path / "straight"
    train(spec(device=str(device_under_test)), straight, data=fake_data)

    resumed = tmp_path / "resumed"

    def crash(epoch, step):
        if (epoch, step) == (1, 2):
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(spec(device=str(device_under_test)), resumed, data=fake_data, on_step=crash)
    assert model_state(resumed)["epoch"] == 1  # the end of the first epoch, nothing of the second
    assert json.loads((resumed / "metrics.json").read_text())["epochs_completed"] == 1

    metrics = train(spec(device=str(device_under_test)), resumed, data=fake_data)
    a, b = model_state(straight), model_state(resumed)
    assert b["epoch"] == 3
    assert_same_tensors(a["model"], b["model"])
    for (ka, sa), (kb, sb) in zip(sorted(a["optimizer"]["state"].items()), sorted(b["optimizer"]["state"].items())):
        assert ka == kb
        assert_same_tensors(sa, sb)
    assert without_seconds(metrics["history"]) == without_seconds(a["history"])
    assert "resumed from the end of epoch 1" in (resumed / "train.log").read_text()
    assert {h["device"] for h in metrics["history"]} == {str(b["device"])} and b["device"].startswith(device_under_test.type)
    _, _, method = load_trained(resumed, data=fake_data, device=str(device_under_test))
    assert method.device.type == device_under_test.type
    assert_same_tensors(method.state_dict(), a["model"])


def test_each_epoch_records_the_torch_threads_it_ran_with(tmp_path, fake_data):
    # a run resumed on another thread count is not bit-identical to one that was not: the record says so
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        train(spec(epochs=1), tmp_path / "run", data=fake_data)
        torch.set_num_threads(2)
        metrics = train(spec(epochs=3), tmp_path / "run", data=fake_data)
    finally:
        torch.set_num_threads(before)
    assert [h["threads"] for h in metrics["history"]] == [1, 2, 2]


def test_cpu_training_flushes_denormals_records_it_and_restores_the_mode(tmp_path, fake_data, monkeypatch):
    from segma_bench.training.denormals import denormals_flushed
    before = denormals_flushed()
    during = []

    def look(epoch, step):
        during.append((epoch, denormals_flushed()))
    train(spec(epochs=1, device="cpu"), tmp_path / "run", data=fake_data, on_step=look)  # flushing is a CPU mode
    assert denormals_flushed() == before  # the process's own mode is back after training
    monkeypatch.setenv("SEGMA_FLUSH_DENORMAL", "0")  # the runs made before the switch: denormals kept
    metrics = train(spec(epochs=2, device="cpu"), tmp_path / "run", data=fake_data, on_step=look)
    assert {flushed for epoch, flushed in during if epoch == 0} == {True}
    assert {flushed for epoch, flushed in during if epoch == 1} == {False}
    assert [h["denormals_flushed"] for h in metrics["history"]] == [True, False]


# Two intra-op threads in a fresh interpreter: the pytest process runs one thread and its pool already exists.
THREADS_CREATED_BEFORE_THE_FLUSH = """
import warnings, torch
from segma_bench.training.denormals import calling_thread_flushes, denormal_mode, denormals_flushed
torch.set_num_threads(2)
torch.randn(1 << 20).sum()  # the first parallel operation creates the other thread, which keeps denormals
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with denormal_mode(True):
        print(calling_thread_flushes(), denormals_flushed(), len(caught))
"""
FLUSH_FOR_PROCESS_FIRST = """
import torch
from segma_bench.training.denormals import denormals_flushed, flush_for_process
torch.set_num_threads(2)
print(flush_for_process("cpu"), end=" ")
torch.randn(1 << 20).sum()
print(denormals_flushed())
"""


def run_snippet(code):
    import os
    import subprocess
    import sys
    from pathlib import Path
    env = {**os.environ, "OMP_NUM_THREADS": "2", "SEGMA_FLUSH_DENORMAL": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_flush_set_after_the_threads_exist_is_seen_as_partial_and_warned():
    """The mode is per thread: set after the pool exists it misses the other thread, and the check (which
    asks every thread, not only the caller) says so; the old one-element check said True here."""
    assert run_snippet(THREADS_CREATED_BEFORE_THE_FLUSH) == ["True", "False", "1"]


def test_flush_for_process_before_the_first_operation_reaches_every_thread():
    assert run_snippet(FLUSH_FOR_PROCESS_FIRST) == ["True", "True"]


def test_cli_train_sets_the_process_mode_before_training(monkeypatch, tmp_path, make_fake):
    from click.testing import CliRunner

    import segma_bench.datasets as datasets
    import segma_bench.evaluation.classification as classification
    import segma_bench.training as training
    from segma_bench.cli.main import cli
    monkeypatch.setitem(datasets.DATASETS, "fake-cli", lambda root, cache_dir: make_fake(name="fake-cli"))
    order = []
    monkeypatch.setattr(training.denormals, "flush_for_process", lambda device: order.append(("flush", device)))
    monkeypatch.setattr(classification, "train", lambda spec, run_dir, **hooks: order.append("train") or
                        {"epochs_completed": 0, "test_error": None})
    result = CliRunner().invoke(cli, ["train", "--method", "segma", "--dataset", "fake-cli", "--device", "cpu",
                                      "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert order == [("flush", torch.device("cpu")), "train"]


def test_denormal_mode_flushes_inside_the_block_only():
    from segma_bench.training.denormals import denormal_mode, denormals_flushed
    before = denormals_flushed()
    tiny = torch.full((8,), 1e-30)
    with pytest.raises(RuntimeError):
        with denormal_mode(True):
            assert denormals_flushed() and torch.all(tiny * 1e-10 == 0)  # 1e-40 is a float32 denormal
            raise RuntimeError("leaves the block")
    assert denormals_flushed() == before
    with denormal_mode(False):
        assert not denormals_flushed() and torch.all(tiny * 1e-10 > 0)
    assert denormals_flushed() == before


def test_records_copy_what_each_epoch_logged_about_how_it_ran():
    from segma_bench.reporting.cell import execution_by_epoch
    history = [{"epoch": 1}, {"epoch": 2, "threads": 1}, {"epoch": 3, "threads": 2, "denormals_flushed": True}]
    assert execution_by_epoch(history) == {"torch_threads_by_epoch": [None, 1, 2],
                                           "denormals_flushed_by_epoch": [None, None, True]}
    assert execution_by_epoch([{"epoch": 1}]) == {}  # a run made before either field: no key at all


def test_rerunning_a_finished_run_trains_nothing(tmp_path, fake_data):
    run_dir = tmp_path / "run"
    first = train(spec(epochs=2), run_dir, data=fake_data)
    before = (run_dir / "checkpoint.pt").read_bytes()

    def no_steps(epoch, step):
        raise AssertionError(f"a finished run trained again (epoch {epoch}, step {step})")
    again = train(spec(epochs=2), run_dir, data=fake_data, on_step=no_steps)
    assert (run_dir / "checkpoint.pt").read_bytes() == before
    assert again["history"] == first["history"] and again["epochs_completed"] == 2
    # asking for more epochs continues the same run
    more = train(spec(epochs=3), run_dir, data=fake_data)
    assert more["epochs_completed"] == 3 and more["history"][:2] == first["history"]


@pytest.mark.device  # on a GPU where one is visible: the CUDA policy (core/devices.py) keeps a seed's bits there too
def test_same_seed_same_weights_different_seed_differs(tmp_path, fake_data, device_under_test):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(spec(seed=seed, epochs=2, device=str(device_under_test)), tmp_path / name, data=fake_data)
        runs[name] = model_state(tmp_path / name)["model"]
    assert_same_tensors(runs["a"], runs["b"])
    assert not torch.equal(runs["a"]["encoder.1.0.weight"], runs["c"]["encoder.1.0.weight"])
    assert not torch.equal(load_indices(tmp_path / "a" / "labeled_indices.json"),
                           load_indices(tmp_path / "c" / "labeled_indices.json"))


# ---- clear errors -----------------------------------------------------------------------------------------
def test_corrupt_checkpoint_is_reported_and_left_untouched(tmp_path, fake_data):
    run_dir = tmp_path / "run"
    train(spec(epochs=1), run_dir, data=fake_data)
    garbage = b"\x00not a checkpoint\xff" * 10
    (run_dir / "checkpoint.pt").write_bytes(garbage)
    metrics_before = (run_dir / "metrics.json").read_text()
    with pytest.raises(CheckpointError) as info:
        train(spec(epochs=2), run_dir, data=fake_data)
    assert "checkpoint.pt" in str(info.value) and "untouched" in str(info.value)
    assert (run_dir / "checkpoint.pt").read_bytes() == garbage
    assert (run_dir / "metrics.json").read_text() == metrics_before
    # a readable file that is not a checkpoint of the suite is refused too
    torch.save({"weights": torch.zeros(2)}, run_dir / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        train(spec(epochs=2), run_dir, data=fake_data)


def test_non_finite_loss_stops_with_previous_checkpoint_intact(tmp_path, fake_data, monkeypatch):
    run_dir = tmp_path / "run"
    train(spec(epochs=1), run_dir, data=fake_data)
    before = (run_dir / "checkpoint.pt").read_bytes()
    segma = methods.get_method("segma")
    original = segma.training_step
    calls = []

    def nan_on_third_step(self, batch):
        terms = original(self, batch)
        calls.append(1)
        if len(calls) == 3:
            terms["loss"] = terms["loss"] * float("nan")
        return terms
    monkeypatch.setattr(segma, "training_step", nan_on_third_step)
    with pytest.raises(NonFiniteLossError) as info:
        train(spec(epochs=2), run_dir, data=fake_data)
    assert "epoch 2, step 2" in str(info.value) and "learning_rate" in str(info.value)
    assert (run_dir / "checkpoint.pt").read_bytes() == before
    assert model_state(run_dir)["epoch"] == 1
    assert json.loads((run_dir / "metrics.json").read_text())["epochs_completed"] == 1


@pytest.mark.parametrize("nan_step, found_by", [(2, "the check after step 3"), (5, "the end-of-epoch check")])
def test_a_guard_checking_every_few_steps_keeps_the_same_promise(tmp_path, fake_data, monkeypatch, nan_step,
                                                                 found_by):
    """As on a GPU: the guard looks every 4 steps and before saving; a NaN at any step still stops the
    run, names its step, and leaves the previous checkpoint as it was."""
    from segma_bench.training import guard
    monkeypatch.setitem(guard.CHECK_EVERY, "cpu", 4)
    run_dir = tmp_path / "run"
    train(spec(epochs=1), run_dir, data=fake_data)  # 6 steps per epoch
    before = (run_dir / "checkpoint.pt").read_bytes()
    segma = methods.get_method("segma")
    original = segma.training_step
    calls = []

    def nan_at_step(self, batch):
        terms = original(self, batch)
        calls.append(1)
        if len(calls) == nan_step + 1:
            terms["loss"] = terms["loss"] * float("nan")
        return terms
    monkeypatch.setattr(segma, "training_step", nan_at_step)
    with pytest.raises(NonFiniteLossError) as info:
        train(spec(epochs=2), run_dir, data=fake_data)
    assert f"epoch 2, step {nan_step}." in str(info.value), found_by
    assert (run_dir / "checkpoint.pt").read_bytes() == before
    assert json.loads((run_dir / "metrics.json").read_text())["epochs_completed"] == 1


def test_checking_every_few_steps_does_not_change_training(tmp_path, fake_data, monkeypatch):
    from segma_bench.training import guard
    train(spec(epochs=2), tmp_path / "every-step", data=fake_data)
    monkeypatch.setitem(guard.CHECK_EVERY, "cpu", 4)
    train(spec(epochs=2), tmp_path / "every-4", data=fake_data)
    a, b = model_state(tmp_path / "every-step")["model"], model_state(tmp_path / "every-4")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("change", [dict(seed=1), dict(overrides={"hidden": (16,)}), dict(num_labeled=9),
                                    dict(method="segma-unsup")])
def test_resume_with_different_settings_is_refused(tmp_path, fake_data, change):
    run_dir = tmp_path / "run"
    train(spec(epochs=1), run_dir, data=fake_data)
    before = (run_dir / "checkpoint.pt").read_bytes()
    with pytest.raises(RunMismatchError) as info:
        train(spec(epochs=2, **change), run_dir, data=fake_data)
    assert next(iter(change)) in str(info.value) and str(run_dir) in str(info.value)
    assert (run_dir / "checkpoint.pt").read_bytes() == before


def test_settings_that_do_not_change_the_result_may_differ_on_resume(tmp_path, fake_data):
    run_dir = tmp_path / "run"
    train(spec(epochs=1), run_dir, data=fake_data)
    metrics = train(spec(epochs=2, cache_dir=str(tmp_path / "elsewhere"), device="cpu"), run_dir, data=fake_data)
    assert metrics["epochs_completed"] == 2
    assert "resumed from the end of epoch 1" in (run_dir / "train.log").read_text()
    # ... and they do not change it: the same weights and history as two epochs in one go
    straight = train(spec(epochs=2), tmp_path / "straight", data=fake_data)
    assert without_seconds(metrics["history"]) == without_seconds(straight["history"])
    assert_same_tensors(model_state(run_dir)["model"], model_state(tmp_path / "straight")["model"])


def test_one_rule_finds_run_folders_for_reuse_and_for_figures(tmp_path):
    from segma_bench.figures.make import find_runs
    from segma_bench.reporting.run_reuse import find_reusable_run
    from segma_bench.training import RunFolder, find_run_folders

    def folder(path, config, checkpoint=True, epochs=3):
        run = RunFolder(tmp_path / path)
        run.path.mkdir(parents=True)
        run.config.write_text(config if isinstance(config, str) else json.dumps(config))
        run.metrics.write_text(json.dumps({"epochs_completed": epochs}))
        if checkpoint:
            run.checkpoint.write_bytes(b"")
        return run.path

    identity = {**spec().identity(), "overrides": {"hidden": [32]}}
    good = folder("mnist/segma/seed0", {"run": identity})
    folder("a/no-checkpoint", {"run": identity}, checkpoint=False, epochs=9)
    folder("b/broken", "{not json")
    folder("c/not-a-run", {"run": ["segma"]})
    folder("d/no-run", {"method_config": {}})
    other = folder("z/other-seed", {"run": {**identity, "seed": 1}})
    assert find_run_folders(tmp_path) == [(good, identity), (other, {**identity, "seed": 1})]
    assert find_run_folders(tmp_path / "nowhere") == []
    # `reproduce` (reuse) and `figures --table-figures` take their candidates from that one list
    assert find_reusable_run(tmp_path, spec().identity(), 2) == (good, 3)
    assert find_reusable_run(tmp_path, spec().identity(), 4) == (None, 0)
    assert find_runs(tmp_path, "fake") == {"segma": good}


def test_unknown_method_fails_before_reading_data(tmp_path):
    with pytest.raises(methods.UnknownNameError, match="no-such-method"):
        train(spec(method="no-such-method", dataset="no-such-dataset"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ---- batches ----------------------------------------------------------------------------------------------
def indexed_dataset(n):
    """Image i is one pixel of value i, so a batch tells which examples it holds."""
    return ImageDataset(name="indexed", train_images=torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1),
                        train_labels=torch.arange(n) % 3, test_images=torch.zeros(1, 1, 1, 1, dtype=torch.uint8),
                        test_labels=torch.zeros(1, dtype=torch.long), class_names=("a", "b", "c"),
                        protocol=Protocol(6, 10, 6, 1))


def ids(x):
    return (x.flatten() * 255).round().long().tolist()


def test_labeled_part_is_all_labeled_examples_when_they_fit():
    data = indexed_dataset(60)
    labeled = torch.tensor([3, 8, 13, 21, 40, 59])
    batches = list(epoch_batches(data, labeled, seed=0, epoch=0, unlabeled_batch_size=10, labeled_batch_size=6,
                                 device="cpu"))
    assert len(batches) == 6 == steps_per_epoch(data, 10)
    for b in batches:
        assert ids(b.x_labeled) == labeled.tolist()
        assert torch.equal(b.y_labeled, data.train_labels[labeled])
        assert b.x_unlabeled.shape == (10, 1, 1, 1) and b.x_labeled.dtype == torch.float32
    # MNIST's protocol: 100 labeled, batches of 100 -> all of them every time
    assert all(torch.equal(s, torch.arange(100)) for s in labeled_slices(100, 100, 5, torch.Generator()))


def test_labeled_part_cycles_through_all_labeled_examples():
    data = indexed_dataset(100)
    labeled = torch.arange(0, 98, 7)  # 14 labeled examples, slices of 6
    seen = []
    for b in epoch_batches(data, labeled, seed=3, epoch=0, unlabeled_batch_size=10, labeled_batch_size=6,
                           device="cpu"):
        assert len(b.x_labeled) == 6
        assert torch.equal(b.y_labeled, data.train_labels[torch.tensor(ids(b.x_labeled))])
        seen += ids(b.x_labeled)
    assert len(seen) == 60
    for start in range(0, 56, 14):  # every consecutive pass of 14 draws holds each labeled example once
        assert sorted(seen[start:start + 14]) == labeled.tolist()
    assert seen[:14] != labeled.tolist()  # shuffled, not in index order


def test_unlabeled_batches_cover_the_pool_once_per_epoch():
    data = indexed_dataset(60)
    labeled = torch.arange(6)
    per_epoch = []
    for epoch in (0, 1):
        seen = []
        for b in epoch_batches(data, labeled, seed=0, epoch=epoch, unlabeled_batch_size=10, labeled_batch_size=6,
                               device="cpu"):
            seen += ids(b.x_unlabeled)
        assert sorted(seen) == list(range(60))
        per_epoch.append(seen)
    assert per_epoch[0] != per_epoch[1]  # reshuffled every epoch
    again = [i for b in epoch_batches(data, labeled, 0, 0, 10, 6, "cpu") for i in ids(b.x_unlabeled)]
    assert again == per_epoch[0]        # the order depends only on (seed, epoch)
    # an incomplete last slice is dropped: each example at most once, all batches the same size
    odd = indexed_dataset(65)
    seen = [ids(b.x_unlabeled) for b in epoch_batches(odd, labeled, 0, 0, 10, 6, "cpu")]
    assert [len(s) for s in seen] == [10] * 6
    flat = sum(seen, [])
    assert len(set(flat)) == 60 and max(flat) < 65
    with pytest.raises(ValueError, match="smaller than one batch"):
        list(epoch_batches(indexed_dataset(5), labeled[:3], 0, 0, 10, 6, "cpu"))


def test_loading_an_untrained_run_says_so(tmp_path):
    from segma_bench.training.checkpoint import CheckpointError, load_checkpoint
    with pytest.raises(CheckpointError, match="has not finished an epoch yet"):
        load_checkpoint(tmp_path / "checkpoint.pt")
