"""Tests for the detection loaders of helpers.datasets, on a tiny VOC-format folder written here.

Nothing touches the network: every config is offline and every file is written into tmp_path.
"""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import helpers.datasets as data  # noqa: E402
from helpers import vis  # noqa: E402
from helpers.config import get_config  # noqa: E402

# id -> (file name, (width, height), objects as (class name, (xmin, ymin, xmax, ymax) 1-based inclusive, difficult))
VOC_IMAGES = {
    "000005": ("000005.jpg", (50, 40), [("chair", (1, 1, 10, 20), False), ("person", (21, 5, 50, 40), True)]),
    "000007": ("000007.png", (30, 60), [("tvmonitor", (11, 21, 20, 40), False)]),
    "000009": ("000009.jpg", (64, 32), [("aeroplane", (2, 3, 33, 32), False), ("dog", (40, 1, 64, 16), False),
                                        ("dog", (5, 5, 5, 5), False)]),
}
SPLITS = {"train": ["000005", "000009"], "val": ["000007"], "trainval": ["000005", "000007", "000009"],
          "test": ["000009", "000005"]}


def annotation_xml(file_name, size, objects, with_difficult=True) -> str:
    """An annotation in the real VOC 2007 format (folder, source, owner, size, segmented, objects)."""
    width, height = size
    parts = [
        "<annotation>", "\t<folder>VOC2007</folder>", f"\t<filename>{file_name}</filename>",
        "\t<source>", "\t\t<database>The VOC2007 Database</database>", "\t\t<annotation>PASCAL VOC2007</annotation>",
        "\t\t<image>flickr</image>", "\t</source>",
        "\t<size>", f"\t\t<width>{width}</width>", f"\t\t<height>{height}</height>", "\t\t<depth>3</depth>",
        "\t</size>", "\t<segmented>0</segmented>",
    ]
    for k, (name, (xmin, ymin, xmax, ymax), difficult) in enumerate(objects):
        parts += ["\t<object>", f"\t\t<name>{name}</name>", "\t\t<pose>Unspecified</pose>",
                  f"\t\t<truncated>{k % 2}</truncated>"]
        if with_difficult or difficult:
            parts.append(f"\t\t<difficult>{int(difficult)}</difficult>")
        parts += ["\t\t<bndbox>", f"\t\t\t<xmin>{xmin}</xmin>", f"\t\t\t<ymin>{ymin}</ymin>",
                  f"\t\t\t<xmax>{xmax}</xmax>", f"\t\t\t<ymax>{ymax}</ymax>", "\t\t</bndbox>", "\t</object>"]
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def image_pixels(size, objects) -> np.ndarray:
    """A grey image with every object's box filled white (VOC 1-based inclusive pixels)."""
    width, height = size
    pixels = np.full((height, width, 3), 60, dtype=np.uint8)
    for _, (xmin, ymin, xmax, ymax), _ in objects:
        pixels[ymin - 1:ymax, xmin - 1:xmax] = 255
    return pixels


