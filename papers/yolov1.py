"""Paper: YOLOv1 -- "You Only Look Once: Unified, Real-Time Object Detection" (Redmon et al., CVPR 2016).

One network looks at the whole image once and fills an ``S x S`` grid: every cell predicts
``B`` boxes, each ``(x, y, w, h, confidence)``, and one set of ``C`` class probabilities.  The
cell that holds an object's *centre* is the one that must find it.  Written by hand here:

* :class:`YOLOv1` -- a configurable convolutional backbone (:data:`PAPER_LAYOUT`, the paper's 24
  convolutions for 448-px images; :data:`SMALL_LAYOUT`, a reduced one for 64-96 px images, the one
  trained in the notebook) and a head that outputs the raw ``(N, S, S, B * 5 + C)`` grid;
* :func:`encode_targets` / :func:`decode_targets` -- ground-truth boxes to the grid and back;
* :func:`split_predictions` and :func:`cell_boxes` -- what each number of the grid means;
* :func:`responsible_boxes` -- which of a cell's ``B`` boxes answers for the cell's object (the
  one with the highest IoU with it, by ``A5_detection.common.paired_iou``);
* :func:`yolo_loss` -- the paper's sum-squared loss: ``lambda_coord = 5`` on the coordinates,
  square roots of width and height, ``lambda_noobj = 0.5`` on the confidence of boxes that
  answer for no object;
* :func:`decode_predictions` -- class-specific scores, thresholding and class-specific NMS
  (``A5_detection.common.class_spec_nms``) -- and :func:`predict_detections` for mAP with
  ``A5_detection.common.evaluate_detections``;
* :func:`random_scale_translate` -- the paper's augmentation: random scaling and translation;
* :func:`shares_cell` -- the objects whose centre cell holds another object's centre (YOLOv1's
  known weakness: one class distribution per cell);
* a command line: ``python -m papers.yolov1 predict IMAGE... [--checkpoint P | --export P]`` and
  ``python -m papers.yolov1 export`` (see :func:`main`).

Layout of one cell's ``D = B * 5 + C`` numbers: ``B`` groups ``(x, y, sqrt_w, sqrt_h, conf)``
then ``C`` class scores.  ``x, y`` are the box centre's offset inside the cell, in [0, 1] (cell
units); ``sqrt_w, sqrt_h`` the square roots of the box's width and height as fractions of the
image side (the paper regresses the square roots, so that an error of a few pixels weighs more on
a small box than on a large one).  With ``squash=True`` (the default here) the network's raw
outputs go through a sigmoid (coordinates, confidence) and a softmax (classes) before the loss;
with ``squash=False`` they are used as they are, the paper's linear output layer.

Batches use the course's format: ``images (N, 3, H, W)`` floats in [0, 1] (``H = W = image_size``)
and ``gt_boxes (N, M, 5)`` rows ``(x1, y1, x2, y2, class)`` in continuous pixel coordinates,
padding rows all ``-1``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from A5_detection.common import class_candidates, class_spec_nms, paired_iou, predict_in_batches
from helpers.backbone import IMAGENET_MEAN, IMAGENET_STD
from papers import checks

__all__ = [
    "LAYOUTS",
    "PAPER_LAYOUT",
    "SMALL_LAYOUT",
    "YOLOv1",
    "build_backbone",
    "cell_boxes",
    "decode_predictions",
    "decode_targets",
    "encode_targets",
    "layout_stride",
    "load_yolov1",
    "inference_metadata",
    "main",
    "predict_detections",
    "random_scale_translate",
    "responsible_boxes",
    "save_export",
    "shares_cell",
    "split_predictions",
    "yolo_loss",
]

def build_backbone(layout, in_channels: int = 3, batch_norm: bool = True) -> tuple[nn.Sequential, int]:
    """The convolutional part of YOLOv1 from a layout.

    Each ``(kernel, channels, stride)`` entry becomes a convolution with padding ``kernel // 2``
    (so only the stride changes the size), BatchNorm when ``batch_norm`` (YOLOv2's addition; the
    2016 paper has none, and from scratch it trains much faster with it), and a leaky ReLU of slope
    0.1 (the paper's activation); ``"M"`` a 2 x 2 max-pool of stride 2.

    Returns:
        ``(backbone, out_channels)``: ``backbone`` maps ``(N, in_channels, H, W)`` to
        ``(N, out_channels, H / stride, W / stride)`` (:func:`layout_stride`).

    Hint: one ``nn.Conv2d`` per ``(kernel, channels, stride)`` entry; keep track of the
    current number of channels, it is the next convolution's input.
    """
    layers, channels = [], in_channels
    ### BEGIN SOLUTION
    for entry in _resolve_layout(layout):
        if entry == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        kernel, out, stride = entry
        layers.append(nn.Conv2d(channels, out, kernel, stride=stride, padding=kernel // 2, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.LeakyReLU(0.1, inplace=True))
        channels = out
    ### END SOLUTION
    return nn.Sequential(*layers), channels


class YOLOv1(nn.Module):
    """YOLOv1: a convolutional backbone and a head that fills the ``S x S x (B * 5 + C)`` grid.

    Heads:

    * ``"fc"`` (the paper): flatten the last feature map, a fully connected layer of ``hidden``
      units (leaky ReLU, dropout ``dropout``), a second one to ``S * S * (B * 5 + C)`` numbers.
      Every cell sees the whole image.  The paper's size: ``hidden = 4096``, ``dropout = 0.5``.
    * ``"conv"``: a 3 x 3 convolution (``hidden`` channels) and a 1 x 1 convolution to ``B * 5 + C``
      channels on the last map, which must then be ``S x S`` (image side / layout stride = ``S``).

    Args:
        num_classes: ``C``.
        image_size: side of the square input images (the FC head fixes it); a multiple of ``grid_size``.
        grid_size: ``S``.
        num_boxes: ``B``, boxes per cell.
        layout: ``"small"``, ``"paper"`` or a custom layout (see :func:`build_backbone`).
        head: ``"fc"`` or ``"conv"``.
        hidden: units of the FC head's first layer, channels of the conv head's 3 x 3 layer.
        dropout: dropout after the FC head's first layer.
        batch_norm: BatchNorm after each convolution of the backbone.
        squash: sigmoid / softmax on the raw outputs before the loss and decoding (else linear).
        lambda_coord, lambda_noobj: the loss weights (the paper's 5 and 0.5).
        class_names: optional names of the classes (kept for the command line).

    ``forward(images)``: ``images (N, 3, image_size, image_size)`` floats in [0, 1] (normalised
    inside with the ImageNet mean and std) -> the raw grid ``(N, S, S, B * 5 + C)``.
    """

    def __init__(self, num_classes: int, image_size: int = 96, grid_size: int = 6, num_boxes: int = 2,
                 layout="small", head: str = "fc", hidden: int = 512, dropout: float = 0.5,
                 batch_norm: bool = True, squash: bool = True, lambda_coord: float = 5.0,
                 lambda_noobj: float = 0.5, class_names: list | None = None):
        super().__init__()
        feature_size = checks.yolov1_settings(num_classes, image_size, grid_size, num_boxes, head, hidden, dropout,
                                              layout_stride(layout), lambda_coord, lambda_noobj, class_names)
        self.num_classes, self.image_size, self.grid_size = num_classes, image_size, grid_size
        self.num_boxes = num_boxes
        self.squash, self.head_kind = bool(squash), head
        self.lambda_coord, self.lambda_noobj = float(lambda_coord), float(lambda_noobj)
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        depth = num_boxes * 5 + num_classes
        ### BEGIN SOLUTION
        self.backbone, channels = build_backbone(layout, 3, batch_norm)
        if head == "fc":
            self.head = nn.Sequential(
                nn.Flatten(),
                nn.Linear(channels * feature_size * feature_size, hidden),
                nn.LeakyReLU(0.1, inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden, grid_size * grid_size * depth),
            )
        else:
            self.head = nn.Sequential(
                nn.Conv2d(channels, hidden, 3, padding=1),
                nn.LeakyReLU(0.1, inplace=True),
                nn.Dropout(dropout),
                nn.Conv2d(hidden, depth, 1),
            )
        ### END SOLUTION

    @property
    def depth(self) -> int:
        """``B * 5 + C``: numbers per cell."""
        return self.num_boxes * 5 + self.num_classes

    def check_images(self, images) -> None:
        """Raise a clear error unless ``images`` is ``(N, 3, image_size, image_size)`` floats."""
        checks.yolo_images(images, self.grid_size, self.image_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        feats = self.backbone((images - self.mean) / self.std)
        ### BEGIN SOLUTION
        out = self.head(feats)
        if self.head_kind == "fc":
            return out.view(-1, self.grid_size, self.grid_size, self.depth)
        return out.permute(0, 2, 3, 1)
        ### END SOLUTION

    def loss(self, images: torch.Tensor, gt_boxes: torch.Tensor) -> dict:
        """:func:`yolo_loss` of this model on a batch; ``gt_boxes (N, M, 5)``."""
        self.check_images(images)
        targets = encode_targets(gt_boxes, self.grid_size, self.image_size, self.num_classes)
        return yolo_loss(self(images), targets, self.num_boxes, self.lambda_coord, self.lambda_noobj,
                         squash=self.squash)

    @torch.no_grad()
    def detect(self, images: torch.Tensor, score_thresh: float = 0.05, nms_thresh: float = 0.5,
               best_class_only: bool = False) -> list:
        """:func:`decode_predictions` of this model's grid for ``images`` (in eval mode, mode restored)."""
        was_training = self.training
        self.eval()
        try:
            raw = self(images)
        finally:
            self.train(was_training)
        return decode_predictions(raw, self.num_boxes, self.image_size, score_thresh, nms_thresh, squash=self.squash,
                                  best_class_only=best_class_only)


# --------------------------------------------------------------------------- targets


def encode_targets(gt_boxes: torch.Tensor, grid_size: int, image_size: int, num_classes: int) -> torch.Tensor:
    """Ground-truth boxes -> the YOLOv1 target grid.

    The cell ``(row, col)`` holding a box's centre answers for it; its target is
    ``(x, y, w, h, 1, one-hot class)`` with ``x, y`` the centre's offset inside the cell in [0, 1]
    and ``w, h`` the box size as fractions of the image side.  Every other cell is all zeros (no
    object).  A cell can hold only one object (one class distribution per cell): when several
    centres fall into the same cell, the largest box (by area; the first of equal areas) is kept
    and the others are lost to the model -- see :func:`shares_cell`.

    Args:
        gt_boxes: ``(N, M, 5)`` rows ``(x1, y1, x2, y2, class)`` in pixels, padding rows all ``-1``;
            an image may have no object at all.
        grid_size: ``S``.
        image_size: side of the square images (a multiple of ``S``).
        num_classes: ``C``.

    Returns:
        ``(N, S, S, 5 + C)`` float tensor.

    Rule: a loop over the images and their few boxes is fine; write each box's numbers with
    tensor indexing.  Hint: :func:`_centre_cells` gives every box's cell.
    """
    grid_size, image_size, num_classes = checks.encode_args(gt_boxes, grid_size, image_size, num_classes)
    cell = image_size / grid_size
    targets = gt_boxes.new_zeros(gt_boxes.shape[0], grid_size, grid_size, 5 + num_classes)
    ### BEGIN SOLUTION
    for n, boxes in enumerate(gt_boxes):
        boxes = boxes[boxes[:, 4] >= 0]
        if not boxes.shape[0]:
            continue
        areas = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).tolist()
        # written smallest first, so that in a shared cell the largest (the first of equal areas) is written last
        order = sorted(range(len(areas)), key=lambda k: (areas[k], -k))
        row, col = _centre_cells(boxes, grid_size, image_size)
        for k in order:
            x1, y1, x2, y2, cls = boxes[k].tolist()
            r, c = int(row[k]), int(col[k])
            target = targets[n, r, c]
            target.zero_()
            target[0] = (x1 + x2) / 2 / cell - c
            target[1] = (y1 + y2) / 2 / cell - r
            target[2] = (x2 - x1) / image_size
            target[3] = (y2 - y1) / image_size
            target[4] = 1.0
            target[5 + int(cls)] = 1.0
    ### END SOLUTION
    return targets


def cell_boxes(xy: torch.Tensor, wh: torch.Tensor, image_size: float = 1.0) -> torch.Tensor:
    """Grid coordinates -> boxes ``(x1, y1, x2, y2)``.

    Args:
        xy: ``(N, S, S, ..., 2)`` centre offsets inside each cell (cell units); cell ``(row, col)``
            is dimensions 1 and 2.
        wh: same shape, width and height as fractions of the image side.
        image_size: the image side in pixels (1.0: boxes in fractions of the image).

    Returns:
        ``(N, S, S, ..., 4)`` boxes.

    Rule: no loops.  Hint: ``torch.arange(S)`` shaped to broadcast against ``xy`` gives each
    cell's column and row; the corners are the centre minus and plus half the size.
    """
    checks.cell_coordinates(xy, wh)
    grid_size = xy.shape[1]
    ### BEGIN SOLUTION
    steps = torch.arange(grid_size, dtype=xy.dtype, device=xy.device)
    extra = (1,) * (xy.dim() - 4)
    col = steps.view(1, 1, grid_size, *extra)
    row = steps.view(1, grid_size, 1, *extra)
    cx = (col + xy[..., 0]) / grid_size
    cy = (row + xy[..., 1]) / grid_size
    half_w, half_h = wh[..., 0] / 2, wh[..., 1] / 2
    boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)
    ### END SOLUTION
    return boxes * image_size


