"""Input checks of A3's layers, losses, update rules and models (given code, not part of the assignment).

Each solution function of :mod:`A3_fc_cnn.fully_connected_networks` and
:mod:`A3_fc_cnn.convolutional_networks` calls its checks in one line, so bad input
fails with one clear message: ``TypeError`` for a wrong kind of value,
``ValueError`` for a wrong shape or range, naming the argument and what was expected.
Checks that return something return the cleaned-up values the caller needs
(``stride, pad, H_out, W_out = check_conv(x, w, b, conv_param)``).
"""

from __future__ import annotations

import math

import torch

from helpers.checks import check_int, check_labels

__all__ = [
    "check_batchnorm",
    "check_conv",
    "check_data_dict",
    "check_deep_conv_net",
    "check_dropout_grad",
    "check_dropout_param",
    "check_fc_net",
    "check_float",
    "check_grad",
    "check_images",
    "check_kaiming",
    "check_linear",
    "check_model_images",
    "check_model_input",
    "check_pool",
    "check_same_kind",
    "check_scores_labels",
    "check_spatial_batchnorm",
    "check_three_layer_conv_net",
    "check_two_layer_net",
    "check_update",
    "shape_of",
]


# --------------------------------------------------------------------------- tensors


def shape_of(x) -> str:
    """``x``'s shape as a tuple string, or its type's name when it is not a tensor (for messages)."""
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_float(x, name: str, expected: str) -> None:
    """Raise unless ``x`` is a floating-point tensor; ``expected`` describes its shape."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {expected}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape {expected}, got {x.dtype}; "
                        "convert it with .to(torch.float32) or .double()")


def check_same_kind(name: str, x: torch.Tensor, other_name: str, other: torch.Tensor) -> None:
    """Raise unless the two tensors share dtype and device."""
    if x.dtype != other.dtype or x.device != other.device:
        raise TypeError(f"{name} and {other_name} must share dtype and device, got "
                        f"{x.dtype}/{x.device} and {other.dtype}/{other.device}")


def check_grad(dout, name: str, shape, what: str) -> None:
    """``dout`` must be a floating tensor of shape ``shape`` (the shape of ``what``)."""
    shape = tuple(shape)
    check_float(dout, name, str(shape))
    if tuple(dout.shape) != shape:
        raise ValueError(f"{name} must have the shape of {what}, {shape}, got {shape_of(dout)}")


def check_images(x, name: str = "x", expected: str = "(N, C, H, W)") -> None:
    """``x`` must be a floating ``(N, C, H, W)`` tensor with every size >= 1."""
    check_float(x, name, expected)
    if x.dim() != 4 or min(x.shape) < 1:
        raise ValueError(f"{name} must have shape {expected} with every size >= 1, got {shape_of(x)}")


# --------------------------------------------------------------------------- fully-connected layers


def check_linear(x, w, b) -> int:
    """Check ``Linear.forward``'s ``x (N, d_1, ..., d_k)``, ``w (D, M)``, ``b (M,)``; returns ``D``."""
    check_float(x, "x", "(N, d_1, ..., d_k)")
    check_float(w, "w", "(D, M)")
    check_float(b, "b", "(M,)")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (N, d_1, ..., d_k) with at least 2 dims, got {shape_of(x)}")
    D = math.prod(x.shape[1:])
    if w.dim() != 2 or w.shape[0] != D:
        raise ValueError(f"w must have shape (D, M) with D = d_1*...*d_k = {D} (x is {shape_of(x)}), "
                         f"got {shape_of(w)}")
    if b.shape != (w.shape[1],):
        raise ValueError(f"b must have shape (M,) = ({w.shape[1]},) to match w {shape_of(w)}, got {shape_of(b)}")
    check_same_kind("x", x, "w", w)
    check_same_kind("w", w, "b", b)
    return D


