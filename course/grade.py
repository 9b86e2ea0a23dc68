"""Grade a student's work with the course's own tests; print a score table and write JSON.

Usage::

    python -m course.grade                        # grade this checkout, every assignment
    python -m course.grade STUDENT_DIR A1 A2      # grade a student's folder, A1 and A2
    python -m course.grade STUDENT_DIR --json results.json   # also write the machine-readable report
    python -m course.grade --audit A2             # teachers: does the blank version of A2 score 0?
    python -m course.grade --bundle OUT           # teachers: the grading bundle (Gradescope autograder)
    python -m course.grade --bundle-dir OUT STUDENT_DIR      # grade with that bundle

How it works (README, "For teachers", has the threat model):

1. **The bundle** (:func:`build_bundle`) holds this checkout's tests, helpers and
   teacher tools, the assignment folders with every answer file (a ``.py`` file
   holding solution regions) replaced by its blank student version, and
   ``manifest.json``: the checks and points collected here.  The maximum score
   comes from the manifest, never from the student's code.  Without
   ``--bundle-dir`` a bundle is built for the run.
2. **The workspace** is the bundle plus the student's answer files (regular
   files only: a symbolic link or anything else is refused and graded blank).
3. **pytest runs the bundle's tests in a process that never imports the
   student's code.** The tests reach the modules under test through
   ``tests/under_test.py``; the grading plugin (:mod:`course.grade_plugin`)
   routes them to a worker (:mod:`course.worker`) that imports the student's
   files from the workspace inside a sandbox (:mod:`course.sandbox`:
   bubblewrap when it runs, else a plain process with limits) and returns
   plain data only (:mod:`course.wire`).  Assertions, points and reports are
   computed in the grading process.

Points are declared next to the tests with the ``grade`` marker (registered in
``pyproject.toml``)::

    @pytest.mark.grade("distances: no loops", points=4)
    def test_...

or for a whole file ``pytestmark = pytest.mark.grade("losses", points=10)``;
the closest marker wins.  ``points`` is the group's total, shared equally by
its tests (parametrized cases count one by one); give it on one test of the
group or on all (they must agree).  ``points=0`` reports a group without
scoring it; ``rule=True`` marks a check of the rules stated in a docstring
(a failed rule check scores its group 0).  A test without a marker is its own
group worth 1 point.  A skipped test earns nothing.  Notebooks are not graded
(their outputs are the student's own); the grader runs unit tests only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from course.sandbox import DEFAULT_IMPORT_SECONDS, DEFAULT_MEMORY_MB
from course.student import (
    ASSIGNMENT_DIR,
    COURSE_TOOLS,
    EXTRA_ASSIGNMENT_DIRS,
    HELPERS,
    TEACHER_ONLY_TESTS,
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

__all__ = ["AssignmentScore", "CheckResult", "GradeReport", "GradingError", "GroupScore", "audit", "build_bundle",
           "grade", "main", "read_manifest"]

#: Root files of the grading checkout copied into the bundle (pytest configuration, requirements).
CONFIG_FILES = ("pyproject.toml", "setup.cfg", "pytest.ini", "tox.ini", "conftest.py", "requirements.txt")
PLUGIN = "course.grade_plugin"
MANIFEST = "manifest.json"
MAX_ANSWER_BYTES = 2_000_000
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
    rule: bool = False  # a check of the group's stated rules (a failure scores the group 0)

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
    def rule_broken(self) -> bool:
        """A rule check of the group failed (the rule was broken, or the function is not written)."""
        return any(c.rule and not c.passed for c in self.checks)

    @property
    def score(self) -> float:
        """Points shared by the checks that passed; rule checks earn nothing themselves, they gate the group."""
        graded = [c for c in self.checks if not c.rule]
        if not graded or self.rule_broken:
            return 0.0
        return self.points * sum(c.passed for c in graded) / len(graded)

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
    missing_files: list[str]
    seconds: float
    pytest_output: str = ""
    isolation: str = "none"  # how the student's code ran: bwrap, process (see course.sandbox)
    isolation_note: str = ""  # why the strongest isolation was not used
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
        lines = [f"Grade of {self.student_dir} (tests of {self.tests_from}; {checks} checks, {self.seconds:.1f} s)",
                 f"Student code ran in: {ISOLATION_TEXT.get(self.isolation, self.isolation)}"
                 + (f" ({self.isolation_note})" if self.isolation_note else "")]
        width = max([len(f"{g.module} · {g.name}") for a in self.assignments for g in a.groups] + [20]) + 2

        def row(label: str, score: str, points: str, checks: str, note: str = "") -> str:
            return f"  {label:<{width}}{score:>7}{points:>7}{checks:>9}{note}"

        for a in self.assignments:
            lines += ["", f"{a.folder:<{width + 2}}{'score':>7}{'max':>7}{'checks':>9}"]
            lines += [f"  ! {problem}" for problem in a.problems]
            for g in a.groups:
                note = (("" if g.passed == g.total else "  ✗") + ("" if g.points else "  (not scored)")
                        + ("  (rule check failed: group scores 0)" if g.rule_broken and g.passed else ""))
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
            "seconds": round(self.seconds, 2), "missing_files": self.missing_files, "isolation": self.isolation,
            "isolation_note": self.isolation_note,
            "assignments": assignments, "tests": tests,
        }


ISOLATION_TEXT = {
    "bwrap": "a bubblewrap sandbox (read-only workspace, no network, own process namespace, limits)",
    "process": "a separate process with limits only (no bubblewrap: it could read and write this user's files)",
    "none": "no worker (nothing was graded)",
}


def _num(value: float) -> str:
    return f"{value:g}"


def _short(outcome: str, message: str, limit: int = 200) -> str:
    text = " ".join(message.split()) or outcome
    if outcome in ("skipped", "not run", "error") and not text.startswith(outcome):
        text = f"{outcome}: {text}"
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --------------------------------------------------------------------------- the bundle


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _graded_files(root: Path) -> dict[str, list[tuple[str, str]]]:
    """assignment folder -> [(module, test file)] for every module of ``root`` that has tests."""
    return {a.folder: [(m, module_test_file(m)) for m in a.modules if (root / module_test_file(m)).is_file()]
            for a in discover_assignments(root, include_helpers=True)}


def build_bundle(out: Path | str, root: Path | None = None, names: Sequence[str] = ()) -> Path:
    """Write the grading bundle to ``out``: everything grading needs and no solution.

    The bundle holds this checkout's tests, helpers, teacher tools (``course/``)
    and pytest configuration, the assignment folders with every answer file
    replaced by its blank student version, and ``manifest.json``: the checks and
    points collected here (the maximum a student can score, fixed now), the
    answer files a student hands in, and the versions it was built with.  A
    test file that does not collect without solutions is refused.  Also
    written: ``run_autograder`` and ``setup.sh`` for Gradescope.  ``names`` limits the checks to
    some assignments (as :func:`grade` reads them; default: all).
    """
    root = Path(root or course_root()).resolve()
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise GradingError(f"bundle folder {out} is not empty: give a new folder")
    answers = answer_files(root)
    for name in CONFIG_FILES:
        if (root / name).is_file():
            _copy(root / name, out / name)
    tools = Path(__file__).resolve().parent  # this grader's own tools, whatever course it grades
    for path in sorted(tools.glob("*.py")):
        _copy(path, out / COURSE_TOOLS / path.name)
    for folder in [HELPERS, TESTS] + [a.folder for a in discover_assignments(root)]:
        for path in course_files(root / folder):
            rel = path.relative_to(root).as_posix()
            if path.suffix == ".ipynb" or (folder == TESTS and path.name in TEACHER_ONLY_TESTS):
                continue
            if rel in answers:
                blank, _ = strip_source(path.read_text(encoding="utf-8"), rel)
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                (out / rel).write_text(blank, encoding="utf-8")
            else:
                _copy(path, out / rel)
    graded = _graded_files(out)
    if names:
        chosen = {a.folder: set(a.modules) for a in resolve_assignments(names, out, include_helpers=True)}
        graded = {folder: [(m, t) for m, t in pairs if m in chosen[folder]]
                  for folder, pairs in graded.items() if folder in chosen}
    test_files = [t for pairs in graded.values() for _, t in pairs]
    if not test_files:
        raise GradingError(f"no tests to bundle: {root} has no tests/test_<module>.py for its modules")
    with tempfile.TemporaryDirectory(prefix="dl4cv-bundle-") as tmp:
        report = Path(tmp) / "collect.jsonl"
        code, output = _pytest(out, str(out), test_files, report, ["--collect-only"], DEFAULT_TIMEOUT)
        events = _read_events(report)
    errors = [f"{e['nodeid']}: {e['message']}" for e in events if e["event"] == "collect_error"]
    if errors or not any(e["event"] == "finish" for e in events):
        raise GradingError("the tests do not collect without solutions (a test file must not call student code "
                           "when it is imported): " + ("; ".join(errors) or _tail(output)))
    items = [{k: e.get(k) for k in ("nodeid", "group", "points", "marked", "rule", "marker_error")}
             for e in events if e["event"] == "item"]
    manifest = {"format": 1, "answer_files": answers, "items": items,
                "assignments": [{"folder": folder, "modules": [m for m, _ in pairs],
                                 "all_modules": list(next(a.modules for a in discover_assignments(
                                     root, include_helpers=True) if a.folder == folder)),
                                 "test_files": [t for _, t in pairs]} for folder, pairs in graded.items()],
                "versions": _versions()}
    _check_points(items)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    _write_gradescope(out)
    return out


def _versions() -> dict[str, str]:
    import platform  # noqa: PLC0415

    import torch  # noqa: PLC0415

    return {"python": platform.python_version(), "torch": torch.__version__}


def _check_points(items: list[dict]) -> None:
    """Refuse marker errors and groups whose tests declare different points."""
    declared: dict[tuple[str, str], dict[float, str]] = {}
    for item in items:
        if item.get("marker_error"):
            raise GradingError(f"{item['nodeid']}: {item['marker_error']}")
        if item["points"] is not None:
            key = (item["nodeid"].split("::")[0], item["group"])
            declared.setdefault(key, {}).setdefault(item["points"], item["nodeid"])
    for (test_file, group), values in declared.items():
        if len(values) > 1:
            detail = "; ".join(f"points={_num(p)} on {nodeid}" for p, nodeid in values.items())
            raise GradingError(f"{test_file}: group {group!r} declares different points ({detail})")


RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope calls this with the submission in /autograder/submission and expects
# /autograder/results/results.json.  The bundle lives in /autograder/source (setup.sh installed it).
set -uo pipefail
cd /autograder/source
mkdir -p /autograder/results
python3 -m course.grade --bundle-dir /autograder/source /autograder/submission \\
    --json /autograder/results/results.json
"""

