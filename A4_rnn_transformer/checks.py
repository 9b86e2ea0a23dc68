"""Input checks of A4's two modules (given code: the student does not write these).

Each solution function of ``rnn_lstm_captioning.py`` and ``transformer.py`` calls one of the
public functions below in one line before its solution region, so that a wrong argument
fails at once with a message naming what was expected and what to do -- rather than deep
inside a matrix product.  The checks only read their arguments: no random numbers, no change
to any tensor.

Shapes are written with letters shared between arguments (``"N"``, ``"H"``...): a letter met
first learns its size from that argument, every later argument must agree with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from helpers.checks import check_int

#: Tokens every caption vocabulary must hold (``helpers.text`` gives them ids 0, 1, 2, 3).
SPECIAL_TOKENS = ("<NULL>", "<START>", "<END>")
#: The recurrent cells ``CaptioningRNN`` knows.
CELL_TYPES = ("rnn", "lstm", "attn")


# --------------------------------------------------------------------------- general tensors


def shape_of(x) -> str:
    """``(2, 3)`` for a tensor, the type's name otherwise (for messages)."""
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def describe(dims: tuple, sizes: dict) -> str:
    """``("N", "D")`` and ``{"D": 5}`` -> ``"(N, D) with D=5"``."""
    text = "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"
    known = [f"{d}={sizes[d]}" for d in dict.fromkeys(dims) if isinstance(d, str) and d in sizes]
    return text + (" with " + ", ".join(known) if known else "")


def expect(t, name: str, dims: tuple, sizes: dict, kind: str = "float") -> None:
    """Check ``t``'s type and shape against ``dims``; learn the sizes of new letters into ``sizes``.

    ``dims`` holds letters (a size shared between arguments, e.g. ``"N"``) or ints. A letter
    already in ``sizes`` must match it; otherwise it is learnt from ``t``.  ``kind`` is
    ``"float"`` (a floating tensor) or ``"int"`` (an integer tensor).
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {describe(dims, sizes)}, got {type(t).__name__}")
    if kind == "float" and not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape {describe(dims, sizes)}, got {t.dtype}; "
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
        raise ValueError(f"{name} must have shape {describe(dims, sizes)}, got {shape_of(t)}")
    sizes.update(learnt)


def same_dtype(**tensors) -> None:
    """All floating arguments must share one dtype (float32 with float64 would fail deep in a matmul)."""
    dtypes = {name: t.dtype for name, t in tensors.items()}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{name} {str(dtype).replace('torch.', '')}" for name, dtype in dtypes.items())
        raise TypeError(f"all tensors must have one dtype, got {listed}")


def token_ids(tokens, vocab_size: int, name: str, ignore_index: int | None = None) -> None:
    """Integer ids must lie in ``[0, vocab_size)`` (``ignore_index`` positions excepted)."""
    if tokens.numel() == 0:
        return
    ids = tokens if ignore_index is None else tokens[tokens != ignore_index]
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"{name} must hold token ids in [0, {vocab_size}) (the vocabulary's size is {vocab_size}), "
                         f"got ids from {int(ids.min())} to {int(ids.max())}")


def optional_index(value, name: str = "ignore_index") -> int | None:
    """An int or None (``True`` is refused: it is no index)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{name} must be an int or None, got {value!r}")
    return value


def _weights(sizes: dict, **tensors) -> None:
    """Expect ``name=(tensor, dims)`` pairs in order, then one dtype for all of them."""
    for name, (t, dims) in tensors.items():
        expect(t, name, dims, sizes)
    same_dtype(**{name: t for name, (t, _) in tensors.items()})


# --------------------------------------------------------------------------- rnn_lstm_captioning


def rnn_step_inputs(x, prev_h, Wx, Wh, b) -> None:
    """``x (N, D)``, ``prev_h (N, H)``, ``Wx (D, H)``, ``Wh (H, H)``, ``b (H,)``, one dtype."""
    _weights({}, x=(x, ("N", "D")), prev_h=(prev_h, ("N", "H")), Wx=(Wx, ("D", "H")), Wh=(Wh, ("H", "H")),
             b=(b, ("H",)))


def rnn_inputs(x, h0, Wx, Wh, b) -> None:
    """``x (N, T, D)``, ``h0 (N, H)``, ``Wx (D, H)``, ``Wh (H, H)``, ``b (H,)``, one dtype."""
    _weights({}, x=(x, ("N", "T", "D")), h0=(h0, ("N", "H")), Wx=(Wx, ("D", "H")), Wh=(Wh, ("H", "H")),
             b=(b, ("H",)))


