"""Run the course's notebooks headless and rebuild the README results table.

Usage::

    python -m helpers.course                  # run every notebook (full mode), save outputs
    python -m helpers.course --fast A1 knn    # fast mode, only notebooks whose path contains A1 or knn
    python -m helpers.course --no-save vit    # trial run: the repository is left as it was
    python -m helpers.course --check          # environment report for bug reports

Notebooks are ``A*/*.ipynb`` and ``papers/*.ipynb`` under the repository root.
Each runs in its own folder with a fresh ``python3`` kernel of the current
environment; a failing notebook is reported (cell, error) and the others still
run.  Afterwards the table between the results markers of ``README.md`` is
rebuilt from ``results/*.json`` (see :mod:`helpers.results`).

Library functions here return data and print nothing; only the ``print_*``
functions and :func:`main` print.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers.config import Config, get_config, repo_root

__all__ = [
    "DEFAULT_TIMEOUT",
    "NOTEBOOK_GLOBS",
    "REQUIRED_PACKAGES",
    "DatasetStatus",
    "EnvironmentReport",
    "NotebookResult",
    "PackageStatus",
    "check_datasets",
    "check_device",
    "check_environment",
    "check_packages",
    "course_root",
    "discover_notebooks",
    "main",
    "print_environment_report",
    "print_summary",
    "run_notebook",
    "select_notebooks",
    "summary_table",
    "update_readme_table",
]

#: Where the course's notebooks live, relative to the repository root.
NOTEBOOK_GLOBS = ("A*/*.ipynb", "papers/*.ipynb")
#: Default per-cell time limit in seconds (full-mode training cells can be long).
DEFAULT_TIMEOUT = 3600
KERNEL_NAME = "python3"

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


# --------------------------------------------------------------------------- discovery


def course_root() -> Path:
    """The repository checkout holding the notebooks (the working directory if not a checkout)."""
    return repo_root() or Path.cwd()


def discover_notebooks(root: Path) -> list[Path]:
    """All course notebooks under ``root`` (``A*/*.ipynb``, ``papers/*.ipynb``), sorted.

    Jupyter's ``.ipynb_checkpoints`` copies are skipped.
    """
    root = Path(root)
    found = set()
    for pattern in NOTEBOOK_GLOBS:
        for path in root.glob(pattern):
            if path.is_file() and ".ipynb_checkpoints" not in path.relative_to(root).parts:
                found.add(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def select_notebooks(notebooks: list[Path], patterns: list[str], root: Path) -> list[Path]:
    """The notebooks whose path relative to ``root`` contains any of ``patterns``.

    No patterns selects everything.  Raises ``ValueError`` naming the available
    notebooks when a pattern matches none of them.
    """
    if not patterns:
        return list(notebooks)
    rel = {nb: Path(nb).relative_to(root).as_posix() for nb in notebooks}
    unmatched = [p for p in patterns if not any(p in r for r in rel.values())]
    if unmatched:
        available = "\n".join(f"  {r}" for r in rel.values()) or "  (none)"
        raise ValueError(f"no notebook matches {', '.join(map(repr, unmatched))}; "
                         f"available notebooks:\n{available}")
    return [nb for nb in notebooks if any(p in rel[nb] for p in patterns)]


# --------------------------------------------------------------------------- execution


@dataclass
class NotebookResult:
    """What happened when one notebook ran."""

    path: Path
    ok: bool
    seconds: float
    saved: bool = False
    cell_index: int | None = None   # index in ``nb.cells`` of the failing cell
    cell_count: int = 0             # number of cells in the notebook
    cell_source: str = ""           # first line of the failing cell
    error_name: str = ""
    error_value: str = ""

    @property
    def status(self) -> str:
        """``"ok"`` or ``"FAILED"``."""
        return "ok" if self.ok else "FAILED"

    def describe_error(self) -> str:
        """``cell 3 of 7 (`raise X`): ValueError: boom``; empty when the notebook passed."""
        if self.ok:
            return ""
        where = "before the first cell" if self.cell_index is None else \
            f"cell {self.cell_index + 1} of {self.cell_count}"
        if self.cell_source:
            where += f" (`{self.cell_source}`)"
        error = f"{self.error_name}: {self.error_value}" if self.error_value else self.error_name
        return f"{where}: {error}"


@contextlib.contextmanager
def _environ(**values: str):
    """Set environment variables for the duration of the block, then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _kernel_manager_class():
    """An ``AsyncKernelManager`` whose ``python3`` kernel is this interpreter (``sys.executable``).

    A user-installed ``python3`` kernelspec may point at another environment;
    the course always runs in the one that launched it.  The manager also
    provisions CurveZMQ keys where pyzmq supports them.
    """
    import ipykernel.kernelspec
    import zmq
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from traitlets import default

    class CurrentEnvSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            if kernel_name == KERNEL_NAME:
                return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES,
                                              **ipykernel.kernelspec.get_kernel_dict())
            return super().get_kernel_spec(kernel_name)

    class CurrentEnvKernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _current_env_specs(self):
            return CurrentEnvSpecs(data_dir=self.data_dir)

        @default("transport_encryption")
        def _encrypt_when_possible(self):
            # CurveZMQ keys when pyzmq has them: the kernel then does not warn about plain TCP
            return "auto" if zmq.has("curve") else "disabled"

    return CurrentEnvKernelManager


def _first_line(source: str) -> str:
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return text if len(text) <= 60 else text[:57] + "..."


def _code_cell_count(nb) -> int:
    return sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())


def run_notebook(path: Path, fast: bool = False, save: bool = True,
                 timeout: float | None = DEFAULT_TIMEOUT, progress: bool = True,
                 label: str | None = None) -> NotebookResult:
    """Execute ``path`` in its own folder with a fresh kernel and return what happened.

    Args:
        path: the ``.ipynb`` file.
        fast: run with ``DL4CV_FAST=1`` in the kernel's environment (otherwise inherit).
        save: write the executed notebook back in place when it succeeds; a failing
            notebook is left untouched so committed outputs survive.
        timeout: per-cell limit in seconds (``None``: no limit).
        progress: show a tqdm bar advancing per executed code cell.
        label: name shown on the bar (default: the file name).

    Errors inside the notebook (a raising cell, a timeout, a dead kernel) are
    returned in the :class:`NotebookResult`, not raised.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from tqdm.auto import tqdm

    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    current = {"index": None}
    bar = tqdm(total=_code_cell_count(nb), desc=label or path.name, unit="cell",
               leave=False, disable=not progress)

    def on_cell_start(cell, cell_index, **_):
        current["index"] = cell_index

    def on_cell_executed(cell, cell_index, **_):
        bar.update(1)

    client = NotebookClient(
        nb, timeout=timeout, kernel_name=KERNEL_NAME, kernel_manager_class=_kernel_manager_class(),
        resources={"metadata": {"path": str(path.parent)}}, record_timing=False,
        on_cell_start=on_cell_start, on_cell_executed=on_cell_executed,
    )
    result = NotebookResult(path=path, ok=True, seconds=0.0, cell_count=len(nb.cells))
    start = time.perf_counter()
    # Headless: no slider can be moved, and nbclient can stall for a whole cell timeout on a cell that
    # displays ipywidgets (jupyter/nbclient#312), so the widget helpers of helpers.vis draw statically.
    overrides = {"DL4CV_HEADLESS": "1", **({"DL4CV_FAST": "1"} if fast else {})}
    try:
        with _environ(**overrides):
            client.execute()
    except CellExecutionError as exc:
        result.ok, result.error_name, result.error_value = False, exc.ename, exc.evalue
    except Exception as exc:  # timeouts, dead kernels, kernels that fail to start
        result.ok, result.error_name, result.error_value = False, type(exc).__name__, str(exc)
    finally:
        bar.close()
    result.seconds = time.perf_counter() - start
    if not result.ok and current["index"] is not None:
        result.cell_index = current["index"]
        result.cell_source = _first_line(nb.cells[current["index"]].source)
    if result.ok and save:
        nbformat.write(nb, path)
        result.saved = True
    return result


# --------------------------------------------------------------------------- results


def update_readme_table(readme: Path, results_dir: Path) -> tuple[bool, str]:
    """Rebuild the README results table; return ``(updated, message)``.

    Skips, with the reason in the message, when the README is missing or has
    no results markers; never raises for those.
    """
    from helpers import results

    readme = Path(readme)
    if not readme.is_file():
        return False, f"skipped README table: {readme} not found"
    text = readme.read_text()
    if results.START not in text or results.END not in text:
        return False, (f"skipped README table: {readme} has no {results.START} ... "
                       f"{results.END} markers")
    changed = results.update_readme(readme, results_dir)
    count = len(results.load_results(results_dir))
    state = "updated" if changed else "already up to date"
    return changed, f"results: {count} recorded in {results_dir}; README table {state} ({readme})"


def summary_table(results: list[NotebookResult], root: Path) -> str:
    """A plain-text table: notebook, status, seconds."""
    names = [_relative(r.path, root) for r in results]
    width = max([len("notebook"), *map(len, names)])
    lines = [f"{'notebook':<{width}}  status  seconds"]
    for name, r in zip(names, results, strict=True):
        lines.append(f"{name:<{width}}  {r.status:<6}  {r.seconds:7.1f}")
    return "\n".join(lines)


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def print_summary(results: list[NotebookResult], root: Path) -> None:
    """Print the summary table and the number of failures."""
    print()
    print(summary_table(results, root))
    failed = sum(not r.ok for r in results)
    print(f"notebooks: {len(results) - failed} ran cleanly, {failed} failed")


def _result_line(result: NotebookResult, root: Path) -> str:
    line = f"{result.status:<6}  {_relative(result.path, root)}  ({result.seconds:.1f} s)"
    if not result.ok:
        line += f"\n        {result.describe_error()}  (outputs not saved)"
    return line


# --------------------------------------------------------------------------- environment check


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
    """Everything ``--check`` reports."""

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
    """For each dataset of :data:`helpers.data.DATASETS`: present, downloadable or missing."""
    from helpers import data

    statuses = []
    for name in data.DATASETS:
        found = data.find_dataset_folder(name, cfg)
        if found is not None:
            statuses.append(DatasetStatus(name, "present", folder=found))
        elif not cfg.offline:
            statuses.append(DatasetStatus(name, "downloadable"))
        else:
            folder = data.candidate_folders(name, cfg)[0]
            statuses.append(DatasetStatus(name, "missing", remedy=_dataset_remedy(name, folder)))
    return statuses


def check_environment() -> EnvironmentReport:
    """Gather the ``--check`` report: packages, Python, platform, config, device, datasets."""
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


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.course",
        description="Run the course's notebooks headless and rebuild the README results table.")
    parser.add_argument("patterns", nargs="*", metavar="PATTERN",
                        help="run only notebooks whose path contains one of these (e.g. A1, knn)")
    parser.add_argument("--fast", action="store_true", help="fast mode: DL4CV_FAST=1 in the kernels")
    parser.add_argument("--check", action="store_true",
                        help="print an environment report and exit (1 if something is missing)")
    parser.add_argument("--no-save", dest="save", action="store_false",
                        help="trial run: leave the repository as it is (notebooks, results/, the README "
                             "table, checkpoints); results and checkpoints go to a temporary folder")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"per-cell time limit in seconds, 0 for none (default {DEFAULT_TIMEOUT})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The CLI; returns the exit code (0 ok, 1 a notebook failed or the check failed, 2 usage)."""
    args = _parser().parse_args(argv)
    if args.check:
        report = check_environment()
        print_environment_report(report)
        return 0 if report.ok else 1
    root = course_root()
    try:
        notebooks = select_notebooks(discover_notebooks(root), args.patterns, root)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"error: no notebooks found under {root}", file=sys.stderr)
        return 2
    mode = "fast" if args.fast else "full"
    print(f"running {len(notebooks)} notebook(s) in {mode} mode under {root}")
    timeout = args.timeout if args.timeout > 0 else None
    with contextlib.ExitStack() as stack:
        if not args.save:  # a trial run writes its results and checkpoints to a folder that is then deleted
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="dl4cv-trial-"))
            stack.enter_context(_environ(DL4CV_RESULTS_DIR=os.path.join(scratch, "results"),
                                         DL4CV_CHECKPOINT_DIR=os.path.join(scratch, "checkpoints")))
        results = []
        for path in notebooks:
            result = run_notebook(path, fast=args.fast, save=args.save, timeout=timeout,
                                  label=_relative(path, root))
            print(_result_line(result, root), flush=True)
            results.append(result)
    if args.save:
        _, message = update_readme_table(root / "README.md", get_config().results_dir)
        print(message)
    else:
        print("trial run (--no-save): notebooks, results and the README table left as they were")
    print_summary(results, root)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
