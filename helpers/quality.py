"""Measure the quality of generated images: Fréchet distance in a small classifier's features.

Looking at samples tells you a lot, but two grids are hard to rank by eye.  This
module gives a number in the spirit of FID (Heusel et al., 2017) that needs no
download: a small CNN is trained once on the dataset itself, and its penultimate
activations are the features.

* Fit a Gaussian to the features of real held-out images, ``N(mu_r, S_r)``, and one
  to the features of generated images, ``N(mu_g, S_g)``.
* Their Fréchet (2-Wasserstein) distance is
  ``|mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r^1/2 S_g S_r^1/2)^1/2)``.
  Lower is better; 0 means the two feature distributions have equal first and
  second moments.
* The *floor* is the same distance between real training and real test images:
  what a perfect generator would score with this many samples (the estimate is
  biased upwards for a finite N, so always compare figures made with the same N).

The classifier also says which class a sample looks like, which measures a
conditional model: :meth:`SampleScorer.class_accuracy`.

::

    from helpers.quality import sample_scorer
    scorer = sample_scorer(cfg)                # trains once, then loads from checkpoints/
    images = model.sample(scorer.num_samples)  # (N, 1, 28, 28) in [0, 1]
    print(scorer.frechet(images), scorer.floor)

Figures are comparable only between runs with the same dataset, mode (the fast
classifier is trained less) and ``num_samples``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from helpers.config import Config, get_config
from helpers.datasets import CLASS_NAMES, load_dataset
from helpers.train import checkpoint_path, train

# Samples whose values stray this far outside [0, 1] are refused (rounding is fine).
RANGE_TOLERANCE = 1e-4


class FeatureNet(nn.Module):
    """A small CNN classifier whose penultimate layer gives the features.

    conv3x3(16) - ReLU - maxpool2 - conv3x3(32) - ReLU - maxpool2 - avgpool to 7x7 -
    linear(feature_dim) - ReLU [features] - linear(num_classes) [logits].
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, feature_dim: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(7), nn.Flatten(),
            nn.Linear(32 * 7 * 7, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> features (N, feature_dim)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> class scores (N, num_classes)."""
        return self.head(self.body(x))


# --------------------------------------------------------------------------- the distance


def gaussian_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of a set of feature vectors.

    Args:
        features: (N, D) with N >= 2.

    Returns:
        mean (D,) and unbiased covariance (D, D), both float64.
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        raise ValueError(f"features must be a tensor of shape (N, D), got {_describe(features)}")
    if features.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {features.shape[0]}")
    x = features.detach().to(torch.float64)
    mean = x.mean(dim=0)
    centred = x - mean
    cov = centred.T @ centred / (x.shape[0] - 1)
    return mean, cov


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite (D, D) matrix."""
    eigenvalues, eigenvectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    roots = eigenvalues.clamp(min=0).sqrt()
    return (eigenvectors * roots) @ eigenvectors.T


def frechet_distance(mean_a: torch.Tensor, cov_a: torch.Tensor,
                     mean_b: torch.Tensor, cov_b: torch.Tensor) -> float:
    """Fréchet distance between the Gaussians N(mean_a, cov_a) and N(mean_b, cov_b).

    ``|mean_a - mean_b|^2 + tr(cov_a) + tr(cov_b) - 2 tr((cov_a^1/2 cov_b cov_a^1/2)^1/2)``;
    the last trace equals ``tr((cov_a cov_b)^1/2)`` and is computed from the
    eigenvalues of a symmetric matrix, which stays accurate for singular covariances.

    Args:
        mean_a, mean_b: (D,); cov_a, cov_b: (D, D) symmetric positive semi-definite.

    Returns:
        the distance, a float >= 0 (computed in float64).
    """
    for name, mean, cov in (("a", mean_a, cov_a), ("b", mean_b, cov_b)):
        if not isinstance(mean, torch.Tensor) or mean.dim() != 1:
            raise ValueError(f"mean_{name} must be a tensor of shape (D,), got {_describe(mean)}")
        if not isinstance(cov, torch.Tensor) or cov.shape != (mean.shape[0], mean.shape[0]):
            raise ValueError(f"cov_{name} must have shape (D, D) = {(mean.shape[0],) * 2} to match mean_{name}, "
                             f"got {_describe(cov)}")
    if mean_a.shape != mean_b.shape:
        raise ValueError(f"the two Gaussians must have the same dimension, got {mean_a.shape[0]} and {mean_b.shape[0]}")
    mean_a, cov_a, mean_b, cov_b = (t.detach().to(torch.float64) for t in (mean_a, cov_a, mean_b, cov_b))
    if not all(torch.isfinite(t).all() for t in (mean_a, cov_a, mean_b, cov_b)):
        raise ValueError("means and covariances must be finite")
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    distance = (mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return max(float(distance), 0.0)


def frechet_distance_between(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (N_a, D) and (N_b, D)."""
    return frechet_distance(*gaussian_statistics(features_a), *gaussian_statistics(features_b))


# --------------------------------------------------------------------------- the scorer


@dataclass
class SampleScorer:
    """Scores generated images against real held-out images of one dataset.

    Attributes:
        net: the trained :class:`FeatureNet` (eval mode).
        image_shape: (C, H, W) of the dataset's images.
        real_mean, real_cov: feature statistics of ``num_samples`` real test images.
        num_samples: how many images to generate per model, so figures stay comparable.
        classifier_accuracy: the classifier's accuracy on the real test images given to :meth:`fit`.
        floor: Fréchet distance between ``num_samples`` real training images and the
            real test images (what a perfect generator would score).

    The last four are set by :meth:`fit`; :func:`sample_scorer` builds a fitted scorer.
    """

    net: FeatureNet
    image_shape: tuple
    num_samples: int
    real_mean: torch.Tensor = field(init=False)
    real_cov: torch.Tensor = field(init=False)
    classifier_accuracy: float = field(init=False)
    floor: float = field(init=False)

    def fit(self, x_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor) -> SampleScorer:
        """Fit the real statistics to ``x_test[:num_samples]``; measure the classifier and the floor.

        Args:
            x_train: (N_train, C, H, W) real training images, N_train >= num_samples.
            x_test: (N_test, C, H, W) real held-out images, N_test >= num_samples; y_test: (N_test,) labels.

        Returns:
            the scorer itself.
        """
        self.real_mean, self.real_cov = gaussian_statistics(self.features(x_test[:self.num_samples]))
        self.classifier_accuracy = float((self.predict(x_test) == y_test).float().mean())
        self.floor = self.frechet(x_train[:self.num_samples])
        return self

    def _check_images(self, images) -> torch.Tensor:
        """(N, C, H, W) or (N, C*H*W) in [0, 1] -> (N, C, H, W) float32 on the net's device."""
        size = math.prod(self.image_shape)
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            raise TypeError(f"images must be a floating-point tensor, got {_describe(images)}")
        if images.dim() == 2 and images.shape[1] == size:
            images = images.reshape(-1, *self.image_shape)
        if images.dim() != 4 or tuple(images.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"images must have shape (N, {', '.join(map(str, self.image_shape))}) or (N, {size}), "
                             f"got {tuple(images.shape)}")
        if images.shape[0] == 0:
            raise ValueError("images is empty")
        if not torch.isfinite(images).all():
            raise ValueError("images contain NaN or infinite values")
        low, high = float(images.min()), float(images.max())
        if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
            raise ValueError(f"images must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]; "
                             "a tanh generator's output in [-1, 1] becomes (x + 1) / 2")
        device = next(self.net.parameters()).device
        return images.detach().to(device=device, dtype=torch.float32)

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """images (N, C, H, W) or (N, C*H*W) in [0, 1] -> features (N, D) float64 on the CPU."""
        images = self._check_images(images)
        self.net.eval()
        parts = [self.net.features(chunk).cpu() for chunk in images.split(batch_size)]
        return torch.cat(parts).to(torch.float64)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """images -> the classifier's labels (N,) int64 on the CPU."""
        images = self._check_images(images)
        self.net.eval()
        return torch.cat([self.net(chunk).argmax(dim=1).cpu() for chunk in images.split(batch_size)])

    def frechet(self, images: torch.Tensor) -> float:
        """Fréchet distance between ``images`` (N >= 2, ideally ``num_samples``) and the real test images."""
        mean, cov = gaussian_statistics(self.features(images))
        return frechet_distance(mean, cov, self.real_mean, self.real_cov)

    def class_accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """Fraction of ``images`` (N, ...) that the classifier puts in the requested class ``labels`` (N,)."""
        predicted = self.predict(images)
        if not isinstance(labels, torch.Tensor) or labels.shape != predicted.shape:
            raise ValueError(f"labels must be a tensor of shape ({predicted.shape[0]},), got {_describe(labels)}")
        return float((predicted == labels.cpu()).float().mean())


def train_feature_net(x_train: torch.Tensor, y_train: torch.Tensor, num_classes: int, *, num_epochs: int,
                      checkpoint=None, device="cpu", seed: int = 0, progress: bool = False) -> FeatureNet:
    """Train a :class:`FeatureNet` on (x_train (N, C, H, W), y_train (N,)) with Adam, or load it from ``checkpoint``.

    The global random state is left as it was, so a notebook gives the same results
    whether the classifier was trained now or loaded from its checkpoint.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureNet(x_train.shape[1], num_classes).to(device)
        loader = DataLoader(TensorDataset(x_train, y_train), batch_size=128, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        train(net, optimizer, loader, _classification_loss, num_epochs=num_epochs, checkpoint=checkpoint,
              device=device, progress=progress)
    return net.eval()


def _classification_loss(net: FeatureNet, batch) -> tuple[torch.Tensor, dict]:
    x, y = batch
    scores = net(x)
    return F.cross_entropy(scores, y), {"acc": float((scores.argmax(dim=1) == y).float().mean())}


def sample_scorer(cfg: Config | None = None, num_samples: int | None = None,
                  progress: bool = False) -> SampleScorer:
    """The scorer of ``cfg.dataset``: trains its classifier once (then loads it) and fits the real statistics.

    Fast mode trains on 5,000 images for 2 epochs, and scores with 1,000 samples against the
    first 2,000 test images; full mode trains on the whole training split for 8 epochs and
    uses 10,000 samples and the whole test split.  The
    classifier is saved to ``checkpoints/<mode>/quality_<dataset>.pt`` (weights only).

    Args:
        cfg: the notebook's config (dataset, mode, seed, device); default ``get_config()``.
        num_samples: override the number of samples per figure (at most the test split's size).
        progress: show the classifier's training progress bar.
    """
    cfg = get_config() if cfg is None else cfg
    if cfg.dataset not in CLASS_NAMES:
        raise ValueError(f"cfg.dataset must be one of {sorted(CLASS_NAMES)}, got {cfg.dataset!r}")
    x_train, y_train, x_test, y_test = load_dataset(cfg.dataset, num_train=cfg.pick(5000, None),
                                                    num_test=cfg.pick(2000, None), cfg=cfg)
    num_samples = cfg.pick(1000, 10000) if num_samples is None else num_samples
    if not isinstance(num_samples, int) or not 2 <= num_samples <= min(len(x_train), len(x_test)):
        raise ValueError(f"num_samples must be an int in [2, {min(len(x_train), len(x_test))}], got {num_samples!r}")
    net = train_feature_net(x_train, y_train, len(CLASS_NAMES[cfg.dataset]), num_epochs=cfg.pick(2, 8),
                            checkpoint=checkpoint_path(f"quality_{cfg.dataset}", cfg), device=cfg.device,
                            seed=cfg.seed, progress=progress)
    return SampleScorer(net, tuple(x_train.shape[1:]), num_samples).fit(x_train, x_test, y_test)


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__