def upstream_gradient(grad, name: str, cache) -> None:
    """``grad`` must be a floating tensor shaped like the output its cache ends with.

    The course's caches end with the forward output (``next_h`` / ``h``); a cache laid out
    otherwise (a student's own) only gets the type checked.
    """
    last = cache[-1] if isinstance(cache, (tuple, list)) and cache else None
    if isinstance(last, torch.Tensor):
        expect(grad, name, tuple(last.shape), {})
    elif not isinstance(grad, torch.Tensor) or not grad.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor, got {shape_of(grad)}")


def word_ids(x, vocab_size: int) -> None:
    """``x``: an integer tensor of any shape holding ids in ``[0, vocab_size)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of integer word ids, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"x must hold integer word ids (torch.int64), got {x.dtype}")
    token_ids(x, vocab_size, "x")


def softmax_loss_inputs(x, y, ignore_index) -> None:
    """Scores ``x (N, T, V)``, integer targets ``y (N, T)`` in ``[0, V)`` except ``ignore_index``."""
    sizes = {}
    expect(x, "x", ("N", "T", "V"), sizes)
    expect(y, "y", ("N", "T"), sizes, kind="int")
    optional_index(ignore_index)
    token_ids(y, sizes["V"], "y", ignore_index)


def lstm_step_inputs(x, prev_h, prev_c, Wx, Wh, b, attn=None, Wattn=None) -> None:
    """``x (N, D)``, ``prev_h``, ``prev_c (N, H)``, ``Wx (D, 4H)``, ``Wh (H, 4H)``, ``b (4H,)``;
    with attention also ``attn (N, H)`` and ``Wattn (H, 4H)``."""
    sizes = {}
    expect(x, "x", ("N", "D"), sizes)
    expect(prev_h, "prev_h", ("N", "H"), sizes)
    expect(prev_c, "prev_c", ("N", "H"), sizes)
    sizes["4H"] = 4 * sizes["H"]
    expect(Wx, "Wx", ("D", "4H"), sizes)
    expect(Wh, "Wh", ("H", "4H"), sizes)
    expect(b, "b", ("4H",), sizes)
    if attn is not None or Wattn is not None:
        expect(attn, "attn", ("N", "H"), sizes)
        expect(Wattn, "Wattn", ("H", "4H"), sizes)


def lstm_inputs(x, h0) -> None:
    """``x (N, T, D)`` and ``h0 (N, H)``."""
    sizes = {}
    expect(x, "x", ("N", "T", "D"), sizes)
    expect(h0, "h0", ("N", "H"), sizes)


def attention_inputs(prev_h, A) -> None:
    """``prev_h (N, H)`` and a grid ``A (N, H, Dh, Dw)`` of one dtype."""
    _weights({}, prev_h=(prev_h, ("N", "H")), A=(A, ("N", "H", "Dh", "Dw")))


def attention_lstm_inputs(x, A) -> None:
    """``x (N, T, D)`` and ``A (N, H, Dh, Dw)``."""
    sizes = {}
    expect(x, "x", ("N", "T", "D"), sizes)
    expect(A, "A", ("N", "H", "Dh", "Dw"), sizes)


def vocabulary(word_to_idx) -> None:
    """A non-empty dict word -> id, ids ``0 .. V-1`` each once, holding :data:`SPECIAL_TOKENS`."""
    if not isinstance(word_to_idx, dict) or not word_to_idx:
        raise TypeError(f"word_to_idx must be a non-empty dict word -> id, got {type(word_to_idx).__name__}")
    missing = [t for t in SPECIAL_TOKENS if t not in word_to_idx]
    if missing:
        raise ValueError(f"word_to_idx must hold the special tokens {SPECIAL_TOKENS}; missing {missing}")
    ids = sorted(word_to_idx.values())
    if ids != list(range(len(ids))):
        raise ValueError(f"word_to_idx's ids must be 0 .. {len(ids) - 1}, each once")


def captioning_args(word_to_idx, cell_type, ignore_index, wordvec_dim, hidden_dim) -> None:
    """The arguments of ``CaptioningRNN`` that do not depend on the image encoder."""
    if cell_type not in CELL_TYPES:
        raise ValueError(f"cell_type must be one of {CELL_TYPES}, got {cell_type!r}")
    vocabulary(word_to_idx)
    optional_index(ignore_index)
    check_int(wordvec_dim, "wordvec_dim", minimum=1)
    check_int(hidden_dim, "hidden_dim", minimum=1)


def encoder_channels(input_dim, channels: int, pretrained: bool) -> int:
    """``input_dim`` must be None or the encoder's ``channels``; returns ``channels``."""
    if input_dim is not None and check_int(input_dim, "input_dim", minimum=1) != channels:
        raise ValueError(f"input_dim must equal the image encoder's out_channels = {channels} "
                         f"(pretrained={pretrained}), got {input_dim}; or pass None")
    return channels


