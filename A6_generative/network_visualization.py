"""A6: network visualization -- a trained classifier's gradients with respect to its input image.

Names follow EECS 498/598 so course material applies unchanged:

* ``compute_saliency_maps(X, y, model)``: how much each pixel moves the correct score;
* ``make_adversarial_attack(X, target_y, model, max_iter=100, verbose=True)``: the smallest
  push, by normalised gradient steps, that makes the model read another class;
* ``class_visualization_step(img, target_y, model, l2_reg=1e-3, learning_rate=25)``: one
  gradient-ascent step on an image towards a class (CS231n's ``class_visualization_update``
  with its argument order is kept as an alias);
* ``feature_inversion_step(img, target_features, feature_fn, l2_reg, learning_rate)``: one step
  towards an image whose features match given ones.

The loops around the steps are given after the assignment: :func:`create_class_visualization`
(with jitter and blur), :func:`invert_features`, :func:`attack_statistics`.

``model`` is any classifier ``(N, C, H, W) -> (N, num_classes)`` in eval mode; here, images
are in [0, 1] and the model normalises them itself.  You may use autograd for the gradient
with respect to the image (``torch.autograd.grad`` or ``.backward()``), not a library that
computes saliency or attacks for you.
"""

from __future__ import annotations

import math

import torch
import torchvision.transforms.functional as TF

from A6_generative import checks


