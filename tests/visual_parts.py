"""Reference parts for the tests of A6's network visualization, style transfer and visual models.

The tests build each tiny network twice from the same seed: here, to compute the expected values
(autograd on the teacher's side), and with ``load("visual_parts")``, where the code under test runs
(while grading: the grader's worker, since a model or a function of a model cannot cross the
sandbox).  Teacher's code: nothing here imports the module under test.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_CLASSES = 5


def frozen(model: nn.Module) -> nn.Module:
    """``model`` in float64, eval mode, with every parameter's ``requires_grad`` off."""
    model = model.double().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def classifier(seed=0, channels=2, score_scale=1.0):
    """A small smooth CNN: (N, channels, 6, 6) -> (N, 5) scores; the last layer's weights times ``score_scale``."""
    torch.manual_seed(seed)
    model = frozen(nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.Tanh(), nn.Flatten(),
                                 nn.Linear(4 * 6 * 6, NUM_CLASSES)))
    model[3].weight.mul_(score_scale)
    return model


def linear_classifier(seed=3):
    """Scores ``W x`` of flattened (N, 2, 6, 6) images, no bias."""
    torch.manual_seed(seed)
    return frozen(nn.Sequential(nn.Flatten(), nn.Linear(2 * 6 * 6, NUM_CLASSES, bias=False)))


def conv_features(model):
    """The features after ``model``'s convolution and tanh, flattened: a function of images -> (N, 144)."""
    return lambda x: model[1](model[0](x)).flatten(1)


def style_cnn(seed=0):
    """Five layers (conv, relu, pool, conv, relu) of 3-channel images, frozen: style transfer's feature network."""
    torch.manual_seed(seed)
    return frozen(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()))


def small_cnn(seed=0):
    """Three layers (conv, relu, pool) in float64, eval mode (parameters left trainable)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)).double().eval()


def layer_outputs(cnn, x):
    """The output of every layer of ``cnn`` for ``x``, in order."""
    feats = []
    for layer in cnn:
        x = layer(x)
        feats.append(x)
    return feats


def trainable(model) -> bool:
    """Whether any parameter of ``model`` requires grad."""
    return any(p.requires_grad for p in model.parameters())


def call_keeping_arguments(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), args as the call left them)``: for functions that also update an argument in place."""
    return fn(*args, **kwargs), args


def save_png(path, pixels):
    """Write ``pixels`` (H, W, 3) uint8 as a PNG file at ``path``."""
    from PIL import Image

    Image.fromarray(pixels.numpy()).save(path)
