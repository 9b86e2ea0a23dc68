"""A2 two-layer net: forward vs torch, backward vs numeric gradient and autograd, training, errors.

Graded tests use only the EECS 498 API (a two_layer_net.py written to that specification scores
what it implements); the course's extras (momentum, ``find_best_net``'s training keywords,
``BEST_TRAINING``, ``train_settings``) are tested in groups worth 0 points, skipped when absent.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from under_test import has, is_missing, load, rules_of
from worker_tools import accepts, is_instance, shared_dict, worker_folder

from A2_linear import checks
from helpers.datasets import find_dataset_folder, load_dataset, preprocess_dataset
from helpers.gradcheck import compute_numeric_gradient, rel_error

MODULE = "A2_linear.two_layer_net"
tln = load(MODULE)
TwoLayerNet = tln.TwoLayerNet
find_best_net = tln.find_best_net
nn_forward_backward = tln.nn_forward_backward
nn_forward_pass = tln.nn_forward_pass
nn_get_search_params = tln.nn_get_search_params
nn_predict = tln.nn_predict
nn_train = tln.nn_train

NAMES = ("W1", "b1", "W2", "b2")

# Score groups of `python -m course.grade` (README, "For teachers"): points are each group's total.
FORWARD = pytest.mark.grade("forward pass", points=3)
BACKWARD = pytest.mark.grade("loss and backward pass", points=7)
# Their rule checks (a broken rule scores the group 0).
FORWARD_RULES = pytest.mark.grade("forward pass", points=3, rule=True)
BACKWARD_RULES = pytest.mark.grade("loss and backward pass", points=7, rule=True)
TRAINING = pytest.mark.grade("training and prediction", points=5)
SEARCH = pytest.mark.grade("hyper-parameter search", points=3)
GIVEN = pytest.mark.grade("input checks and model plumbing (given code)", points=0)
EXTRAS = pytest.mark.grade("course extras: momentum and training settings", points=0)


# The docstrings' rules: no loop over the examples (no Python loop at all) in the forward and backward
# passes, the ReLU written by hand, nothing from torch.nn, and the backward pass without autograd.
NOT_IN_FORWARD = ("relu", "relu_", "ReLU", "Linear", "linear")
NOT_IN_BACKWARD = NOT_IN_FORWARD + ("backward", "grad", "autograd", "requires_grad", "requires_grad_",
                                    "cross_entropy", "log_softmax", "softmax")


def needs_extra(fn, name: str, label: str) -> None:
    """Skip unless ``fn`` (called ``label`` in the message) takes the course's extra keyword ``name``."""
    if is_missing(fn) or not accepts(fn, name):
        pytest.skip(f"{label}({name}=...) is an extra of the course (not in the EECS 498 API)")


def extras_of(fn, **kwargs) -> dict:
    """The keyword arguments ``fn`` accepts: an EECS 498 function runs with its own defaults."""
    if is_missing(fn):
        return {}
    return {name: value for name, value in kwargs.items() if accepts(fn, name)}


def sizes(net) -> tuple[int, int, int]:
    """``(input_size, hidden_size, output_size)`` of a net, read from its parameters."""
    return tuple(net.params["W1"].shape) + (net.params["W2"].shape[1],)


def toy_problem(dtype=torch.float64, seed=0):
    """The course's toy sizes: 5 inputs of dimension 4, 10 hidden units, 3 classes."""
    gen = torch.Generator().manual_seed(seed)
    params = {
        "W1": 0.5 * torch.randn(4, 10, generator=gen, dtype=dtype),
        "b1": 0.1 * torch.randn(10, generator=gen, dtype=dtype),
        "W2": 0.5 * torch.randn(10, 3, generator=gen, dtype=dtype),
        "b2": 0.1 * torch.randn(3, generator=gen, dtype=dtype),
    }
    X = 2.0 * torch.randn(5, 4, generator=gen, dtype=dtype)
    y = torch.tensor([0, 1, 2, 2, 1])
    return params, X, y


def reference_loss(params, X, y, reg):
    """The same expression written with torch ops (autograd can differentiate it)."""
    hidden = torch.relu(X @ params["W1"] + params["b1"])
    scores = hidden @ params["W2"] + params["b2"]
    return F.cross_entropy(scores, y) + reg * ((params["W1"] ** 2).sum() + (params["W2"] ** 2).sum())


