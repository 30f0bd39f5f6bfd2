"""Run `reproduce`'s cells side by side: worker processes on this machine (--jobs N), each with its own
torch threads and log file, and one combined progress line in the parent.

A cell is one (dataset, method, seed) of a table. Every cell runs the same function, `run_cell_task`,
whether in a spawned process here or in a submitit job (reporting/cluster.py), so the run folders,
records and tables are the same however the grid was run. Cells are independent; two cells that share
a run folder or a record (the same run evaluated for two tables by two `reproduce` calls at once) take
turns through a lock file per cell (fcntl.flock; `cell_lock_path`).

Devices are decided where a cell runs. A worker or job resolves `--device auto` from the GPUs it sees, and
its FID extractor uses its training device (`job_setup`). On this machine, workers are spread over the
visible GPUs, one per GPU by default (`default_jobs`), each new worker on the GPU with the fewest running
(`worker_devices`, `least_busy`): `--jobs N` puts N/G on each of G GPUs, deliberately."""
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

from segma_bench.core.devices import device_label, execution_environment, least_busy, resolve_device, worker_devices
from segma_bench.core.storage import file_lock

from .options import SKIPPED, ReproduceOptions

PROGRESS_EVERY_S = 5  # how often the combined progress line is refreshed on a terminal
PARENT_POLL_S = 2     # how often a worker checks that the `reproduce` process that started it is still there


class CellsFailedError(RuntimeError):
    """Some cells failed; the others ran to the end. The message names each failed cell and its log."""


@dataclass(frozen=True)
class Cell:
    dataset: str
    method: str
    seed: int

    @property
    def name(self):
        return f"{self.dataset}/{self.method}/seed{self.seed}"

    @property
    def slug(self):  # as record files are named
        return f"{self.dataset}-{self.method}-seed{self.seed}"


def available_cores():
    """Cores this process may run on (a SLURM allocation or taskset can give fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_job(jobs, cores=None):
    """torch threads for each of `jobs` processes sharing `cores`: no core oversubscribed, at least one.

    One thread per process is the fast way to fill a small CPU: two one-thread trainings run 1.4x the
    throughput of one two-thread training here (benchmarks/README.md)."""
    cores = cores or available_cores()
    return max(1, cores // max(1, jobs))


def default_jobs(device="auto", launcher=None):
    """--jobs when not given. Cells that train on this machine's GPUs (--device auto with a GPU visible, cuda,
    cuda:N; workers or --launcher local): one per GPU used, since every worker holds its own CUDA context and
    its own copy of the training split on its GPU. Otherwise one per core (a SLURM array: at once)."""
    if launcher != "slurm":
        gpus = [name for name in worker_devices(device) if name.startswith("cuda")]
        if gpus:
            return len(gpus)
    return available_cores()


def cell_log_path(runs_root, budget_name, cell):
    return Path(runs_root) / "reproduce" / budget_name / "logs" / f"{cell.slug}.log"


def cell_lock_path(runs_root, budget_name, cell):
    """Beside the run folders, not inside one: a lock must not make a run folder exist."""
    return Path(runs_root) / "reproduce" / budget_name / ".locks" / f"{cell.slug}.lock"


def loaded_plugin_files():
    """Plugins this process has loaded (--plugin or SEGMA_PLUGINS): their files, then the names of module
    plugins; worker processes and jobs load them again (and the installed entry points themselves)."""
    import segma_bench.methods as methods
    files = sorted(module.__file__ for name, module in list(sys.modules.items())
                   if name.startswith("segma_plugin_") and getattr(module, "__file__", None))
    return files + list(methods.LOADED_PLUGIN_MODULES)


@dataclass
class CellTask:
    """All a fresh process needs to run one cell (picklable: names and plain options, no objects)."""
    cell: Cell
    table: int
    budget_name: str
    options: ReproduceOptions
    threads: int                 # None: the cores the job itself may use (a SLURM job: its allocation)
    plugins: list = field(default_factory=list)

    @property
    def log_path(self):
        return cell_log_path(self.options.runs_root, self.budget_name, self.cell)


def run_cell_locked(cell, table, budget, data, extractor_factory, options, log):
    """reproduce_cell for one cell, holding the cell's lock: one process at a time trains its run folder
    and rewrites its record. Returns SKIPPED where --no-train left the cell alone, else "done"."""
    from .cell import reproduce_cell
    from .paper_reference import PAPER_TABLES
    with file_lock(cell_lock_path(options.runs_root, budget.name, cell)):
        outcome = reproduce_cell(cell.method, cell.dataset, cell.seed, budget, PAPER_TABLES[table]["metric"],
                                 data, extractor_factory, options, log)
    return SKIPPED if outcome == SKIPPED else "done"


def run_cell_task(task):
    """Run one cell in this (fresh) process, its output appended to the cell's log. Raises on failure."""
    import segma_bench.methods as methods
    with open(task.log_path, "a", buffering=1) as log_file:
        redirect_output(log_file)
        print(f"--- {task.cell.name}: pid {os.getpid()}, {task.threads or available_cores()} torch thread(s), "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)
        methods.load_entry_point_plugins()  # installed distributions' methods, as in the parent
        for plugin in task.plugins:  # before torch threads: a plugin could set its own
            if plugin.endswith(".py") or os.sep in plugin:
                methods.load_plugin(plugin)
            else:
                methods.load_plugin_module(plugin)
        options = job_setup(task)
        print(f"--- {task.cell.name}: device {device_label(execution_environment(options.device))}, FID on "
              f"{options.fid_device}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}",
              flush=True)
        from segma_bench.datasets import load_dataset

        from .budgets import get_budget
        data = load_dataset(task.cell.dataset, options.data_root, options.cache_dir)
        outcome = run_cell_locked(task.cell, task.table, get_budget(task.budget_name), data,
                                  extractor_factory(options), options, lambda line: print(line, flush=True))
        print(f"--- {task.cell.name}: {outcome}", flush=True)
    return outcome


