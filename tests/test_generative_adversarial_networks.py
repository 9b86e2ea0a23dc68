"""A6 generative adversarial networks: noise, networks, losses, optimizer, DC-GAN, the training loop.

The losses are checked against ``F.binary_cross_entropy_with_logits`` and values worked
out by hand, at huge logits (where a naive formula gives inf or NaN), and their gradients
against autograd through the PyTorch reference; the library losses themselves are
banned while the module's losses run.  The networks are checked by parameter count
(the course's figures: its test builds the generators with ``noise_dim=4``), parameter
shapes, activations, output shapes and ranges.  ``run_a_gan`` (given code) is checked
with tiny networks: sample grids, checkpoints that load with ``weights_only=True``,
and a run resumed after a time-limit stop or a crash that equals an uninterrupted run
bit for bit.
"""

import math
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from under_test import load, rules_of
from worker_tools import is_instance, layers_of, seeded_generator, type_name, worker_folder

from helpers.gradcheck import autograd_gradients

MODULE = "A6_generative.generative_adversarial_networks"
gan = load(MODULE)
bce_with_logits = gan.bce_with_logits
build_dc_classifier = gan.build_dc_classifier
build_dc_generator = gan.build_dc_generator
count_params = gan.count_params
discriminator = gan.discriminator
discriminator_loss = gan.discriminator_loss
generate_images = gan.generate_images
generator = gan.generator
generator_loss = gan.generator_loss
get_optimizer = gan.get_optimizer
ls_discriminator_loss = gan.ls_discriminator_loss
ls_generator_loss = gan.ls_generator_loss
run_a_gan = gan.run_a_gan
sample_noise = gan.sample_noise
to_images = gan.to_images
# Models, optimizers, loaders and reference losses for run_a_gan, built where it runs (tests/gan_parts.py).
parts = load("gan_parts")
tnn = load("torch.nn")

EXACT = {"rtol": 1e-12, "atol": 1e-12}  # float64 results that differ only by rounding

# Score groups of `python -m course.grade` (README, "For teachers"): points are each group's total.
NOISE = pytest.mark.grade("sample_noise", points=2)
NETS = pytest.mark.grade("discriminator and generator", points=3)
BCE = pytest.mark.grade("bce_with_logits", points=3)
GAN_LOSS = pytest.mark.grade("discriminator_loss and generator_loss", points=4)
LS_LOSS = pytest.mark.grade("least-squares losses", points=2)
OPTIM = pytest.mark.grade("get_optimizer", points=1)
DC = pytest.mark.grade("DC-GAN networks", points=3)
TRAINING = pytest.mark.grade("training a GAN with your parts", points=2)
GIVEN = pytest.mark.grade("given code: run_a_gan, checkpoints, tools", points=0)
# The rule checks of the groups above (a broken rule scores its group 0).
NOISE_RULES = pytest.mark.grade("sample_noise", points=2, rule=True)
BCE_RULES = pytest.mark.grade("bce_with_logits", points=3, rule=True)
GAN_LOSS_RULES = pytest.mark.grade("discriminator_loss and generator_loss", points=4, rule=True)
LS_LOSS_RULES = pytest.mark.grade("least-squares losses", points=2, rule=True)

# The docstrings' rules: the binary cross-entropy written by hand (none of the library's versions, in
# bce_with_logits and in the losses that must use it), and no Python loop where a docstring says so.
LIBRARY_BCE = ("binary_cross_entropy_with_logits", "binary_cross_entropy", "BCEWithLogitsLoss", "BCELoss",
               "softplus", "logsigmoid", "logaddexp")


