"""Record a run's headline metrics and build the README results table from them.

A notebook's summary cell calls :func:`record`, which writes
``results/<notebook>.json``.  :func:`update_readme` rebuilds the table between
the ``<!-- results:start -->`` and ``<!-- results:end -->`` markers of README.md
from those files, so no number in the README is typed by hand.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
from pathlib import Path

from helpers.config import Config, get_config

START = "<!-- results:start -->"
END = "<!-- results:end -->"


def _check_metrics(metrics: dict) -> dict:
    if not isinstance(metrics, dict) or not metrics:
        raise TypeError("metrics must be a non-empty dict of name -> number")
    clean = {}
    for name, value in metrics.items():
        if not isinstance(name, str):
            raise TypeError(f"metric names must be strings, got {name!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {name!r} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"metric {name!r} is not finite: {number}")
        clean[name] = number
    return clean


def verdict(met: bool, cfg: Config | None = None) -> str:
    """How a notebook prints a target of its full-mode run: ``"met ✓"``, or ``"NOT met ✗"`` (the mark
    ``python -m course.run`` reports).  Fast mode trains a fraction of the run, so a miss there is expected:
    ``"not met in fast mode"``, without the mark."""
    if met:
        return "met ✓"
    return "not met in fast mode" if (cfg or get_config()).fast else "NOT met ✗"


def record(notebook: str, metrics: dict, cfg: Config | None = None, notes: str = "",
           verbose: bool = True) -> Path:
    """Write ``<cfg.results_dir>/<notebook>.json`` with the headline metrics of this run.

    Args:
        notebook: short name of the notebook, e.g. ``"knn"``.
        metrics: ``{"test accuracy": 0.85, ...}``; values are numbers.
        cfg: the notebook's config (mode, dataset, device and seed are stored with it).
        notes: optional free text shown in the table (e.g. ``"k=5"``).

    Returns the path written.
    """
    cfg = cfg or get_config()
    entry = {
        "notebook": notebook,
        "metrics": _check_metrics(metrics),
        "mode": cfg.mode,
        "dataset": cfg.dataset,
        "device": cfg.device,
        "seed": cfg.seed,
        "notes": notes,
        "python": platform.python_version(),
        "date": _dt.date.today().isoformat(),
    }
    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.results_dir / f"{notebook}.json"
    path.write_text(json.dumps(entry, indent=2) + "\n")
    if verbose:
        print(f"recorded {', '.join(entry['metrics'])} for {notebook} ({cfg.mode} mode)")
    return path


def load_results(results_dir: Path) -> list[dict]:
    """All recorded entries in ``results_dir``, sorted by notebook name."""
    entries = []
    for path in sorted(Path(results_dir).glob("*.json")):
        entry = json.loads(path.read_text())
        if "notebook" in entry and "metrics" in entry:
            entries.append(entry)
    return entries


def _format_value(name: str, value: float) -> str:
    first_word = name.lower().split()[0].split("@")[0] if name.strip() else ""
    if "accuracy" in name or first_word in {"map", "bleu-4"}:  # "mAP", "BLEU-4 LSTM", "mAP@0.5"
        return f"{100 * value:.2f}%" if 0 <= value <= 1 else f"{value:.4g}"
    return f"{value:.4g}"


def results_table(entries: list[dict]) -> str:
    """A Markdown table with one row per recorded metric."""
    lines = ["| notebook | metric | value | mode | dataset | device | notes | date |",
             "|---|---|---|---|---|---|---|---|"]
    for e in entries:
        for name, value in e["metrics"].items():
            lines.append(f"| {e['notebook']} | {name} | {_format_value(name, value)} | {e['mode']} "
                         f"| {e['dataset']} | {e['device']} | {e.get('notes', '')} | {e.get('date', '')} |")
    if len(lines) == 2:
        lines.append("| (no results yet: run `make course`) | | | | | | | |")
    return "\n".join(lines)


def update_readme(readme: Path, results_dir: Path) -> bool:
    """Replace the table between the results markers of ``readme``; return whether it changed."""
    readme = Path(readme)
    text = readme.read_text()
    if START not in text or END not in text or text.index(START) > text.index(END):
        raise ValueError(f"{readme} needs the markers {START} and {END}, in that order")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{results_table(load_results(results_dir))}\n{END}{tail}"
    if new != text:
        readme.write_text(new)
    return new != text
