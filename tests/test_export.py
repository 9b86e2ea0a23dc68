"""helpers/export.py: torch.export round trip, saved models, image reading, the shared command line."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from helpers.export import (
    BOX_FORMAT,
    ImageReadError,
    classification_records,
    detection_records,
    export_metadata,
    export_model,
    is_exported,
    load_exported,
    load_model,
    max_difference,
    paper_main,
    predict_parser,
    read_images,
    save_annotated,
    save_model,
    write_json,
)
from helpers.train import save_checkpoint


class TwoHeads(nn.Module):
    """A small network with dropout, batch norm and two outputs (like a detector's)."""

    def __init__(self, channels: int = 4):
        super().__init__()
        self.channels = channels
        self.body = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
                                  nn.Dropout(0.5))
        self.scores = nn.Conv2d(channels, 2, 1)
        self.boxes = nn.Conv2d(channels, 4, 1)

    def forward(self, images):
        h = self.body(images)
        return self.scores(h), {"boxes": self.boxes(h)}


def test_export_equals_eager_model_for_any_batch_size_and_keeps_the_mode(tmp_path):
    torch.manual_seed(0)
    model = TwoHeads()
    model.body[1].running_mean.uniform_(-1, 1)
    model.train()
    path = export_model(model, torch.rand(2, 3, 6, 6), tmp_path / "sub" / "m.pt2")
    assert path.is_file() and model.training, "the model's own mode is restored"
    exported = load_exported(path)
    assert is_exported(exported) and not is_exported(model)
    for batch in (1, 3, 7):
        assert max_difference(model, exported, torch.rand(batch, 3, 6, 6)) < 1e-6
    assert model.training


def test_export_keeps_its_metadata_inside_the_file(tmp_path):
    meta = {"image_size": 6, "class_names": ["a", "b"], "squash": True}
    path = export_model(TwoHeads(), torch.rand(2, 3, 6, 6), tmp_path / "m.pt2", metadata=meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt2"]
    assert export_metadata(path) == meta
    assert export_metadata(export_model(TwoHeads(), torch.rand(2, 3, 6, 6), tmp_path / "bare.pt2")) == {}
    with pytest.raises(TypeError, match="not JSON serializable"):
        export_model(TwoHeads(), torch.rand(2, 3, 6, 6), tmp_path / "bad.pt2", metadata={"t": torch.zeros(1)})
    with pytest.raises(FileNotFoundError, match="no export at"):
        export_metadata(tmp_path / "missing.pt2")


def test_export_refuses_bad_examples_and_paths(tmp_path):
    model = TwoHeads()
    with pytest.raises(ValueError, match="at least 2 images"):
        export_model(model, torch.rand(1, 3, 6, 6), tmp_path / "m.pt2")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        export_model(model, torch.rand(3, 6, 6), tmp_path / "m.pt2")
    with pytest.raises(ValueError, match=r"must end in '\.pt2'"):
        export_model(model, torch.rand(2, 3, 6, 6), tmp_path / "m.pt")
    with pytest.raises(FileNotFoundError, match="no export at"):
        load_exported(tmp_path / "missing.pt2")


def test_max_difference_sees_a_change_and_structure_mismatches():
    torch.manual_seed(1)
    model, other = TwoHeads().eval(), TwoHeads().eval()
    images = torch.rand(2, 3, 5, 5)
    assert max_difference(model, model, images) == 0.0
    assert max_difference(model, other, images) > 1e-3
    with pytest.raises(ValueError, match="outputs differ in structure"):
        max_difference(model, nn.Conv2d(3, 2, 1), images)


def test_saved_model_rebuilds_with_its_config(tmp_path):
    torch.manual_seed(2)
    model = TwoHeads(channels=5).eval()
    path = save_model(model, {"channels": 5}, tmp_path / "m_model.pt")
    assert torch.load(path, weights_only=True)["config"] == {"channels": 5}
    again = load_model(path, TwoHeads)
    assert again.channels == 5 and not again.training
    assert max_difference(model, again, torch.rand(2, 3, 4, 4)) == 0.0


def test_saved_model_errors(tmp_path):
    with pytest.raises(TypeError, match="config must be a dict"):
        save_model(TwoHeads(), [("channels", 4)], tmp_path / "m.pt")
    with pytest.raises(FileNotFoundError, match="run the paper's notebook first"):
        load_model(tmp_path / "missing.pt", TwoHeads)
    plain = save_checkpoint(tmp_path / "plain.pt", TwoHeads())
    with pytest.raises(ValueError, match="not written by helpers.export.save_model"):
        load_model(plain, TwoHeads)


def test_read_images_converts_channels_and_size(tmp_path):
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[..., 0] = 255                                       # pure red
    Image.fromarray(rgb).save(tmp_path / "red.png")
    Image.fromarray(np.full((8, 8), 51, dtype=np.uint8)).save(tmp_path / "grey.jpg", quality=100)
    grey = read_images([tmp_path / "red.png", tmp_path / "grey.jpg"], size=4, channels=1)
    assert grey.shape == (2, 1, 4, 4) and grey.dtype == torch.float32
    assert torch.allclose(grey[0], torch.full((1, 4, 4), 1 / 3), atol=1e-6)
    assert torch.allclose(grey[1], torch.full((1, 4, 4), 0.2), atol=2 / 255)
    colour = read_images([tmp_path / "grey.jpg"], size=8, channels=3)
    assert colour.shape == (1, 3, 8, 8) and torch.allclose(colour[0, 0], colour[0, 2])


def test_read_images_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ImageReadError, match="missing.png: no such image file"):
        read_images([tmp_path / "missing.png"], 8, 1)
    with pytest.raises(ValueError, match="expected a .png / .jpg / .jpeg image"):
        read_images([tmp_path / "notes.txt"], 8, 1)
    with pytest.raises(ValueError, match="at least one image"):
        read_images([], 8, 1)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        read_images([tmp_path / "notes.txt"], 8, 2)


