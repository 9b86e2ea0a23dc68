"""How well the CVAE draws the class it is asked for, against its KL weight, latent size and conditioning.

    python bench/cvae_beta.py                          # beta 1 and 8, latent 15; about 4 minutes each (1 thread)
    python bench/cvae_beta.py --beta 8 --epochs 20      # the notebook's choice
    python bench/cvae_beta.py --beta 1 --every-layer   # the class also enters every hidden layer of the decoder

Chooses the notebook's ``CVAE_BETA`` (A6_generative/variational_autoencoders.ipynb) on VALIDATION data,
never on the test split: the 60,000 Fashion-MNIST training images are split by a seeded permutation
into 50,000 to train on and 10,000 to validate with.  Each model is trained with the notebook's
full-mode recipe for the plain CVAE (Adam 1e-3, batches of 128, 10 epochs, seed 0; the beta-8 model
trains for 20: ``--epochs 20``) through ``train_vae``, then
``helpers.quality``'s full-mode classifier (the notebook's judge) reads 10,000 samples drawn at
temperature 1 (codes from N(0, I), classes spread evenly): the class accuracy, per class too, and the
Fréchet distance to the validation images' features.  Also printed: the validation negative ELBO and
the number of active latent dimensions (those whose posterior mean varies across images, variance
> 0.01).  Prints one JSON line per model; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from A6_generative.variational_autoencoders import CVAE, evaluate_vae, one_hot, sample, train_vae
from helpers.config import get_config
from helpers.datasets import CLASS_NAMES, load_dataset
from helpers.quality import SampleScorer, sample_scorer

NUM_VALIDATION = 10_000


class EveryLayerCVAE(CVAE):
    """A CVAE whose decoder reads the one-hot class at every layer, not only at its input (a variant measured here)."""

    def _build(self, encoder_inputs: int, decoder_inputs: int) -> None:
        super()._build(encoder_inputs, decoder_inputs)
        hidden, classes = self.hidden_dim, self.num_classes
        self.decoder = nn.ModuleList([nn.Linear(decoder_inputs + classes, hidden),
                                      nn.Linear(hidden + classes, hidden), nn.Linear(hidden + classes, hidden),
                                      nn.Linear(hidden + classes, self.input_size)])

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        codes = c.to(z.dtype) if c.dim() == 2 else one_hot(c, self.num_classes, z.dtype)
        h = z
        for i, layer in enumerate(self.decoder):
            h = layer(torch.cat([h, codes], dim=1))
            h = torch.relu(h) if i < len(self.decoder) - 1 else torch.sigmoid(h)
        return h.reshape(-1, *self.image_shape)


def split(seed: int = 30):
    """Fashion-MNIST's training images as (x_train, y_train, x_val, y_val): 50,000 / 10,000."""
    x, y, _, _ = load_dataset("fashion_mnist")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    train, val = order[:-NUM_VALIDATION], order[-NUM_VALIDATION:]
    return x[train], y[train], x[val], y[val]


def measure(beta: float, latent: int, every_layer: bool, data, judge, epochs: int) -> dict:
    """Train one CVAE on the training part and score its temperature-1 samples on the validation part."""
    x_train, y_train, x_val, y_val = data
    torch.manual_seed(0)
    model = (EveryLayerCVAE if every_layer else CVAE)(x_train[0].numel(), 10, latent_size=latent)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=128, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    train_vae(model, loader, num_epochs=epochs, lr=1e-3, beta=beta)
    seconds = time.perf_counter() - start
    elbo = evaluate_vae(model, x_val, y_val, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        active = int((model.encode(x_val, y_val)[0].var(dim=0) > 0.01).sum())
    requested = torch.arange(judge.num_samples) % 10
    images = sample(model, judge.num_samples, requested, generator=torch.Generator().manual_seed(1))
    predicted = judge.predict(images)
    per_class = {name: round(float((predicted[requested == c] == c).float().mean()), 3)
                 for c, name in enumerate(CLASS_NAMES["fashion_mnist"])}
    return {"beta": beta, "latent": latent, "every_layer": every_layer, "epochs": epochs,
            "class_accuracy": round(float((predicted == requested).float().mean()), 4),
            "frechet": round(judge.frechet(images), 2), "floor": round(judge.floor, 2),
            "val_loss": round(elbo["loss"], 1), "val_kl": round(elbo["kl"], 2), "active_dims": active,
            "train_s": round(seconds), "per_class": per_class}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beta", type=float, nargs="+", default=[1.0, 8.0], help="KL weights to try")
    parser.add_argument("--latent", type=int, default=15, help="latent size (the course: 15)")
    parser.add_argument("--every-layer", action="store_true", help="the class enters every decoder layer")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (the notebook's full mode: 10)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = get_config(dataset="fashion_mnist", fast=False)
    data = split()
    # the notebook's full-mode classifier; its real statistics fitted to the validation images
    judge = SampleScorer(sample_scorer(cfg).net, (1, 28, 28), NUM_VALIDATION).fit(data[0], data[2], data[3])
    for beta in args.beta:
        print(json.dumps(measure(beta, args.latent, args.every_layer, data, judge, args.epochs)), flush=True)


if __name__ == "__main__":
    main()
