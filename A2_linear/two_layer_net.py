"""A2: a two-layer neural network with a hand-written backward pass (no autograd).

The network is ``input -> fully connected -> ReLU -> fully connected -> scores``::

    hidden = max(0, X @ W1 + b1)        # (N, H)
    scores = hidden @ W2 + b2           # (N, C)

trained with the softmax (cross-entropy) loss plus ``reg * (sum(W1 ** 2) + sum(W2 ** 2))``
by minibatch SGD.  You write, in this order (names and signatures as in EECS 498/598):
``nn_forward_pass``, ``nn_forward_backward``, the update step of ``nn_train``,
``nn_predict``, ``nn_get_search_params`` and ``find_best_net``.  ``params`` is a dict with
``W1 (D, H)``, ``b1 (H,)``, ``W2 (H, C)``, ``b2 (C,)``; ``X (N, D)`` holds one example per
row with the weights' dtype and device; labels ``y`` are integer class indices in ``[0, C)``.

Given code (``TwoLayerNet``, ``BEST_TRAINING``) follows the solutions; input checks live in
``A2_linear/checks.py``.  Additions to EECS 498 (keyword-only, defaulting to its behaviour):
``nn_train(..., momentum=0.0)`` adds classical (heavy-ball) momentum; ``find_best_net(...,
num_iters=, batch_size=, momentum=, std=)`` sets how each candidate is trained;
``TwoLayerNet.train_settings`` keeps the arguments of the net's last training.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import torch

from A2_linear import checks
from A2_linear.checks import PARAM_NAMES
from helpers.checks import check_int
from helpers.train import atomic_save, load_verified


def nn_forward_pass(params: dict, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of the two-layer net (the forward pass).

    Args:
        params: ``W1 (D, H)``, ``b1 (H,)``, ``W2 (H, C)``, ``b2 (C,)``.
        X: ``(N, D)`` inputs.

    Returns:
        scores: ``(N, C)``, ``scores[i, c]`` the score of class ``c`` for ``X[i]``;
        hidden: ``(N, H)``, the ReLU activations (kept for the backward pass).

    Rule: no Python loop (over the examples or anything else: no ``for``, ``while`` or
    comprehension); no ``torch.relu`` and no layer or activation of ``torch.nn`` (``nn.Linear``,
    ``nn.ReLU``, ``F.relu``): write the ReLU yourself (``clamp_min`` or a comparison).
    """
    checks.net_inputs(params, X)
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    hidden, scores = None, None
    ### BEGIN SOLUTION
    hidden = (X @ W1 + b1).clamp_min(0)
    scores = hidden @ W2 + b2
    ### END SOLUTION
    return scores, hidden


def nn_forward_backward(params: dict, X: torch.Tensor, y: torch.Tensor | None = None, reg: float = 0.0):
    """Loss and gradients of the two-layer net.

    The loss is the mean softmax (cross-entropy) loss over the ``N`` examples plus
    ``reg * (sum(W1 ** 2) + sum(W2 ** 2))`` (biases are not regularised).

    Args:
        params: ``W1 (D, H)``, ``b1 (H,)``, ``W2 (H, C)``, ``b2 (C,)``.
        X: ``(N, D)`` inputs.
        y: ``(N,)`` integer labels in ``[0, C)``, or ``None``.
        reg: regularisation strength, ``>= 0``.

    Returns:
        ``scores (N, C)`` when ``y`` is ``None``; otherwise ``(loss, grads)`` with
        ``loss`` a 0-dim tensor and ``grads`` a dict holding, for each key of
        ``params``, the gradient of the loss (same shape as the parameter).

    Rule: the backward pass by hand: no autograd (``backward``, ``.grad``, ``torch.autograd``),
    no ready-made loss, softmax or ReLU (``cross_entropy``, ``softmax``, ``relu``), and no Python loop
    (no ``for``, ``while`` or comprehension, over the examples or the parameters); the loss is
    numerically stable (shift the scores by their row maximum), and averages over the ``N`` examples.
    Hint: ``d loss / d scores = (softmax - one_hot(y)) / N``; the ReLU passes the
    gradient only where it was active.
    """
    reg = checks.net_inputs(params, X, y, reg)
    N = X.shape[0]
    scores, hidden = nn_forward_pass(params, X)
    if y is None:
        return scores
    W1, W2 = params["W1"], params["W2"]
    grads = {}
    ### BEGIN SOLUTION
    # Softmax with the largest score subtracted per row, so exp never overflows.
    shifted = scores - scores.max(dim=1, keepdim=True).values
    log_norm = shifted.exp().sum(dim=1, keepdim=True).log()
    log_probs = shifted - log_norm
    rows = torch.arange(N, device=X.device)
    loss = -log_probs[rows, y].mean() + reg * ((W1 * W1).sum() + (W2 * W2).sum())

    # d loss / d scores = (softmax - one_hot(y)) / N
    dscores = log_probs.exp()
    dscores[rows, y] -= 1
    dscores /= N
    grads["W2"] = hidden.T @ dscores + 2 * reg * W2
    grads["b2"] = dscores.sum(dim=0)
    dhidden = dscores @ W2.T
    dhidden = dhidden * (hidden > 0)  # ReLU passes the gradient where it was active
    grads["W1"] = X.T @ dhidden + 2 * reg * W1
    grads["b1"] = dhidden.sum(dim=0)
    ### END SOLUTION
    return loss, grads


