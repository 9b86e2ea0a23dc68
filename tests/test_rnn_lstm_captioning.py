"""A4 captioning: the hand-written RNN (forward and backward), LSTM, attention and the captioning model.

Each piece is checked against a PyTorch reference with copied weights -- ``nn.RNNCell`` /
``nn.RNN`` (tanh), ``nn.LSTMCell`` / ``nn.LSTM`` (whose gates are packed i, f, g, o where
the course packs i, f, o, g), ``F.scaled_dot_product_attention`` over the flattened grid,
``F.cross_entropy`` (with ``ignore_index``), ``F.embedding`` -- and, for the hand-written
backward passes and the loss, against numeric gradients in float64.  The captioning model:
its loss is the teacher-forced softmax loss of its own pieces, a tiny model trained with
``helpers.train.train`` overfits a few captions and then reproduces them by greedy sampling,
sampling stops at ``<END>``, and the image-blind baseline really ignores the images.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from student_autograd import backward_through, is_instance, parameter_grads, set_parameters, vjp
from torch import nn
from under_test import load, rule_mark, rules_of

cap = load("A4_rnn_transformer.rnn_lstm_captioning")
LSTM = cap.LSTM
RNN = cap.RNN
AttentionLSTM = cap.AttentionLSTM
CaptioningRNN = cap.CaptioningRNN
ImageEncoder = cap.ImageEncoder
WordEmbedding = cap.WordEmbedding
caption_images = cap.caption_images
caption_loss_fn = cap.caption_loss_fn
dot_product_attention = cap.dot_product_attention
lstm_bias = cap.lstm_bias
rnn_backward = cap.rnn_backward
rnn_forward = cap.rnn_forward
rnn_step_backward = cap.rnn_step_backward
rnn_step_forward = cap.rnn_step_forward
temporal_softmax_loss = cap.temporal_softmax_loss
from helpers.backbone import RegNetTrunk
from helpers.gradcheck import autograd_gradients, compute_numeric_gradient, rel_error

# Score groups of `python -m course.grade` (README, "For teachers"): points are each group's total.
RNN_STEP = pytest.mark.grade("rnn_step_forward / rnn_step_backward", points=4)
RNN_SEQUENCE = pytest.mark.grade("rnn_forward / rnn_backward", points=4)
RNN_MODULE = pytest.mark.grade("RNN module", points=2)
EMBEDDING = pytest.mark.grade("WordEmbedding", points=2)
LOSS = pytest.mark.grade("temporal_softmax_loss", points=3)
LSTM_CELL = pytest.mark.grade("LSTM", points=4)
ATTENTION = pytest.mark.grade("dot_product_attention", points=3)
ATTENTION_LSTM = pytest.mark.grade("AttentionLSTM", points=3)
CAPTIONING = pytest.mark.grade("CaptioningRNN", points=6)
ENCODER = pytest.mark.grade("given code: image encoder", points=0)
GIVEN = pytest.mark.grade("given code: input checks", points=0)
INIT = pytest.mark.grade("given code: LSTM initialisation", points=0)

# The rules the docstrings state: how many Python loops, and which library routes are off limits.
RNN_LIBRARY = ("RNN", "RNNCell", "rnn_tanh", "rnn_tanh_cell")
LSTM_LIBRARY = ("LSTM", "LSTMCell", "lstm", "lstm_cell")
ATTENTION_LIBRARY = ("scaled_dot_product_attention", "MultiheadAttention", "multi_head_attention_forward")
AUTOGRAD = ("backward", "autograd", "func", "vjp", "jacrev", "requires_grad_", "enable_grad")
RULES = {  # function: (its group, loops allowed, names forbidden)
    "rnn_step_forward": (RNN_STEP, 0, RNN_LIBRARY),
    "rnn_step_backward": (RNN_STEP, 0, AUTOGRAD),
    "rnn_forward": (RNN_SEQUENCE, 1, RNN_LIBRARY),
    "rnn_backward": (RNN_SEQUENCE, 1, AUTOGRAD),
    "WordEmbedding.forward": (EMBEDDING, 0, ("Embedding", "embedding")),
    "temporal_softmax_loss": (LOSS, 0, ()),
    "LSTM.step_forward": (LSTM_CELL, 0, LSTM_LIBRARY),
    "LSTM.forward": (LSTM_CELL, 1, LSTM_LIBRARY),
    "dot_product_attention": (ATTENTION, 0, ATTENTION_LIBRARY),
    "AttentionLSTM.step_forward": (ATTENTION_LSTM, 0, LSTM_LIBRARY),
    "AttentionLSTM.forward": (ATTENTION_LSTM, 1, LSTM_LIBRARY + ATTENTION_LIBRARY),
    "CaptioningRNN.initial_state": (CAPTIONING, 0, ()),
    "CaptioningRNN.scores": (CAPTIONING, 0, ()),
    "CaptioningRNN.forward": (CAPTIONING, 0, ()),
    "CaptioningRNN.sample": (CAPTIONING, 1, ()),
}

NULL, START, END = 0, 1, 2
WORDS = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "small", "large", "red", "blue", "bag", "boot", "left", "of"]
WORD_TO_IDX = {w: i for i, w in enumerate(WORDS)}
V = len(WORDS)
TOL = 1e-7  # numeric gradients of the layers, float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=gen(seed), dtype=dtype)


def rnn_params(D, H, seed=0, dtype=torch.float64):
    return (randn(D, H, seed=seed, dtype=dtype) / math.sqrt(D), randn(H, H, seed=seed + 1, dtype=dtype) / math.sqrt(H),
            randn(H, seed=seed + 2, dtype=dtype) * 0.1)


def lstm_params(D, H, seed=0, dtype=torch.float64, attention=False):
    params = [randn(D, 4 * H, seed=seed, dtype=dtype) / math.sqrt(D),
              randn(H, 4 * H, seed=seed + 1, dtype=dtype) / math.sqrt(H),
              randn(4 * H, seed=seed + 2, dtype=dtype) * 0.1]
    if attention:
        params.append(randn(H, 4 * H, seed=seed + 3, dtype=dtype) / math.sqrt(H))
    return params


def lstm_layer(Wx, Wh, b, Wattn=None):
    """A float64 ``LSTM`` (``AttentionLSTM`` when ``Wattn`` is given) holding these weights.

    It is built on the student's side (when grading, in the worker); the global random numbers stay put.
    """
    with torch.random.fork_rng(devices=[]):
        layer = (LSTM if Wattn is None else AttentionLSTM)(Wx.shape[0], Wh.shape[0])
    layer = layer.double()
    set_parameters(layer, {"Wx": Wx, "Wh": Wh, "b": b} | ({} if Wattn is None else {"Wattn": Wattn}))
    return layer


def lstm_step_fn(x, prev_h, prev_c, Wx, Wh, b, attn=None, Wattn=None):
    """``LSTM.step_forward`` (``AttentionLSTM.step_forward`` when ``attn`` is given) with these weights."""
    layer = lstm_layer(Wx, Wh, b, Wattn)
    return layer.step_forward(x, prev_h, prev_c) if attn is None else layer.step_forward(x, prev_h, prev_c, attn)


def lstm_fn(x, h0, Wx, Wh, b):
    """``LSTM.forward`` with these weights."""
    return lstm_layer(Wx, Wh, b)(x, h0)


def attention_lstm_fn(x, A, Wx, Wh, Wattn, b):
    """``AttentionLSTM.forward`` with these weights."""
    return lstm_layer(Wx, Wh, b, Wattn)(x, A)


def unchecked_lstm_step(x, prev_h, prev_c, **weights):
    """``LSTM.step_forward`` of an object holding ``weights`` as they are (no module checks their shapes first)."""
    holder = load("types").SimpleNamespace(**weights)
    return LSTM.step_forward(holder, x, prev_h, prev_c)


def lstm_gradients(x, first, Wx, Wh, b, Wattn=None, dout=None):
    """Autograd through the (attention) LSTM's forward: output and the gradients of x, h0 (or A), Wx, Wh, b[, Wattn]."""
    layer = lstm_layer(Wx, Wh, b, Wattn)
    out, (dx, dfirst) = backward_through(layer, [x.clone().requires_grad_(), first.clone().requires_grad_()], dout)
    grads = parameter_grads(layer)
    return out, [dx, dfirst, grads["Wx"], grads["Wh"], grads["b"]] + ([] if Wattn is None else [grads["Wattn"]])


