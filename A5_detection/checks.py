"""Input checks of A5 (``common.py``, ``one_stage_detector.py``, ``two_stage_detector.py``).

Given code: each function of the assignment calls its checks in one line, so that a wrong input
fails at once with a message naming the argument, what was expected and what to do.  Every check
raises ``TypeError`` for a wrong kind of value and ``ValueError`` for a wrong shape or range; the
ones that return something return the checked (and, where said, converted) values.
"""

from __future__ import annotations

import math

import torch

from helpers.checks import check_boxes, check_gt_boxes, check_int, check_labels, check_real

# --------------------------------------------------------------------------- boxes, scores, classes


def check_scores(scores, num: int, name: str = "scores") -> None:
    """Raise unless ``scores`` is a floating ``(num,)`` tensor without NaN."""
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


def check_class_ids(class_ids, num: int, name: str = "class_ids") -> None:
    """Raise unless ``class_ids`` is an integer ``(num,)`` tensor of classes ``>= 0``."""
    if not isinstance(class_ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({num},), got {type(class_ids).__name__}")
    if tuple(class_ids.shape) != (num,):
        raise ValueError(f"{name} must have shape ({num},), one class per box, got {tuple(class_ids.shape)}")
    if class_ids.is_floating_point() or class_ids.is_complex() or class_ids.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got {class_ids.dtype}")
    if class_ids.numel() and int(class_ids.min()) < 0:
        raise ValueError(f"{name} must hold class indices >= 0, got {int(class_ids.min())}")


def check_box_pair(boxes1, boxes2) -> None:
    """``box_iou`` / ``generalized_box_iou``: two ``(N, 4)`` and ``(M, 4)`` well-formed box tensors."""
    check_boxes(boxes1, "boxes1")
    check_boxes(boxes2, "boxes2")


def check_paired_boxes(boxes1, boxes2) -> None:
    """``paired_iou``: two tensors ``(..., 4)``."""
    if not isinstance(boxes1, torch.Tensor) or not isinstance(boxes2, torch.Tensor) \
            or boxes1.shape[-1] != 4 or boxes2.shape[-1] != 4:
        raise ValueError(f"boxes1 and boxes2 must be tensors (..., 4) of (x1, y1, x2, y2), got "
                         f"{getattr(boxes1, 'shape', type(boxes1).__name__)} and "
                         f"{getattr(boxes2, 'shape', type(boxes2).__name__)}")


def check_nms(boxes, scores, iou_threshold) -> float:
    """``nms``: ``(N, 4)`` boxes, ``(N,)`` scores; return ``iou_threshold`` as a float in [0, 1]."""
    check_boxes(boxes)
    check_scores(scores, boxes.shape[0])
    return check_real(iou_threshold, "iou_threshold", 0.0, 1.0)


def check_class_nms(boxes, scores, class_ids, iou_threshold) -> float:
    """``class_spec_nms``: as :func:`check_nms`, plus ``(N,)`` integer class ids."""
    iou_threshold = check_nms(boxes, scores, iou_threshold)
    check_class_ids(class_ids, boxes.shape[0])
    return iou_threshold


def check_class_candidates(probs, score_thresh) -> float:
    """``class_candidates``: an ``(N, C)`` floating score table; return ``score_thresh`` in [0, 1]."""
    if not isinstance(probs, torch.Tensor) or probs.dim() != 2 or not probs.is_floating_point():
        got = f"shape {tuple(probs.shape)}, {probs.dtype}" if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise ValueError(f"probs must be an (N, C) floating-point tensor of class scores, got {got}")
    return check_real(score_thresh, "score_thresh", 0.0, 1.0)


# --------------------------------------------------------------------------- RoIAlign


def _output_size(output_size) -> tuple[int, int]:
    """``output_size`` as ``(oh, ow)``: an int ``s`` means ``(s, s)``."""
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        oh, ow = output_size
    else:
        oh = ow = output_size
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in (oh, ow)):
        raise ValueError(f"output_size must be a positive int or a pair (height, width) of positive ints, "
                         f"got {output_size!r}")
    return oh, ow


