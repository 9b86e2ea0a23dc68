"""The one training loop for ``nn.Module`` models (assignment A4 onwards).

::

    from helpers.train import checkpoint_path, train

    def loss_fn(model, batch):
        x, y = batch                      # already moved to the model's device
        return F.cross_entropy(model(x), y)

    history = train(model, optimizer, loader, loss_fn, num_epochs=10,
                    checkpoint=checkpoint_path("a4_transformer"), time_limit=3600)

What :func:`train` does for you:

* a progress bar (``tqdm.auto``) when ``progress=True``; otherwise it prints nothing;
* a checkpoint at the end of every epoch and, with ``checkpoint_every=N``, every N steps;
* automatic resume: call :func:`train` again with the same ``checkpoint`` after a
  crash, a Colab disconnect or a time-limit stop and it carries on where it
  stopped; a finished run loads its weights and returns its history at once;
* a NaN guard: a non-finite loss raises :class:`FloatingPointError` naming the
  step, and the last good checkpoint is kept;
* a time limit: ``time_limit`` seconds after the call started it saves and returns
  with ``history["stopped"] == "time_limit"``;
* loops with several models and optimizers (A6's GAN): pass a dict of optimizers and a
  ``step_fn`` that makes the whole update itself; a ``callback`` may add plain data (sample
  grids...) to the history, which is checkpointed with the rest;
* data-parallel training under ``torchrun`` (:mod:`helpers.distributed`): when a process group is
  initialised, the loss is computed through ``DistributedDataParallel`` (gradients averaged over the
  processes), a ``DistributedSampler`` gets ``set_epoch(epoch)`` before each epoch, the logged loss is
  the mean over the processes, and only rank 0 shows progress, validates and writes checkpoints;
* mixed precision with ``amp=True`` (``torch.autocast``: bfloat16 where supported, float16 with a
  gradient scaler on older GPUs);
* checkpoints that load with ``torch.load(path, weights_only=True)``: they hold only
  tensors, numbers, strings, None and lists / tuples / dicts of them;
* checkpoints that cannot be used damaged: every file ends with the SHA-256 of the bytes
  before it (:func:`atomic_save`), checked before anything is read (:func:`load_verified`);
  a damaged, truncated, empty or foreign file gives one :class:`DamagedFileError` naming it.

A checkpoint written by :func:`train` is a plain dict::

    {"format": 1,
     "model": model.state_dict(), "optimizer": ..., "scheduler": ... or None,
     "history": history,        # see train()
     "progress": {...},         # where the run is inside the current epoch
     "rng": {...}}              # torch / CUDA / python / numpy (/ loader) RNG states
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import random
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from helpers import distributed
from helpers.checks import check_int
from helpers.config import Config, get_config

CHECKPOINT_FORMAT = 1
SCHEDULER_INTERVALS = ("epoch", "step")
# Exact types that torch.load(weights_only=True) reads back (subclasses such as
# numpy.float64 are refused by the loader, so they are refused here too).
_PLAIN_SCALARS = (bool, int, float, str, bytes, type(None), torch.dtype, torch.device)
_PLAIN_MAPPINGS = (dict, OrderedDict)
_PLAIN_SEQUENCES = (list, tuple, torch.Size)


# --------------------------------------------------------------------------- public pieces


def checkpoint_path(name: str, cfg: Config | None = None) -> Path:
    """Where the run called ``name`` keeps its checkpoint: ``<checkpoint_dir>/<fast|full>/<name>.pt``.

    Fast and full runs get separate folders, so a fast run never resumes from a
    full one (or the reverse).  The folder is created.

    Args:
        name: a plain file name without suffix, e.g. ``"a4_transformer"``.
        cfg: the run's :class:`~helpers.config.Config`; ``None`` reads :func:`get_config`.
    """
    if not isinstance(name, str) or name in {"", ".", ".."} or any(c in name for c in "/\\"):
        raise ValueError(f"checkpoint name must be a plain file name such as 'a4_transformer', got {name!r}")
    cfg = get_config() if cfg is None else cfg
    folder = Path(cfg.checkpoint_dir) / cfg.mode
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.pt"


def to_device(batch, device):
    """Move a batch to ``device``.

    Args:
        batch: a tensor, or (nested) tuples / lists / dicts of tensors.  Anything
            else (ints, strings, None...) is returned unchanged.
        device: a ``torch.device`` or a string such as ``"cuda"``.

    Returns:
        the same structure with every tensor on ``device``; lists, tuples and named
        tuples keep their type, mappings become plain dicts.
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(item, device) for item in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(item, device) for item in batch)
    return batch


def remaining_batches(loader, progress: dict):
    """Yield the batches of the current epoch that were not trained on yet.

    For training loops of your own that resume like :func:`train` (A6's GAN loop uses it).

    Args:
        loader: the epoch's iterable of batches (a ``DataLoader``).
        progress: ``{"batch": batches done in this epoch, "epoch_rng": None or a state}``,
            saved with every checkpoint; the caller adds 1 to ``progress["batch"]`` per step
            and resets it to ``{"batch": 0, "epoch_rng": None}`` at the end of an epoch.

    The RNG state at the start of an epoch is kept in ``progress["epoch_rng"]``: it
    decides the shuffle order.  A resumed epoch restores it, creates the loader's
    iterator, skips the batches already done, then puts back the RNG state of the
    moment of the call, so training goes on with the same batches and the same
    random numbers as an uninterrupted run.
    """
    done = progress["batch"]
    now = get_rng_state(loader)
    if done == 0:
        progress["epoch_rng"] = now
    else:
        set_rng_state(progress["epoch_rng"], loader)
    batches = iter(loader)
    for _ in itertools.islice(batches, done):
        pass
    if done:
        set_rng_state(now, loader)
    yield from batches


