"""Tests for helpers.datasets: tiny files in the real formats, written into tmp_path.

Nothing here touches the network: an autouse fixture replaces the download
function with one that fails the test.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

import helpers.datasets as data
from helpers.config import get_config
from helpers.datasets import files

NAMES = ("cifar10", "mnist", "fashion_mnist")
SYSTEM_DIR = data.SYSTEM_FASHION_MNIST_DIR
SYSTEM_FILES_PRESENT = all(
    (SYSTEM_DIR / f"{stem}.gz").is_file()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
)


# --------------------------------------------------------------------------- writers


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    raw = idx_bytes(array)
    if compress:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)


def fake_idx_split(num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(num, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = 0
    images[:, 27, 27] = 255
    labels = (np.arange(num) % 10).astype(np.uint8)
    return images, labels


def write_idx_dataset(folder, num_train=7, num_test=4, compress=True):
    """Write the four IDX files of an MNIST-like dataset; return the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = fake_idx_split(num_train, seed=1)
    x_test, y_test = fake_idx_split(num_test, seed=2)
    write_idx(folder / "train-images-idx3-ubyte", x_train, compress)
    write_idx(folder / "train-labels-idx1-ubyte", y_train, compress)
    write_idx(folder / "t10k-images-idx3-ubyte", x_test, compress)
    write_idx(folder / "t10k-labels-idx1-ubyte", y_test, compress)
    return x_train, y_train, x_test, y_test


def cifar_rows(num: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(num, 3072), dtype=np.uint8)


def write_cifar_batch(path, rows: np.ndarray, labels: list[int]) -> None:
    batch = {b"batch_label": b"fake batch", b"data": rows, b"labels": labels,
             b"filenames": [b"img%d.png" % i for i in range(len(labels))]}
    with open(path, "wb") as fh:
        pickle.dump(batch, fh)


def write_cifar_dataset(data_dir, per_batch=2, num_test=3):
    """Five training batches and a test batch; return (train rows, train labels, test rows, test labels)."""
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_rows, train_labels = [], []
    for b in range(1, 6):
        rows = cifar_rows(per_batch, seed=b)
        labels = [(b + i) % 10 for i in range(per_batch)]
        write_cifar_batch(folder / f"data_batch_{b}", rows, labels)
        train_rows.append(rows)
        train_labels += labels
    test_rows = cifar_rows(num_test, seed=99)
    test_labels = [i % 10 for i in range(num_test)]
    write_cifar_batch(folder / "test_batch", test_rows, test_labels)
    return np.concatenate(train_rows), train_labels, test_rows, test_labels


def offline_cfg(tmp_path):
    return get_config(environ={"DL4CV_DATA_DIR": str(tmp_path), "DL4CV_OFFLINE": "1",
                               "DL4CV_DEVICE": "cpu"})


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """Any download attempt fails the test."""
    def forbidden(name, cfg):
        pytest.fail(f"download_dataset({name!r}) was called")
    monkeypatch.setattr(files, "download_dataset", forbidden)


@pytest.fixture
def no_system_fashion(monkeypatch, tmp_path):
    """Hide /usr/share/datasets/fashion-mnist so 'missing' really is missing."""
    monkeypatch.setattr(files, "SYSTEM_FASHION_MNIST_DIR", tmp_path / "no-system-folder")


# --------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("shape", [(5,), (3, 4, 2)])
def test_read_idx_roundtrip(tmp_path, compress, shape):
    array = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    write_idx(tmp_path / "a-idx", array, compress)
    path = tmp_path / ("a-idx.gz" if compress else "a-idx")
    out = data.read_idx(path)
    assert out.dtype == np.uint8 and out.shape == shape
    np.testing.assert_array_equal(out, array)
    out[...] = 0  # writeable
    np.testing.assert_array_equal(data.read_idx(path), array)


