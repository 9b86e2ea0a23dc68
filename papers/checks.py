"""Input checks of the papers' modules (``yolov1``, ``detr``, ``vit``), so that bad input fails with one clear message.

Each solution function calls its checks in one line (``checks.yolo_raw(raw, num_boxes)``); the
student's file keeps the assignment.  ``TypeError`` for a wrong kind of value, ``ValueError`` for a
wrong shape or range, naming the argument and what was expected.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch

from helpers.checks import check_gt_boxes, check_image_batch, check_int, check_real


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


# --------------------------------------------------------------------------- DETR


def weight(value, name: str) -> float:
    """A loss or cost weight: a finite real number ``>= 0`` (returned as a float)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def cost_matrix(cost) -> np.ndarray:
    """A cost matrix ``(n, m)`` of finite real numbers (array, tensor or nested lists) as float64 NumPy."""
    if isinstance(cost, torch.Tensor):
        cost = cost.detach().cpu().double().numpy()
    cost = np.asarray(cost)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix (n, m), got shape {cost.shape}")
    if cost.dtype == bool or not (np.issubdtype(cost.dtype, np.integer) or np.issubdtype(cost.dtype, np.floating)):
        raise TypeError(f"cost must hold real numbers, got dtype {cost.dtype}")
    cost = cost.astype(np.float64)
    if not np.isfinite(cost).all():
        raise ValueError("cost must hold finite numbers (no nan or inf)")
    return cost


def box_tensor(boxes, layout: str) -> None:
    """Boxes ``(..., 4)``; ``layout`` names the four numbers in the message."""
    if not isinstance(boxes, torch.Tensor) or boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be a tensor of shape (..., 4) = {layout}")


def _even_dim(dim, minimum: int) -> None:
    check_int(dim, "dim", minimum=minimum)
    if dim % 2:
        raise ValueError(f"dim must be even (half for rows, half for columns), got {dim}")


def grid_code(height, width, dim) -> None:
    """A grid ``height x width`` (ints >= 1) and an even code size ``dim``."""
    check_int(height, "height", minimum=1)
    check_int(width, "width", minimum=1)
    _even_dim(dim, 1)


def positions(positions, dim) -> None:
    """Real-valued positions (a float tensor) and a code size ``dim >= 1``."""
    if not isinstance(positions, torch.Tensor) or not positions.is_floating_point():
        raise TypeError("positions must be a float tensor")
    check_int(dim, "dim", minimum=1)


def box_code(boxes, dim) -> None:
    """``(cx, cy, w, h)`` boxes ``(..., 4)`` and an even code size ``dim >= 2``."""
    box_tensor(boxes, "(cx, cy, w, h)")
    _even_dim(dim, 2)


def layer_sizes(d_model, num_heads) -> None:
    """A transformer layer's width and heads: ints >= 1, the heads dividing the width."""
    check_int(d_model, "d_model", minimum=1)
    check_int(num_heads, "num_heads", minimum=1)
    if d_model % num_heads:
        raise ValueError(f"d_model ({d_model}) must be a multiple of num_heads ({num_heads})")


def detr_settings(num_classes, d_model, num_heads, num_encoder_layers, num_decoder_layers, ffn_dim, num_queries,
                  feature_stride, image_size, class_names, query_type) -> None:
    """The settings of ``DETR(...)``."""
    for name, value in (("num_classes", num_classes), ("d_model", d_model), ("num_heads", num_heads),
                        ("num_encoder_layers", num_encoder_layers), ("num_decoder_layers", num_decoder_layers),
                        ("ffn_dim", ffn_dim), ("num_queries", num_queries), ("image_size", image_size)):
        check_int(value, name, minimum=1)
    if query_type not in ("anchor", "learned"):
        raise ValueError(f"query_type must be 'anchor' or 'learned', got {query_type!r}")
    if feature_stride not in (8, 16, 32):
        raise ValueError(f"feature_stride must be 8, 16 or 32 (the trunk's c3, c4, c5), got {feature_stride!r}")
    if d_model % 2:
        raise ValueError(f"d_model must be even (2-D positional encoding), got {d_model}")
    if image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names must name the {num_classes} classes, got {len(class_names)} names")


def detr_images(images) -> None:
    """DETR's input: float ``(B, 3, H, W)``, ``H`` and ``W`` multiples of 32."""
    check_image_batch(images, 32, "32 (the backbone's coarsest stride)")


