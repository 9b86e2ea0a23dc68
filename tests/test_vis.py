"""helpers.vis draws without error and prints nothing (checked on the Agg backend)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from helpers import vis


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_to_hwc_layouts():
    assert vis.to_hwc(torch.rand(3, 4, 5)).shape == (4, 5, 3)
    assert vis.to_hwc(torch.rand(1, 4, 5)).shape == (4, 5)
    assert vis.to_hwc(torch.rand(4, 5)).shape == (4, 5)
    img = vis.to_hwc(torch.tensor([[-2.0, 2.0]]), normalize=True)
    assert img.tolist() == [[0.0, 1.0]]
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        vis.to_hwc(torch.rand(5, 4, 4))


def test_plots_draw_and_print_nothing(capsys):
    images = torch.rand(10, 1, 8, 8)
    labels = torch.arange(10) % 3
    vis.show_images(images, titles=[str(i) for i in range(10)], ncols=4)
    vis.show_samples_per_class(images, labels, ["a", "b", "c"], samples_per_class=2)
    vis.plot_curves({"train": [3, 2, 1], "val": [3, 2.5, 2]}, logy=True, title="loss")
    vis.plot_errorbar({1: [50.0, 60.0], 3: [55.0, 65.0]}, "k", "accuracy")
    fig, ax = plt.subplots()
    vis.draw_boxes(ax, torch.tensor([[1, 1, 4, 5]]), labels=[2], scores=[0.9], class_names=["a", "b", "c"])
    assert len(ax.patches) == 1 and ax.texts[0].get_text() == "c 0.90"
    vis.show_attention(torch.rand(3, 16, 16), torch.rand(4, 4))
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="at least one image"):
        vis.show_images(torch.zeros(0, 1, 4, 4))


def test_detection_plots_draw_and_print_nothing(capsys, monkeypatch):
    images = torch.rand(3, 3, 32, 32)
    preds = [{"boxes": torch.tensor([[1.0, 1.0, 9.0, 9.0], [2.0, 2.0, 5.0, 5.0]]), "scores": torch.tensor([0.9, 0.2]),
              "labels": torch.tensor([1, 0])} for _ in range(3)]
    gts = [{"boxes": torch.tensor([[1.0, 1.0, 9.0, 8.0]]), "labels": torch.tensor([1])} for _ in range(3)]
    vis.show_detections(images, preds, gts, ["a", "b"], score_thresh=0.5, ncols=2, titles=["x", "y", "z"])
    axes = plt.gcf().axes
    assert len(axes[0].patches) == 2  # the dashed ground truth and the one detection above 0.5
    assert [t.get_text() for t in axes[0].texts] == ["b 0.90"]
    vis.detection_slider((images * 255).to(torch.uint8), preds, gts, ["a", "b"])
    monkeypatch.setenv("DL4CV_HEADLESS", "1")
    vis.detection_slider(images, preds, gts, ["a", "b"])
    ap = [0.5, float("nan"), 1.0]
    vis.plot_ap_per_class(ap, ["a", "b", "c"], title="AP")
    assert "mAP 0.750" in [t.get_text() for t in plt.gcf().axes[0].get_legend().get_texts()]
    curve = (torch.tensor([1.0, 0.5]), torch.tensor([0.5, 0.5]))
    vis.plot_precision_recall([curve, (torch.zeros(0), torch.zeros(0)), curve], ["a", "b", "c"], ncols=2)
    assert capsys.readouterr().out == ""


def test_interact_draws_once_with_the_controls_values_where_no_one_can_move_them(monkeypatch):
    import ipywidgets

    calls = []

    def draw(index=0, k=1, label="x"):
        calls.append((index, k, label))

    # pytest is no notebook kernel: drawn once, controls replaced by their values, plain values passed on.
    vis.interact(draw, index=ipywidgets.IntSlider(3, 0, 9), k=ipywidgets.IntSlider(5, 1, 50), label="y")
    assert calls == [(3, 5, "y")]
    monkeypatch.setenv("DL4CV_HEADLESS", "1")
    vis.interact(draw, k=ipywidgets.IntSlider(7, 1, 50))
    assert calls[-1] == (0, 7, "x")
