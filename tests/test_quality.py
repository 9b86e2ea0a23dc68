"""helpers.quality: the Fréchet distance against a direct scipy computation, and the sample scorer."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from helpers.config import get_config
from helpers.datasets import load_dataset
from helpers.quality import (
    FeatureNet,
    frechet_distance,
    frechet_distance_between,
    gaussian_statistics,
    sample_scorer,
)


def scipy_frechet(mean_a, cov_a, mean_b, cov_b) -> float:
    """The textbook formula with scipy's general matrix square root of cov_a @ cov_b."""
    mean_a, cov_a, mean_b, cov_b = (np.asarray(t, dtype=np.float64) for t in (mean_a, cov_a, mean_b, cov_b))
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))


def random_gaussian(dim: int, rank: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    factor = torch.randn(dim, rank, generator=g, dtype=torch.float64)
    return torch.randn(dim, generator=g, dtype=torch.float64), factor @ factor.T / rank


@pytest.mark.parametrize("dim, rank_a, rank_b", [(1, 1, 1), (5, 5, 5), (16, 40, 40), (16, 40, 6), (30, 10, 12)])
def test_frechet_distance_matches_scipy(dim, rank_a, rank_b):
    mean_a, cov_a = random_gaussian(dim, rank_a, seed=dim + rank_a)
    mean_b, cov_b = random_gaussian(dim, rank_b, seed=100 + dim + rank_b)
    ours = frechet_distance(mean_a, cov_a, mean_b, cov_b)
    assert ours == pytest.approx(scipy_frechet(mean_a, cov_a, mean_b, cov_b), rel=1e-6, abs=1e-8)
    # symmetric; singular covariances cost precision: sqrt of a rounding-sized eigenvalue is ~1e-8
    assert ours == pytest.approx(frechet_distance(mean_b, cov_b, mean_a, cov_a), rel=1e-6)


def test_frechet_distance_closed_forms():
    mean, cov = random_gaussian(8, 20, seed=1)
    assert frechet_distance(mean, cov, mean, cov) == pytest.approx(0.0, abs=1e-9)
    shift = torch.arange(8, dtype=torch.float64)
    assert frechet_distance(mean, cov, mean + shift, cov) == pytest.approx(float(shift.square().sum()), rel=1e-9)
    # one dimension: (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2
    one = frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[9.0]]))
    assert one == pytest.approx(9.0 + 1.0)
    # commuting (diagonal) covariances: sum of (sqrt(a_i) - sqrt(b_i))^2
    a, b = torch.tensor([1.0, 4.0, 0.0]), torch.tensor([9.0, 1.0, 2.0])
    zero = torch.zeros(3)
    expected = float((a.sqrt() - b.sqrt()).square().sum())
    assert frechet_distance(zero, torch.diag(a), zero, torch.diag(b)) == pytest.approx(expected)


def test_gaussian_statistics_match_numpy():
    x = torch.randn(50, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, cov = gaussian_statistics(x)
    assert mean.dtype == cov.dtype == torch.float64
    np.testing.assert_allclose(mean.numpy(), x.numpy().mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cov.numpy(), np.cov(x.numpy(), rowvar=False), rtol=1e-10, atol=1e-12)
    y = x + 3.0
    assert frechet_distance_between(x, y) == pytest.approx(7 * 9.0, rel=1e-9)


def test_bad_statistics_raise_clear_errors():
    mean, cov = random_gaussian(4, 4, seed=0)
    with pytest.raises(ValueError, match=r"cov_a must have shape \(D, D\)"):
        frechet_distance(mean, cov[:3], mean, cov)
    with pytest.raises(ValueError, match="same dimension"):
        frechet_distance(mean, cov, mean[:3], cov[:3, :3])
    with pytest.raises(ValueError, match=r"mean_b must be a tensor of shape \(D,\)"):
        frechet_distance(mean, cov, cov, cov)
    with pytest.raises(ValueError, match="finite"):
        frechet_distance(mean, cov, mean * math.nan, cov)
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        gaussian_statistics(torch.zeros(5))
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_statistics(torch.zeros(1, 5))


def test_feature_net_shapes():
    net = FeatureNet(in_channels=3, num_classes=7, feature_dim=32)
    x = torch.rand(4, 3, 32, 32)
    assert net.features(x).shape == (4, 32)
    assert net(x).shape == (4, 7)


@pytest.fixture(scope="module")
def scorer():
    return sample_scorer(get_config(dataset="fashion_mnist"))


@pytest.fixture(scope="module")
def fashion():
    return load_dataset("fashion_mnist", num_train=2000, num_test=2000, cfg=get_config(dataset="fashion_mnist"))


def test_scorer_ranks_real_above_blurred_above_noise(scorer, fashion):
    x_train, _, x_test, _ = fashion
    n = scorer.num_samples
    assert scorer.classifier_accuracy > 0.6  # fast mode: 5,000 images, 2 epochs
    real = scorer.frechet(x_train[-n:])
    blurred = torch.nn.functional.avg_pool2d(x_train[-n:], 5, stride=1, padding=2, count_include_pad=False)
    noise = scorer.frechet(torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    assert scorer.frechet(x_test[:n]) == pytest.approx(0.0, abs=1e-6)  # the reference set itself
    assert 0 < scorer.floor < 3 * real and 0 < real < 3 * scorer.floor
    assert real < scorer.frechet(blurred) < noise
    assert scorer.frechet(x_test[:n].flatten(1)) == pytest.approx(0.0, abs=1e-6)  # flat images work too


def test_scorer_class_accuracy(scorer, fashion):
    _, _, x_test, y_test = fashion
    accuracy = scorer.class_accuracy(x_test, y_test)
    assert accuracy == pytest.approx(float((scorer.predict(x_test) == y_test).float().mean()))
    assert accuracy > 0.6
    assert scorer.class_accuracy(x_test, (y_test + 1) % 10) < 0.2


def test_scorer_is_cached_and_leaves_the_random_state_alone(scorer):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = sample_scorer(get_config(dataset="fashion_mnist"))
    assert torch.equal(torch.rand(3), expected)
    assert again.floor == scorer.floor
    for ours, theirs in zip(again.net.parameters(), scorer.net.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def test_scorer_rejects_bad_images(scorer):
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        scorer.frechet(torch.rand(10, 1, 28, 28) * 2 - 1)
    with pytest.raises(ValueError, match=r"shape \(N, 1, 28, 28\) or \(N, 784\)"):
        scorer.frechet(torch.rand(10, 3, 28, 28))
    with pytest.raises(TypeError, match="floating-point"):
        scorer.frechet(torch.zeros(10, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="NaN"):
        scorer.frechet(torch.full((10, 1, 28, 28), math.nan))
    with pytest.raises(ValueError, match="labels must be a tensor of shape"):
        scorer.class_accuracy(torch.rand(10, 784), torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match="num_samples"):
        sample_scorer(get_config(dataset="fashion_mnist"), num_samples=1)
