"""Reference parts for the tests of A6's GAN: tiny networks, the library's losses, a loader of toy images.

``tests/test_generative_adversarial_networks.py`` gets them with ``load("gan_parts")``, so they are
built where ``run_a_gan`` runs (while grading: the grader's worker, since a model, an optimizer or a
loss whose autograd graph must reach the model cannot cross the sandbox).  Teacher's code: nothing
here imports the module under test.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class TinyGenerator(nn.Module):
    """noise (N, 4) -> (N, 784) in [-1, 1], with a BatchNorm whose running statistics must be checkpointed."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.BatchNorm1d(16), nn.Linear(16, 784), nn.Tanh())

    def forward(self, z):
        return self.net(z)


def ref_d_loss(real, fake):
    """The discriminator's loss with the library's binary cross-entropy."""
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def ref_g_loss(fake):
    """The generator's loss with the library's binary cross-entropy."""
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def crashing_d_loss(crash_at: int):
    """:func:`ref_d_loss` that raises ``RuntimeError("simulated crash")`` on its ``crash_at``-th call."""
    calls = []

    def loss(real, fake):
        calls.append(1)
        if len(calls) == crash_at:
            raise RuntimeError("simulated crash")
        return ref_d_loss(real, fake)

    return loss


def tiny_gan(seed=0):
    """``(D, G, D_solver, G_solver)``: a small discriminator, a :class:`TinyGenerator`, their Adam optimizers."""
    torch.manual_seed(seed)
    D = nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.LeakyReLU(0.01), nn.Linear(8, 1))
    G = TinyGenerator()
    D_solver = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    G_solver = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    return D, G, D_solver, G_solver


def image_loader(num=48, batch_size=16, seed=0):
    """Random 'images' in [0, 1]: bright squares on a dark background, in (images, labels) batches."""
    gen = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.rand(num, 1, 28, 28, generator=gen)
    for i in range(num):
        r, c = torch.randint(0, 20, (2,), generator=gen).tolist()
        x[i, 0, r:r + 8, c:c + 8] = 0.9
    y = torch.zeros(num, dtype=torch.int64)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(seed + 1))
