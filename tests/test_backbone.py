"""helpers/backbone.py: the one home of the image trunks, their ImageNet statistics and the offline guard."""

import dataclasses

import pytest
import torch

from helpers import config
from helpers.backbone import IMAGENET_MEAN, IMAGENET_STD, RegNetTrunk, SmallTrunk, regnet_weights


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
    with pytest.raises(FileNotFoundError, match=r"ImageEncoder\(pretrained=True\) needs the ImageNet weights.*"
                                                r"pretrained=False.*DL4CV_OFFLINE=0"):
        regnet_weights("ImageEncoder(pretrained=True)")
    with pytest.raises(FileNotFoundError, match=r"RegNetTrunk\(pretrained=True\)"):
        RegNetTrunk(pretrained=True)
