"""A5 Faster R-CNN (``A5_detection/two_stage_detector.py``): anchors, matching, box coding, sampling,
losses, the RPN and the whole detector.

Box coding is checked against ``torchvision.models.detection._utils.BoxCoder`` (weights 1, 1, 1, 1),
the losses against ``F.binary_cross_entropy_with_logits`` / ``F.cross_entropy`` (values and
gradients), matching and sampling on hand-built cases.  The detector is trained for a few steps
on four hand-painted scenes with a tiny stand-in backbone (the interface of
``common.DetectorBackboneWithFPN``), so these tests need neither data files nor the real backbone.
"""

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.ops as tvo
from detection_support import fpn_centres, reference_voc
from torchvision.models.detection._utils import BoxCoder
from under_test import load, rules_of

rcnn = load("A5_detection.two_stage_detector")
support = load("detection_support")  # the stand-in backbone and training, where the student's model lives
ut = load("under_test")
RPN = rcnn.RPN
FasterRCNN = rcnn.FasterRCNN
RPNPredictionNetwork = rcnn.RPNPredictionNetwork
assign_fpn_levels = rcnn.assign_fpn_levels
generate_fpn_anchors = rcnn.generate_fpn_anchors
iou = rcnn.iou
mix_gt_with_proposals = rcnn.mix_gt_with_proposals
objectness_loss = rcnn.objectness_loss
predict_detections = rcnn.predict_detections
rcnn_apply_deltas_to_anchors = rcnn.rcnn_apply_deltas_to_anchors
rcnn_get_deltas_from_anchors = rcnn.rcnn_get_deltas_from_anchors
rcnn_match_anchors_to_gt = rcnn.rcnn_match_anchors_to_gt
reassign_proposals_to_fpn_levels = rcnn.reassign_proposals_to_fpn_levels
sample_rpn_training = rcnn.sample_rpn_training
softmax_cross_entropy = rcnn.softmax_cross_entropy
UNIT_CODER = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))  # torchvision's box coding: the reference of the deltas

# Score groups of `python -m course.grade` (README, "For teachers"): points are each group's total.
ANCHORS = pytest.mark.grade("generate_fpn_anchors", points=3)
HEAD = pytest.mark.grade("RPNPredictionNetwork", points=2)
MATCH = pytest.mark.grade("rcnn_match_anchors_to_gt", points=4)
DELTAS = pytest.mark.grade("box deltas", points=3)
SAMPLE = pytest.mark.grade("sample_rpn_training", points=2)
MIX = pytest.mark.grade("mix_gt_with_proposals", points=1)
LOSSES = pytest.mark.grade("losses", points=3)
LEVELS = pytest.mark.grade("FPN level of a RoI", points=1)
DETECTOR = pytest.mark.grade("RPN and Faster R-CNN", points=6)
GIVEN = pytest.mark.grade("given code: input checks", points=0)

F64 = torch.float64
STRIDES = {"p3": 8, "p4": 16, "p5": 32}
# The rules each docstring states: how many Python loops (None: not limited), and what it may not call.
RULES = {
    "generate_fpn_anchors": (ANCHORS, 1, ()),  # one loop, over the levels
    "rcnn_match_anchors_to_gt": (MATCH, 0, ()),
    "rcnn_get_deltas_from_anchors": (DELTAS, 0, ()),
    "rcnn_apply_deltas_to_anchors": (DELTAS, 0, ()),
    "objectness_loss": (LOSSES, None, ("binary_cross_entropy_with_logits",)),
    "softmax_cross_entropy": (LOSSES, None, ("cross_entropy",)),
    "assign_fpn_levels": (LEVELS, 0, ()),
}


def rule_mark(mark):
    """The same group and points, marked as a rule check: when it fails, course.grade scores the group 0."""
    return pytest.mark.grade(mark.args[0], points=mark.kwargs["points"], rule=True)


@pytest.mark.parametrize("name", [pytest.param(n, marks=rule_mark(mark)) for n, (mark, *_) in RULES.items()])
def test_rules_of_the_docstrings(name):
    """The docstrings' rules: no loops where they say so, and not the library loss the tests compare with."""
    _, loops, forbid = RULES[name]
    rules_of("A5_detection.two_stage_detector", name, loops=loops, forbid=forbid)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def sampler_gen(seed):
    """A seeded ``torch.Generator`` made where the sampler runs (a generator is not plain data: it cannot be sent)."""
    return load("torch").Generator().manual_seed(seed)


