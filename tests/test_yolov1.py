"""Paper YOLOv1 (``papers/yolov1.py``): model, targets, responsible boxes, loss, decoding, export, CLI.

The loss is checked on cases worked out by hand and against a plain per-cell loop written here;
targets by hand and by encode/decode round trips; the IoU against ``torchvision.ops.box_iou``;
deployment by exporting a small untrained model and by running the command line on image files.

The student's objects may live in the grader's worker (``tests/under_test.py``): weights are set
with ``load_state_dict``, autograd runs there (``backward_through``), and so do training, exports
and the command line's files (``tests/papers_support.py``); mAP is computed here by a reference.
"""

import json
import math

import pytest
import torch
from papers_support import folder_in_worker, mean_ap, png_bytes, rule_mark
from torchvision.ops import box_iou
from under_test import load, rules_of

from helpers.datasets import gt_boxes_to_targets, load_detection
from helpers.export import BOX_FORMAT

yolo = load("papers.yolov1")
YOLOv1 = yolo.YOLOv1
build_backbone = yolo.build_backbone
cell_boxes = yolo.cell_boxes
decode_predictions = yolo.decode_predictions
decode_targets = yolo.decode_targets
encode_targets = yolo.encode_targets
layout_stride = yolo.layout_stride
main = yolo.main
predict_detections = yolo.predict_detections
random_scale_translate = yolo.random_scale_translate
responsible_boxes = yolo.responsible_boxes
save_export = yolo.save_export
shares_cell = yolo.shares_cell
split_predictions = yolo.split_predictions
yolo_loss = yolo.yolo_loss
export = load("helpers.export")          # given code, run where the model lives
support = load("papers_support")
worker_folder = pytest.fixture(folder_in_worker, name="worker_folder")  # a scratch folder where the model lives
backward_through = load("under_test").backward_through
worker_torch = load("torch")             # random generators made where the student's code draws from them

# Score groups of `python -m course.grade` (README, "For teachers"): points are each group's total.
MODEL = pytest.mark.grade("YOLOv1 backbone and head", points=3)
TARGETS = pytest.mark.grade("YOLOv1 targets: encode and decode", points=4)
RESPONSIBLE = pytest.mark.grade("YOLOv1 responsible boxes", points=2)
LOSS = pytest.mark.grade("YOLOv1 loss", points=6)
DECODE = pytest.mark.grade("YOLOv1 decoding and NMS", points=3)
AUGMENT = pytest.mark.grade("YOLOv1 scale and translation augmentation", points=2)
TRAIN = pytest.mark.grade("YOLOv1 learns", points=2)
GIVEN = pytest.mark.grade("given code: input checks, export and command line", points=0)

F64 = torch.float64


# The rules the docstrings state: how many Python loops each function may have.
RULES = [("cell_boxes", DECODE, 0), ("split_predictions", DECODE, 0), ("decode_predictions", DECODE, 1),
         ("responsible_boxes", RESPONSIBLE, 0), ("yolo_loss", LOSS, 0), ("random_scale_translate", AUGMENT, 0)]


@pytest.mark.parametrize("name, loops", [pytest.param(n, loops, marks=rule_mark(mark), id=n)
                                         for n, mark, loops in RULES])
def test_rules(name, loops):
    rules_of("papers.yolov1", name, loops=loops)


def padded(rows, m=6):
    """One image's boxes ``[(x1, y1, x2, y2, class), ...]`` as a ``(1, m, 5)`` batch padded with -1."""
    out = torch.full((1, m, 5), -1.0)
    if rows:
        out[0, :len(rows)] = torch.tensor(rows, dtype=torch.float32)
    return out


def logit(p):
    return math.log(p / (1 - p))


# --------------------------------------------------------------------------- model


@MODEL
def test_paper_layout_has_24_convolutions_stride_64_and_the_papers_parameter_count():
    paper_layout = yolo.PAPER_LAYOUT
    convs = [e for e in paper_layout if e != "M"]
    assert len(convs) == 24 and layout_stride(paper_layout) == 64  # 448 px -> 7 x 7
    # 270 M parameters: counted without allocating them (on the meta device)
    model = support.on_meta(YOLOv1, 20, image_size=448, grid_size=7, num_boxes=2, layout="paper", hidden=4096,
                            batch_norm=False)
    # independent count: weights + biases of every convolution, then the two fully connected layers
    count, channels = 0, 3
    for kernel, out, _ in convs:
        count += kernel * kernel * channels * out + out
        channels = out
    count += 7 * 7 * 1024 * 4096 + 4096 + 4096 * 7 * 7 * 30 + 7 * 7 * 30
    assert sum(math.prod(shape) for shape in support.parameter_shapes(model).values()) == count
    assert support.count_modules(model, "Conv2d") == 24


