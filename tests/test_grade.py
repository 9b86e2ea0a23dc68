"""course.grade: our tests run on the student's modules (in a sandboxed worker) and score per group.

The real A1 is graded four times (full repository, its student version, that version with one
function put back, the full solution with one function taken out); the rest uses a tiny course
written here, so it stays fast.  Attacks on the grader: tests/test_grade_attacks.py.
"""

import ast
import json
import os
import shutil
import textwrap
from importlib.util import find_spec
from pathlib import Path

import pytest

from course import grade as grade_module
from course.grade import GradingError, build_bundle, grade, read_manifest
from course.student import find_regions, make_student_version

ROOT = Path(__file__).resolve().parent.parent


def restore(student_dir: Path, rel: str, owner: str, root: Path = ROOT) -> None:
    """Put the solution of function ``owner`` back into the student's copy of ``rel``."""
    regions = [r for r in find_regions((root / rel).read_text()) if r.owner == owner]
    path = student_dir / rel
    text = path.read_text()
    for r in regions:
        stub = f'{r.indent}# YOUR CODE HERE\n{r.indent}raise NotImplementedError("write {owner} in {rel}")'
        assert stub in text
        text = text.replace(stub, "\n".join(r.lines), 1)
    assert regions
    path.write_text(text)


def scores(report) -> dict[str, float]:
    return {g.name: g.score for a in report.assignments for g in a.groups}


# --------------------------------------------------------------------------- the real A1


@pytest.fixture(scope="module")
def a1_student(tmp_path_factory):
    """A1's student version and its grade."""
    out = tmp_path_factory.mktemp("graded") / "student"
    make_student_version(out, ["A1"])
    return out, grade(out, ["A1"])


def test_full_repository_scores_full_marks():
    report = grade(ROOT, ["A1"])
    assert [a.folder for a in report.assignments] == ["A1_knn"]
    assert report.max_score > 0 and report.score == pytest.approx(report.max_score) and report.percent == 100.0
    for g in report.assignments[0].groups:
        assert g.passed == g.total > 0, (g.name, [(c.name, c.message) for c in g.failed])
    assert {"distances: two loops", "voting", "cross-validation"} <= set(scores(report))
    assert "100.0%" in report.table().splitlines()[-1]


def test_student_version_scores_zero_and_it_is_the_students_code_that_ran(a1_student):
    out, report = a1_student
    # In this process `A1_knn` resolves to the repository (editable install): the solutions.
    assert Path(find_spec("A1_knn.knn").origin).resolve() == ROOT / "A1_knn" / "knn.py"
    scored = [g for g in report.assignments[0].groups if g.points]
    assert scored and all(g.score == 0 and g.passed == 0 for g in scored)
    messages = {c.message for g in scored for c in g.checks}
    assert all(m.startswith("not written: ") for m in messages), messages
    assert "not written: compute_distances_two_loops" in messages
    assert report.missing_files == []
    assert report.isolation in ("bwrap", "process")
    table = report.table()
    assert "✗ test_distances_match_cdist[shape0-compute_distances_two_loops]: not written: " \
           "compute_distances_two_loops" in table
    assert table.splitlines()[-1].split()[1:] == ["0.00", f"{report.max_score:g}", "0.0%"]


def test_restoring_one_function_raises_exactly_its_group(a1_student, tmp_path):
    out, before = a1_student
    copy = tmp_path / "student"
    make_student_version(copy, ["A1"])
    restore(copy, "A1_knn/knn.py", "compute_distances_two_loops")
    after = grade(copy, ["A1"])
    group = after.group("distances: two loops")
    assert group.passed == group.total == 4 and group.score == group.points > 0
    changed = {name for name, value in scores(after).items() if value != scores(before)[name]}
    assert changed == {"distances: two loops"}
    assert after.score == pytest.approx(before.score + group.points)


