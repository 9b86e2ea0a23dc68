"""Tests of helpers.solver.Solver: learning, histories, lr decay, checkpoints, exact resume, errors.

The models here are written in this file (softmax regression with hand-written
gradients), so the Solver is tested independently of any assignment's code.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from helpers.solver import Solver, sgd
from helpers.train import DamagedFileError, atomic_save, checkpoint_path

DIM, CLASSES = 6, 3


def blobs(n, seed):
    """Three Gaussian blobs in 6 dimensions, shaped (n, 2, 3) like small images; a linear model separates them."""
    gen = torch.Generator().manual_seed(seed)
    centres = 2.5 * torch.randn(CLASSES, DIM, generator=torch.Generator().manual_seed(100), dtype=torch.float64)
    y = torch.randint(0, CLASSES, (n,), generator=gen)
    X = centres[y] + torch.randn(n, DIM, generator=gen, dtype=torch.float64)
    return X.reshape(n, 2, 3), y


def make_data(n_train=130, n_val=40):
    X_train, y_train = blobs(n_train, 1)
    X_val, y_val = blobs(n_val, 2)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val, "X_test": X_val[:3]}


class TinyNet:
    """Softmax regression ``scores = x W + b``; in training, optional noise from torch's GLOBAL generator
    (like unseeded dropout), so exact resumption needs the global RNG state restored.

    ``nan_at`` / ``crash_at``: training call (1-based) at which the loss is NaN / an exception is raised.
    """

    def __init__(self, noise=0.0, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.params = {"W": 0.01 * torch.randn(DIM, CLASSES, generator=gen, dtype=torch.float64),
                       "b": torch.zeros(CLASSES, dtype=torch.float64)}
        self.noise = noise
        self.calls = 0
        self.nan_at = None
        self.crash_at = None

    def loss(self, X, y=None):
        X = X.reshape(X.shape[0], -1)
        if y is not None and self.noise:
            X = X * (1 + self.noise * torch.randn(X.shape, dtype=X.dtype))
        scores = X @ self.params["W"] + self.params["b"]
        if y is None:
            return scores
        self.calls += 1
        if self.calls == self.crash_at:
            raise RuntimeError("simulated crash")
        probs = scores.softmax(dim=1)
        loss = -probs[torch.arange(len(y)), y].log().mean()
        dscores = probs.clone()
        dscores[torch.arange(len(y)), y] -= 1
        dscores /= len(y)
        if self.calls == self.nan_at:
            loss = torch.tensor(float("nan"))
        return loss, {"W": X.T @ dscores, "b": dscores.sum(0)}


def momentum(w, dw, config=None):
    """SGD with momentum keeping a tensor and a counter in its config (like the A3 rules)."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 0.1)
    velocity = 0.9 * config.get("velocity", torch.zeros_like(w)) - config["learning_rate"] * dw
    config["velocity"] = velocity
    config["steps"] = config.get("steps", 0) + 1
    return w + velocity, config


def make_solver(model=None, data=None, **kwargs):
    settings = dict(update_rule=momentum, optim_config={"learning_rate": 0.05}, lr_decay=0.9, batch_size=20,
                    num_epochs=3, verbose=False)
    settings.update(kwargs)
    return Solver(TinyNet() if model is None else model, make_data() if data is None else data, **settings)


@pytest.fixture
def name(request):
    """A checkpoint name of this test's own; its file is removed afterwards."""
    stem = "".join(c if c.isalnum() else "_" for c in request.node.name)
    yield stem
    checkpoint_path(stem).unlink(missing_ok=True)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- learning and histories


def test_training_improves_accuracy_and_fills_histories():
    torch.manual_seed(0)
    solver = make_solver(num_epochs=4, batch_size=20)
    solver.train()
    assert solver.iterations_per_epoch == 130 // 20 == 6  # the last partial batch is skipped
    assert len(solver.loss_history) == 4 * 6 and solver.iteration == 24 and solver.epoch == 4
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 5
    assert solver.val_acc_history[0] < 0.7 and solver.val_acc_history[-1] > 0.9
    assert sum(solver.loss_history[-6:]) < 0.5 * sum(solver.loss_history[:6])
    assert solver.stopped == "completed"
    assert all(type(v) is float for v in solver.loss_history + solver.val_acc_history)


def test_lr_decay_is_applied_after_every_epoch():
    solver = make_solver(num_epochs=3, lr_decay=0.5, optim_config={"learning_rate": 0.08})
    solver.train()
    for config in solver.optim_configs.values():
        assert config["learning_rate"] == pytest.approx(0.08 * 0.5 ** 3)
        assert config["steps"] == 3 * solver.iterations_per_epoch
    assert solver.optim_config == {"learning_rate": 0.08}  # the template is not changed