@pytest.fixture()
def voc_root(tmp_path):
    """``<tmp>/data/VOCdevkit/VOC2007`` with 3 images, their annotations and the four split lists."""
    folder = tmp_path / "data" / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True)
    for image_id, (file_name, size, objects) in VOC_IMAGES.items():
        (folder / "Annotations" / f"{image_id}.xml").write_text(
            annotation_xml(file_name, size, objects, with_difficult=image_id != "000009"))
        Image.fromarray(image_pixels(size, objects)).save(folder / "JPEGImages" / file_name, quality=95)
    for split, ids in SPLITS.items():
        (folder / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return folder


@pytest.fixture()
def cfg(tmp_path):
    return dataclasses.replace(get_config(), data_dir=tmp_path / "data", offline=True)


def test_voc_classes():
    assert len(data.VOC_CLASSES) == len(set(data.VOC_CLASSES)) == 20
    assert data.VOC_CLASSES[0] == "aeroplane" and data.VOC_CLASSES[14] == "person" and data.VOC_CLASSES[-1] == \
        "tvmonitor"


def test_read_voc_annotation_converts_to_zero_based(voc_root):
    ann = data.read_voc_annotation(voc_root / "Annotations" / "000005.xml")
    assert ann["size"] == (40, 50) and ann["filename"] == "000005.jpg"
    assert ann["boxes"].dtype == torch.float32 and ann["labels"].dtype == torch.int64
    # chair: VOC pixels 1..10 x 1..20 -> continuous [0, 10] x [0, 20]: 10 wide, 20 high
    assert ann["boxes"].tolist() == [[0, 0, 10, 20], [20, 4, 50, 40]]
    assert ann["labels"].tolist() == [data.VOC_CLASSES.index("chair"), data.VOC_CLASSES.index("person")]
    assert ann["difficult"].tolist() == [False, True]
    # no <difficult> tags at all -> none difficult; a one-pixel box (5, 5, 5, 5) is 1 x 1
    ann = data.read_voc_annotation(voc_root / "Annotations" / "000009.xml")
    assert ann["difficult"].tolist() == [False, False, False]
    assert ann["boxes"][2].tolist() == [4, 4, 5, 5]
    assert ann["labels"].tolist() == [0, 11, 11]


def test_read_voc_annotation_without_objects(tmp_path):
    path = tmp_path / "empty.xml"
    path.write_text(annotation_xml("x.jpg", (10, 10), []))
    ann = data.read_voc_annotation(path)
    assert ann["boxes"].shape == (0, 4) and ann["labels"].shape == (0,) and ann["difficult"].shape == (0,)


@pytest.mark.parametrize("text, message", [
    ("<annotation><size>", "not valid XML"),
    ("<annotation><object><name>dog</name></object></annotation>", "missing <size>"),
    (annotation_xml("a.jpg", (9, 9), [("unicorn", (1, 1, 2, 2), False)]), "unknown class 'unicorn'"),
    (annotation_xml("a.jpg", (9, 9), [("dog", (5, 1, 2, 2), False)]), "xmax >= xmin"),
    (annotation_xml("a.jpg", (9, 9), [("dog", (1, 1, 2, 2), False)]).replace("<xmax>2</xmax>", ""), "missing <xmax>"),
    (annotation_xml("a.jpg", (9, 9), [("dog", (1, 1, 2, 2), False)]).replace("<ymin>1<", "<ymin>one<"),
     "must be a number"),
])
def test_read_voc_annotation_errors(tmp_path, text, message):
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        data.read_voc_annotation(path)


def test_load_voc_splits_resizing_and_padding(voc_root, cfg):
    out = data.load_detection("voc2007", "trainval", cfg=cfg, image_size=32)
    assert out["images"].shape == (3, 3, 32, 32) and out["images"].dtype == torch.uint8
    assert out["image_ids"] == SPLITS["trainval"] and out["class_names"] == data.VOC_CLASSES
    assert out["gt_boxes"].shape == (3, 3, 5) and out["gt_boxes"].dtype == torch.float32   # M = most objects
    assert out["difficult"].shape == (3, 3) and out["difficult"].dtype == torch.bool
    assert out["orig_sizes"].tolist() == [[40, 50], [60, 30], [32, 64]]
    for i, image_id in enumerate(SPLITS["trainval"]):
        _, (width, height), objects = VOC_IMAGES[image_id]
        for k in range(3):
            row = out["gt_boxes"][i, k]
            if k >= len(objects):                           # padding: a row of -1, not difficult
                assert row.tolist() == [-1] * 5 and not out["difficult"][i, k]
                continue
            name, (xmin, ymin, xmax, ymax), difficult = objects[k]
            expected = [(xmin - 1) * 32 / width, (ymin - 1) * 32 / height, xmax * 32 / width, ymax * 32 / height]
            assert torch.allclose(row[:4], torch.tensor(expected), atol=1e-5)
            assert row[4] == data.VOC_CLASSES.index(name) and bool(out["difficult"][i, k]) == difficult
    # the white boxes of the picture land where the scaled boxes say (checked away from the edges)
    image = out["images"][0].float().mean(0)
    x1, y1, x2, y2 = out["gt_boxes"][0, 1, :4].tolist()                  # person: [12.8, 3.2, 32, 32]
    assert image[int(y1) + 2:int(y2) - 2, int(x1) + 2:int(x2) - 2].min() > 200
    assert image[int(y1) + 2:, :int(x1) - 2][:, 7:].max() < 100           # between chair and person: grey
    # splits come from ImageSets, in their order; num takes a prefix
    test = data.load_detection("voc2007", "test", cfg=cfg, image_size=16)
    assert test["image_ids"] == ["000009", "000005"] and test["images"].shape == (2, 3, 16, 16)
    val = data.load_detection("voc2007", "val", cfg=cfg, image_size=16)
    assert val["image_ids"] == ["000007"] and val["gt_boxes"].shape == (1, 1, 5)
    first = data.load_detection("voc2007", "train", num=1, cfg=cfg, image_size=16)
    assert first["image_ids"] == ["000005"] and first["gt_boxes"].shape == (1, 2, 5)
    assert data.load_detection("voc2007", "train", cfg=cfg)["images"].shape[-1] == data.VOC_IMAGE_SIZE
    again = data.load_detection("voc2007", "trainval", root=voc_root,
                                cfg=dataclasses.replace(cfg, data_dir=cfg.data_dir / "elsewhere"), image_size=32)
    assert torch.equal(again["gt_boxes"], out["gt_boxes"]) and torch.equal(again["images"], out["images"])


def test_voc_missing_files_give_one_clear_error(tmp_path, voc_root, cfg):
    empty = dataclasses.replace(cfg, data_dir=tmp_path / "nothing")
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_detection("voc2007", "train", cfg=empty)
    message = str(info.value)
    assert str(tmp_path / "nothing" / "VOCdevkit" / "VOC2007") in message
    assert "VOCtrainval_06-Nov-2007.tar" in message and "pjreddie.com" in message
    assert "DL4CV_DATASET=detection_scenes" in message and "offline" in message
    (voc_root / "ImageSets" / "Main" / "test.txt").unlink()              # test archive not extracted
    with pytest.raises(data.DatasetNotFoundError, match="VOCtest_06-Nov-2007.tar"):
        data.load_detection("voc2007", "test", cfg=cfg)
    (voc_root / "JPEGImages" / "000007.png").unlink()
    with pytest.raises(data.DatasetNotFoundError, match="missing image JPEGImages/000007.png"):
        data.load_detection("voc2007", "val", cfg=cfg)


def test_load_detection_bad_arguments(cfg):
    with pytest.raises(ValueError, match="unknown detection dataset"):
        data.load_detection("coco", "train", cfg=cfg)
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_detection("voc2007", "training", cfg=cfg)
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_detection("detection_scenes", "trainval", cfg=cfg)
    with pytest.raises(ValueError, match="image_size must be an int >= 8"):
        data.load_detection("voc2007", "train", cfg=cfg, image_size=4)
    with pytest.raises(ValueError, match="draws applies to generated scenes only"):
        data.load_detection("voc2007", "train", cfg=cfg, draws=2)
    with pytest.raises(ValueError, match="draws must be >= 1"):
        data.load_detection("detection_scenes", "val", num=2, draws=0)
    with pytest.raises(TypeError, match="draws must be an int"):
        data.load_detection("detection_scenes", "val", num=2, draws=2.0)


def test_more_draws_of_scenes_are_new_scenes_of_the_same_items():
    from helpers.datasets import synthetic

    one = data.load_detection("detection_scenes", "val", num=30, image_size=64)
    three = data.load_detection("detection_scenes", "val", num=30, image_size=64, draws=3)
    assert three["images"].shape == (90, 3, 64, 64) and three["gt_boxes"].shape == (90, 6, 5)
    for key in ("images", "gt_boxes", "difficult", "items", "tints", "orig_sizes"):
        assert torch.equal(three[key][:30], one[key]), f"draw 0 is the standard split ({key})"
    second = synthetic.detection_scenes("val", num=30, seed=1, canvas_size=64)
    assert torch.equal(three["images"][30:60], second["images"]), "draw 1 is the split made with seed 1"
    assert not torch.equal(three["images"][30:60], three["images"][:30]), "a new draw holds new scenes"
    assert three["image_ids"][29:31] == ["val-00029", "val-d1-00000"] and len(set(three["image_ids"])) == 90
    assert three["class_names"] == one["class_names"]
    _, pool_labels = synthetic._detection_pool("val", get_config())
    real = three["items"] >= 0
    assert torch.equal(three["gt_boxes"][..., 4][real].long(), pool_labels[three["items"][real]].long()), \
        "every draw's labels are those of the val items it pasted"


def padded_example():
    gt_boxes = torch.tensor([[[1.0, 2.0, 5.0, 6.0, 3.0], [0.0, 0.0, 4.0, 4.0, 0.0], [-1, -1, -1, -1, -1]],
                             [[-1, -1, -1, -1, -1], [-1, -1, -1, -1, -1], [-1, -1, -1, -1, -1]]])
    difficult = torch.tensor([[False, True, False], [False, False, False]])
    return gt_boxes, difficult


def test_gt_boxes_to_targets_drops_padding():
    gt_boxes, difficult = padded_example()
    targets = data.gt_boxes_to_targets(gt_boxes, difficult)
    assert len(targets) == 2
    assert targets[0]["boxes"].tolist() == [[1, 2, 5, 6], [0, 0, 4, 4]] and targets[0]["labels"].tolist() == [3, 0]
    assert targets[0]["labels"].dtype == torch.int64 and targets[0]["difficult"].tolist() == [False, True]
    assert targets[1]["boxes"].shape == (0, 4) and targets[1]["labels"].shape == (0,)
    assert data.gt_boxes_to_targets(gt_boxes)[0]["difficult"].tolist() == [False, False]


def test_targets_feed_evaluate_detections(voc_root, cfg):
    """Ground truth given back as predictions scores a perfect mAP; the difficult person is ignored."""
    from A5_detection.common import evaluate_detections

    out = data.load_detection("voc2007", "trainval", cfg=cfg, image_size=32)
    targets = data.gt_boxes_to_targets(out["gt_boxes"], out["difficult"])
    predictions = [{"boxes": t["boxes"][~t["difficult"]], "labels": t["labels"][~t["difficult"]],
                    "scores": torch.ones(int((~t["difficult"]).sum()))} for t in targets]
    result = evaluate_detections(predictions, targets, num_classes=len(out["class_names"]))
    assert result["mAP"] == 1.0
    assert np.isnan(result["ap_per_class"][data.VOC_CLASSES.index("person")])   # only box is difficult


@pytest.mark.parametrize("gt_boxes, difficult, message", [
    (torch.zeros(2, 5), None, r"\(B, N, 5\)"),
    (torch.zeros(2, 3, 4), None, r"\(B, N, 5\)"),
    (torch.zeros(2, 3, 5, dtype=torch.int64), None, "floating-point"),
    (torch.full((1, 2, 5), 0.5), None, "integer class ids"),
    (torch.tensor([[[1.0, 1.0, 2.0, 2.0, -1.0]]]), None, "padding rows that are all -1"),
    (torch.tensor([[[5.0, 1.0, 2.0, 2.0, 0.0]]]), None, "x2 >= x1"),
    (torch.zeros(2, 3, 5), torch.zeros(2, 3), "bool tensor of shape"),
    (torch.zeros(2, 3, 5), torch.zeros(2, 2, dtype=torch.bool), r"bool tensor of shape \(2, 3\)"),
])
def test_gt_boxes_to_targets_errors(gt_boxes, difficult, message):
    with pytest.raises((ValueError, TypeError), match=message):
        data.gt_boxes_to_targets(gt_boxes, difficult)


def test_detection_dataset_batches_and_flips():
    gt_boxes, _ = padded_example()
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8).remainder(256).to(torch.uint8)
    dataset = data.DetectionDataset({"images": images, "gt_boxes": gt_boxes})
    loader = torch.utils.data.DataLoader(dataset, batch_size=2)
    batch_images, batch_boxes = next(iter(loader))
    assert batch_images.shape == (2, 3, 8, 8) and batch_images.dtype == torch.float32
    assert torch.equal(batch_images, images.float() / 255) and torch.equal(batch_boxes, gt_boxes)
    flipped = data.DetectionDataset({"images": images, "gt_boxes": gt_boxes}, flip_prob=1.0)
    image, boxes = flipped[0]
    assert torch.equal(image, images[0].flip(-1).float() / 255)
    assert boxes.tolist() == [[3, 2, 7, 6, 3], [4, 0, 8, 4, 0], [-1, -1, -1, -1, -1]]   # x -> 8 - x, padding kept
    with pytest.raises(ValueError, match="flip_prob"):
        data.DetectionDataset({"images": images, "gt_boxes": gt_boxes}, flip_prob=2.0)
    with pytest.raises(ValueError, match="images must be"):
        data.DetectionDataset({"images": images[:1], "gt_boxes": gt_boxes})


