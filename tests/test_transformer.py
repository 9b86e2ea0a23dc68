"""A4 Transformer: tokens, attention, the blocks, position codes, losses, decoding, training.

References: ``F.scaled_dot_product_attention`` (with and without a mask; its bool mask reads
True = may attend, the opposite of the course's), ``nn.MultiheadAttention``,
``nn.TransformerEncoderLayer`` and ``nn.TransformerDecoderLayer`` with copied weights (they
compute exactly the post-norm blocks of the module), ``F.layer_norm``, ``nn.Embedding``,
``F.cross_entropy`` (``ignore_index``, ``label_smoothing``).  Attention and layer norm are also
checked against numeric gradients in float64; the three dot-product versions against each
other; masks and position codes against values worked out by hand; tokenisation by a
round trip over every arithmetic problem; greedy decoding against teacher forcing on its own
output; a tiny Transformer learns a small set of problems by heart.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from student_autograd import backward_through, is_instance, parameter_grads, set_parameters, vjp
from torch import nn
from under_test import load, rule_mark, rules_of

from helpers.datasets.synthetic import ARITHMETIC_SPECIAL_TOKENS, ARITHMETIC_VOCAB, arithmetic_problems
from helpers.gradcheck import compute_numeric_gradient, rel_error

tr = load("A4_rnn_transformer.transformer")
AddSubDataset = tr.AddSubDataset
CrossEntropyLoss = tr.CrossEntropyLoss
Decoder = tr.Decoder
DecoderBlock = tr.DecoderBlock
Encoder = tr.Encoder
EncoderBlock = tr.EncoderBlock
FeedForwardBlock = tr.FeedForwardBlock
LabelSmoothingLoss = tr.LabelSmoothingLoss
LayerNormalization = tr.LayerNormalization
MultiHeadAttention = tr.MultiHeadAttention
SelfAttention = tr.SelfAttention
TokenEmbedding = tr.TokenEmbedding
Transformer = tr.Transformer
answer_accuracy = tr.answer_accuracy
attention_weights = tr.attention_weights
decode_tokens = tr.decode_tokens
generate_token_dict = tr.generate_token_dict
get_subsequent_mask = tr.get_subsequent_mask
greedy_decode = tr.greedy_decode
position_encoding_simple = tr.position_encoding_simple
position_encoding_sinusoid = tr.position_encoding_sinusoid
predict_answers = tr.predict_answers
prepocess_input_sequence = tr.prepocess_input_sequence
preprocess_input_sequence = tr.preprocess_input_sequence
scaled_dot_product_no_loop_batch = tr.scaled_dot_product_no_loop_batch
scaled_dot_product_two_loop_batch = tr.scaled_dot_product_two_loop_batch
scaled_dot_product_two_loop_single = tr.scaled_dot_product_two_loop_single
token_accuracy = tr.token_accuracy
train_transformer = tr.train_transformer
warmup_scheduler = tr.warmup_scheduler

# Score groups of `python -m course.grade` (README, "For teachers"): points are each group's total.
TOKENS = pytest.mark.grade("tokens", points=3)
DOT = pytest.mark.grade("scaled dot-product attention", points=6)
ATTENTION = pytest.mark.grade("SelfAttention and MultiHeadAttention", points=6)
NORM = pytest.mark.grade("LayerNormalization", points=4)
BLOCKS = pytest.mark.grade("feed-forward, encoder and decoder blocks, mask", points=8)
POSITIONS = pytest.mark.grade("position encodings", points=3)
MODEL = pytest.mark.grade("Transformer", points=6)
LOSSES = pytest.mark.grade("losses", points=5)
DECODING = pytest.mark.grade("greedy decoding and accuracies", points=5)
SCHEDULE = pytest.mark.grade("warm-up schedule", points=2)
GIVEN = pytest.mark.grade("given code: input checks, embedding, accuracy", points=0)

# The rules the docstrings state: how many Python loops (None: not stated), and which library routes are off limits.
ATTENTION_LIBRARY = ("scaled_dot_product_attention", "MultiheadAttention", "multi_head_attention_forward")
BLOCK_LIBRARY = ATTENTION_LIBRARY + ("TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
                                     "TransformerDecoder", "LayerNorm", "layer_norm")
LOSS_LIBRARY = ("cross_entropy", "log_softmax", "nll_loss")
SCHEDULERS = ("CosineAnnealingLR", "CosineAnnealingWarmRestarts", "LinearLR", "SequentialLR", "OneCycleLR",
              "PolynomialLR", "ChainedScheduler", "ExponentialLR", "StepLR", "MultiStepLR")
RULES = {  # function: (its group, loops allowed, names forbidden)
    "scaled_dot_product_two_loop_single": (DOT, 2, ATTENTION_LIBRARY),
    "scaled_dot_product_two_loop_batch": (DOT, 2, ATTENTION_LIBRARY),
    "scaled_dot_product_no_loop_batch": (DOT, 0, ATTENTION_LIBRARY),
    "SelfAttention.forward": (ATTENTION, 0, ATTENTION_LIBRARY),
    "MultiHeadAttention.__init__": (ATTENTION, None, ATTENTION_LIBRARY),
    "MultiHeadAttention.forward": (ATTENTION, None, ATTENTION_LIBRARY),
    "LayerNormalization.forward": (NORM, 0, ("LayerNorm", "layer_norm")),
    "FeedForwardBlock.forward": (BLOCKS, 0, ()),
    "EncoderBlock.__init__": (BLOCKS, None, BLOCK_LIBRARY),
    "EncoderBlock.forward": (BLOCKS, None, BLOCK_LIBRARY),
    "DecoderBlock.__init__": (BLOCKS, None, BLOCK_LIBRARY),
    "DecoderBlock.forward": (BLOCKS, None, BLOCK_LIBRARY),
    "get_subsequent_mask": (BLOCKS, 0, ("generate_square_subsequent_mask",)),
    "position_encoding_simple": (POSITIONS, 0, ()),
    "position_encoding_sinusoid": (POSITIONS, 0, ()),
    "Transformer.encode": (MODEL, 0, BLOCK_LIBRARY),
    "Transformer.decode": (MODEL, 0, BLOCK_LIBRARY),
    "Transformer.forward": (MODEL, 0, BLOCK_LIBRARY),
    "CrossEntropyLoss": (LOSSES, None, LOSS_LIBRARY),
    "LabelSmoothingLoss": (LOSSES, None, LOSS_LIBRARY),
    # one loop over the positions, plus the generator expression of the given line that reads the special ids
    "greedy_decode": (DECODING, 2, ()),
    "warmup_scheduler": (SCHEDULE, 0, SCHEDULERS),
}

TOKEN_DICT = {token: index for index, token in enumerate(ARITHMETIC_VOCAB)}  # what generate_token_dict returns
PAD = len(ARITHMETIC_VOCAB) - 1  # "PAD" is the last token of the vocabulary
VOCAB = len(ARITHMETIC_VOCAB)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=gen(seed), dtype=dtype)


def copy_linear(target: nn.Linear, weight: torch.Tensor, bias: torch.Tensor) -> None:
    with torch.no_grad():
        target.weight.copy_(weight)
        target.bias.copy_(bias)


def randomise(module, seed: int = 0):
    """Random values in every parameter (biases, gamma and beta included), so no term hides behind a 0 or 1."""
    g = gen(seed)
    values = {name: torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5 for name, p in module.named_parameters()}
    set_parameters(module, values)
    return module


def each(fn, items, *same_args) -> list:
    """``[fn(item, *same_args) for item in items]`` in one call where ``fn`` runs (not one round trip per item)."""
    builtins, itertools = load("builtins"), load("itertools")
    return builtins.list(builtins.map(fn, list(items), *(itertools.repeat(arg) for arg in same_args)))


def dataset(split="train", num=None, emb_dim=16, pos_encode=position_encoding_sinusoid, pad_to=6):
    questions, answers = arithmetic_problems(split, num)
    return AddSubDataset(questions, answers, TOKEN_DICT, ARITHMETIC_SPECIAL_TOKENS, emb_dim, pos_encode,
                         pad_to=pad_to)




@pytest.mark.parametrize("name", [pytest.param(name, marks=rule_mark(group)) for name, (group, _, _) in RULES.items()])
def test_docstring_rules(name):
    """Each function's stated rule: its number of Python loops, and no library route to the answer."""
    _, loops, forbidden = RULES[name]
    rules_of("A4_rnn_transformer.transformer", name, loops=loops, forbid=forbidden)


