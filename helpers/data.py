"""Real datasets: CIFAR-10, MNIST and Fashion-MNIST (classification); captions (COCO or generated);
detection (PASCAL VOC 2007 or generated).

Every loader returns ``(x_train, y_train, x_test, y_test)``:

* ``x_*``: ``float32`` tensors ``(N, C, H, W)`` with values in ``[0, 1]``
  (CIFAR-10: ``(N, 3, 32, 32)``; MNIST and Fashion-MNIST: ``(N, 1, 28, 28)``);
* ``y_*``: ``int64`` tensors ``(N,)`` of class indices (see :data:`CLASS_NAMES`).

The files are parsed here, in their published formats (the CIFAR-10 "python
version" pickles and the IDX files of MNIST / Fashion-MNIST, gzipped or not).
They are looked for in the folders torchvision's downloaders produce with
``root=cfg.data_dir``::

    <data_dir>/cifar-10-batches-py/{data_batch_1..5, test_batch}
    <data_dir>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    <data_dir>/FashionMNIST/raw/...   then /usr/share/datasets/fashion-mnist/...

(the last one is where the Debian package ``dataset-fashion-mnist`` puts its
files).  When the files are missing they are downloaded with torchvision, which
verifies checksums, unless ``DL4CV_OFFLINE=1``; otherwise
:class:`DatasetNotFoundError` says where to put them and which dataset works
offline.  A loader never substitutes one dataset for another.

:func:`load_captions` (A4) returns images with tokenised captions, either
generated offline (``"captioned_scenes"``, see :mod:`helpers.synthetic`) or COCO
2017 (``"coco_captions"``, never downloaded: 18 GB), preprocessed once into a
cached ``.pt`` file.

:func:`load_detection` (A5, YOLOv1, DETR) returns images with padded ground-truth
boxes ``(N, M, 5)`` = ``x1, y1, x2, y2, class`` (``-1`` rows pad), either generated
offline (``"detection_scenes"``, see :mod:`helpers.synthetic`) or PASCAL VOC 2007
(``"voc2007"``, the ``VOCdevkit`` layout, parsed by :func:`read_voc_annotation`).
"""

from __future__ import annotations

import functools
import gzip
import math
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from helpers.checks import check_gt_boxes, check_int
from helpers.config import Config, get_config
from helpers.train import DamagedFileError, atomic_save, load_verified

__all__ = [
    "CAPTION_DATASETS",
    "CLASS_NAMES",
    "DATASETS",
    "DETECTION_DATASETS",
    "DatasetNotFoundError",
    "DetectionDataset",
    "VOC_CLASSES",
    "SYSTEM_FASHION_MNIST_DIR",
    "candidate_folders",
    "clear_cache",
    "coco_folder",
    "describe_dataset",
    "download_dataset",
    "find_dataset_folder",
    "gt_boxes_to_targets",
    "load_captions",
    "load_cifar10",
    "load_coco_captions",
    "load_dataset",
    "load_detection",
    "load_fashion_mnist",
    "load_mnist",
    "load_voc_detection",
    "preprocess_dataset",
    "random_flip_and_shift",
    "read_cifar_batch",
    "read_coco_captions",
    "read_idx",
    "read_voc_annotation",
    "read_voc_split",
    "voc_folder",
]