def test_a_solution_missing_one_leaf_function_loses_exactly_its_group(tmp_path):
    """The full solution without ``knn_get_best_k`` (its def deleted): only cross-validation drops, named."""
    student = tmp_path / "student"
    shutil.copytree(ROOT / "A1_knn", student / "A1_knn", ignore=shutil.ignore_patterns("*.ipynb", "__pycache__"))
    path = student / "A1_knn/knn.py"
    text = path.read_text()
    fn = next(n for n in ast.parse(text).body if getattr(n, "name", "") == "knn_get_best_k")
    lines = text.splitlines(keepends=True)
    path.write_text("".join(lines[:fn.lineno - 1] + lines[fn.end_lineno:]))
    report = grade(student, ["A1"])
    lost = {name for name, value in scores(report).items() if value < report.group(name).points}
    assert lost == {"cross-validation"}, lost
    group = report.group("cross-validation")
    assert 0 < group.passed < group.total and group.score == pytest.approx(group.points * group.passed / group.total)
    assert {c.message for c in group.failed} == {"not written: knn_get_best_k in A1_knn.knn"}
    assert report.max_score == 20


# --------------------------------------------------------------------------- a small course written here


TOY = '''\
def double(x):
    """2 * x."""
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION


def square(x):
    ### BEGIN SOLUTION
    return x * x
    ### END SOLUTION


def cube(x):
    ### BEGIN SOLUTION
    return x * x * x
    ### END SOLUTION
'''

TEST_TOY = '''\
import pytest
from under_test import load

toy = load("A7_toy.toy")
cube, double, square = toy.cube, toy.double, toy.square

pytestmark = pytest.mark.grade("powers", points=6)  # every test of this file not marked otherwise


@pytest.mark.grade("double", points=2)
@pytest.mark.parametrize("x", [0, 1, 2, 5])
def test_double(x):
    assert double(x) == 2 * x


def test_square():
    assert square(-4) == 16


def test_square_of_zero():
    assert square(0) == 0


def test_cube():
    assert cube(2) == 8


@pytest.mark.grade("given code", points=0)
def test_given():
    assert True
'''

EXTRA = 'def shout(s):\n    ### BEGIN SOLUTION\n    return s.upper() + "!"\n    ### END SOLUTION\n'

TEST_EXTRA = '''\
from under_test import load

shout = load("A7_toy.extra").shout


def test_shout():
    assert shout("hi") == "HI!"


def test_shout_empty():
    assert shout("") == "!"
'''


