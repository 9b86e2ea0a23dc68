"""Input checks of A2 (``linear_classifier.py`` and ``two_layer_net.py``): one clear message per mistake.

Each function checks the arguments of one function (or family) of the assignment; ``TypeError``
for a wrong kind of value, ``ValueError`` for a wrong shape or range, naming the argument and
what was expected.
"""

from __future__ import annotations

import math
import numbers

import torch

from helpers.checks import check_int, check_labels

PARAM_NAMES = ("W1", "b1", "W2", "b2")

__all__ = ["PARAM_NAMES", "data_dict", "learning_rate_decay", "linear_classifier", "linear_training", "loss_inputs",
           "matrix", "net_inputs", "net_training", "number", "params", "prediction", "reg", "sample",
           "search_data", "same_place"]


# --------------------------------------------------------------------------- linear_classifier.py


def matrix(t, name: str, shape: str) -> torch.Tensor:
    """Raise unless ``t`` is a 2-D floating-point tensor; ``shape`` names the expected one."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape}, got {type(t).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}; convert with .float()")
    return t


def data(X, y, D: int | None = None, num_classes: int | None = None) -> None:
    """Check ``X (N, D)`` and ``y (N,)``; ``D`` and ``num_classes`` come from ``W`` when known."""
    matrix(X, "X", "(N, D)" if D is None else f"(N, {D})")
    if D is not None and X.shape[1] != D:
        raise ValueError(f"X must have shape (N, {D}) to match W of shape ({D}, C), got {tuple(X.shape)}")
    check_labels(y, X.shape[0], num_classes)


def reg(value) -> float:
    """Raise unless ``value`` is a finite real number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"reg must be a real number >= 0, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"reg must be a finite number >= 0, got {value!r}")
    return value


def same_place(W, X, y=None) -> None:
    """Raise unless ``X`` has ``W``'s dtype and ``X`` (and ``y``) live on ``W``'s device."""
    if X.dtype != W.dtype:
        raise TypeError(f"X and W must have the same dtype, got X {X.dtype} and W {W.dtype}; "
                        "convert one with .to(other.dtype)")
    devices = {W.device, X.device} | ({y.device} if y is not None else set())
    if len(devices) > 1:
        raise ValueError(f"W, X and y must be on one device, got {sorted(map(str, devices))}")


def loss_inputs(W, X, y, reg_value) -> None:
    """Check the arguments ``(W, X, y, reg)`` every loss function takes."""
    matrix(W, "W", "(D, C)")
    data(X, y, W.shape[0], W.shape[1])
    same_place(W, X, y)
    if X.shape[0] == 0:
        raise ValueError("X must hold at least one example, got shape (0, D)")
    reg(reg_value)


def sample(X, y, num_train, batch_size) -> None:
    """Check the arguments of ``sample_batch``."""
    check_int(num_train, "num_train", minimum=1)
    check_int(batch_size, "batch_size", minimum=1)
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"X and y must be torch.Tensors, got {type(X).__name__} and {type(y).__name__}")
    if X.dim() < 1 or y.dim() != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (N, D) and y (N,) with the same N, got {tuple(X.shape)} and {tuple(y.shape)}")
    if num_train > X.shape[0]:
        raise ValueError(f"num_train={num_train} exceeds the {X.shape[0]} examples in X")


