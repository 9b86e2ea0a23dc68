"""DETR (``papers/detr.py``): Hungarian matching, box coding, positional encoding, set loss, model, export, CLI.

The Hungarian algorithm is checked against ``scipy.optimize.linear_sum_assignment`` on random
cost matrices (square, wide, tall, tied and integer costs, empty); the set loss on hand-built
cases whose value is known (a perfect prediction, a permutation of the queries, no targets);
the model by shapes, by overfitting a few scenes, by its export and by its command line.

The student's objects may live in the grader's worker (``tests/under_test.py``): weights are set
with ``load_state_dict``, autograd runs there (``backward_through``), and so do training, exports
and the command line's files (``tests/papers_support.py``); mAP is computed here by a reference.
"""

import itertools
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from papers_support import folder_in_worker, mean_ap, png_bytes, rule_mark
from scipy.optimize import linear_sum_assignment
from under_test import load, rules_of

from helpers.datasets import gt_boxes_to_targets, load_detection
from helpers.export import BOX_FORMAT
from helpers.gradcheck import compute_numeric_gradient, rel_error

detr = load("papers.detr")
DETR = detr.DETR
box_cxcywh_to_xyxy = detr.box_cxcywh_to_xyxy
box_position_code = detr.box_position_code
box_xyxy_to_cxcywh = detr.box_xyxy_to_cxcywh
decode_predictions = detr.decode_predictions
gt_boxes_to_set_targets = detr.gt_boxes_to_set_targets
hungarian = detr.hungarian
match_predictions = detr.match_predictions
matching_cost = detr.matching_cost
position_encoding_2d = detr.position_encoding_2d
predict_detections = detr.predict_detections
set_loss = detr.set_loss
sine_encoding = detr.sine_encoding
weighted_cross_entropy = detr.weighted_cross_entropy
export = load("helpers.export")          # given code, run where the model lives
support = load("papers_support")
worker_folder = pytest.fixture(folder_in_worker, name="worker_folder")  # a scratch folder where the model lives
backward_through = load("under_test").backward_through

# Score groups of `python -m course.grade` (README, "For teachers"): points are each group's total.
HUNGARIAN = pytest.mark.grade("hungarian", points=5)
BOXES = pytest.mark.grade("DETR box coding", points=1)
POS = pytest.mark.grade("position_encoding_2d", points=2)
LOSS = pytest.mark.grade("DETR matching and set loss", points=5)
MODEL = pytest.mark.grade("DETR model", points=4)
DEPLOY = pytest.mark.grade("given code: export and command line", points=0)
GIVEN = pytest.mark.grade("given code: input checks", points=0)

SMALL = {"d_model": 32, "num_heads": 2, "num_encoder_layers": 1, "num_decoder_layers": 2, "ffn_dim": 64,
         "num_queries": 5, "image_size": 64}


def small_model(seed=0, num_classes=3, **kw):
    torch.manual_seed(seed)
    return DETR(num_classes, **{**SMALL, **kw})


def position_encoding_sinusoid(K: int, M: int) -> torch.Tensor:
    """A4's sinusoid ``(1, K, M)`` from its formula, ``PE[p, 2i] = sin(p / 10000^(2i / M))`` and
    ``PE[p, 2i + 1] = cos(...)``, in float64 then float32 (A4's answer is not this test's reference)."""
    positions = torch.arange(K, dtype=torch.float64)[:, None]
    angles = positions / 10000 ** (torch.arange(0, M, 2, dtype=torch.float64) / M)  # (K, ceil(M / 2))
    return torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(K, -1)[:, :M].float()[None]


NO_TORCH_ATTENTION = ("MultiheadAttention", "scaled_dot_product_attention", "multi_head_attention_forward")
# The rules the docstrings state: how many Python loops, and what may not be used.
RULES = [("hungarian", HUNGARIAN, None, ("linear_sum_assignment",)),
         ("box_cxcywh_to_xyxy", BOXES, 0, ()), ("box_xyxy_to_cxcywh", BOXES, 0, ()),
         ("position_encoding_2d", POS, 0, ()),
         ("matching_cost", LOSS, 0, ()), ("weighted_cross_entropy", LOSS, None, ("cross_entropy",)),
         ("decode_predictions", MODEL, 1, ()),
         *[(f"{layer}.{method}", MODEL, None, NO_TORCH_ATTENTION) for layer in ("EncoderLayer", "DecoderLayer")
           for method in ("__init__", "forward")]]


