"""A5: Faster R-CNN -- a two-stage detector -- with every algorithmic piece written by hand.

Names and signatures follow EECS 498/598 WI2022 ``two_stage_detector.py``.  In the order you
write them:

* :class:`RPNPredictionNetwork` -- the region proposal network's head: objectness logits and box
  deltas for ``A`` anchors at every location of every FPN level;
* :func:`generate_fpn_anchors` -- ``A`` boxes of several aspect ratios centred on every location,
  their size proportional to the level's stride (:func:`iou` is given: ``common.box_iou``);
* :func:`rcnn_match_anchors_to_gt` -- each anchor foreground (with its gt box), background or ignored;
* :func:`rcnn_get_deltas_from_anchors` / :func:`rcnn_apply_deltas_to_anchors` -- R-CNN's box coding
  (``dx, dy`` centre shifts in anchor widths, ``dw, dh`` log size ratios);
* :func:`sample_rpn_training` -- draw anchors to train on, at most a fraction of them foreground;
* :func:`mix_gt_with_proposals` -- add the gt boxes to the proposals the second stage trains on;
* :func:`objectness_loss`, :func:`softmax_cross_entropy` -- the losses, by hand;
* :class:`RPN` -- first stage: losses and proposals (per-level top-k, decoding, clipping, NMS);
* :func:`assign_fpn_levels` -- the FPN level a RoI is pooled from (FPN paper, equation 1);
* :class:`FasterRCNN` -- backbone + RPN + RoIAlign (``common.roi_align``) + a second-stage head
  that classifies each proposal (``C + 1`` classes, 0 = background) and refines its box.

The EECS 498 version's second stage only classifies, keeping the RPN's boxes; ours also moves
them, as the paper does: without it, confident detections sat on half-covered objects (counted as
mislocated) and two proposals on one object, overlapping each other too little for NMS, both
survived (duplicates) -- the notebook measures both.

Given code below the assignment: :func:`reassign_proposals_to_fpn_levels` (EECS 498's name, on
top of your :func:`assign_fpn_levels`) and :func:`predict_detections`.  Input checks live in
``A5_detection/checks.py``.

Conventions: boxes are ``(x1, y1, x2, y2)`` in continuous pixel coordinates (``common``'s);
ground truth comes as ``gt_boxes (B, N, 5)``, rows ``(x1, y1, x2, y2, class)``, padding rows all
``-1``; per-anchor targets mark a background anchor's row all ``-1`` and an ignored anchor's row
all ``-1e8``; an anchor's aspect ratio is ``height / width`` (torchvision's convention).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from A5_detection import checks
from A5_detection.common import (
    box_iou,
    class_candidates,
    class_spec_nms,
    get_fpn_location_coords,
    nms,
    predict_in_batches,
    roi_align,
)
from helpers.backbone import regnet_available

__all__ = [
    "FasterRCNN", "RPN", "RPNPredictionNetwork", "assign_fpn_levels", "generate_fpn_anchors", "iou",
    "mix_gt_with_proposals", "objectness_loss", "predict_detections", "rcnn_apply_deltas_to_anchors",
    "rcnn_get_deltas_from_anchors", "rcnn_match_anchors_to_gt", "reassign_proposals_to_fpn_levels",
    "sample_rpn_training", "softmax_cross_entropy",
]


#: Row marker of an anchor that is neither foreground nor background (ignored by the losses).
IGNORED = -1e8
#: Row marker of a background anchor (and of a padding gt row).
BACKGROUND = -1.0
#: Largest ``dw``/``dh`` applied to an anchor: a box grows at most 224 / 8 = 28 times its anchor.
SCALE_CLAMP = math.log(224.0 / 8.0)
#: the second stage predicts its box deltas divided by these (Fast R-CNN's "normalised" targets):
#: a proposal is already near its object, so raw deltas are small and would barely move an L1 loss
ROI_DELTA_STD = (0.1, 0.1, 0.2, 0.2)


class RPNPredictionNetwork(nn.Module):
    """The RPN head, shared by every FPN level.

    A stem of 3x3 convolutions + ReLU, then two 1x1 convolutions: one objectness logit and four
    box deltas per anchor.  Outputs are flattened in the order of :func:`generate_fpn_anchors`:
    location-major (row-major over ``(H, W)``), then anchor.

    Args:
        in_channels: channels of the FPN features.
        stem_channels: output channels of each stem convolution.
        num_anchors: ``A``, anchors per location.

    Keep the names ``stem_rpn`` (``nn.Sequential``), ``pred_obj`` and ``pred_box``.  Every
    convolution starts as ``N(0, 0.01)`` weights and zero biases.  The head outputs logits: do not
    apply a sigmoid.  Hint: ``pred_box``'s ``4 A`` channels are ``A`` groups of 4; reshape to
    ``(B, A, 4, H, W)`` before moving ``A`` next to ``H, W``.
    """

    def __init__(self, in_channels: int, stem_channels: list[int], num_anchors: int = 3):
        super().__init__()
        stem_channels, self.num_anchors = checks.check_rpn_head(in_channels, stem_channels, num_anchors)
        ### BEGIN SOLUTION
        layers = []
        for out_channels in stem_channels:
            conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU()]
            in_channels = out_channels
        self.stem_rpn = nn.Sequential(*layers)
        self.pred_obj = nn.Conv2d(stem_channels[-1], num_anchors, kernel_size=1)
        self.pred_box = nn.Conv2d(stem_channels[-1], 4 * num_anchors, kernel_size=1)
        for conv in (self.pred_obj, self.pred_box):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        ### END SOLUTION

    def forward(self, feats_per_fpn_level: dict) -> list:
        """Objectness and box deltas of every anchor.

        Args:
            feats_per_fpn_level: level name -> ``(B, in_channels, H, W)`` features.

        Returns:
            ``[object_logits, boxreg_deltas]`` (a list, as in EECS 498): dicts level name ->
            ``(B, H * W * A)`` logits and ``(B, H * W * A, 4)`` deltas ``(dx, dy, dw, dh)``.
        """
        checks.check_fpn_features(feats_per_fpn_level)
        object_logits, boxreg_deltas = {}, {}
        for level, feats in feats_per_fpn_level.items():
            ### BEGIN SOLUTION
            hidden = self.stem_rpn(feats)
            batch, _, height, width = hidden.shape
            logits = self.pred_obj(hidden)  # (B, A, H, W)
            deltas = self.pred_box(hidden).reshape(batch, self.num_anchors, 4, height, width)
            object_logits[level] = logits.permute(0, 2, 3, 1).reshape(batch, -1)
            boxreg_deltas[level] = deltas.permute(0, 3, 4, 1, 2).reshape(batch, -1, 4)
            ### END SOLUTION
        return [object_logits, boxreg_deltas]


def generate_fpn_anchors(locations_per_fpn_level: dict, strides_per_fpn_level: dict, stride_scale: float,
                         aspect_ratios=(0.5, 1.0, 2.0)) -> dict:
    """Anchor boxes centred on every location of every FPN level.

    At a level of stride ``s`` every anchor has area ``(s * stride_scale) ** 2``; an aspect ratio
    ``r = height / width`` gives ``width = sqrt(area / r)`` and ``height = r * width``.

    One loop over the levels, none over locations.  Hint: ``(L, 1, 2)`` centres plus and minus
    ``(A, 2)`` half sizes give ``(L, A, 4)`` corners.

    Args:
        locations_per_fpn_level: level name -> ``(H * W, 2)`` ``(x, y)`` centres
            (:func:`A5_detection.common.get_fpn_location_coords`).
        strides_per_fpn_level: level name -> stride in pixels.
        stride_scale: anchor side / stride for a square anchor.
        aspect_ratios: the ``A`` ratios ``height / width``.

    Returns:
        dict level name -> ``(H * W * A, 4)`` anchors ``(x1, y1, x2, y2)``, location-major: rows
        ``l * A .. l * A + A - 1`` are location ``l``'s anchors in the order of ``aspect_ratios``.
    """
    stride_scale, ratios = checks.check_anchors(locations_per_fpn_level, strides_per_fpn_level, stride_scale,
                                                aspect_ratios)
    anchors_per_level = {}
    for level, locations in locations_per_fpn_level.items():
        stride = strides_per_fpn_level[level]
        ### BEGIN SOLUTION
        area = (stride * stride_scale) ** 2
        ratio = torch.tensor(ratios, dtype=locations.dtype, device=locations.device)
        width = torch.sqrt(area / ratio)
        height = ratio * width
        half = torch.stack([width, height], dim=1) / 2  # (A, 2)
        centres = locations[:, None, :]  # (L, 1, 2)
        boxes = torch.cat([centres - half, centres + half], dim=2)  # (L, A, 4)
        anchors_per_level[level] = boxes.reshape(-1, 4)
        ### END SOLUTION
    return anchors_per_level


def iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """The course's name for :func:`A5_detection.common.box_iou`: ``(M, 4), (N, 4) -> (M, N)``."""
    return box_iou(boxes1, boxes2)


