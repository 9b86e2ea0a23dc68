"""pytest plugin of :mod:`course.grade`: record every test's grade group, outcome and failure line.

It imports nothing from the course, so the grader can load it into any pytest
run (``-p``).  With ``--grade-report PATH`` it appends one JSON object per line
to ``PATH`` as the run goes, so a run that crashes or times out still leaves
what happened before:

* ``{"event": "item", "nodeid", "test", "group", "points", "marked", "marker_error"}`` per collected test;
* ``{"event": "collect_error", "nodeid", "message"}`` per file that failed to import;
* ``{"event": "report", "nodeid", "when", "outcome", "message"}`` per setup/call/teardown;
* ``{"event": "modules", "modules": {name: file}}`` and ``{"event": "finish"}`` at the end.

A test's group and points come from its closest ``grade`` marker
(``@pytest.mark.grade("distances", points=3)`` on the test beats a file's
``pytestmark``); a test without one is its own group, named after the test
function.  ``--grade-test-timeout SECONDS`` stops a test that runs longer (a
student's endless loop) with a ``TimeoutError``.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest

MARKER_HELP = ("grade(group, points=None): score group of python -m course.grade; points is the "
               "group's total, shared equally by its tests (points=0: reported, not scored)")

_state: dict = {"out": None, "watch": ()}


def pytest_addoption(parser):
    group = parser.getgroup("dl4cv-grade", "grading (course.grade)")
    group.addoption("--grade-report", default=None, help="append the grading events to this JSON-lines file")
    group.addoption("--grade-test-timeout", type=float, default=0.0,
                    help="seconds a single test may run (0: no limit)")
    group.addoption("--grade-watch", default="", help="comma-separated packages whose module files to report")


def pytest_configure(config):
    config.addinivalue_line("markers", MARKER_HELP)
    path = config.getoption("grade_report", None)
    if path:
        _state["out"] = open(path, "a", encoding="utf-8")  # noqa: SIM115 -- closed at unconfigure
        _state["watch"] = tuple(p for p in config.getoption("grade_watch").split(",") if p)


def pytest_unconfigure(config):
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
        return crash.message
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


def pytest_collectreport(report):
    if report.failed:
        _write(event="collect_error", nodeid=report.nodeid, message=_message(report) or "collection failed")


def pytest_collection_finish(session):
    for item in session.items:
        group, points, problem = _grade_of(item)
        _write(event="item", nodeid=item.nodeid, test=item.name, group=group, points=points,
               marked=item.get_closest_marker("grade") is not None, marker_error=problem)


def pytest_runtest_logreport(report):
    _write(event="report", nodeid=report.nodeid, when=report.when, outcome=report.outcome,
           message=_message(report) if report.outcome != "passed" else "")


def _on_alarm(signum, frame):
    raise TimeoutError("the test ran out of time (endless loop?)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    seconds = item.config.getoption("grade_test_timeout", 0.0) or 0.0
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
    watch = _state["watch"]
    modules = {}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in watch and getattr(module, "__file__", None):
            modules[name] = os.path.realpath(module.__file__)
    _write(event="modules", modules=modules)
    _write(event="finish", exitstatus=int(exitstatus))
