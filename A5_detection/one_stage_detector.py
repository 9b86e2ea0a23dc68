"""A5: FCOS, a one-stage anchor-free detector (Tian et al., 2019), written by hand.

Names and signatures follow EECS 498/598 WI2022 ``one_stage_detector.py``.  In the order you
write them:

* :class:`FCOSPredictionNetwork` -- the head shared by all FPN levels: class logits, box
  deltas and centerness at every location;
* :func:`fcos_match_locations_to_gt` -- which ground-truth box each location must predict;
* :func:`fcos_get_deltas_from_locations` / :func:`fcos_apply_deltas_to_locations` -- box coding:
  distances ``(left, top, right, bottom)`` from the location to the box sides, divided by the stride;
* :func:`fcos_make_centerness_targets` -- how central a location is inside its box;
* :func:`binary_cross_entropy_with_logits` and :func:`sigmoid_focal_loss` -- the losses, by hand;
* :class:`FCOS` -- backbone + FPN (``common.DetectorBackboneWithFPN``) + head: training losses
  and :meth:`FCOS.inference`.

Given code below the assignment: :func:`default_scale_ranges`, :func:`detections_to_predictions`
and :func:`predict_detections`.  Input checks live in ``A5_detection/checks.py``.

Batches use the course's format: ``images (B, 3, H, W)`` floats in [0, 1] and ``gt_boxes (B, N, 5)``
rows ``(x1, y1, x2, y2, class)`` in continuous pixel coordinates, padding rows all ``-1``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from A5_detection import checks
from A5_detection.common import (
    DetectorBackboneWithFPN,
    class_candidates,
    class_spec_nms,
    get_fpn_location_coords,
    predict_in_batches,
)
from helpers.backbone import regnet_available
from helpers.checks import check_int

__all__ = [
    "FCOS", "FCOSPredictionNetwork", "binary_cross_entropy_with_logits", "default_scale_ranges",
    "detections_to_predictions", "fcos_apply_deltas_to_locations", "fcos_get_deltas_from_locations",
    "fcos_make_centerness_targets", "fcos_match_locations_to_gt", "predict_detections", "sigmoid_focal_loss",
]


class FCOSPredictionNetwork(nn.Module):
    """The FCOS head, shared by every FPN level.

    Two *stems* of 3x3 convolutions + ReLU (one for classification, one for boxes) with
    ``stem_channels`` channels, then three 3x3 output convolutions: ``num_classes`` class logits
    (on the class stem), 4 box deltas and 1 centerness logit (both on the box stem).  Convolutions
    start as ``N(0, 0.01)``, biases 0, except the class bias ``-log((1 - pi) / pi)`` with
    ``pi = 0.01`` (RetinaNet's prior), so that the focal loss starts small on the many
    background locations.

    Args:
        num_classes: ``C``, without background.
        in_channels: channels of the FPN maps.
        stem_channels: list of channels of the stem's convolutions, e.g. ``[64, 64]``.

    ``forward(feats_per_fpn_level)``: dict level -> ``(B, in_channels, H, W)``.  Returns the list
    ``[class_logits, boxreg_deltas, centerness_logits]``, each a dict level -> ``(B, H * W, C)``,
    ``(B, H * W, 4)``, ``(B, H * W, 1)``, locations in row-major order (as
    ``common.get_fpn_location_coords``).

    Keep the names ``stem_cls``, ``stem_box`` (``nn.Sequential``), ``pred_cls``, ``pred_box`` and
    ``pred_ctr``.  The head outputs logits: do not apply a sigmoid.  Hint: a map ``(B, K, H, W)``
    becomes ``(B, H * W, K)`` with ``flatten(2)`` and ``transpose(1, 2)``.
    """

    def __init__(self, num_classes: int, in_channels: int, stem_channels: list):
        super().__init__()
        checks.check_head(num_classes, in_channels, stem_channels)
        self.num_classes = num_classes
        ### BEGIN SOLUTION
        cls_layers, box_layers = [], []
        previous = in_channels
        for channels in stem_channels:
            cls_layers += [nn.Conv2d(previous, channels, 3, padding=1), nn.ReLU()]
            box_layers += [nn.Conv2d(previous, channels, 3, padding=1), nn.ReLU()]
            previous = channels
        self.stem_cls = nn.Sequential(*cls_layers)
        self.stem_box = nn.Sequential(*box_layers)
        self.pred_cls = nn.Conv2d(previous, num_classes, 3, padding=1)
        self.pred_box = nn.Conv2d(previous, 4, 3, padding=1)
        self.pred_ctr = nn.Conv2d(previous, 1, 3, padding=1)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, mean=0.0, std=0.01)
                nn.init.zeros_(layer.bias)
        nn.init.constant_(self.pred_cls.bias, -math.log((1 - 0.01) / 0.01))
        ### END SOLUTION

    def forward(self, feats_per_fpn_level: dict) -> list:
        checks.check_fpn_features(feats_per_fpn_level)
        class_logits, boxreg_deltas, centerness_logits = {}, {}, {}
        for level, feats in feats_per_fpn_level.items():
            ### BEGIN SOLUTION
            def flat(x):  # (B, K, H, W) -> (B, H * W, K)
                return x.flatten(2).transpose(1, 2)

            cls_feats, box_feats = self.stem_cls(feats), self.stem_box(feats)
            class_logits[level] = flat(self.pred_cls(cls_feats))
            boxreg_deltas[level] = flat(self.pred_box(box_feats))
            centerness_logits[level] = flat(self.pred_ctr(box_feats))
            ### END SOLUTION
        return [class_logits, boxreg_deltas, centerness_logits]


def fcos_match_locations_to_gt(locations_per_fpn_level: dict, strides_per_fpn_level: dict,
                               gt_boxes: torch.Tensor, scale_ranges: dict | None = None) -> dict:
    """Assign every FPN location of ONE image a ground-truth box, or background.

    A location ``(x, y)`` may predict box ``(x1, y1, x2, y2)`` when it lies strictly inside it
    (``l = x - x1, t = y - y1, r = x2 - x, b = y2 - y`` all ``> 0``) and its largest distance
    ``max(l, t, r, b)`` lies in its level's range ``(low, high]`` (:func:`default_scale_ranges`
    unless ``scale_ranges`` is given): small boxes go to fine levels, large ones to coarse levels.
    Of several such boxes it takes the one of smallest area (the first of equal areas).

    One loop over the levels, none over locations or boxes.  Hint: broadcast the ``(L, 1)``
    coordinates of the locations against the ``(1, N)`` sides of the boxes: ``(L, N, 4)`` distances.

    Args:
        locations_per_fpn_level: dict level -> ``(L, 2)`` ``(x, y)`` centres
            (``common.get_fpn_location_coords``).
        strides_per_fpn_level: dict level -> stride.
        gt_boxes: ``(N, 5)`` rows ``(x1, y1, x2, y2, class)`` of one image; padding rows all -1.
        scale_ranges: optional dict level -> ``(low, high)``.

    Returns:
        dict level -> ``(L, 5)`` matched box of each location (a copy of its ``gt_boxes`` row),
        ``-1`` in all five columns for background.
    """
    checks.check_fcos_matching(locations_per_fpn_level, strides_per_fpn_level, gt_boxes, scale_ranges)
    scale_ranges = scale_ranges if scale_ranges is not None else default_scale_ranges(strides_per_fpn_level)
    gt_boxes = gt_boxes[gt_boxes[:, 4] >= 0]
    matched = {}
    for level, locations in locations_per_fpn_level.items():
        low, high = scale_ranges[level]
        ### BEGIN SOLUTION
        x, y = locations[:, 0:1], locations[:, 1:2]  # (L, 1): broadcast against (1, N) box sides
        left, top = x - gt_boxes[None, :, 0], y - gt_boxes[None, :, 1]
        right, bottom = gt_boxes[None, :, 2] - x, gt_boxes[None, :, 3] - y
        distances = torch.stack([left, top, right, bottom], dim=2)  # (L, N, 4)
        inside = distances.min(dim=2).values > 0
        largest = distances.max(dim=2).values
        allowed = inside & (largest > low) & (largest <= high)  # (L, N)
        areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
        cost = torch.where(allowed, areas[None, :].expand_as(allowed), torch.full_like(largest, math.inf))
        result = gt_boxes.new_full((locations.shape[0], 5), -1.0)
        if gt_boxes.shape[0]:
            best_cost, best = cost.min(dim=1)  # min: first of equal areas
            found = torch.isfinite(best_cost)
            result[found] = gt_boxes[best[found]]
        matched[level] = result
        ### END SOLUTION
    return matched


def fcos_get_deltas_from_locations(locations: torch.Tensor, gt_boxes: torch.Tensor, stride) -> torch.Tensor:
    """Encode boxes as FCOS deltas: distances from each location to its box's four sides / stride.

    ``deltas = (x - x1, y - y1, x2 - x, y2 - y) / stride`` -- dividing by the level's stride keeps
    the regression targets of all levels in the same range.  No loops.

    Args:
        locations: ``(N, 2)`` ``(x, y)`` centres.
        gt_boxes: ``(N, 4)`` or ``(N, 5)`` the matched box of each location; background rows are
            all ``-1`` (class ``-1`` for 5 columns).
        stride: the locations' FPN stride.

    Returns:
        ``(N, 4)`` deltas ``(l, t, r, b)``; background rows are ``-1``.
    """
    stride = checks.check_location_boxes(locations, gt_boxes, stride)
    ### BEGIN SOLUTION
    x, y = locations[:, 0], locations[:, 1]
    deltas = torch.stack([x - gt_boxes[:, 0], y - gt_boxes[:, 1], gt_boxes[:, 2] - x, gt_boxes[:, 3] - y], dim=1)
    deltas = deltas / stride
    deltas[_background_rows(gt_boxes)] = -1.0
    return deltas
    ### END SOLUTION


def fcos_apply_deltas_to_locations(deltas: torch.Tensor, locations: torch.Tensor, stride) -> torch.Tensor:
    """Decode FCOS deltas into boxes: the inverse of :func:`fcos_get_deltas_from_locations`.

    Negative deltas are clamped to 0 first (a location always lies inside or on its box), so the
    output is always a well-formed box; background deltas ``-1`` give a zero-size box at the location.
    No loops.

    Args:
        deltas: ``(N, 4)`` ``(l, t, r, b)`` divided by the stride.
        locations: ``(N, 2)`` ``(x, y)`` centres.
        stride: the locations' FPN stride.

    Returns:
        ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.
    """
    stride = checks.check_location_deltas(deltas, locations, stride)
    ### BEGIN SOLUTION
    distances = deltas.clamp(min=0) * stride
    x, y = locations[:, 0], locations[:, 1]
    return torch.stack([x - distances[:, 0], y - distances[:, 1], x + distances[:, 2], y + distances[:, 3]], dim=1)
    ### END SOLUTION


def fcos_make_centerness_targets(deltas: torch.Tensor) -> torch.Tensor:
    """FCOS centerness: ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))``.

    1 at the box centre, towards 0 near its sides; it down-weights the poor boxes predicted far
    from an object's centre.  No loops (FCOS paper, equation 3).

    Args:
        deltas: ``(N, 4)`` ``(l, t, r, b)`` (any common scale); background rows all ``-1``.

    Returns:
        ``(N,)`` centerness in [0, 1], ``-1`` for background rows.
    """
    checks.check_ltrb(deltas)
    ### BEGIN SOLUTION
    left, top, right, bottom = deltas.unbind(dim=1)
    horizontal = torch.minimum(left, right) / torch.maximum(left, right)
    vertical = torch.minimum(top, bottom) / torch.maximum(top, bottom)
    centerness = torch.sqrt((horizontal * vertical).clamp(min=0))
    background = (deltas == -1).all(dim=1)
    return torch.where(background, torch.full_like(centerness, -1.0), centerness)
    ### END SOLUTION


# --------------------------------------------------------------------------- losses


def binary_cross_entropy_with_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Elementwise ``-t log(sigmoid(x)) - (1 - t) log(1 - sigmoid(x))``, computed stably.

    ``= (1 - t) x - log(sigmoid(x))`` (as ``log(1 - sigmoid(x)) = log(sigmoid(x)) - x``), with
    ``-log(sigmoid(x)) = log(1 + exp(-x))`` for ``x >= 0`` and ``-x + log(1 + exp(x))`` for ``x < 0``:
    ``exp`` only ever sees a non-positive number, so nothing overflows, and the gradient is exact
    everywhere (also at ``x = 0``, where a ``max(x, 0)`` / ``|x|`` form has a kink).

    You may not use ``F.binary_cross_entropy_with_logits`` (the tests compare with it).

    Args:
        logits, targets: tensors of the same shape; targets in [0, 1].

    Returns:
        the loss per element, same shape (no reduction).
    """
    checks.check_same_shape(logits, targets)
    ### BEGIN SOLUTION
    is_positive = logits >= 0
    safe = torch.where(is_positive, logits, -logits)  # |x|, with gradient sign(x) and +1 at x = 0
    softplus_neg = torch.log1p(torch.exp(-safe)) + torch.where(is_positive, 0.0, safe)  # log(1 + exp(-x))
    return (1 - targets) * logits + softplus_neg
    ### END SOLUTION


