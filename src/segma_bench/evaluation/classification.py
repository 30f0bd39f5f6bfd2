"""Test error (Table II): for the SeGMA family Eq. 7 in latent space, for baselines their own classifier."""
import torch

from segma_bench.datasets.base import to_float
from segma_bench.training import train as train_loop


@torch.no_grad()
def predict(method, images_uint8, batch_size=1000):
    method.eval()
    predictions = []
    for start in range(0, len(images_uint8), batch_size):
        x = to_float(images_uint8[start:start + batch_size]).to(method.device)
        predictions.append(method.classify(x).argmax(1).cpu())
    return torch.cat(predictions)


def test_error(method, images_uint8, labels, batch_size=1000):
    """Fraction of misclassified test images (argmax of the class posterior)."""
    return (predict(method, images_uint8, batch_size) != labels).double().mean().item()


def test_error_metrics(method, data):
    """The training loop's per-epoch metrics hook: {"test_error": ...} on the whole test set (None for a
    method without a classifier)."""
    if not method.has_classifier:
        return {"test_error": None}
    return {"test_error": test_error(method, data.test_images, data.test_labels)}


def train(spec, run_dir, data=None, **hooks):
    """segma_bench.training.train with the test error recorded after every epoch: what `train`,
    `reproduce` and the tests run."""
    hooks.setdefault("epoch_metrics", test_error_metrics)
    return train_loop(spec, run_dir, data=data, **hooks)