def random_boxes(n, g, size=60.0, min_side=2.0, max_side=30.0, dtype=F64):
    corner = torch.rand(n, 2, generator=g, dtype=F64) * size
    side = min_side + torch.rand(n, 2, generator=g, dtype=F64) * (max_side - min_side)
    return torch.cat([corner, corner + side], dim=1).to(dtype)


# --------------------------------------------------------------------------- a tiny stand-in world


def set_params(module, **values):
    """Give parameters of a module new values, by name: through ``load_state_dict``, since the module may live
    in the grader's worker, where a tensor read from it is a copy."""
    state = module.state_dict()
    state.update(values)
    module.load_state_dict(state)


def roi_delta_std() -> torch.Tensor:
    return torch.tensor(rcnn.ROI_DELTA_STD)


def painted_scenes():
    """Four 64x64 scenes: red squares are class 0, green bars class 1, on a dark noisy background."""
    g = gen(5)
    images = 0.1 + 0.05 * torch.rand(4, 3, 64, 64, generator=g)
    boxes = [[(8, 8, 28, 28, 0), (36, 30, 44, 58, 1)],
             [(30, 6, 54, 30, 0)],
             [(4, 36, 12, 60, 1), (24, 40, 44, 60, 0), (48, 4, 56, 28, 1)],
             [(20, 16, 44, 40, 0)]]
    gt = torch.full((4, 3, 5), -1.0)
    for i, rows in enumerate(boxes):
        for j, (x1, y1, x2, y2, c) in enumerate(rows):
            gt[i, j] = torch.tensor([x1, y1, x2, y2, c], dtype=torch.float32)
            images[i, :, y1:y2, x1:x2] = torch.tensor([0.9, 0.2, 0.2] if c == 0 else [0.2, 0.9, 0.2])[:, None, None]
    return images, gt


def tiny_rpn(**kw):
    options = dict(fpn_channels=16, stem_channels=[16], batch_size_per_image=32, anchor_stride_scale=2,
                   anchor_iou_thresholds=(0.3, 0.6), pre_nms_topk=30, post_nms_topk=15)
    options.update(kw)
    return RPN(**options)


def tiny_detector():
    return FasterRCNN(support.TinyBackbone(16), tiny_rpn(), stem_channels=[16], num_classes=2, batch_size_per_image=16,
                      roi_size=(4, 4), canonical_size=32, canonical_level=4)


# --------------------------------------------------------------------------- anchors and the head


@ANCHORS
def test_anchors_by_hand():
    locations = fpn_centres({"p3": (2, 3), "p4": (1, 1)}, {"p3": 8, "p4": 16})
    anchors = generate_fpn_anchors(locations, {"p3": 8, "p4": 16}, stride_scale=2, aspect_ratios=[0.5, 1.0, 2.0])
    assert set(anchors) == {"p3", "p4"}
    assert anchors["p3"].shape == (2 * 3 * 3, 4) and anchors["p4"].shape == (3, 4)
    for level, stride in (("p3", 8), ("p4", 16)):
        a = anchors[level].reshape(-1, 3, 4)
        centres = (a[..., :2] + a[..., 2:]) / 2
        torch.testing.assert_close(centres, locations[level][:, None, :].expand(-1, 3, -1))
        width, height = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
        torch.testing.assert_close(width * height, torch.full_like(width, (2.0 * stride) ** 2))
        torch.testing.assert_close(height / width, torch.tensor([0.5, 1.0, 2.0]).expand_as(width))
    # location (x=4, y=4) of p3, square anchor of side 16
    torch.testing.assert_close(anchors["p3"][1], torch.tensor([-4.0, -4.0, 12.0, 12.0]))
    # second location is (x=12, y=4): row-major order
    torch.testing.assert_close(anchors["p3"][4], torch.tensor([4.0, -4.0, 20.0, 12.0]))
    s = 16 * math.sqrt(2)  # p4 centre (8, 8), ratio 0.5, area 32 ** 2: width 32 * sqrt(2), height 16 * sqrt(2)
    torch.testing.assert_close(anchors["p4"][0], torch.tensor([8 - s, 8 - s / 2, 8 + s, 8 + s / 2]))


