"""`reproduce --jobs N` and `--launcher local` in real subprocesses, the locks they rely on, and the thread
helper. The datasets reach the worker processes the way a user's would: a plugin file (SEGMA_PLUGINS)."""
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import tiny_options
from process_helpers import hold_lock, reference_statistics_in_a_process
from segma_bench.cli.main import cli
from segma_bench.reporting.launch import Cell, GridProgress, cell_log_path, threads_per_job

TESTS = Path(__file__).resolve().parent
pytestmark = pytest.mark.slow  # every test here starts processes

# Written into a temporary file by the tests: registers tiny datasets in every process that loads it.
DATASET_PLUGIN = '''
from segma_bench.datasets.synthetic import make_fake_dataset
from segma_bench.datasets.base import Protocol
from segma_bench.datasets.registry import register_dataset

register_dataset("toy-grid")(lambda root, cache: make_fake_dataset(name="toy-grid"))
# 40 short epochs; the tests that interrupt a job in the middle train them with `segma-paced` below.
register_dataset("toy-long")(lambda root, cache: make_fake_dataset(
    num_train=200, name="toy-long", protocol=Protocol(6, 10, 6, paper_epochs=40)))


# SeGMA paced to at least 0.25 s a pass: a worker killed after its first checkpoint still has seconds of
# training left, more than the 2 s within which an orphaned worker notices, on however fast a machine.
import time
from segma_bench.api import register
from segma_bench.methods import METHODS
from segma_bench.methods.segma import SeGMA


class PacedSeGMA(SeGMA):
    """SeGMA that waits 0.25 s before each pass (tests only)."""

    def on_epoch_start(self, epoch, optimizer):
        time.sleep(0.25)
        super().on_epoch_start(epoch, optimizer)


if "segma-paced" not in METHODS:  # the test process loads a fresh copy of this file for every test
    register("segma-paced")(PacedSeGMA)


@register_dataset("toy-broken")
def broken(root, cache):
    raise RuntimeError("this dataset fails on purpose")
'''


@pytest.fixture(autouse=True)
def restore_method_registry():
    """The plugin registers `segma-paced` in this process too (CliRunner); later tests must not see it."""
    from segma_bench import methods
    before = dict(methods.METHODS)
    yield
    methods.METHODS.clear()
    methods.METHODS.update(before)


@pytest.fixture
def plugin_env(tmp_path):
    plugin = tmp_path / "toy_datasets.py"
    plugin.write_text(DATASET_PLUGIN)
    return {"SEGMA_PLUGINS": str(plugin), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def reproduce_args(tmp_path, *extra, method="segma"):
    return ["reproduce", "--table", "2", "--method", method, "--seeds", "2", "--runs-root", str(tmp_path / "runs"),
            "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu",
            *extra]


def records(tmp_path):
    return {p.name: json.loads(p.read_text()) for p in (tmp_path / "results" / "runs" / "quick").glob("*.json")}


# ---------------------------------------------------------------- threads and progress

@pytest.mark.parametrize("jobs, cores, threads", [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 16, 8), (3, 16, 5)])
def test_threads_per_job_never_oversubscribes_the_cores(jobs, cores, threads):
    assert threads_per_job(jobs, cores) == threads
    assert jobs * threads <= max(cores, jobs)


def test_progress_line_counts_cells_and_estimates_the_rest(tmp_path):
    progress = GridProgress(10, stream=open(tmp_path / "progress.txt", "w"))
    progress.started -= 120  # two minutes in
    progress.done, progress.failed, progress.running = 3, 1, 2
    line = progress.line(now=progress.started + 120)
    assert "3/10 cells done, 2 running, 1 failed" in line
    assert "2.0 min elapsed, ETA 3.0 min" in line  # 4 cells finished in 2 min: 6 more take 3 min


# ---------------------------------------------------------------- locks between processes

