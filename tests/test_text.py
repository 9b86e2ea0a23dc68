"""Tests for helpers.text: tokens, vocabularies, encoding / decoding and BLEU-4."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from nltk.translate.bleu_score import corpus_bleu

import helpers.text as text

CAPTIONS = [
    "A man riding a bike.",
    "a man, on a BIKE!",
    "Two dogs play in the park",
    "A T-shirt left of the man's bag",
]


def test_tokenize():
    assert text.tokenize("A man riding a bike.") == ["a", "man", "riding", "a", "bike"]
    assert text.tokenize("A T-shirt, left of the man's bag.") == ["a", "tshirt", "left", "of", "the", "mans", "bag"]
    assert text.tokenize("grey/white   cat\n") == ["grey", "white", "cat"]
    assert text.tokenize("") == []
    assert text.tokenize("?!") == []
    with pytest.raises(TypeError, match="str"):
        text.tokenize(["a", "b"])


def test_build_vocabulary_order_and_min_count():
    vocab = text.build_vocabulary(CAPTIONS)
    assert list(vocab)[:4] == ["<NULL>", "<START>", "<END>", "<UNK>"]
    assert [vocab[t] for t in text.SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert sorted(vocab.values()) == list(range(len(vocab)))
    counts = Counter(w for c in CAPTIONS for w in text.tokenize(c))
    words = list(vocab)[4:]
    assert set(words) == set(counts)
    keys = [(-counts[w], w) for w in words]
    assert keys == sorted(keys)  # by count, then a-z
    assert words[:4] == ["a", "bike", "man", "the"]  # 5, then 2 each in a-z order
    frequent = text.build_vocabulary(CAPTIONS, min_count=2)
    assert list(frequent)[4:] == [w for w in words if counts[w] >= 2]
    # same texts -> same vocabulary, whatever their order
    assert text.build_vocabulary(CAPTIONS[::-1]) == vocab


@pytest.mark.parametrize("kwargs, error, message", [
    ({"texts": "a man"}, TypeError, "list of strings"),
    ({"texts": ["a", 3]}, TypeError, r"texts\[1\]"),
    ({"texts": ["a"], "min_count": 0}, ValueError, "min_count"),
    ({"texts": ["a"], "min_count": 1.0}, ValueError, "min_count"),
])
def test_build_vocabulary_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        text.build_vocabulary(**kwargs)


def test_encode_decode_round_trip():
    vocab = text.build_vocabulary(CAPTIONS, min_count=2)
    idx_to_word = text.idx_to_word_list(vocab)
    assert [idx_to_word[i] for i in range(len(vocab))] == list(vocab)
    encoded = text.encode_captions(CAPTIONS, vocab, max_length=6)
    assert encoded.dtype == torch.int64 and encoded.shape == (4, 8)
    row = encoded[0].tolist()  # "a man riding a bike": riding is rare -> <UNK>
    assert row == [1, vocab["a"], vocab["man"], 3, vocab["a"], vocab["bike"], 2, 0]
    long_row = encoded[3].tolist()  # 7 words cut to 6, then <END>
    assert long_row[0] == 1 and long_row[7] == 2 and 0 not in long_row
    decoded = text.decode_captions(encoded, idx_to_word)
    assert decoded[0] == "a man <UNK> a bike"
    assert decoded[1] == "a man <UNK> a bike"
    assert len(decoded[3].split()) == 6
    # one sequence -> one string; numpy and lists work too; decoding stops at the first <END>
    assert text.decode_captions(encoded[1], idx_to_word) == decoded[1]
    assert text.decode_captions(encoded.numpy(), idx_to_word) == decoded
    assert text.decode_captions([1, vocab["man"], 2, vocab["a"]], idx_to_word) == "man"
    full = text.build_vocabulary(CAPTIONS)
    exact = text.decode_captions(text.encode_captions(CAPTIONS, full, 16), text.idx_to_word_list(full))
    assert exact == [" ".join(text.tokenize(c)) for c in CAPTIONS]


def test_encode_empty_caption_and_no_caption():
    vocab = text.build_vocabulary(CAPTIONS)
    assert text.encode_captions([""], vocab, 3).tolist() == [[1, 2, 0, 0, 0]]
    assert text.encode_captions([], vocab, 3).shape == (0, 5)


def test_bad_vocabulary_and_tokens():
    vocab = text.build_vocabulary(CAPTIONS)
    broken = dict(vocab)
    broken["<END>"], broken["a"] = broken["a"], broken["<END>"]
    with pytest.raises(ValueError, match="'<END>' to 2"):
        text.encode_captions(CAPTIONS, broken, 5)
    with pytest.raises(ValueError, match="max_length"):
        text.encode_captions(CAPTIONS, vocab, 0)
    idx_to_word = text.idx_to_word_list(vocab)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, "):
        text.decode_captions(torch.tensor([1, len(vocab)]), idx_to_word)
    with pytest.raises(ValueError, match=r"\(M, T\) or \(T,\)"):
        text.decode_captions(torch.zeros(2, 3, 4, dtype=torch.long), idx_to_word)
    with pytest.raises(ValueError, match=r"\(M, T\) or \(T,\)"):
        text.decode_captions(torch.zeros(3), idx_to_word)
    duplicated = dict(vocab)
    duplicated["extra"] = 4
    with pytest.raises(ValueError, match="once each"):
        text.idx_to_word_list(duplicated)


def test_bleu4_hand_cases():
    refs = [["a small red bag left of a large blue boot"], ["a large green coat above a small red dress"]]
    hyps = [r[0] for r in refs]
    assert text.bleu4(hyps, refs) == pytest.approx(1.0)
    assert text.bleu4(["zebra giraffe kite", "cloud sky"], refs) == 0.0
    # case and punctuation do not matter: both sides are tokenised the same way
    assert text.bleu4([h.upper() + "." for h in hyps], refs) == pytest.approx(1.0)
    # matching one of several references is enough
    assert text.bleu4([hyps[0]], [["something else entirely here", hyps[0]]]) == pytest.approx(1.0)
    # a partial match lies strictly between 0 and 1
    partial = text.bleu4(["a small red bag left of a large green boot"], [refs[0]])
    assert 0.0 < partial < 1.0


def test_bleu4_matches_nltk_and_the_formula():
    rng = np.random.default_rng(0)
    words = "a the small large red blue bag boot coat left of above".split()
    refs = [[" ".join(rng.choice(words, size=rng.integers(5, 10))) for _ in range(2)] for _ in range(20)]
    hyps = []  # the first reference with one word changed and one word dropped
    for group in refs:
        hyp = group[0].split()
        hyp[rng.integers(len(hyp))] = str(rng.choice(words))
        del hyp[rng.integers(len(hyp))]
        hyps.append(" ".join(hyp))
    ours = text.bleu4(hyps, refs)
    direct = corpus_bleu([[r.split() for r in group] for group in refs], [h.split() for h in hyps])
    assert ours == pytest.approx(direct, abs=1e-12)
    assert 0.0 < ours < 1.0
    # the formula by hand for one sentence pair: geometric mean of clipped n-gram precisions x brevity penalty
    hyp = "the cat sat on the mat today".split()
    ref = "the cat sat on a mat".split()
    precisions = []
    for n in range(1, 5):
        h = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
        r = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
        precisions.append(sum(min(c, r[g]) for g, c in h.items()) / sum(h.values()))
    brevity = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
    expected = brevity * math.exp(sum(math.log(p) for p in precisions) / 4)
    assert text.bleu4([" ".join(hyp)], [[" ".join(ref)]]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("hyps, refs, error, message", [
    ([], [], ValueError, "at least one hypothesis"),
    (["a b"], [["a b"], ["c"]], ValueError, "one list of references per hypothesis"),
    (["a b"], [[]], ValueError, "needs at least one reference"),
    (["a b"], "a b", TypeError, "list of lists"),
    ("a b", [["a b"]], TypeError, "list of strings"),
])
def test_bleu4_bad_arguments(hyps, refs, error, message):
    with pytest.raises(error, match=message):
        text.bleu4(hyps, refs)
