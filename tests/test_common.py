"""A5 box operations (``A5_detection/common.py``): IoU, NMS, RoIAlign, FCOS locations, VOC mAP, FPN backbone.

``box_iou``, ``nms``, ``class_spec_nms`` and ``roi_align`` are checked against torchvision
(``box_iou``, ``nms``, ``batched_nms``, ``roi_align`` -- values and gradients): NMS must return
*identical* indices, ties of scores, duplicate boxes and IoUs exactly on the threshold included.
``evaluate_detections`` is checked against a second, deliberately plain implementation of the
VOC devkit's rules written below with loops over Python lists, and on hand-computed cases.
"""

import math

import pytest
import torch
import torchvision.ops as tvo
from detection_support import reference_voc
from under_test import load, rules_of

from helpers.gradcheck import compute_numeric_gradient, rel_error

common = load("A5_detection.common")
support = load("detection_support")  # stand-in trunks and autograd, where the student's model lives
ut = load("under_test")
ERROR_KINDS = common.ERROR_KINDS
DetectorBackboneWithFPN = common.DetectorBackboneWithFPN
RegNetTrunk = load("helpers.backbone").RegNetTrunk
average_precision = common.average_precision
box_iou = common.box_iou
class_candidates = common.class_candidates
class_spec_nms = common.class_spec_nms
confusion_counts = common.confusion_counts
count_errors = common.count_errors
detection_errors = common.detection_errors
evaluate_detections = common.evaluate_detections
generalized_box_iou = common.generalized_box_iou
get_fpn_location_coords = common.get_fpn_location_coords
ignore_classes = common.ignore_classes
nms = common.nms
paired_iou = common.paired_iou
predict_in_batches = common.predict_in_batches
roi_align = common.roi_align

# Score groups of `python -m course.grade` (README, "For teachers"): points are each group's total.
IOU = pytest.mark.grade("box_iou", points=2)
GIOU = pytest.mark.grade("generalized_box_iou", points=2)
PAIRED_IOU = pytest.mark.grade("paired_iou", points=1)
NMS = pytest.mark.grade("nms", points=5)
CLASS_NMS = pytest.mark.grade("class_spec_nms", points=3)
ROI_ALIGN = pytest.mark.grade("roi_align", points=6)
FPN = pytest.mark.grade("get_fpn_location_coords", points=2)
AP = pytest.mark.grade("average_precision", points=2)
EVAL = pytest.mark.grade("evaluate_detections", points=6)
ERRORS = pytest.mark.grade("detection_errors", points=2)
BACKBONE = pytest.mark.grade("DetectorBackboneWithFPN", points=4)
GIVEN = pytest.mark.grade("given code: input checks", points=0)

F64 = torch.float64
# The rules each docstring states: how many Python loops (None: not limited), what it may not call, and
# the given functions of the module it calls that the check does not follow.
RULES = {
    "box_iou": (IOU, 0, ("torchvision", "box_iou")),
    "generalized_box_iou": (GIOU, 0, ("torchvision", "generalized_box_iou")),
    "paired_iou": (PAIRED_IOU, 0, ()),
    "nms": (NMS, None, ("torchvision", "nms", "batched_nms")),
    "class_candidates": (CLASS_NMS, 0, ()),
    "roi_align": (ROI_ALIGN, 1, ("torchvision", "roi_align")),  # one loop: over the images
    "get_fpn_location_coords": (FPN, 1, ()),  # the given loop over the levels
    "average_precision": (AP, 0, ()),
}


def rule_mark(mark):
    """The same group and points, marked as a rule check: when it fails, course.grade scores the group 0."""
    return pytest.mark.grade(mark.args[0], points=mark.kwargs["points"], rule=True)


@pytest.mark.parametrize("name", [pytest.param(n, marks=rule_mark(mark)) for n, (mark, *_) in RULES.items()])
def test_rules_of_the_docstrings(name):
    """The docstrings' rules: no loops where they say so, and not the torchvision function the tests compare with."""
    _, loops, forbid, *given = RULES[name]
    rules_of("A5_detection.common", name, loops=loops, forbid=forbid, given=given)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def random_boxes(n, g, size=60.0, max_side=30.0, step=None, dtype=torch.float32):
    """``(n, 4)`` well-formed boxes; ``step``: coordinates rounded to multiples of it (exact IoU ties)."""
    corner = torch.rand(n, 2, generator=g, dtype=F64) * size
    side = torch.rand(n, 2, generator=g, dtype=F64) * max_side
    boxes = torch.cat([corner, corner + side], dim=1)
    if step is not None:
        boxes = (boxes / step).round() * step
    return boxes.to(dtype)


def random_scores(n, g, tied, dtype=torch.float32):
    if tied:  # few distinct values: many ties
        return torch.randint(0, 4, (n,), generator=g).to(dtype) / 4
    return torch.rand(n, generator=g, dtype=F64).to(dtype)


def random_size(g, high):
    return int(torch.randint(0, high, (1,), generator=g))


# --------------------------------------------------------------------------- box_iou


@IOU
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_box_iou_matches_torchvision(dtype):
    g = gen(1)
    a, b = random_boxes(23, g, dtype=dtype), random_boxes(31, g, step=1.0, dtype=dtype)
    iou = box_iou(a, b)
    assert iou.shape == (23, 31) and iou.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(iou, tvo.box_iou(a, b), rtol=0, atol=tol)
    torch.testing.assert_close(box_iou(b, a), iou.T, rtol=0, atol=tol)


@IOU
def test_box_iou_by_hand():
    a = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
    b = torch.tensor([[1.0, 0.0, 3.0, 1.0],    # overlap 1, union 3 (continuous coordinates, no +1)
                      [0.0, 0.0, 2.0, 1.0],    # identical
                      [0.0, 0.0, 1.0, 1.0],    # inside: 1 / 2
                      [2.0, 0.0, 3.0, 1.0],    # touching edge: 0
                      [5.0, 5.0, 6.0, 7.0]])   # far away: 0
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[1 / 3, 1.0, 0.5, 0.0, 0.0]]), rtol=0, atol=1e-7)
    assert box_iou(a, torch.zeros(0, 4)).shape == (1, 0)
    assert box_iou(torch.zeros(0, 4), b).shape == (0, 5)


@PAIRED_IOU
def test_paired_iou_is_the_diagonal_of_box_iou():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(30, 2, generator=g, dtype=F64) * 50
    a = torch.cat([xy, xy + torch.rand(30, 2, generator=g, dtype=F64) * 30], dim=1)
    xy = torch.rand(30, 2, generator=g, dtype=F64) * 50
    b = torch.cat([xy, xy + torch.rand(30, 2, generator=g, dtype=F64) * 30], dim=1)
    assert torch.allclose(paired_iou(a, b), torch.diagonal(box_iou(a, b)), atol=1e-12)
    by_hand = paired_iou(torch.tensor([0.0, 0.0, 2.0, 2.0]), torch.tensor([1.0, 0.0, 3.0, 2.0]))
    assert float(by_hand) == pytest.approx(2 / 6)
    assert float(paired_iou(torch.zeros(4), torch.zeros(4))) == 0.0, "two empty boxes: 0, not nan"


# --------------------------------------------------------------------------- nms