@MODEL
@pytest.mark.parametrize("head", ["fc", "conv"])
def test_output_shape_and_small_layout(head):
    torch.manual_seed(0)
    model = YOLOv1(3, image_size=64, grid_size=4, num_boxes=2, head=head, hidden=16)
    small_layout = yolo.SMALL_LAYOUT
    assert layout_stride(small_layout) == 16
    out = model(torch.rand(5, 3, 64, 64))
    assert out.shape == (5, 4, 4, 2 * 5 + 3)
    backbone, channels = build_backbone(small_layout)
    assert backbone(torch.rand(2, 3, 96, 96)).shape == (2, channels, 6, 6)


@MODEL
def test_conv_head_keeps_cells_local():
    """With the conv head, changing pixels in the top-left corner cannot change the bottom-right cell."""
    torch.manual_seed(0)
    model = YOLOv1(2, image_size=96, grid_size=6, head="conv", hidden=8).eval()
    x = torch.rand(1, 3, 96, 96)
    y = x.clone()
    y[..., :8, :8] = 0.0
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.equal(a[0, 5, 5], b[0, 5, 5]) and not torch.equal(a[0, 0, 0], b[0, 0, 0])


@GIVEN
def test_image_sizes_not_divisible_by_the_grid_are_refused():
    with pytest.raises(ValueError, match="multiple of grid_size"):
        YOLOv1(3, image_size=100, grid_size=6)
    with pytest.raises(ValueError, match="multiple of grid_size"):
        encode_targets(padded([]), grid_size=7, image_size=96, num_classes=3)
    with pytest.raises(ValueError, match="S x S feature map"):
        YOLOv1(3, image_size=96, grid_size=12, head="conv")
    model = YOLOv1(3, image_size=96, grid_size=6, hidden=8)
    with pytest.raises(ValueError, match="multiples of the grid size 6"):
        model(torch.rand(1, 3, 100, 96))
    with pytest.raises(ValueError, match="takes 96 x 96 images"):
        model(torch.rand(1, 3, 48, 48))
    with pytest.raises(TypeError, match="floats"):
        model(torch.zeros(1, 3, 96, 96, dtype=torch.uint8))


# --------------------------------------------------------------------------- targets


@TARGETS
def test_encode_targets_by_hand():
    # 96 px, S = 6: cells of 16 px.  Box centre (40, 20) -> column 2, row 1, offsets (0.5, 0.25).
    targets = encode_targets(padded([(30.0, 8.0, 50.0, 32.0, 2.0)]), grid_size=6, image_size=96, num_classes=3)
    assert targets.shape == (1, 6, 6, 8)
    expected = torch.tensor([0.5, 0.25, 20 / 96, 24 / 96, 1.0, 0.0, 0.0, 1.0])
    assert torch.allclose(targets[0, 1, 2], expected)
    targets[0, 1, 2] = 0
    assert not targets.any(), "every other cell is empty"


@TARGETS
def test_empty_image_and_centre_on_the_last_edge():
    empty = encode_targets(padded([]), grid_size=4, image_size=64, num_classes=2)
    assert empty.shape == (1, 4, 4, 7) and not empty.any()
    edge = encode_targets(padded([(60.0, 60.0, 64.0, 68.0, 0.0)]), grid_size=4, image_size=64, num_classes=2)
    # centre (62, 64): y on the bottom edge -> the last row, offset 1
    assert edge[0, 3, 3, 4] == 1 and float(edge[0, 3, 3, 1]) == pytest.approx(1.0)