def test_every_parameter_gets_its_own_config():
    solver = make_solver(num_epochs=1)
    solver.train()
    velocities = [solver.optim_configs[k]["velocity"] for k in ("W", "b")]
    assert velocities[0].shape == (DIM, CLASSES) and velocities[1].shape == (CLASSES,)


def test_default_update_rule_is_sgd():
    solver = Solver(TinyNet(), make_data(), verbose=False, num_epochs=1)
    assert solver.update_rule is sgd
    w, dw = torch.ones(3), torch.full((3,), 2.0)
    next_w, config = sgd(w, dw, {"learning_rate": 0.25})
    assert torch.equal(next_w, torch.full((3,), 0.5)) and config == {"learning_rate": 0.25}


def ascent_after_one_epoch(w, dw, config):
    """Gradient descent for the first epoch (6 steps), then gradient ASCENT: accuracy falls."""
    config["steps"] = config.get("steps", 0) + 1
    return (w - 0.1 * dw if config["steps"] <= 6 else w + 1.0 * dw), config


def test_best_params_are_returned_unless_asked_not_to():
    torch.manual_seed(0)
    solver = make_solver(num_epochs=3, update_rule=ascent_after_one_epoch)
    solver.train()
    assert solver.val_acc_history[-1] < solver.val_acc_history[1] == solver.best_val_acc
    assert same(solver.model.params, solver.best_params)
    assert solver.check_accuracy(solver.X_val, solver.y_val) == solver.best_val_acc
    torch.manual_seed(0)
    last = make_solver(num_epochs=3)
    last.train(return_best_params=False)
    torch.manual_seed(0)
    again = make_solver(num_epochs=3)
    again.train()
    # the same run: the last parameters come back when training goes on
    assert same(again._last_params, last.model.params)


def test_check_accuracy_subsets_and_batches():
    torch.manual_seed(0)
    solver = make_solver(num_epochs=2)
    solver.train()
    X, y = solver.X_train, solver.y_train
    manual = (solver.model.loss(X).argmax(1) == y).double().mean().item()
    assert solver.check_accuracy(X, y) == pytest.approx(manual)
    assert solver.check_accuracy(X, y, batch_size=7) == solver.check_accuracy(X, y, batch_size=1000)
    state = torch.get_rng_state()
    sub = [solver.check_accuracy(X, y, num_samples=50) for _ in range(2)]
    assert sub[0] == sub[1] and torch.equal(torch.get_rng_state(), state)  # fixed subset, no global draw
    assert solver.check_accuracy(X, y, num_samples=10_000) == solver.check_accuracy(X, y)


def test_verbose_false_prints_nothing(capsys):
    make_solver(num_epochs=1).train()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_shows_a_progress_bar(capsys, monkeypatch):
    # A wide terminal: tqdm cuts the bar to the width it finds (older tqdm finds a narrow one
    # under pytest-xdist), and the postfix is what is checked here.
    monkeypatch.setenv("COLUMNS", "300")
    make_solver(num_epochs=2, verbose=True, print_every=2).train()
    err = capsys.readouterr().err
    assert "train" in err and "val_acc" in err and f"{2 * 6}/{2 * 6}" in err


def test_batch_larger_than_the_data_uses_everything():
    solver = make_solver(batch_size=1000, num_epochs=2)
    solver.train()
    assert solver.iterations_per_epoch == 1 and len(solver.loss_history) == 2


# --------------------------------------------------------------------------- checkpoints and resume


def test_checkpoint_goes_to_the_checkpoint_dir_and_loads_weights_only(name):
    solver = make_solver(checkpoint_name=name, num_epochs=2)
    solver.train()
    path = Path(os.environ["DL4CV_CHECKPOINT_DIR"]) / "fast" / f"{name}.pt"
    assert solver.checkpoint_path == path == checkpoint_path(name) and path.is_file()
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 2 and state["iteration"] == 12
    assert len(state["loss_history"]) == 12 and len(state["val_acc_history"]) == 3
    assert torch.equal(state["optim_configs"]["W"]["velocity"], solver.optim_configs["W"]["velocity"])
    assert state["optim_configs"]["W"]["steps"] == 12
    # the saved parameters are the last ones (the model holds the best ones after train())
    assert same(state["best_params"], solver.best_params)


