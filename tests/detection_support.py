"""Support for the A5 detection tests (``test_common.py``, ``test_one_stage_detector.py``,
``test_two_stage_detector.py``, ``test_harness.py``).

Where each helper runs matters when ``python -m course.grade`` keeps the student's code in its
sandboxed worker (``tests/under_test.py``):

* **Where the model lives** -- reached with ``load("detection_support")``, so that while grading
  they run in the worker beside the student's objects: stand-in modules that the student's
  detectors are built on or call (:class:`FakeTrunk`, :class:`TinyBackbone`, :class:`FixedHead`:
  a torch module made here could not be handed to code on the other side of the wall), and the
  steps that need autograd or an optimizer on the student's own parameters
  (:func:`train_steps`, :func:`losses_after_backward`, :func:`stem_gradients`).  Run normally
  (``pytest``) they run in this process like any function.
* **Here, trusted** -- imported directly: :func:`reference_voc`, the VOC devkit's evaluation
  written with loops over Python lists, and :func:`fpn_centres`, the FPN locations, so that no
  student function decides a test's verdict or builds another group's inputs.
"""

from __future__ import annotations

import importlib
import math
from unittest import mock

import torch
from torch import nn

__all__ = ["FakeTrunk", "FixedHead", "MeanBox", "TinyBackbone", "backbone_on", "fpn_centres", "losses_after_backward",
           "reference_iou", "reference_voc", "stem_gradients", "train_steps"]

STRIDES = {"p3": 8, "p4": 16, "p5": 32}


# --------------------------------------------------------------------------- where the model lives


class FakeTrunk(nn.Module):
    """Returns fixed ``c3, c4, c5`` maps (the attribute ``feats``) and records the images it was given."""

    def __init__(self, feats: dict):
        super().__init__()
        self.feats, self.out_channels, self.seen = feats, {k: v.shape[1] for k, v in feats.items()}, None

    def forward(self, x):
        self.seen = x
        return self.feats


def backbone_on(trunk: nn.Module, out_channels: int = 8):
    """A ``DetectorBackboneWithFPN`` of the module under test built on ``trunk`` (seed 0 for its FPN)."""
    common = importlib.import_module("A5_detection.common")
    torch.manual_seed(0)
    with mock.patch.object(common, "make_trunk", lambda *args, **kwargs: trunk):
        return common.DetectorBackboneWithFPN(out_channels)


class TinyBackbone(nn.Module):
    """The interface of ``common.DetectorBackboneWithFPN``: images -> {"p3", "p4", "p5"} at strides 8/16/32."""

    def __init__(self, out_channels: int = 16):
        super().__init__()
        self.out_channels = out_channels
        self.fpn_strides = dict(STRIDES)
        self.c3 = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU(),
                                nn.Conv2d(16, out_channels, 3, 2, 1), nn.ReLU())
        self.c4 = nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, 2, 1), nn.ReLU())
        self.c5 = nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, 2, 1), nn.ReLU())

    def forward(self, images):
        p3 = self.c3(images)
        p4 = self.c4(p3)
        return {"p3": p3, "p4": p4, "p5": self.c5(p4)}


class FixedHead(nn.Module):
    """Stands in for FCOS's prediction network: the same logits, deltas and centerness everywhere."""

    def __init__(self, num_classes: int, best_class: int, deltas: list, runner_up: int | None = None):
        super().__init__()
        self.num_classes, self.best_class, self.deltas, self.runner_up = num_classes, best_class, deltas, runner_up

    def forward(self, feats):
        out = [{}, {}, {}]
        for level, f in feats.items():
            b, n = f.shape[0], f.shape[2] * f.shape[3]
            logits = torch.full((b, n, self.num_classes), -6.0)
            # distinct scores inside a level, best at its end; p5's best is the best overall
            logits[..., self.best_class] = 4.0 + torch.linspace(0, 1, n) + (2.0 if level == "p5" else 0.0)
            if self.runner_up is not None:  # a second class, one logit below the best everywhere
                logits[..., self.runner_up] = logits[..., self.best_class] - 1.0
            out[0][level] = logits
            out[1][level] = torch.tensor(self.deltas).expand(b, n, 4).clone()
            out[2][level] = torch.full((b, n, 1), 4.0)
        return out


class MeanBox(nn.Module):
    """A stand-in detector: one box per image, scored by the image's mean; records its mode and batches."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.seen = []

    def detect(self, batch):
        self.seen.append((self.training, batch.dtype, batch.shape[0]))
        return [{"boxes": torch.tensor([[0.0, 0.0, 2.0, 2.0]]), "scores": (image.mean() * self.weight)[None],
                 "labels": torch.zeros(1, dtype=torch.int64)} for image in batch]


def _total(losses: dict, key: str | None) -> torch.Tensor:
    return losses[key] if key is not None else sum(losses.values())


def train_steps(model: nn.Module, images: torch.Tensor, gt_boxes: torch.Tensor, steps: int, lr: float,
                key: str | None = None) -> list[dict]:
    """``steps`` Adam updates of ``model`` (train mode) on one batch; each step's losses as numbers.

    The loss minimised is ``losses[key]``, or the sum of the losses the model returns when ``key``
    is ``None``.  Returns one dict ``name -> float`` per step, taken before its update.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    model.train()
    for _ in range(steps):
        losses = model(images, gt_boxes)
        loss = _total(losses, key)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    return history


