"""A6: generative adversarial networks -- vanilla, least-squares and deep-convolutional (DC-GAN).

Names follow EECS 498/598 so course material applies unchanged.  Images are
28x28 grey images flattened to 784 values; the generator's last layer is a
``tanh``, so generated images lie in ``[-1, 1]``, and real images (``[0, 1]``
from :func:`helpers.data.load_dataset`) are shown to the discriminator as
``2 x - 1``.

* ``sample_noise(batch_size, noise_dim)``: the generator's input, uniform in ``[-1, 1]``;
* ``discriminator()`` and ``generator(noise_dim)``: fully-connected networks,
  ``(N, 784) -> (N, 1)`` logits and ``(N, noise_dim) -> (N, 784)`` images;
* ``bce_with_logits(logits, targets)``: binary cross-entropy of sigmoid(logits),
  numerically stable for any logit (log-sum-exp trick);
* ``discriminator_loss`` / ``generator_loss``: the GAN losses (Goodfellow et al., 2014,
  with the non-saturating generator loss); ``ls_discriminator_loss`` /
  ``ls_generator_loss``: the least-squares GAN losses (Mao et al., 2017);
* ``get_optimizer(model)``: Adam with learning rate 1e-3 and betas (0.5, 0.999);
* ``build_dc_classifier()`` and ``build_dc_generator(noise_dim)``: the convolutional
  discriminator and generator of DC-GAN (Radford et al., 2016), same input and output shapes;
* ``run_a_gan(...)`` (given): the alternating training loop, with checkpoints that
  resume exactly where a run stopped and sample grids collected along the way;
* ``generate_images``, ``to_images``, ``count_params`` (given): small tools for the notebook.

Shapes: logits and scores are ``(N,)`` or ``(N, 1)``; every loss is the mean over the
batch (a scalar tensor), as in the course.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.checks import check_int
from helpers.train import get_rng_state, load_checkpoint, remaining_batches, save_checkpoint, set_rng_state

__all__ = [
    "IMAGE_SIZE",
    "NOISE_DIM",
    "bce_with_logits",
    "build_dc_classifier",
    "build_dc_generator",
    "count_params",
    "discriminator",
    "discriminator_loss",
    "generate_images",
    "generator",
    "generator_loss",
    "get_optimizer",
    "ls_discriminator_loss",
    "ls_generator_loss",
    "run_a_gan",
    "sample_noise",
    "to_images",
]

NOISE_DIM = 96  # the course's noise dimension
IMAGE_SIZE = 28 * 28  # images are flattened 28x28 grey images


# --------------------------------------------------------------------------- input checks


def _shape(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def _check_outputs(name: str, x) -> None:
    """``x`` must be a floating tensor of shape (N,) or (N, 1) with N >= 1: one output per image."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N,) or (N, 1), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if not (x.dim() == 1 or (x.dim() == 2 and x.shape[1] == 1)) or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N,) or (N, 1) with N >= 1, one value per image, "
                         f"got {_shape(x)}")


def _check_pair(name_a: str, a, name_b: str, b) -> None:
    """Both real and fake outputs must be (N,) or (N, 1), of the same shape, dtype and device."""
    _check_outputs(name_a, a)
    _check_outputs(name_b, b)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape (one value per image of equal-sized "
                         f"real and fake batches), got {_shape(a)} and {_shape(b)}")
    if a.dtype != b.dtype or a.device != b.device:
        raise ValueError(f"{name_a} and {name_b} must share dtype and device, got {a.dtype}/{a.device} and "
                         f"{b.dtype}/{b.device}")


def _check_noise_dim(noise_dim) -> None:
    check_int(noise_dim, "noise_dim", minimum=1)


# --------------------------------------------------------------------------- noise and networks


