"""Detection datasets for A5, YOLOv1 and DETR: PASCAL VOC 2007 or generated scenes.

:func:`load_detection` returns images with padded ground-truth boxes ``(N, M, 5)``
= ``x1, y1, x2, y2, class`` (``-1`` rows pad), either generated offline
(``"detection_scenes"``, see :mod:`helpers.datasets.synthetic`) or PASCAL VOC 2007
(``"voc2007"``, the ``VOCdevkit`` layout, parsed by :func:`read_voc_annotation`).
:func:`gt_boxes_to_targets` gives the per-image dicts of the evaluation and
:class:`DetectionDataset` feeds a ``DataLoader``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from helpers.checks import check_gt_boxes, check_int
from helpers.config import Config, get_config
from helpers.datasets import synthetic
from helpers.datasets.files import DatasetNotFoundError, check_count, read_resized

__all__ = [
    "DETECTION_DATASETS",
    "DetectionDataset",
    "SCENE_DETECTION_SPLITS",
    "VOC_CLASSES",
    "VOC_IMAGE_SIZE",
    "VOC_SPLITS",
    "gt_boxes_to_targets",
    "load_detection",
    "load_voc_detection",
    "read_voc_annotation",
    "read_voc_split",
    "voc_folder",
    "voc_splits_found",
    "voc_splits_used",
    "write_voc_devkit",
]

# --------------------------------------------------------------------------- detection (A5)

#: detection datasets of :func:`load_detection`
DETECTION_DATASETS = ("detection_scenes", "voc2007")
#: the 20 PASCAL VOC classes, in the order of the devkit (class id = index)
VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
VOC_SPLITS = ("train", "val", "trainval", "test")
SCENE_DETECTION_SPLITS = ("train", "val", "test")
VOC_IMAGE_SIZE = 224             # default side of the resized VOC images
_VOC_ARCHIVES = {"trainval": "VOCtrainval_06-Nov-2007.tar", "test": "VOCtest_06-Nov-2007.tar"}
_VOC_HOSTS = ("http://host.robots.ox.ac.uk/pascal/VOC/voc2007/ (torchvision: thor.robots.ox.ac.uk)",
              "the mirror https://pjreddie.com/media/files/")


def voc_folder(cfg: Config | None = None, root=None) -> Path:
    """Where VOC 2007 is looked for: ``root`` if given, else ``<cfg.data_dir>/VOCdevkit/VOC2007``.

    That is the folder torchvision's ``VOCDetection(root=cfg.data_dir, year="2007")`` uses, holding
    ``Annotations/<id>.xml``, ``JPEGImages/<id>.jpg`` and ``ImageSets/Main/{train,val,trainval,test}.txt``.
    """
    if root is not None:
        return Path(root).expanduser()
    return Path((get_config() if cfg is None else cfg).data_dir) / "VOCdevkit" / "VOC2007"


def _voc_not_found(folder: Path, split: str, reason: str) -> DatasetNotFoundError:
    archive = _VOC_ARCHIVES["test" if split == "test" else "trainval"]
    message = (
        f"dataset 'voc2007' ({split!r} split) not found ({reason}).\n"
        f"  Looked in: {folder}\n"
        f"  Expected: Annotations/<id>.xml, JPEGImages/<id>.jpg, ImageSets/Main/{split}.txt\n"
        "  Remedies:\n"
        f"  1. download {archive} (train / val / trainval: {_VOC_ARCHIVES['trainval']}; test: "
        f"{_VOC_ARCHIVES['test']}) from\n     {_VOC_HOSTS[0]} or {_VOC_HOSTS[1]}\n"
        f"     and extract it in {folder.parent.parent} (it creates VOCdevkit/VOC2007), or set DL4CV_DATA_DIR;\n"
        "     with internet, DL4CV_OFFLINE=0 downloads it (torchvision, checksum-verified);\n"
        "  2. use the generated dataset that works offline: DL4CV_DATASET=detection_scenes."
    )
    return DatasetNotFoundError(message)


def _xml_text(node, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ValueError(f"{where}: missing <{tag}>")
    return child.text.strip()


def _xml_number(node, tag: str, where: str) -> float:
    text = _xml_text(node, tag, where)
    try:
        return float(text)
    except ValueError as exc:
        raise ValueError(f"{where}: <{tag}> must be a number, got {text!r}") from exc


def read_voc_annotation(xml_path) -> dict:
    """Parse one PASCAL VOC annotation file (``Annotations/<id>.xml``).

    VOC pixel coordinates are 1-based and inclusive: ``<xmin>1</xmin> <xmax>3</xmax>`` is the
    3 pixels 1, 2, 3.  They are converted to the continuous 0-based ``(x1, y1, x2, y2)`` boxes
    used everywhere in the course (and by torchvision): ``x1 = xmin - 1``, ``y1 = ymin - 1``,
    ``x2 = xmax``, ``y2 = ymax`` (the box above becomes ``[0, 3]``, 3 pixels wide).

    Returns:
        dict with ``"boxes"``: float32 ``(K, 4)``; ``"labels"``: int64 ``(K,)`` indices into
        :data:`VOC_CLASSES`; ``"difficult"``: bool ``(K,)`` (a missing ``<difficult>`` is False);
        ``"size"``: ``(height, width)`` from ``<size>``; ``"filename"``: ``<filename>`` or ``None``.
        Objects keep the file's order.

    Raises:
        ValueError: not XML, a missing field, an unknown class name or a box with ``xmax < xmin``.
    """
    import xml.etree.ElementTree as ET

    path = Path(xml_path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{path}: not valid XML ({exc})") from exc
    size = root.find("size")
    if size is None:
        raise ValueError(f"{path}: missing <size>")
    height = int(_xml_number(size, "height", f"{path} <size>"))
    width = int(_xml_number(size, "width", f"{path} <size>"))
    filename = root.findtext("filename")
    boxes, labels, difficult = [], [], []
    for k, obj in enumerate(root.findall("object")):
        where = f"{path} object {k}"
        name = _xml_text(obj, "name", where)
        if name not in VOC_CLASSES:
            raise ValueError(f"{where}: unknown class {name!r}; VOC classes: {', '.join(VOC_CLASSES)}")
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"{where}: missing <bndbox>")
        xmin, ymin, xmax, ymax = (_xml_number(box, tag, where) for tag in ("xmin", "ymin", "xmax", "ymax"))
        if xmax < xmin or ymax < ymin:
            raise ValueError(f"{where}: box must have xmax >= xmin and ymax >= ymin, got "
                             f"({xmin}, {ymin}, {xmax}, {ymax})")
        boxes.append([xmin - 1, ymin - 1, xmax, ymax])
        labels.append(VOC_CLASSES.index(name))
        flag = (obj.findtext("difficult") or "0").strip()
        difficult.append(flag not in ("0", ""))
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "difficult": torch.tensor(difficult, dtype=torch.bool),
        "size": (height, width),
        "filename": filename.strip() if filename else None,
    }


def read_voc_split(folder, split: str) -> list[str]:
    """Image ids of a VOC split, in file order: the lines of ``ImageSets/Main/<split>.txt``."""
    path = Path(folder) / "ImageSets" / "Main" / f"{split}.txt"
    with open(path, encoding="utf-8") as fh:
        return [line.split()[0] for line in fh if line.strip()]


def _voc_ready(folder: Path, split: str) -> bool:
    return ((folder / "Annotations").is_dir() and (folder / "JPEGImages").is_dir()
            and (folder / "ImageSets" / "Main" / f"{split}.txt").is_file())


def voc_splits_found(cfg: Config | None = None, root=None) -> dict:
    """Which VOC 2007 splits are on disk: ``{"train": bool, "val": bool, "trainval": bool, "test": bool}``
    (the split's list, ``Annotations/`` and ``JPEGImages/`` present in :func:`voc_folder`)."""
    folder = voc_folder(cfg, root)
    return {split: _voc_ready(folder, split) for split in VOC_SPLITS}


def voc_splits_used(cfg: Config | None = None, root=None) -> dict:
    """The VOC 2007 splits the course trains, validates and tests on: ``{"train", "val", "test"}`` -> split.

    With the test archive (``ImageSets/Main/test.txt``), or online with neither archive yet (both are
    then downloaded): train on ``trainval``, validate and test on ``test``.  With only the trainval
    archive (the one most tutorials fetch): train on ``train``, validate and test on ``val``.
    """
    cfg = get_config() if cfg is None else cfg
    found = voc_splits_found(cfg, root)
    if found["test"] or (not cfg.offline and not found["trainval"]):
        return {"train": "trainval", "val": "test", "test": "test"}
    return {"train": "train", "val": "val", "test": "val"}


def _locate_voc(folder: Path, split: str, cfg: Config, default_folder: bool) -> None:
    """Make sure the split's files are there, downloading them with torchvision when missing and allowed."""
    if _voc_ready(folder, split):
        return
    if cfg.offline or not default_folder:
        reason = "offline: DL4CV_OFFLINE=1 forbids downloading" if cfg.offline else "files missing"
        raise _voc_not_found(folder, split, reason)
    try:
        import torchvision.datasets as tvd

        Path(cfg.data_dir).mkdir(parents=True, exist_ok=True)
        tvd.VOCDetection(root=str(cfg.data_dir), year="2007", image_set="test" if split == "test" else "trainval",
                         download=True)
    except Exception as exc:
        raise _voc_not_found(folder, split, f"download failed: {type(exc).__name__}: {exc}") from exc
    if not _voc_ready(folder, split):
        raise _voc_not_found(folder, split, "download finished but the expected files are still missing")


def _voc_xml(image_id: str, width: int, height: int, objects: list) -> str:
    """A VOC 2007 annotation (the devkit's tags) for ``objects`` = ``(name, (xmin, ymin, xmax, ymax), truncated,
    difficult)`` with 1-based inclusive pixel coordinates."""
    lines = ["<annotation>", "\t<folder>VOC2007</folder>", f"\t<filename>{image_id}.jpg</filename>",
             "\t<source>", "\t\t<database>The VOC2007 Database</database>", "\t</source>",
             "\t<size>", f"\t\t<width>{width}</width>", f"\t\t<height>{height}</height>", "\t\t<depth>3</depth>",
             "\t</size>", "\t<segmented>0</segmented>"]
    for name, (xmin, ymin, xmax, ymax), truncated, difficult in objects:
        lines += ["\t<object>", f"\t\t<name>{name}</name>", "\t\t<pose>Unspecified</pose>",
                  f"\t\t<truncated>{int(truncated)}</truncated>", f"\t\t<difficult>{int(difficult)}</difficult>",
                  "\t\t<bndbox>", f"\t\t\t<xmin>{xmin}</xmin>", f"\t\t\t<ymin>{ymin}</ymin>",
                  f"\t\t\t<xmax>{xmax}</xmax>", f"\t\t\t<ymax>{ymax}</ymax>", "\t\t</bndbox>", "\t</object>"]
    return "\n".join(lines + ["</annotation>"]) + "\n"


def write_voc_devkit(folder, parts: dict, width: int | None = None, difficult_every: int = 5) -> Path:
    """Write :func:`load_detection` dicts as a real-format ``VOCdevkit/VOC2007`` folder (JPEG, XML, lists).

    For tests and timings without the real VOC files: the images (generated scenes, say) become
    ``JPEGImages/<id>.jpg``, stretched to ``width x height`` (VOC's images are wider than tall; boxes
    stretched with them); class ``k`` is written as ``VOC_CLASSES[k]``; every ``difficult_every``-th
    object is ``difficult``, and an object touching the image border is ``truncated``, as in VOC.

    Args:
        folder: the ``VOC2007`` folder to fill (created).
        parts: ``{"train": data, "val": data, "test": data}`` (``"test"`` optional): each written under
            its own ids, listed in ``ImageSets/Main/<split>.txt``; ``trainval.txt`` lists train then val.
        width: image width (default: 4/3 of the height, VOC's usual 500 x 375 shape).

    Returns:
        ``folder``.
    """
    from PIL import Image

    folder = Path(folder)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    lists, count = {}, 0
    for split, data in parts.items():
        if split not in ("train", "val", "test"):
            raise ValueError(f"parts must be keyed by 'train', 'val' and 'test', got {split!r}")
        height = data["images"].shape[-2]
        out_width = width or round(height * 4 / 3)
        scale_x = out_width / data["images"].shape[-1]
        ids = []
        for image, boxes in zip(data["images"], data["gt_boxes"], strict=True):
            image_id = f"{count:06d}"
            count += 1
            pixels = image.permute(1, 2, 0).numpy()
            Image.fromarray(pixels).resize((out_width, height), Image.Resampling.BILINEAR).save(
                folder / "JPEGImages" / f"{image_id}.jpg", quality=90)
            objects = []
            for k, (x1, y1, x2, y2, label) in enumerate(boxes[boxes[:, 4] >= 0].tolist()):
                xmin, xmax = int(x1 * scale_x) + 1, max(int(x1 * scale_x) + 1, round(x2 * scale_x))
                ymin, ymax = int(y1) + 1, max(int(y1) + 1, round(y2))
                truncated = xmin <= 1 or ymin <= 1 or xmax >= out_width or ymax >= height
                objects.append((VOC_CLASSES[int(label)], (xmin, ymin, xmax, ymax), truncated,
                                (count + k) % difficult_every == 0))
            (folder / "Annotations" / f"{image_id}.xml").write_text(_voc_xml(image_id, out_width, height, objects))
            ids.append(image_id)
        lists[split] = ids
    lists["trainval"] = lists.get("train", []) + lists.get("val", [])
    for split, ids in lists.items():
        (folder / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return folder


def _pad_objects(per_image: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """``gt_boxes (N, M, 5)`` padded with -1 and ``difficult (N, M)`` from per-image boxes / labels / difficult."""
    M = max([1] + [len(target["labels"]) for target in per_image])
    gt_boxes = torch.full((len(per_image), M, 5), -1.0)
    difficult = torch.zeros(len(per_image), M, dtype=torch.bool)
    for i, target in enumerate(per_image):
        K = len(target["labels"])
        gt_boxes[i, :K, :4] = target["boxes"]
        gt_boxes[i, :K, 4] = target["labels"].to(torch.float32)
        difficult[i, :K] = target["difficult"]
    return gt_boxes, difficult


def load_voc_detection(split: str, num: int | None = None, cfg: Config | None = None, image_size: int | None = None,
                       root=None, verbose: bool = False) -> dict:
    """PASCAL VOC 2007 for detection, images squashed to ``image_size`` squares (see :func:`load_detection`).

    Images are read from ``JPEGImages/<filename>`` (the annotation's ``<filename>``, else ``<id>.jpg``)
    and resized to ``image_size x image_size`` (bilinear, aspect ratio not kept); every box is
    scaled with its image: ``x * image_size / width``, ``y * image_size / height`` (the file's
    own width and height).  ``"orig_sizes"`` keeps ``(height, width)`` to map boxes back.
    """
    from tqdm.auto import tqdm

    if split not in VOC_SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, VOC_SPLITS))} for voc2007, got {split!r}")
    cfg = get_config() if cfg is None else cfg
    image_size = VOC_IMAGE_SIZE if image_size is None else image_size
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    folder = voc_folder(cfg, root)
    _locate_voc(folder, split, cfg, default_folder=root is None)
    ids = read_voc_split(folder, split)
    count = check_count("num", num, len(ids))
    pixels = np.empty((count, 3, image_size, image_size), dtype=np.uint8)
    targets, orig_sizes = [], []
    for i, image_id in enumerate(tqdm(ids[:count], desc=f"VOC2007 {split}", disable=not verbose)):
        annotation = read_voc_annotation(folder / "Annotations" / f"{image_id}.xml")
        path = folder / "JPEGImages" / (annotation["filename"] or f"{image_id}.jpg")
        if not path.is_file():
            raise _voc_not_found(folder, split, f"missing image JPEGImages/{path.name}")
        pixels[i], (height, width) = read_resized(path, image_size, with_size=True)
        scale = torch.tensor([image_size / width, image_size / height] * 2)
        targets.append({**annotation, "boxes": annotation["boxes"] * scale})
        orig_sizes.append((height, width))
    gt_boxes, difficult = _pad_objects(targets)
    return {
        "images": torch.from_numpy(pixels),
        "gt_boxes": gt_boxes,
        "difficult": difficult,
        "class_names": list(VOC_CLASSES),
        "image_ids": list(ids[:count]),
        "orig_sizes": torch.tensor(orig_sizes, dtype=torch.int64).reshape(-1, 2),
    }