def start_processes(target, args, count):
    """`count` processes running target(*args, barrier): the barrier lines them up after their imports."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    processes = [context.Process(target=target, args=(*args, barrier)) for _ in range(count)]
    for process in processes:
        process.barrier = barrier  # kept alive until joined: the children unpickle it after start()
    for process in processes:
        process.start()
    return processes


def join_all(processes):
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0


def test_file_lock_lets_one_process_in_at_a_time(tmp_path):
    journal = tmp_path / "journal.txt"
    join_all(start_processes(hold_lock, (tmp_path / "x.lock", journal, 1.0), 2))
    lines = journal.read_text().split()
    events = list(zip(lines[0::2], lines[1::2]))
    assert len(events) == 6
    # both asked before either left: the processes overlapped, so the order below is the lock's doing
    kinds = [event for event, _ in events]
    assert kinds.index("leave") > max(i for i, kind in enumerate(kinds) if kind == "want")
    held = [e for e in events if e[0] != "want"]
    for enter, leave in zip(held[0::2], held[1::2]):  # every enter is followed by the same pid leaving
        assert enter[0] == "enter" and leave == ("leave", enter[1])


def test_reference_statistics_are_computed_once_by_concurrent_processes(tmp_path):
    counter = tmp_path / "counter.txt"
    join_all(start_processes(reference_statistics_in_a_process, (tmp_path / "cache", counter, tmp_path), 2))
    assert counter.read_text().split() == ["computed"]  # the second process waited and loaded the file
    first, second = [np.load(p) for p in sorted(tmp_path.glob("mu-*.npy"))]
    np.testing.assert_array_equal(first, second)


# ---------------------------------------------------------------- reproduce --jobs

def test_jobs_run_cells_in_processes_and_a_failed_cell_fails_only_itself(tmp_path, plugin_env):
    result = CliRunner().invoke(cli, reproduce_args(tmp_path, "--dataset", "toy-grid", "--dataset", "toy-broken",
                                                    "--jobs", "2", "--threads", "1"), env=plugin_env)
    assert result.exit_code == 1, result.output
    error = result.stderr.strip().splitlines()[-1]  # after the progress lines: one error line
    assert error.startswith("Error: ") and "Traceback" not in result.output
    broken_logs = [cell_log_path(tmp_path / "runs", "quick", Cell("toy-broken", "segma", seed)) for seed in (0, 1)]
    assert "2 of 4 cells failed" in error and all(f"toy-broken/segma/seed{s}" in error for s in (0, 1))
    assert all(str(log) in error for log in broken_logs)
    assert "this dataset fails on purpose" in broken_logs[0].read_text()  # the traceback went to its log
    assert sorted(records(tmp_path)) == ["toy-grid-segma-seed0.json", "toy-grid-segma-seed1.json"]
    for record in records(tmp_path).values():
        assert record["training"]["epochs"] == 3 and 0 <= record["metrics"]["test_error"] <= 1
        assert record["training"]["torch_threads_by_epoch"] == [1, 1, 1]  # --threads 1 reached the cell
        assert record["training"]["denormals_flushed_by_epoch"] == [True, True, True]  # CPU training flushes
    good_log = cell_log_path(tmp_path / "runs", "quick", Cell("toy-grid", "segma", 1)).read_text()
    assert "1 torch thread(s)" in good_log and "test_error =" in good_log
    assert "2/4 cells done, 0 running, 2 failed" in result.stderr
    assert (tmp_path / "results" / "table2-quick.md").exists()  # rendered from the cells that finished


def test_jobs_give_the_same_records_as_one_cell_after_another(tmp_path, plugin_env):
    runner = CliRunner()
    parallel, sequential = tmp_path / "parallel", tmp_path / "sequential"
    # one thread in both: another thread count is not bit-identical (reduction order), whatever the cores
    assert runner.invoke(cli, reproduce_args(parallel, "--dataset", "toy-grid", "--jobs", "2", "--threads", "1"),
                         env=plugin_env).exit_code == 0
    result = runner.invoke(cli, reproduce_args(sequential, "--dataset", "toy-grid", "--jobs", "1"), env=plugin_env)
    assert result.exit_code == 0, result.output
    assert not (sequential / "runs" / "reproduce" / "quick" / "logs").exists()  # ran in this process
    for name, record in records(sequential).items():
        twin = records(parallel)[name]
        assert twin["metrics"] == record["metrics"]
        assert twin["training"]["test_error_by_epoch"] == record["training"]["test_error_by_epoch"]
        assert twin["training"]["torch_threads_by_epoch"] == record["training"]["torch_threads_by_epoch"]


def test_no_train_from_the_command_line_skips_cells_without_a_run_and_counts_them(tmp_path, plugin_env):
    runner = CliRunner()
    first = runner.invoke(cli, reproduce_args(tmp_path, "--dataset", "toy-grid", "--jobs", "1", "--seeds", "1"),
                          env=plugin_env)  # the last --seeds wins: seed 0 only
    assert first.exit_code == 0, first.output
    assert sorted(records(tmp_path)) == ["toy-grid-segma-seed0.json"]
    before = (tmp_path / "results" / "runs" / "quick" / "toy-grid-segma-seed0.json").read_text()
    for jobs in ("2", "1"):  # worker processes report the skip by exit status; in-process, by return value
        result = runner.invoke(cli, reproduce_args(tmp_path, "--dataset", "toy-grid", "--no-train", "--jobs", jobs,
                                                   "--threads", "1"), env=plugin_env)
        assert result.exit_code == 0, result.output
        assert "1/2 cells done, 1 skipped (--no-train), 0 running, 0 failed" in result.output  # (--jobs 1: stdout)
        assert sorted(records(tmp_path)) == ["toy-grid-segma-seed0.json"]  # seed 1 was neither trained nor recorded
        assert not (tmp_path / "runs" / "reproduce" / "quick" / "toy-grid" / "segma" / "seed1" / "checkpoint.pt").exists()
    assert (tmp_path / "results" / "runs" / "quick" / "toy-grid-segma-seed0.json").read_text() == before


# ---------------------------------------------------------------- reproduce --launcher local (submitit)

def test_local_launcher_runs_each_cell_as_a_submitit_job(tmp_path, plugin_env):
    result = CliRunner().invoke(cli, reproduce_args(tmp_path, "--dataset", "toy-grid", "--launcher", "local",
                                                    "--jobs", "2", "--timeout", "10"), env=plugin_env)
    assert result.exit_code == 0, result.output
    assert sorted(records(tmp_path)) == ["toy-grid-segma-seed0.json", "toy-grid-segma-seed1.json"]
    submitit_folder = tmp_path / "runs" / "reproduce" / "quick" / "submitit"
    assert len(list(submitit_folder.glob("*_result.pkl"))) == 2  # each cell was its own submitit job
    assert "2/2 cells done, 0 running, 0 failed" in result.stderr
    assert "| SeGMA" in (tmp_path / "results" / "table2-quick.md").read_text()


def test_a_preempted_job_is_requeued_and_resumes_its_run(tmp_path, plugin_env, monkeypatch):
    from segma_bench.reporting.cluster import run_with_submitit
    from segma_bench.reporting.launch import CellTask
    for key, value in plugin_env.items():
        monkeypatch.setenv(key, value)
    options = tiny_options(tmp_path, device="cpu", fid_device="cpu")
    cell = Cell("toy-long", "segma-paced", 0)
    task = CellTask(cell, 2, "quick", options, threads=1, plugins=[plugin_env["SEGMA_PLUGINS"]])
    run_dir = tmp_path / "runs" / "reproduce" / "quick" / "toy-long" / "segma-paced" / "seed0"

    def preempt_after_the_first_checkpoint():
        deadline = time.time() + 120
        while not (run_dir / "checkpoint.pt").exists():
            assert time.time() < deadline, "the job never saved a checkpoint"
            time.sleep(0.05)
        pid = int(task.log_path.read_text().split("pid ")[1].split(",")[0])
        os.kill(pid, signal.SIGUSR2)  # what SLURM sends before preempting or timing out a job

    import threading
    watcher = threading.Thread(target=preempt_after_the_first_checkpoint)
    watcher.start()
    failed = run_with_submitit([task], "local", {"timeout_min": 10}, jobs=1,
                               progress=GridProgress(1, stream=open(tmp_path / "progress.txt", "w")))
    watcher.join()
    assert failed == []
    train_log = (run_dir / "train.log").read_text()
    assert "resumed from the end of epoch" in train_log
    assert task.log_path.read_text().count("--- toy-long/segma-paced/seed0: pid") == 2  # a second attempt ran
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 40 and [h["epoch"] for h in metrics["history"]] == list(range(1, 41))
    assert records(tmp_path)["toy-long-segma-paced-seed0.json"]["training"]["epochs"] == 40


# ---------------------------------------------------------------- a killed `reproduce` leaves no worker behind

def process_is_gone(pid):
    """True once `pid` has exited (a zombie awaiting its reaper counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize("kill_signal", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_reproduce_stops_its_workers_and_the_next_one_resumes(tmp_path, plugin_env, kill_signal):
    import subprocess
    import sys
    args = [sys.executable, str(TESTS.parent / "cli.py"),
            *reproduce_args(tmp_path, "--dataset", "toy-long", "--jobs", "2", "--threads", "1", method="segma-paced")]
    parent = subprocess.Popen(args, env={**os.environ, **plugin_env}, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logs = [cell_log_path(tmp_path / "runs", "quick", Cell("toy-long", "segma-paced", seed)) for seed in (0, 1)]
    checkpoints = [tmp_path / "runs" / "reproduce" / "quick" / "toy-long" / "segma-paced" / f"seed{seed}" / "checkpoint.pt"
                   for seed in (0, 1)]
    deadline = time.time() + 120
    while not all(c.exists() for c in checkpoints):  # both workers are training
        assert parent.poll() is None and time.time() < deadline, "the workers never saved a checkpoint"
        time.sleep(0.05)
    workers = [int(log.read_text().split("pid ")[1].split(",")[0]) for log in logs]
    parent.send_signal(kill_signal)
    parent.wait(timeout=30)
    deadline = time.time() + 15  # SIGTERM: at once, through the parent; SIGKILL: within the workers' poll
    while not all(process_is_gone(pid) for pid in workers):
        assert time.time() < deadline, f"workers {workers} outlived their reproduce ({kill_signal.name})"
        time.sleep(0.1)
    assert not records(tmp_path)  # stopped in the middle of training: no cell finished
    if kill_signal == signal.SIGKILL:
        return  # resuming is the same after either signal; checked once, to keep the suite short

    result = CliRunner().invoke(cli, reproduce_args(tmp_path, "--dataset", "toy-long", "--jobs", "2", "--threads", "1",
                                                    method="segma-paced"), env=plugin_env)
    assert result.exit_code == 0, result.output
    for seed in (0, 1):
        run_dir = checkpoints[seed].parent
        assert "resumed from the end of epoch" in (run_dir / "train.log").read_text()
        assert records(tmp_path)[f"toy-long-segma-paced-seed{seed}.json"]["training"]["epochs"] == 40


def test_submitit_outcomes_are_counted_as_done_skipped_or_failed():
    from segma_bench.reporting.cluster import job_outcome

    class Job:
        def __init__(self, result):
            self._result = result

        def result(self):
            if isinstance(self._result, Exception):
                raise self._result
            return self._result
    assert job_outcome(Job("done")) == "done" and job_outcome(Job("skipped")) == "skipped"
    assert job_outcome(Job("toy/segma/seed0")) == "toy/segma/seed0"  # a job from before outcomes: counted as done
    assert job_outcome(Job(RuntimeError("cell failed"))) is None


def test_the_eta_leaves_out_cells_skipped_by_no_train(tmp_path):
    progress = GridProgress(10, stream=open(tmp_path / "progress.txt", "w"))
    progress.done, progress.skipped = 2, 6  # 2 cells took 2 min; the 6 skipped took none
    line = progress.line(now=progress.started + 120)
    assert "2/10 cells done, 6 skipped (--no-train)" in line and "ETA 2.0 min" in line  # 2 left at 1 min each
