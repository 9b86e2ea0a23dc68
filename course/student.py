"""Write the student version of the course: the same files with every solution taken out.

Usage::

    python -m course.student OUT_DIR                 # every assignment
    python -m course.student OUT_DIR A1 two_layer_net  # A1 and the assignment holding two_layer_net.py

Solutions sit between two comment lines, nbgrader's convention::

    def compute_distances_two_loops(x_train, x_test):
        x_train, x_test = checks.pair(x_train, x_test)
        dists = x_train.new_zeros(x_train.shape[0], x_test.shape[0])
        ``### BEGIN SOLUTION``
        for i in range(x_train.shape[0]):
            ...
        ``### END SOLUTION``
        return dists

(written here without the backquotes).  In the student version the region,
markers included, becomes -- at the indentation of the ``BEGIN`` line::

        # YOUR CODE HERE
        raise NotImplementedError("write compute_distances_two_loops in A1_knn/knn.py")

naming the innermost enclosing function (``Class.method`` for methods) and the
file, so a notebook stops at the first function still to write and says which.
An option after ``BEGIN SOLUTION`` on the marker line chooses another placeholder:

* ``pass`` -- a ``pass`` statement: for code whose effect is optional, so that
  what follows still runs.  Refused when the region holds the ``return`` of its
  function (the function would silently return ``None``);
* ``stub: CODE`` -- the one line ``CODE``, e.g. ``stub: best_lr, best_reg = None, None``
  where later code needs a value to flow.

Regions work in ``.py`` modules and in notebook code cells (markdown cells: the
region becomes ``YOUR ANSWER HERE``).  Notebooks lose their outputs and
execution counts.  The student version holds:

* the chosen assignment folders (``A1_knn/``...), plus any other assignment
  their modules, notebooks or tests import;
* ``helpers/`` (solution regions in it are stripped too), the students' and
  the assignments' library;
* ``tests/``: ``test_<module>.py`` for every module copied, every test that
  tests ``helpers/`` alone (imports no assignment), and every other non-test
  file of ``tests/`` (``nbval_sanitize.cfg``...).  The teacher's own tests
  (:data:`TEACHER_ONLY_TESTS`, and any test importing ``course``) stay behind;
* the packaging: ``pyproject.toml`` (with ``--nbval`` turned into ``--nbval-lax``:
  students' notebook outputs are theirs, only errors count), ``requirements.txt``,
  ``Makefile``, ``conftest.py``, ``README.md``, ``.gitignore``.

The teacher's package ``course/`` (this tool, the grader, the notebook runner)
is never copied: a student has no use for the tool that strips solutions.

Library functions return data and print nothing; :func:`main` prints.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Assignment",
    "PACKAGING_FILES",
    "Region",
    "SolutionMarkerError",
    "StudentVersion",
    "TEACHER_ONLY_TESTS",
    "answer_files",
    "course_files",
    "course_root",
    "discover_assignments",
    "find_regions",
    "imported_assignments",
    "main",
    "make_student_version",
    "module_test_file",
    "read_notebook",
    "resolve_assignments",
    "strip_notebook",
    "strip_source",
    "write_notebook",
]

#: Folders that are assignments: ``A<number>_<name>``, plus ``papers``.
ASSIGNMENT_DIR = re.compile(r"^(?P<prefix>A\d+)_(?P<suffix>\w+)$")
EXTRA_ASSIGNMENT_DIRS = ("papers",)
HELPERS = "helpers"
#: The teacher's tools (this package): never in the student version.
COURSE_TOOLS = "course"
TESTS = "tests"
#: Never copied from any folder.
SKIP_DIRS = frozenset({"__pycache__", ".ipynb_checkpoints", "checkpoints"})
#: Root files copied as they are (``pyproject.toml`` is adapted, see :func:`student_pyproject`).
PACKAGING_FILES = ("pyproject.toml", "setup.cfg", "requirements.txt", "Makefile", "conftest.py",
                   "README.md", "LICENSE", ".gitignore")
#: Tests of the teacher's side (they need the solutions, or committed notebook outputs).
TEACHER_ONLY_TESTS = frozenset({"test_student.py", "test_grade.py", "test_grade_attacks.py", "test_sandbox.py",
                                "test_notebooks.py", "test_course.py"})

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)###[ \t]*BEGIN SOLUTION(?P<option>(?:[ \t].*)?)$")
_END = re.compile(r"^[ \t]*###[ \t]*END SOLUTION[ \t]*$")
# Anything that looks like a marker; a line matching this but neither of the above is malformed.
_MARKER_LIKE = re.compile(r"^[ \t]*#+[ \t]*(BEGIN|END)[ \t]+SOLUTION")
_MAGIC = re.compile(r"^(?P<indent>[ \t]*)[%!]")
_YOUR_CODE = "# YOUR CODE HERE"
_YOUR_ANSWER = "YOUR ANSWER HERE"


class SolutionMarkerError(ValueError):
    """A solution region is malformed (unbalanced, nested, unknown option, unsafe placeholder)."""


# --------------------------------------------------------------------------- assignments


@dataclass(frozen=True)
class Assignment:
    """A folder of the course and the module stems chosen in it.

    ``folder`` is ``"A1_knn"``, ``"papers"`` or ``"helpers"`` (for helpers
    modules that hold solution regions); ``modules`` are stems like ``"knn"``.
    """

    folder: str
    modules: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Names that select the whole folder: ``A1_knn``, ``A1``, ``knn``."""
        match = ASSIGNMENT_DIR.match(self.folder)
        if match:
            return self.folder, match["prefix"], match["suffix"]
        return (self.folder,)


