"""Procedurally generated tasks: exact, offline, fixed by a seed.

* **Arithmetic** (A4 Transformer): questions such as
  ``"BOS NEGATIVE 30 subtract NEGATIVE 34 EOS"`` with the answer
  ``"BOS POSITIVE 04 EOS"``, every pair of operands in ``[low, high]`` and both
  operations, shuffled once and cut into fixed train / val / test splits.
* **Captioned scenes** (A4 captioning): 1-3 Fashion-MNIST items, each tinted
  with a colour and drawn small or large, pasted without overlap on a noisy
  64x64 canvas; the caption is generated from what was pasted
  (``"a small red bag above a large blue boot left of a small green coat"``).
  :func:`paste_items` and :func:`place_boxes` are written to be reused by other
  generated scenes (detection).
* **Detection scenes** (A5, YOLOv1, DETR): 1-6 Fashion-MNIST items (10 classes),
  each cropped to its pixels, scaled to 16-48 px and tinted with a random bright
  colour, pasted on a dark textured 96x96 canvas, partly overlapping (IoU <= 0.4),
  with exact tight boxes in the batch format ``gt_boxes (N, 6, 5)`` =
  ``x1, y1, x2, y2, class`` padded with ``-1`` (:func:`detection_scenes`).
"""

from __future__ import annotations

import functools
import random

import numpy as np
import torch
import torch.nn.functional as F

from helpers.checks import check_int
from helpers.config import get_config
from helpers.datasets.classification import load_dataset
from helpers.datasets.files import CLASS_NAMES

__all__ = [
    "ARITHMETIC_OPERATIONS",
    "ARITHMETIC_SPECIAL_TOKENS",
    "ARITHMETIC_SPLITS",
    "ARITHMETIC_VOCAB",
    "DETECTION_CANVAS_SIZE",
    "DETECTION_ITEM_SIDES",
    "DETECTION_MAX_HIDDEN",
    "DETECTION_MAX_IOU",
    "DETECTION_MAX_ITEMS",
    "DETECTION_MIN_ALPHA",
    "DETECTION_SPLIT_SIZES",
    "SCENE_COLOURS",
    "SCENE_ITEM_WORDS",
    "SCENE_MAX_ITEMS",
    "SCENE_MAX_WORDS",
    "SCENE_SIZE",
    "SCENE_SIZES",
    "SCENE_SPLIT_SIZES",
    "arithmetic_problems",
    "captioned_scenes",
    "describe_scene",
    "detection_item_sides",
    "detection_scenes",
    "format_signed",
    "parse_signed",
    "paste_items",
    "place_boxes",
    "scene_objects",
    "scene_texts",
]

# --------------------------------------------------------------------------- arithmetic

ARITHMETIC_SPECIAL_TOKENS = ["POSITIVE", "NEGATIVE", "add", "subtract", "BOS", "EOS", "PAD"]
#: the 17 tokens of the arithmetic task, in this order (digits first)
ARITHMETIC_VOCAB = [str(digit) for digit in range(10)] + ARITHMETIC_SPECIAL_TOKENS
#: operation word -> what it computes
ARITHMETIC_OPERATIONS = {"add": lambda a, b: a + b, "subtract": lambda a, b: a - b}
#: split name -> (start, end) as fractions of the shuffled problem list
ARITHMETIC_SPLITS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}


def format_signed(value: int) -> str:
    """An integer in the course's token format: sign word, then at least two digits.

    ``4 -> "POSITIVE 04"``, ``-30 -> "NEGATIVE 30"``, ``0 -> "POSITIVE 00"``,
    ``-100 -> "NEGATIVE 100"``.
    """
    check_int(value, "value")
    sign = "NEGATIVE" if value < 0 else "POSITIVE"
    return f"{sign} {abs(value):02d}"


def parse_signed(text: str) -> int:
    """Inverse of :func:`format_signed`: ``"NEGATIVE 30" -> -30``."""
    parts = text.split() if isinstance(text, str) else []
    if len(parts) != 2 or parts[0] not in ("POSITIVE", "NEGATIVE") or not parts[1].isdigit():
        raise ValueError(f"expected '<POSITIVE|NEGATIVE> <digits>', got {text!r}")
    magnitude = int(parts[1])
    return -magnitude if parts[0] == "NEGATIVE" else magnitude


@functools.lru_cache(maxsize=8)
def _shuffled_problems(seed: int, low: int, high: int) -> tuple[tuple[str, str], ...]:
    """Every ``(question, answer)`` for operands in ``[low, high]``, shuffled with ``seed``."""
    problems = []
    for a in range(low, high + 1):
        for op, compute in ARITHMETIC_OPERATIONS.items():
            for b in range(low, high + 1):
                question = f"BOS {format_signed(a)} {op} {format_signed(b)} EOS"
                answer = f"BOS {format_signed(compute(a, b))} EOS"
                problems.append((question, answer))
    random.Random(seed).shuffle(problems)
    return tuple(problems)


def _split_bounds(split: str, total: int) -> tuple[int, int]:
    if split not in ARITHMETIC_SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, ARITHMETIC_SPLITS))}, got {split!r}")
    start, end = ARITHMETIC_SPLITS[split]
    return round(start * total), round(end * total)


def arithmetic_problems(split: str, num: int | None = None, seed: int = 0, low: int = -50,
                        high: int = 50) -> tuple[list[str], list[str]]:
    """The arithmetic task's problems of one split.

    Every ``(a, op, b)`` with ``a, b`` in ``[low, high]`` and ``op`` in
    ``("add", "subtract")`` — ``2 * (high - low + 1) ** 2`` problems, 20,402 for
    ``[-50, 50]`` — is shuffled once with ``seed`` and cut 80 / 10 / 10 % into
    ``"train"``, ``"val"`` and ``"test"``: the splits are disjoint and depend only
    on ``(seed, low, high)``.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num: keep the split's first ``num`` problems (``None``: all of them).
        seed, low, high: the shuffle and the operand range.

    Returns:
        questions: ``num`` strings ``"BOS NEGATIVE 30 subtract NEGATIVE 34 EOS"``;
        answers: ``num`` strings ``"BOS POSITIVE 04 EOS"`` (same order).
    """
    check_int(seed, "seed")
    check_int(low, "low")
    check_int(high, "high")
    if low > high:
        raise ValueError(f"low must be <= high, got low={low}, high={high}")
    problems = _shuffled_problems(seed, low, high)
    start, end = _split_bounds(split, len(problems))
    available = end - start
    if num is not None:
        check_int(num, "num")
        if not 0 <= num <= available:
            raise ValueError(f"num must lie in [0, {available}] (the size of the {split!r} split), got {num}")
        end = start + num
    chosen = problems[start:end]
    return [q for q, _ in chosen], [a for _, a in chosen]


