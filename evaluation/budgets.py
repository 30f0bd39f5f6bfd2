"""Named compute budgets for `reproduce`. Every number a table shows is labelled with its budget.

paper: the authors' protocol: their training length (per method where the original papers differ,
       else the dataset's, docs/protocol.md), 10,000 generated images per FID (Section VI.B/C).
quick: what fits a 2-core CPU in minutes per method: the same few epochs for every method and 2,000
       images per FID. Its FIDs are not comparable with the paper's (FID is biased upward at small sample
       counts); tables made with it show the real-against-real FID at the same sample count (the floor).
       M1+M2 spends its first 2 of the 5 MNIST epochs on M1 (instead of 100 of 3,100)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    name: str
    epochs: dict            # dataset -> epochs for every method; empty: each method's own paper length
    fid_samples: int        # generated images per FID, and real images in the reference set
    default_seeds: int
    method_overrides: dict = None  # method -> settings that keep a staged method sensible at this length


BUDGETS = {
    "quick": Budget("quick", epochs={"mnist": 5, "svhn": 1, "celeba": 5}, fid_samples=2000, default_seeds=2,
                    method_overrides={"m1m2": {"m1_epochs": 2}}),
    "paper": Budget("paper", epochs={}, fid_samples=10000, default_seeds=3),
}


def get_budget(name):
    from methods.registry import UnknownNameError
    if name not in BUDGETS:
        raise UnknownNameError(f"unknown budget {name!r}; budgets: {', '.join(BUDGETS)}")
    return BUDGETS[name]