def test_no_checkpoint_name_writes_nothing():
    folder = Path(os.environ["DL4CV_CHECKPOINT_DIR"])
    before = sorted(folder.rglob("*")) if folder.exists() else []
    make_solver(num_epochs=1).train()
    after = sorted(folder.rglob("*")) if folder.exists() else []
    assert before == after


def uninterrupted(noise):
    torch.manual_seed(0)
    solver = make_solver(model=TinyNet(noise=noise))
    solver.train()
    return solver


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_time_limit_stops_and_a_new_solver_resumes_exactly(name, noise):
    reference = uninterrupted(noise)
    torch.manual_seed(0)
    solver = make_solver(model=TinyNet(noise=noise), checkpoint_name=name)
    solver.train(time_limit=0)
    assert solver.stopped == "time_limit" and solver.iteration == 1 and checkpoint_path(name).is_file()
    stops = 1
    while solver.stopped != "completed":
        torch.manual_seed(1000 + stops)  # whatever happens to the global RNG in between must not matter
        solver = make_solver(model=TinyNet(noise=noise, seed=stops), checkpoint_name=name)
        assert solver.resumed and solver.iteration == stops
        solver.train(time_limit=0)
        stops += 1
    assert stops == 3 * 6  # one step per call: it stopped inside epochs and at their ends
    assert same(solver.model.params, reference.model.params)
    assert same(solver._last_params, reference._last_params)
    assert solver.loss_history == reference.loss_history
    assert solver.val_acc_history == reference.val_acc_history
    assert solver.train_acc_history == reference.train_acc_history


def test_the_same_solver_continues_after_a_time_limit(name):
    reference = uninterrupted(0.3)
    torch.manual_seed(0)
    solver = make_solver(model=TinyNet(noise=0.3), checkpoint_name=name)
    solver.train(time_limit=0)
    torch.rand(5)  # global draws between the calls are undone
    solver.train()
    assert solver.stopped == "completed"
    assert same(solver.model.params, reference.model.params)


class TinyBatchNormNet(TinyNet):
    """TinyNet with two "batch norm layers" that only keep running statistics of the inputs, in
    ``bn_params`` as the A3 models do: they change with every training step and must be checkpointed."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bn_params = [{"mode": "train"}, {"mode": "train", "momentum": 0.5}]

    def loss(self, X, y=None):
        if y is not None:
            flat = X.reshape(X.shape[0], -1)
            for bn_param in self.bn_params:
                momentum = bn_param.get("momentum", 0.9)
                old = bn_param.get("running_mean", torch.zeros(flat.shape[1], dtype=flat.dtype))
                bn_param["running_mean"] = momentum * old + (1 - momentum) * flat.mean(0)
        return super().loss(X, y)


def running_means(model):
    return [bn_param["running_mean"].clone() for bn_param in model.bn_params]


def test_batchnorm_running_statistics_are_checkpointed_and_follow_the_best_params(name):
    torch.manual_seed(0)
    reference = make_solver(model=TinyBatchNormNet(), num_epochs=6)
    reference.train(return_best_params=False)
    last = running_means(reference.model)

    torch.manual_seed(0)
    solver = make_solver(model=TinyBatchNormNet(), num_epochs=6, checkpoint_name=name)
    solver.train(time_limit=0)
    while solver.stopped != "completed":
        solver = make_solver(model=TinyBatchNormNet(), num_epochs=6, checkpoint_name=name)
        assert solver.resumed and "running_mean" in solver.model.bn_params[0]  # restored from the checkpoint
        solver.train(time_limit=0)
    # best params came in with the running statistics of the same epoch ...
    best_epoch = solver.val_acc_history.index(solver.best_val_acc)
    assert 1 <= best_epoch < 6  # not the last epoch: the best statistics differ from the last ones
    torch.manual_seed(0)
    until_best = make_solver(model=TinyBatchNormNet(), num_epochs=best_epoch)
    until_best.train(return_best_params=False)
    for mine, expected in zip(running_means(solver.model), running_means(until_best.model), strict=True):
        assert torch.equal(mine, expected)
    # ... and training on puts the last ones back, exactly as an uninterrupted run has them
    solver._restore_training_state()
    for mine, expected in zip(running_means(solver.model), last, strict=True):
        assert torch.equal(mine, expected)


def test_best_epoch_before_training_brings_back_no_running_statistics():
    solver = make_solver(model=TinyBatchNormNet(), optim_config={"learning_rate": 0.0}, num_epochs=2)
    solver.train()  # nothing is learnt: the epoch-0 parameters stay the best
    assert solver.val_acc_history.index(solver.best_val_acc) == 0
    assert all("running_mean" not in bn_param for bn_param in solver.model.bn_params)
    solver._restore_training_state()
    assert all("running_mean" in bn_param for bn_param in solver.model.bn_params)


def test_checkpoint_with_other_batchnorm_layers_raises(name):
    make_solver(model=TinyBatchNormNet(), checkpoint_name=name, num_epochs=1).train()
    other = TinyBatchNormNet()
    other.bn_params = other.bn_params[:1]
    with pytest.raises(ValueError, match="running statistics of 2 batch-norm layers but the model has 1"):
        make_solver(model=other, checkpoint_name=name, num_epochs=1)


def noisy_augment(X, generator):
    """An augmentation drawing from the solver's generator, as the Solver requires."""
    return X + 0.5 * torch.randn(X.shape, generator=generator, dtype=X.dtype)