def save_checkpoint(path, model: nn.Module, optimizer=None, scheduler=None, **extra) -> Path:
    """Write the state of ``model`` (and ``optimizer``, ``scheduler``, ``extra``) to ``path`` atomically.

    The file is first written next to ``path`` under a temporary name, then renamed
    over it with ``os.replace``: a crash while saving leaves the previous checkpoint
    intact.  Everything saved must be tensors, numbers, strings, None and
    lists / tuples / dicts of them, so that ``torch.load(path, weights_only=True)``
    reads it back; anything else raises :class:`TypeError` naming the entry.

    Args:
        path: the checkpoint file (``str`` or ``Path``); parent folders are created.
        model: its ``state_dict()`` is saved under ``"model"``.
        optimizer, scheduler: saved under ``"optimizer"`` / ``"scheduler"`` (None if not given).
        **extra: more entries of plain data (history, counters...).

    Returns:
        the path written, as a ``Path``.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
    }
    clash = sorted(payload.keys() & extra.keys())
    if clash:
        raise ValueError(f"save_checkpoint: extra entries may not be named {clash}; these names are reserved")
    payload.update(extra)
    return write_checkpoint(payload, path)


def write_checkpoint(payload: dict, path, what: str = "checkpoint") -> Path:
    """Write ``payload`` to ``path`` with :func:`atomic_save` once :func:`check_weights_only` accepts it.

    Parent folders are created.  Shared by :func:`save_checkpoint` and :class:`helpers.solver.Solver`.
    Returns the path written, as a ``Path``.
    """
    check_weights_only(payload, what)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(payload, path)
    return path


def load_checkpoint(path, model: nn.Module, optimizer=None, scheduler=None) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` (and optimizer, scheduler).

    The file is checked and read by :func:`load_verified` (``torch.load(path,
    map_location="cpu", weights_only=True)``); ``load_state_dict`` then copies the tensors onto
    the model's own device.

    Args:
        path: the checkpoint file.
        model: receives ``checkpoint["model"]`` (strict: every key must match).
        optimizer, scheduler: when given, receive their saved state.

    Returns:
        the whole checkpoint dict (``"history"``, ``"progress"``... when :func:`train` wrote it).
    """
    path = Path(path)
    checkpoint = load_verified(path, "checkpoint")
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{path} is not a checkpoint written by helpers.train (no 'model' entry); "
                         "delete it or pass another path")
    _load_state(model, checkpoint["model"], "model", path)
    if optimizer is not None:
        _load_state(optimizer, checkpoint.get("optimizer"), "optimizer", path)
    if scheduler is not None:
        _load_state(scheduler, checkpoint.get("scheduler"), "scheduler", path)
    return checkpoint


def new_history() -> dict:
    """An empty training history (see :func:`train` for what each entry holds)."""
    return {
        "step": [], "loss": [], "lr": [], "metrics": {},
        "epoch_loss": [], "val": {},
        "epoch": 0, "global_step": 0, "stopped": "running", "time": 0.0,
    }


