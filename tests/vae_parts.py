"""Reference parts for the tests of A6's VAE: toy images, their loader, gradients of the loss through a model.

``tests/test_variational_autoencoders.py`` gets them with ``load("vae_parts")``, so they run where the
model lives (while grading: the grader's worker; a DataLoader or an autograd graph cannot cross the
sandbox).  Teacher's code: nothing here imports the module under test; the model and the loss
function are passed in.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset


def toy_images(n=256, seed=0):
    """Bright rectangles of random size and place on black, and their 'class' (a quadrant, 0..3)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28)
    labels = torch.empty(n, dtype=torch.int64)
    for i in range(n):
        quadrant = int(torch.randint(0, 4, (1,), generator=g))
        top, left = 14 * (quadrant // 2), 14 * (quadrant % 2)
        h, w = (int(v) for v in torch.randint(5, 13, (2,), generator=g))
        x[i, 0, top:top + h, left:left + w] = 1.0
        labels[i] = quadrant
    return x, labels


def toy_loader(batch_size=32):
    """:func:`toy_images` in shuffled (images, labels) batches."""
    x, y = toy_images()
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(1))


def loss_gradients(model, loss_function, x):
    """``loss_function(*model(x), ...)`` and the gradient of every parameter of ``model`` after its backward pass."""
    x_hat, mu, logvar = model(x)
    loss = loss_function(x_hat, x, mu, logvar)
    model.zero_grad()
    loss.backward()
    return loss.detach(), [p.grad for p in model.parameters()]
