"""Grade a student's work with the course's own tests; print a score table and write JSON.

Usage::

    python -m course.grade                        # grade this checkout, every assignment
    python -m course.grade STUDENT_DIR A1 A2      # grade a student's folder, A1 and A2
    python -m course.grade STUDENT_DIR --json results.json   # also write the machine-readable report
    python -m course.grade --audit A2             # teachers: does the blank version of A2 score 0?

What runs: ``tests/test_<module>.py`` for every module of the chosen
assignments (``A2_linear/two_layer_net.py`` -> ``tests/test_two_layer_net.py``),
taken from the checkout this grader belongs to -- never from the student.
What is graded: the student's *answer files*, the ``.py`` files that hold
solution regions in this checkout (``A1_knn/knn.py``...).  The grader builds a
throw-away workspace from this checkout's tests, helpers, ``conftest.py`` and
``pyproject.toml``, puts the student's answer files in it (a missing one is
replaced by its blank student version and reported), and runs pytest there
with the workspace first on ``PYTHONPATH`` so the student's modules shadow any
installed copy of the course.  Afterwards it checks where every course module
was imported from and refuses to report a grade if one came from elsewhere.

Points are declared next to the tests with the ``grade`` marker (registered in
``pyproject.toml``)::

    @pytest.mark.grade("distances: no loops", points=4)
    def test_...

or for a whole file ``pytestmark = pytest.mark.grade("losses", points=10)``;
the closest marker wins.  ``points`` is the group's total, shared equally by
its tests (parametrized cases count one by one); give it on one test of the
group or on all (they must agree).  ``points=0`` reports a group without
scoring it.  A test without a marker is its own group worth 1 point.  A
skipped test earns nothing.  Notebooks are not graded (their outputs are the
student's own); the grader runs unit tests only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from course.student import (
    ASSIGNMENT_DIR,
    EXTRA_ASSIGNMENT_DIRS,
    HELPERS,
    TESTS,
    Assignment,
    answer_files,
    course_files,
    course_root,
    discover_assignments,
    make_student_version,
    module_test_file,
    resolve_assignments,
    strip_source,
)

__all__ = ["AssignmentScore", "CheckResult", "GradeReport", "GradingError", "GroupScore", "audit", "grade", "main"]

#: Root files of the grading checkout copied into the workspace (pytest configuration).
CONFIG_FILES = ("pyproject.toml", "setup.cfg", "pytest.ini", "tox.ini", "conftest.py")
PLUGIN_NAME = "_dl4cv_grade_plugin"
DEFAULT_TIMEOUT = 3600.0
DEFAULT_TEST_TIMEOUT = 300.0


class GradingError(RuntimeError):
    """Grading could not run, or its result could not be trusted."""


# --------------------------------------------------------------------------- results


@dataclass
class CheckResult:
    """One test (one parametrized case) and how it ended."""

    nodeid: str
    outcome: str  # passed, failed, error, skipped, not run
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    @property
    def name(self) -> str:
        """The test's name without its file: ``test_vote[3]``."""
        return self.nodeid.split("::", 1)[-1]


@dataclass
class GroupScore:
    """A score group of one test file: its points and its checks."""

    module: str
    test_file: str
    name: str
    points: float
    checks: list[CheckResult] = field(default_factory=list)
    marked: bool = True  # False: no test of the group carries a grade marker (the default group)

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.checks)

    @property
    def total(self) -> int:
        return len(self.checks)

    @property
    def score(self) -> float:
        return self.points * self.passed / self.total if self.total else 0.0

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]


@dataclass
class AssignmentScore:
    """The groups of one assignment and what went wrong outside them (missing files, tests)."""

    folder: str
    groups: list[GroupScore] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(g.score for g in self.groups)

    @property
    def max_score(self) -> float:
        return sum(g.points for g in self.groups)


