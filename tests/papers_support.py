"""Support for the papers' tests (``test_vit.py``, ``test_yolov1.py``, ``test_detr.py``).

Two kinds of helpers, and where each one runs matters when ``python -m course.grade`` keeps the
student's code in its sandboxed worker (``tests/under_test.py``):

* **Where the model lives** -- reached with ``load("papers_support")``, so that while grading they
  run in the worker next to the student's objects: a training loop (autograd and the optimizer
  need the model's own parameters), the loss functions it calls, and files (the worker sees only
  its own private ``/tmp``: exports, checkpoints and the command line's images and outputs are
  written and read there).  Run normally (``pytest``) they run here like any function.
* **Here, trusted** -- imported directly: :func:`mean_ap` scores detections with a plain
  reference, so no student function (of A5 either) decides a test's verdict.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from under_test import load, rule_mark

__all__ = ["count_modules", "detr_loss", "entry", "exit_code", "folder_in_worker", "mean_ap", "on_meta",
           "parameter_shapes", "png_bytes", "read_text", "remove_folder", "rule_mark", "scratch_folder", "train_steps",
           "write_bytes", "yolo_loss"]


# --------------------------------------------------------------------------- where the model lives


def train_steps(model, loss_fn, batch, steps: int, lr: float, optimizer: str = "adam",
                grad_clip: float | None = None) -> list[float]:
    """``steps`` updates of ``model`` on one ``batch``: ``zero_grad``, ``backward``, clip, ``step``; the losses.

    ``loss_fn(model, batch)`` returns the loss (or ``(loss, metrics)``); ``optimizer`` is ``"adam"`` or
    ``"adamw"``.  Returns the loss before each update, as numbers.
    """
    make = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer]
    opt = make(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model, batch)
        loss = loss[0] if isinstance(loss, tuple) else loss
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
    return losses


def yolo_loss(model, batch) -> torch.Tensor:
    """YOLOv1's loss of ``batch = (images, gt_boxes)``: the sum of the terms of ``model.loss``."""
    return sum(model.loss(*batch).values())


def detr_loss(model, batch) -> torch.Tensor:
    """DETR's set loss of ``batch = (images, set targets)`` over every decoder layer."""
    images, targets = batch
    return load("papers.detr").set_loss(*model.forward_all_layers(images), targets)["loss"]


def entry(fn, key, *args, **kwargs):
    """``fn(*args, **kwargs)[key]``: one term of a function that returns a dict (for ``backward_through``)."""
    return fn(*args, **kwargs)[key]


def on_meta(build, *args, **kwargs):
    """``build(*args, **kwargs)`` on PyTorch's ``meta`` device: shapes without memory (a 270 M model)."""
    with torch.device("meta"):
        return build(*args, **kwargs)


def parameter_shapes(model) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of the model's parameters (meta tensors cannot travel, their shapes can)."""
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def count_modules(model, kind: str) -> int:
    """How many of the model's modules are a ``torch.nn.<kind>`` (``"Conv2d"``)."""
    return sum(isinstance(m, getattr(torch.nn, kind)) for m in model.modules())


def exit_code(main, argv: list[str]):
    """The code of the ``SystemExit`` that ``main(argv)`` raises (argparse's 2 for bad arguments); None if none.

    ``SystemExit`` is not an ``Exception``: the grader's sandbox does not send it back as itself.
    """
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code
    return None


def scratch_folder() -> str:
    """A new empty folder for a test's files (in the worker's private ``/tmp`` while grading)."""
    return tempfile.mkdtemp(prefix="dl4cv-test-")


def remove_folder(path: str) -> None:
    """Delete a folder made by :func:`scratch_folder`."""
    shutil.rmtree(path, ignore_errors=True)


def write_bytes(path: str, data: bytes) -> str:
    """Write ``data`` to ``path``; returns ``path``."""
    Path(path).write_bytes(data)
    return path


def read_text(path: str) -> str:
    """The text of ``path``."""
    return Path(path).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- here, trusted


def png_bytes(pixels) -> bytes:
    """An ``(H, W, 3)`` uint8 array (or tensor) as the bytes of a PNG file."""
    from PIL import Image  # noqa: PLC0415 -- only the command-line tests need it

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def mean_ap(predictions: list[dict], ground_truths: list[dict], num_classes: int) -> float:
    """VOC mAP at IoU 0.5 by the plain reference of ``tests/detection_support.py`` (loops over Python lists).

    Not ``A5_detection.common.evaluate_detections``: it is partly A5's answer (``box_iou``,
    ``_match_class``), and a papers test must not depend on the student's A5 work.
    """
    from detection_support import reference_voc  # noqa: PLC0415 -- the one reference of the course's mAP

    return reference_voc(predictions, ground_truths, num_classes)[0]


def folder_in_worker():
    """A scratch folder where the student's code runs (the worker's ``/tmp`` while grading), removed after.

    A fixture generator: a test file takes it with ``worker_folder = pytest.fixture(folder_in_worker,
    name="worker_folder")``.
    """
    support = load("papers_support")
    path = support.scratch_folder()
    yield path
    support.remove_folder(path)
