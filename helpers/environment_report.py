"""The environment report to paste into a bug report: packages, Python, device, datasets.

Usage::

    python -m helpers.environment_report     # or: make check

Prints one line per required package (``OK torch 2.5.1`` or ``FAIL ...`` with the
remedy), the Python version and platform, the configuration (``DL4CV_*``), the
device and where each classification dataset is (present, downloadable, or
missing with what to do).  Exit code 0 when every package imports and the
configuration is valid, 1 otherwise.

It lives in ``helpers/`` (not in the teacher's ``course/``) because students
need it: it ships in the student version, and ``make check`` runs it there.
Library functions return data; only :func:`print_environment_report` and
:func:`main` print.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

from helpers.config import Config, get_config

__all__ = [
    "REQUIRED_PACKAGES",
    "DatasetStatus",
    "EnvironmentReport",
    "PackageStatus",
    "check_datasets",
    "check_device",
    "check_environment",
    "check_package",
    "check_packages",
    "main",
    "print_environment_report",
]

#: (import name, distribution name) of every package the course needs.
REQUIRED_PACKAGES: tuple[tuple[str, str], ...] = (
    ("torch", "torch"),
    ("torchvision", "torchvision"),
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("matplotlib", "matplotlib"),
    ("tqdm", "tqdm"),
    ("ipywidgets", "ipywidgets"),
    ("sklearn", "scikit-learn"),
    ("nltk", "nltk"),
    ("nbformat", "nbformat"),
    ("nbclient", "nbclient"),
    ("ipykernel", "ipykernel"),
    ("pytest", "pytest"),
    ("nbval", "nbval"),
    ("xdist", "pytest-xdist"),
)


@dataclass(frozen=True)
class PackageStatus:
    """Whether one required package imports, and its version."""

    module: str
    distribution: str
    ok: bool
    version: str = ""
    problem: str = ""

    def line(self) -> str:
        """``OK   torch 2.14.1`` or ``FAIL tqdm (not installed: ...)``."""
        if self.ok:
            return f"OK   {self.distribution} {self.version}"
        return f"FAIL {self.distribution} ({self.problem})"


@dataclass(frozen=True)
class DatasetStatus:
    """Where a dataset is: ``present`` (folder), ``downloadable`` or ``missing`` (remedy)."""

    name: str
    state: str
    folder: Path | None = None
    remedy: str = ""

    def line(self) -> str:
        """One line for the report."""
        if self.state == "present":
            return f"{self.state:<12} {self.name}: {self.folder}"
        if self.state == "downloadable":
            return f"{self.state:<12} {self.name}: not cached; downloaded on first use"
        return f"{self.state:<12} {self.name}: {self.remedy}"


@dataclass
class EnvironmentReport:
    """Everything the environment report says."""

    packages: list[PackageStatus]
    python: str
    platform: str
    config: str
    device: str
    datasets: list[DatasetStatus] = field(default_factory=list)
    config_ok: bool = True

    @property
    def ok(self) -> bool:
        """Every required package imports and the configuration is valid."""
        return self.config_ok and all(p.ok for p in self.packages)


def _package_version(module, distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(module, "__version__", "unknown version"))


def check_package(module_name: str, distribution: str) -> PackageStatus:
    """Import ``module_name`` and report its distribution's version, or why it failed."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return PackageStatus(module_name, distribution, False,
                                 problem="not installed: pip install -r requirements.txt")
        return PackageStatus(module_name, distribution, False,
                             problem=f"import failed: {type(exc).__name__}: {exc}")
    except Exception as exc:  # a broken install can raise anything at import time
        return PackageStatus(module_name, distribution, False,
                             problem=f"import failed: {type(exc).__name__}: {exc}")
    return PackageStatus(module_name, distribution, True, _package_version(module, distribution))


def check_packages() -> list[PackageStatus]:
    """:func:`check_package` for every entry of :data:`REQUIRED_PACKAGES`."""
    return [check_package(module, dist) for module, dist in REQUIRED_PACKAGES]


def check_device(cfg: Config) -> str:
    """``cpu``, or ``cuda (<GPU name>)`` for the configured device."""
    if cfg.device != "cuda":
        return cfg.device
    import torch

    return f"cuda ({torch.cuda.get_device_name(0)})"


def _dataset_remedy(name: str, folder: Path) -> str:
    remedy = f"offline; put its files in {folder} or set DL4CV_OFFLINE=0 to download"
    if name == "fashion_mnist":
        remedy += " (or: apt-get install dataset-fashion-mnist)"
    else:
        remedy += " (or use DL4CV_DATASET=fashion_mnist offline)"
    return remedy


def check_datasets(cfg: Config) -> list[DatasetStatus]:
    """For each dataset of :data:`helpers.datasets.DATASETS`: present, downloadable or missing."""
    from helpers.datasets import files  # here, not at the top: the report must still print without torch

    statuses = []
    for name in files.DATASETS:
        found = files.find_dataset_folder(name, cfg)
        if found is not None:
            statuses.append(DatasetStatus(name, "present", folder=found))
        elif not cfg.offline:
            statuses.append(DatasetStatus(name, "downloadable"))
        else:
            folder = files.candidate_folders(name, cfg)[0]
            statuses.append(DatasetStatus(name, "missing", remedy=_dataset_remedy(name, folder)))
    return statuses


def check_environment() -> EnvironmentReport:
    """Gather the report: packages, Python, platform, config, device, datasets."""
    packages = check_packages()
    report = EnvironmentReport(packages=packages, python=sys.version.split()[0],
                               platform=platform.platform(), config="", device="unknown")
    try:
        cfg = get_config()
        report.config = cfg.describe()
        report.device = check_device(cfg)
        report.datasets = check_datasets(cfg)
    except Exception as exc:  # a bad DL4CV_* value or a missing torch
        report.config_ok = False
        report.config = f"FAIL config: {type(exc).__name__}: {exc}"
    return report


def print_environment_report(report: EnvironmentReport) -> None:
    """Print the report in the form users paste into bug reports."""
    print("dl4cv environment check")
    for package in report.packages:
        print(package.line())
    print(f"python {report.python} on {report.platform}")
    print(report.config)
    print(f"device: {report.device}")
    for dataset in report.datasets:
        print(dataset.line())
    print("environment OK" if report.ok else "environment has problems (see FAIL lines above)")


def main(argv: list[str] | None = None) -> int:
    """The CLI; returns the exit code (0: environment OK, 1: something is missing)."""
    argparse.ArgumentParser(prog="python -m helpers.environment_report",
                            description="Print an environment report to paste into a bug report.").parse_args(argv)
    report = check_environment()
    print_environment_report(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
