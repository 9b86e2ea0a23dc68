"""Image trunks shared by the course's models: one home for the CNNs that turn images into feature maps.

* :data:`IMAGENET_MEAN`, :data:`IMAGENET_STD` -- the channel statistics every model that takes
  images in ``[0, 1]`` normalises with, inside the model;
* :func:`weights_file` -- **the one weight download of the course**: a pretrained file (any model:
  ``name``, ``url``, ``file_name``, optional SHA-256 or its prefix) downloaded once into
  ``<DL4CV_DATA_DIR>/weights/``, refused offline (``DL4CV_OFFLINE=1``) unless cached, with one
  :class:`WeightsNotFoundError` naming the file, the URL, where to put it by hand and the
  way without it (``WeightFile.instead``); :func:`cached_weights` finds a file without downloading;
* :data:`KNOWN_WEIGHTS` -- the weight files the course uses (the environment report lists them):
  :data:`REGNET_X_400MF` (A4, A5), :data:`SQUEEZENET_1_1` (A6);
* :func:`regnet_weights` / :func:`regnet_available` -- RegNetX-400MF's ImageNet weights through
  :func:`weights_file`, and whether a pretrained trunk can be built now (online, or cached);
* :class:`RegNetTrunk` -- RegNetX-400MF (the EECS 498 backbone of A4's captioner and A5's
  detectors) cut after its stride-8, 16 and 32 stages (``up_to="c4"`` stops at stride 16, A4's cut);
* :class:`SmallTrunk` -- a small plain CNN trained from scratch (A5's detectors offline, DETR);
* :func:`make_trunk` -- one of the two for A5's detectors and DETR: its architecture (``trunk``) and
  whether it starts from ImageNet weights (``pretrained``) are separate, so a model trained from a
  pretrained trunk is rebuilt from its saved weights without downloading anything.

Both trunks return a dict of feature maps ``{"c3": (N, C3, H/8, W/8), "c4": ..., "c5": ...}``
with :attr:`out_channels` channels each.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "KNOWN_WEIGHTS", "REGNET_X_400MF", "SQUEEZENET_1_1", "TRUNKS",
           "RegNetTrunk", "SmallTrunk", "WeightFile", "WeightsNotFoundError", "cached_weights", "make_trunk",
           "regnet_available",
           "regnet_weights", "weights_file", "weights_folder"]

#: ImageNet channel statistics (RGB): images in [0, 1] are normalised with them inside the models.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsNotFoundError(FileNotFoundError):
    """A pretrained weight file is neither cached nor downloadable (offline, or the download failed)."""


@dataclass(frozen=True)
class WeightFile:
    """A pretrained weight file: what it is, where it comes from, how to check it.

    ``sha256``: the file's SHA-256 in hex, or a prefix of it (torchvision's file names end with the
    first 8 hex digits of theirs); ``None``: not checked.  ``instead``: what works without the file
    (the environment report names it).
    """

    name: str
    url: str
    file_name: str
    sha256: str | None = None
    instead: str = "train from scratch (PRETRAINED = False / pretrained=False)"


#: RegNetX-400MF, ImageNet (torchvision's ``RegNet_X_400MF_Weights.IMAGENET1K_V1``): A4's captioner,
#: A5's detectors with ``pretrained=True``.
REGNET_X_400MF = WeightFile("the ImageNet weights of RegNetX-400MF",
                            "https://download.pytorch.org/models/regnet_x_400mf-adf1edd5.pth",
                            "regnet_x_400mf-adf1edd5.pth", sha256="adf1edd5")
#: SqueezeNet 1.1, ImageNet (torchvision's ``SqueezeNet1_1_Weights.IMAGENET1K_V1``): A6's network
#: visualization and style transfer when online.
SQUEEZENET_1_1 = WeightFile("the ImageNet weights of SqueezeNet 1.1",
                            "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
                            "squeezenet1_1-b8a52dc0.pth", sha256="b8a52dc0",
                            instead="A6's visualization and style transfer use their offline models (DL4CV_OFFLINE=1)")
#: Every weight file the course downloads, by short name (the environment report lists them).
KNOWN_WEIGHTS = {"regnet_x_400mf": REGNET_X_400MF, "squeezenet1_1": SQUEEZENET_1_1}


def weights_folder(cfg) -> Path:
    """``<data_dir>/weights``: where the course keeps (and a teacher puts) downloaded weight files."""
    return Path(cfg.data_dir) / "weights"


def _check_hash(path: Path, sha256: str | None) -> str | None:
    """``None`` when the file's SHA-256 starts with ``sha256`` (or nothing to check), else the digest."""
    if not sha256:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    found = digest.hexdigest()
    return None if found.startswith(sha256.lower()) else found


def cached_weights(weights: WeightFile, cfg=None) -> Path | None:
    """Where ``weights`` already are, or ``None``: ``<DL4CV_DATA_DIR>/weights/<file_name>``, else torch's
    hub cache (``<torch hub dir>/checkpoints/``, where torchvision puts what it downloads).  Not hashed."""
    from helpers.config import get_config

    cfg = get_config() if cfg is None else cfg
    for folder in (weights_folder(cfg), Path(torch.hub.get_dir()) / "checkpoints"):
        if (folder / weights.file_name).is_file():
            return folder / weights.file_name
    return None


