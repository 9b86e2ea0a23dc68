"""ViT: "An Image is Worth 16x16 Words" (Dosovitskiy et al., 2021), written by hand on the A4 attention.

An image is cut into ``P x P`` patches; each patch is flattened and projected to a token; a
learned class token is put in front, learned position embeddings are added, and a stack of
pre-norm Transformer encoder blocks mixes the tokens.  The class token's final state is
classified by a linear head.

* :func:`patchify` / :func:`unpatchify` -- images ``(N, C, H, W)`` <-> patch rows ``(N, L, C*P*P)``;
* :class:`PatchEmbedding` -- patch rows -> tokens (a linear map: the same as a ``P x P`` convolution
  with stride ``P``);
* :class:`ConvStem` -- the paper's *hybrid* variant (its section 3.1): a few convolutions in front
  of the patch embedding, which then cuts its patches from their feature map instead of the pixels;
* :class:`ViTBlock` -- ``x + MHA(LN(x))`` then ``x + MLP(LN(x))`` (pre-norm, GELU), with A4's
  :class:`~A4_rnn_transformer.transformer.MultiHeadAttention` and ``LayerNormalization``;
* :class:`VisionTransformer` -- the whole classifier, pixels in ``[0, 1]`` in, class scores out
  (the dataset's normalisation is a buffer of the model, so exports take raw images);
* :func:`attention_rollout` -- how much the class token draws from each patch through all layers
  (Abnar & Zuidema, 2020); :func:`position_similarity` -- cosine similarity of position embeddings;
* :func:`vit_loss_fn` -- label-smoothed cross-entropy (A4's ``LabelSmoothingLoss``) on augmented
  batches, for :func:`helpers.train.train`; :func:`accuracy`, :func:`predict`;
* ``python -m papers.vit predict IMAGE...`` / ``export``: see :func:`main`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from A4_rnn_transformer.transformer import LabelSmoothingLoss, LayerNormalization, MultiHeadAttention
from helpers.checks import check_int
from helpers.datasets import random_flip_and_shift
from papers import checks

__all__ = [
    "FASHION_MNIST_STATS",
    "ConvStem",
    "PatchEmbedding",
    "ViTBlock",
    "VisionTransformer",
    "accuracy",
    "attention_maps",
    "attention_rollout",
    "inference_metadata",
    "main",
    "patchify",
    "position_similarity",
    "predict",
    "save_export",
    "unpatchify",
    "vit_loss_fn",
]

#: per-channel mean and standard deviation of Fashion-MNIST's training images (pixels in [0, 1])
FASHION_MNIST_STATS = ((0.2860,), (0.3530,))
#: the same for CIFAR-10
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


# --------------------------------------------------------------------------- patches


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into non-overlapping square patches, each flattened to a row.

    Args:
        images: ``(N, C, H, W)``; ``H`` and ``W`` must be multiples of ``patch_size``.
        patch_size: ``P``.

    Returns:
        ``(N, L, C * P * P)`` with ``L = (H / P) * (W / P)`` patches in row-major order (left to
        right, then top to bottom); each row holds the patch's pixels in ``(C, P, P)`` order.

    Rule: no loops.  Hint: one ``reshape`` that splits rows and columns into blocks, one
    ``permute``, one ``reshape``.
    """
    P = checks.patchify_args(images, patch_size)
    N, C, H, W = images.shape
    patches = None
    ### BEGIN SOLUTION
    grid = images.reshape(N, C, H // P, P, W // P, P)            # split rows and columns into blocks
    patches = grid.permute(0, 2, 4, 1, 3, 5).reshape(N, (H // P) * (W // P), C * P * P)
    ### END SOLUTION
    return patches


def unpatchify(patches: torch.Tensor, patch_size: int, height: int, width: int) -> torch.Tensor:
    """The inverse of :func:`patchify`: ``(N, L, C * P * P)`` rows -> images ``(N, C, height, width)``.

    Rule: no loops.  Hint: :func:`patchify`'s three steps in reverse.
    """
    P = checks.unpatchify_args(patches, patch_size, height, width)
    N, L, D = patches.shape
    C = D // (P * P)
    images = None
    ### BEGIN SOLUTION
    grid = patches.reshape(N, height // P, width // P, C, P, P)
    images = grid.permute(0, 3, 1, 4, 2, 5).reshape(N, C, height, width)
    ### END SOLUTION
    return images


class PatchEmbedding(nn.Module):
    """Patches -> tokens: :func:`patchify`, then one ``Linear(C * P * P, emb_dim)`` applied to every patch.

    Args:
        patch_size: ``P``; in_channels: ``C``; emb_dim: ``D``.

    Attributes: ``proj`` (the ``nn.Linear``).  ``forward``: ``(N, C, H, W)`` -> ``(N, L, D)``.

    Rule (``forward``): no loops, and no convolution (``F.conv2d``, ``nn.Conv2d``: the tests compare
    with one).
    """

    def __init__(self, patch_size: int, in_channels: int, emb_dim: int):
        super().__init__()
        self.patch_size = check_int(patch_size, "patch_size", minimum=1)
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        check_int(emb_dim, "emb_dim", minimum=1)
        self.proj = nn.Linear(in_channels * patch_size * patch_size, emb_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        checks.vit_images(images, self.in_channels)
        tokens = None
        ### BEGIN SOLUTION
        tokens = self.proj(patchify(images, self.patch_size))
        ### END SOLUTION
        return tokens


class ConvStem(nn.Module):
    """The hybrid ViT's CNN: ``3x3`` convolutions at stride 1, each followed by BatchNorm and ReLU.

    The feature map keeps the image's height and width, so the patch embedding cuts the same
    ``P x P`` patches from it as from the image -- but each patch is now ``channels[-1] * P * P``
    local features (edges, corners) rather than raw pixels.  The paper's hybrid feeds ResNet
    features to the Transformer the same way.

    Args:
        in_channels: ``C`` of the images; channels: output channels of each convolution, in order.

    ``forward``: ``(N, C, H, W)`` -> ``(N, channels[-1], H, W)``.
    """

    def __init__(self, in_channels: int, channels):
        super().__init__()
        check_int(in_channels, "in_channels", minimum=1)
        if not isinstance(channels, (list, tuple)) or not channels:
            raise ValueError(f"channels must be a non-empty list of positive ints, got {channels!r}")
        layers, previous = [], in_channels
        for out in channels:
            check_int(out, "stem channels", minimum=1)
            layers += [nn.Conv2d(previous, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            previous = out
        self.out_channels = previous
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


# --------------------------------------------------------------------------- the encoder


class ViTBlock(nn.Module):
    """One pre-norm encoder block: ``x = x + drop(MHA(LN1(x)))``, then ``x = x + drop(MLP(LN2(x)))``.

    Unlike the A4 (post-norm) ``EncoderBlock``, normalisation comes *before* each sub-layer, so the
    residual path from input to output is an identity: deep stacks train without a warm-up crutch.
    The MLP is ``Linear(D, mlp_dim) -> GELU -> dropout -> Linear(mlp_dim, D)``.

    Args:
        emb_dim: ``D``; num_heads: heads (must divide ``D``); mlp_dim: hidden width; dropout: probability.

    Attributes: ``norm1``, ``attn`` (A4 ``MultiHeadAttention``; its ``weights_softmax`` keeps the last
    ``(N, heads, T, T)`` attention weights), ``norm2``, ``fc1``, ``fc2``, ``dropout``.

    Rule (``forward``): no loops; attention is ``self.attn`` (A4's, written by hand): you may not use
    ``nn.MultiheadAttention`` or ``F.scaled_dot_product_attention`` (the tests compare with the former).
    """

    def __init__(self, emb_dim: int, num_heads: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        checks.vit_block_settings(emb_dim, num_heads, mlp_dim, dropout)
        self.emb_dim = emb_dim
        self.norm1 = LayerNormalization(emb_dim, epsilon=1e-6)
        self.attn = MultiHeadAttention(num_heads, emb_dim, emb_dim // num_heads)
        self.norm2 = LayerNormalization(emb_dim, epsilon=1e-6)
        self.fc1 = nn.Linear(emb_dim, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, emb_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, T, D)`` -> ``(N, T, D)``."""
        y = None
        ### BEGIN SOLUTION
        h = self.norm1(x)
        x = x + self.dropout(self.attn(h, h, h))
        h = self.fc2(self.dropout(F.gelu(self.fc1(self.norm2(x)))))
        y = x + self.dropout(h)
        ### END SOLUTION
        return y


class VisionTransformer(nn.Module):
    """The ViT classifier: patch tokens + class token + position embeddings -> encoder -> head.

    Args:
        image_size: side ``S`` of the square input images (a multiple of ``patch_size``).
        patch_size: ``P``; the sequence has ``T = (S / P)^2 + 1`` tokens.
        in_channels: ``C`` (1 for Fashion-MNIST, 3 for CIFAR-10).
        num_classes: outputs of the head.
        emb_dim, depth, num_heads, mlp_dim: width, number of blocks, heads per block, MLP width.
        dropout: dropout in the blocks and after the embeddings.
        mean, std: per-channel statistics of the training images; inputs are ``(x - mean) / std``
            inside the model, so it takes raw pixels in ``[0, 1]`` (and so does its export).
        class_names: names of the classes, kept for the command line (default ``"0"``, ``"1"``...).
        stem_channels: empty (the default) for the plain ViT; else the channels of a
            :class:`ConvStem` whose feature map the patches are cut from (the hybrid ViT).

    Attributes: ``stem`` (``nn.Identity`` for the plain ViT), ``patch_embed``, ``cls_token (1, 1, D)``,
    ``pos_embedding (1, T, D)`` (learned, initialised with std 0.02), ``blocks``, ``norm``, ``head``.

    ``forward(images (N, C, S, S)) -> scores (N, num_classes)``.
    """

    def __init__(self, image_size: int = 28, patch_size: int = 4, in_channels: int = 1, num_classes: int = 10,
                 emb_dim: int = 64, depth: int = 6, num_heads: int = 4, mlp_dim: int = 128, dropout: float = 0.0,
                 mean=FASHION_MNIST_STATS[0], std=FASHION_MNIST_STATS[1], class_names=None, stem_channels=()):
        super().__init__()
        checks.vit_settings(image_size, patch_size, in_channels, num_classes, depth, mean, std, class_names,
                            stem_channels)
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.class_names = [str(c) for c in range(num_classes)] if class_names is None else list(class_names)
        self.num_patches = (image_size // patch_size) ** 2
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))
        if len(stem_channels):
            self.stem = ConvStem(in_channels, stem_channels)
            patch_channels = self.stem.out_channels
        else:
            self.stem, patch_channels = nn.Identity(), in_channels
        self.patch_embed = PatchEmbedding(patch_size, patch_channels, emb_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, emb_dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, self.num_patches + 1, emb_dim) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([ViTBlock(emb_dim, num_heads, mlp_dim, dropout) for _ in range(depth)])
        self.norm = LayerNormalization(emb_dim, epsilon=1e-6)
        self.head = nn.Linear(emb_dim, num_classes)
        nn.init.zeros_(self.head.weight)    # every class equally likely at the start
        nn.init.zeros_(self.head.bias)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The normalised final tokens ``(N, T, D)`` (class token first)."""
        checks.vit_images(images, self.in_channels, self.image_size)
        x = None
        ### BEGIN SOLUTION
        tokens = self.patch_embed(self.stem((images - self.mean) / self.std))
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        x = self.dropout(torch.cat([cls, tokens], dim=1) + self.pos_embedding)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        ### END SOLUTION
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        scores = None
        ### BEGIN SOLUTION
        scores = self.head(self.features(images)[:, 0])
        ### END SOLUTION
        return scores


# --------------------------------------------------------------------------- looking inside


@torch.no_grad()
def attention_maps(model: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    """Attention weights of every block on ``images``: ``(depth, N, heads, T, T)`` (rows: queries)."""
    was_training = model.training
    model.eval()
    try:
        model(images)
    finally:
        model.train(was_training)
    return torch.stack([block.attn.weights_softmax for block in model.blocks])


def attention_rollout(attentions: torch.Tensor, head_fusion: str = "mean") -> torch.Tensor:
    """Attention rollout: how much each output token draws from each input token through all layers.

    Each layer's attention is fused over heads (``"mean"`` or ``"max"``), the residual connection
    is accounted for as ``A' = (A + I) / 2`` (rows renormalised to sum to 1), and the layers are
    chained by matrix products: ``R = A'_depth @ ... @ A'_1``.

    Args:
        attentions: ``(depth, N, heads, T, T)`` from :func:`attention_maps`.
        head_fusion: how heads are combined.

    Returns:
        ``(N, T, T)``, every row a distribution over input tokens.  Row 0 (the class token) without
        its first entry, reshaped to the patch grid, is the usual "where the model looks" map.
    """
    if not isinstance(attentions, torch.Tensor) or attentions.dim() != 5 \
            or attentions.shape[-1] != attentions.shape[-2]:
        raise ValueError(f"attentions must be (depth, N, heads, T, T), got "
                         f"{tuple(attentions.shape) if isinstance(attentions, torch.Tensor) else type(attentions)}")
    if head_fusion not in ("mean", "max"):
        raise ValueError(f"head_fusion must be 'mean' or 'max', got {head_fusion!r}")
    rollout = None
    ### BEGIN SOLUTION
    fused = attentions.mean(dim=2) if head_fusion == "mean" else attentions.amax(dim=2)
    eye = torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device)
    rollout = eye.expand_as(fused[0]).clone()
    for layer in fused:
        mixed = (layer + eye) / 2
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed @ rollout
    ### END SOLUTION
    return rollout


def position_similarity(model: VisionTransformer) -> torch.Tensor:
    """Cosine similarity between the patches' position embeddings: ``(L, L)`` (class token left out).

    Row ``i`` reshaped to the ``(S/P, S/P)`` grid shows which positions patch ``i``'s embedding
    resembles; a trained ViT learns a 2-D neighbourhood structure it was never told about.
    """
    pos = model.pos_embedding.detach()[0, 1:]
    unit = pos / pos.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return unit @ unit.T


# --------------------------------------------------------------------------- training and evaluation


def vit_loss_fn(smoothing: float = 0.1, augment: bool = True, max_shift: int = 2, flip: bool = True):
    """``loss_fn(model, (images, labels))`` for :func:`helpers.train.train`.

    Training images are randomly flipped left-right and shifted by up to ``max_shift`` pixels
    (:func:`helpers.datasets.random_flip_and_shift`) when ``augment``; the loss is A4's
    label-smoothed cross-entropy (mean over the batch); the batch accuracy is logged as ``"acc"``.
    """
    def loss_fn(model: nn.Module, batch) -> tuple[torch.Tensor, dict]:
        images, labels = batch
        if augment:
            images = random_flip_and_shift(images, flip=flip, max_shift=max_shift)
        scores = model(images)
        loss = LabelSmoothingLoss(scores, labels, smoothing=smoothing, reduction="mean")
        return loss, {"acc": float((scores.argmax(1) == labels).float().mean())}

    return loss_fn


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Class probabilities ``(N, num_classes)`` for ``images (N, C, S, S)`` in ``[0, 1]``, in eval mode.

    ``model``: a :class:`VisionTransformer` or its export (:func:`helpers.export.load_exported`).
    """
    from helpers.export import is_exported

    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError("images must be a float tensor (N, C, S, S)")
    if images.shape[0] == 0:
        raise ValueError("images is empty: give at least one image")
    low, high = float(images.min()), float(images.max())
    if not (0.0 <= low and high <= 1.0):       # also False for NaN
        raise ValueError(f"images must lie in [0, 1] (the model normalises them itself), got values from {low} "
                         f"to {high}; divide 0..255 pixels by 255")
    switch = not is_exported(model)          # an export was made in eval mode and has no modes
    was_training = model.training
    if switch:
        model.eval()
    device = next(model.parameters()).device
    try:
        out = [F.softmax(model(images[i:i + batch_size].to(device)), dim=1).cpu()
               for i in range(0, images.shape[0], batch_size)]
    finally:
        if switch:
            model.train(was_training)
    return torch.cat(out)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of ``images`` whose most likely class is ``labels``."""
    return float((predict(model, images, batch_size).argmax(1) == labels.cpu()).float().mean())


# --------------------------------------------------------------------------- command line


def inference_metadata(model: VisionTransformer) -> dict:
    """What predicting needs besides the network: image size, channels, class names."""
    return {"image_size": model.image_size, "in_channels": model.in_channels, "class_names": model.class_names}


def save_export(model: VisionTransformer, path) -> Path:
    """Export ``model`` with ``helpers.export.export_model`` (raw images in, class scores out), with
    :func:`inference_metadata` stored inside the file."""
    from helpers.export import export_with_metadata

    return export_with_metadata(model, path, inference_metadata(model))


def _answer(network, images: torch.Tensor, meta: dict, score_thresh: float) -> torch.Tensor:
    """The command line's answer: class probabilities ``(N, C)`` of ``network`` (model or export)."""
    return predict(network, images)


def train_defaults(cfg) -> dict:
    """The notebook's training recipe (papers/vit.ipynb) for ``cfg.dataset`` in ``cfg.mode``: the images keep the
    dataset's size; the validation images are the last ``val_size`` of the training split."""
    return {"image_size": None, "train_size": cfg.pick(5000, None), "val_size": cfg.pick(1000, 5000),
            "epochs": cfg.pick(4, 10), "batch_size": 64, "lr": 2e-3}


def _training_data(cfg, settings: dict) -> dict:
    """The training images and the validation images after them (``{"train", "x_val", "y_val", ...}``)."""
    from torch.utils.data import TensorDataset

    from helpers.datasets import CLASS_NAMES, load_dataset

    num_val, num_train = settings["val_size"], settings["train_size"]
    x, y, _, _ = load_dataset(cfg.dataset, num_train=None if num_train is None else num_train + num_val,
                              num_test=1, cfg=cfg)
    if settings["image_size"] not in (None, x.shape[-1]):
        raise ValueError(f"the ViT trains at the dataset's image size ({x.shape[-1]} px for {cfg.dataset}); "
                         f"leave out --image-size (got {settings['image_size']})")
    if num_val >= x.shape[0]:
        raise ValueError(f"--val-size {num_val} leaves no training image out of {x.shape[0]}")
    return {"train": TensorDataset(x[:-num_val], y[:-num_val]), "x_val": x[-num_val:], "y_val": y[-num_val:],
            "class_names": list(CLASS_NAMES[cfg.dataset]), "dataset": cfg.dataset, "fast": cfg.fast}


def build_for_training(settings: dict, data: dict) -> tuple[VisionTransformer, dict]:
    """The notebook's ViT for the dataset (patch 7 on 28-px images, 4 on CIFAR-10's 32-px; smaller in fast mode)."""
    images = data["train"].tensors[0]
    cifar = data["dataset"] == "cifar10"
    shape = (dict(patch_size=7, emb_dim=32, depth=2, num_heads=2, mlp_dim=64) if data["fast"]
             else dict(patch_size=7, emb_dim=128, depth=6, num_heads=4, mlp_dim=256))
    if cifar:
        shape["patch_size"] = 4
    mean, std = CIFAR10_STATS if cifar else FASHION_MNIST_STATS
    config = dict(image_size=images.shape[-1], in_channels=images.shape[1], num_classes=len(data["class_names"]),
                  dropout=0.0, mean=mean, std=std, class_names=data["class_names"], **shape)
    return VisionTransformer(**config), config


def train_recipe():
    """``python -m papers.vit train``: the notebook's training (AdamW, warm-up then cosine, label smoothing)."""
    from A4_rnn_transformer.transformer import warmup_scheduler
    from helpers.train_command import Recipe

    return Recipe(
        "vit", "vit", "cifar10", "fashion_mnist", train_defaults, _training_data, build_for_training,
        vit_loss_fn(smoothing=0.1, max_shift=0),
        lambda model, s: torch.optim.AdamW(model.parameters(), lr=s["lr"], weight_decay=0.05),
        lambda optimizer, s, total: warmup_scheduler(optimizer, max(1, total // 10), total),
        lambda data: (lambda model: {"acc": accuracy(model, data["x_val"], data["y_val"])}))


def main(argv: list[str] | None = None) -> int:
    """``python -m papers.vit predict IMAGE... [--checkpoint P | --export P] [--out DIR]`` and ``export``.

    ``predict`` writes ``<out>/predictions.json``: per image its file, the top-3 classes and their
    probabilities.  ``export`` turns a saved model (``helpers.export.save_model``, which the
    notebook writes) into a ``torch.export`` file.  ``train [...]`` trains as the notebook does.  See
    ``helpers.export.paper_main``.
    """
    from helpers.export import paper_main

    return paper_main(argv, "vit", "ViT image classification: predict classes of image files, or export a model.",
                      VisionTransformer, inference_metadata, ("image_size", "in_channels", "class_names"), _answer,
                      detector=False, recipe=train_recipe())


if __name__ == "__main__":
    from helpers.export import run_command

    sys.exit(run_command(main))
