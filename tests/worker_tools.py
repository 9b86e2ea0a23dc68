"""Checks that must happen where the code under test runs, for tests that reach it through ``under_test.load``.

While grading, the student's objects live in the grader's worker and what comes back is a copy
(``tests/under_test.py``).  A few questions cannot be answered from copies: is this object an
instance of that class, does this function take that keyword, did the call change its arguments
in place, where may the code write a file.  Each helper here asks them on the side where the
objects live, through ``load()`` of a standard module: in a normal ``pytest`` run that is this
process, while grading it is the worker.  Nothing here imports the code under test.
"""

from __future__ import annotations

from contextlib import contextmanager

from under_test import load

__all__ = ["accepts", "arguments_after", "is_instance", "layers_of", "same_object", "seeded_generator",
           "shared_dict", "type_name", "worker_folder"]


def is_instance(obj, cls) -> bool:
    """``isinstance(obj, cls)``, asked where ``obj`` lives (a student's class and object while grading)."""
    return bool(load("builtins").isinstance(obj, cls))


def same_object(a, b) -> bool:
    """``a is b``, asked where both live (stand-ins of one worker object are different objects here)."""
    return bool(load("operator").is_(a, b))


def type_name(obj) -> str:
    """The class name of ``obj``, asked where it lives (a layer of the student's model while grading)."""
    return load("builtins").type(obj).__name__


def layers_of(model, *names) -> list:
    """The submodules of ``model`` (itself included) whose class is called one of ``names``, in order."""
    return [m for m in model.modules() if type_name(m) in names]


def accepts(fn, name: str) -> bool:
    """Whether ``fn`` (a function or class of the code under test) takes a parameter called ``name``."""
    return name in load("inspect").signature(fn).parameters


def seeded_generator(seed: int):
    """A ``torch.Generator`` seeded with ``seed``, made where the code under test runs (one cannot be sent there)."""
    return load("torch").Generator().manual_seed(seed)


def shared_dict(values: dict):
    """A dict that lives where the code under test runs: what that code writes into it is seen here.

    For functions that update a dict in place (``nn_train(params, ...)``).  Reading an item gives a
    copy; write with ``d[key] = value``.
    """
    return load("types").SimpleNamespace(values=dict(values)).values


def arguments_after(fn, *args, **kwargs) -> tuple:
    """Call ``fn(*args, **kwargs)`` where it lives; return the positional arguments as the call left them.

    The arguments are held on that side for the call, so a function that changes its inputs in place
    shows it here (arguments sent to the worker are copies, so comparing the ones kept here would not).
    """
    call = load("functools").partial(fn, *args, **kwargs)
    call()
    return tuple(call.args)


@contextmanager
def worker_folder():
    """A fresh folder (a ``str``) where the code under test may write files; removed afterwards.

    Not pytest's ``tmp_path``: that is this process's folder, and while grading the worker sees
    only its own private ``/tmp``.
    """
    path = load("tempfile").mkdtemp(prefix="dl4cv-test-")
    try:
        yield path
    finally:
        load("shutil").rmtree(path, ignore_errors=True)