@pytest.mark.parametrize("name, loops, forbid", [pytest.param(n, loops, forbid, marks=rule_mark(mark), id=n)
                                                 for n, mark, loops, forbid in RULES])
def test_rules(name, loops, forbid):
    rules_of("papers.detr", name, loops=loops, forbid=forbid)


# --------------------------------------------------------------------------- Hungarian


def _cost_matrices():
    rng = np.random.default_rng(0)
    for n, m in itertools.product(range(1, 8), range(1, 8)):
        yield "normal", rng.normal(size=(n, m))
        yield "integer", rng.integers(-3, 4, size=(n, m))
        yield "ties", rng.integers(0, 2, size=(n, m)).astype(float)
    yield "constant", np.full((4, 6), 2.5)
    yield "large", rng.uniform(0, 1e6, size=(30, 45))
    yield "tall large", rng.uniform(-5, 5, size=(45, 12))


@HUNGARIAN
def test_hungarian_reaches_scipys_optimum_on_random_matrices():
    for kind, cost in _cost_matrices():
        rows, cols = hungarian(cost)
        ref_rows, ref_cols = linear_sum_assignment(cost)
        assert rows.dtype == np.int64 and cols.dtype == np.int64
        assert len(rows) == len(cols) == min(cost.shape), kind
        assert np.array_equal(rows, np.sort(rows)) and len(set(rows)) == len(rows), kind
        assert len(set(cols.tolist())) == len(cols), f"{kind}: a column used twice"
        assert cost[rows, cols].sum() == pytest.approx(cost[ref_rows, ref_cols].sum(), abs=1e-9), kind
        if min(cost.shape) == cost.shape[1]:  # tall: every column is assigned
            assert sorted(cols.tolist()) == list(range(cost.shape[1]))
        else:
            assert rows.tolist() == list(range(cost.shape[0]))


@HUNGARIAN
def test_hungarian_finds_scipys_assignment_when_the_optimum_is_unique():
    rng = np.random.default_rng(1)
    for n, m in ((1, 1), (5, 5), (3, 8), (8, 3), (12, 6), (20, 20)):
        for _ in range(5):
            cost = rng.normal(size=(n, m))  # continuous costs: the optimum is unique (almost surely)
            assert [a.tolist() for a in hungarian(cost)] == [a.tolist() for a in linear_sum_assignment(cost)]


@HUNGARIAN
def test_hungarian_by_hand_and_against_brute_force():
    cost = np.array([[4, 1, 3], [2, 0, 5], [3, 2, 2]])
    # Brute force over the 6 permutations: 1 + 2 + 2 = 5 with rows -> (1, 0, 2).
    assert [a.tolist() for a in hungarian(cost)] == [[0, 1, 2], [1, 0, 2]]
    rng = np.random.default_rng(2)
    for _ in range(20):
        cost = rng.integers(0, 10, size=(4, 6))
        best = min(sum(cost[i, p[i]] for i in range(4)) for p in itertools.permutations(range(6), 4))
        rows, cols = hungarian(cost)
        assert cost[rows, cols].sum() == best


@HUNGARIAN
def test_hungarian_accepts_tensors_and_empty_matrices():
    cost = torch.tensor([[0.5, 0.1], [0.2, 0.9]])
    assert [a.tolist() for a in hungarian(cost)] == [[0, 1], [1, 0]]
    for shape in ((0, 5), (5, 0), (0, 0)):
        rows, cols = hungarian(np.zeros(shape))
        assert rows.shape == cols.shape == (0,) and rows.dtype == np.int64


