"""The grader's worker: the only process that imports and runs a student's code.

Started by :mod:`course.sandbox` (inside bubblewrap when it can), it reads
requests from its standard input and answers on its standard output, both in
the plain-data format of :mod:`course.wire`; the student's own prints go to
``/dev/null``.  It keeps every object that is not plain data (modules,
classes, models...) in a table and hands out references to them.  Nothing it
says is trusted: the grading process decodes its answers as data and draws
its own conclusions.

Requests are dicts with an ``op``: ``import``, ``getattr``, ``setattr``,
``hasattr``, ``getitem``, ``setitem``, ``delitem``, ``call``, ``method``,
``len``, ``iter``, ``contains``, ``bool``, ``repr``, ``release``.  ``call``
and ``method`` carry the caller's random-number state and answer with the
state after the call, so seeding in a test works as if the call ran there.
A callable argument from the grader becomes a stub that asks the grader to
run it (``{"callback": id}``) and serves requests until the answer comes.
"""

from __future__ import annotations

import builtins
import importlib
import io
import os
import random
import re
import sys
import traceback
import types
from pathlib import Path

import numpy as np
import torch

from course import wire

_MUTABLE = (dict, list)
_ASSIGNMENT = re.compile(r"^(A\d+_\w+|papers)$")


class _Table:
    """Objects handed out by reference, counted so the grader can release them."""

    def __init__(self):
        self.objects: dict[int, list] = {}  # ref id -> [object, count]
        self.ids: dict[int, int] = {}  # id(object) -> ref id
        self.next = 1

    def refer(self, obj) -> wire.Ref:
        if isinstance(obj, dict):  # OrderedDict, defaultdict, state_dict -> plain dict copy
            return dict(obj)  # type: ignore[return-value]
        if isinstance(obj, tuple | list):  # namedtuple, torch.return_types, list subclasses
            return tuple(obj) if isinstance(obj, tuple) else list(obj)  # type: ignore[return-value]
        if isinstance(obj, type({}.keys()) | type({}.values()) | type({}.items()) | range):
            return list(obj)  # type: ignore[return-value]
        return self.register(obj)

    def register(self, obj) -> wire.Ref:
        """Keep ``obj`` here and return a counted reference to it."""
        key = id(obj)
        ref_id = self.ids.get(key)
        if ref_id is None or self.objects.get(ref_id, [None])[0] is not obj:
            ref_id, self.next = self.next, self.next + 1
            self.objects[ref_id] = [obj, 0]
            self.ids[key] = ref_id
        self.objects[ref_id][1] += 1
        kind = ("module" if isinstance(obj, types.ModuleType) else "class" if isinstance(obj, type)
                else "callable" if callable(obj) else "object")
        name = getattr(obj, "__qualname__", None) if kind != "object" else None  # never the student's __repr__
        return wire.Ref(ref_id, kind, type(obj).__name__, str(name)[:200] if isinstance(name, str) else "")

    def refer_mutable(self, obj):
        """Containers read as attributes or items stay here, so writes to them reach the object."""
        return self.register(obj) if type(obj) in _MUTABLE else obj

    def get(self, ref: wire.Ref):
        if ref.id not in self.objects:
            raise LookupError(f"object {ref.id} ({ref.type}) is no longer held by the worker")
        return self.objects[ref.id][0]

    def release(self, ids) -> None:
        for ref_id in ids:
            entry = self.objects.get(ref_id)
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del self.objects[ref_id]
                    self.ids.pop(id(entry[0]), None)


