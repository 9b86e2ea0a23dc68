"""A5 FCOS (``A5_detection/one_stage_detector.py``): head, matching, box coding, losses, detector.

The focal loss and the binary cross-entropy are checked against torchvision / PyTorch (values
and gradients); box coding by hand and by round trips; matching on hand-built scenes and
against a plain loop; the detector by an independent recomputation of its losses, by
overfitting four generated scenes, and by inference on a head whose outputs the test controls.
"""

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.ops as tvo
from detection_support import fpn_centres, reference_voc
from under_test import load, rules_of

from helpers.datasets import gt_boxes_to_targets, load_detection

fcos = load("A5_detection.one_stage_detector")
support = load("detection_support")  # stand-in heads and training, where the student's model lives
ut = load("under_test")
FCOS = fcos.FCOS
FCOSPredictionNetwork = fcos.FCOSPredictionNetwork
binary_cross_entropy_with_logits = fcos.binary_cross_entropy_with_logits
default_scale_ranges = fcos.default_scale_ranges
detections_to_predictions = fcos.detections_to_predictions
fcos_apply_deltas_to_locations = fcos.fcos_apply_deltas_to_locations
fcos_get_deltas_from_locations = fcos.fcos_get_deltas_from_locations
fcos_make_centerness_targets = fcos.fcos_make_centerness_targets
fcos_match_locations_to_gt = fcos.fcos_match_locations_to_gt
predict_detections = fcos.predict_detections
sigmoid_focal_loss = fcos.sigmoid_focal_loss

# Score groups of `python -m course.grade` (README, "For teachers"): points are each group's total.
HEAD = pytest.mark.grade("FCOSPredictionNetwork", points=3)
MATCH = pytest.mark.grade("fcos_match_locations_to_gt", points=5)
DELTAS = pytest.mark.grade("fcos deltas: encode and decode", points=3)
CENTER = pytest.mark.grade("fcos_make_centerness_targets", points=2)
LOSSES = pytest.mark.grade("sigmoid focal loss and binary cross-entropy", points=3)
TRAIN = pytest.mark.grade("FCOS training losses", points=5)
INFER = pytest.mark.grade("FCOS inference", points=3)
GIVEN = pytest.mark.grade("given code: input checks", points=0)

F64 = torch.float64
STRIDES = {"p3": 8, "p4": 16, "p5": 32}
# The rules each docstring states: how many Python loops (None: not limited), what it may not call, and
# the given functions of the module it calls that the check does not follow.
RULES = {
    "fcos_match_locations_to_gt": (MATCH, 1, (), "default_scale_ranges"),  # one loop, over the levels (given)
    "fcos_get_deltas_from_locations": (DELTAS, 0, ()),
    "fcos_apply_deltas_to_locations": (DELTAS, 0, ()),
    "fcos_make_centerness_targets": (CENTER, 0, ()),
    "binary_cross_entropy_with_logits": (LOSSES, None, ("binary_cross_entropy_with_logits",)),
    "sigmoid_focal_loss": (LOSSES, None, ("torchvision", "sigmoid_focal_loss")),
}


def rule_mark(mark):
    """The same group and points, marked as a rule check: when it fails, course.grade scores the group 0."""
    return pytest.mark.grade(mark.args[0], points=mark.kwargs["points"], rule=True)


@pytest.mark.parametrize("name", [pytest.param(n, marks=rule_mark(mark)) for n, (mark, *_) in RULES.items()])
def test_rules_of_the_docstrings(name):
    """The docstrings' rules: no loops where they say so, and not the library loss the tests compare with."""
    _, loops, forbid, *given = RULES[name]
    rules_of("A5_detection.one_stage_detector", name, loops=loops, forbid=forbid, given=given)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- prediction network


