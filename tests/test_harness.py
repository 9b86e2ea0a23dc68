"""A5_detection/harness.py: the detection notebooks' shared cells report what evaluate_detections says."""

import matplotlib
import pytest
import torch
from under_test import load
from worker_tools import worker_folder

from helpers.datasets import gt_boxes_to_targets, load_detection

# given code that calls the student's evaluation: reached like the student's modules
harness = load("A5_detection.harness")
common = load("A5_detection.common")
count_errors = common.count_errors
evaluate_detections = common.evaluate_detections

matplotlib.use("Agg")

pytestmark = pytest.mark.grade("given code: the detection notebooks' harness", points=0)


@pytest.fixture(scope="module")
def split():
    return load_detection("detection_scenes", "val", num=6, image_size=64)


def _as_predictions(targets, labels=None):
    """The ground truth as detections (score 1), optionally with other labels."""
    return [{"boxes": t["boxes"], "scores": torch.ones(len(t["labels"])),
             "labels": t["labels"] if labels is None else labels(t["labels"])} for t in targets]


def test_load_splits_loads_three_splits_and_prints_them(capsys):
    # the config object is built where harness runs (it is not plain data, so it could not be sent there)
    cfg = load("dataclasses").replace(load("helpers.config").get_config(), dataset="detection_scenes")
    data = harness.load_splits(cfg, 64, {"train": 3, "val": 2, "test": 2}, {"train": "train", "val": "val",
                                                                              "test": "test"},
                               {"train": 1, "val": 1, "test": 1})
    assert sorted(data) == ["test", "train", "val"] and data["train"]["images"].shape[0] == 3
    lines = capsys.readouterr().out.splitlines()
    objects = int((data["val"]["gt_boxes"][..., 4] >= 0).sum())
    assert lines[1] == f"val   {2:6,d} images (3, 64, 64), {objects:6,d} objects"
    assert lines[3] == "classes: " + ", ".join(data["train"]["class_names"])


def test_evaluate_reports_evaluate_detections(split, capsys):
    targets = gt_boxes_to_targets(split["gt_boxes"], split["difficult"])
    shuffled = lambda labels: (labels + 1) % len(split["class_names"])  # noqa: E731
    result = harness.evaluate(lambda images: _as_predictions(targets, shuffled), split, "demo", curves=False)
    expected = evaluate_detections(_as_predictions(targets, shuffled), targets, len(split["class_names"]))
    assert result["mAP"] == expected["mAP"] == 0.0
    out = capsys.readouterr().out
    assert out.startswith(f"test mAP@0.5 0.000 on {len(targets)} images (")
    assert f"  {split['class_names'][0]:12s} AP {expected['ap_per_class'][0]:.3f}" in out
    assert harness.class_agnostic_ap(result["predictions"], result["targets"]) == pytest.approx(1.0), \
        "the right boxes with the wrong classes: every object found"


def test_report_errors_prints_count_errors_and_confusions(split, capsys):
    targets = harness.targets_of(split)
    predictions = _as_predictions(targets, lambda labels: torch.zeros_like(labels))
    counts, examples = harness.report_errors(predictions, targets, split["class_names"], 0.5)
    assert (counts, examples) == count_errors(predictions, targets, score_thresh=0.5)
    out = capsys.readouterr().out
    assert f"{sum(len(t['labels']) for t in targets)} test objects; at score >= 0.5:" in out
    assert f"  mislabelled  {counts['mislabelled']:5d}" in out and "most frequent confusions (true -> said): " in out
    harness.report_errors(predictions, targets, split["class_names"], 0.5, note=", without NMS", confusions=False)
    out = capsys.readouterr().out
    assert "at score >= 0.5, without NMS:" in out and "confusions" not in out


def test_overfit_map_and_check(split, capsys):
    targets = gt_boxes_to_targets(split["gt_boxes"])
    value = harness.overfit_map(_as_predictions(targets), split["gt_boxes"], 10, [4.0, 2.0, 0.5], 3.2,
                                what="scenes")
    assert value == 1.0
    assert capsys.readouterr().out == "loss 4.00 -> 0.500 in 3 steps (3 s); mAP on those 6 scenes 1.000\n"
    harness.check_overfit([4.0, 0.5], value, 6, min_map=0.9, loss_fraction=0.25)
    assert capsys.readouterr().out == ("overfitting 6 scenes: the loss falls below a quarter of its start ✓\n"
                                       "overfitting 6 scenes: mAP on them above 0.9 ✓\n")
    harness.check_overfit([4.0, 2.0], 0.5, 6, min_map=0.9, loss_fraction=0.25)
    assert capsys.readouterr().out.count("✗") == 2