@dataclass
class GradeReport:
    """Everything :func:`grade` found; :meth:`table` and :meth:`to_json` present it."""

    student_dir: Path
    tests_from: Path
    assignments: list[AssignmentScore]
    modules: dict[str, str]
    missing_files: list[str]
    seconds: float
    pytest_output: str = ""
    workspace: Path | None = None  # kept on disk when asked (``keep_workspace``)

    @property
    def score(self) -> float:
        return sum(a.score for a in self.assignments)

    @property
    def max_score(self) -> float:
        return sum(a.max_score for a in self.assignments)

    @property
    def percent(self) -> float:
        return 100.0 * self.score / self.max_score if self.max_score else 0.0

    def group(self, name: str, module: str | None = None) -> GroupScore:
        """The group called ``name`` (in ``module``, when several modules use the name)."""
        found = [g for a in self.assignments for g in a.groups
                 if g.name == name and (module is None or g.module == module)]
        if len(found) != 1:
            raise KeyError(f"{len(found)} groups called {name!r}")
        return found[0]

    def table(self, verbose: bool = False, max_failures: int = 3) -> str:
        """The score table: per assignment, per group, with the failing checks named."""
        checks = sum(g.total for a in self.assignments for g in a.groups)
        lines = [f"Grade of {self.student_dir} (tests of {self.tests_from}; {checks} checks, {self.seconds:.1f} s)"]
        width = max([len(f"{g.module} · {g.name}") for a in self.assignments for g in a.groups] + [20]) + 2

        def row(label: str, score: str, points: str, checks: str, note: str = "") -> str:
            return f"  {label:<{width}}{score:>7}{points:>7}{checks:>9}{note}"

        for a in self.assignments:
            lines += ["", f"{a.folder:<{width + 2}}{'score':>7}{'max':>7}{'checks':>9}"]
            lines += [f"  ! {problem}" for problem in a.problems]
            for g in a.groups:
                note = ("" if g.passed == g.total else "  ✗") + ("" if g.points else "  (not scored)")
                lines.append(row(f"{g.module} · {g.name}", f"{g.score:.2f}" if g.points else "-",
                                 _num(g.points), f"{g.passed}/{g.total}", note))
                shown = g.failed if verbose else g.failed[:max_failures]
                lines += [f"      ✗ {c.name}: {_short(c.outcome, c.message)}" for c in shown]
                if len(g.failed) > len(shown):
                    lines.append(f"      … and {len(g.failed) - len(shown)} more failing checks (--verbose shows all)")
            percent = 100.0 * a.score / a.max_score if a.max_score else 0.0
            lines.append(row("total", f"{a.score:.2f}", _num(a.max_score), f"{percent:.1f}%"))
        lines += ["", f"{'TOTAL':<{width + 2}}{self.score:>7.2f}{_num(self.max_score):>7}{self.percent:>8.1f}%"]
        return "\n".join(lines)

    def to_json(self) -> dict:
        """A JSON-ready dict; its ``score``/``max_score``/``tests`` follow Gradescope's ``results.json``."""
        assignments, tests = [], []
        for a in self.assignments:
            groups = []
            for g in a.groups:
                groups.append({
                    "module": g.module, "test_file": g.test_file, "group": g.name,
                    "score": round(g.score, 4), "max_score": g.points, "passed": g.passed, "total": g.total,
                    "checks": [{"test": c.nodeid, "outcome": c.outcome, "message": c.message} for c in g.checks],
                })
                failing = "\n".join(f"✗ {c.name}: {_short(c.outcome, c.message)}" for c in g.failed)
                tests.append({"name": f"{a.folder} · {g.module} · {g.name}", "score": round(g.score, 4),
                              "max_score": g.points,
                              "output": f"{g.passed}/{g.total} checks passed" + (f"\n{failing}" if failing else "")})
            assignments.append({"assignment": a.folder, "score": round(a.score, 4), "max_score": a.max_score,
                                "problems": a.problems, "groups": groups})
        return {
            "score": round(self.score, 4), "max_score": self.max_score, "percent": round(self.percent, 2),
            "student_dir": str(self.student_dir), "tests_from": str(self.tests_from),
            "seconds": round(self.seconds, 2), "missing_files": self.missing_files, "modules": self.modules,
            "assignments": assignments, "tests": tests,
        }


def _num(value: float) -> str:
    return f"{value:g}"


def _short(outcome: str, message: str, limit: int = 200) -> str:
    text = " ".join(message.split()) or outcome
    if outcome in ("skipped", "not run", "error") and not text.startswith(outcome):
        text = f"{outcome}: {text}"
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --------------------------------------------------------------------------- workspace


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _build_workspace(root: Path, student_dir: Path, workspace: Path) -> list[str]:
    """This checkout's tests and helpers plus the student's answer files; returns the missing answer files."""
    for name in CONFIG_FILES:
        if (root / name).is_file():
            _copy(root / name, workspace / name)
    folders = [HELPERS, TESTS] + [a.folder for a in discover_assignments(root)]
    for folder in folders:
        for path in course_files(root / folder):
            if path.suffix != ".ipynb":
                _copy(path, workspace / path.relative_to(root))
    missing = []
    for rel in answer_files(root):
        theirs = student_dir / rel
        if theirs.is_file():
            _copy(theirs, workspace / rel)
        else:
            missing.append(rel)
            blank, _ = strip_source((root / rel).read_text(encoding="utf-8"), rel)
            (workspace / rel).write_text(blank, encoding="utf-8")
    _copy(Path(__file__).with_name("grade_plugin.py"), workspace / f"{PLUGIN_NAME}.py")
    return missing