@torch.no_grad()
def rcnn_match_anchors_to_gt(anchor_boxes: torch.Tensor, gt_boxes: torch.Tensor, iou_thresholds) -> torch.Tensor:
    """Give every anchor a target: a gt box (foreground), background or ignored.

    With ``q`` an anchor's highest IoU over the gt boxes and ``(low, high) = iou_thresholds``:

    * ``q >= high``: foreground, matched to that gt box (the first of equal IoUs);
    * ``q < low``: background, row all ``-1``;
    * otherwise ignored, row all ``-1e8``;
    * then, so that no gt box is left without an anchor, every anchor reaching a gt box's highest
      IoU (if it is above 0) becomes foreground matched to that box (ties: all of them; an anchor
      that is the best for several boxes takes the one it overlaps most, the first of equal IoUs).

    No loops.  Hint: one ``(A, N)`` IoU table (:func:`iou`); its ``max`` along each dimension gives
    each anchor's best box and each box's best IoU.

    Args:
        anchor_boxes: ``(A, 4)`` anchors (or proposals).
        gt_boxes: ``(N, 5)`` rows ``(x1, y1, x2, y2, class)``, padding rows with class ``-1``.
        iou_thresholds: ``(low, high)``.

    Returns:
        ``(A, 5)`` matched gt rows, background rows ``-1``, ignored rows ``-1e8``.
    """
    low, high = checks.check_match_anchors(anchor_boxes, gt_boxes, iou_thresholds)
    ### BEGIN SOLUTION
    gt_boxes = gt_boxes[gt_boxes[:, 4] != -1].to(anchor_boxes.dtype)
    matched = anchor_boxes.new_full((anchor_boxes.shape[0], 5), BACKGROUND)
    if gt_boxes.shape[0] == 0 or anchor_boxes.shape[0] == 0:
        return matched
    quality = iou(anchor_boxes, gt_boxes[:, :4]).nan_to_num(0.0)  # (A, N)
    best_iou, best_gt = quality.max(dim=1)
    foreground = best_iou >= high
    matched[foreground] = gt_boxes[best_gt[foreground]]
    matched[(best_iou >= low) & ~foreground] = IGNORED
    best_per_gt = quality.max(dim=0).values  # (N,)
    is_best = (quality == best_per_gt[None, :]) & (best_per_gt[None, :] > 0)  # (A, N)
    best_of, gt_index = torch.where(is_best, quality, -1.0).max(dim=1)  # among the boxes it is best for
    rescued = best_of > 0
    matched[rescued] = gt_boxes[gt_index[rescued]]
    ### END SOLUTION
    return matched


