"""Tests of helpers.train: learning, checkpoints, resume, NaN guard, time limit, arguments."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.config import get_config
from helpers.train import (
    checkpoint_path,
    load_checkpoint,
    new_history,
    save_checkpoint,
    to_device,
    train,
)

N_SAMPLES, N_FEATURES, BATCH = 40, 5, 8  # 5 batches per epoch


def regression_data(seed: int = 0) -> TensorDataset:
    """y = x @ w + 0.5 + small noise; a linear model can fit it."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N_SAMPLES, N_FEATURES, generator=gen)
    w = torch.randn(N_FEATURES, 1, generator=gen)
    y = x @ w + 0.5 + 0.01 * torch.randn(N_SAMPLES, 1, generator=gen)
    return TensorDataset(x, y)


def make_model(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(N_FEATURES, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 1))


def mse(model, batch):
    x, y = batch
    return F.mse_loss(model(x), y)


def loader(shuffle: bool = False) -> DataLoader:
    return DataLoader(regression_data(), batch_size=BATCH, shuffle=shuffle)


def params_of(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def same_params(a, b) -> bool:
    """Exact equality of two models' (or two saved lists of) parameters."""
    a = params_of(a) if isinstance(a, nn.Module) else a
    b = params_of(b) if isinstance(b, nn.Module) else b
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def without_time(history: dict) -> dict:
    return {key: value for key, value in history.items() if key != "time"}


def setup_run(seed=0, dropout=0.0, adam=False):
    """Model, optimizer and scheduler built the same way for every run."""
    model = make_model(seed, dropout)
    if adam:
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    return model, opt, sched


# --------------------------------------------------------------------------- learning


def test_training_reduces_the_loss():
    model, opt, _ = setup_run()
    history = train(model, opt, loader(shuffle=True), mse, num_epochs=15, progress=False)
    assert history["stopped"] == "completed"
    assert history["epoch"] == 15 and history["global_step"] == 15 * 5
    assert len(history["epoch_loss"]) == 15
    assert history["epoch_loss"][-1] < 0.05 * history["epoch_loss"][0]
    x, y = regression_data().tensors
    with torch.no_grad():
        assert F.mse_loss(model(x), y).item() < 0.05 * F.mse_loss(make_model()(x), y).item()


def test_history_logging_metrics_val_and_modes():
    model, opt, _ = setup_run()
    seen_modes = []

    def loss_with_metrics(model, batch):
        seen_modes.append((model.training, torch.is_grad_enabled()))
        x, y = batch
        loss = F.mse_loss(model(x), y)
        return loss, {"mae": (model(x) - y).abs().mean(), "one": 1}

    def val_fn(model):
        seen_modes.append((model.training, torch.is_grad_enabled()))
        x, y = regression_data().tensors
        return {"val_mse": F.mse_loss(model(x), y)}

    model.eval()  # train() must put it in train mode, then restore eval mode
    history = train(model, opt, loader(), loss_with_metrics, num_epochs=2, val_fn=val_fn,
                    log_every=2, progress=False)
    # 5 batches per epoch, a point every 2 steps and one for the epoch's remainder
    assert history["step"] == [2, 4, 5, 7, 9, 10]
    assert len(history["loss"]) == len(history["lr"]) == 6
    assert history["metrics"]["one"] == [1.0] * 6
    assert len(history["metrics"]["mae"]) == 6
    assert all(isinstance(v, float) for v in history["metrics"]["mae"])
    assert len(history["val"]["val_mse"]) == 2
    x, y = regression_data().tensors
    with torch.no_grad():
        assert history["val"]["val_mse"][-1] == pytest.approx(F.mse_loss(model(x), y).item())
    assert seen_modes.count((True, True)) == 10  # training steps
    assert seen_modes.count((False, False)) == 2  # validation: eval mode, no grad
    assert model.training is False


def test_scheduler_per_step_and_learning_rate_log():
    model, opt, _ = setup_run()
    opt.param_groups[0]["lr"] = 0.1
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = train(model, opt, loader(), mse, scheduler=sched, scheduler_interval="step",
                    log_every=1, progress=False)
    assert history["lr"] == pytest.approx([0.1 * 0.5**k for k in range(5)])  # lr each step used


def test_grad_clip_bounds_the_update():
    model = nn.Linear(N_FEATURES, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    x = torch.randn(8, N_FEATURES) * 100
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    train(model, opt, [(x, x.sum(1, keepdim=True) * 100)], mse, grad_clip=0.01, progress=False)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm().item() == pytest.approx(0.01, rel=1e-4)


def test_progress_false_prints_nothing(capsys):
    model, opt, _ = setup_run()
    train(model, opt, loader(), mse, num_epochs=1, progress=False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_progress_true_shows_a_bar(capsys):
    model, opt, _ = setup_run()
    train(model, opt, loader(), mse, num_epochs=1, progress=True)
    assert "5/5" in capsys.readouterr().err


# --------------------------------------------------------------------------- checkpoints


def _expected_saves(n_epochs, per_epoch, every):
    """Global steps at which a checkpoint is written: every `every` steps and at epoch ends."""
    saves = []
    for step in range(1, n_epochs * per_epoch + 1):
        if every is not None and step % every == 0:
            saves.append(step)
        if step % per_epoch == 0 and (not saves or saves[-1] != step):
            saves.append(step)
    return saves


@pytest.mark.parametrize("every", [None, 3])
def test_checkpoint_written_every_epoch_or_every_n_steps(tmp_path, every):
    path = tmp_path / "run.pt"
    on_disk = []  # global step saved on disk when each step starts

    def spying_loss(model, batch):
        on_disk.append(torch.load(path, weights_only=True)["history"]["global_step"] if path.exists() else 0)
        return mse(model, batch)

    model, opt, _ = setup_run()
    train(model, opt, loader(), spying_loss, num_epochs=2, checkpoint=path, checkpoint_every=every,
          progress=False)
    saves = _expected_saves(2, 5, every)
    expected = [max([0] + [s for s in saves if s < step]) for step in range(1, 11)]
    assert on_disk == expected
    final = torch.load(path, weights_only=True)
    assert final["history"]["global_step"] == 10 and final["history"]["stopped"] == "completed"


def test_checkpoint_loads_weights_only_and_holds_everything(tmp_path):
    path = tmp_path / "run.pt"
    model, opt, sched = setup_run(adam=True)
    history = train(model, opt, loader(), mse, num_epochs=2, scheduler=sched, checkpoint=path, progress=False)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["format"] == 1
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "history", "progress", "rng"}
    assert all(torch.equal(ckpt["model"][k], v) for k, v in model.state_dict().items())
    assert ckpt["optimizer"]["state"][0]["exp_avg"].shape == model[0].weight.shape
    assert ckpt["scheduler"]["last_epoch"] == 2
    assert ckpt["history"] == history


def test_load_checkpoint_restores_model_optimizer_scheduler(tmp_path):
    path = tmp_path / "run.pt"
    model, opt, sched = setup_run(adam=True)
    train(model, opt, loader(), mse, num_epochs=2, scheduler=sched, checkpoint=path, progress=False)
    model2, opt2, sched2 = setup_run(seed=1, adam=True)
    assert not same_params(model, model2)
    ckpt = load_checkpoint(path, model2, opt2, sched2)
    assert same_params(model, model2)
    assert sched2.last_epoch == 2 and opt2.param_groups[0]["lr"] == pytest.approx(0.01 * 0.7**2)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert ckpt["history"]["global_step"] == 10


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    model, opt, _ = setup_run()
    save_checkpoint(path, model, opt, note="good")
    good = path.read_bytes()

    def broken_save(obj, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, opt, note="bad")
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temporary file left behind


@pytest.mark.parametrize("bad", [lambda: 1, {"a": object()}, [1.0, torch.nn.Linear(1, 1)]])
def test_save_checkpoint_refuses_what_weights_only_cannot_load(tmp_path, bad):
    model, _, _ = setup_run()
    with pytest.raises(TypeError, match="weights_only"):
        save_checkpoint(tmp_path / "x.pt", model, extra=bad)
    assert not (tmp_path / "x.pt").exists()


def test_save_checkpoint_refuses_numpy_scalars(tmp_path):
    np = pytest.importorskip("numpy")
    model, _, _ = setup_run()
    with pytest.raises(TypeError, match=r"checkpoint\['history'\]\['loss'\]\[0\]"):
        save_checkpoint(tmp_path / "x.pt", model, history={"loss": [np.float64(1.0)]})


def test_mismatched_checkpoint_says_what_to_do(tmp_path):
    path = tmp_path / "run.pt"
    model, opt, _ = setup_run()
    train(model, opt, loader(), mse, checkpoint=path, progress=False)
    other = nn.Linear(N_FEATURES, 1)
    with pytest.raises(ValueError, match="Delete the checkpoint"):
        train(other, torch.optim.SGD(other.parameters(), lr=0.1), loader(), mse, checkpoint=path,
              progress=False)


def test_checkpoint_path_separates_fast_and_full(tmp_path):
    env = {"DL4CV_CHECKPOINT_DIR": str(tmp_path), "DL4CV_DEVICE": "cpu"}
    fast = get_config(environ={**env, "DL4CV_FAST": "1"})
    full = get_config(environ={**env, "DL4CV_FAST": "0"})
    assert checkpoint_path("a4", fast) == tmp_path / "fast" / "a4.pt"
    assert checkpoint_path("a4", full) == tmp_path / "full" / "a4.pt"
    assert (tmp_path / "fast").is_dir() and (tmp_path / "full").is_dir()
    for bad in ["", "a/b", "..", 3]:
        with pytest.raises(ValueError, match="plain file name"):
            checkpoint_path(bad, fast)


# --------------------------------------------------------------------------- resume


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize(("shuffle", "dropout", "adam"), [(False, 0.0, False), (True, 0.3, True)])
def test_crash_and_resume_matches_an_uninterrupted_run(tmp_path, shuffle, dropout, adam):
    """Nothing is lost: crash at step 8 (last checkpoint at step 6), restart from scratch, resume."""
    kwargs = dict(num_epochs=3, log_every=2, progress=False)
    model, opt, sched = setup_run(0, dropout, adam)
    reference = train(model, opt, loader(shuffle), mse, scheduler=sched, **kwargs)
    expected = params_of(model)

    path = tmp_path / "run.pt"
    calls = []

    def crashing_loss(model, batch):
        calls.append(1)
        if len(calls) == 8:
            raise Crash("kernel died")
        return mse(model, batch)

    model, opt, sched = setup_run(0, dropout, adam)
    with pytest.raises(Crash):
        train(model, opt, loader(shuffle), crashing_loss, scheduler=sched, checkpoint=path,
              checkpoint_every=3, **kwargs)
    assert torch.load(path, weights_only=True)["history"]["global_step"] == 6

    # a fresh process: new objects, differently initialised, another RNG state
    torch.manual_seed(123)
    model, opt, sched = setup_run(7, dropout, adam)
    resumed = train(model, opt, loader(shuffle), mse, scheduler=sched, checkpoint=path,
                    checkpoint_every=3, **kwargs)
    assert same_params(params_of(model), expected)
    assert without_time(resumed) == without_time(reference)


def test_time_limit_stops_and_resumes_to_the_same_result(tmp_path):
    model, opt, sched = setup_run()
    train(model, opt, loader(), mse, num_epochs=2, scheduler=sched, progress=False)
    expected = params_of(model)

    path = tmp_path / "run.pt"
    model, opt, sched = setup_run()
    stops = []
    for _ in range(30):
        history = train(model, opt, loader(), mse, num_epochs=2, scheduler=sched, checkpoint=path,
                        time_limit=0, progress=False)
        stops.append((history["stopped"], history["global_step"]))
        assert torch.load(path, weights_only=True)["history"]["stopped"] == history["stopped"]
        if history["stopped"] == "completed":
            break
    assert stops[0] == ("time_limit", 1)  # at least one step per call, then it stops
    assert [s for s, _ in stops[:-1]] == ["time_limit"] * (len(stops) - 1)
    assert stops[-1] == ("completed", 10)
    assert same_params(params_of(model), expected)


def test_generous_time_limit_does_not_stop():
    model, opt, _ = setup_run()
    history = train(model, opt, loader(), mse, num_epochs=2, time_limit=3600, progress=False)
    assert history["stopped"] == "completed" and history["global_step"] == 10
    assert history["time"] > 0


def test_completed_run_does_not_train_again(tmp_path):
    path = tmp_path / "run.pt"
    model, opt, _ = setup_run()
    first = train(model, opt, loader(), mse, num_epochs=2, checkpoint=path, progress=False)
    trained = params_of(model)
    stamp = path.stat().st_mtime_ns

    def must_not_run(model, batch):
        raise AssertionError("a completed run trained again")

    again = train(model, opt, loader(), must_not_run, num_epochs=2, checkpoint=path, progress=False)
    assert again == first and again["global_step"] == 10
    assert same_params(params_of(model), trained)
    # a restarted notebook: a fresh model gets the trained weights without training
    fresh, fresh_opt, _ = setup_run(seed=5)
    train(fresh, fresh_opt, loader(), must_not_run, num_epochs=2, checkpoint=path, progress=False)
    assert same_params(fresh, model)
    assert path.stat().st_mtime_ns == stamp


def test_more_epochs_extends_a_completed_run(tmp_path):
    path = tmp_path / "run.pt"
    model, opt, _ = setup_run()
    train(model, opt, loader(), mse, num_epochs=1, checkpoint=path, progress=False)
    history = train(model, opt, loader(), mse, num_epochs=3, checkpoint=path, progress=False)
    assert history["epoch"] == 3 and history["global_step"] == 15 and len(history["epoch_loss"]) == 3


# --------------------------------------------------------------------------- NaN guard


def test_nan_loss_raises_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    calls = []

    def nan_at_step_7(model, batch):
        calls.append(1)
        loss = mse(model, batch)
        return loss * float("nan") if len(calls) == 7 else loss

    model, opt, _ = setup_run()
    with pytest.raises(FloatingPointError, match=r"step 7 \(epoch 2, batch 2\)") as info:
        train(model, opt, loader(), nan_at_step_7, num_epochs=3, checkpoint=path, checkpoint_every=2,
              progress=False)
    assert "learning rate" in str(info.value) and "nan" in str(info.value)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["history"]["global_step"] == 6
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())


def test_diverging_training_is_stopped(tmp_path):
    path = tmp_path / "run.pt"
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=1e6)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train(model, opt, loader(), mse, num_epochs=50, checkpoint=path, progress=False)
    if path.exists():
        ckpt = torch.load(path, weights_only=True)
        assert all(torch.isfinite(t).all() for t in ckpt["model"].values())


