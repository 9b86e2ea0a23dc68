"""Input checks of A6 (GANs and VAEs): each raises a clear TypeError / ValueError naming what was expected.

The solution functions of ``generative_adversarial_networks.py`` and ``variational_autoencoders.py``
call these in one line, so the student's file shows the assignment and not our checking code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from helpers.checks import check_int, check_labels

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


def elbo_args(x_hat, mu, logvar) -> None:
    """``loss_function``'s Gaussian, and as many reconstructions as rows of ``mu``."""
    gaussian(mu, logvar)
    if isinstance(x_hat, torch.Tensor) and x_hat.dim() >= 1 and x_hat.shape[0] != mu.shape[0]:
        raise ValueError(f"x_hat holds {x_hat.shape[0]} images but mu and logvar {mu.shape[0]} rows")


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