def swap_g_o(w):
    """Gates i, f, o, g (the course) <-> i, f, g, o (torch) along the last axis; its own inverse."""
    i, f, a, b = w.chunk(4, dim=-1)
    return torch.cat([i, f, b, a], dim=-1)


def torch_rnn(Wx, Wh, b, cell=False):
    H = Wh.shape[0]
    ref = (nn.RNNCell if cell else nn.RNN)(Wx.shape[0], H, nonlinearity="tanh", **({} if cell else
                                                                                  {"batch_first": True}))
    ref = ref.to(Wx.dtype)
    suffix = "" if cell else "_l0"
    with torch.no_grad():
        getattr(ref, f"weight_ih{suffix}").copy_(Wx.T)
        getattr(ref, f"weight_hh{suffix}").copy_(Wh.T)
        getattr(ref, f"bias_ih{suffix}").copy_(b)
        getattr(ref, f"bias_hh{suffix}").zero_()
    return ref


def torch_lstm(Wx, Wh, b, cell=False):
    """nn.LSTM / nn.LSTMCell holding our weights: transposed and with the gates reordered."""
    H = Wh.shape[0]
    ref = nn.LSTMCell(Wx.shape[0], H) if cell else nn.LSTM(Wx.shape[0], H, batch_first=True)
    ref = ref.to(Wx.dtype)
    suffix = "" if cell else "_l0"
    with torch.no_grad():
        getattr(ref, f"weight_ih{suffix}").copy_(swap_g_o(Wx).T)
        getattr(ref, f"weight_hh{suffix}").copy_(swap_g_o(Wh).T)
        getattr(ref, f"bias_ih{suffix}").copy_(swap_g_o(b))
        getattr(ref, f"bias_hh{suffix}").zero_()
    return ref




@pytest.mark.parametrize("name", [pytest.param(name, marks=rule_mark(group)) for name, (group, _, _) in RULES.items()])
def test_docstring_rules(name):
    """Each function's stated rule: its number of Python loops, and no library route to the answer."""
    _, loops, forbidden = RULES[name]
    rules_of("A4_rnn_transformer.rnn_lstm_captioning", name, loops=loops, forbid=forbidden)


# --------------------------------------------------------------------------- rnn step


@RNN_STEP
def test_rnn_step_forward_matches_rnn_cell():
    N, D, H = 3, 10, 4
    x, prev_h = randn(N, D, seed=1), randn(N, H, seed=2)
    Wx, Wh, b = rnn_params(D, H)
    next_h, _ = rnn_step_forward(x, prev_h, Wx, Wh, b)
    assert next_h.shape == (N, H)
    expected = torch_rnn(Wx, Wh, b, cell=True)(x, prev_h)
    assert rel_error(next_h, expected) < 1e-12


@RNN_STEP
def test_rnn_step_backward_matches_numeric_gradients():
    N, D, H = 4, 5, 6
    x, prev_h = randn(N, D, seed=3), randn(N, H, seed=4)
    Wx, Wh, b = rnn_params(D, H, seed=5)
    dnext_h = randn(N, H, seed=8)
    _, cache = rnn_step_forward(x, prev_h, Wx, Wh, b)
    grads = rnn_step_backward(dnext_h, cache)
    inputs = [x, prev_h, Wx, Wh, b]
    for k, name in enumerate(["dx", "dprev_h", "dWx", "dWh", "db"]):
        def f(v, k=k):
            args = list(inputs)
            args[k] = v
            return rnn_step_forward(*args)[0]
        numeric = compute_numeric_gradient(f, inputs[k].clone(), dnext_h)
        assert grads[k].shape == inputs[k].shape, name
        assert rel_error(grads[k], numeric) < TOL, name


