"""Test error (Table II): for the SeGMA family Eq. 7 in latent space, for baselines their own classifier."""
import torch

from datasets.base import to_float


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
