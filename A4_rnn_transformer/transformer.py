"""A4: a Transformer, written by hand, that learns to add and subtract two numbers.

Names follow EECS 498/598 so course material applies unchanged.  The task: read a
question such as ``"BOS NEGATIVE 30 subtract NEGATIVE 34 EOS"`` and write the answer
``"BOS POSITIVE 04 EOS"`` token by token (the problems come from
:func:`helpers.datasets.synthetic.arithmetic_problems`).

* tokens: :func:`generate_token_dict`, :func:`preprocess_input_sequence` (every digit is
  a token of its own);
* attention: ``scaled_dot_product_two_loop_single`` ``(K, M)``,
  ``scaled_dot_product_two_loop_batch`` ``(N, K, M)`` and
  ``scaled_dot_product_no_loop_batch(query, key, value, mask=None) -> (y, weights)``;
  ``SelfAttention(dim_in, dim_q, dim_v)`` and ``MultiHeadAttention(num_heads, dim_in, dim_out)``;
* the blocks: ``LayerNormalization``, ``FeedForwardBlock``, ``EncoderBlock``,
  ``DecoderBlock``, ``get_subsequent_mask``, ``Encoder``, ``Decoder``;
* ``position_encoding_simple(K, M)`` and ``position_encoding_sinusoid(K, M)``, each ``(1, K, M)``;
* ``Transformer(num_heads, emb_dim, feedforward_dim, dropout, num_enc_layers, num_dec_layers,
  vocab_len)`` with ``forward(ques_b, ques_pos, ans_b, ans_pos)`` (teacher forcing);
* data and losses: ``AddSubDataset``, ``CrossEntropyLoss``, ``LabelSmoothingLoss``;
* using a model: :func:`greedy_decode` (whole answers, token by token) and
  :func:`warmup_scheduler`.

Given code, below the assignment: the helpers the solutions may use (``_uniform_init``,
``_softmax``, ``_log_softmax``, ``_reduce``), :class:`TokenEmbedding`, :func:`decode_tokens`,
``AddSubDataset``, :func:`attention_weights` (every layer's attention, for plots), the two
accuracies :func:`token_accuracy` (teacher forced, the course's metric) and
:func:`answer_accuracy` (whole answers, exact match), and :func:`train_transformer` (built on
:func:`helpers.train.train`: checkpoints, resume).  Input checks live in
``A4_rnn_transformer/checks.py``.

Conventions:

* a **mask** is a bool tensor whose ``True`` entries are *hidden* positions (the course's
  convention; ``torch.nn.functional.scaled_dot_product_attention`` reads a bool mask the other
  way round, ``True`` = may attend);
* tensors of tokens are int64; ``N`` is the batch, ``K`` a sequence length, ``M`` the
  embedding dimension, ``V`` the vocabulary size;
* the blocks put layer normalisation *after* each residual sum ("post-norm", as the course
  and the original paper), with dropout on the sub-layer's output before the sum;
* the token embedding is a table of learned vectors indexed by the token ids
  (:class:`TokenEmbedding`; the course uses ``nn.Embedding``, which is its test reference here).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from A4_rnn_transformer import checks
from helpers.checks import check_int
from helpers.train import train

#: Smoothing of :func:`LabelSmoothingLoss` when none is given (the course's 0.1).
DEFAULT_SMOOTHING = 0.1
#: Base of the sinusoidal position encoding's wavelengths (the paper's 10000).
SINUSOID_BASE = 10000.0


def hello_transformers():
    """Print a greeting: the notebook's check that this file is the one imported."""
    print("Hello from transformer.py!")


# --------------------------------------------------------------------------- tokens


def generate_token_dict(vocab: Sequence[str]) -> dict[str, int]:
    """Number the tokens of a vocabulary in their order.

    Rule: the i-th token gets the id ``i``; one line is enough (a dict comprehension).

    Args:
        vocab: the tokens, unique strings (``ARITHMETIC_VOCAB``: digits, then special tokens).

    Returns:
        ``{token: index}``, ``vocab[i] -> i``.
    """
    checks.vocab_list(vocab)
    token_dict = {}
    ### BEGIN SOLUTION
    token_dict = {token: index for index, token in enumerate(vocab)}
    ### END SOLUTION
    return token_dict


def preprocess_input_sequence(input_str: str, token_dict: dict[str, int], spc_tokens: Sequence[str]) -> list[int]:
    """Turn a question or an answer into token ids.

    Words are separated by spaces.  A special token (``"BOS"``, ``"POSITIVE"``, ``"add"``...)
    becomes its id; a number becomes one id *per digit*: ``"BOS POSITIVE 04 EOS"`` ->
    ``[BOS, POSITIVE, 0, 4, EOS]`` (five ids), so the model writes its answers digit by digit.

    Rule: plain Python (``str.split`` and the dictionary), no tokenizer library.  Hint:
    ``str.split()`` gives the words; a string is a sequence of its characters.

    Args:
        input_str: the text, e.g. ``"BOS NEGATIVE 30 subtract NEGATIVE 34 EOS"``.
        token_dict: ``{token: id}`` from :func:`generate_token_dict`.
        spc_tokens: the special tokens (words that are not numbers).

    Returns:
        the ids, a list of ints.

    Raises (given check):
        ValueError: a word that is neither a special token nor made of digits, or a digit
            missing from ``token_dict``; the message names it.
    """
    checks.text_to_tokens(input_str, token_dict, spc_tokens)
    out = []
    ### BEGIN SOLUTION
    special = set(spc_tokens)
    for word in input_str.split():
        if word in special:
            out.append(token_dict[word])
        else:
            out.extend(token_dict[digit] for digit in word)
    ### END SOLUTION
    return out


#: The course's spelling of :func:`preprocess_input_sequence`.
prepocess_input_sequence = preprocess_input_sequence


# --------------------------------------------------------------------------- attention