@pytest.mark.parametrize("raw, match", [
    (b"\x00\x00\x0d\x01" + struct.pack(">I", 2) + b"\x00" * 8, "magic"),   # float elements
    (b"\x01\x02\x08\x01" + struct.pack(">I", 2) + b"ab", "magic"),         # garbage
    (b"\x00\x00\x08\x00", "magic"),                                         # zero dimensions
    (b"\x00\x00", "not an IDX"),                                            # too short
    (b"\x00\x00\x08\x03" + struct.pack(">I", 10), "truncated IDX header"),
    (b"\x00\x00\x08\x02" + struct.pack(">2I", 3, 4) + b"\x01" * 11, "truncated or corrupt"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"\x01" * 4, "truncated or corrupt"),
])
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_corrupt(tmp_path, raw, match, compress):
    path = tmp_path / "bad-idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(ValueError, match=match) as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_truncated_gzip(tmp_path):
    path = tmp_path / "bad-idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 28, 28), np.uint8)))[:60])
    with pytest.raises(ValueError, match="gzip"):
        data.read_idx(path)


# --------------------------------------------------------------------------- IDX datasets


@pytest.mark.parametrize("name, subdir", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
@pytest.mark.parametrize("compress", [False, True])
def test_load_idx_dataset(tmp_path, no_system_fashion, name, subdir, compress):
    written = write_idx_dataset(tmp_path / subdir / "raw", compress=compress)
    x_train, y_train, x_test, y_test = data.load_dataset(name, cfg=offline_cfg(tmp_path))
    for x, y, (images, labels) in ((x_train, y_train, written[:2]), (x_test, y_test, written[2:])):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (len(labels), 1, 28, 28) and y.shape == (len(labels),)
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert torch.all(x[:, 0, 0, 0] == 0.0) and torch.all(x[:, 0, 27, 27] == 1.0)
        torch.testing.assert_close(x[:, 0], torch.from_numpy(images).float() / 255, rtol=0, atol=1e-7)
        assert y.tolist() == labels.tolist()


def test_named_loaders_match_load_dataset(tmp_path, no_system_fashion):
    cfg = offline_cfg(tmp_path)
    write_idx_dataset(tmp_path / "MNIST" / "raw")
    write_idx_dataset(tmp_path / "FashionMNIST" / "raw", num_train=5)
    write_cifar_dataset(tmp_path)
    for loader, name in ((data.load_mnist, "mnist"), (data.load_fashion_mnist, "fashion_mnist"),
                         (data.load_cifar10, "cifar10")):
        for a, b in zip(loader(cfg=cfg), data.load_dataset(name, cfg=cfg), strict=True):
            assert torch.equal(a, b)


def test_plain_and_gz_side_by_side(tmp_path, no_system_fashion):
    # torchvision keeps both the .gz it downloaded and the extracted file
    folder = tmp_path / "MNIST" / "raw"
    write_idx_dataset(folder, compress=True)
    written = write_idx_dataset(folder, compress=False)
    x_train, y_train, _, _ = data.load_mnist(cfg=offline_cfg(tmp_path))
    assert y_train.tolist() == written[1].tolist()


def test_fashion_mnist_falls_back_to_system_folder(tmp_path, monkeypatch):
    system = tmp_path / "system"
    written = write_idx_dataset(system, num_train=3, num_test=2)
    monkeypatch.setattr(files, "SYSTEM_FASHION_MNIST_DIR", system)
    cfg = offline_cfg(tmp_path / "empty-data-dir")
    assert data.candidate_folders("fashion_mnist", cfg) == [
        tmp_path / "empty-data-dir" / "FashionMNIST" / "raw", system]
    x_train, y_train, x_test, y_test = data.load_fashion_mnist(cfg=cfg)
    assert x_train.shape == (3, 1, 28, 28) and x_test.shape == (2, 1, 28, 28)
    assert y_test.tolist() == written[3].tolist()


def test_data_dir_wins_over_system_folder(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "system", num_train=3)
    write_idx_dataset(tmp_path / "FashionMNIST" / "raw", num_train=6)
    monkeypatch.setattr(files, "SYSTEM_FASHION_MNIST_DIR", tmp_path / "system")
    assert data.load_fashion_mnist(cfg=offline_cfg(tmp_path))[0].shape[0] == 6


def test_idx_dataset_with_wrong_image_size(tmp_path, no_system_fashion):
    folder = tmp_path / "MNIST" / "raw"
    write_idx_dataset(folder)
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((7, 10, 10), np.uint8), compress=True)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        data.load_mnist(cfg=offline_cfg(tmp_path))


