"""THE PAPER'S NUMBERS (SeGMA paper, Tables I-III), typed in from the paper's text. Not ours: every number
we produce comes from a run and lives in results/runs/*.json. This is the only place these values appear."""

PAPER_TABLES = {
    1: {
        "title": "Table I: FID of samples from the target distribution (lower is better)",
        "metric": "sample_fid",
        "rows": [  # (variant, method): {dataset: value}
            (("unsupervised", "cwae"), {"mnist": 20.76, "svhn": 49.30, "celeba": 51.94}),
            (("unsupervised", "segma-unsup"), {"mnist": 17.79, "svhn": 61.11, "celeba": 51.13}),
            (("semi-supervised", "m1m2"), {"mnist": 40.50, "svhn": 142.11, "celeba": 70.96}),
            (("semi-supervised", "adgm"), {"mnist": 14.50, "svhn": 55.54, "celeba": 51.96}),
            (("semi-supervised", "segma"), {"mnist": 12.51, "svhn": 63.80, "celeba": 50.54}),
        ],
    },
    2: {
        "title": "Table II: test error, % (lower is better)",
        "metric": "test_error",
        "rows": [
            (("semi-supervised", "m1m2"), {"mnist": 17.0, "svhn": 65.7, "celeba": 44.5}),
            (("semi-supervised", "adgm"), {"mnist": 4.1, "svhn": 41.2, "celeba": 41.7}),
            (("semi-supervised", "segma"), {"mnist": 12.7, "svhn": 32.8, "celeba": 24.6}),
        ],
    },
    3: {
        "title": "Table III: FID of interpolations between pairs of encoded test images (lower is better)",
        "metric": "interpolation_fid",
        "rows": [
            (("semi-supervised", "m1m2"), {"mnist": 56.38, "svhn": 176.89, "celeba": 88.24}),
            (("semi-supervised", "adgm"), {"mnist": 21.75, "svhn": 76.66, "celeba": 63.60}),
            (("semi-supervised", "segma"), {"mnist": 13.40, "svhn": 63.47, "celeba": 48.14}),
        ],
    },
}

DATASETS = ("mnist", "svhn", "celeba")


# Model names as the paper writes them (display only; the registry names stay as they are).
DISPLAY_NAMES = {"m1m2": "M1+M2", "adgm": "ADGM", "segma": "SeGMA", "segma-unsup": "SeGMA unsup.", "cwae": "CWAE"}


def table_methods(table):
    """The methods of the paper's Table `table`, in its row order."""
    return [method for (_, method), _ in PAPER_TABLES[table]["rows"]]


def paper_value(table, method, dataset):
    """The paper's value in Table `table` for `method` on `dataset`, None where its table has none."""
    return next((values.get(dataset) for (_, name), values in PAPER_TABLES[table]["rows"] if name == method), None)


def paper_test_error(method, dataset):
    """Table II's test error (%) of `method` on `dataset`, None where the paper's table has none."""
    return paper_value(2, method, dataset)