# --------------------------------------------------------------------------- tokens


@TOKENS
def test_token_dict_numbers_the_vocabulary_in_order():
    token_dict = generate_token_dict(ARITHMETIC_VOCAB)
    assert token_dict == {token: i for i, token in enumerate(ARITHMETIC_VOCAB)}
    assert token_dict["0"] == 0 and token_dict["9"] == 9 and token_dict["BOS"] == 14 and token_dict["PAD"] == 16


@TOKENS
def test_every_digit_is_a_token_of_its_own():
    d = TOKEN_DICT
    question = "BOS NEGATIVE 30 subtract NEGATIVE 34 EOS"
    expected = [d["BOS"], d["NEGATIVE"], 3, 0, d["subtract"], d["NEGATIVE"], 3, 4, d["EOS"]]
    assert preprocess_input_sequence(question, d, ARITHMETIC_SPECIAL_TOKENS) == expected
    assert prepocess_input_sequence(question, d, ARITHMETIC_SPECIAL_TOKENS) == expected  # the course's spelling
    assert preprocess_input_sequence("BOS NEGATIVE 100 EOS", d, ARITHMETIC_SPECIAL_TOKENS) == \
        [d["BOS"], d["NEGATIVE"], 1, 0, 0, d["EOS"]]


@TOKENS
def test_tokenisation_round_trip_on_every_arithmetic_problem():
    lengths = {"question": set(), "answer": {}}
    count = 0
    for split in ("train", "val", "test"):
        questions, answers = arithmetic_problems(split)
        tokens = {"question": each(preprocess_input_sequence, questions, TOKEN_DICT, ARITHMETIC_SPECIAL_TOKENS),
                  "answer": each(preprocess_input_sequence, answers, TOKEN_DICT, ARITHMETIC_SPECIAL_TOKENS)}
        assert each(decode_tokens, tokens["question"], TOKEN_DICT) == list(questions)
        assert each(decode_tokens, tokens["answer"], TOKEN_DICT) == list(answers)
        for q, a in zip(tokens["question"], tokens["answer"], strict=True):
            lengths["question"].add(len(q))
            lengths["answer"][len(a)] = lengths["answer"].get(len(a), 0) + 1
            count += 1
    assert count == 20_402
    assert lengths["question"] == {9}
    assert lengths["answer"] == {5: 20_398, 6: 4}, "only |answer| = 100 needs three digits"


# --------------------------------------------------------------------------- scaled dot-product attention


def torch_attention(query, key, value, mask=None):
    """The reference: PyTorch's bool mask is True where a query MAY attend, so it gets ~mask."""
    return F.scaled_dot_product_attention(query, key, value, attn_mask=None if mask is None else ~mask)