# --------------------------------------------------------------------------- arguments and helpers


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"num_epochs": 0}, ValueError, "num_epochs"),
    ({"num_epochs": 2.5}, TypeError, "num_epochs"),
    ({"checkpoint_every": 0, "checkpoint": "x.pt"}, ValueError, "checkpoint_every"),
    ({"checkpoint_every": 5}, ValueError, "checkpoint path"),
    ({"checkpoint": 3}, TypeError, "checkpoint"),
    ({"time_limit": -1}, ValueError, "time_limit"),
    ({"time_limit": "1h"}, TypeError, "time_limit"),
    ({"grad_clip": 0}, ValueError, "grad_clip"),
    ({"log_every": 0}, ValueError, "log_every"),
    ({"scheduler_interval": "batch"}, ValueError, "scheduler_interval"),
    ({"val_fn": 3}, TypeError, "val_fn"),
])
def test_bad_arguments(kwargs, error, words):
    model, opt, _ = setup_run()
    before = params_of(model)
    with pytest.raises(error, match=words):
        train(model, opt, loader(), mse, progress=False, **kwargs)
    assert same_params(params_of(model), before)


def test_bad_objects():
    model, opt, _ = setup_run()
    with pytest.raises(TypeError, match="nn.Module"):
        train(lambda x: x, opt, loader(), mse, progress=False)
    with pytest.raises(TypeError, match="Optimizer"):
        train(model, "sgd", loader(), mse, progress=False)
    with pytest.raises(TypeError, match="loss_fn"):
        train(model, opt, loader(), "mse", progress=False)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    with pytest.raises(TypeError, match="ReduceLROnPlateau"):
        train(model, opt, loader(), mse, scheduler=plateau, progress=False)
    other = make_model(seed=1)
    with pytest.raises(ValueError, match="re-created"):
        train(other, opt, loader(), mse, progress=False)


