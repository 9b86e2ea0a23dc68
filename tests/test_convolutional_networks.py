"""A3 convolutional networks: convolution, max pooling, batch normalization, sandwiches, models.

Every backward pass is checked against a numeric gradient (float64) and against
autograd through the PyTorch reference (``F.conv2d``, ``F.max_pool2d``,
``F.batch_norm``, ``nn.BatchNorm1d/2d``); the loop and vectorised versions
against each other; batch normalization's running statistics against torch's
over several steps; the models' gradients, initial loss, save/load; errors on
bad input.  The naive loop layers only ever see tiny inputs, to stay fast.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from under_test import load, rules_of

from helpers.datasets import DatasetNotFoundError, load_dataset, preprocess_dataset
from helpers.gradcheck import autograd_gradients as autograd
from helpers.gradcheck import compute_numeric_gradient, rel_error

MODULE = "A3_fc_cnn.convolutional_networks"
cnn = load(MODULE)
OVERFIT_NET = cnn.OVERFIT_NET
OVERFIT_SOLVER = cnn.OVERFIT_SOLVER
BatchNorm = cnn.BatchNorm
Conv = cnn.Conv
DeepConvNet = cnn.DeepConvNet
FastConv = cnn.FastConv
FastMaxPool = cnn.FastMaxPool
MaxPool = cnn.MaxPool
SpatialBatchNorm = cnn.SpatialBatchNorm
ThreeLayerConvNet = cnn.ThreeLayerConvNet
create_convolutional_solver_instance = cnn.create_convolutional_solver_instance
find_overfit_parameters = cnn.find_overfit_parameters
kaiming_initializer = cnn.kaiming_initializer
adam = load("A3_fc_cnn.fully_connected_networks").adam

TOL = 1e-7  # numeric vs analytic gradients, float64
EXACT = {"rtol": 1e-12, "atol": 1e-12}  # float64 results that only differ by rounding

# Score groups of `python -m course.grade` (README, "For teachers"): points are each group's total.
CONV = pytest.mark.grade("Conv", points=5)
FAST_CONV = pytest.mark.grade("FastConv", points=4)
MAX_POOL = pytest.mark.grade("MaxPool", points=4)
FAST_POOL = pytest.mark.grade("FastMaxPool", points=3)
BATCHNORM = pytest.mark.grade("BatchNorm", points=5)
BN_ALT = pytest.mark.grade("BatchNorm.backward_alt", points=2)
SPATIAL_BN = pytest.mark.grade("SpatialBatchNorm", points=3)
SANDWICH = pytest.mark.grade("sandwich layers", points=2)
KAIMING = pytest.mark.grade("kaiming_initializer", points=1)
THREE_LAYER = pytest.mark.grade("ThreeLayerConvNet", points=4)
DEEP = pytest.mark.grade("DeepConvNet", points=6)
HYPER = pytest.mark.grade("your hyper-parameters", points=3)
CUDA = pytest.mark.grade("DeepConvNet on CUDA", points=0)  # not scored: most graders have no GPU
GIVEN = pytest.mark.grade("given code: input checks, save/load", points=0)

# What the docstrings forbid: autograd everywhere (the backward passes are written by hand), torch's own
# layers where the layer is yours to write.
NO_AUTOGRAD = ("autograd", "requires_grad", "requires_grad_", "enable_grad", "set_grad_enabled")
NO_CONV = (*NO_AUTOGRAD, "conv2d", "Conv2d", "unfold", "Unfold", "fold", "Fold", "conv_transpose2d")
NO_POOL = (*NO_AUTOGRAD, "max_pool2d", "MaxPool2d", "max_pool2d_with_indices", "adaptive_max_pool2d")
NO_BATCHNORM = (*NO_AUTOGRAD, "batch_norm", "BatchNorm1d", "BatchNorm2d", "functional")
NO_TORCH_LAYERS = (*NO_CONV, *NO_POOL, *NO_BATCHNORM, "linear", "relu", "cross_entropy")


def rule_mark(mark):
    """The same group and points, marked as a rule check: when it fails, course.grade scores the group 0."""
    return pytest.mark.grade(mark.args[0], points=mark.kwargs["points"], rule=True)


# (function, group, most loops allowed, names it may not use): the rules its docstring states.
RULES_STATED = [
    ("Conv.forward", CONV, None, NO_CONV),
    ("Conv.backward", CONV, None, NO_CONV),
    ("FastConv.forward", FAST_CONV, None, NO_CONV),
    ("FastConv.backward", FAST_CONV, None, NO_CONV),
    ("MaxPool.forward", MAX_POOL, None, NO_POOL),
    ("MaxPool.backward", MAX_POOL, None, NO_POOL),
    ("FastMaxPool.forward", FAST_POOL, None, NO_POOL),
    ("FastMaxPool.backward", FAST_POOL, None, NO_POOL),
    ("BatchNorm.forward", BATCHNORM, 0, NO_BATCHNORM),
    ("BatchNorm.backward", BATCHNORM, 0, NO_BATCHNORM),
    ("BatchNorm.backward_alt", BN_ALT, 0, (*NO_BATCHNORM, "backward")),
    ("SpatialBatchNorm.forward", SPATIAL_BN, 0, NO_BATCHNORM),
    ("SpatialBatchNorm.backward", SPATIAL_BN, 0, NO_BATCHNORM),
    *((f"{name}.{step}", SANDWICH, 0, NO_TORCH_LAYERS)
      for name in ("Conv_ReLU", "Conv_ReLU_Pool", "Linear_BatchNorm_ReLU", "Conv_BatchNorm_ReLU",
                   "Conv_BatchNorm_ReLU_Pool") for step in ("forward", "backward")),
    ("kaiming_initializer", KAIMING, 0, ("init", "kaiming_normal_", "kaiming_uniform_")),
    ("ThreeLayerConvNet.loss", THREE_LAYER, None, NO_TORCH_LAYERS),
    ("DeepConvNet.loss", DEEP, None, NO_TORCH_LAYERS),
]


@pytest.mark.parametrize("name, loops, forbid",
                         [pytest.param(n, loops, forbid, marks=rule_mark(mark), id=n)
                          for n, mark, loops, forbid in RULES_STATED])
def test_rules_stated_in_the_docstrings(name, loops, forbid):
    """No autograd, no torch layer doing the layer's work, no loops where the docstring says so."""
    rules_of(MODULE, name, loops=loops, forbid=forbid)


def gradcheck_there():
    """``helpers.gradcheck`` where the code under test runs (behind the grader's sandbox: in the worker)."""
    return load("helpers.gradcheck")


def worker_dict(**items):
    """A dict living where the code under test runs (behind the grader's sandbox: in the worker), so that what
    the code writes into it (batch normalization's running statistics) is seen here; read it with ``[key]``."""
    return load("types").SimpleNamespace(d=items).d


def randn(*shape, seed=0, scale=1.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def check_layer(layer, inputs, settings, reference, zero=(), numeric=True):
    """Check ``layer.backward`` against numeric gradients and autograd through ``reference``.

    ``layer.forward(*inputs, *settings) -> (out, cache)``; ``layer.backward(dout, cache)`` returns one
    gradient per input (a lone tensor for one input); ``reference(*inputs)`` is the same function
    in torch ops.  Gradients at positions ``zero`` are exactly 0 in theory (a bias right
    before batch normalization): there both must be ~0 instead of close in relative error.

    The numeric gradients are computed where the layer runs (behind the grader's sandbox: in the
    worker, one request instead of one per probe).  What they say cannot be trusted there, but it need
    not be: the comparison with autograd through ``reference``, made here, pins the same gradients.
    """
    inputs = tuple(inputs)
    out, cache = layer.forward(*inputs, *settings)
    torch.testing.assert_close(out, reference(*inputs), **EXACT)
    dout = randn(*out.shape, seed=99)
    grads = layer.backward(dout, cache)
    grads = (grads,) if isinstance(grads, torch.Tensor) else tuple(grads)
    assert len(grads) == len(inputs)
    numerics = (gradcheck_there().compute_numeric_gradients(layer.forward, list(inputs), dout, after=tuple(settings),
                                                            index=0) if numeric else [None] * len(inputs))
    for i, (grad, x, num) in enumerate(zip(grads, inputs, numerics, strict=True)):
        assert grad.shape == x.shape and grad.dtype == x.dtype, i
        if numeric:
            if i in zero:
                assert grad.abs().max() < 1e-10 and num.abs().max() < 1e-6, i
            else:
                assert rel_error(grad, num) < TOL, i
    for i, (mine, theirs) in enumerate(zip(grads, autograd(reference, *inputs, dout=dout), strict=True)):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12, msg=f"gradient {i} vs autograd")
    return out, grads


