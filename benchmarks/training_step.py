"""How fast one training step runs, against this machine's own matrix-multiply peak, in one run.

    python benchmarks/training_step.py --method segma --steps 50

Measures, in fresh processes so that thread pools never carry over:
  1. the GEMM peak: a 200x1024 by 1024x1024 float32 product, one thread (and all threads);
  2. the training step (forward, backward, clipping, optimiser step, as training/loop.py runs it) on
     MNIST-shaped batches of the dataset protocol, with one thread and with all threads; its FLOPs are
     counted by torch's FlopCounterMode, giving the achieved GFLOP/s and its fraction of the peak;
  3. two processes of one thread each, side by side: the throughput `reproduce --jobs 2` gets;
  4. a run beside one competing single-threaded process (a GEMM loop), with all threads (torch's default)
     and with the threads `reproduce` gives each cell by default (--jobs = cores: one thread each).
Prints a markdown report and writes it into benchmarks/README.md between the result markers
(--no-readme to only print). Nothing here is a timed test: the targets are in benchmarks/README.md.
"""
import argparse
import datetime
import multiprocessing
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from readme_section import write_section  # noqa: E402

MNIST_ROOT = REPO.parent / "shared" / "data"
GEMM_SHAPE = (200, 1024, 1024)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="segma")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--synthetic", action="store_true", help="random MNIST-shaped images (no data needed)")
    parser.add_argument("--no-readme", action="store_true", help="print the result only")
    return parser.parse_args()


# ---------------------------------------------------------------- measurements (each in its own process)

def gemm_gflops(threads, seconds=2.0):
    import torch
    torch.set_num_threads(threads)
    m, k, n = GEMM_SHAPE
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(5):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * m * k * n * count / (time.perf_counter() - start) / 1e9


def build_run(method_name, synthetic):
    """(method, optimizer, batches) of a fresh run on MNIST (or MNIST-shaped random images)."""
    import torch

    from segma_bench.datasets import load_dataset
    from segma_bench.datasets.base import ImageDataset
    from segma_bench.datasets.mnist import PROTOCOL as MNIST_PROTOCOL
    from segma_bench.training import RunSpec
    from segma_bench.training.batches import epoch_batches
    from segma_bench.training.loop import prepare
    if synthetic or not (MNIST_ROOT / "MNIST").is_dir():
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (60000, 1, 28, 28), generator=generator, dtype=torch.uint8)
        labels = torch.arange(60000) % 10
        data = ImageDataset(name="mnist", train_images=images, train_labels=labels, test_images=images[:100],
                            test_labels=labels[:100], class_names=tuple(map(str, range(10))),
                            protocol=MNIST_PROTOCOL, source={"synthetic": "random uint8, seed 0"})
    else:
        data = load_dataset("mnist", str(MNIST_ROOT))
    spec, data, labeled_idx, method = prepare(RunSpec(method=method_name, dataset="mnist", device="cpu",
                                                      progress=False), None, data)
    optimizer = method.configure_optimizer()
    batches = epoch_batches(data, labeled_idx, 0, 0, spec.unlabeled_batch_size, spec.labeled_batch_size, "cpu")
    return method, optimizer, batches


def train_step(method, optimizer, batch):
    """One step exactly as training/loop.py takes it (without the NaN guard's check)."""
    from segma_bench.training.loop import update
    update(method, optimizer, method.training_step(batch)["loss"])


def step_flops(method_name, synthetic):
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    torch.set_num_threads(1)
    method, optimizer, batches = build_run(method_name, synthetic)
    counter = FlopCounterMode(display=False)
    with counter:
        train_step(method, optimizer, next(batches))
    return counter.get_total_flops()


def step_seconds(method_name, synthetic, threads, steps, warmup, start_together=None):
    """Median seconds per training step with `threads` torch threads."""
    import torch
    torch.set_num_threads(threads)
    method, optimizer, batches = build_run(method_name, synthetic)
    method.train()
    for _ in range(warmup):
        train_step(method, optimizer, next(batches))
    if start_together is not None:
        start_together.wait()  # side-by-side processes time the same stretch
    times = []
    for _ in range(steps):
        batch = next(batches)
        start = time.perf_counter()
        train_step(method, optimizer, batch)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def competing_gemm_loop(stop):
    """A single-threaded process that keeps one core busy, as another user's training would."""
    import torch
    torch.set_num_threads(1)
    a, b = torch.randn(*GEMM_SHAPE[:2]), torch.randn(*GEMM_SHAPE[1:])
    while not stop.is_set():
        a @ b