def _weights_error(weights: WeightFile, reason: str, user: str, cfg) -> WeightsNotFoundError:
    destination = weights_folder(cfg) / weights.file_name
    return WeightsNotFoundError(
        f"{user} needs {weights.name}: the file {weights.file_name}, from {weights.url}, but {reason}.\n"
        f"  Remedies:\n"
        f"  1. put the file there by hand: {destination}\n"
        f"     (on a machine with internet: curl -L -o {weights.file_name} {weights.url}, then copy it);\n"
        f"  2. without the file: {weights.instead};\n"
        f"  3. with internet, run with DL4CV_OFFLINE=0 and it is downloaded once to {destination.parent}.")


def weights_file(weights: WeightFile, user: str | None = None, cfg=None) -> Path:
    """The local path of a pretrained weight file, downloaded once if needed: every download of weights.

    Looks in :func:`cached_weights`; else, unless ``DL4CV_OFFLINE=1``, downloads ``weights.url`` to
    ``<DL4CV_DATA_DIR>/weights/<file_name>`` (through a ``.part`` file renamed when complete, so an
    interrupted download leaves nothing half-written).  The file's SHA-256 is checked when
    ``weights.sha256`` is given, on the cached file too (a damaged file is named, never loaded).

    Args:
        weights: the :class:`WeightFile` (name, URL, file name, hash).
        user: what needs the file, named in the error (default: ``weights.name``).
        cfg: data folder and offline flag; default :func:`helpers.config.get_config`.

    Raises:
        WeightsNotFoundError: offline and not cached, the download failed, or the hash differs; the
            message names the file, the URL, where to put it by hand and ``weights.instead``.
    """
    from helpers.config import get_config

    cfg = get_config() if cfg is None else cfg
    user = user or f"this model ({weights.name})"
    path = cached_weights(weights, cfg)
    if path is None:
        if cfg.offline:
            raise _weights_error(weights, "DL4CV_OFFLINE=1 forbids downloading and it is not cached", user, cfg)
        path = weights_folder(cfg) / weights.file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        try:
            torch.hub.download_url_to_file(weights.url, str(partial), progress=True)
        except Exception as exc:
            partial.unlink(missing_ok=True)
            raise _weights_error(weights, f"the download failed ({type(exc).__name__}: {exc})", user,
                                 cfg) from exc
        os.replace(partial, path)
    found = _check_hash(path, weights.sha256)
    if found is not None:
        raise _weights_error(weights, f"{path} is damaged (SHA-256 {found[:16]}..., expected {weights.sha256}...);"
                             " delete it", user, cfg)
    return path


def regnet_weights(user: str = "a pretrained RegNetX-400MF trunk", cfg=None) -> dict:
    """The ImageNet weights of RegNetX-400MF as a state dict (torchvision's ``regnet_x_400mf`` keys).

    Read from :func:`weights_file` (downloaded once; refused offline unless cached).

    Args:
        user: what needs the weights, named in the error (``"ImageEncoder(pretrained=True)"``...).

    Raises:
        WeightsNotFoundError (a ``FileNotFoundError``): offline and not cached, or the download failed;
            the message gives the file, the URL, where to put it and ``pretrained=False``.
    """
    path = weights_file(REGNET_X_400MF, user=user, cfg=cfg)
    return torch.load(path, map_location="cpu", weights_only=True)


def regnet_available(cfg=None) -> bool:
    """Whether a pretrained RegNetX-400MF trunk can be built now: online, or its weights cached."""
    from helpers.config import get_config

    cfg = get_config() if cfg is None else cfg
    return not cfg.offline or cached_weights(REGNET_X_400MF, cfg) is not None


class RegNetTrunk(nn.Module):
    """torchvision's RegNetX-400MF cut after its stride-8, 16 and 32 stages.

    Args:
        pretrained: ImageNet weights (:func:`regnet_weights`: downloaded once, refused offline unless cached) or
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
        net = regnet_x_400mf(weights=None)
        if pretrained:
            net.load_state_dict(regnet_weights(user))
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


#: The trunks :func:`make_trunk` builds.
TRUNKS = {"regnet": RegNetTrunk, "small": SmallTrunk}


def make_trunk(pretrained: bool = False, trunk: str | None = None, user: str = "the detector") -> nn.Module:
    """A detector's trunk: ``"regnet"`` (RegNetX-400MF) or ``"small"`` (:class:`SmallTrunk`, from scratch).

    Args:
        pretrained: start from the ImageNet weights (RegNet only; downloaded once, refused offline
            unless cached: :func:`regnet_weights`).
        trunk: the architecture; ``None``: ``"regnet"`` when ``pretrained``, else ``"small"``.
            ``trunk="regnet", pretrained=False`` is a randomly initialised RegNet, the way a model
            trained from the pretrained trunk is rebuilt before its saved weights are loaded.
        user: what builds the trunk, named in the offline error.

    Returns ``c3, c4, c5`` maps (strides 8, 16, 32) with ``out_channels`` channels (see the classes).
    """
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be a bool, got {pretrained!r}")
    trunk = ("regnet" if pretrained else "small") if trunk is None else trunk
    if trunk not in TRUNKS:
        raise ValueError(f"trunk must be one of {sorted(TRUNKS)} or None, got {trunk!r}")
    if trunk == "small":
        if pretrained:
            raise ValueError("the small trunk has no pretrained weights: use trunk='regnet' or pretrained=False")
        return SmallTrunk()
    return RegNetTrunk(pretrained=pretrained, user=f"{user}(pretrained=True)")
