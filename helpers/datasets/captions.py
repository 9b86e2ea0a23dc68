"""Image-captioning datasets for A4: COCO 2017 captions or generated captioned scenes.

:func:`load_captions` returns images with tokenised captions, either generated
offline (``"captioned_scenes"``, see :mod:`helpers.datasets.synthetic`) or COCO
2017 (``"coco_captions"``, never downloaded: 18 GB), preprocessed once into a
cached ``.pt`` file (checksummed: a damaged cache is rebuilt).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from helpers import text
from helpers.config import Config, get_config
from helpers.datasets import synthetic
from helpers.datasets.files import DatasetNotFoundError, check_count, read_resized
from helpers.train import DamagedFileError, atomic_save, load_verified

__all__ = [
    "CAPTION_DATASETS",
    "CAPTION_MAX_LENGTH",
    "CAPTION_SPLITS",
    "COCO_IMAGE_SIZE",
    "COCO_MIN_COUNT",
    "coco_folder",
    "load_captions",
    "load_coco_captions",
    "read_coco_captions",
]

# --------------------------------------------------------------------------- captions (A4)

#: image-captioning datasets of :func:`load_captions`
CAPTION_DATASETS = ("captioned_scenes", "coco_captions")
CAPTION_SPLITS = ("train", "val", "test")
CAPTION_MAX_LENGTH = 16          # words kept per caption (encoded rows hold max_length + 2 tokens)
COCO_IMAGE_SIZE = 112            # default side of the resized COCO images
COCO_MIN_COUNT = 5               # a word enters the COCO vocabulary after this many train captions
_COCO_SOURCES = {"train": "train2017", "val": "val2017", "test": "val2017"}
_COCO_URL = "https://cocodataset.org/#download"


def load_captions(name: str, split: str, num: int | None = None, cfg: Config | None = None,
                  image_size: int | None = None, root=None, max_length: int = CAPTION_MAX_LENGTH,
                  min_count: int = COCO_MIN_COUNT, verbose: bool = False) -> dict:
    """Images with tokenised captions for A4 captioning.

    ``name``:

    * ``"captioned_scenes"``: generated offline by :func:`helpers.datasets.synthetic.captioned_scenes`
      (Fashion-MNIST items on a 64x64 canvas, one caption per image; 20,000 / 2,000 / 2,000 scenes);
      the result also holds ``"objects"`` (what was pasted where).
    * ``"coco_captions"``: COCO 2017 captions read from ``root`` (default ``<cfg.data_dir>/coco``):
      train = ``train2017``, val / test = the first / second half of ``val2017`` by image id;
      about 5 captions per image.  Never downloaded (18 GB); preprocessed once into a cached
      ``.pt`` file (see :func:`load_coco_captions`).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num: keep the split's first ``num`` images (``None``: all).
        cfg: data folder, offline flag; default :func:`helpers.config.get_config`.
        image_size: side of the square images (default 64 for scenes, 112 for COCO).
        root: COCO only: the folder holding ``annotations/`` and the image folders.
        max_length: captions are cut to this many words.
        min_count: COCO only: a word needs this many train captions to enter the vocabulary.
        verbose: show progress while COCO is preprocessed.

    Returns:
        dict with ``"images"``: uint8 ``(N, 3, S, S)``; ``"captions"``: int64 ``(M, max_length + 2)``
        ``<START> w1 .. <END> <NULL>..``; ``"image_index"``: int64 ``(M,)`` image of each caption;
        ``"texts"``: the ``M`` caption strings; ``"word_to_idx"`` / ``"idx_to_word"``: the vocabulary,
        built from the train split and the same for every split.

    Raises:
        DatasetNotFoundError: COCO files missing (says where to put them and what works offline).
        ValueError: unknown name or split, bad sizes.
    """
    if name not in CAPTION_DATASETS:
        raise ValueError(f"unknown captioning dataset {name!r}; known: {', '.join(CAPTION_DATASETS)}")
    if split not in CAPTION_SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, CAPTION_SPLITS))}, got {split!r}")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be an int >= 1, got {max_length!r}")
    cfg = get_config() if cfg is None else cfg
    if name == "captioned_scenes":
        return _load_scene_captions(split, num, cfg, image_size, max_length)
    return load_coco_captions(split, num=num, cfg=cfg, image_size=image_size, root=root, max_length=max_length,
                              min_count=min_count, verbose=verbose)


@functools.lru_cache(maxsize=2)
def _scene_vocabulary(seed: int, cfg: Config) -> tuple[str, ...]:
    """``idx_to_word`` of the generated scenes, built from every train caption."""
    train = synthetic.scene_texts("train", seed=seed, cfg=cfg)
    return tuple(text.build_vocabulary(train))


def _load_scene_captions(split: str, num, cfg: Config, image_size, max_length: int) -> dict:
    seed = 0  # the generated dataset is fixed; DL4CV_SEED only changes training
    scenes = synthetic.captioned_scenes(split, num=num, seed=seed, image_size=image_size, cfg=cfg)
    idx_to_word = list(_scene_vocabulary(seed, cfg))
    word_to_idx = {word: i for i, word in enumerate(idx_to_word)}
    texts = scenes.pop("texts")
    return {
        "images": scenes.pop("images"),
        "captions": text.encode_captions(texts, word_to_idx, max_length),
        "image_index": torch.arange(len(texts)),
        "texts": texts,
        "word_to_idx": word_to_idx,
        "idx_to_word": idx_to_word,
        **scenes,
    }


# ---- COCO captions


def coco_folder(cfg: Config | None = None, root=None) -> Path:
    """Where COCO is looked for: ``root`` if given, else ``<cfg.data_dir>/coco``."""
    if root is not None:
        return Path(root).expanduser()
    return Path((get_config() if cfg is None else cfg).data_dir) / "coco"


def _coco_not_found(root: Path, reason: str) -> DatasetNotFoundError:
    message = (
        f"dataset 'coco_captions' not found ({reason}).\n"
        f"  Looked in: {root}\n"
        "  Expected: annotations/captions_train2017.json, annotations/captions_val2017.json,\n"
        "            train2017/*.jpg, val2017/*.jpg\n"
        "  Remedies:\n"
        f"  1. download '2017 Train images', '2017 Val images' and '2017 Train/Val annotations' from {_COCO_URL}\n"
        f"     (about 19 GB; never downloaded automatically) and unzip them into {root}\n"
        "     (or set DL4CV_DATA_DIR, or pass root=...);\n"
        "  2. use the generated dataset that works offline: DL4CV_DATASET=captioned_scenes."
    )
    return DatasetNotFoundError(message)


def read_coco_captions(path) -> tuple[list[tuple[int, str]], dict[int, list[str]]]:
    """Parse a COCO caption annotation file (``captions_*2017.json``).

    The file holds ``"images"`` (``id``, ``file_name``, ...) and ``"annotations"``
    (``id``, ``image_id``, ``caption``).

    Returns:
        images: ``(image_id, file_name)`` of every image with at least one caption, by increasing id;
        captions: ``image_id -> captions`` in increasing annotation id.

    Raises:
        ValueError: not a caption file, or a caption of an image the file does not list.
    """
    import json

    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            content = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(content, dict) or not isinstance(content.get("images"), list) \
            or not isinstance(content.get("annotations"), list):
        raise ValueError(f"{path}: not a COCO caption file (needs 'images' and 'annotations' lists)")
    try:
        files = {int(image["id"]): str(image["file_name"]) for image in content["images"]}
        annotations = sorted((int(a["image_id"]), int(a.get("id", 0)), str(a["caption"]))
                             for a in content["annotations"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: malformed entry ({type(exc).__name__}: {exc}); images need 'id' and "
                         "'file_name', annotations 'image_id' and 'caption'") from exc
    captions: dict[int, list[str]] = {}
    for image_id, _, caption in annotations:
        if image_id not in files:
            raise ValueError(f"{path}: a caption refers to image id {image_id}, which 'images' does not list")
        captions.setdefault(image_id, []).append(caption.strip())
    images = [(image_id, files[image_id]) for image_id in sorted(captions)]
    return images, captions


def _coco_paths(root: Path) -> dict[str, Path]:
    return {"train": root / "annotations" / "captions_train2017.json",
            "val": root / "annotations" / "captions_val2017.json"}


def _coco_annotation(root: Path, source: str) -> Path:
    path = _coco_paths(root)["train" if source == "train2017" else "val"]
    if not path.is_file():
        raise _coco_not_found(root, f"missing {path.relative_to(root)}")
    if not (root / source).is_dir():
        raise _coco_not_found(root, f"missing image folder {source}/")
    return path


def _file_stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _cache_dir(cfg: Config) -> Path:
    return Path(cfg.data_dir) / "coco" / "preprocessed"


def _load_cache(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return load_verified(path, "cache")
    except DamagedFileError:  # damaged, truncated or foreign: rebuild it
        return None


def _save_cache(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(content, path)


def _coco_vocabulary(root: Path, cfg: Config, min_count: int) -> list[str]:
    """``idx_to_word`` built from every train2017 caption; cached beside the preprocessed splits."""
    annotation = _coco_annotation(root, "train2017")
    stamp = [str(annotation.resolve())] + [str(v) for v in _file_stamp(annotation)]
    cache = _cache_dir(cfg) / f"coco_vocabulary_min{min_count}.pt"
    cached = _load_cache(cache)
    if cached is not None and cached.get("source") == stamp:
        return list(cached["idx_to_word"])
    _, captions = read_coco_captions(annotation)
    word_to_idx = text.build_vocabulary((c for group in captions.values() for c in group), min_count=min_count)
    idx_to_word = list(word_to_idx)
    _save_cache(cache, {"idx_to_word": idx_to_word, "source": stamp})
    return idx_to_word


def _coco_split_images(split: str, images: list[tuple[int, str]]) -> list[tuple[int, str]]:
    if split == "train":
        return images
    half = len(images) // 2
    return images[:half] if split == "val" else images[half:]


def _preprocess_coco(root: Path, split: str, num: int | None, image_size: int, max_length: int,
                     idx_to_word: list[str], verbose: bool) -> dict:
    from tqdm.auto import tqdm

    source = _COCO_SOURCES[split]
    annotation = _coco_annotation(root, source)
    images, captions = read_coco_captions(annotation)
    images = _coco_split_images(split, images)
    available = len(images)
    count = check_count("num", num, available)
    chosen = images[:count]
    pixels = np.empty((count, 3, image_size, image_size), dtype=np.uint8)
    for i, (_, file_name) in enumerate(tqdm(chosen, desc=f"COCO {split}", disable=not verbose)):
        path = root / source / file_name
        if not path.is_file():
            raise _coco_not_found(root, f"missing image {source}/{file_name}")
        pixels[i] = read_resized(path, image_size)
    texts = [c for image_id, _ in chosen for c in captions[image_id]]
    image_index = [i for i, (image_id, _) in enumerate(chosen) for _ in captions[image_id]]
    word_to_idx = {word: i for i, word in enumerate(idx_to_word)}
    return {
        "images": torch.from_numpy(pixels),
        "captions": text.encode_captions(texts, word_to_idx, max_length),
        "image_index": torch.tensor(image_index, dtype=torch.int64),
        "image_ids": torch.tensor([image_id for image_id, _ in chosen], dtype=torch.int64),
        "texts": texts,
        "idx_to_word": idx_to_word,
        "complete": count == available,
        "source": [str(annotation.resolve())] + [str(v) for v in _file_stamp(annotation)],
    }


def _first_images(data: dict, num: int | None) -> dict:
    """The part of a preprocessed split that covers its first ``num`` images."""
    n_images = data["images"].shape[0]
    num = n_images if num is None else num
    keep = int((data["image_index"] < num).sum())  # captions are ordered by image
    return {
        "images": data["images"][:num],
        "captions": data["captions"][:keep],
        "image_index": data["image_index"][:keep],
        "image_ids": data["image_ids"][:num],
        "texts": list(data["texts"][:keep]),
    }


def load_coco_captions(split: str, num: int | None = None, cfg: Config | None = None, image_size: int | None = None,
                       root=None, max_length: int = CAPTION_MAX_LENGTH, min_count: int = COCO_MIN_COUNT,
                       verbose: bool = False) -> dict:
    """COCO 2017 captions, preprocessed once and cached (see :func:`load_captions` for the result).

    The first call reads the annotation JSON, resizes the split's first ``num``
    images to ``image_size`` (squashed to a square) and tokenises their captions
    with the vocabulary of all train2017 captions (words seen ``min_count`` times;
    the rest become ``<UNK>``); it saves the result under
    ``<cfg.data_dir>/coco/preprocessed/`` (uint8 images, int64 captions, the
    vocabulary; ``torch.load(..., weights_only=True)`` reads it).  Later calls
    asking for no more images reuse that file.  The result also holds
    ``"image_ids"``: int64 ``(N,)`` COCO ids of the images.
    """
    cfg = get_config() if cfg is None else cfg
    folder = coco_folder(cfg, root)
    image_size = COCO_IMAGE_SIZE if image_size is None else image_size
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    if not folder.is_dir():
        raise _coco_not_found(folder, "folder missing")
    idx_to_word = _coco_vocabulary(folder, cfg, min_count)
    annotation = _coco_annotation(folder, _COCO_SOURCES[split])
    stamp = [str(annotation.resolve())] + [str(v) for v in _file_stamp(annotation)]
    cache = _cache_dir(cfg) / f"coco_{split}_{image_size}px_len{max_length}_min{min_count}.pt"
    data = _load_cache(cache)
    usable = (data is not None and data.get("source") == stamp and data.get("idx_to_word") == idx_to_word
              and (data["complete"] or (num is not None and num <= data["images"].shape[0])))
    if not usable:
        data = _preprocess_coco(folder, split, num, image_size, max_length, idx_to_word, verbose)
        _save_cache(cache, data)
    if num is not None:
        check_count("num", num, data["images"].shape[0])
    out = _first_images(data, num)
    out["word_to_idx"] = {word: i for i, word in enumerate(idx_to_word)}
    out["idx_to_word"] = list(idx_to_word)
    return out
