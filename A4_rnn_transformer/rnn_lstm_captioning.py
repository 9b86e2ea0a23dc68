"""A4: image captioning with a vanilla RNN, an LSTM and an attention LSTM.

Names follow EECS 498/598 so course material applies unchanged.

* The vanilla RNN, written by hand with **no autograd** (the course's API)::

      next_h, cache = rnn_step_forward(x, prev_h, Wx, Wh, b)       # x (N, D), prev_h (N, H)
      dx, dprev_h, dWx, dWh, db = rnn_step_backward(dnext_h, cache)
      h, cache = rnn_forward(x, h0, Wx, Wh, b)                      # x (N, T, D), h (N, T, H)
      dx, dh0, dWx, dWh, db = rnn_backward(dh, cache)

  with ``Wx (D, H)``, ``Wh (H, H)``, ``b (H,)`` and ``next_h = tanh(x Wx + prev_h Wh + b)``.
* ``nn.Module`` pieces trained with autograd: :class:`RNN` (its ``forward`` calls
  :func:`rnn_forward`, whose plain tensor operations autograd differentiates -- the
  hand-written backward is checked against it, not used in training, as in the course),
  :class:`WordEmbedding`, :func:`temporal_softmax_loss`, :class:`ImageEncoder`,
  :class:`LSTM` (hand-written cell :func:`lstm_step_forward`, :func:`lstm_forward`),
  :func:`dot_product_attention`, :class:`AttentionLSTM` (:func:`attention_forward`)
  and the captioning model :class:`CaptioningRNN` with ``forward(images, captions) -> loss``
  and greedy ``sample(images, max_length)``.
* :func:`caption_loss_fn` and :func:`caption_images`: glue for :func:`helpers.train.train`
  and for captioning a whole data set in batches.

LSTM gates are packed in the course's order **i, f, o, g** (input, forget, output, candidate):
``Wx (D, 4H)`` holds ``[Wx_i | Wx_f | Wx_o | Wx_g]``.  ``torch.nn.LSTM`` packs ``i, f, g, o``
(and stores transposed weights): copying weights between the two means reordering the gates.

Captions are integer tensors ``(N, T + 1)``: ``<START> w1 ... wk <END> <NULL> ...``.  The model
reads ``captions[:, :-1]`` and is scored on predicting ``captions[:, 1:]``; with
``ignore_index=<NULL>``'s id the padding does not count.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from helpers.checks import check_int

__all__ = [
    "CELL_TYPES",
    "SPECIAL_TOKENS",
    "AttentionLSTM",
    "CaptioningRNN",
    "ImageEncoder",
    "LSTM",
    "RNN",
    "WordEmbedding",
    "attention_forward",
    "caption_images",
    "caption_loss_fn",
    "dot_product_attention",
    "lstm_forward",
    "lstm_step_forward",
    "rnn_backward",
    "rnn_forward",
    "rnn_step_backward",
    "rnn_step_forward",
    "temporal_softmax_loss",
]

#: The recurrent cells :class:`CaptioningRNN` knows.
CELL_TYPES = ("rnn", "lstm", "attn")
#: Tokens every caption vocabulary must hold (``helpers.text`` gives them ids 0, 1, 2, 3).
SPECIAL_TOKENS = ("<NULL>", "<START>", "<END>")
#: ImageNet statistics: both image encoders normalise their input with them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Feature channels of the two encoders (RegNetX-400MF up to its third stage; our small CNN).
REGNET_CHANNELS = 160
SMALL_CNN_CHANNELS = 128


# --------------------------------------------------------------------------- input checks


def _shape(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def _describe(dims: tuple, sizes: dict) -> str:
    """``("N", "D")`` and ``{"D": 5}`` -> ``"(N, D) with D=5"``."""
    text = "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"
    known = [f"{d}={sizes[d]}" for d in dict.fromkeys(dims) if isinstance(d, str) and d in sizes]
    return text + (" with " + ", ".join(known) if known else "")


def _expect(t, name: str, dims: tuple, sizes: dict, kind: str = "float") -> None:
    """Check ``t``'s type and shape against ``dims``; learn the sizes of new letters into ``sizes``.

    ``dims`` holds letters (a size shared between arguments, e.g. ``"N"``) or ints. A letter
    already in ``sizes`` must match it; otherwise it is learnt from ``t``.  ``kind`` is
    ``"float"`` (a floating tensor) or ``"int"`` (an integer tensor).
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {_describe(dims, sizes)}, got {type(t).__name__}")
    if kind == "float" and not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape {_describe(dims, sizes)}, got {t.dtype}; "
                        "convert it with .float() or .double()")
    if kind == "int" and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        raise TypeError(f"{name} must hold integer token ids (torch.int64), got {t.dtype}")
    learnt = dict(sizes)
    ok = t.dim() == len(dims)
    for d, s in zip(dims, t.shape, strict=False):
        if not ok:
            break
        if isinstance(d, int):
            ok = s == d
        elif d in learnt:
            ok = s == learnt[d]
        else:
            learnt[d] = s
    if not ok:
        raise ValueError(f"{name} must have shape {_describe(dims, sizes)}, got {_shape(t)}")
    sizes.update(learnt)