@HEAD
def test_prediction_network_shapes_and_prior():
    torch.manual_seed(0)
    net = FCOSPredictionNetwork(num_classes=5, in_channels=8, stem_channels=[12, 12])
    g = gen(1)
    feats = {level: torch.randn(2, 8, 64 // s, 48 // s, generator=g) for level, s in STRIDES.items()}
    with torch.no_grad():
        class_logits, deltas, centerness = net(feats)
    for level, s in STRIDES.items():
        locations = (64 // s) * (48 // s)
        assert class_logits[level].shape == (2, locations, 5)
        assert deltas[level].shape == (2, locations, 4)
        assert centerness[level].shape == (2, locations, 1)
    # RetinaNet's prior: every class starts at probability ~0.01, so the focal loss starts small
    probs = torch.sigmoid(class_logits["p3"])
    assert abs(float(probs.mean()) - 0.01) < 0.002 and float(probs.max()) < 0.02


@HEAD
def test_prediction_network_flattens_locations_row_major():
    """A change of the features at row 2, column 12 only moves outputs near location 2 * W + 12."""
    torch.manual_seed(0)
    net = FCOSPredictionNetwork(num_classes=3, in_channels=4, stem_channels=[6, 6])
    feats = torch.randn(1, 4, 16, 16, generator=gen(2))
    changed = feats.clone()
    changed[0, :, 2, 12] += 5.0
    with torch.no_grad():
        before, after = net({"p3": feats}), net({"p3": changed})
    radius = 3  # three 3x3 convolutions
    for out0, out1 in zip(before, after, strict=True):
        moved = (out0["p3"] - out1["p3"]).abs().amax(dim=2)[0].reshape(16, 16) > 0
        assert moved[2, 12]
        rows, cols = moved.nonzero().unbind(dim=1)
        assert int((rows - 2).abs().max()) <= radius and int((cols - 12).abs().max()) <= radius


# --------------------------------------------------------------------------- focal loss and BCE


@LOSSES
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (-1.0, 2.0), (0.5, 0.0), (0.75, 3.0)])
def test_sigmoid_focal_loss_matches_torchvision(alpha, gamma, reduction):
    g = gen(3)
    logits = (torch.randn(6, 7, generator=g, dtype=F64) * 4).requires_grad_()
    targets = (torch.rand(6, 7, generator=g, dtype=F64) < 0.3).to(F64)
    reference = tvo.sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction=reduction)
    upstream = torch.randn(reference.shape, generator=g, dtype=F64)
    # autograd runs where sigmoid_focal_loss lives (``under_test.backward_through``)
    mine, (grad_mine,) = ut.backward_through(sigmoid_focal_loss, [logits, targets], upstream, alpha=alpha,
                                             gamma=gamma, reduction=reduction)
    torch.testing.assert_close(mine, reference.detach(), rtol=1e-12, atol=1e-14)
    (grad_ref,) = torch.autograd.grad(reference, logits, upstream)
    torch.testing.assert_close(grad_mine, grad_ref, rtol=1e-10, atol=1e-13)


@LOSSES
def test_sigmoid_focal_loss_extreme_logits_and_hand_value():
    logits = torch.tensor([-200.0, 200.0, -200.0, 200.0, 0.0], dtype=F64)
    targets = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0], dtype=F64)
    loss = sigmoid_focal_loss(logits, targets)
    assert torch.isfinite(loss).all()
    torch.testing.assert_close(loss[:2], torch.zeros(2, dtype=F64))  # confident and right: nothing
    torch.testing.assert_close(loss[2:4], torch.tensor([0.25 * 200, 0.75 * 200], dtype=F64))  # wrong: alpha_t * |x|
    torch.testing.assert_close(loss[4], torch.tensor(0.25 * 0.25 * math.log(2), dtype=F64))  # p = 1/2