CLASS_NAMES: dict[str, list[str]] = {
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"],
    "mnist": [str(digit) for digit in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}

#: Where ``apt-get install dataset-fashion-mnist`` puts the four IDX files.
SYSTEM_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_FILES = _CIFAR_TRAIN_FILES + ("test_batch",)
_IDX_UBYTE = 0x08  # the only IDX element type these datasets use
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class _Spec:
    """What one dataset looks like on disk and in memory."""

    fmt: str                    # "cifar" or "idx"
    subdir: str                 # folder under cfg.data_dir, as torchvision names it
    files: tuple[str, ...]      # file names expected there (IDX: ".gz" optional)
    image_shape: tuple[int, int, int]
    torchvision_class: str


DATASETS: dict[str, _Spec] = {
    "cifar10": _Spec("cifar", "cifar-10-batches-py", _CIFAR_FILES, (3, 32, 32), "CIFAR10"),
    "mnist": _Spec("idx", "MNIST/raw", _IDX_FILES, (1, 28, 28), "MNIST"),
    "fashion_mnist": _Spec("idx", "FashionMNIST/raw", _IDX_FILES, (1, 28, 28), "FashionMNIST"),
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing and could not (or may not) be downloaded."""


# --------------------------------------------------------------------------- parsers


def _read_maybe_gzipped(path: Path) -> bytes:
    """All bytes of ``path``, decompressed when it starts with the gzip magic."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt gzip data ({exc})") from exc


def read_idx(path) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (the MNIST format), gzipped or not.

    The file holds a magic number ``0x0000 08 NN`` (``08``: unsigned bytes,
    ``NN``: number of dimensions), ``NN`` big-endian uint32 sizes, then the data.

    Returns:
        a writeable ``uint8`` array of shape ``sizes``, e.g. ``(60000, 28, 28)``
        for images or ``(60000,)`` for labels.

    Raises:
        ValueError: bad magic number, unsupported element type, or a data size
            that does not match the header (a truncated or corrupt file).
    """
    path = Path(path)
    raw = _read_maybe_gzipped(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(raw)} bytes)")
    magic_ok = raw[0] == 0 and raw[1] == 0 and raw[2] == _IDX_UBYTE and raw[3] > 0
    if not magic_ok:
        raise ValueError(f"{path}: bad IDX magic number 0x{raw[:4].hex()}; expected 0x000008NN "
                         "(unsigned bytes, NN > 0 dimensions)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header} "
                         f"for {ndim} dimensions)")
    sizes = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(sizes)
    found = len(raw) - header
    if found != expected:
        raise ValueError(f"{path}: IDX header announces shape {sizes} = {expected} bytes of data "
                         f"but the file holds {found} (truncated or corrupt file)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(sizes).copy()


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """Parse one batch of the CIFAR-10 python version (a pickled dict).

    The dict holds ``b"data"``: uint8 ``(N, 3072)``, each row the red, green
    then blue 32x32 planes in row-major order, and ``b"labels"``: N ints.
    Pickles can run code: only load files from a trusted source (torchvision
    checks the archive's MD5 when it downloads it).

    Returns:
        images: uint8 ``(N, 3, 32, 32)``; labels: int64 ``(N,)``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a CIFAR-10 python batch ({exc})") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path}: not a CIFAR-10 python batch (no b'data' / b'labels' entries)")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: b'data' must be uint8 of shape (N, 3072), "
                         f"got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {data.shape[0]} images but labels of shape {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


# --------------------------------------------------------------------------- finding files


def candidate_folders(name: str, cfg: Config | None = None) -> list[Path]:
    """The folders searched for dataset ``name``, in order."""
    spec = _spec(name)
    cfg = get_config() if cfg is None else cfg
    folders = [Path(cfg.data_dir) / spec.subdir]
    if name == "fashion_mnist":
        folders.append(SYSTEM_FASHION_MNIST_DIR)
    return folders


def _file_in(folder: Path, fname: str, fmt: str) -> Path | None:
    """``folder/fname``, or for IDX files its ``.gz`` twin; ``None`` if neither exists."""
    names = (fname, fname + ".gz") if fmt == "idx" else (fname,)
    for candidate in names:
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _complete_files(folder: Path, spec: _Spec) -> tuple[Path, ...] | None:
    """The dataset's files in ``folder`` (order of ``spec.files``), or ``None`` if any is missing."""
    found = tuple(_file_in(folder, fname, spec.fmt) for fname in spec.files)
    return None if any(path is None for path in found) else found


def _find_files(name: str, cfg: Config) -> tuple[Path, ...] | None:
    spec = DATASETS[name]
    for folder in candidate_folders(name, cfg):
        files = _complete_files(folder, spec)
        if files is not None:
            return files
    return None


def find_dataset_folder(name: str, cfg: Config | None = None) -> Path | None:
    """The first folder holding all of dataset ``name``'s files, or ``None`` (nothing is downloaded)."""
    _spec(name)
    files = _find_files(name, get_config() if cfg is None else cfg)
    return None if files is None else files[0].parent


def download_dataset(name: str, cfg: Config) -> None:
    """Download ``name`` into ``cfg.data_dir`` with torchvision (checksum-verified).

    torchvision writes the layout :func:`candidate_folders` searches first.
    Never called when ``cfg.offline`` is true.
    """
    import torchvision.datasets as tvd

    Path(cfg.data_dir).mkdir(parents=True, exist_ok=True)
    dataset_class = getattr(tvd, DATASETS[name].torchvision_class)
    # one call fetches both splits (MNIST: all four files; CIFAR-10: the whole archive)
    dataset_class(root=str(cfg.data_dir), train=True, download=True)


def _not_found(name: str, cfg: Config, reason: str) -> DatasetNotFoundError:
    spec = DATASETS[name]
    suffix = "[.gz]" if spec.fmt == "idx" else ""
    expected = ", ".join(fname + suffix for fname in spec.files)
    looked = "\n".join(f"    {folder}" for folder in candidate_folders(name, cfg))
    fashion_dir = Path(cfg.data_dir) / DATASETS["fashion_mnist"].subdir
    idx_names = ", ".join(fname + ".gz" for fname in _IDX_FILES)
    message = (
        f"dataset {name!r} not found ({reason}).\n"
        f"  Looked in:\n{looked}\n"
        f"  Expected files: {expected}\n"
        "  Remedies:\n"
        f"  1. put those files in {candidate_folders(name, cfg)[0]} "
        "(or set DL4CV_DATA_DIR; with internet, DL4CV_OFFLINE=0 downloads them);\n"
        "  2. use a dataset that works offline: DL4CV_DATASET=fashion_mnist, after "
        "`apt-get install dataset-fashion-mnist` (files in "
        f"{SYSTEM_FASHION_MNIST_DIR}) or after copying {idx_names} to {fashion_dir}."
    )
    return DatasetNotFoundError(message)


def _locate(name: str, cfg: Config) -> tuple[Path, ...]:
    """The dataset's files, downloading them first when missing and allowed."""
    files = _find_files(name, cfg)
    if files is not None:
        return files
    if cfg.offline:
        raise _not_found(name, cfg, "offline: DL4CV_OFFLINE=1 forbids downloading")
    try:
        download_dataset(name, cfg)
    except Exception as exc:
        raise _not_found(name, cfg, f"download failed: {type(exc).__name__}: {exc}") from exc
    files = _find_files(name, cfg)
    if files is None:
        raise _not_found(name, cfg, "download finished but the expected files are still missing")
    return files


# --------------------------------------------------------------------------- parsing + cache


def _check_parsed(name: str, split: str, images: np.ndarray, labels: np.ndarray, where: Path) -> None:
    """Raise ValueError unless images are ``(N, C, H, W)`` of the dataset and labels ``(N,)`` valid."""
    shape = DATASETS[name].image_shape
    if images.shape[1:] != shape:
        raise ValueError(f"{where}: {name} {split} images must have shape (N, C, H, W) = "
                         f"(N, {', '.join(map(str, shape))}), got {images.shape}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"{where}: {images.shape[0]} {split} images but labels of shape {labels.shape}")
    num_classes = len(CLASS_NAMES[name])
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{where}: {split} labels must lie in [0, {num_classes - 1}], "
                         f"got [{labels.min()}, {labels.max()}]")


def _parse_cifar(files: tuple[Path, ...]):
    batches = [read_cifar_batch(path) for path in files[:-1]]
    x_train = np.concatenate([images for images, _ in batches])
    y_train = np.concatenate([labels for _, labels in batches])
    x_test, y_test = read_cifar_batch(files[-1])
    return x_train, y_train, x_test, y_test


def _parse_idx(files: tuple[Path, ...]):
    x_train, y_train, x_test, y_test = (read_idx(path) for path in files)
    # (N, H, W) -> (N, 1, H, W): the IDX datasets are grey-scale
    return x_train[:, None], y_train.astype(np.int64), x_test[:, None], y_test.astype(np.int64)


@functools.lru_cache(maxsize=4)
def _parsed(name: str, files: tuple[Path, ...], stamp: tuple) -> tuple[torch.Tensor, ...]:
    """uint8 images ``(N, C, H, W)`` and int64 labels of both splits, parsed once.

    ``stamp`` (sizes and modification times) makes a rewritten file re-parse.
    """
    parse = _parse_cifar if DATASETS[name].fmt == "cifar" else _parse_idx
    x_train, y_train, x_test, y_test = parse(files)
    folder = files[0].parent
    _check_parsed(name, "train", x_train, y_train, folder)
    _check_parsed(name, "test", x_test, y_test, folder)
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (x_train, y_train, x_test, y_test))