# --------------------------------------------------------------------------- convolution

# (x shape, w shape, stride, pad): strides, paddings, odd sizes, a batch of one, non-square kernels.
CONV_CASES = [
    pytest.param((2, 3, 6, 5), (4, 3, 3, 3), 1, 1, id="3x3-stride1-pad1"),
    pytest.param((2, 2, 7, 7), (3, 2, 3, 3), 2, 1, id="3x3-stride2-odd"),
    pytest.param((1, 2, 5, 6), (3, 2, 2, 3), 1, 0, id="2x3-kernel-batch1"),
    pytest.param((2, 3, 7, 8), (2, 3, 3, 2), 2, 0, id="3x2-kernel-stride2"),
    pytest.param((2, 2, 5, 8), (2, 2, 1, 1), 3, 1, id="1x1-stride3-pad1"),
    pytest.param((1, 1, 3, 3), (2, 1, 5, 5), 1, 1, id="kernel-covers-padded-input"),
    pytest.param((2, 1, 5, 6), (12, 1, 3, 3), 1, 1, id="more-filters-than-window-entries"),  # a first layer
    # stride 1, no more filters than channels, 'same' padding or wider: the course's FastConv finds dx as a
    # convolution of dout
    pytest.param((2, 4, 6, 5), (3, 4, 3, 3), 1, 1, id="fewer-filters-than-channels"),
    pytest.param((2, 3, 7, 6), (3, 3, 5, 5), 1, 2, id="5x5-same-channels-pad-2"),
    pytest.param((1, 3, 4, 5), (2, 3, 3, 3), 1, 2, id="fewer-filters-pad-2"),
    # 3x3, stride 1, 64 channels, even output sizes: the course's FastConv takes Winograd's F(2x2, 3x3)
    pytest.param((1, 64, 4, 4), (4, 64, 3, 3), 1, 1, id="64-channels-3x3-pad-1"),
    pytest.param((1, 64, 6, 4), (3, 64, 3, 3), 1, 0, id="64-channels-3x3-no-pad"),
]


def conv_inputs(x_shape, w_shape):
    return randn(*x_shape, seed=1), randn(*w_shape, seed=2), randn(w_shape[0], seed=3)


@CONV
@pytest.mark.parametrize("x_shape, w_shape, stride, pad", CONV_CASES)
def test_conv_naive_forward_and_backward(x_shape, w_shape, stride, pad):
    x, w, b = conv_inputs(x_shape, w_shape)
    param = {"stride": stride, "pad": pad}
    out, _ = check_layer(Conv, (x, w, b), (param,), lambda *t: F.conv2d(*t, stride=stride, padding=pad))
    H_out = 1 + (x_shape[2] + 2 * pad - w_shape[2]) // stride
    W_out = 1 + (x_shape[3] + 2 * pad - w_shape[3]) // stride
    assert out.shape == (x_shape[0], w_shape[0], H_out, W_out)


@CONV
def test_conv_naive_hand_computed():
    """One 2x2 filter of ones and bias 1 sums each window of a 3x3 image, plus 1."""
    x = torch.arange(9, dtype=torch.float64).reshape(1, 1, 3, 3)
    out, _ = Conv.forward(x, torch.ones(1, 1, 2, 2, dtype=torch.float64), torch.ones(1, dtype=torch.float64),
                          {"stride": 1, "pad": 0})
    assert torch.equal(out, torch.tensor([[[[9.0, 13.0], [21.0, 25.0]]]], dtype=torch.float64))


@FAST_CONV
@pytest.mark.parametrize("x_shape, w_shape, stride, pad", CONV_CASES)
def test_fast_conv_forward_and_backward(x_shape, w_shape, stride, pad):
    x, w, b = conv_inputs(x_shape, w_shape)
    param = {"stride": stride, "pad": pad}
    check_layer(FastConv, (x, w, b), (param,), lambda *t: F.conv2d(*t, stride=stride, padding=pad))


@FAST_CONV
@pytest.mark.parametrize("x_shape, w_shape, stride, pad", [((4, 3, 11, 9), (5, 3, 3, 5), 2, 2),
                                                           ((3, 4, 8, 8), (6, 4, 3, 3), 1, 1)])
def test_fast_conv_equals_naive(x_shape, w_shape, stride, pad):
    x, w, b = conv_inputs(x_shape, w_shape)
    param = {"stride": stride, "pad": pad}
    out_naive, cache_naive = Conv.forward(x, w, b, param)
    out_fast, cache_fast = FastConv.forward(x, w, b, param)
    torch.testing.assert_close(out_fast, out_naive, **EXACT)
    dout = randn(*out_naive.shape, seed=4)
    for fast, naive in zip(FastConv.backward(dout, cache_fast), Conv.backward(dout, cache_naive), strict=True):
        torch.testing.assert_close(fast, naive, rtol=1e-10, atol=1e-12)


@FAST_CONV
@pytest.mark.parametrize("filters", [4, 2])  # more filters than channels (col2im), then fewer (dx as a convolution)
def test_fast_conv_float32_and_non_contiguous_input(filters):
    base, w, b = conv_inputs((2, 3, 7, 6), (filters, 3, 3, 3))
    x = base.transpose(2, 3)  # (2, 3, 6, 7), not contiguous
    out, cache = FastConv.forward(x.float(), w.float(), b.float(), {"stride": 1, "pad": 1})
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.conv2d(x, w, b, padding=1).float(), rtol=1e-5, atol=1e-5)
    grads = FastConv.backward(torch.ones_like(out), cache)
    assert all(g.dtype == torch.float32 for g in grads)
    ref = autograd(lambda *t: F.conv2d(*t, padding=1), x, w, b)
    for mine, theirs in zip(grads, ref, strict=True):
        torch.testing.assert_close(mine, theirs.float(), rtol=1e-4, atol=1e-4)


@FAST_CONV
@pytest.mark.parametrize("images_per_chunk", [1, 3])  # 7 images: chunks of one; chunks of 3, the last short
def test_fast_conv_in_chunks_matches_torch(images_per_chunk):
    """FastConv builds its window matrix a few images at a time: every chunking gives the same result."""
    chunk_bytes = cnn.FASTCONV_CHUNK_BYTES  # the module's own dict (monkeypatch cannot send its marker there)
    saved = chunk_bytes["cpu"]
    try:
        # F > C, then F > 3*3*C (a first layer), then F < C (dx as a convolution of dout at stride 1), then
        # 64 channels (Winograd's way: 3x3, stride 1, an even output)
        both = ((1, 1), (2, 1))  # (stride, pad)
        for x_shape, w_shape, settings in (((7, 3, 9, 9), (5, 3, 3, 3), both), ((7, 1, 9, 9), (12, 1, 3, 3), both),
                                           ((7, 5, 9, 9), (4, 5, 3, 3), both),
                                           ((7, 64, 6, 6), (8, 64, 3, 3), ((1, 1), (1, 0)))):
            x, w, b = conv_inputs(x_shape, w_shape)
            _, C, H, W = x_shape
            for stride, pad in settings:
                H_out, W_out = (H + 2 * pad - 3) // stride + 1, (W + 2 * pad - 3) // stride + 1
                # the budget in bytes of window matrix (float64) that makes chunks of images_per_chunk images
                chunk_bytes["cpu"] = images_per_chunk * H_out * W_out * 3 * 3 * C * 8
                check_layer(FastConv, (x, w, b), ({"stride": stride, "pad": pad},),
                            lambda *t, s=stride, p=pad: F.conv2d(*t, stride=s, padding=p), numeric=False)
    finally:
        chunk_bytes["cpu"] = saved