@GIVEN
def test_hungarian_refuses_bad_costs():
    with pytest.raises(ValueError, match="2-D"):
        hungarian(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        hungarian(np.array([[0.0, np.inf], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="finite"):
        hungarian(np.array([[np.nan]]))
    with pytest.raises(TypeError, match="real numbers"):
        hungarian(np.array([[True, False]]))


# --------------------------------------------------------------------------- boxes and positional encoding


@BOXES
def test_box_coding_round_trip_and_by_hand():
    assert box_xyxy_to_cxcywh(torch.tensor([[10.0, 20.0, 30.0, 60.0]])).tolist() == [[20.0, 40.0, 20.0, 40.0]]
    assert box_cxcywh_to_xyxy(torch.tensor([[0.5, 0.5, 0.2, 0.4]])).tolist() == [
        [pytest.approx(0.4), pytest.approx(0.3), pytest.approx(0.6), pytest.approx(0.7)]]
    boxes = torch.rand(2, 7, 4, dtype=torch.float64)
    assert torch.allclose(box_xyxy_to_cxcywh(box_cxcywh_to_xyxy(boxes)), boxes)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        box_cxcywh_to_xyxy(torch.zeros(3, 5))


@BOXES
def test_gt_boxes_to_set_targets_normalises_and_drops_padding():
    gt = torch.tensor([[[0.0, 0.0, 32.0, 16.0, 2.0], [-1, -1, -1, -1, -1]],
                       [[-1, -1, -1, -1, -1], [-1, -1, -1, -1, -1]]])
    targets = gt_boxes_to_set_targets(gt, (32, 64))  # H = 32, W = 64
    assert targets[0]["labels"].tolist() == [2]
    assert targets[0]["boxes"].tolist() == [[0.25, 0.25, 0.5, 0.5]]
    assert targets[1]["labels"].numel() == 0 and targets[1]["boxes"].shape == (0, 4)


@GIVEN
def test_gt_boxes_to_set_targets_refuses_malformed_targets():
    with pytest.raises(ValueError, match=r"\(B, N, 5\)"):
        gt_boxes_to_set_targets(torch.zeros(2, 5), 64)
    with pytest.raises(TypeError, match="floating-point"):
        gt_boxes_to_set_targets(torch.zeros(1, 1, 5, dtype=torch.int64), 64)
    with pytest.raises(ValueError, match="integer class ids"):
        gt_boxes_to_set_targets(torch.tensor([[[0.0, 0.0, 4.0, 4.0, 1.5]]]), 64)
    with pytest.raises(ValueError, match="padding rows that are all -1"):
        gt_boxes_to_set_targets(torch.tensor([[[0.0, 0.0, 4.0, 4.0, -1.0]]]), 64)
    with pytest.raises(ValueError, match="x2 >= x1"):
        gt_boxes_to_set_targets(torch.tensor([[[8.0, 0.0, 4.0, 4.0, 0.0]]]), 64)


@POS
def test_position_encoding_2d_shape_and_values():
    pe = position_encoding_2d(3, 5, 8)
    assert pe.shape == (15, 8) and pe.dtype == torch.float32
    rows, cols = position_encoding_sinusoid(3, 4)[0], position_encoding_sinusoid(5, 4)[0]
    for y, x in itertools.product(range(3), range(5)):
        assert torch.equal(pe[y * 5 + x], torch.cat([rows[y], cols[x]]))
    # By hand: cell (y=1, x=2), first feature of each half: sin(1) and sin(2); second: cos(1), cos(2).
    cell = pe[1 * 5 + 2]
    assert cell[0].item() == pytest.approx(np.sin(1.0)) and cell[1].item() == pytest.approx(np.cos(1.0))
    assert cell[4].item() == pytest.approx(np.sin(2.0)) and cell[5].item() == pytest.approx(np.cos(2.0))
    assert len({tuple(r.tolist()) for r in pe}) == 15, "every cell gets its own code"
    with pytest.raises(ValueError, match="even"):
        position_encoding_2d(2, 2, 5)


@POS
def test_sine_encoding_extends_a4s_sinusoid_to_real_positions():
    assert torch.allclose(sine_encoding(torch.arange(7.0), 6), position_encoding_sinusoid(7, 6)[0], atol=1e-6)
    half = sine_encoding(torch.tensor([2.5]), 4)[0]
    assert half.tolist() == pytest.approx([np.sin(2.5), np.cos(2.5), np.sin(0.025), np.cos(0.025)], abs=1e-6)
    assert sine_encoding(torch.rand(2, 3), 8).shape == (2, 3, 8)
    with pytest.raises(TypeError, match="float"):
        sine_encoding(torch.arange(3), 4)


@POS
def test_box_position_code_puts_a_box_on_the_grid_of_position_encoding_2d():
    grid = position_encoding_2d(3, 5, 8)
    # A box centred on cell (y=1, x=3) of a 3 x 5 grid, 2 cells high and 1 wide.
    box = torch.tensor([(3 + 0.5) / 5, (1 + 0.5) / 3, 1 / 5, 2 / 3])
    code = box_position_code(box, (3, 5), 8)
    assert code.shape == (16,)
    assert torch.allclose(code[:8], grid[1 * 5 + 3], atol=1e-6), "the centre gets its cell's code"
    size_code = torch.cat([sine_encoding(torch.tensor(2.0), 4), sine_encoding(torch.tensor(1.0), 4)])
    assert torch.allclose(code[8:], size_code, atol=1e-6), "then the height and width in cells"
    probe = torch.rand(3, 4, dtype=torch.float64)
    numeric = compute_numeric_gradient(lambda b: box_position_code(b, (3, 5), 8), probe)
    probe.requires_grad_()
    _, (grad,) = backward_through(box_position_code, [probe, (3, 5), 8])
    assert rel_error(grad, numeric) < 1e-6
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        box_position_code(torch.rand(3, 5), (3, 5), 8)
    with pytest.raises(ValueError, match="even"):
        box_position_code(box, (3, 5), 7)


# --------------------------------------------------------------------------- matching and set loss


def _targets():
    return [{"labels": torch.tensor([0, 2]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4]])},
            {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.5, 0.5]])}]


