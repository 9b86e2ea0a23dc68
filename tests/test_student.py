"""course.student: solution regions become named NotImplementedErrors; the student version of A1
holds no solution line, builds as a package, and its notebook stops at the first function to write."""

import importlib.util
import json
import subprocess
import sys
import textwrap
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from course import student
from course.run import run_notebook
from course.student import (
    SolutionMarkerError,
    answer_files,
    find_regions,
    make_student_version,
    resolve_assignments,
    strip_notebook,
    strip_source,
)

ROOT = Path(__file__).resolve().parent.parent


def _exec(source: str) -> dict:
    namespace: dict = {}
    exec(compile(source, "<student>", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def a1(tmp_path_factory):
    """The student version of A1, written once for this file."""
    out = tmp_path_factory.mktemp("a1") / "course"
    return out, make_student_version(out, ["A1"])


# --------------------------------------------------------------------------- regions


NESTED = textwrap.dedent('''\
    class Net:
        def loss(self, xs, y=None):
            total = 0
            for x in xs:
                if x > 0:
                    ### BEGIN SOLUTION
                    total += x
                    ### END SOLUTION
            return total

    def outer(n):
        def helper(k):
            ### BEGIN SOLUTION
            def square(v):
                return v * v
            return square(k)
            ### END SOLUTION
        return helper(n) + 1
    ''')


def test_region_becomes_a_named_error_at_its_own_indentation():
    text, regions = strip_source(NESTED, "A9_toy/toy.py")
    assert [r.owner for r in regions] == ["Net.loss", "outer.helper"]
    assert "                # YOUR CODE HERE\n" \
           '                raise NotImplementedError("write Net.loss in A9_toy/toy.py")\n' in text
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text and "total += x" not in text
    ns = _exec(text)
    assert ns["Net"]().loss([-1, -2]) == 0, "the raise sits inside the `if`: negative inputs never reach it"
    with pytest.raises(NotImplementedError, match=r"^write Net\.loss in A9_toy/toy\.py$"):
        ns["Net"]().loss([3])
    with pytest.raises(NotImplementedError, match=r"^write outer\.helper in A9_toy/toy\.py$"):
        ns["outer"](2)
    assert _exec(NESTED)["outer"](3) == 10  # the original still works


def test_pass_and_stub_options_keep_the_flow():
    source = textwrap.dedent('''\
        def run(log):
            ### BEGIN SOLUTION pass
            log.append("extra")
            ### END SOLUTION
            ### BEGIN SOLUTION stub: best = None
            best = 3
            ### END SOLUTION
            return best
        ''')
    text, regions = strip_source(source, "m.py")
    assert [r.option for r in regions] == ["pass", "stub: best = None"]
    log = []
    assert _exec(text)["run"](log) is None and log == []
    assert _exec(source)["run"](log) == 3 and log == ["extra"]


def test_pass_is_refused_where_the_region_returns_the_value():
    source = "def f(x):\n    ### BEGIN SOLUTION pass\n    return 2 * x\n    ### END SOLUTION\n"
    with pytest.raises(SolutionMarkerError, match=r"m\.py:2: .*holds the return of f"):
        strip_source(source, "m.py")
    # a return inside a function defined within the region is not the region's own
    ok = "def f(x):\n    ### BEGIN SOLUTION pass\n    def g():\n        return 1\n    ### END SOLUTION\n    return x\n"
    assert _exec(strip_source(ok, "m.py")[0])["f"](4) == 4


def test_markers_inside_docstrings_are_text():
    source = 'def f():\n    """Write it between\n    ### BEGIN SOLUTION\n    ### END SOLUTION\n    """\n    return 1\n'
    assert find_regions(source) == []
    assert strip_source(source, "m.py")[0] == source


@pytest.mark.parametrize("source, message", [
    ("def f():\n    ### BEGIN SOLUTION\n    x = 1\n", "line|never closed"),
    ("def f():\n    x = 1\n    ### END SOLUTION\n", "without a BEGIN"),
    ("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    x = 1\n    ### END SOLUTION\n", "nest"),
    ("def f():\n    ### BEGIN SOLUTION maybe\n    x = 1\n    ### END SOLUTION\n", "unknown option 'maybe'"),
    ("def f():\n    x = 1\n    ## BEGIN SOLUTION\n", "malformed solution marker"),
    ("def f():\n        ### BEGIN SOLUTION\n    x = 1\n    ### END SOLUTION\n    return x\n", "not valid Python"),
])
def test_malformed_markers_are_refused(source, message):
    with pytest.raises(SolutionMarkerError, match=message):
        strip_source(source, "bad.py")


def test_notebook_cells_lose_solutions_and_outputs():
    nb = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["Why?\n", "### BEGIN SOLUTION\n", "Because.\n",
                                                             "### END SOLUTION\n"]},
        {"cell_type": "code", "metadata": {"tags": ["nbval-ignore-output"], "execution": {"x": 1}},
         "execution_count": 7, "outputs": [{"output_type": "stream", "name": "stdout", "text": ["42\n"]}],
         "source": ["%matplotlib inline\n", "def answer():\n", "    ### BEGIN SOLUTION\n", "    return 42\n",
                    "    ### END SOLUTION\n", "### BEGIN SOLUTION stub: lr = None\n", "lr = 0.1\n",
                    "### END SOLUTION"]},
    ], "metadata": {"widgets": {"state": {}}}, "nbformat": 4, "nbformat_minor": 5}
    out, regions = strip_notebook(nb, "A9_toy/toy.ipynb")
    md, cell = out["cells"]
    assert "".join(md["source"]) == "Why?\nYOUR ANSWER HERE\n"
    assert cell["outputs"] == [] and cell["execution_count"] is None
    assert cell["metadata"] == {"tags": ["nbval-ignore-output"]} and "widgets" not in out["metadata"]
    assert "".join(cell["source"]) == ('%matplotlib inline\ndef answer():\n    # YOUR CODE HERE\n'
                                       '    raise NotImplementedError("write answer in cell 2 of A9_toy/toy.ipynb")\n'
                                       '# YOUR CODE HERE\nlr = None')
    assert [r.owner for r in regions] == ["answer", ""]
    assert nb["cells"][1]["outputs"], "the input notebook is left alone"


