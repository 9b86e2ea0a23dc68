"""Input checks shared by the assignments' modules, so bad input fails with one clear message.

Every check raises ``TypeError`` for a wrong kind of value and ``ValueError`` for a
wrong shape or range, naming the argument and what was expected.
"""

from __future__ import annotations

import math
from numbers import Real

import torch

__all__ = ["check_boxes", "check_gt_boxes", "check_image_batch", "check_int", "check_labels", "check_real"]


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


def check_boxes(boxes, name: str = "boxes", columns: int = 4) -> None:
    """Raise unless ``boxes`` is a floating ``(N, columns)`` tensor whose last four columns are boxes.

    A box is ``(x1, y1, x2, y2)``, finite, with ``x2 >= x1`` and ``y2 >= y1``; ``columns=5`` is for
    RoI rows ``(batch_index, x1, y1, x2, y2)``.  The message names the first malformed row.
    """
    hint = "(N, 4) as (x1, y1, x2, y2)" if columns == 4 else "(K, 5) as (batch_index, x1, y1, x2, y2)"
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {hint}, got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[1] != columns:
        raise ValueError(f"{name} must have shape {hint}, got {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {boxes.dtype}; convert with .float()")
    if boxes.numel() == 0:
        return
    coords = boxes.detach()[:, columns - 4:]
    if not bool(torch.isfinite(coords).all()):
        row = int((~torch.isfinite(coords)).any(dim=1).nonzero()[0])
        raise ValueError(f"{name} must hold finite coordinates, row {row} is {coords[row].tolist()}")
    bad = (coords[:, 2] < coords[:, 0]) | (coords[:, 3] < coords[:, 1])
    if bool(bad.any()):
        row = int(bad.nonzero()[0])
        raise ValueError(f"{name} must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1: row {row} is "
                         f"{coords[row].tolist()} ({int(bad.sum())} malformed box(es))")


def check_gt_boxes(gt_boxes, num_classes: int | None = None, name: str = "gt_boxes", batched: bool = True) -> None:
    """Raise unless ``gt_boxes`` is the course's padded ground truth: ``(B, N, 5)`` (or ``(N, 5)``).

    Rows are ``(x1, y1, x2, y2, class)`` as floats; padding rows are all ``-1``.  Every other row
    needs an integer class in ``[0, num_classes)`` (``>= 0`` when ``num_classes`` is None) and a
    well-formed box (finite, ``x2 >= x1``, ``y2 >= y1``).  Shared by the detection datasets
    (``helpers.datasets``), FCOS, Faster R-CNN, YOLOv1 and DETR.
    """
    shape = "(B, N, 5)" if batched else "(N, 5)"
    layout = "rows (x1, y1, x2, y2, class), padding rows all -1"
    if not isinstance(gt_boxes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape}, {layout}; got {type(gt_boxes).__name__}")
    if gt_boxes.dim() != (3 if batched else 2) or gt_boxes.shape[-1] != 5:
        raise ValueError(f"{name} must have shape {shape}, {layout}; got {tuple(gt_boxes.shape)}")
    if not gt_boxes.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (class ids stored as floats), got {gt_boxes.dtype}; "
                        "convert with .float()")
    rows = gt_boxes.detach().reshape(-1, 5)
    padding = rows[:, 4] < 0
    if bool((padding & (rows != -1).any(dim=1)).any()):
        row = rows[padding & (rows != -1).any(dim=1)][0].tolist()
        raise ValueError(f"{name}[..., 4] must hold class ids >= 0, or -1 in padding rows that are all -1; "
                         f"got the row {row}")
    real = rows[~padding]
    classes = real[:, 4]
    if bool((classes != classes.round()).any()):
        raise ValueError(f"{name}[..., 4] must hold integer class ids, got {classes[classes != classes.round()][0]}")
    if num_classes is not None and real.numel() and int(classes.max()) >= num_classes:
        raise ValueError(f"{name}: class ids must lie in [0, {num_classes}) (padding -1), got a class "
                         f"{int(classes.max())}")
    check_boxes(real[:, :4], name)


# --------------------------------------------------------------------------- images and feature maps
# (checks shared by several assignments; each section below collects the ones first needed there)


# --------------------------------------------------------------------------- shared with A1 and A2


# --------------------------------------------------------------------------- shared with A3


# --------------------------------------------------------------------------- shared with A4


# --------------------------------------------------------------------------- shared with A5 and the papers


def check_image_batch(images, multiple: int, what: str) -> None:
    """Raise unless ``images`` is a float batch ``(B, 3, H, W)`` with ``H`` and ``W`` multiples of ``multiple``.

    ``what`` names the multiple in the message (``"32 (the coarsest stride)"``...).  The one
    image-batch check of the detectors: A5's FCOS and Faster R-CNN, YOLOv1, DETR.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape (B, 3, H, W), got {got}")
    if not images.is_floating_point():
        raise TypeError(f"images must be floats in [0, 1], got {images.dtype}; use images.float() / 255")
    if images.shape[2] % multiple or images.shape[3] % multiple:
        raise ValueError(f"images' height and width must be multiples of {what}, got {tuple(images.shape[2:])}")


# --------------------------------------------------------------------------- shared with A6