def _perfect_outputs(targets, num_queries=4, num_classes=3, confidence=30.0):
    """Logits and boxes whose queries 3, 1, ... hold the targets exactly; the other queries say no object."""
    logits = torch.zeros(len(targets), num_queries, num_classes + 1)
    logits[..., num_classes] = confidence
    boxes = torch.full((len(targets), num_queries, 4), 0.5)
    for b, t in enumerate(targets):
        for k, (label, box) in enumerate(zip(t["labels"], t["boxes"], strict=True)):
            q = num_queries - 1 - 2 * k
            logits[b, q] = 0.0
            logits[b, q, label] = confidence
            boxes[b, q] = box
    return logits, boxes


@LOSS
def test_set_loss_of_a_perfect_prediction_has_zero_box_losses():
    targets = _targets()
    logits, boxes = _perfect_outputs(targets)
    matches = match_predictions(logits, boxes, targets)
    assert [q.tolist() for q, _ in matches] == [[1, 3], [3]]
    assert [t.tolist() for _, t in matches] == [[1, 0], [0]]
    out = set_loss(logits, boxes, targets)
    assert out["loss_l1"].item() == 0.0
    assert out["loss_giou"].item() == pytest.approx(0.0, abs=1e-6)
    assert out["loss_class"].item() < 1e-10
    assert set(out) == {"loss", "loss_class", "loss_l1", "loss_giou"}


@LOSS
def test_set_loss_is_invariant_to_permuting_the_queries():
    torch.manual_seed(0)
    logits, boxes = torch.randn(2, 6, 4), torch.rand(2, 6, 4) * 0.5 + 0.25
    targets = _targets()
    perm = torch.randperm(6)
    a, b = set_loss(logits, boxes, targets), set_loss(logits[:, perm], boxes[:, perm], targets)
    for key in a:
        assert a[key].item() == pytest.approx(b[key].item(), rel=1e-6)
    # Permuting the targets does not change it either.
    flipped = [{k: v.flip(0) for k, v in t.items()} for t in targets]
    assert set_loss(logits, boxes, flipped)["loss"].item() == pytest.approx(a["loss"].item(), rel=1e-6)


