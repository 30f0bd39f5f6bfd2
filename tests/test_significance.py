"""Significance in the tables (reporting/significance.py): p-values checked against hand computation and scipy,
markers and the footnote in a rendered table."""
import math

import numpy as np
import pytest
import scipy.stats

from segma_bench.reporting import significance
from segma_bench.reporting.significance import against_value, between, column_tests, marks
from segma_bench.reporting.tables import render
from test_table_files import write_cell


def test_one_sample_t_with_two_values_by_hand():
    # [1, 3] against 0: mean 2, s = sqrt(2), standard error 1, t = 2 with 1 degree of freedom (a Cauchy
    # distribution, CDF 1/2 + atan(t)/pi): two-sided p = 1 - 2 atan(2) / pi
    result = against_value([1.0, 3.0], 0.0)
    assert result.statistic == pytest.approx(2.0) and result.df == 1 and result.n == (2,)
    assert result.pvalue == pytest.approx(1 - 2 * math.atan(2) / math.pi, rel=1e-12)  # 0.2952
    assert not result.significant


def test_welch_t_with_two_values_each_by_hand():
    # [1, 3] against [5, 7]: means 2 and 6, variances 2 and 2, standard error sqrt(2/2 + 2/2) = sqrt(2),
    # t = -4 / sqrt(2); Welch-Satterthwaite df = (1 + 1)^2 / (1 + 1) = 2, and with 2 degrees of freedom
    # the two-sided p is 1 - |t| / sqrt(2 + t^2)
    result = between([1.0, 3.0], [5.0, 7.0])
    t = -4 / math.sqrt(2)
    assert result.statistic == pytest.approx(t) and result.df == pytest.approx(2.0)
    assert result.pvalue == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t), rel=1e-12)  # 0.1056


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_scipy_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(10, 1, 5), rng.normal(11, 2, 3)
    assert against_value(a, 10.5).pvalue == pytest.approx(scipy.stats.ttest_1samp(a, 10.5).pvalue, rel=1e-12)
    welch = scipy.stats.ttest_ind(a, b, equal_var=False)
    result = between(a, b)
    assert result.pvalue == pytest.approx(welch.pvalue, rel=1e-12)
    assert result.df == pytest.approx(welch.df, rel=1e-12)


def test_no_test_without_two_seeds_or_any_spread():
    assert against_value([14.0], 12.5) is None
    assert against_value([14.0, 14.0], 12.5) is None  # t would be infinite
    assert against_value([14.0, float("nan"), None], 12.5) is None  # n/a seeds do not count
    assert against_value([14.0, 15.0], None) is None  # no paper value
    assert between([1.0], [2.0, 3.0]) is None
    assert between([1.0, 1.0], [2.0, 2.0]) is None
    assert between([1.0, 1.0], [2.0, 3.0]) is not None  # Welch's test allows one side without spread


def test_markers_per_cell():
    tests = column_tests({"segma": [14.0, 14.1], "adgm": [17.4, 17.5], "m1m2": [30.0, 50.0]},
                         {"segma": 14.05, "adgm": 14.5, "m1m2": 40.0})
    assert tests["segma"]["reference"] is None and not tests["segma"]["paper"].significant
    assert marks(tests["adgm"]) == " †‡"  # far from the paper and from SeGMA, little spread
    assert marks(tests["m1m2"]) == "" and marks(tests["segma"]) == ""
    assert marks({"paper": None, "reference": None}) == ""


def test_table_shows_markers_and_a_footnote_naming_the_tests_and_their_weakness(tmp_path):
    for seed, (segma, adgm, cwae) in enumerate([(14.0, 17.40, 20.0), (14.2, 17.50, 21.0)]):
        write_cell(tmp_path, "segma", seed, {"sample_fid": segma, "sample_kid": 0.01})
        write_cell(tmp_path, "adgm", seed, {"sample_fid": adgm, "sample_kid": 0.01})
        write_cell(tmp_path, "cwae", seed, {"sample_fid": cwae, "sample_kid": 0.01})
    write_cell(tmp_path, "m1m2", 0, {"sample_fid": 40.0, "sample_kid": 0.01})  # one seed: not tested
    text = render(1, tmp_path, "comparable", {"segma", "adgm", "cwae", "m1m2", "segma-unsup"})
    rows = {line.split("|")[2].strip(): line for line in text.splitlines() if line.startswith("| ")}
    expected_adgm = against_value([17.40, 17.50], 14.50)
    assert expected_adgm.significant and between([17.40, 17.50], [14.0, 14.2]).significant
    assert "17.45 ± 0.07 (n=2) †‡" in rows["ADGM"]
    assert "| 40.00 (n=1) " in rows["M1+M2"] and "†" not in rows["M1+M2"]  # no marker with one seed
    assert "one-sample t-test" in text and "Welch's t-test" in text and "p < 0.05" in text
    assert "With n = 2 seeds these tests have almost no power" in text
    assert f"ADGM: vs paper p = {significance.format_p(expected_adgm.pvalue)}" in text


def test_table_without_enough_seeds_says_no_test_ran(tmp_path):
    write_cell(tmp_path, "segma", 0, {"test_error": 0.14})
    text = render(2, tmp_path, "comparable", {"segma"})
    assert "no test could run" in text and "†" not in text.split("Significance")[0]


def test_a_budget_not_comparable_with_the_paper_is_not_tested_against_it():
    """quick and celeba-subset numbers are not comparable with the paper's: no † test, only the ‡ ones."""
    import pandas as pd

    from segma_bench.reporting.significance import footnote, table_tests
    rows = [{"metric": "test_error", "dataset": "mnist", "method": m, "seed": s, "value": v}
            for m, values in {"segma": [0.20, 0.22], "adgm": [0.05, 0.06]}.items() for s, v in enumerate(values)]
    frame = pd.DataFrame(rows)
    comparable = table_tests(frame, 2, ["mnist"])
    assert comparable["mnist"]["segma"]["paper"] is not None
    not_comparable = table_tests(frame, 2, ["mnist"], against_paper=False)
    assert all(cell["paper"] is None for cell in not_comparable["mnist"].values())
    assert not_comparable["mnist"]["adgm"]["reference"] is not None
    text = "\n".join(footnote(not_comparable, {}, {"mnist": "MNIST"}))
    assert "no test against the paper's values" in text and "vs paper" not in text