SETUP_SH = """#!/usr/bin/env bash
# Gradescope image setup: Python, the course's requirements, bubblewrap for the sandbox.
set -euo pipefail
apt-get update && apt-get install -y python3 python3-pip bubblewrap
python3 -m pip install -r /autograder/source/requirements.txt
"""


def _write_gradescope(out: Path) -> None:
    for name, text in (("run_autograder", RUN_AUTOGRADER), ("setup.sh", SETUP_SH)):
        (out / name).write_text(text, encoding="utf-8")
        (out / name).chmod(0o755)


def read_manifest(bundle: Path) -> dict:
    path = Path(bundle) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise GradingError(f"{bundle} is not a grading bundle ({MANIFEST}: {exc}); make one with "
                           "python -m course.grade --bundle OUT") from None
    if manifest.get("format") != 1:
        raise GradingError(f"{path}: unknown bundle format {manifest.get('format')!r}")
    return manifest


# --------------------------------------------------------------------------- the student's files


def _refusal(student_dir: Path, rel: str) -> str | None:
    """Why the student's ``rel`` cannot be graded (``None``: a regular file, fine)."""
    path = student_dir
    for part in Path(rel).parts:
        path = path / part
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return "missing"
        except OSError as exc:
            return f"unreadable ({exc.strerror})"
        if stat.S_ISLNK(info.st_mode):
            return f"refused: {path.relative_to(student_dir)} is a symbolic link; hand in the file itself"
    if not stat.S_ISREG(info.st_mode):
        return "refused: not a regular file"
    if info.st_size > MAX_ANSWER_BYTES:
        return f"refused: {info.st_size} bytes, more than {MAX_ANSWER_BYTES}"
    return None