def randn(*shape, seed=0, scale=1.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def param_shapes(model):
    return [tuple(p.shape) for p in model.parameters()]


def activations(model):
    """(name, LeakyReLU slope or None) of every activation module, in order."""
    return [(type_name(m), m.negative_slope if type_name(m) == "LeakyReLU" else None)
            for m in layers_of(model, "ReLU", "LeakyReLU", "Tanh", "Sigmoid")]


def worker_autograd(fn, *inputs, dout=None):
    """``autograd_gradients(fn, *inputs)`` run where ``fn`` lives: its autograd graph cannot cross to here."""
    return load("helpers.gradcheck").autograd_gradients(fn, *inputs, dout=dout)


@contextmanager
def library_bce_banned():
    """Make the library's ready-made binary cross-entropies fail: the losses must be written by hand.

    It bans them in this process: in a plain ``pytest`` run that is where the module runs; while grading
    the module runs in the worker and the rule checks (``LIBRARY_BCE``, on the source) do the banning.
    """
    def banned(*args, **kwargs):
        raise AssertionError("write the binary cross-entropy by hand, without the library's version")
    with pytest.MonkeyPatch.context() as patch:
        for module, name in ((F, "binary_cross_entropy_with_logits"), (F, "binary_cross_entropy"),
                             (F, "softplus"), (F, "logsigmoid"), (torch, "binary_cross_entropy_with_logits"),
                             (torch, "logaddexp"), (nn.BCEWithLogitsLoss, "forward"), (nn.BCELoss, "forward")):
            patch.setattr(module, name, banned)
        yield


def by_hand(fn):
    """``fn`` run with the library's binary cross-entropies banned."""
    def wrapped(*args, **kwargs):
        with library_bce_banned():
            return fn(*args, **kwargs)
    return wrapped


hand_bce, hand_d_loss, hand_g_loss = by_hand(bce_with_logits), by_hand(discriminator_loss), by_hand(generator_loss)


def ref_bce(logits, targets):
    """The PyTorch reference, element by element."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


REF_BCE = F.binary_cross_entropy_with_logits  # mean over the batch


@pytest.mark.parametrize("name, loops, forbid", [
    pytest.param("sample_noise", 0, (), marks=NOISE_RULES),
    pytest.param("bce_with_logits", 0, LIBRARY_BCE, marks=BCE_RULES),
    pytest.param("discriminator_loss", None, LIBRARY_BCE, marks=GAN_LOSS_RULES),
    pytest.param("generator_loss", None, LIBRARY_BCE, marks=GAN_LOSS_RULES),
    pytest.param("ls_discriminator_loss", 0, (), marks=LS_LOSS_RULES),
    pytest.param("ls_generator_loss", 0, (), marks=LS_LOSS_RULES),
], ids=lambda v: v if isinstance(v, str) else "")
def test_rules(name, loops, forbid):
    """The docstrings' rules; discriminator_loss and generator_loss are checked with the bce_with_logits they call."""
    rules_of(MODULE, name, loops=loops, forbid=forbid)

# --------------------------------------------------------------------------- sample_noise


@NOISE
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sample_noise_shape_dtype_device(dtype):
    z = sample_noise(7, 3, dtype=dtype)
    assert z.shape == (7, 3) and z.dtype == dtype and z.device.type == "cpu"


@NOISE
def test_sample_noise_is_uniform_in_minus_one_one():
    torch.manual_seed(0)
    z = sample_noise(20000, 5, dtype=torch.float64)
    assert z.min() >= -1 and z.max() <= 1
    assert z.min() < -0.99 and z.max() > 0.99, "the whole interval [-1, 1] is used"
    # U(-1, 1): mean 0, variance 1/3, a quarter of the mass in [0.5, 1]
    assert abs(z.mean().item()) < 0.01
    assert abs(z.var().item() - 1 / 3) < 0.01
    assert abs((z > 0.5).double().mean().item() - 0.25) < 0.01
    # the columns are independent
    assert abs(torch.corrcoef(z.T)[0, 1].item()) < 0.03


@NOISE
def test_sample_noise_follows_the_global_seed_or_a_generator():
    torch.manual_seed(3)
    a = sample_noise(4, 6)
    torch.manual_seed(3)
    assert torch.equal(a, sample_noise(4, 6))
    b = sample_noise(4, 6, generator=seeded_generator(1))
    assert torch.equal(b, sample_noise(4, 6, generator=seeded_generator(1)))
    assert not torch.equal(a, b)


@GIVEN
@pytest.mark.parametrize("args, kwargs, error", [
    ((0, 4), {}, ValueError),
    ((4, 0), {}, ValueError),
    ((4, -3), {}, ValueError),
    ((4.0, 4), {}, TypeError),
    ((4, True), {}, TypeError),
    ((4, 4), {"dtype": torch.int64}, TypeError),
])
def test_sample_noise_rejects_bad_arguments(args, kwargs, error):
    with pytest.raises(error, match="batch_size|noise_dim|dtype"):
        sample_noise(*args, **kwargs)


# --------------------------------------------------------------------------- fully-connected networks


@NETS
def test_discriminator_parameter_count_and_layers():
    D = discriminator()
    assert count_params(D) == 267_009  # the course's figure
    assert param_shapes(D) == [(256, 784), (256,), (256, 256), (256,), (1, 256), (1,)]
    assert activations(D) == [("LeakyReLU", 0.01), ("LeakyReLU", 0.01)]


@NETS
def test_generator_parameter_count_and_layers():
    assert count_params(generator(4)) == 1_858_320  # the course's test builds it with noise_dim=4
    G = generator()  # noise_dim = 96
    assert count_params(G) == (96 * 1024 + 1024) + (1024 * 1024 + 1024) + (1024 * 784 + 784) == 1_952_528
    assert param_shapes(G) == [(1024, 96), (1024,), (1024, 1024), (1024,), (784, 1024), (784,)]
    assert activations(G) == [("ReLU", None), ("ReLU", None), ("Tanh", None)]


@NETS
def test_discriminator_and_generator_shapes_and_ranges():
    torch.manual_seed(0)
    D, G = discriminator(), generator(10)
    x = torch.rand(5, 784) * 2 - 1
    assert D(x).shape == (5, 1)
    torch.testing.assert_close(D(x.reshape(5, 1, 28, 28)), D(x))  # images or flat vectors alike
    images = G(sample_noise(6, 10))
    assert images.shape == (6, 784)
    assert images.abs().max() <= 1, "a tanh output lies in [-1, 1]"
    assert images.std() > 0.01, "different noise gives different images"
    # the tanh saturates for a huge input but stays in range
    assert G(1e4 * torch.ones(2, 10)).abs().max() <= 1


@GIVEN
@pytest.mark.parametrize("build", [generator, build_dc_generator])
@pytest.mark.parametrize("noise_dim, error", [(0, ValueError), (-2, ValueError), (2.5, TypeError)])
def test_generators_reject_a_bad_noise_dim(build, noise_dim, error):
    with pytest.raises(error, match="noise_dim"):
        build(noise_dim)


# --------------------------------------------------------------------------- bce_with_logits


@BCE
def test_bce_with_logits_matches_pytorch():
    logits = randn(6, 3, seed=1, scale=4)
    targets = torch.rand(6, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(hand_bce(logits, targets), ref_bce(logits, targets), **EXACT)
    for y in (0.0, 1.0, 0, 1):
        torch.testing.assert_close(hand_bce(logits, y), ref_bce(logits, torch.full_like(logits, y)),
                                   **EXACT)


@BCE
def test_bce_with_logits_hand_values():
    x = torch.tensor([0.0, 2.0, -3.0], dtype=torch.float64)
    # -log sigmoid(x) = log(1 + e^-x);  -log(1 - sigmoid(x)) = log(1 + e^x)
    expected_one = torch.tensor([math.log(2), math.log(1 + math.exp(-2)), math.log(1 + math.exp(3))],
                                dtype=torch.float64)
    expected_zero = torch.tensor([math.log(2), math.log(1 + math.exp(2)), math.log(1 + math.exp(-3))],
                                 dtype=torch.float64)
    torch.testing.assert_close(hand_bce(x, 1.0), expected_one, **EXACT)
    torch.testing.assert_close(hand_bce(x, 0.0), expected_zero, **EXACT)
    half = torch.full_like(x, 0.5)
    torch.testing.assert_close(hand_bce(x, half), (expected_one + expected_zero) / 2, **EXACT)


@BCE
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bce_with_logits_is_stable_for_huge_logits(dtype):
    x = torch.tensor([1e4, -1e4, 1e3, -1e3, 100.0, -100.0], dtype=dtype)
    one, zero = hand_bce(x, 1.0), hand_bce(x, 0.0)
    assert torch.isfinite(one).all() and torch.isfinite(zero).all()
    # log(1 + e^-x) is 0 for a huge positive x and -x for a huge negative one (to rounding)
    torch.testing.assert_close(one, torch.tensor([0, 1e4, 0, 1e3, 0, 100], dtype=dtype), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(zero, torch.tensor([1e4, 0, 1e3, 0, 100, 0], dtype=dtype), rtol=1e-6, atol=1e-6)


@BCE
def test_bce_with_logits_gradient_matches_autograd_of_pytorch():
    # includes 0 (where max(x, 0) and |x| have a kink) and huge logits
    logits = torch.cat([randn(8, seed=3, scale=5),
                        torch.tensor([0.0, 1e4, -1e4, 40.0, -40.0], dtype=torch.float64)])
    targets = torch.rand(logits.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    dout = randn(*logits.shape, seed=5)
    ours = worker_autograd(load("functools").partial(bce_with_logits, targets=targets), logits, dout=dout)[0]
    ref = autograd_gradients(lambda x: ref_bce(x, targets), logits, dout=dout)[0]
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, ref, **EXACT)
    # d/dx = sigmoid(x) - y: at x = 0 that is 1/2 - y
    torch.testing.assert_close(ours[8], dout[8] * (0.5 - targets[8]), **EXACT)


@GIVEN
def test_bce_with_logits_rejects_bad_input():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="shape of logits"):
        hand_bce(x, torch.zeros(4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        hand_bce(x, 2.0)
    with pytest.raises(TypeError, match="floating-point"):
        hand_bce(torch.zeros(3, dtype=torch.int64), 1.0)


# --------------------------------------------------------------------------- GAN losses


@GAN_LOSS
@pytest.mark.parametrize("shape", [(7,), (7, 1)])
def test_gan_losses_match_pytorch(shape):
    real, fake = randn(*shape, seed=6, scale=3), randn(*shape, seed=7, scale=3)
    expected_d = REF_BCE(real, torch.ones_like(real)) + REF_BCE(fake, torch.zeros_like(fake))
    expected_g = REF_BCE(fake, torch.ones_like(fake))
    d_loss, g_loss = hand_d_loss(real, fake), hand_g_loss(fake)
    assert d_loss.shape == () and g_loss.shape == ()
    torch.testing.assert_close(d_loss, expected_d, **EXACT)
    torch.testing.assert_close(g_loss, expected_g, **EXACT)


@GAN_LOSS
def test_gan_losses_hand_values():
    zero = torch.zeros(4, 1, dtype=torch.float64)
    # D is undecided (sigmoid = 1/2) everywhere: log 2 for each half
    torch.testing.assert_close(hand_d_loss(zero, zero), torch.tensor(2 * math.log(2), dtype=torch.float64))
    torch.testing.assert_close(hand_g_loss(zero), torch.tensor(math.log(2), dtype=torch.float64))
    real = torch.tensor([[1.0], [3.0]], dtype=torch.float64)
    fake = torch.tensor([[-2.0], [0.5]], dtype=torch.float64)
    d_expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-3))) / 2 \
        + (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(0.5))) / 2
    g_expected = (math.log(1 + math.exp(2)) + math.log(1 + math.exp(-0.5))) / 2
    assert hand_d_loss(real, fake).item() == pytest.approx(d_expected, rel=1e-12)
    assert hand_g_loss(fake).item() == pytest.approx(g_expected, rel=1e-12)


