"""Captions as tokens: tokenising, vocabularies, encoding, decoding and BLEU-4.

Every vocabulary starts with the four special tokens of the course, always at
the same ids::

    <NULL> = 0  padding after the end of a caption (ignored by the loss)
    <START> = 1 first token of every encoded caption
    <END> = 2   after the last word
    <UNK> = 3   a word outside the vocabulary

then the words, most frequent first (ties in alphabetical order), so a
vocabulary built from the same texts is always the same.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import torch

__all__ = [
    "END",
    "NULL",
    "SPECIAL_TOKENS",
    "START",
    "UNK",
    "bleu4",
    "build_vocabulary",
    "decode_captions",
    "encode_captions",
    "idx_to_word_list",
    "tokenize",
]

SPECIAL_TOKENS = ("<NULL>", "<START>", "<END>", "<UNK>")
NULL, START, END, UNK = range(4)

_JOINERS = re.compile(r"['\u2019`-]")      # "t-shirt" -> "tshirt", "man's" -> "mans"
_NOT_WORD = re.compile(r"[^0-9a-z]+")      # every other punctuation mark separates words


def tokenize(text: str) -> list[str]:
    """Lower-case words of ``text``: apostrophes and hyphens are removed, other punctuation splits.

    ``"A T-shirt, left of the man's bag." -> ["a", "tshirt", "left", "of", "the", "mans", "bag"]``
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = _JOINERS.sub("", text.lower())
    return _NOT_WORD.sub(" ", text).split()


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Iterable):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}")
    return texts


def build_vocabulary(texts: Iterable[str], min_count: int = 1) -> dict[str, int]:
    """``word -> index`` for the words of ``texts`` seen at least ``min_count`` times.

    Indices 0-3 are :data:`SPECIAL_TOKENS`; the words follow by decreasing count,
    ties in alphabetical order.
    """
    texts = _check_texts(texts)
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be an int >= 1, got {min_count!r}")
    counts = Counter(word for text in texts for word in tokenize(text))
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return {token: i for i, token in enumerate(list(SPECIAL_TOKENS) + words)}


def _check_vocabulary(word_to_idx: Mapping[str, int]) -> None:
    if not isinstance(word_to_idx, Mapping):
        raise TypeError(f"word_to_idx must be a dict word -> index, got {type(word_to_idx).__name__}")
    for i, token in enumerate(SPECIAL_TOKENS):
        if word_to_idx.get(token) != i:
            raise ValueError(f"word_to_idx must map {token!r} to {i} (build it with build_vocabulary), "
                             f"got {word_to_idx.get(token)!r}")


def idx_to_word_list(word_to_idx: Mapping[str, int]) -> list[str]:
    """The inverse of a vocabulary: ``idx_to_word[i]`` is the word of index ``i``."""
    _check_vocabulary(word_to_idx)
    idx_to_word = [None] * len(word_to_idx)
    for word, i in word_to_idx.items():
        if not 0 <= i < len(idx_to_word) or idx_to_word[i] is not None:
            raise ValueError(f"word_to_idx must use the indices 0..{len(word_to_idx) - 1} once each; "
                             f"{word!r} has {i}")
        idx_to_word[i] = word
    return idx_to_word


def encode_captions(texts: Sequence[str], word_to_idx: Mapping[str, int], max_length: int) -> torch.Tensor:
    """Captions as rows of token ids: ``<START> w1 .. wk <END> <NULL> ...``.

    Args:
        texts: ``M`` captions (tokenised with :func:`tokenize`).
        word_to_idx: a vocabulary from :func:`build_vocabulary`; unknown words become ``<UNK>``.
        max_length: longest caption kept, in words; longer ones are cut after ``max_length`` words.

    Returns:
        int64 ``(M, max_length + 2)``.
    """
    texts = _check_texts(texts)
    _check_vocabulary(word_to_idx)
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be an int >= 1, got {max_length!r}")
    width = max_length + 2
    rows = []
    for text in texts:
        ids = [START] + [word_to_idx.get(word, UNK) for word in tokenize(text)[:max_length]] + [END]
        rows.append(ids + [NULL] * (width - len(ids)))
    return torch.tensor(rows, dtype=torch.int64).reshape(len(texts), width)


def decode_captions(tokens, idx_to_word: Sequence[str]):
    """Token ids back to text, stopping at ``<END>`` and dropping ``<NULL>`` / ``<START>``.

    Args:
        tokens: ints ``(M, T)`` or ``(T,)`` (tensor, array or nested lists).
        idx_to_word: list ``index -> word`` (see :func:`idx_to_word_list`).

    Returns:
        ``M`` strings for ``(M, T)`` input, one string for ``(T,)``.
    """
    tokens = torch.as_tensor(tokens)   # device: a tensor keeps its own
    if tokens.ndim not in (1, 2) or tokens.is_floating_point() or tokens.is_complex():
        raise ValueError(f"tokens must be integer ids of shape (M, T) or (T,), got {tokens.dtype} "
                         f"{tuple(tokens.shape)}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= len(idx_to_word)):
        raise ValueError(f"token ids must lie in [0, {len(idx_to_word) - 1}] (the vocabulary), got "
                         f"[{int(tokens.min())}, {int(tokens.max())}]")
    rows = tokens.reshape(-1, tokens.shape[-1]).tolist()
    texts = []
    for row in rows:
        words = []
        for idx in row:
            if idx == END:
                break
            if idx not in (NULL, START):
                words.append(idx_to_word[idx])
        texts.append(" ".join(words))
    return texts[0] if tokens.ndim == 1 else texts


def bleu4(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 (uniform weights, no smoothing) of generated captions, computed by nltk.

    Args:
        hypotheses: ``M`` generated captions.
        references: ``M`` lists of reference captions (one or more per hypothesis).

    Returns:
        a float in ``[0, 1]`` (1: every hypothesis equals one of its references).
    """
    from nltk.translate.bleu_score import corpus_bleu

    hypotheses = _check_texts(hypotheses)
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError(f"references must be a list of lists of strings, got {type(references).__name__}")
    if len(hypotheses) == 0 or len(references) != len(hypotheses):
        raise ValueError(f"need one list of references per hypothesis and at least one hypothesis, "
                         f"got {len(hypotheses)} hypotheses and {len(references)} reference lists")
    refs = []
    for i, group in enumerate(references):
        group = _check_texts(group)
        if not group:
            raise ValueError(f"references[{i}] is empty; every hypothesis needs at least one reference")
        refs.append([tokenize(text) for text in group])
    hyps = [tokenize(text) for text in hypotheses]
    with warnings.catch_warnings():  # nltk warns when some n-gram order has no match; the score is then 0
        warnings.simplefilter("ignore")
        return float(corpus_bleu(refs, hyps))
