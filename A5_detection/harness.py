"""The cells every detection notebook shares (FCOS, Faster R-CNN, YOLOv1, DETR): given code, nothing to write.

Each notebook cell of the harness is one or two calls::

    splits = harness.dataset_splits(cfg)          # VOC: trainval/test, or train/val when test is absent
    data = harness.load_splits(cfg, IMAGE_SIZE, sizes, splits, draws)      # prints what was loaded
    harness.show_ground_truth(data["train"])                           # 12 scenes with their boxes
    overfit_map = harness.overfit_map(predictions, few_gt, C, losses, seconds)   # prints loss and mAP
    harness.check_overfit(losses, overfit_map, 8, min_map=0.9)
    test = harness.evaluate(partial(predict_detections, model), data["test"], "YOLOv1, test split")
    agnostic = harness.class_agnostic_ap(one_class_predictions, test["targets"])
    counts, examples = harness.report_errors(test["predictions"], test["targets"], class_names, 0.5)
    harness.show_failures(data["test"]["images"], test, examples, 0.5)

It lives in ``A5_detection/`` because it scores with A5's :func:`~A5_detection.common.evaluate_detections`
(``helpers/`` imports no assignment); the papers' notebooks import it as they import A5's box
operations.  The printed lines are the ones the notebooks printed before it existed.
"""

from __future__ import annotations

import time

import matplotlib.pyplot as plt

from A5_detection.common import confusion_counts, count_errors, evaluate_detections, ignore_classes
from helpers import vis
from helpers.backbone import REGNET_X_400MF, cached_weights, regnet_available, weights_folder
from helpers.datasets import (
    gt_boxes_to_targets,
    load_detection,
    read_voc_split,
    voc_folder,
    voc_splits_found,
    voc_splits_used,
)
from helpers.gradcheck import check_true

__all__ = ["backbone_note", "build_on_trunk", "check_overfit", "class_agnostic_ap", "dataset_splits",
           "detection_recipe", "evaluate", "load_splits", "losses_fn", "one_cycle", "overfit_map", "report_errors",
           "show_failures", "show_ground_truth", "targets_of", "use_pretrained"]

_SCENE_SPLITS = {"train": "train", "val": "val", "test": "test"}


def dataset_splits(cfg) -> dict:
    """Which split of ``cfg.dataset`` the notebook trains, validates and tests on.

    The generated scenes: ``train`` / ``val`` / ``test``.  PASCAL VOC 2007:
    :func:`helpers.datasets.voc_splits_used` (``trainval`` / ``test`` with the test archive,
    ``train`` / ``val`` with only the trainval archive).

    Returns:
        ``{"train": split, "val": split, "test": split}`` (names of the dataset's splits).
    """
    if cfg.dataset != "voc2007":
        return dict(_SCENE_SPLITS)
    return voc_splits_used(cfg)


def use_pretrained(pretrained, cfg) -> bool:
    """The notebook's ``PRETRAINED`` parameter resolved: ImageNet RegNetX-400MF trunk or a small CNN from scratch.

    ``None`` (the default): pretrained on PASCAL VOC when the weights can be had -- online, or
    already cached (:func:`helpers.backbone.cached_weights`) -- else from scratch; the generated
    scenes always train from scratch (their measured recipe).  ``True`` / ``False``: as given
    (``True`` offline without the file stops at the model cell with
    :class:`helpers.backbone.WeightsNotFoundError`, which says where to put it).  Prints the choice
    and why, on VOC or when set by hand.
    """
    if pretrained is not None and not isinstance(pretrained, bool):
        raise TypeError(f"PRETRAINED must be None, True or False, got {pretrained!r}")
    on_voc = cfg.dataset == "voc2007"
    if pretrained is None:
        choice = on_voc and regnet_available(cfg)
        if on_voc and choice:
            where = cached_weights(REGNET_X_400MF, cfg)
            why = f"cached in {where}" if where is not None else "online: downloaded once by helpers.backbone"
        elif on_voc:
            why = f"offline and {REGNET_X_400MF.file_name} not cached: put it in {weights_folder(cfg)} to use it"
        else:
            why = "the generated scenes' recipe"
    else:
        choice, why = pretrained, f"PRETRAINED = {pretrained}"
    if on_voc or pretrained is not None:
        print(f"backbone: {backbone_note(choice)} ({why})")
    return choice


