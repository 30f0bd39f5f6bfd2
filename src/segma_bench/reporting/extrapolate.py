"""Where a test-error curve is heading: two least-squares fits to the per-epoch test error of one record, so a
budget statement in docs/baselines.md can be repeated rather than taken on trust.

    segma-bench extrapolate RECORD.json [--first 20] [--last 100] [--at 150 200 400] [--target 0.041]

    exponential:  err(e) = c + b exp(-e / t)      levels off at c
    power law:    err(e) = c + b e^(-p)           levels off at c, more slowly

Both are fitted to the epochs first..last of the record (the early epochs follow neither shape), with c, b >= 0
and t, p > 0: curves that fall (or stay level) towards c, so that c is where they level off. They bracket
the plausible: the exponential assumes the curve is already flattening, the power law that it keeps creeping.
When they disagree on whether a target is reachable, that is the answer: the curve does not tell. Neither
knows about learning-rate decay, which the fitted window does not contain.

RECORD is a training record (`cli.py report`'s JSON: `history` with `epoch` and `test_error`) or a table run
record (results/runs/**: `training.test_error_by_epoch`)."""
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

from segma_bench.core.errors import BadValueError

from .error_curve import test_error_points


def exponential(epoch, c, b, t):
    return c + b * np.exp(-epoch / t)


def power_law(epoch, c, b, p):
    return c + b * np.power(epoch, -p)


CURVES = {"exponential": exponential, "power law": power_law}
SHAPE_NAMES = {"exponential": "t", "power law": "p"}  # the third parameter of each curve
# (c, b, t or p): non-increasing towards c, and c >= 0 (an error rate; a falling line fitted by a power law
# with p -> 0 otherwise puts c at minus thousands of percent: the maaloe-code record at 45 epochs did)
FIT_BOUNDS = ([0.0, 0.0, 1e-6], [np.inf, np.inf, np.inf])


@dataclass
class Fit:
    name: str
    params: dict        # c, b and the shape parameter (t or p)
    asymptote_std: float  # standard error of c from the fit's covariance

    def predict(self, epoch):
        """The fitted error at `epoch` (a number or an array of them)."""
        value = CURVES[self.name](np.asarray(epoch, dtype=float), *self.params.values())
        return float(value) if np.ndim(value) == 0 else value

    def epoch_reaching(self, target):
        """First epoch (real-valued, at least 1) at which the fitted curve is at or below `target`; inf when
        never (at or below the asymptote; the fit's bounds make the curve non-increasing)."""
        c, b, shape = self.params.values()
        if target <= c:
            return math.inf
        if b == 0:
            return 1.0
        if self.name == "exponential":
            return max(1.0, -shape * math.log((target - c) / b))
        return max(1.0, ((target - c) / b) ** (-1.0 / shape))


def error_curve(record):
    """(epochs, errors) of a record, as float arrays; raises on a record with no per-epoch test error."""
    epochs, errors = test_error_points(record)
    return np.asarray(epochs, dtype=float), np.asarray(errors, dtype=float)


def fit_curves(epochs, errors, first=20, last=None):
    """Both fits to the points with first <= epoch <= last."""
    last = last if last is not None else (int(epochs.max()) if len(epochs) else first)
    keep = (epochs >= first) & (epochs <= last)
    x, y = epochs[keep], errors[keep]
    if len(x) < 6:
        raise BadValueError(f"{len(x)} epochs with a test error between epochs {first} and {last}; a 3-parameter "
                         "fit needs at least 6 (widen --first/--last)")
    starts = {"exponential": (y.min(), y[0] - y.min() + 1e-3, (x[-1] - x[0]) / 3),
              "power law": (y.min() * 0.8, (y[0] - y.min() * 0.8) * x[0], 1.0)}
    fits = []
    for name, curve in CURVES.items():
        params, cov = curve_fit(curve, x, y, p0=starts[name], bounds=FIT_BOUNDS, max_nfev=20000)
        fits.append(Fit(name, dict(c=params[0], b=params[1], **{SHAPE_NAMES[name]: params[2]}),
                        float(np.sqrt(cov[0, 0]))))
    return fits


def describe(fits, at, target):
    lines = []
    for fit in fits:
        c, b, shape = fit.params.values()
        reach = fit.epoch_reaching(target)
        lines.append(f"{fit.name}: levels off at {100 * c:.2f} ± {100 * fit.asymptote_std:.2f}% "
                     f"(b = {b:.4g}, {SHAPE_NAMES[fit.name]} = {shape:.3g}); "
                     + ", ".join(f"{100 * fit.predict(e):.2f}% at epoch {e}" for e in at)
                     + f"; {100 * target:.2f}% "
                     + ("never" if math.isinf(reach) else f"at epoch {math.ceil(reach)}"))
    return "\n".join(lines)