def check_dropout_param(x, dropout_param) -> tuple[float, str]:
    """Check ``Dropout.forward``'s floating ``x`` and ``dropout_param``; returns ``(p, mode)``."""
    check_float(x, "x", "(any shape)")
    if not isinstance(dropout_param, dict) or "p" not in dropout_param or "mode" not in dropout_param:
        raise ValueError("dropout_param must be a dict with keys 'p' (drop probability) and 'mode' "
                         f"('train' or 'test'), got {dropout_param!r}")
    p, mode = dropout_param["p"], dropout_param["mode"]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"dropout_param['p'] is the probability of dropping a unit and must lie in [0, 1], "
                         f"got {p!r}")
    if mode not in ("train", "test"):
        raise ValueError(f"dropout_param['mode'] must be 'train' or 'test', got {mode!r}")
    return float(p), mode


def check_dropout_grad(dout, mask) -> None:
    """``dout`` must be floating, shaped like the train-mode ``mask`` (any shape in test mode: ``mask`` None)."""
    if not isinstance(dout, torch.Tensor) or not dout.is_floating_point():
        raise TypeError(f"dout must be a floating-point tensor, got {type(dout).__name__}")
    if mask is not None:
        check_grad(dout, "dout", mask.shape, "x")


def check_scores_labels(x, y) -> None:
    """``x`` must be ``(N, C)`` floating scores and ``y`` ``(N,)`` integer labels in ``[0, C)``."""
    check_float(x, "x", "(N, C)")
    if x.dim() != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x must hold class scores of shape (N, C) with N, C >= 1, got {shape_of(x)}")
    if isinstance(y, torch.Tensor) and tuple(y.shape) != (x.shape[0],):  # say which x it must match
        raise ValueError(f"y must have shape (N,) = ({x.shape[0]},) to match x {tuple(x.shape)}, "
                         f"got {shape_of(y)}")
    check_labels(y, x.shape[0], x.shape[1])
    if y.device != x.device:
        raise ValueError(f"y must be on x's device {x.device}, got {y.device}")


# --------------------------------------------------------------------------- update rules


# The range of each hyper-parameter an update rule reads: (low, high, low open, high open).
HYPER_RANGES = {"learning_rate": (0.0, math.inf, True, True), "momentum": (0.0, 1.0, False, True),
                "decay_rate": (0.0, 1.0, False, True), "beta1": (0.0, 1.0, False, True),
                "beta2": (0.0, 1.0, False, True), "epsilon": (0.0, math.inf, False, True)}