@HEAD
def test_rpn_head_shapes_follow_anchor_order():
    net = RPNPredictionNetwork(in_channels=5, stem_channels=[6, 7], num_anchors=3)
    feats = {"p3": torch.randn(2, 5, 4, 6), "p4": torch.randn(2, 5, 2, 3)}
    logits, deltas = net(feats)
    assert logits["p3"].shape == (2, 4 * 6 * 3) and deltas["p3"].shape == (2, 4 * 6 * 3, 4)
    assert logits["p4"].shape == (2, 2 * 3 * 3) and deltas["p4"].shape == (2, 2 * 3 * 3, 4)
    # with zero weights the outputs are the biases: anchor a of every location has bias a
    set_params(net.pred_obj, weight=torch.zeros(net.pred_obj.weight.shape), bias=torch.arange(3.0))
    set_params(net.pred_box, weight=torch.zeros(net.pred_box.weight.shape), bias=torch.arange(12.0))
    logits, deltas = net(feats)
    torch.testing.assert_close(logits["p4"][1], torch.arange(3.0).repeat(6))
    torch.testing.assert_close(deltas["p3"][0], torch.arange(12.0).reshape(3, 4).repeat(24, 1))


@HEAD
def test_rpn_head_location_order_matches_locations():
    net = RPNPredictionNetwork(in_channels=1, stem_channels=[1], num_anchors=1)
    # stem = identity on non-negative input, objectness = the feature itself
    identity = torch.zeros(net.stem_rpn[0].weight.shape)
    identity[0, 0, 1, 1] = 1.0
    set_params(net.stem_rpn[0], weight=identity)
    set_params(net.pred_obj, weight=torch.ones(net.pred_obj.weight.shape))
    feats = torch.arange(6.0).reshape(1, 1, 2, 3)
    logits, _ = net({"p3": feats})
    torch.testing.assert_close(logits["p3"][0], torch.arange(6.0))


# --------------------------------------------------------------------------- matching


@MATCH
def test_iou_is_box_iou():
    g = gen(1)
    a, b = random_boxes(7, g), random_boxes(5, g)
    torch.testing.assert_close(iou(a, b), tvo.box_iou(a, b))


@MATCH
def test_matching_by_hand():
    gt = torch.tensor([[0, 0, 10, 10, 2], [40, 40, 50, 50, 1], [-1, -1, -1, -1, -1]], dtype=F64)
    anchors = torch.tensor([[0, 0, 10, 10],     # IoU 1 with gt 0: foreground
                            [0, 0, 10, 4],      # IoU 0.4: between the thresholds, ignored
                            [0, 0, 10, 2],      # IoU 0.2: background
                            [20, 20, 30, 30],   # IoU 0: background
                            [40, 40, 50, 45],   # IoU 0.5 with gt 1, its best anchor: foreground by the rule
                            [40, 40, 50, 42]],  # IoU 0.2 with gt 1: background
                           dtype=F64)
    matched = rcnn_match_anchors_to_gt(anchors, gt, (0.3, 0.6))
    assert matched.shape == (6, 5)
    torch.testing.assert_close(matched[0], gt[0])
    assert (matched[1] == -1e8).all()
    assert (matched[2] == -1).all() and (matched[3] == -1).all() and (matched[5] == -1).all()
    torch.testing.assert_close(matched[4], gt[1])


@MATCH
def test_matching_thresholds_are_inclusive_at_high_and_low():
    gt = torch.tensor([[0, 0, 10, 10, 0]], dtype=F64)
    anchors = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 6], [0, 0, 10, 3], [0, 0, 10, 2.5]], dtype=F64)
    matched = rcnn_match_anchors_to_gt(anchors, gt, (0.3, 0.6))
    torch.testing.assert_close(matched[1], gt[0])  # IoU exactly 0.6: foreground
    assert (matched[2] == -1e8).all()  # IoU exactly 0.3: not below low, ignored
    assert (matched[3] == -1).all()  # 0.25: background


@MATCH
def test_matching_best_anchor_rule_ties_and_unreachable_boxes():
    gt = torch.tensor([[0, 0, 4, 4, 3], [100, 100, 104, 104, 1]], dtype=F64)
    anchors = torch.tensor([[0, 0, 8, 8], [0, 0, 8, 8], [2, 2, 10, 10], [50, 50, 60, 60]], dtype=F64)
    matched = rcnn_match_anchors_to_gt(anchors, gt, (0.3, 0.7))
    # both anchors tied at the best IoU 0.25 become foreground; gt 1 overlaps no anchor: nothing rescued
    torch.testing.assert_close(matched[0], gt[0])
    torch.testing.assert_close(matched[1], gt[0])
    assert (matched[2] == -1).all() and (matched[3] == -1).all()


