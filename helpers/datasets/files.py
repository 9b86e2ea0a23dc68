"""Dataset files: their formats, where they are looked for, downloads, and the parse cache.

The classification datasets (CIFAR-10, MNIST, Fashion-MNIST) are parsed here, in
their published formats (the CIFAR-10 "python version" pickles and the IDX files
of MNIST / Fashion-MNIST, gzipped or not).  They are looked for in the folders
torchvision's downloaders produce with ``root=cfg.data_dir``::

    <data_dir>/cifar-10-batches-py/{data_batch_1..5, test_batch}
    <data_dir>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    <data_dir>/FashionMNIST/raw/...   then /usr/share/datasets/fashion-mnist/...

(the last one is where the Debian package ``dataset-fashion-mnist`` puts its
files).  When the files are missing they are downloaded with torchvision, which
verifies checksums, unless ``DL4CV_OFFLINE=1``; otherwise
:class:`DatasetNotFoundError` says where to put them and which dataset works
offline.  A loader never substitutes one dataset for another.

Also here, for the other modules of :mod:`helpers.datasets`: :func:`check_count`
(how many examples to keep) and :func:`read_resized` (an image file as a square
uint8 array, for COCO and VOC).
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
    "CLASS_NAMES",
    "DATASETS",
    "DatasetNotFoundError",
    "SYSTEM_FASHION_MNIST_DIR",
    "candidate_folders",
    "check_count",
    "clear_cache",
    "dataset_spec",
    "download_dataset",
    "files_stamp",
    "find_dataset_folder",
    "locate_files",
    "parsed_dataset",
    "read_cifar_batch",
    "read_idx",
    "read_resized",
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
    spec = dataset_spec(name)
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
    dataset_spec(name)
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


def locate_files(name: str, cfg: Config) -> tuple[Path, ...]:
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
def parsed_dataset(name: str, files: tuple[Path, ...], stamp: tuple) -> tuple[torch.Tensor, ...]:
    """uint8 images ``(N, C, H, W)`` and int64 labels of both splits, parsed once.

    ``stamp`` (sizes and modification times) makes a rewritten file re-parse.
    """
    parse = _parse_cifar if DATASETS[name].fmt == "cifar" else _parse_idx
    x_train, y_train, x_test, y_test = parse(files)
    folder = files[0].parent
    _check_parsed(name, "train", x_train, y_train, folder)
    _check_parsed(name, "test", x_test, y_test, folder)
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (x_train, y_train, x_test, y_test))


def files_stamp(files: tuple[Path, ...]) -> tuple:
    stats = [path.stat() for path in files]
    return tuple((st.st_size, st.st_mtime_ns) for st in stats)


def clear_cache() -> None:
    """Forget every parsed dataset (the next load reads the files again)."""
    parsed_dataset.cache_clear()


# --------------------------------------------------------------------------- shared by the loaders


def check_count(arg: str, value, available: int) -> int:
    """``value`` (``None`` = all) as a count in ``[1, available]``."""
    if value is None:
        return available
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{arg} must be a positive int or None, got {value!r}")
    if not 1 <= value <= available:
        raise ValueError(f"{arg} must lie in [1, {available}] (the number of examples available), "
                         f"got {value}")
    return int(value)


def dataset_spec(name: str) -> _Spec:
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


def read_resized(path: Path, size: int, with_size: bool = False):
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
