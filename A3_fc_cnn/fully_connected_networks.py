"""A3: fully-connected networks, dropout and update rules, written by hand (no autograd).

Names follow EECS 498/598 so course material applies unchanged.

Layers are classes of static methods, each with a forward and a backward pass::

    out, cache = Linear.forward(x, w, b)          # x (N, d_1, ..., d_k), w (D, M), b (M,)
    dx, dw, db = Linear.backward(dout, cache)     # dout (N, M)

* ``Linear``, ``ReLU``, ``Linear_ReLU`` (the two in one "sandwich"), ``Dropout``;
* losses ``softmax_loss(x, y)`` and ``svm_loss(x, y)`` returning ``(loss, dx)``
  (given code, at the end of this file);
* models ``TwoLayerNet`` and ``FullyConnectedNet``: ``params`` (a dict of tensors)
  and ``loss(X, y=None)`` which returns the class scores ``(N, C)`` when ``y`` is
  None and ``(loss, grads)`` otherwise, ``grads`` keyed like ``params``; they train
  with :class:`helpers.solver.Solver`;
* update rules ``sgd``, ``sgd_momentum``, ``rmsprop``, ``adam``:
  ``next_w, config = rule(w, dw, config)``;
* ``create_solver_instance``, ``get_three_layer_network_params`` and
  ``get_five_layer_network_params``: the hyper-parameters you choose.

Each function checks its inputs in one line with :mod:`A3_fc_cnn.checks`; the
models' ``save``/``load`` use :mod:`A3_fc_cnn.model_files`.

Conventions used throughout:

* L2 regularisation adds ``reg * sum(W ** 2)`` over every weight matrix (not the
  biases), so its gradient is ``2 * reg * W``;
* the losses average over the ``N`` examples of the batch;
* ``Dropout``'s ``p`` is the probability of DROPPING a unit, as in
  ``torch.nn.Dropout(p)``, and the kept units are scaled by ``1 / (1 - p)``
  during training ("inverted dropout"), so test mode is the identity.
"""

from __future__ import annotations

import math

import torch

from A3_fc_cnn.checks import (
    check_data_dict,
    check_dropout_grad,
    check_dropout_param,
    check_fc_net,
    check_float,
    check_grad,
    check_linear,
    check_model_input,
    check_scores_labels,
    check_two_layer_net,
    check_update,
)
from A3_fc_cnn.model_files import SAVE_FORMAT, load_model, loaded_params, save_model
from helpers.solver import Solver

__all__ = [
    "Dropout",
    "FullyConnectedNet",
    "Linear",
    "Linear_ReLU",
    "ReLU",
    "TwoLayerNet",
    "adam",
    "create_solver_instance",
    "get_five_layer_network_params",
    "get_three_layer_network_params",
    "rmsprop",
    "sgd",
    "sgd_momentum",
    "softmax_loss",
    "svm_loss",
]

# --------------------------------------------------------------------------- layers


