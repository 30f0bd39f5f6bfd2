"""The GPU check: one command for the day a GPU is lent, under 10 minutes there, one report (markdown and JSON).

    python benchmarks/gpu_check.py --out gpu-check --data-root ../shared/data     # on a machine with a GPU
    python benchmarks/gpu_check.py --skip-gpu --out /tmp/gpu-check                # skip mode (what CI runs)

Checks, in order, each with its own time limit inside --time-limit (default 540 s):
  1. environment: Python, torch, CUDA, cuDNN, the GPU, its precision policy, the optional packages;
  2. device tests: the test suite's tests marked `device` (pytest.ini), run with `pytest -m device` on CUDA;
  3. SeGMA MNIST authors-code: --epochs epochs trained on CUDA by `cli.py train`, seconds per epoch;
  4. FID network: the features of the same images on the CPU and on the GPU through the same network (the
     real weights with --fid-weights, else seeded random weights), the largest difference against 1e-4 of
     the largest feature, and GPU images/s at several batch sizes;
  5. one `reproduce` cell end to end on CUDA: Table II (Table I with --fid-weights), budget quick, SeGMA, seed 0,
     `--device auto` through `--launcher local` where submitit imports (the job decides its device), else
     in this process;
  6. resume after a kill: the same `train` as check 3, SIGKILLed in its second epoch and run again; it must
     resume from its checkpoint, and is compared bit for bit with check 3's uninterrupted run.
Without a GPU, or with --skip-gpu, checks 2-6 are skipped, each saying why, and the report is still written
(skip mode also runs check 4's code on the CPU on two images, to catch a broken script before a GPU is lent).

Writes OUT/gpu_check.md, OUT/gpu_check.json and OUT/gpu_check_logs.txt (the subprocesses' output tails); OUT is
--out, else $OUT (the device tool's folder that comes back), else ./gpu-check. Exit status 0 when no check
failed (skips are not failures), 1 otherwise. benchmarks/README.md ("The GPU check") says how to run it with
the device tool in one call and what each field of the report means.
"""
import argparse
import datetime
import gzip
import importlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT_FORMAT = 1
FID_TOLERANCE = 1e-4          # max |CPU - GPU| feature difference, relative to the largest feature (at least 1)
THROUGHPUT_BATCH_SIZES = (100, 250, 500)
DATASET, DEVICE = "mnist", "cuda"  # what checks 3, 5 and 6 train on (a test dry-runs them on a toy dataset and the CPU)
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# Each check's own limit in seconds (and never past the overall --time-limit).
CHECK_LIMIT_S = {"device_tests": 150, "segma_epochs": 120, "fid_features": 120, "reproduce_cell": 180,
                 "resume_after_kill": 120}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="report folder (default $OUT, else ./gpu-check)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder with MNIST/raw/*-ubyte (default ../shared/data where it exists)")
    parser.add_argument("--mnist-gz", type=Path, default=None,
                        help="folder with MNIST's four *-ubyte.gz files (what the device tool carries): unpacked "
                             "into the work folder and used as the data root")
    parser.add_argument("--fid-weights", type=Path, default=None,
                        help="pt_inception-2015-12-05.pth; default: seeded random weights of the same network")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--epochs", type=int, default=4, help="SeGMA authors-code epochs of checks 3 and 6")
    parser.add_argument("--fid-images", type=int, default=64, help="images compared on the CPU and the GPU, per kind")
    parser.add_argument("--throughput-images", type=int, default=2000, help="images timed per GPU batch size")
    parser.add_argument("--time-limit", type=float, default=540.0, help="seconds for all checks together")
    parser.add_argument("--skip-gpu", action="store_true", help="skip mode even where a GPU is visible")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- the report

class Check:
    """One check's outcome: status passed | failed | skipped | error, a one-line summary, details, seconds."""

    def __init__(self, name, title):
        self.name, self.title = name, title
        self.status, self.summary, self.details, self.seconds = "skipped", "", {}, 0.0

    def result(self, status, summary, **details):
        self.status, self.summary = status, summary
        self.details.update(details)
        return self

    def as_dict(self):
        return {"name": self.name, "title": self.title, "status": self.status, "summary": self.summary,
                "seconds": round(self.seconds, 1), "details": self.details}