def sigmoid_focal_loss(inputs: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "none") -> torch.Tensor:
    """Focal loss (Lin et al., 2017) on sigmoid outputs; same arguments as ``torchvision.ops.sigmoid_focal_loss``.

    ``FL = alpha_t (1 - p_t)^gamma BCE(x, t)`` with ``p = sigmoid(x)``, ``p_t = p t + (1 - p)(1 - t)``,
    ``alpha_t = alpha t + (1 - alpha)(1 - t)`` (no weighting when ``alpha < 0``): easy examples
    (``p_t`` near 1) contribute little, so the few objects are not drowned by the many easy
    background locations.  You may not use ``torchvision.ops.sigmoid_focal_loss`` (EECS 498 does;
    the tests compare with it); build on :func:`binary_cross_entropy_with_logits`.

    Args:
        inputs: logits, any shape.
        targets: same shape, 1 for the positive class, 0 otherwise.
        alpha: weight of positives in [0, 1], or negative for none.
        gamma: focusing exponent ``>= 0``.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        the loss, of ``inputs``' shape for ``"none"``, a scalar otherwise.
    """
    alpha, gamma = checks.check_focal_loss(alpha, gamma, reduction)
    ce = binary_cross_entropy_with_logits(inputs, targets)
    ### BEGIN SOLUTION
    p = torch.sigmoid(inputs)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    ### END SOLUTION
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


