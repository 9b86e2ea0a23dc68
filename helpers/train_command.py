"""The ``train`` command every long-training model shares: ``python -m papers.detr train [...]``.

A model module describes its notebook's training as a :class:`Recipe` (data, network, loss, optimizer,
schedule); :func:`add_train_command` gives its command line a ``train`` subcommand and
:func:`run_training` runs it with :func:`helpers.train.train`, the notebooks' own loop.  The same
command runs on one process or under ``torchrun`` (:mod:`helpers.distributed`)::

    python -m papers.detr train --epochs 50 --out runs/                       # one process
    torchrun --nproc_per_node=8 -m papers.detr train --amp --out runs/        # 8 GPUs, one machine

What it writes, on rank 0 only (``<out>`` is ``--out``, default the course's checkpoint folder, and
``<mode>`` is ``full`` unless ``DL4CV_FAST=1``):

* ``<out>/<mode>/<checkpoint name>.pt``: the run's checkpoint; run the same command again to resume it
  (the notebook uses the same file name, so with the default ``--out`` a notebook finds the finished run);
* ``<out>/<mode>/<model name>_model.pt``: the trained model, where ``predict`` / ``export`` look for it;
* ``<out>/<mode>/<model name>_train.json``: what was run (arguments, processes, batch per process and in
  total, learning rate, precision), the history and the speed.

On several machines, the first process of each machine loads the data (and downloads pretrained weights)
before the others read them, so each machine needs the dataset in its ``DL4CV_DATA_DIR``; ``--out`` must be
a folder every machine sees (a shared filesystem): rank 0 writes the checkpoint and every process reads it
to resume.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from helpers import distributed


@dataclass(frozen=True)
class Recipe:
    """A model's notebook training, as the ``train`` command runs it.

    Attributes:
        checkpoint_name: the run's checkpoint (``checkpoint_path(checkpoint_name)``), as in the notebook.
        model_name: the saved model is ``model_path(model_name)``, where ``predict`` finds it.
        default_dataset, offline_dataset: as given to :func:`helpers.config.setup`.
        defaults: ``defaults(cfg) -> dict`` with ``image_size``, ``epochs``, ``batch_size`` (per process),
            ``lr``, ``train_size`` and ``val_size`` (None: all) and anything ``data`` / ``build`` read;
            the notebook's recipe for ``cfg.dataset`` in ``cfg.mode``.
        data: ``data(cfg, settings) -> dict`` with ``"train"`` (a ``Dataset``) and whatever ``build`` and
            ``validate`` need (class names, validation images...).  ``settings``: the defaults with the
            command line's values on top.
        build: ``build(settings, data) -> (model, config)``; ``config`` is saved with the model
            (:func:`helpers.export.save_model`) and rebuilds it.
        loss_fn: ``loss_fn(model, batch)`` for :func:`helpers.train.train`.
        optimizer: ``optimizer(model, settings)``.
        scheduler: ``scheduler(optimizer, settings, total_steps)`` stepped every step, or None.
        validate: ``validate(data) -> val_fn(model) -> dict`` (rank 0, end of every epoch), or None.
        grad_clip: the gradient-norm clip, or None.
    """

    checkpoint_name: str
    model_name: str
    default_dataset: str
    offline_dataset: str
    defaults: Callable
    data: Callable
    build: Callable
    loss_fn: Callable
    optimizer: Callable
    scheduler: Callable | None = None
    validate: Callable | None = None
    grad_clip: float | None = None


SETTINGS = ("image_size", "train_size", "val_size", "epochs", "batch_size", "lr")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_train_command(commands, prog: str) -> argparse.ArgumentParser:
    """Add ``train`` to the subcommands of a model's command line (``prog``: ``python -m papers.detr``)."""
    parser = commands.add_parser(
        "train", help="train the model as its notebook does (resumes; runs under torchrun too)",
        description=f"Train with the notebook's recipe; every default below is the notebook's (full mode unless "
                    f"DL4CV_FAST=1). Under torchrun (torchrun --nproc_per_node=N -m {prog.split()[-1]} train ...) "
                    "each process reads --batch-size images per step, so a step sees N x --batch-size.")
    parser.add_argument("--dataset", help="dataset name (default: the notebook's: the course's online, its offline "
                                          "one with DL4CV_OFFLINE=1)")
    parser.add_argument("--image-size", type=_positive_int, help="side of the square images")
    parser.add_argument("--train-size", type=_positive_int, help="use the first N training images (default: all)")
    parser.add_argument("--val-size", type=_positive_int, help="use the first N validation images (default: all)")
    parser.add_argument("--epochs", type=_positive_int, help="epochs in total (a resumed run counts those done)")
    parser.add_argument("--batch-size", type=_positive_int, help="images per step and per process")
    parser.add_argument("--lr", type=_positive_float, help="peak learning rate (the same on every process)")
    parser.add_argument("--out", metavar="DIR", help="folder of the checkpoint, the saved model and the run's "
                                                     "record (default: DL4CV_CHECKPOINT_DIR, checkpoints/)")
    parser.add_argument("--amp", action="store_true", help="mixed precision: bfloat16 autocast where supported "
                                                           "(CPUs, GPUs from Ampere), else float16 + grad scaler")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes per process")
    parser.add_argument("--checkpoint-every", type=_positive_int, default=500, help="steps between checkpoints "
                                                                                    "(and at every epoch's end)")
    parser.add_argument("--time-limit", type=_positive_float, help="seconds; then save and stop (run again to resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def settings_of(args, recipe: Recipe, cfg) -> dict:
    """The notebook's defaults for ``cfg`` with the command line's values on top."""
    settings = dict(recipe.defaults(cfg))
    settings.update({name: getattr(args, name) for name in SETTINGS if getattr(args, name, None) is not None})
    return settings


def run_training(args, recipe: Recipe) -> int:
    """``train``: set up the processes, load data, build, train with :func:`helpers.train.train`, save (rank 0)."""
    from helpers.config import setup
    from helpers.export import model_path, save_model
    from helpers.train import checkpoint_path, train

    process = distributed.init_distributed(args.device)
    finished = False
    try:
        overrides = {"device": process.device.type}
        if args.out:
            overrides["checkpoint_dir"] = Path(args.out)
        cfg = setup(recipe.default_dataset, recipe.offline_dataset, dataset=args.dataset, verbose=process.is_main,
                    **overrides)
        settings = settings_of(args, recipe, cfg)
        first = process.local_rank == 0   # downloads data and pretrained weights on its machine; the others wait
        if not first:
            distributed.barrier()
        data = recipe.data(cfg, settings)
        torch.manual_seed(cfg.seed)               # the same initial weights everywhere (DDP also broadcasts rank 0's)
        model, config = recipe.build(settings, data)
        if first:
            distributed.barrier()
        torch.manual_seed(cfg.seed + process.rank)   # each process its own augmentation and dropout draws
        loader = distributed.distributed_loader(data["train"], settings["batch_size"], seed=cfg.seed,
                                                num_workers=args.workers)
        if len(loader) == 0:
            raise ValueError(f"{len(data['train'])} training images split over {process.world_size} process(es) "
                             f"give no batch of {settings['batch_size']}: lower --batch-size or raise --train-size")
        optimizer = recipe.optimizer(model, settings)
        total_steps = settings["epochs"] * len(loader)
        scheduler = None if recipe.scheduler is None else recipe.scheduler(optimizer, settings, total_steps)
        amp = distributed.resolve_amp(args.amp, process.device)
        checkpoint = checkpoint_path(recipe.checkpoint_name, cfg)
        say = print if process.is_main else (lambda *_: None)
        say(f"{len(data['train']):,} training images, {len(loader)} steps per epoch x {settings['epochs']} epochs; "
            + distributed.describe_scale(settings["batch_size"], settings["lr"], process.world_size)
            + f"; precision {'float32' if amp is None else str(amp).replace('torch.', '') + ' autocast'}; "
            f"backend {process.backend or 'none (one process)'}; checkpoint {checkpoint}")
        history = train(model, optimizer, loader, recipe.loss_fn, num_epochs=settings["epochs"], scheduler=scheduler,
                        scheduler_interval="step", grad_clip=recipe.grad_clip, device=process.device,
                        val_fn=None if recipe.validate is None else recipe.validate(data), checkpoint=checkpoint,
                        checkpoint_every=args.checkpoint_every, time_limit=args.time_limit,
                        progress=process.is_main and not args.no_progress, log_every=50, amp=args.amp,
                        find_unused_parameters=True)   # e.g. DETR at stride 8 leaves its trunk's last stage unused
        if process.is_main:
            _finish(model.cpu().eval(), config, history, settings, process, amp, cfg, recipe, model_path, save_model)
        finished = True
    finally:
        distributed.teardown(wait=finished)
    return 0


def _finish(model, config, history, settings, process, amp, cfg, recipe, model_path, save_model) -> None:
    """Rank 0: save the model where ``predict`` finds it and the run's record beside it; say where."""
    record = {"model": recipe.model_name, "dataset": cfg.dataset, "mode": cfg.mode, "settings": settings,
              "processes": process.world_size, "backend": process.backend,
              "batch_per_process": settings["batch_size"], "batch_total": settings["batch_size"] * process.world_size,
              "lr": settings["lr"], "precision": "float32" if amp is None else str(amp).replace("torch.", ""),
              "device": process.device.type, "history": history,
              "steps_per_second": history["global_step"] / history["time"] if history["time"] else None}
    folder = Path(cfg.checkpoint_dir) / cfg.mode
    json_path = folder / f"{recipe.model_name}_train.json"
    json_path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    if history["stopped"] != "completed":
        print(f"stopped ({history['stopped']}) after {history['global_step']} steps; run the same command again to "
              f"resume. Wrote {json_path}")
        return
    saved = save_model(model, config, model_path(recipe.model_name, cfg))
    print(f"trained: {history['global_step']} steps in {history['time']:.0f} s; wrote {saved} and {json_path}")