def blobs(n_per_class=100, num_classes=3, dim=6, seed=0):
    """Well separated Gaussian blobs: a toy dataset any working net learns."""
    gen = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.randn(num_classes, dim, generator=gen)
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    X = centres[y] + torch.randn(len(y), dim, generator=gen)
    order = torch.randperm(len(y), generator=gen)
    return X[order], y[order]


# --------------------------------------------------------------------------- forward


@FORWARD_RULES
def test_forward_rules():
    rules_of(MODULE, "nn_forward_pass", loops=0, forbid=NOT_IN_FORWARD)


@FORWARD
def test_forward_matches_a_direct_torch_computation():
    params, X, _ = toy_problem()
    scores, hidden = nn_forward_pass(params, X)
    expected_hidden = torch.maximum(X @ params["W1"] + params["b1"], torch.zeros(()))
    expected = F.linear(F.relu(F.linear(X, params["W1"].T, params["b1"])), params["W2"].T, params["b2"])
    torch.testing.assert_close(hidden, expected_hidden, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(scores, expected, rtol=1e-12, atol=1e-12)
    assert scores.shape == (5, 3) and hidden.shape == (5, 10)
    assert (hidden == 0).any() and (hidden > 0).any(), "the toy problem exercises both ReLU branches"
    torch.testing.assert_close(nn_forward_backward(params, X), scores, rtol=0, atol=0)
    assert nn_forward_backward(params, X[:0]).shape == (0, 3)  # scores of no example are fine


@FORWARD
def test_forward_on_fixed_numbers():
    """Hand-computed: one input, two hidden units (one clipped by ReLU), two classes."""
    params = {"W1": torch.tensor([[1.0, -1.0], [2.0, 1.0]]), "b1": torch.tensor([0.5, -4.0]),
              "W2": torch.tensor([[1.0, -2.0], [3.0, 1.0]]), "b2": torch.tensor([0.0, 1.0])}
    X = torch.tensor([[1.0, 1.0]])
    scores, hidden = nn_forward_pass(params, X)
    assert hidden.tolist() == [[3.5, 0.0]]
    assert scores.tolist() == [[3.5, -6.0]]


# --------------------------------------------------------------------------- loss and backward


@BACKWARD_RULES
def test_backward_rules():
    """Checked with nn_forward_pass, which it calls."""
    rules_of(MODULE, "nn_forward_backward", loops=0, forbid=NOT_IN_BACKWARD)


@BACKWARD
def test_loss_without_reg_equals_cross_entropy():
    params, X, y = toy_problem()
    loss, _ = nn_forward_backward(params, X, y, reg=0.0)
    scores, _ = nn_forward_pass(params, X)
    torch.testing.assert_close(loss, F.cross_entropy(scores, y), rtol=1e-12, atol=1e-12)


@BACKWARD
def test_loss_adds_the_l2_penalty_of_both_weight_matrices():
    params, X, y = toy_problem()
    plain, _ = nn_forward_backward(params, X, y, reg=0.0)
    reg = 0.3
    with_reg, _ = nn_forward_backward(params, X, y, reg=reg)
    penalty = reg * ((params["W1"] ** 2).sum() + (params["W2"] ** 2).sum())
    torch.testing.assert_close(with_reg - plain, penalty, rtol=1e-12, atol=1e-12)


@BACKWARD
def test_loss_is_stable_for_huge_scores():
    params, X, y = toy_problem()
    params["b2"] = torch.tensor([1e4, 0.0, -1e4], dtype=torch.float64)
    loss, grads = nn_forward_backward(params, X, y)
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads.values())
    scores, _ = nn_forward_pass(params, X)
    torch.testing.assert_close(loss, F.cross_entropy(scores, y), rtol=1e-12, atol=1e-12)
    leaves = {name: value.clone().requires_grad_(True) for name, value in params.items()}
    reference_loss(leaves, X, y, 0.0).backward()
    for name in NAMES:
        torch.testing.assert_close(grads[name], leaves[name].grad, rtol=1e-10, atol=1e-12)


