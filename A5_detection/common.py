"""A5: box operations shared by the two detectors (and later by ``papers/``).

Names follow EECS 498/598 and torchvision so course material applies unchanged:

* :func:`box_iou` -- intersection over union of two sets of boxes;
* :func:`paired_iou` -- IoU of matched pairs of boxes, element by element (YOLOv1's responsible box);
* :func:`generalized_box_iou` -- generalised IoU (Rezatofighi et al., 2019), IoU minus the share of the
  smallest enclosing box that the union leaves empty (DETR's box loss and matching cost);
* :func:`nms` -- greedy non-maximum suppression, the same indices as ``torchvision.ops.nms``;
* :func:`class_spec_nms` -- NMS inside each class, the same as ``torchvision.ops.batched_nms``;
* :func:`class_candidates` -- which (box, class) pairs of a class-probability table become detections:
  every pair scoring at least a threshold (a box may enter several classes' rankings), or only each
  box's best class;
* :func:`roi_align` -- RoIAlign (Mask R-CNN) with bilinear sampling written by hand, the same
  values as ``torchvision.ops.roi_align``; gradients flow to the features through autograd;
* :func:`get_fpn_location_coords` -- image-pixel centres of every location of every FPN level (FCOS);
* :func:`average_precision` and :func:`evaluate_detections` -- PASCAL VOC average precision and mAP;
* :func:`detection_errors` -- each detection of an image correct, a duplicate, mislabelled, mislocated or
  on background, and the boxes missed: the failure cases behind the mAP (:func:`count_errors` over a
  set of images, :func:`confusion_counts` for which class was taken for which, :func:`ignore_classes`
  for class-agnostic AP);
* :class:`DetectorBackboneWithFPN` -- a CNN trunk plus a Feature Pyramid Network (strides 8, 16, 32).
* :func:`check_image_batch` -- the image-batch check every detector shares.  The box checks
  (``check_boxes``, ``check_gt_boxes``, imported here) live in ``helpers.checks`` beside the other
  input checks, so the datasets of ``helpers.data`` use them too.

Conventions, the same everywhere in this module:

* Boxes are ``(N, 4)`` floating tensors ``(x1, y1, x2, y2)`` in *continuous* pixel coordinates
  (no "+1" of the old VOC devkit): the box ``[0, 0, 2, 1]`` is 2 wide, 1 high, area 2.  A box
  with ``x2 < x1`` or ``y2 < y1``, a non-finite coordinate or a wrong shape is refused with a
  ``ValueError``; a box of zero width or height is allowed.  Two zero-area boxes have IoU
  ``0 / 0 = nan``, as in torchvision; NMS never suppresses on a nan IoU.
* NMS ranks boxes by a *stable* descending sort of the scores: boxes of equal score keep their
  input order (lower index first).  That is what ``torchvision.ops.nms`` does on the CPU
  (checked by the tests on up to thousands of tied boxes; its CUDA kernel makes no such promise).
  A box is suppressed when its IoU with a kept box is *strictly greater* than ``iou_threshold``.
* Evaluation: a detection is a match when its IoU with a ground-truth box is *at least*
  ``iou_threshold`` (``>=``, as in the official VOC devkit), see :func:`evaluate_detections`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helpers.checks import check_boxes, check_gt_boxes, check_int, check_labels, check_real

__all__ = [
    "ERROR_KINDS",
    "DetectorBackboneWithFPN",
    "average_precision",
    "box_iou",
    "check_gt_boxes",
    "check_image_batch",
    "class_candidates",
    "class_spec_nms",
    "confusion_counts",
    "count_errors",
    "detection_errors",
    "evaluate_detections",
    "generalized_box_iou",
    "get_fpn_location_coords",
    "ignore_classes",
    "nms",
    "paired_iou",
    "predict_in_batches",
    "roi_align",
]


# --------------------------------------------------------------------------- input checks


def _check_scores(scores, num: int, name: str = "scores") -> None:
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({num},), got {type(scores).__name__}")
    if tuple(scores.shape) != (num,):
        raise ValueError(f"{name} must have shape ({num},), one score per box, got {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {scores.dtype}")
    nan = torch.isnan(scores)
    if nan.any():
        raise ValueError(f"{name} hold {int(nan.sum())} NaN value(s), the first at index {int(nan.nonzero()[0])}: "
                         "NaN cannot be ranked (look for a NaN in the model's outputs)")


def _check_class_ids(class_ids, num: int, name: str = "class_ids") -> None:
    if not isinstance(class_ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({num},), got {type(class_ids).__name__}")
    if tuple(class_ids.shape) != (num,):
        raise ValueError(f"{name} must have shape ({num},), one class per box, got {tuple(class_ids.shape)}")
    if class_ids.is_floating_point() or class_ids.is_complex() or class_ids.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got {class_ids.dtype}")
    if class_ids.numel() and int(class_ids.min()) < 0:
        raise ValueError(f"{name} must hold class indices >= 0, got {int(class_ids.min())}")


def check_image_batch(images, multiple: int, what: str) -> None:
    """Raise unless ``images`` is a float batch ``(B, 3, H, W)`` with ``H`` and ``W`` multiples of ``multiple``.

    ``what`` names the multiple in the message (``"32 (the coarsest stride)"``...).  Shared by the
    detectors of A5 and ``papers/``.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape (B, 3, H, W), got {got}")
    if not images.is_floating_point():
        raise TypeError(f"images must be floats in [0, 1], got {images.dtype}; use images.float() / 255")
    if images.shape[2] % multiple or images.shape[3] % multiple:
        raise ValueError(f"images' height and width must be multiples of {what}, got {tuple(images.shape[2:])}")


def _pair(output_size) -> tuple[int, int]:
    """``output_size`` as ``(oh, ow)``: an int ``s`` means ``(s, s)``."""
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        oh, ow = output_size
    else:
        oh = ow = output_size
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in (oh, ow)):
        raise ValueError(f"output_size must be a positive int or a pair (height, width) of positive ints, "
                         f"got {output_size!r}")
    return oh, ow


