"""Latent-space operations of Section VI, shared by the interpolation FID and the figures.

Codes are what `method.encode` returns. For the SeGMA family that is z; for baselines with a discrete
class it is [z, one-hot y] and `method.class_code_slice` says where the one-hot part is, so moving a
class means moving that part (as the paper did for ADGM)."""
import torch

from segma_bench.core.errors import BadValueError
from segma_bench.methods.base import OperationNotSupported


def interpolate(code_a, code_b, t):
    """Points (1 - t) a + t b on the segment between codes; t has one value per row (Section VI.C)."""
    t = torch.as_tensor(t, dtype=code_a.dtype, device=code_a.device).reshape(-1, 1)
    return (1.0 - t) * code_a + t * code_b


def class_shift(method, source, target):
    """The vector that moves a code from class `source` to class `target` (per row)."""
    if method.has_class_components:
        means = method.class_means()
        return means[target] - means[source]
    code_slice = getattr(method, "class_code_slice", None)
    if code_slice is None:
        raise OperationNotSupported(f"method {method.name!r} has neither class components in latent space "
                                    "nor a one-hot class part in its code")
    eye = torch.eye(method.spec.num_classes, device=method.device)
    shift = torch.zeros(len(torch.as_tensor(source).reshape(-1)), code_slice.stop, device=method.device)
    shift[:, code_slice] = eye[target] - eye[source]
    return shift


def style_transfer(method, code, source, target):
    """Eq. 10: z' = z + (mu_t - mu_s); for one-hot baselines the class vector moves from e_s to e_t."""
    return code + class_shift(method, source, target)


def class_intensity(method, code, source, anti_target, alpha):
    """Eq. 11: z' = z + alpha (mu_s - mu_t), moving away from the anti-target component (alpha > 0)."""
    if alpha <= 0:
        raise BadValueError(f"Eq. 11 needs alpha > 0, got {alpha}")
    return code - alpha * class_shift(method, source, anti_target)


# ---- helpers for the figures of Section VI (figures/make.py) ------------------------------------------

def check_class_moves(method, what):
    """Raise OperationNotSupported unless the method can move a code between classes (Eq. 10 / Eq. 11)."""
    if not method.has_class_components and getattr(method, "class_code_slice", None) is None:
        raise OperationNotSupported(
            f"{what} needs a latent Gaussian per class (Eq. 10/11) or a one-hot class part in the code; "
            f"method {method.name!r} has neither")


def num_class_values(method):
    """How many classes a code can be moved between: components for the SeGMA family, classes otherwise."""
    if method.has_class_components:
        return len(method.class_means())
    return method.spec.num_classes


@torch.no_grad()
def source_classes(method, x, code):
    """The class s of Eq. 10/11 for each image: argmax of the classifier where the method has one, else the
    nearest component mean (Euclidean) for methods with components but no classifier (segma-unsup)."""
    if method.has_classifier:
        return method.classify(x).argmax(1)
    if method.has_class_components:
        return torch.cdist(code, method.class_means().to(code)).argmin(1)
    raise OperationNotSupported(f"method {method.name!r} has neither a classifier nor class components, "
                                "so an image has no source class")


def style_transfer_path(method, code, source, target, steps):
    """Codes on the segment from z to z' = z + (mu_t - mu_s) (Eq. 10), `steps` points with t = 0 and t = 1
    included: shape (N, steps, code dim). t = 0 is z itself and t = 1 is exactly style_transfer()."""
    end = style_transfer(method, code, source, target)
    ts = torch.linspace(0.0, 1.0, steps, dtype=code.dtype, device=code.device)
    return torch.stack([interpolate(code, end, t.expand(len(code))) for t in ts], 1)


def intensity_path(method, code, source, anti_target, alphas):
    """Eq. 11 for each alpha in `alphas`: shape (N, len(alphas), code dim); alpha = 0 gives z itself."""
    return torch.stack([code if float(a) == 0 else class_intensity(method, code, source, anti_target, float(a))
                        for a in alphas], 1)


def means_distances(method):
    """Pairwise Euclidean distances between the learned component means, shape (K, K) (Section V)."""
    means = method.class_means().detach().double().cpu()
    return torch.cdist(means, means)