@LOSSES
def test_binary_cross_entropy_with_logits_matches_pytorch():
    g = gen(4)
    logits = torch.cat([torch.randn(50, generator=g, dtype=F64) * 5,
                        torch.tensor([-500.0, 500.0, 0.0], dtype=F64)]).requires_grad_()
    targets = torch.rand(53, generator=g, dtype=F64)
    reference = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    upstream = torch.randn(53, generator=g, dtype=F64)
    mine, (grad_mine,) = ut.backward_through(binary_cross_entropy_with_logits, [logits, targets], upstream)
    torch.testing.assert_close(mine, reference.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_mine, torch.autograd.grad(reference, logits, upstream)[0], rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- box coding


@DELTAS
def test_deltas_by_hand_and_background():
    locations = torch.tensor([[10.0, 20.0], [5.0, 5.0]])
    boxes = torch.tensor([[4.0, 8.0, 30.0, 40.0, 3.0], [-1.0, -1.0, -1.0, -1.0, -1.0]])
    deltas = fcos_get_deltas_from_locations(locations, boxes, stride=2)
    torch.testing.assert_close(deltas, torch.tensor([[3.0, 6.0, 10.0, 10.0], [-1.0, -1.0, -1.0, -1.0]]))
    # four-column boxes: background rows are all -1
    torch.testing.assert_close(fcos_get_deltas_from_locations(locations, boxes[:, :4], stride=2), deltas)
    decoded = fcos_apply_deltas_to_locations(deltas, locations, stride=2)
    torch.testing.assert_close(decoded[0], boxes[0, :4])
    torch.testing.assert_close(decoded[1], torch.tensor([5.0, 5.0, 5.0, 5.0]))  # background: empty box at (x, y)


@DELTAS
@pytest.mark.parametrize("stride", [8, 16, 32])
def test_deltas_round_trip_and_stride_normalisation(stride):
    g = gen(stride)
    corner = torch.rand(40, 2, generator=g, dtype=F64) * 100
    boxes = torch.cat([corner, corner + 1 + torch.rand(40, 2, generator=g, dtype=F64) * 80], dim=1)
    # a location inside each box
    t = torch.rand(40, 2, generator=g, dtype=F64)
    locations = boxes[:, :2] + t * (boxes[:, 2:] - boxes[:, :2])
    deltas = fcos_get_deltas_from_locations(locations, boxes, stride)
    assert (deltas >= 0).all()
    torch.testing.assert_close(fcos_apply_deltas_to_locations(deltas, locations, stride), boxes)
    # the deltas are the distances in units of the stride
    torch.testing.assert_close(deltas * stride, fcos_get_deltas_from_locations(locations, boxes, 1))
    # decoding random deltas and encoding the result gives them back (where non-negative)
    random_deltas = torch.rand(40, 4, generator=g, dtype=F64) * 5
    again = fcos_get_deltas_from_locations(locations, fcos_apply_deltas_to_locations(random_deltas, locations, stride),
                                           stride)
    torch.testing.assert_close(again, random_deltas)


@DELTAS
def test_apply_deltas_clamps_negative_distances():
    locations = torch.tensor([[16.0, 16.0]])
    boxes = fcos_apply_deltas_to_locations(torch.tensor([[-2.0, 1.0, 0.5, -0.1]]), locations, stride=8)
    torch.testing.assert_close(boxes, torch.tensor([[16.0, 8.0, 20.0, 16.0]]))


# --------------------------------------------------------------------------- centerness


@CENTER
def test_centerness_by_hand():
    deltas = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], [0.5, 3.0, 4.5, 1.0],
                           [-1.0, -1.0, -1.0, -1.0], [2.0, 0.0, 2.0, 5.0]])
    expected = torch.tensor([1.0, math.sqrt(1 / 3 * 2 / 4), math.sqrt(0.5 / 4.5 * 1 / 3), -1.0, 0.0])
    torch.testing.assert_close(fcos_make_centerness_targets(deltas), expected)
    # the stride does not matter: a ratio of distances
    torch.testing.assert_close(fcos_make_centerness_targets(deltas[:3] * 8), expected[:3])
    assert fcos_make_centerness_targets(torch.zeros(0, 4)).shape == (0,)


# --------------------------------------------------------------------------- matching


def match_by_loops(locations_per_level, strides, gt_boxes, ranges):
    """Plain reference: for each location, scan the boxes in order, keep the smallest allowed one."""
    out = {}
    for level, locations in locations_per_level.items():
        low, high = ranges[level]
        rows = []
        for x, y in locations.tolist():
            best, best_area = None, math.inf
            for box in gt_boxes.tolist():
                if box[4] < 0:
                    continue
                d = [x - box[0], y - box[1], box[2] - x, box[3] - y]
                area = (box[2] - box[0]) * (box[3] - box[1])
                if min(d) > 0 and low < max(d) <= high and area < best_area:
                    best, best_area = box, area
            rows.append(best if best is not None else [-1.0] * 5)
        out[level] = torch.tensor(rows, dtype=gt_boxes.dtype).reshape(-1, 5)
    return out