@LOSS
def test_set_loss_by_hand_with_one_target():
    logits = torch.tensor([[[2.0, 0.0, 1.0], [0.0, 0.0, 3.0]]])  # Q = 2, C = 2
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]]])
    target = [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.6, 0.2, 0.2]])}]
    out = set_loss(logits, boxes, target)
    # Query 0 matches (class 0 likely, box close). CE: query 0 class 0 (weight 1), query 1 "no object" (0.1).
    logp = F.log_softmax(logits[0], dim=-1)
    ce = -(logp[0, 0] + 0.1 * logp[1, 2]) / 1.1
    assert out["loss_class"].item() == pytest.approx(ce.item(), rel=1e-6)
    assert out["loss_l1"].item() == pytest.approx(0.1, rel=1e-5)
    # Boxes (0.4, 0.4, 0.6, 0.6) and (0.4, 0.5, 0.6, 0.7): IoU 0.02 / 0.06 = 1/3, enclosing = union.
    assert out["loss_giou"].item() == pytest.approx(2 / 3, rel=1e-5)
    assert out["loss"].item() == pytest.approx(ce.item() + 5 * 0.1 + 2 * (2 / 3), rel=1e-5)


@LOSS
def test_set_loss_with_empty_targets_is_only_the_no_object_cross_entropy():
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 4, requires_grad=True)
    boxes = torch.rand(2, 5, 4, requires_grad=True)
    empty = [{"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)} for _ in range(2)]
    out = set_loss(logits, boxes, empty)
    expected = F.cross_entropy(logits.detach().flatten(0, 1), torch.full((10,), 3))
    assert out["loss_class"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert out["loss_l1"].item() == 0.0 and out["loss_giou"].item() == 0.0
    _, (logits_grad, boxes_grad) = backward_through(support.entry, [set_loss, "loss", logits, boxes, empty])
    assert boxes_grad is not None and float(boxes_grad.abs().max()) == 0.0
    assert float(logits_grad.abs().max()) > 0


@LOSS
def test_set_loss_sums_the_auxiliary_losses_of_every_layer():
    torch.manual_seed(2)
    logits, boxes = torch.randn(3, 2, 6, 4), torch.rand(3, 2, 6, 4) * 0.5 + 0.25
    targets = _targets()
    total = sum(set_loss(logits[i], boxes[i], targets)["loss"] for i in range(3))
    out = set_loss(logits, boxes, targets)
    assert out["loss"].item() == pytest.approx(total.item(), rel=1e-6)
    assert out["loss_l1"].item() == pytest.approx(set_loss(logits[2], boxes[2], targets)["loss_l1"].item())


@LOSS
def test_matching_cost_terms():
    logits = torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2]])
    target = {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}
    cost = matching_cost(logits, boxes, target, {"class": 1.0, "l1": 0.0, "giou": 0.0})
    assert cost[:, 0].tolist() == pytest.approx([-1 / 3, -float(logits[1].softmax(0)[0])])
    cost = matching_cost(logits, boxes, target, {"class": 0.0, "l1": 1.0, "giou": 1.0})
    assert cost[0, 0].item() == pytest.approx(-1.0)  # L1 0, GIoU 1
    assert cost[1, 0].item() > 1.0  # L1 0.6, GIoU < 0


