"""A4: image captioning with a vanilla RNN, an LSTM and an attention LSTM (EECS 498's names).

You write, in this order: the vanilla RNN by hand with **no autograd**
(:func:`rnn_step_forward`, :func:`rnn_step_backward`, :func:`rnn_forward`, :func:`rnn_backward`;
``next_h = tanh(x Wx + prev_h Wh + b)``), :class:`WordEmbedding`, :func:`temporal_softmax_loss`,
the LSTM cell (:meth:`LSTM.step_forward`, :meth:`LSTM.forward`), :func:`dot_product_attention`,
:class:`AttentionLSTM`, and the captioning model :class:`CaptioningRNN`
(``forward(images, captions) -> loss``, greedy ``sample(images, max_length)``).  :class:`RNN`
is given: it shows how a layer wraps the functions.  Autograd trains every ``nn.Module``
here; the hand-written RNN backward is checked against it, as in the course.

LSTM gates are packed in the course's order **i, f, o, g**: ``Wx (D, 4H)`` holds
``[Wx_i | Wx_f | Wx_o | Wx_g]`` (``torch.nn.LSTM`` packs i, f, g, o); the bias starts at 1 on
the forget block and 0 elsewhere (:func:`lstm_bias`, given), and ``LSTM.forward`` starts its cell
state at ``c0 = h0`` (EECS 498: 0).  Captions are integer
tensors ``(N, T + 1)``: ``<START> w1 ... wk <END> <NULL> ...``; the model reads
``captions[:, :-1]`` and is scored on predicting ``captions[:, 1:]``.

Given code below the assignment: the image encoder (:class:`ImageEncoder`),
:func:`caption_loss_fn` and :func:`caption_images`.  Input checks live in
``A4_rnn_transformer/checks.py``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from A4_rnn_transformer import checks
from A4_rnn_transformer.checks import CELL_TYPES, SPECIAL_TOKENS
from helpers.backbone import IMAGENET_MEAN, IMAGENET_STD, RegNetTrunk
from helpers.checks import check_int


def hello_rnn_lstm_captioning():
    """Print a greeting: the notebook's check that this file is the one imported."""
    print("Hello from rnn_lstm_captioning.py!")


# --------------------------------------------------------------------------- vanilla RNN, by hand