@FAST_CONV
@pytest.mark.parametrize("pad", [0, 1, 2])
@pytest.mark.parametrize("filters", [8, 128])  # fewer, then more filters than channels
def test_fast_conv_winograd_sized_layers(pad, filters):
    """3x3, stride 1, 64 channels, even output: where the course's FastConv takes Winograd's F(2x2, 3x3).
    float64 and float32 against torch; dx channels-last for either layout of dout."""
    x, w, b = conv_inputs((3, 64, 6 - 2 * pad + 2, 8 - 2 * pad + 2), (filters, 64, 3, 3))  # output 6 x 8
    for dtype, tol in ((torch.float64, dict(rtol=1e-10, atol=1e-11)), (torch.float32, dict(rtol=1e-4, atol=1e-4))):
        out, cache = FastConv.forward(x.to(dtype), w.to(dtype), b.to(dtype), {"stride": 1, "pad": pad})
        assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(out, F.conv2d(x, w, b, padding=pad).to(dtype), **tol)
        dout = randn(*out.shape, seed=10)
        expected = autograd(lambda *t: F.conv2d(*t, padding=pad), x, w, b, dout=dout)
        for layout in (torch.contiguous_format, torch.channels_last):
            grads = FastConv.backward(dout.to(dtype).contiguous(memory_format=layout), cache)
            assert grads[0].is_contiguous(memory_format=torch.channels_last)
            for mine, theirs in zip(grads, expected, strict=True):
                torch.testing.assert_close(mine, theirs.to(dtype), **tol)


@FAST_CONV
def test_fast_layers_keep_channels_last_and_accept_any_layout():
    """FastConv / FastMaxPool outputs (and FastConv's dx) are stored channels-last; either layout is accepted as
    input and as dout."""
    x, w, b = conv_inputs((2, 3, 6, 6), (4, 3, 3, 3))
    out, cache = FastConv.forward(x, w, b, {"stride": 1, "pad": 1})
    assert out.is_contiguous(memory_format=torch.channels_last)
    ref = autograd(lambda *t: F.conv2d(*t, padding=1), x, w, b, dout=torch.ones_like(out))
    for dout in (torch.ones_like(out), torch.ones(out.shape, dtype=out.dtype)):  # channels-last, then NCHW
        grads = FastConv.backward(dout, cache)
        assert grads[0].is_contiguous(memory_format=torch.channels_last)
        for mine, theirs in zip(grads, ref, strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)
    pooled, pool_cache = FastMaxPool.forward(out, pool_param(2, 2, 2))
    torch.testing.assert_close(pooled, F.max_pool2d(out, 2), rtol=0, atol=0)
    w2 = randn(2, 4, 3, 3, seed=6)  # a second layer reading the channels-last input without padding
    again, _ = FastConv.forward(pooled, w2, b[:2], {"stride": 1, "pad": 0})
    torch.testing.assert_close(again, F.conv2d(pooled, w2, b[:2]), **EXACT)
    # fewer filters than channels: dx as a convolution of dout, padded by 3 - 1 - pad (pad 2: not padded at all),
    # dout channels-last, then NCHW
    w3, b3 = randn(2, 4, 3, 3, seed=7), randn(2, seed=8)
    for pad in (1, 2):
        out3, cache3 = FastConv.forward(out, w3, b3, {"stride": 1, "pad": pad})
        for dout in (randn(*out3.shape, seed=9).contiguous(memory_format=torch.channels_last),
                     randn(*out3.shape, seed=9)):
            grads = FastConv.backward(dout, cache3)
            assert grads[0].is_contiguous(memory_format=torch.channels_last)
            expected = autograd(lambda *t, p=pad: F.conv2d(*t, padding=p), out, w3, b3, dout=dout)
            for mine, theirs in zip(grads, expected, strict=True):
                torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)
    for dout in (randn(*pooled.shape, seed=5), randn(*pooled.shape, seed=5).contiguous(
            memory_format=torch.channels_last)):
        (expected,) = autograd(lambda t: F.max_pool2d(t, 2), out, dout=dout)
        torch.testing.assert_close(FastMaxPool.backward(dout, pool_cache), expected, rtol=0, atol=0)


# --------------------------------------------------------------------------- max pooling

# (x shape, pool height, pool width, stride): tiled, overlapping (stride < window), gaps
# (stride > window), non-square windows, a batch of one, a window covering the input.
POOL_CASES = [
    pytest.param((2, 3, 6, 8), 2, 2, 2, id="2x2-stride2-tiled"),
    pytest.param((1, 3, 9, 6), 3, 3, 3, id="3x3-stride3-tiled-batch1"),
    pytest.param((2, 2, 7, 9), 3, 3, 2, id="3x3-stride2-overlapping"),
    pytest.param((1, 2, 5, 6), 2, 3, 1, id="2x3-stride1-overlapping"),
    pytest.param((2, 2, 6, 8), 2, 4, 2, id="2x4-stride2-overlapping-width"),
    pytest.param((2, 1, 5, 7), 1, 1, 2, id="1x1-stride2-gaps"),
    pytest.param((2, 2, 4, 5), 4, 5, 1, id="window-covers-input"),
]


def pool_param(ph, pw, stride):
    return {"pool_height": ph, "pool_width": pw, "stride": stride}