def counts(checks):
    return {status: sum(c["status"] == status for c in checks) for status in ("passed", "failed", "skipped", "error")}


def markdown_report(report):
    """The report as markdown: what ran where, a table of the checks, then each check's numbers."""
    env = report["environment"]
    lines = [f"# GPU check ({report['mode']} mode), {report['started']}", "",
             f"`{report['command']}`: {report['seconds']:.0f} s. "
             + ", ".join(f"{n} {status}" for status, n in report["summary"].items() if n) + ".", "",
             "| environment | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in env.items() if not isinstance(value, dict)]
    lines += ["", "| check | status | seconds | summary |", "|---|---|---:|---|"]
    lines += [f"| {c['title']} | {c['status']} | {c['seconds']:.1f} | {c['summary']} |" for c in report["checks"]]
    for check in report["checks"]:
        if not check["details"]:
            continue
        lines += ["", f"## {check['title']}", ""]
        for key, value in check["details"].items():
            if key == "log_tail":
                continue
            text = json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)
            lines.append(f"- {key}: {text}")
    return "\n".join(lines) + "\n"


def write_report(out, report, logs):
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "gpu_check.md").write_text(markdown_report(report))
    (out / "gpu_check_logs.txt").write_text("\n\n".join(f"===== {name}\n{text}" for name, text in logs.items()) + "\n")
    return out / "gpu_check.md"


# ---------------------------------------------------------------- helpers

def tail(text, lines=40):
    return "\n".join(str(text).splitlines()[-lines:])


def run(command, log_name, logs, timeout, cwd=REPO, env=None):
    """Run a subprocess to its end (or its timeout); returns (exit status or None on timeout, output)."""
    started = time.time()
    try:
        done = subprocess.run(command, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                              capture_output=True, text=True, timeout=max(1.0, timeout))
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"").decode(errors="replace") if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        output += (expired.stderr or b"").decode(errors="replace") if isinstance(expired.stderr, bytes) else (expired.stderr or "")
        code = None
    logs[log_name] = f"$ {' '.join(map(str, command))}\n({time.time() - started:.1f} s, exit {code})\n{tail(output, 200)}"
    return code, output


def cli(*args):
    return [sys.executable, str(REPO / "cli.py"), *map(str, args)]


def module_version(name):
    try:
        module = importlib.import_module(name)
    except Exception as error:  # not installed there (the device machine has no pytorch-fid or submitit)
        return f"missing ({type(error).__name__})"
    return getattr(module, "__version__", "present")


def environment(gpu):
    import torch
    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
           "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0, "cpu_cores": os.cpu_count(),
           "torch_threads": torch.get_num_threads(),
           "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)")}
    for name in ("segma_bench", "pytorch_fid", "submitit", "pytest", "torchvision", "numpy"):
        env[name] = module_version(name)
    if gpu:
        from segma_bench.core.devices import apply_cuda_policy, execution_environment
        apply_cuda_policy()
        described = execution_environment("cuda")
        env.update({key: described[key] for key in ("gpu_name", "gpu_memory_gib", "gpu_capability", "cuda_version",
                                                    "cudnn_version")})
        env["precision_policy"] = {key: described[key] for key in ("tf32_matmul", "tf32_cudnn_conv", "cudnn_deterministic",
                                                                  "cudnn_benchmark", "deterministic_algorithms",
                                                                  "cublas_workspace_config")}
        if shutil.which("nvidia-smi"):
            try:
                env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                               capture_output=True, text=True, timeout=20).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                pass
    return env


def prepare_data(args, work):
    """The data root holding MNIST/raw (unpacked from --mnist-gz where given), or None."""
    if args.mnist_gz:
        raw = work / "data" / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for name in MNIST_FILES:
            with gzip.open(args.mnist_gz / f"{name}.gz", "rb") as packed, open(raw / name, "wb") as unpacked:
                shutil.copyfileobj(packed, unpacked)
        return work / "data"
    if args.data_root:
        return args.data_root
    shared = REPO.parent / "shared" / "data"
    return shared if (shared / "MNIST" / "raw").is_dir() else None