@BACKWARD
def test_initial_loss_of_a_small_random_net_is_log_num_classes():
    """Tiny weights give near-uniform scores: the loss starts at about -log(1/C)."""
    torch.manual_seed(0)
    net = TwoLayerNet(20, 30, 10, dtype=torch.float64, std=1e-4, device="cpu")
    X, y = torch.randn(50, 20, dtype=torch.float64), torch.randint(0, 10, (50,))
    loss, _ = net.loss(X, y, reg=0.0)
    assert abs(loss.item() - math.log(10)) < 1e-4


@BACKWARD
@pytest.mark.parametrize("reg", [0.0, 0.05])
def test_backward_matches_numeric_gradient(reg):
    params, X, y = toy_problem()
    _, grads = nn_forward_backward(params, X, y, reg=reg)
    assert set(grads) == set(NAMES)
    for name in NAMES:
        def f(_, name=name):
            return nn_forward_backward(params, X, y, reg=reg)[0]

        numeric = compute_numeric_gradient(f, params[name], h=1e-6)
        assert grads[name].shape == params[name].shape
        assert rel_error(grads[name], numeric) <= 1e-7, name


@BACKWARD
@pytest.mark.parametrize("reg", [0.0, 0.05])
def test_backward_matches_autograd(reg):
    params, X, y = toy_problem()
    _, grads = nn_forward_backward(params, X, y, reg=reg)
    leaves = {name: value.clone().requires_grad_(True) for name, value in params.items()}
    loss = reference_loss(leaves, X, y, reg)
    loss.backward()
    for name in NAMES:
        torch.testing.assert_close(grads[name], leaves[name].grad, rtol=1e-10, atol=1e-12)


@BACKWARD
@pytest.mark.parametrize("N, D, H, C", [(1, 3, 1, 2), (7, 5, 6, 4), (4, 2, 8, 1)])
def test_backward_on_other_sizes_matches_numeric_and_autograd(N, D, H, C):
    """A single example, a single hidden unit, a single class: the same code must hold."""
    gen = torch.Generator().manual_seed(N + D + H + C)
    params = {"W1": torch.randn(D, H, generator=gen, dtype=torch.float64),
              "b1": torch.randn(H, generator=gen, dtype=torch.float64),
              "W2": torch.randn(H, C, generator=gen, dtype=torch.float64),
              "b2": torch.randn(C, generator=gen, dtype=torch.float64)}
    X = torch.randn(N, D, generator=gen, dtype=torch.float64)
    y = torch.randint(0, C, (N,), generator=gen)
    loss, grads = nn_forward_backward(params, X, y, reg=0.1)
    leaves = {name: value.clone().requires_grad_(True) for name, value in params.items()}
    expected = reference_loss(leaves, X, y, 0.1)
    expected.backward()
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-12, atol=1e-12)
    for name in NAMES:
        numeric = compute_numeric_gradient(lambda _: nn_forward_backward(params, X, y, reg=0.1)[0], params[name],
                                           h=1e-6)
        assert rel_error(grads[name], numeric) <= 1e-7, name
        torch.testing.assert_close(grads[name], leaves[name].grad, rtol=1e-10, atol=1e-12)


@BACKWARD
def test_relu_passes_no_gradient_at_exactly_zero():
    """Pre-activations that are exactly 0 take the subgradient 0, as torch.relu's backward does."""
    params, X, y = toy_problem()
    X = X.clone()
    X[0] = 0.0
    params["b1"][:5] = 0.0  # example 0 now has pre-activation exactly 0 in hidden units 0..4
    _, hidden = nn_forward_pass(params, X)
    assert (hidden[0, :5] == 0).all()
    _, grads = nn_forward_backward(params, X, y, reg=0.0)
    leaves = {name: value.clone().requires_grad_(True) for name, value in params.items()}
    reference_loss(leaves, X, y, 0.0).backward()
    for name in NAMES:
        torch.testing.assert_close(grads[name], leaves[name].grad, rtol=1e-10, atol=1e-12)


