"""A5: the parts both detectors share -- backbone with FPN, FPN locations, NMS, IoU -- and evaluation.

Names and signatures follow EECS 498/598 WI2022 ``common.py`` (and torchvision where it has the
same function), so course material applies unchanged.  In the order you write them:

* :class:`DetectorBackboneWithFPN` -- a CNN trunk (given) plus the Feature Pyramid Network you add;
* :func:`get_fpn_location_coords` -- image-pixel centres of every location of every FPN level;
* :func:`nms` -- greedy non-maximum suppression (the same indices as ``torchvision.ops.nms``);
  :func:`class_spec_nms` (given) runs it inside each class;
* :func:`box_iou`, :func:`generalized_box_iou`, :func:`paired_iou` -- IoU of every pair, GIoU
  (DETR), IoU of matched pairs (YOLOv1);
* :func:`class_candidates` -- which (box, class) pairs of a score table become detections;
* :func:`roi_align` -- RoIAlign by hand (the values of ``torchvision.ops.roi_align``);
* :func:`average_precision`, :func:`evaluate_detections` -- PASCAL VOC AP and mAP;
  :func:`detection_errors` -- each detection correct, a duplicate, mislabelled, mislocated or on
  background, and the boxes missed.

Given code below the assignment: the trunks, :func:`predict_in_batches`, :func:`count_errors`,
:func:`confusion_counts`, :func:`ignore_classes`.  Input checks live in ``A5_detection/checks.py``.

Conventions: boxes are ``(N, 4)`` floating tensors ``(x1, y1, x2, y2)`` in *continuous* pixel
coordinates (the box ``[0, 0, 2, 1]`` has area 2; no "+1"); a box with ``x2 < x1`` or ``y2 < y1``
is refused, a zero-area box allowed (two zero-area boxes have IoU ``nan``, as in torchvision; NMS
never suppresses on a nan IoU).  NMS ranks by a *stable* descending sort of the scores (equal
scores: lower index first, as ``torchvision.ops.nms`` on the CPU) and suppresses a box whose IoU
with a kept box is *strictly greater* than the threshold.  Evaluation matches with IoU *at least*
the threshold (``>=``, as the VOC devkit).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from A5_detection import checks
from helpers.backbone import IMAGENET_MEAN, IMAGENET_STD, make_trunk
from helpers.checks import check_boxes, check_gt_boxes, check_image_batch

__all__ = [
    "ERROR_KINDS", "DetectorBackboneWithFPN", "average_precision", "box_iou", "check_boxes",
    "check_gt_boxes", "check_image_batch", "class_candidates", "class_spec_nms", "confusion_counts",
    "count_errors", "detection_errors", "evaluate_detections", "generalized_box_iou",
    "get_fpn_location_coords", "ignore_classes", "nms", "paired_iou", "predict_in_batches", "roi_align",
]


class DetectorBackboneWithFPN(nn.Module):
    """A CNN trunk plus a Feature Pyramid Network: three maps of ``out_channels`` channels.

    The trunk (given: ``self.backbone``) maps normalised images to ``{"c3", "c4", "c5"}`` at
    strides 8, 16, 32, with ``self.backbone.out_channels[name]`` channels.  You add the FPN (Lin
    et al., 2017) in ``self.fpn_params``: a 1x1 *lateral* convolution per level to ``out_channels``
    channels, and a 3x3 *output* convolution (padding 1) per level.  ``forward`` adds to each
    level's lateral map the 2x-upsampled merged level above it (the *top-down* path, which brings
    the coarse levels' semantics to the fine ones) and smooths every sum with its output
    convolution: ``p5 = out5(lat5(c5))``, ``m4 = lat4(c4) + up(m5)``, ``p4 = out4(m4)``, ...

    Hint: ``F.interpolate(x, size=..., mode="nearest")`` upsamples.

    Args: ``out_channels``, channels of every FPN map; ``pretrained``: torchvision's RegNetX-400MF
    with ImageNet weights as in EECS 498 (online, or cached), else :class:`SmallTrunk`, a small CNN
    trained from scratch (offline; a detector trains on a 2-core CPU in minutes); ``trunk``: the
    architecture when it is not the one ``pretrained`` implies (``helpers.backbone.make_trunk``).
    Attribute ``fpn_strides``: ``{"p3": 8, "p4": 16, "p5": 32}``.

    ``forward(images)``: ``images (B, 3, H, W)`` floats in [0, 1] (normalised inside with the
    ImageNet mean and std), ``H`` and ``W`` multiples of 32.  Returns
    ``{"p3": (B, out_channels, H/8, W/8), "p4": (..., H/16, W/16), "p5": (..., H/32, W/32)}``.
    """

    def __init__(self, out_channels: int, pretrained: bool = False, trunk: str | None = None):
        super().__init__()
        checks.check_backbone(out_channels, pretrained)
        self.out_channels = out_channels
        self.fpn_strides = {"p3": 8, "p4": 16, "p5": 32}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.backbone = make_trunk(pretrained, trunk, user="DetectorBackboneWithFPN")
        trunk_channels = self.backbone.out_channels  # {"c3": ..., "c4": ..., "c5": ...}
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


def get_fpn_location_coords(shape_per_fpn_level: dict, strides_per_fpn_level: dict,
                            dtype: torch.dtype = torch.float32, device="cpu") -> dict:
    """Image-pixel centres of every location of every FPN level (FCOS).

    Location ``(i, j)`` (row ``i``, column ``j``) of a level with stride ``s`` looks at the
    image around ``x = (j + 0.5) * s``, ``y = (i + 0.5) * s``.

    No loops over locations (only the given one over the levels).  Hint: ``torch.arange`` and
    ``torch.meshgrid(..., indexing="ij")``.

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
    sizes = checks.check_fpn_levels(shape_per_fpn_level, strides_per_fpn_level)
    coords = {}
    for level, (height, width, stride) in sizes.items():
        ### BEGIN SOLUTION
        ys = (torch.arange(height, dtype=dtype, device=device) + 0.5) * stride
        xs = (torch.arange(width, dtype=dtype, device=device) + 0.5) * stride
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        coords[level] = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)
        ### END SOLUTION
    return coords