@TARGETS
def test_shared_cell_keeps_the_largest_box():
    rows = [(0.0, 0.0, 10.0, 10.0, 0.0), (2.0, 2.0, 12.0, 6.0, 1.0), (40.0, 40.0, 60.0, 60.0, 2.0)]
    targets = encode_targets(padded(rows), grid_size=4, image_size=64, num_classes=3)
    assert targets[0, 0, 0, 5:].tolist() == [1.0, 0.0, 0.0], "area 100 beats area 40 in cell (0, 0)"
    assert int(targets[0, ..., 4].sum()) == 2
    assert shares_cell(padded(rows), 4, 64)[0].tolist() == [True, True, False, False, False, False]
    # equal areas: the first box wins, in either order of the rows
    tie = [(0.0, 0.0, 8.0, 8.0, 1.0), (2.0, 2.0, 10.0, 10.0, 2.0)]
    assert int(encode_targets(padded(tie), 4, 64, 3)[0, 0, 0, 5:].argmax()) == 1
    assert int(encode_targets(padded(tie[::-1]), 4, 64, 3)[0, 0, 0, 5:].argmax()) == 2


@TARGETS
def test_encode_decode_round_trip_on_generated_scenes():
    data = load_detection("detection_scenes", "val", num=40, image_size=96)
    targets = encode_targets(data["gt_boxes"], grid_size=12, image_size=96, num_classes=10)
    decoded = decode_targets(targets, 96)
    crowded = shares_cell(data["gt_boxes"], 12, 96)
    checked = 0
    for n, truth in enumerate(gt_boxes_to_targets(data["gt_boxes"])):
        if crowded[n].any():
            continue
        # decode gives the boxes in cell order: compare as sets, via a one-to-one IoU of 1
        iou = box_iou(decoded[n]["boxes"], truth["boxes"])
        match = iou.argmax(dim=1)
        assert len(decoded[n]["boxes"]) == len(truth["boxes"])
        assert torch.allclose(decoded[n]["boxes"], truth["boxes"][match], atol=1e-4)
        assert torch.equal(decoded[n]["labels"], truth["labels"][match])
        assert sorted(match.tolist()) == list(range(len(truth["boxes"])))
        checked += 1
    assert checked >= 20


@GIVEN
@pytest.mark.parametrize("rows, message", [
    ([(10.0, 10.0, 5.0, 20.0, 1.0)], "x2 >= x1"),
    ([(10.0, 10.0, 20.0, 20.0, 3.0)], r"class ids must lie in \[0, 3\)"),
    ([(10.0, 10.0, 20.0, 20.0, 1.5)], "integer class"),
    ([(90.0, 90.0, 120.0, 120.0, 1.0)], "centre must lie inside"),
])
def test_malformed_targets_are_refused(rows, message):
    with pytest.raises(ValueError, match=message):
        encode_targets(padded(rows), grid_size=4, image_size=64, num_classes=3)


@GIVEN
def test_targets_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"\(B, N, 5\)"):
        encode_targets(torch.zeros(6, 5), grid_size=4, image_size=64, num_classes=3)
    with pytest.raises(TypeError, match="floating"):
        encode_targets(torch.zeros(1, 6, 5, dtype=torch.int64), grid_size=4, image_size=64, num_classes=3)
    model = YOLOv1(3, image_size=64, grid_size=4, hidden=8)
    with pytest.raises(ValueError, match="targets must have shape"):
        yolo_loss(model(torch.rand(1, 3, 64, 64)), torch.zeros(1, 4, 4, 7), num_boxes=2)


# --------------------------------------------------------------------------- the responsible box


@RESPONSIBLE
def test_responsible_box_is_the_one_of_highest_iou():
    target = torch.tensor([10.0, 10.0, 30.0, 30.0]).expand(1, 1, 1, 4)
    pred = torch.tensor([[[[[0.0, 0.0, 12.0, 12.0], [12.0, 12.0, 28.0, 28.0], [10.0, 10.0, 40.0, 40.0]]]]])
    index, iou = responsible_boxes(pred, target)
    assert index.tolist() == [[[1]]]
    assert iou[0, 0, 0].tolist() == pytest.approx([4 / 540, 256 / 400, 400 / 900])
    # equal IoUs, or no overlap at all: the first box
    same = torch.tensor([[[[[10.0, 10.0, 20.0, 30.0], [20.0, 10.0, 30.0, 30.0]]]]])
    assert responsible_boxes(same, target)[0].item() == 0
    far = torch.tensor([[[[[50.0, 50.0, 60.0, 60.0], [70.0, 70.0, 80.0, 80.0]]]]])
    assert responsible_boxes(far, target)[0].item() == 0


