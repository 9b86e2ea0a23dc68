"""Input checks of A6: each raises a clear TypeError / ValueError naming what was expected.

The solution functions of ``generative_adversarial_networks.py``, ``variational_autoencoders.py``,
``network_visualization.py`` and ``style_transfer.py`` call these in one line, so the student's
file shows the assignment and not our checking code.
"""

from __future__ import annotations

import math
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from helpers.checks import check_int, check_labels, check_real

IMAGE_SIZE = 28 * 28  # the GAN's images are flattened 28x28 grey images


def shape_of(x) -> str:
    """``x``'s shape as text, or its type name when it is not a tensor (for error messages)."""
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


# --------------------------------------------------------------------------- GAN


def noise_dim(noise_dim) -> int:
    """The noise dimension: an int >= 1."""
    return check_int(noise_dim, "noise_dim", minimum=1)


def noise_args(batch_size, noise_dim_, dtype) -> None:
    """``sample_noise``'s arguments: two ints >= 1 and a floating-point dtype."""
    check_int(batch_size, "batch_size", minimum=1)
    noise_dim(noise_dim_)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")


def outputs(name: str, x) -> None:
    """``x`` must be a floating tensor of shape (N,) or (N, 1) with N >= 1: one output per image."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N,) or (N, 1), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if not (x.dim() == 1 or (x.dim() == 2 and x.shape[1] == 1)) or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N,) or (N, 1) with N >= 1, one value per image, "
                         f"got {shape_of(x)}")


def output_pair(name_a: str, a, name_b: str, b) -> None:
    """Real and fake outputs: each (N,) or (N, 1), of the same shape, dtype and device."""
    outputs(name_a, a)
    outputs(name_b, b)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape (one value per image of equal-sized "
                         f"real and fake batches), got {shape_of(a)} and {shape_of(b)}")
    if a.dtype != b.dtype or a.device != b.device:
        raise ValueError(f"{name_a} and {name_b} must share dtype and device, got {a.dtype}/{a.device} and "
                         f"{b.dtype}/{b.device}")


def bce_args(logits, targets):
    """``bce_with_logits``'s arguments; returns ``targets`` (a tensor in the dtype of ``logits``, or a number)."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {type(logits).__name__}"
                        + (f" of {logits.dtype}" if isinstance(logits, torch.Tensor) else ""))
    if isinstance(targets, torch.Tensor):
        if targets.shape != logits.shape:
            raise ValueError(f"targets must have the shape of logits {shape_of(logits)}, got {shape_of(targets)}")
        return targets.to(logits.dtype)
    if isinstance(targets, bool) or not isinstance(targets, (int, float)) or not 0 <= targets <= 1:
        raise ValueError(f"targets must be a tensor shaped like logits or a number in [0, 1], got {targets!r}")
    return targets


def module(model, name: str = "model") -> None:
    """``model`` must be a ``torch.nn.Module``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")


def generator_images(x) -> None:
    """Generator outputs: a tensor ``(N, 784)``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != IMAGE_SIZE:
        raise ValueError(f"x must be a tensor of shape (N, {IMAGE_SIZE}), got {shape_of(x)}")


def generate_args(G, num_images, noise_dim_, batch_size, noise) -> None:
    """``generate_images``'s arguments (``num_images`` counts only without ``noise``)."""
    module(G, "G")
    check_int(batch_size, "batch_size", minimum=1)
    noise_dim(noise_dim_)
    if noise is None:
        check_int(num_images, "num_images", minimum=1)
    elif not isinstance(noise, torch.Tensor) or noise.dim() != 2 or noise.shape[1] != noise_dim_:
        raise ValueError(f"noise must be a tensor of shape (N, noise_dim={noise_dim_}), got {shape_of(noise)}")


