"""`reproduce --launcher slurm|local`: one submitit job per cell (a SLURM job array, or submitit's local
executor, which runs each job as a subprocess of this machine), gathered into the same records.

Each job runs `launch.run_cell_task`, the function `--jobs` runs in its worker processes. A job that is
preempted or reaches its time limit is requeued by submitit (`Checkpointable`) with the same task, and
the training loop resumes the run folder from its last epoch checkpoint: nothing is redone but the
unfinished epoch. Only this module imports submitit."""
import os
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path

import submitit

from .launch import GridProgress, run_cell_task

REPO = Path(__file__).resolve().parents[1]
POLL_S = {"local": 0.5, "slurm": 30.0}  # a cluster's queue is asked rarely
DEFAULT_TIMEOUT_MIN = 240


class CellJob(submitit.helpers.Checkpointable):
    """A cell as a submitit job; on preemption or timeout `checkpoint` (inherited) resubmits the same call."""

    def __call__(self, task):
        return run_cell_task(task)


def make_executor(launcher, folder, settings, threads, jobs):
    """submitit's executor for `launcher`; settings: timeout_min, partition and slurm_* extras."""
    executor = submitit.AutoExecutor(folder=folder, cluster=launcher)
    parameters = {"name": "segma-reproduce", "timeout_min": settings.get("timeout_min") or DEFAULT_TIMEOUT_MIN,
                  "cpus_per_task": threads, "tasks_per_node": 1, "nodes": 1}
    if launcher == "slurm":
        parameters["slurm_array_parallelism"] = jobs
        if settings.get("partition"):
            parameters["slurm_partition"] = settings["partition"]
        parameters.update({f"slurm_{key}": value for key, value in settings.get("slurm", {}).items()})
    executor.update_parameters(**parameters)
    return executor


@contextmanager
def repo_on_python_path():
    """Jobs start as `python -m submitit...` in a fresh interpreter that must import this suite's modules."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), saved) if p)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def run_with_submitit(tasks, launcher, settings, jobs, progress=None):
    """Submit every task, wait for all, and return the failed ones. On SLURM all cells go in one array
    (at most `jobs` running at once); locally at most `jobs` subprocesses run at once."""
    if not tasks:
        return []
    folder = tasks[0].log_path.parent.parent / "submitit"
    executor = make_executor(launcher, folder, settings, tasks[0].threads, jobs)
    at_once = len(tasks) if launcher == "slurm" else jobs
    progress = progress or GridProgress(len(tasks))
    pending, running, failed = deque(tasks), [], []
    for task in tasks:
        task.log_path.parent.mkdir(parents=True, exist_ok=True)
    with repo_on_python_path():
        try:
            while pending or running:
                free = min(at_once - len(running), len(pending))
                if free > 0:
                    batch = [pending.popleft() for _ in range(free)]
                    running += zip(batch, executor.map_array(CellJob(), batch))
                progress.running = len(running)
                progress.show()
                time.sleep(POLL_S.get(launcher, 5.0))
                for task, job in [entry for entry in running if entry[1].done()]:
                    running.remove((task, job))
                    if job_succeeded(job):
                        progress.done += 1
                    else:
                        progress.failed += 1
                        failed.append(task)
            progress.running = 0
            progress.show(force=True)
        except BaseException:
            for _, job in running:  # interrupted: do not leave the grid running behind the user's back
                job.cancel(check=False)
            raise
        finally:
            progress.close()
    return failed


def job_succeeded(job):
    try:
        job.result()
        return True
    except Exception:  # the job's traceback is in the cell's log
        return False