def nn_train(params: dict, loss_func: Callable, pred_func: Callable, X: torch.Tensor, y: torch.Tensor,
             X_val: torch.Tensor, y_val: torch.Tensor, learning_rate: float = 1e-3,
             learning_rate_decay: float = 0.95, reg: float = 5e-6, num_iters: int = 100,
             batch_size: int = 200, verbose: bool = False, *, momentum: float = 0.0) -> dict:
    """Train ``params`` in place by minibatch stochastic gradient descent.

    Every iteration draws ``batch_size`` training examples at random (with
    replacement, from torch's global generator), computes
    ``loss, grads = loss_func(params, X_batch, y=y_batch, reg=reg)`` and updates
    every parameter.  Once per epoch (``max(N // batch_size, 1)`` iterations,
    counted from iteration 0 as in the course) the accuracy on the current
    batch and on ``(X_val, y_val)`` is recorded and the learning rate is
    multiplied by ``learning_rate_decay``.

    Args:
        params: dict of tensors, updated in place.
        loss_func: ``loss_func(params, X, y=None, reg=0.0)`` like :func:`nn_forward_backward`.
        pred_func: ``pred_func(params, loss_func, X) -> labels (N,)`` like :func:`nn_predict`.
        X: ``(N, D)`` training data; y: ``(N,)`` labels.
        X_val: ``(N_val, D)`` validation data; y_val: ``(N_val,)`` labels.
        learning_rate, learning_rate_decay, reg, num_iters, batch_size: as named.
        verbose: print the loss every 100 iterations.
        momentum: keyword-only; ``0`` (the course) is plain SGD ``p -= lr * g``;
            otherwise a velocity ``v = momentum * v - lr * g`` is kept per
            parameter and ``p += v``.

    Returns:
        stats: ``{"loss_history": [loss per iteration], "train_acc_history": [...],
        "val_acc_history": [...]}`` with the accuracies as fractions, one per epoch
        (``ceil(num_iters / iterations_per_epoch)`` of them).

    Rule: you write only the update of every parameter from ``grads`` (plain SGD, or with
    momentum when ``momentum > 0``); update ``params`` in place.
    """
    checks.net_training(params, X, y, X_val, y_val, learning_rate, learning_rate_decay, reg, num_iters, batch_size,
                        momentum)
    num_train = X.shape[0]
    iterations_per_epoch = max(num_train // batch_size, 1)
    velocity = {name: torch.zeros_like(value) for name, value in params.items()}
    loss_history, train_acc_history, val_acc_history = [], [], []

    for it in range(num_iters):
        idx = torch.randint(num_train, (batch_size,), device=X.device)  # a minibatch, with replacement
        X_batch, y_batch = X[idx], y[idx]
        loss, grads = loss_func(params, X_batch, y=y_batch, reg=reg)
        ### BEGIN SOLUTION
        for name, grad in grads.items():
            if momentum:
                velocity[name].mul_(momentum).sub_(learning_rate * grad)
                params[name] += velocity[name]
            else:
                params[name] -= learning_rate * grad
        ### END SOLUTION
        loss_history.append(float(loss))
        if verbose and it % 100 == 0:
            print(f"iteration {it} / {num_iters}: loss {float(loss):.6f}")

        if it % iterations_per_epoch == 0:
            train_acc = (pred_func(params, loss_func, X_batch) == y_batch).float().mean().item()
            val_acc = (pred_func(params, loss_func, X_val) == y_val).float().mean().item()
            train_acc_history.append(train_acc)
            val_acc_history.append(val_acc)
            learning_rate *= learning_rate_decay

    return {"loss_history": loss_history, "train_acc_history": train_acc_history,
            "val_acc_history": val_acc_history}


def nn_predict(params: dict, loss_func: Callable, X: torch.Tensor) -> torch.Tensor:
    """Predicted labels ``(N,)`` (int64): the class of highest score for each row of ``X (N, D)``.

    ``loss_func(params, X)`` (with no labels) must return the scores ``(N, C)``,
    as :func:`nn_forward_backward` does.  Hint: ``torch.argmax``.
    """
    y_pred = None
    ### BEGIN SOLUTION
    y_pred = loss_func(params, X).argmax(dim=1)
    ### END SOLUTION
    return y_pred


def nn_get_search_params():
    """The grid ``find_best_net`` searches: four lists.

    Returns:
        ``(learning_rates, hidden_sizes, regularization_strengths, learning_rate_decays)``.

    The values suit inputs scaled like :func:`helpers.datasets.preprocess_dataset`
    makes them (pixels in [0, 1] minus the mean image) trained with
    :data:`BEST_TRAINING` (momentum 0.9, initial weights ``1e-2 * randn``).
    Rule: at least one value of each; keep the grid small (every point trains a net).
    """
    learning_rates, hidden_sizes, regularization_strengths, learning_rate_decays = [], [], [], []
    ### BEGIN SOLUTION
    learning_rates = [1e-1, 2e-1]
    hidden_sizes = [512]
    regularization_strengths = [1e-4]
    learning_rate_decays = [0.9]
    ### END SOLUTION
    return learning_rates, hidden_sizes, regularization_strengths, learning_rate_decays


def find_best_net(data_dict: dict, get_param_set_fn: Callable, *, num_iters: int | None = None,
                  batch_size: int | None = None, momentum: float | None = None, std: float | None = None,
                  verbose: bool = False):
    """Train one :class:`TwoLayerNet` per point of the grid; keep the best on the validation set.

    Args:
        data_dict: ``X_train (N, D)``, ``y_train (N,)``, ``X_val (N_val, D)``, ``y_val (N_val,)``
            as :func:`helpers.datasets.preprocess_dataset` returns them; the number of
            classes is ``max(y_train) + 1``; nets get ``X_train``'s dtype and device.
        get_param_set_fn: ``() -> (learning_rates, hidden_sizes, regularization_strengths,
            learning_rate_decays)`` such as :func:`nn_get_search_params`.
        num_iters, batch_size, momentum, std: keyword-only; how each candidate is
            trained and initialised; ``None`` takes the value in :data:`BEST_TRAINING`.
        verbose: print one line per candidate.

    Returns:
        ``(best_net, best_stat, best_val_acc)``: the net with the highest validation
        accuracy (ties: the first tried), the stats dict of its training, and that
        accuracy as a fraction.

    Rule: one :class:`TwoLayerNet` per point of the grid, trained on the training split
    and scored on the validation split.
    """
    checks.search_data(data_dict)
    X_train, y_train = data_dict["X_train"], data_dict["y_train"]
    X_val, y_val = data_dict["X_val"], data_dict["y_val"]
    settings = dict(BEST_TRAINING)
    for name, value in (("num_iters", num_iters), ("batch_size", batch_size), ("momentum", momentum),
                        ("std", std)):
        if value is not None:
            settings[name] = value
    input_size, num_classes = X_train.shape[1], int(y_train.max()) + 1
    grid = list(itertools.product(*get_param_set_fn()))
    if not grid:
        raise ValueError("get_param_set_fn returned an empty grid: every list needs at least one value")

    best_net, best_stat, best_val_acc = None, None, -1.0
    ### BEGIN SOLUTION
    for lr, hidden_size, reg, decay in grid:
        net = TwoLayerNet(input_size, hidden_size, num_classes, dtype=X_train.dtype,
                          device=X_train.device, std=settings["std"])
        stats = net.train(X_train, y_train, X_val, y_val, learning_rate=lr, learning_rate_decay=decay,
                          reg=reg, num_iters=settings["num_iters"], batch_size=settings["batch_size"],
                          momentum=settings["momentum"])
        val_acc = (net.predict(X_val) == y_val).float().mean().item()
        if verbose:
            print(f"lr {lr:.1e}  hidden {hidden_size}  reg {reg:.1e}  decay {decay}: val accuracy {val_acc:.4f}")
        if val_acc > best_val_acc:
            best_net, best_stat, best_val_acc = net, stats, val_acc
    ### END SOLUTION
    return best_net, best_stat, best_val_acc


# --------------------------------------------------------------------------- given code

#: How ``find_best_net`` trains each candidate by default (full-size data).  With
#: 48k Fashion-MNIST training images, 9000 iterations of 200 examples are 37.5 epochs,
#: about 90 s for a net of 512 hidden units on one CPU core.
BEST_TRAINING = {"num_iters": 9000, "batch_size": 200, "momentum": 0.9, "std": 1e-2}


class TwoLayerNet:
    """Two-layer fully connected net: ``input (D) -> hidden (H), ReLU -> scores (C)``.

    Weights start as ``std * randn`` drawn from torch's global generator (seed it
    with ``torch.manual_seed`` or ``helpers.config.setup`` for a reproducible
    net); biases start at zero.

    Args:
        input_size: ``D``; hidden_size: ``H``; output_size: ``C`` (number of classes).
        dtype, device: of the parameters (inputs must match).
        std: scale of the initial weights.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 dtype: torch.dtype = torch.float32, device="cpu", std: float = 1e-4):
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("output_size", output_size)):
            check_int(value, name, minimum=1)
        std = checks.number("std", std)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype}")
        self.params = {
            "W1": std * torch.randn(input_size, hidden_size, dtype=dtype, device=device),
            "b1": torch.zeros(hidden_size, dtype=dtype, device=device),
            "W2": std * torch.randn(hidden_size, output_size, dtype=dtype, device=device),
            "b2": torch.zeros(output_size, dtype=dtype, device=device),
        }
        #: The keyword arguments of the last :meth:`train` call (``None`` before any), so a net
        #: returned by :func:`find_best_net` says how it was trained.
        self.train_settings: dict | None = None

    @property
    def sizes(self) -> tuple[int, int, int]:
        """``(input_size, hidden_size, output_size)`` of the current parameters."""
        return checks.params(self.params)

    def loss(self, X: torch.Tensor, y: torch.Tensor | None = None, reg: float = 0.0):
        """Scores ``(N, C)`` without labels, else ``(loss, grads)``; see :func:`nn_forward_backward`."""
        return nn_forward_backward(self.params, X, y, reg)

    def train(self, X: torch.Tensor, y: torch.Tensor, X_val: torch.Tensor, y_val: torch.Tensor,
              learning_rate: float = 1e-3, learning_rate_decay: float = 0.95, reg: float = 5e-6,
              num_iters: int = 100, batch_size: int = 200, verbose: bool = False, *,
              momentum: float = 0.0) -> dict:
        """Train in place; returns the stats dict of :func:`nn_train`.

        The settings are kept in :attr:`train_settings`.  ``nn_train`` is called with EECS 498's
        signature; ``momentum`` is passed on only when it is not 0.
        """
        self.train_settings = {"learning_rate": learning_rate, "learning_rate_decay": learning_rate_decay,
                               "reg": reg, "num_iters": num_iters, "batch_size": batch_size, "momentum": momentum}
        extra = {"momentum": momentum} if momentum else {}
        return nn_train(self.params, nn_forward_backward, nn_predict, X, y, X_val, y_val,
                        learning_rate, learning_rate_decay, reg, num_iters, batch_size, verbose, **extra)

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Predicted labels ``(N,)`` for ``X (N, D)``."""
        return nn_predict(self.params, nn_forward_backward, X)

    def save(self, path) -> None:
        """Write the parameters to ``path`` (``torch.save`` format, a dict of four tensors, with a checksum)."""
        atomic_save({name: self.params[name].detach().cpu() for name in PARAM_NAMES}, Path(path))

    def load(self, path) -> None:
        """Replace the parameters by those saved at ``path`` (read with ``weights_only=True``).

        They keep this net's dtype and device; their sizes become the net's sizes.
        """
        like = self.params["W1"]
        loaded = load_verified(path, "saved two-layer net")
        if not isinstance(loaded, dict) or set(loaded) != set(PARAM_NAMES):
            found = sorted(loaded) if isinstance(loaded, dict) else type(loaded).__name__
            raise ValueError(f"{path} does not hold a two-layer net: expected a dict with keys "
                             f"{PARAM_NAMES}, found {found}")
        checks.params(loaded)
        self.params = {name: loaded[name].to(dtype=like.dtype, device=like.device) for name in PARAM_NAMES}
