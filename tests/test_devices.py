"""Devices: decided where a cell runs, one GPU's RNG state per checkpoint, the device and
CUDA precision recorded, workers spread over GPUs, no host-device sync per step.

Most tests run on the CPU and reach the CUDA branches by monkeypatching torch.cuda (no GPU is needed to check a
decision). Tests marked `device` run on a GPU where one is visible (benchmarks/gpu_check.py runs them there);
those that need one are skipped elsewhere."""
import json
import os
import warnings
from contextlib import contextmanager, nullcontext

import pytest
import torch

from conftest import tiny_options
from segma_bench.core import devices
from segma_bench.core.errors import BadValueError
from segma_bench.evaluation.classification import train
from segma_bench.training import RunSpec
from segma_bench.training.checkpoint import device_change_note, load_checkpoint, restore_rng, save_checkpoint

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.py)")
SMALL = {"hidden": (16,)}


def spec(**changes):
    return RunSpec(**{**dict(method="segma", dataset="fake", seed=0, overrides=dict(SMALL), progress=False,
                             device="cpu"), **changes})


def pretend_gpus(monkeypatch, count, visible=None):
    """torch.cuda as on a machine with `count` GPUs (CUDA_VISIBLE_DEVICES=`visible`, unset when None)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)


def forbid(monkeypatch, *names):
    """Make torch.cuda.NAME raise: the code under test must not call it."""
    for name in names:
        def refuse(*args, _name=name, **kwargs):
            raise AssertionError(f"torch.cuda.{_name} called")
        monkeypatch.setattr(torch.cuda, name, refuse)


# ---------------------------------------------------------------- which device, decided where

def test_auto_resolves_in_the_process_that_asks(monkeypatch):
    pretend_gpus(monkeypatch, 0)
    assert devices.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(BadValueError, match="sees 0 CUDA device.*gpus_per_node=1"):
        devices.resolve_device("cuda")
    pretend_gpus(monkeypatch, 2, visible="4,6")
    assert devices.resolve_device("auto") == torch.device("cuda")
    assert devices.resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(BadValueError, match="sees 2 CUDA device.*CUDA_VISIBLE_DEVICES='4,6'"):
        devices.resolve_device("cuda:2")


def test_cuda_and_cuda_0_are_the_same_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert devices.same_device("cuda", "cuda:0") and devices.same_device("cuda:0", torch.device("cuda"))
    assert not devices.same_device("cuda", "cuda:1") and not devices.same_device("cpu", "cuda:0")
    assert devices.same_device("cpu", torch.device("cpu"))
    assert torch.device("cuda") != torch.device("cuda:0")  # why `==` was wrong in training/batches.py


def test_gpu_ids_keep_the_parents_numbering(monkeypatch):
    pretend_gpus(monkeypatch, 2)
    assert devices.gpu_ids() == ["0", "1"]
    pretend_gpus(monkeypatch, 2, visible="3,GPU-5e1c")
    assert devices.gpu_ids() == ["3", "GPU-5e1c"]
    pretend_gpus(monkeypatch, 0, visible="")
    assert devices.gpu_ids() == []


def make_task(tmp_path, device="auto", threads=1, fid_device=None):
    from segma_bench.reporting.launch import Cell, CellTask
    options = tiny_options(tmp_path, device=device, fid_device=fid_device)
    return CellTask(Cell("fake", "segma", 0), 2, "quick", options, threads)


@pytest.fixture
def job_process(monkeypatch):
    """job_setup's effects on this process recorded instead of done: threads, current GPU, denormal mode."""
    import segma_bench.training.denormals as denormals
    seen = {}
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.setdefault("threads", n))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: seen.setdefault("current_gpu", str(device)))
    monkeypatch.setattr(denormals, "flush_for_process", lambda device: seen.setdefault("flush_for", str(device)))
    return seen


