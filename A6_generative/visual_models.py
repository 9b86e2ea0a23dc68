"""The networks and pictures of A6's network visualization and style transfer (given code).

Online, both notebooks use what EECS 498 uses: torchvision's SqueezeNet 1.1 with ImageNet
weights (:data:`helpers.backbone.SQUEEZENET_1_1`, downloaded once into ``<DL4CV_DATA_DIR>/weights``
by :func:`helpers.backbone.weights_file`; refused offline unless already there).  Offline:

* network visualization looks inside the small Fashion-MNIST classifier the course trains and
  caches for its sample scores (:func:`helpers.quality.sample_scorer`);
* style transfer reads the features of a SqueezeNet 1.1 **with random weights** (fixed by a seed):
  random convolutions with ReLUs and pooling still measure local textures at several scales, which
  is what a Gram matrix needs, but they know no objects, so content is kept as pixels-and-edges
  rather than as "a temple".

Images are ``(N, C, H, W)`` float tensors with values in ``[0, 1]``; :func:`preprocess` maps RGB
images to the ImageNet-normalised input of SqueezeNet and :func:`deprocess` maps them back.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from helpers.backbone import IMAGENET_MEAN, IMAGENET_STD, SQUEEZENET_1_1, weights_file

#: Where the offline style-transfer network's random weights come from.
RANDOM_FEATURES_SEED = 0


def _stats(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
    return mean, std


def rgb_images(img, name: str = "img") -> None:
    """``img`` must be a floating ``(N, 3, H, W)`` tensor."""
    if not isinstance(img, torch.Tensor) or not img.is_floating_point() or img.dim() != 4 or img.shape[1] != 3:
        shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise ValueError(f"{name} must be a floating-point RGB batch (N, 3, H, W), got {shape}")


def preprocess(img: torch.Tensor) -> torch.Tensor:
    """RGB images ``(N, 3, H, W)`` in [0, 1] -> SqueezeNet's input: ``(img - mean) / std`` per channel."""
    rgb_images(img)
    mean, std = _stats(img)
    return (img - mean) / std


def deprocess(img: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`preprocess`, clamped to [0, 1] (for display)."""
    rgb_images(img)
    mean, std = _stats(img)
    return (img * std + mean).clamp(0, 1)


class Normalize(nn.Module):
    """A layer that applies :func:`preprocess`, so a model takes images in [0, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return preprocess(x)


def frozen(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with every parameter's ``requires_grad`` off: gradients go to images only."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def squeezenet(pretrained: bool, user: str = "SqueezeNet 1.1 (pretrained=True)") -> nn.Module:
    """torchvision's SqueezeNet 1.1, frozen: ImageNet weights, or random ones drawn from :data:`RANDOM_FEATURES_SEED`.

    The random draw is torchvision's own initialisation (Kaiming-uniform convolutions), made inside
    a forked random state so that the caller's random stream is left as it was.
    """
    from torchvision.models import squeezenet1_1

    if pretrained:
        path = weights_file(SQUEEZENET_1_1, user=user)
        model = squeezenet1_1(weights=None)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return frozen(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_FEATURES_SEED)
        return frozen(squeezenet1_1(weights=None))


def imagenet_classifier() -> tuple[nn.Module, list]:
    """SqueezeNet 1.1 with ImageNet weights taking images in [0, 1]; and its 1,000 class names."""
    from torchvision.models import SqueezeNet1_1_Weights

    model = nn.Sequential(Normalize(), squeezenet(True, "the ImageNet classifier of network_visualization"))
    return model.eval(), list(SqueezeNet1_1_Weights.IMAGENET1K_V1.meta["categories"])


def feature_cnn(pretrained: bool) -> nn.Sequential:
    """SqueezeNet 1.1's convolutional part (``.features``, 13 layers), ImageNet-trained or random (offline)."""
    return squeezenet(pretrained, "style transfer's feature network").features


def extract_features(x: torch.Tensor, cnn: nn.Sequential) -> list[torch.Tensor]:
    """The output of every layer of ``cnn`` for the preprocessed images ``x`` (N, 3, H, W), in order.

    ``feats[i]`` is ``(N, C_i, H_i, W_i)``, the output of ``cnn[i]`` (EECS 498's ``extract_features``).
    """
    if not isinstance(cnn, nn.Sequential):
        raise TypeError(f"cnn must be an nn.Sequential of layers (SqueezeNet's .features), got {type(cnn).__name__}")
    rgb_images(x, "x")
    feats = []
    for layer in cnn:
        x = layer(x)
        feats.append(x)
    return feats


def resize(img: torch.Tensor, size: int) -> torch.Tensor:
    """Images ``(N, C, H, W)`` resized (antialiased) so that their shorter side is ``size`` pixels."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8 (pixels of the shorter side), got {size!r}")
    h, w = img.shape[-2:]
    scale = size / min(h, w)
    out = F.interpolate(img, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear",
                        align_corners=False, antialias=True)
    return out.clamp(0, 1)


def sample_photos(size: int = 192) -> dict[str, torch.Tensor]:
    """The two photographs scikit-learn ships (no download): ``{"temple": (1, 3, h, w), "flower": ...}`` in [0, 1].

    Both are 427 x 640 JPEGs (a Chinese temple, a flower); they are resized so the shorter side is ``size``.
    """
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    names = {"china.jpg": "temple", "flower.jpg": "flower"}
    out = {}
    for filename, image in zip(photos.filenames, photos.images, strict=True):
        x = torch.tensor(image).permute(2, 0, 1)[None].float() / 255
        out[names.get(Path(filename).name, Path(filename).stem)] = resize(x, size)
    return out


def load_image(path, size: int) -> torch.Tensor:
    """An image file (any format PIL reads) as ``(1, 3, h, w)`` in [0, 1], shorter side ``size``."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}: give the path of a JPEG or PNG")
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        x = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(rgb.height, rgb.width, 3)
    return resize(x.permute(2, 0, 1)[None].float() / 255, size)