def test_write_json_and_save_annotated(tmp_path):
    path = write_json({"a": [1, 2.5, "x"]}, tmp_path / "out" / "p.json")
    assert json.loads(path.read_text()) == {"a": [1, 2.5, "x"]}
    prediction = {"boxes": torch.tensor([[1.0, 1.0, 5.0, 6.0]]), "labels": torch.tensor([1]),
                  "scores": torch.tensor([0.9])}
    png = save_annotated(torch.rand(3, 8, 8), prediction, ["a", "b"], tmp_path / "out" / "p.png")
    with Image.open(png) as image:
        assert image.size[0] > 8


def test_predict_parser_commands():
    parser = predict_parser("demo", "a demo")
    args = parser.parse_args(["predict", "a.png", "b.png", "--export", "m.pt2"])
    assert args.command == "predict" and args.images == ["a.png", "b.png"] and args.export == "m.pt2"
    assert args.out == "predictions_demo" and args.checkpoint is None
    assert parser.parse_args(["export"]).out == "demo.pt2"
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "a.png", "--export", "m.pt2", "--checkpoint", "c.pt"])
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_detection_records_give_boxes_in_the_original_images_pixels(tmp_path):
    Image.new("RGB", (80, 40)).save(tmp_path / "wide.png")
    prediction = {"boxes": torch.tensor([[0.0, 0.0, 16.0, 16.0], [4.0, 8.0, 8.0, 12.0]]),
                  "scores": torch.tensor([0.9, 0.4]), "labels": torch.tensor([1, 0])}
    (record,) = detection_records([tmp_path / "wide.png"], [prediction], 16, ["cat", "dog"])
    assert (record["width"], record["height"]) == (80, 40)
    assert [d["box"] for d in record["detections"]] == [[0.0, 0.0, 80.0, 40.0], [20.0, 20.0, 40.0, 30.0]]
    assert [(d["class"], d["label"], d["score"]) for d in record["detections"]] == [("dog", 1, 0.9), ("cat", 0, 0.4)]
    assert "original image's pixels" in BOX_FORMAT


def test_classification_records_give_the_top_classes():
    probabilities = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    rows = classification_records(["a.png", "b.png"], probabilities, ["x", "y", "z"], top=2)
    assert [[t["class"] for t in row["top"]] for row in rows] == [["y", "z"], ["x", "z"]]
    assert rows[0]["image"] == "a.png" and rows[0]["top"][0] == {"class": "y", "id": 1, "probability": 0.6}


class Corner(nn.Module):
    """A 'detector' answering one box, the top-left quarter of its 8 x 8 input, with class 1."""

    def __init__(self, image_size=8, class_names=("a", "b")):
        super().__init__()
        self.image_size, self.class_names = image_size, list(class_names)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images):
        return images.mean(dim=(1, 2, 3)) * self.scale


def _corner_meta(model):
    return {"image_size": model.image_size, "class_names": model.class_names}


