"""pytorch-fid's get_activations and our FeatureExtractor, side by side on the same images.

    python benchmarks/fid_features.py --n 1000 --batch-size 50 --repeats 3

Times, on the same N seeded images (MNIST test digits when ../shared/data/MNIST is there):
  1. pytorch-fid's get_activations on PNG files, the way its users run it (includes PNG decoding);
  2. its model-only loop (model(batch)[0].squeeze()) on in-memory tensors: the apples-to-apples
     comparison of the networks;
  3. our FeatureExtractor at the same batch size, and at its own default CPU batch size.
Prints the times, speed ratios and the largest feature difference, and writes them into
benchmarks/README.md between the result markers (--no-readme to only print).
"""
import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import pytorch_fid  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from pytorch_fid import inception as pytorch_fid_inception  # noqa: E402
from pytorch_fid.fid_score import get_activations  # noqa: E402
from readme_section import write_section  # noqa: E402

from segma_bench.evaluation import inception  # noqa: E402
from segma_bench.evaluation.inception import FeatureExtractor  # noqa: E402

MNIST_TEST_IMAGES = REPO.parent / "shared" / "data" / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
OFFLINE_WEIGHTS = REPO.parent / "shared" / "weights" / "pt_inception-2015-12-05.pth"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="number of images (at least 1,000 for a report)")
    parser.add_argument("--batch-size", type=int, default=50, help="pytorch-fid's batch size (its default: 50)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed runs of each; the best is reported")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--num-workers", type=int, default=1, help="get_activations' data loader workers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fid-weights", help=f"default: ${inception.WEIGHTS_ENV_VAR}, else {OFFLINE_WEIGHTS}")
    parser.add_argument("--no-readme", action="store_true", help="print the result only")
    return parser.parse_args()


def benchmark_images(n, seed):
    """(n, 28, 28) uint8 images and what they are."""
    rng = np.random.default_rng(seed)
    if MNIST_TEST_IMAGES.is_file():
        digits = np.fromfile(MNIST_TEST_IMAGES, dtype=np.uint8, offset=16).reshape(-1, 28, 28)
        chosen = np.sort(rng.choice(len(digits), size=n, replace=False))
        return digits[chosen], f"{n} MNIST test digits, 28x28 grayscale (seeded choice, seed {seed})"
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), f"{n} random 28x28 grayscale images"


def write_pngs(images, folder):
    files = []
    for index, image in enumerate(images):
        files.append(Path(folder) / f"{index:05d}.png")
        Image.fromarray(image, mode="L").save(files[-1])
    return files


def pytorch_fid_model(weights_path):
    """pytorch-fid's own InceptionV3([3]); only its download is replaced by the local weights file."""
    def local_weights(*args, **kwargs):
        return torch.load(weights_path, map_location="cpu", weights_only=True)
    with mock.patch.object(pytorch_fid_inception, "load_state_dict_from_url", local_weights):
        return pytorch_fid_inception.InceptionV3([3], use_fid_inception=True).eval()