def learning_rate_decay(value, name: str = "lr_decay") -> float:
    """``value`` after checking it is a real number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not 0 < value <= 1:
        raise ValueError(f"{name} must lie in (0, 1], got {value}")
    return value


def linear_training(W, X, y, learning_rate, reg_value, num_iters, batch_size) -> None:
    """Check the arguments of ``train_linear_classifier`` (``W`` may be ``None``)."""
    matrix(X, "X", "(N, D)")
    check_int(num_iters, "num_iters", minimum=1)
    check_int(batch_size, "batch_size", minimum=1)
    reg(reg_value)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
        raise TypeError(f"learning_rate must be a real number, got {type(learning_rate).__name__}")
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate}")
    if X.shape[0] == 0:
        raise ValueError("X must hold at least one example, got shape (0, D)")
    if W is None:
        data(X, y)
    else:
        matrix(W, "W", f"({X.shape[1]}, C)")
        data(X, y, W.shape[0], W.shape[1])
        same_place(W, X, y)


def prediction(W, X) -> None:
    """Check the arguments of ``predict_linear_classifier``."""
    matrix(W, "W", "(D, C)")
    matrix(X, "X", f"(N, {W.shape[0]})")
    if X.shape[1] != W.shape[0]:
        raise ValueError(f"X must have shape (N, {W.shape[0]}) to match W of shape "
                         f"{tuple(W.shape)}, got {tuple(X.shape)}")


def data_dict(value, hint: str = "") -> dict:
    """Raise unless ``value`` is a dict holding ``X_train``, ``y_train``, ``X_val`` and ``y_val``."""
    if not isinstance(value, dict):
        raise TypeError(f"data_dict must be a dict, got {type(value).__name__}")
    missing = [key for key in ("X_train", "y_train", "X_val", "y_val") if key not in value]
    if missing:
        raise ValueError(f"data_dict is missing {missing}; it needs X_train, y_train, X_val, y_val{hint}")
    return value


def linear_classifier(cls, data_dict_value) -> None:
    """Check the arguments of ``test_one_param_set``: a classifier instance and the data."""
    if isinstance(cls, type):
        raise TypeError(f"cls must be a classifier instance, as in EECS 498: pass {cls.__name__}(), "
                        f"not the class {cls.__name__}")
    if not (callable(getattr(cls, "train", None)) and callable(getattr(cls, "predict", None))):
        raise TypeError(f"cls must be a LinearClassifier instance (LinearSVM() or Softmax()), "
                        f"got {type(cls).__name__}")
    data_dict(data_dict_value)


# --------------------------------------------------------------------------- two_layer_net.py


def number(name: str, value, minimum: float = 0.0, strict: bool = False, maximum: float | None = None) -> float:
    """``float(value)`` after checking it is a number ``>= minimum`` (``>`` if ``strict``) and ``< maximum``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    too_small = value <= minimum if strict else value < minimum
    if math.isnan(value) or too_small or (maximum is not None and value >= maximum):
        bound = f"{'>' if strict else '>='} {minimum:g}"
        if maximum is not None:
            bound += f" and < {maximum:g}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def params(value) -> tuple[int, int, int]:
    """Check ``value`` holds W1 (D, H), b1 (H,), W2 (H, C), b2 (C,) of one float dtype and device.

    Returns ``(D, H, C)``.
    """
    if not isinstance(value, dict):
        raise TypeError(f"params must be a dict with keys {PARAM_NAMES}, got {type(value).__name__}")
    missing = [name for name in PARAM_NAMES if name not in value]
    if missing:
        raise ValueError(f"params is missing {missing}; expected keys {PARAM_NAMES}")
    for name in PARAM_NAMES:
        if not isinstance(value[name], torch.Tensor):
            raise TypeError(f"params[{name!r}] must be a torch.Tensor, got {type(value[name]).__name__}")
        if not value[name].is_floating_point():
            raise TypeError(f"params[{name!r}] must be a floating-point tensor, got {value[name].dtype}")
    W1, W2 = value["W1"], value["W2"]
    if W1.dim() != 2 or W2.dim() != 2:
        raise ValueError(f"W1 must be (D, H) and W2 (H, C), got {tuple(W1.shape)} and {tuple(W2.shape)}")
    D, H = W1.shape
    C = W2.shape[1]
    expected = {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}
    for name, shape in expected.items():
        if tuple(value[name].shape) != shape:
            raise ValueError(f"params[{name!r}] must have shape {shape} to match W1 {tuple(W1.shape)} "
                             f"and W2 {tuple(W2.shape)}, got {tuple(value[name].shape)}")
    for name in PARAM_NAMES[1:]:
        if value[name].dtype != W1.dtype or value[name].device != W1.device:
            raise TypeError(f"params[{name!r}] is {value[name].dtype} on {value[name].device} but W1 is "
                            f"{W1.dtype} on {W1.device}; all parameters must share dtype and device")
    return D, H, C


def inputs(X, D: int, like: torch.Tensor, name: str = "X") -> None:
    """Check ``X`` is ``(N, D)`` with the dtype and device of the weights ``like``."""
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, {D}), got {type(X).__name__}")
    if X.dim() != 2 or X.shape[1] != D:
        raise ValueError(f"{name} must have shape (N, {D}) (one flattened example per row), "
                         f"got {tuple(X.shape)}")
    if X.dtype != like.dtype:
        raise TypeError(f"{name} must have the weights' dtype {like.dtype}, got {X.dtype}; "
                        f"convert with .to({like.dtype})")
    if X.device != like.device:
        raise ValueError(f"{name} is on {X.device} but the weights are on {like.device}")


def net_inputs(params_value, X, y=None, reg_value=0.0) -> float:
    """Check the arguments of ``nn_forward_pass`` / ``nn_forward_backward``; returns ``reg`` as a float."""
    D, _, C = params(params_value)
    inputs(X, D, params_value["W1"])
    reg_value = number("reg", reg_value)
    if y is not None:
        check_labels(y, X.shape[0], C)
        if X.shape[0] == 0:
            raise ValueError("X must hold at least one example to compute a loss")
    return reg_value


def net_training(params_value, X, y, X_val, y_val, learning_rate, learning_rate_decay_value, reg_value,
                 num_iters, batch_size, momentum=0.0) -> None:
    """Check the arguments of ``nn_train``."""
    D, _, C = params(params_value)
    inputs(X, D, params_value["W1"])
    check_labels(y, X.shape[0], C)
    inputs(X_val, D, params_value["W1"], "X_val")
    check_labels(y_val, X_val.shape[0], C, "y_val")
    if X.shape[0] == 0 or X_val.shape[0] == 0:
        raise ValueError(f"X and X_val must each hold at least one example, got {X.shape[0]} and {X_val.shape[0]}")
    number("learning_rate", learning_rate, strict=True)
    number("learning_rate_decay", learning_rate_decay_value, strict=True)
    number("momentum", momentum, maximum=1.0)
    number("reg", reg_value)
    check_int(num_iters, "num_iters", minimum=1)
    check_int(batch_size, "batch_size", minimum=1)


def search_data(value) -> None:
    """Check the ``data_dict`` of ``find_best_net``: flattened ``X_train (N, D)`` and non-empty labels."""
    data_dict(value, hint="; build it with helpers.datasets.preprocess_dataset")
    if not isinstance(value["X_train"], torch.Tensor) or value["X_train"].dim() != 2:
        raise ValueError("data_dict['X_train'] must be a (N, D) tensor: use preprocess_dataset(..., flatten=True)")
    if not isinstance(value["y_train"], torch.Tensor) or value["y_train"].numel() == 0:
        raise ValueError("data_dict['y_train'] must be a non-empty tensor of labels")