def _stamp(files: tuple[Path, ...]) -> tuple:
    stats = [path.stat() for path in files]
    return tuple((st.st_size, st.st_mtime_ns) for st in stats)


def clear_cache() -> None:
    """Forget every parsed dataset (the next load reads the files again)."""
    _parsed.cache_clear()


# --------------------------------------------------------------------------- public loaders


def _check_count(arg: str, value, available: int) -> int:
    """``value`` (``None`` = all) as a count in ``[1, available]``."""
    if value is None:
        return available
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{arg} must be a positive int or None, got {value!r}")
    if not 1 <= value <= available:
        raise ValueError(f"{arg} must lie in [1, {available}] (the number of examples available), "
                         f"got {value}")
    return int(value)


def _spec(name: str) -> _Spec:
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


def load_dataset(name: str, num_train: int | None = None, num_test: int | None = None,
                 cfg: Config | None = None):
    """Load dataset ``name`` (``"cifar10"``, ``"mnist"`` or ``"fashion_mnist"``).

    Args:
        num_train, num_test: keep the first N examples of each split (``None``: all).
        cfg: where to look and whether downloading is allowed; default ``get_config()``.

    Returns:
        x_train: float32 ``(num_train, C, H, W)`` in ``[0, 1]``; y_train: int64 ``(num_train,)``;
        x_test: float32 ``(num_test, C, H, W)``; y_test: int64 ``(num_test,)``.
        Fresh tensors on every call: callers may modify them.

    Raises:
        DatasetNotFoundError: files missing and offline, or the download failed.
        ValueError: unknown ``name``, bad counts, or corrupt files.
    """
    _spec(name)
    cfg = get_config() if cfg is None else cfg
    files = _locate(name, cfg)
    x_train, y_train, x_test, y_test = _parsed(name, files, _stamp(files))
    n_train = _check_count("num_train", num_train, x_train.shape[0])
    n_test = _check_count("num_test", num_test, x_test.shape[0])
    return (_to_float(x_train[:n_train]), y_train[:n_train].clone(),
            _to_float(x_test[:n_test]), y_test[:n_test].clone())