@LOSS
def test_match_predictions_equals_the_hungarian_algorithm_image_by_image():
    # one cost matrix for the whole batch, then each image's block: the same as matching image by image
    # (images without targets, with fewer targets than the 8 queries, and with more)
    gen = torch.Generator().manual_seed(4)
    for _ in range(20):
        logits, boxes = torch.randn(6, 8, 5, generator=gen), torch.rand(6, 8, 4, generator=gen) * 0.5 + 0.1
        targets = []
        for size in torch.randint(0, 11, (6,), generator=gen).tolist():
            targets.append({"labels": torch.randint(0, 4, (size,), generator=gen),
                            "boxes": torch.rand(size, 4, generator=gen) * 0.5 + 0.1})
        for (queries, which), logit, box, target in zip(match_predictions(logits, boxes, targets), logits, boxes,
                                                        targets, strict=True):
            rows, cols = hungarian(matching_cost(logit, box, target)) if len(target["labels"]) else ([], [])
            assert queries.tolist() == list(rows) and which.tolist() == list(cols)
    empty = [{"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}] * 2
    assert all(q.numel() == 0 and t.numel() == 0 for q, t in match_predictions(logits[:2], boxes[:2], empty))


@LOSS
def test_weighted_cross_entropy_matches_pytorch():
    torch.manual_seed(3)
    logits = torch.randn(20, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 5, (20,))
    weights = torch.tensor([1.0, 1.0, 0.5, 2.0, 0.1], dtype=torch.float64)
    ours, (g1,) = backward_through(weighted_cross_entropy, [logits, labels, weights])
    ref = F.cross_entropy(logits, labels, weight=weights)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    g2, = torch.autograd.grad(ref, logits)
    assert torch.allclose(g1, g2, atol=1e-12)


@GIVEN
def test_set_loss_refuses_malformed_targets_clearly():
    logits, boxes = torch.zeros(1, 4, 4), torch.rand(1, 4, 4)
    with pytest.raises(ValueError, match="list of B = 1"):
        set_loss(logits, boxes, [])
    with pytest.raises(ValueError, match="'labels'"):
        set_loss(logits, boxes, [{"boxes": torch.zeros(1, 4)}])
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)"):
        set_loss(logits, boxes, [{"labels": torch.tensor([3]), "boxes": torch.rand(1, 4)}])
    with pytest.raises(ValueError, match=r"\(K, 4\)"):
        set_loss(logits, boxes, [{"labels": torch.tensor([0]), "boxes": torch.rand(1, 5)}])
    with pytest.raises(ValueError, match="one per box"):
        set_loss(logits, boxes, [{"labels": torch.tensor([0, 1]), "boxes": torch.rand(1, 4)}])
    with pytest.raises(ValueError, match="w, h >= 0"):
        set_loss(logits, boxes, [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, -0.1, 0.2]])}])
    with pytest.raises(ValueError, match="must match"):
        set_loss(logits, torch.rand(1, 3, 4), [{"labels": torch.tensor([0]), "boxes": torch.rand(1, 4)}])


# --------------------------------------------------------------------------- model


@MODEL
def test_detr_shapes_and_attention():
    model = small_model()
    with torch.no_grad():
        logits, boxes = model(torch.rand(2, 3, 64, 96))
    assert logits.shape == (2, 5, 4) and boxes.shape == (2, 5, 4)
    assert float(boxes.min()) >= 0 and float(boxes.max()) <= 1
    all_logits, all_boxes = model.forward_all_layers(torch.rand(2, 3, 64, 96))
    assert all_logits.shape == (2, 2, 5, 4) and all_boxes.shape == (2, 2, 5, 4)
    attention = model.decoder_attention()
    assert attention.shape == (2, 5, 4 * 6)  # stride 16: a 4 x 6 grid
    assert torch.allclose(attention.sum(-1), torch.ones(2, 5))
    memory, pos, grid = model.encode(torch.rand(1, 3, 64, 64))
    assert memory.shape == (1, 16, 32) and pos.shape == (16, 32) and grid == (4, 4)


@GIVEN
def test_detr_refuses_bad_images_and_arguments():
    model = small_model()
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 60, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(3, 64, 64))
    with pytest.raises(TypeError, match="floats"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match="feature_stride"):
        DETR(3, feature_stride=4)
    with pytest.raises(ValueError, match="multiple of num_heads"):
        DETR(3, d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="class_names"):
        DETR(3, class_names=["a"])
    with pytest.raises(ValueError, match="query_type"):
        DETR(3, query_type="grid")