def test_augment_changes_training_batches_only():
    seen = []

    def recording(X, generator):
        assert isinstance(generator, torch.Generator)
        seen.append(X.shape[0])
        return noisy_augment(X, generator)

    torch.manual_seed(0)
    plain = make_solver()
    plain.train()
    torch.manual_seed(0)
    augmented = make_solver(augment=recording)
    augmented.train()
    assert seen == [20] * augmented.iteration  # every training batch, nothing else
    assert plain.loss_history != augmented.loss_history
    assert plain.loss_history[0] != augmented.loss_history[0]


def test_augmented_run_resumes_exactly(name):
    torch.manual_seed(0)
    reference = make_solver(augment=noisy_augment)
    reference.train()
    torch.manual_seed(0)
    solver = make_solver(augment=noisy_augment, checkpoint_name=name)
    solver.train(time_limit=0)
    while solver.stopped != "completed":
        torch.rand(3)
        solver = make_solver(augment=noisy_augment, checkpoint_name=name)
        solver.train(time_limit=0)
    assert same(solver.model.params, reference.model.params)
    assert solver.loss_history == reference.loss_history
    with pytest.raises(ValueError, match="augment: 'noisy_augment' in the checkpoint, None now"):
        make_solver(checkpoint_name=name)


def test_augment_must_keep_one_row_per_example():
    with pytest.raises(TypeError, match="one row per example"):
        make_solver(augment=lambda X, generator: X[:1]).train()


def test_generous_time_limit_does_not_stop():
    solver = make_solver(num_epochs=2)
    solver.train(time_limit=3600)
    assert solver.stopped == "completed" and solver.epoch == 2


def test_crash_resumes_from_the_last_epoch_checkpoint(name):
    reference = uninterrupted(0.3)
    torch.manual_seed(0)
    crashing = TinyNet(noise=0.3)
    crashing.crash_at = 6 + 3  # inside the second epoch
    with pytest.raises(RuntimeError, match="simulated crash"):
        make_solver(model=crashing, checkpoint_name=name).train()
    solver = make_solver(model=TinyNet(noise=0.3, seed=5), checkpoint_name=name)
    assert solver.resumed and solver.epoch == 1 and solver.iteration == 6
    solver.train()
    assert same(solver.model.params, reference.model.params)
    assert solver.loss_history == reference.loss_history


def test_completed_run_does_not_train_again_and_more_epochs_extend_it(name):
    make_solver(checkpoint_name=name, num_epochs=2).train()
    again = make_solver(checkpoint_name=name, num_epochs=2)
    again.train()
    assert again.resumed and again.iteration == 12 and len(again.loss_history) == 12
    longer = make_solver(checkpoint_name=name, num_epochs=3)
    longer.train()
    assert longer.epoch == 3 and len(longer.loss_history) == 18 and len(longer.val_acc_history) == 4


@pytest.mark.parametrize("change, words", [
    ({"batch_size": 10}, "batch_size"),
    ({"optim_config": {"learning_rate": 0.5}}, "optim_config"),
    ({"update_rule": sgd}, "update_rule"),
    ({"lr_decay": 1.0}, "lr_decay"),
    ({"data": make_data(n_train=100)}, "num_train"),
])
def test_mismatched_settings_raise(name, change, words):
    make_solver(checkpoint_name=name, num_epochs=1).train()
    with pytest.raises(ValueError, match=f"other settings.*{words}"):
        make_solver(checkpoint_name=name, **change)