@MAX_POOL
@pytest.mark.parametrize("x_shape, ph, pw, stride", POOL_CASES)
def test_max_pool_naive_forward_and_backward(x_shape, ph, pw, stride):
    x = randn(*x_shape, seed=5)
    param = pool_param(ph, pw, stride)
    out, _ = check_layer(MaxPool, (x,), (param,), lambda t: F.max_pool2d(t, (ph, pw), stride))
    assert out.shape == (*x_shape[:2], 1 + (x_shape[2] - ph) // stride, 1 + (x_shape[3] - pw) // stride)


@FAST_POOL
@pytest.mark.parametrize("x_shape, ph, pw, stride", POOL_CASES)
def test_fast_max_pool_forward_and_backward_equal_naive(x_shape, ph, pw, stride):
    x = randn(*x_shape, seed=6)
    param = pool_param(ph, pw, stride)
    check_layer(FastMaxPool, (x,), (param,), lambda t: F.max_pool2d(t, (ph, pw), stride))
    out_fast, cache_fast = FastMaxPool.forward(x, param)
    out_naive, cache_naive = MaxPool.forward(x, param)
    assert torch.equal(out_fast, out_naive)
    dout = randn(*out_fast.shape, seed=7)
    assert torch.equal(FastMaxPool.backward(dout, cache_fast), MaxPool.backward(dout, cache_naive))


def tie_inputs():
    """All zeros, and integer values 0..2 (many equal maxima in every window)."""
    return [torch.zeros(2, 2, 6, 8, dtype=torch.float64),
            torch.randint(0, 3, (2, 2, 6, 8), generator=torch.Generator().manual_seed(0)).double()]


TIE_CASES = [(2, 2, 2), (3, 3, 1), (2, 4, 2), (3, 2, 3)]


def assert_ties_match_torch(layer, ph, pw, stride):
    """On inputs full of ties, ``layer``'s gradient equals ``F.max_pool2d``'s exactly."""
    layer = getattr(cnn, layer)
    for x in tie_inputs():
        out, cache = layer.forward(x, pool_param(ph, pw, stride))
        dout = randn(*out.shape, seed=8)
        expected = autograd(lambda t: F.max_pool2d(t, (ph, pw), stride), x, dout=dout)[0]
        assert torch.equal(layer.backward(dout, cache), expected)


@MAX_POOL
@pytest.mark.parametrize("ph, pw, stride", TIE_CASES)
def test_max_pool_naive_ties_go_to_the_first_maximum_like_torch(ph, pw, stride):
    assert_ties_match_torch("MaxPool", ph, pw, stride)


@FAST_POOL
@pytest.mark.parametrize("ph, pw, stride", TIE_CASES)
def test_fast_max_pool_ties_go_to_the_first_maximum_like_torch(ph, pw, stride):
    assert_ties_match_torch("FastMaxPool", ph, pw, stride)
    # Exactly one entry per window receives its gradient (all-zero input, tiled windows).
    out, cache = FastMaxPool.forward(torch.zeros(1, 1, 4, 4), pool_param(2, 2, 2))
    dx = FastMaxPool.backward(torch.ones_like(out), cache)
    assert dx.sum().item() == 4 and dx[0, 0, ::2, ::2].sum().item() == 4


@FAST_POOL
def test_fast_max_pool_float32():
    x = randn(2, 3, 8, 8).float()
    for param in (pool_param(2, 2, 2), pool_param(3, 3, 1)):
        out, cache = FastMaxPool.forward(x, param)
        assert out.dtype == torch.float32
        assert torch.equal(out, F.max_pool2d(x, (param["pool_height"], param["pool_width"]), param["stride"]))
        assert FastMaxPool.backward(torch.ones_like(out), cache).dtype == torch.float32


# --------------------------------------------------------------------------- batch normalization


def bn_inputs(N=6, D=5, seed=10):
    x = randn(N, D, seed=seed, scale=3.0) + torch.arange(D, dtype=torch.float64)
    return x, randn(D, seed=seed + 1) + 1.5, randn(D, seed=seed + 2)


def torch_bn(x, gamma, beta, eps=1e-5):
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


@BATCHNORM
def test_batchnorm_train_forward_normalises():
    x, gamma, beta = bn_inputs(N=200, D=4)
    out, _ = BatchNorm.forward(x, torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64),
                               {"mode": "train"})
    torch.testing.assert_close(out.mean(dim=0), torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(out.var(dim=0, unbiased=False), torch.ones(4, dtype=torch.float64), rtol=1e-4,
                               atol=0)
    out, _ = BatchNorm.forward(x, gamma, beta, {"mode": "train", "eps": 1e-3})
    torch.testing.assert_close(out, torch_bn(x, gamma, beta, eps=1e-3), **EXACT)
    torch.testing.assert_close(out.mean(dim=0), beta, rtol=0, atol=1e-12)


@BATCHNORM
@pytest.mark.parametrize("N, D", [(6, 5), (3, 4)])
def test_batchnorm_backward_numeric_and_autograd(N, D):
    x, gamma, beta = bn_inputs(N, D)
    check_layer(BatchNorm, (x, gamma, beta), ({"mode": "train"},), torch_bn)


@BATCHNORM
@pytest.mark.parametrize("momentum", [0.9, 0.6])
def test_batchnorm_running_stats_match_batchnorm1d(momentum):
    """Several train steps then test mode: the same outputs and running statistics as
    ``nn.BatchNorm1d(momentum=1 - momentum)`` (which updates the variance with N - 1)."""
    D, eps = 5, 1e-3
    _, gamma, beta = bn_inputs(D=D)
    bn = torch.nn.BatchNorm1d(D, eps=eps, momentum=1 - momentum, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
    param = worker_dict(mode="train", eps=eps, momentum=momentum)  # the running statistics are written into it
    for step in range(4):
        x = randn(7 + step, D, seed=20 + step, scale=1.0 + step) + 2.0 * step  # moving statistics
        out, _ = BatchNorm.forward(x, gamma, beta, param)
        with torch.no_grad():
            torch.testing.assert_close(out, bn(x), **EXACT)
        torch.testing.assert_close(param["running_mean"], bn.running_mean, **EXACT)
        torch.testing.assert_close(param["running_var"], bn.running_var, **EXACT)
    param["mode"] = "test"
    bn.eval()
    x = randn(3, D, seed=30, scale=4.0)
    before = param["running_mean"].clone(), param["running_var"].clone()
    out, cache = BatchNorm.forward(x, gamma, beta, param)
    with torch.no_grad():
        torch.testing.assert_close(out, bn(x), **EXACT)
    assert torch.equal(param["running_mean"], before[0]) and torch.equal(param["running_var"], before[1])
    # test mode: the statistics are constants, the layer an affine map
    dout = randn(3, D, seed=31)
    ref = autograd(lambda *t: F.batch_norm(t[0], before[0], before[1], t[1], t[2], training=False, eps=eps),
                   x, gamma, beta, dout=dout)
    for mine, theirs in zip(BatchNorm.backward(dout, cache), ref, strict=True):
        torch.testing.assert_close(mine, theirs, **EXACT)


@BATCHNORM
def test_batchnorm_first_call_creates_running_stats():
    x, gamma, beta = bn_inputs(N=4, D=3)
    param = worker_dict(mode="test")  # no statistics yet: zeros and ones
    out, _ = BatchNorm.forward(x, gamma, beta, param)
    torch.testing.assert_close(out, gamma * x / math.sqrt(1 + 1e-5) + beta, **EXACT)
    assert torch.equal(param["running_mean"], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(param["running_var"], torch.ones(3, dtype=torch.float64))
    param = worker_dict(mode="train")  # default momentum 0.9
    BatchNorm.forward(x, gamma, beta, param)
    torch.testing.assert_close(param["running_mean"], 0.1 * x.mean(dim=0), **EXACT)
    torch.testing.assert_close(param["running_var"], 0.9 + 0.1 * x.var(dim=0, unbiased=True), **EXACT)
    assert param["running_mean"].dtype == torch.float64


@BN_ALT
@pytest.mark.parametrize("N, D, mode", [(6, 5, "train"), (2, 4, "train"), (50, 3, "train"), (5, 4, "test")])
def test_batchnorm_backward_alt_equals_backward(N, D, mode):
    x, gamma, beta = bn_inputs(N, D, seed=N)
    param = {"mode": mode, "running_mean": randn(D, seed=1), "running_var": randn(D, seed=2).abs() + 0.5}
    out, cache = BatchNorm.forward(x, gamma, beta, param)
    dout = randn(N, D, seed=3)
    alt = BatchNorm.backward_alt(dout, cache)
    for a, b in zip(alt, BatchNorm.backward(dout, cache), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    if mode == "train" and N > 2:  # with N = 2, xhat = +-1 and dx ~ 0: finite differences are all noise
        forward = BatchNorm.forward
        numeric = compute_numeric_gradient(lambda t: forward(t, gamma, beta, {"mode": "train"})[0], x, dout)
        assert rel_error(alt[0], numeric) < TOL


def torch_spatial_bn(x, gamma, beta, eps=1e-5):
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


@SPATIAL_BN
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 3, 3)])  # a batch of one still has H*W values
def test_spatial_batchnorm_backward_numeric_and_autograd(shape):
    C = shape[1]
    x = randn(*shape, seed=40, scale=2.0) + 1.0
    gamma, beta = randn(C, seed=41) + 1.0, randn(C, seed=42)
    check_layer(SpatialBatchNorm, (x, gamma, beta), ({"mode": "train"},), torch_spatial_bn)


@SPATIAL_BN
def test_spatial_batchnorm_running_stats_match_batchnorm2d():
    C, momentum, eps = 3, 0.7, 1e-4
    gamma, beta = randn(C, seed=43) + 1.0, randn(C, seed=44)
    bn = torch.nn.BatchNorm2d(C, eps=eps, momentum=1 - momentum, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
    param = worker_dict(mode="train", eps=eps, momentum=momentum)
    for step in range(3):
        x = randn(2 + step, C, 4, 3, seed=50 + step, scale=1.0 + step) - step
        out, _ = SpatialBatchNorm.forward(x, gamma, beta, param)
        with torch.no_grad():
            torch.testing.assert_close(out, bn(x), **EXACT)
        assert param["running_mean"].shape == (C,)
        torch.testing.assert_close(param["running_mean"], bn.running_mean, **EXACT)
        torch.testing.assert_close(param["running_var"], bn.running_var, **EXACT)
    param["mode"] = "test"
    bn.eval()
    x = randn(2, C, 5, 2, seed=60)
    with torch.no_grad():
        torch.testing.assert_close(SpatialBatchNorm.forward(x, gamma, beta, param)[0], bn(x), **EXACT)


# --------------------------------------------------------------------------- sandwich layers

CONV1 = {"stride": 1, "pad": 1}
POOL2 = pool_param(2, 2, 2)


def sandwich_cases():
    x, w, b = randn(2, 3, 4, 6, seed=70), randn(4, 3, 3, 3, seed=71, scale=0.5), randn(4, seed=72)
    gamma, beta = randn(4, seed=73) + 1.0, randn(4, seed=74)
    xl, wl, bl = randn(5, 2, 3, seed=75), randn(6, 4, seed=76), randn(4, seed=77)
    gl, bel = randn(4, seed=78) + 1.0, randn(4, seed=79)

    def conv_bn(x_, w_, b_, g_, be_):
        return F.batch_norm(F.conv2d(x_, w_, b_, padding=1), None, None, g_, be_, training=True, eps=1e-5)

    # (layer, its inputs, the arguments after them, the reference in torch ops, gradients that are 0)
    return [
        pytest.param("Conv_ReLU", (x, w, b), (CONV1,),
                     lambda x_, w_, b_: F.relu(F.conv2d(x_, w_, b_, padding=1)), (), id="Conv_ReLU"),
        pytest.param("Conv_ReLU_Pool", (x, w, b), (CONV1, POOL2),
                     lambda x_, w_, b_: F.max_pool2d(F.relu(F.conv2d(x_, w_, b_, padding=1)), 2, 2), (),
                     id="Conv_ReLU_Pool"),
        pytest.param("Linear_BatchNorm_ReLU", (xl, wl, bl, gl, bel), ({"mode": "train"},),
                     lambda x_, w_, b_, g_, be_: F.relu(torch_bn(F.linear(x_.reshape(5, 6), w_.T, b_), g_, be_)),
                     (2,), id="Linear_BatchNorm_ReLU"),
        pytest.param("Conv_BatchNorm_ReLU", (x, w, b, gamma, beta), (CONV1, {"mode": "train"}),
                     lambda *t: F.relu(conv_bn(*t)), (2,), id="Conv_BatchNorm_ReLU"),
        pytest.param("Conv_BatchNorm_ReLU_Pool", (x, w, b, gamma, beta), (CONV1, {"mode": "train"}, POOL2),
                     lambda *t: F.max_pool2d(F.relu(conv_bn(*t)), 2, 2), (2,), id="Conv_BatchNorm_ReLU_Pool"),
    ]


@SANDWICH
@pytest.mark.parametrize("name, inputs, settings, reference, zero", sandwich_cases())
def test_sandwich_layers_gradients(name, inputs, settings, reference, zero):
    """``zero``: the bias right before batch normalization, whose gradient is 0."""
    check_layer(getattr(cnn, name), inputs, settings, reference, zero=zero)


# --------------------------------------------------------------------------- kaiming_initializer


@KAIMING
@pytest.mark.parametrize("Din, Dout, K, relu", [(400, 300, None, True), (400, 300, None, False),
                                                (64, 200, 3, True), (50, 100, 5, False)])
def test_kaiming_initializer_shape_and_std(Din, Dout, K, relu):
    torch.manual_seed(0)
    w = kaiming_initializer(Din, Dout, K=K, relu=relu, dtype=torch.float64)
    assert w.shape == ((Din, Dout) if K is None else (Dout, Din, K, K)) and w.dtype == torch.float64
    fan_in = Din * (1 if K is None else K * K)
    expected = math.sqrt((2.0 if relu else 1.0) / fan_in)
    # ~1e5 samples: the sample std is within 1% of the true one; a wrong gain is 41% off
    assert w.std().item() == pytest.approx(expected, rel=0.03)
    assert abs(w.mean().item()) < 0.03 * expected
    assert kaiming_initializer(3, 4).dtype == torch.float32


# --------------------------------------------------------------------------- models


def randomise_biases(model, seed=0):
    """Random biases, gammas and betas: away from zero-initialised symmetric points."""
    params = model.params  # the model's own dict: writes to it reach the model
    for name, value in params.items():
        if name.startswith(("b", "gamma", "beta")):
            params[name] = randn(*value.shape, seed=seed + len(params) + len(name), scale=0.3) \
                + (1.0 if name.startswith("gamma") else 0.0)


def check_model_gradients(model, X, y, reference, zero_names=()):
    """Every gradient of ``model.loss`` vs numeric and vs autograd through ``reference(params)``."""
    params, model_loss = model.params, model.loss
    loss, grads = model_loss(X, y)
    values = dict(params.items())  # the parameters now (copies when the model runs behind the grader's sandbox)
    assert set(grads) == set(values)
    # Numeric gradients where the model runs; the autograd reference below, computed here, pins them too.
    numerics = gradcheck_there().compute_numeric_model_gradients(model, X, y)
    assert set(numerics) == set(values)
    for name, param in values.items():
        assert grads[name].shape == param.shape, name
        numeric = numerics[name]
        if name in zero_names:
            assert grads[name].abs().max() < 1e-10 and numeric.abs().max() < 1e-6, name
        else:
            assert grads[name].abs().max() > 0, name  # no dead layer: the check means something
            assert rel_error(grads[name], numeric) < TOL, name
    names = list(values)
    ref_grads = autograd(lambda *ps: reference(dict(zip(names, ps, strict=True))), *values.values())
    torch.testing.assert_close(loss, reference(values), **EXACT)
    for name, ref in zip(names, ref_grads, strict=True):
        torch.testing.assert_close(grads[name], ref, rtol=1e-10, atol=1e-12, msg=name)


def l2(params, reg):
    return reg * sum((v ** 2).sum() for k, v in params.items() if k.startswith("W"))


def three_layer_reference(X, y, reg):
    def loss(p):
        pad = (p["W1"].shape[2] - 1) // 2
        out = F.max_pool2d(F.relu(F.conv2d(X, p["W1"], p["b1"], padding=pad)), 2, 2)
        out = F.relu(F.linear(out.flatten(1), p["W2"].T, p["b2"]))
        return F.cross_entropy(F.linear(out, p["W3"].T, p["b3"]), y) + l2(p, reg)
    return loss


def architecture(model) -> tuple[int, bool, list[int]]:
    """A DeepConvNet's ``(num_layers, batchnorm, max_pools)``, read once."""
    return model.num_layers, model.batchnorm, list(model.max_pools)


def deep_scores(p, X, arch, running=None):
    """DeepConvNet's scores in torch ops; batch statistics, or ``running`` [(mean, var), ...] when given."""
    num_layers, batchnorm, max_pools = arch
    out = X
    for layer in range(1, num_layers):
        out = F.conv2d(out, p[f"W{layer}"], p[f"b{layer}"], padding=1)
        if batchnorm:
            mean, var = (None, None) if running is None else running[layer - 1]
            out = F.batch_norm(out, mean, var, p[f"gamma{layer}"], p[f"beta{layer}"], training=running is None,
                               eps=1e-5)
        out = F.relu(out)
        if layer - 1 in max_pools:
            out = F.max_pool2d(out, 2, 2)
    L = num_layers
    return F.linear(out.flatten(1), p[f"W{L}"].T, p[f"b{L}"])


def image_batch(n=4, dims=(2, 4, 4), c=3, seed=0):
    return randn(n, *dims, seed=seed, scale=2.0), torch.arange(n) % c


@THREE_LAYER
@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_three_layer_convnet_gradients(reg):
    torch.manual_seed(0)
    model = ThreeLayerConvNet(input_dims=(2, 6, 6), num_filters=3, filter_size=3, hidden_dim=5, num_classes=3,
                              weight_scale=0.5, reg=reg, dtype=torch.float64)
    randomise_biases(model)
    X, y = image_batch(3, (2, 6, 6))
    assert model.loss(X).shape == (3, 3)
    check_model_gradients(model, X, y, three_layer_reference(X, y, reg))


@THREE_LAYER
def test_three_layer_convnet_shapes_and_initial_loss():
    torch.manual_seed(0)
    model = ThreeLayerConvNet(input_dims=(3, 8, 10), num_filters=6, filter_size=5, hidden_dim=20, num_classes=7,
                              weight_scale=1e-3, dtype=torch.float64)
    params = dict(model.params.items())
    shapes = {k: tuple(v.shape) for k, v in params.items()}
    assert shapes == {"W1": (6, 3, 5, 5), "b1": (6,), "W2": (6 * 4 * 5, 20), "b2": (20,), "W3": (20, 7),
                      "b3": (7,)}
    assert all((params[f"b{i}"] == 0).all() for i in (1, 2, 3))
    assert params["W2"].std().item() == pytest.approx(1e-3, rel=0.1)
    X, y = randn(20, 3, 8, 10, seed=1), torch.arange(20) % 7
    assert model.loss(X).shape == (20, 7)
    assert model.loss(X, y)[0].item() == pytest.approx(math.log(7), abs=1e-3)
    model.reg = 2.0
    extra = 2.0 * sum((params[k] ** 2).sum() for k in ("W1", "W2", "W3")).item()
    assert model.loss(X, y)[0].item() == pytest.approx(math.log(7) + extra, abs=1e-3)
    float_model = ThreeLayerConvNet(input_dims=(1, 4, 4), num_filters=2, filter_size=3, hidden_dim=3)
    assert all(v.dtype == torch.float32 for v in float_model.params.values())
    assert float_model.loss(torch.zeros(2, 1, 4, 4)).dtype == torch.float32


@DEEP
@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "batchnorm"])
@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_deep_convnet_gradients(batchnorm, reg):
    torch.manual_seed(1)
    model = DeepConvNet(input_dims=(2, 4, 4), num_filters=[3, 4], max_pools=[0], batchnorm=batchnorm,
                        num_classes=3, weight_scale=0.5, reg=reg, dtype=torch.float64)
    assert model.num_layers == 3
    randomise_biases(model)
    X, y = image_batch(4, (2, 4, 4))
    zero = ("b1", "b2") if batchnorm else ()  # a bias right before batchnorm has no effect
    arch = architecture(model)
    check_model_gradients(model, X, y, lambda p: F.cross_entropy(deep_scores(p, X, arch), y) + l2(p, reg),
                          zero_names=zero)


