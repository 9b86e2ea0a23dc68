"""Steps per second of helpers.train.train on 1 and 2 CPU processes (torchrun, gloo), the 2 cores shared.

    python bench/ddp.py [--steps 60] [--batch 64]

One process runs with 2 threads; two processes (``torchrun --nproc_per_node=2``, loopback only) run with
1 thread each, so both configurations use the machine's 2 cores.  The total batch is the same (``--batch``;
each of 2 processes gets half), so a step does the same arithmetic: the ideal speed-up of 2 processes is
about 1x on 2 cores.  What the figures show is the cost of the data-parallel path (gradient all-reduce,
the loss all-reduce, the sampler) and how it grows with the number of parameters:

* ``small CNN``: 2 conv layers and a linear layer on 28x28 images (compute-bound);
* ``wide MLP``: 784-1024-1024-10 (1.9 M parameters, so 7.5 MB of float32 gradients to all-reduce every step).

A third line, 1 process with 1 thread, separates what the second thread brings from what the second process
brings.  Nothing is asserted; timings depend on the machine's load (on a loaded machine, a process whose 2
OpenMP threads wait for each other can be much slower than 2 processes of 1 thread).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import distributed  # noqa: E402
from helpers.train import train  # noqa: E402

MODELS = ("small CNN", "wide MLP")


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "small CNN":
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(64 * 7 * 7, 10))
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                         nn.Linear(1024, 10))


def loss_fn(model, batch):
    images, labels = batch
    return F.cross_entropy(model(images), labels)


def worker(name: str, steps: int, batch: int, out: Path) -> None:
    """One process of a run: ``steps`` steps of ``batch`` images in total; rank 0 writes steps/s to ``out``."""
    process = distributed.init_distributed("cpu")
    per_process = batch // process.world_size
    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(steps * batch, 1, 28, 28, generator=gen), torch.randint(0, 10, (steps * batch,),
                                                                                           generator=gen))
    model = build(name)
    loader = distributed.distributed_loader(data, per_process, seed=0)
    warm = train(model, torch.optim.SGD(model.parameters(), lr=0.01), [next(iter(loader))], loss_fn,
                 progress=False)   # one step first: threads, allocator, DDP's first bucket rebuild
    history = train(model, torch.optim.SGD(model.parameters(), lr=0.01), loader, loss_fn, progress=False)
    if process.is_main:
        parameters = sum(p.numel() for p in model.parameters())
        out.write_text(json.dumps({"steps": history["global_step"], "seconds": history["time"],
                                   "warm_seconds": warm["time"], "parameters": parameters}))
    distributed.teardown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(name: str, processes: int, threads: int, steps: int, batch: int) -> dict:
    """Run ``processes`` processes of ``threads`` threads each; rank 0's figures."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "GLOO_SOCKET_IFNAME": "lo",
               "PYTHONPATH": str(ROOT)}
        launch = ([sys.executable] if processes == 1 else
                  [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                   "--master_addr=127.0.0.1", f"--master_port={free_port()}", "--max_restarts=0"])
        subprocess.run([*launch, __file__, "--worker", name, "--steps", str(steps), "--batch", str(batch),
                        "--out", str(out)], env=env, check=True, capture_output=True, text=True)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64, help="images per step in total (split between processes)")
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.batch, args.out)
        return
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; {args.steps} steps of {args.batch} images in total")
    print(f"{'model':10s} {'parameters':>10s} {'processes x threads':>20s} {'steps/s':>8s} {'vs 1 x 2':>9s}")
    for name in MODELS:
        base = None
        for processes, threads in ((1, 2), (2, 1), (1, 1)):
            result = measure(name, processes, threads, args.steps, args.batch)
            rate = result["steps"] / result["seconds"]
            base = base or rate
            print(f"{name:10s} {result['parameters']:10,d} {f'{processes} x {threads}':>20s} {rate:8.2f} "
                  f"{rate / base:8.2f}x")


if __name__ == "__main__":
    main()