def _build_workspace(bundle: Path, student_dir: Path, answers: list[str], workspace: Path) -> dict[str, str]:
    """The bundle plus the student's answer files, for the worker; returns ``{answer file: problem}``."""
    problems = {}
    for path in course_files(bundle):
        rel = path.relative_to(bundle).as_posix()
        if rel != MANIFEST:
            _copy(path, workspace / rel)
    for rel in answers:
        why = _refusal(student_dir, rel)
        if why is None:
            data = (student_dir / rel).read_bytes()
            (workspace / rel).write_bytes(data)
        else:
            problems[rel] = why
    return problems


def _pytest(cwd: Path, python_path: str, test_files: list[str], report: Path, extra: list[str],
            timeout: float) -> tuple[int | None, str]:
    """Run pytest on ``test_files`` in ``cwd``; returns (exit code or None on timeout, output)."""
    cmd = [sys.executable, "-m", "pytest", "-p", PLUGIN, "-p", "no:cacheprovider", "-o", "addopts=",
           "-q", "--tb=no", "--continue-on-collection-errors", "--rootdir", str(cwd), "--grade-report", str(report),
           *extra, *test_files]
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


def _selection(manifest: dict, names: Sequence[str]) -> list[tuple[Assignment, list[tuple[str, str]]]]:
    known = [Assignment(a["folder"], tuple(a.get("all_modules") or a["modules"])) for a in manifest["assignments"]]
    chosen = resolve_assignments(names, known=known)
    tests = {a["folder"]: dict(zip(a["modules"], a["test_files"], strict=True)) for a in manifest["assignments"]}
    return [(a, [(m, tests[a.folder][m]) for m in a.modules if m in tests[a.folder]]) for a in chosen]