@NMS
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("kind", ["float", "grid", "tied"])
def test_nms_identical_to_torchvision_on_random_sets(threshold, kind):
    # "grid": integer coordinates, so many pairs have the same, exactly representable IoU;
    # "tied": grid boxes and only four distinct scores
    g = gen(int(threshold * 10) + 100 * len(kind))
    for _ in range(12):
        n = random_size(g, 120)
        boxes = random_boxes(n, g, step=None if kind == "float" else 1.0)
        scores = random_scores(n, g, tied=kind == "tied")
        keep = nms(boxes, scores, threshold)
        assert keep.dtype == torch.int64
        assert torch.equal(keep, tvo.nms(boxes, scores, threshold)), (n, kind, threshold)


@NMS
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nms_duplicates_and_ties(dtype):
    g = gen(2)
    base = random_boxes(40, g, step=1.0, dtype=dtype)
    boxes = torch.cat([base, base, base[:10]])  # every box two or three times
    scores = random_scores(90, g, tied=True, dtype=dtype)
    for threshold in (0.2, 0.5, 0.9):
        keep = nms(boxes, scores, threshold)
        assert torch.equal(keep, tvo.nms(boxes, scores, threshold))
    # three copies of one box with one score: the first copy survives
    same = torch.tensor([[1.0, 1.0, 4.0, 5.0]], dtype=dtype).repeat(3, 1)
    assert nms(same, torch.ones(3, dtype=dtype), 0.5).tolist() == [0]
    # a higher score wins whatever its position
    assert nms(same, torch.tensor([0.1, 0.2, 0.9], dtype=dtype), 0.5).tolist() == [2]


@NMS
def test_nms_orders_equal_scores_by_index_like_torchvision():
    # torchvision.ops.nms on the CPU sorts the scores with a *stable* sort: beyond 16 boxes an
    # unstable sort would reorder ties, so 2,000 disjoint boxes with three scores pin this down
    n = 2000
    left = torch.arange(n, dtype=torch.float32) * 10
    boxes = torch.stack([left, torch.zeros(n), left + 5, torch.full((n,), 5.0)], dim=1)
    scores = torch.randint(0, 3, (n,), generator=gen(3)).float()
    keep = nms(boxes, scores, 0.5)
    expected = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    assert keep.tolist() == expected
    assert torch.equal(keep, tvo.nms(boxes, scores, 0.5))
    assert not torch.equal(keep, scores.sort(descending=True, stable=False).indices), \
        "an unstable sort orders these ties differently (else this test pins nothing)"


@NMS
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nms_iou_exactly_at_the_threshold(dtype):
    # IoU([0,0,2,1], [0,0,1,1]) = 1/2 exactly: kept at threshold 0.5 (suppression needs IoU > threshold)
    boxes = torch.tensor([[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0]], dtype=dtype)
    scores = torch.tensor([0.9, 0.8], dtype=dtype)
    assert nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, 0.4999).tolist() == [0]
    # IoU 1/3: in float32 it rounds *up* (0.33333334 > 1/3), so torchvision -- comparing in double --
    # suppresses at threshold 1/3; in float64 it equals 1/3 and is kept.  Ours must do the same.
    thirds = torch.tensor([[0.0, 0.0, 2.0, 1.0], [1.0, 0.0, 3.0, 1.0]], dtype=dtype)
    keep = nms(thirds, scores, 1 / 3)
    assert torch.equal(keep, tvo.nms(thirds, scores, 1 / 3))
    assert keep.tolist() == ([0] if dtype == torch.float32 else [0, 1])


@NMS
def test_nms_empty_one_box_and_empty_boxes():
    keep = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.int64
    assert nms(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([0.3]), 0.5).tolist() == [0]
    # zero-area boxes: IoU 0 / 0 = nan never suppresses (as in torchvision)
    flat = torch.tensor([[1.0, 1.0, 1.0, 3.0], [1.0, 1.0, 1.0, 3.0], [0.0, 0.0, 2.0, 2.0]])
    scores = torch.tensor([0.5, 0.4, 0.3])
    assert torch.equal(nms(flat, scores, 0.5), tvo.nms(flat, scores, 0.5))
    assert nms(flat, scores, 0.5).tolist() == [0, 1, 2]


# --------------------------------------------------------------------------- class_spec_nms


@CLASS_NMS
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_class_spec_nms_identical_to_batched_nms(threshold):
    # up to 1000 boxes: torchvision shifts the classes apart and runs one NMS; grid coordinates keep
    # that shift exact, so the two must agree index for index, ties included
    g = gen(int(threshold * 10))
    for trial in range(12):
        n = random_size(g, 150)
        boxes = random_boxes(n, g, step=0.5)
        scores = random_scores(n, g, tied=trial % 2 == 0)
        classes = torch.randint(0, 4, (n,), generator=g)
        keep = class_spec_nms(boxes, scores, classes, threshold)
        assert keep.dtype == torch.int64
        assert torch.equal(keep, tvo.batched_nms(boxes, scores, classes, threshold)), (trial, n)


@CLASS_NMS
def test_class_spec_nms_is_nms_inside_each_class():
    # float coordinates: compare with torchvision's nms run class by class, merged by score
    g = gen(4)
    n = 1200  # above 1000 boxes torchvision's batched_nms also runs class by class
    boxes, scores = random_boxes(n, g, size=200.0), random_scores(n, g, tied=False)
    classes = torch.randint(0, 5, (n,), generator=g)
    kept = torch.cat([torch.nonzero(classes == c)[:, 0][tvo.nms(boxes[classes == c], scores[classes == c], 0.5)]
                      for c in range(5)])
    expected = kept[scores[kept].sort(descending=True, stable=True).indices]
    keep = class_spec_nms(boxes, scores, classes, 0.5)
    assert torch.equal(keep, expected)
    assert torch.equal(keep, tvo.batched_nms(boxes, scores, classes, 0.5))