def test_a_job_decides_its_training_and_fid_device_itself(tmp_path, monkeypatch, job_process):
    """The High defect: the FID device came from the parent (`reproduce`), the training device from the job."""
    from segma_bench.reporting.launch import job_setup
    pretend_gpus(monkeypatch, 0)  # a job started without a GPU (submitit local without gpus_per_node, say)
    options = job_setup(make_task(tmp_path, "auto"))
    assert (options.device, options.fid_device) == ("cpu", "cpu") and job_process["flush_for"] == "cpu"
    pretend_gpus(monkeypatch, 1, visible="0")  # a job given one GPU
    options = job_setup(make_task(tmp_path, "auto"))
    assert (options.device, options.fid_device) == ("cuda", "cuda")
    job_process.clear()
    options = job_setup(make_task(tmp_path, "cuda:0", fid_device="cpu"))  # an explicit FID device is kept
    assert (options.device, options.fid_device, job_process["current_gpu"]) == ("cuda:0", "cpu", "cuda:0")
    pretend_gpus(monkeypatch, 0, visible="")
    with pytest.raises(BadValueError, match="sees 0 CUDA device"):  # said in the cell's log, not a silent CPU run
        job_setup(make_task(tmp_path, "cuda"))


def test_a_job_without_threads_given_uses_its_own_cores(tmp_path, monkeypatch, job_process):
    import segma_bench.reporting.launch as launch
    pretend_gpus(monkeypatch, 0)
    monkeypatch.setattr(launch, "available_cores", lambda: 7)  # a SLURM job's allocation, not the login node's
    launch.job_setup(make_task(tmp_path, "cpu", threads=None))
    assert job_process["threads"] == 7


def test_the_fid_extractor_follows_the_device_of_the_process(tmp_path, monkeypatch):
    import segma_bench.evaluation.inception as inception
    from segma_bench.reporting.launch import extractor_factory
    built = []
    monkeypatch.setattr(inception, "FeatureExtractor", lambda weights_path, device: built.append(device) or device)
    pretend_gpus(monkeypatch, 0)
    from segma_bench.reporting.options import ReproduceOptions
    assert extractor_factory(ReproduceOptions(device="auto"))() == "cpu"
    pretend_gpus(monkeypatch, 1)
    assert extractor_factory(ReproduceOptions(device="auto"))() == "cuda"
    assert extractor_factory(ReproduceOptions(device="auto", fid_device="cpu"))() == "cpu"
    factory = extractor_factory(ReproduceOptions(device="cpu"))
    assert factory() is factory() and built == ["cpu", "cuda", "cpu", "cpu"]  # built once per process


