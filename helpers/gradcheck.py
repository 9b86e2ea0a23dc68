"""Numeric gradients and stable verdict lines for check cells.

Check cells must print the same text on every machine, so they print a verdict
(``conv backward dx: rel error < 1e-08 ✓``) rather than the raw error.
"""

from __future__ import annotations

import math
import random

import torch


def _check_probe_input(x) -> None:
    """Raise unless ``x`` is a contiguous floating-point tensor that can be probed in place."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor (float64 recommended), got {x.dtype}")
    if not x.is_contiguous():
        raise ValueError("x must be contiguous so it can be probed in place")


def compute_numeric_gradient(f, x: torch.Tensor, dLdf: torch.Tensor | None = None,
                             h: float = 1e-7) -> torch.Tensor:
    """Centred finite differences of ``f`` at ``x``.

    Args:
        f: function of one tensor returning a tensor (any shape).
        x: input, any shape; changed in place while probing, then restored.
        dLdf: upstream gradient with the shape of ``f(x)``; ``None`` means ones,
            i.e. the gradient of ``f(x).sum()``.
        h: step size.  Use float64 inputs for the default ``h``.

    Returns:
        grad: same shape as ``x``, ``grad[i] = sum(dLdf * (f(x+h e_i) - f(x-h e_i)) / 2h)``.
    """
    _check_probe_input(x)
    flat_x = x.view(-1)
    grad = torch.zeros_like(x)
    flat_grad = grad.view(-1)
    for i in range(flat_x.numel()):
        old = flat_x[i].item()
        try:
            flat_x[i] = old + h
            pos = f(x).clone()
            flat_x[i] = old - h
            neg = f(x).clone()
        finally:  # restore x even when f raises
            flat_x[i] = old
        if dLdf is None:
            dLdf = torch.ones_like(pos)
        elif dLdf.shape != pos.shape:
            raise ValueError(f"dLdf must have the shape of f(x), {tuple(pos.shape)}, got {tuple(dLdf.shape)}")
        flat_grad[i] = ((pos - neg) * dLdf).sum() / (2 * h)
    return grad


def compute_numeric_param_gradient(loss, params, name: str, h: float = 1e-7) -> torch.Tensor:
    """Centred finite differences of a model's loss in one of its parameters.

    The probe is a copy of ``params[name]``, written back into ``params[name]`` before
    every evaluation (and the original restored at the end), so this also works when
    ``params`` is not the tensors themselves -- a model run behind the grader's sandbox,
    whose ``model.params`` hands out copies but accepts ``params[name] = w``.

    Args:
        loss: function of no argument returning the scalar loss (``lambda: model.loss(X, y)[0]``).
        params: the model's dict of parameters (``model.params``).
        name: the parameter to probe.
        h: step size (float64 parameters for the default).

    Returns:
        the gradient, shaped like ``params[name]``.
    """
    original = params[name]
    probe = original.detach().clone()

    def loss_at(w):
        params[name] = w
        return loss()

    try:
        return compute_numeric_gradient(loss_at, probe, h=h)
    finally:
        params[name] = original


def compute_numeric_gradients(fn, inputs, dLdf: torch.Tensor | None = None, *, after=(), index: int | None = None,
                              h: float = 1e-7) -> list[torch.Tensor]:
    """Numeric gradients of ``fn(*inputs, *after)`` -- of its item ``index`` when given -- in each input.

    For a layer's ``forward(x, w, b, conv_param) -> (out, cache)``:
    ``dx, dw, db = compute_numeric_gradients(Conv.forward, [x, w, b], dout, after=(conv_param,), index=0)``.
    Each input is probed through a copy; the inputs themselves are left unchanged.
    """
    inputs = list(inputs)
    grads = []
    for i, x in enumerate(inputs):
        def f(t, i=i):
            out = fn(*inputs[:i], t, *inputs[i + 1:], *after)
            return out if index is None else out[index]

        grads.append(compute_numeric_gradient(f, x.detach().clone(), dLdf, h=h))
    return grads


def compute_numeric_model_gradients(model, X: torch.Tensor, y: torch.Tensor, h: float = 1e-7) -> dict:
    """Numeric gradient of ``model.loss(X, y)[0]`` in every parameter of ``model.params`` (the models the
    :class:`helpers.solver.Solver` trains), keyed like ``model.params``."""
    return {name: compute_numeric_param_gradient(lambda: model.loss(X, y)[0], model.params, name, h=h)
            for name in list(model.params)}


def autograd_gradients(fn, *inputs: torch.Tensor, dout: torch.Tensor | None = None) -> list[torch.Tensor]:
    """The reference for hand-written backward passes: PyTorch autograd through ``fn``.

    Args:
        fn: ``fn(*inputs) -> out``, written with torch ops (e.g. ``F.conv2d``).
        inputs: tensors; they are copied, never modified.
        dout: the upstream gradient, shaped like ``out``; None means ones.

    Returns:
        the gradients of ``sum(dout * fn(*inputs))`` with respect to each input, in order.
    """
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    out = fn(*leaves)
    out.backward(torch.ones_like(out) if dout is None else dout)
    return [leaf.grad for leaf in leaves]


def rel_error(x, y, eps: float = 1e-10) -> float:
    """Largest-scale relative error ``max|x - y| / max(|x| + |y|, eps)`` as a float."""
    x = torch.as_tensor(x, dtype=torch.float64)   # device: a tensor keeps its own
    y = torch.as_tensor(y, dtype=torch.float64)   # device: a tensor keeps its own
    if x.shape != y.shape:
        raise ValueError(f"rel_error needs tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    top = (x - y).abs().max().item() if x.numel() else 0.0
    bottom = (x.abs() + y.abs()).max().item() if x.numel() else 0.0
    return top / max(bottom, eps)


def grad_check_sparse(f, x: torch.Tensor, analytic_grad: torch.Tensor, num_checks: int = 10,
                      h: float = 1e-7, seed: int | None = 0, verbose: bool = False) -> float:
    """Compare ``analytic_grad`` with finite differences at ``num_checks`` random entries.

    ``f`` maps ``x`` to a scalar (a float or a one-element tensor).  Returns the
    largest relative error seen; prints one line per entry when ``verbose``.
    """
    _check_probe_input(x)
    if analytic_grad.shape != x.shape:
        raise ValueError(f"analytic_grad must have the shape of x, {tuple(x.shape)}, "
                         f"got {tuple(analytic_grad.shape)}")
    rng = random.Random(seed)
    flat_x = x.view(-1)
    flat_g = analytic_grad.reshape(-1)
    worst = 0.0
    for _ in range(num_checks):
        i = rng.randrange(flat_x.numel())
        old = flat_x[i].item()
        try:
            flat_x[i] = old + h
            pos = float(f(x))
            flat_x[i] = old - h
            neg = float(f(x))
        finally:  # restore x even when f raises
            flat_x[i] = old
        numeric = (pos - neg) / (2 * h)
        analytic = flat_g[i].item()
        err = abs(numeric - analytic) / max(abs(numeric) + abs(analytic), 1e-10)
        worst = max(worst, err)
        if verbose:
            print(f"numerical: {numeric:f} analytic: {analytic:f}, relative error: {err:e}")
    return worst


def check(name: str, value: float, tol: float, what: str = "rel error") -> None:
    """Print a stable verdict line for a check cell.

    ``check("conv backward dx", err, 1e-8)`` prints ``conv backward dx: rel error < 1e-08 ✓``
    when ``err < tol``; otherwise it prints the measured value and ``✗`` so the
    difference shows in the notebook and nbval fails the cell.  Returns nothing,
    so a check on a cell's last line displays only its verdict.
    """
    value = float(value)
    if math.isfinite(value) and value < tol:
        print(f"{name}: {what} < {tol:.0e} ✓")
    else:
        print(f"{name}: {what} = {value:.3e}, expected < {tol:.0e} ✗")


def check_true(name: str, ok: bool, detail: str = "") -> None:
    """Print ``name ✓`` or ``name ✗ detail``: a verdict for checks that are not a number."""
    print(f"{name} ✓" if ok else f"{name} ✗ {detail}".rstrip())