def check_update(w, dw, config) -> dict:
    """Check an update rule's ``w``, ``dw`` (finite, shaped like ``w``) and ``config``; returns the config
    to use (a new ``{}`` when ``config`` is None)."""
    if not isinstance(w, torch.Tensor) or not isinstance(dw, torch.Tensor):
        raise TypeError(f"w and dw must be tensors, got {type(w).__name__} and {type(dw).__name__}")
    if w.shape != dw.shape:
        raise ValueError(f"dw must have the shape of w, {tuple(w.shape)}, got {tuple(dw.shape)}")
    bad = ~torch.isfinite(dw)
    if bad.any():
        raise FloatingPointError(f"dw holds {int(bad.sum())} NaN or infinite value(s), the first at index "
                                 f"{tuple(int(i) for i in bad.nonzero()[0])}: the update would spread them to "
                                 "every weight. Lower the learning rate, or look for a NaN in the loss")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict of hyper-parameters or None, got {type(config).__name__}")
    for key, (low, high, low_open, high_open) in HYPER_RANGES.items():
        value = config.get(key)
        if value is None:
            continue
        inside = isinstance(value, (int, float)) and not isinstance(value, bool) and \
            (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
        if not inside:
            interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
            raise ValueError(f"config[{key!r}] must be a number in {interval}, got {value!r}")
    return config


# --------------------------------------------------------------------------- fully-connected models


def check_reg(reg) -> float:
    """``reg`` must be a number >= 0; returns it as a float."""
    if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not reg >= 0:
        raise ValueError(f"reg must be a number >= 0, got {reg!r}")
    return float(reg)


def check_dtype(dtype) -> None:
    """``dtype`` must be a floating torch dtype."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch dtype such as torch.float32, got {dtype!r}")


def check_init(weight_scale, dtype) -> None:
    """``weight_scale`` must be a number > 0 and ``dtype`` a floating torch dtype."""
    if isinstance(weight_scale, bool) or not isinstance(weight_scale, (int, float)) or not weight_scale > 0:
        raise ValueError(f"weight_scale (std of the initial weights) must be a number > 0, got {weight_scale!r}")
    check_dtype(dtype)


def check_two_layer_net(input_dim, hidden_dim, num_classes, weight_scale, reg, dtype) -> tuple[int, float]:
    """Check ``TwoLayerNet``'s arguments; returns ``(input_dim, reg)``."""
    check_int(input_dim, "input_dim", minimum=1)
    check_int(hidden_dim, "hidden_dim", minimum=1)
    check_int(num_classes, "num_classes", minimum=1)
    reg = check_reg(reg)
    check_init(weight_scale, dtype)
    return input_dim, reg


def check_fc_net(hidden_dims, input_dim, num_classes, dropout, reg, weight_scale, seed,
                 dtype) -> tuple[int, float]:
    """Check ``FullyConnectedNet``'s arguments; returns ``(input_dim, reg)``."""
    if not isinstance(hidden_dims, (list, tuple)):
        raise TypeError(f"hidden_dims must be a list of positive ints such as [100, 100], got {hidden_dims!r}")
    for i, h in enumerate(hidden_dims):
        check_int(h, f"hidden_dims[{i}]", minimum=1)
    check_int(input_dim, "input_dim", minimum=1)
    check_int(num_classes, "num_classes", minimum=1)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout is the probability of dropping a unit and must lie in [0, 1) (1 would drop "
                         f"every unit: the network could not learn), got {dropout!r}")
    reg = check_reg(reg)
    check_init(weight_scale, dtype)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    return input_dim, reg


def check_model_input(X, input_dim: int) -> None:
    """``X`` must be ``(N, d_1, ..., d_k)`` floating with ``d_1 * ... * d_k == input_dim``."""
    check_float(X, "X", f"(N, d_1, ..., d_k) with d_1*...*d_k = {input_dim}")
    if X.dim() < 2 or math.prod(X.shape[1:]) != input_dim:
        raise ValueError(f"X must have shape (N, d_1, ..., d_k) with d_1*...*d_k = input_dim = {input_dim}, "
                         f"got {shape_of(X)}")


def check_data_dict(data_dict, keys=("X_train", "y_train", "y_val"), images: bool = False) -> None:
    """``data_dict`` must hold tensors under ``keys``; with ``images``, ``X_train`` must be ``(N, C, H, W)``."""
    for key in keys:
        if not isinstance(data_dict, dict) or not isinstance(data_dict.get(key), torch.Tensor):
            raise ValueError(f"data_dict must be a dict holding tensors X_train, y_train, X_val, y_val; "
                             f"{key!r} is missing or not a tensor")
    if images and data_dict["X_train"].dim() != 4:
        raise ValueError(f"data_dict['X_train'] must hold images (N, C, H, W) (preprocess with flatten=False), "
                         f"got {shape_of(data_dict['X_train'])}")


# --------------------------------------------------------------------------- convolution and pooling


def _check_conv_param(conv_param) -> tuple[int, int]:
    """``conv_param`` must be ``{"stride": int >= 1, "pad": int >= 0}``; returns ``(stride, pad)``."""
    if not isinstance(conv_param, dict) or "stride" not in conv_param or "pad" not in conv_param:
        raise ValueError(f"conv_param must be a dict with keys 'stride' (int >= 1) and 'pad' (int >= 0), "
                         f"got {conv_param!r}")
    stride, pad = conv_param["stride"], conv_param["pad"]
    if not _is_int(stride) or stride < 1:
        raise ValueError(f"conv_param['stride'] must be an int >= 1, got {stride!r}")
    if not _is_int(pad) or pad < 0:
        raise ValueError(f"conv_param['pad'] must be an int >= 0 (zeros added on each side), got {pad!r}")
    return stride, pad


def _output_size(what: str, size: int, window: int, pad: int, stride: int, layer: str) -> int:
    """``1 + (size + 2 pad - window) // stride``; raises unless the windows tile ``size + 2 pad`` exactly."""
    span = size + 2 * pad - window
    if span < 0:
        raise ValueError(f"{layer}: the window {what} {window} exceeds the (padded) input {what} {size + 2 * pad}")
    if span % stride:
        raise ValueError(f"{layer}: a window of {what} {window} with stride {stride} and pad {pad} does not tile "
                         f"an input {what} of {size}: ({what} + 2*pad - window) = {span} must be divisible by "
                         f"the stride")
    return 1 + span // stride


def check_conv(x, w, b, conv_param) -> tuple[int, int, int, int]:
    """Check a convolution's inputs; returns ``(stride, pad, H_out, W_out)``."""
    check_images(x, "x", "(N, C, H, W)")
    check_float(w, "w", "(F, C, HH, WW)")
    check_float(b, "b", "(F,)")
    C = x.shape[1]
    if w.dim() != 4 or w.shape[1] != C or min(w.shape) < 1:
        raise ValueError(f"w must have shape (F, C, HH, WW) with C = {C} channels like x {shape_of(x)}, "
                         f"got {shape_of(w)}")
    if b.shape != (w.shape[0],):
        raise ValueError(f"b must have shape (F,) = ({w.shape[0]},) to match w {shape_of(w)}, got {shape_of(b)}")
    check_same_kind("x", x, "w", w)
    check_same_kind("w", w, "b", b)
    stride, pad = _check_conv_param(conv_param)
    H_out = _output_size("height", x.shape[2], w.shape[2], pad, stride, "convolution")
    W_out = _output_size("width", x.shape[3], w.shape[3], pad, stride, "convolution")
    return stride, pad, H_out, W_out


def check_pool(x, pool_param) -> tuple[int, int, int, int, int]:
    """Check a max pool's inputs; returns ``(pool_height, pool_width, stride, H_out, W_out)``."""
    check_images(x, "x", "(N, C, H, W)")
    keys = ("pool_height", "pool_width", "stride")
    if not isinstance(pool_param, dict) or any(k not in pool_param for k in keys):
        raise ValueError(f"pool_param must be a dict with keys 'pool_height', 'pool_width' and 'stride' "
                         f"(ints >= 1), got {pool_param!r}")
    for key in keys:
        if not _is_int(pool_param[key]) or pool_param[key] < 1:
            raise ValueError(f"pool_param[{key!r}] must be an int >= 1, got {pool_param[key]!r}")
    ph, pw, stride = (pool_param[k] for k in keys)
    H_out = _output_size("height", x.shape[2], ph, 0, stride, "max pool")
    W_out = _output_size("width", x.shape[3], pw, 0, stride, "max pool")
    return ph, pw, stride, H_out, W_out


# --------------------------------------------------------------------------- batch normalization


def _running_stat(bn_param: dict, key: str, x: torch.Tensor, fill: float) -> torch.Tensor:
    """``bn_param[key]`` moved to ``x``'s dtype and device, or a new ``(D,)`` tensor of ``fill``."""
    stat = bn_param.get(key)
    if stat is None:
        return torch.full((x.shape[1],), fill, dtype=x.dtype, device=x.device)
    return stat.to(dtype=x.dtype, device=x.device)


def check_batchnorm(x, gamma, beta, bn_param):
    """Check a batch normalization's inputs: ``x (N, D)``, ``gamma, beta (D,)``, ``bn_param``.

    Returns:
        ``(mode, eps, momentum, running_mean, running_var)``: the running statistics are
        ``bn_param``'s moved to ``x``'s dtype and device, or zeros and ones on first use.
    """
    expected = "(N, D)"
    check_float(x, "x", expected)
    if x.dim() != 2 or min(x.shape) < 1:
        raise ValueError(f"x must have shape (N, D) with N, D >= 1, got {shape_of(x)}")
    D = x.shape[1]
    for name, value in (("gamma", gamma), ("beta", beta)):
        check_float(value, name, f"({D},)")
        if value.shape != (D,):
            raise ValueError(f"{name} must have shape ({D},), one value per feature of x {expected}, "
                             f"got {shape_of(value)}")
        check_same_kind("x", x, name, value)
    if not isinstance(bn_param, dict) or bn_param.get("mode") not in ("train", "test"):
        got = bn_param.get("mode") if isinstance(bn_param, dict) else bn_param
        raise ValueError(f"bn_param must be a dict whose 'mode' is 'train' or 'test', got {got!r}")
    mode = bn_param["mode"]
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"bn_param['eps'] must be a number > 0, got {eps!r}")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
        raise ValueError(f"bn_param['momentum'] (the weight of the old running value) must lie in [0, 1], "
                         f"got {momentum!r}")
    for key in ("running_mean", "running_var"):
        stat = bn_param.get(key)
        if stat is not None and (not isinstance(stat, torch.Tensor) or stat.shape != (D,)):
            raise ValueError(f"bn_param[{key!r}] must be a tensor of shape ({D},) like gamma, got {shape_of(stat)}")
    if mode == "train" and x.shape[0] < 2:
        raise ValueError(f"batch normalization in train mode needs at least 2 values per feature to estimate "
                         f"a variance; x {expected} has {x.shape[0]}")
    return (mode, float(eps), float(momentum), _running_stat(bn_param, "running_mean", x, 0.0),
            _running_stat(bn_param, "running_var", x, 1.0))


