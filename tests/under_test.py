"""How the tests reach the code under test: ``load("A1_knn.knn")``, one name at a time.

Every test of a student's module gets it through :func:`load` instead of
``from A1_knn.knn import ...``::

    from under_test import load
    knn = load("A1_knn.knn")
    compute_distances_two_loops = knn.compute_distances_two_loops

Two things follow, for students and teachers alike:

* **Partial work counts.** A name the module lacks (or a module that does not
  import) does not stop the test file: the name becomes a :class:`Missing`
  placeholder, and only the tests that use it fail, with ``not written: NAME``.
* **The grader can keep the student's code out of its own process.** Run
  normally (``pytest``), :func:`load` imports the module here.  Under
  ``python -m course.grade`` the grading plugin installs a *backend* and the
  same line returns a stand-in whose calls run in a sandboxed worker process
  (``course/sandbox.py``); arguments and results cross as plain data (tensors,
  numbers, strings, containers), objects stay on the worker's side behind
  references.  Tests therefore treat what the module returns as values: they
  compare it, they do not reach into it to change it (set a model's
  parameter with ``model.params[name] = w``, not by editing a returned tensor
  in place).

:func:`rules_of` checks the rules a docstring states ("no loops", "you may not
use torch.cdist") on the source text with :mod:`ast`; the source is read,
never run.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path

__all__ = ["Missing", "NotWritten", "RuleBroken", "backward_through", "has", "is_missing", "load", "loops_in",
           "rule_mark", "rules_of", "set_backend", "source_of"]

_backend = None
_ABSENT = object()


class NotWritten(NotImplementedError):
    """The test needs a name the module under test does not provide (yet)."""


class RuleBroken(AssertionError):
    """A solution function uses what its docstring's rule forbids."""


class Missing:
    """Stands for a name the module under test lacks; any use raises :class:`NotWritten`."""

    def __init__(self, module: str, name: str, reason: str = ""):
        self._module, self._name, self._reason = module, name, reason

    def _fail(self, *args, **kwargs):
        if self._reason:  # the module is there but does not import: say that, not "not written"
            raise NotWritten(f"{self._reason} (so {self._name} cannot run)")
        raise NotWritten(f"not written: {self._name} in {self._module}")

    __call__ = _fail
    __iter__ = _fail
    __len__ = _fail
    __getitem__ = _fail

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        self._fail()

    def __repr__(self) -> str:
        return f"<not written: {self._module}.{self._name}>"


class _Local:
    """The module imported here; a missing name or a failed import gives :class:`Missing` names."""

    def __init__(self, name: str):
        self.__name = name
        self.__originals = {}
        try:
            self.__module = importlib.import_module(name)
            self.__problem = ""
        except Exception as exc:  # noqa: BLE001 -- a student's import error costs the names, not the run
            self.__module = None
            self.__problem = f"{name} does not import: {type(exc).__name__}: {exc}"

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        if self.__module is None:
            return Missing(self.__name, attr, self.__problem)
        try:
            return getattr(self.__module, attr)
        except AttributeError:
            return Missing(self.__name, attr)

    def __setattr__(self, attr: str, value) -> None:
        if attr.startswith("_Local__"):
            object.__setattr__(self, attr, value)
        elif self.__module is None:
            raise NotWritten(f"not written: {self.__name} ({self.__problem})")
        else:  # monkeypatch.setattr(module, ...) reaches the module itself
            self.__originals.setdefault(attr, getattr(self.__module, attr, _ABSENT))
            setattr(self.__module, attr, value)

    def __delattr__(self, attr: str) -> None:
        """Undo a patch: the module gets its own value back (pytest's monkeypatch undoes with ``delattr``)."""
        original = self.__originals.pop(attr, _ABSENT)
        if original is _ABSENT:
            delattr(self.__module, attr)
        else:
            setattr(self.__module, attr, original)

    def __repr__(self) -> str:
        return f"<module under test {self.__name} (this process)>"


def load(name: str):
    """The module ``name`` as the tests see it: here, or behind the grader's sandbox when one is installed."""
    if _backend is not None:
        return _backend.load(name)
    return _Local(name)


def set_backend(backend) -> None:
    """Install (or with ``None`` remove) the grader's backend: an object with ``load(name)`` and ``source(name)``."""
    global _backend
    _backend = backend


def has(module, name: str) -> bool:
    """Whether the module under test defines ``name`` (for optional extras: skip, do not fail)."""
    return not isinstance(getattr(module, name), Missing)


def is_missing(value) -> bool:
    """Whether ``value`` is a :class:`Missing` placeholder."""
    return isinstance(value, Missing)


def rule_mark(mark):
    """The ``grade`` marker ``mark``'s group and points, as a rule check (``rule=True``).

    A rule check earns nothing itself; when it fails, ``python -m course.grade`` scores the whole group 0.
    """
    import pytest  # noqa: PLC0415 -- only test files mark tests

    return pytest.mark.grade(mark.args[0], points=mark.kwargs["points"], rule=True)