@DEEP
def test_deep_convnet_shapes_and_kaiming():
    torch.manual_seed(0)
    model = DeepConvNet(input_dims=(3, 16, 8), num_filters=[16, 32, 32], max_pools=[0, 2], batchnorm=True,
                        num_classes=5, weight_scale="kaiming", dtype=torch.float64)
    params = dict(model.params.items())
    shapes = {k: tuple(v.shape) for k, v in params.items()}
    assert shapes == {"W1": (16, 3, 3, 3), "b1": (16,), "gamma1": (16,), "beta1": (16,),
                      "W2": (32, 16, 3, 3), "b2": (32,), "gamma2": (32,), "beta2": (32,),
                      "W3": (32, 32, 3, 3), "b3": (32,), "gamma3": (32,), "beta3": (32,),
                      "W4": (32 * 4 * 2, 5), "b4": (5,)}
    assert all((params[f"gamma{i}"] == 1).all() and (params[f"beta{i}"] == 0).all() for i in (1, 2, 3))
    assert params["W3"].std().item() == pytest.approx(math.sqrt(2 / (32 * 9)), rel=0.05)
    assert params["W4"].std().item() == pytest.approx(math.sqrt(1 / 256), rel=0.1)  # no ReLU after it
    plain = DeepConvNet(input_dims=(1, 8, 8), num_filters=[4, 4], max_pools=[], weight_scale=0.05)
    assert {k: tuple(v.shape) for k, v in plain.params.items()} == {
        "W1": (4, 1, 3, 3), "b1": (4,), "W2": (4, 4, 3, 3), "b2": (4,), "W3": (4 * 8 * 8, 10), "b3": (10,)}
    assert plain.params["W2"].dtype == torch.float32 and list(plain.bn_params) == []
    linear = DeepConvNet(input_dims=(2, 3, 3), num_filters=[], max_pools=[], num_classes=4)
    assert set(linear.params) == {"W1", "b1"} and linear.params["W1"].shape == (18, 4)