def gan_args(D, G, D_solver, G_solver, discriminator_loss, generator_loss, noise_size, show_every,
             num_show) -> None:
    """``run_a_gan``'s GAN-specific arguments (helpers.train.train checks the rest: epochs, checkpoint, time)."""
    module(D, "D")
    module(G, "G")
    for name, solver, model in (("D_solver", D_solver, D), ("G_solver", G_solver, G)):
        if not isinstance(solver, torch.optim.Optimizer):
            raise TypeError(f"{name} must be a torch.optim.Optimizer, got {type(solver).__name__}")
        own = {id(p) for p in model.parameters()}
        if any(id(p) not in own for group in solver.param_groups for p in group["params"]):
            raise ValueError(f"{name} must optimize the parameters of {name[0]} only (were D_solver and G_solver "
                             "swapped, or the model re-created after its optimizer?)")
    for name, fn in (("discriminator_loss", discriminator_loss), ("generator_loss", generator_loss)):
        if not callable(fn):
            raise TypeError(f"{name} must be a function of the discriminator's outputs, got {type(fn).__name__}")
    check_int(noise_size, "noise_size", minimum=1)
    check_int(show_every, "show_every", minimum=1)
    check_int(num_show, "num_show", minimum=0)


def real_images(x) -> None:
    """A loader's image batch: floating ``(N, 1, 28, 28)`` or ``(N, 784)`` with N >= 1, values in [0, 1]."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2 or x.shape[0] == 0:
        raise ValueError("the loader must yield floating-point image batches (N, 1, 28, 28) or (N, 784) "
                         f"(alone or first in a tuple), got {shape_of(x)}")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 1:
        raise ValueError(f"real images must lie in [0, 1] (run_a_gan maps them to [-1, 1]), got [{low:.3g}, "
                         f"{high:.3g}]")


def same_images(fake, real) -> None:
    """The generator's images must match the real (flattened) images' shape."""
    if fake.shape != real.shape:
        raise ValueError(f"G's images {tuple(fake.shape)} do not match the real images {tuple(real.shape)} "
                         "(flattened): check the generator's output size and noise_size")


def finite_loss(which: str, loss) -> None:
    """A scalar loss tensor with a finite value; else TypeError / FloatingPointError naming ``which``."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"the {which} loss must be a scalar tensor, got {shape_of(loss)}")
    value = float(loss.detach())
    if value != value or value in (float("inf"), float("-inf")):
        raise FloatingPointError(
            f"the {which} loss is {value}; training stopped (a checkpoint on disk is left as it was). "
            "Check the losses for log(0) or overflow (use the stable form) and the learning rate.")


# --------------------------------------------------------------------------- VAE


def float_tensor(x, name: str, shape_hint: str) -> None:
    """``x`` must be a floating-point tensor (``shape_hint`` names the expected shape)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape_hint}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}; convert with .float()")


def flat_images(x, input_size: int, image_shape: tuple, name: str = "x") -> torch.Tensor:
    """Check ``x`` is ``(N, *image_shape)`` or ``(N, input_size)``; return it as ``(N, input_size)``."""
    hint = f"(N, {', '.join(map(str, image_shape))}) or (N, {input_size})"
    float_tensor(x, name, hint)
    if tuple(x.shape[1:]) not in {tuple(image_shape), (input_size,)}:
        raise ValueError(f"{name} must have shape {hint}, got {tuple(x.shape)}")
    return x.reshape(x.shape[0], input_size)


def latent(z, latent_size: int, name: str = "z") -> None:
    """``z`` must be a floating ``(N, latent_size)`` tensor."""
    float_tensor(z, name, f"(N, {latent_size})")
    if z.dim() != 2 or z.shape[1] != latent_size:
        raise ValueError(f"{name} must have shape (N, {latent_size}) (latent_size={latent_size}), "
                         f"got {tuple(z.shape)}")


def gaussian(mu, logvar) -> None:
    """``mu`` and ``logvar`` must be floating tensors of one shape ``(N, Z)``."""
    float_tensor(mu, "mu", "(N, Z)")
    float_tensor(logvar, "logvar", "(N, Z)")
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must both have shape (N, Z), got {tuple(mu.shape)} "
                         f"and {tuple(logvar.shape)}")


def probabilities(x, name: str, what: str) -> None:
    """Every value of ``x`` in [0, 1] (no NaN)."""
    x = x.detach()
    if x.numel() and (bool(torch.isnan(x).any()) or float(x.min()) < 0 or float(x.max()) > 1):
        raise ValueError(f"{name} must hold {what} in [0, 1], got values from {float(x.min()):.4g} "
                         f"to {float(x.max()):.4g}")


def one_hot_args(labels, num_classes) -> None:
    """``one_hot``'s arguments: ``(N,)`` integer labels in ``[0, num_classes)``."""
    check_int(num_classes, "num_classes", minimum=1)
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor of shape (N,), got {type(labels).__name__}")
    if labels.dim() != 1:
        raise ValueError(f"labels must have shape (N,), got {tuple(labels.shape)}")
    check_labels(labels, labels.shape[0], num_classes, name="labels")


