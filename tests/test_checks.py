"""Tests for helpers.checks: one clear error per kind of bad labels."""

import pytest
import torch

from helpers.checks import check_labels


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