def course_root() -> Path:
    """The course checkout holding this package."""
    return Path(__file__).resolve().parent.parent


def _visible(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return not any(p in SKIP_DIRS or p.startswith(".") or p.endswith(".egg-info") for p in parts)


def course_files(folder: Path) -> list[Path]:
    """Files under ``folder`` except caches, checkpoints and hidden ones, sorted."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and _visible(p, folder))


def _modules(folder: Path) -> tuple[str, ...]:
    """Module stems of ``folder``; an assignment folder's ``checks.py`` (its input checks) is none of them."""
    skip = {"__init__"} if folder.name == HELPERS else {"__init__", "checks"}
    return tuple(sorted(p.stem for p in folder.glob("*.py") if p.stem not in skip))


def _assignment_sort_key(folder: str):
    match = ASSIGNMENT_DIR.match(folder)
    return (0, int(match["prefix"][1:]), folder) if match else (1, 0, folder)


def discover_assignments(root: Path | None = None, include_helpers: bool = False) -> list[Assignment]:
    """Every assignment folder of ``root`` with all its modules, in course order.

    With ``include_helpers``, ``helpers`` is appended when some of its modules
    hold solution regions (only those modules are listed).
    """
    root = Path(root or course_root())
    folders = [p.name for p in root.iterdir()
               if p.is_dir() and (ASSIGNMENT_DIR.match(p.name) or p.name in EXTRA_ASSIGNMENT_DIRS)]
    found = [Assignment(f, _modules(root / f)) for f in sorted(folders, key=_assignment_sort_key)]
    if include_helpers:
        stems = tuple(sorted(Path(rel).stem for rel in answer_files(root) if Path(rel).parts[0] == HELPERS))
        if stems:
            found.append(Assignment(HELPERS, stems))
    return found


def resolve_assignments(names: Iterable[str], root: Path | None = None,
                        include_helpers: bool = False, known: list[Assignment] | None = None) -> list[Assignment]:
    """The assignments (and modules) that ``names`` select; none selects every assignment.

    A name is a folder (``A1_knn``), its number (``A1``), its topic (``knn``),
    a module stem (``two_layer_net``: that module only) or ``folder/module``.
    Case does not matter; a trailing ``/``, ``.py`` or ``.ipynb`` is ignored.
    Raises ``ValueError`` naming what exists when a name matches nothing or
    more than one assignment.  ``known`` replaces the assignments found in ``root`` (a bundle's manifest).
    """
    if known is None:
        known = discover_assignments(root, include_helpers=include_helpers)
    names = list(names)
    if not names:
        return known
    chosen: dict[str, set[str]] = {}
    for name in names:
        assignment, modules = _resolve_one(name, known)
        chosen.setdefault(assignment.folder, set()).update(modules)
    return [Assignment(a.folder, tuple(m for m in a.modules if m in chosen[a.folder]))
            for a in known if a.folder in chosen]


def _resolve_one(name: str, known: list[Assignment]) -> tuple[Assignment, tuple[str, ...]]:
    text = name.strip().rstrip("/").removesuffix(".py").removesuffix(".ipynb").lower()
    folder_part, _, module_part = text.rpartition("/")
    if folder_part:
        candidates = [a for a in known if folder_part in (n.lower() for n in a.names)]
        matches = [(a, (m,)) for a in candidates for m in a.modules if m.lower() == module_part]
    else:
        matches = [(a, a.modules) for a in known if text in (n.lower() for n in a.names)]
        if not matches:  # not a folder name: a module name
            matches = [(a, (m,)) for a in known for m in a.modules if m.lower() == text]
    if len(matches) != 1:
        available = ", ".join(f"{a.folder} ({', '.join(a.modules) or 'no modules'})" for a in known) or "none"
        problem = "matches no assignment" if not matches else "matches more than one assignment"
        raise ValueError(f"{name!r} {problem}; give a folder (A1_knn), its number (A1), its topic (knn) "
                         f"or a module name. Available: {available}")
    return matches[0]


def module_test_file(module: str) -> str:
    """``tests/test_<module>.py``: where the tests of ``<folder>/<module>.py`` live."""
    return f"{TESTS}/test_{module}.py"


# --------------------------------------------------------------------------- regions


@dataclass(frozen=True)
class Region:
    """One solution region of a source text.

    ``start``/``end`` are the 1-based lines of the ``BEGIN``/``END`` markers;
    ``lines`` the solution lines between them; ``owner`` the qualified name of
    the innermost enclosing function or class (``""`` at module level).
    """

    start: int
    end: int
    indent: str
    option: str
    owner: str
    lines: tuple[str, ...]

    def message(self, where: str) -> str:
        """The placeholder's message: ``write knn_get_best_k in A1_knn/knn.py``."""
        what = self.owner or "the missing code"
        return f"write {what} in {where}"


def _string_lines(tree: ast.AST | None) -> set[int]:
    """Lines inside multi-line string literals (after their first line): markers there are text."""
    inside: set[int] = set()
    if tree is None:
        return inside
    for node in ast.walk(tree):
        if isinstance(node, (ast.Constant, ast.JoinedStr)) and node.end_lineno and node.end_lineno > node.lineno:
            if isinstance(node, ast.JoinedStr) or isinstance(node.value, str | bytes):
                inside.update(range(node.lineno + 1, node.end_lineno + 1))
    return inside


def _parse(source: str, notebook: bool) -> ast.Module | None:
    """``ast`` of ``source``; IPython magics (``%``, ``!`` lines) read as ``pass`` in notebooks.

    Returns ``None`` for a notebook cell that is not Python after that.
    """
    if notebook:
        source = "\n".join(_MAGIC.sub(r"\g<indent>pass #", line) if _MAGIC.match(line) else line
                           for line in source.split("\n"))
    try:
        return ast.parse(source)
    except SyntaxError:
        if notebook:
            return None
        raise


def _owner_chain(tree: ast.AST | None, line: int) -> list[ast.AST]:
    """The function/class definitions enclosing ``line``, outermost first."""
    chain: list[ast.AST] = []
    if tree is None:
        return chain
    nodes = list(ast.iter_child_nodes(tree))
    while nodes:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                    and node.lineno < line <= (node.end_lineno or node.lineno):
                chain.append(node)
                nodes = list(ast.iter_child_nodes(node))
                break
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                    and getattr(node, "lineno", 0) <= line <= (getattr(node, "end_lineno", 0) or 0):
                nodes = list(ast.iter_child_nodes(node))  # compound statements (if/for/with/try)
                break
        else:
            break
    return chain


def _returns_inside(tree: ast.AST | None, region_start: int, region_end: int, owner: ast.AST | None) -> bool:
    """Whether the region holds a ``return`` of its own function (not of a function defined inside it)."""
    if tree is None or not isinstance(owner, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    stack = list(ast.iter_child_nodes(owner))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Return) and region_start < node.lineno < region_end:
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False


def find_regions(source: str, where: str = "<source>", notebook: bool = False) -> list[Region]:
    """The solution regions of Python ``source``, in order.

    Markers inside multi-line strings (docstrings) are text, not markers.
    Raises :class:`SolutionMarkerError` (naming ``where`` and the line) for an
    ``END`` without ``BEGIN``, a nested or unclosed ``BEGIN``, a malformed
    marker, an unknown option, or a ``pass`` region holding its function's return.
    """
    try:
        tree = _parse(source, notebook)
    except SyntaxError as exc:
        raise SolutionMarkerError(f"{where}:{exc.lineno}: not valid Python ({exc.msg})") from exc
    in_string = _string_lines(tree)
    lines = source.split("\n")
    regions: list[Region] = []
    open_at: int | None = None
    indent = option = ""
    for number, line in enumerate(lines, start=1):
        if number in in_string:
            continue
        begin, end = _BEGIN.match(line), _END.match(line)
        if not begin and not end:
            if _MARKER_LIKE.match(line):
                raise SolutionMarkerError(f"{where}:{number}: malformed solution marker {line.strip()!r}; "
                                          "write '### BEGIN SOLUTION' or '### END SOLUTION'")
            continue
        if begin:
            if open_at is not None:
                raise SolutionMarkerError(f"{where}:{number}: BEGIN SOLUTION inside the region opened at "
                                          f"line {open_at}; regions cannot nest")
            open_at, indent, option = number, begin["indent"], _check_option(begin["option"], where, number)
            continue
        if open_at is None:
            raise SolutionMarkerError(f"{where}:{number}: END SOLUTION without a BEGIN SOLUTION before it")
        chain = _owner_chain(tree, open_at)
        owner_node = chain[-1] if chain else None
        if option == "pass" and _returns_inside(tree, open_at, number, owner_node):
            raise SolutionMarkerError(
                f"{where}:{open_at}: the region marked 'pass' holds the return of "
                f"{'.'.join(n.name for n in chain)}; its student version would return None. Drop the option "
                "(raise NotImplementedError) or write 'stub: return ...'")
        regions.append(Region(start=open_at, end=number, indent=indent, option=option,
                              owner=".".join(n.name for n in chain),
                              lines=tuple(lines[open_at:number - 1])))
        open_at = None
    if open_at is not None:
        raise SolutionMarkerError(f"{where}:{open_at}: BEGIN SOLUTION is never closed by END SOLUTION")
    return regions


def _check_option(raw: str, where: str, number: int) -> str:
    option = raw.strip()
    if option in ("", "pass") or (option.startswith("stub:") and option[5:].strip()):
        return option
    raise SolutionMarkerError(f"{where}:{number}: unknown option {option!r} after BEGIN SOLUTION; "
                              "use nothing (raise NotImplementedError), 'pass' or 'stub: CODE'")


def _placeholder(region: Region, where: str) -> list[str]:
    if region.option == "pass":
        body = "pass"
    elif region.option.startswith("stub:"):
        body = region.option[5:].strip()
    else:
        body = f"raise NotImplementedError({json.dumps(region.message(where))})"
    return [region.indent + _YOUR_CODE, region.indent + body]


def strip_source(source: str, where: str, notebook: bool = False) -> tuple[str, list[Region]]:
    """Replace every solution region of Python ``source`` by its placeholder.

    ``where`` names the file in the placeholders' messages (``A1_knn/knn.py``,
    ``cell 12 of A1_knn/knn.ipynb``).  Returns the new text and the regions.
    Raises :class:`SolutionMarkerError` when the markers are malformed or the
    result is not valid Python.
    """
    regions = find_regions(source, where, notebook=notebook)
    if not regions:
        return source, regions
    lines = source.split("\n")
    out: list[str] = []
    position = 0
    for region in regions:
        out.extend(lines[position:region.start - 1])
        out.extend(_placeholder(region, where))
        position = region.end
    out.extend(lines[position:])
    result = "\n".join(out)
    try:
        valid = _parse(source, notebook) is None or _parse(result, notebook) is not None
    except SyntaxError:
        valid = False
    if not valid:
        raise SolutionMarkerError(f"{where}: the student version is not valid Python; "
                                  "check the indentation of the markers")
    return result, regions


def _strip_text(source: str, where: str) -> tuple[str, int]:
    """Markdown/raw cells: each region becomes ``YOUR ANSWER HERE``; returns the text and the count."""
    out: list[str] = []
    inside = False
    count = 0
    for number, line in enumerate(source.split("\n"), start=1):
        if _BEGIN.match(line):
            if inside:
                raise SolutionMarkerError(f"{where}:{number}: BEGIN SOLUTION inside another region")
            inside, count = True, count + 1
            out.append(_YOUR_ANSWER)
        elif _END.match(line):
            if not inside:
                raise SolutionMarkerError(f"{where}:{number}: END SOLUTION without a BEGIN SOLUTION before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SolutionMarkerError(f"{where}: BEGIN SOLUTION is never closed by END SOLUTION")
    return "\n".join(out), count


def _cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def strip_notebook(nb: dict, where: str) -> tuple[dict, list[Region]]:
    """A copy of notebook ``nb`` (the ``json.load`` of an ``.ipynb``) with regions replaced and outputs cleared.

    Returns ``(notebook, regions)``; code-cell placeholders name ``cell N of <where>``
    (``N`` counts all cells from 1, as :mod:`course.run` reports failures).
    """
    nb = copy.deepcopy(nb)
    regions: list[Region] = []
    for index, cell in enumerate(nb.get("cells", []), start=1):
        label = f"cell {index} of {where}"
        if cell.get("cell_type") == "code":
            text, found = strip_source(_cell_source(cell), label, notebook=True)
            regions.extend(found)
            cell["outputs"] = []
            cell["execution_count"] = None
        else:
            text, _ = _strip_text(_cell_source(cell), label)
        cell["source"] = text.splitlines(keepends=True)
        for key in ("execution", "collapsed", "scrolled"):
            cell.get("metadata", {}).pop(key, None)
    nb.get("metadata", {}).pop("widgets", None)
    return nb, regions


def read_notebook(path: Path) -> dict:
    """A notebook file as plain JSON (no ``nbformat`` needed)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_notebook(nb: dict, path: Path) -> None:
    """Write ``nb`` the way Jupyter does (sorted keys, one-space indent)."""
    Path(path).write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- which files


def imported_assignments(path: Path) -> set[str]:
    """Top-level names imported by a ``.py`` file or a notebook's code cells (``A1_knn``, ``helpers``...)."""
    path = Path(path)
    if path.suffix == ".ipynb":
        sources = [_cell_source(c) for c in read_notebook(path).get("cells", []) if c.get("cell_type") == "code"]
    else:
        sources = [path.read_text(encoding="utf-8")]
    names: set[str] = set()
    for source in sources:
        tree = _parse(source, notebook=path.suffix == ".ipynb")
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def answer_files(root: Path | None = None) -> list[str]:
    """Repository-relative paths of the ``.py`` files (helpers and assignments) holding solution regions."""
    root = Path(root or course_root())
    folders = [HELPERS] + [a.folder for a in discover_assignments(root)]
    found = []
    for folder in folders:
        for path in course_files(root / folder):
            if path.suffix == ".py" and find_regions(path.read_text(encoding="utf-8"), str(path)):
                found.append(path.relative_to(root).as_posix())
    return found


def _with_dependencies(root: Path, folders: list[str], all_folders: set[str]) -> list[str]:
    """``folders`` plus every assignment folder they (their modules, notebooks, tests) import, transitively."""
    chosen = list(folders)
    queue = list(folders)
    while queue:
        folder = queue.pop()
        sources = [p for p in course_files(root / folder) if p.suffix in (".py", ".ipynb")]
        sources += [root / module_test_file(m) for m in _modules(root / folder)]
        for source in sources:
            if not source.is_file():
                continue
            for name in imported_assignments(source) & all_folders:
                if name not in chosen:
                    chosen.append(name)
                    queue.append(name)
    return sorted(chosen, key=_assignment_sort_key)


def _student_tests(root: Path, folders: list[str]) -> list[Path]:
    """Test files of the student version: ``test_<module>.py`` of copied modules, tests of ``helpers/``
    alone, and support files."""
    tests = root / TESTS
    modules = {m for f in folders for m in _modules(root / f)} | set(_modules(root / HELPERS))
    all_assignments = {a.folder for a in discover_assignments(root)}
    chosen = []
    for path in course_files(tests):
        rel = path.relative_to(tests)
        is_test = len(rel.parts) == 1 and path.name.startswith("test_") and path.suffix == ".py"
        if not is_test:
            chosen.append(path)  # conftest.py, nbval_sanitize.cfg, data...
            continue
        imported = imported_assignments(path)
        if path.name in TEACHER_ONLY_TESTS or COURSE_TOOLS in imported:
            continue
        needed = imported & all_assignments
        tests_helpers = HELPERS in imported and not needed
        if (path.stem.removeprefix("test_") in modules or tests_helpers) and needed <= set(folders):
            chosen.append(path)
    return chosen


def student_pyproject(text: str) -> str:
    """The student's ``pyproject.toml``: nbval runs notebooks without comparing outputs (``--nbval-lax``)."""
    return re.sub(r"--nbval(?=[\s\"'])", "--nbval-lax", text)


# --------------------------------------------------------------------------- writing


@dataclass
class StudentVersion:
    """What :func:`make_student_version` wrote."""

    out_dir: Path
    folders: list[str]
    added_dependencies: list[str]
    files: list[str] = field(default_factory=list)
    regions: dict[str, int] = field(default_factory=dict)       # file -> regions replaced
    placeholders: dict[str, list[str]] = field(default_factory=dict)  # file -> messages
    notebooks: list[str] = field(default_factory=list)
    tests: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"student version written to {self.out_dir}",
                 f"  assignments: {', '.join(self.folders)}"]
        if self.added_dependencies:
            lines.append(f"  (added because they are imported: {', '.join(self.added_dependencies)})")
        for path, count in self.regions.items():
            owners = sorted(set(self.placeholders.get(path, [])))
            lines.append(f"  {path}: {count} solution region{'s' * (count != 1)} removed"
                         + (f" ({len(owners)} functions to write)" if owners else ""))
        if self.notebooks:
            lines.append(f"  notebooks (outputs cleared): {', '.join(self.notebooks)}")
        lines.append(f"  tests: {', '.join(Path(t).name for t in self.tests if Path(t).name.startswith('test_'))}")
        lines.append(f"  {len(self.files)} files in all")
        return "\n".join(lines)


def _check_out_dir(out_dir: Path, root: Path) -> None:
    out = out_dir.resolve()
    if out == root or out in root.parents:
        raise ValueError(f"OUT_DIR {out_dir} would overwrite the course itself; choose a new folder")
    for source in [HELPERS, COURSE_TOOLS, TESTS] + [a.folder for a in discover_assignments(root)]:
        if (root / source) == out or (root / source) in out.parents:
            raise ValueError(f"OUT_DIR {out_dir} lies inside the course's {source}/; choose another folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"OUT_DIR {out_dir} exists and is not empty; remove it or choose a new folder")


def _write_file(source: Path, rel: str, out_dir: Path, result: StudentVersion) -> None:
    target = out_dir / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix == ".py":
        text, regions = strip_source(source.read_text(encoding="utf-8"), rel)
        target.write_text(text, encoding="utf-8")
    elif source.suffix == ".ipynb":
        nb, regions = strip_notebook(read_notebook(source), rel)
        write_notebook(nb, target)
        result.notebooks.append(rel)
    else:
        shutil.copy2(source, target)
        regions = []
    if regions:
        result.regions[rel] = len(regions)
        result.placeholders[rel] = [r.owner for r in regions if r.owner]
    result.files.append(rel)


def make_student_version(out_dir: Path, names: Sequence[str] = (), root: Path | None = None) -> StudentVersion:
    """Write the student version of the assignments ``names`` (none: all) into the new folder ``out_dir``.

    See the module docstring for what is copied and how solutions are replaced.
    Raises ``ValueError`` for an unknown assignment name, an ``out_dir`` that
    exists and is not empty or lies inside the course, and
    :class:`SolutionMarkerError` for malformed markers (nothing useful is left
    half-written then: the folder is removed).
    """
    root = Path(root or course_root()).resolve()
    out_dir = Path(out_dir)
    requested = [a.folder for a in resolve_assignments(names, root)]
    all_folders = {a.folder for a in discover_assignments(root)}
    folders = _with_dependencies(root, requested, all_folders)
    _check_out_dir(out_dir, root)
    existed = out_dir.exists()
    result = StudentVersion(out_dir=out_dir, folders=folders,
                            added_dependencies=[f for f in folders if f not in requested])
    try:
        for folder in folders + [HELPERS]:
            for path in course_files(root / folder):
                _write_file(path, path.relative_to(root).as_posix(), out_dir, result)
        for path in _student_tests(root, folders):
            rel = path.relative_to(root).as_posix()
            _write_file(path, rel, out_dir, result)
            result.tests.append(rel)
        for name in PACKAGING_FILES:
            path = root / name
            if path.is_file():
                target = out_dir / name
                if name == "pyproject.toml":
                    target.write_text(student_pyproject(path.read_text(encoding="utf-8")), encoding="utf-8")
                else:
                    shutil.copy2(path, target)
                result.files.append(name)
    except BaseException:
        if existed:
            for child in out_dir.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        else:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return result


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course.student",
        description="Write the student version of the course: solution regions replaced by "
                    "raise NotImplementedError(...), notebook outputs cleared.")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="new (or empty) folder to write")
    parser.add_argument("assignments", metavar="ASSIGNMENT", nargs="*",
                        help="A1, A1_knn, knn or a module name such as two_layer_net (default: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result = make_student_version(Path(args.out_dir), args.assignments)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