class Linear:
    """Fully-connected (affine) layer ``out = x_flat @ w + b``."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor):
        """Forward pass.

        Args:
            x: ``(N, d_1, ..., d_k)``; each example is flattened to ``D = d_1 * ... * d_k`` values.
            w: ``(D, M)`` weights.
            b: ``(M,)`` biases.

        Returns:
            out: ``(N, M)``; cache: ``(x, w, b)`` for :meth:`backward`.

        Rule: no loops, no autograd, and not ``torch.nn.functional.linear``.  Hint: flatten each example into a row
        with ``reshape`` (``view`` fails on a tensor stored channels-last).
        """
        D = check_linear(x, w, b)
        ### BEGIN SOLUTION
        out = x.reshape(x.shape[0], D) @ w + b
        ### END SOLUTION
        cache = (x, w, b)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache):
        """Backward pass.

        Args:
            dout: ``(N, M)`` upstream gradient.
            cache: ``(x, w, b)`` from :meth:`forward`.

        Returns:
            dx: ``(N, d_1, ..., d_k)``; dw: ``(D, M)``; db: ``(M,)``.

        Rule: no loops, no autograd.  Hint: ``dx`` has the shape of ``x``: reshape the ``(N, D)`` product back.
        """
        x, w, b = cache
        check_grad(dout, "dout", (x.shape[0], w.shape[1]), "the output (N, M)")
        ### BEGIN SOLUTION
        dx = (dout @ w.T).reshape(x.shape)
        dw = x.reshape(x.shape[0], w.shape[0]).T @ dout
        db = dout.sum(dim=0)
        ### END SOLUTION
        return dx, dw, db


class ReLU:
    """Rectified linear unit ``out = max(x, 0)``, elementwise."""

    @staticmethod
    def forward(x: torch.Tensor):
        """Forward pass.

        Args:
            x: any shape.

        Returns:
            out: same shape as ``x``; cache: ``x``.

        Rule: no loops, no autograd; leave ``x`` unchanged (no in-place operation on it): the cache keeps it
        for the backward pass.
        """
        check_float(x, "x", "(any shape)")
        ### BEGIN SOLUTION
        out = x.clamp(min=0)
        ### END SOLUTION
        cache = x
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache):
        """Backward pass: ``dx = dout`` where ``x > 0`` and ``0`` elsewhere (also at ``x == 0``).

        Args:
            dout: upstream gradient, shape of ``x``.
            cache: ``x`` from :meth:`forward`.

        Returns:
            dx: shape of ``x``.

        Rule: no loops, no autograd; leave ``dout`` unchanged (no in-place operation on it).
        """
        x = cache
        check_grad(dout, "dout", x.shape, "x")
        ### BEGIN SOLUTION
        # The mask (1.0 where x > 0) is written straight into a float tensor: multiplying by a bool
        # tensor (``dout * (x > 0)``) converts it first, which on a CPU costs several times more.
        dx = torch.empty_like(x, dtype=dout.dtype)
        torch.gt(x, 0, out=dx)
        dx.mul_(dout)
        ### END SOLUTION
        return dx


class Linear_ReLU:
    """A linear layer followed by a ReLU: ``out = relu(x_flat @ w + b)``."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor):
        """Forward pass; shapes as in :meth:`Linear.forward`.

        Returns:
            out: ``(N, M)``; cache: ``(linear_cache, relu_cache)``.

        Rule: with :class:`Linear` and :class:`ReLU`; nothing from ``torch.nn``, no loops, no autograd.
        """
        ### BEGIN SOLUTION
        a, fc_cache = Linear.forward(x, w, b)
        out, relu_cache = ReLU.forward(a)
        cache = (fc_cache, relu_cache)
        ### END SOLUTION
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache):
        """Backward pass; returns ``dx, dw, db`` as :meth:`Linear.backward`.

        Rule: as :meth:`forward` (with the layers' backward passes; no loops, no autograd).
        """
        ### BEGIN SOLUTION
        fc_cache, relu_cache = cache
        da = ReLU.backward(dout, relu_cache)
        dx, dw, db = Linear.backward(da, fc_cache)
        ### END SOLUTION
        return dx, dw, db