# --------------------------------------------------------------------------- loss


def raw_grid(cells, num_boxes, num_classes, grid_size=2, batch=1):
    """A raw grid of zeros with the given ``{(n, row, col): [values...]}`` cells filled."""
    raw = torch.zeros(batch, grid_size, grid_size, num_boxes * 5 + num_classes, dtype=F64)
    for (n, r, c), values in cells.items():
        raw[n, r, c] = torch.tensor(values, dtype=F64)
    return raw


@LOSS
def test_loss_by_hand_linear_outputs():
    """S = 2, B = 2, C = 2, 64 px (cells of 32 px), squash=False: every number is worked out below."""
    # one object, class 1, box (16, 16, 48, 48): centre (32, 32) -> cell (row 1, col 1), offsets (0, 0),
    # w = h = 0.5 of the image; sqrt = 0.7071
    targets = encode_targets(padded([(16.0, 16.0, 48.0, 48.0, 1.0)]), 2, 64, 2).double()
    # cell (1, 1): box 0 = centre (0, 0) in the cell, sqrt wh 0.5 -> w = h = 0.25 (16 px): IoU 256/1024 = 0.25
    #              box 1 = centre (0.25, 0), sqrt wh 0.6 -> w = h = 0.36; IoU computed below
    raw = raw_grid({(0, 1, 1): [0.0, 0.0, 0.5, 0.5, 0.8, 0.25, 0.0, 0.6, 0.6, 0.3, 0.1, 0.7],
                    (0, 0, 0): [0.5, 0.5, 0.1, 0.1, 0.2, 0.5, 0.5, 0.1, 0.1, -0.4, 0.3, 0.3]}, 2, 2)
    # box 1 in image fractions: centre (0.5 + 0.25 / 2, 0.5), half side 0.18 -> x in [0.445, 0.805], y in [0.32, 0.68]
    inter = (0.75 - 0.445) * (0.68 - 0.32)  # the target box is [0.25, 0.75] in x and y
    iou1 = inter / (0.25 + 0.36 ** 2 - inter)
    assert iou1 > 0.25, "box 1 is the responsible one"
    losses = yolo_loss(raw, targets, num_boxes=2, squash=False)
    root = math.sqrt(0.5)
    expected = {
        "coord_xy": 5 * (0.25 ** 2 + 0.0),
        "coord_wh": 5 * 2 * (0.6 - root) ** 2,
        "conf_obj": (0.3 - iou1) ** 2,
        "conf_noobj": 0.5 * (0.8 ** 2 + 0.2 ** 2 + 0.4 ** 2),  # box 0 of cell (1, 1) and both boxes of cell (0, 0)
        "class": 0.1 ** 2 + (0.7 - 1) ** 2,  # only the cell with the object
    }
    for name, value in expected.items():
        assert float(losses[name]) == pytest.approx(value, rel=1e-9), name
    no_rescore = yolo_loss(raw, targets, num_boxes=2, squash=False, rescore=False)
    assert float(no_rescore["conf_obj"]) == pytest.approx((0.3 - 1) ** 2)


@LOSS
def test_empty_image_has_only_the_noobj_term():
    g = torch.Generator().manual_seed(1)
    raw = torch.randn(1, 3, 3, 2 * 5 + 4, generator=g, dtype=F64)
    targets = encode_targets(padded([]), 3, 48, 4).double()
    losses = yolo_loss(raw, targets, num_boxes=2)
    conf = torch.sigmoid(raw[..., [4, 9]])
    assert float(losses["conf_noobj"]) == pytest.approx(0.5 * float((conf ** 2).sum()), rel=1e-12)
    for name in ("coord_xy", "coord_wh", "conf_obj", "class"):
        assert float(losses[name]) == 0.0
    model = YOLOv1(4, image_size=48, grid_size=3, hidden=8, layout=((3, 8, 2), "M", (3, 8, 2), "M"))
    total, _ = backward_through(support.yolo_loss, [model, (torch.rand(2, 3, 48, 48), torch.full((2, 6, 5), -1.0))])
    assert math.isfinite(float(total))