@BACKWARD
def test_float32_gradients_agree_with_float64():
    params, X, y = toy_problem()
    _, g64 = nn_forward_backward(params, X, y, reg=0.01)
    p32 = {name: value.float() for name, value in params.items()}
    loss32, g32 = nn_forward_backward(p32, X.float(), y, reg=0.01)
    assert loss32.dtype == torch.float32
    for name in NAMES:
        assert g32[name].dtype == torch.float32
        assert rel_error(g32[name], g64[name]) < 1e-5


# --------------------------------------------------------------------------- training


@TRAINING
def test_training_on_blobs_lowers_loss_and_raises_accuracy():
    X, y = blobs()
    X_train, y_train, X_val, y_val = X[:240], y[:240], X[240:], y[240:]
    torch.manual_seed(0)
    net = TwoLayerNet(6, 20, 3, std=0.1, device="cpu")
    before = (net.predict(X_val) == y_val).float().mean().item()
    stats = net.train(X_train, y_train, X_val, y_val, learning_rate=0.1, learning_rate_decay=0.95,
                      reg=1e-4, num_iters=200, batch_size=40)
    losses = stats["loss_history"]
    assert sum(losses[-20:]) / 20 < 0.5 * sum(losses[:5]) / 5
    after = (net.predict(X_val) == y_val).float().mean().item()
    assert after >= 0.95 and after > before
    assert stats["val_acc_history"][-1] > stats["val_acc_history"][0]


@EXTRAS
@pytest.mark.skipif(find_dataset_folder("fashion_mnist") is None, reason="Fashion-MNIST is not installed")
def test_training_on_fashion_mnist_subset_beats_chance_by_far():
    """Real images: 3000 training images, a few epochs with momentum, well above the 10% of chance."""
    needs_extra(TwoLayerNet.train, "momentum", "TwoLayerNet.train")
    x_train, y_train, x_test, y_test = load_dataset("fashion_mnist", num_train=3000, num_test=500)
    data = preprocess_dataset(x_train, y_train, x_test, y_test, validation_ratio=0.1)
    torch.manual_seed(0)
    net = TwoLayerNet(784, 64, 10, std=1e-2, device="cpu")
    stats = net.train(data["X_train"], data["y_train"], data["X_val"], data["y_val"], learning_rate=5e-2,
                      learning_rate_decay=0.9, reg=1e-4, num_iters=300, batch_size=100, momentum=0.9)
    test_acc = (net.predict(data["X_test"]) == data["y_test"]).float().mean().item()
    assert test_acc >= 0.75
    assert stats["val_acc_history"][-1] > stats["val_acc_history"][0] + 0.3


@EXTRAS
def test_momentum_reaches_a_lower_loss_with_the_same_steps():
    needs_extra(TwoLayerNet.train, "momentum", "TwoLayerNet.train")
    X, y = blobs(seed=1)
    losses = {}
    for momentum in (0.0, 0.9):
        torch.manual_seed(0)
        net = TwoLayerNet(6, 20, 3, std=0.01, device="cpu")
        stats = net.train(X, y, X, y, learning_rate=0.01, num_iters=100, batch_size=50, momentum=momentum)
        losses[momentum] = sum(stats["loss_history"][-10:]) / 10
    assert losses[0.9] < 0.5 * losses[0.0]


@TRAINING
def test_training_is_reproducible_from_the_global_seed():
    X, y = blobs()
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        net = TwoLayerNet(6, 8, 3, std=0.1, device="cpu")
        stats = net.train(X, y, X, y, learning_rate=0.05, num_iters=30, batch_size=16)
        runs.append((stats["loss_history"], net.params["W1"].clone()))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])


def counting_functions(calls):
    """A loss_func whose only gradient is 1 for b1 and whose loss is ``reg``, and a pred_func of zeros."""

    def loss_func(params, X, y=None, reg=0.0):
        calls["loss"] += 1
        grads = {name: torch.zeros_like(value) for name, value in params.items()}
        grads["b1"] = torch.ones_like(params["b1"])
        return torch.tensor(float(reg)), grads

    def pred_func(params, loss_func, X):
        calls["pred"] += 1
        return torch.zeros(X.shape[0], dtype=torch.long)

    # nn_train updates params in place: a dict that lives where nn_train runs
    params = shared_dict({"W1": torch.zeros(2, 3), "b1": torch.zeros(3), "W2": torch.zeros(3, 2), "b2": torch.zeros(2)})
    return params, loss_func, pred_func


