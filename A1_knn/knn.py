"""A1: k-nearest-neighbour classification, written by hand.

Names follow EECS 498/598 so course material applies unchanged:

* ``compute_distances_two_loops / _one_loop / _no_loops(x_train, x_test)`` give
  the ``(num_train, num_test)`` matrix of Euclidean distances;
* ``predict_labels(dists, y_train, k)`` takes a majority vote of the ``k``
  nearest training labels;
* ``KnnClassifier`` puts both together and predicts large test sets in chunks
  so memory stays bounded;
* ``knn_cross_validate`` / ``knn_get_best_k`` choose ``k``.

Inputs may have any trailing shape: ``x_train (num_train, D1, ..., Dn)`` is
flattened to ``(num_train, D)``.  Labels are integer class indices ``>= 0``.

Ties are broken so that results never depend on the machine:
* between training points at the same distance, the lower training index wins;
* between classes with the same number of votes, the smallest label wins.
"""

from __future__ import annotations

import math

import torch

from helpers.checks import check_labels

# Test points predicted at once by KnnClassifier.predict: the chunk's distance
# matrix holds num_train * chunk values (60k * 1024 float32 = 245 MB).
DEFAULT_CHUNK_BYTES = 256 * 2**20


# --------------------------------------------------------------------------- input checks


def _as_matrix(x: torch.Tensor, name: str) -> torch.Tensor:
    """Flatten ``x (N, D1, ..., Dn)`` to ``(N, D)``, checking it is a floating tensor of finite values."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, ...), got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape (N, D1, ..., Dn) with at least 2 dims, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}; convert with .float()")
    bad = ~torch.isfinite(x)
    if bad.any():
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} holds {int(bad.sum())} NaN or infinite value(s), the first at index {first}: "
                         "distances to it would be NaN and its votes meaningless")
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


def _compact_labels(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(classes, codes)``: the distinct labels, sorted, and each label's index among them.

    Votes count codes, so their memory grows with the number of classes present, never with the
    largest label value (one label of 10**9 must not size a vote table); ``classes[codes] == y``.
    """
    classes, codes = torch.unique(y, sorted=True, return_inverse=True)
    return classes, codes