def float_images(images, name: str = "images") -> torch.Tensor:
    """Check ``(N, 3, H, W)`` images (uint8 in [0, 255] or float in [0, 1]); return them as floats in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, 3, H, W), got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[2] < 1 or images.shape[3] < 1:
        raise ValueError(f"{name} must have shape (N, 3, H, W) (RGB), got {shape_of(images)}")
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


def caption_inputs(images, captions, vocab_size: int) -> None:
    """Images ``(N, 3, H, W)`` and, unless None, integer captions ``(N, T+1)`` with ``T+1 >= 2``."""
    float_images(images)
    if captions is None:
        return
    expect(captions, "captions", ("N", "T+1"), {"N": images.shape[0]}, kind="int")
    if captions.shape[1] < 2:
        raise ValueError(f"captions must have shape (N, T+1) with T+1 >= 2 (<START> and one word to "
                         f"predict), got {shape_of(captions)}")
    token_ids(captions, vocab_size, "captions")


def words_read(images, captions_in, vocab_size: int) -> None:
    """Images and the words a model reads, ``captions_in (N, T)``."""
    float_images(images)
    expect(captions_in, "captions_in", (images.shape[0], "T"), {}, kind="int")
    token_ids(captions_in, vocab_size, "captions_in")


def sample_inputs(images, max_length) -> None:
    """Images and a word count ``max_length >= 1``."""
    float_images(images)
    check_int(max_length, "max_length", minimum=1)


# --------------------------------------------------------------------------- shared with A4's given code


def is_instance(value, kind: type, name: str) -> None:
    """``value`` must be a ``kind``."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")



# --------------------------------------------------------------------------- transformer


def probability(name: str, value) -> float:
    """A number in ``[0, 1)`` (a dropout rate, a smoothing), returned as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value}")
    return float(value)


def float_tensor(x, name: str, dims: int, hint: str) -> None:
    """``x`` must be a floating tensor with ``dims`` dimensions (``hint`` names the expected shape)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {hint}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape {hint}, got {x.dtype}")
    if x.dim() != dims:
        raise ValueError(f"{name} must have shape {hint}, got {tuple(x.shape)}")


def token_tensor(x, name: str, hint: str = "(N, K)", vocab_len: int | None = None) -> None:
    """``x`` must be an integer tensor of token ids of shape ``hint``, ids in ``[0, vocab_len)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, shape {hint}, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids (int64), got {x.dtype}")
    if x.dim() != hint.count(",") + 1:
        raise ValueError(f"{name} must have shape {hint}, got {tuple(x.shape)}")
    if vocab_len is not None and x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab_len):
        raise ValueError(f"{name} must hold token ids in [0, {vocab_len}) (vocab_len={vocab_len}), "
                         f"got values from {int(x.min())} to {int(x.max())}")


def vocab_list(vocab) -> None:
    """A list of unique non-empty token strings."""
    if isinstance(vocab, str) or not isinstance(vocab, Sequence):
        raise TypeError(f"vocab must be a list of token strings, got {type(vocab).__name__}")
    if not all(isinstance(token, str) and token for token in vocab):
        raise TypeError("vocab must hold non-empty strings")
    repeated = sorted({token for token in vocab if list(vocab).count(token) > 1})
    if repeated:
        raise ValueError(f"vocab must not repeat a token, got {repeated} more than once")


def text_to_tokens(input_str, token_dict: dict, spc_tokens: Sequence[str]) -> None:
    """Every word of ``input_str`` is a special token or a number whose digits ``token_dict`` knows."""
    if not isinstance(input_str, str):
        raise TypeError(f"input_str must be a string of space-separated tokens, got {type(input_str).__name__}")
    special = set(spc_tokens)
    for word in input_str.split():
        if word not in special and not (word.isascii() and word.isdigit()):
            raise ValueError(f"unknown token {word!r} in {input_str!r}: it is neither a special token "
                             f"({', '.join(spc_tokens)}) nor a number")
        pieces = [word] if word in special else list(word)
        missing = [piece for piece in pieces if piece not in token_dict]
        if missing:
            raise ValueError(f"unknown token {missing[0]!r} in {input_str!r}: it is not in token_dict")


def qkv(query, key, value, batched: bool) -> None:
    """Shapes of attention inputs: query ``(N, K, M)``, key ``(N, K', M)``, value ``(N, K', M_v)``."""
    lead, n = ("N, ", 1) if batched else ("", 0)
    float_tensor(query, "query", 2 + n, f"({lead}K, M)")
    float_tensor(key, "key", 2 + n, f"({lead}K', M)")
    float_tensor(value, "value", 2 + n, f"({lead}K', M_v)")
    q, k, v = tuple(query.shape), tuple(key.shape), tuple(value.shape)
    if batched and not q[0] == k[0] == v[0]:
        raise ValueError(f"query, key and value must share the batch size N, got {q}, {k} and {v}")
    if k[-1] != q[-1]:
        raise ValueError(f"key must have the query's last dimension M={q[-1]}: query {q}, key {k}")
    if v[-2] != k[-2]:
        raise ValueError(f"value must have one row per key (K'={k[-2]}): key {k}, value {v}")


def attention_mask(mask, shape: tuple) -> None:
    """``mask`` must be None or a bool tensor broadcastable to ``shape`` = ``(N, K, K')``; True = hidden."""
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        kind = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a bool tensor of shape {shape} (True = hidden position), got {kind}")
    try:
        fits = mask.dim() == len(shape) and torch.broadcast_shapes(tuple(mask.shape), shape) == shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"mask must have shape {shape} (N, K, K'), got {tuple(mask.shape)}")