def train(model: nn.Module, optimizer, train_loader, loss_fn=None, *,
          num_epochs: int = 1, scheduler=None, scheduler_interval: str = "epoch",
          checkpoint=None, checkpoint_every: int | None = None, time_limit: float | None = None,
          device=None, grad_clip: float | None = None, val_fn=None,
          progress: bool = True, log_every: int = 10, step_fn=None, callback=None,
          amp=False, find_unused_parameters: bool = False) -> dict:
    """Train ``model`` for ``num_epochs`` epochs, with checkpoints, resume, a NaN guard and a time limit.

    Args:
        model: the ``nn.Module`` to train (put in train mode; the modes of its modules are
            restored at the end).  Several networks trained together go in one
            ``nn.ModuleDict`` (``{"D": D, "G": G}``).
        optimizer: a ``torch.optim`` optimizer over the model's parameters, or a dict
            name -> optimizer (``{"D": D_solver, "G": G_solver}``), all checkpointed.
        train_loader: an iterable of batches, usually a ``DataLoader``; iterated once per epoch.
        loss_fn: ``loss_fn(model, batch)`` returning a scalar loss tensor, or
            ``(loss, metrics)`` where ``metrics`` is a dict of numbers to log
            (``{"acc": 0.5}``).  The batch is already on ``device``.  :func:`train` then does
            the update: ``zero_grad``, ``backward``, gradient clipping, ``step``.
        step_fn: instead of ``loss_fn``, ``step_fn(model, batch)`` makes one whole update
            itself (its own ``zero_grad`` / ``backward`` / ``step`` for each optimizer, e.g. a
            discriminator step then a generator step) and returns ``loss`` or
            ``(loss, metrics)`` like ``loss_fn``, ``loss`` being a number or an already
            back-propagated tensor.  Give exactly one of ``loss_fn`` and ``step_fn``.
        callback: ``callback(model, history)``, called when a new run starts (before its
            first step), after every step and at the end of every epoch (before its
            checkpoint is written).  It may add entries of plain data to ``history``
            (A6 keeps sample grids there); they are saved and resumed with it.
        num_epochs: total epochs of the run (counting those done before a resume).
        scheduler: optional learning-rate scheduler, stepped once per epoch or once
            per step (``scheduler_interval="epoch"`` or ``"step"``).  Its state is checkpointed.
        checkpoint: path of the checkpoint file, or None for no checkpointing.  If the
            file exists the run resumes from it (see below).  Use :func:`checkpoint_path`.
        checkpoint_every: also save every this many steps (a checkpoint is always
            written at the end of every epoch).
        time_limit: seconds, counted from the start of this call.  Once exceeded
            (checked after each step and each epoch) the run saves a checkpoint and
            returns with ``history["stopped"] == "time_limit"``; call again to resume.
            At least one step (or one epoch's closing) is done per call.
        device: where to train; None keeps the model where it is.  Batches are
            moved there with :func:`to_device`.
        grad_clip: if given, clip the gradients' global L2 norm to this value (``loss_fn`` only:
            a ``step_fn`` clips its own).
        val_fn: ``val_fn(model) -> dict of numbers``, called at the end of every epoch
            in eval mode under ``torch.no_grad()``.
        progress: show a tqdm progress bar.
        log_every: the history gets one point per ``log_every`` steps (means over
            those steps), plus one at the end of each epoch for the remainder.
        amp: mixed precision for ``loss_fn``: False (float32), True (bfloat16 where the device has it,
            else float16 with a gradient scaler), ``"bf16"`` or ``"fp16"`` (CUDA only).  The forward pass
            and the loss run under ``torch.autocast``; weights and optimizer stay in float32.
        find_unused_parameters: distributed runs only, passed to ``DistributedDataParallel``: True
            when some parameters get no gradient in some steps (slower).

    Distributed runs (a process group initialised by :func:`helpers.distributed.init_distributed`
    under ``torchrun``): every process calls :func:`train` with the same arguments and its own
    loader (:func:`helpers.distributed.distributed_loader`).  ``loss_fn`` runs inside
    ``DistributedDataParallel``, so gradients are averaged over the processes before the update;
    the NaN guard and the time limit are decided together (any process's NaN or deadline stops all);
    only rank 0 validates, shows progress and writes the checkpoint, which holds every process's RNG
    state; all processes resume from it.  The history returned on other ranks lacks ``val``.
    ``step_fn`` is refused there (it makes its own updates, which DDP cannot see).

    Returns:
        history, a plain dict (it is also saved in the checkpoint)::

            step        list[int]    global step of each logged point
            loss        list[float]  mean training loss over the steps of that point
            lr          list[float]  learning rate (first param group) of its last step
            metrics     dict[str, list[float]]  means of loss_fn's metrics, aligned with step
            epoch_loss  list[float]  mean training loss of each epoch (mean over batches)
            val         dict[str, list[float]]  val_fn results, one per epoch
            epoch       int          epochs completed
            global_step int          optimizer steps done
            stopped     str          "completed", "time_limit" (or "running" inside
                                     checkpoints written during the run)
            time        float        seconds spent training, summed over calls

        A name missing from some point's metrics or val results reads NaN there.

    Resuming: when ``checkpoint`` exists, the model, optimizer and scheduler states,
    the history, the position in the current epoch and the RNG states are loaded,
    and training continues.  A run interrupted mid-epoch skips the batches it had
    already done (they are loaded again but not trained on).  To meet the same
    batches as before, the loader's iterator is re-created from the RNG state of the
    epoch's start, so the shuffle order is replayed exactly when the loader's
    randomness comes from torch's global RNG or its own ``generator`` (a default
    ``DataLoader``); other randomness (a custom sampler keeping its own state, a
    ``DataLoader`` with ``persistent_workers``...) may give the resumed epoch
    another order.  A run that already completed ``num_epochs`` only loads its
    weights and returns its history.  A checkpoint that does not fit the model
    raises ``ValueError``: delete it or choose another name.  Interrupting the
    kernel loses the steps since the last checkpoint.

    Raises:
        FloatingPointError: the loss (or, when saving, a parameter) is NaN or infinite.
            The checkpoint on disk is left as it was.
        ValueError, TypeError: bad arguments, or a ``loss_fn`` / ``val_fn`` returning
            the wrong kind of value.
    """
    _check_train_args(model, optimizer, loss_fn, num_epochs, scheduler, scheduler_interval, checkpoint,
                      checkpoint_every, time_limit, grad_clip, val_fn, log_every, step_fn, callback)
    if step_fn is not None and amp:
        raise ValueError("amp works with loss_fn only: a step_fn makes its own updates (use torch.autocast "
                         "inside it)")
    if step_fn is not None and distributed.world()[1] > 1:
        raise ValueError("step_fn cannot run data-parallel (its updates are its own); give a loss_fn, "
                         "or run in one process")
    if isinstance(optimizer, Mapping):
        optimizer = _Optimizers(optimizer)
    trainer = _Trainer(model, optimizer, train_loader, loss_fn, num_epochs=num_epochs, scheduler=scheduler,
                       scheduler_interval=scheduler_interval, checkpoint=checkpoint,
                       checkpoint_every=checkpoint_every, time_limit=time_limit, device=device,
                       grad_clip=grad_clip, val_fn=val_fn, progress=progress, log_every=log_every,
                       step_fn=step_fn, callback=callback, amp=amp,
                       find_unused_parameters=find_unused_parameters)
    return trainer.run()