@GAN_LOSS
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gan_losses_are_stable_for_huge_logits(dtype):
    real = torch.tensor([1e4, -1e4], dtype=dtype)
    fake = torch.tensor([-1e4, 1e4], dtype=dtype)
    # a perfect guess costs 0, a confident mistake costs |logit|: mean over the batch
    assert hand_d_loss(real, fake).item() == pytest.approx(1e4, rel=1e-6)
    assert hand_g_loss(fake).item() == pytest.approx(5e3, rel=1e-6)
    assert hand_d_loss(real[:1], fake[:1]).item() == pytest.approx(0, abs=1e-6)
    assert hand_g_loss(torch.tensor([1e4], dtype=dtype)).item() == pytest.approx(0, abs=1e-6)


@GAN_LOSS
def test_gan_loss_gradients_match_autograd_of_pytorch():
    real = torch.cat([randn(5, 1, seed=8, scale=4), torch.tensor([[0.0], [1e4], [-1e4]], dtype=torch.float64)])
    fake = torch.cat([randn(5, 1, seed=9, scale=4), torch.tensor([[1e4], [0.0], [-1e4]], dtype=torch.float64)])

    def ref_d(r, f):
        return REF_BCE(r, torch.ones_like(r)) + REF_BCE(f, torch.zeros_like(f))

    ours = worker_autograd(discriminator_loss, real, fake)
    ref = autograd_gradients(ref_d, real, fake)
    for a, b in zip(ours, ref, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, **EXACT)
    ours_g = worker_autograd(generator_loss, fake)[0]
    ref_g = autograd_gradients(lambda f: REF_BCE(f, torch.ones_like(f)), fake)[0]
    torch.testing.assert_close(ours_g, ref_g, **EXACT)