def sample_noise(batch_size: int, noise_dim: int, dtype: torch.dtype = torch.float, device="cpu",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Random noise, uniform in [-1, 1]: the generator's input.

    Args:
        batch_size, noise_dim: ints >= 1.
        dtype: a floating-point dtype; device: where to create it.
        generator: an optional ``torch.Generator`` (default: the global random state).

    Returns:
        noise: ``(batch_size, noise_dim)`` tensor of ``dtype`` on ``device``.
    """
    check_int(batch_size, "batch_size", minimum=1)
    _check_noise_dim(noise_dim)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    ### BEGIN SOLUTION
    noise = torch.rand(batch_size, noise_dim, dtype=dtype, device=device, generator=generator)
    return 2 * noise - 1
    ### END SOLUTION


def discriminator() -> nn.Sequential:
    """The fully-connected discriminator: images ``(N, 784)`` (or ``(N, 1, 28, 28)``) -> logits ``(N, 1)``.

    Flatten, Linear(784, 256), LeakyReLU(0.01), Linear(256, 256), LeakyReLU(0.01), Linear(256, 1):
    267,009 parameters.
    """
    ### BEGIN SOLUTION
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(IMAGE_SIZE, 256), nn.LeakyReLU(0.01),
        nn.Linear(256, 256), nn.LeakyReLU(0.01),
        nn.Linear(256, 1),
    )
    ### END SOLUTION


def generator(noise_dim: int = NOISE_DIM) -> nn.Sequential:
    """The fully-connected generator: noise ``(N, noise_dim)`` -> images ``(N, 784)`` in [-1, 1].

    Linear(noise_dim, 1024), ReLU, Linear(1024, 1024), ReLU, Linear(1024, 784), Tanh:
    ``1024 * noise_dim + 1,854,224`` parameters (1,952,528 for noise_dim = 96).
    """
    _check_noise_dim(noise_dim)
    ### BEGIN SOLUTION
    return nn.Sequential(
        nn.Linear(noise_dim, 1024), nn.ReLU(),
        nn.Linear(1024, 1024), nn.ReLU(),
        nn.Linear(1024, IMAGE_SIZE), nn.Tanh(),
    )
    ### END SOLUTION


# --------------------------------------------------------------------------- losses


def bce_with_logits(logits: torch.Tensor, targets) -> torch.Tensor:
    """Binary cross-entropy between targets and sigmoid(logits), element by element, stable for any logit.

    ``loss = -[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))] = (1 - y) x + log(1 + e^-x)``.
    Written naively it overflows (``e^-x`` for x = -1000) or takes ``log(0)``; the
    log-sum-exp trick keeps every exponent <= 0: with ``m = max(0, -x)``,
    ``log(1 + e^-x) = log(e^0 + e^-x) = m + log(e^-m + e^(-x-m))``.  Autograd must also get the
    gradient ``sigmoid(x) - y`` right at ``x = 0``, where ``max(x, 0)`` and ``|x|`` have kinks
    (a constant shift ``m``, detached, has no effect on the gradient).

    Args:
        logits: a floating tensor of any shape.
        targets: a tensor of the same shape with values in [0, 1], or a number in [0, 1].

    Returns:
        the losses, same shape as ``logits`` (not reduced).
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {type(logits).__name__}"
                        + (f" of {logits.dtype}" if isinstance(logits, torch.Tensor) else ""))
    if isinstance(targets, torch.Tensor):
        if targets.shape != logits.shape:
            raise ValueError(f"targets must have the shape of logits {_shape(logits)}, got {_shape(targets)}")
        targets = targets.to(logits.dtype)
    elif isinstance(targets, bool) or not isinstance(targets, (int, float)) or not 0 <= targets <= 1:
        raise ValueError(f"targets must be a tensor shaped like logits or a number in [0, 1], got {targets!r}")
    ### BEGIN SOLUTION
    # m is a constant shift (detached): the identity holds for any m, so the gradient stays exact.
    m = (-logits).detach().clamp(min=0)
    log_one_plus_exp_neg = m + torch.log(torch.exp(-m) + torch.exp(-logits - m))
    return (1 - targets) * logits + log_one_plus_exp_neg
    ### END SOLUTION


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss: binary cross-entropy, real images labelled 1 and fake ones 0.

    ``mean_i BCE(logits_real_i, 1) + mean_i BCE(logits_fake_i, 0)``.

    Args:
        logits_real: ``(N,)`` or ``(N, 1)``, the discriminator's logits on real images.
        logits_fake: the same shape, its logits on generated images.

    Returns:
        loss: a scalar tensor.
    """
    _check_pair("logits_real", logits_real, "logits_fake", logits_fake)
    ### BEGIN SOLUTION
    return bce_with_logits(logits_real, 1.0).mean() + bce_with_logits(logits_fake, 0.0).mean()
    ### END SOLUTION


def generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """The generator's (non-saturating) loss: ``mean_i BCE(logits_fake_i, 1)`` = ``-mean log D(G(z))``.

    Args:
        logits_fake: ``(N,)`` or ``(N, 1)``, the discriminator's logits on generated images.

    Returns:
        loss: a scalar tensor.
    """
    _check_outputs("logits_fake", logits_fake)
    ### BEGIN SOLUTION
    return bce_with_logits(logits_fake, 1.0).mean()
    ### END SOLUTION


def ls_discriminator_loss(scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
    """The least-squares discriminator loss: ``1/2 mean (D(x) - 1)^2 + 1/2 mean D(G(z))^2``.

    Args:
        scores_real: ``(N,)`` or ``(N, 1)``, the discriminator's scores on real images.
        scores_fake: the same shape, its scores on generated images.

    Returns:
        loss: a scalar tensor.
    """
    _check_pair("scores_real", scores_real, "scores_fake", scores_fake)
    ### BEGIN SOLUTION
    return 0.5 * ((scores_real - 1) ** 2).mean() + 0.5 * (scores_fake ** 2).mean()
    ### END SOLUTION


def ls_generator_loss(scores_fake: torch.Tensor) -> torch.Tensor:
    """The least-squares generator loss: ``1/2 mean (D(G(z)) - 1)^2``.

    Args:
        scores_fake: ``(N,)`` or ``(N, 1)``, the discriminator's scores on generated images.

    Returns:
        loss: a scalar tensor.
    """
    _check_outputs("scores_fake", scores_fake)
    ### BEGIN SOLUTION
    return 0.5 * ((scores_fake - 1) ** 2).mean()
    ### END SOLUTION


def get_optimizer(model: nn.Module) -> torch.optim.Adam:
    """Adam over ``model``'s parameters with learning rate 1e-3 and betas (0.5, 0.999)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    ### BEGIN SOLUTION
    return torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    ### END SOLUTION