def compute_saliency_maps(X: torch.Tensor, y: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """Saliency maps: ``max over channels of |d score_y / d X|`` for each image.

    Args:
        X: ``(N, C, H, W)`` images.
        y: ``(N,)`` labels, the class whose score each map explains.
        model: the classifier, in eval mode.

    Returns:
        ``(N, H, W)`` saliency maps, non-negative, detached.

    Rule: no loops: one forward and one backward pass for the whole batch; do not change ``X``.
    Hint: the images of a batch do not interact in eval mode, so the gradient of the *sum* of
    the N correct scores (``scores.gather``) holds each image's own gradient.
    """
    X, y = checks.images_and_labels(X, y, model)
    ### BEGIN SOLUTION
    X = X.detach().clone().requires_grad_(True)
    scores = model(X)
    correct = scores.gather(1, y[:, None]).sum()
    (grad,) = torch.autograd.grad(correct, X)
    saliency = grad.abs().amax(dim=1)
    ### END SOLUTION
    return saliency


def make_adversarial_attack(X: torch.Tensor, target_y, model: torch.nn.Module, max_iter: int = 100,
                            verbose: bool = True, learning_rate: float = 1.0) -> torch.Tensor:
    """Push ``X`` until the model predicts ``target_y``: gradient ascent on the target score.

    Each iteration: if every image is already read as its target, stop; otherwise take, for each
    image not yet fooled, the step ``learning_rate * g / ||g||_2`` where ``g`` is the gradient of
    that image's target score with respect to the image (fooled images stay where they are).

    Args:
        X: ``(N, C, H, W)`` images (EECS 498: one image, ``N = 1``).
        target_y: an int class for every image, or ``(N,)`` labels.
        model: the classifier, in eval mode.
        max_iter: at most this many steps.
        verbose: print the iteration and how many images are fooled.
        learning_rate: the L2 length of each step.

    Returns:
        ``X_adv``, ``(N, C, H, W)``, detached; ``X`` is unchanged.  Images not fooled after
        ``max_iter`` steps are returned as far as they got.

    Rule: one loop, over the iterations (each step moves all the images not yet fooled at once).
    Hint: normalise with each image's own gradient norm (``g.flatten(1).norm(dim=1)``), and
    guard the division for a zero gradient.  Fooled images stay fooled (they no longer move), so
    later iterations need only the others: forward just those (in eval mode images do not interact).
    """
    X, target = checks.attack_args(X, target_y, model, max_iter, learning_rate)
    X_adv = X.detach().clone()
    ### BEGIN SOLUTION
    active = torch.arange(X.shape[0], device=X.device)  # images not yet read as their target
    for iteration in range(max_iter):
        x = X_adv[active].requires_grad_(True)
        scores = model(x)
        fooled = scores.argmax(dim=1) == target[active]
        if verbose:
            print(f"iteration {iteration}: {X.shape[0] - int((~fooled).sum())} of {X.shape[0]} images read as "
                  "their target")
        if bool(fooled.all()):
            break
        (grad,) = torch.autograd.grad(scores.gather(1, target[active][:, None]).sum(), x)
        grad, active = grad[~fooled], active[~fooled]
        norms = grad.flatten(1).norm(dim=1).clamp_min(torch.finfo(grad.dtype).tiny)
        X_adv[active] += learning_rate * grad / norms.view(-1, *([1] * (grad.dim() - 1)))
    ### END SOLUTION
    return X_adv.detach()


def class_visualization_step(img: torch.Tensor, target_y: int, model: torch.nn.Module, **kwargs) -> torch.Tensor:
    """One gradient-ascent step on ``img`` towards an image that the model reads as ``target_y``.

    The objective is ``s_y(img) - l2_reg * ||img||_2^2`` summed over the batch, and the step
    ``img <- img + learning_rate * d objective / d img`` (a plain gradient step, as EECS 498).

    Args:
        img: ``(N, C, H, W)`` images, updated **in place** (and returned).
        target_y: the class, an int.
        model: the classifier, in eval mode.
        l2_reg: keyword, strength of the L2 penalty (default 1e-3).
        learning_rate: keyword, the step size (default 25).

    Returns:
        ``img``, after the step, detached.

    Rule: no loops (one step for the whole batch).
    Hint: compute the gradient on a detached copy that requires grad, then update ``img`` under
    ``torch.no_grad()``.  Mind the sign of the penalty.
    """
    l2_reg, learning_rate = checks.class_visualization_args(img, target_y, model, kwargs)
    ### BEGIN SOLUTION
    x = img.detach().requires_grad_(True)
    objective = model(x)[:, target_y].sum() - l2_reg * x.square().sum()
    (grad,) = torch.autograd.grad(objective, x)
    with torch.no_grad():
        img += learning_rate * grad
    ### END SOLUTION
    return img.detach()


def feature_inversion_step(img: torch.Tensor, target_features: torch.Tensor, feature_fn, l2_reg: float = 0.0,
                           learning_rate: float = 0.1) -> float:
    """One gradient-descent step on ``img`` towards an image whose features equal ``target_features``.

    The loss is the relative feature error plus an L2 penalty,

        ``loss = ||phi(img) - target||^2 / ||target||^2 + l2_reg * ||img||^2``

    (sums of squares over everything), and the step ``img <- img - learning_rate * g / ||g||_2``
    with ``g = d loss / d img`` over the whole batch (a normalised step: its length is ``learning_rate``).

    Args:
        img: ``(N, C, H, W)`` images, updated **in place**.
        target_features: what ``feature_fn`` gives for the image to reconstruct, e.g. ``(N, D)``.
        feature_fn: a function of images, e.g. the classifier's penultimate layer.
        l2_reg, learning_rate: as above.

    Returns:
        the loss before the step, a float.

    Rule: no loops (one step for the whole batch).
    """
    l2_reg, learning_rate = checks.inversion_args(img, target_features, feature_fn, l2_reg, learning_rate)
    ### BEGIN SOLUTION
    x = img.detach().requires_grad_(True)
    target = target_features.detach()
    loss = (feature_fn(x) - target).square().sum() / target.square().sum() + l2_reg * x.square().sum()
    (grad,) = torch.autograd.grad(loss, x)
    with torch.no_grad():
        img -= learning_rate * grad / grad.norm().clamp_min(torch.finfo(grad.dtype).tiny)
    ### END SOLUTION
    return float(loss.detach())


def class_visualization_update(img: torch.Tensor, model: torch.nn.Module, target_y: int, l2_reg: float,
                               learning_rate: float) -> torch.Tensor:
    """CS231n's name and argument order for :func:`class_visualization_step` (given)."""
    return class_visualization_step(img, target_y, model, l2_reg=l2_reg, learning_rate=learning_rate)


# --------------------------------------------------------------------------- given: the loops around the steps


def jitter(X: torch.Tensor, ox: int, oy: int) -> torch.Tensor:
    """Shift images ``(N, C, H, W)`` by ``ox`` pixels right and ``oy`` down, wrapping around (a roll)."""
    return torch.roll(X, shifts=(oy, ox), dims=(2, 3))


def blur_image(X: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian blur of images ``(N, C, H, W)``: standard deviation ``sigma`` pixels, kernel 2 ceil(2 sigma) + 1."""
    size = 2 * math.ceil(2 * sigma) + 1
    return TF.gaussian_blur(X, kernel_size=[size, size], sigma=[sigma, sigma])


def create_class_visualization(target_y: int, model: torch.nn.Module, image_shape: tuple, *,
                               num_iterations: int = 100,
                               l2_reg: float = 1e-3, learning_rate: float = 25.0, max_jitter: int = 2,
                               blur_every: int = 10, blur_sigma: float = 0.5, value_range=(0.0, 1.0),
                               generator: torch.Generator | None = None, show_every: int = 0,
                               show=None) -> tuple[torch.Tensor, list]:
    """Build an image the model reads as ``target_y``: :func:`class_visualization_step` with jitter and blur.

    Starts from small random noise around mid-grey; each iteration jitters the image by up to
    ``max_jitter`` pixels, takes a step, undoes the jitter and clamps it to ``value_range``; every
    ``blur_every`` iterations it blurs it a little.  Jitter and blur keep the image from filling
    with high-frequency patterns that only this network reads.

    Args:
        image_shape: ``(C, H, W)`` of the model's input.
        show: optional ``show(img, iteration)`` called every ``show_every`` iterations.

    Returns:
        the image ``(1, C, H, W)`` and the softmax probability of ``target_y`` after each iteration.
    """
    checks.class_visualization_loop_args(target_y, model, image_shape, num_iterations, max_jitter, blur_every)
    low, high = value_range
    like = next(model.parameters())
    img = (0.5 * (low + high) + 0.01 * (high - low) * torch.randn(1, *image_shape, generator=generator)).to(like)
    confidences = []
    for t in range(num_iterations):
        ox, oy = (int(v) for v in torch.randint(-max_jitter, max_jitter + 1, (2,), generator=generator))
        img = jitter(img, ox, oy)
        class_visualization_step(img, target_y, model, l2_reg=l2_reg, learning_rate=learning_rate)
        img = jitter(img, -ox, -oy).clamp(low, high)
        if blur_every and (t + 1) % blur_every == 0 and t + 1 < num_iterations:
            img = blur_image(img, blur_sigma)
        with torch.no_grad():
            confidences.append(float(model(img).softmax(dim=1)[0, target_y]))
        if show is not None and show_every and ((t + 1) % show_every == 0 or t + 1 == num_iterations):
            show(img, t + 1)
    return img.detach(), confidences


def invert_features(target_image: torch.Tensor, feature_fn, *, num_iterations: int = 200, l2_reg: float = 0.0,
                    learning_rate: float = 0.5, decay: float = 0.99, value_range=(0.0, 1.0),
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, list]:
    """Reconstruct ``target_image`` ``(N, C, H, W)`` from ``feature_fn(target_image)`` alone.

    Starts from noise; each iteration takes a :func:`feature_inversion_step` (its length shrinks
    by ``decay`` per iteration) and clamps to ``value_range``.  Returns the reconstruction and
    the relative feature error per iteration.
    """
    with torch.no_grad():
        target = feature_fn(target_image)
    low, high = value_range
    noise = torch.rand(target_image.shape, generator=generator)  # device: a CPU generator; .to below
    img = (low + (high - low) * noise).to(target_image)
    losses = []
    for t in range(num_iterations):
        losses.append(feature_inversion_step(img, target, feature_fn, l2_reg, learning_rate * decay ** t))
        img.clamp_(low, high)
    return img, losses


@torch.no_grad()
def attack_statistics(model: torch.nn.Module, X: torch.Tensor, X_adv: torch.Tensor, target) -> dict:
    """How an attack went: fraction of images read as their target, and perturbation sizes.

    Returns ``{"success": float, "linf": (N,), "l2": (N,)}`` with the L-infinity and L2 norm of
    each image's perturbation ``X_adv - X``.
    """
    target = torch.as_tensor(target, device=X.device).expand(X.shape[0])
    delta = (X_adv - X).flatten(1)
    return {"success": float((model(X_adv).argmax(dim=1) == target).float().mean()),
            "linf": delta.abs().amax(dim=1), "l2": delta.norm(dim=1)}