class Deadline:
    """A time limit counted from its creation: ``Deadline(600).passed()`` after ten minutes.

    ``seconds=None`` never passes.  Shared by :func:`train` and :class:`helpers.solver.Solver`.
    """

    def __init__(self, seconds: float | None):
        self.start = time.monotonic()
        self.seconds = seconds

    def elapsed(self) -> float:
        """Seconds since the deadline was set."""
        return time.monotonic() - self.start

    def passed(self) -> bool:
        return self.seconds is not None and self.elapsed() >= self.seconds


class _Optimizers:
    """Several named optimizers seen as one (what :func:`train` steps and checkpoints)."""

    def __init__(self, optimizers: Mapping):
        self.named = dict(optimizers)

    @property
    def param_groups(self) -> list:
        return [group for optimizer in self.named.values() for group in optimizer.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.named.values():
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.named.values():
            optimizer.step()

    def each(self) -> list:
        return list(self.named.values())

    def state_dict(self) -> dict:
        return {name: optimizer.state_dict() for name, optimizer in self.named.items()}

    def load_state_dict(self, state) -> None:
        if not isinstance(state, Mapping) or set(state) != set(self.named):
            found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"the checkpoint holds the optimizers {found}, this run has {sorted(self.named)}")
        for name, optimizer in self.named.items():
            optimizer.load_state_dict(state[name])


# --------------------------------------------------------------------------- the loop