# --------------------------------------------------------------------------- the detector


class FCOS(nn.Module):
    """FCOS: backbone + FPN + shared head; training losses and inference.

    Losses (one image batch), each divided by the number of foreground locations (at least 1):

    * ``loss_cls``: :func:`sigmoid_focal_loss` (alpha 0.25, gamma 2) of every location's ``C``
      logits against its one-hot class (all zeros for background), summed;
    * ``loss_box``: L1 distance between the predicted and target deltas (the stride-normalised
      ``(l, t, r, b)``), averaged over the four sides, summed over foreground locations (the
      course's choice: simple, and the stride normalisation keeps the levels' targets comparable);
    * ``loss_ctr``: :func:`binary_cross_entropy_with_logits` of the centerness logit against
      :func:`fcos_make_centerness_targets`, summed over foreground locations.

    Args:
        num_classes: ``C``.
        fpn_channels: channels of the FPN maps.
        stem_channels: head stem channels, e.g. ``[64, 64]``.
        pretrained, trunk: the backbone's trunk (see ``common.DetectorBackboneWithFPN``).
        scale_ranges: per-level size ranges for matching (default :func:`default_scale_ranges`).
    """

    def __init__(self, num_classes: int, fpn_channels: int, stem_channels: list, pretrained: bool = False,
                 scale_ranges: dict | None = None, trunk: str | None = None):
        super().__init__()
        self.num_classes = check_int(num_classes, "num_classes", minimum=1)
        self.backbone = DetectorBackboneWithFPN(fpn_channels, pretrained=pretrained, trunk=trunk)
        self.pred_net = FCOSPredictionNetwork(num_classes, fpn_channels, stem_channels)
        self.scale_ranges = scale_ranges

    def _locations(self, feats: dict) -> dict:
        shapes = {level: tuple(f.shape) for level, f in feats.items()}
        return get_fpn_location_coords(shapes, self.backbone.fpn_strides, dtype=feats["p3"].dtype,
                                       device=feats["p3"].device)

    def forward(self, images: torch.Tensor, gt_boxes: torch.Tensor | None = None,
                test_score_thresh: float = 0.3, test_nms_thresh: float = 0.5):
        """Training losses when ``gt_boxes`` is given, else :meth:`inference`.

        Args:
            images: ``(B, 3, H, W)`` floats in [0, 1], ``H, W`` multiples of 32.
            gt_boxes: ``(B, N, 5)`` rows ``(x1, y1, x2, y2, class)``, padding all ``-1``.
            test_score_thresh, test_nms_thresh: passed to :meth:`inference` without ``gt_boxes``.

        Returns:
            dict ``{"loss_cls", "loss_box", "loss_ctr"}`` of scalars (or :meth:`inference`'s list).

        Hint: match each image's locations with :func:`fcos_match_locations_to_gt`, encode the
        targets with :func:`fcos_get_deltas_from_locations`, then concatenate the levels
        (``torch.cat(..., dim=1)``) so that every loss is one tensor expression.
        """
        if gt_boxes is None:
            return self.inference(images, test_score_thresh, test_nms_thresh)
        checks.check_fcos_training(images, gt_boxes, self.num_classes)
        feats = self.backbone(images)
        class_logits, boxreg_deltas, centerness_logits = self.pred_net(feats)
        locations = self._locations(feats)
        strides = self.backbone.fpn_strides
        losses = {}
        ### BEGIN SOLUTION
        levels = list(feats)
        matched, target_deltas = [], []
        for boxes in gt_boxes:
            per_level = fcos_match_locations_to_gt(locations, strides, boxes, self.scale_ranges)
            matched.append(torch.cat([per_level[lv] for lv in levels]))
            target_deltas.append(torch.cat([fcos_get_deltas_from_locations(locations[lv], per_level[lv], strides[lv])
                                            for lv in levels]))
        matched, target_deltas = torch.stack(matched), torch.stack(target_deltas)  # (B, L, 5), (B, L, 4)
        pred_cls = torch.cat([class_logits[lv] for lv in levels], dim=1)  # (B, L, C)
        pred_deltas = torch.cat([boxreg_deltas[lv] for lv in levels], dim=1)  # (B, L, 4)
        pred_ctr = torch.cat([centerness_logits[lv] for lv in levels], dim=1)[..., 0]  # (B, L)

        foreground = matched[..., 4] >= 0
        num_foreground = max(int(foreground.sum()), 1)
        targets = torch.zeros_like(pred_cls)
        targets[foreground] = nn.functional.one_hot(matched[foreground][:, 4].long(), self.num_classes).to(targets)
        losses["loss_cls"] = sigmoid_focal_loss(pred_cls, targets).sum() / num_foreground
        box_l1 = (pred_deltas[foreground] - target_deltas[foreground]).abs().mean(dim=1)
        losses["loss_box"] = box_l1.sum() / num_foreground
        ctr_targets = fcos_make_centerness_targets(target_deltas[foreground])
        losses["loss_ctr"] = binary_cross_entropy_with_logits(pred_ctr[foreground], ctr_targets).sum() / num_foreground
        ### END SOLUTION
        return losses

    @torch.no_grad()
    def inference(self, images: torch.Tensor, score_thresh: float = 0.3, nms_thresh: float = 0.5,
                  topk_per_level: int = 100, best_class_only: bool = False) -> list:
        """Detect objects: per-location scores, thresholding, box decoding, class-specific NMS.

        The score of a location and class is ``sqrt(sigmoid(class logit) * sigmoid(centerness))``.
        Per image and level, every (location, class) pair scoring at least ``score_thresh`` is a
        candidate (:func:`common.class_candidates`; with ``best_class_only`` each location offers
        only its best class) -- at most ``topk_per_level``, the best; their locations' deltas are
        decoded into boxes clipped to the image, and :func:`common.class_spec_nms` removes
        duplicates across levels.  Runs in eval mode (BatchNorm's running statistics) and restores
        the mode after.

        Args:
            images: ``(B, 3, H, W)`` floats in [0, 1].
            score_thresh: minimum score in [0, 1].
            nms_thresh: IoU threshold of the NMS.
            topk_per_level: most candidates per level and image before NMS.
            best_class_only: one class per location (EECS 498's rule) instead of every class above
                ``score_thresh`` (FCOS's own post-processing).

        Returns:
            list of ``B`` tuples ``(boxes (K, 4), scores (K,), classes (K,) int64)``, by decreasing score.

        You write one level of one image: scores, candidates (at most ``topk_per_level``; hint:
        ``torch.topk``), decoded boxes clipped to the image.
        """
        score_thresh, nms_thresh, topk_per_level = checks.check_inference(images, score_thresh, nms_thresh,
                                                                          topk_per_level, "topk_per_level")
        was_training = self.training
        self.eval()
        try:
            feats = self.backbone(images)
            class_logits, boxreg_deltas, centerness_logits = self.pred_net(feats)
        finally:
            self.train(was_training)
        locations = self._locations(feats)
        height, width = images.shape[-2:]
        detections = []
        for i in range(images.shape[0]):
            boxes, scores, classes = [], [], []
            for level, stride in self.backbone.fpn_strides.items():
                ### BEGIN SOLUTION
                probs = torch.sqrt(torch.sigmoid(class_logits[level][i]) * torch.sigmoid(centerness_logits[level][i]))
                where, level_classes, level_scores = class_candidates(probs, score_thresh, best_class_only)
                if level_scores.numel() > topk_per_level:
                    best = level_scores.topk(topk_per_level).indices
                    where, level_classes, level_scores = where[best], level_classes[best], level_scores[best]
                level_boxes = fcos_apply_deltas_to_locations(boxreg_deltas[level][i][where], locations[level][where],
                                                             stride)
                level_boxes[:, 0::2] = level_boxes[:, 0::2].clamp(0, width)
                level_boxes[:, 1::2] = level_boxes[:, 1::2].clamp(0, height)
                boxes.append(level_boxes)
                scores.append(level_scores)
                classes.append(level_classes)
                ### END SOLUTION
            boxes, scores, classes = torch.cat(boxes), torch.cat(scores), torch.cat(classes)
            keep = class_spec_nms(boxes, scores, classes, nms_thresh)
            detections.append((boxes[keep], scores[keep], classes[keep]))
        return detections