@CLASS_NMS
def test_class_spec_nms_by_hand():
    box = [0.0, 0.0, 4.0, 4.0]
    boxes = torch.tensor([box, box, box, [0.0, 0.0, 4.0, 3.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    classes = torch.tensor([0, 1, 0, 1])
    # class 0: box 0 suppresses box 2; class 1: box 3 (IoU 3/4 with box 1) suppresses box 1
    assert class_spec_nms(boxes, scores, classes, 0.5).tolist() == [3, 0]
    assert class_spec_nms(boxes, scores, classes, 0.8).tolist() == [3, 0, 1]
    assert class_spec_nms(boxes, scores, torch.tensor([0, 1, 2, 3]), 0.5).tolist() == [3, 0, 1, 2]
    empty = class_spec_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.int64


@CLASS_NMS
def test_class_candidates_by_hand():
    probs = torch.tensor([[0.6, 0.3, 0.1],
                          [0.2, 0.2, 0.05],
                          [0.0, 0.1, 0.15]])
    rows, classes, scores = class_candidates(probs, 0.2)
    # every pair at least 0.2 (0.2 itself included), by box then class: box 0 is a class-0 and a class-1 candidate
    assert rows.tolist() == [0, 0, 1, 1] and classes.tolist() == [0, 1, 0, 1]
    assert torch.equal(scores, probs[rows, classes]) and rows.dtype == classes.dtype == torch.int64
    rows, classes, scores = class_candidates(probs, 0.2, best_class_only=True)
    # one class per box, the first of equal ones (box 1); box 2's best (0.15) is below the threshold
    assert rows.tolist() == [0, 1] and classes.tolist() == [0, 0] and scores.tolist() == pytest.approx([0.6, 0.2])
    assert class_candidates(probs, 0.0)[0].shape == (9,)  # threshold 0: every pair, zeros included
    assert class_candidates(probs, 0.7)[0].shape == (0,)
    rows, classes, scores = class_candidates(torch.zeros(0, 3), 0.1)
    assert rows.shape == classes.shape == scores.shape == (0,)
    # best_class_only keeps exactly the argmax pairs that pass the threshold
    probs = torch.rand(50, 7, generator=torch.Generator().manual_seed(0))
    rows, classes, _ = class_candidates(probs, 0.5, best_class_only=True)
    best = probs.max(dim=1)
    assert torch.equal(rows, (best.values >= 0.5).nonzero()[:, 0]) and torch.equal(classes, best.indices[rows])
    with pytest.raises(ValueError, match=r"\(N, C\) floating-point"):
        class_candidates(torch.ones(3), 0.5)
    with pytest.raises(ValueError, match=r"\(N, C\) floating-point"):
        class_candidates(torch.ones(3, 2, dtype=torch.int64), 0.5)


# --------------------------------------------------------------------------- roi_align


def roi_rows(num_rois, num_images, height, width, g, spatial_scale, dtype=F64):
    """``(K, 5)`` boxes in image coordinates over a map of ``height x width`` feature pixels.

    Boxes partly outside the map, entirely outside it, of zero width or height and larger than
    the map are all included.
    """
    extent = torch.tensor([width, height, width, height], dtype=F64) / spatial_scale
    corner = (torch.rand(num_rois, 2, generator=g, dtype=F64) * 1.6 - 0.3) * extent[:2]
    side = torch.rand(num_rois, 2, generator=g, dtype=F64) * 0.8 * extent[:2]
    boxes = torch.cat([corner, corner + side], dim=1)
    boxes[0] = torch.tensor([-3.0, -2.0, 1.0, 0.5]) / spatial_scale  # corner sticking out top-left
    boxes[1] = extent * torch.tensor([1.1, 1.05, 1.3, 1.2], dtype=F64)  # beyond the bottom-right edge
    boxes[2, 2] = boxes[2, 0]  # zero width
    boxes[3, 3] = boxes[3, 1]  # zero height
    boxes[4] = torch.tensor([-1.0, -1.0, 1.2, 1.1], dtype=F64) * extent  # larger than the map
    index = torch.randint(0, num_images, (num_rois, 1), generator=g).to(F64)
    return torch.cat([index, boxes], dim=1).to(dtype)


@ROI_ALIGN
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 1, 2, 4])
@pytest.mark.parametrize("spatial_scale", [1.0, 1 / 8])
def test_roi_align_matches_torchvision_values_and_gradients(sampling_ratio, aligned, spatial_scale):
    g = gen(sampling_ratio + 10 * aligned + int(1 / spatial_scale))
    features = torch.randn(3, 4, 9, 11, generator=g, dtype=F64)
    rois = roi_rows(14, 3, 9, 11, g, spatial_scale)
    ref_in = features.clone().requires_grad_()
    ref = tvo.roi_align(ref_in, rois, (3, 4), spatial_scale, sampling_ratio, aligned)
    weights = torch.randn(ref.shape, generator=g, dtype=F64)
    # autograd runs where roi_align lives (``under_test.backward_through``)
    out, (grad,) = ut.backward_through(roi_align, [features.clone().requires_grad_(), rois, (3, 4), spatial_scale,
                                                   sampling_ratio, aligned], weights)
    assert out.shape == (14, 4, 3, 4) and out.dtype == F64
    torch.testing.assert_close(out, ref.detach(), rtol=0, atol=1e-12)
    (ref * weights).sum().backward()
    torch.testing.assert_close(grad, ref_in.grad, rtol=0, atol=1e-12)


@ROI_ALIGN
@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_float32_and_box_lists(aligned):
    g = gen(5)
    features = torch.randn(2, 3, 16, 12, generator=g)
    rois = roi_rows(10, 2, 16, 12, g, 1 / 8, dtype=torch.float32)
    out = roi_align(features, rois, 5, spatial_scale=1 / 8, aligned=aligned)
    torch.testing.assert_close(out, tvo.roi_align(features, rois, 5, 1 / 8, -1, aligned), rtol=0, atol=2e-6)
    # the same boxes as one (K_i, 4) tensor per image give the same rows, image by image
    per_image = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    order = torch.cat([torch.nonzero(rois[:, 0] == i)[:, 0] for i in range(2)])
    from_list = roi_align(features, per_image, (5, 5), spatial_scale=1 / 8, aligned=aligned)
    torch.testing.assert_close(from_list, out[order], rtol=0, atol=0)
    torch.testing.assert_close(from_list, tvo.roi_align(features, per_image, 5, 1 / 8, -1, aligned),
                               rtol=0, atol=2e-6)


@ROI_ALIGN
def test_roi_align_gradient_matches_numeric_gradient():
    g = gen(6)
    features = torch.randn(2, 2, 5, 6, generator=g, dtype=F64)
    rois = roi_rows(6, 2, 5, 6, g, 1.0)
    weights = torch.randn(6, 2, 2, 3, generator=g, dtype=F64)

    def f(x):
        return (roi_align(x, rois, (2, 3), sampling_ratio=2, aligned=True) * weights).sum()

    _, (grad,) = ut.backward_through(roi_align, [features.clone().requires_grad_(), rois, (2, 3)], weights,
                                     sampling_ratio=2, aligned=True)
    assert rel_error(grad, compute_numeric_gradient(f, features.clone())) < 1e-7
    # no gradient reaches the boxes (as in torchvision)
    _, (_, box_grad) = ut.backward_through(roi_align, [features.clone().requires_grad_(),
                                                       rois.clone().requires_grad_(), 2])
    assert box_grad is None


@ROI_ALIGN
def test_roi_align_by_hand_on_a_ramp():
    # feature value = column index x: bilinear sampling reproduces x exactly, so with aligned=True each
    # output bin holds the mean x of its samples = the x of the bin's centre (in pixel-centre coordinates)
    width, height = 10, 8
    ramp = torch.arange(width, dtype=F64).expand(1, 1, height, width).clone()
    box = torch.tensor([[0.0, 2.0, 1.0, 8.0, 7.0]], dtype=F64)  # x from 2 to 8, inside the map
    out = roi_align(ramp, box, (2, 3), sampling_ratio=2, aligned=True)
    centres = 2.0 - 0.5 + (torch.arange(3, dtype=F64) + 0.5) * 2.0  # bins 2 wide, shifted by half a pixel
    torch.testing.assert_close(out[0, 0], centres.expand(2, 3), rtol=0, atol=1e-12)
    # a constant map gives the constant inside the map and 0 for a box far outside it
    ones = torch.ones(1, 2, height, width, dtype=F64)
    inside_outside = torch.tensor([[0.0, 1.0, 1.0, 5.0, 5.0], [0.0, 30.0, 30.0, 40.0, 40.0]], dtype=F64)
    pooled = roi_align(ones, inside_outside, 3)
    assert torch.equal(pooled[0], torch.ones(2, 3, 3, dtype=F64))
    assert torch.equal(pooled[1], torch.zeros(2, 3, 3, dtype=F64))


@ROI_ALIGN
def test_roi_align_empty_boxes():
    features = torch.randn(2, 3, 6, 6, generator=gen(7), requires_grad=True)
    for boxes in (torch.zeros(0, 5), [torch.zeros(0, 4), torch.zeros(0, 4)]):
        out = roi_align(features, boxes, (2, 4))
        assert out.shape == (0, 3, 2, 4) and out.dtype == torch.float32
        assert out.shape == tvo.roi_align(features, boxes, (2, 4)).shape
    # one image without boxes beside one with
    some = [torch.zeros(0, 4), torch.tensor([[1.0, 1.0, 4.0, 5.0]])]
    torch.testing.assert_close(roi_align(features, some, 2), tvo.roi_align(features, some, 2), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- get_fpn_location_coords


@FPN
def test_fpn_location_coords_by_hand():
    shapes = {"p3": (2, 64, 2, 3), "p4": (2, 64, 1, 2)}
    coords = get_fpn_location_coords(shapes, {"p3": 8, "p4": 16})
    assert list(coords) == ["p3", "p4"]
    assert coords["p3"].dtype == torch.float32 and coords["p3"].shape == (6, 2)
    # row-major: (x, y) = ((j + 0.5) * stride, (i + 0.5) * stride)
    assert coords["p3"].tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]
    assert coords["p4"].tolist() == [[8, 8], [24, 8]]
    as_hw = get_fpn_location_coords({"p5": (3, 1)}, {"p5": 32}, dtype=F64, device=torch.device("cpu"))
    assert as_hw["p5"].dtype == F64 and as_hw["p5"].tolist() == [[16, 16], [16, 48], [16, 80]]


@FPN
def test_fpn_location_coords_match_a_loop():
    shapes, strides = {"p3": torch.Size([1, 8, 7, 5]), "p4": (4, 3), "p5": (2, 2)}, {"p3": 8, "p4": 16, "p5": 32}
    coords = get_fpn_location_coords(shapes, strides)
    for level, shape in shapes.items():
        h, w = shape[-2:]
        expected = [[(j + 0.5) * strides[level], (i + 0.5) * strides[level]] for i in range(h) for j in range(w)]
        assert coords[level].tolist() == expected


# --------------------------------------------------------------------------- VOC mAP: a plain reference


def random_scene(g, num_images, num_classes):
    """Ground truths and predictions with hits, near misses, duplicates, wrong labels and noise."""
    predictions, ground_truths = [], []
    for _ in range(num_images):
        m = random_size(g, 6)
        boxes = random_boxes(m, g, size=80.0, max_side=40.0) + torch.tensor([0.0, 0.0, 4.0, 4.0])
        labels = torch.randint(0, num_classes, (m,), generator=g)
        difficult = torch.rand(m, generator=g) < 0.2
        ground_truths.append({"boxes": boxes, "labels": labels, "difficult": difficult})
        copies = torch.randint(0, 3, (m,), generator=g)  # 0, 1 or 2 detections per box
        source = torch.repeat_interleave(torch.arange(m), copies)
        jitter = torch.randn(source.numel(), 4, generator=g) * torch.rand(source.numel(), 1, generator=g) * 8
        det_boxes = boxes[source] + jitter
        det_boxes = torch.cat([det_boxes[:, :2], torch.maximum(det_boxes[:, 2:], det_boxes[:, :2])], dim=1)
        det_labels = labels[source].clone()
        wrong = torch.rand(source.numel(), generator=g) < 0.15
        det_labels[wrong] = torch.randint(0, num_classes, (int(wrong.sum()),), generator=g)
        noise = random_size(g, 4)
        det_boxes = torch.cat([det_boxes, random_boxes(noise, g, size=80.0, max_side=40.0)])
        det_labels = torch.cat([det_labels, torch.randint(0, num_classes, (noise,), generator=g)])
        scores = (torch.rand(det_boxes.shape[0], generator=g) * 10).round() / 10  # many ties
        predictions.append({"boxes": det_boxes, "scores": scores, "labels": det_labels})
    return predictions, ground_truths


@EVAL
@pytest.mark.parametrize("iou_threshold", [0.5, 0.75])
def test_evaluate_detections_matches_a_plain_reference_on_random_scenes(iou_threshold):
    g = gen(int(iou_threshold * 100))
    for trial in range(15):
        num_classes = 1 + trial % 5
        predictions, ground_truths = random_scene(g, num_images=1 + trial % 7, num_classes=num_classes)
        if trial % 3 == 0:  # without the optional difficult flags
            ground_truths = [{"boxes": gt["boxes"], "labels": gt["labels"]} for gt in ground_truths]
        result = evaluate_detections(predictions, ground_truths, num_classes, iou_threshold)
        mean_ap, aps, curves = reference_voc(predictions, ground_truths, num_classes, iou_threshold)
        assert set(result) == {"mAP", "ap_per_class", "precision_recall"}
        assert len(result["ap_per_class"]) == num_classes and len(result["precision_recall"]) == num_classes
        for ours, ref in zip(result["ap_per_class"], aps, strict=True):
            assert isinstance(ours, float)
            assert (math.isnan(ours) and math.isnan(ref)) or abs(ours - ref) < 1e-12, (trial, ours, ref)
        assert (math.isnan(result["mAP"]) and math.isnan(mean_ap)) or abs(result["mAP"] - mean_ap) < 1e-12
        for (precision, recall), (ref_p, ref_r) in zip(result["precision_recall"], curves, strict=True):
            assert precision.tolist() == pytest.approx(ref_p, abs=1e-12)
            assert recall.tolist() == pytest.approx(ref_r, abs=1e-12)


def image(boxes, labels, scores=None, difficult=None):
    """One image's dict; ``scores`` given: a prediction, else a ground truth."""
    entry = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
             "labels": torch.tensor(labels, dtype=torch.int64)}
    if scores is not None:
        entry["scores"] = torch.tensor(scores, dtype=torch.float32)
    if difficult is not None:
        entry["difficult"] = torch.tensor(difficult, dtype=torch.bool)
    return entry