class _Trainer:
    """State of one :func:`train` call; each method does one part of the loop."""

    def __init__(self, model, optimizer, loader, loss_fn, *, num_epochs, scheduler, scheduler_interval,
                 checkpoint, checkpoint_every, time_limit, device, grad_clip, val_fn, progress, log_every,
                 step_fn=None, callback=None, amp=False, find_unused_parameters=False):
        self.deadline = Deadline(time_limit)
        self.model, self.optimizer, self.loader, self.loss_fn = model, optimizer, loader, loss_fn
        self.step_fn, self.callback = step_fn, callback
        self.num_epochs, self.scheduler, self.scheduler_interval = num_epochs, scheduler, scheduler_interval
        self.path = None if checkpoint is None else Path(checkpoint)
        self.checkpoint_every, self.grad_clip = checkpoint_every, grad_clip
        self.val_fn, self.show_progress, self.log_every = val_fn, progress, log_every
        self.device = _training_device(model, device)
        self.rank, self.world_size = distributed.world()
        self.amp_dtype = distributed.resolve_amp(amp, self.device)
        self.scaler = distributed.grad_scaler(self.amp_dtype)
        self.find_unused = find_unused_parameters
        self.forward = None     # loss_fn(model, batch), through DistributedDataParallel when distributed
        self.history = new_history()
        self.progress = _new_progress()
        self.time_before = 0.0  # training seconds of earlier calls
        self.bar = None

    def run(self) -> dict:
        """Resume if there is a checkpoint, then train until done or out of time."""
        modes = [module.training for module in self.model.modules()]
        self.model.to(self.device)
        if self.path is not None and self.path.exists():
            self._resume()
        if self.history["epoch"] >= self.num_epochs:
            self.history["stopped"] = "completed"
            return self.history
        self.forward = self._forward()
        self.history["stopped"] = "running"
        self.model.train()
        self.bar = self._progress_bar()
        try:
            if self.history["global_step"] == 0:
                self._call_back()
            while self.history["epoch"] < self.num_epochs and self._run_epoch():
                pass
        finally:
            self.bar.close()
            for module, mode in zip(self.model.modules(), modes, strict=True):
                module.training = mode
        return self.history

    def _forward(self):
        """``loss_fn`` bound to the model: ``forward(batch)``; wrapped in DDP when the run is distributed."""
        if self.loss_fn is None:
            return None
        module = _LossModule(self.model, self.loss_fn)
        if self.world_size == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=self.find_unused)

    def _call_back(self) -> None:
        if self.callback is not None:
            self.callback(self.model, self.history)

    def _resume(self) -> None:
        """Load model, optimizer, scheduler, history, progress and RNG states from the checkpoint."""
        state = load_checkpoint(self.path, self.model, self.optimizer, self.scheduler)
        missing = [key for key in ("history", "progress", "rng") if key not in state]
        if missing:
            raise ValueError(f"{self.path} was not written by train() (no {missing} entries); "
                             "delete it or pass another checkpoint path")
        saved_world = state.get("world_size", 1)
        if saved_world != self.world_size and state["progress"]["batch"] > 0:
            raise ValueError(f"{self.path} stopped inside an epoch of a run on {saved_world} process(es); this run "
                             f"has {self.world_size}: resume it with {saved_world} (each process's share of the "
                             "epoch depends on the number of processes), or delete the checkpoint")
        self.history, self.progress = state["history"], state["progress"]
        self.time_before = self.history["time"]
        per_rank = state.get("rng_per_rank")
        same_world = isinstance(per_rank, list) and len(per_rank) == self.world_size
        set_rng_state(per_rank[self.rank] if same_world else state["rng"], self.loader)
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def _progress_bar(self):
        """A tqdm bar over all steps of the run (disabled when progress=False)."""
        try:
            total = len(self.loader) * self.num_epochs
        except TypeError:  # an iterable without a length
            total = None
        return tqdm(total=total, initial=self.history["global_step"], desc="train", unit="step",
                    disable=not self.show_progress or self.rank != 0, dynamic_ncols=True)

    def _run_epoch(self) -> bool:
        """Train on the epoch's remaining batches, then close it.  False when the time limit stopped it."""
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):   # a DistributedSampler: the order of epoch e is fixed by (seed, e)
            sampler.set_epoch(self.history["epoch"])
        for batch in remaining_batches(self.loader, self.progress):
            self._step(batch)
            self._call_back()
            if self.checkpoint_every is not None and self.history["global_step"] % self.checkpoint_every == 0:
                self._save()
            if self._out_of_time():
                return self._stop_for_time()
        self._end_epoch()
        if self.history["epoch"] < self.num_epochs and self._out_of_time():
            return self._stop_for_time()
        return True

    def _step(self, batch) -> None:
        """One optimizer step on ``batch``; raises FloatingPointError on a non-finite loss."""
        step = self.history["global_step"] + 1
        batch = to_device(batch, self.device)
        lr = float(self.optimizer.param_groups[0]["lr"])
        if self.step_fn is None:
            value, metrics = self._update(batch, step)
        else:
            value, metrics = _unpack_step(self.step_fn(self.model, batch))
            if not math.isfinite(value):
                raise FloatingPointError(self._nan_message(value, step))
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        self.history["global_step"] = step
        self.progress["batch"] += 1
        self.progress["epoch_loss_sum"] += value
        self._record(value, metrics, lr)
        self.bar.update(1)
        self.bar.set_postfix(epoch=self.history["epoch"] + 1, loss=f"{value:.4g}", refresh=False)

    def _update(self, batch, step: int) -> tuple[float, dict]:
        """zero_grad, loss_fn, backward, clipping and the optimizer step; the loss and metrics as numbers."""
        self.optimizer.zero_grad(set_to_none=True)
        with distributed.autocast(self.device, self.amp_dtype):
            loss, metrics = _unpack_loss(self.forward(batch))
        value = distributed.all_mean(float(loss.detach()), self.device)   # the same number on every process
        if not math.isfinite(value):
            raise FloatingPointError(self._nan_message(value, step))
        optimizers = self.optimizer.each() if isinstance(self.optimizer, _Optimizers) else [self.optimizer]
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()
            for optimizer in optimizers:
                self.scaler.unscale_(optimizer)
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if self.scaler is None:
            self.optimizer.step()
        else:   # float16: a step whose gradients overflowed is skipped and the scale lowered
            for optimizer in optimizers:
                self.scaler.step(optimizer)
            self.scaler.update()
        return value, metrics

    def _nan_message(self, value: float, step: int) -> str:
        """The error for a non-finite loss: where it happened and what to try."""
        if self.path is None:
            kept = "no checkpoint is written (checkpoint=None)"
        else:
            kept = f"the last good checkpoint ({self.path}) was left untouched"
        return (f"loss is {value} at step {step} (epoch {self.history['epoch'] + 1}, "
                f"batch {self.progress['batch'] + 1}); training stopped and {kept}. "
                "Remedies: lower the learning rate, check the inputs and targets for NaN/inf "
                "(and their scale), or clip gradients (e.g. grad_clip=1.0).")

    def _record(self, loss: float, metrics: dict, lr: float) -> None:
        """Add one step to the current logging window; log it once it holds ``log_every`` steps."""
        window = self.progress["window"]
        window["steps"] += 1
        window["loss"] += loss
        window["lr"] = lr
        for name, value in metrics.items():
            total, count = window["metrics"].get(name, (0.0, 0))
            window["metrics"][name] = [total + value, count + 1]
        if window["steps"] >= self.log_every:
            self._flush_window()

    def _flush_window(self) -> None:
        """Append the window's means to the history and start a new window."""
        window, history = self.progress["window"], self.history
        if window["steps"] == 0:
            return
        history["step"].append(history["global_step"])
        history["loss"].append(window["loss"] / window["steps"])
        history["lr"].append(window["lr"])
        means = {name: total / count for name, (total, count) in window["metrics"].items()}
        _append_row(history["metrics"], means, len(history["step"]))
        self.progress["window"] = _new_window()

    def _end_epoch(self) -> None:
        """Log the epoch loss, validate, step an epoch scheduler and save a checkpoint."""
        done = self.progress["batch"]
        if done == 0:
            raise ValueError("train_loader yielded no batches: "
                             "check the dataset size, batch_size and drop_last")
        history = self.history
        self._flush_window()
        history["epoch_loss"].append(self.progress["epoch_loss_sum"] / done)
        if self.val_fn is not None and self.rank == 0:
            _append_row(history["val"], self._validate(), history["epoch"] + 1)
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            self.scheduler.step()
        history["epoch"] += 1
        self.progress.update(batch=0, epoch_loss_sum=0.0, epoch_rng=None)
        if history["epoch"] >= self.num_epochs:
            history["stopped"] = "completed"
        self.bar.set_postfix(epoch=history["epoch"], loss=f"{history['epoch_loss'][-1]:.4g}", refresh=False)
        self._call_back()
        self._save()

    def _validate(self) -> dict:
        """Run ``val_fn`` in eval mode without gradients; return its numbers as floats."""
        self.model.eval()
        try:
            with torch.no_grad():
                result = self.val_fn(self.model)
        finally:
            self.model.train()
        if not isinstance(result, Mapping):
            raise TypeError(f"val_fn(model) must return a dict of numbers such as {{'acc': 0.9}}, "
                            f"got {type(result).__name__}")
        return {str(name): _as_float(value, f"val_fn result {name!r}") for name, value in result.items()}

    def _out_of_time(self) -> bool:
        return distributed.any_process(self.deadline.passed(), self.device)

    def _stop_for_time(self) -> bool:
        """Save and mark the run as stopped by the time limit.  Returns False (stop training)."""
        self.history["stopped"] = "time_limit"
        self._save()
        return False

    def _save(self) -> None:
        """Update the training time and, with a checkpoint path, write a checkpoint."""
        self.history["time"] = self.time_before + self.deadline.elapsed()
        if self.path is None:
            return
        states = distributed.gather(get_rng_state(self.loader))    # every process's RNG, on rank 0
        if self.rank != 0:
            return
        _check_finite_parameters(self.model, self.history["global_step"], self.path)
        extra = {"world_size": self.world_size}
        if self.world_size > 1:
            extra["rng_per_rank"] = states
        if self.scaler is not None:
            extra["scaler"] = self.scaler.state_dict()
        save_checkpoint(self.path, self.model, self.optimizer, self.scheduler, history=self.history,
                        progress=self.progress, rng=states[0], **extra)


