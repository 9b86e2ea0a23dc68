"""The environment report to paste into a bug report: packages, Python, device, datasets.

Usage::

    python -m helpers.environment_report     # or: make check

Prints one line per required package (``OK torch 2.5.1`` or ``FAIL ...`` with the
remedy), the Python version and platform, the configuration (``DL4CV_*``), the
device, where each classification dataset is (present, downloadable, or
missing with what to do), PASCAL VOC 2007 (which of its trainval / test archives are there), COCO
captions and the pretrained weight files (cached, downloadable or missing).  Exit code 0 when every
package imports and the configuration is valid, 1 otherwise.

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
    "check_real_data",
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
    detail: str = ""

    def line(self) -> str:
        """One line for the report."""
        if self.state in ("present", "cached"):
            return f"{self.state:<12} {self.name}: {self.folder}" + (f" ({self.detail})" if self.detail else "")
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


def _check_voc(cfg: Config) -> DatasetStatus:
    from helpers.datasets import voc_folder, voc_splits_found, voc_splits_used

    folder, found = voc_folder(cfg), voc_splits_found(cfg)
    if found["trainval"] or found["test"]:
        used = voc_splits_used(cfg)
        uses = f"{used['train']} / {used['test']}" + ("" if found["test"] else " (no test archive)")
        detail = (f"trainval: {'yes' if found['trainval'] else 'no'}, test: {'yes' if found['test'] else 'no'}; "
                  f"the detection notebooks use {uses}")
        return DatasetStatus("voc2007", "present", folder=folder, detail=detail)
    if not cfg.offline:
        return DatasetStatus("voc2007", "downloadable")
    return DatasetStatus("voc2007", "missing", remedy=(
        f"offline; extract VOCtrainval_06-Nov-2007.tar (and VOCtest_06-Nov-2007.tar) in {folder.parent.parent} "
        "or set DL4CV_OFFLINE=0 to download (or use DL4CV_DATASET=detection_scenes offline)"))


def _check_coco(cfg: Config) -> DatasetStatus:
    from helpers.datasets import coco_folder

    folder = coco_folder(cfg)
    parts = {"captions_train2017.json": folder / "annotations" / "captions_train2017.json",
             "captions_val2017.json": folder / "annotations" / "captions_val2017.json",
             "train2017/": folder / "train2017", "val2017/": folder / "val2017"}
    missing = [name for name, path in parts.items() if not path.exists()]
    if not missing:
        return DatasetStatus("coco captions", "present", folder=folder)
    return DatasetStatus("coco captions", "missing", remedy=(
        f"{', '.join(missing)} not in {folder} (never downloaded automatically: about 19 GB from cocodataset.org; "
        "or use DL4CV_DATASET=captioned_scenes)"))


def _check_weights(cfg: Config) -> list[DatasetStatus]:
    from helpers.backbone import KNOWN_WEIGHTS, cached_weights, weights_folder

    statuses = []
    for short, weights in KNOWN_WEIGHTS.items():
        name = f"weights {short}"
        found = cached_weights(weights, cfg)
        if found is not None:
            statuses.append(DatasetStatus(name, "cached", folder=found))
        elif not cfg.offline:
            statuses.append(DatasetStatus(name, "downloadable"))
        else:
            statuses.append(DatasetStatus(name, "missing", remedy=(
                f"offline; put {weights.file_name} ({weights.url}) in {weights_folder(cfg)}, "
                f"or {weights.instead}")))
    return statuses


def check_real_data(cfg: Config) -> list[DatasetStatus]:
    """PASCAL VOC 2007 (which archives), COCO captions and every pretrained weight file of the course."""
    return [_check_voc(cfg), _check_coco(cfg), *_check_weights(cfg)]


def check_environment() -> EnvironmentReport:
    """Gather the report: packages, Python, platform, config, device, datasets."""
    packages = check_packages()
    report = EnvironmentReport(packages=packages, python=sys.version.split()[0],
                               platform=platform.platform(), config="", device="unknown")
    try:
        cfg = get_config()
        report.config = cfg.describe()
        report.device = check_device(cfg)
        report.datasets = check_datasets(cfg) + check_real_data(cfg)
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