@RNN_STEP
def test_rnn_step_backward_matches_autograd_of_rnn_cell():
    N, D, H = 3, 4, 5
    x, prev_h = randn(N, D, seed=9), randn(N, H, seed=10)
    Wx, Wh, b = rnn_params(D, H, seed=11)
    dnext_h = randn(N, H, seed=14)
    _, cache = rnn_step_forward(x, prev_h, Wx, Wh, b)
    ours = rnn_step_backward(dnext_h, cache)
    expected = autograd_gradients(lambda x_, h_, wx, wh, b_: torch.tanh(F.linear(x_, wx.T, b_) + F.linear(h_, wh.T)),
                                  x, prev_h, Wx, Wh, b, dout=dnext_h)
    for got, want in zip(ours, expected, strict=True):
        assert rel_error(got, want) < 1e-12


# --------------------------------------------------------------------------- rnn sequence


@RNN_SEQUENCE
def test_rnn_forward_matches_nn_rnn():
    N, T, D, H = 2, 7, 5, 4
    x, h0 = randn(N, T, D, seed=20), randn(N, H, seed=21)
    Wx, Wh, b = rnn_params(D, H, seed=22)
    h, _ = rnn_forward(x, h0, Wx, Wh, b)
    expected, h_last = torch_rnn(Wx, Wh, b)(x, h0[None])
    assert h.shape == (N, T, H)
    assert rel_error(h, expected) < 1e-12 and rel_error(h[:, -1], h_last[0]) < 1e-12
    step, _ = rnn_step_forward(x[:, 0], h0, Wx, Wh, b)
    assert torch.equal(h[:, 0], step), "the first hidden state is one step from h0"


@RNN_SEQUENCE
def test_rnn_backward_matches_numeric_gradients():
    N, T, D, H = 2, 3, 4, 5
    x, h0 = randn(N, T, D, seed=23), randn(N, H, seed=24)
    Wx, Wh, b = rnn_params(D, H, seed=25)
    dh = randn(N, T, H, seed=28)
    _, cache = rnn_forward(x, h0, Wx, Wh, b)
    grads = rnn_backward(dh, cache)
    inputs = [x, h0, Wx, Wh, b]
    for k, name in enumerate(["dx", "dh0", "dWx", "dWh", "db"]):
        def f(v, k=k):
            args = list(inputs)
            args[k] = v
            return rnn_forward(*args)[0]
        numeric = compute_numeric_gradient(f, inputs[k].clone(), dh)
        assert grads[k].shape == inputs[k].shape, name
        assert rel_error(grads[k], numeric) < TOL, name


@RNN_SEQUENCE
def test_rnn_backward_matches_autograd_of_nn_rnn():
    N, T, D, H = 3, 6, 4, 5
    x, h0 = randn(N, T, D, seed=30), randn(N, H, seed=31)
    Wx, Wh, b = rnn_params(D, H, seed=32)
    dh = randn(N, T, H, seed=35)
    _, cache = rnn_forward(x, h0, Wx, Wh, b)
    dx, dh0, dWx, dWh, db = rnn_backward(dh, cache)
    ref = torch_rnn(Wx, Wh, b)
    xr, h0r = x.clone().requires_grad_(), h0.clone().requires_grad_()
    out, _ = ref(xr, h0r[None])
    out.backward(dh)
    assert rel_error(dx, xr.grad) < 1e-12 and rel_error(dh0, h0r.grad) < 1e-12
    assert rel_error(dWx, ref.weight_ih_l0.grad.T) < 1e-12 and rel_error(dWh, ref.weight_hh_l0.grad.T) < 1e-12
    assert rel_error(db, ref.bias_ih_l0.grad) < 1e-12


@RNN_SEQUENCE
def test_rnn_backward_of_a_single_step_is_the_step_backward():
    N, D, H = 2, 3, 4
    x, h0 = randn(N, 1, D, seed=36), randn(N, H, seed=37)
    Wx, Wh, b = rnn_params(D, H, seed=38)
    dh = randn(N, 1, H, seed=41)
    _, cache = rnn_forward(x, h0, Wx, Wh, b)
    _, step_cache = rnn_step_forward(x[:, 0], h0, Wx, Wh, b)
    seq = rnn_backward(dh, cache)
    step = rnn_step_backward(dh[:, 0], step_cache)
    assert torch.allclose(seq[0][:, 0], step[0])
    for got, want in zip(seq[1:], step[1:], strict=True):
        assert torch.allclose(got, want)


# --------------------------------------------------------------------------- RNN module


@RNN_MODULE
def test_rnn_module_runs_rnn_forward_and_its_gradient_equals_rnn_backward():
    torch.manual_seed(0)
    layer = RNN(5, 4).double()
    assert [tuple(p.shape) for p in (layer.Wx, layer.Wh, layer.b)] == [(5, 4), (4, 4), (4,)]
    x, h0 = randn(3, 6, 5, seed=42), randn(3, 4, seed=43)
    h = layer(x, h0)
    expected, cache = rnn_forward(x, h0, layer.Wx.detach(), layer.Wh.detach(), layer.b.detach())
    assert torch.equal(h.detach(), expected)
    dh = randn(3, 6, 4, seed=44)
    backward_through(layer, [x, h0], dh)
    grads = parameter_grads(layer)
    _, _, dWx, dWh, db = rnn_backward(dh, cache)
    assert rel_error(grads["Wx"], dWx) < 1e-12 and rel_error(grads["Wh"], dWh) < 1e-12
    assert rel_error(grads["b"], db) < 1e-12
    step = layer.step_forward(x[:, 0], h0)
    assert torch.allclose(step, h[:, 0])


# --------------------------------------------------------------------------- word embedding