def load_detection(name: str, split: str, num: int | None = None, cfg: Config | None = None,
                   image_size: int | None = None, root=None, verbose: bool = False, draws: int = 1) -> dict:
    """Images with ground-truth boxes for A5 and the detection papers, one format for every dataset.

    ``name``:

    * ``"detection_scenes"``: generated offline by :func:`helpers.datasets.synthetic.detection_scenes`
      (tinted Fashion-MNIST items on a textured canvas, 10 classes, 1-6 items per image, exact
      boxes; splits ``"train"`` / ``"val"`` / ``"test"`` of 10,000 / 1,000 / 1,000 scenes, always
      the same: seed 0).  ``image_size`` is the canvas size (default 96): scenes are generated at
      that size, not resized.  Also holds ``"items"`` and ``"tints"`` (what was pasted).
      ``draws > 1`` appends more independent draws of the split (draw ``k`` made with seed ``k``):
      more scenes, from the same Fashion-MNIST items, so extra training scenes never show a val
      or test item; draw 0 is the standard split.
    * ``"voc2007"``: PASCAL VOC 2007 in its ``VOCdevkit`` layout under ``<cfg.data_dir>`` (or
      ``root`` = the ``VOC2007`` folder), splits ``"train"``, ``"val"``, ``"trainval"`` (5,011 images)
      and ``"test"`` (4,952), 20 classes; downloaded with torchvision unless offline.  Images are
      squashed to ``image_size`` squares (default 224), boxes scaled with them
      (:func:`load_voc_detection`).

    Boxes are ``(x1, y1, x2, y2)`` in continuous pixel coordinates of the returned images
    (0-based; a box covering pixel columns 0..2 is ``[0, 3]``), the convention of
    ``A5_detection.common``.

    Args:
        split: see above.
        num: keep the split's first ``num`` images (``None``: all).
        cfg: data folder and offline flag; default :func:`helpers.config.get_config`.
        image_size: side of the square images.
        root, verbose: VOC only: the ``VOC2007`` folder; a progress bar while reading images.
        draws: detection scenes only: how many draws of the split to concatenate (``num`` scenes of
            each); the image ids of draw ``k >= 1`` read ``"<split>-d<k>-<index>"``.

    Returns:
        dict with
            ``"images"``: uint8 ``(N, 3, S, S)``;
            ``"gt_boxes"``: float32 ``(N, M, 5)`` rows ``(x1, y1, x2, y2, class)``, padded with rows of ``-1``
            (``M``: 6 for the scenes, the most objects of any returned image for VOC);
            ``"difficult"``: bool ``(N, M)`` (VOC's flag; False for padding and for every scene object);
            ``"class_names"``: list of the ``C`` class names (class id = index);
            ``"image_ids"``: ``N`` strings (VOC: ``"000005"``...);
            ``"orig_sizes"``: int64 ``(N, 2)`` ``(height, width)`` of the images before resizing.
        :func:`gt_boxes_to_targets` turns ``gt_boxes`` / ``difficult`` into the per-image dicts of
        ``A5_detection.common.evaluate_detections``; :class:`DetectionDataset` feeds a DataLoader.

    Raises:
        DatasetNotFoundError: VOC files missing and offline, or the download failed (says where to put
            the files, a mirror, and that ``DL4CV_DATASET=detection_scenes`` works offline).
        ValueError: unknown name or split, bad sizes.
    """
    if name not in DETECTION_DATASETS:
        raise ValueError(f"unknown detection dataset {name!r}; known: {', '.join(DETECTION_DATASETS)}")
    cfg = get_config() if cfg is None else cfg
    check_int(draws, "draws", minimum=1)
    if name == "voc2007":
        if draws != 1:
            raise ValueError(f"draws applies to generated scenes only (VOC is one fixed set of images), got {draws}")
        return load_voc_detection(split, num=num, cfg=cfg, image_size=image_size, root=root, verbose=verbose)
    if split not in SCENE_DETECTION_SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SCENE_DETECTION_SPLITS))} for "
                         f"detection_scenes, got {split!r}")
    canvas_size = synthetic.DETECTION_CANVAS_SIZE if image_size is None else image_size
    parts = [synthetic.detection_scenes(split, num=num, seed=k, canvas_size=canvas_size, cfg=cfg) for k in range(draws)]
    for k, part in enumerate(parts[1:], start=1):
        part["image_ids"] = [f"{split}-d{k}-{i:05d}" for i in range(len(part["image_ids"]))]
    return _concatenate_detection(parts)