def _same_dtype(**tensors) -> None:
    """All floating arguments must share one dtype (float32 with float64 would fail deep in a matmul)."""
    dtypes = {name: t.dtype for name, t in tensors.items()}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{name} {str(dtype).replace('torch.', '')}" for name, dtype in dtypes.items())
        raise TypeError(f"all tensors must have one dtype, got {listed}")


def _check_tokens(tokens, vocab_size: int, name: str, ignore_index: int | None = None) -> None:
    """Integer ids must lie in ``[0, vocab_size)`` (``ignore_index`` positions excepted)."""
    if tokens.numel() == 0:
        return
    ids = tokens if ignore_index is None else tokens[tokens != ignore_index]
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"{name} must hold token ids in [0, {vocab_size}) (the vocabulary's size is {vocab_size}), "
                         f"got ids from {int(ids.min())} to {int(ids.max())}")


# --------------------------------------------------------------------------- vanilla RNN, by hand


def rnn_step_forward(x: torch.Tensor, prev_h: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor,
                     b: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """One time step of a vanilla RNN with a tanh non-linearity.

    ``next_h = tanh(x @ Wx + prev_h @ Wh + b)``

    Args:
        x: ``(N, D)`` inputs of this step.
        prev_h: ``(N, H)`` hidden state of the previous step.
        Wx: ``(D, H)`` input-to-hidden weights.
        Wh: ``(H, H)`` hidden-to-hidden weights.
        b: ``(H,)`` biases.

    Returns:
        next_h: ``(N, H)``; cache: what :func:`rnn_step_backward` needs.
    """
    sizes = {}
    _expect(x, "x", ("N", "D"), sizes)
    _expect(prev_h, "prev_h", ("N", "H"), sizes)
    _expect(Wx, "Wx", ("D", "H"), sizes)
    _expect(Wh, "Wh", ("H", "H"), sizes)
    _expect(b, "b", ("H",), sizes)
    _same_dtype(x=x, prev_h=prev_h, Wx=Wx, Wh=Wh, b=b)
    next_h, cache = None, None
    ### BEGIN SOLUTION
    next_h = torch.tanh(x @ Wx + prev_h @ Wh + b)
    cache = (x, prev_h, Wx, Wh, next_h)
    ### END SOLUTION
    return next_h, cache


def rnn_step_backward(dnext_h: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, ...]:
    """Backward pass of :func:`rnn_step_forward`.

    With ``z = x Wx + prev_h Wh + b`` and ``next_h = tanh(z)``: ``dz = dnext_h * (1 - next_h ** 2)``,
    then ``dx = dz Wx^T``, ``dprev_h = dz Wh^T``, ``dWx = x^T dz``, ``dWh = prev_h^T dz``,
    ``db = sum_n dz``.

    Args:
        dnext_h: ``(N, H)`` upstream gradient of the loss with respect to ``next_h``.
        cache: from :func:`rnn_step_forward`.

    Returns:
        dx ``(N, D)``, dprev_h ``(N, H)``, dWx ``(D, H)``, dWh ``(H, H)``, db ``(H,)``.
    """
    x, prev_h, Wx, Wh, next_h = cache
    _expect(dnext_h, "dnext_h", tuple(next_h.shape), {})
    dx, dprev_h, dWx, dWh, db = None, None, None, None, None
    ### BEGIN SOLUTION
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
    """Run a vanilla RNN over a whole sequence: :func:`rnn_step_forward` once per time step.

    Args:
        x: ``(N, T, D)`` input sequences.
        h0: ``(N, H)`` initial hidden state.
        Wx: ``(D, H)``, Wh: ``(H, H)``, b: ``(H,)``.

    Returns:
        h: ``(N, T, H)`` hidden states of every step (``h0`` excluded); cache for :func:`rnn_backward`.
    """
    sizes = {}
    _expect(x, "x", ("N", "T", "D"), sizes)
    _expect(h0, "h0", ("N", "H"), sizes)
    _expect(Wx, "Wx", ("D", "H"), sizes)
    _expect(Wh, "Wh", ("H", "H"), sizes)
    _expect(b, "b", ("H",), sizes)
    _same_dtype(x=x, h0=h0, Wx=Wx, Wh=Wh, b=b)
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

    Walking back from the last step, the gradient reaching ``h[:, t]`` is the upstream
    ``dh[:, t]`` plus what step ``t + 1`` sent back through ``Wh``.

    Args:
        dh: ``(N, T, H)`` upstream gradients of every hidden state.
        cache: from :func:`rnn_forward`.

    Returns:
        dx ``(N, T, D)``, dh0 ``(N, H)``, dWx ``(D, H)``, dWh ``(H, H)``, db ``(H,)``.
    """
    x, h0, Wx, Wh, h = cache
    _expect(dh, "dh", tuple(h.shape), {})
    dx, dh0, dWx, dWh, db = None, None, None, None, None
    ### BEGIN SOLUTION
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
    """A vanilla RNN layer: parameters plus :func:`rnn_forward` / :func:`rnn_step_forward`.

    ``forward`` calls :func:`rnn_forward`, whose plain tensor operations autograd
    differentiates (the course's choice); the hand-written :func:`rnn_backward` is tested
    against that gradient.

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
        """``x (N, T, D)``, ``h0 (N, H)`` -> hidden states ``(N, T, H)``."""
        hn = None
        ### BEGIN SOLUTION
        hn, _ = rnn_forward(x, h0, self.Wx, self.Wh, self.b)
        ### END SOLUTION
        return hn

    def step_forward(self, x: torch.Tensor, prev_h: torch.Tensor) -> torch.Tensor:
        """One step: ``x (N, D)``, ``prev_h (N, H)`` -> ``next_h (N, H)``."""
        next_h = None
        ### BEGIN SOLUTION
        next_h, _ = rnn_step_forward(x, prev_h, self.Wx, self.Wh, self.b)
        ### END SOLUTION
        return next_h


# --------------------------------------------------------------------------- words


class WordEmbedding(nn.Module):
    """Look up a learnt vector for every word id: ``out[n, t] = W_embed[x[n, t]]``.

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
        """``x``: integer ids of any shape ``(N, T)`` / ``(N,)``, each in ``[0, V)`` -> ``(*x.shape, W)``."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor of integer word ids, got {type(x).__name__}")
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"x must hold integer word ids (torch.int64), got {x.dtype}")
        _check_tokens(x, self.vocab_size, "x")
        out = None
        ### BEGIN SOLUTION
        out = self.W_embed[x]
        ### END SOLUTION
        return out