def _roi_rows(features: torch.Tensor, boxes) -> torch.Tensor:
    """Boxes of ``roi_align`` as one ``(K, 5)`` tensor in the features' dtype and device."""
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


def check_roi_align(features, boxes, output_size, spatial_scale, sampling_ratio, aligned):
    """``roi_align``: return ``(rois, (oh, ow), spatial_scale, sampling_ratio)``.

    ``rois`` is ``boxes`` as one detached ``(K, 5)`` tensor ``(batch_index, x1, y1, x2, y2)`` in the
    features' dtype and device (a list of per-image ``(K_i, 4)`` tensors is turned into it).
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must be a tensor of shape (N, C, H, W), got {got}")
    if not features.is_floating_point():
        raise TypeError(f"features must be a floating-point tensor, got {features.dtype}")
    size = _output_size(output_size)
    spatial_scale = check_real(spatial_scale, "spatial_scale", low=0.0, low_open=True)
    sampling_ratio = check_int(sampling_ratio, "sampling_ratio")
    if not isinstance(aligned, bool):
        raise TypeError(f"aligned must be a bool, got {aligned!r}")
    return _roi_rows(features, boxes).detach(), size, spatial_scale, sampling_ratio


# --------------------------------------------------------------------------- FPN levels and backbone


def check_fpn_levels(shape_per_fpn_level, strides_per_fpn_level) -> dict:
    """``get_fpn_location_coords``: return level name -> ``(height, width, stride)``.

    Shapes are ``(B, C, H, W)`` or ``(H, W)`` with integer ``H, W >= 0``; every level needs an
    integer stride ``>= 1``.
    """
    if not isinstance(shape_per_fpn_level, dict) or not isinstance(strides_per_fpn_level, dict):
        raise TypeError("shape_per_fpn_level and strides_per_fpn_level must be dicts level name -> shape / stride")
    sizes = {}
    for level, shape in shape_per_fpn_level.items():
        if level not in strides_per_fpn_level:
            raise ValueError(f"strides_per_fpn_level has no stride for level {level!r}; it has "
                             f"{sorted(strides_per_fpn_level)}")
        stride = check_int(strides_per_fpn_level[level], f"strides_per_fpn_level[{level!r}]", minimum=1)
        sequence = isinstance(shape, (tuple, list, torch.Size)) and len(shape) >= 2
        if not sequence or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in shape[-2:]):
            raise ValueError(f"shape_per_fpn_level[{level!r}] must be (B, C, H, W) or (H, W) with integer "
                             f"H, W >= 0, got {tuple(shape)}")
        sizes[level] = (int(shape[-2]), int(shape[-1]), stride)
    return sizes


def check_backbone(out_channels, pretrained) -> None:
    """``DetectorBackboneWithFPN``: ``out_channels`` an int ``>= 1``, ``pretrained`` a bool."""
    check_int(out_channels, "out_channels", minimum=1)
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be a bool, got {pretrained!r}")


def check_stem(in_channels, stem_channels) -> list[int]:
    """A head's ``in_channels`` (int ``>= 1``) and ``stem_channels`` (non-empty list of ints ``>= 1``)."""
    check_int(in_channels, "in_channels", minimum=1)
    if not isinstance(stem_channels, (list, tuple)) or not stem_channels:
        raise ValueError(f"stem_channels must be a non-empty list of ints, got {stem_channels!r}")
    return [check_int(c, "stem_channels[i]", minimum=1) for c in stem_channels]


def check_head(num_classes, in_channels, stem_channels) -> None:
    """``FCOSPredictionNetwork``: ``num_classes`` and the stem (:func:`check_stem`)."""
    check_int(num_classes, "num_classes", minimum=1)
    check_stem(in_channels, stem_channels)


def check_fpn_features(feats_per_fpn_level) -> None:
    """A head's input: a non-empty dict level name -> ``(B, C, H, W)`` tensor."""
    if not isinstance(feats_per_fpn_level, dict) or not feats_per_fpn_level:
        raise TypeError("feats_per_fpn_level must be a non-empty dict level name -> (B, C, H, W) tensor")
    for level, feats in feats_per_fpn_level.items():
        if not isinstance(feats, torch.Tensor) or feats.dim() != 4:
            got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
            raise ValueError(f"feats_per_fpn_level[{level!r}] must have shape (B, C, H, W), got {got}")