def _corner_answer(network, images, meta, score_thresh):
    return [{"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]]), "scores": torch.ones(1), "labels": torch.tensor([1])}
            for _ in network(images)]


def test_paper_main_writes_one_box_convention_from_a_checkpoint_and_an_export(tmp_path):
    checkpoint = save_model(Corner(), {"image_size": 8}, tmp_path / "corner.pt")
    Image.new("RGB", (40, 20)).save(tmp_path / "img.png")
    command = ("corner", "demo", Corner, _corner_meta, ("image_size", "class_names"), _corner_answer)
    assert paper_main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "c.pt2")], *command,
                      detector=True) == 0
    assert export_metadata(tmp_path / "c.pt2") == {"image_size": 8, "class_names": ["a", "b"]}
    for source in (["--checkpoint", str(checkpoint)], ["--export", str(tmp_path / "c.pt2")]):
        out = tmp_path / source[0].strip("-")
        assert paper_main(["predict", str(tmp_path / "img.png"), *source, "--out", str(out)], *command,
                          detector=True) == 0
        written = json.loads((out / "predictions.json").read_text())
        assert written["box_format"] == BOX_FORMAT and written["model_image_size"] == 8
        assert written["images"][0]["detections"][0]["box"] == [0.0, 0.0, 20.0, 10.0]
        assert (out / "img_corner.png").is_file()


# --------------------------------------------------------------------------- crafted exports


