"""Run the course's notebooks headless and rebuild the README results table.

Usage::

    python -m course.run                  # run every notebook (full mode), save outputs
    python -m course.run --fast A1 knn    # fast mode, only notebooks whose path contains A1 or knn
    python -m course.run --no-save vit    # trial run: the repository is left as it was
    python -m course.run --strict A5      # exit non-zero when a check cell printed a failure (✗)

Notebooks are ``A*/*.ipynb`` and ``papers/*.ipynb`` under the repository root.
Each runs in its own folder with a fresh ``python3`` kernel of the current
environment; a failing notebook is reported (cell, error) and the others still
run.  Every line a check cell printed with ``✗`` (``helpers.gradcheck.check`` / ``check_true``)
is reported under its notebook, so a floor missed in a full or VOC run is never silent;
``--strict`` makes such a run exit with 1.  Afterwards the table between the results markers of ``README.md`` is
rebuilt from ``results/*.json`` (see :mod:`helpers.results`).

The environment report for bug reports is :mod:`helpers.environment_report`
(students need it too, so it ships with the student version).

Library functions here return data and print nothing; only the ``print_*``
functions and :func:`main` print.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers.config import get_config, repo_root

__all__ = [
    "DEFAULT_TIMEOUT",
    "FAILED_CHECK_MARK",
    "NOTEBOOK_GLOBS",
    "NotebookResult",
    "course_root",
    "discover_notebooks",
    "failed_checks",
    "main",
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
#: What ``helpers.gradcheck.check`` / ``check_true`` print for a check that failed.
FAILED_CHECK_MARK = "✗"
KERNEL_NAME = "python3"


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
    failed_checks: list = field(default_factory=list)  # (cell index, printed line) of every ✗

    @property
    def clean(self) -> bool:
        """Ran to the end and no check printed ✗."""
        return self.ok and not self.failed_checks

    @property
    def status(self) -> str:
        """``"ok"``, ``"CHECKS"`` (ran, but a check printed ✗) or ``"FAILED"``."""
        return "FAILED" if not self.ok else "CHECKS" if self.failed_checks else "ok"

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


def failed_checks(nb) -> list[tuple[int, str]]:
    """``(cell index, line)`` of every printed line holding :data:`FAILED_CHECK_MARK` in an executed notebook."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else \
                output.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            found += [(index, line.strip()) for line in text.splitlines() if FAILED_CHECK_MARK in line]
    return found


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
    result.failed_checks = failed_checks(nb)
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
    """Print the summary table, the number of failures and of notebooks whose checks printed ✗."""
    print()
    print(summary_table(results, root))
    failed = sum(not r.ok for r in results)
    checked = [r for r in results if r.ok and r.failed_checks]
    line = f"notebooks: {sum(r.clean for r in results)} ran cleanly, {failed} failed"
    if checked:
        line += (f", {len(checked)} ran to the end with {sum(len(r.failed_checks) for r in checked)} failed "
                 f"check(s) ({FAILED_CHECK_MARK}, listed above)")
    print(line)


def _result_line(result: NotebookResult, root: Path) -> str:
    line = f"{result.status:<6}  {_relative(result.path, root)}  ({result.seconds:.1f} s)"
    if not result.ok:
        line += f"\n        {result.describe_error()}  (outputs not saved)"
    for index, text in result.failed_checks:
        line += f"\n        cell {index + 1}: {text}"
    return line


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course.run",
        description="Run the course's notebooks headless and rebuild the README results table.")
    parser.add_argument("patterns", nargs="*", metavar="PATTERN",
                        help="run only notebooks whose path contains one of these (e.g. A1, knn)")
    parser.add_argument("--fast", action="store_true", help="fast mode: DL4CV_FAST=1 in the kernels")
    parser.add_argument("--no-save", dest="save", action="store_false",
                        help="trial run: leave the repository as it is (notebooks, results/, the README "
                             "table, checkpoints); results and checkpoints go to a temporary folder")
    parser.add_argument("--strict", action="store_true",
                        help=f"exit with 1 when a check cell printed a failure ({FAILED_CHECK_MARK}), not only "
                             "when a notebook stops")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"per-cell time limit in seconds, 0 for none (default {DEFAULT_TIMEOUT})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The CLI; returns the exit code (0 ok, 1 a notebook failed -- or, with ``--strict``, a check printed
    ✗ --, 2 usage)."""
    args = _parser().parse_args(argv)
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
    if not all(r.ok for r in results):
        return 1
    return 1 if args.strict and any(r.failed_checks for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