def check_images(images) -> None:
    """A detector's input: a floating ``(B, 3, H, W)`` batch in [0, 1]."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape (B, 3, H, W) with values in [0, 1], got {got}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor in [0, 1], got {images.dtype}; "
                        f"convert uint8 images with .float() / 255")


def check_image_set(images, batch_size) -> int:
    """``predict_in_batches``: an ``(N, 3, H, W)`` tensor; return ``batch_size`` (int ``>= 1``)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be an (N, 3, H, W) tensor")
    return check_int(batch_size, "batch_size", minimum=1)


def check_inference(images, score_thresh, nms_thresh, most, most_name: str) -> tuple[float, float, int]:
    """``FCOS.inference`` / ``FasterRCNN.inference``: images and thresholds in [0, 1], ``most`` an int ``>= 1``."""
    check_images(images)
    return (check_real(score_thresh, "score_thresh", 0.0, 1.0), check_real(nms_thresh, "nms_thresh", 0.0, 1.0),
            check_int(most, most_name, minimum=1))


def _check_batch_of_gt(images, gt_boxes, num_classes) -> None:
    check_gt_boxes(gt_boxes, num_classes)
    if gt_boxes.shape[0] != images.shape[0]:
        raise ValueError(f"gt_boxes must have one (N, 5) block per image: {images.shape[0]} image(s), "
                         f"got gt_boxes of shape {tuple(gt_boxes.shape)}")


def check_fcos_training(images, gt_boxes, num_classes) -> None:
    """``FCOS.forward`` with ``gt_boxes``: images and one padded ``(N, 5)`` block of gt rows per image."""
    check_images(images)
    _check_batch_of_gt(images, gt_boxes, num_classes)


# --------------------------------------------------------------------------- FCOS


def check_locations(locations, name: str = "locations") -> None:
    """An ``(N, 2)`` tensor of ``(x, y)`` centres."""
    if not isinstance(locations, torch.Tensor) or locations.dim() != 2 or locations.shape[1] != 2:
        got = tuple(locations.shape) if isinstance(locations, torch.Tensor) else type(locations).__name__
        raise ValueError(f"{name} must be a tensor of shape (N, 2) holding (x, y) centres, got {got}")


def check_fcos_matching(locations_per_fpn_level, strides_per_fpn_level, gt_boxes, scale_ranges) -> None:
    """``fcos_match_locations_to_gt``: per-level locations, a stride (and a range) for every level,
    one image's padded gt rows ``(N, 5)``."""
    if not isinstance(locations_per_fpn_level, dict) or not isinstance(strides_per_fpn_level, dict):
        raise TypeError("locations_per_fpn_level and strides_per_fpn_level must be dicts level -> value")
    check_gt_boxes(gt_boxes, batched=False)
    for level, locations in locations_per_fpn_level.items():
        check_locations(locations, f"locations_per_fpn_level[{level!r}]")
        if level not in strides_per_fpn_level or (scale_ranges is not None and level not in scale_ranges):
            ranges = "default" if scale_ranges is None else sorted(scale_ranges)
            raise ValueError(f"level {level!r} needs a stride and a scale range; strides have "
                             f"{sorted(strides_per_fpn_level)}, ranges {ranges}")


def check_location_boxes(locations, gt_boxes, stride) -> float:
    """``fcos_get_deltas_from_locations``: ``(N, 2)`` locations, ``(N, 4 or 5)`` boxes; return the stride."""
    check_locations(locations)
    if not isinstance(gt_boxes, torch.Tensor) or gt_boxes.dim() != 2 or gt_boxes.shape[1] not in (4, 5) \
            or gt_boxes.shape[0] != locations.shape[0]:
        got = tuple(gt_boxes.shape) if isinstance(gt_boxes, torch.Tensor) else type(gt_boxes).__name__
        raise ValueError(f"gt_boxes must have shape ({locations.shape[0]}, 4) or ({locations.shape[0]}, 5), one "
                         f"box per location, got {got}")
    return check_real(stride, "stride", low=0.0, low_open=True)