def image_pair(x_hat, x) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstructions and images: as many of each, as many values per image, all in [0, 1].

    Returns both flattened to ``(N, D)``, ``x`` in the dtype of ``x_hat``.
    """
    float_tensor(x_hat, "x_hat", "(N, ...)")
    float_tensor(x, "x", "(N, ...)")
    if x_hat.dim() < 2 or x.shape[0] != x_hat.shape[0] or x[0:1].numel() != x_hat[0:1].numel():
        raise ValueError(f"x_hat and x must hold the same images: (N, ...) with as many values per image, "
                         f"got {tuple(x_hat.shape)} and {tuple(x.shape)}")
    probabilities(x_hat, "x_hat", "pixel probabilities (the decoder ends with a sigmoid)")
    probabilities(x, "x", "pixel intensities")
    p = x_hat.flatten(start_dim=1)
    return p, x.flatten(start_dim=1).to(p.dtype)


def elbo_args(x_hat, mu, logvar, beta=1.0) -> float:
    """``loss_function``'s Gaussian, as many reconstructions as rows of ``mu``; returns the KL weight ``beta``.

    ``beta`` must be a finite real number >= 0 (1: the ELBO itself).
    """
    gaussian(mu, logvar)
    if isinstance(x_hat, torch.Tensor) and x_hat.dim() >= 1 and x_hat.shape[0] != mu.shape[0]:
        raise ValueError(f"x_hat holds {x_hat.shape[0]} images but mu and logvar {mu.shape[0]} rows")
    return kl_weight(beta)


def kl_weight(beta) -> float:
    """The weight of the KL term as a float: a finite real number >= 0."""
    beta = check_real(beta, "beta", low=0.0)
    if math.isinf(beta):
        raise ValueError("beta must be finite: the weight of the KL term, 1 for the ELBO (a beta-VAE uses 2 to 10)")
    return beta


def model_sizes(input_size, latent_size, hidden_size, image_shape) -> tuple:
    """The VAE's sizes: three ints >= 1 and an image shape holding ``input_size`` values."""
    sizes = (check_int(input_size, "input_size", minimum=1), check_int(latent_size, "latent_size", minimum=1),
             check_int(hidden_size, "hidden_size", minimum=1))
    image_shape = tuple(image_shape)
    if math.prod(image_shape) != input_size:
        raise ValueError(f"image_shape {image_shape} holds {math.prod(image_shape)} values but "
                         f"input_size is {input_size}: they must agree (784 for (1, 28, 28))")
    return (*sizes, image_shape)