def device_test_files():
    """The test files that hold tests marked `device` (collecting only them: the others may import packages
    the GPU machine lacks)."""
    return sorted(str(path.relative_to(REPO)) for path in (REPO / "tests").glob("test_*.py")
                  if "pytest.mark.device" in path.read_text())


def junit_outcomes(path):
    """{test id: passed | failed | error | skipped} from pytest's --junitxml file."""
    outcomes = {}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = [child.tag for child in case]
        outcome = next((kind for kind in ("failure", "error", "skipped") if kind in kinds), "passed")
        outcomes[name] = {"failure": "failed"}.get(outcome, outcome)
    return outcomes


def epoch_seconds(metrics):
    return [h["seconds"] for h in metrics["history"]]


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else None


# ---------------------------------------------------------------- the checks

def check_device_tests(check, ctx):
    files = device_test_files()
    xml = ctx["work"] / "device_tests.xml"
    code, output = run([sys.executable, "-m", "pytest", "-q", "-m", "device", "-p", "no:cacheprovider", "-rs",
                        f"--junitxml={xml}", *files], "device tests", ctx["logs"], ctx["limit"])
    if code is None:
        return check.result("failed", f"timed out after {ctx['limit']:.0f} s", files=files)
    outcomes = junit_outcomes(xml) if xml.is_file() else {}
    by_status = {status: sorted(t for t, s in outcomes.items() if s == status) for status in ("failed", "error", "skipped")}
    passed = sum(s == "passed" for s in outcomes.values())
    summary = (f"{passed} passed, {len(by_status['failed'])} failed, {len(by_status['error'])} errors, "
               f"{len(by_status['skipped'])} skipped, of {len(outcomes)} in {len(files)} files")
    details = {"files": files, "passed": passed, **{k: v for k, v in by_status.items() if v}}
    if not outcomes:
        return check.result("error", "pytest wrote no results", exit_status=code, log_tail=tail(output))
    return check.result("passed" if code == 0 and not by_status["failed"] and not by_status["error"] else "failed",
                        summary, **details)


def train_command(ctx, run_dir):
    return cli("train", "--method", "segma", "--dataset", DATASET, "--recipe", "authors-code", "--epochs",
               ctx["epochs"], "--device", DEVICE, "--data-root", ctx["data_root"], "--cache-dir", ctx["work"] / "cache",
               "--run-dir", run_dir)


def check_segma_epochs(check, ctx):
    if ctx["data_root"] is None:
        return check.result("skipped", "no MNIST: pass --data-root or --mnist-gz")
    run_dir = ctx["work"] / "runs" / "segma-straight"
    code, output = run(train_command(ctx, run_dir), "segma epochs", ctx["logs"], ctx["limit"])
    if code != 0:
        return check.result("failed", f"`cli.py train` exit status {code}", log_tail=tail(output))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    seconds = epoch_seconds(metrics)
    ctx["straight_run"] = run_dir
    history = metrics["history"]
    steady = median(seconds[1:]) or seconds[0]
    return check.result(
        "passed", f"{len(seconds)} epochs: first {seconds[0]:.1f} s (CUDA start-up), then median {steady:.2f} s "
                  f"per epoch; test error {100 * metrics['test_error']:.2f}%",
        seconds_per_epoch=seconds, steady_seconds_per_epoch=steady, test_error_by_epoch=[h["test_error"] for h in history],
        device_by_epoch=[h.get("device") for h in history], execution=metrics.get("execution"), recipe="authors-code")


def random_fid_network(seed=0):
    """pytorch-fid's FID Inception architecture with seeded random weights (the real ones, 96 MB, do not travel
    to the device machine): Kaiming-normal convolutions, so that activations neither vanish nor explode over its
    depth, and batch norms with random statistics, so that folding them into the convolutions is exercised."""
    import torch
    from torch import nn

    from segma_bench.evaluation import inception
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    network = inception._fid_inception_v3_structure()
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
    return inception.fold_batch_norms(inception.InceptionPool3(network)).eval().requires_grad_(False)