def _concatenate_detection(parts: list[dict]) -> dict:
    """One :func:`load_detection` dict from several of the same dataset: tensors and lists end to end."""
    if len(parts) == 1:
        return parts[0]
    out = {"class_names": parts[0]["class_names"]}
    for key, value in parts[0].items():
        if isinstance(value, torch.Tensor):
            out[key] = torch.cat([part[key] for part in parts])
        elif key != "class_names":
            out[key] = [x for part in parts for x in part[key]]
    return out


def _check_gt_boxes(gt_boxes, difficult) -> torch.Tensor:
    """The ``difficult`` flags to use (all False when ``None``), after checking both tensors."""
    check_gt_boxes(gt_boxes)
    if difficult is None:
        return torch.zeros(gt_boxes.shape[:2], dtype=torch.bool, device=gt_boxes.device)
    if not isinstance(difficult, torch.Tensor) or difficult.dtype != torch.bool \
            or difficult.shape != gt_boxes.shape[:2]:
        got = f"{difficult.dtype} {tuple(difficult.shape)}" if isinstance(difficult, torch.Tensor) \
            else type(difficult).__name__
        raise ValueError(f"difficult must be a bool tensor of shape {tuple(gt_boxes.shape[:2])}, got {got}")
    return difficult


def gt_boxes_to_targets(gt_boxes: torch.Tensor, difficult: torch.Tensor | None = None) -> list[dict]:
    """Padded ground truth ``(N, M, 5)`` -> one dict per image, padding rows (class ``-1``) dropped.

    Args:
        gt_boxes: float ``(N, M, 5)`` rows ``(x1, y1, x2, y2, class)``, padding rows all ``-1``.
        difficult: bool ``(N, M)`` or ``None`` (no box difficult).

    Returns:
        ``N`` dicts ``{"boxes": float32 (K_i, 4), "labels": int64 (K_i,), "difficult": bool (K_i,)}``:
        the ground truths of ``A5_detection.common.evaluate_detections``.
    """
    difficult = _check_gt_boxes(gt_boxes, difficult)
    targets = []
    for boxes, flags in zip(gt_boxes, difficult, strict=True):
        real = boxes[:, 4] >= 0
        targets.append({"boxes": boxes[real, :4].to(torch.float32), "labels": boxes[real, 4].to(torch.int64),
                        "difficult": flags[real].clone()})
    return targets


