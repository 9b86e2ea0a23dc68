"""A6 variational autoencoders: the ELBO's pieces, the reparametrisation trick, the two models, training.

The binary cross-entropy is checked against ``F.binary_cross_entropy`` (values and
gradients), a value known by hand and a numeric gradient; the KL term against its
closed form on known inputs and against ``torch.distributions``; ``one_hot`` against
``F.one_hot``; the reparametrisation by the statistics of many draws and by the
gradients it passes to ``mu`` and ``logvar``.  The models: the course's architecture
and parameter counts, shapes and output ranges, how the class enters the CVAE.
Training: a short run on synthetic images lowers the negative ELBO, and an interrupted
checkpointed run resumes to the same weights as an uninterrupted one.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl
from under_test import load, rules_of
from worker_tools import layers_of, seeded_generator, worker_folder

from helpers.gradcheck import compute_numeric_gradient, rel_error

MODULE = "A6_generative.variational_autoencoders"
vae_module = load(MODULE)
CVAE = vae_module.CVAE
VAE = vae_module.VAE
evaluate_vae = vae_module.evaluate_vae
interpolate = vae_module.interpolate
kl_divergence = vae_module.kl_divergence
loss_function = vae_module.loss_function
one_hot = vae_module.one_hot
reconstruct = vae_module.reconstruct
reconstruction_loss = vae_module.reconstruction_loss
reparametrize = vae_module.reparametrize
sample = vae_module.sample
train_vae = vae_module.train_vae
# Loaders and gradients through a model, computed where the model lives (tests/vae_parts.py).
parts = load("vae_parts")


def backward_through(fn, inputs, upstream=None, **kwargs):
    """``(fn(*inputs), [gradients of the inputs that require grad])``, computed where ``fn`` lives."""
    return load("under_test").backward_through(fn, inputs, upstream, **kwargs)

# Score groups of `python -m course.grade` (README, "For teachers"): points are each group's total.
ONE_HOT = pytest.mark.grade("one_hot", points=2)
REPARAM = pytest.mark.grade("reparametrize", points=4)
BCE = pytest.mark.grade("reconstruction loss", points=4)
KL = pytest.mark.grade("KL divergence", points=3)
LOSS = pytest.mark.grade("loss_function", points=2)
VAE_MODEL = pytest.mark.grade("VAE", points=6)
CVAE_MODEL = pytest.mark.grade("CVAE", points=5)
TRAINING = pytest.mark.grade("training and sampling", points=4)
GIVEN = pytest.mark.grade("given code: input checks", points=0)
# The docstrings' rules, checked in the same groups (a broken rule scores its group 0).
RULES = {"one_hot": (ONE_HOT, 0, ()),
         "reconstruction_loss": (BCE, None, ("binary_cross_entropy", "BCELoss", "binary_cross_entropy_with_logits")),
         "kl_divergence": (KL, 0, ("distributions", "kl_divergence", "Normal"))}

INPUT_SIZE, LATENT, HIDDEN = 784, 15, 400
# The course's architecture, counted layer by layer (weights + biases).
ENCODER_PARAMS = (INPUT_SIZE + 1) * HIDDEN + 2 * (HIDDEN + 1) * HIDDEN + 2 * (HIDDEN + 1) * LATENT
DECODER_PARAMS = (LATENT + 1) * HIDDEN + 2 * (HIDDEN + 1) * HIDDEN + (HIDDEN + 1) * INPUT_SIZE


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(n, seed=0, dtype=torch.float32):
    return torch.rand(n, 1, 28, 28, generator=gen(seed), dtype=dtype)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def linear_modules(module):
    return layers_of(module, "Linear")


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.grade(mark.args[0], points=mark.kwargs["points"], rule=True))
    for name, (mark, _, _) in RULES.items()])
def test_rules(name):
    _, loops, forbid = RULES[name]
    rules_of(MODULE, name, loops=loops, forbid=forbid)


def linear_shapes(module):
    return [(m.in_features, m.out_features) for m in linear_modules(module)]


# --------------------------------------------------------------------------- one_hot


@ONE_HOT
@pytest.mark.parametrize("num_classes", [1, 3, 10])
def test_one_hot_matches_torch(num_classes):
    labels = torch.randint(0, num_classes, (17,), generator=gen(num_classes))
    out = one_hot(labels, num_classes)
    assert out.dtype == torch.float32 and out.shape == (17, num_classes)
    torch.testing.assert_close(out, F.one_hot(labels, num_classes).float(), rtol=0, atol=0)


@ONE_HOT
def test_one_hot_dtype_and_empty_batch():
    labels = torch.tensor([2, 0, 1], dtype=torch.int32)
    out = one_hot(labels, 4, dtype=torch.float64)
    assert out.dtype == torch.float64
    assert out.tolist() == [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]]
    assert one_hot(torch.zeros(0, dtype=torch.int64), 5).shape == (0, 5)


# --------------------------------------------------------------------------- reparametrize


@REPARAM
def test_reparametrize_draws_have_the_requested_mean_and_variance():
    n = 200_000
    mu = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64).expand(n, 3)
    var = torch.tensor([0.25, 1.0, 4.0], dtype=torch.float64)
    z = reparametrize(mu, var.log().expand(n, 3), generator=seeded_generator(1))
    assert z.shape == (n, 3) and z.dtype == torch.float64
    sigma = var.sqrt()
    # 6 standard errors: the sample mean's is sigma / sqrt(n), the sample variance's var * sqrt(2 / n)
    assert ((z.mean(0) - mu[0]).abs() < 6 * sigma / math.sqrt(n)).all()
    assert ((z.var(0) / var - 1).abs() < 6 * math.sqrt(2 / n)).all()
    eps = (z - mu) / sigma  # the standard-normal noise behind the draws
    within_one = (eps.abs() < 1).double().mean()  # 0.6827 for a normal, 0.5 for uniform noise in [-sqrt3, sqrt3]
    assert abs(float(within_one) - 0.6827) < 0.005
    corr = torch.corrcoef(eps.T)
    assert (corr - torch.eye(3, dtype=torch.float64)).abs().max() < 0.02, "coordinates drawn independently"


@REPARAM
def test_reparametrize_passes_gradients_to_mu_and_logvar():
    mu = torch.randn(6, 4, generator=gen(2), dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(6, 4, generator=gen(3), dtype=torch.float64, requires_grad=True)
    weights = torch.randn(6, 4, generator=gen(5), dtype=torch.float64)
    z, (mu_grad, logvar_grad) = backward_through(reparametrize, [mu, logvar], weights, generator=seeded_generator(4))
    # z = mu + exp(logvar / 2) * eps: dz/dmu = 1, dz/dlogvar = exp(logvar / 2) * eps / 2 = (z - mu) / 2
    torch.testing.assert_close(mu_grad, weights, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(logvar_grad, weights * (z - mu).detach() / 2, rtol=1e-10, atol=1e-12)


@REPARAM
def test_reparametrize_generator_and_zero_variance():
    mu = torch.randn(5, 3, generator=gen(6))
    logvar = torch.zeros(5, 3)
    a = reparametrize(mu, logvar, generator=seeded_generator(7))
    b = reparametrize(mu, logvar, generator=seeded_generator(7))
    assert torch.equal(a, b), "the same generator state gives the same draw"
    assert not torch.equal(a, reparametrize(mu, logvar, generator=seeded_generator(8)))
    assert not torch.equal(a, mu), "a unit variance draw is not the mean"
    torch.manual_seed(0)
    c = reparametrize(mu, logvar)
    torch.manual_seed(0)
    assert torch.equal(c, reparametrize(mu, logvar)), "without a generator, draws follow torch's global RNG"
    tight = reparametrize(mu.double(), torch.full((5, 3), -200.0, dtype=torch.float64))
    torch.testing.assert_close(tight, mu.double(), rtol=0, atol=1e-40)


# --------------------------------------------------------------------------- reconstruction loss


@BCE
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reconstruction_loss_matches_binary_cross_entropy(dtype):
    x_hat = torch.rand(5, 1, 28, 28, generator=gen(9), dtype=dtype) * 0.98 + 0.01
    x = images(5, seed=10, dtype=dtype)  # grey-level targets, as Fashion-MNIST's
    per_image = reconstruction_loss(x_hat, x)
    assert per_image.shape == (5,) and per_image.dtype == dtype
    expected = F.binary_cross_entropy(x_hat, x, reduction="none").flatten(1).sum(1)
    torch.testing.assert_close(per_image, expected, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=0)
    # flat (N, 784) inputs give the same numbers
    torch.testing.assert_close(reconstruction_loss(x_hat.flatten(1), x.flatten(1)), per_image, rtol=0, atol=0)


@BCE
def test_reconstruction_loss_by_hand():
    # every pixel predicted 1/2: whatever the targets, each pixel costs ln 2
    x = images(3, seed=11, dtype=torch.float64)
    value = reconstruction_loss(torch.full_like(x, 0.5), x)
    torch.testing.assert_close(value, torch.full((3,), 784 * math.log(2), dtype=torch.float64))
    # two pixels: target 1 predicted 0.9, target 0 predicted 0.2 -> -ln 0.9 - ln 0.8
    two = reconstruction_loss(torch.tensor([[0.9, 0.2]], dtype=torch.float64), torch.tensor([[1.0, 0.0]]))
    assert abs(float(two) - (-math.log(0.9) - math.log(0.8))) < 1e-14


@BCE
def test_reconstruction_loss_gradient():
    x_hat = (torch.rand(3, 20, generator=gen(12), dtype=torch.float64) * 0.9 + 0.05).requires_grad_()
    x = torch.rand(3, 20, generator=gen(13), dtype=torch.float64)
    weights = torch.rand(3, generator=gen(14), dtype=torch.float64)
    _, (x_hat_grad,) = backward_through(reconstruction_loss, [x_hat, x], weights)
    numeric = compute_numeric_gradient(lambda p: (reconstruction_loss(p, x) * weights).sum(), x_hat.detach())
    assert rel_error(x_hat_grad, numeric) < 1e-7
    reference = x_hat.detach().clone().requires_grad_()
    (F.binary_cross_entropy(reference, x, reduction="none").sum(1) * weights).sum().backward()
    assert rel_error(x_hat_grad, reference.grad) < 1e-12


@BCE
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reconstruction_loss_is_finite_where_the_sigmoid_saturates(dtype):
    # predictions of exactly 0 and 1: right ones cost nothing, wrong ones LOG_FLOOR each, like PyTorch's
    x_hat = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.5]], dtype=dtype, requires_grad=True)
    x = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0]], dtype=dtype)
    loss, (x_hat_grad,) = backward_through(reconstruction_loss, [x_hat, x])
    expected = 2 * -vae_module.LOG_FLOOR + math.log(2)
    assert abs(float(loss.detach()) - expected) < 1e-4
    torch.testing.assert_close(loss, F.binary_cross_entropy(x_hat.detach(), x, reduction="sum").reshape(1))
    assert torch.isfinite(x_hat_grad).all(), "no inf / NaN gradient at a saturated output"
    # through the decoder's sigmoid, logits far in the tails: the chain rule as autograd applies it,
    # d loss / d logit = d loss / d p * p (1 - p)
    logits = torch.tensor([[-200.0, -50.0, 50.0, 200.0]], dtype=dtype)
    p = torch.sigmoid(logits).requires_grad_()
    loss, (p_grad,) = backward_through(reconstruction_loss, [p, torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=dtype)])
    logits_grad = p_grad * (1 - p.detach()) * p.detach()
    assert torch.isfinite(loss).all() and torch.isfinite(logits_grad).all()


# --------------------------------------------------------------------------- KL divergence


@KL
def test_kl_of_the_prior_itself_is_zero():
    out = kl_divergence(torch.zeros(4, 15), torch.zeros(4, 15))
    assert out.shape == (4,)
    assert torch.equal(out, torch.zeros(4))


@KL
def test_kl_known_values():
    # N((1, 2), I) vs N(0, I): |mu|^2 / 2 = 2.5
    # N(0, 2) in one dimension: (2 - 1 - ln 2) / 2
    # N(0, e^-2): (e^-2 - 1 + 2) / 2
    mu = torch.tensor([[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, 0.0], [math.log(2), 0.0], [-2.0, 0.0]], dtype=torch.float64)
    expected = torch.tensor([2.5, (1 - math.log(2)) / 2, (math.exp(-2) + 1) / 2], dtype=torch.float64)
    torch.testing.assert_close(kl_divergence(mu, logvar), expected, rtol=1e-14, atol=1e-14)


@KL
def test_kl_matches_torch_distributions_and_its_gradient():
    mu = torch.randn(7, 5, generator=gen(15), dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(7, 5, generator=gen(16), dtype=torch.float64, requires_grad=True)
    out, (mu_grad, logvar_grad) = backward_through(kl_divergence, [mu, logvar])
    prior = Normal(torch.zeros(7, 5, dtype=torch.float64), torch.ones(7, 5, dtype=torch.float64))
    expected = torch_kl(Normal(mu, (0.5 * logvar).exp()), prior).sum(1)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert (out >= 0).all()
    # d/dmu = mu, d/dlogvar = (exp(logvar) - 1) / 2
    torch.testing.assert_close(mu_grad, mu.detach(), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(logvar_grad, (logvar.detach().exp() - 1) / 2, rtol=1e-14, atol=1e-14)


# --------------------------------------------------------------------------- loss_function


@LOSS
def test_loss_function_is_the_batch_mean_of_the_negative_elbo():
    n = 6
    x_hat = torch.rand(n, 1, 28, 28, generator=gen(17), dtype=torch.float64) * 0.9 + 0.05
    x = images(n, seed=18, dtype=torch.float64)
    mu = torch.randn(n, LATENT, generator=gen(19), dtype=torch.float64)
    logvar = torch.randn(n, LATENT, generator=gen(20), dtype=torch.float64)
    loss = loss_function(x_hat, x, mu, logvar)
    assert loss.dim() == 0
    bce = F.binary_cross_entropy(x_hat, x, reduction="sum") / n
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum() / n
    torch.testing.assert_close(loss, bce + kl, rtol=1e-12, atol=0)


@LOSS
def test_loss_function_averages_over_the_batch_not_sums():
    x_hat = torch.rand(1, 1, 28, 28, generator=gen(21), dtype=torch.float64) * 0.9 + 0.05
    x, mu, logvar = images(1, 22, torch.float64), torch.randn(1, 3, dtype=torch.float64), torch.zeros(1, 3)
    single = loss_function(x_hat, x, mu, logvar.double())
    repeated = loss_function(x_hat.repeat(4, 1, 1, 1), x.repeat(4, 1, 1, 1), mu.repeat(4, 1),
                             logvar.double().repeat(4, 1))
    torch.testing.assert_close(repeated, single, rtol=1e-12, atol=0)


@LOSS
@pytest.mark.parametrize("beta", [0.0, 0.5, 4.0])
def test_loss_function_weighs_the_kl_term_by_beta(beta):
    n = 5
    x_hat = torch.rand(n, 1, 28, 28, generator=gen(23), dtype=torch.float64) * 0.9 + 0.05
    x = images(n, seed=24, dtype=torch.float64)
    mu = torch.randn(n, LATENT, generator=gen(25), dtype=torch.float64)
    logvar = torch.randn(n, LATENT, generator=gen(26), dtype=torch.float64)
    bce = F.binary_cross_entropy(x_hat, x, reduction="sum") / n
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum() / n
    torch.testing.assert_close(loss_function(x_hat, x, mu, logvar, beta=beta), bce + beta * kl, rtol=1e-12, atol=0)
    # the default is the ELBO itself
    torch.testing.assert_close(loss_function(x_hat, x, mu, logvar), bce + kl, rtol=1e-12, atol=0)


# --------------------------------------------------------------------------- VAE


@VAE_MODEL
def test_vae_architecture_and_parameter_count():
    model = VAE(INPUT_SIZE)
    assert n_params(model) == ENCODER_PARAMS + DECODER_PARAMS == 1_288_414
    assert linear_shapes(model.encoder) == [(784, 400), (400, 400), (400, 400)]
    assert linear_shapes(model.mu_layer) == [(400, 15)] and linear_shapes(model.logvar_layer) == [(400, 15)]
    assert linear_shapes(model.decoder) == [(15, 400), (400, 400), (400, 400), (400, 784)]
    assert n_params(VAE(INPUT_SIZE, latent_size=2)) == ENCODER_PARAMS + DECODER_PARAMS - 13 * 3 * HIDDEN - 13 * 2


@VAE_MODEL
def test_vae_shapes_and_ranges():
    torch.manual_seed(0)
    model = VAE(INPUT_SIZE)
    x = images(8, seed=23)
    x_hat, mu, logvar = model(x)
    assert x_hat.shape == (8, 1, 28, 28) and mu.shape == logvar.shape == (8, LATENT)
    assert ((x_hat > 0) & (x_hat < 1)).all()
    flat_mu, flat_logvar = model.encode(x.flatten(1))
    torch.testing.assert_close(flat_mu, mu, rtol=0, atol=0)
    torch.testing.assert_close(flat_logvar, logvar, rtol=0, atol=0)
    assert model.decode(torch.randn(3, LATENT)).shape == (3, 1, 28, 28)
    assert model(torch.zeros(0, 1, 28, 28))[0].shape == (0, 1, 28, 28)


@VAE_MODEL
def test_vae_forward_samples_z_with_the_encoder_variance():
    torch.manual_seed(0)
    model = VAE(INPUT_SIZE)
    x = images(4, seed=24)
    first, mu, _ = model(x)
    second, mu_again, _ = model(x)
    assert torch.equal(mu, mu_again) and not torch.equal(first, second), "each forward draws a new z"
    # a (nearly) zero variance: z = mu, so x_hat = decode(mu); set through the layer's state dict
    layer = model.logvar_layer
    state = layer.state_dict()
    layer.load_state_dict({"weight": torch.zeros_like(state["weight"]), "bias": torch.full_like(state["bias"], -60.0)})
    x_hat, mu, _ = model(x)
    torch.testing.assert_close(x_hat, model.decode(mu), rtol=1e-6, atol=1e-7)


@VAE_MODEL
def test_vae_loss_reaches_every_parameter():
    torch.manual_seed(0)
    model = VAE(INPUT_SIZE)
    x = images(4, seed=25)
    loss, grads = parts.loss_gradients(model, loss_function, x)  # the backward pass runs where the model lives
    assert 500 < float(loss) < 600, "an untrained decoder predicts about 1/2 per pixel: 784 ln 2 = 543"
    assert len(grads) == len(list(model.parameters()))
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


# --------------------------------------------------------------------------- CVAE


@CVAE_MODEL
def test_cvae_architecture_and_parameter_count():
    model = CVAE(INPUT_SIZE, num_classes=10)
    assert n_params(model) == ENCODER_PARAMS + DECODER_PARAMS + 2 * 10 * HIDDEN == 1_296_414
    assert linear_shapes(model.encoder)[0] == (794, 400) and linear_shapes(model.decoder)[0] == (25, 400)
    assert linear_shapes(model.decoder)[-1] == (400, 784)


@CVAE_MODEL
def test_cvae_takes_labels_or_one_hot_rows():
    torch.manual_seed(0)
    model = CVAE(INPUT_SIZE)
    x, y = images(5, seed=26), torch.tensor([0, 9, 3, 3, 7])
    torch.manual_seed(1)
    x_hat, mu, logvar = model(x, y)
    assert x_hat.shape == (5, 1, 28, 28) and mu.shape == logvar.shape == (5, LATENT)
    assert ((x_hat >= 0) & (x_hat <= 1)).all()
    torch.manual_seed(1)
    again = model(x.flatten(1), F.one_hot(y, 10).float())
    for a, b in zip((x_hat, mu, logvar), again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@CVAE_MODEL
def test_cvae_encoder_and_decoder_read_the_class():
    torch.manual_seed(0)
    model = CVAE(INPUT_SIZE)
    x, z = images(2, seed=27), torch.randn(2, LATENT)
    mu_a, _ = model.encode(x, torch.tensor([1, 1]))
    mu_b, _ = model.encode(x, torch.tensor([2, 2]))
    assert not torch.allclose(mu_a, mu_b)
    a, b = model.decode(z, torch.tensor([4, 4])), model.decode(z, torch.tensor([5, 5]))
    assert not torch.allclose(a, b)
    # the class enters as the one-hot column: the first decoder layer's weight column of class 4
    first = linear_modules(model.decoder)[0]
    state = first.state_dict()
    state["weight"][:, LATENT + 4] = state["weight"][:, LATENT + 5]
    first.load_state_dict(state)
    torch.testing.assert_close(model.decode(z, torch.tensor([4, 4])), model.decode(z, torch.tensor([5, 5])))


# --------------------------------------------------------------------------- training, sampling


def toy_images(n=256, seed=0):
    """Bright rectangles on black and their quadrant (tests/vae_parts.py)."""
    return parts.toy_images(n, seed)


def toy_loader(batch_size=32):
    """The toy images in shuffled batches: a DataLoader built where the model is trained."""
    return parts.toy_loader(batch_size)


@TRAINING
@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_a_short_training_run_lowers_the_negative_elbo(kind):
    torch.manual_seed(0)
    model = VAE(INPUT_SIZE) if kind == "vae" else CVAE(INPUT_SIZE, num_classes=4)
    x, y = toy_images(128, seed=5)  # held out
    y = y if kind == "cvae" else None
    before = evaluate_vae(model, x, y, generator=seeded_generator(2))
    history = train_vae(model, toy_loader(), num_epochs=3, lr=1e-3)
    after = evaluate_vae(model, x, y, generator=seeded_generator(2))
    assert history["epoch"] == 3 and history["global_step"] == 24 and history["stopped"] == "completed"
    assert set(history["metrics"]) == {"reconstruction", "kl"}
    assert before["loss"] > 500 and after["loss"] < 0.5 * before["loss"]
    assert history["epoch_loss"][-1] < 0.5 * history["epoch_loss"][0]


@TRAINING
def test_a_larger_kl_weight_trains_a_code_with_less_information():
    kls = {}
    for beta in (1.0, 8.0):
        torch.manual_seed(0)
        model = CVAE(INPUT_SIZE, num_classes=4)
        history = train_vae(model, toy_loader(), num_epochs=3, lr=1e-3, beta=beta)
        x, y = toy_images(128, seed=6)
        kls[beta] = evaluate_vae(model, x, y, generator=seeded_generator(5))["kl"]
        # the logged terms are unweighted; the logged loss is the objective reconstruction + beta * KL
        last = -1
        objective = history["metrics"]["reconstruction"][last] + beta * history["metrics"]["kl"][last]
        assert abs(history["loss"][last] - objective) < 1e-3 * objective
    assert kls[8.0] < 0.5 * kls[1.0]


@TRAINING
def test_evaluate_vae_is_loss_function_on_the_same_draws():
    torch.manual_seed(0)
    model = VAE(INPUT_SIZE)
    x = images(10, seed=28)
    result = evaluate_vae(model, x, batch_size=100, generator=seeded_generator(3))
    with torch.no_grad():
        mu, logvar = model.encode(x)
        x_hat = model.decode(reparametrize(mu, logvar, generator=seeded_generator(3)))
        assert abs(result["loss"] - float(loss_function(x_hat, x, mu, logvar))) < 1e-3
    assert abs(result["loss"] - result["reconstruction"] - result["kl"]) < 1e-6


@TRAINING
def test_interrupted_training_resumes_to_the_same_weights():
    with worker_folder() as folder:
        torch.manual_seed(0)
        model = CVAE(INPUT_SIZE, num_classes=4)
        reference = train_vae(model, toy_loader(), num_epochs=2, checkpoint=f"{folder}/straight.pt")
        expected = [p.detach().clone() for p in model.parameters()]

        torch.manual_seed(0)
        model = CVAE(INPUT_SIZE, num_classes=4)
        first = train_vae(model, toy_loader(), num_epochs=1, checkpoint=f"{folder}/resumed.pt")
        assert first["epoch"] == 1
        torch.manual_seed(123)  # a new session: other weights, another RNG state
        model = CVAE(INPUT_SIZE, num_classes=4)
        resumed = train_vae(model, toy_loader(), num_epochs=2, checkpoint=f"{folder}/resumed.pt")
        assert resumed["epoch"] == 2 and resumed["loss"] == reference["loss"]
        assert all(torch.equal(p, q) for p, q in zip(model.parameters(), expected, strict=True))
        # a finished run only loads its weights
        torch.manual_seed(7)
        model = CVAE(INPUT_SIZE, num_classes=4)
        done = train_vae(model, toy_loader(), num_epochs=2, checkpoint=f"{folder}/resumed.pt")
        assert done["global_step"] == resumed["global_step"]
        assert all(torch.equal(p, q) for p, q in zip(model.parameters(), expected, strict=True))


@TRAINING
def test_sample_reconstruct_and_interpolate():
    torch.manual_seed(0)
    vae, cvae = VAE(INPUT_SIZE), CVAE(INPUT_SIZE)
    out = sample(vae, 6, generator=seeded_generator(4))
    assert out.shape == (6, 1, 28, 28) and ((out >= 0) & (out <= 1)).all()
    assert torch.equal(out, sample(vae, 6, generator=seeded_generator(4)))
    torch.testing.assert_close(out, vae.decode(torch.randn(6, LATENT, generator=gen(4))), rtol=0, atol=0)
    labels = torch.arange(10)
    torch.testing.assert_close(sample(cvae, 10, labels, generator=seeded_generator(5)),
                               cvae.decode(torch.randn(10, LATENT, generator=gen(5)), labels), rtol=0, atol=0)
    x = images(3, seed=29)
    torch.testing.assert_close(reconstruct(vae, x), vae.decode(vae.encode(x)[0]), rtol=0, atol=0)
    z0, z1 = torch.randn(LATENT, generator=gen(6)), torch.randn(LATENT, generator=gen(7))
    line = interpolate(vae, z0, z1, num_steps=5)
    assert line.shape == (5, 1, 28, 28)
    torch.testing.assert_close(line[0], vae.decode(z0[None])[0])
    torch.testing.assert_close(line[2], vae.decode((z0 + z1)[None] / 2)[0])
    torch.testing.assert_close(line[-1], vae.decode(z1[None])[0])
    assert interpolate(cvae, z0, z1, num_steps=3, labels=2).shape == (3, 1, 28, 28)


# --------------------------------------------------------------------------- errors (given code)


@GIVEN
def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="input_size"):
        VAE(784, image_shape=(1, 27, 27))
    with pytest.raises(TypeError, match="latent_size"):
        VAE(784, latent_size=2.5)
    with pytest.raises(ValueError, match="labels"):
        one_hot(torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match=r"\(N,\)"):
        one_hot(torch.zeros(2, 2, dtype=torch.int64), 3)
    with pytest.raises(TypeError, match="integer"):
        one_hot(torch.tensor([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match="mu and logvar"):
        reparametrize(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="mu and logvar"):
        kl_divergence(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reconstruction_loss(torch.full((2, 4), 1.5), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reconstruction_loss(torch.full((2, 4), 0.5), torch.full((2, 4), -1.0))
    with pytest.raises(ValueError, match="same images"):
        reconstruction_loss(torch.full((2, 4), 0.5), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="2 rows"):
        loss_function(torch.full((3, 4), 0.5), torch.zeros(3, 4), torch.zeros(2, 5), torch.zeros(2, 5))
    with pytest.raises(TypeError, match="VAE"):
        train_vae(load("torch.nn").Linear(2, 2), [], num_epochs=1)
    for beta, error in ((-1.0, ValueError), (float("nan"), ValueError), (float("inf"), ValueError), ("2", TypeError)):
        with pytest.raises(error, match="beta"):
            loss_function(torch.full((2, 4), 0.5), torch.zeros(2, 4), torch.zeros(2, 5), torch.zeros(2, 5), beta=beta)
        with pytest.raises(error, match="beta"):
            train_vae(VAE(INPUT_SIZE), [], num_epochs=1, beta=beta)


@GIVEN
def test_models_refuse_bad_inputs_clearly():
    torch.manual_seed(0)
    vae, cvae = VAE(INPUT_SIZE), CVAE(INPUT_SIZE)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\) or \(N, 784\)"):
        vae(torch.rand(2, 3, 28, 28))
    with pytest.raises(TypeError, match="floating"):
        vae(torch.zeros(2, 784, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, 15\)"):
        vae.decode(torch.zeros(2, 16))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        cvae(torch.rand(2, 784), torch.tensor([3, 10]))
    with pytest.raises(ValueError, match=r"\(2, 10\)"):
        cvae(torch.rand(2, 784), torch.zeros(2, 9))
    with pytest.raises(ValueError, match="needs labels"):
        sample(cvae, 3)
    with pytest.raises(ValueError, match="VAE takes none"):
        sample(vae, 3, labels=torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\(15,\)"):
        interpolate(vae, torch.zeros(14), torch.zeros(15))