A, B, C = [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [40.0, 0.0, 50.0, 10.0]
MISS = [60.0, 60.0, 70.0, 70.0]  # overlaps nothing


@EVAL
def test_perfect_and_missing_predictions():
    truths = [image([A, B], [0, 1]), image([C], [0])]
    perfect = [image([A, B], [0, 1], [0.9, 0.8]), image([C], [0], [0.7])]
    result = evaluate_detections(perfect, truths, num_classes=2)
    assert result["mAP"] == 1.0 and result["ap_per_class"] == [1.0, 1.0]
    precision, recall = result["precision_recall"][0]
    assert precision.tolist() == [1.0, 1.0] and recall.tolist() == [0.5, 1.0]
    nothing = [image([], [], []), image([], [], [])]
    result = evaluate_detections(nothing, truths, num_classes=2)
    assert result["mAP"] == 0.0 and result["ap_per_class"] == [0.0, 0.0]
    assert result["precision_recall"][0][0].shape == (0,)
    # right boxes, wrong labels: nothing matches
    swapped = [image([A, B], [1, 0], [0.9, 0.8]), image([C], [1], [0.7])]
    assert evaluate_detections(swapped, truths, num_classes=2)["mAP"] == 0.0


@EVAL
def test_a_duplicate_is_a_false_positive():
    truths = [image([A, B], [0, 0])]
    # ranks: A (TP), A again (FP), B (TP) -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    # AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    preds = [image([A, A, B], [0, 0, 0], [0.9, 0.8, 0.7])]
    result = evaluate_detections(preds, truths, num_classes=1)
    assert result["ap_per_class"][0] == pytest.approx(5 / 6, abs=1e-12)
    precision, recall = result["precision_recall"][0]
    assert precision.tolist() == pytest.approx([1.0, 0.5, 2 / 3]) and recall.tolist() == [0.5, 0.5, 1.0]
    # the duplicate ranked after every true positive costs nothing
    late = [image([A, B, A], [0, 0, 0], [0.9, 0.8, 0.7])]
    assert evaluate_detections(late, truths, num_classes=1)["mAP"] == pytest.approx(1.0, abs=1e-12)


@EVAL
def test_a_detection_is_matched_to_its_best_box_even_if_taken():
    # the VOC rule: the second detection overlaps A most (IoU 0.905) and B enough (0.739), but A is taken:
    # false positive.  Precision 1, 1/2 at recall 1/2, 1/2 -> AP 1/2.
    a, b = [0.0, 0.0, 10.0, 10.0], [0.0, 2.0, 10.0, 12.0]
    preds = [image([a, [0.0, 0.5, 10.0, 10.5]], [0, 0], [0.9, 0.8])]
    result = evaluate_detections(preds, [image([a, b], [0, 0])], num_classes=1)
    assert result["ap_per_class"][0] == pytest.approx(0.5, abs=1e-12)


@EVAL
def test_difficult_boxes_are_ignored():
    hard = [0.0, 20.0, 10.0, 30.0]
    truths = [image([A, hard], [0, 0], difficult=[False, True])]
    # detection of the difficult box: ignored; a miss: FP; A: TP -> precision 0, 1/2 at recall 0, 1 -> AP 1/2
    # (were the difficult box a positive, or its detection a false positive, the AP would differ)
    preds = [image([hard, MISS, A], [0, 0, 0], [0.95, 0.9, 0.8])]
    result = evaluate_detections(preds, truths, num_classes=1)
    assert result["ap_per_class"][0] == pytest.approx(0.5, abs=1e-12)
    precision, recall = result["precision_recall"][0]
    assert precision.tolist() == [0.0, 0.5] and recall.tolist() == [0.0, 1.0]
    # a class whose only box is difficult has no AP (nan) and is left out of the mAP
    truths = [image([A, B], [0, 1], difficult=[False, True])]
    preds = [image([A, B], [0, 1], [0.9, 0.8])]
    result = evaluate_detections(preds, truths, num_classes=2)
    assert result["ap_per_class"][0] == 1.0 and math.isnan(result["ap_per_class"][1])
    assert result["mAP"] == 1.0


@EVAL
def test_a_class_without_boxes_is_nan_and_left_out_of_the_map():
    truths = [image([A, B], [0, 0]), image([C], [2])]
    # class 0: MISS (FP), A (TP), B (TP): precision 0, 1/2, 2/3 at recall 0, 1/2, 1 -> AP 2/3
    # class 1: no box, one (false) detection -> nan; class 2: perfect -> 1
    preds = [image([MISS, A, B], [0, 0, 0], [0.9, 0.8, 0.7]), image([C, C], [2, 1], [0.6, 0.5])]
    result = evaluate_detections(preds, truths, num_classes=3)
    ap = result["ap_per_class"]
    assert ap[0] == pytest.approx(2 / 3, abs=1e-12) and math.isnan(ap[1]) and ap[2] == 1.0
    assert result["mAP"] == pytest.approx((2 / 3 + 1.0) / 2, abs=1e-12)
    assert result["precision_recall"][1][0].shape == (0,) and result["precision_recall"][1][1].shape == (0,)
    nothing = evaluate_detections([], [], num_classes=2)
    assert math.isnan(nothing["mAP"]) and all(math.isnan(v) for v in nothing["ap_per_class"])


@EVAL
@pytest.mark.parametrize(("outcomes", "num_boxes", "expected"), [
    ("FT", 1, 0.5),          # precision 0, 1/2 at recall 0, 1
    ("TFFT", 2, 0.75),       # 1/2 * 1 + 1/2 * 1/2
    ("TFTT", 3, 1 / 3 + 2 / 3 * 3 / 4),  # monotone precision: 3/4 replaces 1/2 and 2/3
    ("FFF", 2, 0.0),
])
def test_known_precision_recall_curves(outcomes, num_boxes, expected):
    # ground-truth boxes side by side; a "T" detection hits the next one, an "F" misses everything
    truths = [image([[20.0 * i, 0.0, 20.0 * i + 10, 10.0] for i in range(num_boxes)], [0] * num_boxes)]
    boxes, hits = [], 0
    for outcome in outcomes:
        boxes.append([20.0 * hits, 0.0, 20.0 * hits + 10, 10.0] if outcome == "T" else MISS)
        hits += outcome == "T"
    scores = [1.0 - 0.1 * i for i in range(len(outcomes))]
    result = evaluate_detections([image(boxes, [0] * len(boxes), scores)], truths, num_classes=1)
    assert result["mAP"] == pytest.approx(expected, abs=1e-12)


@EVAL
def test_iou_threshold_rule_and_continuous_coordinates():
    # IoU([0,0,4,1], [0,0,2,1]) = 2 / 4 = 1/2 exactly: a match at threshold 1/2 (>=), not above it.
    # With the old "+1 pixel" convention it would be 6/10 = 0.6 and match at 0.55 too.
    truths = [image([[0.0, 0.0, 4.0, 1.0]], [0])]
    preds = [image([[0.0, 0.0, 2.0, 1.0]], [0], [0.9])]
    assert evaluate_detections(preds, truths, 1, iou_threshold=0.5)["mAP"] == 1.0
    assert evaluate_detections(preds, truths, 1, iou_threshold=0.55)["mAP"] == 0.0
    assert evaluate_detections(preds, truths, 1, iou_threshold=0.5 + 1e-9)["mAP"] == 0.0


@EVAL
def test_equal_scores_are_ranked_in_input_order():
    # two boxes, two detections with one score.  A miss in image 0 ranked before a hit in image 1:
    # precision 0, 1/2 at recall 0, 1/2 -> AP 1/4; a hit in image 0 before a miss: 1, 1/2 at 1/2, 1/2 -> 1/2
    truths = [image([A], [0]), image([B], [0])]
    miss_first = [image([MISS], [0], [0.5]), image([B], [0], [0.5])]
    hit_first = [image([A], [0], [0.5]), image([MISS], [0], [0.5])]
    assert evaluate_detections(miss_first, truths, 1)["mAP"] == pytest.approx(0.25, abs=1e-12)
    assert evaluate_detections(hit_first, truths, 1)["mAP"] == pytest.approx(0.5, abs=1e-12)


@AP
def test_average_precision_by_hand():
    def ap(precision, recall):
        return average_precision(torch.tensor(precision, dtype=F64), torch.tensor(recall, dtype=F64))

    assert ap([], []) == 0.0
    assert ap([1.0, 1.0], [0.5, 1.0]) == 1.0
    assert ap([1.0, 0.5, 1 / 3, 0.5], [0.5, 0.5, 0.5, 1.0]) == pytest.approx(0.75, abs=1e-15)
    # the envelope: precision 1/2 at recall 1/3 is raised to the 3/4 reached later
    assert ap([1.0, 0.5, 2 / 3, 0.75], [1 / 3, 1 / 3, 2 / 3, 1.0]) == pytest.approx(1 / 3 + 0.5, abs=1e-15)
    # recall never reaching 1: the area stops where the recall stops
    assert ap([1.0, 0.5], [0.25, 0.25]) == pytest.approx(0.25, abs=1e-15)


@AP
def test_average_precision_matches_the_devkit_formulation():
    g = gen(8)
    for _ in range(20):
        outcomes = (torch.rand(random_size(g, 30) + 1, generator=g) < 0.6).double()
        num_positives = int(outcomes.sum()) + random_size(g, 3)
        if num_positives == 0:
            continue
        tp = torch.cumsum(outcomes, 0)
        precision, recall = tp / torch.arange(1, outcomes.numel() + 1), tp / num_positives
        truths = [image([[20.0 * i, 0.0, 20.0 * i + 10, 10.0] for i in range(num_positives)], [0] * num_positives)]
        # the same curve through the plain reference: hits on successive boxes, misses elsewhere
        boxes, hits = [], 0
        for hit in outcomes.tolist():
            boxes.append([20.0 * hits, 0.0, 20.0 * hits + 10, 10.0] if hit else MISS)
            hits += int(hit)
        scores = torch.linspace(1, 0.01, outcomes.numel())
        preds = [{"boxes": torch.tensor(boxes), "labels": torch.zeros(len(boxes), dtype=torch.int64),
                  "scores": scores}]
        _, aps, _ = reference_voc(preds, truths, 1)
        assert average_precision(precision, recall) == pytest.approx(aps[0], abs=1e-12)


# --------------------------------------------------------------------------- errors (given code)


@GIVEN
def test_box_functions_refuse_bad_boxes_clearly():
    good = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        box_iou(torch.zeros(3, 5), good)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        nms(torch.zeros(4), torch.zeros(1), 0.5)
    with pytest.raises(TypeError, match="torch.Tensor"):
        box_iou([[0, 0, 1, 1]], good)
    with pytest.raises(TypeError, match="floating"):
        nms(torch.zeros(2, 4, dtype=torch.int64), torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match=r"x2 >= x1.*row 1"):
        box_iou(torch.tensor([[0.0, 0.0, 1.0, 1.0], [3.0, 0.0, 2.0, 1.0]]), good)
    with pytest.raises(ValueError, match="y2 >= y1"):
        nms(torch.tensor([[0.0, 5.0, 1.0, 1.0]]), torch.ones(1), 0.5)
    with pytest.raises(ValueError, match="finite"):
        box_iou(good, torch.tensor([[0.0, 0.0, float("nan"), 1.0]]))
    with pytest.raises(ValueError, match=r"scores must have shape \(1,\)"):
        nms(good, torch.ones(2), 0.5)
    with pytest.raises(TypeError, match="floating"):
        nms(good, torch.ones(1, dtype=torch.int64), 0.5)
    with pytest.raises(TypeError, match="iou_threshold"):
        nms(good, torch.ones(1), "0.5")
    with pytest.raises(ValueError, match=r"class_ids must have shape \(1,\)"):
        class_spec_nms(good, torch.ones(1), torch.zeros(2, dtype=torch.int64), 0.5)
    with pytest.raises(TypeError, match="integer class"):
        class_spec_nms(good, torch.ones(1), torch.zeros(1), 0.5)


@GIVEN
def test_roi_align_and_fpn_refuse_bad_arguments_clearly():
    features = torch.zeros(2, 3, 8, 8)
    box = torch.tensor([[0.0, 1.0, 1.0, 4.0, 4.0]])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        roi_align(torch.zeros(3, 8, 8), box, 2)
    with pytest.raises(TypeError, match="floating"):
        roi_align(torch.zeros(2, 3, 8, 8, dtype=torch.int64), box, 2)
    with pytest.raises(ValueError, match=r"\(K, 5\)"):
        roi_align(features, box[:, 1:], 2)
    with pytest.raises(ValueError, match=r"batch indices.*\[0, 2\)"):
        roi_align(features, torch.tensor([[2.0, 1.0, 1.0, 4.0, 4.0]]), 2)
    with pytest.raises(ValueError, match="batch indices"):
        roi_align(features, torch.tensor([[0.5, 1.0, 1.0, 4.0, 4.0]]), 2)
    with pytest.raises(ValueError, match="one \\(Ki, 4\\) tensor per image"):
        roi_align(features, [box[:, 1:]], 2)
    with pytest.raises(ValueError, match=r"boxes\[1\].*x2 >= x1"):
        roi_align(features, [box[:, 1:], torch.tensor([[4.0, 1.0, 1.0, 4.0]])], 2)
    with pytest.raises(ValueError, match="output_size"):
        roi_align(features, box, (2, 0))
    with pytest.raises(ValueError, match="spatial_scale"):
        roi_align(features, box, 2, spatial_scale=0.0)
    with pytest.raises(TypeError, match="sampling_ratio"):
        roi_align(features, box, 2, sampling_ratio=2.0)
    with pytest.raises(TypeError, match="aligned"):
        roi_align(features, box, 2, aligned=1)
    with pytest.raises(ValueError, match="no stride for level 'p4'"):
        get_fpn_location_coords({"p3": (1, 8, 4, 4), "p4": (1, 8, 2, 2)}, {"p3": 8})
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) or \(H, W\)"):
        get_fpn_location_coords({"p3": (4,)}, {"p3": 8})
    with pytest.raises(ValueError, match="stride"):
        get_fpn_location_coords({"p3": (4, 4)}, {"p3": 0})