def losses_after_backward(model: nn.Module, images: torch.Tensor, gt_boxes: torch.Tensor,
                          key: str | None = None) -> dict:
    """The model's training losses (detached) after a backward pass through their total succeeded."""
    losses = model(images, gt_boxes)
    _total(losses, key).backward()
    return {k: v.detach() for k, v in losses.items()}


def stem_gradients(model: nn.Module, images: torch.Tensor, level: str = "p3") -> list:
    """Gradients of the mean of FPN level ``level`` with respect to the trunk's first layer (``backbone.stem``)."""
    model.zero_grad()
    model(images)[level].mean().backward()
    return [p.grad for p in model.backbone.stem.parameters()]


# --------------------------------------------------------------------------- here, trusted


def fpn_centres(shapes: dict, strides: dict, dtype: torch.dtype = torch.float32) -> dict:
    """Level -> ``(H * W, 2)`` pixel centres ``((j + 0.5) * s, (i + 0.5) * s)``, row-major (shapes end in H, W)."""
    centres = {}
    for level, shape in shapes.items():
        height, width = shape[-2:]
        rows = [[(j + 0.5) * strides[level], (i + 0.5) * strides[level]] for i in range(height) for j in range(width)]
        centres[level] = torch.tensor(rows, dtype=dtype).reshape(-1, 2)
    return centres


def reference_iou(a: list, b: list) -> float:
    """IoU of two boxes given as lists ``[x1, y1, x2, y2]`` (0 for an empty union)."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _truth_rows(ground_truths: list, cls: int) -> tuple[list, int]:
    """Per image, ``[box, difficult, taken]`` rows of class ``cls``; and the number of positives."""
    truth, num_positives = [], 0
    for gt in ground_truths:
        flags = gt["difficult"].tolist() if "difficult" in gt else [False] * len(gt["labels"])
        triples = zip(gt["boxes"].tolist(), gt["labels"].tolist(), flags, strict=True)
        rows = [[box, hard, False] for box, label, hard in triples if label == cls]
        truth.append(rows)
        num_positives += sum(1 for row in rows if not row[1])
    return truth, num_positives


def _outcomes(predictions: list, truth: list, cls: int, iou_threshold: float) -> list:
    """True / false positive of each ranked detection of class ``cls`` (difficult matches left out)."""
    detections = []
    for image, pred in enumerate(predictions):
        triples = zip(pred["boxes"].tolist(), pred["scores"].tolist(), pred["labels"].tolist(), strict=True)
        detections += [(score, image, box) for box, score, label in triples if label == cls]
    detections = sorted(detections, key=lambda d: -d[0])  # sorted() is stable: ties keep input order
    outcomes = []
    for _, image, box in detections:
        best, best_row = -1.0, None
        for row in truth[image]:
            overlap = reference_iou(box, row[0])
            if overlap > best:
                best, best_row = overlap, row
        if best_row is not None and best >= iou_threshold:
            if best_row[1]:
                continue  # difficult: ignored
            outcomes.append(not best_row[2])
            best_row[2] = True
        else:
            outcomes.append(False)
    return outcomes


def reference_voc(predictions: list, ground_truths: list, num_classes: int, iou_threshold: float = 0.5):
    """The VOC devkit's evaluation, written with loops over Python lists (no tensor arithmetic).

    Returns ``(mAP, AP per class, (precision, recall) lists per class)``; a class without
    positives has AP ``nan`` and is left out of the mean.
    """
    aps, curves = [], []
    for cls in range(num_classes):
        truth, num_positives = _truth_rows(ground_truths, cls)
        outcomes = _outcomes(predictions, truth, cls, iou_threshold)
        if num_positives == 0:
            aps.append(math.nan)
            curves.append(([], []))
            continue
        precision, recall, tp = [], [], 0
        for rank, ok in enumerate(outcomes, start=1):
            tp += ok
            precision.append(tp / rank)
            recall.append(tp / num_positives)
        # the devkit's formulation: pad, make precision monotone from the right, sum where recall changes
        mrec, mpre = [0.0] + recall + [1.0], [0.0] + precision + [0.0]
        for i in range(len(mpre) - 2, -1, -1):
            mpre[i] = max(mpre[i], mpre[i + 1])
        aps.append(sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1]))
        curves.append((precision, recall))
    valid = [ap for ap in aps if not math.isnan(ap)]
    return (sum(valid) / len(valid) if valid else math.nan), aps, curves