@DEEP
@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "batchnorm"])
def test_deep_convnet_initial_loss_is_log_c(batchnorm):
    torch.manual_seed(0)
    model = DeepConvNet(input_dims=(3, 8, 8), num_filters=[8, 8, 8], max_pools=[0, 1, 2], batchnorm=batchnorm,
                        num_classes=10, weight_scale=1e-3, dtype=torch.float64)
    X, y = randn(30, 3, 8, 8, seed=2), torch.arange(30) % 10
    scores = model.loss(X)
    assert scores.shape == (30, 10)
    assert model.loss(X, y)[0].item() == pytest.approx(math.log(10), abs=1e-3)


@DEEP
def test_deep_convnet_batchnorm_modes_and_running_stats():
    """``loss(X, y)`` trains (batch statistics, running stats updated); ``loss(X)`` uses the running stats."""
    torch.manual_seed(0)
    model = DeepConvNet(input_dims=(2, 4, 4), num_filters=[3, 3], max_pools=[1], batchnorm=True, num_classes=3,
                        weight_scale=0.5, dtype=torch.float64)
    randomise_biases(model)
    bns = [torch.nn.BatchNorm2d(3, momentum=0.1, dtype=torch.float64) for _ in range(2)]  # our momentum 0.9
    arch = architecture(model)
    for step in range(3):
        X, y = image_batch(5, (2, 4, 4), seed=step)
        model.loss(X, y)
        p = dict(model.params.items())
        out = X
        with torch.no_grad():  # the torch layers see what ours saw
            for layer, bn in enumerate(bns, start=1):
                out = F.conv2d(out, p[f"W{layer}"], p[f"b{layer}"], padding=1)
                bn(out)
                out = F.relu(F.batch_norm(out, None, None, p[f"gamma{layer}"], p[f"beta{layer}"], training=True))
                if layer - 1 in arch[2]:
                    out = F.max_pool2d(out, 2, 2)
    for bn_param, bn in zip(model.bn_params, bns, strict=True):
        torch.testing.assert_close(bn_param["running_mean"], bn.running_mean, **EXACT)
        torch.testing.assert_close(bn_param["running_var"], bn.running_var, **EXACT)
    X = randn(2, 2, 4, 4, seed=9)
    stats = [(p["running_mean"].clone(), p["running_var"].clone()) for p in model.bn_params]
    scores = model.loss(X)
    assert all(p["mode"] == "test" for p in model.bn_params)
    torch.testing.assert_close(scores, deep_scores(dict(model.params.items()), X, arch, running=stats), **EXACT)
    assert all(torch.equal(p["running_mean"], s[0]) for p, s in zip(model.bn_params, stats, strict=True))
    assert torch.equal(model.loss(X[:1]), scores[:1])  # test mode: each example on its own


@DEEP
def test_deep_convnet_float32_and_float64():
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(0)
        model = DeepConvNet(input_dims=(1, 8, 8), num_filters=[4, 4], max_pools=[0, 1], batchnorm=True,
                            weight_scale="kaiming", dtype=dtype)
        X, y = torch.randn(6, 1, 8, 8, dtype=dtype), torch.arange(6)
        loss, grads = model.loss(X, y)
        assert loss.dtype == dtype and all(g.dtype == dtype for g in grads.values())
        assert model.loss(X).dtype == dtype


@CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_deep_convnet_on_cuda_matches_cpu():
    if not load("torch").cuda.is_available():
        pytest.skip("the code under test runs without a CUDA device (the grader's sandbox shows it none)")
    torch.manual_seed(0)
    cpu = DeepConvNet(input_dims=(3, 8, 8), num_filters=[4, 6], max_pools=[0, 1], batchnorm=True,
                      weight_scale="kaiming", reg=0.1, dtype=torch.float64)
    gpu = DeepConvNet(input_dims=(3, 8, 8), num_filters=[4, 6], max_pools=[0, 1], batchnorm=True,
                      weight_scale="kaiming", reg=0.1, dtype=torch.float64, device="cuda")
    assert all(v.is_cuda for v in gpu.params.values())
    gpu.params = {k: v.cuda() for k, v in cpu.params.items()}
    X, y = randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    loss_cpu, grads_cpu = cpu.loss(X, y)
    loss_gpu, grads_gpu = gpu.loss(X.cuda(), y.cuda())
    torch.testing.assert_close(loss_gpu.cpu(), loss_cpu)
    for name, grad in grads_cpu.items():
        torch.testing.assert_close(grads_gpu[name].cpu(), grad, msg=name)
    assert gpu.bn_params[0]["running_mean"].is_cuda
    torch.testing.assert_close(gpu.loss(X.cuda()).cpu(), cpu.loss(X))


# --------------------------------------------------------------------------- save / load


def saved_file(path: str) -> dict:
    """``torch.load(path, weights_only=True)`` where the model that wrote ``path`` runs (behind the grader's
    sandbox: the worker, whose /tmp is its own)."""
    return load("torch").load(path, weights_only=True)


@GIVEN
def test_deep_convnet_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = DeepConvNet(input_dims=(1, 8, 8), num_filters=[4, 5], max_pools=[1], batchnorm=True, num_classes=3,
                        weight_scale="kaiming", reg=0.05)
    X, y = torch.randn(6, 1, 8, 8), torch.arange(6) % 3
    for _ in range(2):
        model.loss(X, y)  # running statistics move away from zeros and ones
    path = str(tmp_path / "sub" / "deep.pt")  # written and read where the model lives (see saved_file)
    model.save(path)
    raw = saved_file(path)
    assert raw["model"] == "DeepConvNet"
    other = DeepConvNet(input_dims=(3, 4, 4), num_filters=[2], max_pools=[])
    other.load(path)
    assert other.reg == 0.05 and other.num_layers == 3 and list(other.max_pools) == [1] and other.batchnorm
    assert other.input_dims == (1, 8, 8)
    for mine, theirs in zip(other.bn_params, model.bn_params, strict=True):
        assert torch.equal(mine["running_mean"], theirs["running_mean"])
        assert torch.equal(mine["running_var"], theirs["running_var"])
    assert torch.equal(other.loss(X), model.loss(X))  # test mode: the running statistics matter
    other.load(path, dtype=torch.float64)
    assert all(v.dtype == torch.float64 for v in other.params.values())
    assert other.bn_params[0]["running_var"].dtype == torch.float64
    torch.testing.assert_close(other.loss(X.double()).float(), model.loss(X), rtol=1e-4, atol=1e-5)


@GIVEN
def test_three_layer_convnet_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = ThreeLayerConvNet(input_dims=(1, 6, 6), num_filters=2, filter_size=3, hidden_dim=4, num_classes=3,
                              reg=0.2, weight_scale=0.1)
    path = str(tmp_path / "three.pt")
    model.save(path)
    other = ThreeLayerConvNet(input_dims=(3, 4, 4), num_filters=1, filter_size=1, hidden_dim=2)
    other.load(path)
    X = torch.randn(3, 1, 6, 6)
    assert other.reg == 0.2 and other.input_dims == (1, 6, 6) and torch.equal(other.loss(X), model.loss(X))
    with pytest.raises(ValueError, match="does not hold a DeepConvNet"):
        DeepConvNet().load(path)


# --------------------------------------------------------------------------- errors


@GIVEN
@pytest.mark.parametrize("layer", ["Conv", "FastConv"])
def test_conv_errors(layer):
    layer = getattr(cnn, layer)
    x, w, b = conv_inputs((2, 3, 5, 5), (4, 3, 3, 3))
    ok = {"stride": 1, "pad": 1}
    with pytest.raises(ValueError, match="does not tile"):
        layer.forward(x, w, b, {"stride": 3, "pad": 1})  # 5 + 2 - 3 = 4 is not a multiple of 3
    with pytest.raises(ValueError, match=r"conv_param\['pad'\] must be an int >= 0"):
        layer.forward(x, w, b, {"stride": 1, "pad": -1})
    with pytest.raises(ValueError, match=r"conv_param\['stride'\] must be an int >= 1"):
        layer.forward(x, w, b, {"stride": 0, "pad": 1})
    with pytest.raises(ValueError, match="keys 'stride'"):
        layer.forward(x, w, b, {"stride": 1})
    with pytest.raises(ValueError, match=r"w must have shape \(F, C, HH, WW\) with C = 3 channels"):
        layer.forward(x, randn(4, 2, 3, 3), b, ok)
    with pytest.raises(ValueError, match=r"b must have shape \(F,\) = \(4,\)"):
        layer.forward(x, w, randn(3), ok)
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, H, W\)"):
        layer.forward(randn(3, 5, 5), w, b, ok)
    with pytest.raises(ValueError, match="exceeds"):
        layer.forward(x, randn(4, 3, 9, 9), b, ok)
    with pytest.raises(TypeError, match="floating-point"):
        layer.forward(torch.ones(2, 3, 5, 5, dtype=torch.long), w, b, ok)
    with pytest.raises(TypeError, match="share dtype"):
        layer.forward(x.float(), w, b, ok)


@GIVEN
@pytest.mark.parametrize("layer", ["Conv", "FastConv"])
def test_conv_backward_checks_dout(layer):
    layer = getattr(cnn, layer)
    x, w, b = conv_inputs((2, 3, 5, 5), (4, 3, 3, 3))
    _, cache = layer.forward(x, w, b, {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match=r"dout must have the shape of the output \(N, F, H', W'\), \(2, 4, 5, 5\)"):
        layer.backward(randn(2, 4, 3, 3), cache)


@GIVEN
@pytest.mark.parametrize("layer", ["MaxPool", "FastMaxPool"])
def test_max_pool_errors(layer):
    layer = getattr(cnn, layer)
    x = randn(2, 3, 5, 6)
    with pytest.raises(ValueError, match="does not tile"):
        layer.forward(x, pool_param(2, 2, 2))  # height 5 - 2 = 3 is odd
    with pytest.raises(ValueError, match="exceeds"):
        layer.forward(x, pool_param(6, 2, 2))
    with pytest.raises(ValueError, match=r"pool_param\['stride'\] must be an int >= 1"):
        layer.forward(x, pool_param(1, 2, 0))
    with pytest.raises(ValueError, match="keys 'pool_height'"):
        layer.forward(x, {"pool_height": 2, "stride": 2})
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, H, W\)"):
        layer.forward(randn(5, 6), pool_param(1, 1, 1))
    _, cache = layer.forward(x, pool_param(1, 2, 1))
    with pytest.raises(ValueError, match=r"dout must have the shape of the output \(N, C, H', W'\)"):
        layer.backward(randn(2, 3, 5, 6), cache)