def masked_qkv(query, key, value, mask) -> None:
    """:func:`qkv` (batched) and :func:`attention_mask` of the shape ``(N, K, K')`` they give."""
    qkv(query, key, value, batched=True)
    attention_mask(mask, (query.shape[0], query.shape[1], key.shape[1]))


def sequence(x, name: str, emb_dim: int) -> None:
    """``x``: a float ``(N, K, emb_dim)`` tensor."""
    float_tensor(x, name, 3, f"(N, K, {emb_dim})")
    if x.shape[-1] != emb_dim:
        raise ValueError(f"{name} must have shape (N, K, {emb_dim}) (emb_dim={emb_dim}), got {tuple(x.shape)}")


def projected_qkv(query, key, value, dim_in: int) -> None:
    """Inputs of ``SelfAttention.forward``: query ``(N, K, dim_in)``, key and value ``(N, K', dim_in)``."""
    for name, x in (("query", query), ("key", key), ("value", value)):
        sequence(x, name, dim_in)
    if key.shape[:2] != value.shape[:2] or query.shape[0] != key.shape[0]:
        raise ValueError(f"query (N, K, M), key and value (N, K', M) must share N, and key and value K': "
                         f"got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")


def sizes(**values) -> None:
    """Every keyword is a size: an int >= 1."""
    for name, value in values.items():
        check_int(value, name, minimum=1)


def heads(num_heads, emb_dim) -> None:
    """Two ints >= 1, ``num_heads`` dividing ``emb_dim``."""
    check_int(num_heads, "num_heads", minimum=1)
    check_int(emb_dim, "emb_dim", minimum=1)
    if emb_dim % num_heads:
        raise ValueError(f"num_heads must divide emb_dim: each of the {num_heads} heads gets emb_dim / num_heads "
                         f"dimensions, and {emb_dim} / {num_heads} is not a whole number")


def block_args(num_heads, emb_dim, feedforward_dim, dropout) -> None:
    """The arguments of an encoder or decoder block."""
    heads(num_heads, emb_dim)
    check_int(feedforward_dim, "feedforward_dim", minimum=1)
    probability("dropout", dropout)


def epsilon(value) -> float:
    """A number >= 0, returned as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"epsilon must be a number >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"epsilon must be >= 0, got {value}")
    return float(value)


def features(x, emb_dim: int) -> None:
    """``x``: a float tensor ``(..., emb_dim)``."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor of shape (..., {emb_dim})")
    if x.dim() == 0 or x.shape[-1] != emb_dim:
        raise ValueError(f"x must have shape (..., {emb_dim}) (emb_dim={emb_dim}), got {tuple(x.shape)}")


def token_batch(seq) -> None:
    """``seq``: a tensor of shape ``(N, K)`` (only its shape matters)."""
    if not isinstance(seq, torch.Tensor) or seq.dim() != 2:
        raise ValueError(f"seq must be a tensor of shape (N, K), got {shape_of(seq)}")