@GIVEN
@pytest.mark.parametrize("loss", [discriminator_loss, ls_discriminator_loss])
def test_discriminator_losses_reject_bad_shapes(loss):
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.zeros(4, 1), torch.zeros(5, 1))
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, 1\)"):
        loss(torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"N >= 1"):
        loss(torch.zeros(0), torch.zeros(0))
    with pytest.raises(TypeError, match="floating-point"):
        loss(torch.zeros(4, dtype=torch.int64), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        loss([0.0], [0.0])


@GIVEN
@pytest.mark.parametrize("loss", [generator_loss, ls_generator_loss])
def test_generator_losses_reject_bad_shapes(loss):
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, 1\)"):
        loss(torch.zeros(3, 28, 28))
    with pytest.raises(TypeError, match="floating-point"):
        loss(torch.zeros(4, dtype=torch.int32))


# --------------------------------------------------------------------------- least-squares losses


@LS_LOSS
def test_ls_losses_hand_values():
    real = torch.tensor([[1.0], [0.0], [3.0]], dtype=torch.float64)
    fake = torch.tensor([[0.0], [-1.0], [2.0]], dtype=torch.float64)
    # 1/2 mean (D(x) - 1)^2 + 1/2 mean D(G(z))^2  and  1/2 mean (D(G(z)) - 1)^2
    d_expected = 0.5 * (0 + 1 + 4) / 3 + 0.5 * (0 + 1 + 4) / 3
    g_expected = 0.5 * (1 + 4 + 1) / 3
    assert ls_discriminator_loss(real, fake).item() == pytest.approx(d_expected, rel=1e-12)
    assert ls_generator_loss(fake).item() == pytest.approx(g_expected, rel=1e-12)
    perfect_real, perfect_fake = torch.ones(4), torch.zeros(4)
    assert ls_discriminator_loss(perfect_real, perfect_fake).item() == 0
    assert ls_generator_loss(perfect_real).item() == 0