def check_spatial_batchnorm(x, gamma, beta, bn_param) -> None:
    """Check ``SpatialBatchNorm.forward``'s ``x (N, C, H, W)``, ``gamma, beta (C,)``; the rest is checked by
    :func:`check_batchnorm` on the flattened input."""
    check_images(x)
    N, C, H, W = x.shape
    for name, value in (("gamma", gamma), ("beta", beta)):
        check_float(value, name, f"({C},)")
        if value.shape != (C,):
            raise ValueError(f"{name} must have shape (C,) = ({C},), one value per channel of x "
                             f"{shape_of(x)}, got {shape_of(value)}")
    if isinstance(bn_param, dict) and bn_param.get("mode") == "train" and N * H * W < 2:
        raise ValueError(f"spatial batch normalization in train mode needs at least 2 values per channel "
                         f"(N * H * W) to estimate a variance; x {shape_of(x)} has {N * H * W}")


# --------------------------------------------------------------------------- convolutional models


def check_input_dims(input_dims) -> tuple[int, int, int]:
    """``input_dims`` must be ``(C, H, W)``, three positive ints; returns them as a tuple."""
    if not isinstance(input_dims, (tuple, list, torch.Size)) or len(input_dims) != 3 \
            or not all(_is_int(d) and d >= 1 for d in input_dims):
        raise ValueError(f"input_dims must be (C, H, W), three positive ints, got {input_dims!r}")
    return tuple(int(d) for d in input_dims)