@MATCH
def test_matching_anchor_best_for_two_boxes_takes_the_closer():
    gt = torch.tensor([[0, 0, 10, 10, 0], [0, 0, 10, 12, 1]], dtype=F64)
    anchors = torch.tensor([[0, 0, 10, 11], [50, 50, 60, 60]], dtype=F64)
    matched = rcnn_match_anchors_to_gt(anchors, gt, (0.95, 0.99))
    torch.testing.assert_close(matched[0], gt[1])  # IoU 11/12 > 10/11
    assert (matched[1] == -1).all()


@MATCH
def test_matching_without_gt_is_all_background():
    anchors = random_boxes(5, gen(2))
    padding = torch.full((3, 5), -1.0, dtype=F64)
    for gt in (padding, padding[:0]):
        matched = rcnn_match_anchors_to_gt(anchors, gt, (0.3, 0.6))
        assert matched.shape == (5, 5) and (matched == -1).all()


@MATCH
def test_matching_padding_rows_never_match():
    gt = torch.tensor([[-1, -1, -1, -1, -1], [0, 0, 10, 10, 4]], dtype=F64)
    anchors = torch.tensor([[-1, -1, -1, -1], [0, 0, 10, 10], [-2, -2, 0, 0]], dtype=F64)
    matched = rcnn_match_anchors_to_gt(anchors, gt, (0.3, 0.6))
    torch.testing.assert_close(matched[1], gt[1])
    assert (matched[0] == -1).all() and (matched[2] == -1).all()


# --------------------------------------------------------------------------- box coding


@DELTAS
def test_deltas_match_torchvision_box_coder_and_round_trip():
    g = gen(3)
    anchors, boxes = random_boxes(50, g), random_boxes(50, g)
    coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    deltas = rcnn_get_deltas_from_anchors(anchors, boxes)
    torch.testing.assert_close(deltas, coder.encode_single(boxes, anchors), rtol=1e-12, atol=1e-12)
    decoded = rcnn_apply_deltas_to_anchors(deltas, anchors)
    torch.testing.assert_close(decoded, boxes, rtol=1e-12, atol=1e-12)
    small = torch.randn(50, 4, generator=g, dtype=F64)  # inside both clamps
    torch.testing.assert_close(rcnn_apply_deltas_to_anchors(small, anchors), coder.decode_single(small, anchors))


@DELTAS
def test_deltas_by_hand_and_markers():
    anchors = torch.tensor([[0, 0, 10, 20], [0, 0, 10, 20], [0, 0, 10, 20]], dtype=F64)
    gt = torch.tensor([[5, 10, 25, 30, 1], [-1, -1, -1, -1, -1], [-1e8] * 5], dtype=F64)
    deltas = rcnn_get_deltas_from_anchors(anchors, gt)
    # centre (15, 20) vs (5, 10); size (20, 20) vs (10, 20)
    torch.testing.assert_close(deltas[0], torch.tensor([1.0, 0.5, math.log(2.0), 0.0], dtype=F64))
    assert (deltas[1:] == -1e8).all()


@DELTAS
def test_apply_deltas_clamps_sizes():
    anchors = torch.tensor([[0.0, 0.0, 8.0, 8.0]])
    boxes = rcnn_apply_deltas_to_anchors(torch.tensor([[0.0, 0.0, 100.0, -100.0]]), anchors)
    assert torch.isfinite(boxes).all()
    torch.testing.assert_close(boxes[0, 2] - boxes[0, 0], torch.tensor(224.0))
    assert 0 <= float(boxes[0, 3] - boxes[0, 1]) < 1e-6  # dh is only clamped from above


# --------------------------------------------------------------------------- sampling and mixing


def matched_rows(num_fg, num_bg, num_ignored, seed=0):
    g = gen(seed)
    rows = [torch.cat([random_boxes(num_fg, g), torch.zeros(num_fg, 1, dtype=F64)], 1),
            torch.full((num_bg, 5), -1.0, dtype=F64), torch.full((num_ignored, 5), -1e8, dtype=F64)]
    return torch.cat(rows)[torch.randperm(num_fg + num_bg + num_ignored, generator=g)]


@SAMPLE
@pytest.mark.parametrize("num_fg, num_bg, expect_fg, expect_bg",
                         [(10, 50, 4, 12), (2, 50, 2, 14), (10, 5, 4, 5), (0, 3, 0, 3)])
def test_sampling_counts_and_sets(num_fg, num_bg, expect_fg, expect_bg):
    rows = matched_rows(num_fg, num_bg, 20)
    fg, bg = sample_rpn_training(rows, num_samples=16, fg_fraction=0.25)
    assert fg.dtype == torch.int64 and bg.dtype == torch.int64
    assert (fg.numel(), bg.numel()) == (expect_fg, expect_bg)
    assert (rows[fg, 4] >= 0).all() and (rows[bg, 4] == -1).all()
    assert len(set(fg.tolist())) == fg.numel() and len(set(bg.tolist())) == bg.numel()