def check_location_deltas(deltas, locations, stride) -> float:
    """``fcos_apply_deltas_to_locations``: ``(N, 4)`` deltas, ``(N, 2)`` locations; return the stride."""
    check_locations(locations)
    if not isinstance(deltas, torch.Tensor) or tuple(deltas.shape) != (locations.shape[0], 4):
        got = tuple(deltas.shape) if isinstance(deltas, torch.Tensor) else type(deltas).__name__
        raise ValueError(f"deltas must have shape ({locations.shape[0]}, 4), one (l, t, r, b) per location, "
                         f"got {got}")
    return check_real(stride, "stride", low=0.0, low_open=True)


def check_ltrb(deltas) -> None:
    """``fcos_make_centerness_targets``: an ``(N, 4)`` tensor ``(l, t, r, b)``."""
    if not isinstance(deltas, torch.Tensor) or deltas.dim() != 2 or deltas.shape[1] != 4:
        got = tuple(deltas.shape) if isinstance(deltas, torch.Tensor) else type(deltas).__name__
        raise ValueError(f"deltas must have shape (N, 4) as (l, t, r, b), got {got}")


def check_same_shape(logits, targets) -> None:
    """``binary_cross_entropy_with_logits``: two tensors of the same shape."""
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor) or logits.shape != targets.shape:
        raise ValueError("logits and targets must be tensors of the same shape, got "
                         f"{getattr(logits, 'shape', type(logits).__name__)} and "
                         f"{getattr(targets, 'shape', type(targets).__name__)}")


def check_focal_loss(alpha, gamma, reduction) -> tuple[float, float]:
    """``sigmoid_focal_loss``: return ``(alpha, gamma)`` (``alpha <= 1``, ``gamma >= 0``)."""
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return check_real(alpha, "alpha", high=1.0), check_real(gamma, "gamma", low=0.0)


# --------------------------------------------------------------------------- Faster R-CNN


def check_box_tensor(boxes, name: str, columns: tuple[int, ...] = (4,)) -> None:
    """``boxes`` must be a floating ``(N, c)`` tensor with ``c`` in ``columns``."""
    hint = " or ".join(f"(N, {c})" for c in columns)
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {hint}, got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[1] not in columns:
        raise ValueError(f"{name} must have shape {hint}, got {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {boxes.dtype}; convert with .float()")


def check_iou_thresholds(iou_thresholds) -> tuple[float, float]:
    """A pair ``(low, high)`` in [0, 1] with ``low <= high``, returned as floats."""
    if not isinstance(iou_thresholds, (tuple, list)) or len(iou_thresholds) != 2:
        raise ValueError(f"iou_thresholds must be a pair (low, high), got {iou_thresholds!r}")
    low = check_real(iou_thresholds[0], "iou_thresholds[0]", 0.0, 1.0)
    high = check_real(iou_thresholds[1], "iou_thresholds[1]", 0.0, 1.0)
    if low > high:
        raise ValueError(f"iou_thresholds must be (low, high) with low <= high, got {iou_thresholds!r}")
    return low, high


def check_anchor_args(stride_scale, aspect_ratios) -> tuple[float, list[float]]:
    """``generate_fpn_anchors``: return ``(stride_scale, ratios)``, the ratios positive floats."""
    stride_scale = check_real(stride_scale, "stride_scale", low=0.0)
    if not isinstance(aspect_ratios, (list, tuple)) or not aspect_ratios:
        raise ValueError(f"aspect_ratios must be a non-empty list of positive numbers, got {aspect_ratios!r}")
    ratios = [check_real(r, "aspect_ratios[i]", low=0.0) for r in aspect_ratios]
    if min(ratios) <= 0:
        raise ValueError(f"aspect_ratios must be positive, got {aspect_ratios!r}")
    return stride_scale, ratios


