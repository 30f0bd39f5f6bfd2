"""`reproduce --launcher slurm|local`: one submitit job per cell (a SLURM job array, or submitit's local
executor, which runs each job as a subprocess of this machine), gathered into the same records.

Each job runs `launch.run_cell_task`, the function `--jobs` runs in its worker processes. A job that is
preempted or reaches its time limit is requeued by submitit (`Checkpointable`) with the same task, and
the training loop resumes the run folder from its last epoch checkpoint: nothing is redone but the
unfinished epoch. Only this module imports submitit.

Devices and cores are decided in the job (launch.job_setup), from what the job was given:
- `--launcher local` gives each job one of this machine's GPUs (submitit's gpus_per_node=1, with the GPU
  named through its CUDA_VISIBLE_DEVICES), the one with the fewest jobs running, or none for `--device cpu`
  or a machine without one; submitit's local executor would otherwise start every job with
  CUDA_VISIBLE_DEVICES="" (no GPU) or on GPU 0.
- `--launcher slurm`: the login node's GPUs and cores mean nothing for the jobs. `--device cuda[:N]` asks
  SLURM for one GPU per job (gpus_per_node=1) unless a --slurm-setting names GPUs; with `--device auto` a job
  trains on a GPU when its partition gives it one (--slurm-setting gpus_per_node=1). cpus_per_task is
  --threads, else DEFAULT_SLURM_CPUS (or --slurm-setting cpus_per_task=N), and each job runs as many torch
  threads as the cores SLURM gave it."""
import shlex
import time
from collections import deque
from dataclasses import replace

import submitit

from segma_bench.core.devices import gpu_ids, least_busy, resolve_device

from .launch import GridProgress, run_cell_task
from .options import SKIPPED

POLL_S = {"local": 0.5, "slurm": 30.0}  # a cluster's queue is asked rarely
DEFAULT_TIMEOUT_MIN = 240
DEFAULT_SLURM_CPUS = 4  # cpus_per_task of a SLURM job when neither --threads nor a --slurm-setting gives it
SLURM_GPU_SETTINGS = ("gpus_per_node", "gpus_per_task", "gpus", "gres")


class CellJob(submitit.helpers.Checkpointable):
    """A cell as a submitit job; on preemption or timeout `checkpoint` (inherited) resubmits the same call."""

    def __call__(self, task):
        return run_cell_task(task)


def wants_gpu(device):
    return device is not None and str(device).startswith("cuda")


def make_executor(launcher, folder, settings, threads, jobs, device="auto"):
    """submitit's executor for `launcher`; settings: timeout_min, partition and slurm_* extras. `threads`: the
    cores each job asks for (None: DEFAULT_SLURM_CPUS on SLURM); `device`: the cells' --device."""
    executor = submitit.AutoExecutor(folder=folder, cluster=launcher)
    parameters = {"name": "segma-reproduce", "timeout_min": settings.get("timeout_min") or DEFAULT_TIMEOUT_MIN,
                  "cpus_per_task": threads or DEFAULT_SLURM_CPUS, "tasks_per_node": 1, "nodes": 1}
    if launcher == "slurm":
        parameters["slurm_array_parallelism"] = jobs
        if settings.get("partition"):
            parameters["slurm_partition"] = settings["partition"]
        slurm = settings.get("slurm", {})
        if wants_gpu(device) and not any(key in slurm for key in SLURM_GPU_SETTINGS):
            parameters["gpus_per_node"] = 1
        parameters.update({f"slurm_{key}": value for key, value in slurm.items()})
    else:
        parameters["gpus_per_node"] = 0  # until a job is given a GPU (local_gpu_parameters)
    executor.update_parameters(**parameters)
    return executor


def local_gpus(device):
    """This machine's GPUs that `--launcher local` jobs are spread over, as CUDA_VISIBLE_DEVICES names them:
    all visible ones (auto, cuda), one (cuda:N), none (cpu, or no GPU)."""
    if not wants_gpu(device) and str(device) != "auto":
        return []
    ids = gpu_ids()
    index = resolve_device(device).index if wants_gpu(device) else None
    return [ids[index]] if index is not None else ids


def local_gpu_parameters(gpu):
    """submitit local-executor parameters that start a job seeing only `gpu`, a CUDA_VISIBLE_DEVICES entry of
    this process (a number or a GPU's UUID). submitit's own choice with gpus_per_node=1 is always GPU 0 of the
    machine, and its visible_gpus cannot be set through AutoExecutor: a setup line exports the one wanted."""
    return {"gpus_per_node": 1, "local_setup": [f"export CUDA_VISIBLE_DEVICES={shlex.quote(gpu)}"]}


def job_task(task):
    """The task as a GPU job runs it: the job sees the GPU it was given (a local job one of this machine's, a
    SLURM job its allocation's) as cuda:0, whichever cuda:N was asked for here."""
    if wants_gpu(task.options.device):
        return replace(task, options=replace(task.options, device="cuda"))
    return task


def run_with_submitit(tasks, launcher, settings, jobs, progress=None):
    """Submit every task, wait for all, and return the failed ones. On SLURM all cells go in one array
    (at most `jobs` running at once); locally at most `jobs` subprocesses run at once, each given the GPU
    with the fewest jobs (where the cells train on GPUs)."""
    if not tasks:
        return []
    folder = tasks[0].log_path.parent.parent / "submitit"
    device = tasks[0].options.device
    executor = make_executor(launcher, folder, settings, tasks[0].threads, jobs, device)
    gpus = local_gpus(device) if launcher == "local" else []
    at_once = len(tasks) if launcher == "slurm" else jobs
    progress = progress or GridProgress(len(tasks))
    pending, running, failed = deque(tasks), [], []  # running: (task, job, its GPU or None)
    for task in tasks:
        task.log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        while pending or running:
            free = min(at_once - len(running), len(pending))
            if free > 0:
                batch = [pending.popleft() for _ in range(free)]
                if gpus:  # one job at a time, each on the least busy GPU
                    for task in batch:
                        gpu = least_busy(gpus, [entry[2] for entry in running])
                        executor.update_parameters(**local_gpu_parameters(gpu))
                        running.append((task, executor.submit(CellJob(), job_task(task)), gpu))
                else:
                    submitted = executor.map_array(CellJob(), [job_task(task) for task in batch])
                    running += [(task, job, None) for task, job in zip(batch, submitted)]
            progress.running = len(running)
            progress.show()
            time.sleep(POLL_S.get(launcher, 5.0))
            for entry in [entry for entry in running if entry[1].done()]:
                running.remove(entry)
                outcome = job_outcome(entry[1])
                if outcome == SKIPPED:
                    progress.skipped += 1
                elif outcome:
                    progress.done += 1
                else:
                    progress.failed += 1
                    failed.append(entry[0])
        progress.running = 0
        progress.show(force=True)
    except BaseException:
        for _, job, _ in running:  # interrupted: do not leave the grid running behind the user's back
            job.cancel(check=False)
        raise
    finally:
        progress.close()
    return failed


def job_outcome(job):
    """The job's run_cell_task result ("done", or "skipped" by --no-train); None where it failed."""
    try:
        return job.result()
    except Exception:  # the job's traceback is in the cell's log
        return None
