"""When to draw a progress bar: on a terminal only. Written to a file (a reproduce cell's log, a SLURM log,
nohup) every frame of a bar would be a line of its own, so there the callers write their own summary lines."""
import sys


def on_terminal(wanted=True):
    """True if a bar is wanted and standard error is a terminal."""
    stream = sys.stderr
    return bool(wanted) and stream is not None and hasattr(stream, "isatty") and stream.isatty()
