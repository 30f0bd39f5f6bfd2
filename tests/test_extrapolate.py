"""reporting/extrapolate.py: the fits behind docs/baselines.md's budget statements recover known curves."""
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from segma_bench.cli.main import cli
from segma_bench.reporting.extrapolate import error_curve, exponential, fit_curves, power_law


def noisy(curve, params, seed=0, noise=1e-4):
    epochs = np.arange(1, 121, dtype=float)
    return epochs, curve(epochs, *params) + np.random.default_rng(seed).normal(0, noise, len(epochs))


@pytest.mark.parametrize("curve,params,name", [(exponential, (0.05, 0.10, 25.0), "exponential"),
                                               (power_law, (0.03, 1.2, 0.9), "power law")])
def test_fit_recovers_the_curve_that_made_the_data(curve, params, name):
    epochs, errors = noisy(curve, params)
    fit = next(f for f in fit_curves(epochs, errors, first=20) if f.name == name)
    assert list(fit.params.values()) == pytest.approx(params, rel=0.05)
    assert abs(fit.params["c"] - params[0]) < 4 * fit.asymptote_std + 1e-4
    # beyond the fitted window too: the prediction follows the true curve
    assert fit.predict(400) == pytest.approx(curve(400.0, *params), abs=5e-4)


def test_epoch_reaching_inverts_predict():
    epochs, errors = noisy(power_law, (0.03, 1.2, 0.9))
    for fit in fit_curves(epochs, errors):
        target = fit.predict(300)  # on the curve, so reachable, and first reached at epoch 300
        assert fit.epoch_reaching(target) == pytest.approx(300, rel=1e-6)
        assert fit.predict(fit.epoch_reaching(target + 1e-3)) == pytest.approx(target + 1e-3, abs=1e-9)
        assert math.isinf(fit.epoch_reaching(fit.params["c"] - 1e-3))  # below the asymptote: never


def test_both_record_formats_give_the_same_curve(tmp_path, capsys):
    errors = [float(e) for e in exponential(np.arange(1, 41.0), 0.05, 0.1, 10.0)]
    training = {"history": [{"epoch": i + 1, "test_error": e} for i, e in enumerate(errors)]}
    table_run = {"training": {"test_error_by_epoch": errors}}
    for a, b in zip(error_curve(training), error_curve(table_run)):
        np.testing.assert_array_equal(a, b)
    path = tmp_path / "record.json"
    path.write_text(json.dumps(table_run))
    result = CliRunner().invoke(cli, ["extrapolate", str(path), "--first", "5", "--at", "100", "--target", "0.06"])
    assert result.exit_code == 0 and "exponential: levels off at 5.00" in result.output


def test_the_target_defaults_to_the_papers_value_for_the_records_method(tmp_path):
    errors = [float(e) for e in exponential(np.arange(1, 41.0), 0.05, 0.1, 10.0)]
    path = tmp_path / "record.json"
    path.write_text(json.dumps({"history": [{"epoch": i + 1, "test_error": e} for i, e in enumerate(errors)]}))
    result = CliRunner().invoke(cli, ["extrapolate", str(path), "--first", "5"])
    assert result.exit_code == 1 and "give it with --target" in result.output  # no method named: no default
    path.write_text(json.dumps({"method": "adgm", "dataset": "mnist", "history": json.loads(path.read_text())["history"]}))
    default = CliRunner().invoke(cli, ["extrapolate", str(path), "--first", "5"])
    given = CliRunner().invoke(cli, ["extrapolate", str(path), "--first", "5", "--target", "0.041"])
    assert default.exit_code == 0 and default.output == given.output  # ADGM's 4.10% from paper_reference.py


def test_fits_are_bounded_to_curves_that_level_off():
    epochs = np.arange(1, 61, dtype=float)
    rising = 0.05 + 0.0005 * epochs  # a curve going the wrong way: no asymptote below it
    for fit in fit_curves(epochs, rising):
        assert fit.params["b"] >= 0 and list(fit.params.values())[2] > 0
        assert fit.epoch_reaching(0.02) == math.inf
    straight = 0.10 - 0.001 * epochs  # still falling steadily: neither shape levels off inside the window
    for fit in fit_curves(epochs, straight):
        assert fit.params["c"] >= 0  # an error rate: not an asymptote below zero
        assert np.all(fit.predict([100, 200, 400]) >= 0)
    falling = next(f for f in fit_curves(*noisy(exponential, (0.05, 0.10, 25.0))) if f.name == "exponential")
    assert falling.epoch_reaching(0.5) == 1.0  # already below at the first epoch: not a negative epoch
    assert falling.predict([100, 200]).shape == (2,)


def test_epochs_without_a_test_error_are_left_out():
    errors = [None, None] + [float(e) for e in exponential(np.arange(3, 41.0), 0.05, 0.1, 10.0)]
    epochs, values = error_curve({"training": {"test_error_by_epoch": errors}})
    assert epochs[0] == 3 and len(values) == 38 and not np.isnan(values).any()


def test_bad_input_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="per-epoch test error"):
        error_curve({"metrics": {}})
    with pytest.raises(ValueError, match="no epoch of the record has a test error"):
        error_curve({"training": {"test_error_by_epoch": [None, None]}})
    result = CliRunner().invoke(cli, ["extrapolate", str(tmp_path / "missing.json")])
    assert result.exit_code == 2 and "missing.json" in result.output and result.exception is not None
    (tmp_path / "list.json").write_text("[1, 2]")  # a JSON whose top level is not a record
    result = CliRunner().invoke(cli, ["extrapolate", str(tmp_path / "list.json")])
    assert result.exit_code == 1 and "JSON object, not a list" in result.output and "Traceback" not in result.output
    epochs, errors = noisy(exponential, (0.05, 0.1, 25.0))
    with pytest.raises(ValueError, match="at least 6"):
        fit_curves(epochs, errors, first=118)
