"""Input checks shared by the assignments' modules, so bad input fails with one clear message.

Every check raises ``TypeError`` for a wrong kind of value and ``ValueError`` for a
wrong shape or range, naming the argument and what was expected.
"""

from __future__ import annotations

import torch

__all__ = ["check_labels"]


def check_labels(y, num: int, num_classes: int | None = None, name: str = "y") -> None:
    """Raise unless ``y`` is a ``(num,)`` tensor of integer class indices.

    Args:
        y: the labels to check.
        num: how many there must be (the number of examples they label).
        num_classes: ``C``; labels must lie in ``[0, C)``.  ``None``: only ``>= 0`` is required.
        name: the argument's name in the error message (``"y_train"``...).
    """
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({num},), got {type(y).__name__}")
    if tuple(y.shape) != (num,):
        raise ValueError(f"{name} must have shape ({num},) to match the data's {num} examples, "
                         f"got {tuple(y.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got {y.dtype}")
    if num == 0:
        return
    low, high = int(y.min()), int(y.max())
    if num_classes is None:
        if low < 0:
            raise ValueError(f"{name} must hold class indices >= 0, got values from {low} to {high}")
    elif low < 0 or high >= num_classes:
        raise ValueError(f"{name} must hold class indices in [0, {num_classes - 1}]: labels must lie in "
                         f"[0, C) = [0, {num_classes}), got values from {low} to {high}")