@GIVEN
def test_evaluate_detections_refuses_bad_input_clearly():
    truths = [image([A], [0])]
    preds = [image([A], [0], [0.9])]
    with pytest.raises(ValueError, match="one entry per image, got 1 and 2"):
        evaluate_detections(preds, truths * 2, 2)
    with pytest.raises(TypeError, match="list with one dict per image"):
        evaluate_detections(preds[0], truths, 2)
    with pytest.raises(ValueError, match="keys boxes, scores, labels"):
        evaluate_detections([{"boxes": preds[0]["boxes"], "labels": preds[0]["labels"]}], truths, 2)
    with pytest.raises(ValueError, match=r"predictions\[0\]\['labels'\].*\[0, 2\)"):
        evaluate_detections([image([A], [2], [0.9])], truths, 2)
    with pytest.raises(ValueError, match=r"ground_truths\[0\]\['labels'\].*\[0, 2\)"):
        evaluate_detections(preds, [image([A], [-1])], 2)
    with pytest.raises(ValueError, match=r"predictions\[0\]\['scores'\] must have shape \(1,\)"):
        evaluate_detections([image([A], [0], [0.9, 0.8])], truths, 2)
    with pytest.raises(ValueError, match=r"ground_truths\[0\]\['boxes'\].*x2 >= x1"):
        evaluate_detections(preds, [image([[5.0, 0.0, 1.0, 1.0]], [0])], 2)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        evaluate_detections([{**preds[0], "boxes": torch.zeros(1, 3)}], truths, 2)
    with pytest.raises(TypeError, match="bool"):
        evaluate_detections(preds, [{**truths[0], "difficult": torch.zeros(1)}], 2)
    with pytest.raises(ValueError, match=r"difficult'\] must have shape \(1,\)"):
        evaluate_detections(preds, [{**truths[0], "difficult": torch.zeros(2, dtype=torch.bool)}], 2)
    with pytest.raises(ValueError, match="num_classes"):
        evaluate_detections(preds, truths, 0)
    with pytest.raises(ValueError, match="iou_threshold"):
        evaluate_detections(preds, truths, 2, iou_threshold=1.5)
    with pytest.raises(ValueError, match="same shape"):
        average_precision(torch.ones(3), torch.ones(2))
    with pytest.raises(ValueError, match="non-decreasing"):
        average_precision(torch.ones(2), torch.tensor([0.5, 0.25]))