def scaled_dot_product_two_loop_single(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention of one sequence, the scores computed with two loops.

    ``y_i = sum_j softmax_j(q_i . k_j / sqrt(M)) v_j``.

    Rule: exactly two loops, over the queries and over the keys, each step one dot product
    scaled by ``sqrt(M)``; then a softmax over the keys and a weighted sum of the values.  You may
    not use ``F.scaled_dot_product_attention`` / ``nn.MultiheadAttention`` (the tests' reference).

    Args:
        query: ``(K, M)``; key: ``(K', M)``; value: ``(K', M_v)`` (the course has K' = K, M_v = M).

    Returns:
        y: ``(K, M_v)``.
    """
    checks.qkv(query, key, value, batched=False)
    out = None
    ### BEGIN SOLUTION
    num_queries, dim = query.shape
    scores = query.new_zeros(num_queries, key.shape[0])
    for i in range(num_queries):
        for j in range(key.shape[0]):
            scores[i, j] = (query[i] * key[j]).sum() / math.sqrt(dim)
    out = _softmax(scores, dim=1) @ value
    ### END SOLUTION
    return out


def scaled_dot_product_two_loop_batch(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention of a batch, two loops over the query and key positions.

    Each loop step handles the whole batch at once: ``scores[:, i, j] = q_i . k_j / sqrt(M)``.

    Rule: exactly two loops (over query and key positions), no loop over the batch; no
    ``F.scaled_dot_product_attention`` / ``nn.MultiheadAttention``.  Hint:
    ``torch.bmm`` multiplies the ``N`` weight matrices with the ``N`` value matrices at once.

    Args:
        query: ``(N, K, M)``; key: ``(N, K', M)``; value: ``(N, K', M_v)``.

    Returns:
        y: ``(N, K, M_v)``.
    """
    checks.qkv(query, key, value, batched=True)
    out = None
    ### BEGIN SOLUTION
    num, num_queries, dim = query.shape
    scores = query.new_zeros(num, num_queries, key.shape[1])
    for i in range(num_queries):
        for j in range(key.shape[1]):
            scores[:, i, j] = (query[:, i] * key[:, j]).sum(dim=1) / math.sqrt(dim)
    out = torch.bmm(_softmax(scores, dim=2), value)
    ### END SOLUTION
    return out


def scaled_dot_product_no_loop_batch(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                     mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention of a batch without loops, with an optional mask.

    ``weights = softmax(Q K^T / sqrt(M))`` along the keys, with hidden positions set to the
    lowest float before the softmax (so they get weight 0; a query whose keys are *all*
    hidden spreads its weight evenly); ``y = weights V``.

    Rule: no loops; you may not use ``F.scaled_dot_product_attention`` / ``nn.MultiheadAttention``
    (the tests' reference).  Hint: ``torch.bmm`` with the keys transposed gives all scores at once, and
    ``Tensor.masked_fill`` hides the masked ones.

    Args:
        query: ``(N, K, M)``; key: ``(N, K', M)``; value: ``(N, K', M_v)``.
        mask: ``None`` or a bool tensor ``(N, K, K')`` (or broadcastable to it), ``True`` where a
            query may NOT look at a key (the course's convention).

    Returns:
        y: ``(N, K, M_v)``; weights: ``(N, K, K')``, every row sums to 1.
    """
    checks.masked_qkv(query, key, value, mask)
    y, weights_softmax = None, None
    ### BEGIN SOLUTION
    scores = torch.bmm(query, key.transpose(1, 2)) / math.sqrt(query.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)
    weights_softmax = _softmax(scores, dim=-1)
    y = torch.bmm(weights_softmax, value)
    ### END SOLUTION
    return y, weights_softmax


class SelfAttention(nn.Module):
    """One attention head: learned projections to queries, keys and values, then attention.

    Attributes: ``q``, ``k`` (``Linear(dim_in, dim_q)``), ``v`` (``Linear(dim_in, dim_v)``),
    initialised Glorot-uniform with zero biases; ``weights_softmax``, the ``(N, K, K')``
    attention weights of the last forward pass (for plots).

    Rule for ``__init__``: three ``nn.Linear`` layers named ``q``, ``k``, ``v``, each initialised
    Glorot-uniform: weights ``U(-c, c)`` with ``c = sqrt(6 / (D_in + D_out))`` (the given
    :func:`_uniform_init` does it).  Rule for ``forward``: no loops, no
    ``F.scaled_dot_product_attention`` / ``nn.MultiheadAttention`` (call
    :func:`scaled_dot_product_no_loop_batch`).

    Args:
        dim_in: ``M``, features of each input position.
        dim_q: dimension of queries and keys.
        dim_v: dimension of values (and of the output).
    """

    def __init__(self, dim_in: int, dim_q: int, dim_v: int):
        super().__init__()
        checks.sizes(dim_in=dim_in, dim_q=dim_q, dim_v=dim_v)
        self.dim_in = dim_in
        self.q = self.k = self.v = None
        self.weights_softmax = None
        ### BEGIN SOLUTION
        self.q = _uniform_init(nn.Linear(dim_in, dim_q))
        self.k = _uniform_init(nn.Linear(dim_in, dim_q))
        self.v = _uniform_init(nn.Linear(dim_in, dim_v))
        ### END SOLUTION

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Project, then :func:`scaled_dot_product_no_loop_batch`.

        Args:
            query: ``(N, K, dim_in)``; key and value: ``(N, K', dim_in)``.
            mask: ``None`` or bool ``(N, K, K')``, True = hidden.

        Returns:
            y: ``(N, K, dim_v)``.
        """
        checks.projected_qkv(query, key, value, self.dim_in)
        y = None
        ### BEGIN SOLUTION
        y, self.weights_softmax = scaled_dot_product_no_loop_batch(self.q(query), self.k(key), self.v(value), mask)
        ### END SOLUTION
        return y


class MultiHeadAttention(nn.Module):
    """``num_heads`` :class:`SelfAttention` heads side by side, concatenated, projected back.

    Each head is ``SelfAttention(dim_in, dim_out, dim_out)``; their ``(N, K, dim_out)``
    outputs are concatenated to ``(N, K, num_heads * dim_out)`` and ``linear`` maps that to
    ``(N, K, dim_in)``.  With ``dim_out = dim_in // num_heads`` (what :class:`EncoderBlock`
    uses) this is ``nn.MultiheadAttention(dim_in, num_heads)``.

    Attributes: ``heads`` (``nn.ModuleList``), ``linear``; ``weights_softmax``, the
    ``(N, num_heads, K, K')`` attention weights of the last forward pass.

    Rule: the heads in an ``nn.ModuleList``; ``linear`` initialised like the heads' layers; you
    may not use ``nn.MultiheadAttention`` / ``F.multi_head_attention_forward`` /
    ``F.scaled_dot_product_attention`` (the tests' reference).

    Args:
        num_heads: number of heads.
        dim_in: ``M``, features of each position (in and out).
        dim_out: dimension of each head's queries, keys and values.
    """

    def __init__(self, num_heads: int, dim_in: int, dim_out: int):
        super().__init__()
        checks.sizes(num_heads=num_heads, dim_in=dim_in, dim_out=dim_out)
        self.num_heads, self.dim_in, self.dim_out = num_heads, dim_in, dim_out
        self.heads = self.linear = None
        self.weights_softmax = None
        ### BEGIN SOLUTION
        self.heads = nn.ModuleList([SelfAttention(dim_in, dim_out, dim_out) for _ in range(num_heads)])
        self.linear = _uniform_init(nn.Linear(num_heads * dim_out, dim_in))
        ### END SOLUTION

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args: query ``(N, K, dim_in)``; key and value ``(N, K', dim_in)``; mask ``None`` or bool
        ``(N, K, K')``, True = hidden.

        Returns:
            y: ``(N, K, dim_in)``.
        """
        y = None
        ### BEGIN SOLUTION
        outputs = [head(query, key, value, mask) for head in self.heads]
        self.weights_softmax = torch.stack([head.weights_softmax for head in self.heads], dim=1)
        y = self.linear(torch.cat(outputs, dim=-1))
        ### END SOLUTION
        return y


# --------------------------------------------------------------------------- the blocks


class LayerNormalization(nn.Module):
    """Normalise every position's features to mean 0 and variance 1, then scale and shift.

    ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta`` with the mean and the (biased,
    divide-by-M) variance taken over the last dimension -- ``F.layer_norm``'s definition.

    Rule: no ``nn.LayerNorm`` / ``F.layer_norm``, no loops.  Hint: ``mean`` with
    ``keepdim=True`` keeps the shapes broadcastable.

    Args:
        emb_dim: ``M``, the size of the last dimension.
        epsilon: added to the variance (the course's 1e-10).

    Attributes: ``gamma`` (ones) and ``beta`` (zeros), learned ``(M,)`` parameters.
    """

    def __init__(self, emb_dim: int, epsilon: float = 1e-10):
        super().__init__()
        self.emb_dim, self.epsilon = check_int(emb_dim, "emb_dim", minimum=1), checks.epsilon(epsilon)
        self.gamma = self.beta = None
        ### BEGIN SOLUTION
        self.gamma = nn.Parameter(torch.ones(emb_dim))
        self.beta = nn.Parameter(torch.zeros(emb_dim))
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., M)`` -> ``y (..., M)``."""
        checks.features(x, self.emb_dim)
        y = None
        ### BEGIN SOLUTION
        mean = x.mean(dim=-1, keepdim=True)
        centred = x - mean
        variance = (centred * centred).mean(dim=-1, keepdim=True)
        y = self.gamma * centred / torch.sqrt(variance + self.epsilon) + self.beta
        ### END SOLUTION
        return y


class FeedForwardBlock(nn.Module):
    """Position-wise MLP: ``Linear(inp_dim, hidden) -> ReLU -> Linear(hidden, inp_dim)``.

    Attributes: ``fc1``, ``relu``, ``fc2``.  Input and output ``(N, K, inp_dim)``.

    Rule: ``fc1`` and ``fc2`` initialised like the attention layers (:func:`_uniform_init`); no
    loops in ``forward``.
    """

    def __init__(self, inp_dim: int, hidden_dim_feedforward: int):
        super().__init__()
        checks.sizes(inp_dim=inp_dim, hidden_dim_feedforward=hidden_dim_feedforward)
        self.fc1 = self.relu = self.fc2 = None
        ### BEGIN SOLUTION
        self.fc1 = _uniform_init(nn.Linear(inp_dim, hidden_dim_feedforward))
        self.relu = nn.ReLU()
        self.fc2 = _uniform_init(nn.Linear(hidden_dim_feedforward, inp_dim))
        ### END SOLUTION

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        """``inp (N, K, inp_dim)`` -> ``(N, K, inp_dim)``."""
        y = None
        ### BEGIN SOLUTION
        y = self.fc2(self.relu(self.fc1(inp)))
        ### END SOLUTION
        return y


class EncoderBlock(nn.Module):
    """Self-attention then a feed-forward block, each wrapped as ``norm(x + dropout(sublayer(x)))``.

    Attributes: ``MultiHeadBlock`` (``MultiHeadAttention(num_heads, emb_dim, emb_dim // num_heads)``),
    ``norm1``, ``norm2`` (:class:`LayerNormalization`), ``feedForward``, ``dropout``.

    Rule: built from this file's layers; you may not use ``nn.TransformerEncoderLayer`` /
    ``nn.TransformerEncoder``, ``nn.MultiheadAttention`` or ``nn.LayerNorm`` (the tests' reference).

    Args:
        num_heads: attention heads; must divide ``emb_dim``.
        emb_dim: ``M``, features of each position.
        feedforward_dim: hidden width of the feed-forward block.
        dropout: probability of dropping a unit (``nn.Dropout``).
    """

    def __init__(self, num_heads: int, emb_dim: int, feedforward_dim: int, dropout: float):
        super().__init__()
        checks.block_args(num_heads, emb_dim, feedforward_dim, dropout)
        self.emb_dim = emb_dim
        self.MultiHeadBlock = self.norm1 = self.norm2 = self.feedForward = self.dropout = None
        ### BEGIN SOLUTION
        self.MultiHeadBlock = MultiHeadAttention(num_heads, emb_dim, emb_dim // num_heads)
        self.norm1 = LayerNormalization(emb_dim)
        self.norm2 = LayerNormalization(emb_dim)
        self.feedForward = FeedForwardBlock(emb_dim, feedforward_dim)
        self.dropout = nn.Dropout(dropout)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, K, M)`` -> ``(N, K, M)``."""
        checks.sequence(x, "x", self.emb_dim)
        y = None
        ### BEGIN SOLUTION
        hidden = self.norm1(x + self.dropout(self.MultiHeadBlock(x, x, x)))
        y = self.norm2(hidden + self.dropout(self.feedForward(hidden)))
        ### END SOLUTION
        return y


def get_subsequent_mask(seq: torch.Tensor) -> torch.Tensor:
    """The causal mask of a decoder: position ``i`` may look at positions ``j <= i`` only.

    Rule: no loops, no ``nn.Transformer.generate_square_subsequent_mask``.  Hint: compare
    ``torch.arange(K)`` with itself as a row and as a column.

    Args:
        seq: ``(N, K)`` token ids (only the shape is used).

    Returns:
        mask: ``(N, K, K)`` bool, ``mask[n, i, j] = j > i`` (True = hidden, the course's convention).
    """
    checks.token_batch(seq)
    mask = None
    ### BEGIN SOLUTION
    num, length = seq.shape
    positions = torch.arange(length, device=seq.device)
    mask = (positions[None, :] > positions[:, None]).expand(num, length, length)
    ### END SOLUTION
    return mask


class DecoderBlock(nn.Module):
    """Masked self-attention, attention to the encoder's output, feed-forward; each ``norm(x + dropout(.))``.

    Attributes: ``attention_self``, ``attention_cross`` (:class:`MultiHeadAttention` with
    ``emb_dim // num_heads`` per head), ``feed_forward``, ``norm1``, ``norm2``, ``norm3``, ``dropout``.

    Rule: built from this file's layers; you may not use ``nn.TransformerDecoderLayer`` /
    ``nn.TransformerDecoder``, ``nn.MultiheadAttention`` or ``nn.LayerNorm`` (the tests' reference).

    Args: as :class:`EncoderBlock`.
    """

    def __init__(self, num_heads: int, emb_dim: int, feedforward_dim: int, dropout: float):
        super().__init__()
        checks.block_args(num_heads, emb_dim, feedforward_dim, dropout)
        self.emb_dim = emb_dim
        self.attention_self = self.attention_cross = self.feed_forward = None
        self.norm1 = self.norm2 = self.norm3 = self.dropout = None
        ### BEGIN SOLUTION
        self.attention_self = MultiHeadAttention(num_heads, emb_dim, emb_dim // num_heads)
        self.attention_cross = MultiHeadAttention(num_heads, emb_dim, emb_dim // num_heads)
        self.feed_forward = FeedForwardBlock(emb_dim, feedforward_dim)
        self.norm1 = LayerNormalization(emb_dim)
        self.norm2 = LayerNormalization(emb_dim)
        self.norm3 = LayerNormalization(emb_dim)
        self.dropout = nn.Dropout(dropout)
        ### END SOLUTION

    def forward(self, dec_inp: torch.Tensor, enc_inp: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args:
            dec_inp: ``(N, K_out, M)``, the decoder's input sequence.
            enc_inp: ``(N, K_in, M)``, the encoder's output.
            mask: ``None`` or bool ``(N, K_out, K_out)`` for the self-attention, True = hidden
                (:func:`get_subsequent_mask`).

        Returns:
            y: ``(N, K_out, M)``.
        """
        checks.decoder_inputs(dec_inp, enc_inp, self.emb_dim)
        y = None
        ### BEGIN SOLUTION
        hidden = self.norm1(dec_inp + self.dropout(self.attention_self(dec_inp, dec_inp, dec_inp, mask)))
        hidden = self.norm2(hidden + self.dropout(self.attention_cross(hidden, enc_inp, enc_inp)))
        y = self.norm3(hidden + self.dropout(self.feed_forward(hidden)))
        ### END SOLUTION
        return y


class Encoder(nn.Module):
    """``num_layers`` :class:`EncoderBlock` in a row.  ``forward(src_seq (N, K, M)) -> (N, K, M)``."""

    def __init__(self, num_heads: int, emb_dim: int, feedforward_dim: int, num_layers: int, dropout: float):
        super().__init__()
        check_int(num_layers, "num_layers", minimum=1)
        self.layers = nn.ModuleList(
            [EncoderBlock(num_heads, emb_dim, feedforward_dim, dropout) for _ in range(num_layers)])

    def forward(self, src_seq: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            src_seq = layer(src_seq)
        return src_seq


class Decoder(nn.Module):
    """``num_layers`` :class:`DecoderBlock` in a row, then ``proj_to_vocab``: scores of every token.

    ``forward(target_seq (N, K_out, M), enc_out (N, K_in, M), mask=None) -> (N, K_out, vocab_len)``.
    """

    def __init__(self, num_heads: int, emb_dim: int, feedforward_dim: int, num_layers: int, dropout: float,
                 vocab_len: int):
        super().__init__()
        check_int(num_layers, "num_layers", minimum=1)
        check_int(vocab_len, "vocab_len", minimum=1)
        self.layers = nn.ModuleList(
            [DecoderBlock(num_heads, emb_dim, feedforward_dim, dropout) for _ in range(num_layers)])
        self.proj_to_vocab = _uniform_init(nn.Linear(emb_dim, vocab_len))

    def forward(self, target_seq: torch.Tensor, enc_out: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        out = target_seq
        for layer in self.layers:
            out = layer(out, enc_out, mask)
        return self.proj_to_vocab(out)


# --------------------------------------------------------------------------- positions


def position_encoding_simple(K: int, M: int) -> torch.Tensor:
    """Position ``n`` of ``K`` encoded as the number ``n / K`` in every one of the ``M`` features.

    Rule: no loops.

    Returns:
        ``(1, K, M)`` float32, ``out[0, n, :] = n / K``.
    """
    checks.sizes(K=K, M=M)
    y = None
    ### BEGIN SOLUTION
    y = (torch.arange(K, dtype=torch.float32) / K)[None, :, None].repeat(1, 1, M)
    ### END SOLUTION
    return y


def position_encoding_sinusoid(K: int, M: int) -> torch.Tensor:
    """The sinusoidal position encoding of "Attention is all you need".

    ``PE[p, 2i] = sin(p / 10000^(2i / M))`` and ``PE[p, 2i + 1] = cos(p / 10000^(2i / M))``:
    each pair of features turns at its own rate, from one radian per position (i = 0) to
    nearly none, so nearby positions get similar codes and every shift is a rotation.

    Rule: no loops.  Hint: build the angles ``(K, M)`` by broadcasting a column of positions
    against a row of rates, then pick sine or cosine by the feature's parity.

    Returns:
        ``(1, K, M)`` float32.
    """
    checks.sizes(K=K, M=M)
    y = None
    ### BEGIN SOLUTION
    positions = torch.arange(K, dtype=torch.float64)[:, None]
    even = torch.arange(M, dtype=torch.float64) // 2 * 2  # 2i for features 2i and 2i + 1
    angles = positions / SINUSOID_BASE ** (even / M)[None, :]
    is_even = torch.arange(M) % 2 == 0
    y = torch.where(is_even[None, :], angles.sin(), angles.cos()).to(torch.float32)[None]
    ### END SOLUTION
    return y


# --------------------------------------------------------------------------- the model


class Transformer(nn.Module):
    """Encoder-decoder Transformer reading a question and writing its answer.

    Attributes: ``emb_layer`` (:class:`TokenEmbedding`, shared by questions and answers),
    ``encoder``, ``decoder``.

    Rule for :meth:`encode`, :meth:`decode` and :meth:`forward`: no loops; no ``nn.Transformer``
    (nor its encoder / decoder classes): the model is this file's :class:`Encoder` and :class:`Decoder`.

    Args:
        num_heads, emb_dim, feedforward_dim, dropout: of every block (``num_heads`` divides ``emb_dim``).
        num_enc_layers, num_dec_layers: blocks in the encoder and the decoder.
        vocab_len: ``V``, number of tokens.
    """

    def __init__(self, num_heads: int, emb_dim: int, feedforward_dim: int, dropout: float,
                 num_enc_layers: int, num_dec_layers: int, vocab_len: int):
        super().__init__()
        checks.heads(num_heads, emb_dim)
        self.emb_dim, self.vocab_len = emb_dim, check_int(vocab_len, "vocab_len", minimum=1)
        self.emb_layer = TokenEmbedding(vocab_len, emb_dim)
        self.encoder = Encoder(num_heads, emb_dim, feedforward_dim, num_enc_layers, dropout)
        self.decoder = Decoder(num_heads, emb_dim, feedforward_dim, num_dec_layers, dropout, vocab_len)

    def encode(self, ques_b: torch.Tensor, ques_pos: torch.Tensor) -> torch.Tensor:
        """Embed the question, add its position code, run the encoder.

        Args:
            ques_b: ``(N, K_in)`` token ids; ques_pos: ``(N, K_in, M)`` (or ``(1, K_in, M)``).

        Returns:
            enc_out: ``(N, K_in, M)``.
        """
        checks.tokens_with_positions(ques_b, ques_pos, "ques_b", self.emb_dim, self.vocab_len)
        enc_out = None
        ### BEGIN SOLUTION
        enc_out = self.encoder(self.emb_layer(ques_b) + ques_pos)
        ### END SOLUTION
        return enc_out

    def decode(self, enc_out: torch.Tensor, ans_in: torch.Tensor, ans_pos: torch.Tensor) -> torch.Tensor:
        """Scores of the next token at every position of a (partial) answer.

        Args:
            enc_out: ``(N, K_in, M)`` from :meth:`encode`.
            ans_in: ``(N, T)`` the answer so far, starting with BOS.
            ans_pos: ``(N, T, M)`` (or ``(1, T, M)``) its position codes.

        Returns:
            ``(N, T, V)``: at position ``t`` the scores of token ``t + 1``; position ``t`` sees
            tokens ``0..t`` only (:func:`get_subsequent_mask`).
        """
        checks.tokens_with_positions(ans_in, ans_pos, "ans_in", self.emb_dim, self.vocab_len)
        scores = None
        ### BEGIN SOLUTION
        mask = get_subsequent_mask(ans_in)
        scores = self.decoder(self.emb_layer(ans_in) + ans_pos, enc_out, mask)
        ### END SOLUTION
        return scores

    def forward(self, ques_b: torch.Tensor, ques_pos: torch.Tensor, ans_b: torch.Tensor,
                ans_pos: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: predict every answer token from the question and the answer's tokens before it.

        Args:
            ques_b: ``(N, K_in)`` question ids; ques_pos: ``(N, K_in, M)``.
            ans_b: ``(N, K_out)`` answer ids, BOS first; ans_pos: ``(N, K_out, M)``.

        Returns:
            ``(N * (K_out - 1), V)`` scores: the decoder reads ``ans_b[:, :-1]`` and its row
            ``n * (K_out - 1) + t`` scores the token ``ans_b[n, t + 1]`` (compare with
            ``ans_b[:, 1:].reshape(-1)``).
        """
        checks.tokens_with_positions(ans_b, ans_pos, "ans_b", self.emb_dim, self.vocab_len, min_length=2)
        dec_out = None
        ### BEGIN SOLUTION
        enc_out = self.encode(ques_b, ques_pos)
        scores = self.decode(enc_out, ans_b[:, :-1], ans_pos[:, :-1])
        dec_out = scores.reshape(-1, self.vocab_len)
        ### END SOLUTION
        return dec_out


# --------------------------------------------------------------------------- losses


def CrossEntropyLoss(pred: torch.Tensor, ground: torch.Tensor, ignore_index: int | None = None,
                     reduction: str = "sum") -> torch.Tensor:
    """Softmax cross-entropy of every token: ``-log softmax(pred_t)[ground_t]``.

    Rule: no ``F.cross_entropy`` / ``F.log_softmax`` (they are the test's reference).  Hint: the
    given ``_log_softmax`` and ``_reduce`` below do the stable part and the reduction.

    Args:
        pred: ``(T, V)`` scores (``T = N * K`` tokens, from :class:`Transformer`).
        ground: ``(N, K)`` or ``(T,)`` the right ids.
        ignore_index: id whose positions cost nothing (the PAD id); None: none.
        reduction: ``"sum"`` over tokens (the course's), ``"mean"`` over the non-ignored tokens
            (NaN when there are none, as ``F.cross_entropy``), or ``"none"``: ``(T,)`` per token.

    Returns:
        scalar loss (or ``(T,)``); equals ``F.cross_entropy(pred, ground, ignore_index=..., reduction=...)``.
    """
    flat = checks.prediction(pred, ground, ignore_index, reduction)
    loss = None
    ### BEGIN SOLUTION
    keep = torch.ones_like(flat, dtype=torch.bool) if ignore_index is None else flat != ignore_index
    safe = torch.where(keep, flat, torch.zeros_like(flat))
    picked = _log_softmax(pred).gather(1, safe[:, None])[:, 0]
    loss = _reduce(-picked, keep, reduction)
    ### END SOLUTION
    return loss


def LabelSmoothingLoss(pred: torch.Tensor, ground: torch.Tensor, smoothing: float = DEFAULT_SMOOTHING,
                       ignore_index: int | None = None, reduction: str = "sum") -> torch.Tensor:
    """Cross-entropy against a smoothed target: the right token gets ``1 - smoothing``, every other
    token ``smoothing / (V - 1)`` (the course's form).

    A model is then never pushed to infinitely confident scores.  The same loss as
    ``F.cross_entropy(..., label_smoothing=smoothing * V / (V - 1))`` (PyTorch spreads its
    ``label_smoothing`` over all ``V`` tokens, the right one included).

    Rule: as :func:`CrossEntropyLoss`.  Hint: ``Tensor.scatter_`` writes ``1 - smoothing`` at the
    right tokens of a target filled with ``smoothing / (V - 1)``.

    Args:
        pred: ``(T, V)`` scores; ground: ``(N, K)`` or ``(T,)`` ids.
        smoothing: in [0, 1); 0 gives :func:`CrossEntropyLoss`.
        ignore_index, reduction: as :func:`CrossEntropyLoss`.

    Returns:
        scalar loss (or ``(T,)`` with ``reduction="none"``).
    """
    flat = checks.smoothed_prediction(pred, ground, smoothing, ignore_index, reduction)
    loss = None
    ### BEGIN SOLUTION
    keep = torch.ones_like(flat, dtype=torch.bool) if ignore_index is None else flat != ignore_index
    safe = torch.where(keep, flat, torch.zeros_like(flat))
    num_tokens = pred.shape[1]
    target = torch.full_like(pred, smoothing / (num_tokens - 1))
    target.scatter_(1, safe[:, None], 1.0 - smoothing)
    loss = _reduce(-(target * _log_softmax(pred)).sum(dim=1), keep, reduction)
    ### END SOLUTION
    return loss


# --------------------------------------------------------------------------- decoding and training


def greedy_decode(model: Transformer, ques_b: torch.Tensor, ques_pos: torch.Tensor, token_dict: dict,
                  max_len: int, pos_encode: Callable) -> torch.Tensor:
    """Write whole answers token by token, each time taking the most likely next token.

    The answer starts as ``[BOS]``; at step ``t`` the decoder reads the ``t`` tokens so far
    (with the position codes ``pos_encode(max_len, M)[:, :t]``, as in training) and the token
    with the highest score at the last position is appended.  After an ``EOS`` a row is
    filled with ``PAD``.  The encoder runs once.  Dropout is off (eval mode) during decoding.

    Rule: one loop, over the answer positions (not over the batch).

    Args:
        model: a :class:`Transformer`.
        ques_b: ``(N, K_in)`` question ids; ques_pos: ``(N, K_in, M)`` or ``(1, K_in, M)``.
        token_dict: ``{token: id}`` with ``"BOS"``, ``"EOS"`` and ``"PAD"``.
        max_len: length of the answers written, BOS and EOS included (the training ``pad_to``).
        pos_encode: the position encoding used in training.

    Returns:
        ``(N, max_len)`` int64 ids, BOS first.
    """
    checks.decoding_args(model, Transformer, token_dict, max_len)
    bos, eos, pad = (token_dict[token] for token in ("BOS", "EOS", "PAD"))
    answers = None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ### BEGIN SOLUTION
            enc_out = model.encode(ques_b, ques_pos)
            positions = pos_encode(max_len, model.emb_dim).to(enc_out)
            answers = torch.full((ques_b.shape[0], 1), bos, dtype=torch.int64, device=ques_b.device)
            finished = torch.zeros(ques_b.shape[0], dtype=torch.bool, device=ques_b.device)
            for step in range(1, max_len):
                scores = model.decode(enc_out, answers, positions[:, :step])
                following = scores[:, -1].argmax(dim=-1)
                following = torch.where(finished, torch.full_like(following, pad), following)
                finished = finished | (following == eos)
                answers = torch.cat([answers, following[:, None]], dim=1)
            ### END SOLUTION
    finally:
        model.train(was_training)
    return answers


def warmup_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int | None = None,
                     decay: str = "cosine", final_factor: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A learning-rate schedule with a linear warm-up, as a ``LambdaLR`` stepped once per optimizer step.

    The factor multiplying the optimizer's learning rate at step ``s`` (counted from 0):

    * warm-up, ``s < warmup_steps``: ``(s + 1) / warmup_steps``, rising linearly to 1;
    * then ``decay="cosine"``: from 1 down to ``final_factor`` along half a cosine, reached at
      ``total_steps`` and kept after; ``"inverse_sqrt"``: ``sqrt(warmup_steps / (s + 1))``
      (the paper's schedule); ``"constant"``: 1.

    A post-norm Transformer trained with Adam at full rate from the first step often diverges
    or stalls; the warm-up lets Adam's moment estimates settle first.

    Rule: the factor is a plain function of the step, wrapped by the given ``LambdaLR``; no other
    ``torch.optim.lr_scheduler`` class (``CosineAnnealingLR``, ``LinearLR``, ``SequentialLR``...).

    Args:
        optimizer: the optimizer whose rate is scaled.
        warmup_steps: steps of the warm-up (>= 1).
        total_steps: steps of the whole run (needed by ``"cosine"``; > ``warmup_steps``).
        decay: ``"cosine"``, ``"inverse_sqrt"`` or ``"constant"``.
        final_factor: the cosine's end, in [0, 1).

    Returns:
        ``torch.optim.lr_scheduler.LambdaLR`` (pass it to :func:`helpers.train.train` with
        ``scheduler_interval="step"``).
    """
    final_factor = checks.warmup_args(warmup_steps, total_steps, decay, final_factor)
    ### BEGIN SOLUTION
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if decay == "inverse_sqrt":
            return math.sqrt(warmup_steps / (step + 1))
        if decay == "constant":
            return 1.0
        done = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * done))
    ### END SOLUTION
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# =========================================================================== given code below this line
# --------------------------------------------------------------------------- helpers of the solutions


def _uniform_init(linear: nn.Linear) -> nn.Linear:
    """Glorot-uniform weights ``U(-c, c)``, ``c = sqrt(6 / (D_in + D_out))``, zero bias (the course's init)."""
    bound = math.sqrt(6.0 / (linear.in_features + linear.out_features))
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound)
        if linear.bias is not None:
            linear.bias.zero_()
    return linear


def _softmax(scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax along ``dim``: subtract the maximum before exponentiating."""
    shifted = scores - scores.amax(dim=dim, keepdim=True)
    exp = shifted.exp()
    return exp / exp.sum(dim=dim, keepdim=True)


def _log_softmax(scores: torch.Tensor) -> torch.Tensor:
    """``log softmax`` along the last dimension, stable: ``s - max - log sum exp(s - max)``."""
    shifted = scores - scores.amax(dim=-1, keepdim=True)
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log()


def _reduce(losses: torch.Tensor, keep: torch.Tensor, reduction: str) -> torch.Tensor:
    """``losses (T,)`` with ignored rows set to 0; sum, mean over kept rows, or per row."""
    losses = torch.where(keep, losses, torch.zeros_like(losses))
    if reduction == "none":
        return losses
    total = losses.sum()
    return total if reduction == "sum" else total / keep.sum()


class TokenEmbedding(nn.Module):
    """A learned vector per token: ``forward(tokens (N, K)) -> weight[tokens] (N, K, emb_dim)``.

    The same as ``nn.Embedding(vocab_len, emb_dim)`` (and initialised like it, ``N(0, 1)``):
    indexing a table is all an embedding does.  Attribute: ``weight`` ``(vocab_len, emb_dim)``.
    """

    def __init__(self, vocab_len: int, emb_dim: int):
        super().__init__()
        self.vocab_len = check_int(vocab_len, "vocab_len", minimum=1)
        check_int(emb_dim, "emb_dim", minimum=1)
        self.weight = nn.Parameter(torch.randn(vocab_len, emb_dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        checks.token_tensor(tokens, "tokens", "(N, K)", self.vocab_len)
        return self.weight[tokens]


def decode_tokens(tokens, token_dict: dict[str, int], skip: Sequence[str] = ("PAD",)) -> str:
    """The way back from ids to text: consecutive digits join into one number.

    ``[BOS, POSITIVE, 0, 4, EOS, PAD] -> "BOS POSITIVE 04 EOS"``.  Whatever the ids say is
    written, also a malformed answer of a model (``"BOS 4 POSITIVE EOS"``).

    Args:
        tokens: ``(K,)`` ids (a tensor or a list of ints).
        token_dict: ``{token: id}``.
        skip: tokens left out of the text (the padding).

    Returns:
        the space-separated text.
    """
    names = {index: token for token, index in token_dict.items()}
    ids = tokens.tolist() if isinstance(tokens, torch.Tensor) else list(tokens)
    words: list[str] = []
    previous_digit = False
    for index in ids:
        if index not in names:
            raise ValueError(f"token id {index} is not in token_dict (ids 0..{len(names) - 1})")
        token = names[index]
        if token in skip:
            continue
        digit = token.isdigit()
        if digit and previous_digit:
            words[-1] += token
        else:
            words.append(token)
        previous_digit = digit
    return " ".join(words)


# --------------------------------------------------------------------------- data


class AddSubDataset(Dataset):
    """Questions and answers as token tensors with their position codes (the course's dataset).

    Every text is tokenised once, here.  Answers are padded with ``"PAD"`` to ``pad_to``
    tokens (the longest answer by default: "BOS NEGATIVE 100 EOS" has 6), so that a batch is
    one tensor; losses and accuracies ignore the PAD positions.  Questions must all have
    the same number of tokens (9 for operands in [-99, 99]).

    ``dataset[i] = (ques (K_in,), ques_pos (K_in, M), ans (K_out,), ans_pos (K_out, M))`` with
    ``ques_pos = pos_encode(K_in, emb_dim)[0]`` (the same for every item), likewise ``ans_pos``.

    Args:
        input_seqs, target_seqs: question and answer strings (the same number).
        convert_str_to_tokens: ``{token: id}``, must contain ``"PAD"``.
        special_tokens: the tokens that are not digits.
        emb_dim: ``M``.
        pos_encode: :func:`position_encoding_simple` or :func:`position_encoding_sinusoid`.
        pad_to: answer length after padding; None: the longest answer.

    Attributes: ``questions`` ``(S, K_in)`` and ``answers`` ``(S, K_out)`` int64, ``ques_pos``,
    ``ans_pos``, ``pad_index``, plus the constructor's arguments.
    """

    def __init__(self, input_seqs: Sequence[str], target_seqs: Sequence[str], convert_str_to_tokens: dict,
                 special_tokens: Sequence[str], emb_dim: int, pos_encode: Callable, pad_to: int | None = None):
        if len(input_seqs) != len(target_seqs):
            raise ValueError(f"input_seqs and target_seqs must have the same length, got {len(input_seqs)} "
                             f"and {len(target_seqs)}")
        if "PAD" not in convert_str_to_tokens:
            raise ValueError("convert_str_to_tokens must contain the token 'PAD' (answers are padded with it)")
        if not len(input_seqs):
            raise ValueError("AddSubDataset needs at least one question")
        self.input_seqs, self.target_seqs = list(input_seqs), list(target_seqs)
        self.convert_str_to_tokens, self.special_tokens = convert_str_to_tokens, list(special_tokens)
        self.emb_dim, self.pos_encode = check_int(emb_dim, "emb_dim", minimum=1), pos_encode
        self.pad_index = convert_str_to_tokens["PAD"]
        questions = [self.preprocess(text) for text in self.input_seqs]
        answers = [self.preprocess(text) for text in self.target_seqs]
        lengths = sorted({len(q) for q in questions})
        if len(lengths) > 1:
            raise ValueError(f"every question must have the same number of tokens, got lengths {lengths}")
        longest = max(len(a) for a in answers)
        self.pad_to = longest if pad_to is None else check_int(pad_to, "pad_to", minimum=2)
        if longest > self.pad_to:
            raise ValueError(f"pad_to={self.pad_to} is shorter than the longest answer ({longest} tokens)")
        self.questions = torch.tensor(questions, dtype=torch.int64)
        self.answers = torch.tensor([a + [self.pad_index] * (self.pad_to - len(a)) for a in answers],
                                    dtype=torch.int64)
        self.ques_pos = pos_encode(self.questions.shape[1], emb_dim)[0]
        self.ans_pos = pos_encode(self.pad_to, emb_dim)[0]

    def preprocess(self, text: str) -> list[int]:
        """One text -> ids (:func:`preprocess_input_sequence`)."""
        return preprocess_input_sequence(text, self.convert_str_to_tokens, self.special_tokens)

    def __len__(self) -> int:
        return len(self.input_seqs)

    def __getitem__(self, idx: int):
        return self.questions[idx], self.ques_pos, self.answers[idx], self.ans_pos


# --------------------------------------------------------------------------- using a model


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def attention_weights(model: Transformer, ques_b: torch.Tensor, ques_pos: torch.Tensor, ans_b: torch.Tensor,
                      ans_pos: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """The attention weights of every layer in one teacher-forced pass (eval mode, no gradients).

    Args: as :meth:`Transformer.forward` (``ans_b`` ``(N, K_out)``; the decoder reads ``ans_b[:, :-1]``).

    Returns:
        ``{"encoder": [...], "decoder_self": [...], "decoder_cross": [...]}``, one tensor per layer:
        ``(N, H, K_in, K_in)``, ``(N, H, K_out - 1, K_out - 1)`` and ``(N, H, K_out - 1, K_in)``
        (row: the attending position, column: the position looked at), on the CPU.
    """
    checks.is_instance(model, Transformer, "model")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(ques_b, ques_pos, ans_b, ans_pos)
    finally:
        model.train(was_training)
    encoder = [layer.MultiHeadBlock.weights_softmax.cpu() for layer in model.encoder.layers]
    decoder_self = [layer.attention_self.weights_softmax.cpu() for layer in model.decoder.layers]
    decoder_cross = [layer.attention_cross.weights_softmax.cpu() for layer in model.decoder.layers]
    return {"encoder": encoder, "decoder_self": decoder_self, "decoder_cross": decoder_cross}


def _loader(dataset: AddSubDataset, batch_size: int) -> DataLoader:
    checks.is_instance(dataset, AddSubDataset, "dataset")
    return DataLoader(dataset, batch_size=check_int(batch_size, "batch_size", minimum=1), shuffle=False)


def predict_answers(model: Transformer, dataset: AddSubDataset, token_dict: dict, batch_size: int = 1024,
                    device=None) -> torch.Tensor:
    """:func:`greedy_decode` over a whole dataset, answers as long as the dataset's (``pad_to``).

    Returns:
        ``(S, pad_to)`` int64 ids on the CPU, comparable with ``dataset.answers``.
    """
    device = _device_of(model) if device is None else device
    out = [greedy_decode(model, ques.to(device), ques_pos.to(device), token_dict, dataset.pad_to, dataset.pos_encode)
           for ques, ques_pos, _, _ in _loader(dataset, batch_size)]
    return torch.cat(out).cpu()


def answer_accuracy(predictions: torch.Tensor, answers: torch.Tensor) -> float:
    """Fraction of whole answers written exactly right (every token, PAD included after EOS).

    Args:
        predictions: ``(S, K_out)`` ids from :func:`predict_answers`; answers: ``(S, K_out)`` the right ones.
    """
    if not isinstance(predictions, torch.Tensor) or not isinstance(answers, torch.Tensor) \
            or predictions.shape != answers.shape or predictions.dim() != 2:
        raise ValueError("predictions and answers must be (S, K_out) tensors of one shape, got "
                         f"{getattr(predictions, 'shape', type(predictions).__name__)} and "
                         f"{getattr(answers, 'shape', type(answers).__name__)}")
    if not len(answers):
        raise ValueError("answer_accuracy needs at least one answer")
    return float((predictions.cpu() == answers.cpu()).all(dim=1).double().mean())


def token_accuracy(model: Transformer, dataset: AddSubDataset, batch_size: int = 1024, device=None) -> float:
    """Teacher-forced accuracy per token (the course's metric): the share of answer tokens after
    BOS, PAD excluded, whose highest-scoring prediction is right when the decoder is given the
    true tokens before it.  Computed in eval mode without gradients.
    """
    device = _device_of(model) if device is None else device
    correct = total = 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in _loader(dataset, batch_size):
                ques, ques_pos, ans, ans_pos = (item.to(device) for item in batch)
                guess = model(ques, ques_pos, ans, ans_pos).argmax(dim=-1)
                truth = ans[:, 1:].reshape(-1)
                keep = truth != dataset.pad_index
                correct += int((guess[keep] == truth[keep]).sum())
                total += int(keep.sum())
    finally:
        model.train(was_training)
    return correct / total


# --------------------------------------------------------------------------- training


def transformer_loss_fn(pad_index: int, smoothing: float = DEFAULT_SMOOTHING) -> Callable:
    """A ``loss_fn(model, batch)`` for :func:`helpers.train.train`.

    The loss is :func:`LabelSmoothingLoss` averaged over the non-PAD answer tokens (``smoothing=0``:
    plain cross-entropy); the metric ``"token acc"`` is the batch's teacher-forced token accuracy.
    """
    checks.probability("smoothing", smoothing)

    def loss_fn(model, batch):
        ques, ques_pos, ans, ans_pos = batch
        scores = model(ques, ques_pos, ans, ans_pos)
        truth = ans[:, 1:]
        loss = LabelSmoothingLoss(scores, truth, smoothing, ignore_index=pad_index, reduction="mean")
        with torch.no_grad():
            flat = truth.reshape(-1)
            keep = flat != pad_index
            accuracy = float((scores.argmax(dim=-1)[keep] == flat[keep]).double().mean())
        return loss, {"token acc": accuracy}

    return loss_fn


def train_transformer(model: Transformer, train_set: AddSubDataset, *, num_epochs: int, batch_size: int = 256,
                      lr: float = 1e-3, warmup_steps: int = 200, decay: str = "cosine", smoothing: float = 0.0,
                      weight_decay: float = 0.0, grad_clip: float | None = 1.0, checkpoint=None, val_fn=None,
                      device=None, progress: bool = False, time_limit: float | None = None,
                      seed: int = 0) -> dict:
    """Train with Adam(W), a warm-up schedule stepped every step, through :func:`helpers.train.train`.

    Args:
        model: a :class:`Transformer` (moved to ``device`` if given).
        train_set: an :class:`AddSubDataset`; shuffled every epoch (its own generator, seeded with ``seed``).
        num_epochs, batch_size, lr: of the run; ``lr`` is the peak rate.
        warmup_steps, decay: of :func:`warmup_scheduler` (``total_steps`` is the run's length).
        smoothing: of :func:`LabelSmoothingLoss`.
        weight_decay: of ``torch.optim.AdamW`` (0: Adam).
        grad_clip, checkpoint, val_fn, progress, time_limit: passed to :func:`helpers.train.train`.

    Returns:
        the history of :func:`helpers.train.train`.
    """
    checks.is_instance(model, Transformer, "model")
    checks.is_instance(train_set, AddSubDataset, "train_set")
    check_int(num_epochs, "num_epochs", minimum=1)
    if device is not None:
        model.to(device)
    loader = DataLoader(train_set, batch_size=check_int(batch_size, "batch_size", minimum=1), shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = warmup_scheduler(optimizer, warmup_steps, num_epochs * len(loader), decay=decay)
    return train(model, optimizer, loader, transformer_loss_fn(train_set.pad_index, smoothing),
                 num_epochs=num_epochs, scheduler=scheduler, scheduler_interval="step", checkpoint=checkpoint,
                 grad_clip=grad_clip, val_fn=val_fn, device=device, progress=progress, time_limit=time_limit)


__all__ = [
    "AddSubDataset",
    "CrossEntropyLoss",
    "Decoder",
    "DecoderBlock",
    "Encoder",
    "EncoderBlock",
    "FeedForwardBlock",
    "LabelSmoothingLoss",
    "LayerNormalization",
    "MultiHeadAttention",
    "SelfAttention",
    "TokenEmbedding",
    "Transformer",
    "answer_accuracy",
    "attention_weights",
    "decode_tokens",
    "generate_token_dict",
    "get_subsequent_mask",
    "greedy_decode",
    "hello_transformers",
    "position_encoding_simple",
    "position_encoding_sinusoid",
    "predict_answers",
    "preprocess_input_sequence",
    "prepocess_input_sequence",
    "scaled_dot_product_no_loop_batch",
    "scaled_dot_product_two_loop_batch",
    "scaled_dot_product_two_loop_single",
    "token_accuracy",
    "train_transformer",
    "transformer_loss_fn",
    "warmup_scheduler",
]
