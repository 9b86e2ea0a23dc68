"""The ``train`` command of the papers and A5's detectors (helpers/train_command.py), offline and tiny."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from under_test import load

from helpers.export import load_model, run_command

yolov1 = load("papers.yolov1")
vit = load("papers.vit")

MODULES = ["papers.detr", "papers.yolov1", "papers.vit", "A5_detection.one_stage_detector",
           "A5_detection.two_stage_detector"]
TINY = ["--train-size", "8", "--val-size", "8", "--batch-size", "4", "--epochs", "1", "--no-progress"]


@pytest.mark.parametrize("module", MODULES)
def test_train_help_lists_the_recipe_arguments(module, capsys):
    with pytest.raises(SystemExit) as stop:
        load(module).main(["train", "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for option in ("--dataset", "--image-size", "--epochs", "--batch-size", "--lr", "--out", "--amp"):
        assert option in text
    assert f"-m {module} train" in text


def test_train_help_runs_as_a_program():
    done = subprocess.run([sys.executable, "-m", "papers.yolov1", "train", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "--batch-size" in done.stdout


def test_yolov1_trains_two_steps_then_resumes_as_finished(tmp_path, capsys):
    assert yolov1.main(["train", *TINY, "--out", str(tmp_path)]) == 0
    folder = tmp_path / "fast"                                  # tests run in fast mode
    assert sorted(p.name for p in folder.iterdir()) == ["yolov1.pt", "yolov1_model.pt", "yolov1_train.json"]
    record = json.loads((folder / "yolov1_train.json").read_text())
    assert record["history"]["global_step"] == 2 and record["processes"] == 1 and record["batch_total"] == 4
    assert record["settings"]["image_size"] == 64 and record["precision"] == "float32"
    model = load_model(folder / "yolov1_model.pt", yolov1.YOLOv1)
    assert model.image_size == 64 and len(model.class_names) == 10
    assert "1 process x 4 images = batch 4" in capsys.readouterr().out
    before = (folder / "yolov1.pt").stat().st_mtime_ns
    assert yolov1.main(["train", *TINY, "--out", str(tmp_path)]) == 0   # a finished run: loaded, not trained again
    assert (folder / "yolov1.pt").stat().st_mtime_ns == before


def test_vit_trains_with_bf16_and_its_model_predicts(tmp_path):
    from PIL import Image

    assert vit.main(["train", "--train-size", "64", "--val-size", "32", "--batch-size", "32", "--epochs", "1",
                     "--amp", "--no-progress", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "fast" / "vit_train.json").read_text())
    assert record["precision"] == "bfloat16" and record["history"]["global_step"] == 2
    assert len(record["history"]["val"]["acc"]) == 1
    image = tmp_path / "x.png"
    Image.fromarray((torch.rand(28, 28) * 255).byte().numpy()).save(image)
    out = tmp_path / "pred"
    assert vit.main(["predict", str(image), "--checkpoint", str(tmp_path / "fast" / "vit_model.pt"),
                     "--out", str(out)]) == 0
    assert len(json.loads((out / "predictions.json").read_text())["predictions"][0]["top"]) == 3


def test_train_refuses_what_it_cannot_run(tmp_path):
    assert run_command(vit.main, ["train", "--image-size", "64", "--train-size", "8", "--val-size", "8",
                                  "--out", str(tmp_path)]) == 2
    assert run_command(vit.main, ["train", "--train-size", "8", "--val-size", "8", "--batch-size", "64",
                                  "--out", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        vit.main(["train", "--epochs", "0"])


def test_faster_rcnn_anchors_follow_the_image_size_of_the_run():
    """``--image-size`` reaches the anchors: on VOC 8 strides at 224 px, the same share of other sizes."""
    rcnn = load("A5_detection.two_stage_detector")
    for size, scale in ((224, 8), (128, 5), (448, 16)):
        model, config = rcnn.build_for_training({"image_size": size, "on_voc": True, "pretrained": False}, ["a", "b"])
        assert config["anchor_stride_scale"] == scale and model.rpn.anchor_stride_scale == scale
    _, config = rcnn.build_for_training({"image_size": 96, "on_voc": False, "pretrained": False}, ["a"])
    assert config["anchor_stride_scale"] == 3
