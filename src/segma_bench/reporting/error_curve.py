"""The one reader of a run's per-pass test error, for every command that reads curves (`curves`, `long-runs`,
`extrapolate`, `ablation`).

A record holds it in one of two shapes: a run's metrics.json or `report`'s JSON (`history`: one object per
pass with its `epoch` and `test_error`), or a table cell's record (`training.test_error_by_epoch`: a list,
pass 1 first). A pass without a test error (a method with no classifier) is None."""
import math

from segma_bench.core.errors import BadValueError


def per_pass_test_error(record):
    """[(pass, test error or None)] for every pass of `record`, in order; refuses (BadValueError) a record of
    neither shape, a pass that is not an integer of at least 1 or not after the one before, and an error that
    is not a fraction in [0, 1]."""
    if not isinstance(record, dict):
        raise BadValueError(f"a record is a JSON object, not a {type(record).__name__}")
    training = record.get("training")
    if "history" in record:
        history = record["history"]
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise BadValueError("`history` is not a list of per-pass objects")
        points = [(h.get("epoch"), h.get("test_error")) for h in history]
    elif isinstance(training, dict) and "test_error_by_epoch" in training:
        if not isinstance(training["test_error_by_epoch"], list):
            raise BadValueError("`training.test_error_by_epoch` is not a list")
        points = list(enumerate(training["test_error_by_epoch"], start=1))
    else:
        raise BadValueError("neither a run's metrics (`history`) nor a table cell record "
                            "(`training.test_error_by_epoch`): no per-epoch test error")
    previous = 0
    for epoch, error in points:
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
            raise BadValueError(f"pass {epoch!r}: a history entry needs an integer `epoch` of at least 1")
        if epoch <= previous:
            raise BadValueError(f"pass {epoch} follows pass {previous}: the passes of a record must increase")
        previous = epoch
        if error is not None and not (isinstance(error, (int, float)) and not isinstance(error, bool)
                                      and math.isfinite(error) and 0 <= error <= 1):
            raise BadValueError(f"test error {error!r} at pass {epoch} is not a finite fraction in [0, 1]")
    return points


def test_error_points(record):
    """(passes, errors) of the passes that have a test error; refuses a record where none has one."""
    points = [(epoch, error) for epoch, error in per_pass_test_error(record) if error is not None]
    if not points:
        raise BadValueError("no epoch of the record has a test error (a method without a classifier?)")
    passes, errors = zip(*points)
    return list(passes), [float(e) for e in errors]
