"""Tests for helpers.results: recording metrics and rebuilding the README table."""

import json

import numpy as np
import pytest
import torch

from helpers.config import Config
from helpers.results import END, START, load_results, record, results_table, update_readme, verdict


@pytest.fixture
def cfg(tmp_path):
    return Config(fast=True, dataset="fashion_mnist", device="cpu", seed=3,
                  results_dir=tmp_path / "results")


def _entry(notebook, metrics, mode="fast", dataset="cifar10", notes="", date="2024-01-02"):
    return {"notebook": notebook, "metrics": metrics, "mode": mode, "dataset": dataset,
            "device": "cpu", "seed": 0, "notes": notes, "date": date}


def test_verdict_marks_a_full_mode_miss_only(cfg):
    """A ✗ is what ``course.run`` reports: full mode's misses carry it, fast mode's (expected) do not."""
    full = Config(fast=False, dataset="fashion_mnist", device="cpu", seed=3, results_dir=cfg.results_dir)
    assert verdict(True, full) == verdict(True, cfg) == "met ✓"
    assert verdict(False, full) == "NOT met ✗"
    assert "✗" not in verdict(False, cfg) and "not met" in verdict(False, cfg)


def test_record_writes_json(cfg, capsys):
    path = record("knn", {"test accuracy": 0.5, "k": 5}, cfg=cfg, notes="k=5")
    assert path == cfg.results_dir / "knn.json"
    entry = json.loads(path.read_text())
    assert entry["notebook"] == "knn"
    assert entry["metrics"] == {"test accuracy": 0.5, "k": 5.0}
    assert entry["mode"] == "fast" and entry["dataset"] == "fashion_mnist"
    assert entry["seed"] == 3 and entry["device"] == "cpu"
    assert entry["notes"] == "k=5"
    assert "recorded test accuracy, k for knn (fast mode)" in capsys.readouterr().out


def test_record_quiet_and_accepts_tensor_and_numpy_scalars(cfg, capsys):
    record("vit", {"loss": torch.tensor(1.25), "acc": np.float32(0.75)}, cfg=cfg, verbose=False)
    assert capsys.readouterr().out == ""
    assert load_results(cfg.results_dir)[0]["metrics"] == {"loss": 1.25, "acc": 0.75}


def test_record_reads_results_dir_from_environment_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setenv("DL4CV_RESULTS_DIR", str(tmp_path / "from_env"))
    monkeypatch.setenv("DL4CV_FAST", "1")
    monkeypatch.setenv("DL4CV_DEVICE", "cpu")
    path = record("tiny", {"test accuracy": 0.5}, verbose=False)
    assert path == tmp_path / "from_env" / "tiny.json"
    assert json.loads(path.read_text())["mode"] == "fast"


@pytest.mark.parametrize("metrics, error, match", [
    ({"acc": "high"}, TypeError, "'acc' must be a number"),
    ({"acc": None}, TypeError, "must be a number"),
    ({"acc": [0.5]}, TypeError, "must be a number"),
    ({"acc": float("nan")}, ValueError, "'acc' is not finite"),
    ({"acc": np.nan}, ValueError, "not finite"),
    ({"loss": float("inf")}, ValueError, "not finite"),
    ({}, TypeError, "non-empty dict"),
    ([("acc", 0.5)], TypeError, "non-empty dict"),
    ({1: 0.5}, TypeError, "metric names must be strings"),
])
def test_record_rejects_bad_metrics(cfg, metrics, error, match):
    with pytest.raises(error, match=match):
        record("knn", metrics, cfg=cfg)
    assert not (cfg.results_dir / "knn.json").exists()


def test_load_results_sorted_and_skips_foreign_json(tmp_path):
    (tmp_path / "b.json").write_text(json.dumps(_entry("b", {"loss": 1.0})))
    (tmp_path / "a.json").write_text(json.dumps(_entry("a", {"loss": 2.0})))
    (tmp_path / "other.json").write_text(json.dumps({"something": "else"}))
    assert [e["notebook"] for e in load_results(tmp_path)] == ["a", "b"]
    assert load_results(tmp_path / "missing") == []


def test_results_table_rows():
    table = results_table([
        _entry("knn", {"test accuracy": 0.8512, "val loss": 0.123456}, notes="k=5"),
        _entry("detr", {"mAP": 0.25}, mode="full", dataset="voc2007"),
    ])
    lines = table.splitlines()
    assert lines[0] == "| notebook | metric | value | mode | dataset | device | notes | date |"
    assert lines[1] == "|---|---|---|---|---|---|---|---|"
    assert lines[2] == "| knn | test accuracy | 85.12% | fast | cifar10 | cpu | k=5 | 2024-01-02 |"
    assert lines[3] == "| knn | val loss | 0.1235 | fast | cifar10 | cpu | k=5 | 2024-01-02 |"
    assert lines[4] == "| detr | mAP | 25.00% | full | voc2007 | cpu |  | 2024-01-02 |"
    assert len(lines) == 5


def test_results_table_shows_bleu_and_map_of_named_models_as_percentages():
    table = results_table([_entry("captioning", {"BLEU-4 LSTM": 0.4321, "mAP FCOS": 0.8, "mapping loss": 0.5,
                                                  "Fréchet distance GAN": 0.5, "mAP@0.5 test": 0.7})])
    rows = [line.split(" | ")[1:3] for line in table.splitlines()[2:]]
    assert rows == [["BLEU-4 LSTM", "43.21%"], ["mAP FCOS", "80.00%"], ["mapping loss", "0.5"],
                    ["Fréchet distance GAN", "0.5"], ["mAP@0.5 test", "70.00%"]]


def test_results_table_without_entries_says_how_to_fill_it():
    lines = results_table([]).splitlines()
    assert len(lines) == 3 and "make course" in lines[2]


README = f"""# Course

Intro text.

{START}
| old table |
{END}

## After
Text after the table.
"""


def test_update_readme_replaces_only_between_markers(tmp_path, cfg):
    record("knn", {"test accuracy": 0.5}, cfg=cfg, verbose=False)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    assert update_readme(readme, cfg.results_dir) is True
    text = readme.read_text()
    head, rest = text.split(START)
    table, tail = rest.split(END)
    assert head == README.split(START)[0]
    assert tail == README.split(END)[1]
    assert "| old table |" not in text
    assert "| knn | test accuracy | 50.00% | fast | fashion_mnist | cpu |" in table


def test_update_readme_is_idempotent(tmp_path, cfg):
    record("knn", {"test accuracy": 0.5}, cfg=cfg, verbose=False)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    update_readme(readme, cfg.results_dir)
    once = readme.read_text()
    assert update_readme(readme, cfg.results_dir) is False
    assert readme.read_text() == once


@pytest.mark.parametrize("text", ["# no markers\n", f"only {START}\n", f"{END}\nthen\n{START}\n"])
def test_update_readme_needs_markers(tmp_path, text):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(ValueError, match="needs the markers"):
        update_readme(readme, tmp_path)
    assert readme.read_text() == text
