"""Experiment trackers: where a run's numbers go besides metrics.json and train.log. Off by default.

    tracker = make_tracker("tensorboard", run_dir)      # writes RUN_DIR/tensorboard/
    train(spec, run_dir, on_epoch=tracker.log_epoch)    # every pass's record (loss terms, test error, seconds)
    tracker.log_final(metrics, step=epochs)             # a run's final FID/KID/precision/recall (`evaluate`)
    tracker.close()

A tracker is anything with these three methods (the Tracker base class does nothing); TRACKERS maps a name to
a class built as cls(run_dir). MLflow or Weights & Biases would be one more class and one more entry here (not
implemented: the suite needs neither). Watch or compare runs with `tensorboard --logdir runs`.

The training loop imports nothing of this: `train` and `evaluate` on the command line build a tracker and pass
its log_epoch as the loop's on_epoch hook."""
from pathlib import Path

from segma_bench.core.errors import UnknownNameError, UserError

EPOCH_PREFIX = "epoch/"   # every pass: epoch/loss, epoch/test_error, epoch/seconds, the method's loss terms
FINAL_PREFIX = "final/"   # from `evaluate`: final/sample_fid, final/sample_kid, ...


class TrackerUnavailableError(UserError, ImportError):
    """A tracker's package is not installed; the message says what to install."""


class Tracker:
    """The interface: log each pass's record, log a run's final metrics, close. This one logs nothing."""

    @staticmethod
    def require():
        """Raise TrackerUnavailableError where the tracker's package is missing (checked before any work)."""

    def log_epoch(self, record):
        pass

    def log_final(self, metrics, step):
        pass

    def close(self):
        pass


def scalars(record):
    """(name, float) of a record's numbers: no None, no booleans (e.g. denormals_flushed), no text."""
    for name, value in record.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            yield name, float(value)


class TensorBoardTracker(Tracker):
    """torch.utils.tensorboard's SummaryWriter under RUN_DIR/tensorboard; steps are passes (epochs). The writer
    is opened at the first value, so a run that fails before its first pass leaves no folder behind."""
    SUBDIR = "tensorboard"

    @staticmethod
    def require():
        summary_writer_class()

    def __init__(self, run_dir):
        self.log_dir = Path(run_dir) / self.SUBDIR
        self._summary_writer = summary_writer_class()  # fails here, before any training, where not installed
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:
            self._writer = self._summary_writer(log_dir=str(self.log_dir))
        return self._writer

    def log_epoch(self, record):
        step = int(record["epoch"])
        for name, value in scalars(record):
            if name != "epoch":
                self.writer.add_scalar(EPOCH_PREFIX + name, value, step)
        self.writer.flush()  # visible to a running `tensorboard` after every pass

    def log_final(self, metrics, step):
        for name, value in scalars(metrics):
            self.writer.add_scalar(FINAL_PREFIX + name, value, int(step))
        self.writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()


def summary_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise TrackerUnavailableError("--tracker tensorboard needs the tensorboard package: pip install "
                                      "'segma-bench[tensorboard]' (or tensorboard==2.21.0)") from error
    return SummaryWriter


TRACKERS = {"tensorboard": TensorBoardTracker}


def tracker_class(name):
    """The class registered as `name`, its package checked; unknown names list the known ones."""
    if name not in TRACKERS:
        raise UnknownNameError(f"unknown tracker {name!r}; trackers: {', '.join(TRACKERS)}")
    TRACKERS[name].require()
    return TRACKERS[name]


def make_tracker(name, run_dir):
    """The tracker called `name` writing under run_dir; None or "" gives the do-nothing Tracker."""
    return tracker_class(name)(run_dir) if name else Tracker()
