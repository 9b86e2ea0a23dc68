"""The one place that reads ``DL4CV_*`` environment variables.

Every notebook starts with::

    from helpers.config import setup
    cfg = setup(default_dataset="cifar10", offline_dataset="fashion_mnist")

which reads the environment, seeds every random generator and prints one line
saying how the run was made (mode, dataset, device, seed).  Library code asks
:func:`get_config` and never looks at ``os.environ`` itself.

Variables (all optional):

=====================  ==================================================  =====================
variable               meaning                                             default
=====================  ==================================================  =====================
``DL4CV_FAST``         fast mode: small subsets, few iterations            ``0`` (``1`` in tests)
``DL4CV_DATASET``      override the notebook's dataset choice              the course's own
``DL4CV_OFFLINE``      never touch the network                             ``0`` (``1`` in tests)
``DL4CV_DEVICE``       ``cpu``, ``cuda`` or ``auto``                       ``auto``
``DL4CV_DATA_DIR``     where datasets are cached                           ``~/.cache/dl4cv``
``DL4CV_SEED``         global seed                                         ``0``
``DL4CV_RESULTS_DIR``  where :mod:`helpers.results` writes ``*.json``      ``<repo>/results``
``DL4CV_CHECKPOINT_DIR``  where long runs keep their checkpoints           ``<repo>/checkpoints``
``DL4CV_HEADLESS``     nobody watches (set by ``course.run`` while it          ``0``
                       runs notebooks): widget helpers draw once, no slider
=====================  ==================================================  =====================
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, replace
from pathlib import Path

#: The oldest torch and torchvision the course is tested with: the floor of requirements.txt
#: (tests/test_config.py keeps the two equal).
TORCH_FLOOR = "2.5.1"
TORCHVISION_FLOOR = "0.20.1"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Config:
    """How this run is made.  Build it with :func:`get_config` or :func:`setup`."""

    fast: bool = False
    dataset: str | None = None
    offline: bool = False
    device: str = "cpu"
    data_dir: Path = Path("~/.cache/dl4cv").expanduser()
    seed: int = 0
    results_dir: Path = Path("results")
    checkpoint_dir: Path = Path("checkpoints")
    headless: bool = False

    @property
    def mode(self) -> str:
        """``"fast"`` or ``"full"``."""
        return "fast" if self.fast else "full"

    def describe(self) -> str:
        """One line naming mode, dataset, device and seed."""
        return (
            f"dl4cv config: mode={self.mode} dataset={self.dataset} "
            f"device={self.device} seed={self.seed} offline={int(self.offline)}"
        )

    def pick(self, fast, full):
        """Return ``fast`` in fast mode and ``full`` otherwise (for sizes, iterations...)."""
        return fast if self.fast else full


def repo_root() -> Path | None:
    """The checkout holding this package, or ``None`` when installed elsewhere."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def _parse_bool(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"{name} must be 0 or 1 (or true/false), got {value!r}")


def _parse_int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _parse_seed(value: str) -> int:
    seed = _parse_int("DL4CV_SEED", value)
    if not 0 <= seed < 2**63:
        raise ValueError(f"DL4CV_SEED must be an integer in [0, 2**63), got {value!r}")
    return seed


def resolve_device(device: str) -> str:
    """Map ``auto`` to ``cuda`` when a GPU is visible, else ``cpu``."""
    if device not in DEVICES:
        raise ValueError(f"DL4CV_DEVICE must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ValueError("DL4CV_DEVICE=cuda but no CUDA device is visible; use 'auto' or 'cpu'")
    return "cpu"


def get_config(environ=None, **overrides) -> Config:
    """Build a :class:`Config` from the environment, then apply ``overrides``.

    ``environ`` defaults to ``os.environ``; pass a dict in tests.  Overrides set
    to ``None`` are ignored, so notebook parameters can default to ``None``.
    """
    env = os.environ if environ is None else environ
    root = repo_root() or Path.cwd()
    cfg = Config(
        fast=_parse_bool("DL4CV_FAST", env.get("DL4CV_FAST", "0")),
        dataset=env.get("DL4CV_DATASET") or None,
        offline=_parse_bool("DL4CV_OFFLINE", env.get("DL4CV_OFFLINE", "0")),
        device=env.get("DL4CV_DEVICE", "auto").strip().lower() or "auto",
        data_dir=Path(env.get("DL4CV_DATA_DIR") or "~/.cache/dl4cv").expanduser(),
        seed=_parse_seed(env.get("DL4CV_SEED", "0")),
        results_dir=Path(env.get("DL4CV_RESULTS_DIR") or root / "results").expanduser(),
        checkpoint_dir=Path(env.get("DL4CV_CHECKPOINT_DIR") or root / "checkpoints").expanduser(),
        headless=_parse_bool("DL4CV_HEADLESS", env.get("DL4CV_HEADLESS", "0")),
    )
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    return replace(cfg, device=resolve_device(cfg.device))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA)."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy comes with torch
        pass
    import torch

    torch.manual_seed(seed)


def setup(default_dataset: str | None = None, offline_dataset: str | None = None,
          verbose: bool = True, **overrides) -> Config:
    """Build the notebook's config, seed everything and print one line.

    The dataset is, in order: an explicit ``dataset=`` override, ``DL4CV_DATASET``,
    ``offline_dataset`` when ``DL4CV_OFFLINE=1``, then ``default_dataset``.  The
    printed line always names the dataset actually used, so nothing is swapped
    silently.
    """
    cfg = get_config(**overrides)
    if cfg.dataset is None:
        use_offline = cfg.offline and offline_dataset is not None
        cfg = replace(cfg, dataset=offline_dataset if use_offline else default_dataset)
    seed_everything(cfg.seed)
    if verbose:
        print(cfg.describe())
    warn_if_torch_is_too_old()
    return cfg


def warn_if_torch_is_too_old() -> bool:
    """Warn (and return True) when the installed torch is older than :data:`TORCH_FLOOR`.

    Colab and Kaggle keep their own torch; an older one runs most of the course but not all
    of it (exports, for one), so the notebook says so once, at its start, with the fix.
    """
    import warnings

    import torch
    from torch.torch_version import TorchVersion

    if TorchVersion(torch.__version__) >= TORCH_FLOOR:
        return False
    warnings.warn(f"torch {torch.__version__} is older than {TORCH_FLOOR}, the oldest version this course is "
                  f"tested with: some cells may fail. Upgrade with: pip install -U 'torch>={TORCH_FLOOR}' "
                  f"'torchvision>={TORCHVISION_FLOOR}'", stacklevel=3)
    return True