def test_draw_boxes_takes_padded_ground_truth():
    gt_boxes, _ = padded_example()
    fig, ax = plt.subplots()
    vis.draw_boxes(ax, gt_boxes[0], class_names=["a", "b", "c", "d"])
    assert len(ax.patches) == 2                                         # the padding row is skipped
    assert [t.get_text() for t in ax.texts] == ["d", "a"]
    assert ax.patches[0].get_xy() == (0.5, 1.5) and ax.patches[0].get_width() == 4   # pixel edges at -0.5
    vis.draw_boxes(ax, gt_boxes[1])                                     # only padding: nothing drawn
    assert len(ax.patches) == 2
    plt.close(fig)


@pytest.mark.skipif(data.find_dataset_folder("fashion_mnist") is None, reason="Fashion-MNIST not installed")
def test_load_detection_scenes_has_the_voc_format(voc_root, cfg):
    from A5_detection.common import evaluate_detections
    from helpers.datasets import synthetic

    scenes = data.load_detection("detection_scenes", "val", num=40, image_size=64)
    assert torch.equal(scenes["images"], synthetic.detection_scenes("val", num=40, canvas_size=64)["images"])
    voc = data.load_detection("voc2007", "val", cfg=cfg, image_size=64)
    for key in ("images", "gt_boxes", "difficult", "orig_sizes"):                     # same keys, dtypes, ranks
        assert scenes[key].dtype == voc[key].dtype and scenes[key].dim() == voc[key].dim(), key
        assert scenes[key].shape[1:] == voc[key].shape[1:] or key in ("gt_boxes", "difficult"), key
    assert scenes["images"].shape[1:] == (3, 64, 64) and len(scenes["image_ids"]) == 40
    assert data.load_detection("detection_scenes", "test", num=2)["images"].shape[-1] == 96
    targets = data.gt_boxes_to_targets(scenes["gt_boxes"], scenes["difficult"])
    assert sum(len(t["labels"]) for t in targets) == int((scenes["gt_boxes"][..., 4] >= 0).sum())
    predictions = [{"boxes": t["boxes"], "labels": t["labels"], "scores": torch.rand(len(t["labels"]))}
                   for t in targets]
    assert evaluate_detections(predictions, targets, num_classes=10)["mAP"] == 1.0
    shifted = [{**p, "boxes": p["boxes"] + 20} for p in predictions]             # every box far off: nothing found
    assert evaluate_detections(shifted, targets, num_classes=10)["mAP"] < 0.2