def rnn_step_forward(x: torch.Tensor, prev_h: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor,
                     b: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """One time step of a vanilla RNN with a tanh non-linearity: ``next_h = tanh(x Wx + prev_h Wh + b)``.

    Rule: plain tensor operations, no loops; you may not use ``torch.nn.RNN`` / ``nn.RNNCell``
    (nor ``torch.rnn_tanh``): they are the tests' reference.  Hint: keep ``next_h`` in the
    cache -- the derivative of tanh can be written with its output alone.

    Args:
        x: ``(N, D)`` inputs of this step.
        prev_h: ``(N, H)`` hidden state of the previous step.
        Wx: ``(D, H)`` input-to-hidden weights.
        Wh: ``(H, H)`` hidden-to-hidden weights.
        b: ``(H,)`` biases.

    Returns:
        next_h: ``(N, H)``; cache: what :func:`rnn_step_backward` needs.
    """
    checks.rnn_step_inputs(x, prev_h, Wx, Wh, b)
    next_h, cache = None, None
    ### BEGIN SOLUTION
    next_h = torch.tanh(x @ Wx + prev_h @ Wh + b)
    cache = (x, prev_h, Wx, Wh, next_h)
    ### END SOLUTION
    return next_h, cache


def rnn_step_backward(dnext_h: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, ...]:
    """Backward pass of :func:`rnn_step_forward`, by hand.

    Rule: no autograd (no ``backward``, ``torch.autograd``, ``torch.func``), no loops.  Hint: with
    ``z = x Wx + prev_h Wh + b``, the gradient reaching ``z`` is ``dnext_h * (1 - next_h ** 2)``;
    every other gradient is one matrix product with it (or, for ``db``, its sum over the batch).

    Args:
        dnext_h: ``(N, H)`` upstream gradient of the loss with respect to ``next_h``.
        cache: from :func:`rnn_step_forward`.

    Returns:
        dx ``(N, D)``, dprev_h ``(N, H)``, dWx ``(D, H)``, dWh ``(H, H)``, db ``(H,)``.
    """
    checks.upstream_gradient(dnext_h, "dnext_h", cache)
    dx, dprev_h, dWx, dWh, db = None, None, None, None, None
    ### BEGIN SOLUTION
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (1 - next_h * next_h)
    dx = dz @ Wx.T
    dprev_h = dz @ Wh.T
    dWx = x.T @ dz
    dWh = prev_h.T @ dz
    db = dz.sum(dim=0)
    ### END SOLUTION
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x: torch.Tensor, h0: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor,
                b: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """Run a vanilla RNN over a whole sequence.

    Rule: one loop over the ``T`` time steps, calling :func:`rnn_step_forward`; no
    ``torch.nn.RNN``.  Hint: collect
    the states in a list and ``torch.stack`` them -- writing them into a preallocated tensor
    works too, but stacking keeps the function differentiable by autograd (:class:`RNN` trains
    through it).

    Args:
        x: ``(N, T, D)`` input sequences.
        h0: ``(N, H)`` initial hidden state.
        Wx: ``(D, H)``, Wh: ``(H, H)``, b: ``(H,)``.

    Returns:
        h: ``(N, T, H)`` hidden states of every step (``h0`` excluded); cache for :func:`rnn_backward`.
    """
    checks.rnn_inputs(x, h0, Wx, Wh, b)
    h, cache = None, None
    ### BEGIN SOLUTION
    states = []
    prev_h = h0
    for t in range(x.shape[1]):
        prev_h, _ = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        states.append(prev_h)
    # stack (not in-place writes into one tensor) so that autograd can differentiate this function too
    h = torch.stack(states, dim=1) if states else x.new_zeros(x.shape[0], 0, h0.shape[1])
    cache = (x, h0, Wx, Wh, h)
    ### END SOLUTION
    return h, cache


def rnn_backward(dh: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, ...]:
    """Backward pass of :func:`rnn_forward` (back-propagation through time, by hand).

    ``dh[:, t]`` is only the gradient of the losses that read ``h[:, t]`` directly; the
    gradient that flows from step ``t + 1`` back into ``h[:, t]`` is yours to add.

    Rule: one loop over the time steps, last to first, calling :func:`rnn_step_backward`;
    no autograd (no ``backward``, ``torch.autograd``, ``torch.func``).

    Args:
        dh: ``(N, T, H)`` upstream gradients of every hidden state.
        cache: from :func:`rnn_forward`.

    Returns:
        dx ``(N, T, D)``, dh0 ``(N, H)``, dWx ``(D, H)``, dWh ``(H, H)``, db ``(H,)``.
    """
    checks.upstream_gradient(dh, "dh", cache)
    dx, dh0, dWx, dWh, db = None, None, None, None, None
    ### BEGIN SOLUTION
    x, h0, Wx, Wh, h = cache
    dx = torch.zeros_like(x)
    dprev_h = torch.zeros_like(h0)
    dWx, dWh, db = torch.zeros_like(Wx), torch.zeros_like(Wh), h0.new_zeros(h0.shape[1])
    for t in reversed(range(x.shape[1])):
        prev_h = h[:, t - 1] if t > 0 else h0
        step_cache = (x[:, t], prev_h, Wx, Wh, h[:, t])
        dx[:, t], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dprev_h, step_cache)
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    dh0 = dprev_h
    ### END SOLUTION
    return dx, dh0, dWx, dWh, db


class RNN(nn.Module):
    """A vanilla RNN layer (given code): parameters plus :func:`rnn_forward` / :func:`rnn_step_forward`.

    Nothing to write here; read it before :class:`LSTM`.  ``forward`` calls
    :func:`rnn_forward`, whose plain tensor operations autograd differentiates.

    Parameters (the course's initialisation): ``Wx (D, H) ~ N(0, 1/D)``, ``Wh (H, H) ~ N(0, 1/H)``,
    ``b (H,) = 0``.

    Args:
        input_dim: ``D``, size of each input vector.
        hidden_dim: ``H``, size of the hidden state.
    """

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        self.input_dim = check_int(input_dim, "input_dim", minimum=1)
        self.hidden_dim = check_int(hidden_dim, "hidden_dim", minimum=1)
        self.Wx = nn.Parameter(torch.randn(input_dim, hidden_dim) / math.sqrt(input_dim))
        self.Wh = nn.Parameter(torch.randn(hidden_dim, hidden_dim) / math.sqrt(hidden_dim))
        self.b = nn.Parameter(torch.zeros(hidden_dim))

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """``x (N, T, D)``, ``h0 (N, H)`` -> hidden states ``hn (N, T, H)``."""
        hn, _ = rnn_forward(x, h0, self.Wx, self.Wh, self.b)
        return hn

    def step_forward(self, x: torch.Tensor, prev_h: torch.Tensor) -> torch.Tensor:
        """One step: ``x (N, D)``, ``prev_h (N, H)`` -> ``next_h (N, H)``."""
        next_h, _ = rnn_step_forward(x, prev_h, self.Wx, self.Wh, self.b)
        return next_h


# --------------------------------------------------------------------------- words


