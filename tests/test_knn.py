"""A1 kNN: distances against torch.cdist, predictions against scikit-learn, tie rules, errors.

Graded tests use only the EECS 498 API (a knn.py written to that specification scores what it
implements); the course's extras (optional helpers, chunking, ``kneighbors``) are tested in
groups worth 0 points, skipped when the module under test does not have them.
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.neighbors import KNeighborsClassifier
from under_test import is_missing, load, rule_mark, rules_of

knn = load("A1_knn.knn")
KnnClassifier = knn.KnnClassifier
compute_distances_two_loops = knn.compute_distances_two_loops
compute_distances_one_loop = knn.compute_distances_one_loop
compute_distances_no_loops = knn.compute_distances_no_loops
knn_cross_validate = knn.knn_cross_validate
knn_get_best_k = knn.knn_get_best_k
predict_labels = knn.predict_labels

DISTANCE_NAMES = ["compute_distances_two_loops", "compute_distances_one_loop", "compute_distances_no_loops"]
DISTANCES = [compute_distances_two_loops, compute_distances_one_loop, compute_distances_no_loops]

# Score groups of `python -m course.grade` (README, "For teachers"): points are each group's total.
TWO_LOOPS = pytest.mark.grade("distances: two loops", points=3)
ONE_LOOP = pytest.mark.grade("distances: one loop", points=3)
NO_LOOPS = pytest.mark.grade("distances: no loops", points=4)
VOTING = pytest.mark.grade("voting", points=4)
CLASSIFIER = pytest.mark.grade("classifier", points=3)
CROSS_VALIDATION = pytest.mark.grade("cross-validation", points=3)
OPTIONAL = pytest.mark.grade("optional helpers and given extras", points=0)
GRADE_OF_DISTANCE = dict(zip(DISTANCE_NAMES, [TWO_LOOPS, ONE_LOOP, NO_LOOPS], strict=True))
# The rules each docstring states: how many Python loops, and what it may not call.
NOT_LIBRARY = ("cdist", "norm", "pdist", "nn", "vector_norm", "pairwise_distance")
LOOPS_ALLOWED = {"compute_distances_two_loops": 2, "compute_distances_one_loop": 1, "compute_distances_no_loops": 0}


def course_extra(owner, name: str):
    """``owner.name``, or skip: the course's knn.py has it, one written to the EECS 498 spec need not."""
    if not hasattr(owner, name) or is_missing(getattr(owner, name)):
        pytest.skip(f"{name} is an extra of the course's knn.py (not in the EECS 498 API)")
    return getattr(owner, name)


@pytest.fixture(scope="module")
def digits():
    """sklearn's 8x8 digits as (N, 1, 8, 8) float tensors: 1200 train, 597 test."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float64).reshape(-1, 1, 8, 8)
    y = torch.tensor(y)
    return x[:1200], y[:1200], x[1200:], y[1200:]




@pytest.mark.parametrize("name", [pytest.param(n, marks=rule_mark(GRADE_OF_DISTANCE[n])) for n in DISTANCE_NAMES])
def test_distance_rules(name):
    """The docstrings' rules: the stated number of loops, and no library distance (torch.cdist, torch.norm...)."""
    rules_of("A1_knn.knn", name, loops=LOOPS_ALLOWED[name], forbid=NOT_LIBRARY)


@pytest.mark.parametrize("name", [pytest.param(n, marks=GRADE_OF_DISTANCE[n]) for n in DISTANCE_NAMES])
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4)])
def test_distances_match_cdist(name, shape):
    fn = getattr(knn, name)
    gen = torch.Generator().manual_seed(0)
    x_train = torch.randn(7, *shape, generator=gen, dtype=torch.float64)
    x_test = torch.randn(4, *shape, generator=gen, dtype=torch.float64)
    expected = torch.cdist(x_train.reshape(7, -1), x_test.reshape(4, -1))
    dists = fn(x_train, x_test)
    assert dists.shape == (7, 4)
    torch.testing.assert_close(dists, expected, rtol=1e-10, atol=1e-10)


@NO_LOOPS
def test_three_versions_equal_on_images():
    gen = torch.Generator().manual_seed(1)
    x_train = torch.rand(30, 3, 5, 5, generator=gen)
    x_test = torch.rand(11, 3, 5, 5, generator=gen)
    two, one, none = (fn(x_train, x_test) for fn in DISTANCES)
    torch.testing.assert_close(two, one, rtol=0, atol=0)
    torch.testing.assert_close(one, none, rtol=1e-5, atol=1e-5)


