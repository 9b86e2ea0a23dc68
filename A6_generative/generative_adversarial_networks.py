"""A6: generative adversarial networks -- vanilla, least-squares and deep-convolutional (DC-GAN).

You write (EECS 498/598 names): ``sample_noise``, ``discriminator``, ``generator``, ``bce_with_logits``,
``discriminator_loss``, ``generator_loss``, ``ls_discriminator_loss``, ``ls_generator_loss``,
``get_optimizer``, ``build_dc_classifier`` and ``build_dc_generator``.  Given below them:
``run_a_gan`` (the training loop, on :func:`helpers.train.train`: checkpoints, exact resume, time
limit) and the notebook's tools ``count_params``, ``to_images``, ``generate_images``.

Images are 28x28 grey images flattened to 784 values.  The generator ends with ``tanh``, so its
images lie in [-1, 1]; ``run_a_gan`` shows real images (in [0, 1]) to the discriminator as
``2 x - 1``.  Logits and scores are ``(N,)`` or ``(N, 1)``; every loss is a batch mean (a scalar).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from A6_generative import checks
from helpers.train import train

NOISE_DIM = 96  # the course's noise dimension
IMAGE_SIZE = checks.IMAGE_SIZE  # 784: images are flattened 28x28 grey images


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

    Rule: one call of a random function, no loop.  Hint: ``torch.rand`` draws from [0, 1);
    stretch and shift that interval onto [-1, 1].
    """
    checks.noise_args(batch_size, noise_dim, dtype)
    ### BEGIN SOLUTION
    noise = torch.rand(batch_size, noise_dim, dtype=dtype, device=device, generator=generator)
    return 2 * noise - 1
    ### END SOLUTION


def discriminator() -> nn.Sequential:
    """The fully-connected discriminator: images ``(N, 784)`` (or ``(N, 1, 28, 28)``) -> logits ``(N, 1)``.

    Flatten, Linear(784, 256), LeakyReLU(0.01), Linear(256, 256), LeakyReLU(0.01), Linear(256, 1):
    267,009 parameters.  Rule: one ``nn.Sequential``; no sigmoid at the end (the losses take logits).
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
    Rule: one ``nn.Sequential``.
    """
    checks.noise_dim(noise_dim)
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

    Rule: you may not use ``F.binary_cross_entropy_with_logits``, ``F.binary_cross_entropy``,
    ``nn.BCEWithLogitsLoss``, ``nn.BCELoss``, ``F.softplus``, ``F.logsigmoid`` or ``torch.logaddexp``:
    this function is what they do.  No loops.
    """
    targets = checks.bce_args(logits, targets)
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

    Rule: use your :func:`bce_with_logits` (the library's BCE is not allowed here either).
    """
    checks.output_pair("logits_real", logits_real, "logits_fake", logits_fake)
    ### BEGIN SOLUTION
    return bce_with_logits(logits_real, 1.0).mean() + bce_with_logits(logits_fake, 0.0).mean()
    ### END SOLUTION


def generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """The generator's (non-saturating) loss: ``mean_i BCE(logits_fake_i, 1)`` = ``-mean log D(G(z))``.

    Args:
        logits_fake: ``(N,)`` or ``(N, 1)``, the discriminator's logits on generated images.

    Returns:
        loss: a scalar tensor.

    Rule: use your :func:`bce_with_logits` (the library's BCE is not allowed here either).
    Hint: the generator wants its images labelled real.
    """
    checks.outputs("logits_fake", logits_fake)
    ### BEGIN SOLUTION
    return bce_with_logits(logits_fake, 1.0).mean()
    ### END SOLUTION