def _to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> new float32 tensor in ``[0, 1]``."""
    return images.to(torch.float32).div_(255.0)


def load_cifar10(num_train: int | None = None, num_test: int | None = None, cfg: Config | None = None):
    """CIFAR-10: ``(N, 3, 32, 32)`` float32 images in ``[0, 1]``; see :func:`load_dataset`."""
    return load_dataset("cifar10", num_train=num_train, num_test=num_test, cfg=cfg)


def load_mnist(num_train: int | None = None, num_test: int | None = None, cfg: Config | None = None):
    """MNIST: ``(N, 1, 28, 28)`` float32 images in ``[0, 1]``; see :func:`load_dataset`."""
    return load_dataset("mnist", num_train=num_train, num_test=num_test, cfg=cfg)


def load_fashion_mnist(num_train: int | None = None, num_test: int | None = None,
                       cfg: Config | None = None):
    """Fashion-MNIST: ``(N, 1, 28, 28)`` float32 images in ``[0, 1]``; see :func:`load_dataset`."""
    return load_dataset("fashion_mnist", num_train=num_train, num_test=num_test, cfg=cfg)


# --------------------------------------------------------------------------- preprocessing


def _check_pair(x_name: str, y_name: str, x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{x_name} and {y_name} must be torch.Tensors, "
                        f"got {type(x).__name__} and {type(y).__name__}")
    if x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{x_name} must be (N, ...) and {y_name} (N,) with the same N, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")


def preprocess_dataset(x_train, y_train, x_test, y_test, validation_ratio: float = 0.2,
                       flatten: bool = True, bias_trick: bool = False, subtract_mean: bool = True,
                       dtype: torch.dtype = torch.float32, device="cpu") -> dict[str, torch.Tensor]:
    """Split off a validation set, centre, flatten and add a bias column (EECS598 style).

    Args:
        x_train: ``(N, C, H, W)``, y_train: ``(N,)``; x_test: ``(M, C, H, W)``, y_test: ``(M,)``.
        validation_ratio: in ``[0, 1)``; the LAST ``round(validation_ratio * N)``
            training examples become the validation set.
        flatten: reshape images to ``(N, D)`` with ``D = C*H*W``.
        bias_trick: append a column of ones (``D + 1`` columns); needs ``flatten``.
        subtract_mean: subtract the mean image of the remaining training part
            (never of validation or test data) from all three splits.
        dtype, device: of the returned images; labels keep int64 and move to ``device``.

    Returns:
        dict with ``"X_train"``, ``"y_train"``, ``"X_val"``, ``"y_val"``,
        ``"X_test"``, ``"y_test"``.
    """
    _check_pair("x_train", "y_train", x_train, y_train)
    _check_pair("x_test", "y_test", x_test, y_test)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"train and test images differ in shape: {tuple(x_train.shape[1:])} "
                         f"vs {tuple(x_test.shape[1:])}")
    if not 0 <= validation_ratio < 1:
        raise ValueError(f"validation_ratio must lie in [0, 1), got {validation_ratio}")
    if bias_trick and not flatten:
        raise ValueError("bias_trick=True needs flatten=True (the ones column is appended to (N, D))")
    num_val = round(validation_ratio * x_train.shape[0])
    num_training = x_train.shape[0] - num_val
    if num_training < 1:
        raise ValueError(f"validation_ratio={validation_ratio} leaves no training example "
                         f"out of {x_train.shape[0]}")

    x_train = x_train.to(device=device, dtype=dtype)
    x_test = x_test.to(device=device, dtype=dtype)
    splits = {
        "train": (x_train[:num_training], y_train[:num_training]),
        "val": (x_train[num_training:], y_train[num_training:]),
        "test": (x_test, y_test),
    }
    mean = splits["train"][0].mean(dim=0, keepdim=True) if subtract_mean else None
    out = {}
    for split, (x, y) in splits.items():
        x = x - mean if mean is not None else x.clone()
        if flatten:
            x = x.flatten(start_dim=1)
        if bias_trick:
            x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=dtype, device=x.device)], dim=1)
        out[f"X_{split}"] = x
        out[f"y_{split}"] = y.to(device=device, dtype=torch.int64)
    return out


def describe_dataset(x: torch.Tensor, y: torch.Tensor, class_names: list[str]) -> str:
    """One line: count, image shape, dtype, value range and per-class counts.

    Args:
        x: images ``(N, C, H, W)``; y: int64 labels ``(N,)`` in ``[0, len(class_names))``.
    """
    _check_pair("x", "y", x, y)
    counts = torch.bincount(y.cpu().long(), minlength=len(class_names))
    if counts.numel() > len(class_names):
        raise ValueError(f"labels go up to {counts.numel() - 1} but there are {len(class_names)} classes")
    low, high = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
    return (f"{x.shape[0]} images of shape {tuple(x.shape[1:])}, {str(x.dtype).replace('torch.', '')} "
            f"in [{low:.2f}, {high:.2f}], {len(class_names)} classes "
            f"({int(counts.min())} to {int(counts.max())} per class)")


def random_flip_and_shift(X: torch.Tensor, generator: torch.Generator | None = None, flip: bool = True,
                          max_shift: int = 2) -> torch.Tensor:
    """Data augmentation for a batch of images: random horizontal flips and small translations.

    Each image is mirrored left-right with probability 1/2 (when ``flip``) and moved by
    ``dy, dx`` pixels drawn uniformly from ``[-max_shift, max_shift]``; pixels shifted in
    from outside are zeros (for centred data: the mean image's value).  The label of every
    image stays valid for datasets whose classes do not depend on left/right or on the exact
    position (CIFAR-10, Fashion-MNIST; not digits for ``flip``).

    Args:
        X: ``(N, C, H, W)`` images.
        generator: the source of randomness on the CPU (the Solver passes its own, so runs
            repeat and resume exactly); None uses torch's global generator.
        flip, max_shift: what to apply.

    Returns:
        ``(N, C, H, W)``, a new tensor (``X`` is not modified).
    """
    if not isinstance(X, torch.Tensor) or X.dim() != 4 or not X.is_floating_point():
        raise ValueError(f"X must be a floating tensor of images (N, C, H, W), got "
                         f"{tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__}")
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift must be an int >= 0, got {max_shift!r}")
    N, _, H, W = X.shape
    out = X.clone()
    if flip:
        mirrored = (torch.rand(N, generator=generator) < 0.5).to(X.device)   # device: a CPU generator, .to
        out[mirrored] = out[mirrored].flip(-1)
    if max_shift:
        shifts = torch.randint(-max_shift, max_shift + 1, (N, 2), generator=generator).tolist()  # device: ints
        padded = torch.zeros(N, X.shape[1], H + 2 * max_shift, W + 2 * max_shift, dtype=X.dtype, device=X.device)
        padded[:, :, max_shift:max_shift + H, max_shift:max_shift + W] = out
        for i, (dy, dx) in enumerate(shifts):
            top, left = max_shift - dy, max_shift - dx
            out[i] = padded[i, :, top:top + H, left:left + W]
    return out


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

    * ``"captioned_scenes"``: generated offline by :func:`helpers.synthetic.captioned_scenes`
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
    from helpers import synthetic, text

    train = synthetic.scene_texts("train", seed=seed, cfg=cfg)
    return tuple(text.build_vocabulary(train))


def _load_scene_captions(split: str, num, cfg: Config, image_size, max_length: int) -> dict:
    from helpers import synthetic, text

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
    from helpers import text

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


def _read_resized(path: Path, size: int, with_size: bool = False):
    """uint8 ``(3, size, size)``: an image file squashed to a square (bilinear, antialiased).

    With ``with_size``: also the file's own ``(height, width)``.
    """
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
        image.draft("RGB", (2 * size, 2 * size))   # JPEG: decode at a reduced scale, much faster
        image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
    return (pixels, (height, width)) if with_size else pixels


def _coco_split_images(split: str, images: list[tuple[int, str]]) -> list[tuple[int, str]]:
    if split == "train":
        return images
    half = len(images) // 2
    return images[:half] if split == "val" else images[half:]


def _preprocess_coco(root: Path, split: str, num: int | None, image_size: int, max_length: int,
                     idx_to_word: list[str], verbose: bool) -> dict:
    from tqdm.auto import tqdm

    from helpers import text

    source = _COCO_SOURCES[split]
    annotation = _coco_annotation(root, source)
    images, captions = read_coco_captions(annotation)
    images = _coco_split_images(split, images)
    available = len(images)
    count = _check_count("num", num, available)
    chosen = images[:count]
    pixels = np.empty((count, 3, image_size, image_size), dtype=np.uint8)
    for i, (_, file_name) in enumerate(tqdm(chosen, desc=f"COCO {split}", disable=not verbose)):
        path = root / source / file_name
        if not path.is_file():
            raise _coco_not_found(root, f"missing image {source}/{file_name}")
        pixels[i] = _read_resized(path, image_size)
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
        _check_count("num", num, data["images"].shape[0])
    out = _first_images(data, num)
    out["word_to_idx"] = {word: i for i, word in enumerate(idx_to_word)}
    out["idx_to_word"] = list(idx_to_word)
    return out


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
    count = _check_count("num", num, len(ids))
    pixels = np.empty((count, 3, image_size, image_size), dtype=np.uint8)
    targets, orig_sizes = [], []
    for i, image_id in enumerate(tqdm(ids[:count], desc=f"VOC2007 {split}", disable=not verbose)):
        annotation = read_voc_annotation(folder / "Annotations" / f"{image_id}.xml")
        path = folder / "JPEGImages" / (annotation["filename"] or f"{image_id}.jpg")
        if not path.is_file():
            raise _voc_not_found(folder, split, f"missing image JPEGImages/{path.name}")
        pixels[i], (height, width) = _read_resized(path, image_size, with_size=True)
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

    * ``"detection_scenes"``: generated offline by :func:`helpers.synthetic.detection_scenes`
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
    from helpers import synthetic

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