# --------------------------------------------------------------------------- backbone with FPN


def fake_backbone(feats, out_channels=8):
    """The student's ``DetectorBackboneWithFPN`` on a trunk that returns ``feats`` (``detection_support.FakeTrunk``)."""
    return support.backbone_on(support.FakeTrunk(feats), out_channels).eval()


@BACKBONE
@pytest.mark.parametrize("size", [64, 96])
def test_backbone_shapes_and_strides(size):
    torch.manual_seed(0)
    model = DetectorBackboneWithFPN(out_channels=16)
    assert dict(model.fpn_strides) == {"p3": 8, "p4": 16, "p5": 32}
    feats = model(torch.rand(2, 3, size, size))
    assert sorted(feats) == ["p3", "p4", "p5"]
    for level, stride in model.fpn_strides.items():
        assert feats[level].shape == (2, 16, size // stride, size // stride)
        assert torch.isfinite(feats[level]).all()
    # every FPN level reaches the trunk's first layer (autograd where the model lives)
    grads = support.stem_gradients(model, torch.rand(2, 3, size, size))
    assert grads and all(grad is not None and grad.abs().sum() > 0 for grad in grads)


@BACKBONE
def test_backbone_fpn_top_down_path():
    """p5 sees only c5; p4 sees c4 and c5; p3 sees all three (the top-down path)."""
    g = gen(3)
    feats = {"c3": torch.randn(1, 5, 8, 8, generator=g), "c4": torch.randn(1, 6, 4, 4, generator=g),
             "c5": torch.randn(1, 7, 2, 2, generator=g)}
    model = fake_backbone(feats)
    with torch.no_grad():
        base = model(torch.rand(1, 3, 64, 64))
        for changed, affected in (("c3", {"p3"}), ("c4", {"p3", "p4"}), ("c5", {"p3", "p4", "p5"})):
            model.backbone.feats = {**feats, changed: feats[changed] + torch.randn(feats[changed].shape, generator=g)}
            out = model(torch.rand(1, 3, 64, 64))
            for level in ("p3", "p4", "p5"):
                assert out[level].shape == (1, 8, 64 // model.fpn_strides[level], 64 // model.fpn_strides[level])
                assert torch.equal(out[level], base[level]) != (level in affected), (changed, level)


@BACKBONE
def test_backbone_normalises_images_with_imagenet_statistics():
    feats = {"c3": torch.zeros(1, 2, 4, 4), "c4": torch.zeros(1, 2, 2, 2), "c5": torch.zeros(1, 2, 1, 1)}
    model = fake_backbone(feats)
    images = torch.rand(1, 3, 32, 32, generator=gen(4))
    model(images)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(model.backbone.seen, (images - mean.view(3, 1, 1)) / std.view(3, 1, 1))


@BACKBONE
def test_backbone_on_the_regnet_trunk_without_downloading():
    """The ``pretrained=True`` trunk, built with random weights (no network): same interface."""
    model = support.backbone_on(RegNetTrunk())
    with torch.no_grad():
        feats = model.eval()(torch.rand(1, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in feats.items()} == {"p3": (1, 8, 8, 8), "p4": (1, 8, 4, 4),
                                                             "p5": (1, 8, 2, 2)}


@GIVEN
def test_backbone_refuses_bad_input_clearly():
    model = DetectorBackboneWithFPN(out_channels=4)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 1, 64, 64))
    with pytest.raises(TypeError, match="floats in \\[0, 1\\]"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 64, 48))
    with pytest.raises(ValueError, match="out_channels"):
        DetectorBackboneWithFPN(out_channels=0)
    with pytest.raises(TypeError, match="pretrained"):
        DetectorBackboneWithFPN(out_channels=4, pretrained="yes")


