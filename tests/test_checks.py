"""Tests for helpers.checks: one clear error per kind of bad labels, counts, numbers and boxes."""

import math

import pytest
import torch

from helpers.checks import check_boxes, check_gt_boxes, check_int, check_labels, check_real

# helpers/checks.py is given code.  A student handout also gets this file whenever its assignment
# folder holds a `checks.py` (course.student copies tests/test_<module>.py for every module): worth 0 points.
pytestmark = pytest.mark.grade("given code: shared input checks", points=0)


def test_good_labels_pass():
    check_labels(torch.tensor([0, 2, 1]), 3, num_classes=3)
    check_labels(torch.tensor([7, 0], dtype=torch.int32), 2)  # no upper bound without num_classes
    check_labels(torch.zeros(0, dtype=torch.long), 0, num_classes=3)  # no examples, nothing to range-check


@pytest.mark.parametrize("y, num, num_classes, error, pattern", [
    ([0, 1], 2, None, TypeError, r"y must be a torch.Tensor of shape \(2,\), got list"),
    (torch.tensor([0, 1]), 3, None, ValueError, r"y must have shape \(3,\) to match the data's 3 examples, got \(2,\)"),
    (torch.tensor([[0, 1]]), 2, None, ValueError, r"shape \(2,\)"),
    (torch.tensor([0.0, 1.0]), 2, None, TypeError, "integer class indices, got torch.float32"),
    (torch.tensor([True, False]), 2, None, TypeError, "integer class indices, got torch.bool"),
    (torch.tensor([0, -1]), 2, None, ValueError, r"class indices >= 0, got values from -1 to 0"),
    (torch.tensor([0, 3]), 2, 3, ValueError,
     r"in \[0, 2\]: labels must lie in \[0, C\) = \[0, 3\), got values from 0 to 3"),
    (torch.tensor([-2, 1]), 2, 3, ValueError, r"got values from -2 to 1"),
])
def test_bad_labels_raise_clear_errors(y, num, num_classes, error, pattern):
    with pytest.raises(error, match=pattern):
        check_labels(y, num, num_classes)


def test_the_name_appears_in_the_message():
    with pytest.raises(ValueError, match="^y_val must"):
        check_labels(torch.tensor([5]), 1, 2, name="y_val")


def test_check_int_returns_good_ints():
    assert check_int(3, "n") == 3
    assert check_int(-7, "offset") == -7  # no minimum: any int
    assert check_int(1, "batch_size", minimum=1) == 1


@pytest.mark.parametrize("value, minimum, error, pattern", [
    (2.0, None, TypeError, "n must be an int, got 2.0"),
    ("3", None, TypeError, "n must be an int, got '3'"),
    (True, None, TypeError, "n must be an int, got True"),  # a bool is not a count
    (None, 1, TypeError, "n must be an int, got None"),
    (0, 1, ValueError, "n must be >= 1, got 0"),
    (-1, 0, ValueError, "n must be >= 0, got -1"),
])
def test_check_int_errors(value, minimum, error, pattern):
    with pytest.raises(error, match=pattern):
        check_int(value, "n", minimum)


def test_check_real_returns_floats():
    assert check_real(1, "lr", low=0) == 1.0 and isinstance(check_real(1, "lr"), float)
    assert check_real(0.0, "p", 0, 1) == 0.0 and check_real(1.0, "p", 0, 1) == 1.0  # closed ends
    assert check_real(-5.5, "shift") == -5.5  # unbounded


@pytest.mark.parametrize("value, low, high, low_open, error, pattern", [
    ("0.1", None, None, False, TypeError, "x must be a real number, got '0.1'"),
    (False, None, None, False, TypeError, "x must be a real number, got False"),
    (torch.tensor(0.5), None, None, False, TypeError, "x must be a real number"),
    (float("nan"), None, None, False, ValueError, r"x must lie in \[-inf, inf\], got nan"),
    (1.5, 0, 1, False, ValueError, r"x must lie in \[0, 1\], got 1.5"),
    (0.0, 0, None, True, ValueError, r"x must lie in \(0, inf\], got 0.0"),
])
def test_check_real_errors(value, low, high, low_open, error, pattern):
    with pytest.raises(error, match=pattern):
        check_real(value, "x", low, high, low_open=low_open)


def test_check_gt_boxes_accepts_the_course_format_and_names_each_mistake():
    good = torch.tensor([[[1.0, 2.0, 5.0, 9.0, 2.0], [-1.0] * 5], [[-1.0] * 5, [-1.0] * 5]])
    check_gt_boxes(good, num_classes=3)
    check_gt_boxes(good[0], num_classes=3, batched=False)
    check_gt_boxes(torch.zeros(2, 0, 5))  # no objects at all
    cases = [
        ([[1.0, 2.0, 5.0, 9.0]], ValueError, r"shape \(B, N, 5\)"),
        ([[[1, 2, 5, 9, 0]]], TypeError, "floating-point"),
        ([[[1.0, 2.0, 5.0, 9.0, -1.0]]], ValueError, "padding rows that are all -1"),
        ([[[1.0, 2.0, 5.0, 9.0, 0.5]]], ValueError, "integer class ids"),
        ([[[1.0, 2.0, 5.0, 9.0, 3.0]]], ValueError, r"class ids must lie in \[0, 3\)"),
        ([[[5.0, 2.0, 1.0, 9.0, 0.0]]], ValueError, "x2 >= x1"),
        ([[[1.0, 2.0, math.inf, 9.0, 0.0]]], ValueError, "finite"),
    ]
    for rows, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            check_gt_boxes(torch.tensor(rows), num_classes=3)
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_gt_boxes([[1.0, 2.0, 5.0, 9.0, 0.0]])


def test_check_boxes_names_the_first_malformed_row():
    check_boxes(torch.zeros(0, 4))
    check_boxes(torch.tensor([[0, 1.0, 1.0, 3.0, 2.0]]), "rois", columns=5)  # (batch_index, x1, y1, x2, y2)
    with pytest.raises(ValueError, match=r"rois must have shape \(K, 5\)"):
        check_boxes(torch.zeros(2, 4), "rois", columns=5)
    with pytest.raises(ValueError, match=r"row 1 is \[3.0, 0.0, 1.0, 1.0\] \(1 malformed box\(es\)\)"):
        check_boxes(torch.tensor([[0.0, 0.0, 1.0, 1.0], [3.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(TypeError, match=r"convert with .float\(\)"):
        check_boxes(torch.zeros(1, 4, dtype=torch.int64))
