"""The training loop for the hand-written (no-autograd) models of A2 and A3.

::

    from helpers.solver import Solver
    from A3_fc_cnn.fully_connected_networks import TwoLayerNet, adam

    model = TwoLayerNet(input_dim=784, hidden_dim=100)
    solver = Solver(model, data, update_rule=adam, optim_config={"learning_rate": 1e-3},
                    lr_decay=0.95, num_epochs=10, batch_size=100, checkpoint_name="a3_two_layer")
    solver.train(time_limit=600)
    solver.val_acc_history[-1], solver.best_val_acc

The API is EECS 498/598's ``Solver``:

* ``model`` has ``params`` (a dict name -> tensor) and ``loss(X, y=None)`` returning
  the scores ``(N, C)`` when ``y`` is None, else ``(loss, grads)`` with ``grads``
  keyed like ``params``;
* ``data`` is a dict with ``X_train (N, ...)``, ``y_train (N,)``, ``X_val (M, ...)``,
  ``y_val (M,)`` (what :func:`helpers.datasets.preprocess_dataset` returns; other keys
  are ignored);
* ``update_rule(w, dw, config) -> (next_w, config)`` is applied to every parameter
  with its own ``config`` dict (learning rate, momentum buffers...).  ``helpers``
  imports no assignment, so the assignment's rules are passed in; the default is
  the plain :func:`sgd` below.

How a run goes:

* every epoch visits the training set in a fresh random order, in
  ``iterations_per_epoch = max(N // batch_size, 1)`` batches of ``batch_size``
  examples (a last partial batch is skipped); the order comes from the solver's
  own ``torch.Generator``, seeded from torch's global generator when the solver is
  built (so ``torch.manual_seed`` makes runs repeatable) or from ``seed=``;
* after every epoch each ``config["learning_rate"]`` is multiplied by ``lr_decay``,
  and the accuracies on a fixed subset of ``num_train_samples`` training examples
  and on ``num_val_samples`` validation examples (None: all) are appended to
  ``train_acc_history`` / ``val_acc_history``.  Both are also measured before the
  first step, so after a completed run they hold ``num_epochs + 1`` values, entry
  ``e`` being the accuracy after ``e`` epochs.  ``loss_history`` holds the loss of
  every step.  The parameters with the best validation accuracy are kept in
  ``best_params`` and, with ``train(return_best_params=True)``, put into the model
  at the end;
* progress: a ``tqdm.auto`` bar when ``verbose`` (the bar's postfix shows the
  epoch, the loss every ``print_every`` steps and the accuracies every
  ``print_acc_every`` epochs); nothing is printed otherwise;
* a non-finite loss raises :class:`FloatingPointError` before any parameter changes.

Checkpoints (``checkpoint_name="..."``): at the end of every epoch, and when a
time limit stops the run, the solver writes ``checkpoint_path(checkpoint_name)``
(see :func:`helpers.train.checkpoint_path`: ``checkpoints/<fast|full>/<name>.pt``)
atomically.  It holds the parameters, the running statistics of the model's
batch-norm layers (the tensors in ``model.bn_params``, a list of dicts, where the
A3 models keep them), every parameter's optimizer config (tensors
and numbers), epoch, iteration, the position inside the epoch and its order, the
histories, the best parameters and the RNG states, and loads with
``torch.load(path, weights_only=True)``.  A new ``Solver`` built with the same
``checkpoint_name`` (after a crash, a Colab disconnect or a time-limit stop) loads
it and ``train()`` carries on, ending with exactly the parameters an
uninterrupted run would have.  The checkpoint must come from a run with the same
settings (batch size, data sizes, update rule, optimizer config, lr decay,
parameter dtypes) and parameter shapes; otherwise :class:`ValueError` says so --
delete the file or choose another name.  ``num_epochs`` may be raised to train a finished run longer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from tqdm.auto import tqdm

from helpers.checks import check_int
from helpers.train import Deadline, check_finite_weights, checkpoint_path, load_verified, write_checkpoint

__all__ = ["CHECKPOINT_FORMAT", "Solver", "sgd"]

CHECKPOINT_FORMAT = 1
_WRITER = "helpers.solver.Solver"
_DATA_KEYS = ("X_train", "y_train", "X_val", "y_val")
_ACCURACY_SUBSET_SEED = 0  # the subset used by check_accuracy(num_samples=...) is always the same


def sgd(w: torch.Tensor, dw: torch.Tensor, config: dict | None = None):
    """Plain SGD, the Solver's default update rule: ``next_w = w - learning_rate * dw``.

    ``config``: ``learning_rate`` (default ``1e-2``).  Returns ``(next_w, config)``.
    """
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    return w - config["learning_rate"] * dw, config


class Solver:
    """Trains a hand-written classifier with minibatch updates; see the module docstring.

    Args:
        model: object with ``params`` (dict of tensors) and ``loss(X, y=None)``.
        data: dict with ``X_train (N, d_1, ..., d_k)``, ``y_train (N,)``, ``X_val (M, d_1, ..., d_k)``,
            ``y_val (M,)``; images floating, labels integer.
        update_rule: ``(w, dw, config) -> (next_w, config)``; default :func:`sgd`.
        optim_config: hyper-parameters copied into every parameter's config
            (e.g. ``{"learning_rate": 1e-3}``).
        lr_decay: factor applied to every ``learning_rate`` after each epoch.
        batch_size: examples per update.
        num_epochs: epochs of the whole run (counting those done before a resume).
        num_train_samples: training examples used for the per-epoch accuracy (None: all).
        num_val_samples: validation examples used for the per-epoch accuracy (None: all).
        device: where batches are sent before ``model.loss`` (the model's parameters
            must already be there).
        checkpoint_name: None, or a plain name (``"a3_fc_net"``) to checkpoint and resume.
        print_every: steps between loss updates of the progress bar.
        print_acc_every: epochs between accuracy updates of the progress bar.
        verbose: show the progress bar.
        seed: seed of the generator that orders the batches; None draws one from
            torch's global generator.
        augment: None, or ``augment(X_batch, generator) -> X_batch`` applied to every
            training batch (e.g. :func:`helpers.datasets.random_flip_and_shift`); it must draw
            its randomness from ``generator`` (the solver's, saved in checkpoints) so runs
            repeat and resume exactly.  Accuracies are measured on unaugmented data.

    Attributes:
        loss_history, train_acc_history, val_acc_history: lists of floats.
        best_val_acc, best_params: the best validation accuracy seen and the parameters that gave it.
        best_running_stats: for a model with ``bn_params`` (batch norm), copies of its running
            statistics at that best epoch; they go into the model with ``best_params``.
        epoch, iteration: epochs and updates done.
        optim_configs: name -> that parameter's config dict.
        stopped: ``"not started"``, ``"completed"`` or ``"time_limit"``.
        checkpoint_path: the checkpoint file, or None.
        resumed: True when a checkpoint was loaded at construction.
    """

    def __init__(self, model, data: dict, *, update_rule=None, optim_config: dict | None = None,
                 lr_decay: float = 1.0, batch_size: int = 100, num_epochs: int = 10,
                 num_train_samples: int | None = 1000, num_val_samples: int | None = None, device="cpu",
                 checkpoint_name: str | None = None, print_every: int = 10, print_acc_every: int = 1,
                 verbose: bool = True, seed: int | None = None, augment=None):
        _check_model(model)
        self.model = model
        self.X_train, self.y_train, self.X_val, self.y_val = _check_data(data)
        self.update_rule = sgd if update_rule is None else update_rule
        if not callable(self.update_rule):
            raise TypeError("update_rule must be a function (w, dw, config) -> (next_w, config), "
                            f"got {type(update_rule).__name__}")
        if optim_config is not None and not isinstance(optim_config, Mapping):
            raise TypeError(f"optim_config must be a dict such as {{'learning_rate': 1e-3}}, "
                            f"got {type(optim_config).__name__}")
        self.optim_config = dict(optim_config or {})
        self.lr_decay = _check_number("lr_decay", lr_decay)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.num_epochs = check_int(num_epochs, "num_epochs", minimum=1)
        self.num_train_samples, self.num_val_samples = (
            None if value is None else check_int(value, name, minimum=1)
            for name, value in (("num_train_samples", num_train_samples), ("num_val_samples", num_val_samples)))
        self.device = torch.device(device)
        self.print_every = check_int(print_every, "print_every", minimum=1)
        self.print_acc_every = check_int(print_acc_every, "print_acc_every", minimum=1)
        self.verbose = bool(verbose)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be None or a function (X_batch, generator) -> X_batch, "
                            f"got {type(augment).__name__}")
        self.augment = augment
        self.checkpoint_name = checkpoint_name
        self.checkpoint_path: Path | None = None if checkpoint_name is None else checkpoint_path(checkpoint_name)
        self._reset(seed)
        self.resumed = False
        if self.checkpoint_path is not None and self.checkpoint_path.exists():
            self._resume()

    # ----------------------------------------------------------------------- public

    @property
    def iterations_per_epoch(self) -> int:
        """Updates per epoch: ``max(N // batch_size, 1)``."""
        return max(self.X_train.shape[0] // self.batch_size, 1)

    def train(self, time_limit: float | None = None, return_best_params: bool = True) -> None:
        """Run the remaining epochs.

        Args:
            time_limit: seconds; once this call has trained that long, it finishes the
                current step, writes a checkpoint (with ``checkpoint_name``) and returns
                with ``stopped == "time_limit"``.  Calling ``train()`` again (or building a
                new Solver with the same ``checkpoint_name``) continues exactly.
            return_best_params: when the run completes, put ``best_params`` (and
                ``best_running_stats``) into the model (the last ones stay in the
                checkpoint, so a longer run can still resume from them).

        Raises:
            FloatingPointError: the loss is NaN or infinite (nothing is updated or saved).
        """
        if time_limit is not None:
            _check_number("time_limit", time_limit, allow_zero=True)
        self._deadline, self._time_before = Deadline(time_limit), self.train_time
        self._restore_training_state()
        bar = tqdm(total=self.num_epochs * self.iterations_per_epoch, initial=min(self.iteration, self.num_epochs
                   * self.iterations_per_epoch), desc="train", unit="step", disable=not self.verbose,
                   dynamic_ncols=True)
        self._bar = bar
        try:
            if not self.train_acc_history:
                self._record_accuracy()  # the "after 0 epochs" entry
            while self.epoch < self.num_epochs:
                if self._position == 0:
                    self._order = torch.randperm(self.X_train.shape[0], generator=self._generator)
                self._step()
                bar.update(1)
                if self._position == self.iterations_per_epoch:
                    self._end_epoch()
                if self.epoch < self.num_epochs and self._deadline.passed():
                    self.stopped = "time_limit"
                    self._rng_to_restore = _global_rng_state(self.device)
                    self._save()
                    return
            self.stopped = "completed"
        finally:
            self._count_time()
            bar.close()
            self._bar = None
        if return_best_params and self.best_params:
            self._last_params = dict(self.model.params)
            self._last_running_stats = _running_stats(self.model)
            for name, value in self.best_params.items():
                self.model.params[name] = value.clone()
            _set_running_stats(self.model, self.best_running_stats)

    def check_accuracy(self, X: torch.Tensor, y: torch.Tensor, num_samples: int | None = None,
                       batch_size: int = 100) -> float:
        """Fraction of ``X (N, ...)`` that the model classifies as ``y (N,)``.

        Args:
            num_samples: when not None and smaller than ``N``, use a fixed random
                subset of that size (the same subset every call; no global random
                number is drawn).
            batch_size: examples per call of ``model.loss`` (memory only; the result is the same).

        Returns:
            accuracy in ``[0, 1]`` as a float.
        """
        X, y = _check_pair("X", X, "y", y)
        num_samples = None if num_samples is None else check_int(num_samples, "num_samples", minimum=1)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        N = X.shape[0]
        if num_samples is not None and N > num_samples:
            generator = torch.Generator().manual_seed(_ACCURACY_SUBSET_SEED)
            subset = torch.randperm(N, generator=generator)   # device: a CPU generator, .to below
            subset = subset[:num_samples].sort().values
            X, y = X[subset.to(X.device)], y[subset.to(y.device)]
            N = num_samples
        correct = 0
        with torch.no_grad():
            for start in range(0, N, batch_size):
                scores = self.model.loss(X[start:start + batch_size].to(self.device))
                if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[0] != min(
                        batch_size, N - start):
                    raise ValueError("model.loss(X) must return class scores of shape (N, C) when y is None, got "
                                     f"{tuple(scores.shape) if isinstance(scores, torch.Tensor) else scores!r}")
                pred = scores.argmax(dim=1).to(y.device)
                correct += int((pred == y[start:start + batch_size]).sum())
        return correct / N

    # ----------------------------------------------------------------------- the loop

    def _reset(self, seed: int | None) -> None:
        """State of a run that has not started."""
        self.epoch = 0
        self.iteration = 0
        self._position = 0  # updates done in the current epoch
        self._order: torch.Tensor | None = None  # the current epoch's order of the training examples
        self.best_val_acc = 0.0
        self.best_params: dict[str, torch.Tensor] = {}
        self.best_running_stats: list[dict[str, torch.Tensor]] = []
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.optim_configs = {name: _copy_config(self.optim_config) for name in self.model.params}
        self.stopped = "not started"
        self.train_time = 0.0
        self._deadline, self._time_before = Deadline(None), 0.0  # set again by every train() call
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)))
        self._generator = torch.Generator().manual_seed(seed)
        self._rng_to_restore: dict | None = None  # global RNG state to restore when training goes on
        self._last_params: dict | None = None  # the training parameters while best_params are in the model
        self._last_running_stats: list | None = None  # likewise for batch norm's running statistics
        self._bar = None

    def _restore_training_state(self) -> None:
        """Before training goes on: undo the best-params swap and restore the global RNG state."""
        if self._last_params is not None:
            self.model.params.update(self._last_params)
            _set_running_stats(self.model, self._last_running_stats)
            self._last_params = self._last_running_stats = None
        if self._rng_to_restore is not None:
            _set_global_rng_state(self._rng_to_restore, self.device)
            self._rng_to_restore = None

    def _batch_size(self) -> int:
        return min(self.batch_size, self.X_train.shape[0])

    def _step(self) -> None:
        """One update on the next batch of the epoch's order."""
        size = self._batch_size()
        idx = self._order[self._position * size:(self._position + 1) * size].to(self.X_train.device)
        X_batch = self.X_train[idx].to(self.device)
        y_batch = self.y_train[idx].to(self.device)
        if self.augment is not None:
            X_batch = self.augment(X_batch, self._generator)
            if not isinstance(X_batch, torch.Tensor) or X_batch.shape[0] != y_batch.shape[0]:
                raise TypeError(f"augment must return a tensor with one row per example ({y_batch.shape[0]}), "
                                f"got {type(X_batch).__name__}")
        out = self.model.loss(X_batch, y_batch)
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping)):
            raise TypeError("model.loss(X, y) must return (loss, grads) with grads a dict keyed like "
                            f"model.params, got {type(out).__name__}")
        loss, grads = out
        value = float(loss)
        if not math.isfinite(value):
            kept = ("no checkpoint is written (checkpoint_name=None)" if self.checkpoint_path is None
                    else f"the last checkpoint ({self.checkpoint_path}) was left untouched")
            raise FloatingPointError(
                f"loss is {value} at iteration {self.iteration + 1} (epoch {self.epoch + 1}, batch "
                f"{self._position + 1}); no parameter was updated and {kept}. Remedies: lower the "
                "learning rate or the weight scale, or check the inputs for NaN/inf and their scale.")
        for name, w in self.model.params.items():
            if name not in grads:
                raise ValueError(f"model.loss returned no gradient for parameter {name!r}; "
                                 f"grads has keys {sorted(grads)}")
            if grads[name].shape != w.shape:
                raise ValueError(f"gradient of {name!r} has shape {tuple(grads[name].shape)} but the "
                                 f"parameter has shape {tuple(w.shape)}")
        for name, w in self.model.params.items():
            next_w, config = self.update_rule(w, grads[name], self.optim_configs[name])
            self.model.params[name] = next_w
            self.optim_configs[name] = config
        self.loss_history.append(value)
        self.iteration += 1
        self._position += 1
        if self.iteration % self.print_every == 0 and self._bar is not None:
            self._bar.set_postfix(self._postfix(loss=f"{value:.4g}"), refresh=False)

    def _end_epoch(self) -> None:
        """Decay the learning rates, measure accuracies and write a checkpoint."""
        self.epoch += 1
        self._position = 0
        self._order = None
        for config in self.optim_configs.values():
            if "learning_rate" in config:
                config["learning_rate"] *= self.lr_decay
        self._record_accuracy()
        self._save()

    def _record_accuracy(self) -> None:
        """Append train / val accuracies; keep the best parameters; update the bar."""
        batch = max(self.batch_size, 100)
        train_acc = self.check_accuracy(self.X_train, self.y_train, self.num_train_samples, batch)
        val_acc = self.check_accuracy(self.X_val, self.y_val, self.num_val_samples, batch)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        if not self.best_params or val_acc > self.best_val_acc:
            self.best_val_acc = val_acc
            self.best_params = {name: value.clone() for name, value in self.model.params.items()}
            self.best_running_stats = _running_stats(self.model)
        show = self.epoch % self.print_acc_every == 0 or self.epoch == self.num_epochs
        if show and self._bar is not None:
            self._bar.set_postfix(self._postfix(), refresh=False)

    def _postfix(self, **extra) -> dict:
        post = {"epoch": f"{self.epoch}/{self.num_epochs}"}
        if self.loss_history:
            post["loss"] = f"{self.loss_history[-1]:.4g}"
        if self.val_acc_history:
            post["train_acc"] = f"{self.train_acc_history[-1]:.3f}"
            post["val_acc"] = f"{self.val_acc_history[-1]:.3f}"
        post.update(extra)
        return post

    # ----------------------------------------------------------------------- checkpoints

    def _settings(self) -> dict:
        """What must not change between a run and its resumption."""
        return {
            "update_rule": getattr(self.update_rule, "__name__", type(self.update_rule).__name__),
            "augment": None if self.augment is None else getattr(self.augment, "__name__",
                                                                 type(self.augment).__name__),
            "optim_config": {k: v for k, v in self.optim_config.items() if type(v) in (bool, int, float, str)},
            "lr_decay": self.lr_decay,
            "batch_size": self.batch_size,
            "num_train": int(self.X_train.shape[0]),
            "num_val": int(self.X_val.shape[0]),
            "num_train_samples": self.num_train_samples,
            "num_val_samples": self.num_val_samples,
            "dtypes": {name: str(value.dtype) for name, value in self.model.params.items()},
        }

    def _count_time(self) -> None:
        """``train_time``: the seconds of earlier calls plus those of this one so far."""
        self.train_time = self._time_before + self._deadline.elapsed()

    def _save(self) -> None:
        """Write the checkpoint (when ``checkpoint_name`` was given)."""
        self._count_time()
        if self.checkpoint_path is None:
            return
        check_finite_weights(self.model.params.items(), f"iteration {self.iteration}", self.checkpoint_path,
                             "Lower the learning rate or the weight scale.")
        payload = {
            "format": CHECKPOINT_FORMAT,
            "writer": _WRITER,
            "settings": self._settings(),
            "params": _to_cpu(self.model.params),
            "running_stats": _to_cpu(_running_stats(self.model)),
            "optim_configs": _to_cpu(self.optim_configs),
            "epoch": self.epoch,
            "iteration": self.iteration,
            "position": self._position,
            "order": self._order,
            "loss_history": self.loss_history,
            "train_acc_history": self.train_acc_history,
            "val_acc_history": self.val_acc_history,
            "best_val_acc": self.best_val_acc,
            "best_params": _to_cpu(self.best_params),
            "best_running_stats": _to_cpu(self.best_running_stats),
            "stopped": self.stopped,
            "time": self.train_time,
            "rng": {"solver": self._generator.get_state(), **_global_rng_state(self.device)},
        }
        write_checkpoint(payload, self.checkpoint_path, "solver checkpoint")

    def _resume(self) -> None:
        """Load the checkpoint written by an earlier run with this ``checkpoint_name``."""
        path = self.checkpoint_path
        state = load_verified(path, "solver checkpoint")
        remedy = "delete it or choose another checkpoint_name"
        if not isinstance(state, dict) or state.get("writer") != _WRITER:
            raise ValueError(f"{path} was not written by helpers.solver.Solver; {remedy}")
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} has checkpoint format {state.get('format')!r}, this Solver reads format "
                             f"{CHECKPOINT_FORMAT}; {remedy}")
        saved, current = state["settings"], self._settings()
        changed = [f"{key}: {saved.get(key)!r} in the checkpoint, {value!r} now"
                   for key, value in current.items() if saved.get(key) != value]
        if changed:
            raise ValueError(f"checkpoint {path} comes from a run with other settings ({'; '.join(changed)}); "
                             f"{remedy}")
        params = self.model.params
        if set(state["params"]) != set(params) or any(
                state["params"][k].shape != params[k].shape for k in params):
            found = {k: tuple(v.shape) for k, v in state["params"].items()}
            expected = {k: tuple(v.shape) for k, v in params.items()}
            raise ValueError(f"checkpoint {path} holds parameters {found} but the model has {expected}; {remedy}")
        for name in params:
            params[name] = state["params"][name].to(device=params[name].device, dtype=params[name].dtype)
        self.optim_configs = {name: _to_like(config, params[name]) for name, config in state["optim_configs"].items()}
        self.best_params = {name: value.to(device=params[name].device, dtype=params[name].dtype)
                            for name, value in state["best_params"].items()}
        num_bn = len(getattr(self.model, "bn_params", None) or [])
        for key in ("running_stats", "best_running_stats"):
            saved_stats = state.get(key, [])
            if saved_stats and len(saved_stats) != num_bn:
                raise ValueError(f"checkpoint {path} holds running statistics of {len(saved_stats)} batch-norm "
                                 f"layers but the model has {num_bn}; {remedy}")
        _set_running_stats(self.model, state.get("running_stats", []))
        device = next(iter(params.values())).device
        self.best_running_stats = [{key: value.to(device) for key, value in stats.items()}
                                   for stats in state.get("best_running_stats", [])]
        self.best_val_acc = state["best_val_acc"]
        self.epoch, self.iteration, self._position = state["epoch"], state["iteration"], state["position"]
        self._order = state["order"]
        self.loss_history = list(state["loss_history"])
        self.train_acc_history = list(state["train_acc_history"])
        self.val_acc_history = list(state["val_acc_history"])
        self.stopped = state["stopped"]
        self.train_time = state["time"]
        rng = state["rng"]
        self._generator.set_state(rng["solver"])
        self._rng_to_restore = {"torch": rng["torch"], "cuda": rng.get("cuda", [])}
        self.resumed = True
        if self.verbose:
            print(f"Solver: resumed from {path} after epoch {self.epoch} (iteration {self.iteration})")