@SAMPLE
def test_sampling_is_random_and_deterministic_under_a_seed():
    rows = matched_rows(40, 200, 10)
    draws = [sample_rpn_training(rows, 32, 0.5, generator=sampler_gen(seed)) for seed in (7, 7, 8)]
    assert torch.equal(draws[0][0], draws[1][0]) and torch.equal(draws[0][1], draws[1][1])
    assert not torch.equal(draws[0][1], draws[2][1])
    torch.manual_seed(3)
    first = sample_rpn_training(rows, 32, 0.5)
    torch.manual_seed(3)
    again = sample_rpn_training(rows, 32, 0.5)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    # over many draws every background row gets picked: the draw is not a fixed prefix
    seen = torch.cat([sample_rpn_training(rows, 32, 0.5, generator=sampler_gen(s))[1] for s in range(200)])
    assert set(seen.tolist()) == set((rows[:, 4] == -1).nonzero()[:, 0].tolist())


@MIX
def test_mix_gt_with_proposals():
    proposals = {"p3": [torch.zeros(3, 4), torch.ones(0, 4)], "p4": [torch.ones(2, 4), torch.ones(1, 4)]}
    gt = torch.tensor([[[1, 2, 3, 4, 0], [-1, -1, -1, -1, -1]], [[5, 6, 7, 8, 1], [9, 9, 12, 12, 0]]],
                      dtype=torch.float32)
    mixed = mix_gt_with_proposals(proposals, gt)
    torch.testing.assert_close(mixed["p3"][0], torch.cat([torch.zeros(3, 4), gt[0, :1, :4]]))
    torch.testing.assert_close(mixed["p3"][1], gt[1, :, :4])
    assert mixed["p4"][0].shape == (2, 4) and mixed["p4"][1].shape == (1, 4)
    assert proposals["p3"][0].shape == (3, 4)  # the input is not modified


# --------------------------------------------------------------------------- losses


@LOSSES
def test_objectness_loss_matches_torch_values_and_gradients():
    g = gen(4)
    logits = (torch.randn(40, generator=g, dtype=F64) * 30).requires_grad_()
    targets = (torch.rand(40, generator=g, dtype=F64) > 0.5).to(F64)
    ours, (g1,) = ut.backward_through(objectness_loss, [logits, targets])  # autograd where the loss lives
    ref = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    torch.testing.assert_close(ours, ref.detach(), rtol=1e-12, atol=1e-12)
    (g2,) = torch.autograd.grad(ref.sum(), logits)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-12)


@LOSSES
@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_softmax_cross_entropy_matches_torch(scale):
    g = gen(5)
    logits = (torch.randn(30, 11, generator=g, dtype=F64) * scale).requires_grad_()
    labels = torch.randint(0, 11, (30,), generator=g)
    ours, (g1,) = ut.backward_through(softmax_cross_entropy, [logits, labels])  # autograd where the loss lives
    ref = F.cross_entropy(logits, labels)
    torch.testing.assert_close(ours, ref.detach(), rtol=1e-12, atol=1e-12)
    (g2,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)


@LEVELS
def test_fpn_level_rule():
    side = torch.tensor([224.0, 112.0, 111.0, 448.0, 10.0, 2000.0, 223.0])
    boxes = torch.stack([torch.zeros_like(side), torch.zeros_like(side), side, side], dim=1)
    # levels 4, 3, 2 -> 3, 5, 3 (clamped), 5 (clamped), 3 (floor of 3.99)
    assert assign_fpn_levels(boxes, STRIDES).tolist() == [1, 0, 0, 2, 0, 2, 0]
    assert assign_fpn_levels(boxes[:1] / 7, STRIDES, canonical_size=32).tolist() == [1]