# --------------------------------------------------------------------------- predictions and the loss


def split_predictions(raw: torch.Tensor, num_boxes: int, squash: bool = True) -> dict:
    """The raw grid ``(N, S, S, B * 5 + C)`` as named parts.

    With ``squash``: sigmoid on ``x, y, sqrt_w, sqrt_h`` and the confidence, softmax over the
    classes; without, the raw values (the paper's linear layer).

    Returns:
        dict ``xy (N, S, S, B, 2)``, ``sqrt_wh (N, S, S, B, 2)``, ``conf (N, S, S, B)``,
        ``class_probs (N, S, S, C)``.

    Rule: no loops.  Hint: ``unflatten`` the first ``B * 5`` numbers of a cell into ``(B, 5)``.
    """
    checks.yolo_raw(raw, num_boxes)
    ### BEGIN SOLUTION
    boxes = raw[..., :num_boxes * 5].unflatten(-1, (num_boxes, 5))
    classes = raw[..., num_boxes * 5:]
    if squash:
        boxes = torch.sigmoid(boxes)
        classes = torch.softmax(classes, dim=-1)
    return {"xy": boxes[..., 0:2], "sqrt_wh": boxes[..., 2:4], "conf": boxes[..., 4], "class_probs": classes}
    ### END SOLUTION