def fid_extractor(network, device, batch_size):
    """A FeatureExtractor around `network` on `device`: the product's own feature path (input preparation,
    batching, IEEE float32 convolutions on a GPU) without its weights-file check."""
    import copy

    import torch

    from segma_bench.evaluation.inception import FeatureExtractor
    extractor = FeatureExtractor.__new__(FeatureExtractor)
    extractor.progress, extractor.device, extractor.batch_size = False, torch.device(device), batch_size
    extractor.model = copy.deepcopy(network).to(device=device, memory_format=torch.channels_last)
    return extractor


def fid_images(ctx, count):
    """{kind: float images in [0, 1]}: MNIST test images (grey, 28x28) where the data is here, and seeded random
    64x64 RGB images (CelebA's size and channels)."""
    import torch
    generator = torch.Generator().manual_seed(1)
    images = {"rgb64": torch.rand(count, 3, 64, 64, generator=generator)}
    if ctx["data_root"] is not None:
        from segma_bench.datasets import load_dataset
        data = load_dataset("mnist", str(ctx["data_root"]), str(ctx["work"] / "cache"))
        images["mnist"] = data.test_images[:count].float() / 255
    else:
        images["grey28"] = torch.rand(count, 1, 28, 28, generator=generator)
    return images


def compare_features(network, images, device_a, device_b, batch_a, batch_b):
    import numpy as np
    started = time.time()
    a = fid_extractor(network, device_a, batch_a)(images)
    seconds_a = time.time() - started
    b = fid_extractor(network, device_b, batch_b)(images)
    scale = max(1.0, float(np.abs(a).max()))
    difference = float(np.abs(a - b).max())
    return {"max_abs_difference": difference, "largest_feature": float(np.abs(a).max()),
            "relative_difference": difference / scale, "within_tolerance": difference <= FID_TOLERANCE * scale,
            f"{device_a}_images_per_s": round(len(images) / seconds_a, 1)}


def check_fid_features(check, ctx, gpu=True):
    import torch

    from segma_bench.evaluation.inception import load_pool3_network
    if ctx["fid_weights"]:
        network, weights = load_pool3_network(ctx["fid_weights"], "cpu"), f"real ({ctx['fid_weights'].name})"
    else:
        network, weights = random_fid_network(), "seeded random (torch.manual_seed(0), Kaiming-normal convolutions)"
    if not gpu:  # skip mode: the same code on the CPU, two images, to catch a broken script before a GPU is lent
        images = fid_images({**ctx, "data_root": None}, 2)["rgb64"]
        dry = compare_features(network, images, "cpu", "cpu", 1, 2)
        return check.result("skipped", f"{ctx['skip_reason']} (its code ran on the CPU on 2 images: CPU batch 1 vs "
                                       f"batch 2 differ by {dry['max_abs_difference']:.1e})", weights=weights, cpu_dry_run=dry)
    comparisons = {kind: compare_features(network, images, "cpu", "cuda", 10, 100)
                   for kind, images in fid_images(ctx, ctx["fid_images"]).items()}
    throughput = {}
    source = torch.rand(ctx["throughput_images"], 1, 28, 28, generator=torch.Generator().manual_seed(2))
    for batch_size in THROUGHPUT_BATCH_SIZES:
        extractor = fid_extractor(network, "cuda", batch_size)
        extractor(source[:batch_size])  # warm-up: cuDNN's algorithms, the allocator
        torch.cuda.synchronize()
        started = time.time()
        extractor(source)  # each batch's features come back to the host: synchronised
        throughput[batch_size] = round(len(source) / (time.time() - started), 1)
    best = max(throughput, key=throughput.get)
    ok = all(c["within_tolerance"] for c in comparisons.values())
    worst = max(c["relative_difference"] for c in comparisons.values())
    return check.result(
        "passed" if ok else "failed",
        f"CPU vs GPU features: largest difference {worst:.1e} of the largest feature (tolerance {FID_TOLERANCE:g}); "
        f"{throughput[best]:.0f} images/s at batch {best} (10,000-image FID: {10000 / throughput[best]:.1f} s of features)",
        weights=weights, comparisons=comparisons, gpu_images_per_s_by_batch=throughput,
        note="CPU batch 10, GPU batch 100; features float64 as evaluation/inception.py returns them")