# --------------------------------------------------------------------------- small helpers


class _LossModule(nn.Module):
    """``loss_fn(model, batch)`` as a module's forward, so ``DistributedDataParallel`` sees the whole
    loss computation (whatever methods of the model ``loss_fn`` calls) and averages its gradients."""

    def __init__(self, model: nn.Module, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)


def _new_window() -> dict:
    """Running sums of the steps not yet logged."""
    return {"steps": 0, "loss": 0.0, "lr": 0.0, "metrics": {}}


def _new_progress() -> dict:
    """Where a run is inside its current epoch (saved in checkpoints next to the history)."""
    return {"batch": 0, "epoch_loss_sum": 0.0, "window": _new_window(), "epoch_rng": None}


def _append_row(table: dict, row: dict, length: int) -> None:
    """Append ``row`` (name -> float) to ``table`` (name -> list), so every list has ``length`` items.

    Names new to the table are padded with NaN for the earlier rows; names missing
    from ``row`` get NaN.
    """
    for name in [*table, *(name for name in row if name not in table)]:
        column = table.setdefault(name, [])
        column.extend([math.nan] * (length - 1 - len(column)))
        column.append(row.get(name, math.nan))


def _as_float(value, what: str) -> float:
    """``float(value)`` for a number or a one-element tensor, else a TypeError naming ``what``."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{what} must be a number, got {type(value).__name__}") from None


def _unpack_loss(output) -> tuple[torch.Tensor, dict]:
    """Split ``loss_fn``'s output into (scalar loss tensor, dict name -> float)."""
    loss, metrics = output if isinstance(output, tuple) and len(output) == 2 else (output, {})
    if not isinstance(loss, torch.Tensor):
        raise TypeError("loss_fn(model, batch) must return a scalar loss tensor or (loss, metrics_dict), "
                        f"got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(f"loss_fn must return a scalar loss, got a tensor of shape {tuple(loss.shape)} "
                         "(reduce it with .mean() or .sum())")
    if not loss.requires_grad:
        raise ValueError("the loss returned by loss_fn does not require grad: was it computed under "
                         "torch.no_grad(), detached, or converted with .item()?")
    if not isinstance(metrics, Mapping):
        raise TypeError(f"loss_fn's metrics must be a dict of numbers, got {type(metrics).__name__}")
    return loss, {str(name): _as_float(value, f"loss_fn metric {name!r}") for name, value in metrics.items()}


def _unpack_step(output) -> tuple[float, dict]:
    """Split ``step_fn``'s output into (loss as a float, dict name -> float)."""
    loss, metrics = output if isinstance(output, tuple) and len(output) == 2 else (output, {})
    if not isinstance(metrics, Mapping):
        raise TypeError(f"step_fn's metrics must be a dict of numbers, got {type(metrics).__name__}")
    return (_as_float(loss, "the loss returned by step_fn(model, batch)"),
            {str(name): _as_float(value, f"step_fn metric {name!r}") for name, value in metrics.items()})