class DetectionDataset(Dataset):
    """A :func:`load_detection` result as a ``Dataset`` of ``(image, gt_boxes)`` pairs.

    ``image``: float32 ``(3, S, S)`` in ``[0, 1]``; ``gt_boxes``: float32 ``(M, 5)`` (padded with
    ``-1`` rows), so the default collate of a ``DataLoader`` gives the course's batch format
    ``(B, 3, S, S)`` and ``(B, M, 5)``.  With ``flip_prob > 0`` an item is mirrored left-right
    with that probability (drawn from torch's global generator), boxes with it:
    ``x1, x2 -> S - x2, S - x1``.
    """

    def __init__(self, data: dict, flip_prob: float = 0.0):
        for key in ("images", "gt_boxes"):
            if key not in data:
                raise ValueError(f"data must be a load_detection() dict with 'images' and 'gt_boxes', missing {key!r}")
        images, gt_boxes = data["images"], data["gt_boxes"]
        _check_gt_boxes(gt_boxes, None)
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] != gt_boxes.shape[0]:
            raise ValueError(f"images must be (N, C, H, W) with N = {gt_boxes.shape[0]} (as gt_boxes), got "
                             f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must lie in [0, 1], got {flip_prob}")
        self.images, self.gt_boxes, self.flip_prob = images, gt_boxes, flip_prob

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        image = image.to(torch.float32) / 255.0 if image.dtype == torch.uint8 else image.to(torch.float32)
        boxes = self.gt_boxes[index].clone()
        if self.flip_prob > 0 and float(torch.rand(())) < self.flip_prob:
            image = image.flip(-1)
            width = image.shape[-1]
            real = boxes[:, 4] >= 0
            boxes[real, 0], boxes[real, 2] = width - boxes[real, 2], width - boxes[real, 0]
        return image, boxes