@EMBEDDING
def test_word_embedding_matches_f_embedding_values_and_gradient():
    torch.manual_seed(0)
    layer = WordEmbedding(V, 6)
    assert layer.W_embed.shape == (V, 6)
    ids = torch.tensor([[1, 4, 4, 9], [1, 12, 0, 0]])
    out = layer(ids)
    reference = nn.Embedding(V, 6)
    with torch.no_grad():
        reference.weight.copy_(layer.W_embed)
    expected = reference(ids)
    assert out.shape == (2, 4, 6) and torch.equal(out.detach(), F.embedding(ids, layer.W_embed.detach()))
    upstream = torch.randn(2, 4, 6, generator=gen(45))
    backward_through(layer, [ids], upstream)
    expected.backward(upstream)
    torch.testing.assert_close(parameter_grads(layer)["W_embed"], reference.weight.grad)  # repeated ids add up
    assert layer(torch.tensor([3, 7])).shape == (2, 6)


# --------------------------------------------------------------------------- temporal softmax loss


def torch_loss(x, y, ignore_index=None):
    N, T, V_ = x.shape
    kwargs = {} if ignore_index is None else {"ignore_index": ignore_index}
    return F.cross_entropy(x.reshape(N * T, V_), y.reshape(N * T), reduction="sum", **kwargs) / N


@LOSS
@pytest.mark.parametrize("ignore_index", [None, NULL])
def test_temporal_softmax_loss_matches_cross_entropy(ignore_index):
    N, T = 5, 7
    x = randn(N, T, V, seed=46) * 3
    y = torch.randint(0, V, (N, T), generator=gen(47))
    y[:, -3:] = NULL  # padding
    loss = temporal_softmax_loss(x, y, ignore_index=ignore_index)
    assert loss.dim() == 0
    assert rel_error(loss, torch_loss(x, y, ignore_index)) < 1e-12
    ours = backward_through(temporal_softmax_loss, [x.clone().requires_grad_(), y, ignore_index])[1][0]
    theirs = autograd_gradients(lambda s: torch_loss(s, y, ignore_index), x)[0]
    assert rel_error(ours, theirs) < 1e-12


@LOSS
def test_temporal_softmax_loss_known_values_and_normalisation():
    # uniform scores: every counted word costs log V; the sum over time is divided by N only
    N, T = 4, 6
    y = torch.full((N, T), 5)
    y[:, 4:] = NULL
    uniform = torch.zeros(N, T, V, dtype=torch.float64)
    assert abs(float(temporal_softmax_loss(uniform, y)) - T * math.log(V)) < 1e-12
    assert abs(float(temporal_softmax_loss(uniform, y, ignore_index=NULL)) - 4 * math.log(V)) < 1e-12
    assert float(temporal_softmax_loss(uniform, torch.full((N, T), NULL), ignore_index=NULL)) == 0.0
    # an ignore_index outside the vocabulary (F.cross_entropy's default -100) is allowed in y
    y_out = y.masked_fill(y == NULL, -100)
    assert abs(float(temporal_softmax_loss(uniform, y_out, ignore_index=-100)) - 4 * math.log(V)) < 1e-12
    # huge scores stay finite (log-sum-exp) and agree with PyTorch
    x = randn(2, 3, V, seed=48) * 1e4
    y = torch.randint(0, V, (2, 3), generator=gen(49))
    loss = temporal_softmax_loss(x, y)
    assert math.isfinite(float(loss)) and rel_error(loss, torch_loss(x, y)) < 1e-12


@LOSS
def test_temporal_softmax_loss_gradient_matches_numeric():
    N, T = 3, 4
    x = randn(N, T, V, seed=50)
    y = torch.randint(0, V, (N, T), generator=gen(51))
    y[0, 2:] = NULL
    analytic = backward_through(temporal_softmax_loss, [x.clone().requires_grad_(), y], ignore_index=NULL)[1][0]
    numeric = compute_numeric_gradient(lambda s: temporal_softmax_loss(s, y, ignore_index=NULL), x.clone())
    assert rel_error(analytic, numeric) < TOL
    assert torch.all(analytic[0, 2:] == 0), "ignored positions get no gradient"


# --------------------------------------------------------------------------- LSTM


@LSTM_CELL
def test_lstm_step_forward_matches_lstm_cell_with_reordered_gates():
    N, D, H = 3, 5, 4
    x, prev_h, prev_c = randn(N, D, seed=52), randn(N, H, seed=53), randn(N, H, seed=54)
    Wx, Wh, b = lstm_params(D, H, seed=55)
    next_h, next_c = lstm_step_fn(x, prev_h, prev_c, Wx, Wh, b)
    h_ref, c_ref = torch_lstm(Wx, Wh, b, cell=True)(x, (prev_h, prev_c))
    assert next_h.shape == next_c.shape == (N, H)
    assert rel_error(next_h, h_ref) < 1e-12 and rel_error(next_c, c_ref) < 1e-12


@LSTM_CELL
def test_lstm_forward_matches_nn_lstm_values_and_gradients():
    N, T, D, H = 2, 6, 5, 4
    x, h0 = randn(N, T, D, seed=58), randn(N, H, seed=59)
    Wx, Wh, b = lstm_params(D, H, seed=60)
    dh = randn(N, T, H, seed=63)
    h, grads = lstm_gradients(x, h0, Wx, Wh, b, dout=dh)
    ref = torch_lstm(Wx, Wh, b)
    xr, h0r = x.clone().requires_grad_(), h0.clone().requires_grad_()
    expected, _ = ref(xr, (h0r[None], h0r[None]))  # the cell starts at c0 = h0
    expected.backward(dh)
    assert h.shape == (N, T, H) and rel_error(h, expected) < 1e-12
    assert rel_error(grads[0], xr.grad) < 1e-12 and rel_error(grads[1], h0r.grad) < 1e-12
    assert rel_error(grads[2], swap_g_o(ref.weight_ih_l0.grad.T)) < 1e-12
    assert rel_error(grads[3], swap_g_o(ref.weight_hh_l0.grad.T)) < 1e-12
    assert rel_error(grads[4], swap_g_o(ref.bias_ih_l0.grad)) < 1e-12