# =========================================================================== given code
# Below: code you do not write -- FCOS's default size ranges, and running FCOS over an image set.


def default_scale_ranges(strides_per_fpn_level: dict) -> dict:
    """FCOS's size ranges per level: a location of a level with stride ``s`` regresses boxes whose
    largest distance ``max(l, t, r, b)`` lies in ``(4 s, 8 s]``; the finest level takes everything
    below (``low = 0``), the coarsest everything above (``high = inf``).  For strides 8, 16, 32:
    ``p3: (0, 64]``, ``p4: (64, 128]``, ``p5: (128, inf)`` -- the paper's ranges.

    Returns:
        dict level -> ``(low, high)``.
    """
    levels = sorted(strides_per_fpn_level, key=lambda k: strides_per_fpn_level[k])
    ranges = {}
    for i, level in enumerate(levels):
        stride = strides_per_fpn_level[level]
        low = 0.0 if i == 0 else 4.0 * stride
        high = math.inf if i == len(levels) - 1 else 8.0 * stride
        ranges[level] = (low, high)
    return ranges


def _background_rows(gt_boxes: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: rows that are background (class -1 in a 5-column row, all -1 in a 4-column row)."""
    if gt_boxes.shape[1] == 5:
        return gt_boxes[:, 4] < 0
    return (gt_boxes == -1).all(dim=1)


def detections_to_predictions(detections: list) -> list:
    """:meth:`FCOS.inference`'s ``(boxes, scores, classes)`` tuples as ``evaluate_detections`` dicts.

    Returns:
        list of dicts ``{"boxes": (K, 4), "scores": (K,), "labels": (K,) int64}``, on the CPU.
    """
    if not isinstance(detections, (list, tuple)):
        raise TypeError(f"detections must be a list of (boxes, scores, classes) tuples, got "
                        f"{type(detections).__name__}")
    predictions = []
    for i, item in enumerate(detections):
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            raise ValueError(f"detections[{i}] must be a tuple (boxes, scores, classes)")
        boxes, scores, classes = item
        predictions.append({"boxes": boxes.detach().cpu().float(), "scores": scores.detach().cpu().float(),
                            "labels": classes.detach().cpu().long()})
    return predictions


def predict_detections(model: FCOS, images: torch.Tensor, score_thresh: float = 0.05, nms_thresh: float = 0.5,
                       batch_size: int = 100, best_class_only: bool = False) -> list:
    """Run :meth:`FCOS.inference` over a set of images (uint8 or floats in [0, 1]) in batches of
    ``batch_size``, with ``score_thresh`` (low for mAP: the ranking decides precision), the
    class-specific NMS at ``nms_thresh`` and ``best_class_only`` as there.  See
    ``common.predict_in_batches``; returns its ``N`` prediction dicts, the ``predictions`` of
    :func:`A5_detection.common.evaluate_detections`.
    """
    return predict_in_batches(model, images, lambda batch: detections_to_predictions(
        model.inference(batch, score_thresh, nms_thresh, best_class_only=best_class_only)), batch_size)


# --------------------------------------------------------------------------- command line (given code)


def train_defaults(cfg) -> dict:
    """The notebook's training recipe (one_stage_detector.ipynb) for ``cfg.dataset`` in ``cfg.mode``."""
    on_voc = cfg.dataset == "voc2007"
    return {"image_size": cfg.pick(128, 224) if on_voc else cfg.pick(64, 96),
            "train_size": cfg.pick(1000 if on_voc else 2000, None), "val_size": cfg.pick(100 if on_voc else 200, None),
            "draws": 1 if on_voc else cfg.pick(1, 9), "epochs": cfg.pick(3 if on_voc else 6, 4),
            "batch_size": cfg.pick(16, 32), "lr": 2e-3, "pretrained": on_voc and regnet_available(cfg)}


def build_for_training(settings: dict, class_names) -> tuple[FCOS, dict]:
    """The notebook's FCOS (FPN 64 channels, head stem [96, 96]; the pretrained trunk on VOC when it can be had)
    and the keyword arguments that rebuild it (the same trunk, not pretrained: the saved weights replace it)."""
    from A5_detection.harness import build_on_trunk

    return build_on_trunk(FCOS, {"num_classes": len(class_names), "fpn_channels": 64, "stem_channels": [96, 96]},
                          settings)


def main(argv=None) -> int:
    """``python -m A5_detection.one_stage_detector train [...]``: train FCOS as the notebook does, on one
    process or under torchrun (``helpers.export.paper_main``, ``helpers.train_command``)."""
    from A5_detection import harness
    from helpers.export import paper_main

    recipe = harness.detection_recipe("a5_fcos", "a5_fcos", train_defaults, build_for_training, harness.losses_fn,
                                      predict_detections, harness.one_cycle(0.05), weight_decay=1e-4, grad_clip=10.0)
    return paper_main(argv, "a5_fcos", "FCOS (A5_detection/one_stage_detector.ipynb): train from the command line.",
                      None, None, (), None, detector=True, recipe=recipe, module="A5_detection.one_stage_detector")


if __name__ == "__main__":
    import sys

    from helpers.export import run_command

    sys.exit(run_command(main))