def class_codes(c, num: int, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """The CVAE's class input as ``(num, num_classes)`` rows, in the dtype and on the device of ``like``.

    ``c`` is either ``(num,)`` integer labels in ``[0, num_classes)`` or already one-hot
    (any float rows), ``(num, num_classes)`` -- EECS 498 passes one-hot vectors.
    """
    if not isinstance(c, torch.Tensor):
        raise TypeError(f"c must be a torch.Tensor: ({num},) integer labels or ({num}, {num_classes}) "
                        f"one-hot rows, got {type(c).__name__}")
    if c.is_floating_point():
        if tuple(c.shape) != (num, num_classes):
            raise ValueError(f"a floating c must be one-hot rows of shape ({num}, {num_classes}), "
                             f"got {tuple(c.shape)}")
        return c.to(dtype=like.dtype, device=like.device)
    check_labels(c, num, num_classes, name="c")
    return F.one_hot(c.to(like.device).long(), num_classes).to(like.dtype)


# --------------------------------------------------------------------------- network visualization

_NUM_CLASSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def images(X, name: str = "X") -> torch.Tensor:
    """``X`` must be a floating ``(N, C, H, W)`` tensor with N >= 1 and finite values."""
    float_tensor(X, name, "(N, C, H, W)")
    if X.dim() != 4 or X.shape[0] == 0:
        raise ValueError(f"{name} must be a batch of images (N, C, H, W) with N >= 1, got {tuple(X.shape)}; "
                         "a single image (C, H, W) becomes a batch with x[None]")
    if not bool(torch.isfinite(X).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return X


def num_classes(model, like: torch.Tensor) -> int:
    """How many scores ``model`` gives per image (one forward pass on ``like[:1]``, then remembered)."""
    module(model)
    if model not in _NUM_CLASSES:
        with torch.no_grad():
            scores = model(like[:1].detach())
        if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
            raise ValueError(f"model must map images (N, C, H, W) to class scores (N, num_classes), got "
                             f"{shape_of(scores)} for one image")
        _NUM_CLASSES[model] = scores.shape[1]
    return _NUM_CLASSES[model]


def images_and_labels(X, y, model) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, C, H, W)``, labels ``(N,)`` in ``[0, num_classes)`` and a classifier; returns ``y`` as int64."""
    X = images(X)
    classes = num_classes(model, X)
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a tensor of {X.shape[0]} integer labels, got {type(y).__name__}")
    check_labels(y, X.shape[0], classes, name="y")
    return X, y.to(device=X.device, dtype=torch.long)


def class_index(target_y, classes: int, name: str = "target_y") -> int:
    """An int class in ``[0, classes)``."""
    check_int(target_y, name, minimum=0)
    if target_y >= classes:
        raise ValueError(f"{name} must be a class in [0, {classes}), got {target_y}")
    return target_y


def attack_args(X, target_y, model, max_iter, learning_rate) -> tuple[torch.Tensor, torch.Tensor]:
    """``make_adversarial_attack``'s arguments; returns ``X`` and the targets as an ``(N,)`` int64 tensor."""
    X = images(X)
    classes = num_classes(model, X)
    check_int(max_iter, "max_iter", minimum=0)
    check_real(learning_rate, "learning_rate", low=0, low_open=True)
    if isinstance(target_y, torch.Tensor) and target_y.dim() == 1:
        check_labels(target_y, X.shape[0], classes, name="target_y")
        return X, target_y.to(device=X.device, dtype=torch.long)
    if isinstance(target_y, torch.Tensor) and target_y.dim() == 0 and not target_y.is_floating_point():
        target_y = int(target_y)
    class_index(target_y, classes)
    return X, torch.full((X.shape[0],), target_y, dtype=torch.long, device=X.device)


def class_visualization_args(img, target_y, model, kwargs: dict) -> tuple[float, float]:
    """``class_visualization_step``'s arguments; returns ``(l2_reg, learning_rate)``."""
    unknown = set(kwargs) - {"l2_reg", "learning_rate"}
    if unknown:
        raise TypeError(f"class_visualization_step takes the keywords l2_reg and learning_rate, got {sorted(unknown)}")
    images(img, "img")
    class_index(target_y, num_classes(model, img))
    l2_reg = check_real(kwargs.get("l2_reg", 1e-3), "l2_reg", low=0)
    learning_rate = check_real(kwargs.get("learning_rate", 25.0), "learning_rate", low=0, low_open=True)
    return l2_reg, learning_rate


def inversion_args(img, target_features, feature_fn, l2_reg, learning_rate) -> tuple[float, float]:
    """``feature_inversion_step``'s arguments; returns ``(l2_reg, learning_rate)``."""
    images(img, "img")
    float_tensor(target_features, "target_features", "(N, ...)")
    if not callable(feature_fn):
        raise TypeError(f"feature_fn must be a function of images, got {type(feature_fn).__name__}")
    if not bool(target_features.detach().square().sum() > 0):
        raise ValueError("target_features must not be all zeros: the loss is relative to their size")
    return (check_real(l2_reg, "l2_reg", low=0),
            check_real(learning_rate, "learning_rate", low=0, low_open=True))


def class_visualization_loop_args(target_y, model, image_shape, num_iterations, max_jitter, blur_every) -> None:
    """``create_class_visualization``'s arguments."""
    module(model)
    if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3:
        raise ValueError(f"image_shape must be (C, H, W), got {image_shape!r}")
    for i, size in enumerate(image_shape):
        check_int(size, f"image_shape[{i}]", minimum=1)
    check_int(target_y, "target_y", minimum=0)
    check_int(num_iterations, "num_iterations", minimum=1)
    check_int(max_jitter, "max_jitter", minimum=0)
    check_int(blur_every, "blur_every", minimum=0)


# --------------------------------------------------------------------------- style transfer


def weight(value, name: str) -> float:
    """A loss weight: a finite real number >= 0."""
    value = check_real(value, name, low=0)
    if value == float("inf"):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def feature_maps(x, name: str) -> None:
    """``x`` must be a floating ``(N, C, H, W)`` tensor."""
    float_tensor(x, name, "(N, C, H, W)")
    if x.dim() != 4:
        raise ValueError(f"{name} must be feature maps (N, C, H, W), got {tuple(x.shape)}")


def content_args(content_weight, current, original) -> float:
    """``content_loss``'s arguments: a weight and two feature maps of one shape; returns the weight."""
    content_weight = weight(content_weight, "content_weight")
    feature_maps(current, "content_current")
    feature_maps(original, "content_original")
    if current.shape != original.shape:
        raise ValueError(f"content_current {tuple(current.shape)} and content_original {tuple(original.shape)} "
                         "must have the same shape: features of one layer for images of one size")
    return content_weight


def style_args(feats, style_layers, style_targets, style_weights) -> None:
    """``style_loss``'s arguments: layer indices into ``feats``, one Gram target and one weight per layer."""
    if not isinstance(feats, (list, tuple)) or not feats:
        raise TypeError("feats must be a non-empty list of feature maps (extract_features), "
                        f"got {type(feats).__name__}")
    if not isinstance(style_layers, (list, tuple)) or not style_layers:
        raise TypeError(f"style_layers must be a non-empty list of layer indices, got {style_layers!r}")
    for layer in style_layers:
        check_int(layer, "each style layer", minimum=0)
        if layer >= len(feats):
            raise ValueError(f"style layer {layer} does not exist: feats has {len(feats)} layers "
                             f"(0 to {len(feats) - 1})")
    for name, values in (("style_targets", style_targets), ("style_weights", style_weights)):
        if not isinstance(values, (list, tuple)) or len(values) != len(style_layers):
            got = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
            raise ValueError(f"{name} must be a list with one entry per style layer ({len(style_layers)}), got {got}")
    for layer, target, w in zip(style_layers, style_targets, style_weights, strict=True):
        weight(w, f"the weight of style layer {layer}")
        feature_maps(feats[layer], f"feats[{layer}]")
        n, c = feats[layer].shape[:2]
        float_tensor(target, f"the style target of layer {layer}", f"({n}, {c}, {c})")
        if tuple(target.shape) != (n, c, c):
            raise ValueError(f"the style target of layer {layer} must be its Gram matrix ({n}, {c}, {c}), "
                             f"got {tuple(target.shape)}: were style_layers and style_targets listed in one order?")


def tv_args(img, tv_weight) -> float:
    """``tv_loss``'s arguments; returns the weight."""
    feature_maps(img, "img")
    return weight(tv_weight, "tv_weight")


def transfer_args(content_image, style_image, cnn, content_layer, style_layers, style_weights, num_iterations,
                  decay_at) -> None:
    """``style_transfer``'s arguments (the losses check the rest)."""
    for name, image in (("content_image", content_image), ("style_image", style_image)):
        images(image, name)
        if image.shape[:2] != (1, 3):
            raise ValueError(f"{name} must be one preprocessed RGB image (1, 3, H, W), got {tuple(image.shape)}")
    if not isinstance(cnn, nn.Sequential):
        raise TypeError(f"cnn must be an nn.Sequential of layers (SqueezeNet's .features), got {type(cnn).__name__}")
    check_int(content_layer, "content_layer", minimum=0)
    if content_layer >= len(cnn):
        raise ValueError(f"content_layer {content_layer} does not exist: cnn has {len(cnn)} layers")
    if not isinstance(style_layers, (list, tuple)) or not style_layers:
        raise TypeError(f"style_layers must be a non-empty list of layer indices, got {style_layers!r}")
    for layer in style_layers:
        check_int(layer, "each style layer", minimum=0)
        if layer >= len(cnn):
            raise ValueError(f"style layer {layer} does not exist: cnn has {len(cnn)} layers (0 to {len(cnn) - 1})")
    if not isinstance(style_weights, (list, tuple)) or len(style_weights) != len(style_layers):
        raise ValueError(f"style_weights must have one weight per style layer ({len(style_layers)}), "
                         f"got {style_weights!r}")
    check_int(num_iterations, "num_iterations", minimum=0)
    check_int(decay_at, "decay_at", minimum=0)