@LS_LOSS
@pytest.mark.parametrize("shape", [(6,), (6, 1)])
def test_ls_losses_values_and_gradients_match_the_formula(shape):
    real, fake = randn(*shape, seed=10), randn(*shape, seed=11)

    def ref_d(r, f):
        return ((r - 1).square().sum() + f.square().sum()) / (2 * r.shape[0])

    def ref_g(f):
        return (f - 1).square().sum() / (2 * f.shape[0])

    assert ls_discriminator_loss(real, fake).shape == () and ls_generator_loss(fake).shape == ()
    torch.testing.assert_close(ls_discriminator_loss(real, fake), ref_d(real, fake), **EXACT)
    torch.testing.assert_close(ls_generator_loss(fake), ref_g(fake), **EXACT)
    for a, b in zip(worker_autograd(ls_discriminator_loss, real, fake), autograd_gradients(ref_d, real, fake),
                    strict=True):
        torch.testing.assert_close(a, b, **EXACT)
    torch.testing.assert_close(worker_autograd(ls_generator_loss, fake)[0], autograd_gradients(ref_g, fake)[0],
                               **EXACT)


# --------------------------------------------------------------------------- optimizer


@OPTIM
def test_get_optimizer_is_the_courses_adam():
    model = tnn.Linear(3, 2)  # built where get_optimizer runs
    opt = get_optimizer(model)
    assert is_instance(opt, load("torch.optim").Adam)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(1e-3) and tuple(group["betas"]) == pytest.approx((0.5, 0.999))
    # the very parameter objects of the model: compared by id() where they live
    ids, groups = load("builtins").id, opt.param_groups
    optimised = [i for k in range(len(groups)) for i in load("builtins").map(ids, groups[k]["params"])]
    assert optimised == list(load("builtins").map(ids, model.parameters()))


@GIVEN
def test_get_optimizer_rejects_a_non_module():
    with pytest.raises(TypeError, match="nn.Module"):
        get_optimizer([torch.zeros(2, requires_grad=True)])


# --------------------------------------------------------------------------- DC-GAN


@DC
def test_dc_classifier_parameter_count_layers_and_shape():
    D = build_dc_classifier()
    assert count_params(D) == 1_102_721  # the course's figure
    assert param_shapes(D) == [(32, 1, 5, 5), (32,), (64, 32, 5, 5), (64,), (1024, 1024), (1024,), (1, 1024), (1,)]
    assert activations(D) == [("LeakyReLU", 0.01)] * 3
    pools = layers_of(D, "MaxPool2d")
    assert len(pools) == 2 and all(m.kernel_size in (2, (2, 2)) and m.stride in (2, (2, 2)) for m in pools)
    torch.manual_seed(0)
    assert D(torch.rand(3, 784) * 2 - 1).shape == (3, 1)