@pytest.mark.parametrize(("loss_fn", "error", "words"), [
    (lambda m, b: F.mse_loss(m(b[0]), b[1], reduction="none"), ValueError, "scalar"),
    (lambda m, b: F.mse_loss(m(b[0]), b[1]).item(), TypeError, "scalar loss tensor"),
    (lambda m, b: F.mse_loss(m(b[0]), b[1]).detach(), ValueError, "require grad"),
    (lambda m, b: (F.mse_loss(m(b[0]), b[1]), {"acc": "high"}), TypeError, "'acc' must be a number"),
])
def test_bad_loss_fn_output(loss_fn, error, words):
    model, opt, _ = setup_run()
    with pytest.raises(error, match=words):
        train(model, opt, loader(), loss_fn, progress=False)


def test_empty_loader_is_an_error():
    model, opt, _ = setup_run()
    with pytest.raises(ValueError, match="no batches"):
        train(model, opt, [], mse, progress=False)


def test_to_device_keeps_structure():
    x = torch.ones(2)
    batch = {"img": x, "meta": [x, (x, 3)], "name": "a"}
    moved = to_device(batch, "cpu")
    assert moved["name"] == "a" and moved["meta"][1][1] == 3
    assert isinstance(moved["meta"], list) and isinstance(moved["meta"][1], tuple)
    assert torch.equal(moved["meta"][1][0], x)


