"""Named compute budgets for `reproduce`. Every number a table shows is labelled with its budget.

paper:      the authors' protocol, 10,000 generated images per FID (Section VI.B/C), 3 seeds. On MNIST the
            SeGMA family (SeGMA, SeGMA unsup., CWAE) trains as the code behind the paper's numbers ran
            (maciejwolczyk/ssCWAE at f2f8b67/b088d6c, docs/protocol.md): the `authors-code` recipe, its labeled
            protocol (the first 100 training images) and 501 passes (`n_epochs = 500`, `trange(n_epochs + 1)`).
            The baselines train with the recipes of their own original code at their own lengths:
            M1+M2 `kingma-code` (Kingma et al.'s script: M1, then M2; the recipe's own epochs), ADGM
            `maaloe-code` for 1,000 epochs (the authors' schedule, reference-settings.md). On SVHN and CelebA
            every method trains for its original length (its authors' code) with its defaults. Runs of the
            same identity made by `train` (e.g. the 501-pass SeGMA runs) are reused, not retrained.
comparable: comparable with the paper and within reach of a 2-core CPU. FID and KID use the paper's
            10,000 images (reference statistics cached), so the FIDs can stand beside the paper's; the
            training lengths are those of our first long MNIST runs (docs/results-notes.md, "Longer runs"),
            what fitted this CPU; the test errors were still falling there (SeGMA's 501-pass runs went on
            from 19.86% at pass 150 to 18.90%, docs/protocol.md): SeGMA, SeGMA unsup. and CWAE 150 epochs with
            the `authors-code` recipe and its labeled protocol (the first 100 training images, as the
            authors' code ran; the SeGMA issue settled on it), ADGM 100 epochs, M1+M2 100 epochs of which
            30 are M1 (the long runs' split). That is shorter than the paper's (M1+M2 600 of our epochs,
            100 of M1 and 500 of M2 = the authors' 300,000 M2 updates; ADGM up to 1,000 epochs); every
            table footnote states both. Two seeds, mean ± std. Table II also shows the baselines' long runs
            with their own authors' recipes (M1+M2 `kingma-code`, ADGM `maaloe-code`) as rows of their own
            (reporting/tables.py OWN_RECIPE_RECORDS), at the lengths those runs reached.
            A budget's length is a minimum: a run folder with the same identity and at least that many
            epochs (e.g. a long run made by `train`) is evaluated as it is, not retrained, and its record
            names the folder and the epochs it had (reporting/run_reuse.py). A cell evaluated at that
            length keeps its numbers when its run trains on past it (reporting/cell.py trained_further).
quick:      what fits a 2-core CPU in minutes per method: the same few epochs for every method and 2,000
            images per FID. Its FIDs are not comparable with the paper's (FID is biased upward at small sample
            counts); tables made with it show the real-against-real FID at the same sample count (the floor).
            M1+M2 spends its first 2 of the 5 MNIST epochs on M1 (instead of 100 of 600)."""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MethodBudget:
    """How a budget trains one method; unset fields fall back to the budget's per-dataset defaults."""
    epochs: int = 0                                  # 0: the budget's epochs for the dataset
    recipe: str = ""                                 # a method's named preset (methods/*.py recipes())
    labeled_subset: str = ""                         # balanced | first; "": the recipe's, else balanced
    overrides: dict = field(default_factory=dict)    # method settings, e.g. {"m1_epochs": 30}


