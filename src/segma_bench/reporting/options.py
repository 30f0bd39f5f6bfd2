"""The options of one `reproduce` call, typed and frozen: what every cell, worker and job reads.

The command line builds one (cli/main.py `reproduce`); a worker or job gets its own copy with the devices it
decided (launch.job_setup) through `dataclasses.replace`, never by mutation."""
from dataclasses import dataclass, field
from pathlib import Path

SKIPPED = "skipped"  # a cell's outcome where --no-train left it alone (else "done"; a failure raises)


@dataclass(frozen=True)
class ReproduceOptions:
    data_root: str | None = None           # None: $SEGMA_DATA_ROOT, else ./data with download
    cache_dir: Path | str | None = None    # preprocessed data and FID reference statistics
    fid_weights: str | None = None         # None: $SEGMA_FID_WEIGHTS, else pytorch-fid's download
    device: str = "auto"                   # training device; "auto" is decided in each cell's process
    fid_device: str | None = None          # None: the cell's training device
    runs_root: Path | str = "runs"         # run folders under RUNS_ROOT/reproduce/BUDGET/
    results_dir: Path | str = "results"    # records under RESULTS_DIR/runs/BUDGET/, tables in RESULTS_DIR
    progress: bool = True                  # per-epoch lines (and a bar on a terminal)
    recompute: bool = False                # evaluate every cell again
    no_train: bool = False                 # evaluate only runs that already hold the budget's epochs; train none
    force: bool = False                    # replace a record or table with a poorer one
    jobs: int = 1                          # cells at once
    threads: int | None = None             # torch threads per cell (None: cores // jobs)
    launcher: str | None = None            # None (processes here), "local" or "slurm" (submitit)
    launcher_settings: dict = field(default_factory=dict)  # partition, timeout_min, slurm: {...}
    command: str = ""                      # the command line that made the records
    tracker: str | None = None             # an experiment tracker (training/trackers.py) each cell logs to