def test_idx_dataset_with_count_mismatch_and_bad_labels(tmp_path):
    folder = tmp_path / "MNIST" / "raw"
    write_idx_dataset(folder)
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(6, np.uint8), compress=True)
    with pytest.raises(ValueError, match="7 train images but labels"):
        data.load_mnist(cfg=offline_cfg(tmp_path))
    write_idx(folder / "train-labels-idx1-ubyte", np.full(7, 10, np.uint8), compress=True)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        data.load_mnist(cfg=offline_cfg(tmp_path))


# --------------------------------------------------------------------------- CIFAR-10


def test_load_cifar10_values_and_channel_order(tmp_path):
    train_rows, train_labels, test_rows, test_labels = write_cifar_dataset(tmp_path)
    x_train, y_train, x_test, y_test = data.load_cifar10(cfg=offline_cfg(tmp_path))
    assert x_train.shape == (10, 3, 32, 32) and x_test.shape == (3, 3, 32, 32)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    assert y_train.tolist() == train_labels and y_test.tolist() == test_labels
    # stored row layout: 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32
    for i, c, h, w in [(0, 0, 0, 0), (3, 1, 5, 7), (9, 2, 31, 30), (4, 2, 0, 31)]:
        assert x_train[i, c, h, w].item() == pytest.approx(train_rows[i, 1024 * c + 32 * h + w] / 255)
    torch.testing.assert_close(x_test.reshape(3, -1), torch.from_numpy(test_rows).float() / 255,
                               rtol=0, atol=1e-7)