def _training_device(model: nn.Module, device) -> torch.device:
    """``device`` if given, else the device of the model's first parameter (CPU without parameters)."""
    if device is not None:
        return torch.device(device)
    first = next(model.parameters(), None)
    return torch.device("cpu") if first is None else first.device


def check_finite_weights(named_tensors, after: str, path, remedy: str) -> None:
    """Refuse to overwrite a good checkpoint with NaN/inf weights.

    Args:
        named_tensors: ``(name, tensor)`` pairs, e.g. ``model.named_parameters()``.
        after: where the run is, for the message (``"step 12"``, ``"iteration 12"``).
        path: the checkpoint that is kept; remedy: what to try, for the message.

    Raises:
        FloatingPointError naming the first non-finite tensor.  Shared by :func:`train` and
        :class:`helpers.solver.Solver`.
    """
    for name, value in named_tensors:
        if not torch.isfinite(value).all():
            raise FloatingPointError(f"parameter {name!r} is NaN or infinite after {after}; the checkpoint "
                                     f"{path} was not overwritten. {remedy}")


def _check_finite_parameters(model: nn.Module, step: int, path: Path) -> None:
    check_finite_weights(model.named_parameters(), f"step {step}", path,
                         "Remedies: lower the learning rate, check the inputs, or clip gradients "
                         "(e.g. grad_clip=1.0).")


def check_weights_only(obj, where: str) -> None:
    """Raise TypeError unless ``obj`` holds only what ``torch.load(weights_only=True)`` reads.

    Allowed: tensors, bool/int/float/str/bytes/None, ``torch.dtype``, ``torch.device``
    and dicts / lists / tuples of them.  ``where`` names ``obj`` in the error
    (``"checkpoint"`` gives ``checkpoint['optim'][0] is a ...``).  Also used by
    :mod:`helpers.solver`.
    """
    if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN_SCALARS:
        return
    if type(obj) in _PLAIN_MAPPINGS:
        for key, value in obj.items():
            check_weights_only(key, f"a key of {where}")
            check_weights_only(value, f"{where}[{key!r}]")
    elif type(obj) in _PLAIN_SEQUENCES:
        for index, item in enumerate(obj):
            check_weights_only(item, f"{where}[{index}]")
    else:
        raise TypeError(f"{where} is a {type(obj).__name__}, which torch.load(weights_only=True) cannot "
                        "read; checkpoints may hold only tensors, numbers, strings, None and "
                        "lists/tuples/dicts of them (convert with float(), int() or .tolist())")


# A course file ends with this line: the SHA-256 of every byte before it.  torch.load reads the
# file as it is (the zip archive's directory is found before the trailer).
_TRAILER_TAG = b"\n#dl4cv-sha256:"
_TRAILER_SIZE = len(_TRAILER_TAG) + 64


class DamagedFileError(ValueError):
    """A checkpoint or saved model that cannot be used: damaged, truncated, empty or not the course's."""


def atomic_save(payload: dict, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``.

    The file ends with the SHA-256 of its contents, which :func:`load_verified` checks.  A crash
    while writing leaves the previous file intact; temporary files that earlier crashed saves
    left beside ``path`` are removed.  The parent folder must exist.  Used by every file the
    course saves (checkpoints, solver checkpoints, saved models).
    """
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w+b") as file:
            torch.save(payload, file)
            digest = _digest(file, file.tell())      # leaves the file at its end
            file.write(_TRAILER_TAG + digest.hexdigest().encode())
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _digest(file, size: int):
    """SHA-256 of the first ``size`` bytes of the open binary ``file`` (read from its start)."""
    digest = hashlib.sha256()
    file.seek(0)
    while size > 0:
        chunk = file.read(min(size, 1 << 20))
        if not chunk:
            break
        digest.update(chunk)
        size -= len(chunk)
    return digest


def load_verified(path, what: str = "checkpoint"):
    """Check the SHA-256 that :func:`atomic_save` wrote at the end of ``path``, then load the file.

    ``torch.load(path, map_location="cpu", weights_only=True)``: tensors and plain data only.

    Raises:
        FileNotFoundError: no file at ``path``.
        DamagedFileError: the file is empty, truncated, changed since it was written (a flipped
            bit), has no checksum (another program wrote it, or an older course version), or
            cannot be read.  The message names the file, says what is wrong and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    advice = "Delete it to start over, or pass another file."
    size = path.stat().st_size
    if size == 0:
        raise DamagedFileError(f"{what} {path} is empty (0 bytes): a save or a copy was interrupted. {advice}")
    with open(path, "rb") as file:
        file.seek(max(0, size - _TRAILER_SIZE))
        trailer = file.read()
        if size < _TRAILER_SIZE or not trailer.startswith(_TRAILER_TAG):
            raise DamagedFileError(f"{what} {path} has no checksum at its end: it is truncated, or it was not "
                                   f"written by this course (or by a version older than its checksums). {advice}")
        expected = trailer[len(_TRAILER_TAG):].decode("ascii", errors="replace")
        if _digest(file, size - _TRAILER_SIZE).hexdigest() != expected:
            raise DamagedFileError(f"{what} {path} is damaged: its contents no longer match the checksum "
                                   f"written with them (changed on disk or in a copy). {advice}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # its checksum is right, yet torch cannot read it
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "weights_only" in str(error) or "Unpickl" in type(error).__name__:
            reason = "it holds objects other than tensors and plain data"
        raise DamagedFileError(f"{what} {path} cannot be read: {reason}. {advice}") from None


def _load_state(obj, state, what: str, path: Path) -> None:
    """``obj.load_state_dict(state)`` with an error that says what to do when it does not fit."""
    if state is None:
        raise ValueError(f"checkpoint {path} holds no {what} state, but a {what} was given; "
                         "delete the checkpoint or pass another path")
    try:
        obj.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"checkpoint {path} does not fit this {what} (it was saved by another model or "
                         f"other settings): {error}\nDelete the checkpoint or pass another path.") from error


def _numpy():
    """The numpy module, or None when it is not installed."""
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy comes with the course's requirements
        return None
    return numpy


def get_rng_state(loader=None) -> dict:
    """The state of every RNG a training step or ``loader`` may draw from, as plain data (checkpointable).

    torch (CPU and initialised CUDA devices), Python's ``random``, NumPy's global RNG,
    and the loader's own ``generator`` when it has one.
    """
    version, internal, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss], "cuda": []}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    np = _numpy()
    if np is not None:
        _, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        state["loader"] = generator.get_state()
    return state