def loop_loss(raw, gt_rows, grid_size, image_size, num_boxes, num_classes, squash, rescore,
              lambda_coord=5.0, lambda_noobj=0.5):
    """The YOLOv1 loss cell by cell, box by box, in plain Python numbers."""
    sig = (lambda v: 1 / (1 + math.exp(-v))) if squash else (lambda v: v)
    cell = image_size / grid_size
    total = {"coord_xy": 0.0, "coord_wh": 0.0, "conf_obj": 0.0, "conf_noobj": 0.0, "class": 0.0}
    for n, rows in enumerate(gt_rows):
        owner = {}
        for k, (x1, y1, x2, y2, _) in enumerate(rows):  # largest box per cell, first of ties
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            key = (min(int(cy // cell), grid_size - 1), min(int(cx // cell), grid_size - 1))
            area = (x2 - x1) * (y2 - y1)
            if key not in owner or area > owner[key][0]:
                owner[key] = (area, k)
        for r in range(grid_size):
            for c in range(grid_size):
                values = raw[n, r, c].tolist()
                logits = values[num_boxes * 5:]
                if squash:
                    top = max(logits)
                    exps = [math.exp(v - top) for v in logits]
                    probs = [e / sum(exps) for e in exps]
                else:
                    probs = logits
                boxes = [[sig(v) for v in values[5 * j:5 * j + 5]] for j in range(num_boxes)]
                if (r, c) not in owner:
                    total["conf_noobj"] += lambda_noobj * sum(b[4] ** 2 for b in boxes)
                    continue
                x1, y1, x2, y2, cls = rows[owner[(r, c)][1]]
                tx, ty = (x1 + x2) / 2 / cell - c, (y1 + y2) / 2 / cell - r
                tw, th = (x2 - x1) / image_size, (y2 - y1) / image_size
                truth = ((c + tx) / grid_size - tw / 2, (r + ty) / grid_size - th / 2,
                         (c + tx) / grid_size + tw / 2, (r + ty) / grid_size + th / 2)
                ious = []
                for b in boxes:
                    w, h = max(b[2], 0) ** 2, max(b[3], 0) ** 2
                    px, py = (c + b[0]) / grid_size, (r + b[1]) / grid_size
                    ix = max(0.0, min(px + w / 2, truth[2]) - max(px - w / 2, truth[0]))
                    iy = max(0.0, min(py + h / 2, truth[3]) - max(py - h / 2, truth[1]))
                    union = w * h + tw * th - ix * iy
                    ious.append(ix * iy / union if union > 0 else 0.0)
                best = max(range(num_boxes), key=lambda j: (ious[j], -j))
                for j, b in enumerate(boxes):
                    if j != best:
                        total["conf_noobj"] += lambda_noobj * b[4] ** 2
                        continue
                    total["coord_xy"] += lambda_coord * ((b[0] - tx) ** 2 + (b[1] - ty) ** 2)
                    total["coord_wh"] += lambda_coord * ((b[2] - math.sqrt(tw)) ** 2 + (b[3] - math.sqrt(th)) ** 2)
                    total["conf_obj"] += (b[4] - (ious[j] if rescore else 1.0)) ** 2
                total["class"] += sum((p - (1.0 if k == int(cls) else 0.0)) ** 2 for k, p in enumerate(probs))
    return {name: value / len(gt_rows) for name, value in total.items()}


@LOSS
@pytest.mark.parametrize("squash, rescore, num_boxes", [(True, True, 2), (False, True, 2), (True, False, 3)])
def test_loss_matches_a_plain_loop(squash, rescore, num_boxes):
    data = load_detection("detection_scenes", "train", num=6, image_size=64)
    gt = data["gt_boxes"]
    gt[5] = -1.0  # and an image without objects
    g = torch.Generator().manual_seed(3)
    raw = torch.randn(6, 4, 4, num_boxes * 5 + 10, generator=g, dtype=F64) * (1.0 if squash else 0.4)
    if not squash:
        raw[..., 2::5] = raw[..., 2::5].abs()  # mostly plausible square roots, one negative below
        raw[0, 0, 0, 2] = -0.3
    targets = encode_targets(gt, 4, 64, 10).double()
    losses = yolo_loss(raw, targets, num_boxes, squash=squash, rescore=rescore)
    rows = [[tuple(r) for r in boxes.tolist() if r[4] >= 0] for boxes in gt]
    expected = loop_loss(raw, rows, 4, 64, num_boxes, 10, squash, rescore)
    assert any(len(r) > 1 and len(set(r)) for r in rows)
    for name, value in expected.items():
        assert float(losses[name]) == pytest.approx(value, rel=1e-9, abs=1e-12), name


@LOSS
def test_loss_gradient_does_not_flow_through_the_iou_target():
    targets = encode_targets(padded([(16.0, 16.0, 48.0, 48.0, 1.0)]), 2, 64, 2).double()
    raw = raw_grid({(0, 1, 1): [0.0, 0.0, 0.5, 0.5, 0.8, 0.25, 0.0, 0.6, 0.6, 0.3, 0.1, 0.7]}, 2, 2)
    raw.requires_grad_()
    _, (grad,) = backward_through(support.entry, [yolo_loss, "conf_obj", raw, targets], num_boxes=2, squash=False)
    grad = grad[0, 1, 1]
    assert grad[9] != 0 and not grad[5:9].any(), "conf_obj moves the confidence only"


# --------------------------------------------------------------------------- decoding


@DECODE
def test_decode_one_confident_box_and_nms():
    # S = 2, B = 2, C = 3, squash: a logit of 6 is a probability of 0.9975
    big = 6.0
    raw = torch.full((1, 2, 2, 13), -big)
    # cell (0, 1): box 0 centred in the cell, sqrt wh -> sigmoid(0) = 0.5 -> 25% of 64 px = 16 px, class 2
    raw[0, 0, 1, 0:5] = torch.tensor([0.0, 0.0, 0.0, 0.0, big])
    raw[0, 0, 1, 10:13] = torch.tensor([-big, -big, big])
    # its box 1 predicts almost the same box with a lower confidence: NMS must remove it
    raw[0, 0, 1, 5:10] = torch.tensor([0.1, 0.0, 0.0, 0.0, 1.0])
    pred = decode_predictions(raw, num_boxes=2, image_size=64, score_thresh=0.05, nms_thresh=0.5)[0]
    assert len(pred["boxes"]) == 1
    assert torch.allclose(pred["boxes"][0], torch.tensor([40.0, 8.0, 56.0, 24.0]), atol=1e-4)
    assert pred["labels"].tolist() == [2]
    conf, prob = torch.sigmoid(torch.tensor(big)), torch.softmax(torch.tensor([-big, -big, big]), 0)[2]
    assert float(pred["scores"][0]) == pytest.approx(float(conf * prob), rel=1e-5)
    kept = decode_predictions(raw, 2, 64, score_thresh=0.05, nms_thresh=0.99)[0]
    assert len(kept["boxes"]) == 2 and bool((kept["scores"][:-1] >= kept["scores"][1:]).all())
    assert decode_predictions(raw, 2, 64, score_thresh=0.999)[0]["boxes"].shape == (0, 4)


@DECODE
def test_decode_clips_boxes_and_scores_every_class():
    raw = torch.zeros(2, 3, 3, 1 * 5 + 2)
    raw[..., 2:4] = 10.0  # sqrt wh ~ 1: boxes as large as the image, clipped
    out = decode_predictions(raw, num_boxes=1, image_size=48, score_thresh=0.0, nms_thresh=1.0, max_detections=500)
    assert len(out) == 2
    boxes = out[0]["boxes"]
    assert boxes.shape == (18, 4) and float(boxes.min()) >= 0 and float(boxes.max()) <= 48
    assert sorted(out[0]["labels"].tolist()) == [0] * 9 + [1] * 9, "each box scored for each class"
    assert torch.allclose(out[0]["scores"], torch.full((18,), 0.25))


@DECODE
def test_decode_best_class_only_keeps_one_class_per_box():
    raw = torch.zeros(1, 2, 2, 1 * 5 + 3)
    raw[..., 2:4] = 10.0
    raw[0, 0, 0, 5:8] = torch.tensor([0.0, 2.0, 1.0])   # runner-up class 2 also above the threshold
    raw[0, 1, 1, 5:8] = torch.tensor([3.0, 0.0, 0.0])
    every = decode_predictions(raw, num_boxes=1, image_size=32, score_thresh=0.01, nms_thresh=1.0)[0]
    one = decode_predictions(raw, num_boxes=1, image_size=32, score_thresh=0.01, nms_thresh=1.0,
                             best_class_only=True)[0]
    assert len(every["labels"]) == 4 * 3 and len(one["labels"]) == 4, "every class per box, or one"
    best = split_predictions(raw, 1)["class_probs"].reshape(4, 3).argmax(1)
    assert sorted(one["labels"].tolist()) == sorted(best.tolist())
    for box, label, score in zip(one["boxes"], one["labels"], one["scores"], strict=True):
        same = (every["labels"] == label) & (every["boxes"] == box).all(1)
        assert int(same.sum()) == 1 and float(every["scores"][same][0]) == float(score), "same box, same score"


@DECODE
def test_split_predictions_and_cell_boxes():
    raw = torch.arange(2 * 2 * 2 * 12, dtype=F64).view(2, 2, 2, 12) / 100
    parts = split_predictions(raw, num_boxes=2, squash=False)
    assert parts["xy"].shape == (2, 2, 2, 2, 2) and parts["class_probs"].shape == (2, 2, 2, 2)
    assert parts["conf"][0, 0, 0].tolist() == [0.04, 0.09]
    squashed = split_predictions(raw, 2)
    assert torch.allclose(squashed["class_probs"].sum(-1), torch.ones(2, 2, 2, dtype=F64))
    xy = torch.full((1, 2, 2, 2), 0.5)
    boxes = cell_boxes(xy, torch.full((1, 2, 2, 2), 0.25), image_size=64)
    assert boxes[0, 1, 0].tolist() == [8.0, 40.0, 24.0, 56.0], "row 1, column 0: centre (16, 48)"


# --------------------------------------------------------------------------- augmentation


@AUGMENT
def test_scale_translate_moves_boxes_with_the_pixels():
    image = torch.zeros(1, 1, 64, 64)
    image[0, 0, 20:36, 10:30] = 1.0  # the box (10, 20, 30, 36)
    gt = padded([(10.0, 20.0, 30.0, 36.0, 0.0)])
    g = worker_torch.Generator().manual_seed(0)
    for _ in range(5):
        out, boxes = random_scale_translate(image, gt, max_scale=0.2, max_shift=0.15, generator=g)
        bright = (out[0, 0] > 0.5).nonzero()
        found = torch.tensor([bright[:, 1].min(), bright[:, 0].min(), bright[:, 1].max() + 1, bright[:, 0].max() + 1])
        assert torch.allclose(boxes[0, 0, :4], found.float(), atol=1.01)
    same, same_boxes = random_scale_translate(image, gt, max_scale=0.0, max_shift=0.0)
    assert torch.allclose(same, image, atol=1e-5) and torch.equal(same_boxes, gt)


@AUGMENT
def test_scale_translate_drops_boxes_pushed_out():
    image = torch.zeros(1, 3, 64, 64)
    gt = padded([(0.0, 0.0, 10.0, 10.0, 1.0), (30.0, 30.0, 40.0, 40.0, 2.0)])
    # a seed whose shift moves the image left by over 30% (and vertically by little): the function
    # draws the scales first, then the shifts, from the generator
    for seed in range(200):
        g = torch.Generator().manual_seed(seed)
        torch.rand(1, generator=g)
        shift = ((torch.rand(1, 2, generator=g) * 2 - 1) * 0.5)[0]
        if float(shift[0]) < -0.3 and abs(float(shift[1])) < 0.3:
            break
    _, boxes = random_scale_translate(image, gt, max_scale=0.0, max_shift=0.5,
                                      generator=worker_torch.Generator().manual_seed(seed))
    assert boxes[0, 0].tolist() == [-1.0] * 5, "the corner box left the image: padding"
    expected = torch.tensor([30.0, 30.0, 40.0, 40.0]) + 64 * shift.repeat(2)
    assert torch.allclose(boxes[0, 1, :4], expected, atol=1e-4) and boxes[0, 1, 4] == 2.0


# --------------------------------------------------------------------------- training


@TRAIN
def test_overfits_a_few_scenes():
    torch.manual_seed(0)
    data = load_detection("detection_scenes", "train", num=4, image_size=64)
    images = data["images"].float() / 255
    model = YOLOv1(10, image_size=64, grid_size=8, head="conv", hidden=64,
                   layout=((3, 16, 2), "M", (3, 32, 1), (3, 64, 2)), dropout=0.0)
    support.train_steps(model, support.yolo_loss, (images, data["gt_boxes"]), steps=150, lr=3e-3, optimizer="adam")
    predictions = predict_detections(model, data["images"])
    assert mean_ap(predictions, gt_boxes_to_targets(data["gt_boxes"]), 10) > 0.9


# --------------------------------------------------------------------------- export and command line


def tiny_model(seed=0):
    torch.manual_seed(seed)
    names = [f"class{i}" for i in range(3)]
    return YOLOv1(3, image_size=32, grid_size=4, hidden=8, layout=((3, 8, 2), "M", (3, 8, 2)), class_names=names)


@GIVEN
def test_export_equals_the_eager_model(worker_folder):
    model = tiny_model().eval()
    with torch.no_grad():  # not only the initial values
        moved = {name: p.detach() + torch.randn_like(p) * 0.1 for name, p in dict(model.named_parameters()).items()}
    model.load_state_dict(moved, strict=False)
    path = save_export(model, f"{worker_folder}/yolo.pt2")
    exported = export.load_exported(path)
    images = torch.rand(3, 3, 32, 32)
    assert export.max_difference(model, exported, images) < 1e-5
    config = export.export_metadata(path)
    assert config["num_boxes"] == 2 and config["class_names"] == ["class0", "class1", "class2"]
    with torch.no_grad():
        a = decode_predictions(model(images), 2, 32, score_thresh=0.0)
        b = decode_predictions(exported(images), 2, 32, score_thresh=0.0)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["labels"], y["labels"]) and torch.allclose(x["boxes"], y["boxes"], atol=1e-4)


@GIVEN
def test_command_line_predict_and_export(worker_folder):
    model = tiny_model()
    checkpoint = f"{worker_folder}/m.pt"
    export.save_model(model, {"num_classes": 3, "image_size": 32, "grid_size": 4, "hidden": 8,
                              "layout": ((3, 8, 2), "M", (3, 8, 2)),
                              "class_names": ["class0", "class1", "class2"]}, checkpoint)
    g = torch.Generator().manual_seed(0)
    files = []
    for i, size in enumerate([(40, 30), (32, 32)]):
        pixels = (torch.rand(size[1], size[0], 3, generator=g) * 255).to(torch.uint8)
        files.append(support.write_bytes(f"{worker_folder}/img{i}.png", png_bytes(pixels)))
    out = f"{worker_folder}/out"
    assert main(["predict", *files, "--checkpoint", checkpoint, "--out", out, "--score-thresh", "0.0"]) == 0
    result = json.loads(support.read_text(f"{out}/predictions.json"))
    assert [e["image"] for e in result["images"]] == files
    first = result["images"][0]
    assert (first["width"], first["height"]) == (40, 30) and first["detections"]
    assert result["box_format"] == BOX_FORMAT, "one box convention for every paper, stated in the file"
    det = first["detections"][0]
    assert set(det) == {"label", "class", "score", "box"} and det["class"] == f"class{det['label']}"
    assert all(0 <= v <= 40 for v in det["box"][0::2]) and all(0 <= v <= 30 for v in det["box"][1::2])
    paths = load("os.path")
    assert paths.getsize(f"{out}/img0_yolov1.png") > 0 and paths.isfile(f"{out}/img1_yolov1.png")
    assert main(["export", "--checkpoint", checkpoint, "--out", f"{worker_folder}/m.pt2"]) == 0
    out2 = f"{worker_folder}/out2"
    assert main(["predict", *files, "--export", f"{worker_folder}/m.pt2", "--out", out2, "--score-thresh", "0.0"]) == 0
    again = json.loads(support.read_text(f"{out2}/predictions.json"))
    for e1, e2 in zip(result["images"], again["images"], strict=True):
        assert [d["label"] for d in e1["detections"]] == [d["label"] for d in e2["detections"]]
        boxes1 = torch.tensor([d["box"] for d in e1["detections"]])
        assert torch.allclose(boxes1, torch.tensor([d["box"] for d in e2["detections"]]), atol=0.02)


@GIVEN
def test_command_line_export_without_decoding_settings_is_refused(worker_folder):
    model = tiny_model()
    path = f"{worker_folder}/bare.pt2"
    export.export_model(model, torch.rand(2, 3, 32, 32), path)
    image = support.write_bytes(f"{worker_folder}/a.png", png_bytes(torch.zeros(32, 32, 3)))
    with pytest.raises(ValueError, match="lacks image_size, num_boxes"):
        main(["predict", image, "--export", path, "--out", f"{worker_folder}/o"])
