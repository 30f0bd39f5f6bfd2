"""Targets for processes spawned by tests/test_parallel.py, in a module that imports little: each spawned
process imports it afresh, so heavy imports here would cost seconds per process."""
import os
import time


def hold_lock(lock, journal, seconds, barrier):
    from segma_bench.core.storage import file_lock
    barrier.wait()  # both processes imported and ready: they now ask for the lock at the same moment
    with open(journal, "a") as f:
        f.write(f"want {os.getpid()}\n")
    with file_lock(lock):
        with open(journal, "a") as f:
            f.write(f"enter {os.getpid()}\n")
        time.sleep(seconds)
        with open(journal, "a") as f:
            f.write(f"leave {os.getpid()}\n")


class SlowFakeExtractor:
    weights_sha256 = "a" * 64

    def __call__(self, images):
        import numpy as np
        time.sleep(1.0)  # long enough that a second process arrives while the first computes
        return np.asarray(images, dtype=np.float64).reshape(len(images), -1)[:, :3]


def reference_statistics_in_a_process(cache_dir, counter, out, barrier):
    import numpy as np

    from segma_bench.evaluation.fid import cached_reference
    barrier.wait()  # both ask for the statistics at the same moment, after their slow imports

    def compute_images():
        with open(counter, "a") as f:
            f.write("computed\n")
        return np.random.default_rng(0).random((6, 1, 2, 2))
    key = {"dataset": "toy", "split": "train", "num_samples": 6, "preprocessing": "none"}
    _, mu, _ = cached_reference(cache_dir, key, compute_images, SlowFakeExtractor())
    np.save(os.path.join(out, f"mu-{os.getpid()}.npy"), mu)