class _RunsCode:
    """Unpickling this creates the folder ``marker``: a stand-in for any code a crafted file runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.mkdir, (self.marker,))


def _rewrite(source, target, replace=None, add=None):
    """Copy the zip ``source`` to ``target``, replacing entries (name -> bytes) and adding others."""
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = (replace or {}).get(info.filename, old.read(info))
            new.writestr(info.filename, data(old.read(info)) if callable(data) else data)
        for name, data in (add or {}).items():
            new.writestr(name, data)
    return target


def _pickled_entry(path):
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return next(n for n in archive.namelist() if n.endswith(".pt"))


def _evil_bytes(marker):
    import io

    buffer = io.BytesIO()
    torch.save((_RunsCode(marker),), buffer)
    return buffer.getvalue()


@pytest.fixture
def honest_export(tmp_path):
    torch.manual_seed(3)
    return export_model(TwoHeads(), torch.rand(2, 3, 8, 8), tmp_path / "honest.pt2", metadata={"a": 1})


def test_a_crafted_export_is_refused_and_its_code_does_not_run(honest_export, tmp_path):
    import subprocess
    import sys

    from helpers.export import UnsafeExportError

    marker = tmp_path / "code-ran"
    crafted = _rewrite(honest_export, tmp_path / "crafted.pt2",
                       replace={_pickled_entry(honest_export): _evil_bytes(marker)})
    # The file is a real threat: torch.export.load alone runs its code (in a child process).
    subprocess.run([sys.executable, "-c", f"import torch; torch.export.load({str(crafted)!r})"],
                   capture_output=True, timeout=120)
    assert marker.is_dir(), "the crafted export should run code under a plain torch.export.load"
    marker.rmdir()
    for load in (load_exported, export_metadata):
        with pytest.raises(UnsafeExportError, match="pickled entry .* refused"):
            load(crafted)
        assert not marker.exists()


def test_exports_with_foreign_entries_or_pickled_payloads_are_refused(honest_export, tmp_path):
    import zipfile

    from helpers.export import UnsafeExportError, check_export_archive

    check_export_archive(honest_export)
    root = zipfile.ZipFile(honest_export).namelist()[0].split("/")[0] + "/"
    library = _rewrite(honest_export, tmp_path / "library.pt2", add={f"{root}data/aotinductor/m/m.so": b"\x7fELF"})
    with pytest.raises(UnsafeExportError, match="no export of a plain network has"):
        load_exported(library)
    configs = [n for n in zipfile.ZipFile(honest_export).namelist() if n.endswith("weights_config.json")]
    if configs:   # the layout of torch >= 2.6: weights are raw bytes unless the config asks for pickle
        def pickled(raw):
            config = json.loads(raw)
            next(iter(config["config"].values()))["use_pickle"] = True
            return json.dumps(config).encode()

        asks_pickle = _rewrite(honest_export, tmp_path / "pickle.pt2", replace={configs[0]: pickled})
        with pytest.raises(UnsafeExportError, match="as a pickled object"):
            load_exported(asks_pickle)
    not_zip = tmp_path / "not.pt2"
    not_zip.write_bytes(b"just bytes")
    with pytest.raises(UnsafeExportError, match="not a torch.export archive"):
        load_exported(not_zip)
    with pytest.raises(FileNotFoundError):
        load_exported(tmp_path / "missing.pt2")


# --------------------------------------------------------------------------- image modes, the command lines


def test_every_image_mode_is_read_by_its_own_range(tmp_path):
    from helpers.export import BACKGROUND, read_image

    sixteen = np.full((4, 4), 30000, dtype=np.uint16)            # 16-bit grey: 30000 / 65535, not saturated
    Image.fromarray(sixteen).save(tmp_path / "grey16.png")
    assert torch.allclose(read_image(tmp_path / "grey16.png", 4, 1), torch.full((1, 4, 4), 30000 / 65535))
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., :3] = 255                                           # white stored under ...
    rgba[:, :2, 3] = 255                                          # ... opaque left half, transparent right half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    image = read_image(tmp_path / "rgba.png", 4, 3)
    assert torch.allclose(image[:, :, 0], torch.ones(3, 4)) and torch.allclose(image[:, :, 3], torch.full((3, 4),
                                                                                                     BACKGROUND))
    palette = Image.fromarray(np.array([[0, 1], [1, 0]], dtype=np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.info["transparency"] = 1                              # colour 1 (blue) is transparent
    palette.save(tmp_path / "palette.png", transparency=1)
    image = read_image(tmp_path / "palette.png", 2, 3)
    assert image[:, 0, 0].tolist() == [1.0, 0.0, 0.0] and image[:, 0, 1].tolist() == [BACKGROUND] * 3
    Image.fromarray(np.full((4, 4), 128, dtype=np.uint8), "L").save(tmp_path / "grey.png")
    assert torch.allclose(read_image(tmp_path / "grey.png", 4, 3), torch.full((3, 4, 4), 128 / 255))


def test_a_truncated_image_is_named_and_skipped_and_the_others_are_read(tmp_path):
    from helpers.export import read_good_images

    good = tmp_path / "good.png"
    Image.fromarray(np.full((16, 16, 3), 200, dtype=np.uint8)).save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageReadError, match="broken.png: cannot read the image"):
        read_images([good, broken], 8, 3)
    skipped = []
    paths, batch = read_good_images([broken, good, tmp_path / "gone.png"], 8, 3, report=skipped.append)
    assert paths == [good] and batch.shape == (1, 3, 8, 8)
    assert [m.split(":")[0] for m in skipped] == [str(broken), str(tmp_path / "gone.png")]
    with pytest.raises(ImageReadError, match=r"none of the images could be read: .*broken.png"):
        read_good_images([broken], 8, 3, report=skipped.append)


def test_output_names_stay_distinct_for_files_of_the_same_name():
    from helpers.export import output_names

    assert output_names(["a/x.png", "b/x.png", "x.jpg", "y.png"]) == ["x", "x_2", "x_3", "y"]


def test_command_line_arguments_and_files_of_the_wrong_kind_are_refused_clearly(tmp_path, monkeypatch, capsys):
    from helpers.export import run_command
    from papers import vit

    monkeypatch.setenv("DL4CV_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    with pytest.raises(SystemExit):
        vit.main(["predict", str(image), "--score-thresh", "2"])
    assert "must be between 0 and 1" in capsys.readouterr().err
    saved = save_model(nn.Linear(4, 3), {"in_features": 4, "out_features": 3}, tmp_path / "linear.pt")
    cases = {
        ("--export", str(saved)): "--export takes a .pt2 export.*goes to --checkpoint",
        ("--checkpoint", str(tmp_path / "m.pt2")): "--checkpoint takes a saved model .*use --export",
        ("--checkpoint", str(saved)): "cannot build .*saved by another model",
        ("--out", str(image)): "is a file",
        ("--export", str(tmp_path / "none.pt2")): r"no export at .*none.pt2; write one with `python -m papers.vit",
        (): "no saved vit model in .*checkpoints/full or .*checkpoints/fast",
    }
    for extra, message in cases.items():
        assert run_command(vit.main, ["predict", str(image), *extra]) == 2
        assert re.search(message, capsys.readouterr().err), message
    assert not (tmp_path / "checkpoints").exists(), "looking for the default checkpoint created a folder"


def test_predict_uses_the_newer_saved_model_of_either_mode(tmp_path, monkeypatch):
    import os

    from helpers.export import default_model_path

    monkeypatch.setenv("DL4CV_CHECKPOINT_DIR", str(tmp_path))
    for mode, age in (("full", 100), ("fast", 10)):
        path = tmp_path / mode / "vit_model.pt"
        path.parent.mkdir()
        path.write_bytes(b"x")
        os.utime(path, (1e9 - age, 1e9 - age))
    assert default_model_path("vit") == tmp_path / "fast" / "vit_model.pt"