@pytest.fixture
def toy_course(tmp_path):
    """A course with one assignment added after the grader was written: A7_toy (toy.py, extra.py)."""
    root = tmp_path / "course"
    for rel, text in {"A7_toy/__init__.py": "", "A7_toy/toy.py": TOY, "A7_toy/extra.py": EXTRA,
                      "tests/test_toy.py": TEST_TOY, "tests/test_extra.py": TEST_EXTRA,
                      "pyproject.toml": "[tool.pytest.ini_options]\n",
                      "tests/under_test.py": (ROOT / "tests/under_test.py").read_text()}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def write_student(folder: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(textwrap.dedent(text))
    return folder


def test_toy_course_full_marks_and_blank_version(toy_course, tmp_path):
    full = grade(toy_course, ["A7"], root=toy_course)
    assert scores(full) == {"double": 2, "powers": 6, "given code": 0, "test_shout": 1, "test_shout_empty": 1}
    assert full.score == full.max_score == 10
    blank = tmp_path / "blank"
    make_student_version(blank, ["toy"], root=toy_course)
    report = grade(blank, ["A7_toy"], root=toy_course)
    assert scores(report) == {"double": 0, "powers": 0, "given code": 0, "test_shout": 0, "test_shout_empty": 0}
    assert report.group("given code").passed == 1, "a 0-point group is reported, not scored"
    assert report.group("double").total == 4 and report.group("powers").total == 3


def test_partial_credit_timeouts_missing_files_and_tampering(toy_course, tmp_path):
    student = write_student(tmp_path / "student", {
        # double right for x < 2 only, square right, cube never returns; extra.py is missing
        "A7_toy/toy.py": """\
            def double(x):
                return 2 * x if x < 2 else 0

            def square(x):
                return x * x

            def cube(x):
                while True:
                    pass
            """,
        # the student's own tests and conftest are ignored: ours run
        "tests/test_toy.py": "def test_double():\n    pass\n",
        "tests/conftest.py": "import pytest\n\n@pytest.fixture(autouse=True)\ndef cheat():\n    pytest.skip('no')\n",
        "conftest.py": "raise SystemExit('the student conftest must not run')\n",
    })
    report = grade(student, ["A7"], root=toy_course, test_timeout=1.0)
    assert scores(report) == pytest.approx({"double": 1.0, "powers": 4.0, "given code": 0,
                                            "test_shout": 0, "test_shout_empty": 0})
    assert report.score == pytest.approx(5.0) and report.max_score == 10
    cube = next(c for c in report.group("powers").checks if c.name == "test_cube")
    assert cube.outcome == "failed" and "TimeoutError: the student's code ran out of time" in cube.message
    assert report.missing_files == ["A7_toy/extra.py"]
    assert "A7_toy/extra.py is missing: graded as the blank student version" in report.assignments[0].problems
    assert report.group("test_shout").checks[0].message == "not written: shout"
    table = report.table()
    assert "✗ test_double[2]: assert 0 == (2 * 2)" in table and "✗ test_cube: TimeoutError" in table
    data = report.to_json()
    assert (data["score"], data["max_score"], data["percent"]) == (5.0, 10.0, 50.0)
    assert {t["name"]: (t["score"], t["max_score"]) for t in data["tests"]}["A7_toy · toy · double"] == (1.0, 2.0)
    double = next(g for g in data["assignments"][0]["groups"] if g["group"] == "double")
    check = double["checks"][2]
    assert (check["test"], check["outcome"]) == ("tests/test_toy.py::test_double[2]", "failed")
    assert check["message"].startswith("assert 0 == (2 * 2)") and "where 0 = double(2)" in check["message"]
    json.dumps(data)


def test_import_errors_and_crashes_keep_every_group(toy_course, tmp_path):
    student = write_student(tmp_path / "student", {
        "A7_toy/toy.py": "def double(x):\n    return 2 * x\n\ndef square(x) return x\n",  # syntax error
        "A7_toy/extra.py": "import os\n\ndef shout(s):\n    os._exit(3)\n",  # ends the worker mid-call
    })
    report = grade(student, ["A7"], root=toy_course)
    assert scores(report) == {"double": 0, "powers": 0, "given code": 0, "test_shout": 0, "test_shout_empty": 0}
    assert report.max_score == 10, "the maximum comes from the bundle's manifest"
    double = report.group("double").checks[0]
    assert double.outcome == "failed" and double.message.startswith("A7_toy.toy does not import: ")
    assert "SyntaxError" in double.message and double.message.endswith("(so double cannot run)")
    assert report.group("given code").passed == 1, "the test file still runs: only the student's names fail"
    shout, empty = report.group("test_shout").checks[0], report.group("test_shout_empty").checks[0]
    assert shout.outcome == empty.outcome == "failed"
    assert "ended the worker process (exit code 3)" in shout.message


def test_answer_files_that_are_links_or_not_files_are_refused(toy_course, tmp_path):
    student = tmp_path / "student"
    (student / "A7_toy").mkdir(parents=True)
    (student / "A7_toy/toy.py").symlink_to(toy_course / "A7_toy/toy.py")  # the teacher's solution
    (student / "A7_toy/extra.py").mkdir()
    report = grade(student, ["A7"], root=toy_course)
    assert report.score == 0 and report.max_score == 10
    problems = report.assignments[0].problems
    assert "A7_toy/toy.py refused: A7_toy/toy.py is a symbolic link; hand in the file itself: graded as the " \
           "blank student version" in problems
    assert "A7_toy/extra.py refused: not a regular file: graded as the blank student version" in problems


def test_the_bundle_holds_no_solution_and_fixes_the_maximum(toy_course, tmp_path):
    bundle = build_bundle(tmp_path / "bundle", toy_course)
    assert not find_regions((bundle / "A7_toy/toy.py").read_text())
    assert "return x * x" not in (bundle / "A7_toy/toy.py").read_text()
    manifest = read_manifest(bundle)
    assert manifest["answer_files"] == ["A7_toy/extra.py", "A7_toy/toy.py"]
    assert len(manifest["items"]) == 10 and (bundle / "run_autograder").stat().st_mode & 0o111
    # a student whose module defines tests of its own and aliases one function to another
    student = write_student(tmp_path / "student", {"A7_toy/toy.py": """\
        def double(x):
            return 2 * x

        square = cube = double

        def test_mine():
            assert True
        """, "A7_toy/extra.py": """\
        from toy import double  # EECS 498's template imports a sibling by its bare name

        def shout(s):
            return s.upper() + "!" * (double(1) // 2)
        """})
    report = grade(student, ["A7"], bundle=bundle)
    # double 2; powers: square(0) only, 1 of 3 checks of 6 points; shout 1 + 1
    assert report.max_score == 10 and report.score == pytest.approx(2.0 + 6.0 / 3 + 2.0)
    assert {c.name for g in report.assignments[0].groups for c in g.checks} == {
        i["nodeid"].split("::")[1] for i in manifest["items"]}
    with pytest.raises(GradingError, match="not empty"):
        build_bundle(bundle, toy_course)


def test_inconsistent_points_are_refused(toy_course, tmp_path):
    test_file = toy_course / "tests/test_extra.py"
    test_file.write_text("import pytest\n\n" + TEST_EXTRA.replace(
        "def test_shout()", '@pytest.mark.grade("s", points=1)\ndef test_shout()').replace(
        "def test_shout_empty()", '@pytest.mark.grade("s", points=2)\ndef test_shout_empty()'))
    with pytest.raises(GradingError, match=r"group 's' declares different points"):
        grade(toy_course, ["extra"], root=toy_course)


def test_command_line(toy_course, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(grade_module, "course_root", lambda: toy_course)
    monkeypatch.chdir(toy_course)
    out_json = tmp_path / "grade.json"
    # no STUDENT_DIR: the current folder; "A7_toy" is a folder here but an assignment name, not a checkout
    assert grade_module.main(["A7_toy", "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "TOTAL" in printed and "100.0%" in printed.splitlines()[-1]
    assert json.loads(out_json.read_text())["percent"] == 100.0
    assert grade_module.main([str(toy_course), "A7_toy/toy.py", "--json", "-"]) == 0  # one module of A7
    assert json.loads(capsys.readouterr().out)["max_score"] == 8.0
    assert grade_module.main([str(toy_course), "nothing_like_this"]) == 2
    assert "'nothing_like_this' matches no assignment" in capsys.readouterr().err
    assert os.getcwd() == str(toy_course)


def test_audit_lists_points_earned_without_solutions_and_unmarked_tests(toy_course, monkeypatch, capsys):
    test_file = toy_course / "tests/test_toy.py"
    test_file.write_text(TEST_TOY.replace('grade("given code", points=0)', 'grade("given code", points=1)'))
    monkeypatch.setattr(grade_module, "course_root", lambda: toy_course)
    assert grade_module.main(["--audit", "A7"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "tests/test_extra.py · test_shout: no grade marker (counted as its own group worth 1 point)",
        "tests/test_extra.py · test_shout_empty: no grade marker (counted as its own group worth 1 point)",
        "tests/test_toy.py · given code: 1 of 1 points without any solution (passing: test_given)",
    ]
