"""A3: how the final DeepConvNet and its recipe were chosen -- full-length runs, validation accuracy.

    python bench/convnet_recipe.py                 # every run below; 10-15 minutes each on one core
    python bench/convnet_recipe.py --only 2 4      # some of them (numbers as printed)
    python bench/convnet_recipe.py --threads 2     # torch threads per run (default 1)
    python bench/convnet_recipe.py --seed 1        # another initialisation and batch order (default 0)

Each run builds a ``DeepConvNet`` from our layers (batch norm, Kaiming initialisation) and trains it
with our Adam on the 55,000 Fashion-MNIST training images of the notebook's split, for its number of
epochs (batches of 128, the learning rate multiplied by ``lr_decay`` after every epoch), and reports
the validation accuracy after every epoch on the other 5,000 (the test images are not touched).  The
runs differ in the network (filters, pools), the augmentation (``random_flip_and_shift``), the
learning-rate schedule and the L2 weight.  The seconds are the training time of the run (the whole
loop); compare them between runs of one invocation only.  Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from A3_fc_cnn.convolutional_networks import DeepConvNet
from A3_fc_cnn.fully_connected_networks import adam
from helpers.datasets import random_flip_and_shift
from helpers.solver import Solver

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convnet import load  # noqa: E402  (the bench's split: 55,000 / 5,000 / 10,000)

RUNS = [  # (filters, pools, augment, learning rate, lr_decay, L2 weight, epochs)
    ([32, 64, 64], [0, 1], True, 2e-3, 0.8, 1e-4, 12),
    ([32, 64, 64], [0, 1], False, 2e-3, 0.8, 1e-4, 12),
    ([32, 64, 64], [0, 1], False, 2e-3, 0.8, 1e-3, 12),
    ([32, 64, 128], [0, 1], False, 2e-3, 0.75, 1e-4, 10),
    ([32, 64, 64], [0, 1], False, 2e-3, 0.8, 3e-3, 12),
    ([32, 64, 64], [0, 1], True, 2e-3, 0.85, 1e-3, 15),
]


def run(data: dict, filters, pools, augment: bool, lr: float, lr_decay: float, reg: float, epochs: int,
        seed: int = 0):
    """Validation accuracy after every epoch and the training seconds of one run (torch seed 0 as the notebook,
    unless ``seed`` says otherwise)."""
    torch.manual_seed(seed)
    model = DeepConvNet(input_dims=(1, 28, 28), num_classes=10, num_filters=filters, max_pools=pools,
                        batchnorm=True, weight_scale="kaiming", reg=reg)
    solver = Solver(model, data, update_rule=adam, optim_config={"learning_rate": lr}, lr_decay=lr_decay,
                    num_epochs=epochs, batch_size=128, augment=random_flip_and_shift if augment else None,
                    num_val_samples=None, verbose=False)
    start = time.perf_counter()
    solver.train()
    return solver.val_acc_history[1:], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", type=int, nargs="+", help="run numbers (from 1) to run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of every run (default 0, the notebook's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); Fashion-MNIST "
          f"{len(data['y_train'])} train / {len(data['y_val'])} val; seed {args.seed}")
    print(f"{'#':>2} {'filters':>16} {'pools':>7} {'aug':>4} {'lr':>6} {'decay':>5} {'L2':>6} {'epochs':>6} "
          f"{'best val':>8} {'at epoch':>8} {'last val':>8} {'seconds':>8}")
    for number, (filters, pools, augment, lr, decay, reg, epochs) in enumerate(RUNS, start=1):
        if args.only and number not in args.only:
            continue
        val, seconds = run(data, filters, pools, augment, lr, decay, reg, epochs, args.seed)
        best = max(range(len(val)), key=val.__getitem__)
        print(f"{number:2d} {str(filters):>16} {str(pools):>7} {'yes' if augment else 'no':>4} {lr:6.0e} "
              f"{decay:5.2f} {reg:6.0e} {epochs:6d} {val[best]:8.4f} {best + 1:8d} {val[-1]:8.4f} {seconds:8.0f}",
              flush=True)
        print("   validation by epoch: " + " ".join(f"{acc:.4f}" for acc in val), flush=True)


if __name__ == "__main__":
    main()
