"""A6: variational autoencoders (VAE) and the conditional VAE (CVAE), on 28x28 grey images.

Names follow EECS 498/598 so course material applies unchanged:

* ``VAE(input_size, latent_size=15)``: an encoder ``x -> (mu, logvar)`` of a diagonal
  Gaussian ``q(z | x)`` and a decoder ``z -> x_hat`` (pixel probabilities);
  ``forward(x) -> (x_hat, mu, logvar)``;
* ``CVAE(input_size, num_classes=10, latent_size=15)``: the same, with the class
  given to both halves as a one-hot vector; ``forward(x, c)``;
* ``reparametrize(mu, logvar)``: ``z = mu + sigma * eps`` with ``eps ~ N(0, I)``;
* ``loss_function(x_hat, x, mu, logvar)``: the negative ELBO -- binary cross-entropy
  reconstruction plus the closed-form KL divergence to ``N(0, I)`` -- summed over each
  image and averaged over the batch (also as two pieces: :func:`reconstruction_loss`,
  :func:`kl_divergence`).  One addition to EECS 498's signature: an optional KL weight
  ``beta`` (default 1, the ELBO itself; ``beta > 1`` is a beta-VAE), which the notebook's
  CVAE uses so that it draws the class it is asked for;
* ``one_hot(labels, num_classes)``;
* :func:`train_vae` (built on :func:`helpers.train.train`: checkpoints, resume), and
  :func:`sample`, :func:`reconstruct`, :func:`interpolate`, :func:`evaluate_vae`.

Architecture (the course's): the encoder is ``Flatten, Linear(input_size, H), ReLU,
Linear(H, H), ReLU, Linear(H, H), ReLU`` with ``H = 400``, followed by two heads
``mu_layer = Linear(H, latent_size)`` and ``logvar_layer = Linear(H, latent_size)``; the
decoder is ``Linear(latent_size, H), ReLU, Linear(H, H), ReLU, Linear(H, H), ReLU,
Linear(H, input_size), Sigmoid, Unflatten(1, (1, 28, 28))``.  The CVAE's encoder reads
``input_size + num_classes`` numbers and its decoder ``latent_size + num_classes``.

Images are ``(N, 1, 28, 28)`` (or already flat, ``(N, input_size)``) with values in [0, 1].
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from A6_generative import checks
from helpers.checks import check_int, check_labels
from helpers.train import train

#: Shape of one image: MNIST / Fashion-MNIST.
IMAGE_SHAPE = (1, 28, 28)
#: Width of every hidden layer of the encoder and the decoder (the course's H).
HIDDEN_SIZE = 400
#: Logarithms in the binary cross-entropy are floored here, as in ``F.binary_cross_entropy``:
#: a pixel predicted with probability 0 costs 100 nats, not infinity.
LOG_FLOOR = -100.0


# --------------------------------------------------------------------------- pieces of the ELBO


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One-hot rows of integer labels.

    Args:
        labels: ``(N,)`` integer class indices in ``[0, num_classes)``.
        num_classes: ``C``.
        dtype: of the result.

    Returns:
        ``(N, C)`` tensor on the labels' device: ``out[i, labels[i]] = 1``, every other entry 0.

    Rule: no loops (EECS 498 gives a loop over the labels).  Hint: compare a column of labels
    with a row of class indices and let broadcasting make the ``(N, C)`` table.
    """
    checks.one_hot_args(labels, num_classes)
    ### BEGIN SOLUTION
    classes = torch.arange(num_classes, device=labels.device)
    return (labels[:, None] == classes[None, :]).to(dtype)
    ### END SOLUTION


