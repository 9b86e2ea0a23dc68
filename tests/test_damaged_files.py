"""Every file the course saves is checked before it is used: a damaged one is refused, clearly.

Each kind of file (training checkpoints, the Solver's checkpoints, A2 / A3 saved models, the
papers' saved models, data caches) is written, then damaged: every single-bit flip tried
anywhere in the file, a truncation, an empty file, random bytes, another program's file.
Loading must raise one :class:`DamagedFileError` naming the file, with advice, and never the
advice to load with ``weights_only=False``.
"""

import os
import random
from pathlib import Path

import pytest
import torch
from torch import nn

from A2_linear.linear_classifier import LinearSVM
from A2_linear.two_layer_net import TwoLayerNet
from A3_fc_cnn.fully_connected_networks import FullyConnectedNet
from helpers.datasets import captions
from helpers.export import load_model, save_model
from helpers.solver import Solver
from helpers.train import (
    DamagedFileError,
    atomic_save,
    checkpoint_path,
    load_checkpoint,
    load_verified,
    save_checkpoint,
)

FLIPS = 40


def _solver(name):
    torch.manual_seed(0)
    X, y = torch.randn(40, 6, dtype=torch.float64), torch.randint(0, 3, (40,))
    model = FullyConnectedNet([5], input_dim=6, num_classes=3, dtype=torch.float64)
    return Solver(model, {"X_train": X, "y_train": y, "X_val": X[:10], "y_val": y[:10]}, num_epochs=1,
                  batch_size=10, checkpoint_name=name, verbose=False)


def _linear_svm():
    svm = LinearSVM()
    svm.W = torch.randn(6, 3)
    return svm


def _save_train(path):
    model = nn.Linear(4, 3)
    save_checkpoint(path, model, torch.optim.Adam(model.parameters()), history={"loss": [1.0, 0.5]})


def _save_cache(path):
    captions._save_cache(path, {"images": torch.rand(3, 2, 2), "ids": [1, 2, 3]})


def _load_cache(path):
    if captions._load_cache(path) is None:   # the cache's answer to damage: build it again
        raise DamagedFileError("cache refused")


# name: (write the file at path, read it back; returns path the kind really writes to)
KINDS = {
    "training checkpoint": (_save_train, lambda p: load_checkpoint(p, nn.Linear(4, 3))),
    "solver checkpoint": (None, None),   # the Solver chooses its path: see _solver_paths
    "A2 LinearSVM": (lambda p: _linear_svm().save(p), lambda p: LinearSVM().load(p)),
    "A2 TwoLayerNet": (lambda p: TwoLayerNet(6, 4, 3).save(p), lambda p: TwoLayerNet(6, 4, 3).load(p)),
    "A3 FullyConnectedNet": (lambda p: FullyConnectedNet([5], input_dim=6, num_classes=3).save(p),
                             lambda p: FullyConnectedNet([5], input_dim=6, num_classes=3).load(p)),
    "papers' saved model": (lambda p: save_model(nn.Linear(4, 3), {"in_features": 4, "out_features": 3}, p),
                            lambda p: load_model(p, nn.Linear)),
    "data cache": (_save_cache, _load_cache),
}


def _write(kind, tmp_path, request):
    """Write one file of ``kind``; return ``(path, load)``."""
    if kind == "solver checkpoint":
        name = f"damaged_{request.node.name}".replace("[", "_").replace("]", "").replace(" ", "_")
        _solver(name).train()
        return checkpoint_path(name), lambda p: _solver(name)
    save, load = KINDS[kind]
    path = tmp_path / "file.pt"
    save(path)
    load(path)                                   # the intact file loads
    return path, load


def _refused(load, path, what=""):
    with pytest.raises(DamagedFileError) as caught:
        load(path)
    message = str(caught.value)
    if "cache refused" not in message:
        assert str(path) in message and "weights_only" not in message, message
        assert "Delete it" in message or "delete it" in message, message
    return message


@pytest.mark.parametrize("kind", KINDS)
def test_every_bit_flip_is_caught(kind, tmp_path, request):
    path, load = _write(kind, tmp_path, request)
    original = path.read_bytes()
    rng = random.Random(f"{kind}")
    positions = sorted(rng.sample(range(len(original) * 8), FLIPS)) + [len(original) * 8 - 1, 0]
    for bit in positions:
        damaged = bytearray(original)
        damaged[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(damaged))
        _refused(load, path)
    path.write_bytes(original)
    load(path)


@pytest.mark.parametrize("kind", KINDS)
def test_truncated_empty_random_and_foreign_files_are_refused(kind, tmp_path, request):
    path, load = _write(kind, tmp_path, request)
    original = path.read_bytes()
    for damaged, expected in ((original[: len(original) // 2], "no checksum"), (b"", "empty"),
                              (os.urandom(len(original)), "no checksum")):
        path.write_bytes(damaged)
        message = _refused(load, path)
        assert expected in message or "cache refused" in message
    torch.save({"model": {}}, path)                # a file another program wrote
    assert "no checksum" in _refused(load, path) or kind == "data cache"


def test_a_checksummed_file_that_is_not_plain_data_is_refused_without_running_it(tmp_path):
    """A pickle that would call a function when unpickled, with a correct checksum: refused,
    and the function does not run (``torch.load(weights_only=True)`` underneath)."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as file:      # atomic_save refuses such payloads, so write its format by hand
        torch.save({"model": Payload()}, file)
    import hashlib

    body = path.read_bytes()
    path.write_bytes(body + b"\n#dl4cv-sha256:" + hashlib.sha256(body).hexdigest().encode())
    message = _refused(lambda p: load_verified(p), path)
    assert "cannot be read" in message and "other than tensors" in message
    assert not marker.exists()


def test_a_save_removes_temporary_files_that_interrupted_saves_left(tmp_path):
    path = tmp_path / "run.pt"
    stale = [tmp_path / f".run.pt.{pid}.tmp" for pid in (123, 4567)]
    for leftover in stale:
        leftover.write_bytes(b"half a checkpoint")
    unrelated = tmp_path / ".other.pt.123.tmp"
    unrelated.write_bytes(b"another run's")
    atomic_save({"x": torch.ones(2)}, path)
    assert not any(p.exists() for p in stale) and unrelated.exists()
    assert torch.equal(load_verified(path)["x"], torch.ones(2))


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing.pt", nn.Linear(2, 2))
    assert not (tmp_path / "nothing.pt").exists()


def test_plain_torch_load_still_reads_a_course_file(tmp_path):
    """The checksum trails the archive: the file stays a torch file for other tools."""
    path = tmp_path / "model.pt"
    save_model(nn.Linear(4, 3), {"in_features": 4, "out_features": 3}, path)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert set(saved) >= {"model", "config"} and Path(path).read_bytes()[-79:].startswith(b"\n#dl4cv-sha256:")