@NO_LOOPS
def test_distance_of_a_point_to_itself_is_zero_not_nan():
    # Seeded: |x|^2 + |x|^2 - 2 x.x cancels to float32 rounding, whose square root reached 1.4e-3 on
    # 33 of 2,000 unseeded draws; the test checks no-nan and near-zero, not luck with the rounding.
    x = torch.rand(6, 10, generator=torch.Generator().manual_seed(0))
    d = compute_distances_no_loops(x, x)
    assert torch.isfinite(d).all()
    assert d.diagonal().abs().max() < 1e-3


@VOTING
def test_predict_labels_by_hand():
    # train points at 0, 1, 2, 10 on a line; test points at 0.4 and 9.
    x_train = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    y_train = torch.tensor([3, 1, 1, 0])
    x_test = torch.tensor([[0.4], [9.0]])
    dists = compute_distances_no_loops(x_train, x_test)
    assert predict_labels(dists, y_train, k=1).tolist() == [3, 0]
    assert predict_labels(dists, y_train, k=3).tolist() == [1, 1]


@VOTING
def test_class_ties_go_to_the_smallest_label():
    x_train = torch.tensor([[-1.0], [1.0]])
    for labels in ([5, 2], [2, 5]):
        dists = compute_distances_no_loops(x_train, torch.tensor([[0.0]]))
        assert predict_labels(dists, torch.tensor(labels), k=2).tolist() == [2]


# Four training points at distance 1 from the test point; k=2 must pick indices 0 and 1.
SQUARE = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [5.0, 5.0]])


@CLASSIFIER
def test_distance_ties_go_to_the_lowest_training_index():
    for order in ([0, 1, 2, 3], [3, 2, 1, 0]):
        clf = KnnClassifier(SQUARE, torch.tensor(order + [9]))
        assert clf.predict(torch.zeros(1, 2), k=2).tolist() == [min(order[:2])]


@OPTIONAL
def test_kneighbors_breaks_distance_ties_by_the_lowest_training_index():
    kneighbors = course_extra(KnnClassifier(SQUARE, torch.tensor([0, 1, 2, 3, 9])), "kneighbors")
    idx = kneighbors(torch.zeros(1, 2), k=2)
    assert idx.tolist() == [[0, 1]]
    assert kneighbors(torch.tensor([[4.0, 4.0], [0.9, 0.0]]), k=5)[:, 0].tolist() == [4, 0]


@OPTIONAL
def test_optional_vote_breaks_class_ties_by_the_smallest_label():
    vote = course_extra(knn, "vote")
    assert vote(torch.tensor([[4, 2, 2, 4], [7, 5, 9, 1]])).tolist() == [2, 1]


@OPTIONAL
def test_optional_nearest_indices_matches_stable_sort_on_heavy_ties():
    nearest_indices = course_extra(knn, "nearest_indices")
    gen = torch.Generator().manual_seed(2)
    d = torch.randint(0, 4, (50, 40), generator=gen).float()
    for k in (1, 3, 7, 40):
        expected = torch.sort(d, dim=1, stable=True).indices[:, :k]
        got = nearest_indices(d, k)
        assert torch.equal(got.sort(dim=1).values, expected.sort(dim=1).values)