@LSTM_CELL
def test_lstm_forward_gradient_matches_numeric():
    N, T, D, H = 2, 3, 3, 2
    x, h0 = randn(N, T, D, seed=64), randn(N, H, seed=65)
    Wx, Wh, b = lstm_params(D, H, seed=66)
    dh = randn(N, T, H, seed=69)
    inputs = [x, h0, Wx, Wh, b]
    _, analytic = lstm_gradients(*inputs, dout=dh)
    layer = lstm_layer(Wx, Wh, b)
    for k in range(5):
        def f(v, k=k):
            args = list(inputs)
            args[k] = v
            set_parameters(layer, dict(zip(["Wx", "Wh", "b"], args[2:], strict=True)))
            return layer(args[0], args[1])
        assert rel_error(analytic[k], compute_numeric_gradient(f, inputs[k].clone(), dh)) < TOL


@LSTM_CELL
def test_lstm_module():
    torch.manual_seed(0)
    layer = LSTM(5, 3).double()
    assert [tuple(p.shape) for p in (layer.Wx, layer.Wh, layer.b)] == [(5, 12), (3, 12), (12,)]
    x, h0 = randn(2, 4, 5, seed=70), randn(2, 3, seed=71)
    h = layer(x, h0)
    params = [layer.Wx.detach(), layer.Wh.detach(), layer.b.detach()]
    assert torch.equal(h.detach(), lstm_fn(x, h0, *params))
    next_h, next_c = layer.step_forward(x[:, 0], h0, h0)
    assert torch.allclose(next_h, h[:, 0])
    backward_through(layer, [x, h0])  # the gradient of h.sum()
    grads = parameter_grads(layer)
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())


@INIT
@pytest.mark.parametrize("name", ["LSTM", "AttentionLSTM"])
def test_lstm_bias_starts_at_one_on_the_forget_gate_only(name):
    """Gates are packed i, f, o, g: the second block (forget) starts at 1, the others at 0."""
    H = 5
    layer = getattr(cap, name)(3, H)
    i, f, o, g = layer.b.detach().chunk(4)
    assert torch.equal(f, torch.ones(H)), f"forget-gate bias {f.tolist()}, expected 1 (Jozefowicz et al., 2015)"
    for gate, block in (("input", i), ("output", o), ("candidate", g)):
        assert torch.equal(block, torch.zeros(H)), f"{gate} bias {block.tolist()}, expected 0"


@INIT
def test_lstm_bias_helper():
    assert torch.equal(lstm_bias(2), torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]))
    assert torch.equal(lstm_bias(3, forget_bias=0.0), torch.zeros(12))
    assert torch.equal(lstm_bias(1, forget_bias=2.5), torch.tensor([0.0, 2.5, 0.0, 0.0]))
    with pytest.raises(ValueError, match="hidden_dim"):
        lstm_bias(0)


@LSTM_CELL
def test_lstm_initial_forget_gate_keeps_about_three_quarters_of_the_cell():
    """At construction, with the inputs switched off, a step keeps sigmoid(1) of the cell: f is the second block."""
    H = 4
    layer = LSTM(3, H).double()
    set_parameters(layer, {"Wx": torch.zeros(3, 4 * H, dtype=torch.float64),
                           "Wh": torch.zeros(H, 4 * H, dtype=torch.float64)})
    prev_c = randn(2, H, seed=72)
    _, next_c = layer.step_forward(randn(2, 3, seed=73), randn(2, H, seed=74), prev_c)
    assert rel_error(next_c, torch.sigmoid(torch.tensor(1.0, dtype=torch.float64)) * prev_c) < 1e-12


# --------------------------------------------------------------------------- attention


def sdpa_over_grid(prev_h, A):
    """F.scaled_dot_product_attention with the query prev_h and the grid cells as keys and values."""
    cells = A.flatten(2).transpose(1, 2)                           # (N, K, H)
    out = F.scaled_dot_product_attention(prev_h[:, None], cells, cells)[:, 0]
    # the weights: the same attention applied to one-hot values
    eye = torch.eye(cells.shape[1], dtype=A.dtype).expand(A.shape[0], -1, -1)
    weights = F.scaled_dot_product_attention(prev_h[:, None], cells, eye)[:, 0]
    return out, weights.reshape(A.shape[0], *A.shape[2:])


@ATTENTION
@pytest.mark.parametrize("grid", [(4, 4), (2, 3)])
def test_dot_product_attention_matches_scaled_dot_product_attention(grid):
    N, H = 3, 8
    prev_h, A = randn(N, H, seed=72) * 2, randn(N, H, *grid, seed=73)
    attn, weights = dot_product_attention(prev_h, A)
    expected, expected_weights = sdpa_over_grid(prev_h, A)
    assert attn.shape == (N, H) and weights.shape == (N, *grid)
    assert rel_error(attn, expected) < 1e-12 and rel_error(weights, expected_weights) < 1e-12
    torch.testing.assert_close(weights.sum(dim=(1, 2)), torch.ones(N, dtype=torch.float64))
    _, ours = vjp(dot_product_attention, [prev_h, A])  # the gradient of attn.sum()
    theirs = autograd_gradients(lambda h, a: sdpa_over_grid(h, a)[0], prev_h, A)
    assert all(rel_error(o, t) < 1e-12 for o, t in zip(ours, theirs, strict=True))


@ATTENTION
def test_dot_product_attention_scale_and_stability():
    # two cells: a = e_1 * s and a = 0; scores s^2 / sqrt(H) and 0
    H, s = 4, 3.0
    A = torch.zeros(1, H, 1, 2, dtype=torch.float64)
    A[0, 0, 0, 0] = s
    prev_h = torch.zeros(1, H, dtype=torch.float64)
    prev_h[0, 0] = s
    _, weights = dot_product_attention(prev_h, A)
    p = 1 / (1 + math.exp(-s * s / math.sqrt(H)))
    torch.testing.assert_close(weights[0, 0], torch.tensor([p, 1 - p], dtype=torch.float64))
    # huge scores: no overflow
    attn, weights = dot_product_attention(randn(2, 8, seed=74) * 1e3, randn(2, 8, 3, 3, seed=75) * 1e3)
    assert torch.isfinite(attn).all() and torch.isfinite(weights).all()