def rcnn_get_deltas_from_anchors(anchors: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
    """Encode gt boxes relative to their anchors (R-CNN's parametrisation).

    With anchor centre ``(px, py)`` and size ``(pw, ph)`` and gt centre ``(bx, by)`` and size
    ``(bw, bh)``: ``dx = (bx - px) / pw``, ``dy = (by - py) / ph``, ``dw = log(bw / pw)``,
    ``dh = log(bh / ph)``.  No loops (lecture 13, slide 68).

    Args:
        anchors: ``(N, 4)`` anchors, positive width and height.
        gt_boxes: ``(N, 4)`` or ``(N, 5)`` matched gt boxes; rows marked background (``-1``) or
            ignored (``-1e8``) get deltas ``-1e8``.

    Returns:
        ``(N, 4)`` deltas ``(dx, dy, dw, dh)``.
    """
    checks.check_delta_pair(anchors, "anchors", gt_boxes, "gt_boxes", second_columns=(4, 5))
    ### BEGIN SOLUTION
    marker = _is_marker_row(gt_boxes)
    boxes = gt_boxes[:, :4]
    anchor_size = anchors[:, 2:] - anchors[:, :2]
    anchor_centre = anchors[:, :2] + anchor_size / 2
    box_size = (boxes[:, 2:] - boxes[:, :2]).clamp(min=torch.finfo(boxes.dtype).tiny)
    box_centre = boxes[:, :2] + (boxes[:, 2:] - boxes[:, :2]) / 2
    deltas = torch.cat([(box_centre - anchor_centre) / anchor_size, torch.log(box_size / anchor_size)], dim=1)
    deltas[marker] = IGNORED
    return deltas
    ### END SOLUTION


def rcnn_apply_deltas_to_anchors(deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Decode deltas into boxes: the inverse of :func:`rcnn_get_deltas_from_anchors`.

    ``dw`` and ``dh`` are clamped to ``log(224 / 8)`` first (:data:`SCALE_CLAMP`), so a wild
    prediction cannot overflow.  No loops, and do not modify ``deltas`` in place.

    Args:
        deltas: ``(N, 4)`` ``(dx, dy, dw, dh)``.
        anchors: ``(N, 4)`` anchors.

    Returns:
        ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.
    """
    checks.check_delta_pair(deltas, "deltas", anchors, "anchors")
    ### BEGIN SOLUTION
    anchor_size = anchors[:, 2:] - anchors[:, :2]
    anchor_centre = anchors[:, :2] + anchor_size / 2
    centre = anchor_centre + deltas[:, :2] * anchor_size
    size = anchor_size * torch.exp(deltas[:, 2:].clamp(max=SCALE_CLAMP))
    return torch.cat([centre - size / 2, centre + size / 2], dim=1)
    ### END SOLUTION


# --------------------------------------------------------------------------- sampling and proposals


def sample_rpn_training(gt_boxes: torch.Tensor, num_samples: int, fg_fraction: float,
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw anchors (or proposals) to train on: at most ``fg_fraction`` of them foreground.

    ``min(int(num_samples * fg_fraction), #foreground)`` foreground rows are drawn at random, the
    rest of the ``num_samples`` from the background rows (fewer when there are not enough).
    Ignored rows are never drawn.  Uses ``generator`` (else torch's global RNG), so a seed fixes it.
    Hint: ``torch.randperm`` (the foreground first, then the background, for the same draws as ours).

    Args:
        gt_boxes: ``(N, 5)`` matched rows of :func:`rcnn_match_anchors_to_gt` (class ``>= 0``:
            foreground, ``-1``: background, ``-1e8``: ignored).
        num_samples: total to draw.
        fg_fraction: largest foreground share, in [0, 1].
        generator: optional ``torch.Generator``.

    Returns:
        ``(fg_idx, bg_idx)``: int64 indices of the drawn foreground and background rows.
    """
    num_samples, fg_fraction = checks.check_sampling(gt_boxes, num_samples, fg_fraction)
    ### BEGIN SOLUTION
    foreground = (gt_boxes[:, 4] >= 0).nonzero()[:, 0]
    background = (gt_boxes[:, 4] == BACKGROUND).nonzero()[:, 0]
    num_fg = min(int(num_samples * fg_fraction), foreground.numel())
    num_bg = min(num_samples - num_fg, background.numel())
    device = gt_boxes.device
    fg_pick = torch.randperm(foreground.numel(), generator=generator)[:num_fg].to(device)  # device: CPU generator, .to
    bg_pick = torch.randperm(background.numel(), generator=generator)[:num_bg].to(device)  # device: CPU generator, .to
    return foreground[fg_pick], background[bg_pick]
    ### END SOLUTION


@torch.no_grad()
def mix_gt_with_proposals(proposals_per_fpn_level: dict, gt_boxes: torch.Tensor) -> dict:
    """Add each image's real gt boxes to its proposals (the second stage then always sees positives).

    The gt boxes (padding dropped) are appended to the image's proposals of the *first* level;
    :class:`FasterRCNN` merges the levels and re-assigns every box to a level by its size
    (:func:`assign_fpn_levels`), so which level holds them does not matter.

    Args:
        proposals_per_fpn_level: level name -> list of ``B`` tensors ``(K_i, 4)``.
        gt_boxes: ``(B, N, 5)`` padded gt rows.

    Returns:
        a new dict of the same form; the first level's tensors gain the image's real gt boxes at the end.
    """
    checks.check_mix(proposals_per_fpn_level, gt_boxes)
    batch = gt_boxes.shape[0]
    mixed = {level: list(proposals) for level, proposals in proposals_per_fpn_level.items()}
    first = next(iter(mixed))
    ### BEGIN SOLUTION
    for i in range(batch):
        real = gt_boxes[i][gt_boxes[i, :, 4] != -1, :4].to(mixed[first][i])
        mixed[first][i] = torch.cat([mixed[first][i], real], dim=0)
    ### END SOLUTION
    return mixed


# --------------------------------------------------------------------------- losses


def objectness_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on logits, per element (no reduction), computed stably.

    ``-y log(sigmoid(x)) - (1 - y) log(1 - sigmoid(x)) = max(x, 0) - x y + log(1 + exp(-|x|))``.
    You may not use ``F.binary_cross_entropy_with_logits`` (EECS 498 does; the tests compare with it).

    Args:
        logits: ``(N,)`` (any shape) logits ``x``.
        targets: same shape, ``y`` in [0, 1].

    Returns:
        the per-element loss, same shape.
    """
    checks.check_objectness(logits, targets)
    ### BEGIN SOLUTION
    targets = targets.to(logits.dtype)
    return logits.clamp(min=0) - logits * targets + torch.log1p(torch.exp(-logits.abs()))
    ### END SOLUTION


def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy ``-log softmax(logits)[label]``, with the max subtracted for stability.

    You may not use ``F.cross_entropy`` (EECS 498 does; the tests compare with it).  Hint: ``gather``.

    Args:
        logits: ``(N, K)`` class scores (for Faster R-CNN ``K = C + 1``, index 0 background).
        labels: ``(N,)`` integer classes in ``[0, K)``.

    Returns:
        scalar mean loss (0 for ``N = 0``, still connected to the graph).
    """
    checks.check_softmax_ce(logits, labels)
    if labels.numel() == 0:
        return logits.sum() * 0.0
    ### BEGIN SOLUTION
    shifted = logits - logits.max(dim=1, keepdim=True).values.detach()
    log_probs = shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
    return -log_probs.gather(1, labels[:, None].long()).mean()
    ### END SOLUTION


# --------------------------------------------------------------------------- the RPN


class RPN(nn.Module):
    """Region proposal network: anchors, their targets and losses, and proposals.

    Args:
        fpn_channels: channels of the FPN features.
        stem_channels: the head's stem (:class:`RPNPredictionNetwork`).
        batch_size_per_image: anchors sampled per image for the losses.
        anchor_stride_scale: anchor side / stride (:func:`generate_fpn_anchors`).
        anchor_aspect_ratios: anchor ``height / width`` ratios.
        anchor_iou_thresholds: ``(low, high)`` of :func:`rcnn_match_anchors_to_gt`.
        nms_thresh: NMS IoU threshold among one level's proposals.
        pre_nms_topk: best-scored anchors kept per level and image before NMS.
        post_nms_topk: proposals kept per level and image after NMS.
        fg_fraction: largest foreground share of the sampled anchors.
    """

    def __init__(self, fpn_channels: int, stem_channels: list[int], batch_size_per_image: int,
                 anchor_stride_scale: float = 8, anchor_aspect_ratios=(0.5, 1.0, 2.0),
                 anchor_iou_thresholds=(0.3, 0.6), nms_thresh: float = 0.7, pre_nms_topk: int = 400,
                 post_nms_topk: int = 100, fg_fraction: float = 0.5):
        super().__init__()
        self.pred_net = RPNPredictionNetwork(fpn_channels, stem_channels, num_anchors=len(anchor_aspect_ratios))
        (self.batch_size_per_image, self.anchor_stride_scale, self.anchor_iou_thresholds, self.nms_thresh,
         self.pre_nms_topk, self.post_nms_topk, self.fg_fraction) = checks.check_rpn(
            batch_size_per_image, anchor_stride_scale, anchor_iou_thresholds, nms_thresh, pre_nms_topk,
            post_nms_topk, fg_fraction)
        self.anchor_aspect_ratios = list(anchor_aspect_ratios)

    def anchors(self, feats_per_fpn_level: dict, strides_per_fpn_level: dict) -> dict:
        """Level name -> ``(H * W * A, 4)`` anchors of these feature maps."""
        any_feats = next(iter(feats_per_fpn_level.values()))
        shapes = {level: tuple(f.shape) for level, f in feats_per_fpn_level.items()}
        locations = get_fpn_location_coords(shapes, strides_per_fpn_level, dtype=any_feats.dtype,
                                            device=any_feats.device)
        return generate_fpn_anchors(locations, strides_per_fpn_level, self.anchor_stride_scale,
                                    self.anchor_aspect_ratios)

    def forward(self, feats_per_fpn_level: dict, strides_per_fpn_level: dict, gt_boxes: torch.Tensor | None = None,
                image_size: tuple[int, int] | None = None) -> dict:
        """Proposals, and in training mode the losses.

        Args:
            feats_per_fpn_level: level name -> ``(B, C, H, W)`` features.
            strides_per_fpn_level: level name -> stride.
            gt_boxes: ``(B, N, 5)`` padded gt rows; needed in training mode.
            image_size: ``(height, width)`` of the images, to clip proposals; default: the first
                level's size times its stride.

        Returns:
            dict with ``"proposals"``: level name -> list of ``B`` tensors ``(K_i, 4)`` (detached);
            in training mode also ``"loss_rpn_obj"`` and ``"loss_rpn_box"`` (scalars).

        You write the losses: per image, match the anchors (:func:`rcnn_match_anchors_to_gt`), draw
        ``batch_size_per_image`` of them (:func:`sample_rpn_training`), then the objectness loss
        of the drawn anchors and the L1 loss of the foreground ones' deltas, both summed over the
        batch and divided by the number of drawn anchors.
        """
        first = next(iter(feats_per_fpn_level))
        batch = feats_per_fpn_level[first].shape[0]
        if image_size is None:
            stride = strides_per_fpn_level[first]
            image_size = tuple(int(s) * stride for s in feats_per_fpn_level[first].shape[-2:])
        object_logits, boxreg_deltas = self.pred_net(feats_per_fpn_level)
        anchors = self.anchors(feats_per_fpn_level, strides_per_fpn_level)
        output = {"proposals": self.predict_proposals(anchors, object_logits, boxreg_deltas, image_size)}
        if not self.training:
            return output
        checks.check_rpn_training(gt_boxes, batch)
        ### BEGIN SOLUTION
        all_anchors = torch.cat(list(anchors.values()), dim=0)  # (A_total, 4)
        logits = torch.cat(list(object_logits.values()), dim=1)  # (B, A_total)
        deltas = torch.cat(list(boxreg_deltas.values()), dim=1)  # (B, A_total, 4)
        loss_obj, loss_box, count = [], [], 0
        for i in range(batch):
            matched = rcnn_match_anchors_to_gt(all_anchors, gt_boxes[i], self.anchor_iou_thresholds)
            fg_idx, bg_idx = sample_rpn_training(matched, self.batch_size_per_image, self.fg_fraction)
            picked = torch.cat([fg_idx, bg_idx])
            target_obj = torch.cat([torch.ones_like(fg_idx), torch.zeros_like(bg_idx)]).to(logits.dtype)
            loss_obj.append(objectness_loss(logits[i, picked], target_obj).sum())
            target_deltas = rcnn_get_deltas_from_anchors(all_anchors[fg_idx], matched[fg_idx])
            loss_box.append((deltas[i, fg_idx] - target_deltas).abs().sum())
            count += picked.numel()
        count = max(count, 1)
        output["loss_rpn_obj"] = torch.stack(loss_obj).sum() / count
        output["loss_rpn_box"] = torch.stack(loss_box).sum() / count
        ### END SOLUTION
        return output

    @torch.no_grad()
    def predict_proposals(self, anchors: dict, object_logits: dict, boxreg_deltas: dict,
                          image_size: tuple[int, int]) -> dict:
        """Per level and image: top ``pre_nms_topk`` anchors by objectness, decoded, clipped to the
        image, empty boxes dropped, NMS at ``nms_thresh``, best ``post_nms_topk`` kept.

        Returns:
            level name -> list of ``B`` tensors ``(K_i, 4)``, sorted by decreasing objectness.
        """
        proposals = {}
        for level, level_anchors in anchors.items():
            proposals[level] = []
            for logits, deltas in zip(object_logits[level], boxreg_deltas[level], strict=True):
                ### BEGIN SOLUTION
                top = logits.topk(min(self.pre_nms_topk, logits.numel())).indices
                boxes = _clip_boxes(rcnn_apply_deltas_to_anchors(deltas[top], level_anchors[top]), image_size)
                scores = logits[top]
                size = boxes[:, 2:] - boxes[:, :2]
                valid = (size > 1e-3).all(dim=1)
                boxes, scores = boxes[valid], scores[valid]
                keep = nms(boxes, scores, self.nms_thresh)[:self.post_nms_topk]
                proposals[level].append(boxes[keep].detach())
                ### END SOLUTION
        return proposals


# --------------------------------------------------------------------------- Faster R-CNN


def assign_fpn_levels(boxes: torch.Tensor, strides_per_fpn_level: dict, canonical_size: float = 224.0,
                      canonical_level: int = 4) -> torch.Tensor:
    """The FPN rule (Lin et al. 2017, eq. 1): which level a RoI is pooled from.

    ``k = floor(k0 + log2(sqrt(w h) / canonical_size))`` with ``k0 = canonical_level``, clamped to
    the available levels; a level of stride ``s`` is level ``log2(s)`` (p3: 8, p4: 16, p5: 32).
    No loops.  (EECS 498 gives this rule inside ``reassign_proposals_to_fpn_levels``.)

    Args:
        boxes: ``(K, 4)`` boxes.
        strides_per_fpn_level: level name -> stride (powers of 2).
        canonical_size, canonical_level: a box of side ``canonical_size`` goes to level ``canonical_level``.

    Returns:
        ``(K,)`` int64 index into ``list(strides_per_fpn_level)``.
    """
    canonical_size, numbers = checks.check_fpn_rule(boxes, strides_per_fpn_level, canonical_size)
    ### BEGIN SOLUTION
    side = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1e-6).sqrt()
    level = torch.floor(canonical_level + torch.log2(side / canonical_size))
    level = level.clamp(numbers[0], numbers[-1]).long()
    lookup = torch.as_tensor(numbers, device=boxes.device).long()  # whole numbers, as floats
    return torch.searchsorted(lookup, level)
    ### END SOLUTION


class FasterRCNN(nn.Module):
    """Faster R-CNN: backbone with FPN, RPN, RoIAlign and a second-stage head (class and box).

    Args:
        backbone: module mapping images ``(B, 3, H, W)`` in [0, 1] to a dict level name ->
            ``(B, C, H / s, W / s)`` features, with attribute ``fpn_strides`` (level name -> ``s``)
            and ``out_channels`` (``C``; else taken from ``rpn``).
        rpn: the :class:`RPN` (its head must take ``C`` channels).
        stem_channels: channels of the 3x3 convolutions of the second-stage head.
        num_classes: ``C`` object classes (the head predicts ``C + 1``, index 0 = background).
        batch_size_per_image: proposals sampled per image for the classification loss.
        roi_size: ``(h, w)`` of the RoIAlign output.
        fg_fraction: largest foreground share of the sampled proposals.
        proposal_iou_threshold: a proposal with IoU ``>=`` this with a gt box is that box's class;
            below it, background.
        canonical_size, canonical_level: the FPN level rule (:func:`assign_fpn_levels`).

    Attributes of the head: ``roi_head`` (the 3x3 convolutions on the RoIAlign output, then
    flattened), ``cls_pred`` (a linear layer to ``C + 1`` class scores) and ``box_pred`` (a linear
    layer to 4 class-agnostic deltas, in units of :data:`ROI_DELTA_STD`).  The stem's convolutions
    start as in :class:`RPNPredictionNetwork`; ``cls_pred`` as ``N(0, 0.01)``, ``box_pred`` as
    ``N(0, 0.001)``, biases 0.
    """

    def __init__(self, backbone: nn.Module, rpn: RPN, stem_channels: list[int], num_classes: int,
                 batch_size_per_image: int, roi_size=(7, 7), fg_fraction: float = 0.25,
                 proposal_iou_threshold: float = 0.5, canonical_size: float = 224.0, canonical_level: int = 4):
        super().__init__()
        (fpn_channels, stem_channels, self.num_classes, self.batch_size_per_image, self.roi_size, self.fg_fraction,
         self.proposal_iou_threshold, self.canonical_size, self.canonical_level) = checks.check_faster_rcnn(
            backbone, rpn, stem_channels, num_classes, batch_size_per_image, roi_size, fg_fraction,
            proposal_iou_threshold, canonical_size, canonical_level)
        self.backbone = backbone
        self.rpn = rpn
        self.roi_head = self.cls_pred = self.box_pred = None
        ### BEGIN SOLUTION
        layers, in_channels = [], fpn_channels
        for out_channels in stem_channels:
            conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU()]
            in_channels = out_channels
        self.roi_head = nn.Sequential(nn.Sequential(*layers), nn.Flatten())
        num_features = stem_channels[-1] * self.roi_size[0] * self.roi_size[1]
        self.cls_pred = nn.Linear(num_features, num_classes + 1)
        self.box_pred = nn.Linear(num_features, 4)
        for layer, std in ((self.cls_pred, 0.01), (self.box_pred, 0.001)):
            nn.init.normal_(layer.weight, std=std)
            nn.init.zeros_(layer.bias)
        ### END SOLUTION

    @property
    def fpn_strides(self) -> dict:
        return dict(self.backbone.fpn_strides)

    def roi_features(self, feats_per_fpn_level: dict, proposals: list[torch.Tensor]) -> torch.Tensor:
        """RoIAlign of every proposal on the level the FPN rule picks for its size.

        Args:
            feats_per_fpn_level: level name -> ``(B, C, H, W)``.
            proposals: ``B`` tensors ``(K_i, 4)``.

        Returns:
            ``(sum K_i, C, roi_h, roi_w)`` features, rows in the order of the concatenated proposals.
        """
        strides = self.fpn_strides
        levels = list(strides)
        ### BEGIN SOLUTION
        rows = torch.cat([torch.cat([b.new_full((b.shape[0], 1), i), b], dim=1) for i, b in enumerate(proposals)])
        which = assign_fpn_levels(rows[:, 1:], strides, self.canonical_size, self.canonical_level)
        feats = feats_per_fpn_level[levels[0]]
        pooled = feats.new_zeros(rows.shape[0], feats.shape[1], *self.roi_size)
        for index, level in enumerate(levels):
            mask = which == index
            if bool(mask.any()):
                pooled[mask] = roi_align(feats_per_fpn_level[level], rows[mask], self.roi_size,
                                         spatial_scale=1.0 / strides[level], sampling_ratio=2, aligned=True)
        return pooled
        ### END SOLUTION

    def predict_rois(self, roi_feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The second-stage head on RoIAlign features ``(K, C, roi_h, roi_w)``.

        Returns:
            ``(logits, deltas)``: ``(K, num_classes + 1)`` class scores (0 = background) and
            ``(K, 4)`` box deltas divided by :data:`ROI_DELTA_STD` (multiply by it, then
            :func:`rcnn_apply_deltas_to_anchors` on the proposals, to get boxes).
        """
        ### BEGIN SOLUTION
        features = self.roi_head(roi_feats)
        return self.cls_pred(features), self.box_pred(features)
        ### END SOLUTION

    def forward(self, images: torch.Tensor, gt_boxes: torch.Tensor | None = None,
                test_score_thresh: float = 0.5, test_nms_thresh: float = 0.5):
        """Training mode: the dict of losses ``loss_rpn_obj``, ``loss_rpn_box``, ``loss_cls``,
        ``loss_box`` (and ``loss``, their sum).  Eval mode: :meth:`inference`.

        ``loss_box`` is the L1 distance between the predicted and the true deltas (both divided by
        :data:`ROI_DELTA_STD`) of the foreground proposals, summed and divided by the number of
        sampled proposals, like the RPN's.

        Args:
            images: ``(B, 3, H, W)`` in [0, 1].
            gt_boxes: ``(B, N, 5)`` padded gt rows, class ids in ``[0, num_classes)``.
        """
        if not self.training:
            return self.inference(images, test_score_thresh, test_nms_thresh)
        checks.check_rcnn_batch(images, gt_boxes, self.num_classes)
        gt_boxes = gt_boxes.to(images)
        feats = self.backbone(images)
        rpn_output = self.rpn(feats, self.fpn_strides, gt_boxes, image_size=tuple(images.shape[-2:]))
        ### BEGIN SOLUTION
        mixed = mix_gt_with_proposals(rpn_output["proposals"], gt_boxes)
        proposals = [torch.cat([mixed[level][i] for level in mixed]) for i in range(images.shape[0])]
        sampled, labels, fg_deltas = [], [], []
        threshold = (self.proposal_iou_threshold, self.proposal_iou_threshold)
        for i, boxes in enumerate(proposals):
            matched = rcnn_match_anchors_to_gt(boxes, gt_boxes[i], threshold)
            fg_idx, bg_idx = sample_rpn_training(matched, self.batch_size_per_image, self.fg_fraction)
            sampled.append(torch.cat([boxes[fg_idx], boxes[bg_idx]]))
            labels.append(torch.cat([matched[fg_idx, 4].long() + 1, torch.zeros_like(bg_idx)]))
            fg_deltas.append(rcnn_get_deltas_from_anchors(boxes[fg_idx], matched[fg_idx]))
        logits, deltas = self.predict_rois(self.roi_features(feats, sampled))
        labels = torch.cat(labels)
        loss_cls = softmax_cross_entropy(logits, labels)
        target = torch.cat(fg_deltas) / deltas.new_tensor(ROI_DELTA_STD)
        loss_box = (deltas[labels > 0] - target).abs().sum() / max(labels.numel(), 1)
        ### END SOLUTION
        losses = {"loss_rpn_obj": rpn_output["loss_rpn_obj"], "loss_rpn_box": rpn_output["loss_rpn_box"],
                  "loss_cls": loss_cls, "loss_box": loss_box}
        losses["loss"] = sum(losses.values())
        return losses

    @torch.no_grad()
    def inference(self, images: torch.Tensor, score_thresh: float = 0.5, nms_thresh: float = 0.5,
                  max_detections: int = 100, best_class_only: bool = False) -> tuple[list, list, list]:
        """Detections of a batch of images.

        Each proposal is moved by its predicted deltas (then clipped to the image); its class
        probabilities are a softmax over ``C + 1`` scores, and every *object* class (background
        excluded) whose probability is at least ``score_thresh`` makes one detection of that box,
        scored by that probability (:func:`A5_detection.common.class_candidates`; with
        ``best_class_only``, only the most probable object class).  Then class-specific NMS at
        ``nms_thresh`` (:func:`A5_detection.common.class_spec_nms`), then the best
        ``max_detections`` are kept.

        Args:
            images: ``(B, 3, H, W)`` in [0, 1].
            score_thresh: lowest score kept, in [0, 1].
            nms_thresh: IoU threshold of the NMS.
            max_detections: most detections per image.
            best_class_only: one class per proposal (EECS 498's rule) instead of every class above
                ``score_thresh`` (torchvision's post-processing).

        Returns:
            ``(boxes, scores, classes)``: three lists of ``B`` tensors -- ``(K_i, 4)`` boxes,
            ``(K_i,)`` scores sorted in decreasing order, ``(K_i,)`` int64 classes in ``[0, C)``.
        """
        score_thresh, nms_thresh, max_detections = checks.check_inference(images, score_thresh, nms_thresh,
                                                                          max_detections, "max_detections")
        was_training = self.training
        self.eval()
        try:
            feats = self.backbone(images)
            rpn_output = self.rpn(feats, self.fpn_strides, image_size=tuple(images.shape[-2:]))
        finally:
            self.train(was_training)
        proposals = [torch.cat([rpn_output["proposals"][level][i] for level in rpn_output["proposals"]])
                     for i in range(images.shape[0])]
        counts = [p.shape[0] for p in proposals]
        all_boxes, all_scores, all_classes = [], [], []
        ### BEGIN SOLUTION
        if sum(counts):
            logits, deltas = self.predict_rois(self.roi_features(feats, proposals))
            probs = torch.softmax(logits, dim=1)
            boxes = rcnn_apply_deltas_to_anchors(deltas * deltas.new_tensor(ROI_DELTA_STD), torch.cat(proposals))
            refined = _clip_boxes(boxes, tuple(images.shape[-2:])).split(counts)
        else:
            probs = images.new_zeros(0, self.num_classes + 1)
            refined = proposals
        for boxes, image_probs in zip(refined, probs.split(counts), strict=True):
            rows, classes, scores = class_candidates(image_probs[:, 1:], score_thresh, best_class_only)
            boxes = boxes[rows]
            keep = class_spec_nms(boxes, scores, classes, nms_thresh)[:max_detections]
            all_boxes.append(boxes[keep])
            all_scores.append(scores[keep])
            all_classes.append(classes[keep])
        ### END SOLUTION
        return all_boxes, all_scores, all_classes


# =========================================================================== given code
# Below: code you do not write -- helpers of the classes above, EECS 498's level assignment on top
# of your assign_fpn_levels, and running Faster R-CNN over an image set.


def _is_marker_row(gt_boxes: torch.Tensor) -> torch.Tensor:
    """``(N,)`` True where a target row is background (class ``-1``) or ignored (class ``-1e8``)."""
    return gt_boxes[:, -1] < 0 if gt_boxes.shape[1] == 5 else (gt_boxes == BACKGROUND).all(1) | (
        gt_boxes == IGNORED).all(1)


def _clip_boxes(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    height, width = image_size
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


@torch.no_grad()
def reassign_proposals_to_fpn_levels(proposals_per_image: list[torch.Tensor], gt_boxes: torch.Tensor | None = None,
                                     fpn_level_ids=(3, 4, 5)) -> dict:
    """EECS 498's form of the FPN rule: each image's proposals (and gt boxes) sorted into levels.

    Every box goes to the level :func:`assign_fpn_levels` picks for its size (level ``k`` has
    stride ``2 ** k``).  With ``gt_boxes (B, N, 5)``, each image's real gt boxes are first added
    to its proposals (as :func:`mix_gt_with_proposals` does).  :class:`FasterRCNN` pools every box
    from its level in :meth:`FasterRCNN.roi_features` without building this dict.

    Args:
        proposals_per_image: ``B`` tensors ``(K_i, 4)``.
        gt_boxes: optional padded gt rows ``(B, N, 5)``.
        fpn_level_ids: the levels' numbers, increasing.

    Returns:
        dict ``"p{k}"`` -> list of ``B`` tensors, the boxes of each image assigned to level ``k``
        (``(0, 4)`` where none).
    """
    strides = {f"p{k}": 2 ** k for k in fpn_level_ids}
    checks.check_reassign(proposals_per_image, gt_boxes)
    per_level = {name: [] for name in strides}
    for i, proposals in enumerate(proposals_per_image):
        if gt_boxes is not None:
            real = gt_boxes[i][gt_boxes[i, :, 4] != -1, :4]
            proposals = torch.cat([proposals, real.to(proposals)], dim=0)
        which = assign_fpn_levels(proposals, strides)
        for index, name in enumerate(strides):
            per_level[name].append(proposals[which == index])
    return per_level


def predict_detections(model: FasterRCNN, images: torch.Tensor, score_thresh: float = 0.05,
                       nms_thresh: float = 0.5, batch_size: int = 32, best_class_only: bool = False) -> list[dict]:
    """Run :meth:`FasterRCNN.inference` over a set of images (uint8 or floats in [0, 1]) in batches of
    ``batch_size``, with ``score_thresh`` (low for mAP: the ranking decides precision), the
    class-specific NMS at ``nms_thresh`` and ``best_class_only`` as there.  See
    ``common.predict_in_batches``; returns its ``N`` prediction dicts, the ``predictions`` of
    :func:`A5_detection.common.evaluate_detections`.
    """
    def detect(batch):
        boxes, scores, classes = model.inference(batch, score_thresh, nms_thresh, best_class_only=best_class_only)
        return [{"boxes": b, "scores": s, "labels": c} for b, s, c in zip(boxes, scores, classes, strict=True)]

    return predict_in_batches(model, images, detect, batch_size)


# --------------------------------------------------------------------------- command line (given code)


def build_faster_rcnn(num_classes: int, fpn_channels: int = 64, stem_channels=(64, 64), anchor_stride_scale: float = 3,
                      pretrained: bool = False, trunk: str | None = None) -> FasterRCNN:
    """The notebook's Faster R-CNN: backbone + FPN, an RPN (64 anchors sampled per image, 400 proposals before
    NMS, 100 after) and the second stage (64 proposals sampled per image); ``pretrained``, ``trunk``: as in
    ``common.DetectorBackboneWithFPN``."""
    from A5_detection.common import DetectorBackboneWithFPN

    backbone = DetectorBackboneWithFPN(out_channels=fpn_channels, pretrained=pretrained, trunk=trunk)
    rpn = RPN(fpn_channels, list(stem_channels), batch_size_per_image=64, anchor_stride_scale=anchor_stride_scale,
              pre_nms_topk=400, post_nms_topk=100)
    return FasterRCNN(backbone, rpn, list(stem_channels), num_classes=num_classes, batch_size_per_image=64)


def anchor_stride_scale_for(image_size: int, on_voc: bool) -> int:
    """The notebook's anchor side / stride: on VOC 8 at 224 px and the same share of a smaller image
    (VOC's objects fill a fixed share of the picture, whatever its size); 3 on the synthetic shapes."""
    return round(8 * image_size / 224) if on_voc else 3


def train_defaults(cfg) -> dict:
    """The notebook's training recipe (two_stage_detector.ipynb) for ``cfg.dataset`` in ``cfg.mode``."""
    on_voc = cfg.dataset == "voc2007"
    return {"image_size": cfg.pick(128, 224) if on_voc else cfg.pick(64, 96),
            "train_size": cfg.pick(600 if on_voc else 1000, None), "val_size": cfg.pick(100 if on_voc else 200, None),
            "draws": 1 if on_voc else cfg.pick(1, 5), "epochs": 2, "batch_size": cfg.pick(8, 16),
            "lr": cfg.pick(4e-3, 2e-3), "pretrained": on_voc and regnet_available(cfg), "on_voc": on_voc}


def build_for_training(settings: dict, class_names) -> tuple[FasterRCNN, dict]:
    """:func:`build_faster_rcnn` for ``class_names`` and the keyword arguments that rebuild it; the anchors
    follow ``settings["image_size"]`` (:func:`anchor_stride_scale_for`), also when ``--image-size`` sets it."""
    from A5_detection.harness import build_on_trunk

    return build_on_trunk(build_faster_rcnn, {
        "num_classes": len(class_names),
        "anchor_stride_scale": anchor_stride_scale_for(settings["image_size"], settings["on_voc"])}, settings)


def main(argv=None) -> int:
    """``python -m A5_detection.two_stage_detector train [...]``: train Faster R-CNN as the notebook does, on one
    process or under torchrun (``helpers.export.paper_main``, ``helpers.train_command``)."""
    from A5_detection import harness
    from helpers.export import paper_main

    recipe = harness.detection_recipe("a5_faster_rcnn", "a5_faster_rcnn", train_defaults, build_for_training,
                                      harness.losses_fn, validation_predictions, harness.one_cycle(0.05),
                                      weight_decay=1e-4, grad_clip=10.0)
    return paper_main(argv, "a5_faster_rcnn", "Faster R-CNN (A5_detection/two_stage_detector.ipynb): train from "
                      "the command line.", None, None, (), None, detector=True, recipe=recipe,
                      module="A5_detection.two_stage_detector")


def validation_predictions(model: FasterRCNN, images: torch.Tensor) -> list[dict]:
    """:func:`predict_detections` in batches of 100, as the notebook validates."""
    return predict_detections(model, images, batch_size=100)


if __name__ == "__main__":
    import sys

    from helpers.export import run_command

    sys.exit(run_command(main))