# --------------------------------------------------------------------------- helpers


def _global_rng_state(device: torch.device) -> dict:
    """torch's global CPU generator state, and the CUDA ones when training on a GPU."""
    cuda = []
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = torch.cuda.get_rng_state_all()
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def _set_global_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and device.type == "cuda" and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _copy_config(config: dict) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in config.items()}


def _to_cpu(obj):
    """A copy of nested dicts / lists with every tensor on the CPU (as saved in checkpoints)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _running_stats(model) -> list[dict[str, torch.Tensor]]:
    """Copies of the tensors (running mean and variance) in ``model.bn_params``; ``[]`` without batch norm."""
    return [{key: value.detach().clone() for key, value in bn_param.items() if isinstance(value, torch.Tensor)}
            for bn_param in getattr(model, "bn_params", None) or []]


def _set_running_stats(model, stats: list[dict[str, torch.Tensor]] | None) -> None:
    """Put copies of ``stats`` (from :func:`_running_stats`) into ``model.bn_params``, on the model's device."""
    if not stats:
        return
    device = next(iter(model.params.values())).device
    for bn_param, saved in zip(model.bn_params, stats, strict=True):
        for key in [key for key, value in bn_param.items() if isinstance(value, torch.Tensor) and key not in saved]:
            del bn_param[key]  # a snapshot taken before the first training step has no statistics yet
        for key, value in saved.items():
            bn_param[key] = value.to(device).clone()


