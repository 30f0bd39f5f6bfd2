"""Where a classifier's test error comes from: the confusion matrix behind Table II's single number.

A 100-label semi-supervised model can fail in two ways that give the same error: many small confusions, or
one class absorbed by another (its unlabeled images clustered with a neighbour's). The second is what
separates seeds of one recipe, so a record's error is worth reading with this beside it."""
import torch

from segma_bench.core.errors import BadValueError
from segma_bench.methods.base import OperationNotSupported

from .classification import predict


def confusion_matrix(predictions, labels, num_classes):
    """counts[true, predicted], (K, K) int64."""
    predictions, labels = torch.as_tensor(predictions), torch.as_tensor(labels)
    if predictions.shape != labels.shape or predictions.dim() != 1:
        raise BadValueError(f"predictions {tuple(predictions.shape)} and labels {tuple(labels.shape)} must be "
                         "two vectors of the same length")
    for name, values in (("predictions", predictions), ("labels", labels)):
        if values.is_floating_point() or values.is_complex():
            raise BadValueError(f"{name} must be class indices (integers), got {values.dtype}")
        outside = values[(values < 0) | (values >= num_classes)]
        if len(outside):
            raise BadValueError(f"{name} must lie in 0..{num_classes - 1} (the data's classes), got {outside[0].item()}")
    predictions, labels = predictions.long(), labels.long()
    return torch.bincount(labels * num_classes + predictions, minlength=num_classes ** 2).view(num_classes,
                                                                                              num_classes)


def largest_confusions(counts, top=5):
    """[(count, true class, predicted class)] of the largest off-diagonal cells, largest first."""
    cells = [(int(counts[i, j]), i, j) for i in range(len(counts)) for j in range(len(counts))
             if i != j and counts[i, j] > 0]
    return sorted(cells, key=lambda cell: (-cell[0], cell[1], cell[2]))[:top]  # ties: by class, not by chance


def confusion_report(method, data, top=5):
    """Markdown: overall error, per-class error, the largest confusions and the full matrix."""
    if not method.has_classifier:  # e.g. segma-unsup: its components are not tied to the labels
        raise OperationNotSupported(f"method {method.name!r} has no classifier tied to the labels, so it has no "
                                    "test error to break down")
    if len(data.test_labels) == 0:
        raise BadValueError(f"the {data.name} test set is empty")
    counts = confusion_matrix(predict(method, data.test_images), data.test_labels, data.num_classes)
    names = [str(n) for n in data.class_names]
    sizes = counts.sum(1)
    per_class = [f"{100 * (1 - counts[i, i].item() / n):.1f}" if n else "-" for i, n in enumerate(sizes.tolist())]
    error = 1 - counts.diag().sum().item() / counts.sum().item()
    lines = [f"Test error {100 * error:.2f}% on {counts.sum().item()} test images.", "",
             "Largest confusions (true -> predicted: images, share of the true class, points of test error):"]
    for count, true, predicted in largest_confusions(counts, top):
        lines.append(f"- {names[true]} -> {names[predicted]}: {count} ({100 * count / counts[true].sum():.1f}%, "
                     f"{100 * count / counts.sum():.2f} points)")
    lines += ["", "| true \\ predicted | " + " | ".join(names) + " | class error % |",
              "|---" * (len(names) + 2) + "|"]
    for i, row in enumerate(counts.tolist()):
        lines.append(f"| {names[i]} | " + " | ".join(map(str, row)) + f" | {per_class[i]} |")
    return "\n".join(lines)
