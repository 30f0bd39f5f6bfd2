"""Devices: which one a process computes on, how CUDA computes there, and what a record says about it.

Decided where the work runs. A `reproduce` worker process or submitit job resolves `--device auto` itself
(`resolve_device`), from the GPUs it sees, and its FID extractor follows its training device; a parent on
another machine (a SLURM login node) decides nothing about devices.

CUDA precision policy (`apply_cuda_policy`, set by every process that builds a method on a GPU, recorded
by `precision_state`): float32 matrix products and cuDNN convolutions in full IEEE float32, not TF32
(torch leaves cuDNN convolutions in TF32 by default, about 1e-3 relative error: the conv networks of
CelebA/SVHN would train in TF32 while the MLPs do not); cuDNN deterministic with benchmarking off;
CUBLAS_WORKSPACE_CONFIG=:4096:8 unless already set. `torch.use_deterministic_algorithms` stays off: it
makes nll_loss (SeGMA's and M1+M2's cross-entropy) raise on CUDA. SEGMA_CUDA_TF32=1 allows TF32 (faster,
not comparable bit for bit); the records say which ran.

Untested on a GPU: written and tested on a CPU (CUDA branches through monkeypatching);
benchmarks/gpu_check.py runs them on a GPU when one is lent."""
import os
import platform
from contextlib import contextmanager

import torch

from .errors import BadValueError

TF32_ENV = "SEGMA_CUDA_TF32"
CUBLAS_WORKSPACE_ENV = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_WORKSPACE = ":4096:8"  # deterministic cuBLAS workspaces (NVIDIA's cuBLAS reproducibility notes)


# ---------------------------------------------------------------- which device

def resolve_device(name="auto"):
    """The device `name` means in this process: auto is cuda where torch sees a GPU, else cpu. A CUDA device
    this process cannot see is a BadValueError that says what it sees (a job started without a GPU)."""
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index is not None and device.index >= count):
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            raise BadValueError(
                f"device {name!r}: this process sees {count} CUDA device(s)"
                + (f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else "")
                + ". A job needs a GPU asked for (--launcher slurm: --slurm-setting gpus_per_node=1), or use "
                  "--device auto, which trains where the job runs.")
    return device


def cuda_index(device):
    """The GPU number of a CUDA device; `cuda` without one means the process's current GPU."""
    device = torch.device(device)
    return device.index if device.index is not None else torch.cuda.current_device()


def same_device(a, b):
    """Whether two devices are the same one: `cuda` and `cuda:0` are where GPU 0 is the current GPU, which
    `==` denies."""
    a, b = torch.device(a), torch.device(b)
    if a.type != b.type:
        return False
    if a.type != "cuda" or a.index == b.index:
        return True
    return cuda_index(a) == cuda_index(b)