def test_pictures_draw(split, capsys):
    harness.show_ground_truth(split, rows=1, cols=3, figsize=(6, 2))
    targets = harness.targets_of(split)
    evaluation = {"predictions": _as_predictions(targets, lambda labels: torch.zeros_like(labels)),
                  "targets": targets, "class_names": split["class_names"]}
    _, examples = count_errors(evaluation["predictions"], targets)
    harness.show_failures(split["images"], evaluation, examples, 0.5, kinds=("mislabelled",), per_kind=2)
    assert capsys.readouterr().out.startswith("mislabelled: ")


def _voc_config(folder: str, **changes):
    """The course configuration on VOC 2007 under ``folder``, built where ``harness`` runs (not plain data)."""
    dataclasses, config = load("dataclasses"), load("helpers.config")
    settings = {"dataset": "voc2007", "data_dir": load("pathlib").Path(folder), "offline": True, **changes}
    return dataclasses.replace(config.get_config(), **settings)


def test_dataset_splits_follow_the_voc_archives_found(capsys):
    replace = load("dataclasses").replace
    write_voc_devkit = load("helpers.datasets").write_voc_devkit
    scenes = {split: load_detection("detection_scenes", split, num=n, image_size=32)
              for split, n in (("train", 4), ("val", 3), ("test", 2))}
    with worker_folder() as root:
        cfg = _voc_config(root)
        folder = f"{root}/VOCdevkit/VOC2007"
        write_voc_devkit(folder, {k: scenes[k] for k in ("train", "val")})
        splits = harness.dataset_splits(cfg)
        assert splits == {"train": "train", "val": "val", "test": "val"}
        assert harness.dataset_splits(replace(cfg, offline=False)) == splits, "trainval present: no download"
        data = harness.load_splits(cfg, 32, {"train": 2000, "val": 2, "test": None}, splits,
                                   {"train": 1, "val": 1, "test": 1})
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == (f"VOC 2007 in {folder}: found trainval -- no test split (VOCtest_06-Nov-2007.tar): "
                            "validating and testing on val; using train on train (4 images), val on val (2 images), "
                            "test on val (all images)")
        assert [data[k]["images"].shape[0] for k in ("train", "val", "test")] == [4, 2, 3], "sizes cut to the split"
        write_voc_devkit(folder, scenes)
        assert harness.dataset_splits(cfg) == {"train": "trainval", "val": "test", "test": "test"}
        assert harness.dataset_splits(replace(cfg, dataset="detection_scenes")) == {
            "train": "train", "val": "val", "test": "test"}
        empty = _voc_config(f"{root}/nothing", offline=False)
        assert harness.dataset_splits(empty)["test"] == "test", "online: downloads"


def test_use_pretrained_resolves_the_notebook_parameter(capsys):
    replace = load("dataclasses").replace
    hub = load("torch.hub")  # the cache folder, set where the code under test runs
    before = hub.get_dir()
    with worker_folder() as root:
        hub.set_dir(f"{root}/hub")  # an empty hub cache
        try:
            voc = _voc_config(root)
            assert harness.use_pretrained(None, voc) is False
            assert "backbone: small CNN from scratch (offline and regnet_x_400mf-adf1edd5.pth not cached" in \
                capsys.readouterr().out
            assert harness.use_pretrained(None, replace(voc, offline=False)) is True
            assert "RegNetX-400MF pretrained on ImageNet (online" in capsys.readouterr().out
            scenes = replace(voc, dataset="detection_scenes", offline=False)
            assert harness.use_pretrained(None, scenes) is False and capsys.readouterr().out == "", \
                "scenes: as measured"
            assert harness.use_pretrained(True, scenes) is True
            load("os").makedirs(f"{root}/weights")
            load("pathlib").Path(f"{root}/weights/regnet_x_400mf-adf1edd5.pth").write_bytes(b"x")
            assert harness.use_pretrained(None, voc) is True, "offline with the weights cached"
            with pytest.raises(TypeError, match="PRETRAINED must be None, True or False"):
                harness.use_pretrained("yes", voc)
        finally:
            hub.set_dir(before)


def test_build_on_trunk_rebuilds_without_downloading():
    def build(**kwargs):
        return kwargs

    for pretrained, trunk in ((True, "regnet"), (False, "small")):
        model, config = harness.build_on_trunk(build, {"num_classes": 3}, {"pretrained": pretrained, "lr": 1.0})
        assert model == {"num_classes": 3, "trunk": trunk, "pretrained": pretrained}
        assert config == {"num_classes": 3, "trunk": trunk, "pretrained": False}, "saved weights replace the trunk's"