def backbone_note(pretrained: bool) -> str:
    """How the results notes name the trunk."""
    return "RegNetX-400MF pretrained on ImageNet" if pretrained else "small CNN from scratch"


def _voc_sizes(cfg, sizes: dict, splits: dict) -> tuple[dict, str]:
    """VOC: the sizes capped at what each split holds, and the line saying what was found and what is used."""
    folder = voc_folder(cfg)
    found = voc_splits_found(cfg)
    present = [name for name in ("trainval", "test") if found[name]]
    available = {name: len(read_voc_split(folder, split)) if found[split] else None for name, split in splits.items()}
    capped = {name: (num if available[name] is None or num is None else min(num, available[name]))
              for name, num in sizes.items()}
    uses = ", ".join(f"{name} on {split} ({'all' if capped[name] is None else capped[name]} images)"
                     for name, split in splits.items())
    note = "" if found["test"] else " -- no test split (VOCtest_06-Nov-2007.tar): validating and testing on val"
    line = f"VOC 2007 in {folder}: found {' and '.join(present) or 'nothing yet'}{note}; using {uses}"
    return capped, line


def load_splits(cfg, image_size: int, sizes: dict, splits: dict, draws: dict, show_classes: bool = True) -> dict:
    """Load the ``train``, ``val`` and ``test`` splits with ``helpers.datasets.load_detection`` and print their sizes.

    Args:
        cfg: the notebook's configuration (``cfg.dataset`` is loaded).
        image_size: side of the square images.
        sizes, splits, draws: per split name, how many images (``None``: all), which split of the
            dataset, how many draws of generated scenes.
        show_classes: print the class names too.

    Returns:
        ``{"train": ..., "val": ..., "test": ...}``, the dicts of ``load_detection`` (``images`` uint8
        ``(N, 3, H, W)``, ``gt_boxes (N, M, 5)``, ``difficult``, ``class_names``).

    On VOC the first printed line says which splits were found and which are used (see
    :func:`dataset_splits`), and a size larger than its split is cut to the split.
    """
    if cfg.dataset == "voc2007":
        sizes, line = _voc_sizes(cfg, sizes, splits)
        print(line)
    data = {name: load_detection(cfg.dataset, splits[name], num=sizes[name], cfg=cfg, image_size=image_size,
                                 draws=draws[name])
            for name in ("train", "val", "test")}
    for name, split in data.items():
        objects = int((split["gt_boxes"][..., 4] >= 0).sum())
        print(f"{name:5s} {split['images'].shape[0]:6,d} images {tuple(split['images'].shape[1:])}, "
              f"{objects:6,d} objects")
    if show_classes:
        print("classes:", ", ".join(data["train"]["class_names"]))
    return data


def show_ground_truth(split: dict, rows: int = 2, cols: int = 6, figsize=(13, 4.6)) -> None:
    """The first ``rows * cols`` images of a split with their ground-truth boxes and class names."""
    fig, axes = plt.subplots(rows, cols, figsize=figsize)
    for ax, image, boxes in zip(axes.flat, split["images"], split["gt_boxes"], strict=False):
        ax.imshow(image.permute(1, 2, 0).numpy())
        vis.draw_boxes(ax, boxes, class_names=split["class_names"])
        ax.axis("off")
    fig.tight_layout()
    plt.show()


def targets_of(split: dict) -> list[dict]:
    """The ground truths of ``evaluate_detections`` for a split (its ``difficult`` flags kept, if any)."""
    return gt_boxes_to_targets(split["gt_boxes"], split.get("difficult"))


def overfit_map(predictions: list, gt_boxes, num_classes: int, losses: list, seconds: float,
                what: str = "images") -> float:
    """mAP@0.5 of a model trained on a few scenes, on those scenes; prints the loss's fall and the mAP.

    Args:
        predictions: the model's detections on the few scenes (one dict per image).
        gt_boxes: ``(n, M, 5)`` their ground truth.
        num_classes: ``C``.
        losses: the training loss at each step.
        seconds: how long the training took.
        what: how the message names the scenes.
    """
    targets = gt_boxes_to_targets(gt_boxes)
    result = evaluate_detections(predictions, targets, num_classes)["mAP"]
    print(f"loss {losses[0]:.2f} -> {losses[-1]:.3f} in {len(losses)} steps ({seconds:.0f} s); "
          f"mAP on those {len(targets)} {what} {result:.3f}")
    return result


