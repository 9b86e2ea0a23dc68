"""papers/vit: how the training recipe was chosen -- short runs of a small ViT, validation accuracy.

    python bench/vit_recipe.py          # 6 runs, about 3 minutes each on one core

Each run trains ``VisionTransformer(patch_size=7, emb_dim=48, depth=3, num_heads=4, mlp_dim=96)``
for 3 epochs on the first 12,000 Fashion-MNIST training images and scores the next 3,000
(validation; the test split is not touched).  AdamW, weight decay 0.05, warm-up over a tenth of
the steps then cosine, label smoothing 0.1, seed 0.  The runs change one thing at a time:
learning rate, batch size, and the augmentation (flips, shifts of up to N pixels).  Prints a
table; asserts nothing.
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from A4_rnn_transformer.transformer import warmup_scheduler
from helpers.config import seed_everything
from helpers.datasets import load_fashion_mnist
from papers.vit import VisionTransformer, accuracy, vit_loss_fn

NUM_TRAIN, NUM_VAL, EPOCHS = 12000, 3000, 3
RUNS = [  # (learning rate, batch size, augment, max shift)
    (1e-3, 128, True, 2),
    (1e-3, 128, False, 0),
    (3e-3, 128, False, 0),
    (2e-3, 64, False, 0),
    (2e-3, 64, True, 0),
    (2e-3, 64, True, 1),
]


def run(x, y, x_val, y_val, lr: float, batch_size: int, augment: bool, max_shift: int) -> tuple[float, float]:
    """Validation accuracy and seconds of one short run."""
    seed_everything(0)
    model = VisionTransformer(patch_size=7, emb_dim=48, depth=3, num_heads=4, mlp_dim=96)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    total = EPOCHS * len(loader)
    scheduler = warmup_scheduler(optimizer, max(1, total // 10), total)
    loss_fn = vit_loss_fn(0.1, augment=augment, max_shift=max_shift)
    start = time.perf_counter()
    for _ in range(EPOCHS):
        for batch in loader:
            loss, _ = loss_fn(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    return accuracy(model, x_val, y_val), time.perf_counter() - start


def main() -> None:
    x, y, _, _ = load_fashion_mnist(num_train=NUM_TRAIN + NUM_VAL, num_test=1)
    x_val, y_val, x, y = x[NUM_TRAIN:], y[NUM_TRAIN:], x[:NUM_TRAIN], y[:NUM_TRAIN]
    print(f"{'lr':>7s} {'batch':>5s} {'augmentation':>16s} {'val acc':>8s} {'seconds':>8s}")
    for lr, batch_size, augment, max_shift in RUNS:
        acc, seconds = run(x, y, x_val, y_val, lr, batch_size, augment, max_shift)
        aug = f"flips, shift {max_shift}" if augment else "none"
        print(f"{lr:7.0e} {batch_size:5d} {aug:>16s} {acc:8.4f} {seconds:8.0f}", flush=True)


if __name__ == "__main__":
    main()
