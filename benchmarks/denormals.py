"""How much denormal floats slow the training steps of a trained model on the CPU, and what flushing buys.

    python benchmarks/denormals.py --run runs/reproduce/comparable/mnist/cwae/seed0 --data-root ../shared/data

Loads the run's last checkpoint (weights and Adam's moments as training left them), takes the batches of its
next epoch, and times the same training steps (forward, backward, clipping, optimiser step: the loop's own)
with denormals kept and with them flushed to zero (training/denormals.py), alternating, on one thread, each
repeat from a fresh copy of the checkpoint. Reports how many of the float32 values in the parameters, the
gradients of the first step and Adam's moments are denormal, the median times and their ratio, and writes
that into benchmarks/README.md (--no-readme to print only). A fresh model has no denormals: they appear as
training goes on, so the run must have trained for a while for this to measure anything.
"""
import argparse
import copy
import datetime
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from readme_section import load_average, publish  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="a run folder (repeatable)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per mode, alternating")
    parser.add_argument("--data-root", default=os.environ.get("SEGMA_DATA_ROOT"))
    parser.add_argument("--no-readme", action="store_true", help="print the result only")
    return parser.parse_args()


def denormal_count(tensors):
    """(denormal values, all values) over the float32 tensors given."""
    import torch
    tiny = torch.finfo(torch.float32).tiny
    found = total = 0
    for t in tensors:
        if t is not None and t.dtype == torch.float32:
            found += int(((t != 0) & (t.abs() < tiny)).sum())
            total += t.numel()
    return found, total


def load_state(run_dir, data_root):
    """The method and optimiser as the run's last checkpoint left them, and the batches of its next epoch."""

    from segma_bench.training.batches import epoch_batches, training_split
    from segma_bench.training.checkpoint import load_checkpoint
    from segma_bench.training.loop import load_trained
    spec, data, method = load_trained(run_dir, device="cpu", data_root=data_root)
    state = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    optimizer = method.configure_optimizer()
    optimizer.load_state_dict(state["optimizer"])
    method.train()
    method.on_epoch_start(state["epoch"], optimizer)  # the phase / learning rate of the next epoch
    from segma_bench.datasets.splits import load_indices
    labeled_idx = load_indices(Path(run_dir) / "labeled_indices.json")
    batches = epoch_batches(data, labeled_idx, spec.seed, state["epoch"], spec.unlabeled_batch_size,
                            spec.labeled_batch_size, "cpu", training_split(data, "cpu"))
    return spec, method, optimizer, state["epoch"], batches


def timed_steps(method, optimizer, batches, flush):
    """Seconds for the steps on fresh copies of the model and optimiser, denormals flushed or kept."""
    from segma_bench.training.denormals import denormal_mode
    from segma_bench.training.loop import update
    model = copy.deepcopy(method)
    opt = type(optimizer)(model.parameters(), **optimizer.defaults)
    opt.load_state_dict(optimizer.state_dict())
    with denormal_mode(flush):
        started = time.perf_counter()
        for batch in batches:
            update(model, opt, model.training_step(batch)["loss"])
        return time.perf_counter() - started


def first_step_gradients(method, batch):
    model = copy.deepcopy(method)
    model.training_step(batch)["loss"].backward()
    return [p.grad for p in model.parameters()]


def measure(run_dir, args):
    spec, method, optimizer, epoch, batches = load_state(run_dir, args.data_root)
    batches = [b for _, b in zip(range(args.steps), batches)]
    params = denormal_count([p.detach() for p in method.parameters()])
    grads = denormal_count(first_step_gradients(method, batches[0]))
    moments = denormal_count([v for s in optimizer.state.values() for v in s.values() if hasattr(v, "dtype")])
    timed_steps(method, optimizer, batches[:2], False)  # warm-up: allocator and kernels
    kept, flushed = [], []
    for _ in range(args.repeats):
        kept.append(timed_steps(method, optimizer, batches, False))
        flushed.append(timed_steps(method, optimizer, batches, True))
    kept_s, flushed_s = statistics.median(kept), statistics.median(flushed)
    return (f"| `{run_dir}` ({spec.method}, after epoch {epoch}) | {fraction(params)} | {fraction(grads)} | "
            f"{fraction(moments)} | {1000 * kept_s / len(batches):.1f} | {1000 * flushed_s / len(batches):.1f} | "
            f"**{kept_s / flushed_s:.2f}x** |")


def fraction(counts):
    found, total = counts
    return f"{found:,} of {total:,} ({100 * found / max(total, 1):.2f}%)"


def main():
    args = parse_args()
    import torch
    torch.set_num_threads(1)
    rows = [measure(run, args) for run in args.run]
    publish("denormals",
            f"Measured {datetime.date.today()}, torch {torch.__version__}, one thread, load average "
            f"{load_average():.2f} when it ended; {args.steps} steps per measurement, median of {args.repeats} "
            "alternating repeats.",
            ["run (checkpoint)", "denormal parameters", "denormal gradients (first step)", "denormal Adam moments",
             "ms per step, kept", "ms per step, flushed", "kept / flushed"], rows, readme=not args.no_readme)


if __name__ == "__main__":
    main()
