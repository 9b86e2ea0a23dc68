"""A6's given models and pictures (visual_models.py): what network visualization and style transfer stand on.

Preprocessing round trip, features layer by layer, scikit-learn's photographs, the offline guard
on SqueezeNet's ImageNet weights (refused with the URL, the cache folder and the ways out), the
fixed random SqueezeNet of offline style transfer, and image files.

The tiny network is built twice from one seed (tests/visual_parts.py): here for the expected
values, and where the code under test runs for the calls to it; files are written in a folder
that code can see (``worker_tools.worker_folder``).
"""

import pytest
import torch
import visual_parts as local
from under_test import load
from worker_tools import worker_folder

vm = load("A6_generative.visual_models")
remote = load("visual_parts")

GIVEN = pytest.mark.grade("given code: models and pictures", points=0)


def randn(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@GIVEN
def test_preprocess_and_deprocess_invert_each_other():
    img = torch.rand(2, 3, 5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = vm.preprocess(img)
    torch.testing.assert_close(x[:, 0], (img[:, 0] - 0.485) / 0.229)
    torch.testing.assert_close(vm.deprocess(x), img)
    with pytest.raises(ValueError, match="RGB"):
        vm.preprocess(img[:, :1])


@GIVEN
def test_extract_features_gives_every_layer_in_order():
    cnn = local.small_cnn()
    x = randn(1, 3, 8, 8, seed=21)
    feats = vm.extract_features(x, remote.small_cnn())
    assert len(feats) == len(cnn)
    torch.testing.assert_close(feats[2], cnn[:3](x))
    torch.testing.assert_close(feats[-1], cnn(x))
    with pytest.raises(TypeError, match="nn.Sequential"):
        vm.extract_features(x, lambda x: x)


@GIVEN
def test_the_offline_feature_network_is_a_fixed_random_squeezenet(monkeypatch):
    monkeypatch.setenv("DL4CV_OFFLINE", "1")
    a, b = vm.feature_cnn(False), vm.feature_cnn(False)
    assert len(a) == 13 and all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not remote.trainable(a)
    state = torch.random.get_rng_state()
    vm.feature_cnn(False)
    assert torch.equal(state, torch.random.get_rng_state()), "the caller's random stream is left alone"


@GIVEN
def test_imagenet_weights_are_refused_offline_with_the_ways_out(monkeypatch):
    monkeypatch.setenv("DL4CV_OFFLINE", "1")
    hub = load("torch.hub")  # the cache folder, set where the code under test runs
    before = hub.get_dir()
    with worker_folder() as folder:
        monkeypatch.setenv("DL4CV_DATA_DIR", folder)  # an empty data folder ...
        hub.set_dir(folder)                            # ... and an empty hub cache
        try:
            with pytest.raises(FileNotFoundError) as info:
                vm.feature_cnn(True)
            message = str(info.value)
            assert "SqueezeNet 1.1" in message and "squeezenet1_1" in message and folder in message
            assert "DL4CV_OFFLINE=0" in message
            with pytest.raises(FileNotFoundError, match="SqueezeNet"):
                vm.imagenet_classifier()
        finally:
            hub.set_dir(before)


@GIVEN
def test_sample_photos_are_scikit_learns_two_photographs():
    photos = vm.sample_photos(32)
    assert set(photos) == {"temple", "flower"}
    for image in photos.values():
        assert image.shape == (1, 3, 32, 48) and float(image.min()) >= 0 and float(image.max()) <= 1
    assert float((photos["temple"] - photos["flower"]).abs().mean()) > 0.05
    with pytest.raises(ValueError, match="size"):
        vm.sample_photos(3)


@GIVEN
def test_load_image_reads_a_file_and_names_a_missing_one():
    pixels = (torch.arange(20 * 30 * 3) % 256).to(torch.uint8).view(20, 30, 3)
    path = load("pathlib").Path
    with worker_folder() as folder:
        remote.save_png(path(folder, "x.png"), pixels)
        img = vm.load_image(path(folder, "x.png"), 20)
        assert img.shape == (1, 3, 20, 30)
        torch.testing.assert_close(img[0].permute(1, 2, 0), pixels.float() / 255)
        with pytest.raises(FileNotFoundError, match="missing.jpg"):
            vm.load_image(path(folder, "missing.jpg"), 20)