def responsible_boxes(pred_boxes: torch.Tensor, target_boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's rule: of a cell's ``B`` predicted boxes, the one with the highest IoU with the
    cell's ground-truth box is "responsible" for it (the first of equal IoUs, so box 0 when none
    overlaps).  Each box specialises this way in some sizes and shapes.

    Args:
        pred_boxes: ``(N, S, S, B, 4)`` predicted boxes ``(x1, y1, x2, y2)``.
        target_boxes: ``(N, S, S, 4)`` the cell's target box (anything for cells without an object).

    Returns:
        ``(index, iou)``: ``index (N, S, S)`` int64 in ``[0, B)``, and ``iou (N, S, S, B)`` of every
        predicted box with its cell's target.

    Rule: no loops.  Hint: ``paired_iou`` of the predicted boxes and the target boxes with a
    box axis added (``unsqueeze(3)``), then ``argmax``.
    """
    checks.cell_box_pairs(pred_boxes, target_boxes)
    ### BEGIN SOLUTION
    iou = paired_iou(pred_boxes, target_boxes.unsqueeze(3))
    return iou.argmax(dim=-1), iou  # argmax: the first of equal values
    ### END SOLUTION


def yolo_loss(raw: torch.Tensor, targets: torch.Tensor, num_boxes: int, lambda_coord: float = 5.0,
              lambda_noobj: float = 0.5, squash: bool = True, rescore: bool = True) -> dict:
    """The YOLOv1 sum-squared loss, summed over cells and divided by the batch size ``N``.

    With ``1_i^obj`` = cell ``i`` holds an object, ``1_ij^obj`` = box ``j`` of cell ``i`` is
    responsible for it (:func:`responsible_boxes`) and ``1_ij^noobj = 1 - 1_ij^obj``::

        coord_xy   = lambda_coord * sum_ij 1_ij^obj [(x - x^)^2 + (y - y^)^2]
        coord_wh   = lambda_coord * sum_ij 1_ij^obj [(sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
        conf_obj   =                sum_ij 1_ij^obj (C - C^)^2
        conf_noobj = lambda_noobj * sum_ij 1_ij^noobj (0 - C^)^2
        class      =                sum_i  1_i^obj  sum_c (p(c) - p^(c))^2

    The confidence target ``C`` of a responsible box is its IoU with the object (``rescore``, the
    paper's definition ``Pr(object) * IoU``), or 1 with ``rescore=False``.  The IoU is a target: no
    gradient flows through it.  An image without objects only has the ``conf_noobj`` term.

    Args:
        raw: ``(N, S, S, B * 5 + C)`` network output.
        targets: ``(N, S, S, 5 + C)`` from :func:`encode_targets`.
        num_boxes: ``B``.
        lambda_coord, lambda_noobj: the weights.
        squash: as for :func:`split_predictions`.
        rescore: confidence target IoU (True) or 1.

    Returns:
        dict of the five terms (scalars, weighted) ``coord_xy, coord_wh, conf_obj, conf_noobj, class``.

    Rule: no loops (over cells, boxes or anything else).  Hint: find the responsible boxes under
    ``torch.no_grad()``; ``F.one_hot`` turns their index into a ``(N, S, S, B)`` mask.
    """
    parts = split_predictions(raw, num_boxes, squash)
    lambda_coord, lambda_noobj = checks.yolo_loss_args(raw, targets, parts["class_probs"].shape[-1], lambda_coord,
                                                       lambda_noobj)
    batch = raw.shape[0]
    losses = {}
    ### BEGIN SOLUTION
    has_object = targets[..., 4]  # (N, S, S) 1 or 0
    target_xy, target_wh = targets[..., 0:2], targets[..., 2:4]
    pred_wh = parts["sqrt_wh"].clamp(min=0) ** 2  # a negative square root (linear output) is an empty box
    with torch.no_grad():
        pred_boxes = cell_boxes(parts["xy"].detach(), pred_wh.detach())
        target_boxes = cell_boxes(target_xy, target_wh)
        best, iou = responsible_boxes(pred_boxes, target_boxes)
    responsible = F.one_hot(best, num_boxes).to(raw.dtype) * has_object.unsqueeze(-1)  # (N, S, S, B)
    xy_error = ((parts["xy"] - target_xy.unsqueeze(3)) ** 2).sum(-1)
    wh_error = ((parts["sqrt_wh"] - target_wh.sqrt().unsqueeze(3)) ** 2).sum(-1)
    conf_target = iou if rescore else torch.ones_like(iou)
    losses["coord_xy"] = lambda_coord * (responsible * xy_error).sum() / batch
    losses["coord_wh"] = lambda_coord * (responsible * wh_error).sum() / batch
    losses["conf_obj"] = (responsible * (parts["conf"] - conf_target) ** 2).sum() / batch
    losses["conf_noobj"] = lambda_noobj * ((1 - responsible) * parts["conf"] ** 2).sum() / batch
    class_error = ((parts["class_probs"] - targets[..., 5:]) ** 2).sum(-1)
    losses["class"] = (has_object * class_error).sum() / batch
    ### END SOLUTION
    return losses


# --------------------------------------------------------------------------- inference


def decode_predictions(raw: torch.Tensor, num_boxes: int, image_size: int, score_thresh: float = 0.05,
                       nms_thresh: float = 0.5, squash: bool = True, max_detections: int = 100,
                       best_class_only: bool = False) -> list[dict]:
    """The raw grid -> detections, outside the network (so the same code runs after an export).

    Each box ``j`` of each cell gets a class-specific score per class, ``conf_j * p(class)`` (the
    paper's ``Pr(class | object) * Pr(object) * IoU``).  Every (box, class) pair scoring at least
    ``score_thresh`` is a candidate (``A5_detection.common.class_candidates``); boxes are clipped
    to the image; class-specific NMS (``A5_detection.common.class_spec_nms``) at ``nms_thresh``
    removes duplicates; the best ``max_detections`` are kept.  With ``best_class_only`` each box
    offers only its best-scoring class: one detection per box, which is what a class-agnostic score
    needs (with every class, one box would count once per class).

    Args:
        raw: ``(N, S, S, B * 5 + C)`` network output.
        num_boxes: ``B``.
        image_size: image side in pixels.
        score_thresh, nms_thresh: see above.
        squash: as for :func:`split_predictions`.
        max_detections: most detections per image.
        best_class_only: at most one class per box.

    Returns:
        ``N`` dicts ``{"boxes" (K, 4) pixels, "scores" (K,), "labels" (K,) int64}``, by decreasing
        score, on the CPU -- the ``predictions`` of ``A5_detection.common.evaluate_detections``.

    Rule: one loop, over the images.  Hint: :func:`cell_boxes` for every box at once, then
    ``class_candidates`` and ``class_spec_nms`` per image.
    """
    parts = split_predictions(raw, num_boxes, squash)
    score_thresh, nms_thresh = checks.yolo_decode_args(raw, image_size, score_thresh, nms_thresh, max_detections)
    num_classes = parts["class_probs"].shape[-1]
    predictions = []
    ### BEGIN SOLUTION
    boxes = cell_boxes(parts["xy"], parts["sqrt_wh"].clamp(min=0) ** 2, image_size).clamp(0, image_size)
    scores = parts["conf"].unsqueeze(-1) * parts["class_probs"].unsqueeze(3)  # (N, S, S, B, C)
    for n in range(raw.shape[0]):
        flat_boxes = boxes[n].reshape(-1, 4).detach().float().cpu()
        flat_scores = scores[n].reshape(-1, num_classes).detach().float().cpu()
        box_index, labels, candidate_scores = class_candidates(flat_scores, score_thresh, best_class_only)
        candidate_boxes = flat_boxes[box_index]
        kept = class_spec_nms(candidate_boxes, candidate_scores, labels, nms_thresh)[:max_detections]
        predictions.append({"boxes": candidate_boxes[kept], "scores": candidate_scores[kept], "labels": labels[kept]})
    ### END SOLUTION
    return predictions


def predict_detections(model: YOLOv1, images: torch.Tensor, score_thresh: float = 0.01, nms_thresh: float = 0.5,
                       batch_size: int = 100, best_class_only: bool = False) -> list[dict]:
    """:meth:`YOLOv1.detect` over a set of images (uint8 or floats in [0, 1]) in batches: the ``N``
    prediction dicts of ``A5_detection.common.evaluate_detections`` (a low ``score_thresh`` for
    mAP: the ranking decides precision; ``best_class_only`` as in :func:`decode_predictions`).
    See ``common.predict_in_batches``."""
    return predict_in_batches(model, images, lambda batch: model.detect(batch, score_thresh, nms_thresh,
                                                                        best_class_only), batch_size)


# --------------------------------------------------------------------------- augmentation


def random_scale_translate(images: torch.Tensor, gt_boxes: torch.Tensor, max_scale: float = 0.2,
                           max_shift: float = 0.2, generator: torch.Generator | None = None,
                           min_visible: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's augmentation: scale each image by a random factor in ``[1 - max_scale, 1 + max_scale]``
    about its centre and shift it by up to ``max_shift`` of its side, boxes with it.

    Pixels that come from outside the image are 0 (black).  Boxes are clipped to the image; a box
    keeping less than ``min_visible`` of its area, or less than 2 px of width or height, becomes
    padding (all ``-1``): its object is mostly gone.

    Args:
        images: ``(N, C, H, W)`` floats.
        gt_boxes: ``(N, M, 5)`` rows ``(x1, y1, x2, y2, class)``, padding all ``-1``.

    Returns:
        ``(images, gt_boxes)`` transformed (new tensors).

    Rule: no loops.  Hint: ``F.affine_grid`` and ``F.grid_sample`` move the pixels; move the
    box corners by the same map (scale about the centre, then shift).
    """
    max_scale, max_shift = checks.augmentation_args(images, gt_boxes, max_scale, max_shift)
    n, _, height, width = images.shape
    device = images.device
    scale = 1 + (torch.rand(n, generator=generator) * 2 - 1) * max_scale   # device: a CPU generator; .to below
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * max_shift    # device: as scale; fractions of the side
    scale, shift = scale.to(device), shift.to(device)
    ### BEGIN SOLUTION
    # output pixel at normalised p (in [-1, 1]) reads input at (p - 2 * shift) / scale
    theta = torch.zeros(n, 2, 3, device=device, dtype=images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = -2 * shift / scale[:, None]
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    boxes = gt_boxes.clone()
    real = boxes[..., 4] >= 0
    size = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=device)
    centre = size / 2
    offset = (shift.repeat(1, 2) * size)  # (N, 4) as x, y, x, y
    moved = (boxes[..., :4] - centre) * scale[:, None, None] + centre + offset[:, None, :]
    clipped = torch.minimum(moved.clamp(min=0), size)
    area_before = (moved[..., 2] - moved[..., 0]) * (moved[..., 3] - moved[..., 1])
    wh = clipped[..., 2:] - clipped[..., :2]
    area_after = wh[..., 0] * wh[..., 1]
    keep = real & (area_after >= min_visible * area_before) & (wh >= 2).all(-1)
    boxes[..., :4] = clipped
    boxes[~keep] = -1.0
    ### END SOLUTION
    return out, boxes


# --------------------------------------------------------------------------- targets (given)


def _centre_cells(boxes: torch.Tensor, grid_size: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of the cell holding each box centre (a centre on the last edge goes to the last cell)."""
    cell = image_size / grid_size
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    col = (cx / cell).floor().long().clamp(0, grid_size - 1)
    row = (cy / cell).floor().long().clamp(0, grid_size - 1)
    return row, col


def decode_targets(targets: torch.Tensor, image_size: int) -> list[dict]:
    """The target grid of :func:`encode_targets` -> one ``{"boxes" (K, 4), "labels" (K,)}`` per image.

    Boxes come in row-major cell order.  The inverse of :func:`encode_targets` for images whose
    objects all have a cell of their own.
    """
    if not isinstance(targets, torch.Tensor) or targets.dim() != 4 or targets.shape[1] != targets.shape[2] \
            or targets.shape[3] < 6:
        got = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise ValueError(f"targets must have shape (N, S, S, 5 + C), got {got}")
    checks.yolo_grid(targets.shape[1], image_size)
    boxes = cell_boxes(targets[..., 0:2], targets[..., 2:4], image_size)
    out = []
    for n in range(targets.shape[0]):
        has_object = targets[n, ..., 4] > 0
        out.append({"boxes": boxes[n][has_object].reshape(-1, 4),
                    "labels": targets[n, ..., 5:][has_object].argmax(dim=-1).reshape(-1)})
    return out


def shares_cell(gt_boxes: torch.Tensor, grid_size: int, image_size: int) -> torch.Tensor:
    """Which objects share their centre cell with another object's centre.

    Args:
        gt_boxes: ``(N, M, 5)`` as for :func:`encode_targets`.

    Returns:
        bool ``(N, M)``: True for a real box whose centre cell holds at least one other centre
        (False for padding).  Of each such group only one object gets a target.
    """
    grid_size, image_size = checks.yolo_grid(grid_size, image_size)
    checks.yolo_gt_boxes(gt_boxes, image_size, None)
    shared = torch.zeros(gt_boxes.shape[:2], dtype=torch.bool, device=gt_boxes.device)
    for n, boxes in enumerate(gt_boxes):
        real = (boxes[:, 4] >= 0).nonzero()[:, 0]
        row, col = _centre_cells(boxes[real], grid_size, image_size)
        index = row * grid_size + col
        same = index[:, None] == index[None, :]
        shared[n, real] = same.sum(dim=1) > 1
    return shared


# --------------------------------------------------------------------------- layouts (given)

#: The paper's 24 convolutional layers (Figure 3) for 448 x 448 images: ``(kernel, channels, stride)``
#: per convolution, ``"M"`` for a 2 x 2 max-pool of stride 2.  Overall stride 64: a 7 x 7 map.
PAPER_LAYOUT = (
    (7, 64, 2), "M",
    (3, 192, 1), "M",
    (1, 128, 1), (3, 256, 1), (1, 256, 1), (3, 512, 1), "M",
    *((1, 256, 1), (3, 512, 1)) * 4, (1, 512, 1), (3, 1024, 1), "M",
    *((1, 512, 1), (3, 1024, 1)) * 2, (3, 1024, 1), (3, 1024, 2),
    (3, 1024, 1), (3, 1024, 1),
)

#: A reduced layout in the same style (3 x 3 convolutions alternating with 1 x 1 reductions,
#: max-pools) for 64-96 px images: 10 convolutions, overall stride 16 (a 6 x 6 map at 96 px).
SMALL_LAYOUT = (
    (3, 32, 2), "M",
    (3, 64, 1), "M",
    (1, 32, 1), (3, 128, 1), (1, 64, 1), (3, 128, 1), "M",
    (1, 128, 1), (3, 256, 1), (1, 128, 1), (3, 256, 1),
)

LAYOUTS = {"paper": PAPER_LAYOUT, "small": SMALL_LAYOUT}


def _resolve_layout(layout) -> tuple:
    """A layout's entries: a name of :data:`LAYOUTS` looked up, a sequence checked (``papers.checks``)."""
    return LAYOUTS[layout] if isinstance(layout, str) and layout in LAYOUTS else checks.yolo_layout(layout, LAYOUTS)

def layout_stride(layout) -> int:
    """Overall stride of a layout: the product of its convolution strides and 2 per max-pool."""
    stride = 1
    for entry in _resolve_layout(layout):
        stride *= 2 if entry == "M" else entry[2]
    return stride


# --------------------------------------------------------------------------- deployment


def inference_metadata(model: YOLOv1) -> dict:
    """What decoding needs besides the network: image size, ``S``, ``B``, ``C``, squash, class names."""
    return {"num_classes": model.num_classes, "image_size": model.image_size, "grid_size": model.grid_size,
            "num_boxes": model.num_boxes, "squash": model.squash, "class_names": list(model.class_names)}


def load_yolov1(path) -> YOLOv1:
    """A model saved with ``helpers.export.save_model(model, config, path)`` (``config``: the
    keyword arguments of :class:`YOLOv1`), rebuilt in eval mode."""
    from helpers.export import load_model

    return load_model(path, YOLOv1)


def save_export(model: YOLOv1, path) -> Path:
    """Export the network with ``helpers.export.export_model`` (images -> raw grid), storing inside the
    file what decoding needs (image size, ``S``, ``B``, ``C``, squash, class names)."""
    from helpers.export import export_with_metadata

    return export_with_metadata(model, path, inference_metadata(model))


def _answer(network, images: torch.Tensor, meta: dict, score_thresh: float) -> list[dict]:
    """The command line's detections: the grid of ``network`` (model or export) decoded with ``meta``'s settings."""
    return decode_predictions(network(images), meta["num_boxes"], meta["image_size"], score_thresh=score_thresh,
                              squash=meta["squash"])


def train_defaults(cfg) -> dict:
    """The notebook's training recipe (papers/yolov1.ipynb) for ``cfg.dataset`` in ``cfg.mode``."""
    on_voc = cfg.dataset == "voc2007"
    return {"image_size": cfg.pick(112, 224) if on_voc else cfg.pick(64, 96),
            "train_size": cfg.pick(1000 if on_voc else 2000, None), "val_size": cfg.pick(100 if on_voc else 200, None),
            "draws": 1 if on_voc else cfg.pick(1, 4), "epochs": cfg.pick(3 if on_voc else 5, 6),
            "batch_size": cfg.pick(16, 32), "lr": cfg.pick(3e-3, 4e-3)}


def build_for_training(settings: dict, class_names) -> tuple[YOLOv1, dict]:
    """The notebook's YOLOv1: the small layout and conv head, on VOC too (a laptop trains it; the paper's
    network is ``YOLOv1(20, image_size=448, grid_size=7, layout="paper", head="fc", hidden=4096)``)."""
    size = settings["image_size"]
    config = dict(num_classes=len(class_names), image_size=size, grid_size=size // layout_stride(SMALL_LAYOUT),
                  num_boxes=2, layout="small", head="conv", hidden=128, dropout=0.0, class_names=list(class_names))
    return YOLOv1(**config), config


def yolo_loss_fn(model: YOLOv1, batch) -> tuple[torch.Tensor, dict]:
    """The YOLOv1 loss of a batch ``(images, gt_boxes)``, each term logged."""
    losses = model.loss(*batch)
    return sum(losses.values()), {name: float(value.detach()) for name, value in losses.items()}


def train_recipe():
    """``python -m papers.yolov1 train``: the notebook's training (:func:`A5_detection.harness.detection_recipe`)."""
    from A5_detection import harness

    return harness.detection_recipe("yolov1", "yolov1", train_defaults, build_for_training, yolo_loss_fn,
                                    predict_detections, harness.one_cycle(0.1), weight_decay=5e-4, grad_clip=10.0)


def main(argv=None) -> int:
    """``python -m papers.yolov1 predict IMAGE... [--checkpoint P | --export P] [--out DIR]`` writes
    ``DIR/predictions.json`` (boxes in the original images' pixels) and ``DIR/<image>_yolov1.png``;
    ``python -m papers.yolov1 export [--checkpoint P] [--out FILE.pt2]`` writes the export (decoding
    settings inside); ``train [...]`` trains as the notebook does.  See ``helpers.export.paper_main``."""
    from helpers.export import paper_main

    return paper_main(argv, "yolov1", "YOLOv1 (Redmon et al., 2016): train, or detect objects in images.", YOLOv1,
                      inference_metadata, ("image_size", "num_boxes", "squash", "class_names"), _answer, detector=True,
                      recipe=train_recipe())


if __name__ == "__main__":
    from helpers.export import run_command

    sys.exit(run_command(main))