class WordEmbedding(nn.Module):
    """Look up a learnt vector for every word id: ``out[n, t] = W_embed[x[n, t]]`` (a small ``nn.Embedding``).

    Parameter: ``W_embed (vocab_size, embed_size) ~ N(0, 1/vocab_size)`` (the course's).

    Args:
        vocab_size: ``V``, number of words.
        embed_size: ``W``, size of each word vector.
    """

    def __init__(self, vocab_size: int, embed_size: int):
        super().__init__()
        self.vocab_size = check_int(vocab_size, "vocab_size", minimum=1)
        self.embed_size = check_int(embed_size, "embed_size", minimum=1)
        self.W_embed = nn.Parameter(torch.randn(vocab_size, embed_size) / math.sqrt(vocab_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: integer ids of any shape ``(N, T)`` / ``(N,)``, each in ``[0, V)`` -> ``(*x.shape, W)``.

        Rule: no loops, no ``nn.Embedding`` / ``F.embedding``.  Hint: a tensor indexed by an
        integer tensor gathers one row per index.
        """
        checks.word_ids(x, self.vocab_size)
        out = None
        ### BEGIN SOLUTION
        out = self.W_embed[x]
        ### END SOLUTION
        return out


def temporal_softmax_loss(x: torch.Tensor, y: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """Softmax cross-entropy at every time step, **summed** over time, **averaged** over the batch.

    ``loss = -1/N sum_{n, t: y[n, t] != ignore_index} log softmax(x[n, t])[y[n, t]]``.  Note the
    division by ``N``, not by the number of counted words (the course's convention).

    Rule: no loops.  Hint: ``F.cross_entropy`` does it in one line (scores with the classes on
    dimension 1, ``ignore_index``, ``reduction="sum"``, then divide by ``N``); or write it from
    ``log softmax(s)[k] = s_k - logsumexp(s)``, stable for any scores.

    Args:
        x: ``(N, T, V)`` scores of every word at every step.
        y: ``(N, T)`` integer ids of the correct words, in ``[0, V)`` except where ``== ignore_index``.
        ignore_index: id whose positions add nothing to the loss (the ``<NULL>`` padding), or None.

    Returns:
        scalar loss tensor (differentiable with autograd).
    """
    checks.softmax_loss_inputs(x, y, ignore_index)
    loss = None
    ### BEGIN SOLUTION
    keep = torch.ones_like(y, dtype=torch.bool) if ignore_index is None else y != ignore_index
    safe_y = torch.where(keep, y, torch.zeros_like(y))  # any valid id; masked out below
    log_prob = x.gather(2, safe_y.unsqueeze(2)).squeeze(2) - torch.logsumexp(x, dim=2)
    loss = -(log_prob * keep).sum() / max(x.shape[0], 1)
    ### END SOLUTION
    return loss


# --------------------------------------------------------------------------- LSTM


#: Initial bias of the forget gate (Jozefowicz, Zaremba and Sutskever, 2015).
FORGET_BIAS = 1.0


def lstm_bias(hidden_dim: int, forget_bias: float = FORGET_BIAS) -> torch.Tensor:
    """The initial bias ``(4H,)`` of an LSTM whose gates are packed i, f, o, g (given code).

    Zero, except the forget-gate block ``b[H:2H] = forget_bias``.  Why not all zeros: with
    small weights the gate pre-activations start near 0 and ``f = sigmoid(0) = 0.5``, so the
    cell keeps half of itself per step -- after ``t`` steps ``0.5 ** t`` of what was written
    (1/1000 after 10) -- and the gradient back through ``c`` shrinks as fast.  With bias 1,
    ``f = sigmoid(1) ~ 0.73`` and the cell remembers from the first step; training can still
    lower ``f`` where forgetting helps.

    Args:
        hidden_dim: ``H``; forget_bias: the forget block's value (0 gives the all-zero bias).

    Returns:
        b: ``(4 * H,)`` float32.
    """
    hidden_dim = check_int(hidden_dim, "hidden_dim", minimum=1)
    b = torch.zeros(4 * hidden_dim)
    b[hidden_dim:2 * hidden_dim] = forget_bias  # the blocks are i, f, o, g: f is the second
    return b


class LSTM(nn.Module):
    """A single-layer LSTM (gates packed i, f, o, g); autograd computes its backward pass.

    Parameters: ``Wx (D, 4H) ~ N(0, 1/D)``, ``Wh (H, 4H) ~ N(0, 1/H)``; ``b (4H,)`` is 0 except
    its forget-gate block ``b[H:2H] = 1`` (see :func:`lstm_bias`).

    Args:
        input_dim: ``D``; hidden_dim: ``H``.
    """

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        self.input_dim = check_int(input_dim, "input_dim", minimum=1)
        self.hidden_dim = check_int(hidden_dim, "hidden_dim", minimum=1)
        self.Wx = nn.Parameter(torch.randn(input_dim, 4 * hidden_dim) / math.sqrt(input_dim))
        self.Wh = nn.Parameter(torch.randn(hidden_dim, 4 * hidden_dim) / math.sqrt(hidden_dim))
        self.b = nn.Parameter(lstm_bias(hidden_dim))

    def step_forward(self, x: torch.Tensor, prev_h: torch.Tensor,
                     prev_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: ``a = x Wx + prev_h Wh + b``, split into four ``(N, H)`` blocks i, f, o, g;
        ``i, f, o = sigmoid(.)``, ``g = tanh(.)``, ``next_c = f * prev_c + i * g``,
        ``next_h = o * tanh(next_c)``.

        Rule: no loops; you may not use ``torch.nn.LSTM`` / ``nn.LSTMCell`` (nor ``torch.lstm_cell``):
        they are the tests' reference.  Hint: ``a.chunk(4, dim=1)`` gives the four blocks in order.

        Args:
            x: ``(N, D)``; prev_h, prev_c: ``(N, H)``.

        Returns:
            next_h, next_c: ``(N, H)`` each.
        """
        checks.lstm_step_inputs(x, prev_h, prev_c, self.Wx, self.Wh, self.b)
        next_h, next_c = None, None
        ### BEGIN SOLUTION
        a = x @ self.Wx + prev_h @ self.Wh + self.b
        i, f, o, g = a.chunk(4, dim=1)
        next_c = torch.sigmoid(f) * prev_c + torch.sigmoid(i) * torch.tanh(g)
        next_h = torch.sigmoid(o) * torch.tanh(next_c)
        ### END SOLUTION
        return next_h, next_c

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """Run the LSTM over a sequence; the cell state starts equal to ``h0`` and is not returned.

        Rule: one loop over the time steps, calling :meth:`step_forward`; no ``torch.nn.LSTM``.

        Args:
            x: ``(N, T, D)``; h0: ``(N, H)``.

        Returns:
            hn: ``(N, T, H)`` hidden states of every step.
        """
        checks.lstm_inputs(x, h0)
        # the initial cell state, given: h0 too (EECS 498: zero), so that what h0 carries -- the image, in
        # captioning -- starts in the cell, the LSTM's memory, as in AttentionLSTM (Xu et al., 2015)
        c0 = h0
        hn = None
        ### BEGIN SOLUTION
        prev_h, prev_c = h0, c0
        states = []
        for t in range(x.shape[1]):
            prev_h, prev_c = self.step_forward(x[:, t], prev_h, prev_c)
            states.append(prev_h)
        hn = torch.stack(states, dim=1) if states else x.new_zeros(x.shape[0], 0, h0.shape[1])
        ### END SOLUTION
        return hn


# --------------------------------------------------------------------------- attention


def dot_product_attention(prev_h: torch.Tensor, A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention of a hidden state over a grid of image features.

    The ``Dh * Dw`` grid cells are keys and values at once: with ``a_k`` the feature vector of
    cell ``k``, ``w = softmax_k(prev_h . a_k / sqrt(H))`` and ``attn = sum_k w_k a_k``.

    Rule: no loops; you may not use ``torch.nn.MultiheadAttention`` or
    ``F.scaled_dot_product_attention`` (the tests' reference).  Hint: flatten the grid to
    ``(N, H, Dh * Dw)`` and use batched matrix products (``torch.bmm`` or ``@``); give the
    weights back the grid's shape.

    Args:
        prev_h: ``(N, H)`` hidden state (the query).
        A: ``(N, H, Dh, Dw)`` projected image features (the course's grids are ``4 x 4``).

    Returns:
        attn: ``(N, H)`` attention embedding; attn_weights: ``(N, Dh, Dw)``, summing to 1 per image.
    """
    checks.attention_inputs(prev_h, A)
    attn, attn_weights = None, None
    ### BEGIN SOLUTION
    n, hidden, dh, dw = A.shape
    cells = A.reshape(n, hidden, dh * dw)                                   # (N, H, K)
    scores = (prev_h.unsqueeze(1) @ cells).squeeze(1) / math.sqrt(hidden)   # (N, K)
    scores = scores - scores.amax(dim=1, keepdim=True)                      # softmax, stable
    weights = scores.exp()
    weights = weights / weights.sum(dim=1, keepdim=True)
    attn = (cells @ weights.unsqueeze(2)).squeeze(2)                        # (N, H)
    attn_weights = weights.reshape(n, dh, dw)
    ### END SOLUTION
    return attn, attn_weights


class AttentionLSTM(nn.Module):
    """An LSTM whose every step also reads an attention embedding of the image features.

    Parameters: ``Wx (D, 4H) ~ N(0, 1/D)``, ``Wh``, ``Wattn (H, 4H) ~ N(0, 1/H)``, ``b (4H,)`` as
    :class:`LSTM`'s (:func:`lstm_bias`: forget-gate block 1, the rest 0).

    Args:
        input_dim: ``D``; hidden_dim: ``H`` (also the channels of the feature grid ``A``).
    """

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        self.input_dim = check_int(input_dim, "input_dim", minimum=1)
        self.hidden_dim = check_int(hidden_dim, "hidden_dim", minimum=1)
        self.Wx = nn.Parameter(torch.randn(input_dim, 4 * hidden_dim) / math.sqrt(input_dim))
        self.Wh = nn.Parameter(torch.randn(hidden_dim, 4 * hidden_dim) / math.sqrt(hidden_dim))
        self.Wattn = nn.Parameter(torch.randn(hidden_dim, 4 * hidden_dim) / math.sqrt(hidden_dim))
        self.b = nn.Parameter(lstm_bias(hidden_dim))

    def step_forward(self, x: torch.Tensor, prev_h: torch.Tensor, prev_c: torch.Tensor,
                     attn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: :meth:`LSTM.step_forward` with ``attn Wattn`` added to ``a``.

        Rule: no loops; no ``torch.nn.LSTM`` / ``nn.LSTMCell`` (as :meth:`LSTM.step_forward`).

        Args:
            x: ``(N, D)``; prev_h, prev_c: ``(N, H)``; attn: ``(N, H)`` attention embedding.

        Returns:
            next_h, next_c: ``(N, H)`` each.
        """
        checks.lstm_step_inputs(x, prev_h, prev_c, self.Wx, self.Wh, self.b, attn, self.Wattn)
        next_h, next_c = None, None
        ### BEGIN SOLUTION
        a = x @ self.Wx + prev_h @ self.Wh + self.b
        a = a + attn @ self.Wattn
        i, f, o, g = a.chunk(4, dim=1)
        next_c = torch.sigmoid(f) * prev_c + torch.sigmoid(i) * torch.tanh(g)
        next_h = torch.sigmoid(o) * torch.tanh(next_c)
        ### END SOLUTION
        return next_h, next_c

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        """Run the attention LSTM over a sequence.

        ``h0 = c0 =`` the mean of ``A`` over the grid (given); at every step the previous hidden
        state attends over ``A`` with :func:`dot_product_attention`.

        Rule: one loop over the time steps, calling :func:`dot_product_attention` and
        :meth:`step_forward`; no ``torch.nn.LSTM``, no ``torch.nn.MultiheadAttention``.

        Args:
            x: ``(N, T, D)``; A: ``(N, H, Dh, Dw)``.

        Returns:
            hn: ``(N, T, H)``.
        """
        checks.attention_lstm_inputs(x, A)
        h0 = A.mean(dim=(2, 3))  # the initial hidden state, given
        c0 = h0                  # and the initial cell state
        hn = None
        ### BEGIN SOLUTION
        prev_h, prev_c = h0, c0
        states = []
        for t in range(x.shape[1]):
            attn, _ = dot_product_attention(prev_h, A)
            prev_h, prev_c = self.step_forward(x[:, t], prev_h, prev_c, attn)
            states.append(prev_h)
        hn = torch.stack(states, dim=1) if states else x.new_zeros(x.shape[0], 0, A.shape[1])
        ### END SOLUTION
        return hn


# --------------------------------------------------------------------------- the captioning model


class CaptioningRNN(nn.Module):
    """Image encoder + word embedding + recurrent cell + output projection, trained on captions.

    * ``cell_type="rnn"`` / ``"lstm"``: the features are averaged over the grid and projected
      (``feature_projection = Linear(input_dim, hidden_dim)``) to the initial hidden state;
    * ``cell_type="attn"``: the grid is kept, projected cell by cell
      (``feature_projection = Conv2d(input_dim, hidden_dim, 1)``) to ``A (N, H, Dh, Dw)``, and an
      :class:`AttentionLSTM` attends over it at every step.

    Then ``embedding = WordEmbedding(V, wordvec_dim)``, the cell, and
    ``output_projection = Linear(hidden_dim, V)`` giving every word's score at every step.

    **Image-blind baseline** (``image_blind=True``): the encoder is not run and the image
    features are zeros of the right shape, so the caption can depend on nothing but the words
    before it -- a pure language model with exactly the same decoder.  Whatever it scores is
    what the grammar and word statistics of the captions give away without looking.

    What you write: ``__init__`` (the four layers, under the names the given code declares:
    the tests and the given :meth:`image_features` read them), :meth:`initial_state`,
    :meth:`scores`, :meth:`forward` and :meth:`sample`.  Rule for ``__init__``: the cell is this
    file's :class:`RNN`, :class:`LSTM` or :class:`AttentionLSTM` (not ``torch.nn.RNN`` / ``nn.LSTM``),
    the embedding this file's :class:`WordEmbedding`.

    Args:
        word_to_idx: vocabulary ``word -> id`` with ids ``0 .. V-1``; must hold ``<NULL>``,
            ``<START>`` and ``<END>``.
        input_dim: channels of the image features; None takes the encoder's ``out_channels``
            (160 pretrained, 128 otherwise), any other value must equal it.
        wordvec_dim: ``W``, size of the word vectors.
        hidden_dim: ``H``, size of the hidden state.
        cell_type: ``"rnn"``, ``"lstm"`` or ``"attn"``.
        image_encoder_pretrained: passed to :class:`ImageEncoder` as ``pretrained``.
        ignore_index: word id the loss ignores (give ``word_to_idx["<NULL>"]``), or None.
        image_blind: replace the image features by zeros (see above).
    """

    def __init__(self, word_to_idx: dict, input_dim: int | None = None, wordvec_dim: int = 128,
                 hidden_dim: int = 128, cell_type: str = "rnn", image_encoder_pretrained: bool = True,
                 ignore_index: int | None = None, image_blind: bool = False):
        super().__init__()
        checks.captioning_args(word_to_idx, cell_type, ignore_index, wordvec_dim, hidden_dim)
        self.cell_type = cell_type
        self.word_to_idx = dict(word_to_idx)
        self.idx_to_word = {i: w for w, i in word_to_idx.items()}
        self.vocab_size = len(word_to_idx)
        self._null, self._start, self._end = (word_to_idx[t] for t in SPECIAL_TOKENS)
        self.ignore_index = ignore_index
        self.image_blind = bool(image_blind)
        self.wordvec_dim, self.hidden_dim = wordvec_dim, hidden_dim
        self.image_encoder = ImageEncoder(pretrained=image_encoder_pretrained)
        channels = checks.encoder_channels(input_dim, self.image_encoder.out_channels, image_encoder_pretrained)
        self.input_dim = channels
        self.feature_projection = None
        self.embedding = None
        self.backbone = None
        self.output_projection = None
        ### BEGIN SOLUTION
        if cell_type == "attn":
            self.feature_projection = nn.Conv2d(channels, hidden_dim, kernel_size=1)
        else:
            self.feature_projection = nn.Linear(channels, hidden_dim)
        self.embedding = WordEmbedding(self.vocab_size, wordvec_dim)
        cell = {"rnn": RNN, "lstm": LSTM, "attn": AttentionLSTM}[cell_type]
        self.backbone = cell(wordvec_dim, hidden_dim)
        self.output_projection = nn.Linear(hidden_dim, self.vocab_size)
        ### END SOLUTION

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """``images (N, 3, H, W)`` -> encoder features ``(N, input_dim, Dh, Dw)`` (zeros when image-blind)."""
        if self.image_blind:
            checks.float_images(images)
            dh, dw = ImageEncoder.grid_size(images.shape[2], images.shape[3])
            weight = self.output_projection.weight
            return weight.new_zeros(images.shape[0], self.input_dim, dh, dw)
        return self.image_encoder(images)

    def initial_state(self, features: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(N, C, Dh, Dw)`` -> ``h0 (N, H)`` (rnn, lstm) or ``A (N, H, Dh, Dw)`` (attn).

        Rule: no loops.  Hint: ``features.mean(dim=(2, 3))`` averages over the grid.
        """
        out = None
        ### BEGIN SOLUTION
        if self.cell_type == "attn":
            out = self.feature_projection(features)
        else:
            out = self.feature_projection(features.mean(dim=(2, 3)))
        ### END SOLUTION
        return out

    def scores(self, images: torch.Tensor, captions_in: torch.Tensor) -> torch.Tensor:
        """Scores of the next word under teacher forcing.

        Rule: no loop over time here -- the cell's ``forward`` runs the whole sequence.

        Args:
            images: ``(N, 3, H, W)``.
            captions_in: ``(N, T)`` the words read, starting with ``<START>``.

        Returns:
            ``(N, T, V)``: at step ``t``, the score of every word as ``captions_in[:, t + 1]``.
        """
        checks.words_read(images, captions_in, self.vocab_size)
        out = None
        ### BEGIN SOLUTION
        state = self.initial_state(self.image_features(images))
        hidden = self.backbone(self.embedding(captions_in), state)
        out = self.output_projection(hidden)
        ### END SOLUTION
        return out

    def forward(self, images: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        """Training loss of a batch.

        Rule: no loops.  Hint: :meth:`scores` of the words read, then :func:`temporal_softmax_loss`.

        Args:
            images: ``(N, 3, H, W)`` floats in [0, 1] (or uint8).
            captions: ``(N, T + 1)`` integer ids ``<START> w1 ... <END> <NULL> ...``.

        Returns:
            scalar: :func:`temporal_softmax_loss` of predicting ``captions[:, 1:]`` from
            ``captions[:, :-1]`` (teacher forcing), ``ignore_index`` positions skipped.
        """
        checks.caption_inputs(images, captions, self.vocab_size)
        loss = None
        ### BEGIN SOLUTION
        scores = self.scores(images, captions[:, :-1])
        loss = temporal_softmax_loss(scores, captions[:, 1:], ignore_index=self.ignore_index)
        ### END SOLUTION
        return loss

    def sample(self, images: torch.Tensor, max_length: int = 15):
        """Greedy decoding: start from ``<START>``, feed back the most likely word each step.

        Once a caption has produced ``<END>``, its remaining places are ``<NULL>`` (and, for
        ``"attn"``, their attention weights 0).  Runs in the model's current mode: call
        ``model.eval()`` first (or use :func:`caption_images`).

        Rule: one loop over the ``max_length`` steps, each calling the cell's ``step_forward``
        once.  The cell state starts equal to the hidden state, as in the cells' ``forward``:
        ``c0 = h0`` for ``"lstm"`` (:meth:`LSTM.forward`); for ``"attn"``, ``h0 = c0 =`` the mean of
        ``A`` over the grid (:meth:`AttentionLSTM.forward`).

        Args:
            images: ``(N, 3, H, W)``.
            max_length: ``T``, number of words generated (the ``<END>`` counts as one).

        Returns:
            captions: ``(N, T)`` int64 word ids (``<START>`` not included); for ``cell_type="attn"``
            a pair ``(captions, attn_weights)`` with ``attn_weights (N, T, Dh, Dw)``.
        """
        checks.sample_inputs(images, max_length)
        n = images.shape[0]
        device = self.output_projection.weight.device
        captions = torch.full((n, max_length), self._null, dtype=torch.int64, device=device)
        attn_weights_all = None
        ### BEGIN SOLUTION
        state = self.initial_state(self.image_features(images))
        if self.cell_type == "attn":
            A = state
            h = c = A.mean(dim=(2, 3))
            attn_weights_all = A.new_zeros(n, max_length, A.shape[2], A.shape[3])
        else:
            h, c = state, state
        words = torch.full((n,), self._start, dtype=torch.int64, device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        for t in range(max_length):
            x = self.embedding(words)
            if self.cell_type == "rnn":
                h = self.backbone.step_forward(x, h)
            elif self.cell_type == "lstm":
                h, c = self.backbone.step_forward(x, h, c)
            else:
                attn, weights = dot_product_attention(h, A)
                attn_weights_all[:, t] = weights * (~done).to(weights.dtype)[:, None, None]
                h, c = self.backbone.step_forward(x, h, c, attn)
            words = self.output_projection(h).argmax(dim=1)
            captions[:, t] = torch.where(done, self._null, words)
            done = done | (words == self._end)
        ### END SOLUTION
        if self.cell_type == "attn":
            return captions, attn_weights_all
        return captions


# =========================================================================== given code below this line
# --------------------------------------------------------------------------- images

#: Feature channels of the two encoders (RegNetX-400MF up to its third stage; our small CNN).
REGNET_CHANNELS = 160
SMALL_CNN_CHANNELS = 128



def _small_cnn() -> nn.Sequential:
    """Five 3x3 convolutions with batch norm and ReLU, four of stride 2: ``(N, 3, H, W) -> (N, 128, H/16, W/16)``.

    Its receptive field is 47 pixels: every cell of the 4x4 grid of a 64x64 image sees a whole item.
    """
    widths = [(3, 16, 2), (16, 32, 2), (32, 64, 2), (64, 64, 1), (64, SMALL_CNN_CHANNELS, 2)]
    layers = []
    for cin, cout, stride in widths:
        layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class ImageEncoder(nn.Module):
    """A convolutional network turning images into a grid of feature vectors.

    Both versions read ``(N, 3, H, W)`` images -- floats in [0, 1] (uint8 in [0, 255] are
    converted) -- normalise them with the ImageNet mean and standard deviation inside, and
    return features ``(N, out_channels, ceil(H/16), ceil(W/16))``: a 4x4 grid for 64x64 images.

    * ``pretrained=True`` (the course's choice, online): the stem and first three stages of
      torchvision's RegNetX-400MF with its ImageNet weights, ``out_channels = 160``.  The course
      cuts after the fourth stage (stride 32); we stop at stride 16 so that small images still
      give a grid worth attending over.  The weights come through ``helpers.backbone.weights_file``
      (cached in ``DL4CV_DATA_DIR/weights``); offline without them a ``WeightsNotFoundError`` says what to do.
    * ``pretrained=False`` (our offline choice): a small CNN of five 3x3 convolutions with batch
      norm and ReLU (widths 16, 32, 64, 64, 128; four of stride 2), ``out_channels = 128``,
      135k parameters, trained from scratch together with the captioner.  Without downloadable
      weights the RegNet trunk would have to be trained from scratch too: four times the
      parameters (566k) and about four times the computation per image -- more network than
      64x64 scenes of a few pasted items need, and too slow to train five captioners on one
      CPU core.

    Args:
        pretrained: see above.
        verbose: print the encoder's input -> output shapes.
    """

    def __init__(self, pretrained: bool = True, verbose: bool = False):
        super().__init__()
        if not isinstance(pretrained, bool):
            raise TypeError(f"pretrained must be True or False, got {pretrained!r}")
        self.pretrained = pretrained
        if pretrained:
            self.cnn = RegNetTrunk(pretrained=True, up_to="c4", user="ImageEncoder(pretrained=True)")
            self._out_channels = REGNET_CHANNELS
        else:
            self.cnn = _small_cnn()
            self._out_channels = SMALL_CNN_CHANNELS
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if verbose:
            name = "RegNetX-400MF (ImageNet weights), 3 stages" if pretrained else "small CNN (from scratch)"
            print(f"ImageEncoder: {name}: images (N, 3, H, W) -> features "
                  f"(N, {self._out_channels}, H/16, W/16); {sum(p.numel() for p in self.parameters()):,} parameters")

    @property
    def out_channels(self) -> int:
        """Channels of the output features: 160 (RegNet) or 128 (small CNN)."""
        return self._out_channels

    @staticmethod
    def grid_size(height: int, width: int) -> tuple[int, int]:
        """Size ``(ceil(H/16), ceil(W/16))`` of the feature grid of ``H x W`` images."""
        return math.ceil(height / 16), math.ceil(width / 16)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images (N, 3, H, W)`` in [0, 1] (or uint8) -> features ``(N, out_channels, H/16, W/16)``."""
        x = checks.float_images(images).to(self.mean.dtype)
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)  # faster convolutions on CPU
        features = self.cnn(x)
        return features["c4"] if self.pretrained else features


# --------------------------------------------------------------------------- glue for training and evaluation


def caption_loss_fn(model: CaptioningRNN, batch) -> torch.Tensor:
    """``loss_fn`` for :func:`helpers.train.train`: ``batch = (images, captions)`` -> ``model(images, captions)``."""
    images, captions = batch
    return model(images, captions)


def caption_images(model: CaptioningRNN, images: torch.Tensor, max_length: int = 15, batch_size: int = 256):
    """Greedy captions of many images, in batches, in eval mode without gradients.

    Args:
        model: a :class:`CaptioningRNN` (its train / eval mode is restored afterwards).
        images: ``(N, 3, H, W)`` uint8 or floats in [0, 1], on any device.
        max_length: words generated per image.
        batch_size: images per batch.

    Returns:
        captions ``(N, max_length)`` int64 on the CPU, and attention weights
        ``(N, max_length, Dh, Dw)`` (``cell_type="attn"``) or None.
    """
    checks.is_instance(model, CaptioningRNN, "model")
    checks.float_images(images[:1] if isinstance(images, torch.Tensor) else images)
    check_int(batch_size, "batch_size", minimum=1)
    device = model.output_projection.weight.device
    mode = model.training
    model.eval()
    captions, weights = [], []
    try:
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                out = model.sample(images[start:start + batch_size].to(device), max_length=max_length)
                if model.cell_type == "attn":
                    out, w = out
                    weights.append(w.cpu())
                captions.append(out.cpu())
    finally:
        model.train(mode)
    if not captions:
        return torch.zeros(0, max_length, dtype=torch.int64), None   # device: captions come back on the CPU
    return torch.cat(captions), (torch.cat(weights) if weights else None)


__all__ = [
    "CELL_TYPES",
    "FORGET_BIAS",
    "SPECIAL_TOKENS",
    "AttentionLSTM",
    "CaptioningRNN",
    "ImageEncoder",
    "LSTM",
    "RNN",
    "WordEmbedding",
    "caption_images",
    "caption_loss_fn",
    "dot_product_attention",
    "hello_rnn_lstm_captioning",
    "lstm_bias",
    "rnn_backward",
    "rnn_forward",
    "rnn_step_backward",
    "rnn_step_forward",
    "temporal_softmax_loss",
]