@dataclass(frozen=True)
class Budget:
    name: str
    epochs: dict            # dataset -> epochs for every method; empty: each method's own original length
    fid_samples: int        # generated images per FID/KID, and real images in the reference set
    default_seeds: int
    methods: dict = field(default_factory=dict)      # method -> MethodBudget
    paper_comparable: bool = False                   # FIDs at the paper's sample count and protocol
    reuse_runs: bool = False                         # evaluate an existing run of the same identity and at
    #                                                  least these epochs instead of training (quick does not:
    #                                                  it shows what its few epochs give)
    note: str = ""                                   # a footnote every table of this budget carries; {images}
    #                                                  and {partition} are the records' data source
    datasets: tuple = ()                             # the datasets it is sized for; empty: every dataset

    def run_settings(self, method, dataset):
        """RunSpec fields (epochs, recipe, labeled_subset, overrides) of `method` on `dataset`."""
        own = self.methods.get(method, MethodBudget())
        return {"epochs": own.epochs or self.epochs.get(dataset, 0), "recipe": own.recipe,
                "labeled_subset": own.labeled_subset, "overrides": dict(own.overrides)}


AUTHORS_CODE_150 = MethodBudget(epochs=150, recipe="authors-code")
AUTHORS_CODE_501 = MethodBudget(epochs=501, recipe="authors-code")  # the paper-era code's 500 + 1 passes

BUDGETS = {
    "quick": Budget("quick", epochs={"mnist": 5, "svhn": 1, "celeba": 5}, fid_samples=2000, default_seeds=2,
                    methods={"m1m2": MethodBudget(overrides={"m1_epochs": 2})}),
    "comparable": Budget("comparable", epochs={}, fid_samples=10000, default_seeds=2, paper_comparable=True, reuse_runs=True,
                         methods={"segma": AUTHORS_CODE_150, "segma-unsup": AUTHORS_CODE_150,
                                  "cwae": AUTHORS_CODE_150, "adgm": MethodBudget(epochs=100),
                                  "m1m2": MethodBudget(epochs=100, overrides={"m1_epochs": 30})}),
    "paper": Budget("paper", epochs={}, fid_samples=10000, default_seeds=3, paper_comparable=True,
                    reuse_runs=True,
                    methods={"segma": AUTHORS_CODE_501, "segma-unsup": AUTHORS_CODE_501, "cwae": AUTHORS_CODE_501,
                             "m1m2": MethodBudget(recipe="kingma-code"),
                             "adgm": MethodBudget(epochs=1000, recipe="maaloe-code")}),
}

# CelebA as the offline copy holds it: 6,097 of the 202,599 images (official partition 4,657 / 780 / 660). Sized
# for a CPU: 5 epochs per method, 500 images per FID (the test split has 660). Its own name, so that its tables
# (results/tableN-celeba-subset.md) cannot be mistaken for the paper's protocol.
BUDGETS["celeba-subset"] = Budget(
    "celeba-subset", epochs={"celeba": 5}, fid_samples=500, default_seeds=2, datasets=("celeba",),
    methods={"m1m2": MethodBudget(overrides={"m1_epochs": 2})},
    note="**Not comparable with the paper's numbers**: CelebA as this copy holds it ({images} of the full set's "
         "202,599 images; used: {partition}), 1,000 labels, 5 epochs per method and 500 images per FID, KID, precision "
         "and recall. It shows that every method runs end to end on real 64x64 RGB images, not what they reach.")

# The budget whose tables are results/tableN.md; the others' are results/tableN-BUDGET.md.
HEADLINE_BUDGET = "comparable"


def table_file_name(table, budget_name):
    return f"table{table}.md" if budget_name == HEADLINE_BUDGET else f"table{table}-{budget_name}.md"


def check_budget_datasets(budget, datasets):
    """A budget sized for some datasets (e.g. celeba-subset) refuses the others before anything is trained."""
    from segma_bench.core.errors import BadValueError
    other = [d for d in datasets if budget.datasets and d not in budget.datasets]
    if other:
        raise BadValueError(f"budget {budget.name!r} is sized for {', '.join(budget.datasets)} only, not "
                            f"{', '.join(other)}; use one of the budgets for every dataset: "
                            f"{', '.join(n for n, b in BUDGETS.items() if not b.datasets)}")


def get_budget(name):
    from segma_bench.core.errors import UnknownNameError
    if name not in BUDGETS:
        raise UnknownNameError(f"unknown budget {name!r}; budgets: {', '.join(BUDGETS)}")
    return BUDGETS[name]
