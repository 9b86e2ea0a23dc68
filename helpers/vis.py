"""Pictures every assignment needs: image grids, curves, error bars, boxes, detections, attention maps.

Every function draws with matplotlib and calls ``plt.show()`` itself, so a
notebook cell prints nothing but the figure.  Images are tensors
``(N, C, H, W)`` or ``(C, H, W)`` with values in [0, 1] (or any range when
``normalize=True``).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch

from helpers.config import get_config


def to_hwc(image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """``(C, H, W)`` or ``(H, W)`` tensor -> ``(H, W, C)`` / ``(H, W)`` CPU float tensor for ``imshow``."""
    image = image.detach().float().cpu()
    if image.dim() == 3 and image.shape[0] in (1, 3):
        image = image.permute(1, 2, 0)
        if image.shape[-1] == 1:
            image = image[..., 0]
    elif image.dim() != 2:
        raise ValueError(f"image must be (C, H, W) with C in (1, 3) or (H, W), got {tuple(image.shape)}")
    if normalize:
        low, high = image.min(), image.max()
        image = (image - low) / (high - low).clamp_min(1e-12)
    return image.clamp(0, 1)


def imshow(ax, image: torch.Tensor, title: str | None = None, normalize: bool = False) -> None:
    """Show one image on ``ax`` without ticks; grey colour map for one channel."""
    img = to_hwc(image, normalize)
    ax.imshow(img.numpy(), cmap="gray" if img.dim() == 2 else None, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)


def show_images(images: torch.Tensor, titles=None, ncols: int = 8, normalize: bool = False,
                suptitle: str | None = None, size: float = 1.4) -> None:
    """A grid of images ``(N, C, H, W)``, with an optional title under each."""
    n = len(images)
    if n == 0:
        raise ValueError("show_images needs at least one image")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            imshow(ax, images[i], None if titles is None else titles[i], normalize)
        else:
            ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    plt.show()


def show_samples_per_class(x: torch.Tensor, y: torch.Tensor, class_names, samples_per_class: int = 8,
                           seed: int = 0) -> None:
    """One row per class, ``samples_per_class`` random training images in each.

    x: ``(N, C, H, W)``; y: ``(N,)`` int labels.
    """
    gen = torch.Generator().manual_seed(seed)
    rows, titles = [], []
    for c, name in enumerate(class_names):
        idx = (y == c).nonzero().flatten()
        if len(idx) == 0:
            continue
        pick = idx[torch.randperm(len(idx), generator=gen)[:samples_per_class]]
        rows.extend(x[i] for i in pick)
        titles.extend([name] + [None] * (len(pick) - 1))
    show_images(torch.stack(rows), titles, ncols=samples_per_class)


def plot_curves(curves: dict, xlabel: str = "iteration", ylabel: str = "loss", title: str | None = None,
                logy: bool = False) -> None:
    """Several named curves on one axis: ``{"train": [...], "val": [...]}``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        ax.plot(list(values), label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    fig.tight_layout()
    plt.show()


def plot_errorbar(values_per_x: dict, xlabel: str, ylabel: str, title: str | None = None) -> None:
    """Scatter every value of each x, and the mean with a one-standard-deviation bar.

    values_per_x: ``{x: [v1, v2, ...]}``, e.g. ``{k: [accuracy per fold]}``.
    """
    xs = sorted(values_per_x)
    fig, ax = plt.subplots(figsize=(6, 4))
    for x in xs:
        ax.scatter([x] * len(values_per_x[x]), values_per_x[x], color="tab:blue", alpha=0.5, s=15)
    means = [float(torch.tensor(values_per_x[x], dtype=torch.float64).mean()) for x in xs]
    stds = [float(torch.tensor(values_per_x[x], dtype=torch.float64).std(unbiased=False)) for x in xs]
    ax.errorbar(xs, means, yerr=stds, color="tab:orange", capsize=3, label="mean ± std")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    plt.show()


def draw_boxes(ax, boxes: torch.Tensor, labels=None, scores=None, class_names=None, color: str = "lime") -> None:
    """Draw ``boxes (N, 4)`` given as x1, y1, x2, y2 pixels on ``ax``, with optional label and score.

    ``boxes`` may also be one image's padded ground truth ``(M, 5)`` = x1, y1, x2, y2, class
    (a row of ``load_detection(...)["gt_boxes"]``): the class column gives the labels (unless
    ``labels`` is given) and padding rows (class ``-1``) are skipped.  Boxes are continuous pixel
    coordinates: with ``ax.imshow`` (pixel centres at integers) a box ``[0, 0, 2, 2]`` is drawn
    from -0.5 to 1.5, around pixels 0 and 1.
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float32).detach().cpu()   # device: drawn on the CPU
    if boxes.dim() == 2 and boxes.shape[1] == 5:
        keep = boxes[:, 4] >= 0
        labels = boxes[keep, 4].long() if labels is None else torch.as_tensor(labels).cpu()[keep]  # device: CPU
        scores = None if scores is None else torch.as_tensor(scores).cpu()[keep]   # device: CPU
        boxes = boxes[keep, :4]
    boxes = boxes.reshape(-1, 4)
    for i, (x1, y1, x2, y2) in enumerate((boxes - 0.5).tolist()):
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=1.5))
        text = []
        if labels is not None:
            lab = int(labels[i])
            text.append(class_names[lab] if class_names is not None else str(lab))
        if scores is not None:
            text.append(f"{float(scores[i]):.2f}")
        if text:
            ax.text(x1, y1, " ".join(text), color="black", fontsize=7, va="bottom",
                    bbox={"facecolor": color, "alpha": 0.7, "pad": 1, "edgecolor": "none"})


def show_attention(image: torch.Tensor, attention: torch.Tensor, ax=None, title: str | None = None) -> None:
    """Overlay an attention map ``(h, w)`` (any size) on ``image (C, H, W)``."""
    import torch.nn.functional as F

    own = ax is None
    if own:
        _, ax = plt.subplots(figsize=(3, 3))
    img = to_hwc(image)
    att = F.interpolate(attention[None, None].float().cpu(), size=img.shape[:2], mode="bilinear",
                        align_corners=False)[0, 0]
    ax.imshow(img.numpy(), cmap="gray" if img.dim() == 2 else None)
    ax.imshow(att.numpy(), alpha=0.5, cmap="jet")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    if own:
        plt.show()


def show_detections(images: torch.Tensor, predictions: list, ground_truths=None, class_names=None,
                    score_thresh: float = 0.5, ncols: int = 4, titles=None, scale: float = 2.6) -> None:
    """Images with their detections (coloured by class, with scores) and the ground truth (white, dashed).

    Args:
        images: ``(N, 3, H, W)`` in [0, 1] (or uint8).
        predictions: ``N`` dicts ``{"boxes" (K, 4), "scores" (K,), "labels" (K,)}``; detections
            scoring below ``score_thresh`` are not drawn.
        ground_truths: optional ``N`` dicts ``{"boxes", "labels"}``.
        class_names: names of the class ids.
        titles: optional ``N`` strings.
    """
    images = images.float() / 255 if images.dtype == torch.uint8 else images
    n = images.shape[0]
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows), squeeze=False)
    colours = plt.get_cmap("tab10")
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(to_hwc(images[i]).numpy())
        if ground_truths is not None:
            for x1, y1, x2, y2 in (ground_truths[i]["boxes"].float() - 0.5).tolist():
                ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="white",
                                           linestyle="--", linewidth=1))
        pred = predictions[i]
        keep = pred["scores"] >= score_thresh
        for box, score, label in zip(pred["boxes"][keep], pred["scores"][keep], pred["labels"][keep], strict=True):
            draw_boxes(ax, box[None], labels=[int(label)], scores=[float(score)], class_names=class_names,
                       color=colours(int(label) % 10))
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    plt.show()


def interact(function, **controls) -> None:
    """``ipywidgets.interact(function, **controls)`` where someone can move the controls; else draw once.

    Without ipywidgets, outside a notebook kernel, or in a headless run (``DL4CV_HEADLESS=1``,
    which ``course.run`` sets: nbclient can stall a whole cell timeout after widget cells)
    ``function`` is called once with each control's current ``value`` (a plain value is passed as is).

    Args:
        function: draws a figure from keyword arguments.
        **controls: ipywidgets controls (``IntSlider(...)``...) or fixed values, by argument name.
    """
    values = {name: getattr(control, "value", control) for name, control in controls.items()}
    try:
        import ipywidgets
        from IPython import get_ipython
    except ImportError:
        function(**values)
        return
    if getattr(get_ipython(), "kernel", None) is None or get_config().headless:
        function(**values)  # nobody can move a control here
        return
    ipywidgets.interact(function, **controls)


def detection_slider(images: torch.Tensor, predictions: list, ground_truths=None, class_names=None,
                     score_thresh: float = 0.5, ncols: int = 4) -> None:
    """:func:`show_detections` under an ipywidgets slider that sets the score threshold.

    Drawn once at ``score_thresh`` where no one can move a slider (see :func:`interact`).
    """
    def draw(score_thresh=score_thresh):
        show_detections(images, predictions, ground_truths, class_names, score_thresh, ncols)

    try:
        import ipywidgets
    except ImportError:
        draw()
        return
    interact(draw, score_thresh=ipywidgets.FloatSlider(value=score_thresh, min=0.05, max=0.95, step=0.05,
                                                       description="score ≥", continuous_update=False))


def plot_ap_per_class(ap_per_class, class_names, title: str | None = None) -> None:
    """Bar chart of the average precision of each class, the mean as a dashed line."""
    values = [float(ap) for ap in ap_per_class]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(values)), 3))
    ax.bar(range(len(values)), values, color="tab:blue")
    finite = [v for v in values if not math.isnan(v)]
    if finite:
        ax.axhline(sum(finite) / len(finite), color="black", linestyle="--", linewidth=1,
                   label=f"mAP {sum(finite) / len(finite):.3f}")
        ax.legend(loc="lower right")
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(class_names, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("AP")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    plt.show()


def plot_precision_recall(curves, class_names, ncols: int = 5) -> None:
    """One small precision-recall plot per class (``evaluate_detections(...)["precision_recall"]``)."""
    n = len(curves)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, 2.2 * nrows), squeeze=False, sharex=True,
                             sharey=True)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        precision, recall = curves[i]
        ax.plot(recall.numpy(), precision.numpy(), color="tab:blue")
        ax.set_title(class_names[i], fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
    for ax in axes[-1]:
        ax.set_xlabel("recall")
    for ax in axes[:, 0]:
        ax.set_ylabel("precision")
    fig.tight_layout()
    plt.show()