# --------------------------------------------------------------------------- assignments


def test_assignment_names():
    expected = [("A1_knn", ("knn",))]
    for name in ("A1", "A1_knn", "knn", "a1_knn/", "A1_knn/knn.py", "knn.ipynb"):
        assert [(a.folder, a.modules) for a in resolve_assignments([name], ROOT)] == expected, name
    with pytest.raises(ValueError, match=r"'zzz' matches no assignment.*A1_knn \(knn\)"):
        resolve_assignments(["A1", "zzz"], ROOT)


def _fake_course(root: Path) -> Path:
    """A course with assignments written later: A2 imports A1, A10 sorts after A2, helpers hold a region;
    a datasets subpackage in helpers, and the teacher's course/ with its own test."""
    files = {
        "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "--nbval -p no:cacheprovider"\n',
        "README.md": "# fake\n",
        "helpers/__init__.py": "",
        "helpers/util.py": "def twice(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n",
        "A1_one/__init__.py": "",
        "A1_one/one.py": "def one():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n",
        "A2_linear/__init__.py": "",
        "A2_linear/linear_classifier.py": "from A1_one.one import one\n",
        "A2_linear/two_layer_net.py": "def net():\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION\n",
        "A10_late/late.py": "X = 1\n",
        "tests/nbval_sanitize.cfg": "[x]\n",
        "tests/test_one.py": "from A1_one.one import one\n",
        "tests/test_two_layer_net.py": "from A2_linear.two_layer_net import net\n",
        "tests/test_util.py": "from helpers.util import twice\n",
        "tests/test_late.py": "from A10_late.late import X\n",
        "tests/test_notebooks.py": "",
        "tests/test_grade.py": "",
        "helpers/datasets/__init__.py": "",
        "helpers/datasets/files.py": "FILES = 1\n",
        "tests/test_loading_data.py": "from helpers.datasets.files import FILES\n",
        "course/__init__.py": "",
        "course/run.py": "RUN = 1\n",
        "tests/test_run.py": "from course.run import RUN\n",
        "tests/test_run_helpers.py": "from course.run import RUN\nfrom helpers.util import twice\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_assignments_added_later_need_no_change(tmp_path):
    root = _fake_course(tmp_path / "course")
    assert [a.folder for a in student.discover_assignments(root)] == ["A1_one", "A2_linear", "A10_late"]
    assert [(a.folder, a.modules) for a in resolve_assignments(["two_layer_net"], root)] == \
        [("A2_linear", ("two_layer_net",))]
    assert [(a.folder, a.modules) for a in resolve_assignments(["linear"], root)] == \
        [("A2_linear", ("linear_classifier", "two_layer_net"))]
    assert answer_files(root) == ["helpers/util.py", "A1_one/one.py", "A2_linear/two_layer_net.py"]
    result = make_student_version(tmp_path / "out", ["A2"], root=root)
    assert result.folders == ["A1_one", "A2_linear"] and result.added_dependencies == ["A1_one"]
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "A1_one/__init__.py", "A1_one/one.py", "A2_linear/__init__.py", "A2_linear/linear_classifier.py",
        "A2_linear/two_layer_net.py", "README.md", "helpers/__init__.py", "helpers/datasets/__init__.py",
        "helpers/datasets/files.py", "helpers/util.py", "pyproject.toml", "tests/nbval_sanitize.cfg",
        "tests/test_loading_data.py", "tests/test_one.py", "tests/test_two_layer_net.py", "tests/test_util.py"]
    assert 'raise NotImplementedError("write twice in helpers/util.py")' in (out / "helpers/util.py").read_text()
    assert (out / "pyproject.toml").read_text() == \
        '[tool.pytest.ini_options]\naddopts = "--nbval-lax -p no:cacheprovider"\n'