def check_overfit(losses: list, overfit_map: float, num_scenes: int, min_map: float,
                  loss_fraction: float | None = None) -> None:
    """The overfit checks: the loss fell below ``loss_fraction`` of its start (if given) and the mAP
    on the scenes is above ``min_map``."""
    if loss_fraction is not None:
        words = {0.25: "a quarter"}.get(loss_fraction, f"{loss_fraction:g}")
        check_true(f"overfitting {num_scenes} scenes: the loss falls below {words} of its start",
                   losses[-1] < losses[0] * loss_fraction, f"(got {losses[0]:.2f} -> {losses[-1]:.2f})")
    check_true(f"overfitting {num_scenes} scenes: mAP on them above {min_map:g}", overfit_map > min_map,
               f"(got {overfit_map:.3f})")


def evaluate(predict, split: dict, title: str, name: str = "test", curves: bool = True) -> dict:
    """Detect on a split, score it with ``evaluate_detections`` and report: mAP, AP per class, plots.

    Args:
        predict: ``images (N, 3, H, W) uint8 -> N prediction dicts`` (e.g.
            ``functools.partial(predict_detections, model)``).
        split: a split of :func:`load_splits`.
        title: the title of the AP-per-class chart.
        name: the split's name in the printed line.
        curves: draw the precision-recall curve of each class too.

    Returns:
        ``{"predictions", "targets", "result" (of evaluate_detections), "mAP"}``.
    """
    targets = targets_of(split)
    class_names = split["class_names"]
    start = time.time()
    predictions = predict(split["images"])
    result = evaluate_detections(predictions, targets, len(class_names))
    print(f"{name} mAP@0.5 {result['mAP']:.3f} on {len(targets)} images ({time.time() - start:.1f} s to detect "
          "and score)")
    for class_name, ap in zip(class_names, result["ap_per_class"], strict=True):
        print(f"  {class_name:12s} AP {ap:.3f}")
    vis.plot_ap_per_class(result["ap_per_class"], class_names, title=title)
    if curves:
        vis.plot_precision_recall(result["precision_recall"], class_names)
    return {"predictions": predictions, "targets": targets, "result": result, "mAP": result["mAP"],
            "class_names": list(class_names)}


def class_agnostic_ap(one_class_predictions: list, targets: list) -> float:
    """AP@0.5 with every class ignored (is there an object here?).  Give one detection per box
    (``best_class_only``): with every class, one box would come back once per class."""
    return evaluate_detections(ignore_classes(one_class_predictions), ignore_classes(targets), 1)["mAP"]


def report_errors(predictions: list, targets: list, class_names, score_thresh: float, note: str = "",
                  confusions: bool = True) -> tuple[dict, dict]:
    """Count each kind of failure at ``score_thresh`` (``count_errors``) and print the counts and,
    with ``confusions``, the five most frequent (true -> said) class confusions.

    Returns:
        ``count_errors``' ``(counts, examples)``: how many of each kind, and the images holding one.
    """
    counts, examples = count_errors(predictions, targets, score_thresh=score_thresh)
    total = sum(len(t["labels"]) for t in targets)
    print(f"{total} test objects; at score >= {score_thresh}{note}:")
    for kind, count in counts.items():
        print(f"  {kind:12s} {count:5d}")
    if confusions:
        table = confusion_counts(predictions, targets, len(class_names), score_thresh=score_thresh)
        pairs = [(int(table[i, j]), class_names[i], class_names[j]) for i in range(len(class_names))
                 for j in range(len(class_names)) if i != j and table[i, j] > 0]
        print("most frequent confusions (true -> said):",
              ", ".join(f"{a} -> {b} ({n})" for n, a, b in sorted(pairs, reverse=True)[:5]))
    return counts, examples


