"""A6 network visualization: saliency, adversarial attacks, class visualization, feature inversion.

Every gradient is checked in float64 against ``torch.autograd.grad`` taken one image at a time
(the student's code takes it for the whole batch at once); the steps against their formulas;
the loops on a tiny CNN: the attack fools it, class visualization raises the class's
probability, feature inversion lowers its error.  Bad inputs give clear errors.

Each tiny model is built twice from one seed (tests/visual_parts.py): here for the expected
values, and where the code under test runs (``remote``) for the calls to it.
"""

import pytest
import torch
import visual_parts as local
from under_test import load, rules_of
from worker_tools import arguments_after, seeded_generator

MODULE = "A6_generative.network_visualization"
nv = load(MODULE)
remote = load("visual_parts")

SALIENCY = pytest.mark.grade("compute_saliency_maps", points=4)
ATTACK = pytest.mark.grade("make_adversarial_attack", points=5)
CLASS_VIS = pytest.mark.grade("class_visualization_step", points=4)
INVERSION = pytest.mark.grade("feature_inversion_step", points=3)
GIVEN = pytest.mark.grade("given code: input checks and loops", points=0)

NUM_CLASSES = local.NUM_CLASSES


def tiny_models(seed=0, score_scale=1.0):
    """``(here, there)``: a small smooth CNN in float64, (N, 2, 6, 6) -> (N, 5) scores, eval mode, frozen."""
    return local.classifier(seed, score_scale=score_scale), remote.classifier(seed, score_scale=score_scale)


def tiny_model():
    """The tiny CNN where the code under test runs."""
    return remote.classifier()