# --------------------------------------------------------------------------- attention LSTM


def reference_attention_lstm(x, A, Wx, Wh, Wattn, b):
    """nn.LSTMCell on [x, attn] (its input weights are [Wx; Wattn]), attention by F.scaled_dot_product_attention."""
    cell = torch_lstm(torch.cat([Wx, Wattn]), Wh, b, cell=True)
    h = c = A.mean(dim=(2, 3))
    states = []
    for t in range(x.shape[1]):
        attn, _ = sdpa_over_grid(h, A)
        h, c = cell(torch.cat([x[:, t], attn], dim=1), (h, c))
        states.append(h)
    return torch.stack(states, dim=1)


@ATTENTION_LSTM
def test_attention_lstm_forward_matches_lstm_cell_with_sdpa():
    N, T, D, H = 2, 4, 3, 5
    x, A = randn(N, T, D, seed=76), randn(N, H, 3, 3, seed=77)
    Wx, Wh, b, Wattn = lstm_params(D, H, seed=78, attention=True)
    h = attention_lstm_fn(x, A, Wx, Wh, Wattn, b)
    assert h.shape == (N, T, H)
    assert rel_error(h, reference_attention_lstm(x, A, Wx, Wh, Wattn, b)) < 1e-12
    # gradients with respect to the inputs and the grid
    dh = randn(N, T, H, seed=82)
    ours = lstm_gradients(x, A, Wx, Wh, b, Wattn, dout=dh)[1][:2]
    theirs = autograd_gradients(lambda x_, a_: reference_attention_lstm(x_, a_, Wx, Wh, Wattn, b), x, A, dout=dh)
    assert all(rel_error(o, t) < 1e-12 for o, t in zip(ours, theirs, strict=True))


@ATTENTION_LSTM
def test_lstm_step_with_attention_is_an_lstm_cell_reading_x_and_attn():
    N, D, H = 2, 3, 4
    x, prev_h, prev_c, attn = (randn(N, D, seed=83), randn(N, H, seed=84), randn(N, H, seed=85),
                               randn(N, H, seed=86))
    Wx, Wh, b, Wattn = lstm_params(D, H, seed=87, attention=True)
    next_h, next_c = lstm_step_fn(x, prev_h, prev_c, Wx, Wh, b, attn=attn, Wattn=Wattn)
    # x Wx + attn Wattn = [x, attn] [Wx; Wattn]
    h_ref, c_ref = torch_lstm(torch.cat([Wx, Wattn]), Wh, b, cell=True)(torch.cat([x, attn], dim=1), (prev_h, prev_c))
    assert rel_error(next_h, h_ref) < 1e-12 and rel_error(next_c, c_ref) < 1e-12
    plain_h, _ = lstm_step_fn(x, prev_h, prev_c, Wx, Wh, b)
    assert not torch.allclose(next_h, plain_h), "the attention changes the step"


@ATTENTION_LSTM
def test_attention_lstm_module():
    torch.manual_seed(0)
    layer = AttentionLSTM(3, 4).double()
    assert [tuple(p.shape) for p in (layer.Wx, layer.Wh, layer.Wattn, layer.b)] == [(3, 16), (4, 16), (4, 16), (16,)]
    x, A = randn(2, 5, 3, seed=88), randn(2, 4, 2, 2, seed=89)
    h = layer(x, A)
    params = [p.detach() for p in (layer.Wx, layer.Wh, layer.Wattn, layer.b)]
    assert torch.equal(h.detach(), attention_lstm_fn(x, A, *params))
    h0 = A.mean(dim=(2, 3))
    attn, _ = dot_product_attention(h0, A)
    next_h, _ = layer.step_forward(x[:, 0], h0, h0, attn)
    assert torch.allclose(next_h, h[:, 0])


# --------------------------------------------------------------------------- captioning model


def tiny_images(n, size=32, seed=0):
    """Distinct random images, (n, 3, size, size) uint8."""
    return torch.randint(0, 256, (n, 3, size, size), generator=gen(seed), dtype=torch.uint8)


def tiny_captions(n, length=8, seed=0):
    """<START> w.. <END> <NULL>.. with 2..length-2 words from the vocabulary's words."""
    g = gen(seed)
    caps = torch.full((n, length), NULL)
    for i in range(n):
        k = int(torch.randint(2, length - 1, (1,), generator=g))
        caps[i, 0] = START
        caps[i, 1:k + 1] = torch.randint(4, V, (k,), generator=g)
        caps[i, k + 1] = END
    return caps


