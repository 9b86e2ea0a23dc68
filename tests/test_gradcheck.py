"""Tests for helpers.gradcheck: numeric gradients, rel_error and verdict lines."""

import math

import pytest
import torch

from helpers.gradcheck import (
    autograd_gradients,
    check,
    check_true,
    compute_numeric_gradient,
    grad_check_sparse,
    rel_error,
)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(598)


def test_numeric_gradient_of_cube_with_upstream_gradient(gen):
    x = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    dLdf = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    numeric = compute_numeric_gradient(lambda t: t ** 3, x, dLdf)
    analytic = 3 * x ** 2 * dLdf
    assert numeric.shape == x.shape and numeric.dtype == torch.float64
    assert rel_error(numeric, analytic) < 1e-8


def test_numeric_gradient_defaults_to_gradient_of_the_sum(gen):
    x = torch.randn(6, generator=gen, dtype=torch.float64)
    numeric = compute_numeric_gradient(lambda t: t.sin(), x)
    assert rel_error(numeric, x.cos()) < 1e-8


def test_numeric_gradient_of_matrix_product(gen):
    a = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 2, generator=gen, dtype=torch.float64)
    dLdf = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    dw = compute_numeric_gradient(lambda t: a @ t, w, dLdf)
    da = compute_numeric_gradient(lambda t: t @ w, a, dLdf)
    assert rel_error(dw, a.T @ dLdf) < 1e-8
    assert rel_error(da, dLdf @ w.T) < 1e-8


def test_numeric_gradient_restores_x(gen):
    x = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    before = x.clone()
    compute_numeric_gradient(lambda t: (t * t).sum(dim=0), x)
    assert torch.equal(x, before)


def test_numeric_gradient_restores_x_when_f_raises(gen):
    x = torch.randn(5, generator=gen, dtype=torch.float64)
    before = x.clone()

    def broken(t):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        compute_numeric_gradient(broken, x)
    assert torch.equal(x, before)


def test_numeric_gradient_rejects_bad_inputs():
    with pytest.raises(TypeError, match="torch.Tensor"):
        compute_numeric_gradient(lambda t: t, [1.0, 2.0])
    with pytest.raises(TypeError, match="floating-point"):
        compute_numeric_gradient(lambda t: t, torch.arange(3))
    with pytest.raises(ValueError, match="contiguous"):
        compute_numeric_gradient(lambda t: t, torch.zeros(3, 4, dtype=torch.float64).T)
    with pytest.raises(ValueError, match="dLdf"):
        compute_numeric_gradient(lambda t: t * 2, torch.zeros(3, dtype=torch.float64), torch.ones(4))


def _quadratic_loss(w, x, y):
    """L(w) = 0.5 * ||x @ w - y||^2 and its gradient x^T (x w - y)."""
    residual = x @ w - y
    return 0.5 * (residual ** 2).sum(), x.T @ residual


def test_grad_check_sparse_accepts_a_right_gradient(gen):
    x = torch.randn(8, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    w = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    before = w.clone()
    _, grad = _quadratic_loss(w, x, y)
    err = grad_check_sparse(lambda t: _quadratic_loss(t, x, y)[0], w, grad, num_checks=15)
    assert err < 1e-7
    assert torch.equal(w, before)


def test_grad_check_sparse_finds_a_wrong_gradient(gen):
    x = torch.randn(8, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    w = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    _, grad = _quadratic_loss(w, x, y)
    wrong = 2 * grad  # a classic bug: a factor of two
    err = grad_check_sparse(lambda t: _quadratic_loss(t, x, y)[0], w, wrong, num_checks=15)
    assert err > 0.1


def test_grad_check_sparse_verbose_prints_one_line_per_check(gen, capsys):
    w = torch.randn(4, generator=gen, dtype=torch.float64)
    grad_check_sparse(lambda t: (t ** 2).sum(), w, 2 * w, num_checks=3, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("relative error" in line for line in lines)


def test_grad_check_sparse_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        grad_check_sparse(lambda t: t.sum(), torch.zeros(3, dtype=torch.float64), torch.zeros(4))


def test_rel_error_values():
    assert rel_error(torch.ones(3), torch.ones(3)) == 0.0
    assert rel_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert math.isclose(rel_error(torch.tensor([1.0]), torch.tensor([3.0])), 2.0 / 4.0)
    assert math.isclose(rel_error(torch.tensor([0.0]), torch.tensor([1.0])), 1.0)
    assert rel_error(torch.zeros(2), torch.zeros(2)) == 0.0
    assert rel_error(torch.zeros(0), torch.zeros(0)) == 0.0
    assert isinstance(rel_error(torch.ones(2), torch.ones(2) * 1.5), float)


def test_rel_error_shape_mismatch():
    with pytest.raises(ValueError, match="one shape"):
        rel_error(torch.zeros(2, 3), torch.zeros(3, 2))


def test_check_pass_prints_stable_verdict(capsys):
    assert check("conv backward dx", 3.2e-11, 1e-8) is None
    assert capsys.readouterr().out == "conv backward dx: rel error < 1e-08 ✓\n"


def test_check_fail_prints_cross(capsys):
    check("conv backward dx", 1e-3, 1e-8)
    out = capsys.readouterr().out
    assert "✗" in out and out.startswith("conv backward dx:") and out.count("\n") == 1


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_check_fails_on_non_finite(value, capsys):
    check("loss", value, 1e-8)
    assert "✗" in capsys.readouterr().out


def test_check_true(capsys):
    check_true("shapes match", True)
    check_true("shapes match", False, "got (2, 3)")
    assert capsys.readouterr().out == "shapes match ✓\nshapes match ✗ got (2, 3)\n"


def test_autograd_gradients_match_hand_derived_ones_and_leave_inputs_alone():
    x = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    w = torch.tensor([0.5, 4.0, -1.0], dtype=torch.float64)
    gx, gw = autograd_gradients(lambda a, b: a * b, x, w)
    assert torch.equal(gx, w) and torch.equal(gw, x)  # d(sum a*b)/da = b, with dout = ones
    dout = torch.tensor([2.0, 0.0, -1.0], dtype=torch.float64)
    gx, gw = autograd_gradients(lambda a, b: a * b, x, w, dout=dout)
    assert torch.equal(gx, dout * w) and torch.equal(gw, dout * x)
    assert not x.requires_grad and x.grad is None  # the inputs were copied
