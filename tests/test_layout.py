"""The layout promised in README ("Layout: one room per reader"), checked on every course module.

* A student's file shows the assignment: the first solution region of every assignment and paper
  module sits within :data:`FIRST_REGION_WITHIN` lines after its docstring and imports.
* No private name crosses modules: ``from course_module import _name`` appears nowhere in the course.
* The handout's helpers serve learners only: no teacher tool lives in ``helpers/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_REGION_WITHIN = 60
BEGIN = "### BEGIN SOLUTION"


def _course_packages() -> list[Path]:
    return sorted(p for p in ROOT.iterdir() if p.is_dir() and (p.name[:1] == "A" and p.name[1:2].isdigit()
                                                             or p.name == "papers"))


def _solution_modules() -> list[Path]:
    return [f for pkg in _course_packages() for f in sorted(pkg.glob("*.py")) if BEGIN in f.read_text()]


def _end_of_preamble(tree: ast.Module) -> int:
    """Last line of the module docstring and of the imports that follow it (``__future__`` included)."""
    end = 0
    for node in tree.body:
        is_docstring = (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                        and isinstance(node.value.value, str))
        if is_docstring or isinstance(node, (ast.Import, ast.ImportFrom)):
            end = node.end_lineno
        else:
            break
    return end


def test_there_are_solution_modules_to_check():
    names = {f.parent.name for f in _solution_modules()}
    assert {"A1_knn", "A3_fc_cnn", "papers"} <= names, names


@pytest.mark.parametrize("path", _solution_modules(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_first_solution_region_is_near_the_top(path):
    text = path.read_text()
    preamble = _end_of_preamble(ast.parse(text))
    first = next(i for i, line in enumerate(text.splitlines(), 1) if line.strip().startswith(BEGIN))
    assert first - preamble <= FIRST_REGION_WITHIN, (
        f"{path.relative_to(ROOT)}: the first solution region starts at line {first}, {first - preamble} lines "
        f"after the imports (at most {FIRST_REGION_WITHIN}): move checks and given code below it or to checks.py")


def _course_python_files() -> list[Path]:
    folders = [*_course_packages(), ROOT / "helpers", ROOT / "course", ROOT / "bench"]
    return [f for folder in folders if folder.is_dir() for f in sorted(folder.rglob("*.py"))]


def _is_course_module(module: str) -> bool:
    top = module.split(".")[0]
    return top in {p.name for p in _course_packages()} | {"helpers", "course", "papers"}


def test_no_private_name_crosses_modules():
    crossings = []
    for path in _course_python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and _is_course_module(node.module):
                crossings += [f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}.{a.name}"
                              for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not crossings, "private names imported across modules:\n" + "\n".join(crossings)


def test_teacher_tools_are_not_in_helpers():
    teacher = {"student.py", "grade.py", "grade_plugin.py", "course.py"}
    assert not teacher & {f.name for f in (ROOT / "helpers").glob("*.py")}
    assert (ROOT / "course" / "grade.py").is_file()
