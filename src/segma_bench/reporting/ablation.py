"""An ablation table from committed training records: the test error of each run at chosen epochs.

    segma-bench ablation --out results/segma_mnist_ablation.md --epochs 10,20,40 \
        --title "..." "paper's text, first 100=results/segma_ablation/paper-text.json" ...

Each row is LABEL=RECORD, a record being the metrics JSON that `cli.py report` writes beside its markdown
(per-epoch history). The numbers come from the records only; the command is written under the table so a
fresh clone renders the same bytes."""
from tabulate import tabulate

from segma_bench.core.errors import BadValueError
from segma_bench.core.json_files import read_json_file

from .extrapolate import error_curve


def read_history(path):
    """The per-epoch history of a training record, checked (finite numbers, epochs, test errors in [0, 1]); a
    record that is not one is refused with one line naming the file."""
    record = read_json_file(path)
    try:
        error_curve(record)  # the same checks as `extrapolate`
    except BadValueError as error:
        raise BadValueError(f"{path}: {error}") from error
    if "history" not in record:
        raise BadValueError(f"{path}: not a training record of `report` (no `history`)")
    return record["history"]


def error_at(history, epoch):
    """Test error (%) after `epoch`, or None when the run did not get that far."""
    for entry in history:
        if entry["epoch"] == epoch and entry.get("test_error") is not None:
            return 100.0 * entry["test_error"]
    return None


def render_ablation(rows, epochs, title, command):
    """rows: [(label, record_path)]; returns the markdown table."""
    table = []
    for label, path in rows:
        history = read_history(path)
        cells = [error_at(history, e) for e in epochs]
        last = history[-1]
        table.append([label, *("—" if c is None else f"{c:.2f}" for c in cells),
                      "—" if last.get("test_error") is None else f"{100 * last['test_error']:.2f} (epoch {last['epoch']})",
                      f"`{path}`"])
    headers = ["run", *(f"epoch {e}" for e in epochs), "last", "record"]
    return "\n".join([f"# {title}", "", "Test error, % (full MNIST test set, after the epoch).", "",
                      tabulate(table, headers=headers, tablefmt="github", disable_numparse=True), "",
                      f"Rendered by `{command}`."]) + "\n"