def _pytest(cwd: Path, python_path: str, test_files: list[str], report: Path, watch: list[str],
            extra: list[str], timeout: float) -> tuple[int | None, str]:
    """Run pytest on ``test_files`` in ``cwd``; returns (exit code or None on timeout, output)."""
    cmd = [sys.executable, "-m", "pytest", "-p", PLUGIN_NAME, "-p", "no:cacheprovider", "-o", "addopts=",
           "-q", "--tb=no", "--continue-on-collection-errors", "--rootdir", str(cwd), "--grade-report", str(report),
           "--grade-watch", ",".join(watch), *extra, *test_files]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env.update(PYTHONPATH=python_path, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        return proc.returncode, output
    except subprocess.TimeoutExpired:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - not POSIX
            proc.kill()
        output, _ = proc.communicate()
        return None, output


def _read_events(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a crash
            break
    return events


# --------------------------------------------------------------------------- grading


def _outcome(phases: dict[str, dict]) -> tuple[str, str]:
    for when in ("setup", "call", "teardown"):
        phase = phases.get(when)
        if phase and phase["outcome"] == "failed":
            return ("failed" if when == "call" else "error"), phase["message"]
    for phase in phases.values():
        if phase["outcome"] == "skipped":
            return "skipped", phase["message"]
    if phases.get("call", {}).get("outcome") == "passed":
        return "passed", ""
    return "not run", ""


def _test_files(root: Path, selection: list[Assignment]) -> dict[str, list[tuple[str, str]]]:
    """assignment folder -> [(module, test file)] for the modules that have tests."""
    return {a.folder: [(m, module_test_file(m)) for m in a.modules if (root / module_test_file(m)).is_file()]
            for a in selection}


def _collect_key(root: Path, test_files: list[str], watch: list[str], timeout: float) -> list[dict]:
    """The items of ``test_files`` as collected in the grading checkout itself (when the student's run lost some)."""
    with tempfile.TemporaryDirectory(prefix="dl4cv-grade-key-") as tmp:
        shutil.copy2(Path(__file__).with_name("grade_plugin.py"), Path(tmp) / f"{PLUGIN_NAME}.py")
        report = Path(tmp) / "key.jsonl"
        _pytest(root, f"{root}{os.pathsep}{tmp}", test_files, report, watch, ["--collect-only"], timeout)
        return [e for e in _read_events(report) if e["event"] == "item"]


def grade(student_dir: Path | str = ".", names: Sequence[str] = (), root: Path | None = None, *,
          timeout: float = DEFAULT_TIMEOUT, test_timeout: float = DEFAULT_TEST_TIMEOUT,
          plugins: Sequence[str] = (), keep_workspace: bool = False) -> GradeReport:
    """Run this checkout's tests of the assignments ``names`` (none: all) on ``student_dir``'s answer files.

    Args:
        student_dir: the student's copy of the course (at least its answer files, same layout).
        names: assignments or modules as :func:`course.student.resolve_assignments` reads them.
        root: the grading checkout (tests, helpers, configuration); default: this one.
        timeout: seconds for the whole pytest run; tests that had not run by then score 0.
        test_timeout: seconds for one test.
        plugins: pytest plugins to load (third-party plugins are not loaded otherwise).
        keep_workspace: leave the workspace on disk (``report.workspace``).

    Raises:
        ValueError: unknown assignment name or ``student_dir`` not a folder.
        GradingError: nothing to grade, inconsistent ``grade`` markers, or a course
            module that was not imported from the workspace.
    """
    start = time.perf_counter()
    root = Path(root or course_root()).resolve()
    student_dir = Path(student_dir).resolve()
    if not student_dir.is_dir():
        raise ValueError(f"STUDENT_DIR {student_dir} is not a folder")
    selection = resolve_assignments(names, root, include_helpers=True)
    per_assignment = _test_files(root, selection)
    test_files = [t for pairs in per_assignment.values() for _, t in pairs]
    if not test_files:
        expected = ", ".join(module_test_file(m) for a in selection for m in a.modules) or "no module"
        raise GradingError(f"no tests to run: none of {expected} exists")
    watch = sorted({HELPERS} | {a.folder for a in discover_assignments(root)})
    workspace = Path(tempfile.mkdtemp(prefix="dl4cv-grade-"))
    try:
        missing = _build_workspace(root, student_dir, workspace)
        report_path = workspace / "grade-events.jsonl"
        extra = ["--grade-test-timeout", str(test_timeout)] + [a for p in plugins for a in ("-p", p)]
        code, output = _pytest(workspace, str(workspace), test_files, report_path, watch, extra, timeout)
        events = _read_events(report_path)
        modules = _check_modules(events, workspace)
    finally:
        if not keep_workspace:
            shutil.rmtree(workspace, ignore_errors=True)
    finished = any(e["event"] == "finish" for e in events)
    stop_reason = "" if finished else (
        f"pytest ran out of time after {timeout:g} s" if code is None else
        f"pytest stopped early (exit code {code}): {_tail(output)}")
    items = [e for e in events if e["event"] == "item"]
    collect_errors = {e["nodeid"]: e["message"] for e in events if e["event"] == "collect_error"}
    lost = [t for t in test_files if not any(i["nodeid"].startswith(t + "::") for i in items)]
    if lost:
        items += _collect_key(root, lost, watch, timeout)
    phases: dict[str, dict[str, dict]] = {}
    for e in events:
        if e["event"] == "report":
            phases.setdefault(e["nodeid"], {})[e["when"]] = e
    graded = {a.folder for a in selection} | {HELPERS}
    missing = [rel for rel in missing if rel.split("/")[0] in graded]
    report = GradeReport(student_dir=student_dir, tests_from=root, assignments=[], modules=modules,
                         missing_files=missing, seconds=0.0, pytest_output=output)
    for a in selection:
        report.assignments.append(_score_assignment(a, per_assignment[a.folder], items, phases, collect_errors,
                                                    stop_reason, missing))
    if keep_workspace:
        report.workspace = workspace
    report.seconds = time.perf_counter() - start
    return report


def _tail(output: str, lines: int = 5) -> str:
    return " | ".join(line.strip() for line in output.strip().splitlines()[-lines:])


def _check_modules(events: list[dict], workspace: Path) -> dict[str, str]:
    """Course modules the run imported, relative to the workspace; raise if one came from elsewhere."""
    real = os.path.realpath(workspace)
    modules = {}
    for event in events:
        if event["event"] != "modules":
            continue
        for name, path in sorted(event["modules"].items()):
            if os.path.commonpath([real, path]) != real:
                raise GradingError(f"module {name} was imported from {path}, not from the student's copy: "
                                   "the grade would not be the student's. Is PYTHONPATH or a .pth file "
                                   "forcing another copy of the course?")
            modules[name] = Path(os.path.relpath(path, real)).as_posix()
    return modules


def _score_assignment(assignment: Assignment, pairs: list[tuple[str, str]], items: list[dict],
                      phases: dict, collect_errors: dict[str, str], stop_reason: str,
                      missing: list[str]) -> AssignmentScore:
    result = AssignmentScore(folder=assignment.folder)
    for rel in missing:
        if rel.startswith(assignment.folder + "/"):
            result.problems.append(f"{rel} is missing: graded as the blank student version")
    for module in assignment.modules:
        if module not in {m for m, _ in pairs}:
            result.problems.append(f"{assignment.folder}/{module}.py has no {module_test_file(module)}: not graded")
    for module, test_file in pairs:
        file_items = [i for i in items if i["nodeid"].startswith(test_file + "::")]
        if test_file in collect_errors:
            result.problems.append(f"{test_file} could not be collected: {_short('error', collect_errors[test_file])}")
        groups: dict[str, GroupScore] = {}
        declared: dict[str, dict[float, list[str]]] = {}
        for item in file_items:
            if item.get("marker_error"):
                raise GradingError(f"{item['nodeid']}: {item['marker_error']}")
            group = groups.setdefault(item["group"], GroupScore(module, test_file, item["group"], 1.0,
                                                                marked=bool(item.get("marked"))))
            if item["points"] is not None:
                declared.setdefault(item["group"], {}).setdefault(item["points"], []).append(item["nodeid"])
            outcome, message = _outcome(phases.get(item["nodeid"], {}))
            if outcome == "not run":
                message = collect_errors.get(test_file) or stop_reason or "the test did not run"
                outcome = "error" if test_file in collect_errors else outcome
            group.checks.append(CheckResult(item["nodeid"], outcome, message))
        for name, values in declared.items():
            if len(values) > 1:
                detail = "; ".join(f"points={_num(p)} on {ids[0]}" for p, ids in values.items())
                raise GradingError(f"{test_file}: group {name!r} declares different points ({detail})")
            groups[name].points = next(iter(values))
        result.groups.extend(groups.values())
    return result


def audit(names: Sequence[str] = (), root: Path | None = None, **options) -> list[str]:
    """Check the ``grade`` markers: grade the blank student version and list what looks wrong.

    Returns one line per group that earns points although no solution is
    written (a test of given code: mark it ``points=0``, or it needs a solution
    function it does not call yet) and per test without a marker.  An empty
    list means a blank version scores 0.  ``options`` go to :func:`grade`.
    """
    root = Path(root or course_root()).resolve()
    with tempfile.TemporaryDirectory(prefix="dl4cv-audit-") as tmp:
        blank = Path(tmp) / "blank"
        make_student_version(blank, names, root=root)
        report = grade(blank, names, root=root, **options)
    issues = []
    for a in report.assignments:
        issues += [f"{a.folder}: {p}" for p in a.problems]
        for g in a.groups:
            where = f"{g.test_file} · {g.name}"
            if g.points and g.passed:
                names = [c.name for c in g.checks if c.passed]
                passing = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                issues.append(f"{where}: {_num(g.score)} of {_num(g.points)} points without any solution "
                              f"(passing: {passing})")
            if not g.marked:
                issues.append(f"{where}: no grade marker (counted as its own group worth 1 point)")
    return issues


# --------------------------------------------------------------------------- command line


def _looks_like_course(path: Path) -> bool:
    """Whether ``path`` is a (student's) checkout rather than an assignment folder."""
    if (path / HELPERS).is_dir() or (path / "pyproject.toml").is_file():
        return True
    return any(p.is_dir() and (ASSIGNMENT_DIR.match(p.name) or p.name in EXTRA_ASSIGNMENT_DIRS)
               for p in path.iterdir())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course.grade",
        description="Run the course's tests on a student's modules; print a score table.")
    parser.add_argument("args", nargs="*", metavar="[STUDENT_DIR] [ASSIGNMENT...]",
                        help="the student's folder (default: the current one), then A1, A1_knn, knn or a "
                             "module name such as two_layer_net (default: every assignment)")
    parser.add_argument("--json", metavar="PATH", help="write the JSON report here ('-': print only the JSON)")
    parser.add_argument("--verbose", "-v", action="store_true", help="name every failing check")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds for the whole run")
    parser.add_argument("--test-timeout", type=float, default=DEFAULT_TEST_TIMEOUT, help="seconds for one test")
    parser.add_argument("--plugin", action="append", default=[], metavar="NAME",
                        help="load this pytest plugin (third-party plugins are off by default)")
    parser.add_argument("--keep", action="store_true", help="keep the grading workspace for inspection")
    parser.add_argument("--audit", action="store_true",
                        help="teachers: grade the blank student version and list the grade markers to fix")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    positional = list(args.args)
    if args.audit:
        try:
            issues = audit(positional, timeout=args.timeout, test_timeout=args.test_timeout, plugins=args.plugin)
        except (ValueError, GradingError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print("\n".join(issues) if issues else "grade markers ok: the blank student version scores 0")
        return 1 if issues else 0
    student_dir = "."
    if positional and Path(positional[0]).is_dir() and _looks_like_course(Path(positional[0])):
        student_dir = positional.pop(0)
    try:
        report = grade(student_dir, positional, timeout=args.timeout, test_timeout=args.test_timeout,
                       plugins=args.plugin, keep_workspace=args.keep)
    except (ValueError, GradingError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = json.dumps(report.to_json(), indent=2, ensure_ascii=False)
    if args.json == "-":
        print(data)
        return 0
    print(report.table(verbose=args.verbose))
    if report.workspace:
        print(f"workspace kept at {report.workspace}")
    if args.json:
        Path(args.json).write_text(data + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
