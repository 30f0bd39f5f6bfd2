"""Two torch threads and denormal flushing: what it costs when only one of the threads flushes.

    python benchmarks/thread_flush.py --run runs/mnist/adgm-maaloe-code/seed0 --data-root ../shared/data

Flushing is a register of each CPU thread, inherited when a thread is created (training/denormals.py).
This times the same training steps of a run's last checkpoint (benchmarks/denormals.py's steps: forward,
backward, clipping, optimiser step) in fresh processes, one per measurement, alternating over three modes:

- one thread, flushed;
- two threads, flush set after torch's second thread exists (what `cli.py train` did before 2026-12-01: the
  data loading creates the thread, `train` then set the mode in the calling thread only);
- two threads, flush set before the first torch operation (`flush_for_process`, what the entry points do now).

Reports each mode's median milliseconds per step, its speed relative to one thread, and what
`denormals_flushed` (which asks every thread) says in it; writes that into benchmarks/README.md (--no-readme
to print only). The two-thread modes need both cores: run it with nothing else running.
"""
import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from readme_section import load_average, publish  # noqa: E402

# (name, torch threads, flush set before the first torch operation)
MODES = [("one thread, flushed", 1, False),
         ("two threads, flushed after the second thread exists (before 2026-12-01)", 2, False),
         ("two threads, flushed before the first torch operation (now)", 2, True)]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a run folder with a checkpoint")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per mode, alternating")
    parser.add_argument("--data-root", default=os.environ.get("SEGMA_DATA_ROOT"))
    parser.add_argument("--no-readme", action="store_true", help="print the result only")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # index into MODES, in a fresh process
    return parser.parse_args()


def worker(mode, args):
    """One measurement in this fresh process; prints 'seconds_per_step every_thread_flushes'."""
    import torch
    from benchmarks.denormals import load_state, timed_steps

    from segma_bench.training.denormals import denormal_mode, denormals_flushed, flush_for_process
    _, threads, flush_first = MODES[mode]
    torch.set_num_threads(threads)
    if flush_first:
        flush_for_process("cpu")
    else:
        torch.randn(1 << 20).sum()  # the first parallel operation: torch's threads exist from here on
    spec, method, optimizer, epoch, batches = load_state(args.run, args.data_root)
    batches = [b for _, b in zip(range(args.steps + 2), batches)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flushing set too late is what denormal_mode warns about
        timed_steps(method, optimizer, batches[:2], True)  # warm-up: allocator and kernels
        seconds = timed_steps(method, optimizer, batches[2:], True)
        with denormal_mode(True):
            every = denormals_flushed()
    print(f"{seconds / args.steps} {every}")


def measure(mode, args):
    command = [sys.executable, __file__, "--run", args.run, "--steps", str(args.steps), "--worker", str(mode)]
    if args.data_root:
        command += ["--data-root", args.data_root]
    env = {**os.environ, "OMP_NUM_THREADS": str(MODES[mode][1])}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    seconds, every = done.stdout.split()[-2:]
    return float(seconds), every == "True"


def main():
    args = parse_args()
    if args.worker is not None:
        return worker(args.worker, args)
    times = {mode: [] for mode in range(len(MODES))}
    flushed = {}
    started = time.time()
    for _ in range(args.repeats):
        for mode in times:
            seconds, flushed[mode] = measure(mode, args)
            times[mode].append(seconds)
    median = {mode: statistics.median(t) for mode, t in times.items()}
    rows = [f"| {name} | {1000 * median[mode]:.0f} | **{median[0] / median[mode]:.2f}x** | {flushed[mode]} |"
            for mode, (name, _, _) in enumerate(MODES)]
    import torch
    publish("thread-flush",
            f"Measured {datetime.date.today()}, torch {torch.__version__}, `{args.run}` (its last checkpoint), "
            f"{args.steps} steps per measurement, median of {args.repeats} alternating fresh processes per mode, "
            f"{time.time() - started:.0f} s in all, load average {load_average():.2f} when it ended.",
            ["mode", "ms per step", "speed against one thread", "`denormals_flushed` (every thread)"], rows,
            readme=not args.no_readme)

if __name__ == "__main__":
    main()
