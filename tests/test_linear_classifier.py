"""A2 linear classifiers: losses vs torch and numeric gradients, naive == vectorised, training, search, errors.

Graded tests use only the EECS 498 API (a linear_classifier.py written to that specification
scores what it implements); the course's extras (``lr_decay``, ``BEST_TRAINING``) are tested in the
group worth 0 points, skipped when the module under test does not have them.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from under_test import has, load, rules_of
from worker_tools import accepts, arguments_after, is_instance, same_object, worker_folder

from helpers.gradcheck import compute_numeric_gradient, rel_error

MODULE = "A2_linear.linear_classifier"
lc = load(MODULE)
LinearClassifier = lc.LinearClassifier
LinearSVM = lc.LinearSVM
Softmax = lc.Softmax
predict_linear_classifier = lc.predict_linear_classifier
sample_batch = lc.sample_batch
svm_loss_naive = lc.svm_loss_naive
svm_loss_vectorized = lc.svm_loss_vectorized
softmax_loss_naive = lc.softmax_loss_naive
softmax_loss_vectorized = lc.softmax_loss_vectorized
train_linear_classifier = lc.train_linear_classifier

# The four losses by name (tests are parametrized by names, never by the module's function objects).
SVM_LOSSES = ("svm_loss_naive", "svm_loss_vectorized")
SOFTMAX_LOSSES = ("softmax_loss_naive", "softmax_loss_vectorized")
ALL_LOSSES = SVM_LOSSES + SOFTMAX_LOSSES
SHAPES = [(1, 3, 2), (1, 5, 4), (6, 4, 2), (17, 8, 10), (40, 30, 7)]  # (N, D, C)

# Score groups of `python -m course.grade` (README, "For teachers"): points are each group's total.
# A test needing several solution functions counts for the one it is mainly about.
LOSS_GROUPS = {"svm_loss_naive": ("svm loss: naive", 4), "svm_loss_vectorized": ("svm loss: vectorized", 4),
               "softmax_loss_naive": ("softmax loss: naive", 4),
               "softmax_loss_vectorized": ("softmax loss: vectorized", 4)}
GRADE_OF_LOSS = {name: pytest.mark.grade(group, points=points) for name, (group, points) in LOSS_GROUPS.items()}
# The rule checks of each loss: same group and points; a broken rule scores the group 0.
RULE_OF_LOSS = {name: pytest.mark.grade(group, points=points, rule=True)
                for name, (group, points) in LOSS_GROUPS.items()}
SVM_VECTORIZED = GRADE_OF_LOSS["svm_loss_vectorized"]
SOFTMAX_VECTORIZED = GRADE_OF_LOSS["softmax_loss_vectorized"]
TRAINING = pytest.mark.grade("sample_batch and training", points=4)
PREDICTION = pytest.mark.grade("prediction and classifiers", points=2)
SEARCH = pytest.mark.grade("hyper-parameter search", points=3)
GIVEN = pytest.mark.grade("input checks and plumbing (given code)", points=0)

# The rules the losses' docstrings state: written by hand (no autograd, no ready-made loss or softmax),
# and the vectorized ones without a Python loop.  Other tools of torch.nn (F.one_hot) are allowed.
NOT_BY_HAND = ("backward", "grad", "autograd", "requires_grad", "requires_grad_", "cross_entropy",
               "multi_margin_loss", "multilabel_margin_loss", "nll_loss", "log_softmax", "softmax",
               "CrossEntropyLoss", "MultiMarginLoss", "NLLLoss")
LOOPS_ALLOWED = {"svm_loss_naive": None, "svm_loss_vectorized": 0, "softmax_loss_naive": None,
                 "softmax_loss_vectorized": 0}


def course_extra(owner, name: str):
    """``owner.name``, or skip: the course's module has it, one written to the EECS 498 spec need not."""
    if not has(owner, name):
        pytest.skip(f"{name} is an extra of the course's linear_classifier.py (not in the EECS 498 API)")
    return getattr(owner, name)


def with_decay(cls, lr_decay):
    """``cls(lr_decay=lr_decay)``, or skip where the classifier has no learning-rate decay (EECS 498's)."""
    if not accepts(cls, "lr_decay"):
        pytest.skip("lr_decay is an extra of the course's LinearClassifier (not in the EECS 498 API)")
    return cls(lr_decay=lr_decay)


