"""A6: neural style transfer (Gatys et al., 2016) -- an image with one picture's content and another's style.

Names follow EECS 498/598 so course material applies unchanged:

* ``content_loss(content_weight, content_current, content_original)``;
* ``gram_matrix(features, normalize=True)``;
* ``style_loss(feats, style_layers, style_targets, style_weights)``;
* ``tv_loss(img, tv_weight)``: total variation, a smoothness penalty;
* ``style_transfer(...)``: the optimisation of the image itself (the loop EECS 498 gives; here
  you write the step's loss).

Features come from :func:`A6_generative.visual_models.extract_features`: ``feats[i]`` is
``(1, C_i, H_i, W_i)``, the output of layer ``i`` of SqueezeNet's ``features``.  The image being
optimised lives in the network's normalised input space (``preprocess``); ``deprocess`` shows it.
"""

from __future__ import annotations

import torch

from A6_generative import checks
from A6_generative.visual_models import extract_features


def content_loss(content_weight: float, content_current: torch.Tensor, content_original: torch.Tensor) -> torch.Tensor:
    """``content_weight * sum((content_current - content_original)^2)``.

    Args:
        content_weight: ``w_c >= 0``.
        content_current: ``(1, C_l, H_l, W_l)`` features of the current image at the content layer.
        content_original: the same shape, features of the content image.

    Returns:
        a scalar tensor.

    Rule: no loops.
    """
    content_weight = checks.content_args(content_weight, content_current, content_original)
    ### BEGIN SOLUTION
    loss = content_weight * (content_current - content_original).square().sum()
    ### END SOLUTION
    return loss


def gram_matrix(features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Gram matrices of feature maps: ``G[n, c, d] = sum over positions of F[n, c, p] * F[n, d, p]``.

    Args:
        features: ``(N, C, H, W)``.
        normalize: divide by the number of values of one image's features, ``H * W * C``.

    Returns:
        ``(N, C, C)``.

    Rule: no loops; you may not use ``torch.nn.functional``.  Hint: flatten the positions, then one
    batched matrix product.
    """
    checks.feature_maps(features, "features")
    ### BEGIN SOLUTION
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    gram = flat @ flat.transpose(1, 2)
    if normalize:
        gram = gram / (h * w * c)
    ### END SOLUTION
    return gram


def style_loss(feats: list, style_layers: list, style_targets: list, style_weights: list) -> torch.Tensor:
    """``sum over i of style_weights[i] * sum((G_i - A_i)^2)`` with ``G_i = gram_matrix(feats[style_layers[i]])``.

    Args:
        feats: features of the current image at every layer (:func:`extract_features`).
        style_layers: indices into ``feats`` of the layers that carry style.
        style_targets: ``A_i``, the (normalised) Gram matrix of the style image at ``style_layers[i]``.
        style_weights: ``w_i >= 0``, one per style layer.

    Returns:
        a scalar tensor.

    Rule: one loop, over the style layers (call :func:`gram_matrix`).
    """
    checks.style_args(feats, style_layers, style_targets, style_weights)
    ### BEGIN SOLUTION
    loss = feats[style_layers[0]].new_zeros(())
    for layer, target, weight in zip(style_layers, style_targets, style_weights, strict=True):
        loss = loss + weight * (gram_matrix(feats[layer]) - target).square().sum()
    ### END SOLUTION
    return loss


def tv_loss(img: torch.Tensor, tv_weight: float) -> torch.Tensor:
    """Total variation: ``tv_weight`` times the sum of squared differences of neighbouring pixels.

    ``sum over c, i, j of (x[c, i+1, j] - x[c, i, j])^2 + (x[c, i, j+1] - x[c, i, j])^2``, over the batch too.

    Args:
        img: ``(N, C, H, W)``.
        tv_weight: ``>= 0``.

    Returns:
        a scalar tensor.

    Rule: no loops; you may not use ``torch.diff`` or ``torch.nn.functional`` (``conv2d``).  Hint: slices
    shifted by one row, then by one column.
    """
    tv_weight = checks.tv_args(img, tv_weight)
    ### BEGIN SOLUTION
    rows = (img[:, :, 1:, :] - img[:, :, :-1, :]).square().sum()
    cols = (img[:, :, :, 1:] - img[:, :, :, :-1]).square().sum()
    loss = tv_weight * (rows + cols)
    ### END SOLUTION
    return loss


def style_transfer(content_image: torch.Tensor, style_image: torch.Tensor, cnn: torch.nn.Sequential,
                   content_layer: int, content_weight: float, style_layers: list, style_weights: list,
                   tv_weight: float, *, init_random: bool = False, num_iterations: int = 200,
                   learning_rate: float = 3.0, decay_at: int = 180, decayed_rate: float = 0.1,
                   generator: torch.Generator | None = None, show_every: int = 0,
                   show=None) -> tuple[torch.Tensor, dict]:
    """Optimise an image so its content matches ``content_image`` and its style ``style_image``.

    The targets are computed once: the content image's features at ``content_layer`` and the
    style image's Gram matrices at ``style_layers``.  The image starts as the content image (or
    uniform noise in ``[-1, 1]``, ``init_random=True``) and Adam, at ``learning_rate`` and then
    ``decayed_rate`` from iteration ``decay_at``, lowers
    ``content_loss + style_loss + tv_loss`` (EECS 498's settings).

    Args:
        content_image, style_image: preprocessed ``(1, 3, H, W)`` images (sizes may differ).
        cnn: the feature network (an ``nn.Sequential``: SqueezeNet's ``features``).
        content_layer, content_weight, style_layers, style_weights, tv_weight: as in the losses.
        show: optional ``show(img, iteration)`` called every ``show_every`` iterations.

    Returns:
        the image (preprocessed, detached) and the history ``{"content": [...], "style": [...],
        "tv": [...]}``: each term's value before each step, and after the last one.
    """
    checks.transfer_args(content_image, style_image, cnn, content_layer, style_layers, style_weights,
                         num_iterations, decay_at)
    with torch.no_grad():
        content_target = extract_features(content_image, cnn)[content_layer].clone()
        style_feats = extract_features(style_image, cnn)
        style_targets = [gram_matrix(style_feats[i]).clone() for i in style_layers]
    if init_random:
        img = torch.rand(content_image.shape, generator=generator).to(content_image) * 2 - 1
    else:
        img = content_image.detach().clone()
    img.requires_grad_(True)
    optimizer = torch.optim.Adam([img], lr=learning_rate)
    history = {"content": [], "style": [], "tv": []}
    for t in range(num_iterations + 1):
        if t == decay_at:
            for group in optimizer.param_groups:
                group["lr"] = decayed_rate
        ### BEGIN SOLUTION
        feats = extract_features(img, cnn)
        terms = {"content": content_loss(content_weight, feats[content_layer], content_target),
                 "style": style_loss(feats, style_layers, style_targets, style_weights),
                 "tv": tv_loss(img, tv_weight)}
        loss = terms["content"] + terms["style"] + terms["tv"]
        ### END SOLUTION
        for name, value in terms.items():
            history[name].append(float(value.detach()))
        if t == num_iterations:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            img.clamp_(-1.5, 1.5)
        if show is not None and show_every and (t + 1) % show_every == 0:
            show(img.detach(), t + 1)
    return img.detach(), history