def test_new_history_is_plain_and_empty():
    history = new_history()
    assert history["epoch"] == 0 and history["global_step"] == 0 and history["step"] == []
    assert not math.isnan(history["time"])


# --------------------------------------------------------------------------- step_fn, several optimizers, callback


def two_part_run(seed=0):
    """Two linear models with their own optimizers in one ModuleDict (like A6's D and G)."""
    torch.manual_seed(seed)
    models = nn.ModuleDict({"a": nn.Linear(N_FEATURES, 1), "b": nn.Linear(N_FEATURES, 1)})
    optimizers = {"a": torch.optim.SGD(models["a"].parameters(), lr=0.05, momentum=0.9),
                  "b": torch.optim.Adam(models["b"].parameters(), lr=0.01)}
    return models, optimizers


def alternating_step(optimizers):
    """A step_fn: one update of model a, then one of model b, each on its own loss."""
    def step(models, batch):
        x, y = batch
        values = {}
        for name in ("a", "b"):
            optimizers[name].zero_grad(set_to_none=True)
            loss = F.mse_loss(models[name](x), y if name == "a" else -y)
            loss.backward()
            optimizers[name].step()
            values[name] = float(loss.detach())
        return values["a"] + values["b"], values
    return step


def every_third_step(models, history):
    """A callback: keep the weight of model a before the first step and every 3 steps."""
    if history["global_step"] % 3 == 0 and history.get("kept", [[None]])[-1][0] != history["global_step"]:
        history.setdefault("kept", []).append([history["global_step"], models["a"].weight.detach().clone()])