def test_voc_splits_used_with_nothing_on_disk(cfg):
    assert data.voc_splits_used(cfg) == {"train": "train", "val": "val", "test": "val"}, "offline: nothing to fetch"
    online = dataclasses.replace(cfg, offline=False)
    assert data.voc_splits_used(online) == {"train": "trainval", "val": "test", "test": "test"}, "both downloaded"


def test_write_voc_devkit_round_trips_through_the_loader(tmp_path, cfg):
    scenes = {split: data.load_detection("detection_scenes", split, num=n, image_size=48)
              for split, n in (("train", 5), ("val", 3), ("test", 2))}
    folder = data.write_voc_devkit(cfg.data_dir / "VOCdevkit" / "VOC2007", scenes, difficult_every=3)
    assert data.voc_splits_found(cfg) == {"train": True, "val": True, "trainval": True, "test": True}
    assert len(data.read_voc_split(folder, "trainval")) == 8 and len(data.read_voc_split(folder, "test")) == 2
    back = data.load_detection("voc2007", "train", cfg=cfg, image_size=48)
    assert back["orig_sizes"].tolist() == [[48, 64]] * 5, "stretched to VOC's 4:3"
    M = back["gt_boxes"].shape[1]  # VOC pads to the most objects of an image, the scenes to 6
    truth = scenes["train"]["gt_boxes"][:, :M]
    real = truth[..., 4] >= 0
    assert M == int(real.sum(1).max()) and torch.equal(back["gt_boxes"][..., 4] >= 0, real)
    assert torch.allclose(back["gt_boxes"][real], truth[real], atol=1.0), "boxes within a pixel"
    assert back["difficult"].any() and not back["difficult"][~real].any()
    annotations = [data.read_voc_annotation(p) for p in sorted((folder / "Annotations").glob("*.xml"))]
    texts = " ".join(p.read_text() for p in (folder / "Annotations").glob("*.xml"))
    assert "<truncated>1</truncated>" in texts and "<truncated>0</truncated>" in texts
    assert sum(int(a["difficult"].sum()) for a in annotations) >= 1
    assert data.voc_splits_used(cfg) == {"train": "trainval", "val": "test", "test": "test"}
    (folder / "ImageSets" / "Main" / "test.txt").unlink()
    assert data.voc_splits_found(cfg)["test"] is False
    assert data.voc_splits_used(cfg) == {"train": "train", "val": "val", "test": "val"}, "only trainval: its halves"
