"""A1: k-nearest-neighbour classification, written by hand.

You write, in this order (names and signatures as in EECS 498/598):

* ``compute_distances_two_loops / _one_loop / _no_loops(x_train, x_test)``: the
  ``(num_train, num_test)`` matrix of Euclidean distances;
* ``predict_labels(dists, y_train, k)``: the majority vote of the ``k`` nearest labels;
* ``knn_cross_validate`` / ``knn_get_best_k``: choose ``k``.

The given ``KnnClassifier`` stores the training set and predicts with the first two.
``squared_distances``, ``nearest_indices`` and ``vote`` are optional helpers: the
course's solution uses them, nothing given calls them.  Inputs may have any trailing
shape (``x_train (num_train, D1, ..., Dn)`` is flattened to ``(num_train, D)``);
labels are integer class indices ``>= 0``.  Ties never depend on the machine: between
training points at the same distance the lower index wins, between classes with as
many votes the smallest label wins.  Input checks live in ``A1_knn/checks.py``.
"""

from __future__ import annotations

import torch

from A1_knn import checks


def compute_distances_two_loops(x_train: torch.Tensor, x_test: torch.Tensor) -> torch.Tensor:
    """Euclidean distances with a loop over the training points and one over the test points.

    Rule: two nested Python loops, one pair of points at a time; you may not use
    ``torch.norm``, ``torch.cdist`` or anything from ``torch.nn``.

    Args:
        x_train: ``(num_train, D1, ..., Dn)``.
        x_test: ``(num_test, D1, ..., Dn)``.

    Returns:
        dists: ``(num_train, num_test)``, ``dists[i, j] = ||x_train[i] - x_test[j]||``.
    """
    x_train, x_test = checks.pair(x_train, x_test)
    dists = x_train.new_zeros(x_train.shape[0], x_test.shape[0])
    ### BEGIN SOLUTION
    for i in range(x_train.shape[0]):
        for j in range(x_test.shape[0]):
            dists[i, j] = ((x_train[i] - x_test[j]) ** 2).sum().sqrt()
    ### END SOLUTION
    return dists


def compute_distances_one_loop(x_train: torch.Tensor, x_test: torch.Tensor) -> torch.Tensor:
    """Euclidean distances with one loop over the training points.

    Rule: one Python loop; inside it, broadcasting computes a whole row of ``dists``
    at once.  No ``torch.norm``, ``torch.cdist`` or ``torch.nn``.
    Hint: ``x_test - x_train[i]`` broadcasts to ``(num_test, D)``.

    Shapes as in :func:`compute_distances_two_loops`.
    """
    x_train, x_test = checks.pair(x_train, x_test)
    dists = x_train.new_zeros(x_train.shape[0], x_test.shape[0])
    ### BEGIN SOLUTION
    for i in range(x_train.shape[0]):
        dists[i] = ((x_test - x_train[i]) ** 2).sum(dim=1).sqrt()
    ### END SOLUTION
    return dists


def compute_distances_no_loops(x_train: torch.Tensor, x_test: torch.Tensor) -> torch.Tensor:
    """Euclidean distances with no Python loop.

    Rule: no loop, no ``torch.norm``, ``torch.cdist`` or ``torch.nn``, and no
    ``(num_train, num_test, D)`` intermediate (it would not fit in memory).
    Hint: expand ``||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b``: two broadcast sums
    and one matrix product.  Rounding can make tiny squares negative: clamp them at 0.

    Shapes as in :func:`compute_distances_two_loops`.
    """
    x_train, x_test = checks.pair(x_train, x_test)
    dists = None
    ### BEGIN SOLUTION
    dists = squared_distances(x_train, x_test).sqrt_()
    ### END SOLUTION
    return dists