@MATCH
def test_matching_on_a_hand_built_scene():
    small = [0.0, 0.0, 16.0, 16.0, 2.0]
    medium = [0.0, 0.0, 26.0, 26.0, 5.0]
    large = [0.0, 0.0, 200.0, 100.0, 1.0]
    gt = torch.tensor([medium, [-1.0] * 5, large, small])
    strides = {"p3": 8, "p4": 16}  # ranges p3: (0, 64], p4: (64, inf)
    locations = {"p3": torch.tensor([[4.0, 4.0], [12.0, 4.0], [20.0, 20.0], [28.0, 28.0], [150.0, 50.0],
                                     [16.0, 8.0]]),
                 "p4": torch.tensor([[4.0, 4.0], [150.0, 50.0], [250.0, 50.0]])}
    matched = fcos_match_locations_to_gt(locations, strides, gt)
    background = [-1.0] * 5
    expected_p3 = [small,  # inside small and medium (large is too large for p3): the smaller one
                   small, medium,  # inside medium only
                   background,  # inside the large box only, which belongs to p4
                   background,  # same
                   medium]  # on the small box's right side (r = 0): not inside it
    expected_p4 = [large,  # inside all three, but only the large one is in p4's range
                   large, background]  # outside every box
    torch.testing.assert_close(matched["p3"], torch.tensor(expected_p3))
    torch.testing.assert_close(matched["p4"], torch.tensor(expected_p4))


@MATCH
def test_matching_scale_ranges_per_level():
    assert default_scale_ranges(STRIDES) == {"p3": (0.0, 64.0), "p4": (64.0, 128.0), "p5": (128.0, math.inf)}
    box = torch.tensor([[0.0, 0.0, 40.0, 40.0, 0.0]])
    locations = {level: torch.tensor([[10.0, 10.0]]) for level in STRIDES}  # max distance 30
    for home, ranges in (("p3", None), ("p4", {"p3": (0, 20), "p4": (20, 30), "p5": (30, math.inf)}),
                         ("p5", {"p3": (0, 10), "p4": (10, 29.9), "p5": (29.9, math.inf)})):
        matched = fcos_match_locations_to_gt(locations, STRIDES, box, scale_ranges=ranges)
        for level in STRIDES:
            assert bool((matched[level][0] >= 0).all()) == (level == home), (home, level)


@MATCH
def test_matching_equals_a_plain_loop_on_random_scenes():
    g = gen(5)
    shapes = {"p3": (12, 12), "p4": (6, 6), "p5": (3, 3)}
    locations = fpn_centres(shapes, STRIDES, dtype=F64)
    ranges = {"p3": (0, 24), "p4": (24, 48), "p5": (48, math.inf)}
    for _ in range(5):
        corner = torch.randint(0, 80, (7, 2), generator=g).to(F64)
        side = torch.randint(4, 70, (7, 2), generator=g).to(F64)
        classes = torch.randint(0, 4, (7, 1), generator=g).to(F64)
        gt = torch.cat([corner, corner + side, classes], dim=1)
        gt[5:] = -1.0  # padding
        for scale_ranges in (None, ranges):
            mine = fcos_match_locations_to_gt(locations, STRIDES, gt, scale_ranges)
            reference = match_by_loops(locations, STRIDES, gt, scale_ranges or default_scale_ranges(STRIDES))
            for level in STRIDES:
                torch.testing.assert_close(mine[level], reference[level])


@MATCH
def test_matching_without_boxes_is_all_background():
    locations = fpn_centres({"p3": (4, 4)}, {"p3": 8})
    for gt in (torch.full((3, 5), -1.0), torch.zeros(0, 5)):
        matched = fcos_match_locations_to_gt(locations, {"p3": 8}, gt)
        torch.testing.assert_close(matched["p3"], torch.full((16, 5), -1.0))


# --------------------------------------------------------------------------- the detector


@pytest.fixture(scope="module")
def scenes():
    data = load_detection("detection_scenes", "train", num=4, image_size=64)
    return data["images"].float() / 255, data["gt_boxes"]