def test_cifar_channel_order_with_planted_pixel(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for b in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{b}", np.zeros((1, 3072), np.uint8), [b])
    rows = np.zeros((1, 3072), np.uint8)
    rows[0, 1024 * 1 + 32 * 2 + 3] = 255   # green, row 2, column 3
    write_cifar_batch(folder / "test_batch", rows, [7])
    _, y_train, x_test, y_test = data.load_cifar10(cfg=offline_cfg(tmp_path))
    assert y_train.tolist() == [1, 2, 3, 4, 5] and y_test.tolist() == [7]
    assert x_test.sum().item() == 1.0 and x_test[0, 1, 2, 3].item() == 1.0


def test_cifar_corrupt_batch(tmp_path):
    write_cifar_dataset(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="data_batch_3"):
        data.load_cifar10(cfg=offline_cfg(tmp_path))
    write_cifar_batch(bad, np.zeros((2, 100), np.uint8), [0, 1])
    with pytest.raises(ValueError, match=r"\(N, 3072\)"):
        data.read_cifar_batch(bad)


# --------------------------------------------------------------------------- subsets, fresh copies


def test_num_train_num_test_take_first_examples(tmp_path):
    write_cifar_dataset(tmp_path)
    cfg = offline_cfg(tmp_path)
    full = data.load_cifar10(cfg=cfg)
    sub = data.load_cifar10(num_train=4, num_test=1, cfg=cfg)
    assert [t.shape[0] for t in sub] == [4, 4, 1, 1]
    assert torch.equal(sub[0], full[0][:4]) and torch.equal(sub[1], full[1][:4])
    assert torch.equal(sub[2], full[2][:1]) and torch.equal(sub[3], full[3][:1])
    assert [t.shape[0] for t in data.load_cifar10(num_train=10, num_test=3, cfg=cfg)] == [10, 10, 3, 3]


@pytest.mark.parametrize("kwargs, match", [
    ({"num_train": 0}, r"num_train must lie in \[1, 10\]"),
    ({"num_train": 11}, r"num_train must lie in \[1, 10\]"),
    ({"num_test": 4}, r"num_test must lie in \[1, 3\]"),
    ({"num_test": -1}, r"num_test must lie in \[1, 3\]"),
    ({"num_train": 2.5}, "positive int"),
    ({"num_train": True}, "positive int"),
])
def test_bad_counts(tmp_path, kwargs, match):
    write_cifar_dataset(tmp_path)
    with pytest.raises(ValueError, match=match):
        data.load_cifar10(cfg=offline_cfg(tmp_path), **kwargs)


def test_returns_fresh_tensors(tmp_path):
    write_cifar_dataset(tmp_path)
    cfg = offline_cfg(tmp_path)
    first = data.load_cifar10(cfg=cfg)
    reference = [t.clone() for t in first]
    for t in first:
        t.zero_()
    for t, ref in zip(data.load_cifar10(cfg=cfg), reference, strict=True):
        assert torch.equal(t, ref)


def test_rewritten_files_are_parsed_again(tmp_path):
    folder = tmp_path / "MNIST" / "raw"
    write_idx_dataset(folder, num_train=7)
    cfg = offline_cfg(tmp_path)
    assert data.load_mnist(cfg=cfg)[0].shape[0] == 7
    write_idx_dataset(folder, num_train=5)
    for path in folder.iterdir():
        os.utime(path, ns=(1, 1))
    assert data.load_mnist(cfg=cfg)[0].shape[0] == 5
    data.clear_cache()
    assert data.load_mnist(cfg=cfg)[0].shape[0] == 5


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(ValueError, match="cifar10, mnist, fashion_mnist"):
        data.load_dataset("imagenet", cfg=offline_cfg(tmp_path))


def test_class_names():
    assert set(data.CLASS_NAMES) == set(NAMES)
    assert all(len(names) == 10 for names in data.CLASS_NAMES.values())
    assert data.CLASS_NAMES["fashion_mnist"][0] == "T-shirt/top"
    assert data.CLASS_NAMES["fashion_mnist"][9] == "Ankle boot"
    assert data.CLASS_NAMES["cifar10"][0] == "airplane" and data.CLASS_NAMES["mnist"][3] == "3"


# --------------------------------------------------------------------------- missing data


@pytest.mark.parametrize("name", NAMES)
def test_missing_offline_raises_clear_error(tmp_path, no_system_fashion, name):
    cfg = offline_cfg(tmp_path)
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_dataset(name, cfg=cfg)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    for folder in data.candidate_folders(name, cfg):
        assert str(folder) in message
    expected_file = "test_batch" if name == "cifar10" else "t10k-images-idx3-ubyte"
    assert expected_file in message
    assert "DL4CV_DATASET=fashion_mnist" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "offline" in message


def test_incomplete_folder_counts_as_missing(tmp_path):
    write_cifar_dataset(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(data.DatasetNotFoundError, match="cifar-10-batches-py"):
        data.load_cifar10(cfg=offline_cfg(tmp_path))


def test_failed_download_is_wrapped(tmp_path, no_system_fashion, monkeypatch):
    cause = OSError("Name or service not known")

    def failing(name, cfg):
        raise cause
    monkeypatch.setattr(files, "download_dataset", failing)
    cfg = dataclasses.replace(offline_cfg(tmp_path), offline=False)
    with pytest.raises(data.DatasetNotFoundError, match="download failed") as info:
        data.load_mnist(cfg=cfg)
    assert info.value.__cause__ is cause
    assert "Name or service not known" in str(info.value)
    assert "DL4CV_DATASET=fashion_mnist" in str(info.value)


def test_download_then_parse(tmp_path, monkeypatch):
    calls = []

    def fake_download(name, cfg):
        calls.append(name)
        write_cifar_dataset(cfg.data_dir)
    monkeypatch.setattr(files, "download_dataset", fake_download)
    cfg = dataclasses.replace(offline_cfg(tmp_path), offline=False)
    assert data.load_cifar10(cfg=cfg)[0].shape == (10, 3, 32, 32)
    assert data.load_cifar10(cfg=cfg)[0].shape == (10, 3, 32, 32)
    assert calls == ["cifar10"]  # files found the second time


def test_download_that_leaves_no_files(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "download_dataset", lambda name, cfg: None)
    cfg = dataclasses.replace(offline_cfg(tmp_path), offline=False)
    with pytest.raises(data.DatasetNotFoundError, match="still missing"):
        data.load_cifar10(cfg=cfg)


# --------------------------------------------------------------------------- the real Fashion-MNIST


@pytest.mark.skipif(not SYSTEM_FILES_PRESENT, reason=f"{SYSTEM_DIR} not installed")
def test_real_fashion_mnist_from_system_folder(tmp_path):
    x_train, y_train, x_test, y_test = data.load_fashion_mnist(cfg=offline_cfg(tmp_path))
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0 and x_train.max() == 1.0
    assert y_train.min() == 0 and y_train.max() == 9
    assert torch.bincount(y_test).tolist() == [1000] * 10
    sub = data.load_fashion_mnist(num_train=100, num_test=10, cfg=offline_cfg(tmp_path))
    assert torch.equal(sub[0], x_train[:100]) and torch.equal(sub[3], y_test[:10])


# --------------------------------------------------------------------------- preprocess_dataset


def toy_split(n_train=50, n_test=8, shape=(3, 4, 4), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n_train, *shape, generator=gen) + 0.5, torch.arange(n_train) % 10,
            torch.rand(n_test, *shape, generator=gen), torch.arange(n_test) % 10)


def test_preprocess_shapes_and_mean():
    x_train, y_train, x_test, y_test = toy_split()
    out = data.preprocess_dataset(x_train, y_train, x_test, y_test, dtype=torch.float64)
    assert set(out) == {"X_train", "y_train", "X_val", "y_val", "X_test", "y_test"}
    assert out["X_train"].shape == (40, 48) and out["X_val"].shape == (10, 48)
    assert out["X_test"].shape == (8, 48)
    assert out["X_train"].dtype == torch.float64 and out["y_train"].dtype == torch.int64
    assert out["X_train"].mean(dim=0).abs().max() < 1e-12
    # the validation set is the LAST 10 training examples, centred with the training mean
    mean = x_train[:40].double().mean(dim=0)
    torch.testing.assert_close(out["X_val"], (x_train[40:].double() - mean).reshape(10, -1))
    torch.testing.assert_close(out["X_test"], (x_test.double() - mean).reshape(8, -1))
    assert torch.equal(out["y_val"], y_train[40:]) and torch.equal(out["y_test"], y_test)


def test_preprocess_options_and_inputs_untouched():
    x_train, y_train, x_test, y_test = toy_split(n_train=9)
    before = x_train.clone()
    out = data.preprocess_dataset(x_train, y_train, x_test, y_test, validation_ratio=0.25,
                                  flatten=False, subtract_mean=False)
    assert out["X_train"].shape == (7, 3, 4, 4) and out["X_val"].shape == (2, 3, 4, 4)  # round(2.25)
    assert torch.equal(out["X_train"], x_train[:7])
    out["X_train"].zero_()
    assert torch.equal(x_train, before)
    none_val = data.preprocess_dataset(x_train, y_train, x_test, y_test, validation_ratio=0.0)
    assert none_val["X_val"].shape == (0, 48) and none_val["y_val"].shape == (0,)
    assert none_val["X_train"].shape == (9, 48)


def test_preprocess_bias_trick():
    out = data.preprocess_dataset(*toy_split(), bias_trick=True)
    for split, n in (("train", 40), ("val", 10), ("test", 8)):
        x = out[f"X_{split}"]
        assert x.shape == (n, 49) and x.dtype == torch.float32
        assert torch.all(x[:, -1] == 1.0)
    assert out["X_train"][:, :-1].mean(dim=0).abs().max() < 1e-5


@pytest.mark.parametrize("kwargs, error, match", [
    ({"validation_ratio": 1.0}, ValueError, r"\[0, 1\)"),
    ({"validation_ratio": -0.1}, ValueError, r"\[0, 1\)"),
    ({"validation_ratio": 0.99}, ValueError, "no training example"),
    ({"bias_trick": True, "flatten": False}, ValueError, "flatten"),
])
def test_preprocess_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.preprocess_dataset(*toy_split(n_train=3), **kwargs)


def test_preprocess_bad_inputs():
    x_train, y_train, x_test, y_test = toy_split()
    with pytest.raises(ValueError, match="same N"):
        data.preprocess_dataset(x_train, y_train[:-1], x_test, y_test)
    with pytest.raises(ValueError, match="differ in shape"):
        data.preprocess_dataset(x_train, y_train, x_test[:, :2], y_test)
    with pytest.raises(TypeError, match="torch.Tensor"):
        data.preprocess_dataset(x_train.numpy(), y_train, x_test, y_test)


def test_describe_dataset():
    x = torch.zeros(20, 1, 28, 28)
    x[0, 0, 0, 0] = 1.0
    line = data.describe_dataset(x, torch.arange(20) % 10, data.CLASS_NAMES["mnist"])
    assert line == "20 images of shape (1, 28, 28), float32 in [0.00, 1.00], 10 classes (2 to 2 per class)"
    assert "\n" not in line


def test_find_dataset_folder_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "download_dataset", lambda *a: pytest.fail("download attempted"))
    cfg = get_config(environ={"DL4CV_DATA_DIR": str(tmp_path), "DL4CV_OFFLINE": "0"})
    assert data.find_dataset_folder("cifar10", cfg) is None
    with pytest.raises(ValueError, match="known datasets"):
        data.find_dataset_folder("imagenet", cfg)


