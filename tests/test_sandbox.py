"""The grader's wall: course.wire (plain data only), course.sandbox + course.worker, tests/under_test.py.

The wire is tested on its own (round trips, and refusals of what is not plain data); the sandbox
on a small module written here, run in a real worker (bubblewrap when it runs here).
"""

from __future__ import annotations

import io
import json
import pickle
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import under_test
from under_test import Missing, NotWritten, RuleBroken, rules_of

import course
from course import wire
from course.sandbox import Remote, Sandbox, StudentCodeError, WorkerLost

# --------------------------------------------------------------------------- wire


def roundtrip(value):
    stream = io.BytesIO()
    wire.write_message(stream, value)
    stream.seek(0)
    return wire.read_message(stream)


def test_plain_values_cross_unchanged():
    value = {"a": [1, 2.5, None, True, "s", b"raw", 3 + 4j, 2 ** 80, float("inf")], 7: (slice(1, None, 2), ...),
             "t": torch.arange(6.0).reshape(2, 3), "bf": torch.ones(2, dtype=torch.bfloat16),
             "i": torch.tensor([1, 2], dtype=torch.int64), "b": torch.tensor([True, False]),
             "n": np.arange(4, dtype=np.uint32), "dtype": torch.float16, "size": torch.Size([2, 3]),
             "set": {1, 2}, "empty": torch.zeros(0, 3)}
    back = roundtrip(value)
    assert back.keys() == value.keys()
    for key in ("t", "bf", "i", "b", "empty"):
        assert back[key].dtype == value[key].dtype and torch.equal(back[key], value[key])
    assert np.array_equal(back["n"], value["n"]) and back["n"].dtype == np.uint32
    assert back["a"] == value["a"] and back[7] == value[7] and back["set"] == {1, 2}
    assert back["dtype"] is torch.float16 and back["size"] == torch.Size([2, 3])
    nan = roundtrip(float("nan"))
    assert nan != nan
    grad = roundtrip(torch.ones(2, requires_grad=True))
    assert grad.requires_grad and grad.is_leaf


def test_what_is_not_plain_data_is_refused_both_ways():
    with pytest.raises(wire.WireError, match="not plain data"):
        wire.encode(torch.nn.Linear(2, 2))
    with pytest.raises(wire.WireError, match="not plain data"):
        wire.encode(np.array([object()], dtype=object))
    for header in (json.dumps({"$": "pickle", "v": pickle.dumps(1).hex()}), json.dumps({"$": "tensor",
                   "dtype": "object", "shape": [1], "b": 0}), json.dumps({"$": "tensor", "dtype": "float32",
                   "shape": [4], "b": 0}), json.dumps([1, 2]), "not json", json.dumps({"$": "int", "v": "1e9999"})):
        with pytest.raises(wire.WireError):
            wire.decode(header.encode(), [b"\0" * 4])
    deep = {"$": "list", "v": []}
    for _ in range(100):
        deep = {"$": "list", "v": [deep]}
    with pytest.raises(wire.WireError, match="deeply"):
        wire.decode(json.dumps(deep).encode(), [])


def test_a_message_announcing_too_many_bytes_is_refused_before_reading_them():
    stream = io.BytesIO((1 << 40).to_bytes(8, "little") + b"{}")
    with pytest.raises(wire.WireError, match="larger than"):
        wire.read_message(stream)


# --------------------------------------------------------------------------- the sandbox

MODULE = '''
import os, torch

def add(a, b):
    return a + b

def draw(n):
    return torch.randn(n)

def twice(f, x):
    return 2 * f(x)

def fails():
    raise KeyError("nope")

class Custom(ValueError):
    pass

def fails_custom():
    raise Custom("mine")

def weird():
    class Odd(Exception):
        pass
    raise Odd("odd")

def stub():
    raise NotImplementedError("write stub in pkg/mod.py")

def calls_missing():
    return not_there(1)

def spin():
    while True:
        pass

def shout(text):
    print("student says", text)
    return text.upper()

def end():
    os._exit(7)

class Model:
    def __init__(self):
        self.params = {"w": torch.ones(2)}
        self.scale = torch.tensor(3.0)

    def loss(self, x):
        return (self.params["w"] * x).sum() * self.scale, {"w": x * self.scale}
'''


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("workspace")
    (workspace / "pkg").mkdir()
    (workspace / "pkg/__init__.py").write_text("")
    (workspace / "pkg/mod.py").write_text(MODULE)
    (workspace / "pkg/broken.py").write_text("def f(:\n")
    (workspace / "course").mkdir()  # the worker's own code, as the bundle holds it
    for path in Path(course.__file__).parent.glob("*.py"):
        (workspace / "course" / path.name).write_bytes(path.read_bytes())
    sandbox = Sandbox(workspace)
    yield sandbox
    sandbox.stop()


def test_calls_cross_as_values_and_objects_stay_behind(box):
    mod = box.load("pkg.mod")
    assert torch.equal(mod.add(torch.ones(2), torch.ones(2)), torch.full((2,), 2.0))
    model = mod.Model()
    assert isinstance(model, Remote)
    loss, grads = model.loss(torch.ones(2))
    assert loss.item() == 6.0 and torch.equal(grads["w"], torch.full((2,), 3.0))
    model.params["w"] = torch.zeros(2)  # a dict attribute stays in the worker: writes reach the model
    model.scale = torch.tensor(1.0)  # a tensor attribute comes back as a copy; set it as a whole
    assert model.loss(torch.ones(2))[0].item() == 0.0
    copy = model.scale
    copy += 5
    assert model.scale.item() == 1.0, "a returned tensor is a copy"
    assert sorted(model.params) == ["w"] and len(model.params) == 1 and "w" in model.params