def temporal_softmax_loss(x: torch.Tensor, y: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """Softmax cross-entropy at every time step, summed over time, averaged over the batch.

    ``loss = -1/N sum_{n, t: y[n, t] != ignore_index} log softmax(x[n, t])[y[n, t]]``, with
    ``log softmax(s)[k] = s_k - logsumexp(s)`` (stable for any scores).  Note the division by
    ``N``, not by the number of counted words: the course's convention (``F.cross_entropy``
    with ``reduction="sum"``, divided by ``N``).

    Args:
        x: ``(N, T, V)`` scores of every word at every step.
        y: ``(N, T)`` integer ids of the correct words, in ``[0, V)`` except where ``== ignore_index``.
        ignore_index: id whose positions add nothing to the loss (the ``<NULL>`` padding), or None.

    Returns:
        scalar loss tensor (differentiable with autograd).
    """
    sizes = {}
    _expect(x, "x", ("N", "T", "V"), sizes)
    _expect(y, "y", ("N", "T"), sizes, kind="int")
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    _check_tokens(y, sizes["V"], "y", ignore_index)
    loss = None
    ### BEGIN SOLUTION
    keep = torch.ones_like(y, dtype=torch.bool) if ignore_index is None else y != ignore_index
    safe_y = torch.where(keep, y, torch.zeros_like(y))  # any valid id; masked out below
    log_prob = x.gather(2, safe_y.unsqueeze(2)).squeeze(2) - torch.logsumexp(x, dim=2)
    loss = -(log_prob * keep).sum() / max(x.shape[0], 1)
    ### END SOLUTION
    return loss


# --------------------------------------------------------------------------- images (given code)


def _regnet_trunk(weights=None) -> nn.Sequential:
    """RegNetX-400MF's stem and first three stages: ``(N, 3, H, W) -> (N, 160, H/16, W/16)``."""
    from torchvision.models import regnet_x_400mf

    net = regnet_x_400mf(weights=weights)
    trunk = net.trunk_output
    return nn.Sequential(net.stem, trunk.block1, trunk.block2, trunk.block3)


def _imagenet_weights():
    """The ImageNet weights of RegNetX-400MF; refuses to download them when offline."""
    from torchvision.models import RegNet_X_400MF_Weights

    from helpers.config import get_config

    weights = RegNet_X_400MF_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    if get_config().offline and not cached.is_file():
        raise FileNotFoundError(
            f"ImageEncoder(pretrained=True) needs the ImageNet weights of RegNetX-400MF ({weights.url}), "
            f"but DL4CV_OFFLINE=1 and they are not in {cached.parent}. Either use pretrained=False "
            "(a small CNN trained from scratch with the captioner), or put the file there, "
            "or run with DL4CV_OFFLINE=0 to download it.")
    return weights


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


def _float_images(images, name: str = "images") -> torch.Tensor:
    """Check ``(N, 3, H, W)`` images (uint8 in [0, 255] or float in [0, 1]); return them as floats in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, 3, H, W), got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[2] < 1 or images.shape[3] < 1:
        raise ValueError(f"{name} must have shape (N, 3, H, W) (RGB), got {_shape(images)}")
    if images.dtype == torch.uint8:
        return images.float() / 255
    if not images.is_floating_point():
        raise TypeError(f"{name} must be float in [0, 1] or uint8 in [0, 255], got {images.dtype}")
    if images.numel():
        low, high = float(images.min()), float(images.max())
        if not (0 <= low and high <= 1):  # also catches NaN
            raise ValueError(f"float {name} must hold values in [0, 1], got values from {low:.4g} to {high:.4g}; "
                             "divide uint8 pixels by 255")
    return images


class ImageEncoder(nn.Module):
    """A convolutional network turning images into a grid of feature vectors.

    Both versions read ``(N, 3, H, W)`` images -- floats in [0, 1] (uint8 in [0, 255] are
    converted) -- normalise them with the ImageNet mean and standard deviation inside, and
    return features ``(N, out_channels, ceil(H/16), ceil(W/16))``: a 4x4 grid for 64x64 images.

    * ``pretrained=True`` (the course's choice, online): the stem and first three stages of
      torchvision's RegNetX-400MF with its ImageNet weights, ``out_channels = 160``.  The course
      cuts after the fourth stage (stride 32); we stop at stride 16 so that small images still
      give a grid worth attending over.  Offline the weights must already be in torch's hub
      cache, else a ``FileNotFoundError`` says what to do.
    * ``pretrained=False`` (our offline choice): a small CNN of five 3x3 convolutions with batch
      norm and ReLU (widths 16, 32, 64, 64, 128; four of stride 2), ``out_channels = 128``,
      135k parameters, trained from scratch together with the captioner.  Without downloadable
      weights the RegNet trunk would have to be trained from scratch too: four times the
      parameters (566k) and about four times the computation per image -- more network than
      64x64 scenes of a few pasted items need, and too slow to train four captioners on one
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
            self.cnn = _regnet_trunk(weights=_imagenet_weights())
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
        x = _float_images(images).to(self.mean.dtype)
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)  # faster convolutions on CPU
        return self.cnn(x)


# --------------------------------------------------------------------------- LSTM


def lstm_step_forward(x: torch.Tensor, prev_h: torch.Tensor, prev_c: torch.Tensor, Wx: torch.Tensor,
                      Wh: torch.Tensor, b: torch.Tensor, attn: torch.Tensor | None = None,
                      Wattn: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step of an LSTM (autograd computes its backward pass).

    ``a = x Wx + prev_h Wh + b`` (``+ attn Wattn`` for the attention LSTM) is split into four
    ``(N, H)`` blocks in the order i, f, o, g; then ``i, f, o = sigmoid(.)``, ``g = tanh(.)``,
    ``next_c = f * prev_c + i * g`` and ``next_h = o * tanh(next_c)``.

    Args:
        x: ``(N, D)``; prev_h, prev_c: ``(N, H)``.
        Wx: ``(D, 4H)``, Wh: ``(H, 4H)``, b: ``(4H,)``.
        attn: ``(N, H)`` attention embedding, or None; Wattn: ``(H, 4H)``, given with ``attn``.

    Returns:
        next_h, next_c: ``(N, H)`` each.
    """
    sizes = {}
    _expect(x, "x", ("N", "D"), sizes)
    _expect(prev_h, "prev_h", ("N", "H"), sizes)
    _expect(prev_c, "prev_c", ("N", "H"), sizes)
    sizes["4H"] = 4 * sizes["H"]
    _expect(Wx, "Wx", ("D", "4H"), sizes)
    _expect(Wh, "Wh", ("H", "4H"), sizes)
    _expect(b, "b", ("4H",), sizes)
    if (attn is None) != (Wattn is None):
        raise ValueError("attn and Wattn go together: give both (attention LSTM) or neither (plain LSTM)")
    if attn is not None:
        _expect(attn, "attn", ("N", "H"), sizes)
        _expect(Wattn, "Wattn", ("H", "4H"), sizes)
    next_h, next_c = None, None
    ### BEGIN SOLUTION
    a = x @ Wx + prev_h @ Wh + b
    if attn is not None:
        a = a + attn @ Wattn
    i, f, o, g = a.chunk(4, dim=1)
    next_c = torch.sigmoid(f) * prev_c + torch.sigmoid(i) * torch.tanh(g)
    next_h = torch.sigmoid(o) * torch.tanh(next_c)
    ### END SOLUTION
    return next_h, next_c


def lstm_forward(x: torch.Tensor, h0: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor,
                 b: torch.Tensor) -> torch.Tensor:
    """Run an LSTM over a sequence; the initial cell state is zero.

    Args:
        x: ``(N, T, D)``; h0: ``(N, H)``; Wx: ``(D, 4H)``, Wh: ``(H, 4H)``, b: ``(4H,)``.

    Returns:
        h: ``(N, T, H)`` hidden states of every step.
    """
    sizes = {}
    _expect(x, "x", ("N", "T", "D"), sizes)
    _expect(h0, "h0", ("N", "H"), sizes)
    h = None
    ### BEGIN SOLUTION
    prev_h, prev_c = h0, torch.zeros_like(h0)
    states = []
    for t in range(x.shape[1]):
        prev_h, prev_c = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        states.append(prev_h)
    h = torch.stack(states, dim=1) if states else x.new_zeros(x.shape[0], 0, h0.shape[1])
    ### END SOLUTION
    return h


class LSTM(nn.Module):
    """An LSTM layer with the hand-written cell :func:`lstm_step_forward` (gates i, f, o, g).

    Parameters: ``Wx (D, 4H) ~ N(0, 1/D)``, ``Wh (H, 4H) ~ N(0, 1/H)``, ``b (4H,) = 0``.

    Args:
        input_dim: ``D``; hidden_dim: ``H``.
    """

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        self.input_dim = check_int(input_dim, "input_dim", minimum=1)
        self.hidden_dim = check_int(hidden_dim, "hidden_dim", minimum=1)
        self.Wx = nn.Parameter(torch.randn(input_dim, 4 * hidden_dim) / math.sqrt(input_dim))
        self.Wh = nn.Parameter(torch.randn(hidden_dim, 4 * hidden_dim) / math.sqrt(hidden_dim))
        self.b = nn.Parameter(torch.zeros(4 * hidden_dim))

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """``x (N, T, D)``, ``h0 (N, H)`` -> hidden states ``(N, T, H)`` (cell state starts at 0)."""
        hn = None
        ### BEGIN SOLUTION
        hn = lstm_forward(x, h0, self.Wx, self.Wh, self.b)
        ### END SOLUTION
        return hn

    def step_forward(self, x: torch.Tensor, prev_h: torch.Tensor,
                     prev_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``x (N, D)``, ``prev_h``, ``prev_c (N, H)`` -> ``(next_h, next_c)``."""
        next_h, next_c = None, None
        ### BEGIN SOLUTION
        next_h, next_c = lstm_step_forward(x, prev_h, prev_c, self.Wx, self.Wh, self.b)
        ### END SOLUTION
        return next_h, next_c


# --------------------------------------------------------------------------- attention


def dot_product_attention(prev_h: torch.Tensor, A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention of a hidden state over a grid of image features.

    The ``Dh * Dw`` grid cells are keys and values at once: with ``a_k`` the feature vector of
    cell ``k``, ``w = softmax_k(prev_h . a_k / sqrt(H))`` and ``attn = sum_k w_k a_k``.

    Args:
        prev_h: ``(N, H)`` hidden state (the query).
        A: ``(N, H, Dh, Dw)`` projected image features (the course's grids are square, ``D x D``).

    Returns:
        attn: ``(N, H)`` attention embedding; attn_weights: ``(N, Dh, Dw)``, summing to 1 per image.
    """
    sizes = {}
    _expect(prev_h, "prev_h", ("N", "H"), sizes)
    _expect(A, "A", ("N", "H", "Dh", "Dw"), sizes)
    _same_dtype(prev_h=prev_h, A=A)
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


def attention_forward(x: torch.Tensor, A: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor, Wattn: torch.Tensor,
                      b: torch.Tensor) -> torch.Tensor:
    """Run an attention LSTM over a sequence.

    ``h0 = c0 =`` the mean of ``A`` over the grid; at every step the previous hidden state
    attends over ``A`` (:func:`dot_product_attention`) and the attention embedding enters the
    cell through ``Wattn`` (:func:`lstm_step_forward`).

    Args:
        x: ``(N, T, D)``; A: ``(N, H, Dh, Dw)``; Wx: ``(D, 4H)``, Wh, Wattn: ``(H, 4H)``, b: ``(4H,)``.

    Returns:
        h: ``(N, T, H)``.
    """
    sizes = {}
    _expect(x, "x", ("N", "T", "D"), sizes)
    _expect(A, "A", ("N", "H", "Dh", "Dw"), sizes)
    h = None
    ### BEGIN SOLUTION
    prev_h = A.mean(dim=(2, 3))
    prev_c = prev_h
    states = []
    for t in range(x.shape[1]):
        attn, _ = dot_product_attention(prev_h, A)
        prev_h, prev_c = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b, attn=attn, Wattn=Wattn)
        states.append(prev_h)
    h = torch.stack(states, dim=1) if states else x.new_zeros(x.shape[0], 0, A.shape[1])
    ### END SOLUTION
    return h


class AttentionLSTM(nn.Module):
    """An LSTM whose every step also reads an attention embedding of the image features.

    Parameters: ``Wx (D, 4H) ~ N(0, 1/D)``, ``Wh``, ``Wattn (H, 4H) ~ N(0, 1/H)``, ``b (4H,) = 0``.

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
        self.b = nn.Parameter(torch.zeros(4 * hidden_dim))

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        """``x (N, T, D)``, ``A (N, H, Dh, Dw)`` -> hidden states ``(N, T, H)``."""
        hn = None
        ### BEGIN SOLUTION
        hn = attention_forward(x, A, self.Wx, self.Wh, self.Wattn, self.b)
        ### END SOLUTION
        return hn

    def step_forward(self, x: torch.Tensor, prev_h: torch.Tensor, prev_c: torch.Tensor,
                     attn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``x (N, D)``, ``prev_h``, ``prev_c``, ``attn (N, H)`` -> ``(next_h, next_c)``."""
        next_h, next_c = None, None
        ### BEGIN SOLUTION
        next_h, next_c = lstm_step_forward(x, prev_h, prev_c, self.Wx, self.Wh, self.b, attn=attn, Wattn=self.Wattn)
        ### END SOLUTION
        return next_h, next_c


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
        if cell_type not in CELL_TYPES:
            raise ValueError(f"cell_type must be one of {CELL_TYPES}, got {cell_type!r}")
        self._check_vocabulary(word_to_idx)
        self.cell_type = cell_type
        self.word_to_idx = dict(word_to_idx)
        self.idx_to_word = {i: w for w, i in word_to_idx.items()}
        self.vocab_size = len(word_to_idx)
        self._null, self._start, self._end = (word_to_idx[t] for t in SPECIAL_TOKENS)
        if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
            raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
        self.ignore_index = ignore_index
        self.image_blind = bool(image_blind)
        self.wordvec_dim = check_int(wordvec_dim, "wordvec_dim", minimum=1)
        self.hidden_dim = check_int(hidden_dim, "hidden_dim", minimum=1)
        self.image_encoder = ImageEncoder(pretrained=image_encoder_pretrained)
        channels = self.image_encoder.out_channels
        if input_dim is not None and check_int(input_dim, "input_dim", minimum=1) != channels:
            raise ValueError(f"input_dim must equal the image encoder's out_channels = {channels} "
                             f"(pretrained={image_encoder_pretrained}), got {input_dim}; or pass None")
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

    @staticmethod
    def _check_vocabulary(word_to_idx) -> None:
        if not isinstance(word_to_idx, dict) or not word_to_idx:
            raise TypeError(f"word_to_idx must be a non-empty dict word -> id, got {type(word_to_idx).__name__}")
        missing = [t for t in SPECIAL_TOKENS if t not in word_to_idx]
        if missing:
            raise ValueError(f"word_to_idx must hold the special tokens {SPECIAL_TOKENS}; missing {missing}")
        ids = sorted(word_to_idx.values())
        if ids != list(range(len(ids))):
            raise ValueError(f"word_to_idx's ids must be 0 .. {len(ids) - 1}, each once")

    # ----------------------------------------------------------------- pieces

    def _check_inputs(self, images, captions=None) -> None:
        _float_images(images)
        if captions is not None:
            sizes = {"N": images.shape[0]}
            _expect(captions, "captions", ("N", "T+1"), sizes, kind="int")
            if captions.shape[1] < 2:
                raise ValueError(f"captions must have shape (N, T+1) with T+1 >= 2 (<START> and one word to "
                                 f"predict), got {_shape(captions)}")
            _check_tokens(captions, self.vocab_size, "captions")

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """``images (N, 3, H, W)`` -> encoder features ``(N, input_dim, Dh, Dw)`` (zeros when image-blind)."""
        if self.image_blind:
            _float_images(images)
            dh, dw = ImageEncoder.grid_size(images.shape[2], images.shape[3])
            weight = self.output_projection.weight
            return weight.new_zeros(images.shape[0], self.input_dim, dh, dw)
        return self.image_encoder(images)

    def initial_state(self, features: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(N, C, Dh, Dw)`` -> ``h0 (N, H)`` (rnn, lstm) or ``A (N, H, Dh, Dw)`` (attn)."""
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

        Args:
            images: ``(N, 3, H, W)``.
            captions_in: ``(N, T)`` the words read, starting with ``<START>``.

        Returns:
            ``(N, T, V)``: at step ``t``, the score of every word as ``captions_in[:, t + 1]``.
        """
        self._check_inputs(images)
        _expect(captions_in, "captions_in", (images.shape[0], "T"), {}, kind="int")
        _check_tokens(captions_in, self.vocab_size, "captions_in")
        out = None
        ### BEGIN SOLUTION
        state = self.initial_state(self.image_features(images))
        hidden = self.backbone(self.embedding(captions_in), state)
        out = self.output_projection(hidden)
        ### END SOLUTION
        return out

    def forward(self, images: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        """Training loss of a batch.

        Args:
            images: ``(N, 3, H, W)`` floats in [0, 1] (or uint8).
            captions: ``(N, T + 1)`` integer ids ``<START> w1 ... <END> <NULL> ...``.

        Returns:
            scalar: :func:`temporal_softmax_loss` of predicting ``captions[:, 1:]`` from
            ``captions[:, :-1]`` (teacher forcing), ``ignore_index`` positions skipped.
        """
        self._check_inputs(images, captions)
        loss = None
        ### BEGIN SOLUTION
        scores = self.scores(images, captions[:, :-1])
        loss = temporal_softmax_loss(scores, captions[:, 1:], ignore_index=self.ignore_index)
        ### END SOLUTION
        return loss

    def sample(self, images: torch.Tensor, max_length: int = 16):
        """Greedy decoding: start from ``<START>``, feed back the most likely word each step.

        Once a caption has produced ``<END>``, its remaining places are ``<NULL>`` (and, for
        ``"attn"``, their attention weights 0).  Runs in the model's current mode: call
        ``model.eval()`` first (or use :func:`caption_images`).

        Args:
            images: ``(N, 3, H, W)``.
            max_length: ``T``, number of words generated (the ``<END>`` counts as one).

        Returns:
            captions: ``(N, T)`` int64 word ids (``<START>`` not included); for ``cell_type="attn"``
            a pair ``(captions, attn_weights)`` with ``attn_weights (N, T, Dh, Dw)``.
        """
        self._check_inputs(images)
        check_int(max_length, "max_length", minimum=1)
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
            h, c = state, torch.zeros_like(state)
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


# --------------------------------------------------------------------------- glue for training and evaluation


def caption_loss_fn(model: CaptioningRNN, batch) -> torch.Tensor:
    """``loss_fn`` for :func:`helpers.train.train`: ``batch = (images, captions)`` -> ``model(images, captions)``."""
    images, captions = batch
    return model(images, captions)


def caption_images(model: CaptioningRNN, images: torch.Tensor, max_length: int = 16, batch_size: int = 256):
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
    if not isinstance(model, CaptioningRNN):
        raise TypeError(f"model must be a CaptioningRNN, got {type(model).__name__}")
    _float_images(images[:1] if isinstance(images, torch.Tensor) else images)
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
