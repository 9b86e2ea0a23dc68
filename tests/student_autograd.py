"""Autograd through the code under test, asked for where that code runs.

What a test gets back from the module under test is a value: when grading, a copy made in the
grader's process, with no autograd graph behind it (``tests/under_test.py``).  So a test that
needs gradients *through* the student's function or model asks for them in one call that runs on
the student's side -- the grader's worker when grading, this process otherwise:

* :func:`backward_through` -- ``fn(*inputs)`` and the gradients of the inputs that require grad
  (``under_test.backward_through``, run there);
* :func:`vjp` -- ``torch.func.vjp`` there: for functions that return several tensors (attention
  returns its output and its weights) or gradients with respect to every input;
* :func:`parameter_grads` -- the ``.grad`` of every parameter of a model (after a backward pass
  run there);
* :func:`set_parameters` -- write parameter values into a model (``load_state_dict``: a tensor
  sent to the student's side arrives as a plain tensor, which a module does not take as a
  parameter by assignment);
* :func:`is_instance` -- ``isinstance`` there (the stand-in of a student's object is not an
  instance of the student's class on this side).
"""

from __future__ import annotations

import torch
from under_test import load

__all__ = ["backward_through", "is_instance", "parameter_grads", "set_parameters", "vjp"]

_under_test = load("under_test")
_func = load("torch.func")
_functools = load("functools")
_operator = load("operator")
from worker_tools import is_instance  # noqa: F401 -- one home; A4 tests import it from here


def backward_through(fn, inputs: list, upstream=None, **kwargs):
    """``fn(*inputs, **kwargs)`` with autograd where ``fn`` runs: ``(output, [grads of the inputs that require grad])``.

    Give the inputs to differentiate with ``requires_grad`` set; ``upstream`` defaults to ones.
    The parameters of a model ``fn`` accumulate their gradients there: read them with
    :func:`parameter_grads`.
    """
    return _under_test.backward_through(fn, inputs, upstream, **kwargs)


def vjp(fn, primals: list, cotangent=None, **kwargs):
    """``torch.func.vjp`` of ``fn(*primals, **kwargs)`` where ``fn`` runs: ``(output, [grad of each primal])``.

    Every primal is a floating-point tensor (non-differentiable arguments go in ``kwargs``).
    ``cotangent`` weighs the output; when ``fn`` returns a tuple, a single tensor weighs its first
    element and the others get zeros (the gradient of the first output alone).
    """
    if kwargs:
        fn = _functools.partial(fn, **kwargs)
    output, pullback = _func.vjp(fn, *primals)
    if isinstance(output, tuple) and not isinstance(cotangent, tuple):
        first = torch.ones_like(output[0]) if cotangent is None else cotangent
        cotangent = (first, *(torch.zeros_like(o) for o in output[1:]))
    elif cotangent is None:
        cotangent = torch.ones_like(output)
    return output, list(pullback(cotangent))


def parameter_grads(model, prefix: str = "") -> dict:
    """``{name: param.grad}`` of ``model``'s parameters whose names start with ``prefix`` (``None``: no gradient)."""
    names = [name for name, _ in model.named_parameters() if name.startswith(prefix)]
    if not names:
        return {}
    grads = _operator.attrgetter(*(f"{name}.grad" for name in names))(model)
    return dict(zip(names, grads if len(names) > 1 else (grads,), strict=True))


def set_parameters(module, values: dict) -> None:
    """Copy ``values`` (name -> tensor) into ``module``'s parameters of those names; every name must exist."""
    _missing, unexpected = module.load_state_dict(values, strict=False)
    assert not unexpected, f"the module has no parameter(s) {', '.join(unexpected)}"