def show_failures(images, evaluation: dict, examples: dict, score_thresh: float,
                  kinds=("missed", "mislabelled", "duplicate", "mislocated"), per_kind: int = 4) -> None:
    """For each kind of failure, the first ``per_kind`` images that hold one, with detections and truth.

    Args:
        images: the split's images.
        evaluation: what :func:`evaluate` returned (its predictions and targets).
        examples: the ``examples`` of :func:`report_errors`.
    """
    predictions, targets = evaluation["predictions"], evaluation["targets"]
    class_names = evaluation.get("class_names")
    for kind in kinds:
        chosen = examples[kind][:per_kind]
        if chosen:
            print(f"{kind}: {len(examples[kind])} images; the first {len(chosen)}")
            vis.show_detections(images[chosen], [predictions[i] for i in chosen], [targets[i] for i in chosen],
                                class_names, score_thresh=score_thresh, ncols=4)


# --------------------------------------------------------------------------- the detectors' `train` command


def detection_recipe(checkpoint_name: str, model_name: str, defaults, build, loss_fn, predict, scheduler,
                     weight_decay: float, grad_clip: float | None):
    """A detector's notebook training as a :class:`helpers.train_command.Recipe` (its ``train`` command).

    What the four detection notebooks share: the training split of :func:`dataset_splits` (the scenes'
    ``"train"``; VOC's ``"trainval"``, or ``"train"`` without the test archive) with left-right flips, AdamW,
    a per-step schedule, and the validation mAP after every epoch on its validation split (``"val"``; VOC's
    ``"test"``, or ``"val"``), as the notebooks.  ``defaults(cfg)`` gives ``image_size``, ``train_size``, ``val_size``,
    ``draws`` (of new training scenes), ``epochs``, ``batch_size``, ``lr`` and what ``build`` reads;
    ``build(settings, class_names) -> (model, config)``; ``predict(model, images)``: prediction dicts;
    ``scheduler(optimizer, settings, total_steps)``.
    """
    import torch

    from helpers.datasets import DetectionDataset
    from helpers.train_command import Recipe

    def data(cfg, settings):
        splits = dataset_splits(cfg)
        train = load_detection(cfg.dataset, splits["train"], num=settings["train_size"], cfg=cfg,
                               image_size=settings["image_size"], draws=settings["draws"])
        val = load_detection(cfg.dataset, splits["val"], num=settings["val_size"], cfg=cfg,
                             image_size=settings["image_size"])
        return {"train": DetectionDataset(train, flip_prob=0.5), "val": val, "class_names": train["class_names"]}

    def validate(data):
        targets, num_classes = targets_of(data["val"]), len(data["class_names"])
        return lambda model: {"val mAP": evaluate_detections(predict(model, data["val"]["images"]), targets,
                                                             num_classes)["mAP"]}

    return Recipe(checkpoint_name, model_name, "voc2007", "detection_scenes", defaults,
                  data, lambda settings, data: build(settings, data["class_names"]), loss_fn,
                  lambda model, s: torch.optim.AdamW(model.parameters(), lr=s["lr"], weight_decay=weight_decay),
                  scheduler, validate, grad_clip)


def build_on_trunk(build, config: dict, settings: dict):
    """``build(**config)`` on the trunk ``settings["pretrained"]`` chooses (:func:`use_pretrained`), and the
    keyword arguments that rebuild it: the same trunk, not pretrained (the saved weights replace it).

    Returns:
        ``(model, config)`` as a detector's ``build_for_training`` returns them.
    """
    pretrained = settings["pretrained"]
    config = {**config, "trunk": "regnet" if pretrained else "small"}
    return build(**config, pretrained=pretrained), {**config, "pretrained": False}


def one_cycle(pct_start: float):
    """The schedule of FCOS, Faster R-CNN and YOLOv1's notebooks: ``OneCycleLR`` peaking at ``lr`` after
    ``pct_start`` of the steps; ``one_cycle(0.05)(optimizer, settings, total_steps)``."""
    import torch

    def schedule(optimizer, settings, total_steps):
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings["lr"], total_steps=total_steps,
                                                   pct_start=pct_start)

    return schedule


def losses_fn(model, batch):
    """``loss_fn`` of a detector whose ``model(images, gt_boxes)`` returns a dict of losses: their sum (or its
    ``"loss"`` entry when it has one), each logged."""
    losses = model(*batch)
    total = losses.pop("loss") if "loss" in losses else sum(losses.values())
    return total, {name: float(value.detach()) for name, value in losses.items()}
