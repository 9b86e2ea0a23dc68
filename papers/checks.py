"""Input checks of the papers' modules (``yolov1``, ``detr``, ``vit``), so that bad input fails with one clear message.

Each solution function calls its checks in one line (``checks.yolo_raw(raw, num_boxes)``); the
student's file keeps the assignment.  ``TypeError`` for a wrong kind of value, ``ValueError`` for a
wrong shape or range, naming the argument and what was expected.
"""

from __future__ import annotations

import torch

from A5_detection.common import check_image_batch
from helpers.checks import check_gt_boxes, check_int, check_real


def _got(value) -> str:
    """A value's shape, or its type when it is not a tensor (for messages)."""
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


# --------------------------------------------------------------------------- YOLOv1


def yolo_layout(layout, names) -> tuple:
    """A YOLOv1 backbone layout: a name of ``names`` or a non-empty sequence of ``(kernel, channels, stride)``
    entries (positive ints) and ``"M"`` (max-pool).  Returns the entries as a tuple."""
    if isinstance(layout, str):
        raise ValueError(f"layout must be one of {sorted(names)} or a tuple of (kernel, channels, stride) / "
                         f"'M' entries, got {layout!r}")
    if not isinstance(layout, (list, tuple)) or not layout:
        raise TypeError(f"layout must be a name or a non-empty sequence of entries, got {layout!r}")
    for entry in layout:
        ok = entry == "M" or (isinstance(entry, (list, tuple)) and len(entry) == 3
                              and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in entry))
        if not ok:
            raise ValueError(f"layout entries must be (kernel, channels, stride) positive ints or 'M', got {entry!r}")
    return tuple(layout)


def yolov1_settings(num_classes, image_size, grid_size, num_boxes, head, hidden, dropout, stride: int,
                    lambda_coord, lambda_noobj, class_names) -> int:
    """The settings of ``YOLOv1(...)``; ``stride`` is the layout's.  Returns the feature map's side
    ``image_size / stride``."""
    check_int(num_classes, "num_classes", minimum=1)
    check_int(image_size, "image_size", minimum=1)
    check_int(grid_size, "grid_size", minimum=1)
    check_int(num_boxes, "num_boxes", minimum=1)
    check_int(hidden, "hidden", minimum=1)
    check_real(dropout, "dropout", low=0.0, high=1.0)
    if image_size % grid_size:
        raise ValueError(f"image_size must be a multiple of grid_size so that every cell is a whole number of "
                         f"pixels: {image_size} px is not divisible into {grid_size} x {grid_size} cells")
    if head not in ("fc", "conv"):
        raise ValueError(f"head must be 'fc' or 'conv', got {head!r}")
    if image_size % stride:
        raise ValueError(f"image_size must be a multiple of the layout's stride {stride}, got {image_size}")
    feature_size = image_size // stride
    if head == "conv" and feature_size != grid_size:
        raise ValueError(f"the conv head needs an S x S feature map: image_size / stride = {image_size} / {stride} "
                         f"= {feature_size}, but grid_size is {grid_size}")
    if class_names is not None and (len(class_names) != num_classes
                                    or not all(isinstance(n, str) for n in class_names)):
        raise ValueError(f"class_names must be {num_classes} strings, got {class_names!r}")
    check_real(lambda_coord, "lambda_coord", low=0.0)
    check_real(lambda_noobj, "lambda_noobj", low=0.0)
    return feature_size


def yolo_images(images, grid_size: int, image_size: int) -> None:
    """A YOLOv1 model's input: float ``(N, 3, image_size, image_size)``."""
    check_image_batch(images, grid_size, f"the grid size {grid_size} (whole-pixel cells)")
    height, width = images.shape[-2:]
    if (height, width) != (image_size, image_size):
        raise ValueError(f"this model takes {image_size} x {image_size} images, got {height} x {width}")


def yolo_grid(grid_size, image_size) -> tuple[int, int]:
    """``S`` and the image side: ints, the side a multiple of ``S`` (whole-pixel cells)."""
    grid_size = check_int(grid_size, "grid_size", minimum=1)
    image_size = check_int(image_size, "image_size", minimum=1)
    if image_size % grid_size:
        raise ValueError(f"image_size must be a multiple of grid_size (whole-pixel cells): {image_size} px does not "
                         f"divide into {grid_size} cells")
    return grid_size, image_size


