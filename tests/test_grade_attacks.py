"""Hostile submissions against course.grade: each must earn nothing a blank earns not.

Every attack is appended to the blank ``A1_knn/knn.py`` (as a student would hand it in) and graded
with one A1 bundle built here.  For each: the score is the blank's (0), every group's maximum is
the teacher's, and the teacher's files (this checkout, the bundle) are unchanged afterwards.  The
attacks that need the sandbox's walls (other files, other processes, the network) are skipped
where bubblewrap cannot run, and the report then says which isolation was used.
"""

from __future__ import annotations

import hashlib
import os
import socket
import textwrap
import threading
import uuid
from pathlib import Path

import pytest

from course.grade import build_bundle, grade
from course.sandbox import isolation_available
from course.student import make_student_version

ROOT = Path(__file__).resolve().parent.parent
BWRAP = isolation_available()[0] == "bwrap"
needs_bwrap = pytest.mark.skipif(not BWRAP, reason=f"bubblewrap cannot run here: {isolation_available()[1]}")


@pytest.fixture(scope="module")
def a1(tmp_path_factory):
    """(bundle, blank knn.py text, the blank's group scores)."""
    base = tmp_path_factory.mktemp("attacks")
    bundle = build_bundle(base / "bundle", ROOT, ["A1"])
    blank = base / "blank"
    make_student_version(blank, ["A1"])
    report = grade(blank, ["A1"], bundle=bundle)
    return bundle, (blank / "A1_knn/knn.py").read_text(), _groups(report)


def _groups(report) -> dict[str, tuple[float, float]]:
    return {g.name: (g.score, g.points) for a in report.assignments for g in a.groups}


def _fingerprint(*folders: Path) -> dict[str, str]:
    found = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and ".git" not in path.parts:
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _submit(tmp_path: Path, blank: str, attack: str) -> Path:
    student = tmp_path / "student"
    (student / "A1_knn").mkdir(parents=True)
    (student / "A1_knn/knn.py").write_text(blank + "\n\n" + textwrap.dedent(attack))
    return student


def _graded_like_a_blank(a1, tmp_path, attack: str, **options):
    bundle, blank, blank_groups = a1
    teacher = _fingerprint(ROOT / "A1_knn", ROOT / "tests", bundle)
    report = grade(_submit(tmp_path, blank, attack), ["A1"], bundle=bundle, **options)
    assert _groups(report) == blank_groups, "the attack changed a score or a maximum"
    assert report.score == 0 and report.max_score == 20
    assert _fingerprint(ROOT / "A1_knn", ROOT / "tests", bundle) == teacher, "the attack changed the teacher's files"
    return report


