"""A tiny training run for tests/test_distributed.py and bench/ddp.py, started alone or under torchrun.

    torchrun --nproc_per_node=2 tests/ddp_worker.py --out DIR [--batch 8] [--epochs 2] [--dropout 0.2]
             [--checkpoint FILE] [--die-after STEP]

It trains a small MLP on 64 fixed random samples with :func:`helpers.train.train` (the course's one
loop, which switches to DistributedDataParallel when torchrun started it) and writes, per process,
``DIR/rank<r>.pt``: the final parameters and the list of files that process's ``train`` wrote.
``--die-after STEP`` makes rank 0 exit abruptly (``os._exit``) after that step, like a killed job.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import distributed  # noqa: E402
from helpers import train as engine  # noqa: E402

NUM_SAMPLES, FEATURES, CLASSES = 64, 8, 3


def dataset() -> TensorDataset:
    """64 fixed samples (seed 123), the same in every process."""
    gen = torch.Generator().manual_seed(123)
    x = torch.randn(NUM_SAMPLES, FEATURES, generator=gen)
    return TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long())


def build(dropout: float, width: int = 16) -> nn.Module:
    """The model, with the same initial weights everywhere (seed 0)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, width), nn.Tanh(), nn.Dropout(dropout), nn.Linear(width, CLASSES))


def loss_fn(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


def run(batch: int, epochs: int, dropout: float = 0.0, checkpoint=None, die_after=None, width: int = 16,
        data=None, checkpoint_every: int = 2) -> tuple[nn.Module, dict]:
    """Train with ``batch`` samples per process; returns (model, history)."""
    model = build(dropout, width)
    torch.manual_seed(1 + distributed.world()[0])   # each process its own dropout stream
    loader = distributed.distributed_loader(dataset() if data is None else data, batch, seed=7)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def die(_model, history):
        if die_after is not None and history["global_step"] == die_after and distributed.is_main():
            os._exit(17)

    history = engine.train(model, optimizer, loader, loss_fn, num_epochs=epochs, checkpoint=checkpoint,
                           checkpoint_every=checkpoint_every if checkpoint else None, progress=False,
                           callback=die)
    return model, history


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--checkpoint")
    parser.add_argument("--die-after", type=int)
    args = parser.parse_args()
    process = distributed.init_distributed("cpu")
    written = []
    save = engine.atomic_save

    def spy(payload, path):   # record what this process's train() writes
        written.append(str(path))
        save(payload, path)

    engine.atomic_save = spy
    model, history = run(args.batch, args.epochs, args.dropout, args.checkpoint, args.die_after)
    torch.save({"params": {k: v.detach().clone() for k, v in model.state_dict().items()}, "written": written,
                "world_size": process.world_size, "steps": history["global_step"], "loss": history["loss"]},
               Path(args.out) / f"rank{process.rank}.pt")
    distributed.teardown()


if __name__ == "__main__":
    main()