def _worker(queue, function, args):
    queue.put(function(*args))


def in_processes(function, argument_lists):
    """Run function(*args) for each args in its own spawned process at once; their results in order."""
    context = multiprocessing.get_context("spawn")
    queues = [context.Queue() for _ in argument_lists]
    processes = [context.Process(target=_worker, args=(q, function, args)) for q, args in zip(queues, argument_lists)]
    for process in processes:
        process.start()
    results = [q.get() for q in queues]
    for process in processes:
        process.join()
    return results


def beside_a_competitor(args, threads):
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    competitor = context.Process(target=competing_gemm_loop, args=(stop,))
    competitor.start()
    try:
        return in_processes(step_seconds, [(args.method, args.synthetic, threads, args.steps, args.warmup)])[0]
    finally:
        stop.set()
        competitor.join()


# ---------------------------------------------------------------- report

def main():
    args = parse_args()
    from segma_bench.reporting.launch import available_cores, threads_per_job
    cores = available_cores()
    load_before = os.getloadavg()
    one = (args.method, args.synthetic, 1, args.steps, args.warmup)
    every = (args.method, args.synthetic, cores, args.steps, args.warmup)
    # one after the other: measured at once, the two would share the cores and both read low
    peak_one = in_processes(gemm_gflops, [(1,)])[0]
    peak_all = in_processes(gemm_gflops, [(cores,)])[0]
    flops = in_processes(step_flops, [(args.method, args.synthetic)])[0]
    step_one = in_processes(step_seconds, [one])[0]
    step_all = in_processes(step_seconds, [every])[0]
    barrier = multiprocessing.get_context("spawn").Barrier(2)
    side_by_side = in_processes(step_seconds, [(*one, barrier), (*one, barrier)])
    busy_default = beside_a_competitor(args, cores)
    busy_picked = beside_a_competitor(args, threads_per_job(cores, cores))  # reproduce's default --jobs
    report = markdown_report(args, cores, load_before, os.getloadavg(), peak_one, peak_all, flops, step_one,
                             step_all, side_by_side, busy_default, busy_picked)
    print(report)
    if not args.no_readme:
        write_section("training_step", report)


def markdown_report(args, cores, load_before, load_after, peak_one, peak_all, flops, step_one, step_all,
                    side_by_side, busy_default, busy_picked):
    gflops = flops / step_one / 1e9
    pair_throughput = sum(1 / s for s in side_by_side)
    data = "random MNIST-shaped images" if args.synthetic or not (MNIST_ROOT / "MNIST").is_dir() else "MNIST"
    return "\n".join([
        f"Measured {datetime.date.today().isoformat()} with `python benchmarks/training_step.py "
        f"{' '.join(sys.argv[1:])}`.",
        "",
        f"- {args.method} on {data}, the dataset protocol's batches; median of {args.steps} steps after "
        f"{args.warmup} untimed ones; {cores} cores; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after.",
        f"- GEMM peak ({'x'.join(map(str, GEMM_SHAPE))} float32): {peak_one:.1f} GFLOP/s on one thread, "
        f"{peak_all:.1f} on {cores}.",
        f"- One step: {flops / 1e9:.2f} GFLOP (torch FlopCounterMode).",
        "",
        "| measurement | ms per step | steps/s (all processes) | note |",
        "|---|---:|---:|---|",
        f"| 1 thread | {1e3 * step_one:.1f} | {1 / step_one:.1f} | {gflops:.1f} GFLOP/s, "
        f"{100 * gflops / peak_one:.0f}% of one thread's GEMM peak |",
        f"| {cores} threads | {1e3 * step_all:.1f} | {1 / step_all:.1f} | "
        f"{step_one / step_all:.2f}x one thread |",
        f"| 2 processes x 1 thread | {', '.join(f'{1e3 * s:.1f}' for s in side_by_side)} | "
        f"{pair_throughput:.1f} | {pair_throughput * step_all:.2f}x the throughput of {cores} threads |",
        f"| {cores} threads beside a 1-thread process | {1e3 * busy_default:.1f} | {1 / busy_default:.1f} | "
        f"{busy_default / step_all:.2f}x slower than alone |",
        f"| 1 thread (reproduce's default, --jobs = cores) beside it | {1e3 * busy_picked:.1f} | {1 / busy_picked:.1f} | "
        f"{busy_picked / step_one:.2f}x slower than 1 thread alone |",
    ])



if __name__ == "__main__":
    main()