@DOT
def test_the_three_dot_product_versions_agree():
    query, key, value = randn(3, 5, 6, seed=1), randn(3, 5, 6, seed=2), randn(3, 5, 6, seed=3)
    batch = scaled_dot_product_two_loop_batch(query, key, value)
    no_loop, weights = scaled_dot_product_no_loop_batch(query, key, value)
    singles = torch.stack([scaled_dot_product_two_loop_single(q, k, v)
                           for q, k, v in zip(query, key, value, strict=True)])
    assert batch.shape == no_loop.shape == singles.shape == (3, 5, 6) and weights.shape == (3, 5, 5)
    torch.testing.assert_close(batch, singles, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(no_loop, singles, rtol=1e-12, atol=1e-12)


@DOT
@pytest.mark.parametrize("masked", [False, True])
def test_no_loop_attention_matches_torch(masked):
    # keys longer than queries and values of another width than queries
    query, key, value = randn(2, 4, 8, seed=4), randn(2, 7, 8, seed=5), randn(2, 7, 3, seed=6)
    mask = torch.rand(2, 4, 7, generator=gen(7)) < 0.4 if masked else None
    if masked:
        mask[:, :, 0] = False  # every query keeps at least one key
    y, weights = scaled_dot_product_no_loop_batch(query, key, value, mask)
    torch.testing.assert_close(y, torch_attention(query, key, value, mask), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    scores = query @ key.transpose(1, 2) / math.sqrt(8)
    expected = torch.softmax(scores if mask is None else scores.masked_fill(mask, -math.inf), dim=-1)
    torch.testing.assert_close(weights, expected, rtol=1e-12, atol=1e-12)
    if masked:
        assert (weights[mask] == 0).all(), "a hidden key gets exactly no weight"


@DOT
def test_the_mask_broadcasts_and_a_scale_changes_the_weights():
    query, key, value = randn(3, 4, 5, seed=8), randn(3, 4, 5, seed=9), randn(3, 4, 5, seed=10)
    causal = torch.ones(4, 4, dtype=torch.bool).triu(1)
    y_full, w_full = scaled_dot_product_no_loop_batch(query, key, value, causal.expand(3, 4, 4))
    y_one, w_one = scaled_dot_product_no_loop_batch(query, key, value, causal[None])
    torch.testing.assert_close(y_one, y_full, rtol=0, atol=0)
    assert (w_full[:, 0, 1:] == 0).all() and torch.allclose(w_full[:, 0, 0], torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(y_full[:, 0], value[:, 0], rtol=1e-12, atol=1e-12)
    # doubling the queries sharpens the weights: it is the scores q.k / sqrt(M) that enter the softmax
    _, sharper = scaled_dot_product_no_loop_batch(2 * query, key, value)
    _, weights = scaled_dot_product_no_loop_batch(query, key, value)
    assert (sharper.amax(-1) >= weights.amax(-1) - 1e-12).all()


@DOT
@pytest.mark.parametrize("masked", [False, True])
def test_no_loop_attention_gradients_numeric_and_autograd(masked):
    query, key, value = randn(2, 3, 4, seed=11), randn(2, 5, 4, seed=12), randn(2, 5, 2, seed=13)
    mask = torch.tensor([[False, True, False, True, False]]).expand(2, 3, 5) if masked else None
    dout = randn(2, 3, 2, seed=14)
    _, ours = vjp(scaled_dot_product_no_loop_batch, [query, key, value], dout, mask=mask)
    reference = [x.clone().requires_grad_() for x in (query, key, value)]
    torch_attention(*reference, mask).backward(dout)
    inputs = [query, key, value]
    for i, grad in enumerate(ours):
        def f(x, i=i):
            args = list(inputs)
            args[i] = x
            return scaled_dot_product_no_loop_batch(*args, mask)[0]

        numeric = compute_numeric_gradient(f, inputs[i].clone(), dout)
        assert rel_error(grad, numeric) < 1e-7
        assert rel_error(grad, reference[i].grad) < 1e-12


# --------------------------------------------------------------------------- SelfAttention, MultiHeadAttention


@ATTENTION
def test_self_attention_projects_then_attends():
    torch.manual_seed(0)
    layer = randomise(SelfAttention(6, 4, 3).double(), seed=15)
    assert (layer.q.in_features, layer.q.out_features, layer.v.out_features) == (6, 4, 3)
    x, memory = randn(2, 5, 6, seed=16), randn(2, 7, 6, seed=17)
    mask = torch.rand(2, 5, 7, generator=gen(18)) < 0.3
    mask[..., 0] = False
    y = layer(x, memory, memory, mask)
    q, k, v = layer.q(x), layer.k(memory), layer.v(memory)
    torch.testing.assert_close(y, torch_attention(q, k, v, mask), rtol=1e-12, atol=1e-12)
    assert y.shape == (2, 5, 3) and layer.weights_softmax.shape == (2, 5, 7)


@ATTENTION
def test_self_attention_init_is_glorot_uniform():
    torch.manual_seed(0)
    layer = SelfAttention(64, 32, 16)
    bound = math.sqrt(6 / (64 + 32))
    assert layer.q.weight.abs().max() <= bound and layer.q.weight.abs().max() > 0.9 * bound
    assert layer.v.weight.abs().max() <= math.sqrt(6 / (64 + 16))


def mha_pair(num_heads, emb_dim, seed=0):
    """Our MultiHeadAttention with random weights and nn.MultiheadAttention holding the same ones."""
    ours = randomise(MultiHeadAttention(num_heads, emb_dim, emb_dim // num_heads).double(), seed)
    theirs = nn.MultiheadAttention(emb_dim, num_heads, batch_first=True, dtype=torch.float64)
    copy_mha(theirs, ours)
    return ours, theirs


def copy_mha(theirs: nn.MultiheadAttention, ours: MultiHeadAttention) -> None:
    """Head h of ours is rows h*d:(h+1)*d of PyTorch's query / key / value projections."""
    with torch.no_grad():
        for part, name in enumerate(("q", "k", "v")):
            rows = slice(part * ours.dim_in, (part + 1) * ours.dim_in)
            theirs.in_proj_weight[rows] = torch.cat([getattr(h, name).weight for h in ours.heads])
            theirs.in_proj_bias[rows] = torch.cat([getattr(h, name).bias for h in ours.heads])
        copy_linear(theirs.out_proj, ours.linear.weight, ours.linear.bias)


@ATTENTION
@pytest.mark.parametrize("masked", [False, True])
def test_multi_head_attention_matches_torch(masked):
    ours, theirs = mha_pair(num_heads=4, emb_dim=8, seed=19)
    x, memory = randn(3, 5, 8, seed=20), randn(3, 6, 8, seed=21)
    mask = torch.rand(5, 6, generator=gen(22)) < 0.4 if masked else None
    if masked:
        mask[:, 2] = False
    y = ours(x, memory, memory, None if mask is None else mask.expand(3, 5, 6))
    expected, weights = theirs(x, memory, memory, attn_mask=mask, average_attn_weights=False)  # True = hidden too
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.weights_softmax, weights, rtol=1e-12, atol=1e-12)
    assert ours.weights_softmax.shape == (3, 4, 5, 6)


@ATTENTION
def test_multi_head_attention_structure_and_gradients():
    ours, theirs = mha_pair(num_heads=2, emb_dim=6, seed=23)
    assert len(ours.heads) == 2 and all(is_instance(h, SelfAttention) for h in ours.heads)
    assert (ours.linear.in_features, ours.linear.out_features) == (6, 6)
    x = randn(2, 3, 6, seed=24, dtype=torch.float64).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    dout = randn(2, 3, 6, seed=25)
    _, (dq, dk, dv) = backward_through(ours, [x, x, x], dout)
    theirs(x_ref, x_ref, x_ref)[0].backward(dout)
    assert rel_error(dq + dk + dv, x_ref.grad) < 1e-12  # x read three times: its gradient is the sum
    grad_q0 = parameter_grads(ours, "heads.0.q.")["heads.0.q.weight"]
    assert rel_error(grad_q0, theirs.in_proj_weight.grad[:3]) < 1e-12
    # heads wider or narrower than emb_dim / num_heads are allowed (the course's dim_out is per head)
    assert MultiHeadAttention(3, 8, 5)(randn(1, 2, 8).float(), randn(1, 4, 8).float(),
                                       randn(1, 4, 8).float()).shape == (1, 2, 8)


# --------------------------------------------------------------------------- LayerNormalization


@NORM
def test_layer_norm_matches_torch():
    norm = randomise(LayerNormalization(10).double(), seed=26)
    x = randn(4, 3, 10, seed=27) * 3 + 1
    expected = F.layer_norm(x, (10,), norm.gamma, norm.beta, eps=1e-10)
    torch.testing.assert_close(norm(x), expected, rtol=1e-12, atol=1e-12)
    fresh = LayerNormalization(10, epsilon=1e-5).double()
    torch.testing.assert_close(fresh(x), F.layer_norm(x, (10,), eps=1e-5), rtol=1e-12, atol=1e-12)
    y = fresh(x)
    # biased variance (divide by M): every row has mean 0 and mean square 1 up to epsilon
    torch.testing.assert_close(y.mean(-1), torch.zeros(4, 3, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close((y**2).mean(-1), torch.ones(4, 3, dtype=torch.float64), rtol=0, atol=1e-5)


@NORM
def test_layer_norm_gradients_numeric_and_autograd():
    norm = randomise(LayerNormalization(5).double(), seed=28)
    x = randn(3, 5, seed=29)
    dout = randn(3, 5, seed=30)
    _, (dx,) = backward_through(norm, [x.clone().requires_grad_()], dout)
    grads = parameter_grads(norm)
    assert rel_error(dx, compute_numeric_gradient(lambda v: norm(v), x.clone(), dout)) < 1e-7
    reference = [t.detach().clone().requires_grad_() for t in (x, norm.gamma, norm.beta)]
    F.layer_norm(reference[0], (5,), reference[1], reference[2], eps=1e-10).backward(dout)
    assert rel_error(dx, reference[0].grad) < 1e-10
    assert rel_error(grads["gamma"], reference[1].grad) < 1e-12
    assert rel_error(grads["beta"], reference[2].grad) < 1e-12
    gamma = norm.gamma.detach().clone()

    def with_gamma(g):
        set_parameters(norm, {"gamma": g})
        with torch.no_grad():
            return norm(x)

    assert rel_error(grads["gamma"], compute_numeric_gradient(with_gamma, gamma.clone(), dout)) < 1e-7


@NORM
def test_layer_norm_parameters_start_at_identity():
    norm = LayerNormalization(4)
    assert [name for name, _ in norm.named_parameters()] == ["gamma", "beta"]
    assert torch.equal(norm.gamma, torch.ones(4)) and torch.equal(norm.beta, torch.zeros(4))
    assert norm.epsilon == 1e-10


# --------------------------------------------------------------------------- blocks, masks


@BLOCKS
def test_subsequent_mask_by_hand():
    mask = get_subsequent_mask(torch.zeros(2, 3, dtype=torch.int64))
    expected = torch.tensor([[False, True, True], [False, False, True], [False, False, False]])
    assert mask.dtype == torch.bool and mask.shape == (2, 3, 3)
    assert torch.equal(mask, expected.expand(2, 3, 3))
    assert torch.equal(get_subsequent_mask(torch.zeros(1, 1, dtype=torch.int64)), torch.tensor([[[False]]]))


@BLOCKS
def test_feed_forward_block():
    torch.manual_seed(0)
    block = randomise(FeedForwardBlock(4, 7).double(), seed=31)
    assert (block.fc1.in_features, block.fc1.out_features, block.fc2.out_features) == (4, 7, 4)
    x = randn(2, 3, 4, seed=32)
    expected = F.linear(F.relu(F.linear(x, block.fc1.weight, block.fc1.bias)), block.fc2.weight, block.fc2.bias)
    torch.testing.assert_close(block(x), expected, rtol=1e-12, atol=1e-12)


def copy_block(theirs, ours, decoder: bool) -> None:
    attentions = (ours.attention_self, ours.attention_cross) if decoder else (ours.MultiHeadBlock,)
    targets = (theirs.self_attn, theirs.multihead_attn) if decoder else (theirs.self_attn,)
    for target, source in zip(targets, attentions, strict=True):
        copy_mha(target, source)
    ff = ours.feed_forward if decoder else ours.feedForward
    copy_linear(theirs.linear1, ff.fc1.weight, ff.fc1.bias)
    copy_linear(theirs.linear2, ff.fc2.weight, ff.fc2.bias)
    norms = (ours.norm1, ours.norm2, ours.norm3) if decoder else (ours.norm1, ours.norm2)
    for i, norm in enumerate(norms, start=1):
        copy_linear(getattr(theirs, f"norm{i}"), norm.gamma, norm.beta)


@BLOCKS
def test_encoder_block_matches_torch_post_norm_layer():
    ours = randomise(EncoderBlock(num_heads=2, emb_dim=8, feedforward_dim=12, dropout=0.1).double(), seed=33).eval()
    theirs = nn.TransformerEncoderLayer(8, 2, dim_feedforward=12, dropout=0.1, batch_first=True, norm_first=False,
                                        layer_norm_eps=1e-10, dtype=torch.float64).eval()
    copy_block(theirs, ours, decoder=False)
    x = randn(3, 5, 8, seed=34)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-10, atol=1e-10)


@BLOCKS
def test_decoder_block_matches_torch_post_norm_layer():
    ours = randomise(DecoderBlock(num_heads=2, emb_dim=8, feedforward_dim=12, dropout=0.1).double(), seed=35).eval()
    theirs = nn.TransformerDecoderLayer(8, 2, dim_feedforward=12, dropout=0.1, batch_first=True, norm_first=False,
                                        layer_norm_eps=1e-10, dtype=torch.float64).eval()
    copy_block(theirs, ours, decoder=True)
    target, memory = randn(3, 4, 8, seed=36), randn(3, 6, 8, seed=37)
    mask = get_subsequent_mask(torch.zeros(3, 4, dtype=torch.int64))
    torch.testing.assert_close(ours(target, memory, mask), theirs(target, memory, tgt_mask=mask[0]),
                               rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours(target, memory), theirs(target, memory), rtol=1e-10, atol=1e-10)


@BLOCKS
def test_decoder_with_a_causal_mask_never_looks_ahead():
    torch.manual_seed(0)
    decoder = Decoder(num_heads=2, emb_dim=8, feedforward_dim=16, num_layers=2, dropout=0.0, vocab_len=VOCAB).double()
    target, memory = randn(2, 5, 8, seed=38), randn(2, 9, 8, seed=39)
    mask = get_subsequent_mask(torch.zeros(2, 5, dtype=torch.int64))
    out = decoder(target, memory, mask)
    assert out.shape == (2, 5, VOCAB)
    changed = target.clone()
    changed[:, 3] += 1.0
    again = decoder(changed, memory, mask)
    torch.testing.assert_close(again[:, :3], out[:, :3], rtol=0, atol=0)
    assert not torch.allclose(again[:, 3:], out[:, 3:])
    assert not torch.allclose(decoder(changed, memory)[:, :3], out[:, :3]), "without the mask it does look ahead"


@BLOCKS
def test_dropout_acts_in_training_mode_only():
    torch.manual_seed(0)
    block = EncoderBlock(2, 8, 16, dropout=0.5)
    x = torch.randn(2, 3, 8)
    assert not torch.allclose(block(x), block(x))
    block.eval()
    torch.testing.assert_close(block(x), block(x), rtol=0, atol=0)
    encoder = Encoder(2, 8, 16, num_layers=3, dropout=0.0)
    assert len(encoder.layers) == 3 and encoder(x).shape == (2, 3, 8)


# --------------------------------------------------------------------------- position encodings


@POSITIONS
def test_simple_position_encoding_by_hand():
    out = position_encoding_simple(4, 3)
    assert out.shape == (1, 4, 3) and out.dtype == torch.float32
    expected = torch.tensor([0.0, 0.25, 0.5, 0.75])[:, None].expand(4, 3)
    assert torch.equal(out[0], expected)


@POSITIONS
@pytest.mark.parametrize("dim", [6, 7])
def test_sinusoid_position_encoding_by_hand(dim):
    out = position_encoding_sinusoid(5, dim)
    assert out.shape == (1, 5, dim) and out.dtype == torch.float32
    expected = torch.empty(5, dim, dtype=torch.float64)
    for p in range(5):
        for i in range(dim):
            rate = 10000 ** ((i - i % 2) / dim)
            expected[p, i] = math.sin(p / rate) if i % 2 == 0 else math.cos(p / rate)
    torch.testing.assert_close(out[0].double(), expected, rtol=0, atol=1e-6)
    assert torch.equal(out[0, 0], torch.tensor([0.0, 1.0] * (dim // 2) + [0.0] * (dim % 2)))
    assert abs(float(out[0, 1, 0]) - math.sin(1)) < 1e-7 and abs(float(out[0, 1, 1]) - math.cos(1)) < 1e-7


@POSITIONS
def test_sinusoid_codes_of_a_longer_sequence_start_the_same():
    torch.testing.assert_close(position_encoding_sinusoid(9, 16)[:, :6], position_encoding_sinusoid(6, 16),
                               rtol=0, atol=0)


# --------------------------------------------------------------------------- the Transformer


def small_model(seed=0, emb_dim=16, dropout=0.0, layers=1):
    torch.manual_seed(seed)
    return Transformer(num_heads=2, emb_dim=emb_dim, feedforward_dim=32, dropout=dropout, num_enc_layers=layers,
                       num_dec_layers=layers, vocab_len=VOCAB)


def batch_of(data, count):
    """The first ``count`` items of an AddSubDataset as one batch, as a DataLoader would give them."""
    ques, ques_pos, ans, ans_pos = zip(*(data[i] for i in range(count)), strict=True)
    return torch.stack(ques), torch.stack(ques_pos), torch.stack(ans), torch.stack(ans_pos)


@MODEL
def test_transformer_forward_is_teacher_forcing():
    model = small_model().eval()
    data = dataset("train", 8)
    ques, ques_pos, ans, ans_pos = batch_of(data, 8)
    out = model(ques, ques_pos, ans, ans_pos)
    assert out.shape == (8 * 5, VOCAB)
    enc_out = model.encoder(model.emb_layer(ques) + ques_pos)
    dec_in = model.emb_layer(ans[:, :-1]) + ans_pos[:, :-1]
    expected = model.decoder(dec_in, enc_out, get_subsequent_mask(ans[:, :-1]))
    torch.testing.assert_close(out, expected.reshape(-1, VOCAB), rtol=1e-6, atol=1e-6)
    # the last answer token is only predicted, never read; token t is read by rows >= t only
    changed = ans.clone()
    changed[:, -1] = (changed[:, -1] + 1) % VOCAB
    torch.testing.assert_close(model(ques, ques_pos, changed, ans_pos), out, rtol=0, atol=0)
    changed[:, 2] = (changed[:, 2] + 1) % VOCAB
    again = model(ques, ques_pos, changed, ans_pos).reshape(8, 5, VOCAB)
    torch.testing.assert_close(again[:, :2], out.reshape(8, 5, VOCAB)[:, :2], rtol=0, atol=0)
    assert not torch.allclose(again[:, 2:], out.reshape(8, 5, VOCAB)[:, 2:])


@MODEL
def test_every_parameter_gets_a_gradient():
    model = small_model(layers=2)
    data = dataset("train", 4)
    ques, ques_pos, ans, ans_pos = batch_of(data, 4)
    # the chain rule across the two calls: the loss's gradient of the scores, then back through the model
    scores = model(ques, ques_pos, ans, ans_pos)
    _, (dscores,) = backward_through(CrossEntropyLoss, [scores.detach().requires_grad_(), ans[:, 1:]], ignore_index=PAD)
    backward_through(model, [ques, ques_pos, ans, ans_pos], dscores)
    missing = [name for name, g in parameter_grads(model).items() if g is None or not g.abs().sum() > 0]
    assert not missing


@MODEL
def test_a_tiny_transformer_learns_a_small_set_by_heart(tmp_path):
    data = dataset("train", 32, emb_dim=32)
    model = small_model(seed=1, emb_dim=32)
    before = token_accuracy(model, data)
    # a path on the model's side (when grading, the worker's own temporary folder)
    history = train_transformer(model, data, num_epochs=100, batch_size=32, lr=5e-3, warmup_steps=10,
                                checkpoint=str(tmp_path / "tiny.pt"))
    assert history["stopped"] == "completed" and history["global_step"] == 100
    assert history["epoch_loss"][-1] < 0.05 * history["epoch_loss"][0]
    after = token_accuracy(model, data)
    answers = answer_accuracy(predict_answers(model, data, TOKEN_DICT), data.answers)
    assert before < 0.3 and after == 1.0 and answers == 1.0, (before, after, answers)


# --------------------------------------------------------------------------- losses


def scores_and_targets(seed=40):
    pred = randn(12, VOCAB, seed=seed) * 2
    ground = torch.randint(0, VOCAB, (3, 4), generator=gen(seed + 1))
    ground[0, 3] = ground[2, 1] = PAD
    return pred, ground


@LOSSES
@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
def test_cross_entropy_matches_torch(reduction):
    pred, ground = scores_and_targets()
    ours = CrossEntropyLoss(pred, ground, ignore_index=PAD, reduction=reduction)
    theirs = F.cross_entropy(pred, ground.reshape(-1), ignore_index=PAD, reduction=reduction)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    plain = F.cross_entropy(pred, ground.reshape(-1), reduction=reduction)
    torch.testing.assert_close(CrossEntropyLoss(pred, ground, reduction=reduction), plain, rtol=1e-12, atol=1e-12)


@LOSSES
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_torch_and_its_gradient(smoothing):
    pred, ground = scores_and_targets(seed=42)
    reference = pred.clone().requires_grad_()
    ours, (grad,) = backward_through(LabelSmoothingLoss, [pred.clone().requires_grad_(), ground, smoothing],
                                     ignore_index=PAD, reduction="mean")
    # PyTorch spreads label_smoothing over all V tokens, the course over the V - 1 wrong ones
    theirs = F.cross_entropy(reference, ground.reshape(-1), ignore_index=PAD, reduction="mean",
                             label_smoothing=smoothing * VOCAB / (VOCAB - 1))
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    theirs.backward()
    assert rel_error(grad, reference.grad) < 1e-12
    assert (grad.reshape(3, 4, VOCAB)[ground == PAD] == 0).all(), "PAD positions get no gradient"


@LOSSES
def test_label_smoothing_course_target_by_hand():
    # V = 3, right token 0, smoothing 0.3: target (0.7, 0.15, 0.15)
    pred = torch.tensor([[2.0, 0.5, -1.0]], dtype=torch.float64)
    log_p = torch.log_softmax(pred, dim=1)[0]
    expected = -(0.7 * log_p[0] + 0.15 * log_p[1] + 0.15 * log_p[2])
    out = LabelSmoothingLoss(pred, torch.tensor([0]), smoothing=0.3)
    torch.testing.assert_close(out, expected, rtol=1e-14, atol=1e-14)
    pred, ground = scores_and_targets()
    torch.testing.assert_close(LabelSmoothingLoss(pred, ground), LabelSmoothingLoss(pred, ground, 0.1, reduction="sum"))
    assert float(LabelSmoothingLoss(pred, ground, reduction="sum")) > float(CrossEntropyLoss(pred, ground)) * 0.5


@LOSSES
def test_losses_are_stable_for_huge_scores():
    pred = torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0]])
    ground = torch.tensor([0, 2])
    ce = CrossEntropyLoss(pred, ground, reduction="none")
    torch.testing.assert_close(ce, torch.tensor([0.0, 1000.0]))
    assert torch.isfinite(LabelSmoothingLoss(pred, ground)).all()


# --------------------------------------------------------------------------- decoding and accuracy


@DECODING
def test_greedy_decode_agrees_with_teacher_forcing_on_its_own_output():
    model = small_model(seed=3, layers=2)
    data = dataset("val", 16)
    ques, ques_pos, _, _ = batch_of(data, 16)
    model.train()
    out = greedy_decode(model, ques, ques_pos, TOKEN_DICT, 6, position_encoding_sinusoid)
    assert model.training, "greedy_decode restores the training mode"
    assert out.shape == (16, 6) and out.dtype == torch.int64 and (out[:, 0] == TOKEN_DICT["BOS"]).all()
    model.eval()
    pos = position_encoding_sinusoid(6, 16).expand(16, 6, 16)
    with torch.no_grad():
        argmax = model(ques, ques_pos, out, pos).reshape(16, 5, VOCAB).argmax(-1)
    eos, pad = TOKEN_DICT["EOS"], TOKEN_DICT["PAD"]
    for row, best in zip(out, argmax, strict=True):
        ended = False
        for t in range(1, 6):
            assert row[t] == (pad if ended else best[t - 1])
            ended = ended or bool(row[t] == eos)


@DECODING
def test_greedy_decode_pads_after_eos():
    model = small_model(seed=4)
    projection = model.decoder.proj_to_vocab  # a decoder that always says EOS
    bias = torch.zeros_like(projection.bias)
    bias[TOKEN_DICT["EOS"]] = 1.0
    set_parameters(projection, {"weight": torch.zeros_like(projection.weight), "bias": bias})
    data = dataset("val", 3)
    ques, ques_pos, _, _ = batch_of(data, 3)
    out = greedy_decode(model, ques, ques_pos, TOKEN_DICT, 5, position_encoding_sinusoid)
    row = [TOKEN_DICT["BOS"], TOKEN_DICT["EOS"]] + [TOKEN_DICT["PAD"]] * 3
    assert out.tolist() == [row] * 3


@DECODING
def test_token_accuracy_ignores_pad_and_answer_accuracy_needs_every_token():
    model = small_model(seed=5)
    data = dataset("train", 40)
    model.eval()
    with torch.no_grad():
        ques, ques_pos, ans, ans_pos = batch_of(data, 40)
        guess = model(ques, ques_pos, ans, ans_pos).argmax(-1)
    truth = ans[:, 1:].reshape(-1)
    keep = truth != PAD
    assert abs(token_accuracy(model, data, batch_size=7) - float((guess[keep] == truth[keep]).double().mean())) < 1e-12
    predictions = predict_answers(model, data, TOKEN_DICT, batch_size=16)
    assert predictions.shape == data.answers.shape
    right = (predictions == data.answers).all(1).double().mean()
    assert answer_accuracy(predictions, data.answers) == float(right)


@DECODING
def test_attention_weights_of_every_layer():
    model = small_model(seed=6, layers=2)
    data = dataset("val", 3)
    maps = attention_weights(model, *batch_of(data, 3))
    assert [len(maps[k]) for k in ("encoder", "decoder_self", "decoder_cross")] == [2, 2, 2]
    assert maps["encoder"][0].shape == (3, 2, 9, 9) and maps["decoder_cross"][1].shape == (3, 2, 5, 9)
    causal = maps["decoder_self"][0]
    assert causal.shape == (3, 2, 5, 5) and (causal.triu(1) == 0).all(), "the decoder never looks ahead"
    for weights in maps["encoder"] + maps["decoder_self"] + maps["decoder_cross"]:
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))


@GIVEN
def test_answer_accuracy_by_hand():
    answers = torch.tensor([[14, 10, 0, 4, 15, 16], [14, 11, 1, 0, 0, 15]])
    assert answer_accuracy(answers.clone(), answers) == 1.0
    wrong = answers.clone()
    wrong[1, 4] = 1
    assert answer_accuracy(wrong, answers) == 0.5
    with pytest.raises(ValueError, match="one shape"):
        answer_accuracy(answers[:, :5], answers)


# --------------------------------------------------------------------------- schedule


@SCHEDULE
def test_warmup_then_cosine_or_inverse_sqrt():
    def factors(**kwargs):
        # built where the scheduler runs (when grading, in the worker)
        optimizer = load("torch.optim").SGD([torch.zeros(1, requires_grad=True)], lr=2.0)
        scheduler = warmup_scheduler(optimizer, **kwargs)
        out = []
        for _ in range(12):
            out.append(optimizer.param_groups[0]["lr"] / 2.0)
            optimizer.step()
            scheduler.step()
        return out

    cosine = factors(warmup_steps=4, total_steps=10, decay="cosine")
    expected = [0.25, 0.5, 0.75, 1.0] + [0.5 * (1 + math.cos(math.pi * s / 6)) for s in range(6)] + [0.0, 0.0]
    assert max(abs(a - b) for a, b in zip(cosine, expected, strict=True)) < 1e-12
    floor = factors(warmup_steps=4, total_steps=10, decay="cosine", final_factor=0.1)
    assert abs(floor[-1] - 0.1) < 1e-12 and abs(floor[7] - (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))) < 1e-12
    inverse = factors(warmup_steps=4, decay="inverse_sqrt")
    assert max(abs(a - b) for a, b in zip(inverse[4:], [math.sqrt(4 / (s + 1)) for s in range(4, 12)],
                                          strict=True)) < 1e-12
    assert factors(warmup_steps=2, decay="constant") == [0.5] + [1.0] * 11


# --------------------------------------------------------------------------- given code


@GIVEN
def test_dataset_pads_answers_and_carries_position_codes():
    questions = ["BOS POSITIVE 50 add POSITIVE 50 EOS", "BOS NEGATIVE 50 subtract POSITIVE 50 EOS"]
    answers = ["BOS POSITIVE 100 EOS", "BOS NEGATIVE 100 EOS"]
    data = AddSubDataset(questions[:1] + ["BOS POSITIVE 01 add POSITIVE 02 EOS"], answers[:1] + ["BOS POSITIVE 03 EOS"],
                         TOKEN_DICT, ARITHMETIC_SPECIAL_TOKENS, 8, position_encoding_simple)
    ques, ques_pos, ans, ans_pos = data[1]
    assert ques.shape == (9,) and ques_pos.shape == (9, 8) and ans.shape == (6,) and ans_pos.shape == (6, 8)
    assert ans.tolist() == [14, 10, 0, 3, 15, PAD]
    torch.testing.assert_close(ans_pos, position_encoding_simple(6, 8)[0])
    assert dataset("test", 5).answers.shape == (5, 6)
    with pytest.raises(ValueError, match="pad_to=5"):
        AddSubDataset(questions, answers, TOKEN_DICT, ARITHMETIC_SPECIAL_TOKENS, 8, position_encoding_simple, pad_to=5)
    with pytest.raises(ValueError, match="same length"):
        AddSubDataset(questions, answers[:1], TOKEN_DICT, ARITHMETIC_SPECIAL_TOKENS, 8, position_encoding_simple)


@GIVEN
def test_token_embedding_is_nn_embedding():
    torch.manual_seed(0)
    ours = TokenEmbedding(VOCAB, 6)
    theirs = nn.Embedding(VOCAB, 6)
    with torch.no_grad():
        theirs.weight.copy_(ours.weight)
    tokens = torch.randint(0, VOCAB, (3, 5), generator=gen(50))
    torch.testing.assert_close(ours(tokens), theirs(tokens), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"\[0, 17\)"):
        ours(torch.tensor([[0, 17]]))


@GIVEN
def test_decode_tokens_joins_digits_and_refuses_unknown_ids():
    assert decode_tokens([14, 11, 1, 0, 0, 15, 16], TOKEN_DICT) == "BOS NEGATIVE 100 EOS"
    assert decode_tokens(torch.tensor([14, 4, 10, 15]), TOKEN_DICT) == "BOS 4 POSITIVE EOS"
    with pytest.raises(ValueError, match="17"):
        decode_tokens([14, 17], TOKEN_DICT)


@GIVEN
def test_unknown_tokens_are_named():
    special = ARITHMETIC_SPECIAL_TOKENS
    with pytest.raises(ValueError, match="'multiply'"):
        preprocess_input_sequence("BOS POSITIVE 04 multiply POSITIVE 02 EOS", TOKEN_DICT, special)
    with pytest.raises(ValueError, match="'4x'"):
        preprocess_input_sequence("BOS POSITIVE 4x EOS", TOKEN_DICT, special)
    with pytest.raises(ValueError, match="'7'"):
        preprocess_input_sequence("BOS POSITIVE 07 EOS", {k: v for k, v in TOKEN_DICT.items() if k != "7"}, special)
    with pytest.raises(TypeError, match="string"):
        preprocess_input_sequence(["BOS"], TOKEN_DICT, special)
    with pytest.raises(ValueError, match="repeat"):
        generate_token_dict(["a", "b", "a"])


@GIVEN
def test_attention_refuses_bad_shapes_and_masks():
    q, k, v = torch.zeros(2, 3, 4), torch.zeros(2, 5, 4), torch.zeros(2, 5, 6)
    with pytest.raises(ValueError, match=r"\(N, K, M\)"):
        scaled_dot_product_no_loop_batch(q[0], k, v)
    with pytest.raises(ValueError, match="last dimension"):
        scaled_dot_product_no_loop_batch(q, torch.zeros(2, 5, 3), v)
    with pytest.raises(ValueError, match="one row per key"):
        scaled_dot_product_two_loop_batch(q, k, torch.zeros(2, 4, 6))
    with pytest.raises(ValueError, match="batch size"):
        scaled_dot_product_no_loop_batch(q, torch.zeros(3, 5, 4), torch.zeros(3, 5, 6))
    with pytest.raises(ValueError, match=r"\(K, M\)"):
        scaled_dot_product_two_loop_single(q, k, v)
    with pytest.raises(TypeError, match="bool"):
        scaled_dot_product_no_loop_batch(q, k, v, mask=torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match=r"\(2, 3, 5\)"):
        scaled_dot_product_no_loop_batch(q, k, v, mask=torch.zeros(2, 5, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="floating"):
        scaled_dot_product_no_loop_batch(q.long(), k, v)


@GIVEN
def test_layers_refuse_bad_sizes():
    with pytest.raises(ValueError, match="num_heads must divide emb_dim"):
        EncoderBlock(num_heads=3, emb_dim=8, feedforward_dim=16, dropout=0.1)
    with pytest.raises(ValueError, match="num_heads must divide emb_dim"):
        DecoderBlock(num_heads=5, emb_dim=12, feedforward_dim=16, dropout=0.1)
    with pytest.raises(ValueError, match="num_heads must divide emb_dim"):
        Transformer(3, 16, 32, 0.1, 1, 1, VOCAB)
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(0, 8, 4)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        EncoderBlock(2, 8, 16, dropout=1.5)
    with pytest.raises(ValueError, match=r"\(\.\.\., 8\)"):
        LayerNormalization(8)(torch.zeros(2, 7))
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        get_subsequent_mask(torch.zeros(3, dtype=torch.int64))


@GIVEN
def test_model_and_losses_refuse_bad_inputs():
    torch.manual_seed(0)
    model = Transformer(2, 8, 16, 0.0, 1, 1, VOCAB)
    ques, ans = torch.zeros(2, 9, dtype=torch.int64), torch.zeros(2, 6, dtype=torch.int64)
    pos9, pos6 = position_encoding_simple(9, 8).expand(2, 9, 8), position_encoding_simple(6, 8).expand(2, 6, 8)
    with pytest.raises(ValueError, match=r"\[0, 17\)"):
        model(ques + 17, pos9, ans, pos6)
    with pytest.raises(TypeError, match="integer"):
        model(ques.float(), pos9, ans, pos6)
    with pytest.raises(ValueError, match="ans_pos"):
        model(ques, pos9, ans, pos9)
    with pytest.raises(ValueError, match=r"\(N, K, 8\)"):
        model(ques, position_encoding_simple(9, 4).expand(2, 9, 4), ans, pos6)
    pred = torch.zeros(6, VOCAB)
    with pytest.raises(ValueError, match="one id per row"):
        CrossEntropyLoss(pred, torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\[0, 17\)"):
        LabelSmoothingLoss(pred, torch.full((6,), 17))
    with pytest.raises(ValueError, match="reduction"):
        CrossEntropyLoss(pred, torch.zeros(6, dtype=torch.int64), reduction="avg")
    with pytest.raises(ValueError, match="total_steps"):
        warmup_scheduler(load("torch.optim").SGD(model.parameters(), lr=0.1), warmup_steps=10, total_steps=5)
    with pytest.raises(ValueError, match="BOS"):
        greedy_decode(model, ques, pos9, {"EOS": 15, "PAD": 16}, 6, position_encoding_simple)