def reparametrize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``z ~ N(mu, diag(exp(logvar)))`` as a differentiable function of ``mu`` and ``logvar``.

    The reparametrisation trick: ``z = mu + sigma * eps`` with ``sigma = exp(logvar / 2)`` and
    ``eps ~ N(0, I)`` drawn independently of the parameters, so gradients flow to both.

    Args:
        mu, logvar: ``(N, Z)`` mean and log-variance of each latent coordinate.
        generator: optional ``torch.Generator`` for ``eps`` (reproducible draws).

    Returns:
        z: ``(N, Z)``.

    Rule: draw ``eps`` and build ``z`` from it; sampling ``z`` directly (``torch.normal(mu, sigma)``)
    gives no gradient.  Hint: ``sigma = exp(logvar / 2)``.
    """
    checks.gaussian(mu, logvar)
    ### BEGIN SOLUTION
    where = mu.device if generator is None else generator.device
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=where).to(mu.device)
    return mu + torch.exp(0.5 * logvar) * eps
    ### END SOLUTION


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of each image, summed over its pixels.

    ``-sum_j [x_j log x_hat_j + (1 - x_j) log(1 - x_hat_j)]``, each logarithm floored at
    :data:`LOG_FLOOR` (like ``F.binary_cross_entropy``), so a saturated sigmoid gives a
    large but finite loss and finite gradients.

    Args:
        x_hat: ``(N, ...)`` pixel probabilities in [0, 1] (the decoder's output).
        x: the images, same number of values per image, in [0, 1].

    Returns:
        ``(N,)`` reconstruction loss of every image (nats).

    Rule: write the formula yourself, with the floor: you may not use ``F.binary_cross_entropy``,
    ``F.binary_cross_entropy_with_logits`` or ``nn.BCELoss`` (EECS 498 calls ``F.binary_cross_entropy``,
    which computes the same floored loss: use it to check yours).
    """
    p, target = checks.image_pair(x_hat, x)
    ### BEGIN SOLUTION
    tiny = torch.finfo(p.dtype).tiny

    def floored_log(q):
        # log(q) floored at LOG_FLOOR.  Clamping q at the smallest normal number first keeps the
        # gradient finite where q is 0 or subnormal (1 / q would overflow); q == 0 reads LOG_FLOOR.
        return torch.where(q > 0, torch.log(q.clamp_min(tiny)), LOG_FLOOR).clamp_min(LOG_FLOOR)

    log_p, log_not_p = floored_log(p), floored_log(1 - p)
    return -(target * log_p + (1 - target) * log_not_p).sum(dim=1)
    ### END SOLUTION


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` of each row, in closed form.

    ``-1/2 sum_k (1 + logvar_k - mu_k^2 - exp(logvar_k))``.

    Args:
        mu, logvar: ``(N, Z)``.

    Returns:
        ``(N,)`` KL divergence of every row (nats, >= 0).

    Rule: no loops, and the closed form written yourself (nothing from ``torch.distributions``:
    no ``Normal``, no ``kl_divergence``).
    """
    checks.gaussian(mu, logvar)
    ### BEGIN SOLUTION
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
    ### END SOLUTION


def loss_function(x_hat: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                  beta: float = 1.0) -> torch.Tensor:
    """The negative ELBO: reconstruction + KL, summed over each image, averaged over the batch.

    Args:
        x_hat: ``(N, 1, 28, 28)`` (or ``(N, D)``) decoder output in [0, 1].
        x: the input images, same shape, in [0, 1].
        mu, logvar: ``(N, Z)`` the encoder's Gaussian.
        beta: weight of the KL term, a real number >= 0.  The default 1 gives the negative ELBO
            (EECS 498's loss, which has no such argument); ``beta > 1`` (a beta-VAE, Higgins et
            al., 2017) makes every nat stored in the code dearer, so a CVAE leaves the class to
            its label input (the notebook measures it).

    Returns:
        scalar tensor: ``mean_i [reconstruction_loss_i + beta * kl_divergence_i]``.

    Hint: both terms are already written above; EECS 498 sums over the batch, then divides by N.
    """
    beta = checks.elbo_args(x_hat, mu, logvar, beta)
    ### BEGIN SOLUTION
    return (reconstruction_loss(x_hat, x) + beta * kl_divergence(mu, logvar)).mean()
    ### END SOLUTION


# --------------------------------------------------------------------------- models


class VAE(nn.Module):
    """Variational autoencoder with fully-connected encoder and decoder (see the module docstring).

    Attributes (the course's names): ``encoder`` (``nn.Sequential`` ending with a hidden
    ``(N, H)`` activation), ``mu_layer``, ``logvar_layer`` (``Linear(H, latent_size)``), ``decoder``
    (``nn.Sequential``: ``(N, latent_size)`` -> ``(N, 1, 28, 28)`` in [0, 1]).

    Args:
        input_size: pixels per image (784 for 28x28).
        latent_size: ``Z``, dimensions of the latent code.
        hidden_size: ``H``, width of the hidden layers (the course's 400).
        image_shape: shape of one image, ``(1, 28, 28)``; its size must equal ``input_size``.
    """

    def __init__(self, input_size: int, latent_size: int = 15, hidden_size: int = HIDDEN_SIZE,
                 image_shape: tuple = IMAGE_SHAPE):
        super().__init__()
        self.input_size, self.latent_size, self.hidden_dim, self.image_shape = checks.model_sizes(
            input_size, latent_size, hidden_size, image_shape)
        self._build(encoder_inputs=input_size, decoder_inputs=latent_size)

    def _build(self, encoder_inputs: int, decoder_inputs: int) -> None:
        """Create ``encoder``, ``mu_layer``, ``logvar_layer`` and ``decoder``.

        The encoder reads ``encoder_inputs`` numbers per example, the decoder ``decoder_inputs``
        (the CVAE adds the one-hot class to both); the decoder writes ``input_size`` pixels
        reshaped to ``image_shape``.
        """
        hidden = self.hidden_dim
        self.encoder = None
        self.mu_layer = None
        self.logvar_layer = None
        self.decoder = None
        ### BEGIN SOLUTION
        self.encoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(encoder_inputs, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
        )
        self.mu_layer = nn.Linear(hidden, self.latent_size)
        self.logvar_layer = nn.Linear(hidden, self.latent_size)
        self.decoder = nn.Sequential(
            nn.Linear(decoder_inputs, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, self.input_size), nn.Sigmoid(),
            nn.Unflatten(1, self.image_shape),
        )
        ### END SOLUTION

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (N, 1, 28, 28)`` or ``(N, input_size)`` -> ``(mu, logvar)``, each ``(N, latent_size)``."""
        x = checks.flat_images(x, self.input_size, self.image_shape)
        ### BEGIN SOLUTION
        hidden = self.encoder(x)
        return self.mu_layer(hidden), self.logvar_layer(hidden)
        ### END SOLUTION

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z (N, latent_size)`` -> ``x_hat (N, 1, 28, 28)``, pixel probabilities in [0, 1]."""
        checks.latent(z, self.latent_size)
        ### BEGIN SOLUTION
        return self.decoder(z)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, draw ``z`` with :func:`reparametrize`, decode.

        Args:
            x: ``(N, 1, 28, 28)`` or ``(N, input_size)`` images in [0, 1].

        Returns:
            x_hat: ``(N, 1, 28, 28)`` in [0, 1]; mu, logvar: ``(N, latent_size)``.
        """
        ### BEGIN SOLUTION
        mu, logvar = self.encode(x)
        return self.decode(reparametrize(mu, logvar)), mu, logvar
        ### END SOLUTION


class CVAE(VAE):
    """Conditional VAE: encoder and decoder also read the class as a one-hot vector.

    ``c`` may be ``(N,)`` integer labels or ``(N, num_classes)`` one-hot rows (the course's form).

    Args:
        input_size: pixels per image (784 for 28x28).
        num_classes: ``C``.
        latent_size: ``Z``.
        hidden_size, image_shape: as for :class:`VAE`.
    """

    def __init__(self, input_size: int, num_classes: int = 10, latent_size: int = 15,
                 hidden_size: int = HIDDEN_SIZE, image_shape: tuple = IMAGE_SHAPE):
        self.num_classes = check_int(num_classes, "num_classes", minimum=1)
        super().__init__(input_size, latent_size, hidden_size, image_shape)

    def _build(self, encoder_inputs: int, decoder_inputs: int) -> None:
        super()._build(encoder_inputs + self.num_classes, decoder_inputs + self.num_classes)

    def encode(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (N, 1, 28, 28)`` or ``(N, input_size)``, ``c`` -> ``(mu, logvar)``, each ``(N, latent_size)``."""
        x = checks.flat_images(x, self.input_size, self.image_shape)
        codes = checks.class_codes(c, x.shape[0], self.num_classes, x)
        ### BEGIN SOLUTION
        hidden = self.encoder(torch.cat([x, codes], dim=1))
        return self.mu_layer(hidden), self.logvar_layer(hidden)
        ### END SOLUTION

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``z (N, latent_size)``, ``c`` -> ``x_hat (N, 1, 28, 28)`` in [0, 1]."""
        checks.latent(z, self.latent_size)
        codes = checks.class_codes(c, z.shape[0], self.num_classes, z)
        ### BEGIN SOLUTION
        return self.decoder(torch.cat([z, codes], dim=1))
        ### END SOLUTION

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode ``(x, c)``, draw ``z``, decode ``(z, c)``.

        Args:
            x: ``(N, 1, 28, 28)`` or ``(N, input_size)`` images in [0, 1].
            c: ``(N,)`` integer labels in ``[0, num_classes)`` or ``(N, num_classes)`` one-hot rows.

        Returns:
            x_hat: ``(N, 1, 28, 28)`` in [0, 1]; mu, logvar: ``(N, latent_size)``.
        """
        ### BEGIN SOLUTION
        mu, logvar = self.encode(x, c)
        return self.decode(reparametrize(mu, logvar), c), mu, logvar
        ### END SOLUTION


# --------------------------------------------------------------------------- training and using a model


def _check_model(model) -> None:
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a VAE or a CVAE, got {type(model).__name__}")


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def vae_loss_fn(model: VAE, batch, beta: float = 1.0) -> tuple[torch.Tensor, dict]:
    """``loss_fn`` of :func:`helpers.train.train`: the negative ELBO of a batch ``(x, y)``.

    A :class:`CVAE` is given the labels ``y``; a :class:`VAE` ignores them.  ``beta`` weighs the
    KL term (see :func:`loss_function`); 1 gives the negative ELBO.

    Returns:
        ``(loss, {"reconstruction": ..., "kl": ...})``, the two terms' batch means as floats
        (unweighted: the negative ELBO is their sum whatever ``beta``).
    """
    x, y = batch
    x_hat, mu, logvar = model(x, y) if isinstance(model, CVAE) else model(x)
    loss = loss_function(x_hat, x, mu, logvar, beta=beta)
    with torch.no_grad():
        parts = {"reconstruction": float(reconstruction_loss(x_hat, x).mean()),
                 "kl": float(kl_divergence(mu, logvar).mean())}
    return loss, parts


def train_vae(model: VAE, loader, num_epochs: int = 10, lr: float = 1e-3, *, beta: float = 1.0,
              checkpoint=None, time_limit: float | None = None, device=None, progress: bool = False,
              log_every: int = 10) -> dict:
    """Train a :class:`VAE` or :class:`CVAE` with Adam on the negative ELBO (the course's recipe).

    Built on :func:`helpers.train.train`: with ``checkpoint`` (use
    ``helpers.train.checkpoint_path("vae", cfg)``) it saves every epoch and resumes where
    it stopped; a finished run only loads its weights.

    Args:
        model: the model to train.
        loader: yields ``(x, y)`` batches: ``x (B, 1, 28, 28)`` in [0, 1], ``y (B,)`` labels
            (used by a CVAE only), e.g. a ``DataLoader`` over a ``TensorDataset``.
        num_epochs: epochs in total (the course: 10); lr: Adam's learning rate (the course: 1e-3).
        beta: weight of the KL term (:func:`loss_function`): 1 (the course's) trains on the
            negative ELBO; the notebook's CVAE uses a larger one, chosen on validation images.
        checkpoint, time_limit, device, progress, log_every: passed to :func:`helpers.train.train`.

    Returns:
        the history of :func:`helpers.train.train`: ``loss`` (the objective per logged point:
        the negative ELBO when ``beta`` is 1),
        ``metrics["reconstruction"]``, ``metrics["kl"]``, ``epoch_loss``, ``time``...
    """
    _check_model(model)
    beta = checks.kl_weight(beta)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = functools.partial(vae_loss_fn, beta=beta)
    return train(model, optimizer, loader, loss_fn, num_epochs=num_epochs, checkpoint=checkpoint,
                 time_limit=time_limit, device=device, progress=progress, log_every=log_every)


@torch.no_grad()
def evaluate_vae(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000,
                 generator: torch.Generator | None = None) -> dict:
    """Mean negative ELBO and its two terms on ``x`` (one posterior draw per image).

    Args:
        model: a trained VAE or CVAE (a CVAE needs ``y``).
        x: ``(N, 1, 28, 28)`` images in [0, 1]; y: ``(N,)`` labels (a VAE ignores them) or None.
        batch_size: images per forward pass.
        generator: for the draws of ``z`` (None: the global RNG).

    Returns:
        ``{"loss": ..., "reconstruction": ..., "kl": ...}`` as floats (nats per image).
    """
    _check_model(model)
    check_int(batch_size, "batch_size", minimum=1)
    checks.flat_images(x, model.input_size, model.image_shape)
    if isinstance(model, CVAE) and y is None:
        raise ValueError("a CVAE needs the labels y to be evaluated")
    device = _device_of(model)
    was_training = model.training
    model.eval()
    totals = {"reconstruction": 0.0, "kl": 0.0}
    try:
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size].to(device)
            yb = None if y is None or not isinstance(model, CVAE) else y[start:start + batch_size]
            mu, logvar = _encode(model, xb, yb)
            x_hat = _decode(model, reparametrize(mu, logvar, generator), yb)
            totals["reconstruction"] += float(reconstruction_loss(x_hat, xb).sum())
            totals["kl"] += float(kl_divergence(mu, logvar).sum())
    finally:
        model.train(was_training)
    result = {name: value / max(x.shape[0], 1) for name, value in totals.items()}
    result["loss"] = result["reconstruction"] + result["kl"]
    return result


def _labels_for(model: VAE, labels, num: int):
    """A CVAE's labels as an int64 ``(num,)`` tensor on the model's device; None for a VAE."""
    if not isinstance(model, CVAE):
        if labels is not None:
            raise ValueError("labels are for a CVAE; a VAE takes none")
        return None
    if labels is None:
        raise ValueError(f"a CVAE needs labels: a ({num},) tensor of classes in [0, {model.num_classes})")
    labels = torch.as_tensor(labels)
    check_labels(labels, num, model.num_classes, name="labels")
    return labels.to(device=_device_of(model), dtype=torch.int64)


def _encode(model: VAE, x: torch.Tensor, labels) -> tuple[torch.Tensor, torch.Tensor]:
    return model.encode(x, labels) if isinstance(model, CVAE) else model.encode(x)


def _decode(model: VAE, z: torch.Tensor, labels) -> torch.Tensor:
    return model.decode(z, labels) if isinstance(model, CVAE) else model.decode(z)


@torch.no_grad()
def sample(model: VAE, num: int, labels=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Decode ``num`` codes drawn from the prior ``N(0, I)``.

    Args:
        model: a VAE, or a CVAE with ``labels``: ``(num,)`` classes to draw.
        num: how many images.
        generator: optional CPU ``torch.Generator`` for the codes.

    Returns:
        ``(num, 1, 28, 28)`` images in [0, 1] (pixel probabilities), on the model's device.
    """
    _check_model(model)
    check_int(num, "num", minimum=0)
    labels = _labels_for(model, labels, num)
    z = torch.randn(num, model.latent_size, generator=generator).to(_device_of(model))
    return _decode(model, z, labels)


@torch.no_grad()
def reconstruct(model: VAE, x: torch.Tensor, labels=None) -> torch.Tensor:
    """Decode the posterior mean of every image: ``decode(mu(x))``, no sampling.

    Args:
        model: a VAE, or a CVAE with ``labels (N,)``.
        x: ``(N, 1, 28, 28)`` images in [0, 1].

    Returns:
        ``(N, 1, 28, 28)`` reconstructions in [0, 1], on the model's device.
    """
    _check_model(model)
    x = torch.as_tensor(x).to(_device_of(model))
    labels = _labels_for(model, labels, x.shape[0] if x.dim() else 0)
    mu, _ = _encode(model, x, labels)
    return _decode(model, mu, labels)


@torch.no_grad()
def interpolate(model: VAE, z_start: torch.Tensor, z_end: torch.Tensor, num_steps: int = 10,
                labels=None) -> torch.Tensor:
    """Decode the straight line from ``z_start`` to ``z_end`` in latent space.

    Args:
        model: a VAE, or a CVAE with ``labels``: one class for the whole line (an int) or
            ``(num_steps,)`` labels.
        z_start, z_end: ``(latent_size,)`` codes (e.g. posterior means of two images).
        num_steps: points on the line, both ends included (>= 2).

    Returns:
        ``(num_steps, 1, 28, 28)`` images in [0, 1]; row ``i`` decodes
        ``(1 - t_i) z_start + t_i z_end`` with ``t_i = i / (num_steps - 1)``.
    """
    _check_model(model)
    check_int(num_steps, "num_steps", minimum=2)
    for name, z in (("z_start", z_start), ("z_end", z_end)):
        checks.float_tensor(z, name, f"({model.latent_size},)")
        if tuple(z.shape) != (model.latent_size,):
            raise ValueError(f"{name} must have shape ({model.latent_size},), got {tuple(z.shape)}")
    if isinstance(labels, int) and not isinstance(labels, bool):
        labels = torch.full((num_steps,), labels, dtype=torch.int64)
    labels = _labels_for(model, labels, num_steps)
    device = _device_of(model)
    t = torch.linspace(0, 1, num_steps, device=device)[:, None]
    z = (1 - t) * z_start.to(device) + t * z_end.to(device)
    return _decode(model, z, labels)


__all__ = [
    "CVAE",
    "HIDDEN_SIZE",
    "IMAGE_SHAPE",
    "LOG_FLOOR",
    "VAE",
    "evaluate_vae",
    "interpolate",
    "kl_divergence",
    "loss_function",
    "one_hot",
    "reconstruct",
    "reconstruction_loss",
    "reparametrize",
    "sample",
    "train_vae",
    "vae_loss_fn",
]