def ls_discriminator_loss(scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
    """The least-squares discriminator loss: ``1/2 mean (D(x) - 1)^2 + 1/2 mean D(G(z))^2``.

    Args:
        scores_real: ``(N,)`` or ``(N, 1)``, the discriminator's scores on real images.
        scores_fake: the same shape, its scores on generated images.

    Returns:
        loss: a scalar tensor.  Rule: no loops.
    """
    checks.output_pair("scores_real", scores_real, "scores_fake", scores_fake)
    ### BEGIN SOLUTION
    return 0.5 * ((scores_real - 1) ** 2).mean() + 0.5 * (scores_fake ** 2).mean()
    ### END SOLUTION


def ls_generator_loss(scores_fake: torch.Tensor) -> torch.Tensor:
    """The least-squares generator loss: ``1/2 mean (D(G(z)) - 1)^2``.

    Args:
        scores_fake: ``(N,)`` or ``(N, 1)``, the discriminator's scores on generated images.

    Returns:
        loss: a scalar tensor.  Rule: no loops.
    """
    checks.outputs("scores_fake", scores_fake)
    ### BEGIN SOLUTION
    return 0.5 * ((scores_fake - 1) ** 2).mean()
    ### END SOLUTION


def get_optimizer(model: nn.Module) -> torch.optim.Adam:
    """Adam over ``model``'s parameters with learning rate 1e-3 and betas (0.5, 0.999)."""
    checks.module(model)
    ### BEGIN SOLUTION
    return torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    ### END SOLUTION


# --------------------------------------------------------------------------- DC-GAN


def build_dc_classifier() -> nn.Sequential:
    """The DC-GAN discriminator: images ``(N, 784)`` -> logits ``(N, 1)``.

    Unflatten to (N, 1, 28, 28); Conv2d(1, 32, 5), LeakyReLU(0.01), MaxPool 2x2;
    Conv2d(32, 64, 5), LeakyReLU(0.01), MaxPool 2x2; Flatten (64 * 4 * 4 = 1024);
    Linear(1024, 1024), LeakyReLU(0.01); Linear(1024, 1): 1,102,721 parameters.

    Hint: ``nn.Unflatten(1, (1, 28, 28))`` turns the flat images back into pictures; a 5x5
    convolution without padding takes 4 pixels off each side length.
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

    Hint: a transposed convolution with kernel 4, stride 2 and padding 1 doubles height and width.
    """
    checks.noise_dim(noise_dim)
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


# --------------------------------------------------------------------------- given: tools for the notebook


def count_params(model: nn.Module) -> int:
    """The number of scalar parameters of ``model`` (BatchNorm's running statistics are buffers, not counted)."""
    checks.module(model)
    return sum(p.numel() for p in model.parameters())


def to_images(x: torch.Tensor) -> torch.Tensor:
    """Generator outputs ``(N, 784)`` in [-1, 1] -> images ``(N, 1, 28, 28)`` in [0, 1], ``(x + 1) / 2``."""
    checks.generator_images(x)
    return ((x.detach() + 1) / 2).clamp(0, 1).reshape(-1, 1, 28, 28)


@torch.no_grad()
def generate_images(G: nn.Module, num_images: int, noise_dim: int = NOISE_DIM, *, batch_size: int = 500,
                    noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Images from ``G`` in eval mode (BatchNorm uses its running statistics): ``(num_images, 1, 28, 28)`` in [0, 1].

    Args:
        G: a generator ``(N, noise_dim) -> (N, 784)`` in [-1, 1]; its train/eval mode is restored.
        num_images: how many (ignored when ``noise`` is given).
        noise: optional ``(num_images, noise_dim)`` inputs; default: uniform in [-1, 1] like :func:`sample_noise`,
            from ``generator`` (a CPU ``torch.Generator``: drawn on the CPU, then moved to G's device).
        batch_size: images generated at once (bounds the memory).

    Returns:
        images on the CPU, float32.
    """
    checks.generate_args(G, num_images, noise_dim, batch_size, noise)
    device = next(G.parameters()).device
    if noise is None:
        noise = _uniform_noise(num_images, noise_dim, generator)
    mode = G.training
    G.eval()
    try:
        parts = [to_images(G(chunk.to(device))).float().cpu() for chunk in noise.split(batch_size)]
    finally:
        G.train(mode)
    return torch.cat(parts)


# --------------------------------------------------------------------------- given: the training loop


def run_a_gan(D: nn.Module, G: nn.Module, D_solver: torch.optim.Optimizer, G_solver: torch.optim.Optimizer,
              discriminator_loss, generator_loss, loader, *, num_epochs: int = 10, noise_size: int = NOISE_DIM,
              show_every: int = 250, num_show: int = 16, checkpoint=None, checkpoint_every: int | None = None,
              time_limit: float | None = None, device=None, progress: bool = False, sample_seed: int = 0) -> dict:
    """Train a GAN: for every batch, one step of the discriminator ``D``, then one of the generator ``G``.

    Discriminator step: ``discriminator_loss(D(2 x - 1), D(G(z)))`` with ``G`` held fixed;
    generator step: ``generator_loss(D(G(z)))`` through the updated ``D`` (whose weights get no
    gradient).  Both steps use the same generated batch ``G(z)``, as the DC-GAN reference code
    does (EECS 498 draws fresh noise for the generator step: the same in expectation, one
    generator pass more).  ``z`` comes from :func:`sample_noise` with the global random state.
    The loop is :func:`helpers.train.train` with a step function of two optimizers.

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
        history, a plain dict (the checkpoint holds :func:`helpers.train.train`'s history, of which
        these are views)::

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
    checks.gan_args(D, G, D_solver, G_solver, discriminator_loss, generator_loss, noise_size, show_every,
                    num_show)
    if device is None:
        device = next(G.parameters(), torch.empty(0)).device
    step = _gan_step(D, G, D_solver, G_solver, discriminator_loss, generator_loss, noise_size)
    keep_samples = _sample_grids(G, noise_size, show_every, num_show, sample_seed)
    history = train(nn.ModuleDict({"D": D, "G": G}), {"D": D_solver, "G": G_solver}, loader, step_fn=step,
                    callback=keep_samples, num_epochs=num_epochs, checkpoint=checkpoint,
                    checkpoint_every=checkpoint_every, time_limit=time_limit, device=device, progress=progress,
                    log_every=1)
    losses = history["metrics"]
    return {"step": history["step"], "d_loss": losses.get("d_loss", []), "g_loss": losses.get("g_loss", []),
            "samples": history.get("samples", []), "epoch": history["epoch"],
            "global_step": history["global_step"], "stopped": history["stopped"], "time": history["time"]}


def _gan_step(D, G, D_solver, G_solver, d_loss_fn, g_loss_fn, noise_size: int):
    """The ``step_fn`` of :func:`helpers.train.train`: one D update, then one G update on the same fakes."""

    def step(models, batch) -> tuple[float, dict]:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        checks.real_images(x)
        real = (2 * x - 1).reshape(x.shape[0], -1)
        fake = G(sample_noise(real.shape[0], noise_size, device=real.device))
        checks.same_images(fake, real)
        # Discriminator: real images should score high, generated ones low (G held fixed: detach).
        D_solver.zero_grad(set_to_none=True)
        d_loss = d_loss_fn(D(real), D(fake.detach()))
        checks.finite_loss("discriminator", d_loss)
        d_loss.backward()
        D_solver.step()
        # Generator: the updated discriminator should take its images for real (D's weights get no gradient).
        G_solver.zero_grad(set_to_none=True)
        with _frozen(D):
            g_loss = g_loss_fn(D(fake))
            checks.finite_loss("generator", g_loss)
            g_loss.backward()
        G_solver.step()
        d_value, g_value = float(d_loss.detach()), float(g_loss.detach())
        return d_value + g_value, {"d_loss": d_value, "g_loss": g_value}

    return step


def _sample_grids(G, noise_size: int, show_every: int, num_show: int, sample_seed: int):
    """The ``callback`` of :func:`helpers.train.train`: a grid of ``num_show`` images from fixed noise in
    ``history["samples"]`` before the first step, every ``show_every`` steps and after the last."""
    fixed_noise = _uniform_noise(max(num_show, 1), noise_size, torch.Generator().manual_seed(sample_seed))[:num_show]

    def keep_samples(models, history) -> None:
        samples = history.setdefault("samples", [])
        step = history["global_step"]
        due = step % show_every == 0 or history["stopped"] == "completed"
        if num_show and due and not (samples and samples[-1][0] == step):
            samples.append((step, generate_images(G, num_show, noise_size, noise=fixed_noise)))

    return keep_samples


def _uniform_noise(num: int, noise_dim: int, generator: torch.Generator | None) -> torch.Tensor:
    """``(num, noise_dim)`` noise uniform in [-1, 1] on the CPU, drawn from ``generator`` as
    :func:`sample_noise` draws it (the given code does not need ``sample_noise``'s ``generator`` argument,
    which EECS 498's signature lacks)."""
    return 2 * torch.rand(num, noise_dim, generator=generator) - 1


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


__all__ = [
    "IMAGE_SIZE", "NOISE_DIM", "bce_with_logits", "build_dc_classifier", "build_dc_generator", "count_params",
    "discriminator", "discriminator_loss", "generate_images", "generator", "generator_loss", "get_optimizer",
    "ls_discriminator_loss", "ls_generator_loss", "run_a_gan", "sample_noise", "to_images",
]