@TRAINING
def test_nn_train_follows_the_given_functions():
    """nn_train calls loss_func and pred_func; each plain SGD step moves b1 by -learning_rate * 1."""
    calls = {"loss": 0, "pred": 0}
    params, loss_func, pred_func = counting_functions(calls)
    X, y = torch.zeros(10, 2), torch.zeros(10, dtype=torch.long)
    stats = nn_train(params, loss_func, pred_func, X, y, X, y, learning_rate=1.0, learning_rate_decay=1.0,
                     reg=0.25, num_iters=3, batch_size=10)
    assert calls == {"loss": 3, "pred": 6}
    assert stats["loss_history"] == [0.25, 0.25, 0.25]
    assert stats["train_acc_history"] == [1.0] * 3
    assert params["b1"].tolist() == pytest.approx([-3.0] * 3)
    assert params["W1"].tolist() == [[0.0] * 3] * 2


@EXTRAS
def test_nn_train_momentum_steps_follow_the_velocity():
    """With momentum the steps follow v = m v - lr g, p += v."""
    needs_extra(nn_train, "momentum", "nn_train")
    params, loss_func, pred_func = counting_functions({"loss": 0, "pred": 0})
    X, y = torch.zeros(10, 2), torch.zeros(10, dtype=torch.long)
    nn_train(params, loss_func, pred_func, X, y, X, y, learning_rate=1.0, learning_rate_decay=1.0,
             reg=0.25, num_iters=3, batch_size=10, momentum=0.5)
    # velocities -1, -1.5, -1.75: b1 = -(1 + 1.5 + 1.75)
    assert params["b1"].tolist() == pytest.approx([-4.25] * 3)


@TRAINING
@pytest.mark.parametrize("num_iters, batch_size, epochs", [(100, 30, 10), (90, 30, 9), (7, 500, 7), (1, 300, 1)])
def test_stats_keys_and_lengths(num_iters, batch_size, epochs):
    X, y = blobs()  # 300 examples: 300 // batch_size iterations per epoch
    torch.manual_seed(0)
    net = TwoLayerNet(6, 5, 3, std=0.1, device="cpu")
    stats = net.train(X, y, X[:50], y[:50], num_iters=num_iters, batch_size=batch_size)
    assert set(stats) == {"loss_history", "train_acc_history", "val_acc_history"}
    assert len(stats["loss_history"]) == num_iters
    assert len(stats["train_acc_history"]) == len(stats["val_acc_history"]) == epochs
    assert all(isinstance(v, float) for key in stats for v in stats[key])
    assert all(0.0 <= a <= 1.0 for a in stats["train_acc_history"] + stats["val_acc_history"])


@TRAINING
def test_learning_rate_decays_once_per_epoch():
    """A fake loss whose gradient on b2 is 1: each step moves b2 by minus the current learning rate."""
    seen = []

    def loss_func(params, X, y=None, reg=0.0):
        if y is None:
            return torch.zeros(X.shape[0], 2)
        grads = {name: torch.zeros_like(value) for name, value in params.items()}
        grads["b2"] = torch.ones(2)
        return torch.tensor(0.0), grads

    def pred_func(params, loss_func, X):
        seen.append(float(params["b2"][0]))
        return torch.zeros(X.shape[0], dtype=torch.long)

    params = shared_dict({"W1": torch.zeros(2, 3), "b1": torch.zeros(3), "W2": torch.zeros(3, 2), "b2": torch.zeros(2)})
    X, y = torch.zeros(10, 2), torch.zeros(10, dtype=torch.long)
    nn_train(params, loss_func, pred_func, X, y, X, y, learning_rate=1.0, learning_rate_decay=0.5,
             num_iters=6, batch_size=5)
    # 2 iterations per epoch; the rate is 1 for iteration 0, then 0.5, 0.5, 0.25, 0.25, 0.125.
    assert float(params["b2"][0]) == pytest.approx(-(1 + 0.5 + 0.5 + 0.25 + 0.25 + 0.125))
    assert len(seen) == 6  # train and val accuracy at iterations 0, 2 and 4