def check_reproduce_cell(check, ctx):
    if ctx["data_root"] is None:
        return check.result("skipped", "no MNIST: pass --data-root or --mnist-gz")
    table = 1 if ctx["fid_weights"] else 2
    launcher = ["--launcher", "local", "--timeout", "10"] if module_version("submitit")[:7] != "missing" else []
    results = ctx["work"] / "results"
    command = cli("reproduce", "--table", table, "--dataset", DATASET, "--method", "segma", "--seeds", 1,
                  "--budget", "quick", "--device", "auto", "--jobs", 1, *launcher, "--runs-root", ctx["work"] / "reproduce-runs",
                  "--results-dir", results, "--cache-dir", ctx["work"] / "cache", "--data-root", ctx["data_root"],
                  *(["--fid-weights", ctx["fid_weights"]] if ctx["fid_weights"] else []))
    code, output = run(command, "reproduce cell", ctx["logs"], ctx["limit"])
    cell_logs = sorted((ctx["work"] / "reproduce-runs").glob("reproduce/quick/logs/*.log"))
    if cell_logs:
        ctx["logs"]["reproduce cell's own log"] = tail(cell_logs[0].read_text(), 80)
    record_file = results / "runs" / "quick" / f"{DATASET}-segma-seed0.json"
    if code != 0 or not record_file.is_file():
        return check.result("failed", f"`cli.py reproduce` exit status {code}", log_tail=tail(output))
    record = json.loads(record_file.read_text())
    training = record["training"]
    devices = training.get("device_by_epoch", [])
    metric = "sample_fid" if table == 1 else "test_error"
    fid_device = record.get("protocol", {}).get("fid", {}).get("device") if table == 1 else None
    on_gpu = bool(devices) and all(str(d).startswith(DEVICE) for d in devices)
    details = {"table": table, "launcher": "local (submitit)" if launcher else "none (in this process)",
               "metric": {metric: record["metrics"].get(metric)}, "device_by_epoch": devices,
               "execution": training.get("execution"), "train_seconds": training.get("train_seconds"),
               "cell_log_device_line": next((line for line in ctx["logs"].get("reproduce cell's own log", "").splitlines()
                                             if ": device " in line), None)}
    if fid_device:
        details["fid_device"] = fid_device
    return check.result("passed" if on_gpu else "failed",
                        f"Table {table} cell trained on {devices[-1] if devices else '?'} "
                        f"({'submitit local job' if launcher else 'in process'}), {metric} = {record['metrics'].get(metric)}",
                        **details)