class Dropout:
    """Inverted dropout.

    ``dropout_param`` is a dict with

    * ``"p"``: the probability of DROPPING (zeroing) each unit, in ``[0, 1]`` --
      the same convention as ``torch.nn.Dropout(p)``.  ``p = 0`` keeps everything;
      ``p = 1`` zeroes everything;
    * ``"mode"``: ``"train"`` or ``"test"``.  In training, each unit is kept with
      probability ``1 - p`` and the kept units are divided by ``1 - p``, so every
      output has the expected value of its input; in test mode the layer is the
      identity;
    * ``"seed"`` (optional): when present, the mask is drawn from a private
      generator seeded with it, so the same seed gives the same mask (for
      gradient checks) and torch's global generator is left untouched.  Without
      a seed the mask comes from torch's global generator (of ``x``'s device).
    """

    @staticmethod
    def forward(x: torch.Tensor, dropout_param: dict):
        """Forward pass.

        Args:
            x: any shape, floating.
            dropout_param: see the class docstring.

        Returns:
            out: shape of ``x``; cache: ``(dropout_param, mask)`` where ``mask``
            (train mode) holds ``0`` for dropped units and ``1 / (1 - p)`` for kept
            ones, or is None in test mode.

        Rule: no loops, no autograd, not ``torch.nn.functional.dropout``.  Hint: ``torch.rand`` draws the mask
        (with ``generator=`` a ``torch.Generator`` seeded with ``dropout_param["seed"]`` when present).
        """
        p, mode = check_dropout_param(x, dropout_param)
        mask = None
        if mode == "train":
            ### BEGIN SOLUTION
            if p == 1.0:
                mask = torch.zeros_like(x)
            else:
                generator = None
                if dropout_param.get("seed") is not None:
                    generator = torch.Generator(device=x.device).manual_seed(int(dropout_param["seed"]))
                keep = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device) >= p
                mask = keep.to(x.dtype) / (1.0 - p)
            out = x * mask
            ### END SOLUTION
        else:
            out = x
        cache = (dropout_param, mask)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache):
        """Backward pass: ``dx = dout * mask`` in train mode, ``dout`` in test mode.

        Args:
            dout: upstream gradient, shape of ``x``.
            cache: ``(dropout_param, mask)`` from :meth:`forward`.

        Returns:
            dx: shape of ``x``.

        Rule: no loops, no autograd.
        """
        dropout_param, mask = cache
        check_dropout_grad(dout, mask)
        if mask is None:
            return dout
        ### BEGIN SOLUTION
        dx = dout * mask
        ### END SOLUTION
        return dx


# --------------------------------------------------------------------------- models


class TwoLayerNet:
    """Two-layer network ``linear - relu - linear - softmax`` with L2 regularisation.

    Args:
        input_dim: ``D``, the size of one (flattened) input.
        hidden_dim: ``H``, the size of the hidden layer.
        num_classes: ``C``.
        weight_scale: standard deviation of the random (normal) initial weights;
            biases start at zero.
        reg: L2 strength; the loss adds ``reg * (sum(W1**2) + sum(W2**2))``.
        dtype, device: of the parameters.

    Attributes:
        params: ``{"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}``.
        reg: the L2 strength.
    """

    def __init__(self, input_dim: int = 3 * 32 * 32, hidden_dim: int = 100, num_classes: int = 10,
                 weight_scale: float = 1e-3, reg: float = 0.0, dtype: torch.dtype = torch.float32,
                 device="cpu"):
        self.input_dim, self.reg = check_two_layer_net(input_dim, hidden_dim, num_classes, weight_scale, reg, dtype)
        self.params: dict[str, torch.Tensor] = {}
        ### BEGIN SOLUTION
        self.params["W1"] = weight_scale * torch.randn(input_dim, hidden_dim, dtype=dtype, device=device)
        self.params["b1"] = torch.zeros(hidden_dim, dtype=dtype, device=device)
        self.params["W2"] = weight_scale * torch.randn(hidden_dim, num_classes, dtype=dtype, device=device)
        self.params["b2"] = torch.zeros(num_classes, dtype=dtype, device=device)
        ### END SOLUTION

    def save(self, path) -> None:
        """Write ``reg`` and ``params`` to ``path`` (readable with ``torch.load(weights_only=True)``)."""
        save_model(path, {"format": SAVE_FORMAT, "model": "TwoLayerNet", "reg": self.reg,
                           "params": {k: v.detach().cpu() for k, v in self.params.items()}})

    def load(self, path, dtype: torch.dtype | None = None, device="cpu") -> None:
        """Replace ``reg`` and ``params`` by those saved in ``path``.

        ``dtype=None`` keeps the saved dtype; ``device`` is where the parameters go.
        """
        payload = load_model(path, "TwoLayerNet")
        self.reg = float(payload["reg"])
        self.params = loaded_params(payload["params"], dtype, device)
        self.input_dim = self.params["W1"].shape[0]

    def loss(self, X: torch.Tensor, y: torch.Tensor | None = None):
        """Scores, or loss and gradients, for a minibatch.

        Args:
            X: ``(N, d_1, ..., d_k)`` inputs with ``d_1 * ... * d_k = D``.
            y: ``(N,)`` integer labels in ``[0, C)``, or None.

        Returns:
            ``y is None``: scores ``(N, C)``.
            Otherwise ``(loss, grads)``: the scalar loss (data loss + L2) and a dict
            of gradients with the keys and shapes of ``params``.

        Rule: with the layers above and ``softmax_loss``; nothing from ``torch.nn``, no autograd.

        Hint: ``Linear_ReLU``, ``Linear`` and ``softmax_loss`` do the work; L2 is
        ``reg * sum(W ** 2)`` (no factor 0.5), so its gradient is ``2 * reg * W``.
        """
        check_model_input(X, self.input_dim)
        ### BEGIN SOLUTION
        p = self.params
        hidden, hidden_cache = Linear_ReLU.forward(X, p["W1"], p["b1"])
        scores, scores_cache = Linear.forward(hidden, p["W2"], p["b2"])
        ### END SOLUTION
        if y is None:
            return scores
        grads = {}
        ### BEGIN SOLUTION
        loss, dscores = softmax_loss(scores, y)
        loss = loss + self.reg * ((p["W1"] ** 2).sum() + (p["W2"] ** 2).sum())
        dhidden, grads["W2"], grads["b2"] = Linear.backward(dscores, scores_cache)
        _, grads["W1"], grads["b1"] = Linear_ReLU.backward(dhidden, hidden_cache)
        grads["W1"] = grads["W1"] + 2 * self.reg * p["W1"]
        grads["W2"] = grads["W2"] + 2 * self.reg * p["W2"]
        ### END SOLUTION
        return loss, grads