@MODEL
def test_anchor_queries_refine_their_boxes_layer_by_layer():
    model = small_model(num_decoder_layers=3)
    images = torch.rand(2, 3, 64, 64)
    last = f"box_head.{len(model.box_head) - 1}"
    weights = model.state_dict()
    model.load_state_dict({f"{last}.weight": torch.zeros_like(weights[f"{last}.weight"]),
                           f"{last}.bias": torch.zeros_like(weights[f"{last}.bias"])}, strict=False)
    with torch.no_grad():
        _, boxes = model.forward_all_layers(images)
        start = model.query_boxes.sigmoid()
        assert torch.allclose(boxes, start.expand_as(boxes), atol=1e-6), "no correction: every layer keeps the anchor"
        model.load_state_dict({f"{last}.bias": torch.tensor([0.5, 0.0, 0.0, 0.0])}, strict=False)
        _, boxes = model.forward_all_layers(images)
    # Each layer adds 0.5 to the logit of cx: layer l holds sigmoid(logit(anchor) + 0.5 (l + 1)).
    for layer in range(3):
        expected = torch.sigmoid(torch.logit(start[:, 0]) + 0.5 * (layer + 1))
        assert torch.allclose(boxes[layer, :, :, 0], expected.expand(2, -1), atol=1e-5)
    assert torch.allclose(boxes[..., 1:], start[:, 1:].expand(3, 2, -1, -1), atol=1e-6)


@MODEL
def test_learned_queries_of_the_paper_still_work():
    model = small_model(query_type="learned")
    assert not hasattr(model, "query_boxes") and model.query_embed.shape == (5, 32)
    with torch.no_grad():
        all_logits, all_boxes = model.forward_all_layers(torch.rand(2, 3, 64, 64))
    assert all_logits.shape == (2, 2, 5, 4) and all_boxes.shape == (2, 2, 5, 4)
    assert float(all_boxes.min()) >= 0 and float(all_boxes.max()) <= 1


@MODEL
def test_decode_predictions_without_nms():
    logits = torch.tensor([[[0.0, 4.0, 0.0], [3.0, 0.0, 6.0]]])  # Q = 2, C = 2
    boxes = torch.tensor([[[0.5, 0.5, 0.5, 0.25], [0.25, 0.25, 0.1, 0.1]]])
    pred = decode_predictions(logits, boxes, (64, 128), best_class_only=True)[0]
    p = logits[0].softmax(-1)
    assert pred["labels"].tolist() == [1, 0]
    assert pred["scores"].tolist() == pytest.approx([float(p[0, 1]), float(p[1, 0])])
    assert pred["boxes"][0].tolist() == pytest.approx([32.0, 24.0, 96.0, 40.0])
    assert len(decode_predictions(logits, boxes, 64, score_thresh=0.5)[0]["labels"]) == 1
    # by default every (query, class) pair is a detection of the query's box, ranked by probability:
    # query 0 class 1 (0.96), query 1 class 0 (0.05), query 0 class 0 (0.02), query 1 class 1 (0.002)
    pred = decode_predictions(logits, boxes, (64, 128))[0]
    assert pred["labels"].tolist() == [1, 0, 0, 1]
    assert pred["scores"].tolist() == pytest.approx([float(p[0, 1]), float(p[1, 0]), float(p[0, 0]), float(p[1, 1])])
    assert torch.equal(pred["boxes"][2], pred["boxes"][0]) and torch.equal(pred["boxes"][3], pred["boxes"][1])
    assert len(decode_predictions(logits, boxes, 64, score_thresh=0.01)[0]["labels"]) == 3


@MODEL
def test_detr_overfits_a_few_scenes():
    data = load_detection("detection_scenes", "train", num=4, image_size=64)
    images, gt = data["images"].float() / 255, data["gt_boxes"]
    targets = gt_boxes_to_set_targets(gt, 64)
    model = small_model(seed=0, num_classes=10, d_model=64, num_heads=4, num_queries=8)
    losses = support.train_steps(model, support.detr_loss, (images, targets), steps=150, lr=1e-3, optimizer="adamw",
                                 grad_clip=1.0)
    assert losses[-1] < losses[0] / 4
    preds = predict_detections(model, data["images"])
    assert mean_ap(preds, gt_boxes_to_targets(gt), 10) > 0.8