def test_step_fn_trains_every_model_and_logs_its_metrics():
    models, optimizers = two_part_run()
    before = params_of(models)
    history = train(models, optimizers, loader(), step_fn=alternating_step(optimizers), num_epochs=2,
                    progress=False, log_every=1, callback=every_third_step)
    assert history["global_step"] == 10 and history["stopped"] == "completed"
    assert all(not torch.equal(x, y) for x, y in zip(before, params_of(models), strict=True))
    assert history["metrics"]["a"][-1] < history["metrics"]["a"][0]
    assert history["loss"] == [a + b for a, b in zip(history["metrics"]["a"], history["metrics"]["b"], strict=True)]
    assert [step for step, _ in history["kept"]] == [0, 3, 6, 9]


def test_step_fn_run_resumes_exactly_with_every_optimizer_and_the_callback_data(tmp_path):
    models, optimizers = two_part_run()
    expected = train(models, optimizers, loader(shuffle=True), step_fn=alternating_step(optimizers),
                     num_epochs=2, progress=False, callback=every_third_step)
    expected_params = params_of(models)
    path = tmp_path / "two.pt"
    for calls in range(1, 30):
        # like a fresh kernel every time: new objects, other weights and random state (the first starts as above)
        models, optimizers = two_part_run(seed=0 if calls == 1 else 50 + calls)
        history = train(models, optimizers, loader(shuffle=True), step_fn=alternating_step(optimizers),
                        num_epochs=2, progress=False, callback=every_third_step, checkpoint=path, time_limit=0)
        if history["stopped"] == "completed":
            break
    assert calls > 10 and same_params(params_of(models), expected_params)
    assert without_time({k: v for k, v in history.items() if k != "kept"}) == without_time(
        {k: v for k, v in expected.items() if k != "kept"})
    assert [s for s, _ in history["kept"]] == [s for s, _ in expected["kept"]]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(history["kept"], expected["kept"], strict=True))
    saved = torch.load(path, weights_only=True)["optimizer"]
    assert set(saved) == {"a", "b"}