class FullyConnectedNet:
    """Fully-connected network of any depth with ReLUs, optional dropout and L2.

    Architecture (``L = len(hidden_dims) + 1`` linear layers)::

        {linear - relu - [dropout]} x (L - 1) - linear - softmax

    Args:
        hidden_dims: list of the ``L - 1`` hidden sizes (may be empty: a linear softmax classifier).
        input_dim: ``D``, the size of one (flattened) input.
        num_classes: ``C``.
        dropout: probability of DROPPING a unit after each ReLU, in ``[0, 1]`` (as in
            ``nn.Dropout(p)``); ``0`` means no dropout layers.
        reg: L2 strength; the loss adds ``reg * sum_l sum(Wl ** 2)``.
        weight_scale: standard deviation of the random (normal) initial weights; biases start at zero.
        seed: when not None, the dropout layer after hidden layer ``l`` draws its mask from
            a generator seeded with ``seed + l``, so every forward pass uses the same masks
            and the loss is a deterministic function (for gradient checks; do not train
            with it: a fixed mask is not dropout).  It does not seed the weight
            initialisation (use ``torch.manual_seed``).
        dtype, device: of the parameters.

    Attributes:
        params: ``W1 (D, H1), b1 (H1,), ..., WL (H_{L-1}, C), bL (C,)``.
        num_layers: ``L``.
        use_dropout: ``dropout > 0``.
        dropout_param: ``{"mode": "train" | "test", "p": dropout[, "seed": seed]}``;
            :meth:`loss` sets the mode ("test" when ``y`` is None, else "train").
    """

    def __init__(self, hidden_dims, input_dim: int = 3 * 32 * 32, num_classes: int = 10,
                 dropout: float = 0.0, reg: float = 0.0, weight_scale: float = 1e-2, seed: int | None = None,
                 dtype: torch.dtype = torch.float, device="cpu"):
        self.input_dim, self.reg = check_fc_net(hidden_dims, input_dim, num_classes, dropout, reg, weight_scale,
                                                seed, dtype)
        self.num_layers = 1 + len(hidden_dims)
        self.use_dropout = dropout != 0
        self.dtype = dtype
        self.dropout_param = {"mode": "train", "p": float(dropout)}
        if seed is not None:
            self.dropout_param["seed"] = int(seed)
        self.params: dict[str, torch.Tensor] = {}
        ### BEGIN SOLUTION
        sizes = [input_dim, *hidden_dims, num_classes]
        for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
            self.params[f"W{layer}"] = weight_scale * torch.randn(fan_in, fan_out, dtype=dtype, device=device)
            self.params[f"b{layer}"] = torch.zeros(fan_out, dtype=dtype, device=device)
        ### END SOLUTION

    def save(self, path) -> None:
        """Write the architecture, ``reg``, dropout settings and ``params`` to ``path``."""
        save_model(path, {"format": SAVE_FORMAT, "model": "FullyConnectedNet", "reg": self.reg,
                           "num_layers": self.num_layers, "dropout": self.dropout_param["p"],
                           "seed": self.dropout_param.get("seed"),
                           "params": {k: v.detach().cpu() for k, v in self.params.items()}})

    def load(self, path, dtype: torch.dtype | None = None, device="cpu") -> None:
        """Replace the architecture, ``reg``, dropout settings and ``params`` by those saved in ``path``.

        ``dtype=None`` keeps the saved dtype; ``device`` is where the parameters go.
        """
        payload = load_model(path, "FullyConnectedNet")
        self.reg = float(payload["reg"])
        self.num_layers = int(payload["num_layers"])
        self.params = loaded_params(payload["params"], dtype, device)
        self.dtype = self.params["W1"].dtype
        self.input_dim = self.params["W1"].shape[0]
        self.use_dropout = payload["dropout"] != 0
        self.dropout_param = {"mode": "train", "p": float(payload["dropout"])}
        if payload.get("seed") is not None:
            self.dropout_param["seed"] = int(payload["seed"])

    def _dropout_param(self, layer: int) -> dict:
        """The ``dropout_param`` of the dropout after hidden layer ``layer``: its own seed when seeded."""
        if self.dropout_param.get("seed") is None:
            return self.dropout_param
        return {**self.dropout_param, "seed": self.dropout_param["seed"] + layer}

    def loss(self, X: torch.Tensor, y: torch.Tensor | None = None):
        """Scores, or loss and gradients, for a minibatch (see :meth:`TwoLayerNet.loss`).

        With ``y`` None the network runs in test mode (no dropout) and returns the
        scores ``(N, C)``; otherwise in train mode, returning ``(loss, grads)``.

        Rule: with the layers above and ``softmax_loss`` (a loop over the layers is fine); nothing from
        ``torch.nn``, no autograd.

        Hint: keep each layer's cache in a list and walk it backwards; ``self._dropout_param(l)``
        (given) is the ``dropout_param`` of the dropout after hidden layer ``l`` (``self.dropout_param``
        works too).
        """
        check_model_input(X, self.input_dim)
        self.dropout_param["mode"] = "test" if y is None else "train"
        L = self.num_layers
        ### BEGIN SOLUTION
        p = self.params
        caches = []
        out = X
        for layer in range(1, L):
            out, fc_relu_cache = Linear_ReLU.forward(out, p[f"W{layer}"], p[f"b{layer}"])
            drop_cache = None
            if self.use_dropout:
                out, drop_cache = Dropout.forward(out, self._dropout_param(layer))
            caches.append((fc_relu_cache, drop_cache))
        scores, last_cache = Linear.forward(out, p[f"W{L}"], p[f"b{L}"])
        ### END SOLUTION
        if y is None:
            return scores
        grads = {}
        ### BEGIN SOLUTION
        loss, dscores = softmax_loss(scores, y)
        loss = loss + self.reg * sum((p[f"W{layer}"] ** 2).sum() for layer in range(1, L + 1))
        dout, grads[f"W{L}"], grads[f"b{L}"] = Linear.backward(dscores, last_cache)
        for layer in range(L - 1, 0, -1):
            fc_relu_cache, drop_cache = caches[layer - 1]
            if drop_cache is not None:
                dout = Dropout.backward(dout, drop_cache)
            dout, grads[f"W{layer}"], grads[f"b{layer}"] = Linear_ReLU.backward(dout, fc_relu_cache)
        for layer in range(1, L + 1):
            grads[f"W{layer}"] = grads[f"W{layer}"] + 2 * self.reg * p[f"W{layer}"]
        ### END SOLUTION
        return loss, grads