def _check_pair(x_train: torch.Tensor, x_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten both inputs and check they describe points of one space."""
    a = _as_matrix(x_train, "x_train")
    b = _as_matrix(x_test, "x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"x_train and x_test must have the same shape after the first dim, got "
            f"{tuple(x_train.shape[1:])} and {tuple(x_test.shape[1:])}"
        )
    if a.dtype != b.dtype or a.device != b.device:
        raise ValueError(f"x_train and x_test must share dtype and device, got "
                         f"{a.dtype}/{a.device} and {b.dtype}/{b.device}")
    return a, b


def _check_labels(y: torch.Tensor, num: int, name: str = "y_train") -> torch.Tensor:
    """Check ``y`` is ``(num,)`` of non-negative integer labels; return it as int64."""
    check_labels(y, num, name=name)
    return y.long()


def _check_k(k, num_train: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > num_train:
        raise ValueError(f"k must be <= the number of training points ({num_train}), got {k}")
    return k


# --------------------------------------------------------------------------- distances


def compute_distances_two_loops(x_train: torch.Tensor, x_test: torch.Tensor) -> torch.Tensor:
    """Euclidean distances with a loop over training and a loop over test points.

    Args:
        x_train: ``(num_train, D1, ..., Dn)``.
        x_test: ``(num_test, D1, ..., Dn)``.

    Returns:
        dists: ``(num_train, num_test)``, ``dists[i, j] = ||x_train[i] - x_test[j]||``.
    """
    a, b = _check_pair(x_train, x_test)
    dists = a.new_zeros(a.shape[0], b.shape[0])
    ### BEGIN SOLUTION
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            dists[i, j] = ((a[i] - b[j]) ** 2).sum().sqrt()
    ### END SOLUTION
    return dists


def compute_distances_one_loop(x_train: torch.Tensor, x_test: torch.Tensor) -> torch.Tensor:
    """Euclidean distances with one loop over the training points (broadcasting inside).

    Shapes as in :func:`compute_distances_two_loops`.
    """
    a, b = _check_pair(x_train, x_test)
    dists = a.new_zeros(a.shape[0], b.shape[0])
    ### BEGIN SOLUTION
    for i in range(a.shape[0]):
        dists[i] = ((b - a[i]) ** 2).sum(dim=1).sqrt()
    ### END SOLUTION
    return dists


def squared_distances(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Squared distances between the rows of ``a (M, D)`` and ``b (N, D)`` -> ``(M, N)``.

    Uses ``||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b``: one matrix product and no
    ``(M, N, D)`` intermediate.  Rounding can make tiny values negative; they are
    clamped to zero.  ``b_sq (N,)``, the squared norms of ``b``, may be passed in
    when ``b`` is used many times.
    """
    ### BEGIN SOLUTION
    if b_sq is None:
        b_sq = (b * b).sum(dim=1)
    d2 = a @ b.T
    d2.mul_(-2).add_(b_sq).add_((a * a).sum(dim=1, keepdim=True))
    return d2.clamp_min_(0)
    ### END SOLUTION


def compute_distances_no_loops(x_train: torch.Tensor, x_test: torch.Tensor) -> torch.Tensor:
    """Euclidean distances with no Python loop: one matrix product.

    Shapes as in :func:`compute_distances_two_loops`.
    """
    a, b = _check_pair(x_train, x_test)
    ### BEGIN SOLUTION
    return squared_distances(a, b).sqrt_()
    ### END SOLUTION


# --------------------------------------------------------------------------- voting


def nearest_indices(d: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` smallest entries of each row of ``d (M, N)`` -> ``(M, k)``.

    Ties at the k-th distance go to the lowest column index, so the chosen set
    never depends on the sort algorithm.  ``topk`` does the work; a row is
    ambiguous only when its (k+1)-th smallest value equals its k-th, and only
    those rows are re-sorted with a stable sort.
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
    """Majority label of each row of ``neighbor_labels (M, k)`` -> ``(M,)``; ties to the smallest label."""
    if num_classes is None:
        num_classes = int(neighbor_labels.max()) + 1 if neighbor_labels.numel() else 1
    ### BEGIN SOLUTION
    counts = torch.zeros(neighbor_labels.shape[0], num_classes, dtype=torch.long,
                         device=neighbor_labels.device)
    counts.scatter_add_(1, neighbor_labels, torch.ones_like(neighbor_labels))
    return counts.argmax(dim=1)  # argmax returns the first maximum: the smallest label
    ### END SOLUTION


def predict_labels(dists: torch.Tensor, y_train: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Predict a label for every test point from a distance matrix.

    Args:
        dists: ``(num_train, num_test)`` distances, as the ``compute_distances_*`` give.
        y_train: ``(num_train,)`` integer labels.
        k: number of neighbours that vote.

    Returns:
        y_pred: ``(num_test,)`` int64 labels.
    """
    if not isinstance(dists, torch.Tensor) or dists.dim() != 2:
        raise ValueError(f"dists must be a (num_train, num_test) tensor, got "
                         f"{tuple(dists.shape) if isinstance(dists, torch.Tensor) else type(dists).__name__}")
    if not bool(torch.isfinite(dists).all()):
        raise ValueError("dists holds NaN or infinite values: check the inputs of the distance computation")
    y = _check_labels(y_train, dists.shape[0])
    k = _check_k(k, dists.shape[0])
    classes, y = _compact_labels(y)            # votes over 0..C-1; classes[...] maps back
    y_pred = None
    ### BEGIN SOLUTION
    idx = nearest_indices(dists.T, k)
    y_pred = vote(y[idx], len(classes))
    ### END SOLUTION
    return classes[y_pred]


# --------------------------------------------------------------------------- classifier


class KnnClassifier:
    """k-nearest-neighbour classifier: "training" stores the data.

    Args:
        x_train: ``(num_train, D1, ..., Dn)`` floating tensor.
        y_train: ``(num_train,)`` integer labels.
    """

    def __init__(self, x_train: torch.Tensor, y_train: torch.Tensor):
        self.x_train = _as_matrix(x_train, "x_train")
        self.y_train = _check_labels(y_train, self.x_train.shape[0])
        if self.x_train.shape[0] == 0:
            raise ValueError("x_train must hold at least one training point")
        self.input_shape = tuple(x_train.shape[1:])
        self.classes, self._codes = _compact_labels(self.y_train)
        self.num_classes = len(self.classes)
        self._train_sq = (self.x_train * self.x_train).sum(dim=1)

    def _check_test(self, x_test: torch.Tensor) -> torch.Tensor:
        b = _as_matrix(x_test, "x_test")
        if tuple(x_test.shape[1:]) != self.input_shape:
            raise ValueError(f"x_test must have shape (num_test, {', '.join(map(str, self.input_shape))}) "
                             f"like the training data, got {tuple(x_test.shape)}")
        return b.to(self.x_train.dtype)

    def _chunk_size(self, chunk_size: int | None) -> int:
        if chunk_size is None:
            per_row = self.x_train.shape[0] * self.x_train.element_size()
            return max(1, DEFAULT_CHUNK_BYTES // per_row)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        return chunk_size

    def kneighbors(self, x_test: torch.Tensor, k: int = 1, chunk_size: int | None = None) -> torch.Tensor:
        """Indices of the ``k`` nearest training points of each test point -> ``(num_test, k)``.

        The test set is processed ``chunk_size`` points at a time, so the extra
        memory is about ``chunk_size * num_train`` distances whatever the test size.
        """
        k = _check_k(k, self.x_train.shape[0])
        b = self._check_test(x_test)
        step = self._chunk_size(chunk_size)
        out = []
        for start in range(0, b.shape[0], step):
            d2 = squared_distances(b[start:start + step], self.x_train, self._train_sq)
            out.append(nearest_indices(d2, k))
        return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long, device=self.x_train.device)

    def predict(self, x_test: torch.Tensor, k: int = 1, chunk_size: int | None = None) -> torch.Tensor:
        """Predicted labels ``(num_test,)`` by majority vote of the ``k`` nearest neighbours."""
        idx = self.kneighbors(x_test, k, chunk_size)
        return self.classes[vote(self._codes[idx], self.num_classes)]

    def check_accuracy(self, x_test: torch.Tensor, y_test: torch.Tensor, k: int = 1, quiet: bool = False,
                       chunk_size: int | None = None) -> float:
        """Accuracy in percent on ``(x_test, y_test)``; prints ``Got c / n correct; accuracy is a%``."""
        y_test = _check_labels(y_test, x_test.shape[0], "y_test")
        if y_test.shape[0] == 0:
            raise ValueError("x_test is empty: the accuracy on no test points is undefined")
        y_pred = self.predict(x_test, k=k, chunk_size=chunk_size)
        num_correct = int((y_pred == y_test).sum())
        num = int(y_test.shape[0])
        accuracy = 100.0 * num_correct / num
        if not quiet:
            print(f"Got {num_correct} / {num} correct; accuracy is {accuracy:.2f}%")
        return accuracy


# --------------------------------------------------------------------------- choosing k


def knn_cross_validate(x_train: torch.Tensor, y_train: torch.Tensor, num_folds: int = 5,
                       k_choices=None) -> dict[int, list[float]]:
    """Accuracy (percent) of every ``k`` on each of ``num_folds`` folds.

    The training set is split into ``num_folds`` consecutive folds; each fold in
    turn is held out and predicted from the others.  The distances of a fold are
    computed once and shared by all values of ``k``.

    Returns:
        ``{k: [accuracy on fold 0, ..., accuracy on fold num_folds - 1]}``.
    """
    if k_choices is None:
        k_choices = [1, 3, 5, 8, 10, 12, 15, 20, 50, 100]
    a = _as_matrix(x_train, "x_train")
    y = _check_labels(y_train, a.shape[0])
    if isinstance(num_folds, bool) or not isinstance(num_folds, int) or not 2 <= num_folds <= a.shape[0]:
        raise ValueError(f"num_folds must be an int in [2, num_train={a.shape[0]}], got {num_folds}")
    largest_fold = -(-a.shape[0] // num_folds)
    k_choices = list(k_choices)
    if not k_choices:
        raise ValueError("k_choices is empty: give the values of k to try, e.g. [1, 3, 5]")
    for k in k_choices:
        _check_k(k, a.shape[0] - largest_fold)
    classes, y = _compact_labels(y)            # votes over 0..C-1 (accuracy compares codes)
    ### BEGIN SOLUTION
    x_folds = torch.tensor_split(a, num_folds)
    y_folds = torch.tensor_split(y, num_folds)
    num_classes = len(classes)
    k_to_accuracies = {k: [] for k in k_choices}
    for i in range(num_folds):
        x_tr = torch.cat(x_folds[:i] + x_folds[i + 1:])
        y_tr = torch.cat(y_folds[:i] + y_folds[i + 1:])
        order = nearest_indices(squared_distances(x_folds[i], x_tr), max(k_choices))
        for k in k_choices:
            y_pred = vote(y_tr[order[:, :k]], num_classes)
            k_to_accuracies[k].append(100.0 * (y_pred == y_folds[i]).float().mean().item())
    return k_to_accuracies
    ### END SOLUTION


def knn_get_best_k(k_to_accuracies: dict) -> int:
    """The ``k`` with the highest mean cross-validation accuracy; ties go to the smallest ``k``."""
    if not k_to_accuracies:
        raise ValueError("k_to_accuracies is empty: expected {k: [accuracy per fold]}")
    empty = [k for k, accuracies in k_to_accuracies.items() if not len(accuracies)]
    if empty:
        raise ValueError(f"k_to_accuracies has no fold accuracies for k = {empty}: expected a non-empty list each")
    ### BEGIN SOLUTION
    def mean(values):
        return sum(values) / len(values)

    best = max(mean(v) for v in k_to_accuracies.values())
    return min(k for k, v in k_to_accuracies.items() if mean(v) == best)
    ### END SOLUTION
