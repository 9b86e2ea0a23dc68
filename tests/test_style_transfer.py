"""A6 style transfer: the three losses, the Gram matrix and the optimisation of the image.

In float64: the Gram matrix against ``torch.einsum`` (normalised and not), the content and
style losses against their closed forms, total variation against a direct double loop over
pixels; the loop on a tiny CNN lowers the style loss.  The given models and pictures:
preprocessing round trip, features layer by layer, scikit-learn's photographs, the offline
guard on SqueezeNet's ImageNet weights, image files.  Bad layers, weights and images get
clear errors.

The tiny feature network is built twice from one seed (tests/visual_parts.py): here for the
expected values, and where the code under test runs for the calls to it.
"""

import pytest
import torch
import visual_parts as local
from under_test import load, rules_of
from worker_tools import seeded_generator

MODULE = "A6_generative.style_transfer"
st = load(MODULE)
remote = load("visual_parts")

CONTENT = pytest.mark.grade("content_loss", points=2)
GRAM = pytest.mark.grade("gram_matrix", points=3)
STYLE = pytest.mark.grade("style_loss", points=3)
TV = pytest.mark.grade("tv_loss", points=3)
TRANSFER = pytest.mark.grade("style_transfer", points=3)
GIVEN = pytest.mark.grade("given code: input checks", points=0)