#: rows of the pairwise suppression table :func:`nms` computes at once (bounds its memory).
NMS_ROW_CHUNK = 1024


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5) -> torch.Tensor:
    """Greedy non-maximum suppression.

    Walk the boxes from the highest score down; keep a box unless a box kept before it overlaps
    it with IoU *strictly greater* than ``iou_threshold``.  Rank equal scores by a stable sort,
    lower index first (``torchvision.ops.nms`` on the CPU does the same, so the tests ask for
    identical indices, ties included).

    You may not use ``torchvision.ops.nms`` or ``batched_nms``.  Hint: torchvision's CPU kernel (``nms_kernel.cpp``)
    computes the IoU in the boxes' dtype and compares it with the threshold in float64; a table
    "box i would suppress box j" for all pairs (at most ``NMS_ROW_CHUNK`` rows at a time) leaves
    only one cheap pass down the sorted boxes.

    Args:
        boxes: ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.
        scores: ``(N,)`` their scores.
        iou_threshold: boxes overlapping a kept box with IoU above it are discarded.

    Returns:
        keep: ``(K,)`` int64 indices into ``boxes`` of the kept boxes, in decreasing order of score.
    """
    iou_threshold = checks.check_nms(boxes, scores, iou_threshold)
    ### BEGIN SOLUTION
    boxes, scores = boxes.detach(), scores.detach()
    order = torch.sort(scores, descending=True, stable=True).indices
    x1, y1, x2, y2 = boxes[order].unbind(dim=1)
    areas = (x2 - x1) * (y2 - y1)
    n = order.numel()
    over = torch.zeros(n, n, dtype=torch.bool)
    for lo in range(0, n, NMS_ROW_CHUNK):
        rows = slice(lo, min(lo + NMS_ROW_CHUNK, n))
        width = (torch.minimum(x2[rows, None], x2[None]) - torch.maximum(x1[rows, None], x1[None])).clamp(min=0)
        height = (torch.minimum(y2[rows, None], y2[None]) - torch.maximum(y1[rows, None], y1[None])).clamp(min=0)
        intersection = width * height
        iou = intersection / (areas[rows, None] + areas[None] - intersection)
        over[rows] = (iou.double() > iou_threshold).cpu()  # nan (two empty boxes) never suppresses
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
    """Class-specific NMS (given; it calls your :func:`nms`): NMS inside each class, merged by score.

    A box is only ever suppressed by a box of its own class.  The kept indices are sorted by
    decreasing score, equal scores lower index first -- the same as ``torchvision.ops.batched_nms``
    (EECS 498 shifts each class's boxes far apart and runs one NMS; running it per class needs no
    coordinate shift and loses no float precision).

    Args:
        boxes: ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.
        scores: ``(N,)`` their scores.
        class_ids: ``(N,)`` integer class of each box.
        iou_threshold: as for :func:`nms`.

    Returns:
        keep: ``(K,)`` int64 indices of the kept boxes, in decreasing order of score.
    """
    iou_threshold = checks.check_class_nms(boxes, scores, class_ids, iou_threshold)
    class_ids = class_ids.to(boxes.device)
    kept = [torch.zeros(0, dtype=torch.int64, device=boxes.device)]
    for cls in torch.unique(class_ids).tolist():
        members = (class_ids == cls).nonzero()[:, 0]
        kept.append(members[nms(boxes[members], scores[members], iou_threshold)])
    keep = torch.sort(torch.cat(kept)).values  # index order, so that the stable sort puts ties lower index first
    return keep[torch.sort(scores.detach()[keep], descending=True, stable=True).indices]


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every pair of boxes (EECS 498's ``iou``).

    ``IoU(a, b) = area(a ∩ b) / (area(a) + area(b) - area(a ∩ b))`` in continuous coordinates
    (area of ``[x1, y1, x2, y2]`` = ``(x2 - x1) * (y2 - y1)``).

    No loops; you may not use ``torchvision.ops.box_iou``.  Hint: broadcast ``boxes1[:, None, :2]``
    against ``boxes2[None, :, :2]`` for the corners of the intersections.

    Args:
        boxes1: ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.
        boxes2: ``(M, 4)`` boxes.

    Returns:
        ``(N, M)`` tensor: ``iou[i, j]`` between ``boxes1[i]`` and ``boxes2[j]``, in [0, 1]
        (``nan`` for two zero-area boxes).
    """
    checks.check_box_pair(boxes1, boxes2)
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


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Generalised intersection over union (GIoU, Rezatofighi et al., 2019) of every pair of boxes.

    ``GIoU(a, b) = IoU(a, b) - (area(C) - area(a ∪ b)) / area(C)`` with ``C`` the smallest box
    enclosing both ``a`` and ``b``.  It lies in ``(-1, 1]``: 1 for identical boxes, and unlike the
    IoU it keeps decreasing as two disjoint boxes move apart, so ``1 - GIoU`` is a loss with a
    gradient even when the boxes do not overlap (DETR's box loss).  Differentiable by autograd.

    No loops; you may not use ``torchvision.ops.generalized_box_iou``.  Hint: the enclosing box's
    corners are the elementwise min of the top-left and max of the bottom-right corners.

    Args:
        boxes1: ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.
        boxes2: ``(M, 4)`` boxes.

    Returns:
        ``(N, M)`` tensor: ``giou[i, j]`` between ``boxes1[i]`` and ``boxes2[j]`` (``nan`` when the
        enclosing box has zero area, e.g. two identical zero-area boxes).
    """
    checks.check_box_pair(boxes1, boxes2)
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


def paired_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of each box with the box at the same position: ``boxes1[..., k, :]`` with ``boxes2[..., k, :]``.

    :func:`box_iou` compares *every* pair of two lists; YOLOv1's responsible-box rule needs only
    matching pairs, for every cell of a batch at once.  Boxes ``(x1, y1, x2, y2)`` of
    the same shape ``(..., 4)`` (broadcastable); a zero-area union gives 0, not ``nan``.

    No loops: work on the last dimension, whatever the leading ones.

    Returns:
        ``(...)`` IoUs in [0, 1].
    """
    checks.check_paired_boxes(boxes1, boxes2)
    ### BEGIN SOLUTION
    size1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0)
    size2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0)
    overlap = (torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
               - torch.maximum(boxes1[..., :2], boxes2[..., :2])).clamp(min=0)
    intersection = overlap[..., 0] * overlap[..., 1]
    union = size1[..., 0] * size1[..., 1] + size2[..., 0] * size2[..., 1] - intersection
    return torch.where(union > 0, intersection / union.clamp(min=1e-12), torch.zeros_like(union))
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

    No loops.  Hint: ``repeat_interleave`` and ``repeat`` build the (box, class) index of every
    entry of the flattened table.

    Args:
        probs: ``(N, C)`` floating scores of ``N`` boxes for ``C`` classes.
        score_thresh: lowest score kept.
        best_class_only: keep at most one class per box.

    Returns:
        ``(rows, classes, scores)``, each ``(K,)``: the box index (int64) and class (int64) of each kept
        pair and its score, ordered by box, then class.
    """
    score_thresh = checks.check_class_candidates(probs, score_thresh)
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

    You may not use ``torchvision.ops.roi_align`` (the tests compare with it); at most one loop,
    over the images, none over boxes.  Hint: bilinear sampling factorises into one weight matrix
    per axis (:func:`_bilinear_weights`), so a crop is two ``torch.einsum`` products.

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
    rois, (oh, ow), spatial_scale, sampling_ratio = checks.check_roi_align(features, boxes, output_size,
                                                                           spatial_scale, sampling_ratio, aligned)
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


# --------------------------------------------------------------------------- VOC mAP and error kinds


def average_precision(precision: torch.Tensor, recall: torch.Tensor) -> float:
    """PASCAL VOC all-point interpolated average precision (VOC2010 onwards).

    The precision is first made monotone -- at each rank it becomes the best precision at this
    or any later rank (any higher recall) -- then the area under that step curve is summed over
    the recall increments: ``AP = sum_i (r_i - r_{i-1}) * max_{j >= i} p_j`` with ``r_0 = 0``.

    No loops.  Hint: ``torch.cummax`` of the flipped precision gives the envelope.

    Args:
        precision: ``(D,)`` precision after each of the ``D`` ranked detections.
        recall: ``(D,)`` recall after each, non-decreasing, in [0, 1].

    Returns:
        AP in [0, 1] as a float (0.0 for no detections).
    """
    precision, recall = checks.check_precision_recall(precision, recall)
    ### BEGIN SOLUTION
    envelope = torch.flip(torch.cummax(torch.flip(precision, [0]), dim=0).values, [0])
    steps = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((steps * envelope).sum())
    ### END SOLUTION


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

    You write :func:`_match_class` and the precision and recall after each rank (no loops; hint:
    ``torch.cumsum``).

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
    preds, gts, num_classes, iou_threshold = checks.check_evaluation(predictions, ground_truths, num_classes,
                                                                     iou_threshold)
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
    pred, gt, score_thresh, iou_threshold, touch_iou = checks.check_detection_errors(
        prediction, ground_truth, score_thresh, iou_threshold, touch_iou)
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


# =========================================================================== given code
# Below: code you do not write -- the trunks of the backbone, running a detector over an image
# set, and summaries of detection_errors.


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
    batch_size = checks.check_image_set(images, batch_size)
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


def count_errors(predictions: list[dict], ground_truths: list[dict], score_thresh: float = 0.5,
                 iou_threshold: float = 0.5) -> tuple[dict, dict]:
    """:func:`detection_errors` over a set of images.

    Returns:
        ``(counts, images)``: ``counts`` kind -> how many detections (boxes for ``"missed"``) of
        that kind in all images; ``images`` kind -> the indices of the images that hold at least
        one, in image order (for showing examples).
    """
    checks.check_count_errors(predictions, ground_truths)
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
    preds, gts = checks.check_detections(predictions, ground_truths, num_classes)
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