def set_rng_state(state: dict, loader=None) -> None:
    """Restore the RNG states recorded by :func:`get_rng_state` (the loader's too, when given)."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    np = _numpy()
    if np is not None and "numpy" in state:
        keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator) and "loader" in state:
        generator.set_state(state["loader"])


# --------------------------------------------------------------------------- argument checks


def _check_number(name: str, value, *, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (value >= 0 if allow_zero else value > 0):  # also refuses NaN
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def _check_optimizers(model: nn.Module, optimizer) -> None:
    """One optimizer, or a non-empty dict of them, over the model's own parameters."""
    named = optimizer if isinstance(optimizer, Mapping) else {"": optimizer}
    if not named:
        raise ValueError("optimizer must be a torch.optim.Optimizer or a non-empty dict of them, got {}")
    own = {id(param) for param in model.parameters()}
    for name, each in named.items():
        what = f"optimizer[{name!r}]" if name else "optimizer"
        if not isinstance(each, torch.optim.Optimizer):
            raise TypeError(f"{what} must be a torch.optim.Optimizer, got {type(each).__name__}")
        if any(id(param) not in own for group in each.param_groups for param in group["params"]):
            raise ValueError(f"{what} holds parameters that are not the model's: was the model "
                             "re-created after the optimizer? Build the optimizer from model.parameters()")


def _check_train_args(model, optimizer, loss_fn, num_epochs, scheduler, scheduler_interval, checkpoint,
                      checkpoint_every, time_limit, grad_clip, val_fn, log_every, step_fn=None,
                      callback=None) -> None:
    """Clear TypeError / ValueError for arguments :func:`train` cannot use."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_optimizers(model, optimizer)
    if (loss_fn is None) == (step_fn is None):
        raise TypeError("give train() exactly one of loss_fn(model, batch) -> loss and "
                        "step_fn(model, batch) -> loss (a step_fn makes the whole update itself)")
    if not callable(loss_fn if step_fn is None else step_fn):
        raise TypeError("loss_fn must be a function loss_fn(model, batch) -> loss" if step_fn is None
                        else "step_fn must be a function step_fn(model, batch) -> loss")
    if step_fn is not None and grad_clip is not None:
        raise ValueError("grad_clip works with loss_fn only: a step_fn clips its own gradients "
                         "(torch.nn.utils.clip_grad_norm_ before each optimizer step)")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be a function callback(model, history), or None")
    if val_fn is not None and not callable(val_fn):
        raise TypeError("val_fn must be a function val_fn(model) -> dict of numbers, or None")
    check_int(num_epochs, "num_epochs", minimum=1)
    check_int(log_every, "log_every", minimum=1)
    if scheduler_interval not in SCHEDULER_INTERVALS:
        raise ValueError(f"scheduler_interval must be one of {SCHEDULER_INTERVALS}, "
                         f"got {scheduler_interval!r}")
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise TypeError("ReduceLROnPlateau needs a metric to step and is not supported by train(); "
                        "use a schedule such as StepLR, CosineAnnealingLR or OneCycleLR")
    if scheduler is not None and not (hasattr(scheduler, "step") and hasattr(scheduler, "state_dict")):
        raise TypeError("scheduler must be a torch.optim.lr_scheduler object, "
                        f"got {type(scheduler).__name__}")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a path (str or Path) or None, got {type(checkpoint).__name__}")
    if checkpoint_every is not None:
        check_int(checkpoint_every, "checkpoint_every", minimum=1)
        if checkpoint is None:
            raise ValueError("checkpoint_every needs a checkpoint path: "
                             "pass checkpoint=checkpoint_path('name')")
    if time_limit is not None:
        _check_number("time_limit", time_limit, allow_zero=True)
    if grad_clip is not None:
        _check_number("grad_clip", grad_clip, allow_zero=False)