def check_model_images(X, input_dims) -> None:
    """``X`` must be floating ``(N, C, H, W)`` with ``(C, H, W) == input_dims``."""
    C, H, W = input_dims
    expected = f"(N, C, H, W) = (N, {C}, {H}, {W})"
    check_float(X, "X", expected)
    if X.dim() != 4 or tuple(X.shape[1:]) != tuple(input_dims) or X.shape[0] < 1:
        raise ValueError(f"X must have shape {expected} to match the model's input_dims, got {shape_of(X)}")


def check_kaiming(Din, Dout, K, relu, dtype) -> None:
    """Check ``kaiming_initializer``'s arguments."""
    check_int(Din, "Din", minimum=1)
    check_int(Dout, "Dout", minimum=1)
    if K is not None:
        check_int(K, "K", minimum=1)
    if not isinstance(relu, bool):
        raise TypeError(f"relu must be True or False, got {relu!r}")
    check_dtype(dtype)


def check_three_layer_conv_net(input_dims, num_filters, filter_size, hidden_dim, num_classes, weight_scale,
                               reg, dtype) -> tuple[tuple[int, int, int], float]:
    """Check ``ThreeLayerConvNet``'s arguments; returns ``(input_dims, reg)``."""
    input_dims = check_input_dims(input_dims)
    check_int(num_filters, "num_filters", minimum=1)
    check_int(filter_size, "filter_size", minimum=1)
    if filter_size % 2 == 0:
        raise ValueError(f"filter_size must be odd so that padding (filter_size - 1) // 2 keeps H x W, "
                         f"got {filter_size}")
    check_int(hidden_dim, "hidden_dim", minimum=1)
    check_int(num_classes, "num_classes", minimum=1)
    if input_dims[1] % 2 or input_dims[2] % 2:
        raise ValueError(f"input_dims (C, H, W) needs even H and W for the 2x2 max pool, got {input_dims}")
    reg = check_reg(reg)
    check_init(weight_scale, dtype)
    return input_dims, reg