def graded(losses):
    """``losses`` (names) as ``pytest.param``s, each carrying its own function's grade marker."""
    return [pytest.param(name, marks=GRADE_OF_LOSS[name]) for name in losses]


def random_problem(N, D, C, seed=0, dtype=torch.float64, scale=0.5):
    """Random ``W (D, C)``, ``X (N, D)`` and labels ``y (N,)``; scores of order one, so margins both ways."""
    gen = torch.Generator().manual_seed(seed)
    W = scale * torch.randn(D, C, generator=gen, dtype=dtype)
    X = torch.randn(N, D, generator=gen, dtype=dtype)
    y = torch.randint(C, (N,), generator=gen)
    return W, X, y


def svm_reference(W, X, y, reg):
    """Multiclass hinge loss, margin 1, via F.multi_margin_loss (which also divides by C) + reg * sum(W^2)."""
    return F.multi_margin_loss(X @ W, y, p=1, margin=1.0) * W.shape[1] + reg * (W * W).sum()


def softmax_reference(W, X, y, reg):
    return F.cross_entropy(X @ W, y) + reg * (W * W).sum()


REFERENCE = {name: svm_reference for name in SVM_LOSSES} | {name: softmax_reference for name in SOFTMAX_LOSSES}


def blobs(n_per_class=60, num_classes=3, dim=5, seed=0, spread=0.5):
    """Linearly separable Gaussian blobs (centres far apart), with a bias column of ones: X (N, dim + 1)."""
    gen = torch.Generator().manual_seed(seed)
    centres = 4.0 * torch.eye(num_classes, dim)
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    X = centres[y] + spread * torch.randn(len(y), dim, generator=gen)
    order = torch.randperm(len(y), generator=gen)
    X = torch.cat([X, torch.ones(len(y), 1)], dim=1)
    return X[order], y[order]


def blob_data():
    """Blobs split 180 / 60, with 12 validation labels changed: validation accuracy is at most 80%."""
    X, y = blobs(n_per_class=80)
    y_val = y[180:].clone()
    y_val[:12] = (y_val[:12] + 1) % 3
    return {"X_train": X[:180], "y_train": y[:180], "X_val": X[180:], "y_val": y_val}


# --------------------------------------------------------------------------- losses: values and gradients


@pytest.mark.parametrize("name", [pytest.param(n, marks=RULE_OF_LOSS[n]) for n in ALL_LOSSES])
def test_loss_rules(name):
    """The docstrings' rules: no autograd and no library loss in any loss; no Python loop in the vectorized ones."""
    rules_of(MODULE, name, loops=LOOPS_ALLOWED[name], forbid=NOT_BY_HAND)


