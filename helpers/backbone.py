"""Image trunks shared by the course's models: one home for the CNNs that turn images into feature maps.

* :data:`IMAGENET_MEAN`, :data:`IMAGENET_STD` -- the channel statistics every model that takes
  images in ``[0, 1]`` normalises with, inside the model;
* :func:`regnet_weights` -- torchvision's ImageNet weights of RegNetX-400MF, **refused offline**
  (``DL4CV_OFFLINE=1``) unless they are already in torch's hub cache, with a message saying what
  to do; :func:`guarded_weights` is that guard for any torchvision weights (A6: SqueezeNet 1.1);
* :class:`RegNetTrunk` -- RegNetX-400MF (the EECS 498 backbone of A4's captioner and A5's
  detectors) cut after its stride-8, 16 and 32 stages (``up_to="c4"`` stops at stride 16, A4's cut);
* :class:`SmallTrunk` -- a small plain CNN trained from scratch (A5's detectors offline, DETR).

Both trunks return a dict of feature maps ``{"c3": (N, C3, H/8, W/8), "c4": ..., "c5": ...}``
with :attr:`out_channels` channels each.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "RegNetTrunk", "SmallTrunk", "guarded_weights", "regnet_weights"]

#: ImageNet channel statistics (RGB): images in [0, 1] are normalised with them inside the models.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def regnet_weights(user: str = "a pretrained RegNetX-400MF trunk"):
    """The ImageNet weights of RegNetX-400MF (``RegNet_X_400MF_Weights.IMAGENET1K_V1``).

    torchvision downloads them on first use.  Offline (``DL4CV_OFFLINE=1``) that is refused unless
    the file is already in torch's hub cache (:func:`guarded_weights`).

    Args:
        user: what needs the weights, named in the error (``"ImageEncoder(pretrained=True)"``...).

    Raises:
        FileNotFoundError: offline and not cached; the message gives the URL, the cache folder and
            the ways out (``pretrained=False``, put the file there, or ``DL4CV_OFFLINE=0``).
    """
    from torchvision.models import RegNet_X_400MF_Weights

    return guarded_weights(RegNet_X_400MF_Weights.IMAGENET1K_V1, "RegNetX-400MF", user,
                           "use pretrained=False (a small CNN trained from scratch)")


def guarded_weights(weights, model_name: str, user: str, instead: str):
    """torchvision ``weights`` (a ``WeightsEnum`` member), refused offline unless already cached.

    Args:
        weights: e.g. ``SqueezeNet1_1_Weights.IMAGENET1K_V1``; torchvision downloads its file into
            torch's hub cache on first use.
        model_name: the network, for the message (``"SqueezeNet 1.1"``).
        user: what needs the weights, named in the message.
        instead: the offline way out, completing "Either ..." (``"use pretrained=False (...)"``).

    Raises:
        FileNotFoundError: ``DL4CV_OFFLINE=1`` and the file is not in the cache; the message gives the
            URL, the cache folder and the ways out.
    """
    from helpers.config import get_config

    cached = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    if get_config().offline and not cached.is_file():
        raise FileNotFoundError(
            f"{user} needs the ImageNet weights of {model_name} ({weights.url}), but DL4CV_OFFLINE=1 and "
            f"they are not in {cached.parent}. Either {instead}, "
            "or put the file there, or run with DL4CV_OFFLINE=0 to download it.")
    return weights


class RegNetTrunk(nn.Module):
    """torchvision's RegNetX-400MF cut after its stride-8, 16 and 32 stages.

    Args:
        pretrained: ImageNet weights (:func:`regnet_weights`: refused offline unless cached) or
            random initialisation.
        up_to: the last map kept, ``"c5"`` (stride 32, A5's detectors) or ``"c4"`` (stride 16, A4's
            captioner: small images still give a grid worth attending over).
        user: what builds the trunk, named in the offline error.

    ``forward(x (N, 3, H, W))`` (already normalised) returns ``{"c3": (N, 64, H/8, W/8),
    "c4": (N, 160, H/16, W/16)[, "c5": (N, 400, H/32, W/32)]}``.
    """

    out_channels = {"c3": 64, "c4": 160, "c5": 400}

    def __init__(self, pretrained: bool = False, up_to: str = "c5", user: str = "RegNetTrunk(pretrained=True)"):
        super().__init__()
        from torchvision.models import regnet_x_400mf

        if up_to not in ("c4", "c5"):
            raise ValueError(f"up_to must be 'c4' or 'c5', got {up_to!r}")
        net = regnet_x_400mf(weights=regnet_weights(user) if pretrained else None)
        self.stem = net.stem  # stride 2
        blocks = net.trunk_output
        self.stage3 = nn.Sequential(blocks.block1, blocks.block2)  # strides 4, 8
        self.stage4 = blocks.block3  # stride 16
        self.stage5 = blocks.block4 if up_to == "c5" else None  # stride 32

    def forward(self, x: torch.Tensor) -> dict:
        c3 = self.stage3(self.stem(x))
        c4 = self.stage4(c3)
        return {"c3": c3, "c4": c4} if self.stage5 is None else {"c3": c3, "c4": c4, "c5": self.stage5(c4)}


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution (padding 1, no bias) -> BatchNorm -> ReLU; ``stride=2`` halves ``H`` and ``W``."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class SmallTrunk(nn.Module):
    """A small from-scratch trunk: the offline choice of A5's detectors, and DETR's backbone.

    Five stride-2 stages of plain 3x3 conv-BN-ReLU layers (channels 24, 32, 64, 96, 128; two
    convolutions per stage from the second on): about 0.47 M parameters and ~26 M multiply-adds
    for a 96 x 96 image, so that a detector trains on a 2-core CPU in minutes.  Returns the
    stride-8, 16 and 32 maps ``{"c3", "c4", "c5"}`` with :attr:`out_channels` channels.
    """

    out_channels = {"c3": 64, "c4": 96, "c5": 128}

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(_conv_bn_relu(3, 24, stride=2),  # stride 2
                                  _conv_bn_relu(24, 32, stride=2), _conv_bn_relu(32, 32))  # stride 4
        self.stage3 = nn.Sequential(_conv_bn_relu(32, 64, stride=2), _conv_bn_relu(64, 64))  # stride 8
        self.stage4 = nn.Sequential(_conv_bn_relu(64, 96, stride=2), _conv_bn_relu(96, 96))  # stride 16
        self.stage5 = nn.Sequential(_conv_bn_relu(96, 128, stride=2), _conv_bn_relu(128, 128))  # stride 32

    def forward(self, x: torch.Tensor) -> dict:
        c3 = self.stage3(self.stem(x))
        c4 = self.stage4(c3)
        return {"c3": c3, "c4": c4, "c5": self.stage5(c4)}