# --------------------------------------------------------------------------- DC-GAN


def build_dc_classifier() -> nn.Sequential:
    """The DC-GAN discriminator: images ``(N, 784)`` -> logits ``(N, 1)``.

    Unflatten to (N, 1, 28, 28); Conv2d(1, 32, 5), LeakyReLU(0.01), MaxPool 2x2;
    Conv2d(32, 64, 5), LeakyReLU(0.01), MaxPool 2x2; Flatten (64 * 4 * 4 = 1024);
    Linear(1024, 1024), LeakyReLU(0.01); Linear(1024, 1): 1,102,721 parameters.
    """
    ### BEGIN SOLUTION
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 32, kernel_size=5), nn.LeakyReLU(0.01), nn.MaxPool2d(2, 2),    # 32 x 12 x 12
        nn.Conv2d(32, 64, kernel_size=5), nn.LeakyReLU(0.01), nn.MaxPool2d(2, 2),   # 64 x 4 x 4
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 1024), nn.LeakyReLU(0.01),
        nn.Linear(1024, 1),
    )
    ### END SOLUTION


def build_dc_generator(noise_dim: int = NOISE_DIM) -> nn.Sequential:
    """The DC-GAN generator: noise ``(N, noise_dim)`` -> images ``(N, 784)`` in [-1, 1].

    Linear(noise_dim, 1024), ReLU, BatchNorm1d; Linear(1024, 7*7*128), ReLU, BatchNorm1d;
    Unflatten to (N, 128, 7, 7); ConvTranspose2d(128, 64, 4, stride 2, pad 1) -> 14x14, ReLU,
    BatchNorm2d; ConvTranspose2d(64, 1, 4, stride 2, pad 1) -> 28x28, Tanh; Flatten:
    ``1024 * noise_dim + 6,576,705`` parameters (6,675,009 for noise_dim = 96).
    """
    _check_noise_dim(noise_dim)
    ### BEGIN SOLUTION
    return nn.Sequential(
        nn.Linear(noise_dim, 1024), nn.ReLU(), nn.BatchNorm1d(1024),
        nn.Linear(1024, 7 * 7 * 128), nn.ReLU(), nn.BatchNorm1d(7 * 7 * 128),
        nn.Unflatten(1, (128, 7, 7)),
        nn.ConvTranspose2d(128, 64, kernel_size=4, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(64),
        nn.ConvTranspose2d(64, 1, kernel_size=4, stride=2, padding=1), nn.Tanh(),
        nn.Flatten(),
    )
    ### END SOLUTION


# --------------------------------------------------------------------------- given tools


def count_params(model: nn.Module) -> int:
    """The number of scalar parameters of ``model`` (BatchNorm's running statistics are buffers, not counted)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters())


def to_images(x: torch.Tensor) -> torch.Tensor:
    """Generator outputs ``(N, 784)`` in [-1, 1] -> images ``(N, 1, 28, 28)`` in [0, 1], ``(x + 1) / 2``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != IMAGE_SIZE:
        raise ValueError(f"x must be a tensor of shape (N, {IMAGE_SIZE}), got {_shape(x)}")
    return ((x.detach() + 1) / 2).clamp(0, 1).reshape(-1, 1, 28, 28)


@torch.no_grad()
def generate_images(G: nn.Module, num_images: int, noise_dim: int = NOISE_DIM, *, batch_size: int = 500,
                    noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Images from ``G`` in eval mode (BatchNorm uses its running statistics): ``(num_images, 1, 28, 28)`` in [0, 1].

    Args:
        G: a generator ``(N, noise_dim) -> (N, 784)`` in [-1, 1]; its train/eval mode is restored.
        num_images: how many (ignored when ``noise`` is given).
        noise: optional ``(num_images, noise_dim)`` inputs; default :func:`sample_noise` with ``generator``
            (a CPU ``torch.Generator``: the noise is drawn on the CPU, then moved to G's device).
        batch_size: images generated at once (bounds the memory).

    Returns:
        images on the CPU, float32.
    """
    if not isinstance(G, nn.Module):
        raise TypeError(f"G must be a torch.nn.Module, got {type(G).__name__}")
    check_int(batch_size, "batch_size", minimum=1)
    _check_noise_dim(noise_dim)
    device = next(G.parameters()).device
    if noise is None:
        check_int(num_images, "num_images", minimum=1)
        noise = sample_noise(num_images, noise_dim, generator=generator)  # on the CPU, like the generator
    elif not isinstance(noise, torch.Tensor) or noise.dim() != 2 or noise.shape[1] != noise_dim:
        raise ValueError(f"noise must be a tensor of shape (N, noise_dim={noise_dim}), got {_shape(noise)}")
    mode = G.training
    G.eval()
    try:
        parts = [to_images(G(chunk.to(device))).float().cpu() for chunk in noise.split(batch_size)]
    finally:
        G.train(mode)
    return torch.cat(parts)


# --------------------------------------------------------------------------- the training loop (given)


@contextmanager
def _frozen(model: nn.Module):
    """Turn off ``requires_grad`` of ``model``'s parameters for a while (no weight gradients to compute)."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def _new_history() -> dict:
    return {"step": [], "d_loss": [], "g_loss": [], "samples": [], "epoch": 0, "global_step": 0,
            "stopped": "running", "time": 0.0}


def _check_gan_args(D, G, D_solver, G_solver, discriminator_loss, generator_loss, num_epochs, noise_size,
                    show_every, num_show, checkpoint, checkpoint_every, time_limit) -> None:
    for name, model in (("D", D), ("G", G)):
        if not isinstance(model, nn.Module):
            raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
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
    check_int(num_epochs, "num_epochs", minimum=1)
    check_int(noise_size, "noise_size", minimum=1)
    check_int(show_every, "show_every", minimum=1)
    check_int(num_show, "num_show", minimum=0)
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a path (str or Path) or None, got {type(checkpoint).__name__}")
    if checkpoint_every is not None:
        check_int(checkpoint_every, "checkpoint_every", minimum=1)
        if checkpoint is None:
            raise ValueError("checkpoint_every needs a checkpoint path, e.g. checkpoint=checkpoint_path('gan')")
    if time_limit is not None and (isinstance(time_limit, bool) or not isinstance(time_limit, (int, float))
                                   or not time_limit >= 0):
        raise ValueError(f"time_limit must be a number of seconds >= 0 or None, got {time_limit!r}")


def _real_images(batch, device) -> torch.Tensor:
    """A loader's batch (images, or a tuple whose first item is images) in [0, 1] -> (N, D) in [-1, 1]."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2 or x.shape[0] == 0:
        raise ValueError("the loader must yield floating-point image batches (N, 1, 28, 28) or (N, 784) "
                         f"(alone or first in a tuple), got {_shape(x)}")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 1:
        raise ValueError(f"real images must lie in [0, 1] (run_a_gan maps them to [-1, 1]), got [{low:.3g}, "
                         f"{high:.3g}]")
    return (2 * x - 1).reshape(x.shape[0], -1).to(device)


class _GanRun:
    """State of one :func:`run_a_gan` call; each method does one part of the loop."""

    def __init__(self, D, G, D_solver, G_solver, d_loss_fn, g_loss_fn, loader, *, num_epochs, noise_size,
                 show_every, num_show, checkpoint, checkpoint_every, time_limit, device, progress, sample_seed):
        self.start = time.monotonic()
        self.D, self.G, self.D_solver, self.G_solver = D, G, D_solver, G_solver
        self.d_loss_fn, self.g_loss_fn, self.loader = d_loss_fn, g_loss_fn, loader
        self.num_epochs, self.noise_size, self.show_every, self.num_show = num_epochs, noise_size, show_every, num_show
        self.path = None if checkpoint is None else Path(checkpoint)
        self.checkpoint_every, self.time_limit, self.show_progress = checkpoint_every, time_limit, progress
        first = next(G.parameters(), None)
        self.device = torch.device(device) if device is not None else (first.device if first is not None
                                                                       else torch.device("cpu"))
        self.fixed_noise = sample_noise(max(num_show, 1), noise_size,
                                        generator=torch.Generator().manual_seed(sample_seed))[:num_show]
        self.history = _new_history()
        self.progress = {"batch": 0, "epoch_rng": None}
        self.time_before = 0.0

    def run(self) -> dict:
        self.D.to(self.device)
        self.G.to(self.device)
        if self.path is not None and self.path.exists():
            self._resume()
        if self.history["epoch"] >= self.num_epochs:
            self.history["stopped"] = "completed"
            return self.history
        self.history["stopped"] = "running"
        modes = self.D.training, self.G.training
        self.D.train()
        self.G.train()
        if self.history["global_step"] == 0 and not self.history["samples"]:
            self._take_samples()
        self.bar = self._progress_bar()
        try:
            while self.history["epoch"] < self.num_epochs and self._run_epoch():
                pass
        finally:
            self.bar.close()
            self.D.train(modes[0])
            self.G.train(modes[1])
        return self.history

    def _progress_bar(self):
        try:
            total = len(self.loader) * self.num_epochs
        except TypeError:
            total = None
        return tqdm(total=total, initial=self.history["global_step"], desc="GAN", unit="step",
                    disable=not self.show_progress, dynamic_ncols=True)

    def _resume(self) -> None:
        state = load_checkpoint(self.path, nn.ModuleDict({"D": self.D, "G": self.G}))
        missing = [key for key in ("D_opt", "G_opt", "history", "progress", "rng") if key not in state]
        if missing:
            raise ValueError(f"{self.path} was not written by run_a_gan (no {missing} entries); "
                             "delete it or pass another checkpoint path")
        for name, solver in (("D_opt", self.D_solver), ("G_opt", self.G_solver)):
            try:
                solver.load_state_dict(state[name])
            except (RuntimeError, ValueError, KeyError) as error:
                raise ValueError(f"checkpoint {self.path} does not fit this optimizer ({name}): {error}\n"
                                 "Delete the checkpoint or pass another path.") from error
        self.history, self.progress = state["history"], state["progress"]
        self.time_before = self.history["time"]
        set_rng_state(state["rng"], self.loader)

    def _run_epoch(self) -> bool:
        for batch in remaining_batches(self.loader, self.progress):  # a resumed epoch replays its shuffle
            self._step(batch)
            step = self.history["global_step"]
            if step % self.show_every == 0:
                self._take_samples()
            if self.checkpoint_every is not None and step % self.checkpoint_every == 0:
                self._save()
            if self._out_of_time():
                return self._stop_for_time()
        if self.progress["batch"] == 0:
            raise ValueError("the loader yielded no batches: check the dataset size, batch_size and drop_last")
        self.history["epoch"] += 1
        self.progress.update(batch=0, epoch_rng=None)
        if self.history["epoch"] >= self.num_epochs:
            self.history["stopped"] = "completed"
            if not self.history["samples"] or self.history["samples"][-1][0] != self.history["global_step"]:
                self._take_samples()
        self._save()
        if self.history["epoch"] < self.num_epochs and self._out_of_time():
            return self._stop_for_time()
        return True

    def _step(self, batch) -> None:
        """One discriminator step, then one generator step, on the same generated batch."""
        real = _real_images(batch, self.device)
        fake = self.G(sample_noise(real.shape[0], self.noise_size, device=self.device))
        if fake.shape != real.shape:
            raise ValueError(f"G's images {tuple(fake.shape)} do not match the real images {tuple(real.shape)} "
                             "(flattened): check the generator's output size and noise_size")
        # Discriminator: real images should score high, generated ones low (G held fixed: detach).
        self.D_solver.zero_grad(set_to_none=True)
        d_loss = self.d_loss_fn(self.D(real), self.D(fake.detach()))
        self._check_finite("discriminator", d_loss)
        d_loss.backward()
        self.D_solver.step()
        # Generator: the updated discriminator should take its images for real (D's weights get no gradient).
        self.G_solver.zero_grad(set_to_none=True)
        with _frozen(self.D):
            g_loss = self.g_loss_fn(self.D(fake))
            self._check_finite("generator", g_loss)
            g_loss.backward()
        self.G_solver.step()
        history = self.history
        history["global_step"] += 1
        self.progress["batch"] += 1
        history["step"].append(history["global_step"])
        history["d_loss"].append(float(d_loss.detach()))
        history["g_loss"].append(float(g_loss.detach()))
        self.bar.update(1)
        self.bar.set_postfix(epoch=history["epoch"] + 1, D=f"{history['d_loss'][-1]:.3f}",
                             G=f"{history['g_loss'][-1]:.3f}", refresh=False)

    def _check_finite(self, which: str, loss) -> None:
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TypeError(f"the {which} loss must be a scalar tensor, got {_shape(loss)}")
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(
                f"the {which} loss is {value} at step {self.history['global_step'] + 1}; training stopped "
                + ("(the last checkpoint was left untouched). " if self.path is not None else ". ")
                + "Check the losses for log(0) or overflow (use the stable form) and the learning rate.")

    def _take_samples(self) -> None:
        if self.num_show:
            images = generate_images(self.G, self.num_show, self.noise_size, noise=self.fixed_noise)
            self.history["samples"].append((self.history["global_step"], images))

    def _out_of_time(self) -> bool:
        return self.time_limit is not None and time.monotonic() - self.start >= self.time_limit

    def _stop_for_time(self) -> bool:
        self.history["stopped"] = "time_limit"
        self._save()
        return False

    def _save(self) -> None:
        self.history["time"] = self.time_before + time.monotonic() - self.start
        if self.path is None:
            return
        save_checkpoint(self.path, nn.ModuleDict({"D": self.D, "G": self.G}),
                        D_opt=self.D_solver.state_dict(), G_opt=self.G_solver.state_dict(),
                        history=self.history, iteration=self.history["global_step"], progress=self.progress,
                        rng=get_rng_state(self.loader))


def run_a_gan(D: nn.Module, G: nn.Module, D_solver: torch.optim.Optimizer, G_solver: torch.optim.Optimizer,
              discriminator_loss, generator_loss, loader, *, num_epochs: int = 10, noise_size: int = NOISE_DIM,
              show_every: int = 250, num_show: int = 16, checkpoint=None, checkpoint_every: int | None = None,
              time_limit: float | None = None, device=None, progress: bool = False, sample_seed: int = 0) -> dict:
    """Train a GAN: for every batch, one step of the discriminator ``D``, then one of the generator ``G``.

    Discriminator step: ``discriminator_loss(D(2 x - 1), D(G(z)))`` with ``G`` held fixed;
    generator step: ``generator_loss(D(G(z)))`` through the updated ``D`` (whose weights get no
    gradient).  Both steps use the same generated batch ``G(z)``, as the DC-GAN reference code
    does (the course draws fresh noise for the generator step: the same in expectation, one
    generator pass more).  ``z`` comes from :func:`sample_noise` with the global random state.

    Args:
        D: ``(N, 784) -> (N, 1)``; G: ``(N, noise_size) -> (N, 784)`` in [-1, 1].
        D_solver, G_solver: optimizers over D's and G's parameters.
        discriminator_loss: ``f(outputs_real, outputs_fake) -> scalar``; generator_loss: ``f(outputs_fake)``.
        loader: yields batches of real images ``(N, 1, 28, 28)`` or ``(N, 784)`` in [0, 1], alone or
            first in a tuple (``(images, labels)``); use ``drop_last=True`` (BatchNorm needs N >= 2).
        num_epochs: total epochs of the run (counting those done before a resume).
        noise_size: the generator's noise dimension.
        show_every: keep a sample grid every this many steps (and before the first, and after the last).
        num_show: images per grid, from the same fixed noise every time (``sample_seed``), made in eval mode.
        checkpoint: a path, or None.  A checkpoint is written at the end of every epoch and, with
            ``checkpoint_every=N``, every N steps.  If the file exists the run resumes from it: the
            weights, both optimizers, the history, the place inside the epoch and the random states are
            loaded, so the resumed run continues exactly like an uninterrupted one.  A finished run only
            loads its weights and returns its history.
        time_limit: seconds after which this call saves and returns (``history["stopped"] == "time_limit"``);
            call again to go on.
        device: where to train (default: where G is); progress: show a tqdm bar.

    Returns:
        history, a plain dict (also saved in the checkpoint)::

            step         list[int]    the global step of each entry below
            d_loss       list[float]  the discriminator's loss at that step
            g_loss       list[float]  the generator's loss at that step
            samples      list of (step, images (num_show, 1, 28, 28) in [0, 1]) tuples
            epoch        int          epochs completed
            global_step  int          steps done (one D and one G update each)
            stopped      str          "completed" or "time_limit"
            time         float        seconds spent, summed over calls

    Raises:
        FloatingPointError: a loss is NaN or infinite (the checkpoint on disk is left as it was).
        ValueError, TypeError: bad arguments, a checkpoint that does not fit, images outside [0, 1].
    """
    _check_gan_args(D, G, D_solver, G_solver, discriminator_loss, generator_loss, num_epochs, noise_size,
                    show_every, num_show, checkpoint, checkpoint_every, time_limit)
    return _GanRun(D, G, D_solver, G_solver, discriminator_loss, generator_loss, loader, num_epochs=num_epochs,
                   noise_size=noise_size, show_every=show_every, num_show=num_show, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every, time_limit=time_limit, device=device, progress=progress,
                   sample_seed=sample_seed).run()