@GIVEN
@pytest.mark.parametrize("bn_param, error, words", [
    ({"mode": "eval"}, ValueError, "'train' or 'test'"),
    ({}, ValueError, "'train' or 'test'"),
    (None, ValueError, "'train' or 'test'"),
    ({"mode": "train", "momentum": 1.5}, ValueError, r"must lie in \[0, 1\]"),
    ({"mode": "train", "eps": 0}, ValueError, r"eps'\] must be a number > 0"),
    ({"mode": "train", "running_mean": torch.zeros(4)}, ValueError, r"running_mean'\] must be a tensor of shape"),
])
def test_batchnorm_param_errors(bn_param, error, words):
    x, gamma, beta = bn_inputs(N=4, D=3)
    with pytest.raises(error, match=words):
        BatchNorm.forward(x, gamma, beta, bn_param)


@GIVEN
def test_batchnorm_shape_errors():
    x, gamma, beta = bn_inputs(N=4, D=3)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        BatchNorm.forward(x, randn(4), beta, {"mode": "train"})
    with pytest.raises(ValueError, match="at least 2 values per feature"):
        BatchNorm.forward(x[:1], gamma, beta, {"mode": "train"})
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\)"):
        BatchNorm.forward(randn(4, 3, 2), gamma, beta, {"mode": "train"})
    with pytest.raises(ValueError, match=r"gamma must have shape \(C,\) = \(2,\)"):
        SpatialBatchNorm.forward(randn(2, 2, 3, 3), gamma, beta, {"mode": "train"})
    with pytest.raises(ValueError, match=r"at least 2 values per channel \(N \* H \* W\)"):
        SpatialBatchNorm.forward(randn(1, 3, 1, 1), gamma, beta, {"mode": "train"})


@GIVEN
def test_kaiming_errors():
    with pytest.raises(ValueError, match="Din must be >= 1"):
        kaiming_initializer(0, 3)
    with pytest.raises(ValueError, match="K must be >= 1"):
        kaiming_initializer(2, 3, K=0)
    with pytest.raises(TypeError, match="floating torch dtype"):
        kaiming_initializer(2, 3, dtype=torch.int32)


@GIVEN
@pytest.mark.parametrize("kwargs, error, words", [
    ({"num_filters": [4, 4], "max_pools": [2]}, ValueError, r"indices of conv layers in \[0, 2\)"),
    ({"num_filters": [4, 4], "max_pools": [-1]}, ValueError, r"indices of conv layers in \[0, 2\)"),
    ({"num_filters": [4, 4], "max_pools": [1, 1]}, ValueError, "at most once"),
    ({"input_dims": (1, 8, 8), "num_filters": [4] * 4, "max_pools": [0, 1, 2, 3]}, ValueError,
     "too small or not divisible"),
    ({"input_dims": (1, 28, 28), "num_filters": [4] * 3, "max_pools": [0, 1, 2]}, ValueError, "gets 7 x 7"),
    ({"input_dims": (3, 32)}, ValueError, r"input_dims must be \(C, H, W\)"),
    ({"num_filters": 8}, TypeError, "list of positive ints"),
    ({"num_filters": [8, 0], "max_pools": []}, ValueError, r"num_filters\[1\] must be >= 1"),
    ({"weight_scale": "he"}, ValueError, "or 'kaiming'"),
    ({"reg": -1.0}, ValueError, "reg must be a number >= 0"),
    ({"dtype": torch.int64}, TypeError, "floating torch dtype"),
    ({"batchnorm": 1}, TypeError, "batchnorm must be True or False"),
])
def test_deep_convnet_constructor_errors(kwargs, error, words):
    with pytest.raises(error, match=words):
        DeepConvNet(**kwargs)


@GIVEN
@pytest.mark.parametrize("kwargs, words", [
    ({"filter_size": 4}, "filter_size must be odd"),
    ({"input_dims": (3, 31, 32)}, "even H and W"),
    ({"num_filters": 0}, "num_filters must be >= 1"),
    ({"weight_scale": -1.0}, "weight_scale"),
])
def test_three_layer_convnet_constructor_errors(kwargs, words):
    with pytest.raises(ValueError, match=words):
        ThreeLayerConvNet(**kwargs)


@GIVEN
def test_model_input_errors():
    model = DeepConvNet(input_dims=(1, 8, 8), num_filters=[2], max_pools=[0], num_classes=3)
    with pytest.raises(ValueError, match=r"X must have shape \(N, C, H, W\) = \(N, 1, 8, 8\)"):
        model.loss(torch.zeros(2, 1, 8, 9))
    with pytest.raises(ValueError, match=r"X must have shape \(N, C, H, W\) = \(N, 1, 8, 8\)"):
        model.loss(torch.zeros(2, 64))
    with pytest.raises(TypeError, match="share dtype"):
        model.loss(torch.zeros(2, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="labels must lie"):
        model.loss(torch.zeros(2, 1, 8, 8), torch.tensor([0, 3]))
    three = ThreeLayerConvNet(input_dims=(1, 4, 4), num_filters=2, filter_size=3, hidden_dim=3)
    with pytest.raises(ValueError, match=r"\(N, 1, 4, 4\)"):
        three.loss(torch.zeros(2, 3, 4, 4))


# --------------------------------------------------------------------------- your hyper-parameters


@pytest.fixture(scope="module")
def fashion():
    """A Fashion-MNIST subset as images (skipped where the dataset is missing)."""
    try:
        x_train, y_train, x_test, y_test = load_dataset("fashion_mnist", num_train=2000, num_test=10)
    except DatasetNotFoundError:
        pytest.skip("Fashion-MNIST is not installed")
    return preprocess_dataset(x_train, y_train, x_test, y_test, validation_ratio=0.2, flatten=False)


@HYPER
def test_find_overfit_parameters_overfits_50_images(fashion):
    weight_scale, learning_rate = find_overfit_parameters()
    small = {k: v[:50] for k, v in fashion.items()}
    torch.manual_seed(0)
    model = DeepConvNet(input_dims=small["X_train"].shape[1:], num_classes=10, weight_scale=weight_scale,
                        **dict(OVERFIT_NET.items()))
    # Built where the model lives (behind the grader's sandbox: in the worker, no round trip per step).
    solver = load("helpers.solver").Solver(model, small, update_rule=adam,
                                           optim_config={"learning_rate": learning_rate}, verbose=False, seed=0,
                                           **dict(OVERFIT_SOLVER.items()))
    solver.train()
    assert max(solver.train_acc_history) == 1.0  # reaches 100% within 30 epochs


@HYPER
def test_create_convolutional_solver_instance(fashion):
    solver = create_convolutional_solver_instance(fashion, dtype=torch.float64, verbose=False, num_epochs=3)
    is_a = load("builtins").isinstance  # asked where the objects live
    assert is_a(solver, load("helpers.solver").Solver) and is_a(solver.model, DeepConvNet)
    model = solver.model
    assert model.input_dims == (1, 28, 28) and model.params[f"b{model.num_layers}"].shape == (10,)
    assert all(v.dtype == torch.float64 for v in model.params.values())
    assert solver.num_epochs == 3 and solver.epoch == 0 and list(solver.loss_history) == []  # untrained
    # Five updates of the chosen batch size already beat chance (10%) clearly.
    n = 5 * solver.batch_size
    assert fashion["X_train"].shape[0] >= n, "batch size too large for this test's subset"
    subset = {"X_train": fashion["X_train"][:n], "y_train": fashion["y_train"][:n],
              "X_val": fashion["X_val"][:200], "y_val": fashion["y_val"][:200]}
    torch.manual_seed(0)
    solver = create_convolutional_solver_instance(subset, verbose=False, num_epochs=1, num_train_samples=100)
    assert solver.iterations_per_epoch == 5
    solver.train()
    assert solver.loss_history[-1] < 0.7 * solver.loss_history[0]
    assert solver.val_acc_history[-1] > 0.3  # measured 0.69 with the settings shipped (seed 0)
    with pytest.raises(ValueError, match="X_train, y_train, X_val, y_val"):
        create_convolutional_solver_instance({"X_train": fashion["X_train"]})
    with pytest.raises(ValueError, match="flatten=False"):
        create_convolutional_solver_instance({**fashion, "X_train": fashion["X_train"].flatten(1)})