@DC
def test_dc_generator_parameter_count_and_layers():
    assert count_params(build_dc_generator(4)) == 6_580_801  # the course's test builds it with noise_dim=4
    G = build_dc_generator()  # noise_dim = 96
    expected = (96 * 1024 + 1024 + 2 * 1024) + (1024 * 6272 + 6272 + 2 * 6272) \
        + (128 * 64 * 16 + 64 + 2 * 64) + (64 * 1 * 16 + 1)
    assert count_params(G) == expected == 6_675_009
    assert param_shapes(G) == [(1024, 96), (1024,), (1024,), (1024,), (6272, 1024), (6272,), (6272,), (6272,),
                               (128, 64, 4, 4), (64,), (64,), (64,), (64, 1, 4, 4), (1,)]
    assert activations(G) == [("ReLU", None)] * 3 + [("Tanh", None)]
    norms = [(type_name(m), m.num_features) for m in layers_of(G, "BatchNorm1d", "BatchNorm2d", "BatchNorm3d")]
    assert norms == [("BatchNorm1d", 1024), ("BatchNorm1d", 6272), ("BatchNorm2d", 64)]
    ups = layers_of(G, "ConvTranspose2d")
    assert [(m.stride, m.padding) for m in ups] == [((2, 2), (1, 1))] * 2


@DC
def test_dc_generator_output_shape_and_range():
    torch.manual_seed(0)
    G = build_dc_generator(8)
    images = G(sample_noise(3, 8))  # train mode: BatchNorm uses the batch statistics
    assert images.shape == (3, 784) and images.abs().max() <= 1 and images.std() > 0.01
    G.eval()
    assert G(sample_noise(1, 8)).shape == (1, 784)
    D = build_dc_classifier()
    assert D(images).shape == (3, 1)


# --------------------------------------------------------------------------- run_a_gan with the student's parts


def image_loader(num=48, batch_size=16, seed=0):
    """Toy images in (images, labels) batches, a DataLoader built where run_a_gan runs (tests/gan_parts.py)."""
    return parts.image_loader(num, batch_size, seed)