def test_reproduce_leaves_the_fid_device_to_the_cells(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import segma_bench.reporting.reproduce as reproduce
    from segma_bench.cli.main import cli
    seen = {}
    monkeypatch.setattr(reproduce, "reproduce", lambda *args, **kwargs: seen.update(vars(args[5])) or ("t.md", "table"))
    result = CliRunner().invoke(cli, ["reproduce", "--table", "2", "--device", "cpu", "--launcher", "local",
                                      "--runs-root", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert seen["fid_device"] is None and seen["device"] == "cpu"


# ---------------------------------------------------------------- workers and jobs over GPUs

def test_jobs_default_to_one_per_gpu_used(monkeypatch):
    from segma_bench.reporting import launch
    monkeypatch.setattr(launch, "available_cores", lambda: 16)
    pretend_gpus(monkeypatch, 2)
    assert launch.default_jobs("auto") == 2 == launch.default_jobs("cuda") == launch.default_jobs("auto", "local")
    assert launch.default_jobs("cuda:1") == 1
    assert launch.default_jobs("cpu") == 16 and launch.default_jobs("auto", "slurm") == 16
    pretend_gpus(monkeypatch, 0)
    assert launch.default_jobs("auto") == 16


def test_workers_go_to_the_least_busy_gpu(tmp_path, monkeypatch):
    from segma_bench.reporting.launch import on_least_busy_gpu
    pretend_gpus(monkeypatch, 2)
    gpus = devices.worker_devices("auto")
    assert gpus == ["cuda:0", "cuda:1"] and devices.worker_devices("cuda:1") == ["cuda:1"]
    assert devices.worker_devices("cpu") == ["cpu"]
    running = []
    for _ in range(4):  # --jobs 4 on 2 GPUs: two on each, round-robin
        running.append(on_least_busy_gpu(make_task(tmp_path), gpus, running))
    assert [task.options.device for task in running] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    running = [running[0], running[2]]  # the two on cuda:1 finished: the next worker goes there
    assert on_least_busy_gpu(make_task(tmp_path), gpus, running).options.device == "cuda:1"
    task = make_task(tmp_path, "cpu")
    assert on_least_busy_gpu(task, [], running) is task  # no GPUs: the task decides in its process


def test_split_on_the_gpu_is_a_fixed_rule_not_a_free_memory_race(monkeypatch):
    from segma_bench.training import batches

    class Properties:
        total_memory = 80 * 2**30
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Properties)
    forbid(monkeypatch, "mem_get_info")  # what other workers hold must not change a worker's choice
    assert batches.split_fits_on_gpu(2_517_000_000, "cuda:0")  # CelebA's 202,599 64x64 RGB images: 2.5 GB
    assert not batches.split_fits_on_gpu(11 * 2**30, "cuda:0")  # over an eighth: stays pinned on the host


# ---------------------------------------------------------------- submitit: --launcher local and slurm

def test_launchers_give_each_job_one_gpu_seen_as_cuda_0(tmp_path, monkeypatch):
    from segma_bench.reporting import cluster
    pretend_gpus(monkeypatch, 2, visible="3,5")
    assert cluster.local_gpus("auto") == ["3", "5"] == cluster.local_gpus("cuda")
    assert cluster.local_gpus("cuda:1") == ["5"] and cluster.local_gpus("cpu") == []
    pretend_gpus(monkeypatch, 0, visible="")
    assert cluster.local_gpus("auto") == []
    task = make_task(tmp_path, "cuda:1")
    assert cluster.job_task(task).options.device == "cuda"  # the job sees its one GPU as cuda:0
    assert cluster.job_task(make_task(tmp_path, "auto")).options.device == "auto"  # decided in the job


def test_a_local_job_sees_the_gpu_it_was_given(tmp_path):
    """Through submitit's local executor itself: the job's CUDA_VISIBLE_DEVICES is the GPU it was given
    (a number or a UUID), and empty for a CPU job (what every job got before, GPU or not)."""
    from segma_bench.reporting import cluster
    executor = cluster.make_executor("local", tmp_path / "submitit", {"timeout_min": 5}, 1, 2, "auto")
    visible = lambda: __import__("os").environ.get("CUDA_VISIBLE_DEVICES")  # noqa: E731 (pickled by value)
    cpu_job = executor.submit(visible)
    executor.update_parameters(**cluster.local_gpu_parameters("3"))
    gpu_job = executor.submit(visible)
    executor.update_parameters(**cluster.local_gpu_parameters("GPU-5e1c0f"))
    uuid_job = executor.submit(visible)
    assert (cpu_job.result(), gpu_job.result(), uuid_job.result()) == ("", "3", "GPU-5e1c0f")


@pytest.fixture
def fake_srun(tmp_path, monkeypatch):
    """submitit's SLURM executor looks for srun on the PATH; nothing is submitted in these tests."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_slurm_jobs_ask_for_a_gpu_and_their_own_cores(tmp_path, fake_srun, monkeypatch):
    from segma_bench.reporting import cluster
    pretend_gpus(monkeypatch, 0)  # a login node without a GPU: nothing about it reaches the jobs

    def parameters(device, threads=None, slurm=None):
        executor = cluster.make_executor("slurm", tmp_path / "s", {"slurm": slurm or {}}, threads, 3, device)
        return executor._executor.parameters
    assert parameters("cuda")["gpus_per_node"] == 1 and parameters("cuda")["cpus_per_task"] == cluster.DEFAULT_SLURM_CPUS
    assert "gpus_per_node" not in parameters("auto") and "gpus_per_node" not in parameters("cpu")
    assert parameters("auto", threads=6)["cpus_per_task"] == 6
    given = parameters("cuda", slurm={"gres": "gpu:2", "cpus_per_task": "8"})
    assert "gpus_per_node" not in given and given["gres"] == "gpu:2" and given["cpus_per_task"] == "8"


# ---------------------------------------------------------------- checkpoints: the run's own device's RNG state

class FakeMethod(torch.nn.Module):
    def __init__(self, device):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2))
        self._device = torch.device(device)

    @property
    def device(self):
        return self._device


def checkpoint_of(tmp_path, device, history=()):
    method = FakeMethod(device)
    save_checkpoint(tmp_path / "checkpoint.pt", method, torch.optim.SGD(method.parameters(), lr=0.1), 1,
                    list(history), devices.execution_environment("cpu") if device == "cpu" else {"device": device})
    return load_checkpoint(tmp_path / "checkpoint.pt")


def test_a_cpu_run_never_asks_cuda_for_rng_state(tmp_path, monkeypatch):
    pretend_gpus(monkeypatch, 2)
    forbid(monkeypatch, "get_rng_state_all", "set_rng_state_all", "get_rng_state", "set_rng_state")
    state = checkpoint_of(tmp_path, "cpu")
    assert state["cuda_rng"] is None and state["device"] == "cpu"
    older = {**state, "cuda_rng": [torch.zeros(8, dtype=torch.uint8)] * 3}  # before: every visible GPU's
    assert restore_rng(older, "cpu") is None


def test_a_gpu_run_saves_its_own_gpus_rng_state_only(tmp_path, monkeypatch):
    pretend_gpus(monkeypatch, 2)
    forbid(monkeypatch, "get_rng_state_all")
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda index: torch.full((8,), index, dtype=torch.uint8))
    state = checkpoint_of(tmp_path, "cuda:1")
    assert state["device"] == "cuda:1" and torch.equal(state["cuda_rng"], torch.full((8,), 1, dtype=torch.uint8))


def test_resume_restores_the_runs_own_state_where_fewer_gpus_are_visible(tmp_path, monkeypatch):
    pretend_gpus(monkeypatch, 1)
    forbid(monkeypatch, "set_rng_state_all")
    restored = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, index: restored.append((int(state[0]), index)))
    own = {"torch_rng": torch.get_rng_state(), "cuda_rng": torch.full((8,), 1, dtype=torch.uint8), "device": "cuda:1"}
    assert restore_rng(own, "cuda:0") is None and restored == [(1, 0)]  # moved from cuda:1: its own stream goes along
    older = {"torch_rng": torch.get_rng_state(), "cuda_rng": [torch.full((8,), i, dtype=torch.uint8) for i in range(2)]}
    restored.clear()
    assert restore_rng(older, "cuda:0") is None and restored == [(0, 0)]
    restored.clear()
    with pytest.warns(RuntimeWarning, match="none for cuda:2"):  # an older checkpoint, fewer GPUs: no IndexError
        note = restore_rng({**older, "cuda_rng": older["cuda_rng"][:1]}, "cuda:2")
    assert "not bit-identical" in note and restored == []


def test_a_cpu_run_resumes_from_an_older_checkpoint_with_more_gpus_than_visible(tmp_path, fake_data, monkeypatch):
    """Before: a CPU run saved every visible GPU's state; resumed where fewer were visible, it raised IndexError
    (at its next save, after an epoch of work). Now it never touches CUDA's RNG. (torch.cuda.is_available is not
    faked here: Adam asks it too, and would then look for a GPU; the unit tests above fake it.)"""
    run_dir = tmp_path / "run"
    train(spec(epochs=1), run_dir, data=fake_data)
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    state.pop("device"), state.pop("execution")
    torch.save({**state, "cuda_rng": [torch.zeros(8, dtype=torch.uint8)] * 2}, run_dir / "checkpoint.pt")
    forbid(monkeypatch, "get_rng_state_all", "set_rng_state_all", "get_rng_state", "set_rng_state")
    metrics = train(spec(epochs=2), run_dir, data=fake_data)
    assert metrics["epochs_completed"] == 2
    assert load_checkpoint(run_dir / "checkpoint.pt")["cuda_rng"] is None


# ---------------------------------------------------------------- the device in config, metrics and records

def test_a_run_records_its_device_in_config_metrics_and_every_epoch(tmp_path, fake_data):
    run_dir = tmp_path / "run"
    metrics = train(spec(epochs=2), run_dir, data=fake_data)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["execution"]["device"] == "cpu" and config["execution"]["device_type"] == "cpu"
    assert json.loads((run_dir / "metrics.json").read_text())["execution"] == metrics["execution"] == config["execution"]
    assert [h["device"] for h in metrics["history"]] == ["cpu", "cpu"]
    assert all(isinstance(h["denormals_flushed"], bool) for h in metrics["history"])  # a CPU mode: said on the CPU
    again = train(spec(epochs=2), run_dir, data=fake_data)  # a finished run: nothing trained, the record stays
    assert again["execution"] == metrics["execution"]


def test_gpu_description_names_the_model_versions_and_precision(monkeypatch, cuda_flags):
    class Properties:
        name, total_memory, major, minor = "NVIDIA H200", 143 * 2**30, 9, 0
    pretend_gpus(monkeypatch, 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Properties)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91000)
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    devices.apply_cuda_policy()
    described = devices.execution_environment("cuda")
    assert described["device"] == "cuda:0" and described["gpu_name"] == "NVIDIA H200"
    assert (described["cuda_version"], described["cudnn_version"], described["gpu_capability"]) == ("13.0", 91000, "9.0")
    assert described["tf32_matmul"] is False and described["tf32_cudnn_conv"] is False
    assert devices.device_label(described) == "cuda:0 (NVIDIA H200)"


@pytest.fixture
def cuda_flags(monkeypatch):
    """The process-wide CUDA precision flags and CUBLAS_WORKSPACE_CONFIG, restored after the test."""
    backends = torch.backends
    saved = (backends.cuda.matmul.fp32_precision, backends.cudnn.conv.fp32_precision,
             backends.cudnn.rnn.fp32_precision, backends.cudnn.deterministic, backends.cudnn.benchmark)
    monkeypatch.delenv(devices.CUBLAS_WORKSPACE_ENV, raising=False)
    monkeypatch.delenv(devices.TF32_ENV, raising=False)
    yield
    (backends.cuda.matmul.fp32_precision, backends.cudnn.conv.fp32_precision, backends.cudnn.rnn.fp32_precision,
     backends.cudnn.deterministic, backends.cudnn.benchmark) = saved


def test_the_cuda_policy_is_ieee_float32_and_deterministic_cudnn_and_is_recorded(cuda_flags, monkeypatch):
    torch.backends.cudnn.conv.fp32_precision = "tf32"  # torch's default for cuDNN convolutions
    assert devices.precision_state()["tf32_cudnn_conv"] is True
    state = devices.apply_cuda_policy()
    assert state == {"tf32_matmul": False, "tf32_cudnn_conv": False, "cudnn_deterministic": True,
                     "cudnn_benchmark": False, "deterministic_algorithms": False,  # nll_loss would raise on CUDA
                     "cublas_workspace_config": ":4096:8"}
    monkeypatch.setenv(devices.TF32_ENV, "1")  # the opt-in, recorded as such
    state = devices.apply_cuda_policy()
    assert state["tf32_matmul"] is True and state["tf32_cudnn_conv"] is True


def test_resuming_on_another_device_type_warns_and_says_which(tmp_path, fake_data):
    run_dir = tmp_path / "run"
    train(spec(epochs=1), run_dir, data=fake_data)
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    gpu = {"device": "cuda:0", "device_type": "cuda", "gpu_name": "NVIDIA H200"}
    torch.save({**state, "device": "cuda:0", "execution": gpu}, run_dir / "checkpoint.pt")
    with pytest.warns(RuntimeWarning, match=r"resumed on cpu; epoch 1 was trained on cuda:0 \(NVIDIA H200\)"):
        metrics = train(spec(epochs=2), run_dir, data=fake_data)
    assert "was trained on cuda:0 (NVIDIA H200)" in (run_dir / "train.log").read_text()
    assert metrics["history"][-1]["device"] == "cpu"


def test_another_gpu_of_the_same_kind_is_only_noted():
    state = {"epoch": 3, "execution": {"device": "cuda:1", "gpu_name": "NVIDIA H200"}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        note = device_change_note(state, {"device": "cuda:0", "gpu_name": "NVIDIA H200"})
        assert note == "resumed on cuda:0 (NVIDIA H200); epoch 3 was trained on cuda:1 (NVIDIA H200)"
        assert device_change_note(state, state["execution"]) is None
        assert device_change_note({"epoch": 1, "history": [{"epoch": 1}]}, {"device": "cpu"}) is None  # older


def test_records_copy_the_device_of_each_epoch_and_the_execution(tmp_path, monkeypatch, make_fake):
    import segma_bench.datasets as datasets
    from segma_bench.reporting.reproduce import reproduce
    monkeypatch.setitem(datasets.DATASETS, "mnist", lambda root, cache: make_fake(name="mnist"))
    options = tiny_options(tmp_path, device="auto", fid_device=None)
    reproduce(2, ["mnist"], ["segma"], 1, "quick", options, "test", log=lambda *_: None)
    record = json.loads(next((tmp_path / "results" / "runs" / "quick").glob("*.json")).read_text())
    assert record["training"]["device_by_epoch"] == ["cpu"] * record["training"]["epochs"]
    assert record["training"]["execution"]["device"] == "cpu"


# ---------------------------------------------------------------- low: syncs, pinned copies, cache key, figures

def test_cramer_wold_takes_gamma_as_a_float_with_the_same_bits():
    from segma_bench.methods.cramer_wold import cramer_wold_distance_sq
    generator = torch.Generator().manual_seed(0)
    z, means = torch.randn(20, 10, generator=generator), torch.randn(3, 10, generator=generator)
    priors, variances = torch.tensor([0.5, 0.3, 0.2]), torch.ones(3)
    from_float = cramer_wold_distance_sq(z, means, priors, variances, 0.37)
    assert torch.equal(from_float, cramer_wold_distance_sq(z, means, priors, variances, torch.tensor(0.37)))
    assert from_float.dtype == torch.float32


def test_m1m2_reads_its_kept_dims_flag_once_not_every_step(fake_data):
    from segma_bench.training import prepare
    _, data, labeled_idx, method = prepare(RunSpec(method="m1m2", dataset="fake", device="cpu"), None, fake_data)
    from segma_bench.training.batches import epoch_batches
    batch = next(iter(epoch_batches(data, labeled_idx, 0, 1, 10, 6, "cpu")))
    method.on_epoch_start(method.config.m1_epochs, None)  # M2
    method.training_step(batch)  # the first M2 step fixes the kept dims
    assert method._kept_dims_fixed is True

    class NoBool(torch.Tensor):
        def __bool__(self):
            raise AssertionError("m1_keep_fixed read on the host (a GPU sync every step)")
    state = {k: v.clone() for k, v in method.state_dict().items()}
    method.m1_keep_fixed = torch.Tensor._make_subclass(NoBool, method.m1_keep_fixed)
    method.training_step(batch)
    method.m1_keep_fixed = torch.tensor(False)
    method.load_state_dict(state)  # a checkpoint loaded: read once again
    assert method._kept_dims_fixed is None
    method.training_step(batch)
    assert method._kept_dims_fixed is True


def test_the_fid_reference_key_names_a_gpu_and_keeps_the_cpus_files(tmp_path, monkeypatch):
    from segma_bench.evaluation.fid import reference_cache_path, reference_key

    class Extractor:
        weights_sha256 = "a" * 64

        def __init__(self, device=None):
            if device is not None:
                self.device = torch.device(device)
    key = {"dataset": "mnist", "split": "train", "num_samples": 10, "preprocessing": "x"}
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "NVIDIA H200")
    cpu, old, gpu = (reference_key(key, Extractor(device)) for device in ("cpu", None, "cuda:0"))
    assert cpu == old and "extraction_device" not in cpu  # the caches written on the CPU stay valid
    assert gpu["extraction_device"] == "cuda (NVIDIA H200)"
    assert reference_cache_path(tmp_path, gpu) != reference_cache_path(tmp_path, cpu)


def test_seeded_rng_restores_the_cpu_and_touches_only_the_runs_gpu(monkeypatch):
    before = torch.get_rng_state()
    forbid(monkeypatch, "manual_seed_all")
    with devices.seeded_rng(5, "cpu"):
        first = torch.rand(3)
    with devices.seeded_rng(5, "cpu"):
        assert torch.equal(torch.rand(3), first)
    assert torch.equal(torch.get_rng_state(), before)
    forked, seeded = [], []

    @contextmanager
    def fork_rng(devices):
        forked.append(list(devices))
        yield
    monkeypatch.setattr(torch.random, "fork_rng", fork_rng)
    monkeypatch.setattr(torch.cuda, "device", lambda index: nullcontext(seeded.append(("on", index))))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: seeded.append(("seed", seed)))
    with devices.seeded_rng(5, "cuda:1"):
        pass
    assert forked == [[1]] and seeded == [("on", 1), ("seed", 5)]  # fork, seed and restore the run's GPU alone


def test_figures_seed_the_methods_own_device(tmp_path, monkeypatch):
    from segma_bench.figures import make
    seen = []

    @contextmanager
    def seeded_rng(seed, device):
        seen.append((seed, str(device)))
        yield
    monkeypatch.setattr(make, "seeded_rng", seeded_rng)
    monkeypatch.setattr(make, "samples_figure", lambda method, data, seed, n_cols: "figure")
    monkeypatch.setattr(make, "write_figure", lambda figure, out_dir, context: figure)
    assert make.make_samples(FakeMethod("cuda:1"), None, 3, tmp_path) == "figure" and seen == [(3, "cuda:1")]


# ---------------------------------------------------------------- on a GPU where one is visible

@pytest.mark.device
def test_training_on_the_device_records_it(tmp_path, fake_data, device_under_test):
    run_dir = tmp_path / "run"
    metrics = train(spec(epochs=2, device=str(device_under_test)), run_dir, data=fake_data)
    execution = metrics["execution"]
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert execution["device_type"] == device_under_test.type == torch.device(state["device"]).type
    flushed = [h["denormals_flushed"] for h in metrics["history"]]
    if device_under_test.type == "cuda":
        assert execution["gpu_name"] and execution["cuda_version"] and execution["tf32_cudnn_conv"] is False
        assert flushed == [None, None]  # flushing is a CPU mode
        assert isinstance(state["cuda_rng"], torch.Tensor)  # this GPU's state alone, not a list of all
    else:
        assert all(isinstance(f, bool) for f in flushed) and state["cuda_rng"] is None


@pytest.mark.device
@needs_cuda
def test_batches_from_a_split_on_the_gpu_accept_cuda_for_cuda_0(fake_data):
    from segma_bench.training.batches import epoch_batches, training_split
    split = training_split(fake_data, "cuda")
    assert split[0].device == torch.device("cuda:0")
    on_gpu = list(epoch_batches(fake_data, torch.arange(6), 0, 0, 10, 6, "cuda", split))
    on_cpu = list(epoch_batches(fake_data, torch.arange(6), 0, 0, 10, 6, "cpu"))
    for a, b in zip(on_gpu, on_cpu):
        assert a.x_unlabeled.is_cuda and torch.equal(a.x_unlabeled.cpu(), b.x_unlabeled)
        assert torch.equal(a.y_labeled.cpu(), b.y_labeled)


@pytest.mark.device
@needs_cuda
def test_batches_from_the_host_are_gathered_into_pinned_memory(monkeypatch, fake_data):
    from segma_bench.training import batches
    made = []
    original = batches.pinned_empty
    monkeypatch.setattr(batches, "pinned_empty", lambda shape, dtype: made.append(original(shape, dtype)) or made[-1])
    source = torch.arange(40, dtype=torch.uint8).reshape(10, 4)
    index = torch.tensor([7, 1, 3])
    rows = batches.gather(source, index, torch.device("cuda"))
    assert rows.is_cuda and torch.equal(rows.cpu(), source[index])
    assert len(made) == 1 and made[0].is_pinned()
    monkeypatch.setattr(batches, "GPU_SPLIT_FRACTION", 0)  # a split too large for the GPU stays on the host
    split = batches.training_split(fake_data, "cuda")
    assert split[0].device.type == "cpu" and not split[0].is_pinned()
    on_gpu = list(batches.epoch_batches(fake_data, torch.arange(6), 0, 0, 10, 6, "cuda", split))
    on_cpu = list(batches.epoch_batches(fake_data, torch.arange(6), 0, 0, 10, 6, "cpu"))
    for a, b in zip(on_gpu, on_cpu):
        assert a.x_unlabeled.is_cuda and torch.equal(a.x_unlabeled.cpu(), b.x_unlabeled)
        assert torch.equal(a.x_labeled.cpu(), b.x_labeled) and torch.equal(a.y_labeled.cpu(), b.y_labeled)


@pytest.mark.device
@needs_cuda
@pytest.mark.parametrize("name", ["segma", "cwae", "m1m2", "adgm"])
def test_a_training_step_does_not_wait_for_the_gpu(name, fake_data):
    """The loop promises no host-device sync per step: torch's sync debug mode raises at any."""
    from segma_bench.training import prepare
    from segma_bench.training.batches import epoch_batches, training_split
    from segma_bench.training.guard import NonFiniteGuard
    from segma_bench.training.loop import update
    overrides = {"eval_samples": 5} if name == "adgm" else {}
    spec_, data, labeled_idx, method = prepare(RunSpec(method=name, dataset="fake", device="cuda",
                                                       overrides=overrides), None, fake_data)
    optimizer = method.configure_optimizer()
    epoch = getattr(method.config, "m1_epochs", 0)  # M1+M2: its M2 phase
    method.train()
    method.on_epoch_start(epoch, optimizer)
    batches = epoch_batches(data, labeled_idx, 0, epoch, spec_.unlabeled_batch_size, spec_.labeled_batch_size,
                            method.device, training_split(data, method.device))
    guard = NonFiniteGuard(epoch, method.device)
    update(method, optimizer, method.training_step(next(batches))["loss"])  # once-per-run work (M1+M2's kept dims)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(1, 3):
            terms = method.training_step(next(batches))
            guard.observe(step, terms)
            update(method, optimizer, terms["loss"])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    guard.check()