ATTACKS = {
    # pytest's machinery, the plugin and the event file live in the grading process, not in the worker
    "no-op test bodies": """
        import _pytest.python
        _pytest.python.Function.runtest = lambda self: None
        """,
    "replace the plugin's report writer": """
        import course.grade_plugin as plugin
        plugin._write = lambda **record: None
        plugin.pytest_runtest_logreport = lambda report: None
        """,
    # the references and comparisons run in the grading process
    "replace torch.cdist and the comparisons": """
        import numpy, torch
        torch.testing.assert_close = lambda *a, **k: None
        numpy.testing.assert_array_equal = lambda *a, **k: None
        torch.cdist = lambda a, b, *x, **k: torch.zeros(a.shape[0], b.shape[0], dtype=a.dtype)
        def compute_distances_two_loops(x_train, x_test):
            return torch.cdist(x_train.flatten(1), x_test.flatten(1))
        compute_distances_one_loop = compute_distances_no_loops = compute_distances_two_loops
        """,
    # the list of checks and the maximum come from the bundle's manifest
    "alias the functions and add tests": """
        compute_distances_two_loops = compute_distances_one_loop = compute_distances_no_loops
        def test_one_param_set():
            pass
        def test_everything():
            assert True
        """,
    "forge wire messages": """
        import os
        for fd in range(3, 64):
            try:
                os.write(fd, b"\\x10" + b"\\x00" * 7 + b'{"ok": 1}' + b"\\xff" * 64)
            except OSError:
                pass
        """,
    "exhaust memory in a call": """
        def compute_distances_two_loops(x_train, x_test):
            hog = [bytearray(1 << 30) for _ in range(64)]
            return hog
        """,
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_earns_nothing(a1, tmp_path, name):
    report = _graded_like_a_blank(a1, tmp_path, ATTACKS[name], memory_mb=4096)
    assert report.isolation in ("bwrap", "process")


def test_an_endless_loop_at_import_is_cut_and_costs_only_the_file(a1, tmp_path):
    report = _graded_like_a_blank(a1, tmp_path, "while True:\n    pass\n", import_seconds=5.0)
    messages = {c.message for a in report.assignments for g in a.groups for c in g.checks if not c.passed}
    assert any("does not import" in m and "ran out of time" in m for m in messages), messages


@needs_bwrap
def test_the_teachers_solution_cannot_be_read_or_imported(a1, tmp_path):
    """From the checkout (its path given away), the editable install's record, or the working folder."""
    attack = f"""
        import glob, importlib.util, json, os, sys
        places = [{str(ROOT)!r} + "/A1_knn/knn.py", os.getcwd() + "/A1_knn/knn.py"]
        for record in glob.glob(sys.prefix + "/lib/python*/site-packages/*.dist-info/direct_url.json"):
            try:
                places.append(json.load(open(record))["url"].removeprefix("file://") + "/A1_knn/knn.py")
            except (OSError, ValueError, KeyError):
                pass
        for place in places:
            try:
                spec = importlib.util.spec_from_file_location("teacher", place)
                teacher = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(teacher)
                teacher.compute_distances_two_loops(__import__("torch").zeros(1, 1), __import__("torch").zeros(1, 1))
            except Exception:
                continue
            for name in dir(teacher):
                if not name.startswith("_"):
                    globals()[name] = getattr(teacher, name)
            break
        """
    _graded_like_a_blank(a1, tmp_path, attack)


@needs_bwrap
def test_the_teachers_files_and_the_event_file_cannot_be_written(a1, tmp_path):
    bundle = a1[0]
    targets = [ROOT / "tests/test_knn.py", bundle / "tests/test_knn.py", bundle / "manifest.json"]
    attack = f"""
        import glob, json, os
        passing = "def test_anything():\\n    pass\\n"
        for path in {[str(t) for t in targets]!r} + [os.getcwd() + "/tests/test_knn.py"]:
            try:
                with open(path, "a") as f:
                    f.write(passing)
            except OSError:
                pass
        for path in glob.glob("/tmp/**/grade-events.jsonl", recursive=True):
            with open(path, "a") as f:
                f.write(json.dumps({{"event": "report", "nodeid": "x", "when": "call", "outcome": "passed"}}))
        """
    _graded_like_a_blank(a1, tmp_path, attack)


@needs_bwrap
def test_no_process_outlives_the_grading(a1, tmp_path):
    token = f"dl4cv-attack-{uuid.uuid4().hex}"
    attack = f"""
        import os, subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", {token!r}],
                         start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        if os.fork() == 0:
            os.setsid()
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", {token!r} + "-2"])
        """
    _graded_like_a_blank(a1, tmp_path, attack)
    survivors = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if token.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                survivors.append(pid)
        except OSError:
            pass
    assert survivors == [], f"processes started by the student's code survived: {survivors}"


@needs_bwrap
def test_no_network(a1, tmp_path):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)
    port = server.getsockname()[1]
    heard = []

    def listen():
        try:
            conn, _ = server.accept()
            heard.append(conn.recv(100))
        except OSError:
            pass

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    attack = f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=3).sendall(b"the tests are ...")
        except OSError:
            pass
        """
    try:
        _graded_like_a_blank(a1, tmp_path, attack)
    finally:
        server.close()
        thread.join(5)
    assert heard == []


def test_a_symlink_to_the_teachers_solution_is_refused(a1, tmp_path):
    bundle = a1[0]
    student = tmp_path / "student"
    (student / "A1_knn").mkdir(parents=True)
    (student / "A1_knn/knn.py").symlink_to(ROOT / "A1_knn/knn.py")
    report = grade(student, ["A1"], bundle=bundle)
    assert report.score == 0 and report.max_score == 20
    assert any("symbolic link" in p for p in report.assignments[0].problems)