def model(cell_type, seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs = {"wordvec_dim": 16, "hidden_dim": 32, "image_encoder_pretrained": False, **kwargs}
    return CaptioningRNN(WORD_TO_IDX, cell_type=cell_type, **kwargs)


def reference_loss(m, images, captions):
    """The teacher-forced loss rebuilt from the model's parts and F.cross_entropy."""
    features = m.image_encoder(images)
    if m.cell_type == "attn":
        state = m.feature_projection(features)
    else:
        state = m.feature_projection(features.mean(dim=(2, 3)))
    hidden = m.backbone(m.embedding.W_embed[captions[:, :-1]], state)
    scores = m.output_projection(hidden)
    return torch_loss(scores, captions[:, 1:], m.ignore_index)


@CAPTIONING
@pytest.mark.parametrize("cell_type", ["rnn", "lstm", "attn"])
def test_captioning_loss_is_the_teacher_forced_softmax_loss(cell_type):
    m = model(cell_type, ignore_index=NULL).eval()
    cell = {"rnn": RNN, "lstm": LSTM, "attn": AttentionLSTM}[cell_type]
    assert is_instance(m.backbone, cell) and is_instance(m.embedding, WordEmbedding)
    assert m.output_projection.out_features == V
    images, captions = tiny_images(4), tiny_captions(4, seed=1)
    loss = m(images, captions)
    assert loss.dim() == 0
    torch.testing.assert_close(loss, reference_loss(m, images, captions))
    assert 0.5 * loss < (captions[:, 1:] != NULL).sum() / 4 * math.log(V) < 2 * loss, "about log V per word"
    backward_through(m, [images, captions])
    assert all(g is not None for g in parameter_grads(m).values()), "every parameter takes part"


@CAPTIONING
def test_initial_state_pools_for_rnn_and_keeps_the_grid_for_attention():
    images = tiny_images(2, size=64)
    for cell_type, shape in [("rnn", (2, 32)), ("lstm", (2, 32)), ("attn", (2, 32, 4, 4))]:
        m = model(cell_type).eval()
        features = m.image_features(images)
        assert features.shape == (2, 128, 4, 4)
        assert m.initial_state(features).shape == shape


@CAPTIONING
@pytest.mark.parametrize("cell_type", ["rnn", "lstm", "attn"])
def test_sampling_is_greedy_and_stops_at_end(cell_type):
    m = model(cell_type, seed=1).eval()
    bias = m.output_projection.bias.detach().clone()
    bias[END] += 2.0  # make <END> likely enough that some captions end early
    set_parameters(m.output_projection, {"bias": bias})
    images = tiny_images(12, seed=2)
    with torch.no_grad():
        out = m.sample(images, max_length=9)
    captions, weights = out if cell_type == "attn" else (out, None)
    assert captions.shape == (12, 9) and captions.dtype == torch.int64
    assert int(captions.min()) >= 0 and int(captions.max()) < V
    ended = (captions == END).any(dim=1)
    assert ended.any(), "the test needs some captions that end"
    # teacher-forcing the sampled words must give them back as the arg-max, up to the first <END>
    captions_in = torch.cat([torch.full((12, 1), START), captions[:, :-1]], dim=1)
    with torch.no_grad():
        best = m.scores(images, captions_in).argmax(dim=2)
    for i in range(12):
        stop = int((captions[i] == END).nonzero()[0]) + 1 if ended[i] else 9
        assert torch.equal(best[i, :stop], captions[i, :stop])
        assert torch.all(captions[i, stop:] == NULL), "after <END> only <NULL>"
        if weights is not None:
            torch.testing.assert_close(weights[i, :stop].sum(dim=(1, 2)), torch.ones(stop))
            assert torch.all(weights[i, stop:] == 0)
    if weights is not None:
        assert weights.shape == (12, 9, 2, 2)


@CAPTIONING
@pytest.mark.parametrize("cell_type", ["rnn", "lstm", "attn"])
def test_a_tiny_model_overfits_a_few_captions_and_samples_them_back(cell_type):
    images, captions = tiny_images(8, seed=3), tiny_captions(8, seed=4)
    m = model(cell_type, seed=2, ignore_index=NULL)
    before = float(m(images, captions).detach())
    # the loop runs on the model's side (when grading, in the worker): 120 steps, not 120 x many round trips
    data = load("torch.utils.data")
    loader = data.DataLoader(data.TensorDataset(images, captions), batch_size=8)
    optimizer = load("torch.optim").Adam(m.parameters(), lr=1e-2)
    history = load("helpers.train").train(m, optimizer, loader, caption_loss_fn, num_epochs=120, progress=False)
    assert history["epoch_loss"][-1] < 0.02 * before, history["epoch_loss"][-1]
    # train mode: batch norm uses the statistics of this same batch, as in training
    with torch.no_grad():
        out = m.sample(images, max_length=7)
    sampled = out[0] if cell_type == "attn" else out
    assert torch.equal(sampled, captions[:, 1:])


@CAPTIONING
def test_image_blind_model_ignores_the_images():
    m = model("lstm", image_blind=True, ignore_index=NULL)
    captions = tiny_captions(4, seed=5)
    first = tiny_images(4, seed=6)
    second = torch.zeros_like(first)  # black images: their features differ clearly from noise's
    loss = m(first, captions)
    torch.testing.assert_close(loss, m(second, captions))
    backward_through(m, [first, captions])
    grads = parameter_grads(m)
    assert all(grads[name] is None for name in grads if name.startswith("image_encoder.")), "the encoder is never run"
    assert grads["output_projection.weight"] is not None
    torch.testing.assert_close(m.image_features(first), torch.zeros(4, 128, 2, 2))
    with torch.no_grad():
        assert torch.equal(m.sample(first, max_length=5), m.sample(second, max_length=5))
    seeing = model("lstm", ignore_index=NULL)  # the same model with its eyes open
    with torch.no_grad():
        change = seeing.scores(first, captions[:, :-1]) - seeing.scores(second, captions[:, :-1])
    assert float(change.abs().max()) > 1e-3


@CAPTIONING
def test_caption_images_batches_in_eval_mode():
    for cell_type in ("lstm", "attn"):
        m = model(cell_type, seed=3)
        images = tiny_images(7, seed=8)
        captions, weights = caption_images(m, images, max_length=6, batch_size=3)
        assert m.training, "the mode is restored"
        m.eval()
        with torch.no_grad():
            expected = m.sample(images, max_length=6)
        if cell_type == "attn":
            expected, expected_weights = expected
            torch.testing.assert_close(weights, expected_weights)
        else:
            assert weights is None
        assert torch.equal(captions, expected)


# --------------------------------------------------------------------------- image encoder (given)


@ENCODER
def test_small_encoder_grid_channels_and_input_types():
    torch.manual_seed(0)
    encoder = ImageEncoder(pretrained=False).eval()
    assert encoder.out_channels == 128
    images = tiny_images(2, size=64, seed=9)
    features = encoder(images)
    assert features.shape == (2, 128, 4, 4)
    torch.testing.assert_close(encoder(images.float() / 255), features)
    assert encoder(torch.rand(1, 3, 40, 72)).shape == (1, 128, *ImageEncoder.grid_size(40, 72)) == (1, 128, 3, 5)


@ENCODER
def test_regnet_trunk_is_stride_16_with_160_channels():
    torch.manual_seed(0)
    trunk = RegNetTrunk(up_to="c4").eval()  # the architecture only: no download
    with torch.no_grad():
        assert trunk(torch.rand(1, 3, 64, 64))["c4"].shape == (1, 160, 4, 4)
        assert trunk(torch.rand(1, 3, 72, 40))["c4"].shape == (1, 160, *ImageEncoder.grid_size(72, 40))


@ENCODER
def test_pretrained_encoder_offline_without_weights_says_what_to_do(tmp_path, monkeypatch):
    # an empty cache, where the encoder runs (when grading, the worker's torch.hub)
    monkeypatch.setattr(load("torch.hub"), "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pretrained=False"):
        ImageEncoder(pretrained=True)


@ENCODER
def test_encoder_prints_only_when_verbose(capsys):
    ImageEncoder(pretrained=False)
    assert capsys.readouterr().out == ""
    ImageEncoder(pretrained=False, verbose=True)
    assert "(N, 128, H/16, W/16)" in capsys.readouterr().out


# --------------------------------------------------------------------------- errors (given code)


@GIVEN
def test_rnn_and_lstm_functions_refuse_bad_inputs():
    x, h = randn(2, 3), randn(2, 4)
    Wx, Wh, b = rnn_params(3, 4)
    with pytest.raises(ValueError, match=r"Wx must have shape \(D, H\) with D=3, H=4"):
        rnn_step_forward(x, h, Wx.T, Wh, b)
    with pytest.raises(ValueError, match=r"prev_h must have shape \(N, H\) with N=2"):
        rnn_step_forward(x, randn(3, 4), Wx, Wh, b)
    with pytest.raises(TypeError, match="one dtype"):
        rnn_step_forward(x.float(), h, Wx, Wh, b)
    with pytest.raises(TypeError, match="floating-point"):
        rnn_step_forward(torch.zeros(2, 3, dtype=torch.int64), h, Wx, Wh, b)
    with pytest.raises(ValueError, match=r"x must have shape \(N, T, D\)"):
        rnn_forward(x, h, Wx, Wh, b)
    _, cache = rnn_forward(randn(2, 5, 3), h, Wx, Wh, b)
    with pytest.raises(ValueError, match=r"dh must have shape \(2, 5, 4\)"):
        rnn_backward(randn(2, 4, 4), cache)
    Wx4, Wh4, b4 = lstm_params(3, 4)
    with pytest.raises(ValueError, match=r"Wh must have shape \(H, 4H\) with H=4, 4H=16"):
        unchecked_lstm_step(x, h, h, Wx=Wx4, Wh=Wh, b=b4)  # a module would refuse the weights before the step
    with pytest.raises(ValueError, match=r"attn must have shape \(N, H\) with N=2, H=4"):
        lstm_step_fn(x, h, h, Wx4, Wh4, b4, attn=randn(2, 3), Wattn=randn(4, 16))
    with pytest.raises(ValueError, match=r"A must have shape \(N, H, Dh, Dw\) with N=2, H=4"):
        dot_product_attention(h, randn(2, 5, 3, 3))
    with pytest.raises(ValueError, match="input_dim must be >= 1"):
        RNN(0, 4)


@GIVEN
def test_embedding_and_loss_refuse_bad_inputs():
    layer = WordEmbedding(V, 4)
    with pytest.raises(ValueError, match=rf"\[0, {V}\)"):
        layer(torch.tensor([[1, V]]))
    with pytest.raises(ValueError, match=rf"\[0, {V}\)"):
        layer(torch.tensor([-1]))
    with pytest.raises(TypeError, match="integer word ids"):
        layer(torch.tensor([1.0]))
    x = torch.zeros(2, 3, V)
    with pytest.raises(ValueError, match=r"y must have shape \(N, T\) with N=2, T=3"):
        temporal_softmax_loss(x, torch.zeros(2, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=rf"\[0, {V}\)"):
        temporal_softmax_loss(x, torch.full((2, 3), V))
    with pytest.raises(TypeError, match="integer"):
        temporal_softmax_loss(x, torch.zeros(2, 3))
    with pytest.raises(TypeError, match="ignore_index"):
        temporal_softmax_loss(x, torch.zeros(2, 3, dtype=torch.int64), ignore_index=0.5)


@GIVEN
def test_captioning_model_refuses_bad_arguments():
    with pytest.raises(ValueError, match="cell_type must be one of"):
        model("gru")
    with pytest.raises(ValueError, match="<END>"):
        CaptioningRNN({"<NULL>": 0, "<START>": 1, "a": 2}, image_encoder_pretrained=False)
    with pytest.raises(ValueError, match="ids must be 0 .. 3"):
        CaptioningRNN({"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 7}, image_encoder_pretrained=False)
    with pytest.raises(ValueError, match="out_channels = 128"):
        model("rnn", input_dim=512)
    m = model("rnn", ignore_index=NULL)
    images, captions = tiny_images(2), tiny_captions(2)
    with pytest.raises(ValueError, match=rf"captions must hold token ids in \[0, {V}\)"):
        m(images, captions.masked_fill(captions == END, V + 3))
    with pytest.raises(ValueError, match=r"captions must have shape \(N, T\+1\) with N=2"):
        m(images, tiny_captions(3))
    with pytest.raises(TypeError, match="integer"):
        m(images, captions.float())
    with pytest.raises(ValueError, match="T\\+1 >= 2"):
        m(images, captions[:, :1])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        m(images[:, :1], captions)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m(images.float(), captions)
    with pytest.raises(ValueError, match="max_length must be >= 1"):
        m.sample(images, max_length=0)
    with pytest.raises(TypeError, match="CaptioningRNN"):
        caption_images(load("torch.nn").Linear(2, 2), images)
