"""One readable training loop for every method: batches -> training_step -> backward -> clip -> step.

A run folder holds config.json, labeled_indices.json, checkpoint.pt (end of each epoch), metrics.json
and train.log. Running the same command again resumes from the last checkpoint."""
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

import segma_bench.methods as methods
from segma_bench.core.devices import apply_cuda_policy, execution_environment
from segma_bench.core.errors import BadValueError, UserError
from segma_bench.core.progress import on_terminal
from segma_bench.core.provenance import software_versions
from segma_bench.core.storage import atomic_write_json, file_lock
from segma_bench.datasets import load_dataset, to_float
from segma_bench.datasets.splits import choose_labeled, class_proportions, save_indices
from segma_bench.methods.base import DataSpec, LabeledSet

from .batches import epoch_batches, steps_per_epoch, training_split
from .checkpoint import device_change_note, load_checkpoint, restore_model, restore_rng, save_checkpoint
from .denormals import denormal_mode, denormals_flushed, flush_wanted
from .guard import NonFiniteGuard, NonFiniteLossError  # noqa: F401  (re-exported by the package)
from .run_folder import CHECKPOINT, CONFIG, RunFolder, RunFolderError, read_run_config


class RunMismatchError(UserError, ValueError):
    pass


@dataclass
class RunSpec:
    """What defines a run. Fields after `epochs` do not change the result and may differ on resume."""
    method: str
    dataset: str
    seed: int = 0
    overrides: dict = field(default_factory=dict)     # method settings, e.g. {"learning_rate": 1e-3}
    recipe: str = ""                                   # a method's named preset, applied before `overrides`
    labeled_subset: str = ""                           # balanced | first; "": the recipe's, else balanced
    num_labeled: int = 0                               # 0: the dataset protocol's
    unlabeled_batch_size: int = 0                      # 0: the dataset protocol's
    labeled_batch_size: int = 0                        # 0: the dataset protocol's
    epochs: int = 0                                    # 0: the dataset protocol's (the authors' length)
    data_root: str = None
    cache_dir: str = None
    device: str = "auto"
    progress: bool = True

    IDENTITY = ("method", "dataset", "seed", "overrides", "recipe", "labeled_subset", "num_labeled",
                "unlabeled_batch_size", "labeled_batch_size")
    # What a run folder written before a field existed meant by it (such folders still resume).
    IDENTITY_DEFAULTS = {"recipe": "", "labeled_subset": "balanced"}

    def identity(self):
        return {k: getattr(self, k) for k in self.IDENTITY}


def pick_device(name="auto"):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def recipe_batch_sizes(recipe, num_train, num_labeled):
    """(unlabeled, labeled) batch sizes of a recipe that splits a pass into `batches_per_pass` minibatches,
    or (0, 0) when the recipe keeps the protocol's sizes."""
    if recipe is None or not recipe.batches_per_pass:
        return 0, 0
    if min(num_train, num_labeled) < recipe.batches_per_pass:
        raise BadValueError(f"the recipe splits each pass into {recipe.batches_per_pass} minibatches, but the data has "
                         f"{num_train} training and {num_labeled} labeled images; set --unlabeled-batch-size and "
                         "--labeled-batch-size instead")
    return num_train // recipe.batches_per_pass, num_labeled // recipe.batches_per_pass


def resolve_protocol(spec, data, method_class):
    """Fill the zeros of `spec` from the recipe, then the dataset protocol (returns a new, complete RunSpec)."""
    p = data.protocol
    if spec.epochs < 0:
        raise BadValueError(f"epochs must be positive (0: the protocol's length), got {spec.epochs}")
    recipe = method_class.recipe(spec.recipe, data.name) if spec.recipe else None
    num_labeled = spec.num_labeled or p.num_labeled
    unlabeled_size, labeled_size = recipe_batch_sizes(recipe, len(data.train_images), num_labeled)
    return RunSpec(**{**asdict(spec),
                      "labeled_subset": spec.labeled_subset or (recipe.labeled_subset if recipe else "balanced"),
                      "num_labeled": num_labeled,
                      "unlabeled_batch_size": spec.unlabeled_batch_size or unlabeled_size or p.unlabeled_batch_size,
                      "labeled_batch_size": spec.labeled_batch_size or labeled_size or p.labeled_batch_size,
                      "epochs": (spec.epochs or (recipe.epochs if recipe else 0) or method_class.paper_epochs(data.name)
                                 or p.paper_epochs)})