def grade(student_dir: Path | str = ".", names: Sequence[str] = (), root: Path | None = None, *,
          bundle: Path | str | None = None, timeout: float = DEFAULT_TIMEOUT,
          test_timeout: float = DEFAULT_TEST_TIMEOUT, plugins: Sequence[str] = (), keep_workspace: bool = False,
          isolation: str = "auto", memory_mb: int = DEFAULT_MEMORY_MB,
          import_seconds: float = DEFAULT_IMPORT_SECONDS) -> GradeReport:
    """Grade ``student_dir``'s answer files on the assignments ``names`` (none: all) with the bundle's tests.

    Args:
        student_dir: the student's copy of the course (at least its answer files, same layout).
        names: assignments or modules as :func:`course.student.resolve_assignments` reads them.
        root: the checkout to build a bundle from when ``bundle`` is not given (default: this one).
        bundle: a bundle made by :func:`build_bundle` (the grading environment then holds no solution).
        timeout: seconds for the whole pytest run; tests that had not run by then score 0.
        test_timeout: seconds for one test, the student's calls included.
        plugins: pytest plugins to load (third-party plugins are not loaded otherwise).
        keep_workspace: leave the workspace on disk (``report.workspace``).
        isolation: the worker's sandbox: ``auto`` (bubblewrap when it runs here), ``bwrap`` or ``process``.
        memory_mb: the worker's address-space limit.
        import_seconds: seconds the worker may take to start, and to import one of the student's modules.

    Raises:
        ValueError: unknown assignment name or ``student_dir`` not a folder.
        GradingError: no bundle could be built or read, or nothing to grade.
    """
    start = time.perf_counter()
    student_dir = Path(student_dir).resolve()
    if not student_dir.is_dir():
        raise ValueError(f"STUDENT_DIR {student_dir} is not a folder")
    tests_from = Path(bundle).resolve() if bundle else Path(root or course_root()).resolve()
    scratch = Path(tempfile.mkdtemp(prefix="dl4cv-grade-"))
    workspace = scratch / "workspace"
    try:
        bundle = Path(bundle).resolve() if bundle else build_bundle(scratch / "bundle", root, names)
        manifest = read_manifest(bundle)
        selection = _selection(manifest, names)
        test_files = [t for _, pairs in selection for _, t in pairs]
        if not test_files:
            raise GradingError("no tests to run for " + (", ".join(names) or "any assignment"))
        problems = _build_workspace(bundle, student_dir, manifest["answer_files"], workspace)
        report_path = scratch / "grade-events.jsonl"
        extra = ["--grade-test-timeout", str(test_timeout), "--grade-sandbox", str(workspace),
                 "--grade-isolation", isolation, "--grade-memory-mb", str(memory_mb),
                 "--grade-import-seconds", str(import_seconds)]
        extra += [a for p in plugins for a in ("-p", p)]
        code, output = _pytest(bundle, str(bundle), test_files, report_path, extra, timeout)
        events = _read_events(report_path)
    finally:
        if not keep_workspace:
            shutil.rmtree(scratch, ignore_errors=True)
    finished = any(e["event"] == "finish" for e in events)
    stop_reason = "" if finished else (
        f"pytest ran out of time after {timeout:g} s" if code is None else
        f"pytest stopped early (exit code {code}): {_tail(output)}")
    isolation_event = next((e for e in events if e["event"] == "isolation"), {})
    collect_errors = {e["nodeid"]: e["message"] for e in events if e["event"] == "collect_error"}
    phases: dict[str, dict[str, dict]] = {}
    for e in events:
        if e["event"] == "report":
            phases.setdefault(e["nodeid"], {})[e["when"]] = e
    graded = {a.folder for a, _ in selection}
    problems = {rel: why for rel, why in problems.items() if rel.split("/")[0] in graded}
    report = GradeReport(student_dir=student_dir, tests_from=tests_from, assignments=[],
                         missing_files=[r for r, w in problems.items() if w == "missing"], seconds=0.0,
                         pytest_output=output, isolation=isolation_event.get("isolation", "none"),
                         isolation_note=isolation_event.get("why", ""))
    for a, pairs in selection:
        report.assignments.append(_score_assignment(a, pairs, manifest["items"], phases, collect_errors,
                                                    stop_reason, problems))
    if keep_workspace:
        report.workspace = scratch
    report.seconds = time.perf_counter() - start
    return report


