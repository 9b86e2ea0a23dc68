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