def gpu_ids():
    """This machine's GPUs as CUDA_VISIBLE_DEVICES names them for this process (the parent's own numbering
    when it is set, else 0..N-1): what a child process must be given to see one of them."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [part.strip() for part in visible.split(",") if part.strip()]
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return ids[:count]
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def worker_devices(name="auto"):
    """The devices that worker processes on this machine are spread over: every visible GPU (auto, cuda), one
    (cuda:N), or the CPU (cpu, or auto without a GPU). One GPU per worker at a time by default (`default_jobs`)."""
    if name is None or str(name) == "auto":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(count)] or ["cpu"]
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [str(device)]


def least_busy(devices, busy):
    """The device of `devices` with the fewest workers in `busy` (a list of the running workers' devices); the
    first such in order, so that N workers over G GPUs go round-robin."""
    return min(devices, key=lambda device: (busy.count(device), devices.index(device)))


# ---------------------------------------------------------------- how CUDA computes

def _set_fp32_precision(precision):
    """TF32 or IEEE float32 for matmul and cuDNN (conv, rnn): the fp32_precision API (torch >= 2.9), whose
    settings must not be mixed with the legacy allow_tf32 flags; older torch: those flags."""
    backends = torch.backends
    if hasattr(backends.cudnn, "conv") and hasattr(backends.cudnn.conv, "fp32_precision"):
        backends.cuda.matmul.fp32_precision = precision
        backends.cudnn.conv.fp32_precision = precision
        backends.cudnn.rnn.fp32_precision = precision
    else:  # pragma: no cover (torch < 2.9)
        backends.cuda.matmul.allow_tf32 = precision == "tf32"
        backends.cudnn.allow_tf32 = precision == "tf32"


def tf32_wanted():
    return os.environ.get(TF32_ENV, "0") == "1"


def apply_cuda_policy():
    """Set this process's CUDA precision policy (module docstring); returns `precision_state()`. Idempotent.
    CUBLAS_WORKSPACE_CONFIG takes effect only before the process's first cuBLAS call: entry points call this
    when they build a method on a GPU, before any training step."""
    _set_fp32_precision("tf32" if tf32_wanted() else "ieee")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    os.environ.setdefault(CUBLAS_WORKSPACE_ENV, CUBLAS_WORKSPACE)
    return precision_state()


def _tf32(setting, inherited):
    """Whether an fp32_precision setting means TF32; "none" inherits (`inherited()`, asked only then: the legacy
    getters raise once the new API has set different values)."""
    if setting in ("tf32", "ieee"):
        return setting == "tf32"
    return inherited()


def precision_state():
    """How float32 CUDA work computes in this process now (what a record stores)."""
    backends = torch.backends
    if hasattr(backends.cudnn, "conv") and hasattr(backends.cudnn.conv, "fp32_precision"):
        matmul = _tf32(backends.cuda.matmul.fp32_precision, lambda: torch.get_float32_matmul_precision() != "highest")
        conv = _tf32(backends.cudnn.conv.fp32_precision, lambda: _tf32(backends.cudnn.fp32_precision, lambda: False))
    else:  # pragma: no cover (torch < 2.9)
        matmul, conv = backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32
    return {"tf32_matmul": bool(matmul), "tf32_cudnn_conv": bool(conv),
            "cudnn_deterministic": bool(backends.cudnn.deterministic), "cudnn_benchmark": bool(backends.cudnn.benchmark),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cublas_workspace_config": os.environ.get(CUBLAS_WORKSPACE_ENV)}


def execution_environment(device):
    """What a run's record says about the device it computed on: the device, and on a GPU its model, memory,
    compute capability, the CUDA and cuDNN versions and the precision state; on the CPU, the processor."""
    device = torch.device(device)
    described = {"device": str(device), "device_type": device.type, "torch": torch.__version__}
    if device.type == "cuda":
        index = cuda_index(device)
        properties = torch.cuda.get_device_properties(index)
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        described.update({"device": f"cuda:{index}", "gpu_name": properties.name,
                          "gpu_memory_gib": round(properties.total_memory / 2**30, 1),
                          "gpu_capability": f"{properties.major}.{properties.minor}",
                          "cuda_version": torch.version.cuda, "cudnn_version": cudnn, **precision_state()})
    else:
        described["cpu"] = platform.processor() or platform.machine()
    return described


def device_label(execution):
    """'cuda:0 (NVIDIA H200)' or 'cpu': a short name for logs and warnings."""
    if not execution:
        return "unknown"
    name = execution.get("gpu_name")
    return f"{execution['device']} ({name})" if name else execution["device"]


# ---------------------------------------------------------------- random numbers

@contextmanager
def seeded_rng(seed, device="cpu"):
    """Inside the block the CPU generator and that of `device` (a GPU's own, if it is one) are seeded with
    `seed`; after it both are back as they were, and no other GPU's generator was touched (torch.manual_seed
    reseeds every GPU, which fork_rng would not restore)."""
    device = torch.device(device)
    gpus = [cuda_index(device)] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=gpus):
        torch.default_generator.manual_seed(int(seed))
        for index in gpus:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(int(seed))
        yield