def decoder_inputs(dec_inp, enc_inp, emb_dim: int) -> None:
    """``dec_inp (N, K_out, M)`` and ``enc_inp (N, K_in, M)`` with one ``N``."""
    sequence(dec_inp, "dec_inp", emb_dim)
    sequence(enc_inp, "enc_inp", emb_dim)
    if dec_inp.shape[0] != enc_inp.shape[0]:
        raise ValueError(f"dec_inp and enc_inp must share the batch size N, got {tuple(dec_inp.shape)} "
                         f"and {tuple(enc_inp.shape)}")


def tokens_with_positions(tokens, positions, name: str, emb_dim: int, vocab_len: int, min_length: int = 0) -> None:
    """``tokens (N, K)`` ids and their position codes ``(N, K, M)`` or ``(1, K, M)``; ``K >= min_length``."""
    token_tensor(tokens, name, "(N, K)", vocab_len)
    pos_name = name.split("_")[0] + "_pos"
    sequence(positions, pos_name, emb_dim)
    num, length = tokens.shape
    if positions.shape[0] not in (1, num) or positions.shape[1] != length:
        raise ValueError(f"{pos_name} must have shape ({num}, {length}, {emb_dim}) or (1, {length}, "
                         f"{emb_dim}) to match {name} {tuple(tokens.shape)}, got {tuple(positions.shape)}")
    if length < min_length:
        raise ValueError(f"{name} must hold at least {min_length} tokens (BOS and one to predict), "
                         f"got {tuple(tokens.shape)}")


def prediction(pred, ground, ignore_index, reduction) -> torch.Tensor:
    """Check ``pred (T, V)`` and ``ground`` (``T`` ids, any shape); return ground as ``(T,)``."""
    float_tensor(pred, "pred", 2, "(T, V)")
    if not isinstance(ground, torch.Tensor) or ground.is_floating_point() or ground.dtype == torch.bool:
        raise TypeError("ground must be an integer tensor of token ids, shape (N, K) or (T,)")
    if ground.numel() != pred.shape[0]:
        raise ValueError(f"ground must hold one id per row of pred: pred {tuple(pred.shape)} has {pred.shape[0]} "
                         f"rows, ground {tuple(ground.shape)} {ground.numel()} ids")
    flat = ground.reshape(-1)
    kept = flat if ignore_index is None else flat[flat != ignore_index]
    if kept.numel() and (int(kept.min()) < 0 or int(kept.max()) >= pred.shape[1]):
        raise ValueError(f"ground must hold ids in [0, {pred.shape[1]}) (V={pred.shape[1]}), got values from "
                         f"{int(kept.min())} to {int(kept.max())}")
    if reduction not in ("sum", "mean", "none"):
        raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")
    return flat


def smoothed_prediction(pred, ground, smoothing, ignore_index, reduction) -> torch.Tensor:
    """:func:`prediction`, plus ``smoothing`` in ``[0, 1)`` and at least two tokens; returns ground ``(T,)``."""
    flat = prediction(pred, ground, ignore_index, reduction)
    probability("smoothing", smoothing)
    if pred.shape[1] < 2:
        raise ValueError(f"label smoothing needs at least 2 tokens (V >= 2), got pred {tuple(pred.shape)}")
    return flat


def decoding_args(model, kind: type, token_dict, max_len) -> None:
    """A ``kind`` model, ``max_len >= 2`` and a ``token_dict`` holding BOS, EOS and PAD."""
    is_instance(model, kind, "model")
    check_int(max_len, "max_len", minimum=2)
    missing = [token for token in ("BOS", "EOS", "PAD") if token not in token_dict]
    if missing:
        raise ValueError(f"token_dict must contain BOS, EOS and PAD, missing {missing}")


def warmup_args(warmup_steps, total_steps, decay, final_factor) -> float:
    """The arguments of ``warmup_scheduler``; returns ``final_factor`` as a float."""
    check_int(warmup_steps, "warmup_steps", minimum=1)
    if decay not in ("cosine", "inverse_sqrt", "constant"):
        raise ValueError(f"decay must be 'cosine', 'inverse_sqrt' or 'constant', got {decay!r}")
    if decay == "cosine":
        if total_steps is None or check_int(total_steps, "total_steps", minimum=1) <= warmup_steps:
            raise ValueError(f"decay='cosine' needs total_steps > warmup_steps={warmup_steps}, got {total_steps}")
    return probability("final_factor", final_factor)