def test_step_fn_nan_loss_raises():
    models, optimizers = two_part_run()
    with pytest.raises(FloatingPointError, match="loss is nan at step 1"):
        train(models, optimizers, loader(), step_fn=lambda m, b: float("nan"), progress=False)


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({}, TypeError, "exactly one of loss_fn"),
    ({"loss_fn": mse, "step_fn": lambda m, b: 0.0}, TypeError, "exactly one of loss_fn"),
    ({"step_fn": "step"}, TypeError, "step_fn must be a function"),
    ({"step_fn": lambda m, b: 0.0, "grad_clip": 1.0}, ValueError, "grad_clip works with loss_fn only"),
    ({"loss_fn": mse, "callback": 3}, TypeError, "callback"),
    ({"step_fn": lambda m, b: (0.0, {"x": "high"})}, TypeError, "'x' must be a number"),
])
def test_bad_step_fn_and_callback_arguments(kwargs, error, words):
    models, optimizers = two_part_run()
    with pytest.raises(error, match=words):
        train(models, optimizers, loader(), progress=False, **kwargs)


def test_bad_optimizer_dicts():
    models, optimizers = two_part_run()
    with pytest.raises(ValueError, match="non-empty dict"):
        train(models, {}, loader(), mse, progress=False)
    with pytest.raises(TypeError, match=r"optimizer\['b'\] must be a torch.optim.Optimizer"):
        train(models, {"a": optimizers["a"], "b": "adam"}, loader(), mse, progress=False)
    other, _ = two_part_run(seed=1)
    with pytest.raises(ValueError, match=r"optimizer\['a'\] holds parameters that are not the model's"):
        train(other, optimizers, loader(), mse, progress=False)


def test_a_checkpoint_with_other_optimizers_does_not_fit(tmp_path):
    models, optimizers = two_part_run()
    path = tmp_path / "two.pt"
    train(models, optimizers, loader(), step_fn=alternating_step(optimizers), progress=False, checkpoint=path)
    with pytest.raises(ValueError, match="does not fit"):
        train(models, {"a": optimizers["a"]}, loader(), step_fn=alternating_step(optimizers), progress=False,
              checkpoint=path)