def test_out_dir_must_be_new_and_outside_the_course(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        make_student_version(busy, ["A1"])
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    for inside in (ROOT, ROOT / "tests" / "student", ROOT / "A1_knn" / "x"):
        with pytest.raises(ValueError, match="course"):
            make_student_version(inside, ["A1"])
    assert not (ROOT / "tests" / "student").exists()


# --------------------------------------------------------------------------- the student version of A1


def test_a1_student_version_layout(a1):
    out, result = a1
    assert result.folders == ["A1_knn"]
    for rel in ("A1_knn/knn.py", "A1_knn/knn.ipynb", "helpers/config.py", "helpers/datasets/classification.py",
                "helpers/environment_report.py", "tests/test_knn.py", "tests/test_data.py", "tests/test_synthetic.py",
                "tests/nbval_sanitize.cfg", "pyproject.toml", "requirements.txt", "Makefile", "conftest.py",
                "README.md", ".gitignore"):
        assert (out / rel).is_file(), rel
    tests = {p.name for p in (out / "tests").glob("test_*.py")}
    assert "test_knn.py" in tests
    # the teacher's tools and their tests stay behind; so do tests of assignments not handed out
    assert not tests & {"test_student.py", "test_grade.py", "test_notebooks.py", "test_course.py",
                        "test_two_layer_net.py", "test_damaged_files.py"}
    assert not any((out / d).exists() for d in ("course", "A2_linear", "A3_fc_cnn", "results", "bench", ".git"))
    assert "--nbval-lax " in (out / "pyproject.toml").read_text()
    nb = json.loads((out / "A1_knn/knn.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def _sources(path: Path) -> list[str]:
    """The Python texts of a module (one) or of a notebook (one per code cell)."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    return [path.read_text()]


def _solution_and_other_lines(path: Path) -> tuple[Counter, Counter]:
    """Counts of the solution lines of ``path`` and of its lines outside regions (stripped, non-blank)."""
    solution, outside = Counter(), Counter()
    for text in _sources(path):
        regions = find_regions(text, notebook=path.suffix == ".ipynb")
        inside = {n for r in regions for n in range(r.start, r.end + 1)}
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                (solution if number in inside else outside)[line.strip()] += 1
    return solution, outside


def test_a1_student_version_holds_no_solution_line(a1):
    out, result = a1
    copied = [p.relative_to(out) for p in out.rglob("*") if p.suffix in (".py", ".ipynb")]
    checked = 0
    for rel in copied:
        if not (ROOT / rel).is_file():
            continue
        solution, outside = _solution_and_other_lines(ROOT / rel)
        theirs = Counter(line.strip() for text in _sources(out / rel) for line in text.split("\n"))
        for line in solution:
            if not line.startswith("#"):
                assert theirs[line] <= outside[line], f"{rel}: solution line {line!r} is in the student version"
                checked += 1
        for text in _sources(out / rel):
            assert not any(student._MARKER_LIKE.match(line) for line in text.split("\n")), f"{rel} keeps a marker"
    assert checked >= 30, "the scan found the solution lines of A1_knn/knn.py"
    assert result.regions["A1_knn/knn.py"] == len(find_regions((ROOT / "A1_knn/knn.py").read_text())) >= 9
    assert "A1_knn/knn.py" in answer_files(ROOT)


def test_a1_student_module_imports_and_names_each_function(a1):
    out, _ = a1
    spec = importlib.util.spec_from_file_location("student_knn", out / "A1_knn/knn.py")
    knn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(knn)
    import torch

    x = torch.rand(4, 3)
    calls = {
        "compute_distances_two_loops": lambda: knn.compute_distances_two_loops(x, x),
        "compute_distances_one_loop": lambda: knn.compute_distances_one_loop(x, x),
        "compute_distances_no_loops": lambda: knn.compute_distances_no_loops(x, x),
        "squared_distances": lambda: knn.squared_distances(x, x),
        "predict_labels": lambda: knn.predict_labels(torch.rand(4, 2), torch.tensor([0, 1, 0, 1]), k=1),
        "knn_get_best_k": lambda: knn.knn_get_best_k({1: [50.0]}),
    }
    for name, call in calls.items():
        with pytest.raises(NotImplementedError, match=rf"^write {name} in A1_knn/knn\.py$"):
            call()
    with pytest.raises(ValueError, match="k must be >= 1"):  # given code still checks inputs
        knn.predict_labels(torch.rand(4, 2), torch.tensor([0, 1, 0, 1]), k=0)


def test_a1_student_version_builds_as_a_package(a1, tmp_path):
    out, _ = a1
    src = tmp_path / "src"
    subprocess.run(["cp", "-r", str(out), str(src)], check=True)  # the build writes beside the sources
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert {"A1_knn/knn.py", "helpers/config.py", "helpers/datasets/__init__.py"} <= names
        assert not any(name.startswith("course/") for name in names)
        assert b"raise NotImplementedError(\"write vote in A1_knn/knn.py\")" in zf.read("A1_knn/knn.py")


def test_a1_student_notebook_stops_at_the_first_function_to_write(a1, monkeypatch):
    out, _ = a1
    monkeypatch.setenv("PYTHONPATH", str(out))  # the kernel imports the student's A1_knn, not ours
    result = run_notebook(out / "A1_knn/knn.ipynb", fast=True, save=False, timeout=300, progress=False)
    assert not result.ok
    assert (result.error_name, result.error_value) == \
        ("NotImplementedError", "write compute_distances_two_loops in A1_knn/knn.py")
    cells = json.loads((out / "A1_knn/knn.ipynb").read_text())["cells"]
    first_call = next(i for i, c in enumerate(cells) if "compute_distances_" in "".join(c["source"])
                      and c["cell_type"] == "code")
    assert result.cell_index == first_call, "every cell before it ran cleanly (setup, data, plots)"


def test_command_line(tmp_path, capsys):
    assert student.main([str(tmp_path / "s"), "knn"]) == 0
    out = capsys.readouterr().out
    assert "A1_knn/knn.py: 9 solution regions removed" in out and "notebooks (outputs cleared): A1_knn/knn.ipynb" in out
    assert student.main([str(tmp_path / "t"), "nothing_like_this"]) == 2
    assert "'nothing_like_this' matches no assignment" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
