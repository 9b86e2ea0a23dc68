"""Real datasets: CIFAR-10, MNIST and Fashion-MNIST (classification); captions (COCO or generated).

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

from helpers.config import Config, get_config

__all__ = [
    "CAPTION_DATASETS",
    "CLASS_NAMES",
    "DATASETS",
    "DatasetNotFoundError",
    "SYSTEM_FASHION_MNIST_DIR",
    "candidate_folders",
    "clear_cache",
    "coco_folder",
    "describe_dataset",
    "download_dataset",
    "find_dataset_folder",
    "load_captions",
    "load_cifar10",
    "load_coco_captions",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "preprocess_dataset",
    "random_flip_and_shift",
    "read_cifar_batch",
    "read_coco_captions",
    "read_idx",
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
        mirrored = (torch.rand(N, generator=generator) < 0.5).to(X.device)
        out[mirrored] = out[mirrored].flip(-1)
    if max_shift:
        shifts = torch.randint(-max_shift, max_shift + 1, (N, 2), generator=generator).tolist()
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
        return torch.load(path, weights_only=True)
    except Exception:  # a truncated or foreign file: rebuild it
        return None


def _save_cache(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(content, tmp)
    tmp.replace(path)


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


def _read_resized(path: Path, size: int) -> np.ndarray:
    """uint8 ``(3, size, size)``: an image file squashed to a square (bilinear, antialiased)."""
    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (2 * size, 2 * size))   # JPEG: decode at a reduced scale, much faster
        image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


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