def prepare(spec, run_dir, data=None):
    """Load data, fix the labeled subset, build the method. Used by training and by evaluation."""
    method_class = methods.get_method(spec.method)  # unknown names fail before any data is read
    data = data or load_dataset(spec.dataset, spec.data_root, spec.cache_dir)
    spec = resolve_protocol(spec, data, method_class)
    labeled_idx = choose_labeled(data.train_labels, spec.num_labeled, spec.seed, spec.labeled_subset)
    data_spec = DataSpec(dataset=data.name, image_shape=data.image_shape, num_classes=data.num_classes,
                         class_priors=class_proportions(data.train_labels[labeled_idx], data.num_classes),
                         num_train=len(data.train_images), num_labeled=len(labeled_idx))
    torch.manual_seed(spec.seed)  # network initialisation
    device = pick_device(spec.device)
    if device.type == "cuda":
        apply_cuda_policy()  # core/devices.py: IEEE float32 (no TF32), deterministic cuDNN; recorded per run
    method = method_class.build(data_spec, spec.overrides, spec.recipe).to(device)
    return spec, data, labeled_idx, method


def check_same_run(run_dir, spec):
    saved = {**RunSpec.IDENTITY_DEFAULTS, **read_run_config(run_dir)["run"]}
    now = json.loads(json.dumps(spec.identity(), default=str))  # as config.json stores it: tuples become lists
    mismatched = {k: (saved.get(k), v) for k, v in now.items() if saved.get(k) != v}
    if mismatched:
        raise RunMismatchError(
            f"{run_dir} holds a different run ({', '.join(f'{k}: saved {a!r}, now {b!r}' for k, (a, b) in mismatched.items())}). "
            "Use another --run-dir, or remove that folder to start over.")


def log_line(run_dir, text):
    with open(RunFolder(run_dir).log, "a") as f:
        f.write(text + "\n")


def evaluate_epoch(method, data, epoch_metrics):
    """The caller's per-epoch metrics (e.g. the test error, which evaluation/ supplies), drawing from a forked
    RNG so that evaluating never changes training. None: the record's test_error stays None."""
    if epoch_metrics is None:
        return {"test_error": None}
    with torch.random.fork_rng(devices=[method.device.index] if method.device.type == "cuda" else []):
        return {"test_error": None, **epoch_metrics(method, data)}


def labeled_set(data, labeled_idx, device):
    """The labeled subset as the hooks receive it: float images in [0, 1] and labels, on `device`."""
    return LabeledSet(images=to_float(data.train_images[labeled_idx]).to(device),
                      labels=data.train_labels[labeled_idx].long().to(device))


def run_end_of_epoch_hooks(method, epoch, spec, labeled):
    """on_epoch_end after every epoch, then on_train_end after the last planned one (both in eval mode)."""
    method.eval()
    method.on_epoch_end(epoch, labeled)
    if epoch + 1 == spec.epochs:
        method.on_train_end(labeled)