# --------------------------------------------------------------------------- IoU and NMS


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every pair of boxes.

    ``IoU(a, b) = area(a ∩ b) / (area(a) + area(b) - area(a ∩ b))`` in continuous coordinates
    (area of ``[x1, y1, x2, y2]`` = ``(x2 - x1) * (y2 - y1)``).

    Args:
        boxes1: ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.
        boxes2: ``(M, 4)`` boxes.

    Returns:
        ``(N, M)`` tensor: ``iou[i, j]`` between ``boxes1[i]`` and ``boxes2[j]``, in [0, 1]
        (``nan`` for two zero-area boxes).
    """
    check_boxes(boxes1, "boxes1")
    check_boxes(boxes2, "boxes2")
    ### BEGIN SOLUTION
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2)
    size = (bottom_right - top_left).clamp(min=0)
    intersection = size[..., 0] * size[..., 1]
    union = area1[:, None] + area2[None, :] - intersection
    return intersection / union
    ### END SOLUTION


def paired_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of each box with the box at the same position: ``boxes1[..., k, :]`` with ``boxes2[..., k, :]``.

    :func:`box_iou` compares *every* pair of two lists; YOLOv1's responsible-box rule needs only
    matching pairs, for every cell of a batch at once.  Boxes ``(x1, y1, x2, y2)`` of
    the same shape ``(..., 4)`` (broadcastable); a zero-area union gives 0, not ``nan``.

    Returns:
        ``(...)`` IoUs in [0, 1].
    """
    if not isinstance(boxes1, torch.Tensor) or not isinstance(boxes2, torch.Tensor) \
            or boxes1.shape[-1] != 4 or boxes2.shape[-1] != 4:
        raise ValueError(f"boxes1 and boxes2 must be tensors (..., 4) of (x1, y1, x2, y2), got "
                         f"{getattr(boxes1, 'shape', type(boxes1).__name__)} and "
                         f"{getattr(boxes2, 'shape', type(boxes2).__name__)}")
    ### BEGIN SOLUTION
    size1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0)
    size2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0)
    overlap = (torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
               - torch.maximum(boxes1[..., :2], boxes2[..., :2])).clamp(min=0)
    intersection = overlap[..., 0] * overlap[..., 1]
    union = size1[..., 0] * size1[..., 1] + size2[..., 0] * size2[..., 1] - intersection
    return torch.where(union > 0, intersection / union.clamp(min=1e-12), torch.zeros_like(union))
    ### END SOLUTION


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5) -> torch.Tensor:
    """Greedy non-maximum suppression.

    Walk the boxes from the highest score down; keep a box unless a box kept before it overlaps
    it with IoU *strictly greater* than ``iou_threshold``.  Equal scores are ranked by a stable
    sort, lower index first (``torchvision.ops.nms`` on the CPU does the same, so the result is
    identical to it, ties included).

    Args:
        boxes: ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.
        scores: ``(N,)`` their scores.
        iou_threshold: boxes overlapping a kept box with IoU above it are discarded.

    Returns:
        keep: ``(K,)`` int64 indices into ``boxes`` of the kept boxes, in decreasing order of score.
    """
    check_boxes(boxes)
    _check_scores(scores, boxes.shape[0])
    iou_threshold = check_real(iou_threshold, "iou_threshold", 0.0, 1.0)
    ### BEGIN SOLUTION
    return _greedy_nms(boxes, scores, iou_threshold, class_ids=None)
    ### END SOLUTION


#: rows of the pairwise suppression table computed at once in :func:`_greedy_nms` (memory bound).
_ROW_CHUNK = 1024


def _greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
                class_ids: torch.Tensor | None) -> torch.Tensor:
    """NMS of :func:`nms`; with ``class_ids (N,)`` a box can only suppress boxes of its own class.

    First the table ``over[i, j]`` = "box ``i`` would suppress box ``j``" for all pairs (in score
    order, ``_ROW_CHUNK`` rows at a time to bound memory); then one cheap pass down the sorted
    boxes: a box not yet suppressed is kept and suppresses its row.  The IoU is computed exactly
    as ``torchvision.ops.nms`` does (same operations in the boxes' dtype) and compared with the
    threshold in float64, as its C++ does, so a box lying exactly on the threshold is decided the
    same way.
    """
    ### BEGIN SOLUTION
    boxes, scores = boxes.detach(), scores.detach()
    order = torch.sort(scores, descending=True, stable=True).indices
    x1, y1, x2, y2 = boxes[order].unbind(dim=1)
    areas = (x2 - x1) * (y2 - y1)
    classes = class_ids[order] if class_ids is not None else None
    n = order.numel()
    over = torch.zeros(n, n, dtype=torch.bool)
    for lo in range(0, n, _ROW_CHUNK):
        rows = slice(lo, min(lo + _ROW_CHUNK, n))
        width = (torch.minimum(x2[rows, None], x2[None]) - torch.maximum(x1[rows, None], x1[None])).clamp(min=0)
        height = (torch.minimum(y2[rows, None], y2[None]) - torch.maximum(y1[rows, None], y1[None])).clamp(min=0)
        intersection = width * height
        iou = intersection / (areas[rows, None] + areas[None] - intersection)
        block = iou.double() > iou_threshold  # nan (two empty boxes) never suppresses
        if classes is not None:
            block &= classes[rows, None] == classes[None]
        over[rows] = block.cpu()
    over = over.numpy()
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for i in range(n):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]  # also marks earlier boxes, which are already decided
    return order[torch.as_tensor(keep, dtype=torch.int64, device=order.device)]
    ### END SOLUTION


def class_spec_nms(boxes: torch.Tensor, scores: torch.Tensor, class_ids: torch.Tensor,
                   iou_threshold: float = 0.5) -> torch.Tensor:
    """Class-specific NMS: :func:`nms` run separately inside each class, results merged by score.

    A box is only ever suppressed by a box of its own class.  The kept indices are sorted by
    decreasing score, equal scores lower index first -- the same as ``torchvision.ops.batched_nms``
    (which for small inputs shifts each class's boxes far apart and runs one NMS; here the IoU of
    boxes of different classes is simply never looked at, which needs no coordinate shift and
    loses no float precision).

    Args:
        boxes: ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.
        scores: ``(N,)`` their scores.
        class_ids: ``(N,)`` integer class of each box.
        iou_threshold: as for :func:`nms`.

    Returns:
        keep: ``(K,)`` int64 indices of the kept boxes, in decreasing order of score.
    """
    check_boxes(boxes)
    _check_scores(scores, boxes.shape[0])
    _check_class_ids(class_ids, boxes.shape[0])
    iou_threshold = check_real(iou_threshold, "iou_threshold", 0.0, 1.0)
    ### BEGIN SOLUTION
    return _greedy_nms(boxes, scores, iou_threshold, class_ids=class_ids.to(boxes.device))
    ### END SOLUTION


