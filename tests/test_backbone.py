"""helpers/backbone.py: the one home of the image trunks, their ImageNet statistics and the offline guard."""

import dataclasses
import hashlib

import pytest
import torch

from helpers import config
from helpers.backbone import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    REGNET_X_400MF,
    RegNetTrunk,
    SmallTrunk,
    WeightFile,
    WeightsNotFoundError,
    cached_weights,
    make_trunk,
    regnet_available,
    regnet_weights,
    weights_file,
)


def test_imagenet_statistics():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)


def test_small_trunk_maps_at_strides_8_16_32():
    torch.manual_seed(0)
    with torch.no_grad():
        maps = SmallTrunk().eval()(torch.rand(2, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in maps.items()} == {"c3": (2, 64, 8, 12), "c4": (2, 96, 4, 6),
                                                           "c5": (2, 128, 2, 3)}


def test_regnet_trunk_random_weights_and_its_cut():
    torch.manual_seed(0)
    with torch.no_grad():
        full = RegNetTrunk().eval()(torch.rand(1, 3, 64, 64))
        cut = RegNetTrunk(up_to="c4").eval()(torch.rand(1, 3, 64, 64))
    assert {k: v.shape[1:] for k, v in full.items()} == {"c3": (64, 8, 8), "c4": (160, 4, 4), "c5": (400, 2, 2)}
    assert sorted(cut) == ["c3", "c4"] and cut["c4"].shape == (1, 160, 4, 4), "A4's cut: stride 16"
    with pytest.raises(ValueError, match="up_to must be 'c4' or 'c5'"):
        RegNetTrunk(up_to="c3")


def test_pretrained_weights_are_refused_offline_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache
    offline = dataclasses.replace(config.get_config(), offline=True)
    monkeypatch.setattr(config, "get_config", lambda: offline)
    with pytest.raises(FileNotFoundError, match=r"(?s)ImageEncoder\(pretrained=True\) needs the ImageNet weights.*"
                                                r"regnet_x_400mf-adf1edd5.pth.*https://download.pytorch.org/.*"
                                                r"by hand.*pretrained=False.*DL4CV_OFFLINE=0"):
        regnet_weights("ImageEncoder(pretrained=True)")
    with pytest.raises(FileNotFoundError, match=r"RegNetTrunk\(pretrained=True\)"):
        RegNetTrunk(pretrained=True)


def _cfg(tmp_path, offline):
    return dataclasses.replace(config.get_config(), offline=offline, data_dir=tmp_path / "data")


def _fake_weights(content=b"weights"):
    return WeightFile("a test model's weights", "https://example.invalid/test-0000.pth", "test-0000.pth",
                      sha256=hashlib.sha256(content).hexdigest()[:8])


def test_weights_file_offline_names_file_url_place_and_scratch(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    weights = _fake_weights()
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("offline downloaded"))
    with pytest.raises(WeightsNotFoundError) as info:
        weights_file(weights, user="Net(pretrained=True)", cfg=_cfg(tmp_path, True))
    message = str(info.value)
    for part in ("Net(pretrained=True)", "test-0000.pth", weights.url, str(tmp_path / "data" / "weights"),
                 "PRETRAINED = False", "DL4CV_OFFLINE"):
        assert part in message


def test_weights_file_downloads_once_checks_the_hash_and_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append(url)
        with open(dst, "wb") as fh:
            fh.write(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    weights = _fake_weights()
    cfg = _cfg(tmp_path, offline=False)
    path = weights_file(weights, cfg=cfg)
    assert path == tmp_path / "data" / "weights" / "test-0000.pth" and path.read_bytes() == b"weights"
    assert weights_file(weights, cfg=_cfg(tmp_path, offline=True)) == path, "cached: offline is fine"
    assert calls == [weights.url], "downloaded once"
    path.write_bytes(b"damaged")
    with pytest.raises(WeightsNotFoundError, match="damaged"):
        weights_file(weights, cfg=cfg)


def test_failed_download_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def broken(url, dst, hash_prefix=None, progress=True):
        with open(dst, "wb") as fh:
            fh.write(b"half")
        raise OSError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", broken)
    with pytest.raises(WeightsNotFoundError, match="(?s)download failed.*Name or service not known.*by hand"):
        weights_file(_fake_weights(), cfg=_cfg(tmp_path, offline=False))
    assert not any((tmp_path / "data" / "weights").iterdir())


def test_regnet_available_offline_only_when_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    offline = _cfg(tmp_path, offline=True)
    assert regnet_available(_cfg(tmp_path, offline=False)) and not regnet_available(offline)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / REGNET_X_400MF.file_name).write_bytes(b"x")
    assert cached_weights(REGNET_X_400MF, offline) is not None and regnet_available(offline)


def test_make_trunk_separates_architecture_from_pretraining(monkeypatch):
    from torchvision.models import regnet_x_400mf

    assert isinstance(make_trunk(), SmallTrunk) and isinstance(make_trunk(False, "regnet"), RegNetTrunk)
    torch.manual_seed(0)
    stand_in = regnet_x_400mf(weights=None).state_dict()  # in place of the ImageNet file (no download here)
    monkeypatch.setattr("helpers.backbone.regnet_weights", lambda *a, **k: stand_in)
    pretrained = make_trunk(True)
    assert isinstance(pretrained, RegNetTrunk)
    assert torch.equal(pretrained.stem[0].weight, stand_in["stem.0.weight"]), "started from the file's weights"
    rebuilt = make_trunk(False, "regnet")  # how a saved model is rebuilt before its weights are loaded
    assert not torch.equal(rebuilt.stem[0].weight, stand_in["stem.0.weight"])
    rebuilt.load_state_dict(pretrained.state_dict())
    x = torch.rand(1, 3, 64, 64)
    pretrained.eval(), rebuilt.eval()
    torch.testing.assert_close(rebuilt(x)["c5"], pretrained(x)["c5"])
    with pytest.raises(ValueError, match="small trunk has no pretrained weights"):
        make_trunk(True, "small")
    with pytest.raises(ValueError, match="trunk must be one of"):
        make_trunk(False, "resnet")
    with pytest.raises(TypeError, match="pretrained must be a bool"):
        make_trunk("yes")