# --------------------------------------------------------------------------- detection_errors


def _image(boxes, labels, scores=None):
    out = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
           "labels": torch.tensor(labels, dtype=torch.int64)}
    if scores is not None:
        out["scores"] = torch.tensor(scores, dtype=torch.float32)
    return out


@ERRORS
def test_detection_errors_names_every_kind():
    gt = _image([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 0, 70, 10]], [0, 1, 2, 3])
    pred = _image([[0, 0, 10, 10],      # 0: correct (class 0)
                   [0, 0, 10, 9],       # 1: duplicate of box 0, lower score
                   [20, 20, 30, 30],    # 2: on box 1 (class 1) but says class 0: mislabelled
                   [40, 40, 44, 44],    # 3: class 2, IoU 0.16 with box 2: mislocated
                   [80, 80, 90, 90],    # 4: nothing there: background
                   [60, 0, 70, 10]],    # 5: correct, but scores under the threshold: not looked at
                  [0, 0, 0, 2, 1, 3], [0.9, 0.8, 0.7, 0.6, 0.55, 0.2])
    kinds = detection_errors(pred, gt, score_thresh=0.5)
    assert {k: v.tolist() for k, v in kinds.items()} == {
        "correct": [0], "duplicate": [1], "mislabelled": [2], "mislocated": [3], "background": [4],
        "missed": [1, 2, 3]}
    kinds = detection_errors(pred, gt, score_thresh=0.1)
    assert kinds["correct"].tolist() == [0, 5] and kinds["missed"].tolist() == [1, 2]


@ERRORS
def test_detection_errors_takes_detections_by_score_and_claims_the_best_box():
    gt = _image([[0, 0, 10, 10], [0, 0, 10, 12]], [0, 0])
    # the lower-scored detection comes first in the list; the better one claims first
    pred = _image([[0, 0, 10, 10], [0, 0, 10, 12]], [0, 0], [0.6, 0.9])
    kinds = detection_errors(pred, gt)
    assert kinds["correct"].tolist() == [1, 0] and kinds["duplicate"].numel() == 0
    assert kinds["missed"].numel() == 0
    empty = detection_errors(_image([], [], []), gt)
    assert empty["missed"].tolist() == [0, 1] and all(empty[k].numel() == 0 for k in ERROR_KINDS[:5])


@GIVEN
def test_detection_errors_refuses_bad_input():
    gt = _image([[0, 0, 10, 10]], [0])
    with pytest.raises(ValueError, match="scores"):
        detection_errors(_image([[0, 0, 1, 1]], [0]), gt)
    with pytest.raises(ValueError, match="touch_iou"):
        detection_errors(_image([[0, 0, 1, 1]], [0], [0.9]), gt, touch_iou=0.7)
    with pytest.raises(ValueError, match="x2"):
        detection_errors(_image([[5, 0, 1, 1]], [0], [0.9]), gt)