# --------------------------------------------------------------------------- pasting items on a canvas


def _check_tensor(name: str, value, ndim: int, shape_text: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.ndim != ndim:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must be a tensor of shape {shape_text}, got {got}")
    return value


def _paste_ranks(image_index: torch.Tensor) -> torch.Tensor:
    """For each item, how many items of the same image come before it (0, 1, 2...)."""
    order = torch.argsort(image_index, stable=True)
    sorted_index = image_index[order]
    first = torch.searchsorted(sorted_index, sorted_index)
    ranks = torch.empty_like(image_index)
    ranks[order] = torch.arange(len(image_index)) - first
    return ranks


def _resized(patch: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(G, h0, w0)`` -> ``(G, h, w)``, bilinear and antialiased (unchanged when already that size)."""
    if patch.shape[-2:] == (h, w):
        return patch
    return F.interpolate(patch[:, None], size=(h, w), mode="bilinear", antialias=True, align_corners=False)[:, 0]


def _group_patch(items, group: torch.Tensor, h: int, w: int, work: torch.dtype) -> torch.Tensor:
    """The items of ``group`` as one ``(G, h, w)`` tensor of dtype ``work`` (resized where needed)."""
    if isinstance(items, torch.Tensor):
        return _resized(items[group].to(work), h, w)
    chosen = [items[k] for k in group.tolist()]
    if all(item.shape == (h, w) for item in chosen):
        return torch.stack(chosen).to(work)
    return torch.cat([_resized(item.to(work)[None], h, w) for item in chosen])


def paste_items(canvas: torch.Tensor, items: torch.Tensor | list[torch.Tensor], boxes: torch.Tensor,
                tints: torch.Tensor, image_index: torch.Tensor | None = None) -> torch.Tensor:
    """Paint grey items, each tinted with a colour, into boxes of a batch of canvases (in place).

    Each item is an alpha mask: a pixel of intensity ``a`` turns the canvas pixel
    ``c`` into ``(1 - a) * c + a * tint``, so an item's black background leaves
    the canvas as it was.  An item is resized (bilinear, antialiased) to its box
    when the sizes differ.  Items of one image are painted in order, later items
    on top; every group of items with the same box size is painted at once.
    Only the pixels under the boxes are read and written.

    Args:
        canvas: float ``(N, C, H, W)`` in ``[0, 1]``, or uint8 in ``[0, 255]`` (blended in float32 and
            rounded), modified in place.
        items: float ``(K, h, w)`` in ``[0, 1]`` (e.g. Fashion-MNIST items ``(K, 28, 28)``), or a list of
            ``K`` float 2-D tensors of any sizes (e.g. each already the size of its box: nothing is resized).
        boxes: int ``(K, 4)`` pixel boxes ``(x0, y0, x1, y1)``, ``x1``/``y1`` exclusive, inside the canvas.
        tints: float ``(K, C)`` colours in ``[0, 1]``.
        image_index: int ``(K,)``, the canvas of each item; ``None``: item ``k`` goes to canvas ``k`` (``K == N``).

    Returns:
        ``canvas``.
    """
    _check_tensor("canvas", canvas, 4, "(N, C, H, W)")
    N, C, H, W = canvas.shape
    if isinstance(items, (list, tuple)):
        for k, item in enumerate(items):
            _check_tensor(f"items[{k}]", item, 2, "(h, w)")
        K = len(items)
    else:
        K = items.shape[0] if isinstance(items, torch.Tensor) and items.ndim == 3 else -1
        _check_tensor("items", items, 3, "(K, h, w) or a list of K (h, w) tensors")
    boxes = _check_tensor("boxes", boxes, 2, f"({K}, 4)")
    tints = _check_tensor("tints", tints, 2, f"({K}, {C})")
    if boxes.shape != (K, 4) or tints.shape != (K, C) or boxes.is_floating_point():
        raise ValueError(f"boxes must be int ({K}, 4) and tints ({K}, {C}) for {K} items on {C}-channel "
                         f"canvases, got {boxes.dtype} {tuple(boxes.shape)} and {tuple(tints.shape)}")
    if image_index is None:
        if K != N:
            raise ValueError(f"without image_index there must be one item per canvas, got {K} items, {N} canvases")
        image_index = torch.arange(N, device=canvas.device)
    image_index = _check_tensor("image_index", image_index, 1, f"({K},)").long()
    if image_index.shape != (K,) or (K and (image_index.min() < 0 or image_index.max() >= N)):
        raise ValueError(f"image_index must be ({K},) with values in [0, {N - 1}]")
    if K == 0:
        return canvas
    boxes = boxes.long()
    x0, y0, x1, y1 = boxes.unbind(1)
    if (x0 < 0).any() or (y0 < 0).any() or (x1 > W).any() or (y1 > H).any() or (x1 <= x0).any() or (y1 <= y0).any():
        raise ValueError(f"boxes must satisfy 0 <= x0 < x1 <= {W} and 0 <= y0 < y1 <= {H}")
    ranks = _paste_ranks(image_index)
    shape_key = (y1 - y0) * (W + 1) + (x1 - x0)
    if not canvas.is_floating_point() and canvas.dtype != torch.uint8:
        raise ValueError(f"canvas must be floating point or uint8, got {canvas.dtype}")
    work = canvas.dtype if canvas.is_floating_point() else torch.float32
    scale = 1.0 if canvas.is_floating_point() else 255.0
    target = canvas.contiguous()        # canvas itself when already contiguous
    flat = target.view(-1)
    for rank in range(int(ranks.max()) + 1):         # an image appears at most once per rank: no clashes
        for key in torch.unique(shape_key[ranks == rank]).tolist():
            group = torch.nonzero((ranks == rank) & (shape_key == key)).squeeze(1)
            h, w = divmod(key, W + 1)
            patch = _group_patch(items, group, h, w, work)
            alpha = patch.clamp(0, 1)[:, None]                                          # (G, 1, h, w)
            # flat positions of the (G, C, h, w) pixels the group covers
            corner = (image_index[group] * C * H + y0[group]) * W + x0[group]
            offsets = (torch.arange(C, device=canvas.device)[:, None, None] * H * W
                       + torch.arange(h, device=canvas.device)[None, :, None] * W
                       + torch.arange(w, device=canvas.device)[None, None, :])
            where = corner[:, None, None, None] + offsets[None]
            region = torch.take(target, where).to(work)                                 # (G, C, h, w)
            tint = tints[group].to(work)[:, :, None, None] * scale
            painted = region + alpha * (tint - region)
            if not canvas.is_floating_point():
                painted = painted.round_().clamp_(0, 255)
            flat.index_copy_(0, where.reshape(-1), painted.reshape(-1).to(canvas.dtype))
    if target is not canvas:
        canvas.copy_(target)
    return canvas


def _overlapping(boxes: np.ndarray, valid: np.ndarray, gap: int) -> np.ndarray:
    """bool ``(N,)``: some two valid boxes of a scene come closer than ``gap`` pixels (or overlap)."""
    bad = np.zeros(boxes.shape[0], dtype=bool)
    for i in range(boxes.shape[1]):
        for j in range(i + 1, boxes.shape[1]):
            a, b = boxes[:, i], boxes[:, j]
            close = ((a[:, 0] < b[:, 2] + gap) & (b[:, 0] < a[:, 2] + gap)
                     & (a[:, 1] < b[:, 3] + gap) & (b[:, 1] < a[:, 3] + gap))
            bad |= close & valid[:, i] & valid[:, j]
    return bad


def place_boxes(rng: np.random.Generator, sizes: np.ndarray, valid: np.ndarray, canvas_size: int,
                gap: int | None = 2, accept=None, max_rounds: int = 10_000) -> np.ndarray:
    """Random positions for items of given sizes, no two of a scene closer than ``gap`` pixels.

    Rejection sampling, vectorised over scenes: every scene draws candidate
    layouts (all its positions at once) until one is accepted; the first
    accepted candidate is kept.

    Args:
        rng: the source of randomness.
        sizes: int ``(N, S)`` side of square items or ``(N, S, 2)`` ``(height, width)``.
        valid: bool ``(N, S)``, which of the ``S`` slots of a scene hold an item.
        canvas_size: side of the square canvas.
        gap: smallest distance in pixels between two boxes of a scene; ``None``: boxes may overlap
            (limit the overlap with ``accept``).
        accept: optional ``f(boxes (M, S, 4), valid (M, S)) -> bool (M,)``, an extra condition on layouts.

    Returns:
        int64 ``(N, S, 4)`` boxes ``(x0, y0, x1, y1)`` (exclusive ends); zeros in empty slots.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    valid = np.asarray(valid, dtype=bool)
    hw = np.stack([sizes, sizes], axis=-1) if sizes.ndim == 2 else sizes
    if hw.ndim != 3 or hw.shape[-1] != 2 or valid.shape != hw.shape[:2]:
        raise ValueError(f"sizes must be (N, S) or (N, S, 2) and valid (N, S), got {sizes.shape} and {valid.shape}")
    if ((hw < 1) | (hw > canvas_size))[valid].any():
        raise ValueError(f"item sizes must lie in [1, {canvas_size}] (the canvas)")
    boxes = np.zeros(hw.shape[:2] + (4,), dtype=np.int64)
    todo = np.arange(hw.shape[0])
    budget = max(4096, 2 * hw.shape[0])   # layouts drawn per round: hard scenes get many candidates at once
    for _ in range(max_rounds):
        if todo.size == 0:
            return boxes
        tries = int(np.clip(budget // todo.size, 1, 4096))
        scenes = np.repeat(todo, tries)                       # candidate layouts, scene by scene
        h, w = hw[scenes, :, 0], hw[scenes, :, 1]
        x0 = rng.integers(0, canvas_size - w + 1)
        y0 = rng.integers(0, canvas_size - h + 1)
        drawn = np.stack([x0, y0, x0 + w, y0 + h], axis=-1) * valid[scenes, :, None]
        good = np.ones(scenes.size, dtype=bool) if gap is None else ~_overlapping(drawn, valid[scenes], gap)
        if accept is not None:
            good &= np.asarray(accept(drawn, valid[scenes]), dtype=bool)
        good = good.reshape(todo.size, tries)
        placed = good.any(axis=1)
        first = good.argmax(axis=1)                           # the first acceptable candidate of each scene
        chosen = drawn.reshape(todo.size, tries, *drawn.shape[1:])[np.arange(todo.size), first]
        boxes[todo[placed]] = chosen[placed]
        todo = todo[~placed]
    raise ValueError(f"could not place the items of {todo.size} scenes in {max_rounds} rounds; "
                     "use fewer or smaller items, a smaller gap or a larger canvas")


# --------------------------------------------------------------------------- captioned scenes

SCENE_SIZE = 64
#: caption word of each Fashion-MNIST class (helpers.datasets.CLASS_NAMES["fashion_mnist"] order)
SCENE_ITEM_WORDS = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
SCENE_COLOURS = {"red": (0.95, 0.15, 0.10), "green": (0.10, 0.80, 0.20), "blue": (0.15, 0.35, 1.00),
                 "yellow": (0.95, 0.85, 0.10)}
SCENE_SIZES = {"small": 16, "large": 28}
SCENE_MAX_ITEMS = 3
SCENE_MAX_WORDS = 16          # 3 x "a <size> <colour> <item>" + 2 x "left of"
SCENE_SPLIT_SIZES = {"train": 20_000, "val": 2_000, "test": 2_000}
_SCENE_GAP = 2                # pixels between two items
_RELATION_MARGIN = 4          # |dy| and |dx| of neighbours differ by at least this (pixels), so "left of" or
                              # "above" is never a close call
_NOISE_SHIFT = 3              # background: uniform noise in [0, 255 >> 3 = 31], about 12% of white
_SCENE_STREAMS = {"train": 1, "val": 2, "test": 3}
_SCENE_CHUNK = 1000           # scenes painted at once (bounds the float work arrays in memory)


def _caption_order(boxes: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """int ``(N, S)``: slot order of each scene, left to right by box centre (ties: top first), empty last."""
    cx2 = boxes[..., 0] + boxes[..., 2]
    cy2 = boxes[..., 1] + boxes[..., 3]
    key = np.where(valid, cx2 * 4 * SCENE_SIZE + cy2, np.iinfo(np.int64).max)
    return np.argsort(key, axis=1, kind="stable")


def _relations_clear(boxes: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """bool ``(N,)``: in every scene, neighbours differ clearly more in x than in y or the reverse."""
    order = _caption_order(boxes, valid)
    boxes = np.take_along_axis(boxes, order[..., None], axis=1)
    valid = np.take_along_axis(valid, order, axis=1)
    ok = np.ones(boxes.shape[0], dtype=bool)
    for i in range(boxes.shape[1] - 1):
        a, b = boxes[:, i], boxes[:, i + 1]
        dx2 = np.abs(b[:, 0] + b[:, 2] - a[:, 0] - a[:, 2])
        dy2 = np.abs(b[:, 1] + b[:, 3] - a[:, 1] - a[:, 3])
        ok &= ~(valid[:, i] & valid[:, i + 1]) | (np.abs(dx2 - dy2) >= 2 * _RELATION_MARGIN)
    return ok


def _relation(first_box, second_box) -> str:
    """How ``first`` stands to ``second`` (``second`` is not further left): "left of", "above" or "below"."""
    dx2 = abs(second_box[0] + second_box[2] - first_box[0] - first_box[2])
    dy2 = second_box[1] + second_box[3] - first_box[1] - first_box[3]
    if abs(dy2) > dx2:
        return "above" if dy2 > 0 else "below"
    return "left of"


def describe_scene(boxes, labels, sizes, colours) -> str:
    """The caption of one scene: its items left to right, joined by their relations.

    Args:
        boxes: ``(K, 4)`` ``(x0, y0, x1, y1)``; labels: ``(K,)`` Fashion-MNIST classes;
        sizes: ``(K,)`` indices into :data:`SCENE_SIZES` (0 small, 1 large);
        colours: ``(K,)`` indices into :data:`SCENE_COLOURS`; any order of the ``K`` items.

    Returns:
        e.g. ``"a small red bag above a large blue boot left of a small green coat"``.
    """
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    order = _caption_order(boxes[None], np.ones((1, len(boxes)), dtype=bool))[0]
    size_words, colour_words = list(SCENE_SIZES), list(SCENE_COLOURS)
    labels, sizes, colours = (np.asarray(v).reshape(-1) for v in (labels, sizes, colours))
    if not len(labels) == len(sizes) == len(colours) == len(boxes):
        raise ValueError(f"boxes (K, 4), labels, sizes and colours (K,) must describe the same K items, got "
                         f"{len(boxes)}, {len(labels)}, {len(sizes)}, {len(colours)}")
    words = []
    for rank, k in enumerate(order):
        if rank:
            words.append(_relation(boxes[order[rank - 1]], boxes[k]))
        words.append(f"a {size_words[sizes[k]]} {colour_words[colours[k]]} {SCENE_ITEM_WORDS[labels[k]]}")
    return " ".join(words)


def _check_split(split: str, sizes: dict) -> None:
    if split not in sizes:
        raise ValueError(f"split must be one of {', '.join(map(repr, sizes))}, got {split!r}")


def _scene_pool(split: str, cfg):
    """Fashion-MNIST items of a split's scenes: float ``(P, 28, 28)`` and labels ``(P,)``.

    Train scenes use the training items; val and test scenes the two halves of the test items.
    """
    x_train, y_train, x_test, y_test = load_dataset("fashion_mnist", cfg=cfg)
    if split == "train":
        return x_train[:, 0], y_train
    half = x_test.shape[0] // 2
    part = slice(0, half) if split == "val" else slice(half, None)
    return x_test[part, 0], y_test[part]


@functools.lru_cache(maxsize=6)
def _scene_layout(split: str, seed: int, pool_size: int) -> dict[str, np.ndarray]:
    """What every scene of a split holds, slots in caption order: all of it fixed by ``(split, seed)``."""
    rng = np.random.default_rng([seed, _SCENE_STREAMS[split]])
    N, S = SCENE_SPLIT_SIZES[split], SCENE_MAX_ITEMS
    counts = rng.integers(1, S + 1, size=N)
    valid = np.arange(S)[None, :] < counts[:, None]
    items = rng.integers(0, pool_size, size=(N, S))
    size_ids = rng.integers(0, len(SCENE_SIZES), size=(N, S))
    colour_ids = rng.integers(0, len(SCENE_COLOURS), size=(N, S))
    pixels = np.array(list(SCENE_SIZES.values()))[size_ids]
    boxes = place_boxes(rng, pixels, valid, SCENE_SIZE, gap=_SCENE_GAP, accept=_relations_clear)
    order = _caption_order(boxes, valid)
    layout = {"valid": valid, "items": items, "sizes": size_ids, "colours": colour_ids}
    layout = {k: np.take_along_axis(v, order, axis=1) for k, v in layout.items()}
    layout["boxes"] = np.take_along_axis(boxes, order[..., None], axis=1)
    return layout


def _flat_objects(layout: dict[str, np.ndarray], num: int, labels_of_pool: torch.Tensor) -> dict[str, torch.Tensor]:
    valid = layout["valid"][:num]
    image_index, _ = np.nonzero(valid)
    items = torch.from_numpy(layout["items"][:num][valid])
    return {
        "image_index": torch.from_numpy(image_index.astype(np.int64)),
        "boxes": torch.from_numpy(layout["boxes"][:num][valid]),
        "labels": labels_of_pool[items].clone(),
        "sizes": torch.from_numpy(layout["sizes"][:num][valid]),
        "colours": torch.from_numpy(layout["colours"][:num][valid]),
        "items": items,
    }


def _captions(objects: dict[str, torch.Tensor], num: int) -> list[str]:
    """Caption of every scene from its flat objects (already in caption order)."""
    size_words, colour_words = list(SCENE_SIZES), list(SCENE_COLOURS)
    words: list[list[str]] = [[] for _ in range(num)]
    previous_box: list[list[int] | None] = [None] * num
    columns = zip(objects["image_index"].tolist(), objects["boxes"].tolist(), objects["labels"].tolist(),
                  objects["sizes"].tolist(), objects["colours"].tolist(), strict=True)
    for n, box, label, size, colour in columns:
        if previous_box[n] is not None:
            words[n].append(_relation(previous_box[n], box))
        words[n].append(f"a {size_words[size]} {colour_words[colour]} {SCENE_ITEM_WORDS[label]}")
        previous_box[n] = box
    return [" ".join(scene) for scene in words]


def _paint(objects, pool_images, num: int, seed: int, split: str, image_size: int) -> torch.Tensor:
    """uint8 ``(num, 3, image_size, image_size)`` scenes, painted ``_SCENE_CHUNK`` at a time."""
    noise_rng = np.random.default_rng([seed, _SCENE_STREAMS[split], 0])
    tints = torch.tensor(list(SCENE_COLOURS.values()), dtype=torch.float32)
    images = torch.empty(num, 3, SCENE_SIZE, SCENE_SIZE, dtype=torch.uint8)
    starts = torch.searchsorted(objects["image_index"], torch.arange(0, num + _SCENE_CHUNK, _SCENE_CHUNK))
    for c, start in enumerate(range(0, num, _SCENE_CHUNK)):
        stop = min(start + _SCENE_CHUNK, num)
        noise = np.frombuffer(noise_rng.bytes(images[start:stop].numel()), dtype=np.uint8)
        canvas = images[start:stop]            # a contiguous view: painted in place
        canvas.view(-1).copy_(torch.from_numpy(noise >> _NOISE_SHIFT))
        part = slice(int(starts[c]), int(starts[c + 1]))
        items = pool_images[objects["items"][part]]
        items = items / items.amax(dim=(1, 2), keepdim=True).clamp_min(1e-6)  # brightest pixel opaque
        paste_items(canvas, items, objects["boxes"][part], tints[objects["colours"][part]],
                    objects["image_index"][part] - start)
    if image_size == SCENE_SIZE:
        return images
    return _resize_uint8(images, image_size)


def _resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> uint8 ``(N, C, size, size)`` (bilinear, antialiased)."""
    out = torch.empty(images.shape[0], images.shape[1], size, size, dtype=torch.uint8, device=images.device)
    for start in range(0, images.shape[0], _SCENE_CHUNK):
        part = images[start:start + _SCENE_CHUNK].to(torch.float32)
        part = F.interpolate(part, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + _SCENE_CHUNK] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def captioned_scenes(split: str, num: int | None = None, seed: int = 0, image_size: int | None = None,
                     cfg=None) -> dict:
    """Generated scenes of Fashion-MNIST items with captions that say what was pasted.

    A 64x64 RGB canvas of faint noise holds 1-3 items, each tinted red, green,
    blue or yellow and drawn small (16 px) or large (28 px), at least 2 px apart.
    The caption names the items left to right, ``"a <size> <colour> <item>"``,
    joined by how each stands to the next: ``"left of"``, or ``"above"`` /
    ``"below"`` when the vertical offset of their centres is the larger (layouts
    where the two offsets are within 4 px of each other are redrawn).  Train
    scenes use Fashion-MNIST training items, val and test scenes the two halves
    of its test items; the splits hold 20,000 / 2,000 / 2,000 scenes fixed by
    ``(split, seed)``, and ``num`` takes the first ``num``.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num: number of scenes (``None``: the whole split).
        seed: fixes the scenes (each split draws from its own stream).
        image_size: side of the returned images (``None``: 64); other sizes are resized from 64.
        cfg: where Fashion-MNIST is found (:func:`helpers.config.get_config` by default).

    Returns:
        dict with ``"images"``: uint8 ``(num, 3, S, S)``; ``"texts"``: ``num`` captions;
        ``"objects"``: flat tensors over the ``K`` pasted items, in caption order within each scene —
        ``"image_index"`` ``(K,)``, ``"boxes"`` ``(K, 4)`` ``(x0, y0, x1, y1)`` in 64-px canvas pixels,
        ``"labels"`` ``(K,)`` Fashion-MNIST classes, ``"sizes"`` ``(K,)`` and ``"colours"`` ``(K,)``
        (indices into :data:`SCENE_SIZES` / :data:`SCENE_COLOURS`), ``"items"`` ``(K,)`` index of the item
        in the split's Fashion-MNIST pool; ``"canvas_size"``: 64.
    """
    num = _check_scene_args(split, num, seed)
    image_size = SCENE_SIZE if image_size is None else check_int(image_size, "image_size")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    pool_images, pool_labels = _scene_pool(split, cfg)
    layout = _scene_layout(split, seed, pool_images.shape[0])
    objects = _flat_objects(layout, num, pool_labels)
    return {
        "images": _paint(objects, pool_images, num, seed, split, image_size),
        "texts": _captions(objects, num),
        "objects": objects,
        "canvas_size": SCENE_SIZE,
    }


def _check_scene_args(split: str, num, seed) -> int:
    """``num`` as a count of scenes (``None``: the whole split), after checking split and seed."""
    _check_split(split, SCENE_SPLIT_SIZES)
    check_int(seed, "seed")
    available = SCENE_SPLIT_SIZES[split]
    if num is None:
        return available
    check_int(num, "num")
    if not 1 <= num <= available:
        raise ValueError(f"num must lie in [1, {available}] (the size of the {split!r} split), got {num}")
    return num


def scene_texts(split: str, num: int | None = None, seed: int = 0, cfg=None) -> list[str]:
    """The captions of :func:`captioned_scenes` without painting the images (fast)."""
    num = _check_scene_args(split, num, seed)
    _, pool_labels = _scene_pool(split, cfg)
    return _captions(_flat_objects(_scene_layout(split, seed, len(pool_labels)), num, pool_labels), num)


def scene_objects(objects: dict[str, torch.Tensor], index: int) -> list[dict]:
    """The items of scene ``index`` as dicts (caption order): box, label, item, size and colour words."""
    rows = torch.nonzero(objects["image_index"] == index).squeeze(1).tolist()
    size_words, colour_words = list(SCENE_SIZES), list(SCENE_COLOURS)
    return [{"box": tuple(objects["boxes"][k].tolist()), "label": int(objects["labels"][k]),
             "item": SCENE_ITEM_WORDS[int(objects["labels"][k])], "size": size_words[int(objects["sizes"][k])],
             "colour": colour_words[int(objects["colours"][k])]} for k in rows]


# --------------------------------------------------------------------------- detection scenes

DETECTION_CANVAS_SIZE = 96
DETECTION_MAX_ITEMS = 6
DETECTION_SPLIT_SIZES = {"train": 10_000, "val": 1_000, "test": 1_000}
#: longest side of an item's box as a fraction of the canvas: 16 to 48 px on the 96-px canvas
DETECTION_ITEM_SIDES = (1 / 6, 1 / 2)
#: no two boxes of a scene overlap more than this (IoU)
DETECTION_MAX_IOU = 0.4
#: the items painted after an item cover at most this fraction of its box (sum of the intersections)
DETECTION_MAX_HIDDEN = 0.5
#: an item's pixels fainter than this (alpha) are dropped; its box is tight around the others
DETECTION_MIN_ALPHA = 0.1
_DETECTION_MIN_CANVAS = 32
_DETECTION_STREAMS = {"train": 11, "val": 12, "test": 13}
_SOURCE_SIZE = 28             # Fashion-MNIST items are 28x28


def _check_detection_args(split: str, num, seed, canvas_size, max_items) -> int:
    """``num`` as a count of scenes (``None``: the whole split), after checking every argument."""
    _check_split(split, DETECTION_SPLIT_SIZES)
    check_int(seed, "seed")
    check_int(canvas_size, "canvas_size")
    if canvas_size < _DETECTION_MIN_CANVAS:
        raise ValueError(f"canvas_size must be >= {_DETECTION_MIN_CANVAS}, got {canvas_size}")
    check_int(max_items, "max_items")
    if not 1 <= max_items <= DETECTION_MAX_ITEMS:
        raise ValueError(f"max_items must lie in [1, {DETECTION_MAX_ITEMS}], got {max_items}")
    available = DETECTION_SPLIT_SIZES[split]
    if num is None:
        return available
    check_int(num, "num")
    if not 1 <= num <= available:
        raise ValueError(f"num must lie in [1, {available}] (the size of the {split!r} split), got {num}")
    return num


def detection_item_sides(canvas_size: int) -> tuple[int, int]:
    """Smallest and largest longest side (pixels) of an item's box on a canvas: ``96 -> (16, 48)``."""
    low, high = DETECTION_ITEM_SIDES
    return max(2, round(low * canvas_size)), round(high * canvas_size)


def _hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    """float ``(..., 3)`` RGB colours of HSV colours given as arrays in ``[0, 1]``."""
    h6 = hue * 6.0
    sector = np.floor(h6).astype(np.int64) % 6
    f = h6 - np.floor(h6)
    p, q, t = value * (1 - saturation), value * (1 - saturation * f), value * (1 - saturation * (1 - f))
    choices = [(value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value), (value, p, q)]
    rgb = np.zeros(hue.shape + (3,))
    for s, channels in enumerate(choices):
        rgb[sector == s] = np.stack(channels, axis=-1)[sector == s]
    return rgb


def _item_alpha(pool_images: torch.Tensor) -> torch.Tensor:
    """float ``(P, 28, 28)`` alpha masks: every item divided by its brightest pixel (which becomes opaque)."""
    return pool_images / pool_images.amax(dim=(1, 2), keepdim=True).clamp_min(1e-6)


def _crop_boxes(alpha: torch.Tensor) -> torch.Tensor:
    """int64 ``(P, 4)`` ``(x0, y0, x1, y1)``: tight box of each item's pixels of alpha >= DETECTION_MIN_ALPHA."""
    solid = alpha >= DETECTION_MIN_ALPHA
    rows, cols = solid.any(dim=2), solid.any(dim=1)
    size = alpha.shape[-1]
    first = lambda m: m.to(torch.uint8).argmax(dim=1)                       # noqa: E731 - first True
    last = lambda m: size - m.flip(1).to(torch.uint8).argmax(dim=1)         # noqa: E731 - one past the last
    return torch.stack([first(cols), first(rows), last(cols), last(rows)], dim=1)


def _item_masks(alpha: torch.Tensor, crops: torch.Tensor, sides: torch.Tensor, top: torch.Tensor,
                left: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A window of each item scaled to its size: alpha masks with faint pixels dropped.

    Item ``k``'s crop (its tight box in the 28x28 image) is scaled so that its longer
    side is ``sides[k]`` pixels and its top-left corner at pixel ``(0, 0)`` (bilinear
    sampling at pixel centres) and divided by its largest value (so that an item
    shrunk a lot keeps an opaque pixel); pixels outside the scaled crop and pixels
    of alpha below :data:`DETECTION_MIN_ALPHA` are 0.  The window holds rows
    ``top[k] .. top[k] + height - 1`` and columns ``left[k] .. left[k] + width - 1``
    of that picture.  A pixel's value depends only on its row, its column and the
    largest value in the window: every window that holds the item's whole tight box
    (which holds its brightest pixel) gives the same values.

    Args:
        alpha: float ``(K, 28, 28)``; crops: int ``(K, 4)`` ``(x0, y0, x1, y1)``; sides, top, left: int ``(K,)``.

    Returns:
        float32 ``(K, height, width)``.
    """
    crops = crops.to(torch.float32)
    crop_w, crop_h = crops[:, 2] - crops[:, 0], crops[:, 3] - crops[:, 1]
    scale = sides.to(torch.float32) / torch.maximum(crop_w, crop_h)
    out_w, out_h = (crop_w * scale).round().clamp_min(1), (crop_h * scale).round().clamp_min(1)
    # integer pixel indices (exact in float32) + 0.5: pixel centres in the scaled item's frame
    rows = top[:, None].to(torch.float32) + torch.arange(height, dtype=torch.float32, device=top.device)[None, :] + 0.5
    cols = left[:, None].to(torch.float32) + torch.arange(width, dtype=torch.float32, device=left.device)[None, :] + 0.5
    # where those centres fall in the 28x28 image (continuous pixel coordinates), normalised to [-1, 1]
    xs = (crops[:, 0, None] + cols * (crop_w / out_w)[:, None]) * (2.0 / _SOURCE_SIZE) - 1.0
    ys = (crops[:, 1, None] + rows * (crop_h / out_h)[:, None]) * (2.0 / _SOURCE_SIZE) - 1.0
    K = alpha.shape[0]
    grid = torch.stack([xs[:, None, :].expand(K, height, width), ys[:, :, None].expand(K, height, width)], dim=-1)
    masks = F.grid_sample(alpha[:, None].to(torch.float32), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)[:, 0]
    inside = (rows[:, :, None] < out_h[:, None, None]) & (cols[:, None, :] < out_w[:, None, None])
    masks = torch.where(inside, masks, masks.new_zeros(()))
    masks = masks / masks.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)        # the brightest pixel is opaque
    return torch.where(masks >= DETECTION_MIN_ALPHA, masks, masks.new_zeros(()))


def _tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    """int64 ``(K, 4)`` ``(left, top, right, bottom)`` (exclusive ends) of each mask's non-zero pixels."""
    rows, cols = masks.sum(dim=2) > 0, masks.sum(dim=1) > 0         # masks are >= 0
    if not bool(rows.any(dim=1).all()):
        raise RuntimeError("an item lost every pixel when scaled; use a larger canvas")
    first = lambda m: m.to(torch.uint8).argmax(dim=1)                               # noqa: E731
    end = lambda m: m.shape[1] - m.flip(1).to(torch.uint8).argmax(dim=1)            # noqa: E731
    return torch.stack([first(cols), first(rows), end(cols), end(rows)], dim=1)


def _overlap_ok(max_iou: float, max_hidden: float):
    """``accept`` rule of :func:`place_boxes`: pairwise IoU and the hidden part of each item are capped."""
    def accept(boxes: np.ndarray, valid: np.ndarray) -> np.ndarray:
        boxes = boxes.astype(np.float64)
        area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        ok = np.ones(boxes.shape[0], dtype=bool)
        hidden = np.zeros(valid.shape)
        for i in range(boxes.shape[1]):
            for j in range(i + 1, boxes.shape[1]):             # j is painted after i
                a, b = boxes[:, i], boxes[:, j]
                iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
                ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
                both = valid[:, i] & valid[:, j]
                inter = np.where(both, iw * ih, 0.0)
                union = np.where(both, area[:, i] + area[:, j] - inter, 1.0)
                ok &= inter <= max_iou * union
                hidden[:, i] += inter / np.where(valid[:, i], area[:, i], 1.0)
        return ok & (hidden <= max_hidden).all(axis=1)
    return accept


def _detection_pool(split: str, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's Fashion-MNIST items ``(P, 28, 28)`` in ``[0, 1]`` and labels ``(P,)``."""
    return _scene_pool(split, cfg)


_LAYOUT_CHUNK = 4096          # items scaled at once when measuring their boxes
_BUCKET = 8                   # item windows are painted in sizes rounded up to a multiple of this


def _measure_items(alpha: torch.Tensor, crops: torch.Tensor, sides: np.ndarray) -> np.ndarray:
    """int64 ``(K, 4)`` tight box ``(left, top, right, bottom)`` of every scaled item (pixels of its frame)."""
    sides_t = torch.from_numpy(sides)
    out = torch.zeros(len(sides), 4, dtype=torch.int64)
    for side in torch.unique(sides_t).tolist():          # one window size per group: side x side
        chosen = torch.nonzero(sides_t == side).squeeze(1)
        for start in range(0, chosen.numel(), _LAYOUT_CHUNK):
            part = chosen[start:start + _LAYOUT_CHUNK]
            zero = torch.zeros(part.numel(), dtype=torch.int64)
            out[part] = _tight_boxes(_item_masks(alpha[part], crops[part], sides_t[part], zero, zero, side, side))
    return out.numpy()


@functools.lru_cache(maxsize=6)
def _detection_layout(split: str, seed: int, canvas_size: int, max_items: int, cfg) -> dict[str, np.ndarray]:
    """What every scene of a split holds, slots in paint order: all of it fixed by the arguments."""
    pool, labels = _detection_pool(split, cfg)
    rng = np.random.default_rng([seed, _DETECTION_STREAMS[split]])
    N, S = DETECTION_SPLIT_SIZES[split], max_items
    low, high = detection_item_sides(canvas_size)
    counts = rng.integers(1, S + 1, size=N)
    valid = np.arange(S)[None, :] < counts[:, None]
    items = rng.integers(0, pool.shape[0], size=(N, S))
    sides = rng.integers(low, high + 1, size=(N, S))
    tints = _hsv_to_rgb(rng.random((N, S)), rng.uniform(0.5, 1.0, (N, S)), rng.uniform(0.75, 1.0, (N, S)))
    tight = np.zeros((N, S, 4), dtype=np.int64)        # (left, top, right, bottom) in the item's own frame
    alpha = _item_alpha(pool[torch.from_numpy(items[valid])])
    tight[valid] = _measure_items(alpha, _crop_boxes(alpha), sides[valid])
    extent = np.stack([tight[..., 3] - tight[..., 1], tight[..., 2] - tight[..., 0]], axis=-1)   # (h, w)
    boxes = place_boxes(rng, extent, valid, canvas_size, gap=None,
                        accept=_overlap_ok(DETECTION_MAX_IOU, DETECTION_MAX_HIDDEN))
    return {"valid": valid, "items": np.where(valid, items, -1), "labels": np.where(valid, labels.numpy()[items], -1),
            "sides": sides, "tints": tints.astype(np.float32), "boxes": boxes, "tight": tight}


def _interpolation_matrix(size: int, grid: int) -> torch.Tensor:
    """float32 ``(size, grid)``: bilinear upsampling of ``grid`` values to ``size`` (pixel centres aligned)."""
    return F.interpolate(torch.eye(grid)[None], size=(size,), mode="linear", align_corners=False)[0].T.contiguous()


def _detection_backgrounds(split: str, seed: int, canvas_size: int, start: int, stop: int) -> torch.Tensor:
    """uint8 ``(stop - start, 3, S, S)`` backgrounds of scenes ``start .. stop - 1`` (all in one chunk of 1000).

    A smooth colour field (a random 4x4 grid of colours) plus a grey texture (a random
    grid of side ``S // 8``), bilinearly upsampled to half the canvas and doubled, plus
    pixel noise in ``[0, 15]``: values in ``[8, 119]`` of 255, darker than any item's
    tint in its brightest channel (>= 0.75 * 255), so every item pixel (alpha >= 0.1)
    changes the image.
    """
    chunk, offset = divmod(start, _SCENE_CHUNK)
    if stop <= start or offset + stop - start > _SCENE_CHUNK:
        raise ValueError(f"scenes {start}..{stop - 1} are not within one chunk of {_SCENE_CHUNK}")
    n, rows, size = stop - start, slice(offset, offset + stop - start), canvas_size
    stream = [seed, _DETECTION_STREAMS[split], chunk]

    def draw(part: int, shape: tuple[int, ...]) -> torch.Tensor:
        rng = np.random.default_rng(stream + [part])   # one array per generator: a prefix draws the same values
        return torch.from_numpy(rng.random((offset + n,) + shape, dtype=np.float32)[rows])

    def noise() -> torch.Tensor:                       # uint8 in [0, 15], the low 4 bits of random bytes
        rng = np.random.default_rng(stream + [2])
        raw = np.frombuffer(rng.bytes((offset + n) * 3 * size * size), dtype=np.uint8)
        return torch.from_numpy((raw[offset * 3 * size * size:] & 15).reshape(n, 3, size, size))

    side, half = max(2, size // 8), (size + 1) // 2
    to_side, to_half = _interpolation_matrix(side, 4), _interpolation_matrix(half, side)
    low_res = 8.0 + 76.0 * (to_side @ draw(0, (3, 4, 4)) @ to_side.T) + 20.0 * draw(1, (1, side, side))
    smooth = (to_half @ low_res @ to_half.T).to(torch.uint8)                      # (n, 3, half, half) in [8, 104]
    smooth = smooth.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    return smooth[:, :, :size, :size].add(noise())


def _paint_detection(layout: dict, pool: torch.Tensor, num: int, split: str, seed: int,
                     canvas_size: int) -> torch.Tensor:
    """uint8 ``(num, 3, S, S)`` scenes, painted 1000 at a time.

    Each item is painted as a window of its mask that starts at its tight box and whose
    sides are rounded up to a multiple of 8 (so that few window sizes occur); the canvas
    is padded by 7 pixels right and below while painting.
    """
    pad = _BUCKET - 1
    images = torch.empty(num, 3, canvas_size, canvas_size, dtype=torch.uint8)
    for start in range(0, num, _SCENE_CHUNK):
        stop = min(start + _SCENE_CHUNK, num)
        valid = layout["valid"][start:stop]
        scene, _ = np.nonzero(valid)
        alpha = _item_alpha(pool[torch.from_numpy(layout["items"][start:stop][valid])])
        crops = _crop_boxes(alpha)
        sides = torch.from_numpy(layout["sides"][start:stop][valid])
        tight = torch.from_numpy(layout["tight"][start:stop][valid])
        size = torch.stack([tight[:, 3] - tight[:, 1], tight[:, 2] - tight[:, 0]], dim=1)      # (h, w)
        window = (size + pad) // _BUCKET * _BUCKET
        masks: list[torch.Tensor] = [torch.empty(0)] * len(alpha)
        for h, w in torch.unique(window, dim=0).tolist():
            group = torch.nonzero((window[:, 0] == h) & (window[:, 1] == w)).squeeze(1)
            part = _item_masks(alpha[group], crops[group], sides[group], tight[group, 1], tight[group, 0], h, w)
            found = _tight_boxes(part)      # must start at (0, 0) and end at (w, h), as the layout measured
            if not (torch.equal(found[:, :2], torch.zeros_like(found[:, :2]))
                    and torch.equal(found[:, 2:], size[group].flip(1))):
                raise RuntimeError("item masks differ from the layout's (non-deterministic resampling)")
            for k, mask in zip(group.tolist(), part.unbind(0), strict=True):
                masks[k] = mask
        canvas = torch.zeros(stop - start, 3, canvas_size + pad, canvas_size + pad, dtype=torch.uint8)
        canvas[:, :, :canvas_size, :canvas_size] = _detection_backgrounds(split, seed, canvas_size, start, stop)
        corner = torch.from_numpy(layout["boxes"][start:stop][valid][:, :2])
        paste_items(canvas, masks, torch.cat([corner, corner + window.flip(1)], dim=1),
                    torch.from_numpy(layout["tints"][start:stop][valid]), torch.from_numpy(scene))
        images[start:stop] = canvas[:, :, :canvas_size, :canvas_size]
    return images


def detection_scenes(split: str, num: int | None = None, seed: int = 0, canvas_size: int = DETECTION_CANVAS_SIZE,
                     max_items: int = DETECTION_MAX_ITEMS, cfg=None) -> dict:
    """Generated detection scenes: tinted Fashion-MNIST items at random places and scales, with exact boxes.

    Each RGB canvas (``canvas_size`` pixels square) has a textured, noisy, dark
    background (a smooth colour field, a grey texture, pixel noise) and holds 1 to
    ``max_items`` items (equally likely counts).  Each item is a Fashion-MNIST image
    cropped to its pixels, scaled so that its longer side is 16 to 48 px on the
    96-px canvas (``canvas_size / 6`` to ``canvas_size / 2``; faint edges may then
    drop, so a box can be a pixel or two smaller), used as an alpha mask (brightest
    pixel opaque; alpha below :data:`DETECTION_MIN_ALPHA` dropped) and tinted with a
    random bright colour (hue uniform, saturation 0.5-1, brightest channel 0.75-1,
    always brighter than the background in that channel).  Items may overlap: no two
    boxes of a scene have IoU above :data:`DETECTION_MAX_IOU` (0.4), and the items
    painted later cover at most :data:`DETECTION_MAX_HIDDEN` (half) of an earlier
    item's box.  Items are painted in slot order, later ones on top.

    Boxes are exact: the tight box around the pixels the item paints (alpha >= 0.1),
    in continuous pixel coordinates (a box ``[x1, y1, x2, y2]`` covers pixel columns
    ``x1 .. x2 - 1``), integer-valued, inside the canvas; the item's pixels touch all
    four sides.  The box of a partly covered item is still the whole item's box.

    Train scenes use Fashion-MNIST training items, val and test scenes the two halves
    of its test items (so no item is shared between splits).  The splits hold
    10,000 / 1,000 / 1,000 scenes fixed by ``(split, seed, canvas_size, max_items)``;
    ``num`` takes the first ``num``.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num: number of scenes (``None``: the whole split).
        seed: fixes the scenes (each split draws from its own stream).
        canvas_size: side of the square images (>= 32); item sizes scale with it.
        max_items: most items in a scene (1 to 6); also the padded length of ``gt_boxes``.
        cfg: where Fashion-MNIST is found (:func:`helpers.config.get_config` by default).

    Returns:
        dict with
            ``"images"``: uint8 ``(num, 3, S, S)``;
            ``"gt_boxes"``: float32 ``(num, max_items, 5)`` rows ``(x1, y1, x2, y2, class)`` in paint order,
            padded with rows of ``-1``;
            ``"difficult"``: bool ``(num, max_items)``, all False (the format of VOC);
            ``"class_names"``: the 10 Fashion-MNIST class names;
            ``"image_ids"``: ``num`` strings ``"<split>-<index>"``;
            ``"orig_sizes"``: int64 ``(num, 2)`` ``(height, width)``, here ``(S, S)``;
            ``"items"``: int64 ``(num, max_items)``, index of each item in the split's Fashion-MNIST pool
            (``-1`` padding); ``"tints"``: float32 ``(num, max_items, 3)`` colours in ``[0, 1]``.
    """
    num = _check_detection_args(split, num, seed, canvas_size, max_items)
    cfg = get_config() if cfg is None else cfg
    pool, _ = _detection_pool(split, cfg)
    layout = _detection_layout(split, seed, canvas_size, max_items, cfg)
    valid = torch.from_numpy(layout["valid"][:num])
    boxes = torch.from_numpy(layout["boxes"][:num]).to(torch.float32)
    labels = torch.from_numpy(layout["labels"][:num]).to(torch.float32)
    gt_boxes = torch.cat([boxes, labels[..., None]], dim=-1)
    gt_boxes[~valid] = -1
    return {
        "images": _paint_detection(layout, pool, num, split, seed, canvas_size),
        "gt_boxes": gt_boxes,
        "difficult": torch.zeros(num, max_items, dtype=torch.bool),
        "class_names": list(CLASS_NAMES["fashion_mnist"]),
        "image_ids": [f"{split}-{i:05d}" for i in range(num)],
        "orig_sizes": torch.full((num, 2), canvas_size, dtype=torch.int64),
        "items": torch.from_numpy(layout["items"][:num]).clone(),
        "tints": torch.from_numpy(layout["tints"][:num]).clone(),
    }