@LEVELS
def test_reassign_proposals_to_fpn_levels_sorts_boxes_and_gt_by_size():
    """EECS 498's given function, on top of ``assign_fpn_levels``: dict "p3".."p5" of per-image lists."""
    side = torch.tensor([224.0, 112.0, 448.0])
    proposals = [torch.stack([torch.zeros_like(side), torch.zeros_like(side), side, side], dim=1), torch.zeros(0, 4)]
    gt = torch.full((2, 2, 5), -1.0)
    gt[1, 0] = torch.tensor([0.0, 0.0, 120.0, 120.0, 2.0])
    levels = reassign_proposals_to_fpn_levels(proposals, gt)
    assert list(levels) == ["p3", "p4", "p5"] and all(len(v) == 2 for v in levels.values())
    assert levels["p3"][0].tolist() == [[0.0, 0.0, 112.0, 112.0]] and levels["p3"][1].tolist() == [[0, 0, 120, 120]]
    assert levels["p4"][0].tolist() == [[0.0, 0.0, 224.0, 224.0]] and levels["p4"][1].shape == (0, 4)
    assert levels["p5"][0].tolist() == [[0.0, 0.0, 448.0, 448.0]]
    assert sum(v[0].shape[0] for v in reassign_proposals_to_fpn_levels(proposals).values()) == 3


# --------------------------------------------------------------------------- RPN and Faster R-CNN


@DETECTOR
def test_rpn_proposals_shapes_and_inside_the_image():
    rpn = tiny_rpn().eval()
    feats = support.TinyBackbone(16)(torch.rand(2, 3, 64, 64))
    out = rpn(feats, STRIDES)
    assert set(out) == {"proposals"} and set(out["proposals"]) == set(STRIDES)
    for per_image in out["proposals"].values():
        assert len(per_image) == 2
        for boxes in per_image:
            assert boxes.dim() == 2 and boxes.shape[1] == 4 and 0 < boxes.shape[0] <= 15
            assert (boxes >= 0).all() and (boxes <= 64).all()
            assert (boxes[:, 2:] > boxes[:, :2]).all()
            assert tvo.box_iou(boxes, boxes).fill_diagonal_(0).max() <= 0.7 + 1e-6


@DETECTOR
def test_rpn_losses_are_what_the_recipe_says():
    rpn = tiny_rpn(batch_size_per_image=1000, fg_fraction=1.0)
    # zero head: every logit 0, every delta 0
    set_params(rpn.pred_net.pred_obj, weight=torch.zeros(rpn.pred_net.pred_obj.weight.shape))
    set_params(rpn.pred_net.pred_box, weight=torch.zeros(rpn.pred_net.pred_box.weight.shape))
    images, gt = painted_scenes()
    feats = support.TinyBackbone(16)(images[:1])
    out = rpn(feats, STRIDES, gt[:1])
    # all-zero logits: BCE = log 2 whatever the targets
    torch.testing.assert_close(out["loss_rpn_obj"], torch.tensor(math.log(2.0)))
    anchors = torch.cat(list(rpn.anchors(feats, STRIDES).values()))
    matched = rcnn_match_anchors_to_gt(anchors, gt[0], (0.3, 0.6))
    used = (matched[:, 4] >= 0) | (matched[:, 4] == -1)
    fg = matched[:, 4] >= 0
    expected = UNIT_CODER.encode_single(matched[fg, :4], anchors[fg]).abs().sum() / used.sum()
    torch.testing.assert_close(out["loss_rpn_box"], expected)


@DETECTOR
def test_faster_rcnn_losses_decrease_on_four_scenes():
    model = tiny_detector()
    images, gt = painted_scenes()
    history = support.train_steps(model, images, gt, steps=80, lr=0.01, key="loss")  # Adam, where the model lives
    assert set(history[0]) == {"loss_rpn_obj", "loss_rpn_box", "loss_cls", "loss_box", "loss"}
    assert all(math.isfinite(v) for h in history for v in h.values())
    first = {k: sum(h[k] for h in history[:5]) / 5 for k in history[0]}
    last = {k: sum(h[k] for h in history[-5:]) / 5 for k in history[0]}
    # (loss_box may grow at first: the better the RPN, the more foreground proposals besides the gt boxes)
    for key in ("loss_rpn_obj", "loss_rpn_box", "loss_cls"):
        assert last[key] < 0.7 * first[key], (key, first[key], last[key])
    # it now finds the objects of its training scenes
    model.eval()
    predictions = predict_detections(model, images, score_thresh=0.05)
    targets = [{"boxes": g[g[:, 4] >= 0, :4], "labels": g[g[:, 4] >= 0, 4].long()} for g in gt]
    assert reference_voc(predictions, targets, num_classes=2)[0] > 0.5


