"""Every notebook keeps the course's shape, and runs when copied alone into an empty folder.

nbval (``pytest`` collects every ``*.ipynb``) checks each notebook's outputs in
place; these tests check what nbval cannot: the opening every notebook shares,
and the Colab/Kaggle case where a notebook is uploaded without the repository
(the course itself is installed, as the setup cell does there).
"""

import shutil
from pathlib import Path

import nbformat
import pytest

from course.run import run_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(ROOT.glob("A*/*.ipynb")) + sorted(ROOT.glob("papers/*.ipynb"))
IDS = [str(p.relative_to(ROOT)) for p in NOTEBOOKS]


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_every_assignment_folder_is_collected():
    assert any(p.parent.name == "A1_knn" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_opening(path):
    nb = nbformat.read(path, as_version=4)
    first_md = next(c for c in nb.cells if c.cell_type == "markdown").source
    assert first_md.startswith("# "), "the notebook opens with a title"
    assert "colab.research.google.com/github/" in first_md and "kaggle.com/kernels/welcome" in first_md
    setup_cell, params_cell = code_cells(nb)[:2]
    assert "google.colab" in setup_cell.source and "KAGGLE_KERNEL_RUN_TYPE" in setup_cell.source
    assert "parameters" in params_cell.metadata.get("tags", []), "second code cell is tagged 'parameters'"
    assert "setup(" in params_cell.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_committed_with_outputs_and_no_errors(path):
    nb = nbformat.read(path, as_version=4)
    cells = code_cells(nb)
    assert any(c.outputs for c in cells), "commit notebooks with their outputs"
    errors = [i for i, c in enumerate(cells) for o in c.outputs if o.output_type == "error"]
    assert not errors, f"code cells {errors} hold error outputs"
    assert any("record(" in c.source for c in cells), "the summary records headline metrics"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_alone_in_an_empty_folder(path, tmp_path):
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    result = run_notebook(copy, save=False, timeout=600, progress=False)
    assert result.ok, result.describe_error()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name], "the notebook wrote files beside itself"
