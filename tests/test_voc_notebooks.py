"""The four detection notebooks run end to end on a real-format PASCAL VOC 2007 folder, offline, from scratch.

The folder is written here (``helpers.datasets.write_voc_devkit``) from a few generated scenes: JPEG
images, XML annotations with difficult and truncated objects, ``ImageSets/Main`` lists -- one folder
with the test archive's split, one with only trainval's.  So every VOC code path of the notebooks
(the splits a user has, the 20 classes, the VOC sizes, ``PRETRAINED`` resolved offline without
cached weights) runs in CI, in fast mode on 24 training images.
"""

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from course.run import run_notebook
from helpers.datasets import VOC_CLASSES, load_detection, write_voc_devkit

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"train": 24, "val": 8, "test": 8}
CASES = {  # notebook -> (folder, result name); both folders are used by two notebooks each
    "A5_detection/one_stage_detector.ipynb": ("trainval only", "one_stage_detector"),
    "A5_detection/two_stage_detector.ipynb": ("with test", "two_stage_detector"),
    "papers/yolov1.ipynb": ("trainval only", "yolov1"),
    "papers/detr.ipynb": ("with test", "detr"),
}


@pytest.fixture(scope="module")
def voc_roots(tmp_path_factory):
    """``{"with test": data dir, "trainval only": data dir}``, each holding ``VOCdevkit/VOC2007``."""
    parts = {split: load_detection("detection_scenes", split, num=n, image_size=96) for split, n in SIZES.items()}
    roots = {"with test": tmp_path_factory.mktemp("voc_with_test"),
             "trainval only": tmp_path_factory.mktemp("voc_trainval_only")}
    write_voc_devkit(roots["with test"] / "VOCdevkit" / "VOC2007", parts)
    write_voc_devkit(roots["trainval only"] / "VOCdevkit" / "VOC2007", {k: parts[k] for k in ("train", "val")})
    return roots


def _stream_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.parametrize("notebook", list(CASES), ids=[Path(n).stem for n in CASES])
def test_detection_notebook_runs_on_voc_offline_from_scratch(notebook, voc_roots, tmp_path, monkeypatch):
    folder, result_name = CASES[notebook]
    for name, value in {"DL4CV_DATASET": "voc2007", "DL4CV_DATA_DIR": str(voc_roots[folder]), "DL4CV_OFFLINE": "1",
                        "DL4CV_FAST": "1", "DL4CV_RESULTS_DIR": str(tmp_path / "results"),
                        "DL4CV_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
                        "TORCH_HOME": str(tmp_path / "torch")}.items():  # TORCH_HOME: no cached weights
        monkeypatch.setenv(name, value)
    copy = tmp_path / "run" / Path(notebook).name
    copy.parent.mkdir()
    shutil.copy(ROOT / notebook, copy)

    result = run_notebook(copy, save=True, timeout=900, progress=False)

    assert result.ok, result.describe_error()
    nb = nbformat.read(copy, as_version=4)
    data_cell = next(c for c in nb.cells if c.cell_type == "code" and "harness.load_splits(" in c.source)
    first_line = _stream_text(data_cell).splitlines()[0]
    assert first_line.startswith("VOC 2007 in ")
    if folder == "with test":
        assert "found trainval and test; using train on trainval" in first_line
    else:
        assert "found trainval -- no test split" in first_line and "train on train" in first_line
    everything = "".join(_stream_text(c) for c in nb.cells if c.cell_type == "code")
    assert all(name in everything for name in VOC_CLASSES), "VOC's 20 class names (data cell or AP per class)"
    recorded = json.loads((tmp_path / "results" / f"{result_name}.json").read_text())
    assert recorded["dataset"] == "voc2007" and recorded["mode"] == "fast"
    if "A5_detection" in notebook:
        assert "backbone: small CNN from scratch (offline and regnet_x_400mf-adf1edd5.pth not cached" in everything
        assert "small CNN from scratch" in recorded["notes"], "the results notes say how the trunk started"
    assert sorted(p.name for p in copy.parent.iterdir()) == [copy.name], "nothing written beside the notebook"