def test_seeding_here_seeds_the_students_code(box):
    mod = box.load("pkg.mod")
    torch.manual_seed(3)
    theirs = (mod.draw(4), mod.draw(2))
    torch.manual_seed(3)
    assert torch.equal(theirs[0], torch.randn(4)) and torch.equal(theirs[1], torch.randn(2))


def test_callables_run_here_and_prints_come_here(box, capsys):
    mod = box.load("pkg.mod")
    seen = []
    assert mod.twice(lambda x: seen.append(x) or x + 1, 4) == 10 and seen == [4]
    assert mod.shout("hi") == "HI"
    assert capsys.readouterr().out == "student says hi\n"


def test_exceptions_come_back_as_pythons_own(box):
    mod = box.load("pkg.mod")
    with pytest.raises(KeyError, match="nope"):
        mod.fails()
    with pytest.raises(ValueError, match="mine"):
        mod.fails_custom()
    with pytest.raises(StudentCodeError, match="Odd: odd"):
        mod.weird()
    with pytest.raises(NotWritten, match="not written: stub$"):
        mod.stub()
    with pytest.raises(NotWritten, match="not written: not_there"):
        mod.calls_missing()
    assert isinstance(mod.no_such_name, Missing)
    assert isinstance(box.load("pkg.broken").f, Missing)
    with pytest.raises(NotWritten, match="pkg.broken does not import: SyntaxError"):
        box.load("pkg.broken").f()


def test_a_deadline_kills_the_worker_and_names_survive(box):
    mod = box.load("pkg.mod")
    add = mod.add
    model = mod.Model()
    box.deadline = time.monotonic() + 1.0
    try:
        with pytest.raises(TimeoutError, match="ran out of time"):
            mod.spin()
    finally:
        box.deadline = None
    assert add(2, 3) == 5, "a name read from the module is looked up again in the new worker"
    with pytest.raises(WorkerLost, match="make it again"):
        model.loss(torch.ones(2))
    with pytest.raises(WorkerLost, match="exit code 7"):
        mod.end()
    assert mod.add(1, 1) == 2


def test_the_sandbox_shows_only_the_workspace(box, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("solution")
    mod = box.load("pkg.mod")
    if box.isolation != "bwrap":
        pytest.skip(f"no bubblewrap here: {box.why}")
    reader = box.load("builtins").open
    with pytest.raises(FileNotFoundError):
        reader(str(secret))
    with pytest.raises(OSError):
        reader(str(box.workspace / "pkg/new.py"), "w")
    assert mod.add("a", "b") == "ab"


# --------------------------------------------------------------------------- under_test


def test_load_gives_missing_names_not_import_errors(tmp_path, monkeypatch):
    (tmp_path / "half_done.py").write_text("def written():\n    return 1\n")
    (tmp_path / "does_not_import.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    half = under_test.load("half_done")
    assert half.written() == 1 and under_test.has(half, "written") and not under_test.has(half, "other")
    with pytest.raises(NotWritten, match="not written: other in half_done"):
        half.other(3)
    with pytest.raises(NotWritten, match="does not import: RuntimeError: boom"):
        under_test.load("does_not_import").anything()


RULES = textwrap.dedent('''
    import torch

    def two_loops(a, b):
        d = a.new_zeros(3, 3)
        for i in range(3):
            for j in range(3):
                d[i, j] = ((a[i] - b[j]) ** 2).sum().sqrt()
        return d

    def sneaky(a, b):
        return helper(a, b)

    def helper(a, b):
        return getattr(torch, "cdist")(a, b)

    def comprehension(a, b):
        return torch.stack([x.sum() for x in a])

    def keyword(a, b):
        return torch.zeros(3, requires_grad=True) + a

    def own_relu(a, b):
        relu = lambda t: torch.maximum(t, torch.zeros_like(t))  # noqa: E731
        return relu(a) + norm_free(b)

    def norm_free(b):
        return b * b

    def library_relu(a, b):
        from torch.nn.functional import relu
        return relu(a)

    def blank(a, b):
        raise NotImplementedError("write blank in m.py")

    class Net:
        def forward(self, x):
            return self.inner(x)

        def inner(self, x):
            return x.norm()
''')


@pytest.fixture
def rules_module(tmp_path, monkeypatch):
    (tmp_path / "ruled.py").write_text(RULES)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "ruled"


def test_rules_count_loops_and_find_forbidden_names_through_calls(rules_module):
    rules_of(rules_module, "two_loops", loops=2, forbid=("cdist", "norm"))
    with pytest.raises(RuleBroken, match=r"no loop, found 2 \(lines 6, 7\)"):
        rules_of(rules_module, "two_loops", loops=0)
    with pytest.raises(RuleBroken, match="may not use cdist .*in helper, which sneaky calls"):
        rules_of(rules_module, "sneaky", loops=0, forbid=("cdist",))
    rules_of(rules_module, "sneaky", loops=0, forbid=("cdist",), given=("helper",))
    with pytest.raises(RuleBroken, match="no loop, found 1"):
        rules_of(rules_module, "comprehension", loops=0)
    with pytest.raises(RuleBroken, match="may not use requires_grad"):
        rules_of(rules_module, "keyword", forbid=("requires_grad",))
    rules_of(rules_module, "own_relu", loops=0, forbid=("relu", "norm_free_not"))
    with pytest.raises(RuleBroken, match="may not use relu"):
        rules_of(rules_module, "library_relu", forbid=("relu",))
    with pytest.raises(RuleBroken, match="may not use norm"):
        rules_of(rules_module, "Net.forward", forbid=("norm",))
    with pytest.raises(NotWritten, match="still the blank stub"):
        rules_of(rules_module, "blank", loops=0)
    with pytest.raises(NotWritten, match="not written: absent"):
        rules_of(rules_module, "absent", loops=0)
