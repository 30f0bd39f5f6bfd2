"""Where a test-error curve is heading: two least-squares fits to the per-epoch test error of one record, so a
budget statement in docs/baselines.md can be repeated rather than taken on trust.

    python -m reporting.extrapolate RECORD.json [--first 20] [--last 100] [--at 150 200 400] [--target 0.041]

    exponential:  err(e) = c + b exp(-e / t)      levels off at c
    power law:    err(e) = c + b e^(-p)           levels off at c, more slowly

Both are fitted to the epochs first..last of the record (the early epochs follow neither shape). They bracket
the plausible: the exponential assumes the curve is already flattening, the power law that it keeps creeping.
When they disagree on whether a target is reachable, that is the answer: the curve does not tell. Neither
knows about learning-rate decay, which the fitted window does not contain.

RECORD is a training record (`cli.py report`'s JSON: `history` with `epoch` and `test_error`) or a table run
record (results/runs/**: `training.test_error_by_epoch`)."""
import argparse
import json
import math
import sys
from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit


def exponential(epoch, c, b, t):
    return c + b * np.exp(-epoch / t)


def power_law(epoch, c, b, p):
    return c + b * np.power(epoch, -p)


CURVES = {"exponential": exponential, "power law": power_law}


@dataclass
class Fit:
    name: str
    params: dict        # c, b and the shape parameter (t or p)
    asymptote_std: float  # standard error of c from the fit's covariance

    def predict(self, epoch):
        return float(CURVES[self.name](np.asarray(epoch, dtype=float), *self.params.values()))

    def epoch_reaching(self, target):
        """First epoch (real-valued) at which the fitted curve is at or below `target`; inf when never."""
        c, b, shape = self.params.values()
        if target <= c or b <= 0:
            return math.inf
        if self.name == "exponential":
            return -shape * math.log((target - c) / b)
        return ((target - c) / b) ** (-1.0 / shape)


def error_curve(record):
    """(epochs, errors) of a record, as floats; raises on a record with no per-epoch test error."""
    if "history" in record:
        points = [(h["epoch"], h["test_error"]) for h in record["history"] if h.get("test_error") is not None]
    elif "test_error_by_epoch" in record.get("training", {}):
        points = list(enumerate(record["training"]["test_error_by_epoch"], start=1))
    else:
        raise ValueError("the record has no per-epoch test error (expected `history` or "
                         "`training.test_error_by_epoch`)")
    epochs, errors = zip(*points) if points else ((), ())
    return np.asarray(epochs, dtype=float), np.asarray(errors, dtype=float)


def fit_curves(epochs, errors, first=20, last=None):
    """Both fits to the points with first <= epoch <= last."""
    keep = (epochs >= first) & (epochs <= (last if last is not None else math.inf))
    x, y = epochs[keep], errors[keep]
    if len(x) < 6:
        raise ValueError(f"{len(x)} epochs in the window [{first}, {last}]; a 3-parameter fit needs at least 6")
    starts = {"exponential": (y.min(), y[0] - y.min() + 1e-3, (x[-1] - x[0]) / 3),
              "power law": (y.min() * 0.8, (y[0] - y.min() * 0.8) * x[0], 1.0)}
    fits = []
    for name, curve in CURVES.items():
        params, cov = curve_fit(curve, x, y, p0=starts[name], maxfev=20000)
        shape = "t" if name == "exponential" else "p"
        fits.append(Fit(name, dict(c=params[0], b=params[1], **{shape: params[2]}), float(np.sqrt(cov[0, 0]))))
    return fits


def describe(fits, at, target):
    lines = []
    for fit in fits:
        c, b, shape = fit.params.values()
        shape_name = "t" if fit.name == "exponential" else "p"
        reach = fit.epoch_reaching(target)
        lines.append(f"{fit.name}: levels off at {100 * c:.2f} ± {100 * fit.asymptote_std:.2f}% "
                     f"(b = {b:.4g}, {shape_name} = {shape:.3g}); "
                     + ", ".join(f"{100 * fit.predict(e):.2f}% at epoch {e}" for e in at)
                     + f"; {100 * target:.2f}% "
                     + ("never" if math.isinf(reach) else f"at epoch {math.ceil(reach)}"))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record")
    parser.add_argument("--first", type=int, default=20, help="first epoch fitted")
    parser.add_argument("--last", type=int, default=None, help="last epoch fitted (default: the record's last)")
    parser.add_argument("--at", type=int, nargs="*", default=[150, 200, 400], help="epochs to predict")
    parser.add_argument("--target", type=float, default=0.041, help="test error to reach (fraction)")
    args = parser.parse_args(argv)
    with open(args.record) as f:
        epochs, errors = error_curve(json.load(f))
    print(f"{args.record}: epochs {args.first}..{args.last or int(epochs.max())} of {len(epochs)}")
    print(describe(fit_curves(epochs, errors, args.first, args.last), args.at, args.target))


if __name__ == "__main__":
    sys.exit(main())
