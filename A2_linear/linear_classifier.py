"""A2: linear classifiers (multiclass SVM and softmax), written by hand without autograd.

Names and signatures follow EECS 498/598 so course material applies unchanged:

* ``svm_loss_naive / svm_loss_vectorized(W, X, y, reg) -> (loss, dW)``: the
  multiclass hinge loss (margin 1), with loops and without;
* ``softmax_loss_naive / softmax_loss_vectorized(W, X, y, reg) -> (loss, dW)``:
  the cross-entropy of a softmax, computed in a numerically stable way;
* ``sample_batch``, ``train_linear_classifier`` (minibatch SGD) and
  ``predict_linear_classifier``;
* ``LinearClassifier`` with the subclasses ``LinearSVM`` and ``Softmax``;
* ``svm_get_search_params``, ``softmax_get_search_params`` and
  ``test_one_param_set`` for the hyper-parameter search, with ``BEST_TRAINING``
  (steps, batch size, learning-rate decay) for each candidate on full-size data.

Shapes: ``W (D, C)`` weights, ``X (N, D)`` data (one example per row; with the
bias trick its last column is all ones), ``y (N,)`` integer labels in
``[0, C)``.  Every loss is

    loss = (1/N) * sum_i L_i(W; x_i, y_i) + reg * sum(W * W)

so its gradient includes ``2 * reg * W``.  Losses are returned as 0-dim tensors
of ``W``'s dtype, gradients as tensors of ``W``'s shape.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import torch

from helpers.checks import check_int, check_labels
from helpers.train import atomic_save, load_verified

__all__ = [
    "BEST_TRAINING",
    "LinearClassifier",
    "LinearSVM",
    "Softmax",
    "predict_linear_classifier",
    "sample_batch",
    "softmax_get_search_params",
    "softmax_loss_naive",
    "softmax_loss_vectorized",
    "svm_get_search_params",
    "svm_loss_naive",
    "svm_loss_vectorized",
    "test_one_param_set",
    "train_linear_classifier",
]


#: How to train each candidate of the search on full-size data (keyword arguments of
#: :func:`test_one_param_set` / :meth:`LinearClassifier.train`).  With 54k Fashion-MNIST
#: training images, 5000 steps of 200 examples are about 18 epochs; the learning rate
#: shrinks by ``lr_decay`` after each.  Measured to give the best validation accuracy
#: with the grids of :func:`svm_get_search_params` and :func:`softmax_get_search_params`.
BEST_TRAINING = {"num_iters": 5000, "batch_size": 200, "lr_decay": 0.8}


# --------------------------------------------------------------------------- input checks


def _check_matrix(t, name: str, shape: str) -> None:
    """Raise unless ``t`` is a 2-D floating-point tensor; ``shape`` names the expected one."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape}, got {type(t).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}; convert with .float()")


def _check_data(X, y, D: int | None = None, num_classes: int | None = None) -> None:
    """Check ``X (N, D)`` and ``y (N,)``; ``D`` and ``num_classes`` come from ``W`` when known."""
    _check_matrix(X, "X", "(N, D)" if D is None else f"(N, {D})")
    if D is not None and X.shape[1] != D:
        raise ValueError(f"X must have shape (N, {D}) to match W of shape ({D}, C), got {tuple(X.shape)}")
    check_labels(y, X.shape[0], num_classes)


def _check_reg(reg) -> None:
    """Raise unless ``reg`` is a finite real number >= 0."""
    if isinstance(reg, bool) or not isinstance(reg, numbers.Real):
        raise TypeError(f"reg must be a real number >= 0, got {type(reg).__name__}")
    if not math.isfinite(reg) or reg < 0:
        raise ValueError(f"reg must be a finite number >= 0, got {reg!r}")


def _check_same_place(W, X, y=None) -> None:
    """Raise unless ``X`` has ``W``'s dtype and ``X`` (and ``y``) live on ``W``'s device."""
    if X.dtype != W.dtype:
        raise TypeError(f"X and W must have the same dtype, got X {X.dtype} and W {W.dtype}; "
                        "convert one with .to(other.dtype)")
    devices = {W.device, X.device} | ({y.device} if y is not None else set())
    if len(devices) > 1:
        raise ValueError(f"W, X and y must be on one device, got {sorted(map(str, devices))}")


