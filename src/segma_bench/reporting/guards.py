"""No command replaces a result with less than it had, unless told to with --force.

- A table is not replaced by one with fewer filled cells, or fewer seeds behind them (a cell shows its
  seed count as "(n=K)").
- A per-cell record is not replaced by one from a run of another length (fewer epochs loses training; more
  changes what the cell's budget stands for, e.g. a run trained on past the budget)."""
import re
from pathlib import Path

from segma_bench.core.errors import UserError

FILLED_CELL = re.compile(r"\(n=(\d+)\)")


class WouldLoseResults(UserError, ValueError):
    """Writing would replace a result with less; the message says what and how to force it."""


def table_coverage(text):
    """(filled cells, seeds summed over them) of a rendered table."""
    counts = [int(n) for n in FILLED_CELL.findall(text)]
    return len(counts), sum(counts)


def check_table_replacement(path, new_text, force=False):
    path = Path(path)
    if force or not path.exists():
        return
    old_cells, old_seeds = table_coverage(path.read_text())
    new_cells, new_seeds = table_coverage(new_text)
    if new_cells < old_cells or new_seeds < old_seeds:
        raise WouldLoseResults(
            f"{path} has {old_cells} filled cells from {old_seeds} seed results; the new table would have "
            f"{new_cells} from {new_seeds}. Nothing written; pass --force to replace it anyway.")


def check_record_replacement(path, old_record, new_epochs, force=False):
    old_epochs = (old_record or {}).get("training", {}).get("epochs")
    if force or old_epochs is None or new_epochs == old_epochs:
        return
    fix = (f"put that run folder back ({old_record.get('run_dir')}) or pass --force" if new_epochs < old_epochs
           else "pass --force")
    raise WouldLoseResults(
        f"{path} holds a run of {old_epochs} epochs; this one would have {new_epochs}. Nothing written; "
        f"{fix} to replace the record.")