def randn(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def einsum_gram(f, normalize=True):
    n, c, h, w = f.shape
    g = torch.einsum("nchw,ndhw->ncd", f, f)
    return g / (c * h * w) if normalize else g


def tiny_cnn(seed=0):
    """The tiny feature network (conv, relu, pool, conv, relu), where the code under test runs."""
    return remote.style_cnn(seed)


# --------------------------------------------------------------------------- losses


@CONTENT
def test_content_loss_is_the_weighted_sum_of_squared_differences():
    a, b = randn(1, 4, 5, 6, seed=1), randn(1, 4, 5, 6, seed=2)
    loss = st.content_loss(0.3, a, b)
    assert loss.shape == ()
    torch.testing.assert_close(loss, 0.3 * ((a - b) ** 2).sum(), rtol=1e-12, atol=0)
    assert float(st.content_loss(5.0, a, a)) == 0.0


@CONTENT
def test_content_loss_gradient_is_twice_the_weighted_difference():
    a, b = randn(1, 2, 3, 3, seed=3).requires_grad_(True), randn(1, 2, 3, 3, seed=4)
    _, (grad,) = load("under_test").backward_through(st.content_loss, [0.7, a, b])
    torch.testing.assert_close(grad, 2 * 0.7 * (a - b).detach(), rtol=1e-12, atol=1e-14)


@GRAM
@pytest.mark.parametrize("normalize", [True, False])
def test_gram_matrix_equals_einsum(normalize):
    f = randn(2, 5, 4, 3, seed=5)
    gram = st.gram_matrix(f, normalize=normalize)
    assert gram.shape == (2, 5, 5)
    torch.testing.assert_close(gram, einsum_gram(f, normalize), rtol=1e-12, atol=1e-14)


@pytest.mark.grade("content_loss", points=2, rule=True)
def test_content_loss_rules():
    rules_of(MODULE, "content_loss", loops=0)


@GRAM
def test_gram_matrix_is_normalised_by_default_and_symmetric():
    f = randn(1, 3, 6, 2, seed=6)
    gram = st.gram_matrix(f)
    torch.testing.assert_close(gram, einsum_gram(f, True), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(gram, gram.transpose(1, 2))
    ones = torch.ones(1, 2, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(st.gram_matrix(ones), torch.full((1, 2, 2), 9 / 18, dtype=torch.float64))


@pytest.mark.grade("gram_matrix", points=3, rule=True)
def test_gram_matrix_rules():
    rules_of(MODULE, "gram_matrix", loops=0, forbid=("functional",))


@STYLE
def test_style_loss_is_the_weighted_sum_of_squared_gram_differences():
    feats = [randn(1, 3, 4, 4, seed=7), randn(1, 4, 2, 2, seed=8), randn(1, 6, 2, 2, seed=9)]
    layers, weights = [0, 2], [2.0, 0.5]
    targets = [randn(1, 3, 3, seed=10), randn(1, 6, 6, seed=11)]
    expected = sum(w * ((einsum_gram(feats[layer]) - t) ** 2).sum()
                   for layer, t, w in zip(layers, targets, weights, strict=True))
    loss = st.style_loss(feats, layers, targets, weights)
    assert loss.shape == ()
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)


@STYLE
def test_style_loss_is_zero_at_the_style_targets():
    feats = [randn(1, 3, 4, 4, seed=12), randn(1, 4, 2, 2, seed=13)]
    targets = [einsum_gram(feats[1]), einsum_gram(feats[0])]
    assert float(st.style_loss(feats, [1, 0], targets, [3.0, 1.0])) == pytest.approx(0.0, abs=1e-24)


@pytest.mark.grade("style_loss", points=3, rule=True)
def test_style_loss_rules():
    """One loop, over the style layers (gram_matrix, which it calls, has none)."""
    rules_of(MODULE, "style_loss", loops=1)


def direct_tv(img):
    n, c, h, w = img.shape
    total = 0.0
    for b in range(n):
        for k in range(c):
            for i in range(h):
                for j in range(w):
                    if i + 1 < h:
                        total += float(img[b, k, i + 1, j] - img[b, k, i, j]) ** 2
                    if j + 1 < w:
                        total += float(img[b, k, i, j + 1] - img[b, k, i, j]) ** 2
    return total


@TV
def test_tv_loss_equals_the_direct_sum_over_neighbouring_pixels():
    img = randn(2, 3, 4, 5, seed=14)
    loss = st.tv_loss(img, 0.25)
    assert loss.shape == ()
    assert float(loss) == pytest.approx(0.25 * direct_tv(img), rel=1e-12)


@TV
def test_tv_loss_of_a_flat_image_is_zero_and_of_a_step_is_counted_once_per_edge():
    assert float(st.tv_loss(torch.full((1, 3, 4, 4), 0.3, dtype=torch.float64), 1.0)) == 0.0
    step = torch.zeros(1, 1, 3, 4, dtype=torch.float64)
    step[..., 2:] = 1.0  # one vertical edge of height 3
    assert float(st.tv_loss(step, 2.0)) == pytest.approx(2.0 * 3)
    assert float(st.tv_loss(torch.ones(1, 1, 1, 1, dtype=torch.float64), 1.0)) == 0.0


@pytest.mark.grade("tv_loss", points=3, rule=True)
def test_tv_loss_rules():
    rules_of(MODULE, "tv_loss", loops=0, forbid=("diff", "functional", "conv2d"))


# --------------------------------------------------------------------------- the loop


@TRANSFER
def test_style_transfer_lowers_the_style_loss_on_a_tiny_cnn():
    cnn = local.style_cnn()
    content, style = randn(1, 3, 16, 16, seed=15), randn(1, 3, 12, 12, seed=16)
    img, history = st.style_transfer(content, style, tiny_cnn(), 3, 1e-4, [1, 4], [1e3, 1e3], 1e-5, num_iterations=60,
                                     learning_rate=0.1, decay_at=50, decayed_rate=0.05)
    assert img.shape == content.shape and not img.requires_grad
    assert set(history) == {"content", "style", "tv"} and all(len(v) == 61 for v in history.values())
    assert history["content"][0] == 0.0  # it starts from the content image
    assert history["style"][-1] < 0.1 * history["style"][0]
    feats = local.layer_outputs(cnn, img)
    style_feats = local.layer_outputs(cnn, style)
    recomputed = sum(1e3 * ((einsum_gram(feats[i]) - einsum_gram(style_feats[i])) ** 2).sum() for i in (1, 4))
    assert history["style"][-1] == pytest.approx(float(recomputed), rel=1e-9)


@TRANSFER
def test_style_transfer_with_only_the_content_loss_reconstructs_from_noise():
    cnn = tiny_cnn()
    content = randn(1, 3, 8, 8, seed=17).clamp(-1.4, 1.4)
    img, history = st.style_transfer(content, content, cnn, 1, 1.0, [1], [0.0], 0.0, init_random=True,
                                     num_iterations=150, learning_rate=0.05, decay_at=150,
                                     generator=seeded_generator(0))
    assert history["content"][-1] < 0.05 * history["content"][0]
    assert all(v == 0.0 for v in history["style"] + history["tv"])


# --------------------------------------------------------------------------- given code


@GIVEN
@pytest.mark.parametrize("call, error, words", [
    (lambda f: st.content_loss(-1.0, f[0], f[0]), ValueError, "content_weight"),
    (lambda f: st.content_loss(1.0, f[0], f[1]), ValueError, "same shape"),
    (lambda f: st.gram_matrix(f[0][0]), ValueError, "(N, C, H, W)"),
    (lambda f: st.gram_matrix(f[0].long()), TypeError, "floating"),
    (lambda f: st.style_loss(f, [5], [torch.zeros(1, 3, 3)], [1.0]), ValueError, "layer 5 does not exist"),
    (lambda f: st.style_loss(f, [0, 1], [torch.zeros(1, 3, 3)], [1.0, 1.0]), ValueError, "one entry per"),
    (lambda f: st.style_loss(f, [0], [torch.zeros(1, 4, 4)], [1.0]), ValueError, "Gram matrix (1, 3, 3)"),
    (lambda f: st.style_loss(f, [0], [torch.zeros(1, 3, 3)], [-2.0]), ValueError, "weight of style layer 0"),
    (lambda f: st.style_loss(f, [0.0], [torch.zeros(1, 3, 3)], [1.0]), TypeError, "style layer"),
    (lambda f: st.tv_loss(f[0], float("nan")), ValueError, "tv_weight"),
    (lambda f: st.tv_loss(f[0][0], 1.0), ValueError, "(N, C, H, W)"),
    (lambda f: st.style_transfer(f[2], f[2], tiny_cnn(), 9, 1.0, [1], [1.0], 0.0), ValueError, "content_layer 9"),
    (lambda f: st.style_transfer(f[2], f[2], tiny_cnn(), 1, 1.0, [7], [1.0], 0.0), ValueError, "style layer 7"),
    (lambda f: st.style_transfer(f[2], f[2], tiny_cnn(), 1, 1.0, [1, 2], [1.0], 0.0), ValueError, "one weight"),
    (lambda f: st.style_transfer(f[2][:, :1], f[2], tiny_cnn(), 1, 1.0, [1], [1.0], 0.0), ValueError, "RGB"),
    (lambda f: st.style_transfer(f[2], f[2], lambda x: x, 1, 1.0, [1], [1.0], 0.0), TypeError, "nn.Sequential"),
])
def test_bad_inputs_get_clear_errors(call, error, words):
    feats = [randn(1, 3, 4, 4, seed=18), randn(1, 3, 2, 2, seed=19), randn(1, 3, 8, 8, seed=20)]
    with pytest.raises(error) as info:
        call(feats)
    assert words in str(info.value), str(info.value)