def job_setup(task):
    """Set up this worker or job process for its cell and return the cell's options with its devices decided
    here: torch threads (the task's, else the cores this process may use), the training device (`auto`: a GPU
    if this process sees one, whatever the parent saw), the FID device (the training device unless given),
    this process's current GPU, and denormal flushing for a CPU run (before the first torch operation)."""
    import torch

    from segma_bench.training.denormals import flush_for_process
    torch.set_num_threads(task.threads or available_cores())
    device = resolve_device(task.options.device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # CUDA calls that name no device go to this worker's GPU, not GPU 0
    flush_for_process(device)  # before the data: training/denormals.py
    return replace(task.options, device=str(device), fid_device=task.options.fid_device or str(device), progress=True)


def redirect_output(log_file):
    """Point this process's stdout and stderr (file descriptors too: tqdm, C libraries) at `log_file`."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_file.fileno(), 1)
    os.dup2(log_file.fileno(), 2)


def extractor_factory(options):
    """A function building the FID extractor on first use, once per process, on options.fid_device where
    given, else on the device this process trains on (decided here, never by a parent elsewhere)."""
    built = {}

    def factory():
        if "fid" not in built:
            from segma_bench.evaluation.inception import FeatureExtractor
            device = options.fid_device or str(resolve_device(options.device))
            built["fid"] = FeatureExtractor(weights_path=options.fid_weights, device=device)
        return built["fid"]
    return factory


def exit_when_parent_dies(parent_pid, poll_s=PARENT_POLL_S):
    """End this process as soon as `parent_pid` is no longer its parent. A worker whose `reproduce` was
    killed (SIGKILL, or SIGTERM before the handler below existed) would otherwise train on as an orphan,
    holding its cell's lock, so that a new `reproduce` waits for it; the run folder keeps its last epoch
    checkpoint, and the next `reproduce` resumes from there."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _process_main(task, parent_pid=None):
    """Entry point of a spawned worker: exit status 0 (done), SKIPPED_EXIT (--no-train left the cell alone)
    or 1 (failed, the traceback in the cell's log)."""
    if parent_pid is not None:
        exit_when_parent_dies(parent_pid)
    try:
        outcome = run_cell_task(task)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    if outcome == SKIPPED:
        sys.stdout.flush()
        sys.exit(SKIPPED_EXIT)


SKIPPED_EXIT = 3  # a worker's exit status for a cell that --no-train left alone


class GridProgress:
    """One line for the whole grid: cells done / running / failed (and skipped by --no-train, where any
    were), elapsed time and ETA.

    On a terminal the line is rewritten in place; elsewhere (a log file) a line is printed each time
    a count changes."""

    def __init__(self, total, stream=None):
        self.total, self.done, self.running, self.failed, self.skipped = total, 0, 0, 0, 0
        self.started = time.time()
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self._last = None

    def line(self, now=None):
        elapsed = (now or time.time()) - self.started
        finished = self.done + self.failed  # cells skipped by --no-train take no time: not in the rate
        left = self.total - finished - self.skipped
        eta = f"ETA {format_minutes(elapsed / finished * left)}" if finished else ("ETA ?" if left else "ETA 0.0 min")
        skipped = f", {self.skipped} skipped (--no-train)" if self.skipped else ""
        return (f"reproduce: {self.done}/{self.total} cells done{skipped}, {self.running} running, {self.failed} "
                f"failed; {format_minutes(elapsed)} elapsed, {eta}")

    def show(self, force=False):
        counts = (self.done, self.running, self.failed, self.skipped)
        if self.interactive:
            self.stream.write("\r" + self.line() + "\033[K")
            self.stream.flush()
        elif force or counts != self._last:
            print(self.line(), file=self.stream, flush=True)
        self._last = counts

    def close(self):
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def format_minutes(seconds):
    return f"{seconds / 60:.1f} min"


def run_in_processes(tasks, jobs, progress=None):
    """Run `tasks` in spawned processes, at most `jobs` at once. Returns the failed tasks.

    A failing (or crashing) cell ends only its own process; the others go on. Where the cells train on GPUs,
    each worker is given one (cuda:i), the one with the fewest workers running."""
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch thread pools
    pending, running, failed = deque(tasks), {}, []
    gpus = [name for name in worker_devices(tasks[0].options.device) if name.startswith("cuda")] if tasks else []
    progress = progress or GridProgress(len(tasks))
    for task in tasks:
        task.log_path.parent.mkdir(parents=True, exist_ok=True)
    previous_sigterm = _raise_on_sigterm()
    try:
        while pending or running:
            while pending and len(running) < jobs:
                task = on_least_busy_gpu(pending.popleft(), gpus, [t for _, t in running.values()])
                process = context.Process(target=_process_main, args=(task, os.getpid()), name=task.cell.name,
                                          daemon=False)
                process.start()
                running[process.sentinel] = (process, task)
            progress.running = len(running)
            progress.show()
            for sentinel in multiprocessing.connection.wait(list(running), timeout=PROGRESS_EVERY_S):
                process, task = running.pop(sentinel)
                process.join()
                if process.exitcode == 0:
                    progress.done += 1
                elif process.exitcode == SKIPPED_EXIT:
                    progress.skipped += 1
                else:
                    progress.failed += 1
                    failed.append(task)
        progress.running = 0
        progress.show(force=True)
    finally:
        for process, _ in running.values():  # interrupted (Ctrl-C, kill): leave no orphan training behind
            process.terminate()
            process.join()
        progress.close()
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
    return failed


def on_least_busy_gpu(task, gpus, running):
    """`task` with its device set to the GPU of `gpus` with the fewest of the `running` tasks on it; `task`
    as it is where the cells do not train on GPUs (`gpus` empty)."""
    if not gpus:
        return task
    device = least_busy(gpus, [other.options.device for other in running])
    return replace(task, options=replace(task.options, device=device))


def _raise_on_sigterm():
    """Make SIGTERM (`kill PID`) end the parent through its `finally`, which stops the workers, as Ctrl-C
    does; Python's default would end it on the spot and leave them running. Returns the previous handler
    (None where it cannot be set: outside the main thread)."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return None


def failure_message(failed, total):
    listed = "; ".join(f"{task.cell.name} (log: {task.log_path})" for task in failed)
    return f"{len(failed)} of {total} cells failed: {listed}"