def yolo_gt_boxes(gt_boxes, image_size: int, num_classes: int | None) -> None:
    """The course's padded ground truth, every box centre inside the image."""
    check_gt_boxes(gt_boxes, num_classes)
    rows = gt_boxes.detach().reshape(-1, 5)
    real = rows[rows[:, 4] >= 0]
    if real.numel():
        cx, cy = (real[:, 0] + real[:, 2]) / 2, (real[:, 1] + real[:, 3]) / 2
        outside = (cx < 0) | (cx > image_size) | (cy < 0) | (cy > image_size)
        if bool(outside.any()):
            raise ValueError(f"gt_boxes: every box centre must lie inside the {image_size} x {image_size} image, "
                             f"got a box {real[outside][0, :4].tolist()}")


def encode_args(gt_boxes, grid_size, image_size, num_classes) -> tuple[int, int, int]:
    """``encode_targets``' arguments; returns ``(grid_size, image_size, num_classes)``."""
    grid_size, image_size = yolo_grid(grid_size, image_size)
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    yolo_gt_boxes(gt_boxes, image_size, num_classes)
    return grid_size, image_size, num_classes


def cell_coordinates(xy, wh) -> None:
    """``xy`` and ``wh``: tensors of the same shape ``(N, S, S, ..., 2)``."""
    if not isinstance(xy, torch.Tensor) or xy.dim() < 4 or xy.shape[-1] != 2 or xy.shape[1] != xy.shape[2] \
            or not isinstance(wh, torch.Tensor) or wh.shape != xy.shape:
        raise ValueError(f"xy and wh must be tensors of the same shape (N, S, S, ..., 2), got "
                         f"{getattr(xy, 'shape', type(xy).__name__)} and {getattr(wh, 'shape', type(wh).__name__)}")


def yolo_raw(raw, num_boxes) -> None:
    """A YOLOv1 output grid ``(N, S, S, B * 5 + C)`` with ``C >= 1``."""
    num_boxes = check_int(num_boxes, "num_boxes", minimum=1)
    if not isinstance(raw, torch.Tensor) or raw.dim() != 4 or raw.shape[1] != raw.shape[2] \
            or raw.shape[3] <= num_boxes * 5:
        raise ValueError(f"raw must have shape (N, S, S, B * 5 + C) with B = {num_boxes} and C >= 1, got {_got(raw)}")


def cell_box_pairs(pred_boxes, target_boxes) -> None:
    """``pred_boxes (N, S, S, B, 4)`` and ``target_boxes (N, S, S, 4)``."""
    if not isinstance(pred_boxes, torch.Tensor) or pred_boxes.dim() != 5 or pred_boxes.shape[-1] != 4:
        raise ValueError(f"pred_boxes must have shape (N, S, S, B, 4), got {_got(pred_boxes)}")
    if not isinstance(target_boxes, torch.Tensor) or target_boxes.shape != pred_boxes.shape[:3] + (4,):
        raise ValueError(f"target_boxes must have shape {tuple(pred_boxes.shape[:3]) + (4,)}, got {_got(target_boxes)}")


def yolo_loss_args(raw, targets, num_classes: int, lambda_coord, lambda_noobj) -> tuple[float, float]:
    """``targets (N, S, S, 5 + C)`` matching ``raw``, and the two weights (returned as floats)."""
    if not isinstance(targets, torch.Tensor) or targets.shape[:3] != raw.shape[:3] \
            or targets.dim() != 4 or targets.shape[3] != 5 + num_classes:
        raise ValueError(f"targets must have shape {tuple(raw.shape[:3]) + (5 + num_classes,)} "
                         f"(encode_targets with the same S and C), got {_got(targets)}")
    return check_real(lambda_coord, "lambda_coord", low=0.0), check_real(lambda_noobj, "lambda_noobj", low=0.0)


def yolo_decode_args(raw, image_size, score_thresh, nms_thresh, max_detections) -> tuple[float, float]:
    """``decode_predictions``' settings; returns ``(score_thresh, nms_thresh)`` as floats."""
    yolo_grid(raw.shape[1], image_size)
    score_thresh = check_real(score_thresh, "score_thresh")
    nms_thresh = check_real(nms_thresh, "nms_thresh", low=0.0, high=1.0)
    check_int(max_detections, "max_detections", minimum=1)
    return score_thresh, nms_thresh


def augmentation_args(images, gt_boxes, max_scale, max_shift) -> tuple[float, float]:
    """Float images ``(N, C, H, W)``, one ground-truth block per image, the two ranges (as floats)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError("images must be a float tensor (N, C, H, W)")
    check_gt_boxes(gt_boxes)
    if gt_boxes.shape[0] != images.shape[0]:
        raise ValueError(f"gt_boxes must hold one (M, 5) block per image, got {gt_boxes.shape[0]} for "
                         f"{images.shape[0]} images")
    return check_real(max_scale, "max_scale", low=0.0, high=0.9), check_real(max_shift, "max_shift", low=0.0, high=1.0)