def _to_like(config: dict, param: torch.Tensor) -> dict:
    """A loaded optimizer config with its tensors moved to the parameter's device."""
    return {k: v.to(param.device) if isinstance(v, torch.Tensor) else v for k, v in config.items()}


def _check_model(model) -> None:
    params = getattr(model, "params", None)
    if not isinstance(params, dict) or not params or not all(isinstance(v, torch.Tensor) for v in params.values()):
        raise TypeError("model must have a non-empty dict `params` of tensors (name -> tensor), "
                        f"got {type(params).__name__}")
    if not callable(getattr(model, "loss", None)):
        raise TypeError("model must have a method loss(X, y=None) returning scores, or (loss, grads)")


def _check_pair(x_name: str, X, y_name: str, y) -> tuple[torch.Tensor, torch.Tensor]:
    """``X (N, ...)`` floating and ``y (N,)`` integer with the same ``N >= 1``."""
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{x_name} and {y_name} must be torch.Tensors, got {type(X).__name__} and {type(y).__name__}")
    if X.dim() < 2 or y.dim() != 1 or X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise ValueError(f"{x_name} must have shape (N, d_1, ..., d_k) and {y_name} shape (N,) with the same "
                         f"N >= 1, got {tuple(X.shape)} and {tuple(y.shape)}")
    if not X.is_floating_point():
        raise TypeError(f"{x_name} must be a floating-point tensor, got {X.dtype}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{y_name} must hold integer class labels, got {y.dtype}")
    return X, y


def _check_data(data) -> tuple[torch.Tensor, ...]:
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a dict with keys {list(_DATA_KEYS)}, got {type(data).__name__}")
    missing = [key for key in _DATA_KEYS if key not in data]
    if missing:
        raise ValueError(f"data is missing {missing}: the Solver needs X_train (N, ...), y_train (N,), "
                         "X_val (M, ...), y_val (M,), as helpers.datasets.preprocess_dataset returns")
    X_train, y_train = _check_pair("data['X_train']", data["X_train"], "data['y_train']", data["y_train"])
    X_val, y_val = _check_pair("data['X_val']", data["X_val"], "data['y_val']", data["y_val"])
    if X_train.shape[1:] != X_val.shape[1:]:
        raise ValueError(f"data['X_train'] and data['X_val'] must have the same shape after the first dim, "
                         f"got {tuple(X_train.shape)} and {tuple(X_val.shape)}")
    return X_train, y_train, X_val, y_val


def _check_number(name: str, value, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            value >= 0 if allow_zero else value > 0):
        raise ValueError(f"{name} must be a number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)