@TRAIN
def test_fcos_losses_equal_an_independent_computation(scenes):
    images, gt = scenes
    torch.manual_seed(0)
    model = FCOS(num_classes=10, fpn_channels=16, stem_channels=[16])
    torch.manual_seed(1)
    # a trained-looking head: outputs far from their initial values (set through load_state_dict: the
    # model may live in the grader's worker, where a returned tensor is a copy)
    state = model.pred_net.state_dict()
    model.pred_net.load_state_dict({name: value + torch.randn(value.shape) * 0.05 for name, value in state.items()})
    losses = model(images, gt)
    assert sorted(losses) == ["loss_box", "loss_cls", "loss_ctr"]
    with torch.no_grad():
        feats = model.backbone(images)
        class_logits, deltas, centerness = model.pred_net(feats)
        locations = fpn_centres({k: v.shape for k, v in feats.items()}, STRIDES)
    cls, box, ctr, fg = [], [], [], []
    for i in range(images.shape[0]):
        matched = fcos_match_locations_to_gt(locations, STRIDES, gt[i])
        for level, stride in STRIDES.items():
            target = fcos_get_deltas_from_locations(locations[level], matched[level], stride)
            fore = matched[level][:, 4] >= 0
            one_hot = F.one_hot(matched[level][:, 4].clamp(min=0).long(), 10).float() * fore[:, None]
            cls.append(tvo.sigmoid_focal_loss(class_logits[level][i], one_hot, reduction="sum"))
            box.append(F.l1_loss(deltas[level][i][fore], target[fore], reduction="sum") / 4)
            ctr.append(F.binary_cross_entropy_with_logits(centerness[level][i][fore, 0],
                                                          fcos_make_centerness_targets(target[fore]),
                                                          reduction="sum"))
            fg.append(int(fore.sum()))
    num_fg = sum(fg)
    assert num_fg > 20
    torch.testing.assert_close(losses["loss_cls"].detach(), sum(cls) / num_fg, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(losses["loss_box"].detach(), sum(box) / num_fg, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(losses["loss_ctr"].detach(), sum(ctr) / num_fg, rtol=1e-4, atol=1e-6)


@TRAIN
def test_fcos_losses_on_images_without_objects(scenes):
    images, _ = scenes
    torch.manual_seed(0)
    model = FCOS(num_classes=10, fpn_channels=8, stem_channels=[8])
    # the losses after a backward pass through their sum (where the model lives)
    losses = support.losses_after_backward(model, images[:2], torch.full((2, 3, 5), -1.0))
    assert float(losses["loss_box"]) == 0.0 and float(losses["loss_ctr"]) == 0.0
    assert 0 < float(losses["loss_cls"]) < math.inf  # focal loss of the background, divided by 1


@TRAIN
def test_fcos_overfits_four_scenes(scenes):
    images, gt = scenes
    torch.manual_seed(0)
    model = FCOS(num_classes=10, fpn_channels=16, stem_channels=[16, 16])
    # 150 Adam steps on the sum of the losses, where the model lives
    history = support.train_steps(model, images, gt, steps=150, lr=3e-3)
    first, loss = sum(history[0].values()), sum(history[-1].values())
    assert loss < 0.35 * first
    predictions = detections_to_predictions(model.inference(images, score_thresh=0.05, nms_thresh=0.5))
    mean_ap, _, _ = reference_voc(predictions, gt_boxes_to_targets(gt), num_classes=10)
    assert mean_ap > 0.8, mean_ap  # measured: 1.0 (seed 0), 0.91 (seed 1)
    # in batches, from uint8 images: the same detections
    batched = predict_detections(model, (images * 255).round().to(torch.uint8), batch_size=3)
    again = detections_to_predictions(model.inference((images * 255).round() / 255, 0.05, 0.5))
    assert len(batched) == len(again) == images.shape[0]
    for a, b in zip(batched, again, strict=True):
        assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-4) for k in ("boxes", "scores", "labels"))


