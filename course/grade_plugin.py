"""pytest plugin of :mod:`course.grade`: record every test's grade group, outcome and failure line.

It imports nothing from the course at load time (only :mod:`course.sandbox`, and
only with ``--grade-sandbox``), so the grader can load it into any pytest run
(``-p course.grade_plugin``).  With ``--grade-report PATH`` it appends one JSON object per line
to ``PATH`` as the run goes, so a run that crashes or times out still leaves
what happened before:

* ``{"event": "item", "nodeid", "test", "group", "points", "marked", "marker_error", "rule"}`` per collected test;
* ``{"event": "collect_error", "nodeid", "message"}`` per file that failed to import;
* ``{"event": "report", "nodeid", "when", "outcome", "message"}`` per setup/call/teardown;
* ``{"event": "finish"}`` at the end.

* ``{"event": "isolation", "isolation", "why"}`` once, when the student's code runs in a sandbox.

A test's group and points come from its closest ``grade`` marker
(``@pytest.mark.grade("distances", points=3)`` on the test beats a file's
``pytestmark``; ``rule=True`` marks a check of the group's stated rules: when
it fails, the group scores 0); a test without one is its own group, named
after the test function.  ``--grade-test-timeout SECONDS`` stops a test that
runs longer (a student's endless loop).

``--grade-sandbox WORKSPACE`` keeps the student's code out of this process:
``tests/under_test.py`` gets a :class:`course.sandbox.Sandbox` backend, so
``load(...)`` in the tests reaches the student's modules of ``WORKSPACE``
through a sandboxed worker, and the test's time limit becomes the deadline of
every call the test makes.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest

MARKER_HELP = ("grade(group, points=None): score group of python -m course.grade; points is the "
               "group's total, shared equally by its tests (points=0: reported, not scored)")

_state: dict = {"out": None, "box": None}


def pytest_addoption(parser):
    group = parser.getgroup("dl4cv-grade", "grading (course.grade)")
    group.addoption("--grade-report", default=None, help="append the grading events to this JSON-lines file")
    group.addoption("--grade-test-timeout", type=float, default=0.0,
                    help="seconds a single test may run (0: no limit)")
    group.addoption("--grade-sandbox", default=None, metavar="WORKSPACE",
                    help="run the student's modules of WORKSPACE in a sandboxed worker (course.sandbox)")
    group.addoption("--grade-isolation", default="auto", choices=("auto", "bwrap", "process"),
                    help="the worker's isolation (auto: bwrap when it runs here)")
    group.addoption("--grade-memory-mb", type=int, default=8192, help="the worker's address-space limit")
    group.addoption("--grade-import-seconds", type=float, default=60.0,
                    help="seconds the worker may take to start and to import one student module")


def pytest_configure(config):
    config.addinivalue_line("markers", MARKER_HELP)
    path = config.getoption("grade_report", None)
    if path:
        _state["out"] = open(path, "a", encoding="utf-8")  # noqa: SIM115 -- closed at unconfigure
    workspace = config.getoption("grade_sandbox", None)
    if workspace:
        from course.sandbox import Sandbox  # noqa: PLC0415 -- only when grading

        sys.path.insert(0, str(Path(config.rootpath) / "tests"))
        import under_test  # noqa: PLC0415 -- the tests' door to the code under test

        box = Sandbox(workspace, isolation=config.getoption("grade_isolation"),
                      memory_mb=config.getoption("grade_memory_mb"),
                      import_seconds=config.getoption("grade_import_seconds"))
        under_test.set_backend(box)
        _state["box"] = box
        _write(event="isolation", isolation=box.isolation, why=box.why)


def pytest_unconfigure(config):
    box, _state["box"] = _state["box"], None
    if box is not None:
        box.stop()
    if _state["out"] is not None:
        _state["out"].close()
        _state["out"] = None


def _write(**record) -> None:
    out = _state["out"]
    if out is not None:
        out.write(json.dumps(record) + "\n")
        out.flush()


def _message(report) -> str:
    """The one line saying why a test failed or was skipped."""
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # skip: (file, line, reason)
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return crash.message.removeprefix("under_test.NotWritten: ")
    text = str(longrepr).strip().splitlines()
    errors = [line for line in text if line.startswith("E ")]
    return (errors[-1][1:].strip() if errors else (text[-1] if text else ""))[:500]


def _grade_of(item) -> tuple[str, float | None, str]:
    """``(group, points, problem)`` from the item's closest ``grade`` marker."""
    marker = item.get_closest_marker("grade")
    default = getattr(item, "originalname", None) or item.name
    if marker is None:
        return default, None, ""
    group = marker.args[0] if marker.args else marker.kwargs.get("group", default)
    points = marker.kwargs.get("points", marker.args[1] if len(marker.args) > 1 else None)
    if not isinstance(group, str) or not group.strip():
        return default, points, f"grade marker: the group must be a non-empty string, got {group!r}"
    if points is not None and (isinstance(points, bool) or not isinstance(points, int | float) or points < 0):
        return group, None, f"grade marker: points must be a number >= 0, got {points!r}"
    return group, (float(points) if points is not None else None), ""


def _is_rule(item) -> bool:
    marker = item.get_closest_marker("grade")
    return bool(marker is not None and marker.kwargs.get("rule", False))


def pytest_collectreport(report):
    if report.failed:
        _write(event="collect_error", nodeid=report.nodeid, message=_message(report) or "collection failed")


def pytest_collection_finish(session):
    for item in session.items:
        group, points, problem = _grade_of(item)
        _write(event="item", nodeid=item.nodeid, test=item.name, group=group, points=points,
               marked=item.get_closest_marker("grade") is not None, marker_error=problem, rule=_is_rule(item))


def pytest_runtest_logreport(report):
    _write(event="report", nodeid=report.nodeid, when=report.when, outcome=report.outcome,
           message=_message(report) if report.outcome != "passed" else "")


def _on_alarm(signum, frame):
    raise TimeoutError("the test ran out of time (endless loop?)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """The test's time limit is the deadline of every call it makes into the sandbox (setup and teardown too)."""
    box = _state["box"]
    seconds = item.config.getoption("grade_test_timeout", 0.0) or 0.0
    if box is not None and seconds > 0:
        box.deadline = time.monotonic() + seconds
    try:
        yield
    finally:
        if box is not None:
            box.deadline = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A backstop in this process (a test's own endless loop); the sandbox's deadline comes first."""
    seconds = item.config.getoption("grade_test_timeout", 0.0) or 0.0
    if _state["box"] is not None and seconds > 0:
        seconds += 30.0
    armed = seconds > 0 and hasattr(signal, "setitimer")
    if armed:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def pytest_sessionfinish(session, exitstatus):
    _write(event="finish", exitstatus=int(exitstatus))