def images(n=4, seed=1, channels=2):
    return torch.rand(n, channels, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def grad_of_score(model, x, cls):
    """d score_cls / d x for ONE image x (C, H, W), by autograd."""
    x = x[None].clone().requires_grad_(True)
    return torch.autograd.grad(model(x)[0, cls], x)[0][0]


# --------------------------------------------------------------------------- saliency


@SALIENCY
def test_saliency_is_the_channel_max_of_the_absolute_input_gradient():
    (model, there), X, y = tiny_models(), images(), torch.tensor([0, 3, 4, 3])
    saliency = nv.compute_saliency_maps(X, y, there)
    expected = torch.stack([grad_of_score(model, X[i], int(y[i])).abs().amax(dim=0) for i in range(len(X))])
    assert saliency.shape == (4, 6, 6)
    torch.testing.assert_close(saliency, expected, rtol=1e-10, atol=1e-12)
    assert not saliency.requires_grad


@SALIENCY
def test_saliency_leaves_the_images_alone_and_takes_any_integer_labels():
    model, X = tiny_model(), images(3)
    before = X.clone()
    labels = torch.tensor([1, 2, 0], dtype=torch.int32)
    a, (X_after, *_) = remote.call_keeping_arguments(nv.compute_saliency_maps, X, labels, model)
    b = nv.compute_saliency_maps(X, torch.tensor([1, 2, 0]), model)
    assert torch.equal(X_after, before) and not X_after.requires_grad
    torch.testing.assert_close(a, b)


@SALIENCY
def test_saliency_of_a_linear_model_is_its_weight_magnitude():
    """For scores W x, d s_y / d x = W_y: the map is max over channels of |W_y|, whatever the image."""
    model = local.linear_classifier(3)
    X, y = images(2), torch.tensor([4, 1])
    saliency = nv.compute_saliency_maps(X, y, remote.linear_classifier(3))
    weights = model[1].weight.detach().view(NUM_CLASSES, 2, 6, 6)
    torch.testing.assert_close(saliency, weights[y].abs().amax(dim=1))


@pytest.mark.grade("compute_saliency_maps", points=4, rule=True)
def test_saliency_rules():
    """Docstring: one forward and one backward pass for the whole batch (no loop over the images)."""
    rules_of(MODULE, "compute_saliency_maps", loops=0)


# --------------------------------------------------------------------------- adversarial attack


@ATTACK
def test_one_attack_step_is_the_normalised_gradient_of_each_target_score():
    (model, there), X = tiny_models(), images()
    predicted = model(X).argmax(dim=1)
    target = (predicted + 1) % NUM_CLASSES  # no image is read as its target yet
    X_adv = nv.make_adversarial_attack(X, target, there, max_iter=1, verbose=False, learning_rate=0.3)
    for i in range(len(X)):
        g = grad_of_score(model, X[i], int(target[i]))
        torch.testing.assert_close(X_adv[i], X[i] + 0.3 * g / g.norm(), rtol=1e-10, atol=1e-12)


@ATTACK
def test_the_attack_fools_the_tiny_model_and_stops_moving_fooled_images():
    (model, there), X = tiny_models(), images(6, seed=2)
    target = (model(X).argmax(dim=1) + 2) % NUM_CLASSES
    before = X.clone()
    X_adv, (X_after, *_) = remote.call_keeping_arguments(nv.make_adversarial_attack, X, target, there, max_iter=200,
                                                         verbose=False, learning_rate=0.05)
    assert torch.equal(X_after, before)
    assert torch.equal(model(X_adv).argmax(dim=1), target)
    again = nv.make_adversarial_attack(X_adv, target, there, max_iter=5, verbose=False, learning_rate=0.05)
    assert torch.equal(again, X_adv), "images already read as their target do not move"


@ATTACK
def test_an_image_already_read_as_its_target_is_returned_unchanged(capsys):
    (model, there), X = tiny_models(), images(3)
    predicted = model(X).argmax(dim=1)
    target = predicted.clone()
    target[0] = (predicted[0] + 1) % NUM_CLASSES
    X_adv = nv.make_adversarial_attack(X, target, there, max_iter=1, verbose=True)
    assert torch.equal(X_adv[1:], X[1:]) and not torch.equal(X_adv[0], X[0])
    assert capsys.readouterr().out.strip(), "verbose=True prints progress"


@ATTACK
def test_an_int_target_attacks_every_image_and_the_single_image_case_is_eecs():
    (model, there), X = tiny_models(), images(1)
    target = int((model(X).argmax(dim=1) + 1) % NUM_CLASSES)
    X_adv = nv.make_adversarial_attack(X, target, there, max_iter=300, verbose=False, learning_rate=0.05)
    assert X_adv.shape == X.shape and int(model(X_adv).argmax()) == target
    assert nv.make_adversarial_attack(X, target, there, max_iter=0, verbose=False).equal(X)


@pytest.mark.grade("make_adversarial_attack", points=5, rule=True)
def test_attack_rules():
    """Docstring: one loop, over the iterations (each step moves every image not yet fooled at once)."""
    rules_of(MODULE, "make_adversarial_attack", loops=1)


# --------------------------------------------------------------------------- class visualization


@CLASS_VIS
def test_class_visualization_step_is_a_gradient_ascent_step_with_the_l2_penalty():
    (model, there), img = tiny_models(), images(2)
    start = img.clone()
    out, (img_after, *_) = remote.call_keeping_arguments(nv.class_visualization_step, img, 3, there, l2_reg=0.01,
                                                         learning_rate=0.7)
    x = start.clone().requires_grad_(True)
    objective = model(x)[:, 3].sum() - 0.01 * x.square().sum()
    expected = start + 0.7 * torch.autograd.grad(objective, x)[0]
    torch.testing.assert_close(img_after, expected, rtol=1e-10, atol=1e-12)  # in place
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


@CLASS_VIS
def test_class_visualization_defaults_are_eecs_and_the_cs231n_alias_agrees():
    model = tiny_model()
    a = arguments_after(nv.class_visualization_step, images(1), 1, model)[0]
    b = arguments_after(nv.class_visualization_step, images(1), 1, model, l2_reg=1e-3, learning_rate=25)[0]
    c = arguments_after(nv.class_visualization_update, images(1), model, 1, 1e-3, 25)[0]
    assert not torch.equal(a, images(1)), "the step changes the image in place"
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


@CLASS_VIS
def test_the_class_visualization_loop_makes_the_tiny_model_read_the_class():
    model = remote.classifier(score_scale=10)  # scores able to dominate from images in [0, 1]
    img, confidences = nv.create_class_visualization(
        0, model, (2, 6, 6), num_iterations=60, l2_reg=1e-3, learning_rate=0.3, max_jitter=0,
        blur_every=0, generator=seeded_generator(0))
    assert img.shape == (1, 2, 6, 6) and len(confidences) == 60
    assert confidences[-1] > 0.99 and confidences[0] < 0.5
    assert float(img.min()) >= 0 and float(img.max()) <= 1
    shown = []
    nv.create_class_visualization(0, model, (2, 6, 6), num_iterations=4, max_jitter=1, blur_every=2, show_every=2,
                                  show=lambda img, t: shown.append(t), generator=seeded_generator(0))
    assert shown == [2, 4]


@pytest.mark.grade("class_visualization_step", points=4, rule=True)
def test_class_visualization_step_rules():
    """One step for the whole batch: no loops."""
    rules_of(MODULE, "class_visualization_step", loops=0)


# --------------------------------------------------------------------------- feature inversion


@INVERSION
def test_feature_inversion_step_follows_the_normalised_gradient_of_the_relative_error():
    img, target_image = images(2, seed=4), images(2, seed=5)
    phi = local.conv_features(local.classifier())
    target = phi(target_image)
    start = img.clone()
    loss, (img_after, *_) = remote.call_keeping_arguments(
        nv.feature_inversion_step, img, target, remote.conv_features(tiny_model()), l2_reg=0.02, learning_rate=0.1)
    x = start.clone().requires_grad_(True)
    expected_loss = (phi(x) - target).square().sum() / target.square().sum() + 0.02 * x.square().sum()
    g = torch.autograd.grad(expected_loss, x)[0]
    assert loss == pytest.approx(float(expected_loss.detach()), rel=1e-12)
    torch.testing.assert_close(img_after, start - 0.1 * g / g.norm(), rtol=1e-10, atol=1e-12)


@INVERSION
def test_inverting_features_lowers_their_error():
    target_image = images(1, seed=6)
    recon, losses = nv.invert_features(target_image, remote.conv_features(tiny_model()), num_iterations=80,
                                       learning_rate=0.3, generator=seeded_generator(0))
    assert recon.shape == target_image.shape
    assert losses[-1] < 0.1 * losses[0]


@pytest.mark.grade("feature_inversion_step", points=3, rule=True)
def test_feature_inversion_step_rules():
    """One step for the whole batch: no loops."""
    rules_of(MODULE, "feature_inversion_step", loops=0)


# --------------------------------------------------------------------------- given code


@GIVEN
@pytest.mark.parametrize("call, error, words", [
    (lambda m, X: nv.compute_saliency_maps(X[0], torch.tensor([0]), m), ValueError, "(N, C, H, W)"),
    (lambda m, X: nv.compute_saliency_maps(X, torch.tensor([0, 5, 1, 1]), m), ValueError, "[0, 5)"),
    (lambda m, X: nv.compute_saliency_maps(X, torch.tensor([0, 1]), m), ValueError, "shape (4,)"),
    (lambda m, X: nv.compute_saliency_maps(X, [0, 1, 2, 3], m), TypeError, "tensor"),
    (lambda m, X: nv.compute_saliency_maps(X, torch.tensor([0, 1, 2, 3]), "net"), TypeError, "nn.Module"),
    (lambda m, X: nv.make_adversarial_attack(X, 7, m, verbose=False), ValueError, "[0, 5)"),
    (lambda m, X: nv.make_adversarial_attack(X, 1.0, m, verbose=False), TypeError, "int"),
    (lambda m, X: nv.make_adversarial_attack(X, 1, m, learning_rate=0, verbose=False), ValueError, "learning_rate"),
    (lambda m, X: nv.make_adversarial_attack(X * float("nan"), 1, m), ValueError, "NaN"),
    (lambda m, X: nv.class_visualization_step(X, 1, m, lr=3), TypeError, "learning_rate"),
    (lambda m, X: nv.class_visualization_step(X, 9, m), ValueError, "[0, 5)"),
    (lambda m, X: nv.class_visualization_step(X, 1, m, l2_reg=-1), ValueError, "l2_reg"),
    (lambda m, X: nv.feature_inversion_step(X, torch.zeros(4, 3), lambda x: x, 0, 0.1), ValueError, "zeros"),
    (lambda m, X: nv.feature_inversion_step(X, torch.ones(4, 3), "phi", 0, 0.1), TypeError, "function"),
    (lambda m, X: nv.create_class_visualization(1, m, (6, 6)), ValueError, "(C, H, W)"),
])
def test_bad_inputs_get_clear_errors(call, error, words):
    with pytest.raises(error) as info:
        call(tiny_model(), images())
    assert words in str(info.value), str(info.value)


@GIVEN
def test_a_model_that_does_not_give_class_scores_is_named():
    with pytest.raises(ValueError, match="class scores"):
        nv.compute_saliency_maps(images(), torch.tensor([0, 1, 2, 3]), load("torch.nn").Identity())


@GIVEN
def test_jitter_is_undone_by_the_opposite_jitter_and_blur_keeps_a_flat_image():
    X = images(2)
    moved = nv.jitter(X, 2, -1)
    assert torch.equal(moved[..., 0, 2], X[..., 1, 0]) and torch.equal(nv.jitter(moved, -2, 1), X)
    flat = torch.full((1, 3, 9, 9), 0.25)
    torch.testing.assert_close(nv.blur_image(flat, 1.0), flat)
    noisy = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert float(nv.blur_image(noisy, 1.0).std()) < float(noisy.std())


@GIVEN
def test_attack_statistics_measures_success_and_perturbations():
    (model, there), X = tiny_models(), images(2)
    X_adv = X.clone()
    X_adv[0, 0, 0, 0] += 0.5
    target = model(X_adv).argmax(dim=1)
    stats = nv.attack_statistics(there, X, X_adv, target)
    assert stats["success"] == 1.0
    torch.testing.assert_close(stats["linf"], torch.tensor([0.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(stats["l2"], torch.tensor([0.5, 0.0], dtype=torch.float64))