@INFER
def test_inference_thresholds_decodes_and_removes_duplicates():
    torch.manual_seed(0)
    model = FCOS(num_classes=3, fpn_channels=8, stem_channels=[8])
    model.pred_net = support.FixedHead(3, best_class=1, deltas=[3.0, 3.0, 3.0, 3.0])  # boxes 6 strides wide
    images = torch.rand(2, 3, 64, 64, generator=gen(6))
    model.train()
    detections = model.inference(images, score_thresh=0.5, nms_thresh=0.5)
    assert model.training  # mode restored
    assert len(detections) == 2
    total_locations = sum((64 // s) ** 2 for s in STRIDES.values())
    for boxes, scores, classes in detections:
        assert boxes.shape[1] == 4 and scores.shape == classes.shape == (boxes.shape[0],)
        assert 0 < boxes.shape[0] < total_locations  # neighbours overlap a lot: NMS keeps few
        assert (classes == 1).all() and classes.dtype == torch.int64
        assert (scores > 0.5).all() and (scores[:-1] >= scores[1:]).all()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 64).all()  # clipped to the image
        iou = tvo.box_iou(boxes, boxes) - torch.eye(boxes.shape[0])
        assert float(iou.max()) <= 0.5
        # the best location overall is kept and decoded: last p5 location, centre (48, 48), 3 strides each way
        torch.testing.assert_close(boxes[0], torch.tensor([0.0, 0.0, 64.0, 64.0]))
    # without NMS (threshold 1) every location above the score threshold comes back
    boxes, scores, _ = model.inference(images[:1], score_thresh=0.5, nms_thresh=1.0)[0]
    assert boxes.shape[0] == total_locations
    # a threshold above every score returns nothing, with the right shapes
    boxes, scores, classes = model.inference(images[:1], score_thresh=0.999)[0]
    assert boxes.shape == (0, 4) and scores.shape == classes.shape == (0,)
    # forward without gt_boxes is inference
    assert len(model(images, test_score_thresh=0.5)) == 2


@INFER
def test_inference_keeps_the_best_candidates_per_level():
    torch.manual_seed(0)
    model = FCOS(num_classes=2, fpn_channels=8, stem_channels=[8])
    model.pred_net = support.FixedHead(2, best_class=0, deltas=[0.1, 0.1, 0.1, 0.1])  # tiny boxes: no overlaps
    images = torch.rand(1, 3, 64, 64, generator=gen(7))
    boxes, scores, classes = model.inference(images, score_thresh=0.5, nms_thresh=0.5, topk_per_level=5)[0]
    assert boxes.shape[0] == 5 + 5 + 4  # p3 and p4 capped at 5, p5 has 4 locations
    # p3's five best are its last five locations (row 7, columns 3..7): centres x = 28..60, y = 60
    p3 = boxes[(boxes[:, 2] - boxes[:, 0] - 1.6).abs() < 1e-4]
    assert sorted(((p3[:, 0] + p3[:, 2]) / 2).tolist()) == [28.0, 36.0, 44.0, 52.0, 60.0]
    predictions = detections_to_predictions([(boxes, scores, classes)])
    assert predictions[0]["labels"].dtype == torch.int64 and predictions[0]["boxes"].shape == (14, 4)


@INFER
def test_inference_offers_every_class_above_the_threshold():
    torch.manual_seed(0)
    model = FCOS(num_classes=3, fpn_channels=8, stem_channels=[8])
    model.pred_net = support.FixedHead(3, best_class=1, deltas=[0.1, 0.1, 0.1, 0.1], runner_up=2)  # tiny boxes
    images = torch.rand(1, 3, 64, 64, generator=gen(8))
    total_locations = sum((64 // s) ** 2 for s in STRIDES.values())
    boxes, scores, classes = model.inference(images, score_thresh=0.5, topk_per_level=1000)[0]
    # every location is a class-1 and a class-2 detection of the same box, class 2 scored lower
    assert (classes == 1).sum() == (classes == 2).sum() == total_locations and not (classes == 0).any()
    first, second = classes == 1, classes == 2
    key = boxes[:, 0] * 1000 + boxes[:, 1]  # one number per box, to pair the two classes' lists
    assert torch.equal(key[first].sort().values, key[second].sort().values)
    assert float(scores[second].max()) < float(scores[first].max())
    # one class per location (EECS 498's rule): only the class-1 half
    one_boxes, one_scores, one_classes = model.inference(images, score_thresh=0.5, topk_per_level=1000,
                                                         best_class_only=True)[0]
    assert (one_classes == 1).all() and torch.equal(one_boxes, boxes[first]) and torch.equal(one_scores, scores[first])
    # the cap per level counts (location, class) pairs: p3 and p4 give 5 each, p5's 4 locations 5 of 8 pairs
    assert model.inference(images, score_thresh=0.5, topk_per_level=5)[0][0].shape[0] == 15


# --------------------------------------------------------------------------- errors (given code)


@GIVEN
def test_fcos_refuses_bad_ground_truth_clearly():
    model = FCOS(num_classes=3, fpn_channels=4, stem_channels=[4])
    images = torch.rand(2, 3, 32, 32)
    good = torch.tensor([[[1.0, 1.0, 10.0, 10.0, 0.0]], [[-1.0, -1.0, -1.0, -1.0, -1.0]]])
    bad = good.clone()
    bad[0, 0, 2] = 0.0  # x2 < x1
    with pytest.raises(ValueError, match="x2 >= x1"):
        model(images, bad)
    bad = good.clone()
    bad[0, 0, 4] = 3.0
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 3\)"):
        model(images, bad)
    bad[0, 0, 4] = 0.5
    with pytest.raises(ValueError, match="integer class"):
        model(images, bad)
    bad[0, 0, 4] = -1.0
    with pytest.raises(ValueError, match="padding"):
        model(images, bad)
    with pytest.raises(ValueError, match=r"\(B, N, 5\)"):
        model(images, good[..., :4])
    with pytest.raises(TypeError, match="floating"):
        model(images, good.long())
    with pytest.raises(ValueError, match="one \\(N, 5\\) block per image"):
        model(images, good[:1])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(images[:, :1], good)
    with pytest.raises(ValueError, match="multiples of 32"):
        model.inference(torch.rand(1, 3, 40, 40))
    with pytest.raises(ValueError, match="score_thresh"):
        model.inference(images, score_thresh=1.5)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        fcos_match_locations_to_gt({"p3": torch.zeros(4, 2)}, {"p3": 8}, good)
    with pytest.raises(ValueError, match="x2 >= x1"):
        fcos_match_locations_to_gt({"p3": torch.zeros(4, 2)}, {"p3": 8}, torch.tensor([[5.0, 0.0, 1.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match="needs a stride"):
        fcos_match_locations_to_gt({"p4": torch.zeros(4, 2)}, {"p3": 8}, good[0])


@GIVEN
def test_box_coding_and_losses_refuse_bad_arguments_clearly():
    locations = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"locations must be a tensor of shape \(N, 2\)"):
        fcos_get_deltas_from_locations(torch.zeros(3, 3), torch.zeros(3, 4), 8)
    with pytest.raises(ValueError, match=r"\(3, 4\) or \(3, 5\)"):
        fcos_get_deltas_from_locations(locations, torch.zeros(2, 4), 8)
    with pytest.raises(ValueError, match="stride"):
        fcos_get_deltas_from_locations(locations, torch.zeros(3, 4), 0)
    with pytest.raises(ValueError, match=r"deltas must have shape \(3, 4\)"):
        fcos_apply_deltas_to_locations(torch.zeros(3, 5), locations, 8)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        fcos_make_centerness_targets(torch.zeros(4))
    with pytest.raises(ValueError, match="reduction"):
        sigmoid_focal_loss(torch.zeros(2), torch.zeros(2), reduction="avg")
    with pytest.raises(ValueError, match="gamma"):
        sigmoid_focal_loss(torch.zeros(2), torch.zeros(2), gamma=-1.0)
    with pytest.raises(ValueError, match="same shape"):
        binary_cross_entropy_with_logits(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="stem_channels"):
        FCOSPredictionNetwork(3, 4, [])
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        FCOSPredictionNetwork(3, 4, [4])({"p3": torch.zeros(4, 8, 8)})
    with pytest.raises(ValueError, match=r"detections\[0\]"):
        detections_to_predictions([(torch.zeros(0, 4), torch.zeros(0))])