def train(spec: RunSpec, run_dir, data=None, on_step=None, epoch_metrics=None, on_epoch=None):
    """Train (or resume) the run in `run_dir`; returns the metrics dict written to metrics.json.

    Hooks the caller supplies (the loop imports nothing above it):
    - `epoch_metrics(method, data) -> dict` after each epoch's hooks, e.g. {"test_error": ...}
      (segma_bench.evaluation.classification.test_error_metrics; evaluation.train passes it);
    - `on_epoch(record)` with each epoch's record once it is saved (trackers log it);
    - `on_step(epoch, step)` after each optimiser step (tests use it to simulate a crash).

    One process at a time trains a run folder: a second `train` of the same folder waits for the first
    (saying so on stderr), then resumes from where it stopped, or finds the run finished."""
    run_dir = Path(run_dir)
    spec, data, labeled_idx, method = prepare(spec, run_dir, data)
    with file_lock(run_lock_path(run_dir), waiting=f"{run_dir}: another process is training this run folder; "
                   "waiting for it to finish (then this one resumes from its last epoch)"):
        return _train_locked(spec, run_dir, data, labeled_idx, method, on_step, epoch_metrics, on_epoch)


def run_lock_path(run_dir):
    """The lock a training of `run_dir` holds: beside the folder (`.locks/` in its parent), not inside it, so that
    a copy of a run folder holds only the run."""
    run_dir = Path(run_dir).resolve()
    return run_dir.parent / ".locks" / f"{run_dir.name}.lock"


def _train_locked(spec, run_dir, data, labeled_idx, method, on_step, epoch_metrics, on_epoch):
    """train() once it holds the run folder's lock: the checkpoint and config.json it reads are the latest."""
    optimizer = method.configure_optimizer()
    folder = RunFolder(run_dir)
    checkpoint_path = folder.checkpoint
    history, start_epoch = [], 0
    execution = last_execution = execution_environment(method.device)  # device, GPU, CUDA/cuDNN, TF32
    if checkpoint_path.exists() and not folder.config.exists():
        raise RunFolderError(
            f"{run_dir} holds {CHECKPOINT} but no {CONFIG}, so the run the weights belong to (method, seed, "
            f"settings) is unknown and it is not resumed. Restore {CONFIG} from a copy of the folder, or move "
            f"{CHECKPOINT} away (or remove the folder) to train this run from scratch.")
    if folder.config.exists():
        check_same_run(run_dir, spec)
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        restore_model(method, state, checkpoint_path)
        optimizer.load_state_dict(state["optimizer"])
        rng_note = restore_rng(state, method.device)
        history, start_epoch = state["history"], state["epoch"]
        log_line(run_dir, f"resumed from the end of epoch {start_epoch}")
        for note in (device_change_note(state, execution), rng_note):
            if note:
                log_line(run_dir, note)
        if start_epoch >= spec.epochs:  # nothing to train here: metrics.json keeps the device that trained it
            last_execution = state.get("execution")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        plugin = methods.plugin_source(type(method))
        atomic_write_json(folder.config, {
            "run": spec.identity(), "method_config": asdict(method.config), "data_spec": asdict(method.spec),
            "data_source": data.source, "versions": software_versions(), "execution": execution,
            **({"plugin": plugin} if plugin else {})})
        save_indices(folder.labeled_indices, labeled_idx,
                     {"dataset": spec.dataset, "seed": spec.seed, "num_labeled": len(labeled_idx),
                      "labeled_subset": spec.labeled_subset})

    with denormal_mode(flush_wanted(method.device)):  # training/denormals.py: slow CPU path otherwise
        history = train_epochs(spec, run_dir, data, labeled_idx, method, optimizer, history, start_epoch, on_step,
                               epoch_metrics, on_epoch, execution)
    return write_metrics(run_dir, spec, history, last_execution)


def update(method, optimizer, loss):
    """One optimiser update from `loss`: backward, clipping as the method's config says (global norm, then
    each element by value), step. The benchmarks time this same function."""
    config = method.config
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(method.parameters(), config.grad_clip_norm)
    if config.grad_clip_value > 0:
        torch.nn.utils.clip_grad_value_(method.parameters(), config.grad_clip_value)
    optimizer.step()