def check_deep_conv_net(input_dims, num_filters, max_pools, batchnorm, num_classes, weight_scale, reg,
                        weight_initializer, dtype) -> tuple[tuple[int, int, int], list[int], float]:
    """Check ``DeepConvNet``'s arguments; returns ``(input_dims, sorted max_pools, reg)``.

    Every 2x2 pool halves the height and width, which must then be even.
    """
    input_dims = check_input_dims(input_dims)
    if not isinstance(num_filters, (list, tuple)):
        raise TypeError(f"num_filters must be a list of positive ints such as [8, 8], got {num_filters!r}")
    for i, f in enumerate(num_filters):
        check_int(f, f"num_filters[{i}]", minimum=1)
    if not isinstance(max_pools, (list, tuple)):
        raise TypeError(f"max_pools must be a list of conv layer indices such as [0, 1], got {max_pools!r}")
    for i in max_pools:
        if not _is_int(i) or not 0 <= i < len(num_filters):
            raise ValueError(f"max_pools holds indices of conv layers in [0, {len(num_filters)}) "
                             f"(len(num_filters) = {len(num_filters)}), got {i!r}")
    if len(set(max_pools)) != len(max_pools):
        raise ValueError(f"max_pools must name each conv layer at most once, got {list(max_pools)}")
    if not isinstance(batchnorm, bool):
        raise TypeError(f"batchnorm must be True or False, got {batchnorm!r}")
    check_int(num_classes, "num_classes", minimum=1)
    if weight_scale != "kaiming" and (isinstance(weight_scale, bool) or not isinstance(weight_scale, (int, float))
                                      or not weight_scale > 0):
        raise ValueError(f"weight_scale (std of the initial weights) must be a number > 0 or 'kaiming', "
                         f"got {weight_scale!r}")
    reg = check_reg(reg)
    check_dtype(dtype)
    if weight_initializer is not None and not callable(weight_initializer):
        raise TypeError(f"weight_initializer must be None or a function like kaiming_initializer, "
                        f"got {weight_initializer!r}")
    max_pools = sorted(max_pools)
    _, H, W = input_dims
    for before, i in enumerate(max_pools):  # earlier pools (all even so far) halved H and W `before` times
        h, w = H >> before, W >> before
        if h % 2 or w % 2:
            raise ValueError(f"input_dims {input_dims} is too small or not divisible enough for max_pools "
                             f"{max_pools}: the 2x2 pool after conv layer {i} needs an even height and "
                             f"width but gets {h} x {w}; H and W must be divisible by "
                             f"2 ** len(max_pools) = {1 << len(max_pools)}")
    return input_dims, max_pools, reg