def check_anchor_level(locations, level, strides_per_fpn_level) -> None:
    """One level of ``generate_fpn_anchors``: ``(H * W, 2)`` centres and a stride."""
    if not isinstance(locations, torch.Tensor) or locations.dim() != 2 or locations.shape[1] != 2:
        raise ValueError(f"locations_per_fpn_level[{level!r}] must be an (H * W, 2) tensor of (x, y) centres")
    if level not in strides_per_fpn_level:
        raise ValueError(f"strides_per_fpn_level has no stride for level {level!r}")


def check_match_anchors(anchor_boxes, gt_boxes, iou_thresholds) -> tuple[float, float]:
    """``rcnn_match_anchors_to_gt``: ``(A, 4)`` anchors, one image's gt rows; return ``(low, high)``."""
    check_box_tensor(anchor_boxes, "anchor_boxes")
    check_gt_boxes(gt_boxes, batched=False)
    return check_iou_thresholds(iou_thresholds)


def check_delta_pair(first, first_name: str, second, second_name: str, second_columns=(4,)) -> None:
    """Box coding: two floating box tensors with the same number of rows."""
    check_box_tensor(first, first_name)
    check_box_tensor(second, second_name, columns=second_columns)
    if second.shape[0] != first.shape[0]:
        raise ValueError(f"{first_name} and {second_name} must have the same number of rows, got {first.shape[0]} "
                         f"and {second.shape[0]}")


def check_sampling(gt_boxes, num_samples, fg_fraction) -> tuple[int, float]:
    """``sample_rpn_training``: ``(N, 5)`` matched rows; return ``(num_samples, fg_fraction)``."""
    check_box_tensor(gt_boxes, "gt_boxes", columns=(5,))
    return check_int(num_samples, "num_samples", minimum=0), check_real(fg_fraction, "fg_fraction", 0.0, 1.0)


def check_mix(proposals_per_fpn_level, gt_boxes) -> None:
    """``mix_gt_with_proposals``: padded gt rows ``(B, N, 5)`` and ``B`` proposal tensors per level."""
    check_gt_boxes(gt_boxes)
    if not isinstance(proposals_per_fpn_level, dict) or not proposals_per_fpn_level:
        raise TypeError("proposals_per_fpn_level must be a non-empty dict level name -> list of (K_i, 4) tensors")
    batch = gt_boxes.shape[0]
    for level, proposals in proposals_per_fpn_level.items():
        if not isinstance(proposals, (list, tuple)) or len(proposals) != batch:
            raise ValueError(f"proposals_per_fpn_level[{level!r}] must be a list of {batch} (K_i, 4) tensors, "
                             f"one per image of gt_boxes")


def check_objectness(logits, targets) -> None:
    """``objectness_loss``: two tensors of the same shape."""
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise TypeError("logits and targets must be tensors")
    if logits.shape != targets.shape:
        raise ValueError(f"logits and targets must have the same shape, got {tuple(logits.shape)} and "
                         f"{tuple(targets.shape)}")