def set_outputs(logits, boxes, name: str = "") -> None:
    """DETR's outputs: ``logits (..., Q, C + 1)`` and ``boxes (..., Q, 4)`` of matching shapes."""
    if not isinstance(logits, torch.Tensor) or not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name}logits and boxes must be tensors")
    if logits.dim() != boxes.dim() or logits.shape[:-1] != boxes.shape[:-1] or boxes.shape[-1] != 4 \
            or logits.shape[-1] < 2:
        raise ValueError(f"{name}logits (..., Q, C + 1) and boxes (..., Q, 4) must match, got "
                         f"{tuple(logits.shape)} and {tuple(boxes.shape)}")


def set_target(target: dict, num_classes: int, where: str) -> None:
    """One image's set target ``{"labels" (K,), "boxes" (K, 4)}``; ``where`` names it in the message."""
    if not isinstance(target, dict) or "labels" not in target or "boxes" not in target:
        raise ValueError(f"{where} must be a dict with 'labels' (K,) and 'boxes' (K, 4) (cx, cy, w, h)")
    labels, boxes = target["labels"], target["boxes"]
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4 \
            or not boxes.is_floating_point():
        raise ValueError(f"{where}['boxes'] must be a float tensor (K, 4) = (cx, cy, w, h), got "
                         f"{tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__}")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.shape[0] != boxes.shape[0] \
            or labels.is_floating_point():
        raise ValueError(f"{where}['labels'] must be an integer tensor ({boxes.shape[0]},), one per box")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"{where}['labels'] must lie in [0, {num_classes}), got {labels.tolist()}")
    if boxes.numel() and (not bool(torch.isfinite(boxes).all()) or bool((boxes[:, 2:] < 0).any())):
        raise ValueError(f"{where}['boxes'] must be finite (cx, cy, w, h) with w, h >= 0")


# --------------------------------------------------------------------------- ViT


def vit_images(images, channels: int | None = None, size: int | None = None) -> None:
    """Float images ``(N, C, H, W)``, with ``channels`` channels and ``size x size`` pixels when given."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a float tensor (N, C, H, W), got {got}")
    if channels is not None and images.shape[1] != channels:
        raise ValueError(f"images must have {channels} channel(s), got shape {tuple(images.shape)}")
    if size is not None and tuple(images.shape[2:]) != (size, size):
        raise ValueError(f"images must be {size} x {size} (the model's image_size), got shape {tuple(images.shape)}")


def patchify_args(images, patch_size) -> int:
    """Float images whose sides are multiples of ``patch_size``; returns ``P``."""
    vit_images(images)
    P = check_int(patch_size, "patch_size", minimum=1)
    H, W = images.shape[2:]
    if H % P or W % P:
        raise ValueError(f"image size {H} x {W} is not divisible by patch_size {P}: use a patch size that "
                         f"divides both sides, or resize the images")
    return P


def unpatchify_args(patches, patch_size, height: int, width: int) -> int:
    """Patches ``(N, L, C * P * P)`` that tile a ``height x width`` image; returns ``P``."""
    P = check_int(patch_size, "patch_size", minimum=1)
    if not isinstance(patches, torch.Tensor) or patches.dim() != 3:
        raise ValueError(f"patches must be a tensor (N, L, C*P*P), got {_got(patches)}")
    _, L, D = patches.shape
    if height % P or width % P or L != (height // P) * (width // P) or D % (P * P):
        raise ValueError(f"patches {tuple(patches.shape)} do not tile a {height} x {width} image "
                         f"with {P} x {P} patches")
    return P


def vit_block_settings(emb_dim, num_heads, mlp_dim, dropout) -> None:
    """A ViT block's sizes (ints >= 1, the heads dividing ``emb_dim``) and dropout in ``[0, 1)``."""
    check_int(emb_dim, "emb_dim", minimum=1)
    check_int(num_heads, "num_heads", minimum=1)
    check_int(mlp_dim, "mlp_dim", minimum=1)
    if emb_dim % num_heads:
        raise ValueError(f"num_heads={num_heads} must divide emb_dim={emb_dim}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")


def vit_settings(image_size, patch_size, in_channels, num_classes, depth, mean, std, class_names,
                 stem_channels) -> None:
    """The settings of ``VisionTransformer(...)``."""
    check_int(image_size, "image_size", minimum=1)
    check_int(patch_size, "patch_size", minimum=1)
    check_int(in_channels, "in_channels", minimum=1)
    check_int(num_classes, "num_classes", minimum=1)
    check_int(depth, "depth", minimum=1)
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not divisible by patch_size {patch_size}")
    if len(mean) != in_channels or len(std) != in_channels or min(std) <= 0:
        raise ValueError(f"mean and std need {in_channels} value(s) each (std > 0), got {mean!r}, {std!r}")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names must name the {num_classes} classes, got {len(class_names)} names")
    if not isinstance(stem_channels, (list, tuple)):
        raise ValueError(f"stem_channels must be a list of channel counts (empty for the plain ViT), "
                         f"got {stem_channels!r}")
