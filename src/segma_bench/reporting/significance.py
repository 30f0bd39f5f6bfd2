"""Is a difference in a table beyond seed-to-seed noise? Two t-tests per cell, shown as markers and a footnote.

- against the paper: a one-sample t-test of our per-seed values against the paper's published number, taken
  as exact (the paper gives no spread);
- against SeGMA: Welch's t-test (unequal variances) between a method's per-seed values and SeGMA's in the same
  column (dataset).

Both are two-sided, at ALPHA, without a correction for the many tests of a table, and need at least 2 seeds
per side and some spread between seeds. With 2 seeds a test has 1 degree of freedom (Welch's: 1 to 2), so it
finds only differences many times the spread, and two values estimate that spread poorly: a marker is weak
evidence, and its absence means almost nothing. The footnote says so and lists the p-values."""
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.stats

from .paper_reference import PAPER_TABLES

ALPHA = 0.05
REFERENCE_METHOD = "segma"
PAPER_MARK = "†"       # differs from the paper's value
REFERENCE_MARK = "‡"   # differs from SeGMA in the same column


@dataclass(frozen=True)
class TestResult:
    name: str          # "one-sample t" or "Welch t"
    statistic: float
    pvalue: float
    df: float
    n: tuple           # seeds on each side

    @property
    def significant(self):
        return self.pvalue < ALPHA


def finite(values):
    values = np.asarray([v for v in values if v is not None], np.float64)
    return values[np.isfinite(values)]


def against_value(values, reference):
    """One-sample t-test of `values` (one per seed) against a fixed number; None with fewer than 2 values or
    no spread (the t statistic is then undefined or infinite)."""
    values = finite(values)
    if len(values) < 2 or reference is None or np.std(values) == 0:
        return None
    result = scipy.stats.ttest_1samp(values, reference)
    return TestResult("one-sample t", float(result.statistic), float(result.pvalue), float(len(values) - 1),
                      (len(values),))


def between(values_a, values_b):
    """Welch's t-test between two sets of per-seed values; None with fewer than 2 values on a side or no
    spread on either side."""
    a, b = finite(values_a), finite(values_b)
    if min(len(a), len(b)) < 2 or (np.std(a) == 0 and np.std(b) == 0):
        return None
    with warnings.catch_warnings():  # one side without spread is fine for Welch's test; scipy warns about it
        warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy.stats.ttest_ind(a, b, equal_var=False)
    return TestResult("Welch t", float(result.statistic), float(result.pvalue), welch_df(a, b), (len(a), len(b)))


def welch_df(a, b):
    """Welch-Satterthwaite degrees of freedom."""
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    return float((va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)))


# ---------------------------------------------------------------- a table's tests

def column_tests(values_by_method, paper_by_method, reference_method=REFERENCE_METHOD):
    """{method: {"paper": TestResult | None, "reference": TestResult | None}} for one table column.

    values_by_method: {method: per-seed values, in the table's units}; paper_by_method: {method: paper value}."""
    reference_values = values_by_method.get(reference_method)
    tests = {}
    for method, values in values_by_method.items():
        tests[method] = {
            "paper": against_value(values, paper_by_method.get(method)),
            "reference": None if method == reference_method or reference_values is None
            else between(values, reference_values)}
    return tests


def marks(cell_tests):
    """" †", " ‡", " †‡" or "" for one cell's tests."""
    text = (PAPER_MARK if cell_tests.get("paper") and cell_tests["paper"].significant else "") + \
        (REFERENCE_MARK if cell_tests.get("reference") and cell_tests["reference"].significant else "")
    return f" {text}" if text else ""


def cell_markers(tests_by_column):
    """{(method, dataset): " †" ...} for every tested cell of a table."""
    return {(method, column): marks(cell) for column, tests in tests_by_column.items()
            for method, cell in tests.items()}


def format_p(p):
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_value_list(tests, display_names):
    """"SeGMA: vs paper p = 0.270; ADGM: vs paper p = 0.009, vs SeGMA p = 0.041" (tests that ran)."""
    parts = []
    for method, cell in tests.items():
        found = [f"vs {'paper' if kind == 'paper' else display_names.get(REFERENCE_METHOD, REFERENCE_METHOD)} "
                 f"p = {format_p(result.pvalue)}" for kind, result in cell.items() if result is not None]
        if found:
            parts.append(f"{display_names.get(method, method)}: {', '.join(found)}")
    return "; ".join(parts)


def smallest_n(tests):
    sizes = [n for cell in tests.values() for result in cell.values() if result is not None for n in result.n]
    return min(sizes) if sizes else None


def footnote(tests_by_column, display_names, column_titles):
    """Markdown lines explaining the markers, the tests, the threshold, the power, and listing the p-values."""
    if not any(result for tests in tests_by_column.values() for cell in tests.values() for result in cell.values()):
        return ["", "Significance: no test could run (a cell needs at least 2 seeds with some spread)."]
    smallest = min(n for n in (smallest_n(t) for t in tests_by_column.values()) if n is not None)
    paper_tested = any(cell.get("paper") for tests in tests_by_column.values() for cell in tests.values())
    against_paper = (f"{PAPER_MARK} our mean differs from the paper's value (two-sided one-sample t-test of the "
                     "per-seed values against it, the paper's number taken as exact)" if paper_tested else
                     "no test against the paper's values (this budget's numbers are not comparable with them)")
    lines = ["", f"Significance: {against_paper}; {REFERENCE_MARK} it differs from "
             f"{display_names.get(REFERENCE_METHOD, REFERENCE_METHOD)}'s in the same column (two-sided Welch's "
             f"t-test); both at p < {ALPHA}, without a correction for the number of tests (scipy.stats, "
             "reporting/significance.py). Cells with fewer than 2 seeds, or no spread between them, are not tested."]
    if smallest <= 3:
        df = f"{smallest - 1} degree{'s' if smallest != 2 else ''} of freedom"
        lines[-1] += (f" **With n = {smallest} seeds these tests have almost no power**: {df} (one-sample test), "
                      "so only differences many times the seed-to-seed spread are found, and that spread "
                      "is itself estimated from a few values (two close seeds can make a small difference look "
                      "significant). Read a marker as weak evidence and its absence as no evidence either way.")
    for column, tests in tests_by_column.items():
        listed = p_value_list(tests, display_names)
        if listed:
            lines.append(f"- p-values, {column_titles.get(column, column)}: {listed}.")
    return lines


def table_tests(frame, table, datasets, against_paper=True):
    """{dataset: column_tests(...)} for a paper table's metric, from the long-form records frame (results.py),
    in the table's units (test error in %) and row order. against_paper False (a budget whose numbers are not
    comparable with the paper's): only the tests between methods."""
    spec = PAPER_TABLES[table]
    metric, scale = spec["metric"], 100.0 if spec["metric"] == "test_error" else 1.0
    paper = {method: values for (_, method), values in spec["rows"]}
    order = list(paper)
    tests = {}
    for dataset in datasets:
        cells = frame[(frame.metric == metric) & (frame.dataset == dataset)] if not frame.empty else frame
        values = {method: [v * scale for v in group.sort_values("seed")["value"]]
                  for method, group in cells.groupby("method")}
        values = dict(sorted(values.items(), key=lambda item: (order.index(item[0]) if item[0] in order
                                                                else len(order), item[0])))
        tests[dataset] = column_tests(values, {method: p.get(dataset) for method, p in paper.items()} if against_paper
                                      else {})
    return tests