def pytorch_fid_in_memory(model, images, batch_size):
    """get_activations' loop without the files: model(batch)[0], squeezed, on RGB tensors."""
    features = np.empty((len(images), 2048))
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].repeat(1, 3, 1, 1)  # as PIL's convert('RGB')
        with torch.no_grad():
            features[start:start + len(batch)] = model(batch)[0].squeeze(3).squeeze(2).numpy()
    return features


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    weights = args.fid_weights or os.environ.get(inception.WEIGHTS_ENV_VAR) or (
        OFFLINE_WEIGHTS if OFFLINE_WEIGHTS.is_file() else None)
    load_before = os.getloadavg()

    build_ours, ours = timed(lambda: FeatureExtractor(weights_path=weights, device="cpu"))
    build_theirs, theirs = timed(lambda: pytorch_fid_model(ours.weights_path))
    pixels, description = benchmark_images(args.n, args.seed)
    images = torch.from_numpy(pixels).float()[:, None] / 255  # ToTensor's scaling of the same PNGs
    default_batch = ours.batch_size

    # One untimed batch each: the first call of a batch shape sets up oneDNN kernels.
    pytorch_fid_in_memory(theirs, images[:args.batch_size], args.batch_size)
    for batch_size in (args.batch_size, default_batch):
        ours.batch_size = batch_size
        ours(images[:batch_size])

    def ours_at(batch_size):
        ours.batch_size = batch_size
        return ours(images)

    runs = {
        f"pytorch-fid get_activations on PNGs (num_workers={args.num_workers})":
            (args.batch_size, lambda: get_activations(files, theirs, args.batch_size, 2048, "cpu",
                                                      args.num_workers)),
        "pytorch-fid model loop, in-memory tensors": (args.batch_size, lambda: pytorch_fid_in_memory(
            theirs, images, args.batch_size)),
        "ours (FeatureExtractor), same batch size": (args.batch_size, lambda: ours_at(args.batch_size)),
    }
    if default_batch != args.batch_size:
        runs["ours (FeatureExtractor), its default CPU batch size"] = (default_batch,
                                                                      lambda: ours_at(default_batch))

    times = {name: [] for name in runs}
    features = {}
    with tempfile.TemporaryDirectory() as folder:
        files = write_pngs(pixels, folder)
        for _ in range(args.repeats):  # interleaved, so load from other users hits all alike
            for name, (_, run) in runs.items():
                seconds, features[name] = timed(run)
                times[name].append(seconds)
                print(f"{name}: {seconds:.2f} s", flush=True)

    names = list(runs)
    files_name, memory_name, ours_name = names[:3]
    ours_features = features[ours_name]
    differences = {
        "ours vs get_activations on the PNGs": np.abs(ours_features - features[files_name]).max(),
        "ours vs pytorch-fid model loop": np.abs(ours_features - features[memory_name]).max(),
        f"ours at batch {args.batch_size} vs at batch {default_batch}":
            np.abs(ours_features - features[names[-1]]).max(),
    }
    report = markdown_report(args, description, runs, times, differences, build_ours, build_theirs,
                             load_before, os.getloadavg(), ours.weights_sha256)
    print(report)
    if not args.no_readme:
        write_section("fid_features", report)


def markdown_report(args, description, runs, times, differences, build_ours, build_theirs,
                    load_before, load_after, weights_sha256):
    best = {name: min(seconds) for name, seconds in times.items()}
    files_name, memory_name = list(runs)[:2]
    lines = [
        f"Measured {datetime.date.today().isoformat()} with "
        f"`python benchmarks/fid_features.py {' '.join(sys.argv[1:])}`.",
        "",
        f"- Machine: {cpu_name()}, {os.cpu_count()} cores shared with other users, torch threads "
        f"{args.threads}; load average {load_before[0]:.1f} before and {load_after[0]:.1f} after the run.",
        f"- torch {torch.__version__}, pytorch-fid {pytorch_fid.__version__}, weights sha256 "
        f"{weights_sha256[:12]}...",
        f"- Images: {description}. Each time is the best of {args.repeats} interleaved runs "
        "(all runs in brackets); one warm-up batch per network is not timed.",
        f"- Building the network: ours {build_ours:.1f} s (hash check, load, batch-norm folding), "
        f"pytorch-fid's {build_theirs:.1f} s.",
        "",
        "| feature extraction | batch | seconds | images/s "
        "| get_activations time / this | model loop time / this |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, (batch_size, _) in runs.items():
        all_runs = ", ".join(f"{seconds:.1f}" for seconds in times[name])
        lines.append(f"| {name} | {batch_size} | {best[name]:.1f} [{all_runs}] | {args.n / best[name]:.1f} "
                     f"| {best[files_name] / best[name]:.2f}x | {best[memory_name] / best[name]:.2f}x |")
    lines += ["", "Largest absolute difference of the 2048-d features (float32 rounding; test bound 1e-4):", ""]
    lines += [f"- {what}: {value:.2e}" for what, value in differences.items()]
    return "\n".join(lines)



if __name__ == "__main__":
    main()