def class_candidates(probs: torch.Tensor, score_thresh: float,
                     best_class_only: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which (box, class) pairs of a score table become detections.

    A detector scores every candidate box for every class.  By default every pair scoring at least
    ``score_thresh`` is kept, so one box can enter the rankings of several classes -- a box that is
    55 % shirt and 40 % pullover is a shirt detection *and* a lower-ranked pullover detection.
    This is the rule of FCOS's and torchvision's Faster R-CNN post-processing and of YOLOv1's
    class-specific scores; mAP, which ranks each class on its own, rewards it.  With
    ``best_class_only`` each box keeps only its most probable class (the first of equal ones).

    Args:
        probs: ``(N, C)`` floating scores of ``N`` boxes for ``C`` classes.
        score_thresh: lowest score kept.
        best_class_only: keep at most one class per box.

    Returns:
        ``(rows, classes, scores)``, each ``(K,)``: the box index (int64) and class (int64) of each kept
        pair and its score, ordered by box, then class.
    """
    if not isinstance(probs, torch.Tensor) or probs.dim() != 2 or not probs.is_floating_point():
        got = f"shape {tuple(probs.shape)}, {probs.dtype}" if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise ValueError(f"probs must be an (N, C) floating-point tensor of class scores, got {got}")
    score_thresh = check_real(score_thresh, "score_thresh", 0.0, 1.0)
    ### BEGIN SOLUTION
    num_boxes, num_classes = probs.shape
    if best_class_only:
        scores, classes = probs.max(dim=1)
        rows = torch.arange(num_boxes, device=probs.device)
    else:
        rows = torch.arange(num_boxes, device=probs.device).repeat_interleave(num_classes)
        classes = torch.arange(num_classes, device=probs.device).repeat(num_boxes)
        scores = probs.reshape(-1)
    keep = scores >= score_thresh
    return rows[keep], classes[keep], scores[keep]
    ### END SOLUTION


# --------------------------------------------------------------------------- RoIAlign


def _roi_rows(features: torch.Tensor, boxes) -> torch.Tensor:
    """Boxes of :func:`roi_align` as one ``(K, 5)`` tensor in the features' dtype and device."""
    num_images = features.shape[0]
    if isinstance(boxes, (list, tuple)):
        if len(boxes) != num_images:
            raise ValueError(f"boxes given as a list must hold one (Ki, 4) tensor per image: "
                             f"{num_images} image(s) in features, got {len(boxes)} tensor(s)")
        for i, b in enumerate(boxes):
            check_boxes(b, f"boxes[{i}]")
        rows = [torch.cat([b.new_full((b.shape[0], 1), i), b], dim=1) for i, b in enumerate(boxes)]
        rois = torch.cat(rows) if rows else features.new_zeros(0, 5)
    else:
        check_boxes(boxes, "boxes", columns=5)
        rois = boxes
        index = rois.detach()[:, 0]
        if rois.numel() and (bool((index != index.round()).any()) or float(index.min()) < 0
                             or float(index.max()) >= num_images):
            raise ValueError(f"boxes[:, 0] must hold batch indices, integers in [0, {num_images}) for "
                             f"{num_images} image(s), got values from {float(index.min())} to "
                             f"{float(index.max())}")
    return rois.to(dtype=features.dtype, device=features.device)


def _bilinear_weights(start: torch.Tensor, end: torch.Tensor, size: int, bins: int, spatial_scale: float,
                      sampling_ratio: int, aligned: bool) -> torch.Tensor:
    """RoIAlign along one axis: the weight of every feature row (or column) in every output bin.

    Bilinear interpolation is linear interpolation along y times linear interpolation along x,
    and a sample outside the map is dropped when *either* coordinate is outside, so the
    average over a bin's ``grid_h x grid_w`` samples factorises: ``out[k, c, p, q] =
    sum_{r, s} wy[k, p, r] * features[b_k, c, r, s] * wx[k, q, s]``.  This function builds
    ``wy`` (or ``wx``) for one axis.

    Args:
        start, end: ``(K,)`` box edges along the axis, in image coordinates.
        size: ``H`` (or ``W``), the feature map's length along the axis.
        bins: ``oh`` (or ``ow``), output bins along the axis.
        spatial_scale, sampling_ratio, aligned: as for :func:`roi_align`.

    Returns:
        ``(K, bins, size)`` weights; a bin's row sums to 1 where all its samples lie inside the map.
    """
    ### BEGIN SOLUTION
    dtype, device = start.dtype, start.device
    offset = 0.5 if aligned else 0.0
    start = start * spatial_scale - offset  # box edges in feature-map coordinates
    length = end * spatial_scale - offset - start
    if not aligned:
        length = length.clamp(min=1.0)  # the legacy version makes tiny boxes 1 pixel long
    bin_size = length / bins
    if sampling_ratio > 0:
        grid = torch.full_like(length, sampling_ratio)
    else:
        grid = torch.ceil(length / bins)  # samples per bin along this axis, one per unit of length
    num_samples = int(grid.max()) if grid.numel() else 0
    bin_index = torch.arange(bins, device=device, dtype=dtype)[None, :, None]  # (1, bins, 1)
    sample_index = torch.arange(num_samples, device=device, dtype=dtype)[None, None, :]  # (1, 1, G)
    start, bin_size, grid = start[:, None, None], bin_size[:, None, None], grid[:, None, None]
    # sample positions (K, bins, G): centres of grid cells inside each bin
    pos = start + bin_index * bin_size + (sample_index + 0.5) * bin_size / grid
    used = (sample_index < grid) & (pos >= -1.0) & (pos <= size)  # samples beyond -1 or size count 0
    pos = torch.where(used, pos, 0.0).clamp(min=0.0)  # unused ones (nan for an empty grid) read row 0, weight 0
    low = pos.floor().long()
    at_edge = low >= size - 1  # past the last row: read the last row alone
    low = low.clamp(max=size - 1)
    high = torch.where(at_edge, low, low + 1)
    frac = torch.where(at_edge, torch.zeros_like(pos), pos - low.to(dtype))
    zero = torch.zeros_like(pos)
    weights = torch.zeros(start.shape[0], bins, size, dtype=dtype, device=device)
    weights.scatter_add_(2, low, torch.where(used, 1.0 - frac, zero))
    weights.scatter_add_(2, high, torch.where(used, frac, zero))
    return weights / grid.clamp(min=1.0)
    ### END SOLUTION


def roi_align(features: torch.Tensor, boxes, output_size, spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> torch.Tensor:
    """RoIAlign (Mask R-CNN): a fixed-size feature crop of every box, by bilinear sampling.

    Each box is cut into ``oh x ow`` bins; each bin averages ``grid_h x grid_w`` bilinearly
    interpolated samples at the centres of a regular grid inside the bin.  Box coordinates are
    multiplied by ``spatial_scale`` to reach feature-map coordinates (``1 / stride``) and, with
    ``aligned=True``, shifted by -0.5 so that pixel centres sit at integer coordinates (Detectron2);
    ``aligned=False`` is the legacy version, which also stretches boxes shorter than 1 to 1.
    Samples further than one pixel outside the map count as 0; samples between -1 and 0 (or
    between ``H - 1`` and ``H``) read the edge row.  The values equal ``torchvision.ops.roi_align``.
    Gradients flow to ``features`` (through autograd), not to the boxes -- as in torchvision.

    Args:
        features: ``(N, C, H, W)`` feature maps.
        boxes: ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)``, or a list of ``N`` tensors
            ``(K_i, 4)``, the boxes of image ``i``, in image coordinates.
        output_size: ``oh`` (square) or ``(oh, ow)``.
        spatial_scale: image -> feature-map scale (``1 / 8`` for a stride-8 map).
        sampling_ratio: samples per bin along each axis; ``<= 0``: adaptive, ``ceil(box size / bins)``.
        aligned: shift boxes by half a pixel (see above).

    Returns:
        ``(K, C, oh, ow)`` pooled features, the rows in the order of ``boxes``.
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must be a tensor of shape (N, C, H, W), got {got}")
    if not features.is_floating_point():
        raise TypeError(f"features must be a floating-point tensor, got {features.dtype}")
    oh, ow = _pair(output_size)
    spatial_scale = check_real(spatial_scale, "spatial_scale", low=0.0, low_open=True)
    sampling_ratio = check_int(sampling_ratio, "sampling_ratio")
    if not isinstance(aligned, bool):
        raise TypeError(f"aligned must be a bool, got {aligned!r}")
    rois = _roi_rows(features, boxes).detach()
    _, channels, height, width = features.shape
    out = features.new_zeros(rois.shape[0], channels, oh, ow)
    ### BEGIN SOLUTION
    row_weights = _bilinear_weights(rois[:, 2], rois[:, 4], height, oh, spatial_scale, sampling_ratio, aligned)
    col_weights = _bilinear_weights(rois[:, 1], rois[:, 3], width, ow, spatial_scale, sampling_ratio, aligned)
    batch_index = rois[:, 0].long()
    for image in torch.unique(batch_index).tolist():
        rows = (batch_index == image).nonzero()[:, 0]
        # (k, oh, H) x (C, H, W) -> (k, C, oh, W); then x (k, ow, W) -> (k, C, oh, ow)
        partial = torch.einsum("kph,chw->kcpw", row_weights[rows], features[image])
        out[rows] = torch.einsum("kcpw,kqw->kcpq", partial, col_weights[rows])
    ### END SOLUTION
    return out


# --------------------------------------------------------------------------- FCOS locations


def get_fpn_location_coords(shape_per_fpn_level: dict, strides_per_fpn_level: dict,
                            dtype: torch.dtype = torch.float32, device="cpu") -> dict:
    """Image-pixel centres of every location of every FPN level (FCOS).

    Location ``(i, j)`` (row ``i``, column ``j``) of a level with stride ``s`` looks at the
    image around ``x = (j + 0.5) * s``, ``y = (i + 0.5) * s``.

    Args:
        shape_per_fpn_level: level name -> shape of its feature map, ``(B, C, H, W)`` (the
            course's form) or ``(H, W)``; only the last two numbers are used.
        strides_per_fpn_level: level name -> its stride in pixels (int); every level of
            ``shape_per_fpn_level`` needs one.
        dtype, device: of the result.

    Returns:
        dict level name -> ``(H * W, 2)`` tensor of ``(x, y)`` centres, locations in row-major
        order (``index = i * W + j``), the levels in the order of ``shape_per_fpn_level``.
    """
    if not isinstance(shape_per_fpn_level, dict) or not isinstance(strides_per_fpn_level, dict):
        raise TypeError("shape_per_fpn_level and strides_per_fpn_level must be dicts level name -> shape / stride")
    coords = {}
    for level, shape in shape_per_fpn_level.items():
        if level not in strides_per_fpn_level:
            raise ValueError(f"strides_per_fpn_level has no stride for level {level!r}; it has "
                             f"{sorted(strides_per_fpn_level)}")
        stride = check_int(strides_per_fpn_level[level], f"strides_per_fpn_level[{level!r}]", minimum=1)
        sequence = isinstance(shape, (tuple, list, torch.Size)) and len(shape) >= 2
        if not sequence or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in shape[-2:]):
            raise ValueError(f"shape_per_fpn_level[{level!r}] must be (B, C, H, W) or (H, W) with integer "
                             f"H, W >= 0, got {tuple(shape)}")
        height, width = int(shape[-2]), int(shape[-1])
        ### BEGIN SOLUTION
        ys = (torch.arange(height, dtype=dtype, device=device) + 0.5) * stride
        xs = (torch.arange(width, dtype=dtype, device=device) + 0.5) * stride
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        coords[level] = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)
        ### END SOLUTION
    return coords


# --------------------------------------------------------------------------- VOC mAP


def average_precision(precision: torch.Tensor, recall: torch.Tensor) -> float:
    """PASCAL VOC all-point interpolated average precision (VOC2010 onwards).

    The precision is first made monotone -- at each rank it becomes the best precision at this
    or any later rank (any higher recall) -- then the area under that step curve is summed over
    the recall increments: ``AP = sum_i (r_i - r_{i-1}) * max_{j >= i} p_j`` with ``r_0 = 0``.

    Args:
        precision: ``(D,)`` precision after each of the ``D`` ranked detections.
        recall: ``(D,)`` recall after each, non-decreasing, in [0, 1].

    Returns:
        AP in [0, 1] as a float (0.0 for no detections).
    """
    for name, value in (("precision", precision), ("recall", recall)):
        if not isinstance(value, torch.Tensor) or value.dim() != 1:
            raise ValueError(f"{name} must be a 1-D tensor (D,), got "
                             f"{tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__}")
    if precision.shape != recall.shape:
        raise ValueError(f"precision and recall must have the same shape (D,), got {tuple(precision.shape)} "
                         f"and {tuple(recall.shape)}")
    precision, recall = precision.detach().double().cpu(), recall.detach().double().cpu()
    if recall.numel() and (bool((recall[1:] < recall[:-1]).any()) or float(recall.min()) < 0
                           or float(recall.max()) > 1):
        raise ValueError("recall must be non-decreasing and lie in [0, 1] (ranked detections)")
    if precision.numel() and not bool(((precision >= 0) & (precision <= 1)).all()):
        raise ValueError("precision must lie in [0, 1] (a fraction of the detections so far), got values "
                         f"from {float(precision.min())} to {float(precision.max())}")
    ### BEGIN SOLUTION
    envelope = torch.flip(torch.cummax(torch.flip(precision, [0]), dim=0).values, [0])
    steps = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((steps * envelope).sum())
    ### END SOLUTION


def _as_cpu(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return value.detach().to(device="cpu", dtype=dtype)


def _check_images(predictions, ground_truths, num_classes: int) -> tuple[list[dict], list[dict]]:
    """Check :func:`evaluate_detections`' inputs; return them as CPU float64 / int64 / bool tensors."""
    for name, value in (("predictions", predictions), ("ground_truths", ground_truths)):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list with one dict per image, got {type(value).__name__}")
    if len(predictions) != len(ground_truths):
        raise ValueError(f"predictions and ground_truths must have one entry per image, got {len(predictions)} "
                         f"and {len(ground_truths)}")
    preds, gts = [], []
    for i, (pred, gt) in enumerate(zip(predictions, ground_truths, strict=True)):
        for name, entry, keys in (("predictions", pred, ("boxes", "scores", "labels")),
                                  ("ground_truths", gt, ("boxes", "labels"))):
            if not isinstance(entry, dict) or any(k not in entry for k in keys):
                have = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
                raise ValueError(f"{name}[{i}] must be a dict with keys {', '.join(keys)}, got {have}")
        check_boxes(pred["boxes"], f"predictions[{i}]['boxes']")
        num = pred["boxes"].shape[0]
        _check_scores(pred["scores"], num, f"predictions[{i}]['scores']")
        check_labels(pred["labels"], num, num_classes, name=f"predictions[{i}]['labels']")
        check_boxes(gt["boxes"], f"ground_truths[{i}]['boxes']")
        num_gt = gt["boxes"].shape[0]
        check_labels(gt["labels"], num_gt, num_classes, name=f"ground_truths[{i}]['labels']")
        difficult = gt.get("difficult")
        if difficult is None:
            difficult = torch.zeros(num_gt, dtype=torch.bool)
        elif not isinstance(difficult, torch.Tensor) or difficult.dtype != torch.bool:
            raise TypeError(f"ground_truths[{i}]['difficult'] must be a bool tensor ({num_gt},), got "
                            f"{difficult.dtype if isinstance(difficult, torch.Tensor) else type(difficult).__name__}")
        elif tuple(difficult.shape) != (num_gt,):
            raise ValueError(f"ground_truths[{i}]['difficult'] must have shape ({num_gt},), one flag per box, "
                             f"got {tuple(difficult.shape)}")
        preds.append({"boxes": _as_cpu(pred["boxes"], torch.float64),
                      "scores": _as_cpu(pred["scores"], torch.float64),
                      "labels": _as_cpu(pred["labels"], torch.int64)})
        gts.append({"boxes": _as_cpu(gt["boxes"], torch.float64),
                    "labels": _as_cpu(gt["labels"], torch.int64),
                    "difficult": _as_cpu(difficult, torch.bool)})
    return preds, gts


def _match_class(preds: list[dict], gts: list[dict], cls: int, iou_threshold: float):
    """Rank the detections of class ``cls`` over all images and mark each true or false positive.

    VOC rules: detections are taken by decreasing score (equal scores: image order, then their
    order in the image); each is compared with the ground-truth box of its image and class it
    overlaps most (the first of equal IoUs).  If that IoU is ``>= iou_threshold``: the box is
    *difficult* -> the detection is ignored (neither true nor false positive); else the first
    detection to claim the box is a true positive, any later one a false positive (a
    duplicate).  A detection overlapping no box enough is a false positive.  (A detection whose
    best box is taken is a false positive even if another free box overlaps it enough -- the
    VOC devkit's rule.)

    Returns:
        ``(is_tp, num_positives)``: ``is_tp (D,)`` bool, the ranked detections that are not
        ignored, true for true positives; ``num_positives`` the number of non-difficult boxes.
    """
    ### BEGIN SOLUTION
    nothing = torch.zeros(0, dtype=torch.int64)  # so that torch.cat works without images
    scores, best_iou, best_gt, best_difficult = [nothing.double()], [nothing.double()], [nothing], [nothing.bool()]
    num_positives, gt_offset = 0, 0
    for pred, gt in zip(preds, gts, strict=True):
        dets = pred["labels"] == cls
        boxes, det_scores = pred["boxes"][dets], pred["scores"][dets]
        gt_mask = gt["labels"] == cls
        gt_boxes, difficult = gt["boxes"][gt_mask], gt["difficult"][gt_mask]
        num_positives += int((~difficult).sum())
        if gt_boxes.shape[0]:
            iou, index = box_iou(boxes, gt_boxes).nan_to_num(0.0).max(dim=1)  # max: first of equal values
        else:
            iou, index = boxes.new_zeros(boxes.shape[0]), torch.zeros(boxes.shape[0], dtype=torch.int64)
        scores.append(det_scores)
        best_iou.append(iou)
        best_gt.append(index + gt_offset)  # index among all boxes of the class, over all images
        best_difficult.append(difficult[index] if gt_boxes.shape[0] else torch.zeros_like(index, dtype=torch.bool))
        gt_offset += gt_boxes.shape[0]
    order = torch.sort(torch.cat(scores), descending=True, stable=True).indices
    best_iou, best_gt, best_difficult = torch.cat(best_iou)[order], torch.cat(best_gt)[order], \
        torch.cat(best_difficult)[order]
    hit = best_iou >= iou_threshold
    ignored = hit & best_difficult
    claims = hit & ~best_difficult
    # a claim is a true positive when it is the first (highest-ranked) claim on its box
    rank = torch.arange(order.numel())
    first_claim = torch.full((gt_offset,), order.numel(), dtype=torch.int64)
    first_claim.scatter_reduce_(0, best_gt[claims], rank[claims], reduce="amin")
    is_tp = claims.clone()
    is_tp[claims] = first_claim[best_gt[claims]] == rank[claims]
    return is_tp[~ignored], num_positives
    ### END SOLUTION


def evaluate_detections(predictions: list[dict], ground_truths: list[dict], num_classes: int,
                        iou_threshold: float = 0.5) -> dict:
    """PASCAL VOC mean average precision of a detector over a set of images.

    Per class, the detections of all images are ranked by score and marked true or false
    positive (see :func:`_match_class`: greedy by score, each ground-truth box matched at most
    once, duplicates are false positives, detections of *difficult* boxes are ignored and
    difficult boxes are not counted as positives).  A match needs IoU ``>= iou_threshold``
    (continuous coordinates, no "+1" pixel).  Precision and recall after each rank give the
    all-point interpolated AP (:func:`average_precision`).

    Args:
        predictions: one dict per image: ``boxes (N, 4)`` xyxy, ``scores (N,)``, ``labels (N,)``
            integer classes in ``[0, num_classes)``.
        ground_truths: one dict per image, same order: ``boxes (M, 4)``, ``labels (M,)`` and
            optionally ``difficult (M,)`` bool (default: none difficult).
        num_classes: ``C``.
        iou_threshold: IoU needed for a match (0.5 for VOC's mAP@0.5).

    Returns:
        dict with
            ``"mAP"``: mean AP over the classes with at least one non-difficult box (``nan`` if none);
            ``"ap_per_class"``: list of ``C`` floats, ``nan`` for a class without non-difficult boxes;
            ``"precision_recall"``: list of ``C`` pairs ``(precision (D_c,), recall (D_c,))`` float64
            tensors, one point per ranked (non-ignored) detection of the class; both empty for a
            class without non-difficult boxes.
    """
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    iou_threshold = check_real(iou_threshold, "iou_threshold", low=0.0, high=1.0, low_open=True)
    preds, gts = _check_images(predictions, ground_truths, num_classes)
    ap_per_class, curves = [], []
    empty = torch.zeros(0, dtype=torch.float64)
    for cls in range(num_classes):
        is_tp, num_positives = _match_class(preds, gts, cls, iou_threshold)
        if num_positives == 0:
            ap_per_class.append(float("nan"))
            curves.append((empty.clone(), empty.clone()))
            continue
        ### BEGIN SOLUTION
        true_positives = torch.cumsum(is_tp.double(), dim=0)
        ranks = torch.arange(1, is_tp.numel() + 1, dtype=torch.float64)
        precision, recall = true_positives / ranks, true_positives / num_positives
        ### END SOLUTION
        ap_per_class.append(average_precision(precision, recall))
        curves.append((precision, recall))
    valid = [ap for ap in ap_per_class if not math.isnan(ap)]
    mean_ap = sum(valid) / len(valid) if valid else float("nan")
    return {"mAP": mean_ap, "ap_per_class": ap_per_class, "precision_recall": curves}


@torch.no_grad()
def predict_in_batches(model: nn.Module, images: torch.Tensor, detect, batch_size: int = 100) -> list[dict]:
    """Run a detector over a set of images, in batches, in eval mode (its mode restored after).

    Args:
        model: the detector (its parameters say the device), or its export
            (``helpers.export.load_exported``: fixed in eval mode, it has no mode to switch).
        images: ``(N, 3, H, W)`` uint8 (divided by 255) or floating in [0, 1], any device (moved to
            the model's).
        detect: ``detect(batch) -> list`` of one prediction dict per image of a float batch.
        batch_size: images per forward pass.

    Returns:
        ``N`` dicts ``{"boxes": (K, 4), "scores": (K,), "labels": (K,) int64}`` on the CPU -- the
        ``predictions`` of :func:`evaluate_detections`.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be an (N, 3, H, W) tensor")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    from helpers.export import is_exported

    device = next(model.parameters()).device
    switch = not is_exported(model)
    was_training = model.training
    if switch:
        model.eval()
    predictions = []
    try:
        for start in range(0, images.shape[0], batch_size):
            batch = images[start:start + batch_size].to(device)
            batch = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float()
            predictions += [{key: value.detach().cpu() for key, value in pred.items()} for pred in detect(batch)]
    finally:
        if switch:
            model.train(was_training)
    return predictions


#: The kinds of :func:`detection_errors`, detections first, then ground truth.
ERROR_KINDS = ("correct", "duplicate", "mislabelled", "mislocated", "background", "missed")


def detection_errors(prediction: dict, ground_truth: dict, score_thresh: float = 0.5,
                     iou_threshold: float = 0.5, touch_iou: float = 0.1) -> dict:
    """What went right and wrong in ONE image: each confident detection and each box gets a kind.

    The detections scoring at least ``score_thresh`` are taken by decreasing score; each one is

    * ``"correct"``: it overlaps a still unclaimed box of its class with IoU ``>= iou_threshold``
      (it claims the one it overlaps most);
    * ``"duplicate"``: such boxes exist but all are already claimed by better detections;
    * ``"mislabelled"``: no box of its class, but a box of another class, overlaps it enough;
    * ``"mislocated"``: it overlaps a box of its class, but only with IoU in
      ``[touch_iou, iou_threshold)``;
    * ``"background"``: none of the above (it overlaps nothing, or only another class's box a
      little).

    A ground-truth box no correct detection claimed is ``"missed"`` (VOC's *difficult* flags are
    not looked at here: a difficult box nobody found counts as missed).  These are the error kinds
    of mAP at this score threshold (a duplicate, mislabelled, mislocated or background detection
    is a false positive; a missed box costs recall).

    Args:
        prediction: ``{"boxes" (N, 4), "scores" (N,), "labels" (N,)}`` of one image.
        ground_truth: ``{"boxes" (M, 4), "labels" (M,)}`` of the same image.
        score_thresh: detections below it are not looked at.
        iou_threshold: IoU of a match (0.5 for mAP@0.5).
        touch_iou: least IoU for ``"mislocated"``.

    Returns:
        dict kind -> int64 index tensor: indices into ``prediction`` for the first five kinds (by
        decreasing score), into ``ground_truth`` for ``"missed"``.
    """
    preds, gts = _check_images([prediction], [ground_truth], num_classes=_num_classes_of(prediction, ground_truth))
    pred, gt = preds[0], gts[0]
    score_thresh = check_real(score_thresh, "score_thresh", 0.0, 1.0)
    iou_threshold = check_real(iou_threshold, "iou_threshold", low=0.0, high=1.0, low_open=True)
    touch_iou = check_real(touch_iou, "touch_iou", low=0.0, high=iou_threshold)
    kinds = {kind: [] for kind in ERROR_KINDS}
    confident = (pred["scores"] >= score_thresh).nonzero()[:, 0]
    order = confident[torch.sort(pred["scores"][confident], descending=True, stable=True).indices]
    overlaps = box_iou(pred["boxes"][order], gt["boxes"]).nan_to_num(0.0)  # (D, M)
    claimed = torch.zeros(gt["boxes"].shape[0], dtype=torch.bool)
    ### BEGIN SOLUTION
    for row, det in enumerate(order.tolist()):
        same_class = gt["labels"] == pred["labels"][det]
        iou = overlaps[row]
        enough = iou >= iou_threshold
        free = enough & same_class & ~claimed
        if bool(free.any()):
            best = int(torch.where(free, iou, -1.0).argmax())
            claimed[best] = True
            kinds["correct"].append(det)
        elif bool((enough & same_class).any()):
            kinds["duplicate"].append(det)
        elif bool(enough.any()):
            kinds["mislabelled"].append(det)
        elif bool(((iou >= touch_iou) & same_class).any()):
            kinds["mislocated"].append(det)
        else:
            kinds["background"].append(det)
    kinds["missed"] = (~claimed).nonzero()[:, 0].tolist()
    ### END SOLUTION
    return {kind: torch.tensor(indices, dtype=torch.int64) for kind, indices in kinds.items()}


def count_errors(predictions: list[dict], ground_truths: list[dict], score_thresh: float = 0.5,
                 iou_threshold: float = 0.5) -> tuple[dict, dict]:
    """:func:`detection_errors` over a set of images.

    Returns:
        ``(counts, images)``: ``counts`` kind -> how many detections (boxes for ``"missed"``) of
        that kind in all images; ``images`` kind -> the indices of the images that hold at least
        one, in image order (for showing examples).
    """
    if not isinstance(predictions, (list, tuple)) or not isinstance(ground_truths, (list, tuple)) \
            or len(predictions) != len(ground_truths):
        raise ValueError("predictions and ground_truths must be lists with one dict per image, of the same length")
    counts = {kind: 0 for kind in ERROR_KINDS}
    images = {kind: [] for kind in ERROR_KINDS}
    for i, (pred, gt) in enumerate(zip(predictions, ground_truths, strict=True)):
        for kind, found in detection_errors(pred, gt, score_thresh, iou_threshold).items():
            counts[kind] += found.numel()
            if found.numel():
                images[kind].append(i)
    return counts, images


def confusion_counts(predictions: list[dict], ground_truths: list[dict], num_classes: int,
                     score_thresh: float = 0.5, iou_threshold: float = 0.5) -> torch.Tensor:
    """Which class the detector said for which true class, over the detections that found an object.

    Every detection scoring at least ``score_thresh`` whose best-overlapping box (any class) has
    IoU ``>= iou_threshold`` adds 1 at ``[true class of that box, predicted class]``.  The diagonal
    counts right labels (duplicates included), the rest the confusions behind "mislabelled".

    Returns:
        int64 ``(num_classes, num_classes)``, rows the true class, columns the predicted one.
    """
    preds, gts = _check_images(predictions, ground_truths, num_classes)
    counts = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for pred, gt in zip(preds, gts, strict=True):
        confident = pred["scores"] >= score_thresh
        if not bool(confident.any()) or gt["boxes"].shape[0] == 0:
            continue
        best, index = box_iou(pred["boxes"][confident], gt["boxes"]).nan_to_num(0.0).max(dim=1)
        found = best >= iou_threshold
        pairs = gt["labels"][index[found]] * num_classes + pred["labels"][confident][found]
        counts += torch.bincount(pairs, minlength=num_classes * num_classes).view(num_classes, num_classes)
    return counts


def ignore_classes(items: list[dict]) -> list[dict]:
    """The same predictions or ground truths with every label set to 0: for class-agnostic AP
    (``evaluate_detections(ignore_classes(preds), ignore_classes(gts), num_classes=1)``), which
    measures how well objects are found whatever their class."""
    return [dict(item, labels=torch.zeros_like(item["labels"])) for item in items]


def _num_classes_of(prediction, ground_truth) -> int:
    """Enough classes for every label of one image (for :func:`_check_images`' range check)."""
    labels = [d.get("labels") for d in (prediction, ground_truth) if isinstance(d, dict)]
    largest = [int(x.max()) for x in labels if isinstance(x, torch.Tensor) and x.numel()]
    return max(largest, default=0) + 1


# --------------------------------------------------------------------------- backbone with FPN

#: ImageNet channel statistics; images in [0, 1] are normalised with them inside the backbone.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution (padding 1, no bias) -> BatchNorm -> ReLU; ``stride=2`` halves ``H`` and ``W``."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class SmallTrunk(nn.Module):
    """The from-scratch trunk of :class:`DetectorBackboneWithFPN` (``pretrained=False``).

    Five stride-2 stages of plain 3x3 conv-BN-ReLU layers (channels 24, 32, 64, 96, 128; two
    convolutions per stage from the second on): about 0.47 M parameters and ~26 M multiply-adds
    for a 96 x 96 image, so that a detector trains on a 2-core CPU in minutes.  Returns the
    stride-8, 16 and 32 maps ``{"c3", "c4", "c5"}`` with :attr:`out_channels` channels.
    """

    out_channels = {"c3": 64, "c4": 96, "c5": 128}

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(_conv_bn_relu(3, 24, stride=2),  # stride 2
                                  _conv_bn_relu(24, 32, stride=2), _conv_bn_relu(32, 32))  # stride 4
        self.stage3 = nn.Sequential(_conv_bn_relu(32, 64, stride=2), _conv_bn_relu(64, 64))  # stride 8
        self.stage4 = nn.Sequential(_conv_bn_relu(64, 96, stride=2), _conv_bn_relu(96, 96))  # stride 16
        self.stage5 = nn.Sequential(_conv_bn_relu(96, 128, stride=2), _conv_bn_relu(128, 128))  # stride 32

    def forward(self, x: torch.Tensor) -> dict:
        c3 = self.stage3(self.stem(x))
        c4 = self.stage4(c3)
        return {"c3": c3, "c4": c4, "c5": self.stage5(c4)}


class RegNetTrunk(nn.Module):
    """torchvision's RegNetX-400MF (the EECS 498 backbone) cut after its stride-8, 16 and 32 stages.

    ``weights``: a ``torchvision.models.RegNet_X_400MF_Weights`` member (downloaded by torchvision
    the first time) or ``None`` for random initialisation.
    """

    out_channels = {"c3": 64, "c4": 160, "c5": 400}

    def __init__(self, weights=None):
        super().__init__()
        from torchvision.models import regnet_x_400mf

        net = regnet_x_400mf(weights=weights)
        self.stem = net.stem  # stride 2
        blocks = net.trunk_output
        self.stage3 = nn.Sequential(blocks.block1, blocks.block2)  # strides 4, 8
        self.stage4 = blocks.block3  # stride 16
        self.stage5 = blocks.block4  # stride 32

    def forward(self, x: torch.Tensor) -> dict:
        c3 = self.stage3(self.stem(x))
        c4 = self.stage4(c3)
        return {"c3": c3, "c4": c4, "c5": self.stage5(c4)}


class DetectorBackboneWithFPN(nn.Module):
    """A CNN trunk plus a Feature Pyramid Network: three maps of ``out_channels`` channels.

    The trunk gives ``c3, c4, c5`` at strides 8, 16, 32.  The FPN (Lin et al., 2017) turns each
    into ``out_channels`` channels with a 1x1 *lateral* convolution, adds to each level the
    2x-upsampled (nearest) merged level above it -- the *top-down* path, which brings the
    coarse levels' semantics to the fine ones -- and smooths every sum with a 3x3 *output*
    convolution: ``p5 = out5(lat5(c5))``, ``m4 = lat4(c4) + up(m5)``, ``p4 = out4(m4)``, ...

    Trunks:

    * ``pretrained=True``: torchvision's RegNetX-400MF with ImageNet weights, as in EECS 498
      (downloaded by torchvision on first use: online only).
    * ``pretrained=False``: :class:`SmallTrunk`, a small plain CNN trained from scratch.  It is
      the offline choice: no weights to download, and small enough (0.47 M parameters, ~26 M
      multiply-adds per 96 px image) to train a detector on our generated 64-96 px scenes on a
      2-core CPU in minutes; RegNetX-400MF (5.1 M parameters) without its ImageNet weights is
      ~4x slower per training step (trunk forward + backward at 96 px, one thread).

    Args:
        out_channels: channels of every FPN map.
        pretrained: which trunk (see above).

    Attributes:
        fpn_strides: ``{"p3": 8, "p4": 16, "p5": 32}``.

    ``forward(images)``: ``images (B, 3, H, W)`` floats in [0, 1] (normalised inside with the
    ImageNet mean and std), ``H`` and ``W`` multiples of 32.  Returns
    ``{"p3": (B, out_channels, H/8, W/8), "p4": (..., H/16, W/16), "p5": (..., H/32, W/32)}``.
    """

    def __init__(self, out_channels: int, pretrained: bool = False):
        super().__init__()
        check_int(out_channels, "out_channels", minimum=1)
        if not isinstance(pretrained, bool):
            raise TypeError(f"pretrained must be a bool, got {pretrained!r}")
        self.out_channels = out_channels
        self.fpn_strides = {"p3": 8, "p4": 16, "p5": 32}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if pretrained:
            from torchvision.models import RegNet_X_400MF_Weights

            self.backbone = RegNetTrunk(weights=RegNet_X_400MF_Weights.IMAGENET1K_V1)
        else:
            self.backbone = SmallTrunk()
        self._build_fpn(self.backbone.out_channels)

    def _build_fpn(self, trunk_channels: dict) -> None:
        """Create ``self.fpn_params``: lateral 1x1 and output 3x3 convolutions per level."""
        self.fpn_params = nn.ModuleDict()
        ### BEGIN SOLUTION
        for level in ("3", "4", "5"):
            self.fpn_params[f"lateral{level}"] = nn.Conv2d(trunk_channels[f"c{level}"], self.out_channels, 1)
            self.fpn_params[f"output{level}"] = nn.Conv2d(self.out_channels, self.out_channels, 3, padding=1)
        ### END SOLUTION

    def forward(self, images: torch.Tensor) -> dict:
        check_image_batch(images, 32, "32 (the coarsest stride)")
        feats = self.backbone((images - self.mean) / self.std)
        fpn_feats = {"p3": None, "p4": None, "p5": None}
        ### BEGIN SOLUTION
        merged = None
        for level in ("5", "4", "3"):  # top-down: coarse to fine
            lateral = self.fpn_params[f"lateral{level}"](feats[f"c{level}"])
            if merged is not None:
                lateral = lateral + F.interpolate(merged, size=lateral.shape[-2:], mode="nearest")
            merged = lateral
            fpn_feats[f"p{level}"] = self.fpn_params[f"output{level}"](merged)
        ### END SOLUTION
        return fpn_feats


# --------------------------------------------------------------------------- generalised IoU


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Generalised intersection over union (GIoU, Rezatofighi et al., 2019) of every pair of boxes.

    ``GIoU(a, b) = IoU(a, b) - (area(C) - area(a ∪ b)) / area(C)`` with ``C`` the smallest box
    enclosing both ``a`` and ``b``.  It lies in ``(-1, 1]``: 1 for identical boxes, and unlike the
    IoU it keeps decreasing as two disjoint boxes move apart, so ``1 - GIoU`` is a loss with a
    gradient even when the boxes do not overlap (DETR's box loss).  Differentiable by autograd.

    Args:
        boxes1: ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.
        boxes2: ``(M, 4)`` boxes.

    Returns:
        ``(N, M)`` tensor: ``giou[i, j]`` between ``boxes1[i]`` and ``boxes2[j]`` (``nan`` when the
        enclosing box has zero area, e.g. two identical zero-area boxes).
    """
    check_boxes(boxes1, "boxes1")
    check_boxes(boxes2, "boxes2")
    ### BEGIN SOLUTION
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    inner = (torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
             - torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])).clamp(min=0)  # (N, M, 2)
    intersection = inner[..., 0] * inner[..., 1]
    union = area1[:, None] + area2[None, :] - intersection
    outer = (torch.maximum(boxes1[:, None, 2:], boxes2[None, :, 2:])
             - torch.minimum(boxes1[:, None, :2], boxes2[None, :, :2]))  # (N, M, 2), never negative
    enclosing = outer[..., 0] * outer[..., 1]
    return intersection / union - (enclosing - union) / enclosing
    ### END SOLUTION
