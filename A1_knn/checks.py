"""Input checks of A1 (``knn.py``): bad input fails with one message naming what was expected.

Each function checks the arguments of one function of ``knn.py`` and returns them in the form
the solution works on (flattened matrices, int64 labels); ``TypeError`` for a wrong kind of
value, ``ValueError`` for a wrong shape or range.
"""

from __future__ import annotations

import math

import torch

from helpers.checks import check_int, check_labels

__all__ = ["all_finite", "as_matrix", "chunk_size", "cross_validation", "fold_accuracies", "k_value", "labels",
           "pair", "predict_inputs", "query", "training_set"]


def as_matrix(x, name: str) -> torch.Tensor:
    """Flatten ``x (N, D1, ..., Dn)`` to ``(N, D)``, checking it is a floating tensor of finite values."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, ...), got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape (N, D1, ..., Dn) with at least 2 dims, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}; convert with .float()")
    if not all_finite(x):
        bad = ~torch.isfinite(x)
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} holds {int(bad.sum())} NaN or infinite value(s), the first at index {first}: "
                         "distances to it would be NaN and its votes meaningless")
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


def all_finite(x: torch.Tensor) -> bool:
    """Whether every value of ``x`` is finite: one pass over a floating ``x``, no temporary of its size.

    ``torch.isfinite(x).all()`` builds boolean tensors as large as ``x`` (about 0.4 s on the 60 000
    training images, every time the distances are computed).  A NaN makes both the minimum and the
    maximum NaN, and an infinity is one of them.
    """
    if x.numel() == 0 or not x.is_floating_point():
        return bool(torch.isfinite(x).all())
    low, high = torch.aminmax(x)
    return math.isfinite(float(low)) and math.isfinite(float(high))


def pair(x_train, x_test) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_train, x_test)`` flattened to ``(num_train, D)`` and ``(num_test, D)``: points of one space."""
    a = as_matrix(x_train, "x_train")
    b = as_matrix(x_test, "x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"x_train and x_test must have the same shape after the first dim, got "
            f"{tuple(x_train.shape[1:])} and {tuple(x_test.shape[1:])}"
        )
    if a.dtype != b.dtype or a.device != b.device:
        raise ValueError(f"x_train and x_test must share dtype and device, got "
                         f"{a.dtype}/{a.device} and {b.dtype}/{b.device}")
    return a, b


def labels(y, num: int, name: str = "y_train") -> torch.Tensor:
    """``y`` as int64 after checking it is ``(num,)`` of non-negative integer labels."""
    check_labels(y, num, name=name)
    return y.long()


def k_value(k, num_train: int) -> int:
    """``k`` after checking it is an int in ``[1, num_train]``."""
    check_int(k, "k", minimum=1)
    if k > num_train:
        raise ValueError(f"k must be <= the number of training points ({num_train}), got {k}")
    return k


def predict_inputs(dists, y_train, k) -> tuple[torch.Tensor, int]:
    """Check the arguments of ``predict_labels``; returns ``(y_train as int64, k)``."""
    if not isinstance(dists, torch.Tensor) or dists.dim() != 2:
        raise ValueError(f"dists must be a (num_train, num_test) tensor, got "
                         f"{tuple(dists.shape) if isinstance(dists, torch.Tensor) else type(dists).__name__}")
    if not all_finite(dists):
        raise ValueError("dists holds NaN or infinite values: check the inputs of the distance computation")
    return labels(y_train, dists.shape[0]), k_value(k, dists.shape[0])


def training_set(x_train, y_train) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_train, y_train)`` of ``KnnClassifier``: at least one point, labels as int64."""
    a = as_matrix(x_train, "x_train")
    y = labels(y_train, a.shape[0])
    if a.shape[0] == 0:
        raise ValueError("x_train must hold at least one training point")
    return x_train, y


def query(x_test, input_shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    """``x_test`` in the training data's dtype, after checking each point has the training points' shape."""
    as_matrix(x_test, "x_test")
    if tuple(x_test.shape[1:]) != tuple(input_shape):
        raise ValueError(f"x_test must have shape (num_test, {', '.join(map(str, input_shape))}) "
                         f"like the training data, got {tuple(x_test.shape)}")
    return x_test.to(dtype)


def chunk_size(chunk_size, per_row_bytes: int, budget_bytes: int) -> int:
    """Test points predicted at once: ``chunk_size``, or as many as ``budget_bytes`` of distances allow."""
    if chunk_size is None:
        return max(1, budget_bytes // max(per_row_bytes, 1))
    return check_int(chunk_size, "chunk_size", minimum=1)


def cross_validation(x_train, y_train, num_folds, k_choices) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Check the arguments of ``knn_cross_validate``; returns ``(x_train (N, D), y_train int64, k_choices)``."""
    a = as_matrix(x_train, "x_train")
    y = labels(y_train, a.shape[0])
    if isinstance(num_folds, bool) or not isinstance(num_folds, int) or not 2 <= num_folds <= a.shape[0]:
        raise ValueError(f"num_folds must be an int in [2, num_train={a.shape[0]}], got {num_folds}")
    largest_fold = -(-a.shape[0] // num_folds)
    k_choices = list(k_choices)
    if not k_choices:
        raise ValueError("k_choices is empty: give the values of k to try, e.g. [1, 3, 5]")
    for k in k_choices:
        k_value(k, a.shape[0] - largest_fold)
    return a, y, k_choices


def fold_accuracies(k_to_accuracies) -> dict:
    """Check ``{k: [accuracy per fold]}`` is non-empty with at least one accuracy for every ``k``."""
    if not k_to_accuracies:
        raise ValueError("k_to_accuracies is empty: expected {k: [accuracy per fold]}")
    empty = [k for k, accuracies in k_to_accuracies.items() if not len(accuracies)]
    if empty:
        raise ValueError(f"k_to_accuracies has no fold accuracies for k = {empty}: expected a non-empty list each")
    return k_to_accuracies
