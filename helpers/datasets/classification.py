"""Classification datasets: CIFAR-10, MNIST and Fashion-MNIST, and their preprocessing.

Every loader returns ``(x_train, y_train, x_test, y_test)``:

* ``x_*``: ``float32`` tensors ``(N, C, H, W)`` with values in ``[0, 1]``
  (CIFAR-10: ``(N, 3, 32, 32)``; MNIST and Fashion-MNIST: ``(N, 1, 28, 28)``);
* ``y_*``: ``int64`` tensors ``(N,)`` of class indices (see :data:`CLASS_NAMES`).

Where the files are found, downloaded and parsed: :mod:`helpers.datasets.files`.
:func:`preprocess_dataset` turns them into EECS 498's ``data_dict``;
:func:`random_flip_and_shift` augments a training batch.
"""

from __future__ import annotations

import torch

from helpers.config import Config, get_config
from helpers.datasets.files import (
    CLASS_NAMES,
    check_count,
    dataset_spec,
    files_stamp,
    locate_files,
    parsed_dataset,
)

__all__ = [
    "CLASS_NAMES",
    "describe_dataset",
    "load_cifar10",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "preprocess_dataset",
    "random_flip_and_shift",
]

# --------------------------------------------------------------------------- public loaders


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
    dataset_spec(name)
    cfg = get_config() if cfg is None else cfg
    files = locate_files(name, cfg)
    x_train, y_train, x_test, y_test = parsed_dataset(name, files, files_stamp(files))
    n_train = check_count("num_train", num_train, x_train.shape[0])
    n_test = check_count("num_test", num_test, x_test.shape[0])
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