@TRAINING
def test_verbose_prints_every_100_iterations(capsys):
    X, y = blobs()
    torch.manual_seed(0)
    TwoLayerNet(6, 5, 3, std=0.1, device="cpu").train(X, y, X, y, num_iters=201, batch_size=20, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["iteration 0 / 201", "iteration 100 / 201",
                                                      "iteration 200 / 201"]
    TwoLayerNet(6, 5, 3, std=0.1, device="cpu").train(X, y, X, y, num_iters=20, batch_size=20)
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------- the model


@GIVEN
def test_init_shapes_dtype_and_seed():
    torch.manual_seed(0)
    net = TwoLayerNet(7, 4, 3, dtype=torch.float64, std=0.5, device="cpu")
    assert {name: tuple(v.shape) for name, v in net.params.items()} == {
        "W1": (7, 4), "b1": (4,), "W2": (4, 3), "b2": (3,)}
    assert all(v.dtype == torch.float64 for v in net.params.values())
    assert torch.equal(net.params["b1"], torch.zeros(4, dtype=torch.float64))
    assert 0.2 < net.params["W1"].std().item() < 0.8
    torch.manual_seed(0)
    assert torch.equal(TwoLayerNet(7, 4, 3, dtype=torch.float64, std=0.5, device="cpu").params["W1"], net.params["W1"])
    assert net.sizes == (7, 4, 3)
    assert net.train_settings is None


@TRAINING
def test_predict_shape_and_values():
    params, X, _ = toy_problem(dtype=torch.float32)
    net = TwoLayerNet(4, 10, 3, device="cpu")
    net.params = params
    pred = net.predict(X)
    assert pred.shape == (5,) and pred.dtype == torch.int64
    assert torch.equal(pred, nn_forward_pass(params, X)[0].argmax(dim=1))
    assert torch.equal(nn_predict(params, nn_forward_backward, X), pred)
    scores = net.loss(X)
    assert scores.shape == (5, 3)


@TRAINING
def test_nn_predict_takes_the_argmax_of_the_loss_funcs_scores():
    def scores_only(params, X, y=None, reg=0.0):
        assert y is None
        return torch.tensor([[0.0, 2.0, 1.0], [5.0, -1.0, 4.0]])

    assert nn_predict({}, scores_only, torch.zeros(2, 1)).tolist() == [1, 0]


@TRAINING
def test_save_load_round_trip():
    with worker_folder() as folder:
        torch.manual_seed(0)
        net = TwoLayerNet(6, 5, 3, std=0.1, device="cpu")
        path = f"{folder}/net.pt"
        net.save(path)
        other = TwoLayerNet(6, 5, 3, std=0.1, device="cpu")
        other.params = {name: value + 1 for name, value in other.params.items()}
        other.load(path)
        for name in NAMES:
            assert torch.equal(other.params[name], net.params[name])
        X = torch.randn(4, 6)
        assert torch.equal(other.predict(X), net.predict(X))


@GIVEN
def test_load_keeps_the_nets_dtype():
    with worker_folder() as folder:
        torch.manual_seed(0)
        TwoLayerNet(6, 5, 3, std=0.1, device="cpu").save(f"{folder}/net.pt")
        as64 = TwoLayerNet(6, 5, 3, dtype=torch.float64, device="cpu")
        as64.load(f"{folder}/net.pt")
        assert as64.params["W1"].dtype == torch.float64


@GIVEN
def test_load_rejects_other_files():
    with worker_folder() as folder:
        path = load("pathlib").Path(folder, "bad.pt")  # written where the code under test reads it
        atomic_save = load("helpers.train").atomic_save
        atomic_save({"W1": torch.zeros(2, 2)}, path)
        with pytest.raises(ValueError, match="does not hold a two-layer net"):
            TwoLayerNet(2, 2, 2, device="cpu").load(path)
        atomic_save({"W1": torch.zeros(2, 3), "b1": torch.zeros(4), "W2": torch.zeros(3, 2), "b2": torch.zeros(2)},
                    path)
        with pytest.raises(ValueError, match=r"params\['b1'\] must have shape \(3,\)"):
            TwoLayerNet(2, 2, 2, device="cpu").load(path)


# --------------------------------------------------------------------------- search


@SEARCH
def test_search_params_are_four_non_empty_lists():
    grid = nn_get_search_params()
    assert len(grid) == 4
    assert all(isinstance(values, (list, tuple)) and values for values in grid)
    learning_rates, hidden_sizes, regs, decays = grid
    assert all(lr > 0 for lr in learning_rates) and all(isinstance(h, int) and h > 0 for h in hidden_sizes)
    assert all(r >= 0 for r in regs) and all(0 < d <= 1 for d in decays)


@EXTRAS
def test_best_training_names_how_find_best_net_trains():
    if not has(tln, "BEST_TRAINING"):
        pytest.skip("BEST_TRAINING is an extra of the course (not in the EECS 498 API)")
    assert set(tln.BEST_TRAINING) == {"num_iters", "batch_size", "momentum", "std"}


@SEARCH
def test_find_best_net_returns_the_best_of_the_grid(capsys):
    X, y = blobs(dim=5)
    data = {"X_train": X[:200], "y_train": y[:200], "X_val": X[200:], "y_val": y[200:]}

    def grid():
        # the tiny learning rate barely moves from the initial weights
        return [1e-9, 0.1], [4, 16], [1e-4], [0.95]

    torch.manual_seed(0)
    extras = extras_of(find_best_net, num_iters=100, batch_size=50, momentum=0.5, std=0.1, verbose=True)
    net, stats, val_acc = find_best_net(data, grid, **extras)
    assert is_instance(net, TwoLayerNet) and sizes(net)[0] == 5 and sizes(net)[2] == 3
    accuracy = (net.predict(data["X_val"]) == data["y_val"]).float().mean().item()
    assert val_acc == pytest.approx(accuracy) or val_acc == pytest.approx(100 * accuracy)  # fraction or percent
    assert accuracy >= 0.9
    if "verbose" in extras:  # the course's find_best_net prints one line per candidate
        out = capsys.readouterr().out
        assert len(out.splitlines()) == 4
        assert len(stats["loss_history"]) == 100
        accuracies = [float(line.rsplit(" ", 1)[1]) for line in out.splitlines()]
        assert val_acc == pytest.approx(max(accuracies), abs=1e-4)


@EXTRAS
def test_find_best_net_trains_with_best_training_by_default():
    if not has(tln, "BEST_TRAINING"):
        pytest.skip("BEST_TRAINING is an extra of the course (not in the EECS 498 API)")
    best = tln.BEST_TRAINING  # the module's own dict: items written here reach find_best_net
    saved = {key: best[key] for key in ("num_iters", "batch_size")}
    best["num_iters"], best["batch_size"] = 7, 20
    try:
        X, y = blobs(dim=4)
        data = {"X_train": X[:200], "y_train": y[:200], "X_val": X[200:], "y_val": y[200:]}
        torch.manual_seed(0)
        net, stats, _ = find_best_net(data, lambda: ([0.1], [3], [0.0], [1.0]))
    finally:
        for key, value in saved.items():
            best[key] = value
    assert len(stats["loss_history"]) == 7
    assert dict(net.train_settings.items()) == {"learning_rate": 0.1, "learning_rate_decay": 1.0, "reg": 0.0,
                                                "num_iters": 7, "batch_size": 20,
                                                "momentum": tln.BEST_TRAINING["momentum"]}
    assert len(stats["val_acc_history"]) == 1  # 200 // 20 = 10 iterations per epoch
    assert net.sizes == (4, 3, 3) and net.params["W1"].dtype == torch.float32


@SEARCH
def test_find_best_net_keeps_the_first_of_equal_candidates():
    """One class only: every candidate is 100% right, so the first tried (hidden 3) is kept."""
    X = torch.randn(40, 4, dtype=torch.float64)
    y = torch.zeros(40, dtype=torch.long)
    data = {"X_train": X[:30], "y_train": y[:30], "X_val": X[30:], "y_val": y[30:]}
    torch.manual_seed(0)
    extras = extras_of(find_best_net, num_iters=5, batch_size=10)
    net, _, val_acc = find_best_net(data, lambda: ([0.1], [3, 5], [0.0], [1.0]), **extras)
    assert val_acc in (1.0, 100.0)  # a fraction (the course) or a percentage
    assert sizes(net) == (4, 3, 1) and net.params["W1"].dtype == torch.float64


@GIVEN
def test_find_best_net_errors():
    with pytest.raises(ValueError, match="missing"):
        find_best_net({"X_train": torch.zeros(3, 2)}, nn_get_search_params)
    data = {"X_train": torch.zeros(3, 2, 2), "y_train": torch.zeros(3, dtype=torch.long),
            "X_val": torch.zeros(3, 2, 2), "y_val": torch.zeros(3, dtype=torch.long)}
    with pytest.raises(ValueError, match="flatten=True"):
        find_best_net(data, nn_get_search_params)
    data["X_train"] = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="empty grid"):
        find_best_net(data, lambda: ([], [4], [0.0], [1.0]))


