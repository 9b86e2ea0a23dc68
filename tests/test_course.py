"""Tests for course.run: discovery, headless execution, README table.

Notebooks here are tiny ones written into a fake repository under tmp_path;
each executed notebook starts a real kernel (a couple of seconds).
"""

import os
from pathlib import Path

import nbformat
import pytest

from course import run as course
from helpers.results import END, START

README = f"# Course\n\n{START}\n(old)\n{END}\n\nend\n"


def _notebook(path: Path, *sources: str) -> Path:
    """Write a notebook with a markdown title and one code cell per source."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}")]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _outputs(path: Path) -> str:
    """All stream text of an executed notebook."""
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    """An empty fake checkout: course.run sees it as the repository root."""
    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.setattr(course, "repo_root", lambda: root)
    monkeypatch.setenv("DL4CV_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("DL4CV_DEVICE", "cpu")
    return root


# --------------------------------------------------------------------------- discovery


def test_discovery_finds_assignment_and_paper_notebooks(fake_root):
    for rel in ["A2_linear/two.ipynb", "A1_knn/knn.ipynb", "papers/vit.ipynb", "A1_knn/b.ipynb",
                "A1_knn/.ipynb_checkpoints/knn-checkpoint.ipynb", "bench/bench.ipynb",
                "tests/t.ipynb", "top.ipynb", "A1_knn/sub/deep.ipynb"]:
        _notebook(fake_root / rel, "1")
    found = [p.relative_to(fake_root).as_posix() for p in course.discover_notebooks(course.course_root())]
    assert found == ["A1_knn/b.ipynb", "A1_knn/knn.ipynb", "A2_linear/two.ipynb", "papers/vit.ipynb"]


def test_select_notebooks_by_substring(fake_root):
    for rel in ["A1_knn/knn.ipynb", "A2_linear/linear_classifier.ipynb", "papers/vit.ipynb"]:
        _notebook(fake_root / rel, "1")
    notebooks = course.discover_notebooks(fake_root)

    def names(patterns):
        chosen = course.select_notebooks(notebooks, patterns, fake_root)
        return [p.name for p in chosen]

    assert names([]) == ["knn.ipynb", "linear_classifier.ipynb", "vit.ipynb"]
    assert names(["A1"]) == ["knn.ipynb"]
    assert names(["knn", "papers"]) == ["knn.ipynb", "vit.ipynb"]
    assert names(["linear", "A2"]) == ["linear_classifier.ipynb"]
    with pytest.raises(ValueError, match="(?s)no notebook matches 'zzz'.*A1_knn/knn.ipynb"):
        course.select_notebooks(notebooks, ["A1", "zzz"], fake_root)


def test_cli_pattern_matching_nothing_lists_available(fake_root, capsys):
    _notebook(fake_root / "A1_knn" / "knn.ipynb", "1")
    assert course.main(["nothing_like_this"]) == 2
    err = capsys.readouterr().err
    assert "nothing_like_this" in err and "A1_knn/knn.ipynb" in err


def test_cli_without_notebooks_is_an_error(fake_root, capsys):
    assert course.main([]) == 2
    assert "no notebooks found" in capsys.readouterr().err


# --------------------------------------------------------------------------- execution


def test_run_saves_outputs_updates_readme_and_survives_a_failure(fake_root, tmp_path, capsys):
    # sorted order puts the failing notebook first: the second must still run
    bad = _notebook(fake_root / "A1_bad" / "bad.ipynb",
                    "print('before')", "raise ValueError('boom')", "print('never')")
    bad_before = bad.read_text()
    good = _notebook(fake_root / "A2_good" / "tiny.ipynb",
                     "import os\nfrom helpers.results import record",
                     "record('tiny', {'test accuracy': 0.5})",
                     "print('cwd', os.path.basename(os.getcwd()))")
    (fake_root / "README.md").write_text(README)

    assert course.main([]) == 1
    out = capsys.readouterr().out

    assert "FAILED  A1_bad/bad.ipynb" in out
    assert "cell 3 of 4 (`raise ValueError('boom')`): ValueError: boom" in out
    assert "ok      A2_good/tiny.ipynb" in out
    assert bad.read_text() == bad_before  # a failing notebook keeps its committed outputs
    executed = _outputs(good)
    assert "recorded test accuracy for tiny" in executed
    assert "cwd A2_good" in executed  # ran in its own folder
    assert (tmp_path / "results" / "tiny.json").is_file()
    readme = (fake_root / "README.md").read_text()
    assert "| tiny | test accuracy | 50.00% |" in readme and "(old)" not in readme
    assert readme.endswith(f"{END}\n\nend\n")
    assert "README table updated" in out
    summary = out[out.index("notebook  "):]
    assert "A1_bad/bad.ipynb" in summary and "FAILED" in summary and "notebooks: 1 ran cleanly, 1 failed" in summary


def test_fast_and_headless_are_set_in_the_kernel_and_restored(fake_root, monkeypatch, capsys):
    monkeypatch.setenv("DL4CV_FAST", "0")
    monkeypatch.delenv("DL4CV_HEADLESS", raising=False)
    nb = _notebook(fake_root / "A1_knn" / "env.ipynb",
                   "import os\nprint('DL4CV_FAST =', os.environ.get('DL4CV_FAST'))\n"
                   "print('DL4CV_HEADLESS =', os.environ.get('DL4CV_HEADLESS'))")
    other = _notebook(fake_root / "papers" / "skipped.ipynb", "raise SystemExit('must not run')")
    other_before = other.read_text()

    assert course.main(["--fast", "A1"]) == 0
    assert "DL4CV_FAST = 1" in _outputs(nb)
    assert "DL4CV_HEADLESS = 1" in _outputs(nb)  # widget helpers draw statically (see helpers.vis)
    assert os.environ["DL4CV_FAST"] == "0" and "DL4CV_HEADLESS" not in os.environ
    assert other.read_text() == other_before
    assert "skipped README table" in capsys.readouterr().out  # fake repo has no README


def test_no_save_leaves_the_notebook_alone_and_inherits_the_mode(fake_root, monkeypatch):
    monkeypatch.setenv("DL4CV_FAST", "0")
    nb = _notebook(fake_root / "A1_knn" / "env.ipynb",
                   "import os, pathlib\n"
                   "pathlib.Path('seen.txt').write_text(os.environ.get('DL4CV_FAST', 'unset'))")
    before = nb.read_text()
    result = course.run_notebook(nb, fast=False, save=False, progress=False)
    assert result.ok and not result.saved and result.status == "ok" and result.seconds > 0
    assert (nb.parent / "seen.txt").read_text() == "0"
    assert nb.read_text() == before


def test_cli_no_save_is_a_trial_run_that_changes_nothing(fake_root, tmp_path, capsys):
    nb = _notebook(fake_root / "A2_good" / "tiny.ipynb",
                   "from helpers.results import record\nfrom helpers.config import get_config",
                   "record('tiny', {'test accuracy': 0.5})\nprint('results in', get_config().results_dir)")
    before = nb.read_text()
    (fake_root / "README.md").write_text(README)

    assert course.main(["--no-save"]) == 0
    assert "trial run" in capsys.readouterr().out
    assert nb.read_text() == before
    assert (fake_root / "README.md").read_text() == README
    assert not (tmp_path / "results").exists()  # DL4CV_RESULTS_DIR of the caller was not used
    assert os.environ["DL4CV_RESULTS_DIR"] == str(tmp_path / "results")  # and is restored


def test_a_cell_over_the_time_limit_is_a_failure(fake_root):
    nb = _notebook(fake_root / "A1_knn" / "slow.ipynb", "x = 1", "import time\ntime.sleep(30)")
    result = course.run_notebook(nb, timeout=1, progress=False)
    assert not result.ok and not result.saved and result.status == "FAILED"
    assert result.cell_index == 2 and "CellTimeoutError" in result.describe_error()
    assert result.seconds < 20


def test_notebook_result_describes_its_error():
    result = course.NotebookResult(Path("x.ipynb"), ok=False, seconds=1.0, cell_index=1, cell_count=3,
                                   cell_source="1/0", error_name="ZeroDivisionError",
                                   error_value="division by zero")
    assert result.describe_error() == "cell 2 of 3 (`1/0`): ZeroDivisionError: division by zero"
    assert course.NotebookResult(Path("x.ipynb"), ok=True, seconds=1.0).describe_error() == ""


def test_summary_table(tmp_path):
    results = [course.NotebookResult(tmp_path / "A1_knn" / "knn.ipynb", ok=True, seconds=12.34),
               course.NotebookResult(tmp_path / "papers" / "vit.ipynb", ok=False, seconds=3.0)]
    lines = course.summary_table(results, tmp_path).splitlines()
    assert lines[0].split() == ["notebook", "status", "seconds"]
    assert lines[1].split() == ["A1_knn/knn.ipynb", "ok", "12.3"]
    assert lines[2].split() == ["papers/vit.ipynb", "FAILED", "3.0"]


def test_update_readme_table_skips_without_markers(tmp_path):
    readme = tmp_path / "README.md"
    updated, message = course.update_readme_table(readme, tmp_path)
    assert not updated and "not found" in message
    readme.write_text("# no markers\n")
    updated, message = course.update_readme_table(readme, tmp_path)
    assert not updated and "no" in message and START in message
    assert readme.read_text() == "# no markers\n"


def test_failed_checks_are_reported_and_strict_exits_non_zero(fake_root, capsys):
    _notebook(fake_root / "A1_checks" / "checks.ipynb",
              "from helpers.gradcheck import check_true",
              "check_true('a floor that holds', True)",
              "check_true('a floor that fails', False, '(got 0.01)')\nprint('after')")
    assert course.main(["--no-save"]) == 0, "without --strict a failed check does not fail the run"
    out = capsys.readouterr().out
    assert "CHECKS  A1_checks/checks.ipynb" in out
    assert "cell 4: a floor that fails ✗ (got 0.01)" in out and "a floor that holds" not in out
    assert "notebooks: 0 ran cleanly, 0 failed, 1 ran to the end with 1 failed check(s)" in out
    assert course.main(["--no-save", "--strict"]) == 1


def test_failed_checks_reads_stream_outputs():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("x ✗ in markdown is not a check"),
                nbformat.v4.new_code_cell("", outputs=[nbformat.v4.new_output("stream", name="stdout",
                                                                             text="ok ✓\nbad ✗ (got 1)\n")])]
    assert course.failed_checks(nb) == [(1, "bad ✗ (got 1)")]
