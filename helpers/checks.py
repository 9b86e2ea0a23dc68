"""Input checks shared by the assignments' modules, so bad input fails with one clear message.

Every check raises ``TypeError`` for a wrong kind of value and ``ValueError`` for a
wrong shape or range, naming the argument and what was expected.
"""

from __future__ import annotations

import math
from numbers import Real

import torch

__all__ = ["check_int", "check_labels", "check_real"]


def check_int(value, name: str, minimum: int | None = None) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) of at least ``minimum``; raise otherwise.

    ``TypeError`` for anything that is not an int (``3.0``, ``"3"``, ``True``), ``ValueError`` below
    ``minimum`` (``None``: any int).  ``name`` is the argument's name in the message.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_real(value, name: str, low: float | None = None, high: float | None = None,
               low_open: bool = False) -> float:
    """Return ``float(value)`` if it is a real number in ``[low, high]`` (``(low, high]`` if ``low_open``).

    ``TypeError`` for anything that is not a real number (a ``bool``, a string, a tensor),
    ``ValueError`` for NaN or a value outside the interval (``None``: unbounded on that side).
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    if math.isnan(value) or too_low or (high is not None and value > high):
        interval = f"{'(' if low_open else '['}{low if low is not None else '-inf'}, " \
                   f"{high if high is not None else 'inf'}]"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return value


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