@OPTIONAL
def test_optional_squared_distances_match_cdist():
    squared_distances = course_extra(knn, "squared_distances")
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(6, 5, generator=gen, dtype=torch.float64), torch.randn(4, 5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(squared_distances(a, b), torch.cdist(a, b) ** 2)
    torch.testing.assert_close(squared_distances(a, b, (b * b).sum(dim=1)), torch.cdist(a, b) ** 2)


@CLASSIFIER
@pytest.mark.parametrize("k", [1, 3, 5, 10, 20])
def test_predictions_identical_to_sklearn_on_jittered_digits(digits, k):
    """With a tiny jitter no two distances tie, so the neighbour sets are unique."""
    x_train, y_train, x_test, _ = digits
    gen = torch.Generator().manual_seed(k)
    x_train = x_train + 1e-3 * torch.rand(x_train.shape, generator=gen, dtype=torch.float64)
    x_test = x_test + 1e-3 * torch.rand(x_test.shape, generator=gen, dtype=torch.float64)
    ours = KnnClassifier(x_train, y_train).predict(x_test, k=k)
    sk = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(
        x_train.reshape(1200, -1).numpy(), y_train.numpy())
    expected = sk.predict(x_test.reshape(len(x_test), -1).numpy())
    np.testing.assert_array_equal(ours.numpy(), expected)


@VOTING
@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_predictions_match_sklearn_on_raw_digits_except_exact_ties(digits, k):
    """Raw digits have integer pixels, so exact distance ties occur.  sklearn breaks
    them in no documented order; we take the lowest index.  Any disagreement must be
    a test point whose k-th and (k+1)-th distances are equal."""
    x_train, y_train, x_test, _ = digits
    dists = compute_distances_no_loops(x_train, x_test)
    ours = predict_labels(dists, y_train, k=k).numpy()
    sk = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(
        x_train.reshape(1200, -1).numpy(), y_train.numpy())
    expected = sk.predict(x_test.reshape(len(x_test), -1).numpy())
    sorted_d = dists.T.sort(dim=1).values
    ambiguous = (sorted_d[:, k] == sorted_d[:, k - 1]).numpy()
    differ = ours != expected
    assert not (differ & ~ambiguous).any()
    assert differ.sum() <= 3


@OPTIONAL
def test_chunking_does_not_change_predictions(digits):
    x_train, y_train, x_test, _ = digits
    clf = KnnClassifier(x_train, y_train)
    if "chunk_size" not in clf.predict.__code__.co_varnames:
        pytest.skip("chunk_size is an extra of the course's KnnClassifier.predict")
    whole = clf.predict(x_test, k=5, chunk_size=10_000)
    for chunk in (1, 7, 64):
        assert torch.equal(clf.predict(x_test, k=5, chunk_size=chunk), whole)


@CLASSIFIER
def test_check_accuracy_prints_and_returns_percent(digits, capsys):
    x_train, y_train, x_test, y_test = digits
    acc = KnnClassifier(x_train, y_train).check_accuracy(x_test, y_test, k=1)
    out = capsys.readouterr().out
    assert 90.0 < acc <= 100.0
    assert out.startswith("Got ") and f"accuracy is {acc:.2f}%" in out
    assert KnnClassifier(x_train, y_train).check_accuracy(x_test, y_test, k=1, quiet=True) == acc
    assert capsys.readouterr().out == ""


@CROSS_VALIDATION
def test_cross_validation_shapes_and_best_k(digits):
    x_train, y_train, _, _ = digits
    k_choices = [1, 3, 5, 8]
    result = knn_cross_validate(x_train[:300], y_train[:300], num_folds=4, k_choices=k_choices)
    assert list(result) == k_choices
    assert all(len(v) == 4 for v in result.values())
    assert all(0.0 <= a <= 100.0 for v in result.values() for a in v)
    # Fold 0 with k=1 predicted directly must agree with the cross-validation number.
    clf = KnnClassifier(x_train[75:300], y_train[75:300])
    assert clf.check_accuracy(x_train[:75], y_train[:75], k=1, quiet=True) == pytest.approx(result[1][0])
    best = knn_get_best_k(result)
    means = {k: sum(v) / len(v) for k, v in result.items()}
    assert means[best] == max(means.values())


@CROSS_VALIDATION
def test_cross_validation_with_uneven_folds():
    x = torch.rand(10, 3)
    y = torch.arange(10) % 2
    result = knn_cross_validate(x, y, num_folds=4, k_choices=[1, 2])
    assert all(len(v) == 4 for v in result.values())


@CROSS_VALIDATION
def test_best_k_ties_go_to_the_smallest_k():
    assert knn_get_best_k({10: [50.0, 60.0], 3: [60.0, 50.0], 5: [40.0, 40.0]}) == 3


@pytest.mark.grade("input checks (given code)", points=0)
def test_clear_errors_on_bad_input():
    x_train = torch.rand(5, 2, 2)
    y_train = torch.tensor([0, 1, 0, 1, 1])
    with pytest.raises(ValueError, match="same shape after the first dim"):
        compute_distances_no_loops(x_train, torch.rand(3, 4))
    with pytest.raises(ValueError, match=r"y_train must have shape \(5,\)"):
        KnnClassifier(x_train, y_train[:4])
    with pytest.raises(TypeError, match="integer class indices"):
        KnnClassifier(x_train, y_train.float())
    with pytest.raises(TypeError, match="floating-point"):
        KnnClassifier(x_train.long(), y_train)
    clf = KnnClassifier(x_train, y_train)
    with pytest.raises(ValueError, match="k must be >= 1"):
        clf.predict(torch.rand(2, 2, 2), k=0)
    with pytest.raises(ValueError, match=r"k must be <= the number of training points \(5\)"):
        clf.predict(torch.rand(2, 2, 2), k=6)
    with pytest.raises(ValueError, match=r"x_test must have shape \(num_test, 2, 2\)"):
        clf.predict(torch.rand(2, 4))
    dists = compute_distances_no_loops(x_train, torch.rand(3, 2, 2))
    with pytest.raises(ValueError, match="k must be <= "):
        predict_labels(dists, y_train, k=9)
    with pytest.raises(ValueError, match="num_folds"):
        knn_cross_validate(x_train, y_train, num_folds=1)


@pytest.mark.grade("input checks (given code)", points=0)
def test_empty_and_non_finite_inputs_get_the_modules_own_errors():
    x_train = torch.rand(5, 2, 2)
    y_train = torch.tensor([0, 1, 0, 1, 1])
    with pytest.raises(ValueError, match="at least one training point"):
        KnnClassifier(torch.rand(0, 2, 2), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="k_to_accuracies is empty"):
        knn_get_best_k({})
    with pytest.raises(ValueError, match="k_choices is empty"):
        knn_cross_validate(x_train, y_train, num_folds=2, k_choices=[])
    with pytest.raises(ValueError, match=r"no fold accuracies for k = \[1\]"):
        knn_get_best_k({1: [], 3: [50.0]})
    bad = x_train.clone()
    bad[3, 1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"x_train holds 1 NaN or infinite value\(s\), the first at index \(3, 1, 0\)"):
        KnnClassifier(bad, y_train)
    with pytest.raises(ValueError, match="x_test holds"):
        compute_distances_no_loops(x_train, torch.full((2, 2, 2), float("inf")))


@pytest.mark.grade("input checks (given code)", points=0)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_one_non_finite_value_is_found_and_the_largest_finite_values_pass(dtype, value):
    """The finiteness check reads only the minimum and the maximum (one pass, no boolean copy of the data)."""
    big = torch.finfo(dtype).max
    x_train = torch.full((4, 3), big, dtype=dtype)
    x_train[0, 0] = -big
    y_train = torch.tensor([0, 1, 0, 1])
    KnnClassifier(x_train, y_train)
    x_train[3, 2] = value
    with pytest.raises(ValueError, match=r"x_train holds 1 NaN or infinite value\(s\), the first at index \(3, 2\)"):
        KnnClassifier(x_train, y_train)
    dists = torch.ones(4, 2, dtype=dtype)
    dists[3, 1] = value
    with pytest.raises(ValueError, match="dists holds NaN or infinite values"):
        predict_labels(dists, y_train, k=1)


@OPTIONAL
def test_an_empty_test_batch_predicts_nothing():
    clf = KnnClassifier(torch.rand(5, 2, 2), torch.tensor([0, 1, 0, 1, 1]))
    assert clf.predict(torch.rand(0, 2, 2), k=3).shape == (0,)


@OPTIONAL
def test_votes_are_sized_by_the_classes_present_not_by_the_largest_label(monkeypatch):
    """One label of 10**9 used to size a (num_test, 10**9) vote table (16 GB for two test points).

    The given code renumbers the labels before the vote; the optional ``vote`` sees the table size.
    """
    vote = course_extra(knn, "vote")
    sizes = []

    def counting_vote(neighbor_labels, num_classes=None):
        sizes.append(num_classes)
        return vote(neighbor_labels, num_classes)

    monkeypatch.setattr(knn, "vote", counting_vote)
    x_train = torch.arange(8.0).reshape(8, 1)
    y_train = torch.tensor([7, 7, 7, 10**9, 10**9, 10**9, 10**9, 3])
    x_test = torch.tensor([[0.4], [5.2]])
    by_classifier = KnnClassifier(x_train, y_train).predict(x_test, k=3)
    by_dists = predict_labels(compute_distances_no_loops(x_train, x_test), y_train, k=3)
    folds = knn_cross_validate(x_train, y_train, num_folds=2, k_choices=[1, 3])
    assert by_classifier.tolist() == by_dists.tolist() == [7, 10**9]
    assert set(folds) == {1, 3}
    assert sizes and max(sizes) == 3, f"vote tables sized {sizes}: by the 3 classes present"


@pytest.mark.grade("input checks (given code)", points=0)
def test_no_accuracy_of_no_test_points_and_no_vote_over_nan_distances():
    clf = KnnClassifier(torch.rand(5, 2, 2), torch.tensor([0, 1, 0, 1, 1]))
    with pytest.raises(ValueError, match="x_test is empty"):
        clf.check_accuracy(torch.rand(0, 2, 2), torch.zeros(0, dtype=torch.long), quiet=True)
    dists = torch.rand(5, 2)
    dists[1, 0] = float("nan")
    with pytest.raises(ValueError, match="dists holds NaN"):
        predict_labels(dists, torch.tensor([0, 1, 0, 1, 1]), k=1)
