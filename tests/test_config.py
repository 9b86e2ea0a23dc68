"""helpers.config: parsing of the DL4CV_* variables, overrides, dataset choice, seeding."""

import re
import warnings
from pathlib import Path

import pytest
import torch

from helpers.config import (
    TORCH_FLOOR,
    TORCHVISION_FLOOR,
    get_config,
    seed_everything,
    setup,
    warn_if_torch_is_too_old,
)


def test_defaults_from_an_empty_environment():
    cfg = get_config(environ={})
    assert (cfg.fast, cfg.offline, cfg.dataset, cfg.seed, cfg.device) == (False, False, None, 0, cfg.device)
    assert cfg.device in ("cpu", "cuda")
    assert cfg.data_dir == Path("~/.cache/dl4cv").expanduser()
    assert cfg.results_dir.name == "results" and cfg.checkpoint_dir.name == "checkpoints"
    assert cfg.mode == "full" and not cfg.headless


def test_values_are_parsed():
    env = {"DL4CV_FAST": "true", "DL4CV_OFFLINE": "1", "DL4CV_DATASET": "mnist", "DL4CV_DEVICE": "CPU",
           "DL4CV_SEED": "42", "DL4CV_DATA_DIR": "/data", "DL4CV_RESULTS_DIR": "/r",
           "DL4CV_CHECKPOINT_DIR": "/c", "DL4CV_HEADLESS": "yes"}
    cfg = get_config(environ=env)
    assert (cfg.fast, cfg.offline, cfg.dataset, cfg.device, cfg.seed) == (True, True, "mnist", "cpu", 42)
    assert (cfg.data_dir, cfg.results_dir, cfg.checkpoint_dir) == (Path("/data"), Path("/r"), Path("/c"))
    assert cfg.mode == "fast" and cfg.pick("small", "big") == "small" and cfg.headless


@pytest.mark.parametrize("env, message", [
    ({"DL4CV_FAST": "maybe"}, "DL4CV_FAST must be 0 or 1"),
    ({"DL4CV_SEED": "one"}, "DL4CV_SEED must be an integer"),
    ({"DL4CV_HEADLESS": "2"}, "DL4CV_HEADLESS must be 0 or 1"),
    ({"DL4CV_DEVICE": "tpu"}, "DL4CV_DEVICE must be one of"),
])
def test_bad_values_raise_clear_errors(env, message):
    with pytest.raises(ValueError, match=message):
        get_config(environ=env)


def test_cuda_requested_without_a_gpu_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ValueError, match="no CUDA device"):
        get_config(environ={"DL4CV_DEVICE": "cuda"})


def test_overrides_win_and_none_is_ignored():
    cfg = get_config(environ={"DL4CV_SEED": "3"}, seed=None, fast=True)
    assert cfg.seed == 3 and cfg.fast is True


def test_setup_picks_the_dataset_and_prints_one_line(monkeypatch, capsys):
    for name in ("DL4CV_DATASET", "DL4CV_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    assert setup("cifar10", "fashion_mnist").dataset == "cifar10"
    monkeypatch.setenv("DL4CV_OFFLINE", "1")
    assert setup("cifar10", "fashion_mnist").dataset == "fashion_mnist"
    monkeypatch.setenv("DL4CV_DATASET", "mnist")
    assert setup("cifar10", "fashion_mnist").dataset == "mnist"
    assert setup("cifar10", "fashion_mnist", dataset="cifar10").dataset == "cifar10"
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(line.startswith("dl4cv config: mode=") for line in lines)
    assert "dataset=fashion_mnist" in lines[1]


def test_setup_seeds_everything():
    setup(verbose=False, seed=7)
    a = torch.rand(3)
    seed_everything(7)
    assert torch.equal(a, torch.rand(3))


def test_an_older_torch_than_the_floor_is_named_with_the_fix(monkeypatch):
    from torch.torch_version import TorchVersion

    monkeypatch.setattr(torch, "__version__", TorchVersion("2.1.2+cu121"))
    with pytest.warns(UserWarning, match=r"torch 2\.1\.2\+cu121 is older than 2\.5\.1.*pip install -U"):
        assert warn_if_torch_is_too_old()
    monkeypatch.setattr(torch, "__version__", TorchVersion(TORCH_FLOOR))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_torch_is_too_old()
        setup(verbose=False)


def test_the_floor_named_in_code_is_the_floor_of_requirements_txt():
    requirements = (Path(__file__).resolve().parent.parent / "requirements.txt").read_text()
    assert re.search(rf"^torch>={re.escape(TORCH_FLOOR)}\s*$", requirements, re.M)
    assert re.search(rf"^torchvision>={re.escape(TORCHVISION_FLOOR)}\s*$", requirements, re.M)


def test_a_seed_torch_cannot_take_is_refused_naming_the_variable():
    for value in ("99999999999999999999999", "-1"):
        with pytest.raises(ValueError, match=r"DL4CV_SEED must be an integer in \[0, 2\*\*63\)"):
            get_config(environ={"DL4CV_SEED": value})
    assert get_config(environ={"DL4CV_SEED": str(2**63 - 1)}).seed == 2**63 - 1