# --------------------------------------------------------------------------- augmentation


def test_random_flip_and_shift_flips_and_translates():
    X = torch.arange(2 * 3 * 5 * 6, dtype=torch.float64).reshape(2, 3, 5, 6) + 1
    original = X.clone()
    flipped = data.random_flip_and_shift(X, torch.Generator().manual_seed(0), flip=True, max_shift=0)
    assert torch.equal(X, original)  # the input is not modified
    for i in range(2):
        assert torch.equal(flipped[i], X[i]) or torch.equal(flipped[i], X[i].flip(-1))
    outcomes = {tuple(torch.equal(f, x.flip(-1)) for f, x in
                      zip(data.random_flip_and_shift(X, torch.Generator().manual_seed(s), max_shift=0), X, strict=True))
                for s in range(20)}
    assert len(outcomes) == 4  # each image flips or not, independently

    X = torch.arange(6 * 3 * 5 * 6, dtype=torch.float64).reshape(6, 3, 5, 6) + 1  # no zero pixel
    shifted = data.random_flip_and_shift(X, torch.Generator().manual_seed(1), flip=False, max_shift=2)
    found = set()
    for i in range(6):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(shifted[i], torch.roll(F_pad(X[i], 2), (dy, dx), (1, 2))[:, 2:7, 2:8])]
        assert len(matches) == 1  # a translation by at most 2 pixels, zeros shifted in
        found.add(matches[0])
    assert len(found) > 1  # the shifts are drawn per image


def F_pad(x, p):
    """Zero-pad the last two dims by p."""
    return torch.nn.functional.pad(x, (p, p, p, p))


def test_random_flip_and_shift_repeats_with_the_same_generator_and_checks_input():
    X = torch.rand(8, 1, 28, 28)
    a = data.random_flip_and_shift(X, torch.Generator().manual_seed(3))
    b = data.random_flip_and_shift(X, torch.Generator().manual_seed(3))
    c = data.random_flip_and_shift(X, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match=r"images \(N, C, H, W\)"):
        data.random_flip_and_shift(X[0])
    with pytest.raises(ValueError, match="max_shift must be an int >= 0"):
        data.random_flip_and_shift(X, max_shift=-1)