def squared_distances(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Optional helper: squared distances between the rows of ``a (M, D)`` and ``b (N, D)`` -> ``(M, N)``.

    Same rule and hint as :func:`compute_distances_no_loops`; ``b_sq (N,)``, the squared
    norms of ``b``, may be passed in when ``b`` is used many times.
    """
    ### BEGIN SOLUTION
    # The matrix product is the cost; the rest is kept to few passes and no (M, D) temporary:
    # squared norms as row-wise dot products, d2 = |a|^2 + |b|^2 as one broadcast sum, and
    # -2 a b^T added into d2 by the product itself (addmm_ with alpha=-2).
    if b_sq is None:
        b_sq = torch.einsum("ij,ij->i", b, b)
    d2 = torch.add(torch.einsum("ij,ij->i", a, a)[:, None], b_sq)
    d2.addmm_(a, b.T, alpha=-2)
    return d2.clamp_min_(0)
    ### END SOLUTION


def predict_labels(dists: torch.Tensor, y_train: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Predict a label for every test point by a majority vote of its ``k`` nearest training points.

    Rule: break ties between classes in favour of the smallest label, and ties between
    training points at the same distance in favour of the lower training index.
    Hint: ``torch.topk(..., largest=False)`` finds the nearest; count votes with
    ``torch.bincount`` or ``scatter_add_``.  The given code renumbers the labels
    ``0 .. C-1`` first (``C`` classes present), so a vote table has ``C`` columns.

    Args:
        dists: ``(num_train, num_test)`` distances, as the ``compute_distances_*`` give.
        y_train: ``(num_train,)`` integer labels.
        k: number of neighbours that vote.

    Returns:
        y_pred: ``(num_test,)`` int64 labels.
    """
    y_train, k = checks.predict_inputs(dists, y_train, k)
    classes, y_train = compact_labels(y_train)  # labels 0 .. C-1 here; classes[...] maps back
    y_pred = None
    ### BEGIN SOLUTION
    idx = nearest_indices(dists.T, k)
    y_pred = vote(y_train[idx], len(classes))
    ### END SOLUTION
    return classes[y_pred]


def nearest_indices(d: torch.Tensor, k: int) -> torch.Tensor:
    """Optional helper: indices of the ``k`` smallest entries of each row of ``d (M, N)`` -> ``(M, k)``.

    Ties at the k-th distance go to the lowest column index, so the chosen set never
    depends on the sort algorithm.  Hint: ``topk`` is fast; a row is ambiguous only
    when its (k+1)-th smallest value equals its k-th, and ``torch.sort(stable=True)``
    settles those rows.
    """
    ### BEGIN SOLUTION
    if k == d.shape[1]:
        return torch.sort(d, dim=1, stable=True).indices
    values, idx = d.topk(k + 1, dim=1, largest=False, sorted=True)
    idx = idx[:, :k].contiguous()
    ambiguous = values[:, k] == values[:, k - 1]
    if ambiguous.any():
        rows = ambiguous.nonzero().flatten()
        idx[rows] = torch.sort(d[rows], dim=1, stable=True).indices[:, :k]
    return idx
    ### END SOLUTION


def vote(neighbor_labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """Optional helper: majority label of each row of ``neighbor_labels (M, k)`` -> ``(M,)``.

    Ties go to the smallest label; labels lie in ``[0, num_classes)``.
    """
    if num_classes is None:
        num_classes = int(neighbor_labels.max()) + 1 if neighbor_labels.numel() else 1
    ### BEGIN SOLUTION
    counts = torch.zeros(neighbor_labels.shape[0], num_classes, dtype=torch.long,
                         device=neighbor_labels.device)
    counts.scatter_add_(1, neighbor_labels, torch.ones_like(neighbor_labels))
    return counts.argmax(dim=1)  # argmax returns the first maximum: the smallest label
    ### END SOLUTION


class KnnClassifier:
    """k-nearest-neighbour classifier: "training" stores the data.

    Args:
        x_train: ``(num_train, D1, ..., Dn)`` floating tensor.
        y_train: ``(num_train,)`` integer labels.
    """

    def __init__(self, x_train: torch.Tensor, y_train: torch.Tensor):
        self.x_train, self.y_train = checks.training_set(x_train, y_train)

    def predict(self, x_test: torch.Tensor, k: int = 1, chunk_size: int | None = None) -> torch.Tensor:
        """Predicted labels ``(num_test,)`` by majority vote of the ``k`` nearest training points.

        Given code: your :func:`compute_distances_no_loops` and :func:`predict_labels` on the
        test set, ``chunk_size`` points at a time (by default as many as 256 MiB of distances
        hold), so memory stays bounded.
        """
        x_test = checks.query(x_test, self.x_train.shape[1:], self.x_train.dtype)
        step = checks.chunk_size(chunk_size, self.x_train.shape[0] * self.x_train.element_size(), CHUNK_BYTES)
        predictions = [self.y_train.new_zeros(0)]
        for x_chunk in x_test.split(step) if x_test.shape[0] else []:
            dists = compute_distances_no_loops(self.x_train, x_chunk)
            predictions.append(predict_labels(dists, self.y_train, k=k))
        return torch.cat(predictions)

    def check_accuracy(self, x_test: torch.Tensor, y_test: torch.Tensor, k: int = 1, quiet: bool = False,
                       chunk_size: int | None = None) -> float:
        """Accuracy in percent on ``(x_test, y_test)``; prints ``Got c / n correct; accuracy is a%``."""
        y_test = checks.labels(y_test, x_test.shape[0], "y_test")
        if y_test.shape[0] == 0:
            raise ValueError("x_test is empty: the accuracy on no test points is undefined")
        y_pred = self.predict(x_test, k=k, chunk_size=chunk_size)
        num_correct = int((y_pred == y_test).sum())
        num = int(y_test.shape[0])
        accuracy = 100.0 * num_correct / num
        if not quiet:
            print(f"Got {num_correct} / {num} correct; accuracy is {accuracy:.2f}%")
        return accuracy

    def kneighbors(self, x_test: torch.Tensor, k: int = 1) -> torch.Tensor:
        """Indices ``(num_test, k)`` of each test point's ``k`` nearest training points, nearest first.

        Given code for the notebook's pictures (a few test points at a time); ties go to
        the lower training index.
        """
        k = checks.k_value(k, self.x_train.shape[0])
        x_test = checks.query(x_test, self.x_train.shape[1:], self.x_train.dtype)
        dists = compute_distances_no_loops(self.x_train, x_test)
        return torch.sort(dists.T, dim=1, stable=True).indices[:, :k]


def knn_cross_validate(x_train: torch.Tensor, y_train: torch.Tensor, num_folds: int = 5,
                       k_choices=None) -> dict[int, list[float]]:
    """Accuracy (percent) of every ``k`` on each of ``num_folds`` folds.

    Rule: split the training set into ``num_folds`` consecutive folds (the last ones may
    be one point shorter); each fold in turn is held out and predicted from the others.
    Hint: ``torch.tensor_split`` makes the folds, ``torch.cat`` joins the others; the
    distances of a fold can be computed once and shared by every ``k``.

    Returns:
        ``{k: [accuracy on fold 0, ..., accuracy on fold num_folds - 1]}``.
    """
    if k_choices is None:
        k_choices = [1, 3, 5, 8, 10, 12, 15, 20, 50, 100]
    x_train, y_train, k_choices = checks.cross_validation(x_train, y_train, num_folds, k_choices)
    classes, y_train = compact_labels(y_train)  # labels 0 .. C-1 here (accuracy compares them)
    k_to_accuracies = {}
    ### BEGIN SOLUTION
    x_folds = torch.tensor_split(x_train, num_folds)
    y_folds = torch.tensor_split(y_train, num_folds)
    num_classes = len(classes)
    k_to_accuracies = {k: [] for k in k_choices}
    for i in range(num_folds):
        x_tr = torch.cat(x_folds[:i] + x_folds[i + 1:])
        y_tr = torch.cat(y_folds[:i] + y_folds[i + 1:])
        order = nearest_indices(squared_distances(x_folds[i], x_tr), max(k_choices))
        for k in k_choices:
            y_pred = vote(y_tr[order[:, :k]], num_classes)
            k_to_accuracies[k].append(100.0 * (y_pred == y_folds[i]).float().mean().item())
    ### END SOLUTION
    return k_to_accuracies


def knn_get_best_k(k_to_accuracies: dict) -> int:
    """The ``k`` with the highest mean cross-validation accuracy.

    Rule: ties go to the smallest ``k``.
    """
    checks.fold_accuracies(k_to_accuracies)
    best_k = 0
    ### BEGIN SOLUTION
    def mean(values):
        return sum(values) / len(values)

    best = max(mean(v) for v in k_to_accuracies.values())
    best_k = min(k for k, v in k_to_accuracies.items() if mean(v) == best)
    ### END SOLUTION
    return best_k


# --------------------------------------------------------------------------- given code

#: Distances computed at once by ``KnnClassifier.predict``: 60k training points * 1024 float32 test points.
CHUNK_BYTES = 256 * 2**20


def compact_labels(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(classes, codes)``: the distinct labels, sorted, and each label's index among them.

    Votes count codes, so their memory grows with the number of classes present, never with the
    largest label value (one label of 10**9 must not size a vote table); ``classes[codes] == y``.
    """
    classes, codes = torch.unique(y, sorted=True, return_inverse=True)
    return classes, codes