def backward_through(fn, inputs: list, upstream=None, **kwargs):
    """``fn(*inputs, **kwargs)`` with autograd: ``(output, [grad of each input that requires grad])``.

    For the tests that need the gradient of the *student's* function by autograd.  Values do not carry
    their autograd graph across the grader's sandbox, so call it where the function lives:
    ``load("under_test").backward_through(student_fn, [x, w], dout)`` runs this in the worker when grading
    (and here otherwise).  ``upstream`` defaults to ones.
    """
    import torch  # noqa: PLC0415 -- the rule checks below need no torch

    inputs = [x.detach().clone().requires_grad_(True) if isinstance(x, torch.Tensor) and x.is_floating_point()
              and getattr(x, "requires_grad", False) else x for x in inputs]
    out = fn(*inputs, **kwargs)
    weights = torch.ones_like(out) if upstream is None else upstream
    out.backward(weights)
    return out.detach(), [x.grad for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]


# --------------------------------------------------------------------------- rules on the source text


def source_of(module: str) -> str:
    """The text of the module under test (the student's file when grading), read, not imported."""
    if _backend is not None:
        return _backend.source(module)
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise NotWritten(f"not written: module {module}")
    return Path(spec.origin).read_text(encoding="utf-8")


def _functions(tree: ast.Module) -> dict[str, ast.AST]:
    """Top-level functions and ``Class.method`` of a module."""
    found: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    found[f"{node.name}.{item.name}"] = item
    return found


def _is_stub(fn: ast.AST) -> bool:
    """A body that only raises ``NotImplementedError`` (after setup lines), as the blank handout has."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id == "NotImplementedError":
                return True
    return False


_LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def loops_in(fn: ast.AST) -> list[int]:
    """Line numbers of the Python loops (``for``, ``while``, comprehensions) inside ``fn``."""
    return sorted(n.lineno for n in ast.walk(fn) if isinstance(n, _LOOPS))


def _local_names(fn: ast.AST) -> set[str]:
    """Names ``fn`` binds itself: arguments, assignment targets, loop variables, inner functions and classes."""
    names = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node is not fn:
            names.add(node.name)
    return names


def _used_names(fn: ast.AST, own: set[str] = frozenset()) -> dict[str, int]:
    """Every name used inside ``fn`` (``torch.cdist``, ``cdist``, ``x.norm``, a keyword) -> first line.

    A bare name the student's code defines itself (a local ``relu = lambda ...``, a function of the same
    module: ``own``) is the student's own work, not the library's: it is not reported.  Attributes
    (``torch.relu``, ``F.relu``, ``x.relu()``) always are.
    """
    mine = _local_names(fn) | set(own)
    used: dict[str, int] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Attribute):
            used.setdefault(node.attr, node.lineno)
        elif isinstance(node, ast.Name) and node.id not in mine:
            used.setdefault(node.id, node.lineno)
        elif isinstance(node, ast.keyword) and node.arg:  # torch.zeros(..., requires_grad=True)
            used.setdefault(node.arg, node.value.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            used.setdefault(node.value, node.lineno)  # getattr(torch, "cdist")
        elif isinstance(node, ast.ImportFrom | ast.Import):
            for alias in node.names:
                for part in alias.name.split("."):
                    used.setdefault(part, node.lineno)
    return used


def _called(fn: ast.AST, functions: dict[str, ast.AST], owner: str | None) -> set[str]:
    """Same-module functions (and ``self.method`` of the same class) that ``fn`` calls."""
    names = set()
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id in functions:
            names.add(node.func.id)
        elif (isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
              and node.func.value.id in ("self", "cls") and owner and f"{owner}.{node.func.attr}" in functions):
            names.add(f"{owner}.{node.func.attr}")
    return names


def rules_of(module: str, function: str, *, loops: int | None = None, forbid: Iterable[str] = (),
             given: Iterable[str] = ()) -> None:
    """Check one solution function's stated rules on the student's source; raise what is broken.

    Args:
        module: dotted module name (``"A1_knn.knn"``).
        function: ``"name"`` or ``"Class.method"``.
        loops: the most Python loops allowed (``0``: loop-free; ``None``: not checked).
        forbid: names that may not appear (``"cdist"`` catches ``torch.cdist``, ``x.cdist`` and
            ``getattr(torch, "cdist")``).
        given: same-module functions the check does not follow (given code that may loop).
            Other same-module functions the solution calls are checked with it.

    Raises:
        NotWritten: the function is absent or still the blank stub.
        RuleBroken: a forbidden name or too many loops, with the line.
    """
    text = source_of(module)
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise NotWritten(f"not written: {module} has a syntax error at line {exc.lineno}") from None
    functions = _functions(tree)
    if function not in functions:
        raise NotWritten(f"not written: {function} in {module}")
    if _is_stub(functions[function]):
        raise NotWritten(f"not written: {function} in {module} (still the blank stub)")
    forbidden, skip = set(forbid), set(given)
    seen, todo, loop_lines = set(), [function], []
    while todo:
        name = todo.pop()
        if name in seen or name in skip:
            continue
        seen.add(name)
        fn = functions[name]
        own = {n for n in functions if "." not in n}
        for used, line in _used_names(fn, own).items():
            if used in forbidden:
                raise RuleBroken(f"rule of {function}: may not use {used} (line {line}{_via(name, function)})")
        loop_lines += loops_in(fn)
        owner = name.split(".")[0] if "." in name else None
        todo += sorted(_called(fn, functions, owner))
    if loops is not None and len(loop_lines) > loops:
        allowed = "no loop" if loops == 0 else f"at most {loops} loop{'s' * (loops > 1)}"
        raise RuleBroken(f"rule of {function}: {allowed}, found {len(loop_lines)} (lines "
                         f"{', '.join(map(str, loop_lines))})")


def _via(name: str, function: str) -> str:
    return "" if name == function else f", in {name}, which {function} calls"