# --------------------------------------------------------------------------- errors


@GIVEN
def test_clear_errors_on_bad_input():
    params, X, y = toy_problem()
    with pytest.raises(ValueError, match=r"X must have shape \(N, 4\)"):
        nn_forward_pass(params, X[:, :3])
    with pytest.raises(ValueError, match=r"X must have shape \(N, 4\)"):
        nn_forward_pass(params, X.reshape(5, 2, 2))
    with pytest.raises(TypeError, match="weights' dtype torch.float64"):
        nn_forward_pass(params, X.float())
    with pytest.raises(TypeError, match="integer class indices"):
        nn_forward_backward(params, X, y.double())
    with pytest.raises(ValueError, match=r"y must have shape \(5,\)"):
        nn_forward_backward(params, X, y[:4])
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\]"):
        nn_forward_backward(params, X, torch.tensor([0, 1, 3, 2, 1]))
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\]"):
        nn_forward_backward(params, X, torch.tensor([0, -1, 2, 2, 1]))
    with pytest.raises(ValueError, match="reg must be >= 0"):
        nn_forward_backward(params, X, y, reg=-1.0)
    with pytest.raises(ValueError, match="missing"):
        nn_forward_pass({"W1": params["W1"]}, X)
    bad = dict(params, W2=torch.zeros(9, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"params\['W2'\] must have shape \(10, 3\)"):
        nn_forward_pass(bad, X)
    with pytest.raises(TypeError, match="share dtype"):
        nn_forward_pass(dict(params, b2=params["b2"].float()), X)
    with pytest.raises(ValueError, match="X is on meta but the weights are on cpu"):
        checks.net_inputs(params, X.to("meta"))  # the check nn_forward_pass runs (a meta tensor cannot be sent)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        nn_forward_pass(params, X.tolist())
    with pytest.raises(ValueError, match="at least one example"):
        nn_forward_backward(params, X[:0], y[:0])


@GIVEN
def test_clear_errors_in_training_and_construction():
    X, y = blobs()
    net = TwoLayerNet(6, 5, 3, device="cpu")
    with pytest.raises(ValueError, match=r"X_val must have shape \(N, 6\)"):
        net.train(X, y, X[:, :5], y)
    with pytest.raises(ValueError, match=r"y_val must have shape \(300,\)"):
        net.train(X, y, X, y[:10])
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        net.train(X, y, X, y, learning_rate=0.0)
    with pytest.raises(ValueError, match="momentum must be >= 0 and < 1"):
        net.train(X, y, X, y, momentum=1.0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        net.train(X, y, X, y, batch_size=0)
    with pytest.raises(TypeError, match="num_iters must be an int"):
        net.train(X, y, X, y, num_iters=10.0)
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\]"):
        net.train(X, y + 1, X, y)
    with pytest.raises(ValueError, match="at least one example"):
        net.train(X, y, X[:0], y[:0])
    with pytest.raises(ValueError, match="at least one example"):
        net.train(X[:0], y[:0], X, y)
    with pytest.raises(ValueError, match="hidden_size must be >= 1"):
        TwoLayerNet(6, 0, 3, device="cpu")
    with pytest.raises(TypeError, match="floating-point torch.dtype"):
        TwoLayerNet(6, 5, 3, dtype=torch.int64, device="cpu")