@DETECTOR
def test_second_stage_box_loss_is_l1_on_normalised_deltas_of_the_foreground():
    torch.manual_seed(0)
    model = tiny_detector()
    images, gt = painted_scenes()
    sampled = {}
    original = model.roi_features

    def remember(feats, proposals):  # keep the proposals the head saw
        sampled["boxes"] = [p.detach().clone() for p in proposals]
        return original(feats, proposals)

    model.roi_features = remember
    set_params(model.box_pred, weight=torch.zeros(model.box_pred.weight.shape),
               bias=torch.tensor([0.5, -0.25, 0.1, 0.3]))
    with torch.no_grad():
        losses = model(images, gt)
    count, total = 0, 0.0
    for boxes, g in zip(sampled["boxes"], gt, strict=True):
        # the gt boxes are among the proposals, so foreground is exactly "IoU >= 0.5 with a gt box"
        g = g[g[:, 4] >= 0]
        best_iou, best = tvo.box_iou(boxes, g[:, :4]).max(dim=1)
        fg = best_iou >= 0.5
        target = UNIT_CODER.encode_single(g[best[fg], :4], boxes[fg]) / roi_delta_std()
        total += float((torch.tensor([0.5, -0.25, 0.1, 0.3]) - target).abs().sum())
        count += boxes.shape[0]
    assert count > 0
    assert abs(float(losses["loss_box"]) - total / count) < 1e-4


@DETECTOR
def test_inference_moves_each_proposal_by_its_predicted_deltas():
    torch.manual_seed(0)
    model = tiny_detector().eval()
    images, _ = painted_scenes()
    shift = torch.tensor([1.0, -0.5, 0.5, 0.0])  # x by 0.1 width, y by -0.05 height, width x e^0.1
    # every proposal: class 1, same score
    set_params(model.cls_pred, weight=torch.zeros(model.cls_pred.weight.shape), bias=torch.tensor([0.0, 0.0, 5.0]))
    set_params(model.box_pred, weight=torch.zeros(model.box_pred.weight.shape), bias=shift)
    with torch.no_grad():
        proposals = model.rpn(model.backbone(images), model.fpn_strides, image_size=(64, 64))["proposals"]
    # class 0's probability (0.007) is under the threshold: only class-1 detections
    boxes, scores, classes = model.inference(images, score_thresh=0.05, nms_thresh=0.5)
    score = float(torch.softmax(torch.tensor([0.0, 0.0, 5.0]), 0)[2])
    for i in range(images.shape[0]):
        mine = torch.cat([proposals[level][i] for level in proposals])
        moved = UNIT_CODER.decode_single((shift * roi_delta_std()).expand(len(mine), 4), mine)
        moved = moved.clamp(0, 64)  # clipped to the 64 x 64 image
        same_scores = torch.full((len(mine),), score)
        keep = tvo.batched_nms(moved, same_scores, torch.ones(len(mine), dtype=torch.int64), 0.5)[:100]
        torch.testing.assert_close(boxes[i], moved[keep])
        assert (classes[i] == 1).all() and torch.allclose(scores[i], same_scores[keep])


@DETECTOR
def test_inference_offers_every_class_above_the_threshold():
    torch.manual_seed(0)
    model = tiny_detector().eval()
    images, _ = painted_scenes()
    # every proposal: class 0 0.36, class 1 0.59
    set_params(model.cls_pred, weight=torch.zeros(model.cls_pred.weight.shape), bias=torch.tensor([0.0, 2.0, 2.5]))
    set_params(model.box_pred, weight=torch.zeros(model.box_pred.weight.shape), bias=torch.zeros(4))
    probs = torch.softmax(torch.tensor([0.0, 2.0, 2.5]), 0)
    boxes, scores, classes = model.inference(images, score_thresh=0.3, nms_thresh=0.5)
    one_boxes, one_scores, one_classes = model.inference(images, score_thresh=0.3, nms_thresh=0.5,
                                                         best_class_only=True)
    for i in range(images.shape[0]):
        # each class ranks the same proposals on its own: the same boxes come back once per class
        first, second = classes[i] == 1, classes[i] == 0
        assert first.any() and torch.equal(boxes[i][first], boxes[i][second])
        assert torch.allclose(scores[i][first], probs[2]) and torch.allclose(scores[i][second], probs[1])
        # one class per proposal: only the class-1 half
        assert (one_classes[i] == 1).all() and torch.equal(one_boxes[i], boxes[i][first])
        assert torch.equal(one_scores[i], scores[i][first])


