"""A run folder's training record as markdown (and its metrics.json copied beside it), for results/."""
from pathlib import Path

from tabulate import tabulate

from segma_bench.core.errors import BadValueError
from segma_bench.core.storage import atomic_write_json, atomic_write_text
from segma_bench.training.run_folder import read_run_config, read_run_metrics


def train_command(run, epochs, run_dir):
    """The `train` call that makes (and, run again, resumes) this run: its epochs, recipe, labeled subset,
    overrides and folder."""
    import shlex

    import segma_bench.methods as methods

    def as_text(value):  # the --set syntax: tuples as 64,64 (their repr would split into two shell words)
        return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
    overrides = "".join(f" --set {shlex.quote(f'{key}={as_text(value)}')}" for key, value in run["overrides"].items())
    recipe = run.get("recipe", "")
    # name the labeled subset only where it is not what the recipe (or the default) implies
    implied = methods.get_method(run["method"]).recipe(recipe, run["dataset"]).labeled_subset if recipe else "balanced"
    labeled = run.get("labeled_subset", "balanced")
    return (f"python cli.py train --method {run['method']} --dataset {run['dataset']} --seed {run['seed']} "
            f"--epochs {epochs}" + (f" --recipe {recipe}" if recipe else "")
            + (f" --labeled {labeled}" if labeled != implied else "") + f"{overrides} --run-dir {run_dir}")


def metrics_up_to(metrics, last_pass):
    """The run's metrics as they stood after pass `last_pass` (its history up to there, the training seconds of
    those passes): a record of a run that has since trained on stays repeatable. None: all of them."""
    done = metrics["epochs_completed"]
    if last_pass is not None and not 1 <= last_pass <= done:
        raise BadValueError(f"the run has {done} passes; --up-to-pass must be between 1 and {done}")
    if last_pass is None or last_pass == done:  # nothing to cut: the record of the whole run
        return metrics
    history = [h for h in metrics["history"] if h["epoch"] <= last_pass]
    # `execution` describes where the run's last pass trained, one after the cut: left out
    kept = {key: value for key, value in metrics.items() if key != "execution"}
    return {**kept, "history": history, "epochs_completed": last_pass, "test_error": history[-1].get("test_error"),
            "train_seconds": round(sum(h["seconds"] for h in history), 1), "up_to_pass": last_pass}


def render_run_report(run_dir, command, up_to_pass=None):
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    metrics = metrics_up_to(read_run_metrics(run_dir), up_to_pass)
    run = config["run"]
    history = metrics["history"]
    rows = [[h["epoch"], "—" if h.get("test_error") is None else f"{100 * h['test_error']:.2f}",
             f"{h['loss']:.3f}", f"{h['seconds']:.0f}"] for h in history]
    best = min((h for h in history if h.get("test_error") is not None), key=lambda h: h["test_error"], default=None)
    lines = [f"# {run['method']} on {run['dataset']}, seed {run['seed']}: training record", "",
             f"Run folder `{run_dir}`; {metrics['epochs_completed']} of {metrics['epochs_planned']} planned epochs; "
             f"{metrics['train_seconds'] / 60:.1f} min of training on the machine that ran it"
             + (f" (the record stops at pass {up_to_pass}; the folder trained on)." if "up_to_pass" in metrics else "."),
             f"Recipe: {run.get('recipe') or 'none'}; labeled subset: {run.get('labeled_subset', 'balanced')}; "
             f"settings overridden: {run['overrides'] or 'none'} (everything else: the method's defaults, "
             "docs/protocol.md); versions: " + ", ".join(f"{k} {v}" for k, v in config["versions"].items()) + ".", ""]
    if best:
        lines += [f"Last test error {100 * history[-1]['test_error']:.2f}% (epoch {history[-1]['epoch']}); "
                  f"lowest {100 * best['test_error']:.2f}% (epoch {best['epoch']}). Test error: argmax of the "
                  "method's class posterior (Eq. 7 for SeGMA) over the whole test set after each epoch.", ""]
    lines += [tabulate(rows, headers=["epoch", "test error %", "loss", "seconds"], tablefmt="github",
                       disable_numparse=True), "", f"Produced by `{command}` from the run made by "
              f"`{train_command(run, metrics['epochs_planned'], run_dir)}`"
              + " (offline add --data-root DIR; the same command again resumes the run)."]
    return "\n".join(lines) + "\n", metrics


def record_of(run_dir, metrics, command):
    """The JSON twin: the run's metrics (per-epoch history) with the protocol that made them: the run's
    config.json (identity: method, dataset, seed, recipe, labeled subset, overrides; the method's full
    settings; data spec and source; versions), its folder and the commands."""
    config = read_run_config(run_dir)
    return {**metrics, "config": config, "run_dir": str(run_dir), "command": command,
            "train_command": train_command(config["run"], metrics["epochs_planned"], run_dir)}


def write_run_report(run_dir, out_markdown, command, up_to_pass=None):
    text, metrics = render_run_report(run_dir, command, up_to_pass)
    out_markdown = Path(out_markdown)
    atomic_write_text(out_markdown, text)
    atomic_write_json(out_markdown.with_suffix(".json"), record_of(Path(run_dir), metrics, command))
    return out_markdown, text


def identity_from_train_command(command):
    """The run identity (method, dataset, seed, recipe, labeled subset, typed overrides) a `train` command
    line names: how records made before they carried their config get it back (migrate_record)."""
    import shlex

    import segma_bench.methods as methods
    from segma_bench.core.settings import typed_settings
    words = shlex.split(command)
    options, overrides = {}, {}
    for flag, value in zip(words, words[1:]):
        if flag == "--set":
            key, _, raw = value.partition("=")
            overrides[key] = raw
        elif flag.startswith("--"):
            options[flag[2:]] = value
    method, dataset, recipe = options["method"], options["dataset"], options.get("recipe", "")
    labeled = options.get("labeled") or (methods.get_method(method).recipe(recipe, dataset).labeled_subset
                                         if recipe else "balanced")
    return {"method": method, "dataset": dataset, "seed": int(options.get("seed", 0)), "recipe": recipe,
            "labeled_subset": labeled, "overrides": typed_settings(methods.get_method(method), overrides)}


def migrate_record(record, markdown_text):
    """A training record made before records carried their config: add `config.run` from the train command
    its markdown twin names ("from the run made by `...`"), marked as reconstructed. Unchanged if it has one."""
    import re
    if "config" in record:
        return record
    found = re.search(r"from the run made by `(python cli\.py train [^`]*)`", markdown_text)
    if not found:
        raise BadValueError("the markdown twin names no train command to reconstruct the config from")
    return {**record, "config": {"run": identity_from_train_command(found.group(1)),
                                 "reconstructed_from": "the train command in the markdown twin (the run folder "
                                                       "was gone when records began to carry their config)"},
            "train_command": found.group(1)}