def check_resume_after_kill(check, ctx):
    straight = ctx.get("straight_run")
    if straight is None:
        return check.result("skipped", "needs check 3's uninterrupted run, which did not finish")
    import torch
    run_dir = ctx["work"] / "runs" / "segma-killed"
    command = train_command(ctx, run_dir)
    log = open(ctx["work"] / "killed.log", "w")
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + ctx["limit"] / 3
    while not (run_dir / "metrics.json").is_file() and process.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    first_epoch = json.loads((run_dir / "metrics.json").read_text())["history"][0]["seconds"] if (
        run_dir / "metrics.json").is_file() else 0
    time.sleep(min(first_epoch / 2, 10))  # into the second epoch
    still_running = process.poll() is None
    if still_running:
        process.send_signal(signal.SIGKILL)
    process.wait()
    log.close()
    ctx["logs"]["killed run"] = tail((ctx["work"] / "killed.log").read_text(), 60)
    if not still_running:
        return check.result("failed", "the run ended before it was killed (raise --epochs)")
    killed_at = json.loads((run_dir / "metrics.json").read_text())["epochs_completed"] if (
        run_dir / "metrics.json").is_file() else 0
    code, output = run(command, "resumed run", ctx["logs"], max(1.0, ctx["check_deadline"] - time.time()))
    if code != 0:
        return check.result("failed", f"the resumed `cli.py train` exit status {code}", log_tail=tail(output))
    resumed_log = (run_dir / "train.log").read_text()
    a = torch.load(straight / "checkpoint.pt", map_location="cpu", weights_only=False)
    b = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    differences = {key: float((a["model"][key].double() - b["model"][key].double()).abs().max())
                   for key in a["model"] if a["model"][key].is_floating_point()}
    identical = all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    same_losses = [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    resumed = f"resumed from the end of epoch {killed_at}" in resumed_log
    details = {"killed_after_epochs": killed_at, "resumed_from_checkpoint": resumed, "weights_bit_identical": identical,
               "losses_identical": same_losses, "max_weight_difference": max(differences.values(), default=0.0),
               "device_notes": [line for line in resumed_log.splitlines() if line.startswith("resumed on")]}
    ok = resumed and identical and same_losses and b["epoch"] == ctx["epochs"]
    return check.result("passed" if ok else "failed",
                        f"SIGKILLed after {killed_at} epoch(s), resumed: {resumed}; bit-identical to the uninterrupted "
                        f"run: {identical}", **details)


CHECKS = [("device_tests", "2. device tests on CUDA (pytest -m device)", check_device_tests),
          ("segma_epochs", "3. SeGMA MNIST authors-code epochs on CUDA", check_segma_epochs),
          ("fid_features", "4. FID network: CPU vs GPU features, GPU images/s", check_fid_features),
          ("reproduce_cell", "5. one reproduce cell end to end on CUDA", check_reproduce_cell),
          ("resume_after_kill", "6. resume after a kill on CUDA", check_resume_after_kill)]


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    out = args.out or Path(os.environ.get("OUT") or "gpu-check")
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    import torch
    gpu = torch.cuda.is_available() and not args.skip_gpu
    skip_reason = ("skipped: --skip-gpu" if args.skip_gpu else
                   "skipped: no CUDA GPU visible (torch.cuda.is_available() is False)") if not gpu else None
    logs, checks = {}, []
    env_check = Check("environment", "1. environment")
    env = {}
    try:
        env = environment(gpu)
        env_check.result("passed", f"torch {env['torch']}" + (f", {env.get('gpu_name')}, CUDA {env.get('cuda_version')}, "
                                                              f"cuDNN {env.get('cudnn_version')}" if gpu else ", no GPU used"))
    except Exception as error:
        env_check.result("error", f"{type(error).__name__}: {error}", traceback=tail(traceback.format_exc()))
    checks.append(env_check)
    ctx = {"work": work, "logs": logs, "epochs": args.epochs, "fid_images": args.fid_images, "skip_reason": skip_reason,
           "throughput_images": args.throughput_images, "fid_weights": args.fid_weights,
           "deadline": started + args.time_limit, "straight_run": None}
    try:
        ctx["data_root"] = prepare_data(args, work)
    except OSError as error:
        ctx["data_root"] = None
        logs["data"] = f"MNIST could not be prepared: {error}"
    for name, title, function in CHECKS:
        check = Check(name, title)
        began = time.time()
        left = ctx["deadline"] - began
        ctx["limit"] = min(CHECK_LIMIT_S[name], left)
        ctx["check_deadline"] = began + ctx["limit"]
        try:
            if name == "fid_features" and not gpu:
                function(check, ctx, gpu=False)
            elif not gpu:
                check.result("skipped", skip_reason)
            elif left < 10:
                check.result("skipped", f"out of time (--time-limit {args.time_limit:.0f} s)")
            else:
                function(check, ctx)  # a check may leave results for a later one in ctx (check 3's run)
        except Exception as error:  # one broken check must not lose the others' numbers
            check.result("error", f"{type(error).__name__}: {error}", traceback=tail(traceback.format_exc()))
        check.seconds = time.time() - began
        checks.append(check)
        print(f"{title}: {check.status} ({check.seconds:.1f} s) {check.summary}", flush=True)
    report = {"format": REPORT_FORMAT, "mode": "gpu" if gpu else "skip",
              "started": datetime.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
              "seconds": round(time.time() - started, 1), "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
              "environment": env, "checks": [c.as_dict() for c in checks]}
    report["summary"] = counts(report["checks"])
    path = write_report(out, report, logs)
    print(f"report: {path} and {path.with_suffix('.json')}", flush=True)
    return 1 if report["summary"]["failed"] or report["summary"]["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