@DETECTOR
def test_inference_shapes_and_prediction_dicts():
    model = tiny_detector().eval()
    images, _ = painted_scenes()
    boxes, scores, classes = model.inference(images, score_thresh=0.0, nms_thresh=0.5)
    assert len(boxes) == len(scores) == len(classes) == 4
    for b, s, c in zip(boxes, scores, classes, strict=True):
        assert b.shape == (s.shape[0], 4) and c.shape == s.shape and c.dtype == torch.int64
        assert s.shape[0] > 0 and ((c >= 0) & (c < 2)).all()
        assert (s[1:] <= s[:-1]).all() and (s >= 0).all() and (s <= 1).all()
    high = model.inference(images, score_thresh=0.99, nms_thresh=0.5)[1]
    assert all((s >= 0.99).all() for s in high)
    assert model(images) is not None and not model.training  # eval-mode forward = inference
    predictions = predict_detections(model, (images * 255).to(torch.uint8), score_thresh=0.0, batch_size=3)
    assert len(predictions) == 4 and set(predictions[0]) == {"boxes", "scores", "labels"}
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 4
    targets[0] = {"boxes": torch.tensor([[8.0, 8.0, 28.0, 28.0]]), "labels": torch.tensor([0])}
    assert 0.0 <= reference_voc(predictions, targets, num_classes=2)[0] <= 1.0


# --------------------------------------------------------------------------- errors


@GIVEN
def test_malformed_ground_truth_is_refused():
    anchors = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    with pytest.raises(ValueError, match="x2 >= x1"):
        rcnn_match_anchors_to_gt(anchors, torch.tensor([[5.0, 0.0, 2.0, 4.0, 1.0]]), (0.3, 0.6))
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        rcnn_match_anchors_to_gt(anchors, torch.tensor([[0.0, 0.0, 2.0, 4.0]]), (0.3, 0.6))
    with pytest.raises(ValueError, match="low <= high"):
        rcnn_match_anchors_to_gt(anchors, torch.tensor([[0.0, 0.0, 2.0, 4.0, 1.0]]), (0.7, 0.3))
    with pytest.raises(ValueError, match="integer class"):
        rcnn_match_anchors_to_gt(anchors, torch.tensor([[0.0, 0.0, 2.0, 4.0, 0.5]]), (0.3, 0.6))
    with pytest.raises(TypeError, match="floating"):
        rcnn_match_anchors_to_gt(anchors, torch.tensor([[0, 0, 2, 4, 1]]), (0.3, 0.6))


@GIVEN
def test_detector_refuses_bad_input():
    model = tiny_detector()
    images, gt = painted_scenes()
    bad_class = gt.clone()
    bad_class[0, 0, 4] = 2  # num_classes = 2
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        model(images, bad_class)
    flipped = gt.clone()
    flipped[1, 0, [0, 2]] = flipped[1, 0, [2, 0]]
    with pytest.raises(ValueError, match="x2 >= x1"):
        model(images, flipped)
    with pytest.raises(ValueError, match=r"\(B, N, 5\)"):
        model(images, gt[..., :4])
    with pytest.raises(ValueError, match="one entry per image"):
        model(images, gt[:2])
    with pytest.raises(ValueError, match="needs gt_boxes"):
        model(images)
    with pytest.raises(TypeError, match="uint8"):
        model((images * 255).to(torch.uint8), gt)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(images[:, :1], gt)
    bad_roi_sizes = [((4, 4, 4), ValueError, "an int or a pair"), (4.0, ValueError, "an int or a pair"),
                     ((4, 0), ValueError, r"roi_size\[1\] must be >= 1"),
                     ((4, 2.5), TypeError, r"roi_size\[1\] must be an int")]
    for roi_size, error, words in bad_roi_sizes:
        with pytest.raises(error, match=words):
            FasterRCNN(support.TinyBackbone(16), tiny_rpn(), stem_channels=[16], num_classes=2, batch_size_per_image=16,
                       roi_size=roi_size)
    with pytest.raises(ValueError, match="score_thresh"):
        model.inference(images, score_thresh=1.5)


@GIVEN
def test_other_functions_refuse_bad_input():
    with pytest.raises(ValueError, match="same number of rows"):
        rcnn_get_deltas_from_anchors(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        rcnn_apply_deltas_to_anchors(torch.zeros(3, 5), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="fg_fraction"):
        sample_rpn_training(torch.zeros(3, 5), 4, 1.5)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        softmax_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="aspect_ratios"):
        generate_fpn_anchors({"p3": torch.zeros(4, 2)}, {"p3": 8}, 2, aspect_ratios=[])
    with pytest.raises(ValueError, match="list of 2"):
        mix_gt_with_proposals({"p3": [torch.zeros(0, 4)]}, torch.full((2, 1, 5), -1.0))