def train_epochs(spec, run_dir, data, labeled_idx, method, optimizer, history, start_epoch, on_step, epoch_metrics=None,
                 on_epoch=None, execution=None):
    """The epochs from `start_epoch` to `spec.epochs`, each ending with its checkpoint; returns the history."""
    checkpoint_path = RunFolder(run_dir).checkpoint
    split = training_split(data, method.device)  # on a GPU: copied there once for the whole run
    labeled = labeled_set(data, labeled_idx, method.device)
    for epoch in range(start_epoch, spec.epochs):
        method.train()
        method.on_epoch_start(epoch, optimizer)
        started = time.time()
        sums = {}
        batches = epoch_batches(data, labeled_idx, spec.seed, epoch, spec.unlabeled_batch_size,
                                spec.labeled_batch_size, method.device, split)
        bar = tqdm(batches, total=steps_per_epoch(data, spec.unlabeled_batch_size), disable=not on_terminal(spec.progress),
                   desc=f"{spec.method}/{spec.dataset} epoch {epoch + 1}/{spec.epochs}", leave=False)
        guard = NonFiniteGuard(epoch, method.device)
        for step, batch in enumerate(bar):
            terms = method.training_step(batch)
            loss = terms["loss"]
            guard.observe(step, terms)
            update(method, optimizer, loss)
            for k, v in terms.items():  # summed on the device: no per-step sync per term
                sums[k] = sums.get(k, 0.0) + v.detach()
            if step % guard.postfix_every == 0:
                bar.set_postfix({k: f"{v.item():.3g}" for k, v in terms.items()})
            if on_step is not None:
                on_step(epoch, step)
        guard.check()  # before anything of this epoch is saved
        run_end_of_epoch_hooks(method, epoch, spec, labeled)
        # threads: an epoch's timing and its bitwise result depend on them (reduction order)
        # device: a run resumed on another one is not bit-identical; denormal flushing is a CPU mode (None on a GPU)
        record = {"epoch": epoch + 1, "seconds": round(time.time() - started, 2), "threads": torch.get_num_threads(),
                  "device": str(method.device),
                  "denormals_flushed": denormals_flushed() if method.device.type == "cpu" else None,
                  **{k: v.item() / (step + 1) for k, v in sums.items()}, **evaluate_epoch(method, data, epoch_metrics)}
        history.append(record)
        save_checkpoint(checkpoint_path, method, optimizer, epoch + 1, history, execution)
        write_metrics(run_dir, spec, history, execution)
        log_line(run_dir, json.dumps(record))
        if on_epoch is not None:
            on_epoch(record)
        if spec.progress:
            err = record["test_error"]
            tqdm.write(f"epoch {epoch + 1}/{spec.epochs}: loss {record['loss']:.4g}"
                       + (f", test error {100 * err:.2f}%" if err is not None else "")
                       + f" ({record['seconds']:.0f} s)")
    return history


def write_metrics(run_dir, spec, history, execution=None):
    """metrics.json; `execution`: the device of the session that trained the last epoch (core/devices.py)."""
    last = history[-1] if history else {}
    metrics = {"method": spec.method, "dataset": spec.dataset, "seed": spec.seed,
               "epochs_completed": len(history), "epochs_planned": spec.epochs,
               "test_error": last.get("test_error"),
               "train_seconds": round(sum(h["seconds"] for h in history), 1),
               **({"execution": execution} if execution else {}), "history": history}
    atomic_write_json(RunFolder(run_dir).metrics, metrics)
    return metrics


def load_trained(run_dir, data=None, device="auto", data_root=None, cache_dir=None):
    """(spec, data, method) of a finished or partial run, weights from its last checkpoint."""
    run_dir = Path(run_dir)
    saved = read_run_config(run_dir)["run"]
    spec = RunSpec(**saved, device=device, data_root=data_root, cache_dir=cache_dir)
    spec, data, _, method = prepare(spec, run_dir, data)
    checkpoint_path = RunFolder(run_dir).checkpoint
    restore_model(method, load_checkpoint(checkpoint_path), checkpoint_path)
    method.eval()
    return spec, data, method