class Worker:
    """Serve requests on ``inp``/``out`` until the grader closes the channel."""

    def __init__(self, inp, out):
        self.inp, self.out, self.table = inp, out, _Table()

    # ------------------------------------------------------------------ channel

    def send(self, message) -> None:
        wire.write_message(self.out, message, self.table.refer)

    def receive(self):
        return wire.read_message(self.inp, self.resolve)

    def resolve(self, ref: wire.Ref):
        if ref.kind == "callback":
            return self.stub(ref)
        return self.table.get(ref)

    def stub(self, ref: wire.Ref):
        """A function that runs the grader's callable ``ref`` on the grader's side."""

        def call(*args, **kwargs):
            self.send({"callback": ref.id, "args": list(args), "kwargs": kwargs})
            return self.serve(until_return=True)

        call.__name__ = call.__qualname__ = f"grader_callback_{ref.id}"
        return call

    def serve(self, until_return: bool = False):
        while True:
            try:
                request = self.receive()
            except EOFError:
                if until_return:
                    raise
                return None
            if "return" in request:
                return request["return"]
            if "raise" in request:
                raise RuntimeError(f"the grader's callback failed: {request['raise']}")
            self.send(self.answer(request))

    # ------------------------------------------------------------------ requests

    def answer(self, request) -> dict:
        try:
            self.table.release(request.get("release", ()))
            state = request.get("state")
            if state is not None:
                _set_state(state)
                before = _get_state()
            with _Captured() as printed:
                value = self.run(request)
            reply = {"ok": value}
            if printed.text:
                reply["printed"] = printed.text
            if state is not None:
                after = _get_state()
                if not _same(before, after):  # only a call that drew random numbers sends its state back
                    reply["state"] = after
            return reply
        except BaseException as exc:  # noqa: BLE001 -- every failure of student code becomes a reply
            if isinstance(exc, KeyboardInterrupt):
                raise
            return {"error": _describe(exc)}

    def run(self, request):
        op = request["op"]
        if op == "import":
            return importlib.import_module(request["name"])
        obj = request.get("obj")  # already resolved from its reference
        if op == "getattr":
            return self.table.refer_mutable(getattr(obj, request["name"]))
        if op == "hasattr":
            return hasattr(obj, request["name"])
        if op == "setattr":
            setattr(obj, request["name"], request["value"])
            return None
        if op == "getitem":
            return self.table.refer_mutable(obj[request["key"]])
        if op == "setitem":
            obj[request["key"]] = request["value"]
            return None
        if op == "delitem":
            del obj[request["key"]]
            return None
        if op == "call":
            return obj(*request["args"], **request["kwargs"])
        if op == "method":
            return getattr(obj, request["name"])(*request["args"], **request["kwargs"])
        if op == "len":
            return len(obj)
        if op == "iter":
            return list(obj)
        if op == "contains":
            return request["item"] in obj
        if op == "bool":
            return bool(obj)
        if op == "repr":
            return repr(obj)
        if op == "release":
            return None
        raise ValueError(f"unknown request {op!r}")


class _Captured:
    """What the student's code prints during a request (``print`` and ``sys.stdout``), sent back with the answer."""

    LIMIT = 100_000

    def __enter__(self):
        self.buffer, self.text = io.StringIO(), ""
        self.saved = sys.stdout
        sys.stdout = self.buffer
        return self

    def __exit__(self, *exc_info):
        sys.stdout = self.saved
        text = self.buffer.getvalue()
        self.text = text if len(text) <= self.LIMIT else text[:self.LIMIT] + "\n[... output cut]\n"
        return False


def _describe(exc: BaseException) -> dict:
    """What the grader needs to re-raise a student's exception: class names, arguments, message, trace."""
    types_ = [c.__name__ for c in type(exc).__mro__]
    message = _safe_str(exc)
    missing = None
    if isinstance(exc, NotImplementedError):
        text = message
        if text.startswith("write ") and " in " in text:
            missing = text[len("write "):].split(" in ", 1)[0]
    elif isinstance(exc, NameError) and getattr(exc, "name", None):
        missing = exc.name
    args = []
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, str | int | float | bool) or arg is None:
            args.append(arg)
        else:
            args = [message]
            break
    try:
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:])
    except Exception:  # noqa: BLE001
        trace = ""
    return {"types": types_, "args": args, "message": message[:4000], "trace": trace[-4000:], "missing": missing,
            "builtin": next((n for n in types_ if isinstance(getattr(builtins, n, None), type)), "Exception")}


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001
        return f"<{type(exc).__name__} with a broken message>"


def _get_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": list(np.random.get_state()), "python": random.getstate()}


def _same(a: dict, b: dict) -> bool:
    return (torch.equal(a["torch"], b["torch"]) and a["python"] == b["python"]
            and a["numpy"][2:] == b["numpy"][2:] and np.array_equal(a["numpy"][1], b["numpy"][1]))


def _set_state(state: dict) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
        np.random.set_state(tuple(state["numpy"]))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    torch.set_default_dtype(state["dtype"])
    torch.set_grad_enabled(state["grad"])


def main() -> int:
    """Take the channel off stdin/stdout, silence them for the student's code, serve."""
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 -- for the process's life
    sys.path.insert(0, os.getcwd())
    # EECS 498's files import their siblings by bare name (``from linear_classifier import ...``, written for
    # a notebook run in the assignment's folder): the assignment folders come last on the path for them.
    sys.path += sorted(str(p) for p in Path.cwd().iterdir() if p.is_dir() and _ASSIGNMENT.match(p.name))
    worker = Worker(inp, out)
    worker.send({"ready": True})  # torch and numpy are imported: the grader's clock for calls starts now
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