# --------------------------------------------------------------------------- export and command line


@DEPLOY
def test_export_equals_the_eager_model(worker_folder):
    model = small_model().eval()
    path = export.export_model(model, torch.rand(2, 3, 64, 64), f"{worker_folder}/detr.pt2")
    exported = export.load_exported(path)
    images = torch.rand(5, 3, 64, 64)
    assert export.max_difference(model, exported, images) < 1e-5
    with torch.no_grad():
        eager = decode_predictions(*model(images), 64)
        other = decode_predictions(*exported(images), 64)
    for a, b in zip(eager, other, strict=True):
        assert torch.equal(a["labels"], b["labels"]) and torch.allclose(a["boxes"], b["boxes"], atol=1e-4)
    uint8 = (images * 255).to(torch.uint8)
    for a, b in zip(predict_detections(model, uint8, batch_size=2), predict_detections(exported, uint8, batch_size=2),
                    strict=True):
        assert torch.equal(a["labels"], b["labels"]) and torch.allclose(a["scores"], b["scores"], atol=1e-5)


@DEPLOY
def test_command_line_predicts_and_exports(worker_folder):
    model = small_model(class_names=["a", "b", "c"])
    config = {**SMALL, "num_classes": 3, "class_names": ["a", "b", "c"]}
    checkpoint = f"{worker_folder}/detr_model.pt"
    export.save_model(model, config, checkpoint)
    images = [support.write_bytes(f"{worker_folder}/scene{i}.png",
                                  png_bytes((torch.rand(50, 70, 3) * 255).to(torch.uint8))) for i in range(2)]
    out = f"{worker_folder}/out"
    detr.main(["predict", *images, "--checkpoint", checkpoint, "--out", out, "--score-thresh", "0"])
    result = json.loads(support.read_text(f"{out}/predictions.json"))
    assert [r["image"] for r in result["images"]] == images
    # threshold 0: every (query, class) pair is a detection
    assert all(len(r["detections"]) == SMALL["num_queries"] * 3 for r in result["images"])
    assert {d["class"] for r in result["images"] for d in r["detections"]} <= {"a", "b", "c"}
    # one box convention for every paper: corners in the original 70 x 50 image's pixels, stated in the file
    assert result["box_format"] == BOX_FORMAT and all((r["width"], r["height"]) == (70, 50) for r in result["images"])
    with torch.no_grad():
        expected = decode_predictions(*model.eval()(export.read_images(images, 64, 3)), 64, 0.0)
    scale = np.array([70 / 64, 50 / 64, 70 / 64, 50 / 64])
    for record, pred in zip(result["images"], expected, strict=True):
        assert np.allclose([d["box"] for d in record["detections"]], pred["boxes"].numpy() * scale, atol=0.01)
    assert sorted(name for name in load("os").listdir(out) if name.endswith(".png")) == ["scene0_detr.png",
                                                                                          "scene1_detr.png"]
    # The export gives the same detections as the checkpoint.
    pt2 = f"{worker_folder}/detr.pt2"
    detr.main(["export", "--checkpoint", checkpoint, "--out", pt2])
    out2 = f"{worker_folder}/out2"
    detr.main(["predict", *images, "--export", pt2, "--out", out2, "--score-thresh", "0"])
    again = json.loads(support.read_text(f"{out2}/predictions.json"))
    for a, b in zip(result["images"], again["images"], strict=True):
        assert [d["label"] for d in a["detections"]] == [d["label"] for d in b["detections"]]
        assert [d["class"] for d in a["detections"]] == [d["class"] for d in b["detections"]], \
            "the export carries the class names"
        assert np.allclose([d["box"] for d in a["detections"]], [d["box"] for d in b["detections"]], atol=0.02)