def test_mismatched_parameters_or_files_raise(name):
    make_solver(checkpoint_name=name, num_epochs=1).train()
    model = TinyNet()
    model.params["W"] = torch.zeros(DIM, 5, dtype=torch.float64)
    model.params["b"] = torch.zeros(5, dtype=torch.float64)
    with pytest.raises(ValueError, match="holds parameters"):
        make_solver(model=model, checkpoint_name=name)
    as_float32 = TinyNet()
    as_float32.params = {k: v.float() for k, v in as_float32.params.items()}
    with pytest.raises(ValueError, match="dtypes"):
        make_solver(model=as_float32, checkpoint_name=name)
    atomic_save({"something": 1}, checkpoint_path(name))      # a course file, but not the Solver's
    with pytest.raises(ValueError, match="not written by helpers.solver.Solver"):
        make_solver(checkpoint_name=name)
    torch.save({"something": 1}, checkpoint_path(name))       # another program's file
    with pytest.raises(DamagedFileError, match="no checksum"):
        make_solver(checkpoint_name=name)


# --------------------------------------------------------------------------- NaN and errors


def test_nan_loss_raises_and_keeps_the_checkpoint(name):
    solver = make_solver(checkpoint_name=name, num_epochs=3)
    solver.model.nan_at = 8  # second epoch
    with pytest.raises(FloatingPointError, match="loss is nan at iteration 8"):
        solver.train()
    assert solver.iteration == 7
    state = torch.load(checkpoint_path(name), weights_only=True)
    assert state["iteration"] == 6  # the end of the first epoch, untouched


def test_exploding_parameters_are_not_saved(name):
    solver = make_solver(checkpoint_name=name, num_epochs=2, update_rule=lambda w, dw, c: (w * math.inf, c))
    with pytest.raises(FloatingPointError):
        solver.train()
    assert not checkpoint_path(name).exists()


@pytest.mark.parametrize("kwargs, error, words", [
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"num_epochs": 1.5}, TypeError, "num_epochs must be an int"),
    ({"lr_decay": -0.1}, ValueError, "lr_decay must be a number > 0"),
    ({"num_train_samples": 0}, ValueError, "num_train_samples must be >= 1"),
    ({"update_rule": "adam"}, TypeError, "update_rule must be a function"),
    ({"optim_config": [0.1]}, TypeError, "optim_config must be a dict"),
    ({"checkpoint_name": "a/b"}, ValueError, "plain file name"),
    ({"seed": "zero"}, TypeError, "seed must be an int"),
    ({"print_every": 0}, ValueError, "print_every"),
    ({"augment": "flip"}, TypeError, "augment must be None or a function"),
])
def test_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        make_solver(**kwargs)


def test_bad_data_and_models():
    data = make_data()
    with pytest.raises(ValueError, match=r"data is missing \['X_val'\]"):
        make_solver(data={k: v for k, v in data.items() if k != "X_val"})
    with pytest.raises(TypeError, match="floating-point"):
        make_solver(data={**data, "X_train": data["X_train"].long()})
    with pytest.raises(TypeError, match="integer class labels"):
        make_solver(data={**data, "y_val": data["y_val"].double()})
    with pytest.raises(ValueError, match="same N"):
        make_solver(data={**data, "y_train": data["y_train"][:-1]})
    with pytest.raises(ValueError, match="same shape after the first dim"):
        make_solver(data={**data, "X_val": data["X_val"].reshape(40, 6)})
    with pytest.raises(TypeError, match="dict with keys"):
        make_solver(data=[1, 2])

    class NoParams:
        params = {}

        def loss(self, X, y=None):
            return X

    with pytest.raises(TypeError, match="non-empty dict `params`"):
        make_solver(model=NoParams())


def test_bad_loss_outputs_and_time_limit():
    model = TinyNet()
    model.loss = lambda X, y=None: (torch.zeros(X.shape[0], CLASSES) if y is None else torch.tensor(1.0))
    with pytest.raises(TypeError, match=r"must return \(loss, grads\)"):
        make_solver(model=model).train()
    model.loss = lambda X, y=None: (torch.zeros(X.shape[0], CLASSES, dtype=torch.float64) if y is None
                                    else (torch.tensor(1.0), {"W": torch.zeros(DIM, CLASSES)}))
    with pytest.raises(ValueError, match="no gradient for parameter 'b'"):
        make_solver(model=model).train()
    with pytest.raises(ValueError, match="time_limit must be a number >= 0"):
        make_solver().train(time_limit=-1)
    model.loss = lambda X, y=None: torch.zeros(X.shape[0])
    with pytest.raises(ValueError, match=r"class scores of shape \(N, C\)"):
        make_solver(model=model).train()