def _tail(output: str, lines: int = 5) -> str:
    return " | ".join(line.strip() for line in output.strip().splitlines()[-lines:])


def _score_assignment(assignment: Assignment, pairs: list[tuple[str, str]], items: list[dict],
                      phases: dict, collect_errors: dict[str, str], stop_reason: str,
                      problems: dict[str, str]) -> AssignmentScore:
    result = AssignmentScore(folder=assignment.folder)
    for rel, why in problems.items():
        if rel.startswith(assignment.folder + "/"):
            result.problems.append(f"{rel} is {why}: graded as the blank student version" if why == "missing"
                                   else f"{rel} {why}: graded as the blank student version")
    for module in assignment.modules:
        if module not in {m for m, _ in pairs}:
            result.problems.append(f"{assignment.folder}/{module}.py has no {module_test_file(module)}: not graded")
    for module, test_file in pairs:
        file_items = [i for i in items if i["nodeid"].startswith(test_file + "::")]
        if test_file in collect_errors:
            result.problems.append(f"{test_file} could not be collected: {_short('error', collect_errors[test_file])}")
        groups: dict[str, GroupScore] = {}
        for item in file_items:
            group = groups.setdefault(item["group"], GroupScore(module, test_file, item["group"], 1.0,
                                                                marked=bool(item.get("marked"))))
            if item["points"] is not None:
                group.points = item["points"]
            outcome, message = _outcome(phases.get(item["nodeid"], {}))
            if outcome == "not run":
                message = collect_errors.get(test_file) or stop_reason or "the test did not run"
                outcome = "error" if test_file in collect_errors else outcome
            group.checks.append(CheckResult(item["nodeid"], outcome, message, rule=bool(item.get("rule"))))
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


def _max_points(items: list[dict]) -> float:
    groups = {}
    for item in items:
        key = (item["nodeid"].split("::")[0], item["group"])
        groups[key] = item["points"] if item["points"] is not None else groups.get(key, 1.0)
    return sum(groups.values())


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
    parser.add_argument("--bundle", metavar="OUT",
                        help="teachers: write the grading bundle (tests, helpers, blank modules, manifest, "
                             "Gradescope scripts; no solution) to the new folder OUT and stop")
    parser.add_argument("--bundle-dir", metavar="BUNDLE",
                        help="grade with this bundle (default: one built from this checkout for the run)")
    parser.add_argument("--isolation", choices=("auto", "bwrap", "process"), default="auto",
                        help="how the student's code runs: bubblewrap sandbox (auto: when it works here) or a "
                             "plain process with limits")
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB,
                        help="address-space limit of the process running the student's code")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    positional = list(args.args)
    if args.bundle:
        try:
            out = build_bundle(args.bundle)
        except (GradingError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        items = read_manifest(out)["items"]
        print(f"bundle written to {out}: {len(items)} checks, "
              f"{_num(_max_points(items))} points; upload it to Gradescope as the autograder "
              "(run_autograder, setup.sh) or grade with --bundle-dir")
        return 0
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
        report = grade(student_dir, positional, bundle=args.bundle_dir, timeout=args.timeout,
                       test_timeout=args.test_timeout, plugins=args.plugin, keep_workspace=args.keep,
                       isolation=args.isolation, memory_mb=args.memory_mb)
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