def check_softmax_ce(logits, labels) -> None:
    """``softmax_cross_entropy``: ``(N, K)`` logits and ``(N,)`` integer labels in ``[0, K)``."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError(f"logits must be an (N, K) tensor, got "
                         f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (logits.shape[0],):
        raise ValueError(f"labels must have shape ({logits.shape[0]},), one per row of logits")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must hold integer class indices, got {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]):
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got values from {int(labels.min())} to "
                         f"{int(labels.max())}")


def check_fpn_rule(boxes, strides_per_fpn_level, canonical_size) -> tuple[float, list[float]]:
    """``assign_fpn_levels``: return ``(canonical_size, [log2 stride of each level])``."""
    check_box_tensor(boxes, "boxes")
    canonical_size = check_real(canonical_size, "canonical_size", low=1e-6)
    numbers = [math.log2(s) for s in strides_per_fpn_level.values()]
    if any(n != round(n) for n in numbers) or numbers != sorted(numbers):
        raise ValueError(f"strides_per_fpn_level must be increasing powers of 2, got {strides_per_fpn_level}")
    return canonical_size, numbers


# --------------------------------------------------------------------------- evaluation


def check_precision_recall(precision, recall) -> tuple[torch.Tensor, torch.Tensor]:
    """``average_precision``: return both curves as CPU float64 tensors ``(D,)``."""
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
    return precision, recall


def _as_cpu(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return value.detach().to(device="cpu", dtype=dtype)


def check_detections(predictions, ground_truths, num_classes: int) -> tuple[list[dict], list[dict]]:
    """Predictions and ground truths of a set of images; return them as CPU float64 / int64 / bool tensors.

    ``predictions``: one dict per image ``{"boxes" (N, 4), "scores" (N,), "labels" (N,)}``;
    ``ground_truths``: ``{"boxes" (M, 4), "labels" (M,)}`` and optionally ``"difficult" (M,)`` bool
    (default all False, filled in).  Labels lie in ``[0, num_classes)``.
    """
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
        check_scores(pred["scores"], num, f"predictions[{i}]['scores']")
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


def check_evaluation(predictions, ground_truths, num_classes, iou_threshold):
    """``evaluate_detections``: return ``(preds, gts, num_classes, iou_threshold)`` (see :func:`check_detections`)."""
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    iou_threshold = check_real(iou_threshold, "iou_threshold", low=0.0, high=1.0, low_open=True)
    preds, gts = check_detections(predictions, ground_truths, num_classes)
    return preds, gts, num_classes, iou_threshold


def _num_classes_of(prediction, ground_truth) -> int:
    """Enough classes for every label of one image (for :func:`check_detections`' range check)."""
    labels = [d.get("labels") for d in (prediction, ground_truth) if isinstance(d, dict)]
    largest = [int(x.max()) for x in labels if isinstance(x, torch.Tensor) and x.numel()]
    return max(largest, default=0) + 1


def check_detection_errors(prediction, ground_truth, score_thresh, iou_threshold, touch_iou):
    """``detection_errors``: return ``(pred, gt, score_thresh, iou_threshold, touch_iou)``, the image
    converted as by :func:`check_detections`, ``0 <= touch_iou <= iou_threshold``."""
    preds, gts = check_detections([prediction], [ground_truth], num_classes=_num_classes_of(prediction, ground_truth))
    score_thresh = check_real(score_thresh, "score_thresh", 0.0, 1.0)
    iou_threshold = check_real(iou_threshold, "iou_threshold", low=0.0, high=1.0, low_open=True)
    touch_iou = check_real(touch_iou, "touch_iou", low=0.0, high=iou_threshold)
    return preds[0], gts[0], score_thresh, iou_threshold, touch_iou


def check_count_errors(predictions, ground_truths) -> None:
    """``count_errors``: two lists of the same length."""
    if not isinstance(predictions, (list, tuple)) or not isinstance(ground_truths, (list, tuple)) \
            or len(predictions) != len(ground_truths):
        raise ValueError("predictions and ground_truths must be lists with one dict per image, of the same length")


# --------------------------------------------------------------------------- Faster R-CNN: modules


def check_anchors(locations_per_fpn_level, strides_per_fpn_level, stride_scale, aspect_ratios):
    """``generate_fpn_anchors``: every level's ``(H * W, 2)`` centres and stride; return
    ``(stride_scale, ratios)``, the ratios positive floats."""
    stride_scale, ratios = check_anchor_args(stride_scale, aspect_ratios)
    for level, locations in locations_per_fpn_level.items():
        check_anchor_level(locations, level, strides_per_fpn_level)
    return stride_scale, ratios


def check_rpn_head(in_channels, stem_channels, num_anchors) -> tuple[list[int], int]:
    """``RPNPredictionNetwork``: return ``(stem_channels, num_anchors)``."""
    return check_stem(in_channels, stem_channels), check_int(num_anchors, "num_anchors", minimum=1)


def check_rpn(batch_size_per_image, anchor_stride_scale, anchor_iou_thresholds, nms_thresh, pre_nms_topk,
              post_nms_topk, fg_fraction) -> tuple:
    """``RPN``: return the arguments checked, in this order (the thresholds as a pair of floats)."""
    return (check_int(batch_size_per_image, "batch_size_per_image", minimum=1),
            check_real(anchor_stride_scale, "anchor_stride_scale", low=0.0),
            check_iou_thresholds(anchor_iou_thresholds),
            check_real(nms_thresh, "nms_thresh", 0.0, 1.0),
            check_int(pre_nms_topk, "pre_nms_topk", minimum=1),
            check_int(post_nms_topk, "post_nms_topk", minimum=1),
            check_real(fg_fraction, "fg_fraction", 0.0, 1.0))


def check_rpn_training(gt_boxes, batch: int) -> None:
    """``RPN.forward`` in training mode: padded gt rows ``(batch, N, 5)``."""
    if gt_boxes is None:
        raise ValueError("RPN in training mode needs gt_boxes (B, N, 5)")
    check_gt_boxes(gt_boxes)
    if gt_boxes.shape[0] != batch:
        raise ValueError(f"gt_boxes must have one entry per image: {batch} image(s), got {gt_boxes.shape[0]}")


def check_faster_rcnn(backbone, rpn, stem_channels, num_classes, batch_size_per_image, roi_size, fg_fraction,
                      proposal_iou_threshold, canonical_size, canonical_level) -> tuple:
    """``FasterRCNN``: return ``(fpn_channels, stem_channels, num_classes, batch_size_per_image,
    roi_size, fg_fraction, proposal_iou_threshold, canonical_size, canonical_level)`` checked;
    ``fpn_channels`` is ``backbone.out_channels`` (else the RPN head's input channels)."""
    if not hasattr(backbone, "fpn_strides"):
        raise TypeError("backbone must have an attribute fpn_strides: level name -> stride")
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    batch_size_per_image = check_int(batch_size_per_image, "batch_size_per_image", minimum=1)
    if isinstance(roi_size, int):
        roi_size = (roi_size, roi_size)
    if not isinstance(roi_size, (tuple, list)) or len(roi_size) != 2:
        raise ValueError(f"roi_size must be an int or a pair (height, width), got {roi_size!r}")
    roi_size = tuple(check_int(side, f"roi_size[{k}]", minimum=1) for k, side in enumerate(roi_size))
    fg_fraction = check_real(fg_fraction, "fg_fraction", 0.0, 1.0)
    proposal_iou_threshold = check_real(proposal_iou_threshold, "proposal_iou_threshold", 0.0, 1.0)
    canonical_size = check_real(canonical_size, "canonical_size", low=1e-6)
    canonical_level = check_int(canonical_level, "canonical_level", minimum=0)
    fpn_channels = getattr(backbone, "out_channels", rpn.pred_net.pred_obj.in_channels)
    stem_channels = check_stem(fpn_channels, stem_channels)
    return (fpn_channels, stem_channels, num_classes, batch_size_per_image, roi_size, fg_fraction,
            proposal_iou_threshold, canonical_size, canonical_level)


def check_rcnn_batch(images, gt_boxes, num_classes) -> None:
    """``FasterRCNN.forward`` in training mode: images and one padded ``(N, 5)`` block per image."""
    check_images(images)
    if gt_boxes is None:
        raise ValueError("FasterRCNN in training mode needs gt_boxes (B, N, 5)")
    check_gt_boxes(gt_boxes, num_classes)
    if gt_boxes.shape[0] != images.shape[0]:
        raise ValueError(f"gt_boxes must have one entry per image: {images.shape[0]} image(s), "
                         f"got {gt_boxes.shape[0]}")


def check_reassign(proposals_per_image, gt_boxes) -> None:
    """``reassign_proposals_to_fpn_levels``: a list of ``(K_i, 4)`` tensors and, if given, gt rows ``(B, N, 5)``."""
    if not isinstance(proposals_per_image, (list, tuple)):
        raise TypeError("proposals_per_image must be a list of (K_i, 4) tensors, got "
                        f"{type(proposals_per_image).__name__}")
    for i, proposals in enumerate(proposals_per_image):
        check_box_tensor(proposals, f"proposals_per_image[{i}]")
    if gt_boxes is not None:
        check_gt_boxes(gt_boxes)
        if gt_boxes.shape[0] != len(proposals_per_image):
            raise ValueError(f"gt_boxes must have one entry per image: {len(proposals_per_image)} image(s), "
                             f"got {gt_boxes.shape[0]}")