# --------------------------------------------------------------------------- update rules


def sgd(w: torch.Tensor, dw: torch.Tensor, config: dict | None = None):
    """Vanilla stochastic gradient descent: ``w - learning_rate * dw``.

    config: ``learning_rate`` (default ``1e-2``).

    Returns:
        ``(next_w, config)``.  ``next_w`` may be a new tensor or ``w`` itself updated in
        place (EECS 498's ``w -= learning_rate * dw``): the Solver and the tests accept
        both, for every update rule.

    Rule (every update rule): no loops, not ``torch.optim``.
    """
    config = check_update(w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    ### BEGIN SOLUTION
    next_w = w - config["learning_rate"] * dw
    ### END SOLUTION
    return next_w, config


def sgd_momentum(w: torch.Tensor, dw: torch.Tensor, config: dict | None = None):
    """SGD with momentum: ``v = momentum * v - learning_rate * dw; next_w = w + v``.

    config: ``learning_rate`` (``1e-2``), ``momentum`` (``0.9``), ``velocity``
    (a tensor like ``w``, starts at zero).  Returns ``(next_w, config)`` as :func:`sgd`.

    Rule: no loops, not ``torch.optim``.  Hint: store the new velocity in ``v``; the given code puts it
    back into ``config``.
    """
    config = check_update(w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config.get("velocity", torch.zeros_like(w))
    ### BEGIN SOLUTION
    v = config["momentum"] * v - config["learning_rate"] * dw
    next_w = w + v
    ### END SOLUTION
    config["velocity"] = v
    return next_w, config


def rmsprop(w: torch.Tensor, dw: torch.Tensor, config: dict | None = None):
    """RMSProp: a moving average of squared gradients scales each step.

    ``cache = decay_rate * cache + (1 - decay_rate) * dw**2``;
    ``next_w = w - learning_rate * dw / (sqrt(cache) + epsilon)``.

    config: ``learning_rate`` (``1e-2``), ``decay_rate`` (``0.99``), ``epsilon``
    (``1e-8``), ``cache`` (a tensor like ``w``, starts at zero).  Returns ``(next_w, config)``
    as :func:`sgd`; store the new moving average in ``config["cache"]``.

    Rule: no loops, not ``torch.optim``.
    """
    config = check_update(w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("cache", torch.zeros_like(w))
    ### BEGIN SOLUTION
    cache = config["decay_rate"] * config["cache"] + (1 - config["decay_rate"]) * dw * dw
    next_w = w - config["learning_rate"] * dw / (cache.sqrt() + config["epsilon"])
    config["cache"] = cache
    ### END SOLUTION
    return next_w, config


def adam(w: torch.Tensor, dw: torch.Tensor, config: dict | None = None):
    """Adam: moving averages of the gradient and its square, with bias correction.

    With ``t`` counting updates from 1::

        m = beta1 * m + (1 - beta1) * dw
        v = beta2 * v + (1 - beta2) * dw**2
        next_w = w - learning_rate * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + epsilon)

    config: ``learning_rate`` (``1e-3``), ``beta1`` (``0.9``), ``beta2`` (``0.999``),
    ``epsilon`` (``1e-8``), ``m`` and ``v`` (tensors like ``w``, start at zero),
    ``t`` (updates done so far, starts at 0).  Returns ``(next_w, config)`` as :func:`sgd`.

    Rule: no loops, not ``torch.optim``.  Hint: increase ``config["t"]`` BEFORE using it, so the first
    update uses ``t = 1``.
    """
    config = check_update(w, dw, config)
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", torch.zeros_like(w))
    config.setdefault("v", torch.zeros_like(w))
    config.setdefault("t", 0)
    ### BEGIN SOLUTION
    beta1, beta2 = config["beta1"], config["beta2"]
    config["t"] += 1
    config["m"] = beta1 * config["m"] + (1 - beta1) * dw
    config["v"] = beta2 * config["v"] + (1 - beta2) * dw * dw
    m_hat = config["m"] / (1 - beta1 ** config["t"])
    v_hat = config["v"] / (1 - beta2 ** config["t"])
    next_w = w - config["learning_rate"] * m_hat / (v_hat.sqrt() + config["epsilon"])
    ### END SOLUTION
    return next_w, config


# --------------------------------------------------------------------------- your hyper-parameters


def create_solver_instance(data_dict: dict, dtype: torch.dtype = torch.float32, device="cpu",
                           **solver_kwargs) -> Solver:
    """A :class:`Solver` training a :class:`TwoLayerNet` on ``data_dict``.

    Choose the hidden size, initialisation, regularisation and SGD settings so the
    trained network reaches at least 50% validation accuracy on CIFAR-10 (and
    more on Fashion-MNIST).  The input size and number of classes are read from
    the data.

    Args:
        data_dict: ``X_train (N, d_1, ..., d_k)``, ``y_train``, ``X_val``, ``y_val``.
        dtype, device: of the model's parameters.
        **solver_kwargs: override the Solver arguments chosen here
            (``verbose``, ``checkpoint_name``, ``num_epochs``...).
    """
    check_data_dict(data_dict)
    input_dim = math.prod(data_dict["X_train"].shape[1:])
    num_classes = int(max(data_dict["y_train"].max(), data_dict["y_val"].max())) + 1
    ### BEGIN SOLUTION
    model = TwoLayerNet(input_dim=input_dim, hidden_dim=256, num_classes=num_classes, weight_scale=1e-2,
                        reg=1e-4, dtype=dtype, device=device)
    settings = dict(update_rule=sgd, optim_config={"learning_rate": 0.2}, lr_decay=0.95,
                    num_epochs=10, batch_size=100, device=device)
    ### END SOLUTION
    settings.update(solver_kwargs)
    return Solver(model, data_dict, **settings)


def get_three_layer_network_params() -> tuple[float, float]:
    """``(weight_scale, learning_rate)`` with which a 3-layer net (hidden sizes 100, 100),
    trained with SGD on 50 examples (batch 25), reaches 100% training accuracy within 20 epochs."""
    ### BEGIN SOLUTION
    weight_scale = 1e-1
    learning_rate = 0.2
    ### END SOLUTION
    return weight_scale, learning_rate


def get_five_layer_network_params() -> tuple[float, float]:
    """``(weight_scale, learning_rate)`` with which a 5-layer net (four hidden layers of 100),
    trained with SGD on 50 examples (batch 25), reaches 100% training accuracy within 20 epochs."""
    ### BEGIN SOLUTION
    weight_scale = 1.5e-1
    learning_rate = 0.1
    ### END SOLUTION
    return weight_scale, learning_rate


# --------------------------------------------------------------------------- given code: the losses


def softmax_loss(x: torch.Tensor, y: torch.Tensor):
    """Softmax (cross-entropy) loss, averaged over the batch.

    ``loss = mean_i [ -x[i, y_i] + log sum_j exp(x[i, j]) ]``, computed after
    subtracting each row's maximum so that ``exp`` never overflows.

    Args:
        x: ``(N, C)`` class scores.
        y: ``(N,)`` integer labels in ``[0, C)``.

    Returns:
        loss: scalar tensor; dx: ``(N, C)``, the gradient of ``loss`` with respect to ``x``.
    """
    check_scores_labels(x, y)
    N = x.shape[0]
    rows = torch.arange(N, device=x.device)
    shifted = x - x.max(dim=1, keepdim=True).values
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    loss = -log_probs[rows, y].sum() / N
    dx = log_probs.exp()
    dx[rows, y] -= 1
    dx /= N
    return loss, dx


def svm_loss(x: torch.Tensor, y: torch.Tensor):
    """Multiclass SVM (hinge) loss with margin 1, averaged over the batch.

    ``loss = mean_i sum_{j != y_i} max(0, x[i, j] - x[i, y_i] + 1)``.  Note that
    ``torch.nn.functional.multi_margin_loss`` also divides by ``C``: this loss is
    ``C`` times it.

    Args:
        x: ``(N, C)`` class scores.
        y: ``(N,)`` integer labels in ``[0, C)``.

    Returns:
        loss: scalar tensor; dx: ``(N, C)``.
    """
    check_scores_labels(x, y)
    N = x.shape[0]
    rows = torch.arange(N, device=x.device)
    correct = x[rows, y].unsqueeze(1)
    margins = (x - correct + 1.0).clamp(min=0)
    margins[rows, y] = 0.0
    loss = margins.sum() / N
    positive = (margins > 0).to(x.dtype)
    dx = positive.clone()
    dx[rows, y] -= positive.sum(dim=1)
    dx /= N
    return loss, dx