# Naive against vectorized: the naive version is the reference, so these count for the vectorized one.
@pytest.mark.parametrize("naive_name, vectorized_name", [pytest.param(*SVM_LOSSES, marks=SVM_VECTORIZED),
                                                         pytest.param(*SOFTMAX_LOSSES, marks=SOFTMAX_VECTORIZED)],
                         ids=["svm", "softmax"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}-D{}-C{}".format(*s))
def test_naive_equals_vectorized(naive_name, vectorized_name, shape):
    naive, vectorized = getattr(lc, naive_name), getattr(lc, vectorized_name)
    for seed, reg in ((0, 0.0), (1, 0.3)):
        W, X, y = random_problem(*shape, seed=seed)
        loss_n, dW_n = naive(W, X, y, reg)
        loss_v, dW_v = vectorized(W, X, y, reg)
        assert loss_n.shape == loss_v.shape == () and dW_n.shape == dW_v.shape == W.shape
        assert loss_n.dtype == loss_v.dtype == dW_v.dtype == torch.float64
        torch.testing.assert_close(loss_v, loss_n, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(dW_v, dW_n, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("loss_name", graded(ALL_LOSSES))
@pytest.mark.parametrize("shape", [(1, 3, 2), (6, 4, 2), (17, 8, 10)], ids=lambda s: "N{}-D{}-C{}".format(*s))
def test_loss_and_gradient_match_torch_autograd(loss_name, shape):
    loss_fn = getattr(lc, loss_name)
    W, X, y = random_problem(*shape, seed=3)
    reg = 0.05
    loss, dW = loss_fn(W, X, y, reg)
    W_ref = W.clone().requires_grad_(True)
    expected = REFERENCE[loss_name](W_ref, X, y, reg)
    expected.backward()
    assert rel_error(loss, expected.detach()) < 1e-12
    assert rel_error(dW, W_ref.grad) < 1e-10


@pytest.mark.parametrize("loss_name", graded(ALL_LOSSES))
@pytest.mark.parametrize("shape", [(1, 3, 2), (9, 6, 4), (8, 3, 10)], ids=lambda s: "N{}-D{}-C{}".format(*s))
def test_gradient_matches_numeric_gradient(loss_name, shape):
    loss_fn = getattr(lc, loss_name)
    W, X, y = random_problem(*shape, seed=4)
    reg = 0.1
    _, dW = loss_fn(W, X, y, reg)
    numeric = compute_numeric_gradient(lambda w: loss_fn(w, X, y, reg)[0], W)
    assert rel_error(dW, numeric) < 1e-7


@GIVEN
def test_reference_problems_have_margins_on_both_sides():
    """Guard for the gradient tests above: some hinge terms are active, some are not."""
    W, X, y = random_problem(17, 8, 10, seed=3)
    scores = X @ W
    margins = scores - scores.gather(1, y[:, None]) + 1
    margins[torch.arange(17), y] = -1
    assert (margins > 0).any() and (margins < 0).any()


@pytest.mark.parametrize("loss_name", graded(ALL_LOSSES))
def test_regularization_adds_reg_times_squared_norm(loss_name):
    loss_fn = getattr(lc, loss_name)
    W, X, y = random_problem(7, 5, 3, seed=5)
    loss0, dW0 = loss_fn(W, X, y, 0.0)
    loss1, dW1 = loss_fn(W, X, y, 0.25)
    torch.testing.assert_close(loss1 - loss0, 0.25 * (W * W).sum(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dW1 - dW0, 0.5 * W, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("loss_name", graded(SVM_LOSSES))
def test_svm_loss_at_zero_weights_is_num_classes_minus_one(loss_name):
    loss_fn = getattr(lc, loss_name)
    _, X, y = random_problem(11, 6, 5, seed=6)
    loss, dW = loss_fn(torch.zeros(6, 5, dtype=torch.float64), X, y, 1.0)
    assert loss.item() == pytest.approx(4.0, abs=1e-12)
    # Every wrong class violates its margin: column j gains x_i, the true column loses (C - 1) x_i.
    onehot = F.one_hot(y, 5).double()
    expected = X.T @ (1 - 5 * onehot) / 11
    torch.testing.assert_close(dW, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("loss_name", graded(SOFTMAX_LOSSES))
def test_softmax_loss_at_zero_weights_is_log_num_classes(loss_name):
    loss_fn = getattr(lc, loss_name)
    _, X, y = random_problem(11, 6, 5, seed=6)
    loss, _ = loss_fn(torch.zeros(6, 5, dtype=torch.float64), X, y, 0.0)
    assert loss.item() == pytest.approx(math.log(5), abs=1e-12)


@SVM_VECTORIZED
def test_svm_margin_exactly_zero_counts_as_satisfied_in_both_versions():
    # scores = [0, -1] with label 0: the margin of class 1 is -1 - 0 + 1 = 0, no loss, no gradient.
    W = torch.tensor([[0.0, -1.0]], dtype=torch.float64)
    X = torch.ones(1, 1, dtype=torch.float64)
    y = torch.tensor([0])
    for name in SVM_LOSSES:
        loss, dW = getattr(lc, name)(W, X, y, 0.0)
        assert loss.item() == 0.0
        assert torch.equal(dW, torch.zeros_like(W))


@pytest.mark.parametrize("loss_name", graded(ALL_LOSSES))
def test_float32_inputs_give_float32_results_close_to_float64(loss_name):
    loss_fn = getattr(lc, loss_name)
    W, X, y = random_problem(12, 7, 4, seed=7)
    loss64, dW64 = loss_fn(W, X, y, 0.01)
    loss32, dW32 = loss_fn(W.float(), X.float(), y, 0.01)
    assert loss32.dtype == dW32.dtype == torch.float32
    assert rel_error(loss32, loss64) < 1e-5 and rel_error(dW32, dW64) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loss_name", graded(ALL_LOSSES))
def test_huge_scores_give_finite_exact_losses(loss_name, dtype):
    """Scores of order 1e4 overflow exp() in both precisions unless the maximum is subtracted first."""
    loss_fn = getattr(lc, loss_name)
    W, X, y = random_problem(9, 6, 5, seed=8, dtype=dtype, scale=3000.0)
    loss, dW = loss_fn(W, X, y, 0.0)
    assert torch.isfinite(loss) and torch.isfinite(dW).all()
    assert (X @ W).abs().max() > 1000
    expected = REFERENCE[loss_name](W.double(), X.double(), y, 0.0)
    assert rel_error(loss, expected) < 1e-5


@pytest.mark.parametrize("loss_name", graded(SOFTMAX_LOSSES))
def test_softmax_gradient_stays_finite_when_one_class_dominates(loss_name):
    loss_fn = getattr(lc, loss_name)
    W = torch.tensor([[1e6, 0.0, -1e6]], dtype=torch.float32)
    X = torch.ones(2, 1)
    y = torch.tensor([0, 2])
    loss, dW = loss_fn(W, X, y, 0.0)
    # Example 0 is right with probability 1 (loss 0); example 1 is off by 2e6 (loss 2e6).
    assert loss.item() == pytest.approx(1e6, rel=1e-6)
    torch.testing.assert_close(dW, torch.tensor([[0.5, 0.0, -0.5]]), rtol=0, atol=1e-6)


@SOFTMAX_VECTORIZED
def test_losses_do_not_modify_their_inputs():
    W, X, y = random_problem(8, 5, 4, seed=9)
    for name in ALL_LOSSES:
        after = arguments_after(getattr(lc, name), W, X, y, 0.1)  # the inputs as the call left them
        for before, left in zip((W, X, y), after[:3], strict=True):
            assert torch.equal(before, left), name


# --------------------------------------------------------------------------- sampling, training, prediction


@TRAINING
def test_sample_batch_shapes_and_pairs():
    X = torch.arange(20.0).reshape(10, 2)
    y = torch.arange(10)
    torch.manual_seed(0)
    X_batch, y_batch = sample_batch(X, y, num_train=10, batch_size=7)
    assert X_batch.shape == (7, 2) and y_batch.shape == (7,)
    assert X_batch.dtype == X.dtype and y_batch.dtype == y.dtype
    # Rows stay with their labels: row k of X is (2k, 2k + 1) with label k.
    torch.testing.assert_close(X_batch[:, 0], 2.0 * y_batch.float())


@TRAINING
def test_sample_batch_draws_with_replacement_from_the_first_num_train():
    X = torch.arange(100.0).reshape(50, 2)
    y = torch.arange(50)
    torch.manual_seed(1)
    _, y_batch = sample_batch(X, y, num_train=4, batch_size=200)
    assert y_batch.max() < 4
    assert set(y_batch.tolist()) == {0, 1, 2, 3}  # 200 draws hit each of 4 indices
    assert len(y_batch) == 200                    # more draws than examples: only possible with replacement
    torch.manual_seed(2)
    _, y_batch = sample_batch(X, y, num_train=50, batch_size=30)
    assert len(set(y_batch.tolist())) < 30        # 30 of 50 without a repeat: probability below 1e-4


@TRAINING
def test_sample_batch_is_repeatable_with_the_global_seed():
    X, y = torch.randn(30, 3), torch.arange(30)
    torch.manual_seed(5)
    first = sample_batch(X, y, 30, 10)
    torch.manual_seed(5)
    second = sample_batch(X, y, 30, 10)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


@GIVEN
@pytest.mark.parametrize("kwargs, error", [
    ({"num_train": 11, "batch_size": 2}, ValueError),
    ({"num_train": 0, "batch_size": 2}, ValueError),
    ({"num_train": 5, "batch_size": 0}, ValueError),
    ({"num_train": 5, "batch_size": 2.0}, TypeError),
])
def test_sample_batch_errors(kwargs, error):
    with pytest.raises(error, match="num_train|batch_size"):
        sample_batch(torch.randn(10, 3), torch.arange(10), **kwargs)


@GIVEN
def test_sample_batch_rejects_mismatched_x_and_y():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        sample_batch(torch.randn(10, 3), torch.arange(9), 5, 2)


@TRAINING
@pytest.mark.parametrize("loss_name", ["svm_loss_vectorized", "softmax_loss_vectorized"], ids=["svm", "softmax"])
def test_training_lowers_the_loss_and_separates_blobs(loss_name):
    loss_fn = getattr(lc, loss_name)
    X, y = blobs()
    torch.manual_seed(0)
    W, history = train_linear_classifier(loss_fn, None, X, y, learning_rate=1e-1, reg=1e-4,
                                         num_iters=200, batch_size=30)
    assert W.shape == (X.shape[1], 3) and W.dtype == X.dtype
    assert len(history) == 200 and all(isinstance(v, float) for v in history)
    assert sum(history[-20:]) / 20 < 0.2 * history[0]
    assert torch.equal(predict_linear_classifier(W, X), y)


@TRAINING
def test_training_starts_from_w():
    X, y = blobs(seed=1)
    W0 = torch.zeros(X.shape[1], 3)
    torch.manual_seed(0)
    W, _ = train_linear_classifier(svm_loss_vectorized, W0.clone(), X, y, 1e-2, 0.0, num_iters=5, batch_size=10)
    assert W.shape == W0.shape and not torch.equal(W, W0)


@GIVEN
def test_training_leaves_the_w_passed_in_unchanged():
    """The course's given code copies W first (EECS 498's updates the tensor passed in)."""
    X, y = blobs(seed=1)
    W0 = torch.zeros(X.shape[1], 3)
    torch.manual_seed(0)
    W, _ = train_linear_classifier(svm_loss_vectorized, W0, X, y, 1e-2, 0.0, num_iters=5, batch_size=10)
    assert torch.equal(W0, torch.zeros_like(W0))
    assert not torch.equal(W, W0)


@TRAINING
def test_default_initialisation_is_tiny_and_sized_by_the_labels():
    X = torch.randn(20, 4, dtype=torch.float64)
    y = torch.arange(20) % 6
    torch.manual_seed(0)
    W, history = train_linear_classifier(softmax_loss_vectorized, None, X, y, 1e-12, 0.0, num_iters=1, batch_size=5)
    assert W.shape == (4, 6) and W.dtype == torch.float64
    assert W.abs().max() < 1e-4
    assert history[0] == pytest.approx(math.log(6), abs=1e-3)


def unit_gradient(W, X_batch, y_batch, reg):
    """A fake loss with gradient 1 everywhere: each SGD step moves W by -learning_rate."""
    return W.sum(), torch.ones_like(W)


@TRAINING
def test_sgd_step():
    X, y = torch.randn(10, 2, dtype=torch.float64), torch.arange(10) % 2
    W0 = torch.zeros(2, 2, dtype=torch.float64)
    W, _ = train_linear_classifier(unit_gradient, W0, X, y, learning_rate=1.0, reg=0.0, num_iters=5, batch_size=5)
    torch.testing.assert_close(W, torch.full((2, 2), -5.0, dtype=torch.float64))


@GIVEN
def test_learning_rate_decay_schedule():
    X, y = torch.randn(10, 2, dtype=torch.float64), torch.arange(10) % 2
    model = with_decay(LinearClassifier, 0.5)
    model.loss = unit_gradient  # the classifier's loss, called back here while grading
    model.W = torch.zeros(2, 2, dtype=torch.float64)
    # 10 examples / batches of 5 = 2 iterations per epoch: steps 1, 1, then 0.5, 0.5, then 0.25.
    history = model.train(X, y, 1.0, 0.0, 5, 5)
    assert len(history) == 5
    torch.testing.assert_close(model.W, torch.full((2, 2), -3.25, dtype=torch.float64))
    model.W = torch.zeros(2, 2, dtype=torch.float64)  # the keyword overrides the classifier's decay
    model.train(X, y, 1.0, 0.0, 5, 5, lr_decay=1.0)
    torch.testing.assert_close(model.W, torch.full((2, 2), -5.0, dtype=torch.float64))


@GIVEN
@pytest.mark.parametrize("lr_decay, error", [(1.5, ValueError), (0.0, ValueError), ("0.5", TypeError)])
def test_learning_rate_decay_must_lie_in_zero_one(lr_decay, error):
    with pytest.raises(error, match="lr_decay"):
        with_decay(LinearSVM, lr_decay)
    with pytest.raises(error, match="lr_decay"):
        LinearSVM().train(*blobs(n_per_class=5), lr_decay=lr_decay)


@TRAINING
def test_training_prints_only_when_verbose(capsys):
    X, y = blobs(n_per_class=10)
    train_linear_classifier(svm_loss_vectorized, None, X, y, 1e-2, 0.0, num_iters=201, batch_size=10)
    assert capsys.readouterr().out == ""
    train_linear_classifier(svm_loss_vectorized, None, X, y, 1e-2, 0.0, num_iters=201, batch_size=10, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith("iteration 0 / 201: loss ")


@GIVEN
@pytest.mark.parametrize("kwargs, error", [
    ({"learning_rate": 0.0}, ValueError),
    ({"learning_rate": float("nan")}, ValueError),
    ({"learning_rate": "1e-3"}, TypeError),
    ({"reg": -1.0}, ValueError),
    ({"num_iters": 0}, ValueError),
    ({"batch_size": -3}, ValueError),
])
def test_training_rejects_bad_settings(kwargs, error):
    X, y = blobs(n_per_class=5)
    args = {"learning_rate": 1e-3, "reg": 0.0, "num_iters": 2, "batch_size": 4} | kwargs
    with pytest.raises(error):
        train_linear_classifier(svm_loss_vectorized, None, X, y, **args)


@GIVEN
def test_training_rejects_w_of_the_wrong_shape_or_dtype():
    X, y = blobs(n_per_class=5)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        train_linear_classifier(svm_loss_vectorized, torch.zeros(5, 3), X, y, num_iters=1)
    with pytest.raises(TypeError, match="dtype"):
        train_linear_classifier(svm_loss_vectorized, torch.zeros(6, 3, dtype=torch.float64), X, y, num_iters=1)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        train_linear_classifier(svm_loss_vectorized, torch.zeros(6, 2), X, y, num_iters=1)


@PREDICTION
def test_predict_takes_the_highest_score():
    W = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    X = torch.tensor([[0.1, 0.5, 0.2], [3.0, -1.0, 2.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    y_pred = predict_linear_classifier(W, X)
    assert y_pred.dtype == torch.int64
    assert y_pred.tolist() == [1, 0, 2, 0]  # the last row ties: the lowest index wins


@PREDICTION
def test_predict_matches_argmax_of_scores():
    W, X, _ = random_problem(25, 6, 4, seed=10)
    assert torch.equal(predict_linear_classifier(W, X), (X @ W).argmax(dim=1))


@GIVEN
def test_predict_converts_x_to_the_weights_dtype():
    """The course's predict_linear_classifier takes X of another dtype (weights loaded on the CPU)."""
    W, X, _ = random_problem(25, 6, 4, seed=10)
    assert torch.equal(predict_linear_classifier(W, X.float()), (X @ W).argmax(dim=1))


@GIVEN
@pytest.mark.parametrize("W, X, error", [
    (torch.zeros(3), torch.zeros(2, 3), ValueError),
    (torch.zeros(3, 2), torch.zeros(2, 4), ValueError),
    (torch.zeros(3, 2), torch.zeros(3), ValueError),
    (torch.zeros(3, 2), torch.zeros(2, 3, dtype=torch.int64), TypeError),
    (torch.zeros(3, 2), [[0.0, 0.0, 0.0]], TypeError),
])
def test_predict_errors(W, X, error):
    with pytest.raises(error):
        predict_linear_classifier(W, X)


# --------------------------------------------------------------------------- classes


@GIVEN
@pytest.mark.parametrize("cls_name, loss_name", [("LinearSVM", "svm_loss_vectorized"),
                                                  ("Softmax", "softmax_loss_vectorized")])
def test_classifier_loss_is_the_vectorized_loss(cls_name, loss_name):
    cls, loss_fn = getattr(lc, cls_name), getattr(lc, loss_name)
    W, X, y = random_problem(10, 5, 3, seed=11)
    loss, dW = cls().loss(W, X, y, 0.2)
    expected_loss, expected_dW = loss_fn(W, X, y, 0.2)
    assert torch.equal(loss, expected_loss) and torch.equal(dW, expected_dW)


@PREDICTION
@pytest.mark.parametrize("cls_name", ["LinearSVM", "Softmax"])
def test_classifier_trains_predicts_and_continues_training(cls_name):
    cls = getattr(lc, cls_name)
    X, y = blobs(seed=2)
    model = cls()
    torch.manual_seed(0)
    history = model.train(X, y, learning_rate=1e-1, reg=1e-4, num_iters=150, batch_size=30)
    assert len(history) == 150
    assert torch.equal(model.predict(X), y)
    # A second call starts from the trained weights: its first loss is the low one, not log(C) or C - 1.
    more = model.train(X, y, learning_rate=1e-1, reg=1e-4, num_iters=5, batch_size=30)
    assert more[0] < 0.5 * history[0]


def trained_softmax(path):
    """A small Softmax classifier, trained and saved at ``path``, and its data."""
    X, y = blobs(seed=3)
    model = Softmax()
    torch.manual_seed(0)
    model.train(X, y, learning_rate=1e-1, num_iters=50, batch_size=30)
    model.save(path)
    return model, X


@PREDICTION
def test_save_load_round_trip():
    with worker_folder() as folder:
        model, X = trained_softmax(f"{folder}/softmax.pt")
        loaded = Softmax()
        loaded.load(f"{folder}/softmax.pt")
        assert torch.equal(loaded.W, model.W)
        assert torch.equal(loaded.predict(X), model.predict(X))


@GIVEN
def test_save_and_load_are_quiet_unless_verbose(capsys):
    with worker_folder() as folder:
        trained_softmax(f"{folder}/softmax.pt")
        loaded = Softmax()
        loaded.load(f"{folder}/softmax.pt")
        assert capsys.readouterr().out == ""  # library code is quiet unless verbose
        loaded.load(f"{folder}/softmax.pt", verbose=True)
        assert "softmax.pt" in capsys.readouterr().out


@GIVEN
def test_save_load_errors():
    with worker_folder() as folder:
        with pytest.raises(RuntimeError, match="train"):
            LinearSVM().save(f"{folder}/w.pt")
        with pytest.raises(RuntimeError, match="train"):
            LinearSVM().predict(torch.zeros(2, 3))
        other = load("pathlib").Path(folder, "other.pt")  # written where the code under test reads it
        load("helpers.train").atomic_save({"weights": torch.zeros(3, 2)}, other)
        with pytest.raises(ValueError, match="'W'"):
            LinearSVM().load(f"{folder}/other.pt")


@GIVEN
def test_base_class_has_no_loss():
    with pytest.raises(NotImplementedError):
        LinearClassifier().loss(*random_problem(3, 2, 2), 0.0)


# --------------------------------------------------------------------------- hyper-parameter search


@SEARCH
@pytest.mark.parametrize("name", ["svm_get_search_params", "softmax_get_search_params"])
def test_search_params_are_sane(name):
    learning_rates, regularization_strengths = getattr(lc, name)()
    for values in (learning_rates, regularization_strengths):
        assert isinstance(values, list) and len(values) >= 2
        assert all(isinstance(v, float) for v in values)
        assert len(set(values)) == len(values)
    assert all(0 < lr <= 10 for lr in learning_rates)
    assert all(0 <= reg <= 1 for reg in regularization_strengths)
    # A grid worth searching spans at least a factor of ten in each direction.
    assert max(learning_rates) >= 10 * min(learning_rates)
    assert max(regularization_strengths) >= 10 * min(r for r in regularization_strengths if r > 0)


@GIVEN
def test_best_training_settings_are_accepted_by_the_search():
    best = course_extra(lc, "BEST_TRAINING")
    assert set(best) == {"num_iters", "batch_size", "lr_decay"}
    assert best["batch_size"] == 200  # the batch size test_one_param_set trains with
    data = blob_data()
    torch.manual_seed(0)
    _, train_acc, _ = lc.test_one_param_set(with_decay(Softmax, best["lr_decay"]), data, 1e-1, 1e-4, num_iters=3)
    assert 0 <= train_acc <= 100
    assert 0 < best["lr_decay"] <= 1 and best["num_iters"] >= 1000


@SEARCH
@pytest.mark.parametrize("cls_name", ["LinearSVM", "Softmax"])
def test_one_param_set_returns_accuracies_in_percent(cls_name):
    cls = getattr(lc, cls_name)
    data = blob_data()
    torch.manual_seed(0)
    model, train_acc, val_acc = lc.test_one_param_set(cls(), data, 1e-1, 1e-4, num_iters=150)
    assert is_instance(model, cls)
    assert isinstance(train_acc, float) and isinstance(val_acc, float)
    assert train_acc >= 95.0
    assert 70.0 <= val_acc <= 80.0  # the changed validation labels cost 12 / 60
    # The accuracies are measured on the returned model's predictions.
    for X, y, acc in ((data["X_train"], data["y_train"], train_acc), (data["X_val"], data["y_val"], val_acc)):
        assert acc == pytest.approx(100 * (model.predict(X) == y).double().mean().item())


@SEARCH
def test_one_param_set_trains_a_given_instance_in_place():
    data = blob_data()
    model = LinearSVM()
    torch.manual_seed(0)
    returned, _, _ = lc.test_one_param_set(model, data, 1e-2, 0.0, num_iters=5)
    assert same_object(returned, model) and model.W is not None


@GIVEN
def test_one_param_set_errors():
    data = blob_data()
    with pytest.raises(ValueError, match="X_val"):
        lc.test_one_param_set(LinearSVM(), {k: v for k, v in data.items() if k != "X_val"}, 1e-2, 0.0, num_iters=1)
    with pytest.raises(TypeError, match=r"pass LinearSVM\(\), not the class"):
        lc.test_one_param_set(LinearSVM, data, 1e-2, 0.0, num_iters=1)
    with pytest.raises(TypeError, match="LinearClassifier"):
        lc.test_one_param_set({}, data, 1e-2, 0.0, num_iters=1)


# --------------------------------------------------------------------------- clear errors


@GIVEN
@pytest.mark.parametrize("loss_name", ALL_LOSSES)
@pytest.mark.parametrize("change, error, pattern", [
    (lambda W, X, y: (W[:, 0], X, y), ValueError, r"W must have shape \(D, C\)"),
    (lambda W, X, y: (W, X[:, :-1], y), ValueError, r"\(N, 4\)"),
    (lambda W, X, y: (W, X[0], y), ValueError, r"X must have shape"),
    (lambda W, X, y: (W, X, y[:-1]), ValueError, r"y must have shape \(6,\)"),
    (lambda W, X, y: (W, X, y.double()), TypeError, "integer class indices"),
    (lambda W, X, y: (W, X, y.bool()), TypeError, "integer class indices"),
    (lambda W, X, y: (W, X, y + 3), ValueError, r"\[0, 3\)"),
    (lambda W, X, y: (W, X, y - 3), ValueError, r"\[0, 3\)"),
    (lambda W, X, y: (W, X.float(), y), TypeError, "same dtype"),
    (lambda W, X, y: (W.long(), X, y), TypeError, "floating-point"),
    (lambda W, X, y: (W, X.tolist(), y), TypeError, r"torch.Tensor"),
    (lambda W, X, y: (W, X[:0], y[:0]), ValueError, "at least one example"),
])
def test_losses_raise_clear_errors(loss_name, change, error, pattern):
    loss_fn = getattr(lc, loss_name)
    W, X, y = random_problem(6, 4, 3, seed=12)
    y[0] = 2  # labels 0..2 so that y + 3 and y - 3 both leave [0, 3)
    y[1] = 0
    with pytest.raises(error, match=pattern):
        loss_fn(*change(W, X, y), 0.1)


@GIVEN
@pytest.mark.parametrize("loss_name", ALL_LOSSES)
@pytest.mark.parametrize("reg, error", [(-0.1, ValueError), (float("inf"), ValueError), ("0.1", TypeError),
                                        (None, TypeError)])
def test_losses_reject_bad_reg(loss_name, reg, error):
    loss_fn = getattr(lc, loss_name)
    with pytest.raises(error, match="reg"):
        loss_fn(*random_problem(4, 3, 2), reg)