@ERRORS
def test_count_errors_sums_over_images():
    gt = _image([[0, 0, 10, 10]], [0])
    right = _image([[0, 0, 10, 10]], [0], [0.9])
    wrong = _image([[0, 0, 10, 10], [50, 50, 60, 60]], [1, 0], [0.9, 0.8])
    counts, images = count_errors([right, wrong, right], [gt, gt, gt])
    assert counts == {"correct": 2, "duplicate": 0, "mislabelled": 1, "mislocated": 0, "background": 1, "missed": 1}
    assert images["correct"] == [0, 2] and images["mislabelled"] == [1] and images["missed"] == [1]
    with pytest.raises(ValueError, match="same length"):
        count_errors([right], [gt, gt])


@ERRORS
def test_confusion_counts_and_class_agnostic_ap():
    gt = _image([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1])
    pred = _image([[0, 0, 10, 10], [20, 20, 30, 29], [20, 20, 30, 30], [50, 50, 60, 60]], [0, 2, 1, 2],
                  [0.9, 0.8, 0.3, 0.9])
    counts = confusion_counts([pred, pred], [gt, gt], num_classes=3)
    expected = torch.zeros(3, 3, dtype=torch.int64)
    expected[0, 0] = 2  # found and right, in both images
    expected[1, 2] = 2  # class 1 called class 2; the right one scores under 0.5; the box on background adds nothing
    assert torch.equal(counts, expected)
    assert confusion_counts([pred], [gt], num_classes=3, score_thresh=0.0)[1, 1] == 1
    agnostic = ignore_classes([pred])
    assert agnostic[0]["labels"].tolist() == [0, 0, 0, 0] and pred["labels"].tolist() == [0, 2, 1, 2]
    # box 1 found but called class 2: with classes mAP (1 + 0) / 2, without classes both boxes are found
    mislabelled = _image([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 2], [0.9, 0.8])
    assert evaluate_detections([mislabelled], [gt], num_classes=3)["mAP"] == 0.5
    assert evaluate_detections(ignore_classes([mislabelled]), ignore_classes([gt]), num_classes=1)["mAP"] == 1.0


@GIVEN
def test_predict_in_batches_scales_uint8_batches_and_restores_the_mode():
    model = support.MeanBox()
    images = torch.full((5, 3, 4, 4), 255, dtype=torch.uint8)
    predictions = predict_in_batches(model, images, model.detect, batch_size=2)
    assert [p["scores"].item() for p in predictions] == [1.0] * 5  # 255 -> 1.0
    assert list(model.seen) == [(False, torch.float32, 2), (False, torch.float32, 2), (False, torch.float32, 1)]
    assert model.training and not predictions[0]["scores"].requires_grad
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        predict_in_batches(model, images[0], model.detect)


# --------------------------------------------------------------------------- generalized_box_iou

def _random_boxes(n, generator, scale=50.0, dtype=torch.float64):
    corner = torch.rand(n, 2, generator=generator, dtype=dtype) * scale
    return torch.cat([corner, corner + torch.rand(n, 2, generator=generator, dtype=dtype) * scale / 2 + 0.5], dim=1)


@GIOU
def test_generalized_box_iou_matches_torchvision():
    gen = torch.Generator().manual_seed(0)
    for n, m in ((1, 1), (7, 5), (40, 33)):
        a, b = _random_boxes(n, gen), _random_boxes(m, gen)
        ours = generalized_box_iou(a, b)
        assert ours.shape == (n, m)
        assert torch.allclose(ours, tvo.generalized_box_iou(a, b), rtol=0, atol=1e-12)
    a = _random_boxes(10, gen)
    assert torch.allclose(generalized_box_iou(a, a).diagonal(), torch.ones(10, dtype=torch.float64))
    assert generalized_box_iou(torch.zeros(0, 4), a.float()).shape == (0, 10)


@GIOU
def test_generalized_box_iou_by_hand_and_beyond_overlap():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    # Touching side by side: IoU 0, enclosing box 4 x 2 = 8, union 8: GIoU 0.
    assert generalized_box_iou(a, torch.tensor([[2.0, 0.0, 4.0, 2.0]])).item() == 0.0
    # Diagonal, apart: IoU 0, enclosing 4 x 4 = 16, union 8: GIoU = -(16 - 8) / 16 = -0.5.
    assert generalized_box_iou(a, torch.tensor([[2.0, 2.0, 4.0, 4.0]])).item() == -0.5
    # Further apart, GIoU keeps falling (IoU would stay 0).
    far = generalized_box_iou(a, torch.tensor([[10.0, 10.0, 12.0, 12.0], [5.0, 5.0, 7.0, 7.0]]))[0]
    assert -1 < far[0] < far[1] < -0.5


@GIOU
def test_generalized_box_iou_gradient():
    gen = torch.Generator().manual_seed(1)
    a, b = _random_boxes(4, gen, scale=10.0), _random_boxes(3, gen, scale=10.0)
    weights = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    _, (grad_a, grad_b) = ut.backward_through(generalized_box_iou, [a.clone().requires_grad_(),
                                                                    b.clone().requires_grad_()], weights)
    a2, b2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    (tvo.generalized_box_iou(a2, b2) * weights).sum().backward()
    assert rel_error(grad_a, a2.grad) < 1e-10 and rel_error(grad_b, b2.grad) < 1e-10
    numeric = compute_numeric_gradient(lambda x: (generalized_box_iou(x, b) * weights).sum(), a.clone())
    assert rel_error(grad_a, numeric) < 1e-6


@GIVEN
def test_generalized_box_iou_refuses_bad_boxes():
    good = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="x2 >= x1"):
        generalized_box_iou(torch.tensor([[2.0, 0.0, 1.0, 1.0]]), good)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        generalized_box_iou(good, torch.zeros(3))
    with pytest.raises(TypeError, match="floating-point"):
        generalized_box_iou(good, torch.zeros(1, 4, dtype=torch.int64))


@GIVEN
def test_values_outside_their_range_are_refused():
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])
    scores = torch.tensor([0.9, 0.8])
    for threshold in (1.5, -1.0, float("nan")):
        with pytest.raises(ValueError, match=r"iou_threshold must lie in \[0.0, 1.0\]"):
            nms(boxes, scores, threshold)
        with pytest.raises(ValueError, match=r"iou_threshold must lie in \[0.0, 1.0\]"):
            class_spec_nms(boxes, scores, torch.tensor([0, 1]), threshold)
    with pytest.raises(ValueError, match="class indices >= 0, got -1"):
        class_spec_nms(boxes, scores, torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="1 NaN value.*index 1"):
        nms(boxes, torch.tensor([0.9, float("nan")]))
    with pytest.raises(ValueError, match=r"precision must lie in \[0, 1\]"):
        average_precision(torch.tensor([1.0, 3.0]), torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"precision must lie in \[0, 1\]"):
        average_precision(torch.tensor([float("nan")]), torch.tensor([1.0]))
    for threshold in (2.0, -0.5):
        with pytest.raises(ValueError, match=r"score_thresh must lie in \[0.0, 1.0\]"):
            class_candidates(torch.rand(3, 4), threshold)
    prediction = {"boxes": boxes, "scores": torch.tensor([float("nan"), 0.5]), "labels": torch.tensor([0, 0])}
    truth = {"boxes": boxes[:1], "labels": torch.tensor([0])}
    with pytest.raises(ValueError, match=r"predictions\[0\]\['scores'\] hold 1 NaN"):
        evaluate_detections([prediction], [truth], num_classes=1)
