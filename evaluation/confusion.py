"""Where a classifier's test error comes from: the confusion matrix behind Table II's single number.

A 100-label semi-supervised model can fail in two ways that give the same error: many small confusions, or
one class absorbed by another (its unlabeled images clustered with a neighbour's). The second is what
separates seeds of one recipe, so a record's error is worth reading with this beside it."""
import torch

from .classification import predict


def confusion_matrix(predictions, labels, num_classes):
    """counts[true, predicted], (K, K) int64."""
    predictions, labels = torch.as_tensor(predictions).long(), torch.as_tensor(labels).long()
    if predictions.shape != labels.shape or predictions.dim() != 1:
        raise ValueError(f"predictions {tuple(predictions.shape)} and labels {tuple(labels.shape)} must be "
                         "two vectors of the same length")
    for name, values in (("predictions", predictions), ("labels", labels)):
        if len(values) and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}")
    return torch.bincount(labels * num_classes + predictions, minlength=num_classes ** 2).view(num_classes,
                                                                                              num_classes)


def largest_confusions(counts, top=5):
    """[(count, true class, predicted class)] of the largest off-diagonal cells, largest first."""
    off_diagonal = counts.clone()
    off_diagonal.fill_diagonal_(-1)
    values, flat = off_diagonal.flatten().topk(min(top, counts.numel() - len(counts)))
    k = len(counts)
    return [(int(v), int(i) // k, int(i) % k) for v, i in zip(values, flat) if v > 0]


def confusion_report(method, data, top=5):
    """Markdown: overall error, per-class error, the largest confusions and the full matrix."""
    counts = confusion_matrix(predict(method, data.test_images), data.test_labels, data.num_classes)
    names = [str(n) for n in data.class_names]
    per_class = 1 - counts.diag().double() / counts.sum(1).clamp(min=1)
    error = 1 - counts.diag().sum().item() / counts.sum().item()
    lines = [f"Test error {100 * error:.2f}% on {counts.sum().item()} test images.", "",
             "Largest confusions (true -> predicted: images, share of the true class, points of test error):"]
    for count, true, predicted in largest_confusions(counts, top):
        lines.append(f"- {names[true]} -> {names[predicted]}: {count} ({100 * count / counts[true].sum():.1f}%, "
                     f"{100 * count / counts.sum():.2f} points)")
    lines += ["", "| true \\ predicted | " + " | ".join(names) + " | class error % |",
              "|---" * (len(names) + 2) + "|"]
    for i, row in enumerate(counts.tolist()):
        lines.append(f"| {names[i]} | " + " | ".join(map(str, row)) + f" | {100 * per_class[i]:.1f} |")
    return "\n".join(lines)