def _check_loss_inputs(W, X, y, reg) -> None:
    """Check the arguments every loss function takes."""
    _check_matrix(W, "W", "(D, C)")
    _check_data(X, y, W.shape[0], W.shape[1])
    _check_same_place(W, X, y)
    if X.shape[0] == 0:
        raise ValueError("X must hold at least one example, got shape (0, D)")
    _check_reg(reg)


# --------------------------------------------------------------------------- products with few classes


def _scores(X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``X @ W``, ``(N, C)``, computed as ``(W^T X^T)^T``.

    The same product, but with only ``C = 10`` columns a CPU BLAS may compute the wide
    ``(C, N)`` result much faster than the narrow ``(N, C)`` one (measured: 3 to 4 times
    with MKL on an AMD EPYC).  The transposes are views: nothing is copied.
    """
    return (W.t() @ X.t()).t()


def _weight_gradient(X: torch.Tensor, dscores: torch.Tensor) -> torch.Tensor:
    """``X^T @ dscores``, ``(D, C)``, computed as ``(dscores^T X)^T`` for the reason given in :func:`_scores`."""
    return (dscores.t() @ X).t()


# --------------------------------------------------------------------------- SVM loss


def svm_loss_naive(W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, reg: float):
    """Multiclass SVM loss and gradient with loops over examples and classes.

    For example ``i`` with scores ``s = x_i W``:
    ``L_i = sum_{j != y_i} max(0, s_j - s_{y_i} + 1)``.

    Args:
        W: ``(D, C)`` weights.
        X: ``(N, D)`` minibatch of data.
        y: ``(N,)`` labels, ``y[i] = c`` means ``X[i]`` has label ``c`` in ``[0, C)``.
        reg: regularization strength (>= 0).

    Returns:
        loss: 0-dim tensor; dW: ``(D, C)`` gradient of the loss with respect to ``W``.
    """
    _check_loss_inputs(W, X, y, reg)
    dW = torch.zeros_like(W)
    num_classes = W.shape[1]
    num_train = X.shape[0]
    loss = W.new_zeros(())
    ### BEGIN SOLUTION
    for i in range(num_train):
        scores = W.t().mv(X[i])
        label = int(y[i])
        correct_class_score = scores[label]
        for j in range(num_classes):
            if j == label:
                continue
            margin = scores[j] - correct_class_score + 1
            if margin > 0:
                loss += margin
                # s_j rises with x_i along column j; s_{y_i} enters with a minus sign.
                dW[:, j] += X[i]
                dW[:, label] -= X[i]
    loss /= num_train
    dW /= num_train
    loss += reg * torch.sum(W * W)
    dW += 2 * reg * W
    ### END SOLUTION
    return loss, dW


def svm_loss_vectorized(W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, reg: float):
    """Multiclass SVM loss and gradient with no Python loop; same contract as :func:`svm_loss_naive`."""
    _check_loss_inputs(W, X, y, reg)
    ### BEGIN SOLUTION
    num_train = X.shape[0]
    rows = torch.arange(num_train, device=X.device)
    scores = _scores(X, W)                                    # X @ W, (N, C)
    correct = scores[rows, y].unsqueeze(1)                    # (N, 1)
    margins = (scores - correct + 1).clamp_min(0)
    margins[rows, y] = 0
    loss = margins.sum() / num_train + reg * torch.sum(W * W)

    # d loss / d scores: +1 for each violating class, minus their count at the true class.
    dscores = (margins > 0).to(W.dtype)
    dscores[rows, y] = -dscores.sum(dim=1)
    dW = _weight_gradient(X, dscores) / num_train + 2 * reg * W   # X^T dscores / N + 2 reg W
    ### END SOLUTION
    return loss, dW


# --------------------------------------------------------------------------- softmax loss


def softmax_loss_naive(W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, reg: float):
    """Softmax (cross-entropy) loss and gradient with explicit loops.

    For example ``i`` with scores ``s = x_i W``:
    ``L_i = -log(exp(s_{y_i}) / sum_j exp(s_j))``.  Scores are shifted by their
    maximum before ``exp`` (this changes no probability) so that large scores
    never overflow.

    Args, returns: as in :func:`svm_loss_naive`.
    """
    _check_loss_inputs(W, X, y, reg)
    dW = torch.zeros_like(W)
    num_classes = W.shape[1]
    num_train = X.shape[0]
    loss = W.new_zeros(())
    ### BEGIN SOLUTION
    for i in range(num_train):
        scores = W.t().mv(X[i])
        scores = scores - scores.max()
        exp_scores = torch.exp(scores)
        total = exp_scores.sum()
        label = int(y[i])
        loss += torch.log(total) - scores[label]
        for j in range(num_classes):
            prob = exp_scores[j] / total
            dW[:, j] += (prob - (1.0 if j == label else 0.0)) * X[i]
    loss /= num_train
    dW /= num_train
    loss += reg * torch.sum(W * W)
    dW += 2 * reg * W
    ### END SOLUTION
    return loss, dW


def softmax_loss_vectorized(W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, reg: float):
    """Softmax loss and gradient with no Python loop; same contract as :func:`softmax_loss_naive`."""
    _check_loss_inputs(W, X, y, reg)
    ### BEGIN SOLUTION
    num_train = X.shape[0]
    rows = torch.arange(num_train, device=X.device)
    scores = _scores(X, W)                                                # X @ W, (N, C)
    shifted = scores - scores.max(dim=1, keepdim=True).values
    log_norm = torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))  # log-sum-exp of the shifted scores
    log_probs = shifted - log_norm                                        # (N, C), all <= 0
    loss = -log_probs[rows, y].sum() / num_train + reg * torch.sum(W * W)

    dscores = torch.exp(log_probs)                                        # probabilities
    dscores[rows, y] -= 1
    dW = _weight_gradient(X, dscores) / num_train + 2 * reg * W          # X^T dscores / N + 2 reg W
    ### END SOLUTION
    return loss, dW


# --------------------------------------------------------------------------- training


def sample_batch(X: torch.Tensor, y: torch.Tensor, num_train: int, batch_size: int):
    """Draw ``batch_size`` examples at random, with replacement, from the first ``num_train``.

    Args:
        X: ``(N, D)`` data; y: ``(N,)`` labels; ``num_train <= N``.

    Returns:
        X_batch: ``(batch_size, D)``; y_batch: ``(batch_size,)``.
    """
    check_int(num_train, "num_train", minimum=1)
    check_int(batch_size, "batch_size", minimum=1)
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"X and y must be torch.Tensors, got {type(X).__name__} and {type(y).__name__}")
    if X.dim() < 1 or y.dim() != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (N, D) and y (N,) with the same N, got {tuple(X.shape)} and {tuple(y.shape)}")
    if num_train > X.shape[0]:
        raise ValueError(f"num_train={num_train} exceeds the {X.shape[0]} examples in X")
    ### BEGIN SOLUTION
    idx = torch.randint(num_train, (batch_size,), device=X.device)
    return X[idx], y[idx]
    ### END SOLUTION


def train_linear_classifier(loss_func, W, X, y, learning_rate: float = 1e-3, reg: float = 1e-5,
                            num_iters: int = 100, batch_size: int = 200, verbose: bool = False,
                            *, lr_decay: float = 1.0):
    """Minibatch stochastic gradient descent on a linear classifier.

    Args:
        loss_func: ``loss_func(W, X_batch, y_batch, reg) -> (loss, dW)``, e.g.
            :func:`svm_loss_vectorized`.
        W: ``(D, C)`` initial weights, or ``None`` to start from
            ``0.000001 * randn(D, C)`` on ``X``'s device and dtype, with
            ``C = max(y) + 1``.
        X: ``(N, D)`` training data; y: ``(N,)`` labels in ``[0, C)``.
        learning_rate: SGD step size.
        reg: regularization strength.
        num_iters: number of SGD steps.
        batch_size: examples per step (drawn with replacement by :func:`sample_batch`).
        verbose: print the loss every 100 iterations.
        lr_decay: keyword-only extra (not in the course): after each epoch's worth of
            iterations (``N // batch_size``, at least 1) the learning rate is
            multiplied by ``lr_decay``.  The default ``1.0`` is the course's constant
            step size.

    Returns:
        W: ``(D, C)`` trained weights (a new tensor; the one passed in is not changed);
        loss_history: list of the loss (a float) at every iteration.
    """
    _check_matrix(X, "X", "(N, D)")
    check_int(num_iters, "num_iters", minimum=1)
    check_int(batch_size, "batch_size", minimum=1)
    _check_reg(reg)
    for name, value in (("learning_rate", learning_rate), ("lr_decay", lr_decay)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate}")
    if not 0 < lr_decay <= 1:
        raise ValueError(f"lr_decay must lie in (0, 1], got {lr_decay}")
    num_train, dim = X.shape
    if num_train == 0:
        raise ValueError("X must hold at least one example, got shape (0, D)")
    if W is None:
        _check_data(X, y)
        num_classes = int(y.max()) + 1
        W = 0.000001 * torch.randn(dim, num_classes, device=X.device, dtype=X.dtype)
    else:
        _check_matrix(W, "W", f"({dim}, C)")
        _check_data(X, y, W.shape[0], W.shape[1])
        _check_same_place(W, X, y)
        W = W.clone()
    iters_per_epoch = max(num_train // batch_size, 1)

    loss_history = []
    for it in range(num_iters):
        X_batch, y_batch = sample_batch(X, y, num_train, batch_size)
        loss, grad = loss_func(W, X_batch, y_batch, reg)
        loss_history.append(loss.item())
        ### BEGIN SOLUTION
        W -= learning_rate * grad
        ### END SOLUTION
        if verbose and it % 100 == 0:
            print(f"iteration {it} / {num_iters}: loss {loss.item():f}")
        if (it + 1) % iters_per_epoch == 0:
            learning_rate *= lr_decay
    return W, loss_history


def predict_linear_classifier(W: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Predicted labels ``(N,)`` (int64): the class with the highest score ``X @ W``.

    Args:
        W: ``(D, C)`` weights; X: ``(N, D)`` data, any floating dtype (it is converted
            to ``W``'s dtype and device, so weights loaded on the CPU predict CUDA data).

    Returns:
        ``(N,)`` int64 labels on ``X``'s device; ties go to the lowest class index.
    """
    _check_matrix(W, "W", "(D, C)")
    _check_matrix(X, "X", f"(N, {W.shape[0]})")
    if X.shape[1] != W.shape[0]:
        raise ValueError(f"X must have shape (N, {W.shape[0]}) to match W of shape "
                         f"{tuple(W.shape)}, got {tuple(X.shape)}")
    ### BEGIN SOLUTION
    return _scores(X.to(device=W.device, dtype=W.dtype), W).argmax(dim=1).to(X.device)
    ### END SOLUTION


# --------------------------------------------------------------------------- classes


class LinearClassifier:
    """A linear classifier ``scores = X @ W``; subclasses choose the loss.

    ``W`` is ``None`` until :meth:`train` or :meth:`load` sets it.
    """

    def __init__(self):
        self.W = None

    def train(self, X_train, y_train, learning_rate=1e-3, reg=1e-5, num_iters=100, batch_size=200,
              verbose=False, *, lr_decay=1.0):
        """Train (or continue training) with SGD; returns the loss history.  See :func:`train_linear_classifier`."""
        train_args = (self.loss, self.W, X_train, y_train, learning_rate, reg, num_iters, batch_size, verbose)
        self.W, loss_history = train_linear_classifier(*train_args, lr_decay=lr_decay)
        return loss_history

    def predict(self, X):
        """Predicted labels ``(N,)`` for ``X (N, D)``."""
        if self.W is None:
            raise RuntimeError(f"{type(self).__name__} has no weights yet: call train() or load() first")
        return predict_linear_classifier(self.W, X)

    def loss(self, W, X_batch, y_batch, reg):
        """``(loss, dW)`` for a minibatch; subclasses override this."""
        raise NotImplementedError("LinearClassifier is abstract: use LinearSVM or Softmax")

    def _loss(self, X_batch, y_batch, reg):
        return self.loss(self.W, X_batch, y_batch, reg)

    def save(self, path, verbose=False):
        """Save the weights as ``{"W": W}`` (``torch.save`` format, with a checksum); ``verbose`` prints where."""
        if self.W is None:
            raise RuntimeError(f"{type(self).__name__} has no weights to save: call train() first")
        atomic_save({"W": self.W}, Path(path))
        if verbose:
            print(f"Saved in {path}")

    def load(self, path, verbose=False):
        """Load weights saved by :meth:`save` (checksum checked, ``weights_only=True``), on the CPU."""
        state = load_verified(path, f"saved {type(self).__name__}")
        if not isinstance(state, dict) or not isinstance(state.get("W"), torch.Tensor):
            raise ValueError(f"{path} does not hold a {{'W': tensor}} dict saved by LinearClassifier.save")
        _check_matrix(state["W"], "W", "(D, C)")
        self.W = state["W"]
        if verbose:
            print(f"load checkpoint file: {path}")


class LinearSVM(LinearClassifier):
    """Linear classifier trained with the multiclass SVM (hinge) loss."""

    def loss(self, W, X_batch, y_batch, reg):
        return svm_loss_vectorized(W, X_batch, y_batch, reg)


class Softmax(LinearClassifier):
    """Linear classifier trained with the softmax (cross-entropy) loss."""

    def loss(self, W, X_batch, y_batch, reg):
        return softmax_loss_vectorized(W, X_batch, y_batch, reg)


# --------------------------------------------------------------------------- hyper-parameter search


def svm_get_search_params():
    """Learning rates and regularization strengths to try for :class:`LinearSVM`.

    Chosen for data from ``preprocess_dataset(..., bias_trick=True)`` (pixels in
    [0, 1], mean image subtracted), each candidate trained as :data:`BEST_TRAINING`
    says.  On Fashion-MNIST the best pair is near ``lr=0.3, reg=1e-4``: smaller
    learning rates have not converged after 5000 steps, larger ones stay noisy, and
    ``reg >= 1e-2`` under-fits.

    Returns:
        (learning_rates, regularization_strengths): two lists of positive floats.
    """
    ### BEGIN SOLUTION
    learning_rates = [3e-2, 1e-1, 3e-1, 1e0]
    regularization_strengths = [1e-5, 1e-4, 1e-3, 1e-2]
    ### END SOLUTION
    return learning_rates, regularization_strengths


def softmax_get_search_params():
    """Learning rates and regularization strengths to try for :class:`Softmax`; see :func:`svm_get_search_params`.

    Per example, the SVM's score gradient counts every violated margin (up to ``C - 1``
    in the right class's column) while the softmax's is a difference of probabilities
    (at most 1 in size), so softmax takes larger steps: on Fashion-MNIST the best pair
    is near ``lr=1 to 3, reg=1e-5 to 1e-4``.
    """
    ### BEGIN SOLUTION
    learning_rates = [1e-1, 3e-1, 1e0, 3e0]
    regularization_strengths = [1e-5, 1e-4, 1e-3, 1e-2]
    ### END SOLUTION
    return learning_rates, regularization_strengths


def _accuracy(y_pred: torch.Tensor, y: torch.Tensor) -> float:
    return (y_pred == y.to(y_pred.device)).double().mean().item()


def test_one_param_set(cls, data_dict, lr, reg, num_iters=2000, *, batch_size=200, lr_decay=1.0):
    """Train one classifier with learning rate ``lr`` and regularization ``reg``.

    Args:
        cls: a :class:`LinearClassifier` instance (trained in place, as in the course;
            weights it already holds are the starting point) or a subclass, which is
            instantiated.
        data_dict: dict with ``X_train``, ``y_train``, ``X_val``, ``y_val``.
        lr, reg: learning rate and regularization strength.
        num_iters: SGD iterations.
        batch_size, lr_decay: keyword-only extras passed on to :meth:`LinearClassifier.train`.

    Returns:
        (cls, train_acc, val_acc): the trained classifier and its accuracies as fractions in [0, 1].
    """
    if isinstance(cls, type):
        cls = cls()
    if not isinstance(cls, LinearClassifier):
        raise TypeError(f"cls must be a LinearClassifier (instance or subclass), got {type(cls).__name__}")
    missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data_dict]
    if missing:
        raise ValueError(f"data_dict lacks {missing}; it needs X_train, y_train, X_val, y_val")
    train_acc = 0.0  # fractions of correctly classified examples
    val_acc = 0.0
    ### BEGIN SOLUTION
    cls.train(data_dict["X_train"], data_dict["y_train"], lr, reg, num_iters, batch_size, lr_decay=lr_decay)
    train_acc = _accuracy(cls.predict(data_dict["X_train"]), data_dict["y_train"])
    val_acc = _accuracy(cls.predict(data_dict["X_val"]), data_dict["y_val"])
    ### END SOLUTION
    return cls, train_acc, val_acc
test_one_param_set.__test__ = False  # a course name, not a pytest test