@TRAINING
@pytest.mark.parametrize("variant", ["vanilla", "least squares"])
def test_run_a_gan_trains_the_fully_connected_gan(variant):
    torch.manual_seed(0)
    D, G = discriminator(), generator(8)
    losses = (discriminator_loss, generator_loss) if variant == "vanilla" else (ls_discriminator_loss,
                                                                                ls_generator_loss)
    before = [p.detach().clone() for p in (*D.parameters(), *G.parameters())]
    with library_bce_banned():
        history = run_a_gan(D, G, get_optimizer(D), get_optimizer(G), *losses, image_loader(), num_epochs=2,
                            noise_size=8, show_every=4, num_show=5)
    assert history["global_step"] == 6 and history["epoch"] == 2 and history["stopped"] == "completed"
    assert len(history["d_loss"]) == len(history["g_loss"]) == 6
    assert all(math.isfinite(v) for v in history["d_loss"] + history["g_loss"])
    after = [p.detach() for p in (*D.parameters(), *G.parameters())]
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True)), "every parameter was updated"
    assert [step for step, _ in history["samples"]] == [0, 4, 6]
    assert all(images.shape == (5, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
               for _, images in history["samples"])


@TRAINING
def test_the_discriminator_learns_to_tell_real_from_noise():
    """With a frozen generator, a few D steps on the module's loss separate real squares from its images."""
    torch.manual_seed(0)
    D, G = discriminator(), generator(8)
    frozen = load("torch.optim").SGD(G.parameters(), lr=0.0)
    with library_bce_banned():
        history = run_a_gan(D, G, get_optimizer(D), frozen, discriminator_loss, generator_loss,
                            image_loader(num=64), num_epochs=3, noise_size=8, num_show=0)
    assert history["d_loss"][-1] < 0.5 * history["d_loss"][0]
    real = next(iter(image_loader(num=64)))[0].reshape(-1, 784) * 2 - 1
    with torch.no_grad():
        accuracy = ((D(real) > 0).float().mean() + (D(G(sample_noise(16, 8))) < 0).float().mean()) / 2
    assert accuracy > 0.9


# --------------------------------------------------------------------------- run_a_gan itself (given code)


def tiny_gan(seed=0):
    """``(D, G, D_solver, G_solver)`` of tests/gan_parts.py, built where run_a_gan runs."""
    return tuple(parts.tiny_gan(seed))


def run_tiny(folder=None, name="gan.pt", models=None, loader=None, loss=None, **kwargs):
    """run_a_gan on the tiny GAN with the library's losses (``loss`` replaces the discriminator's)."""
    D, G, D_solver, G_solver = models or tiny_gan()
    options = {"num_epochs": 3, "noise_size": 4, "show_every": 4, "num_show": 3}
    options.update(kwargs)
    history = run_a_gan(D, G, D_solver, G_solver, loss or parts.ref_d_loss, parts.ref_g_loss,
                        loader or image_loader(), **options, checkpoint=None if folder is None else f"{folder}/{name}")
    return history, (D, G, D_solver, G_solver)


def assert_same_run(history_a, models_a, history_b, models_b):
    for key in ("step", "d_loss", "g_loss", "epoch", "global_step", "stopped"):
        assert history_a[key] == history_b[key], key
    assert [s for s, _ in history_a["samples"]] == [s for s, _ in history_b["samples"]]
    for (_, a), (_, b) in zip(history_a["samples"], history_b["samples"], strict=True):
        assert torch.equal(a, b)
    for a, b in zip(models_a[:2], models_b[:2], strict=True):  # weights and BatchNorm buffers
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.equal(x, y), name
    for a, b in zip(models_a[2:], models_b[2:], strict=True):  # optimizer moments
        for x, y in zip(a.state_dict()["state"].values(), b.state_dict()["state"].values(), strict=True):
            assert all(torch.equal(x[k], y[k]) for k in x)


@GIVEN
def test_run_a_gan_history_and_samples():
    history, (D, G, *_) = run_tiny(num_epochs=2, show_every=5)
    assert history["step"] == list(range(1, 7)) and history["stopped"] == "completed"
    # a grid before training, every show_every steps, and after the last step
    assert [step for step, _ in history["samples"]] == [0, 5, 6]
    assert D.training and G.training, "the models' modes are restored"
    first, last = history["samples"][0][1], history["samples"][-1][1]
    assert first.shape == (3, 1, 28, 28) and not torch.equal(first, last)


@GIVEN
def test_run_a_gan_resumed_after_time_limit_stops_equals_an_uninterrupted_run():
    with worker_folder() as folder:
        expected = run_tiny(folder, "whole.pt")
        calls, history = 0, {"stopped": "time_limit"}
        while history["stopped"] == "time_limit":
            # like a fresh kernel every time: new models, optimizers and loader, another global random state
            models = tiny_gan(seed=0 if calls == 0 else 50 + calls)
            history, models = run_tiny(folder, "pieces.pt", models=models, loader=image_loader(), time_limit=0)
            calls += 1
        # time_limit=0 stops after every step, and after every epoch's closing: 9 steps + 3 closings
        assert calls == 12 and expected[0]["global_step"] == 9
        assert_same_run(*expected, history, models)


@GIVEN
def test_run_a_gan_resumed_after_a_crash_equals_an_uninterrupted_run():
    with worker_folder() as folder:
        expected = run_tiny(None)

        # the 6th call is in the middle of the second epoch; the last checkpoint is after step 4
        crashing_loss = parts.crashing_d_loss(6)
        models = tiny_gan()
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_tiny(folder, models=models, loss=crashing_loss, checkpoint_every=2)
        torch.manual_seed(123)  # whatever happened to the random state since
        history, models = run_tiny(folder, models=models, checkpoint_every=2)
        assert_same_run(*expected, history, models)
        checkpoint = load("torch").load(f"{folder}/gan.pt", weights_only=True)
        assert checkpoint["history"]["global_step"] == 9
        assert set(checkpoint["model"]) >= {"D.1.weight", "G.net.0.weight"}


@GIVEN
def test_run_a_gan_finished_run_only_loads():
    with worker_folder() as folder:
        history, _ = run_tiny(folder, num_epochs=1)
        models = tiny_gan(seed=7)
        again, (D, G, *_) = run_tiny(folder, models=models, num_epochs=1)
        assert again["step"] == history["step"] and again["global_step"] == 3
        saved = load("torch").load(f"{folder}/gan.pt", weights_only=True)["model"]
        assert all(torch.equal(saved[f"G.{k}"], v) for k, v in G.state_dict().items())
        more, _ = run_tiny(folder, models=tiny_gan(seed=8), num_epochs=2)  # a longer run goes on from there
        assert more["global_step"] == 6 and more["step"][:3] == history["step"]


@GIVEN
def test_run_a_gan_rejects_bad_arguments():
    with worker_folder() as folder:
        D, G, D_solver, G_solver = tiny_gan()
        loader = image_loader()

        def call(**changes):
            args = {"D": D, "G": G, "D_solver": D_solver, "G_solver": G_solver,
                    "discriminator_loss": parts.ref_d_loss, "generator_loss": parts.ref_g_loss, "loader": loader}
            options = {k: changes.pop(k) for k in list(changes) if k not in args}
            args.update(changes)
            return run_a_gan(*args.values(), noise_size=4, **options)

        with pytest.raises(ValueError, match="D_solver"):
            call(D_solver=G_solver, G_solver=D_solver)
        with pytest.raises(TypeError, match="nn.Module"):
            call(D=lambda x: x)
        with pytest.raises(TypeError, match="function"):
            call(generator_loss=None)
        with pytest.raises(ValueError, match="num_epochs"):
            call(num_epochs=0)
        with pytest.raises(ValueError, match="checkpoint path"):
            call(checkpoint_every=2)
        with pytest.raises(ValueError, match="time_limit"):
            call(time_limit=-1)
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            call(loader=[torch.full((4, 784), 255.0)])
        with pytest.raises(ValueError, match="do not match"):
            call(loader=[torch.rand(4, 100)])
        with pytest.raises(ValueError, match="no batches"):
            call(loader=[])
        load("helpers.train").atomic_save({"model": {}}, load("pathlib").Path(folder, "other.pt"))
        with pytest.raises(ValueError, match="does not fit|not written by run_a_gan"):
            call(checkpoint=f"{folder}/other.pt")


@GIVEN
def test_run_a_gan_stops_on_a_non_finite_loss():
    def nan_loss(real, fake):
        return real.sum() * float("nan")

    with pytest.raises(FloatingPointError, match="discriminator loss is nan"):
        run_tiny(loss=nan_loss)


@GIVEN
def test_count_params_to_images_and_generate_images():
    assert count_params(tnn.Linear(3, 2)) == 8
    assert count_params(tnn.BatchNorm1d(5)) == 10  # running statistics are buffers, not parameters
    x = torch.tensor([[-1.0, 0.0, 1.0] + [0.0] * 781])
    images = to_images(x)
    assert images.shape == (1, 1, 28, 28) and images[0, 0, 0, :3].tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="784"):
        to_images(torch.zeros(2, 28, 28))
    G = parts.TinyGenerator()
    G.train()
    a = generate_images(G, 5, 4, batch_size=2, generator=seeded_generator(0))
    b = generate_images(G, 5, 4, batch_size=5, generator=seeded_generator(0))
    assert a.shape == (5, 1, 28, 28)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg="eval mode: the batch size changes nothing")
    assert G.training
    noise = sample_noise(2, 4)
    torch.testing.assert_close(generate_images(G, 0, 4, noise=noise), to_images(G.eval()(noise)))
    with pytest.raises(ValueError, match="noise"):
        generate_images(G, 2, 4, noise=torch.zeros(2, 5))


@GIVEN
def test_module_names_follow_the_course():
    for name in ("sample_noise", "discriminator", "generator", "discriminator_loss", "generator_loss",
                 "ls_discriminator_loss", "ls_generator_loss", "get_optimizer", "build_dc_classifier",
                 "build_dc_generator", "run_a_gan"):
        assert callable(getattr(gan, name)), name


@GIVEN
def test_given_code_needs_only_eecs_498s_sample_noise_signature(monkeypatch):
    """A sample_noise(batch_size, noise_dim, dtype=torch.float, device="cpu") without our ``generator``
    argument (EECS 498's signature) is enough for run_a_gan and generate_images."""
    def eecs_sample_noise(batch_size, noise_dim, dtype=torch.float, device="cpu"):
        return 2 * torch.rand(batch_size, noise_dim, dtype=dtype, device=device) - 1

    monkeypatch.setattr(gan, "sample_noise", eecs_sample_noise)
    history, (D, G, *_) = run_tiny(num_epochs=1, show_every=2)
    assert history["global_step"] == 3 and [step for step, _ in history["samples"]] == [0, 2, 3]
    images = generate_images(G, 4, 4, generator=seeded_generator(0))
    assert images.shape == (4, 1, 28, 28)
