"""papers/vit.py: patches, patch embedding, the pre-norm block, the classifier, rollout, export, CLI.

The patch embedding is checked against ``F.conv2d`` (a P x P convolution with stride P), the
block against ``nn.MultiheadAttention`` / ``F.layer_norm`` / ``F.gelu`` carrying the same
weights, gradients against numeric ones, attention rollout against a plain loop, and the
export and the command line against the eager model.
"""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.export import export_model, load_exported, load_model, max_difference, save_model
from helpers.gradcheck import compute_numeric_gradient, rel_error
from papers import vit
from papers.vit import (
    ConvStem,
    PatchEmbedding,
    VisionTransformer,
    ViTBlock,
    accuracy,
    attention_maps,
    attention_rollout,
    patchify,
    position_similarity,
    unpatchify,
    vit_loss_fn,
)

PATCHES = pytest.mark.grade("patchify and PatchEmbedding", points=3)
BLOCK = pytest.mark.grade("ViTBlock (pre-norm)", points=3)
MODEL = pytest.mark.grade("VisionTransformer", points=3)
LOOK = pytest.mark.grade("attention rollout", points=2)
GIVEN = pytest.mark.grade("given code: input checks, loss, export, command line", points=0)


def tiny_vit(**kwargs) -> VisionTransformer:
    settings = dict(image_size=8, patch_size=4, in_channels=1, num_classes=3, emb_dim=8, depth=2, num_heads=2,
                    mlp_dim=16)
    settings.update(kwargs)
    return VisionTransformer(**settings)


# --------------------------------------------------------------------------- patches


@PATCHES
@pytest.mark.parametrize("shape,P", [((2, 1, 8, 8), 4), ((3, 3, 6, 9), 3), ((1, 2, 4, 4), 1), ((2, 3, 5, 5), 5)])
def test_patchify_matches_a_loop_over_patches(shape, P):
    images = torch.randn(shape)
    N, C, H, W = shape
    expected = torch.stack([torch.stack([images[n, :, r:r + P, c:c + P].reshape(-1)
                                         for r in range(0, H, P) for c in range(0, W, P)]) for n in range(N)])
    out = patchify(images, P)
    assert out.shape == (N, (H // P) * (W // P), C * P * P)
    assert torch.equal(out, expected)
    assert torch.equal(unpatchify(out, P, H, W), images)


@GIVEN
def test_patchify_refuses_sizes_not_divisible_by_the_patch():
    with pytest.raises(ValueError, match="not divisible by patch_size 4"):
        patchify(torch.zeros(1, 1, 30, 28), 4)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        patchify(torch.zeros(1, 28, 28), 4)
    with pytest.raises(ValueError, match="do not tile"):
        unpatchify(torch.zeros(1, 5, 16), 4, 8, 8)


@PATCHES
def test_patch_embedding_is_a_strided_convolution():
    torch.manual_seed(0)
    embed = PatchEmbedding(patch_size=4, in_channels=3, emb_dim=6)
    images = torch.randn(2, 3, 12, 8)
    weight = embed.proj.weight.reshape(6, 3, 4, 4)
    conv = F.conv2d(images, weight, embed.proj.bias, stride=4)          # (N, D, 3, 2)
    expected = conv.flatten(2).transpose(1, 2)
    assert rel_error(embed(images), expected) < 1e-6


# --------------------------------------------------------------------------- the block


def reference_block(block: ViTBlock, x: torch.Tensor) -> torch.Tensor:
    """The same computation with PyTorch's layers, carrying the block's weights."""
    D = block.emb_dim
    heads = block.attn.heads
    mha = nn.MultiheadAttention(D, len(heads), batch_first=True).to(x.dtype)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([torch.cat([getattr(h, name).weight for h in heads])
                                            for name in ("q", "k", "v")]))
        mha.in_proj_bias.copy_(torch.cat([torch.cat([getattr(h, name).bias for h in heads])
                                          for name in ("q", "k", "v")]))
        mha.out_proj.weight.copy_(block.attn.linear.weight)
        mha.out_proj.bias.copy_(block.attn.linear.bias)
    h = F.layer_norm(x, (D,), block.norm1.gamma, block.norm1.beta, eps=1e-6)
    x = x + mha(h, h, h, need_weights=False)[0]
    h = F.layer_norm(x, (D,), block.norm2.gamma, block.norm2.beta, eps=1e-6)
    return x + block.fc2(F.gelu(block.fc1(h)))


@BLOCK
def test_block_matches_pytorch_layers():
    torch.manual_seed(1)
    block = ViTBlock(emb_dim=12, num_heads=3, mlp_dim=20).double()
    with torch.no_grad():
        for norm in (block.norm1, block.norm2):
            norm.gamma.uniform_(0.5, 1.5)
            norm.beta.uniform_(-0.3, 0.3)
    x = torch.randn(2, 7, 12, dtype=torch.float64)
    assert rel_error(block(x), reference_block(block, x)) < 1e-10
    assert block.attn.weights_softmax.shape == (2, 3, 7, 7)


@BLOCK
def test_block_gradient_matches_numeric_gradient():
    torch.manual_seed(2)
    block = ViTBlock(emb_dim=8, num_heads=2, mlp_dim=12).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    dout = torch.randn(2, 5, 8, dtype=torch.float64)
    (block(x) * dout).sum().backward()
    numeric = compute_numeric_gradient(lambda t: block(t), x.detach().clone(), dout)
    assert rel_error(x.grad, numeric) < 1e-7


@BLOCK
def test_block_residual_path_is_an_identity_when_sublayers_output_zero():
    block = ViTBlock(emb_dim=8, num_heads=2, mlp_dim=12)
    with torch.no_grad():
        for layer in (block.attn.linear, block.fc2):
            layer.weight.zero_()
            layer.bias.zero_()
    x = torch.randn(3, 4, 8)
    assert torch.equal(block(x), x)


@GIVEN
def test_block_refuses_bad_settings():
    with pytest.raises(ValueError, match="must divide emb_dim"):
        ViTBlock(emb_dim=10, num_heads=3, mlp_dim=8)
    with pytest.raises(ValueError, match="dropout"):
        ViTBlock(emb_dim=8, num_heads=2, mlp_dim=8, dropout=1.0)


# --------------------------------------------------------------------------- the model


@MODEL
def test_model_shapes_and_initial_scores():
    model = tiny_vit()
    assert model.pos_embedding.shape == (1, 5, 8) and model.cls_token.shape == (1, 1, 8)
    scores = model(torch.rand(4, 1, 8, 8))
    assert scores.shape == (4, 3)
    assert torch.equal(scores, torch.zeros(4, 3)), "a zero-initialised head starts with all classes equal"


@MODEL
def test_model_refuses_wrong_image_sizes():
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        VisionTransformer(image_size=30, patch_size=4)
    model = tiny_vit()
    with pytest.raises(ValueError, match="must be 8 x 8"):
        model(torch.rand(2, 1, 12, 12))
    with pytest.raises(ValueError, match="1 channel"):
        model(torch.rand(2, 3, 8, 8))


@MODEL
def test_without_position_embeddings_the_model_sees_a_bag_of_patches():
    torch.manual_seed(3)
    model = tiny_vit(image_size=12)
    nn.init.normal_(model.head.weight)
    images = torch.rand(2, 1, 12, 12)
    order = torch.randperm(9)
    shuffled = unpatchify(patchify(images, 4)[:, order], 4, 12, 12)
    assert rel_error(model(images), model(shuffled)) > 1e-4, "position embeddings make patch order matter"
    with torch.no_grad():
        model.pos_embedding.zero_()
    assert rel_error(model(images), model(shuffled)) < 1e-5


@MODEL
def test_model_normalises_inputs_with_its_buffers():
    model = tiny_vit(in_channels=3, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.25))
    nn.init.normal_(model.head.weight)
    images = torch.rand(2, 3, 8, 8)
    assert model.mean.shape == (1, 3, 1, 1) and "mean" in model.state_dict()
    shifted = VisionTransformer(image_size=8, patch_size=4, in_channels=3, num_classes=3, emb_dim=8, depth=2,
                                num_heads=2, mlp_dim=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    shifted.load_state_dict({k: v for k, v in model.state_dict().items() if k not in ("mean", "std")}, strict=False)
    assert rel_error(model(images), shifted((images - model.mean) / model.std)) < 1e-6
    with pytest.raises(ValueError, match="mean and std"):
        VisionTransformer(in_channels=3)


@MODEL
@pytest.mark.parametrize("stem_channels", [(), (2,)], ids=["plain", "hybrid"])
def test_whole_model_gradient_matches_numeric_gradient(stem_channels):
    torch.manual_seed(4)
    model = tiny_vit(stem_channels=stem_channels).double()  # the hybrid's BatchNorm in training mode
    nn.init.normal_(model.head.weight)
    images = torch.rand(3, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    dout = torch.randn(3, 3, dtype=torch.float64)
    (model(images) * dout).sum().backward()
    numeric = compute_numeric_gradient(lambda t: model(t), images.detach().clone(), dout)
    assert rel_error(images.grad, numeric) < 1e-7


@MODEL
def test_model_learns_a_small_training_set():
    from helpers.datasets import load_fashion_mnist

    torch.manual_seed(0)
    x, y, _, _ = load_fashion_mnist(num_train=64, num_test=1)
    model = VisionTransformer(emb_dim=32, depth=2, num_heads=2, mlp_dim=64, patch_size=7)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn = vit_loss_fn(smoothing=0.0, augment=False)
    first = None
    for _ in range(60):
        loss, _ = loss_fn(model, (x, y))
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 10
    assert accuracy(model, x, y) == 1.0


# --------------------------------------------------------------------------- the hybrid (a CNN stem)


def trained_like_stem(model: VisionTransformer) -> None:
    """Give the stem's BatchNorms non-trivial running statistics and affine weights."""
    torch.manual_seed(11)
    for layer in model.stem.layers:
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(layer.weight, 0.5, 1.5)
            nn.init.uniform_(layer.bias, -0.2, 0.2)


@MODEL
def test_hybrid_cuts_its_patches_from_the_stem_features():
    torch.manual_seed(8)
    model = tiny_vit(stem_channels=(3, 5)).eval()
    trained_like_stem(model)
    nn.init.normal_(model.head.weight)
    images = torch.rand(2, 1, 8, 8)
    features = (images - model.mean) / model.std
    for conv, norm in zip(model.stem.layers[0::3], model.stem.layers[1::3], strict=True):
        features = F.conv2d(features, conv.weight, padding=1)
        features = F.relu(F.batch_norm(features, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                                       eps=norm.eps))
    assert features.shape == (2, 5, 8, 8), "stride 1: the feature map keeps the image size"
    assert model.patch_embed.proj.in_features == 5 * 4 * 4
    tokens = model.patch_embed(features)
    x = torch.cat([model.cls_token.expand(2, -1, -1), tokens], 1) + model.pos_embedding
    for block in model.blocks:
        x = block(x)
    assert rel_error(model(images), model.head(model.norm(x)[:, 0])) < 1e-6
    assert isinstance(tiny_vit().stem, nn.Identity), "no stem: the plain ViT"


@GIVEN
def test_stem_refuses_bad_channels():
    for bad in ((0,), (4, -1), (2.5,)):
        with pytest.raises((ValueError, TypeError), match="stem channels"):
            tiny_vit(stem_channels=bad)
    with pytest.raises(ValueError, match="stem_channels must be a list"):
        tiny_vit(stem_channels=4)
    with pytest.raises(ValueError, match="non-empty"):
        ConvStem(1, [])


@GIVEN
def test_hybrid_export_and_saved_model_equal_the_eager_model(tmp_path):
    torch.manual_seed(10)
    config = dict(image_size=8, patch_size=4, in_channels=1, num_classes=3, emb_dim=8, depth=2, num_heads=2,
                  mlp_dim=16, stem_channels=[3, 4])
    model = VisionTransformer(**config).eval()
    trained_like_stem(model)
    nn.init.normal_(model.head.weight)
    exported = load_exported(export_model(model, torch.rand(2, 1, 8, 8), tmp_path / "hybrid.pt2"))
    reloaded = load_model(save_model(model, config, tmp_path / "hybrid.pt"), VisionTransformer)
    for batch in (1, 5):
        images = torch.rand(batch, 1, 8, 8)
        assert max_difference(model, exported, images) < 1e-5
        assert torch.equal(model(images), reloaded(images))


# --------------------------------------------------------------------------- looking inside


def rollout_loop(attentions: torch.Tensor) -> torch.Tensor:
    depth, N, heads, T, _ = attentions.shape
    out = torch.zeros(N, T, T, dtype=attentions.dtype)
    for n in range(N):
        total = torch.eye(T, dtype=attentions.dtype)
        for layer in range(depth):
            mixed = attentions[layer, n].mean(0) * 0.5 + torch.eye(T, dtype=attentions.dtype) * 0.5
            mixed = mixed / mixed.sum(1, keepdim=True)
            total = mixed @ total
        out[n] = total
    return out


@LOOK
def test_attention_rollout_matches_a_loop_and_keeps_distributions():
    torch.manual_seed(5)
    attentions = torch.rand(3, 2, 4, 6, 6, dtype=torch.float64).softmax(-1)
    rollout = attention_rollout(attentions)
    assert rel_error(rollout, rollout_loop(attentions)) < 1e-12
    assert torch.allclose(rollout.sum(-1), torch.ones(2, 6, dtype=torch.float64))
    assert (attention_rollout(attentions, "max") >= 0).all()


@LOOK
def test_attention_rollout_hand_cases():
    T = 3
    identity = torch.eye(T).expand(2, 1, 1, T, T)             # every token attends only to itself
    assert torch.allclose(attention_rollout(identity), torch.eye(T).expand(1, T, T))
    uniform = torch.full((1, 1, 1, T, T), 1 / T)               # one layer, uniform attention
    expected = (torch.full((T, T), 1 / T) + torch.eye(T)) / 2
    assert torch.allclose(attention_rollout(uniform)[0], expected)
    with pytest.raises(ValueError, match="depth, N, heads, T, T"):
        attention_rollout(torch.rand(2, 3, 3))
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout(identity, "min")


@LOOK
def test_attention_maps_and_position_similarity_shapes():
    model = tiny_vit()
    maps = attention_maps(model, torch.rand(3, 1, 8, 8))
    assert maps.shape == (2, 3, 2, 5, 5)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 3, 2, 5))
    similarity = position_similarity(model)
    assert similarity.shape == (4, 4)
    assert torch.allclose(similarity.diagonal(), torch.ones(4)) and torch.allclose(similarity, similarity.T)


# --------------------------------------------------------------------------- given code


@GIVEN
def test_loss_is_label_smoothed_cross_entropy():
    torch.manual_seed(6)
    model = tiny_vit()
    nn.init.normal_(model.head.weight)
    images, labels = torch.rand(5, 1, 8, 8), torch.randint(0, 3, (5,))
    loss, metrics = vit_loss_fn(smoothing=0.1, augment=False)(model, (images, labels))
    # The course's smoothing puts 0.1 on the wrong classes; PyTorch's spreads eps over all V classes.
    expected = F.cross_entropy(model(images), labels, label_smoothing=0.1 * 3 / 2)
    assert rel_error(loss, expected) < 1e-6
    assert 0.0 <= metrics["acc"] <= 1.0


@GIVEN
def test_export_equals_the_eager_model(tmp_path):
    torch.manual_seed(7)
    model = tiny_vit()
    nn.init.normal_(model.head.weight)
    exported = load_exported(export_model(model, torch.rand(2, 1, 8, 8), tmp_path / "vit.pt2"))
    for batch in (1, 5):
        assert max_difference(model, exported, torch.rand(batch, 1, 8, 8)) < 1e-5


@GIVEN
def test_command_line_predicts_from_a_saved_model_and_from_its_export(tmp_path):
    from PIL import Image

    torch.manual_seed(8)
    names = [f"kind{i}" for i in range(10)]
    config = dict(image_size=8, patch_size=4, in_channels=1, num_classes=10, emb_dim=8, depth=1, num_heads=2,
                  mlp_dim=8, class_names=names)
    model = VisionTransformer(**config)
    nn.init.normal_(model.head.weight)
    saved = save_model(model, config, tmp_path / "vit_model.pt")
    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f"img{i}.png"))
        Image.fromarray((torch.rand(8, 8, 3) * 255).to(torch.uint8).numpy()).save(paths[-1])
    assert vit.main(["predict", *paths, "--checkpoint", str(saved), "--out", str(tmp_path / "a")]) == 0
    assert vit.main(["export", "--checkpoint", str(saved), "--out", str(tmp_path / "vit.pt2")]) == 0
    assert vit.main(["predict", *paths, "--export", str(tmp_path / "vit.pt2"), "--out", str(tmp_path / "b")]) == 0
    eager = json.loads((tmp_path / "a" / "predictions.json").read_text())["predictions"]
    export = json.loads((tmp_path / "b" / "predictions.json").read_text())["predictions"]
    assert [row["image"] for row in eager] == paths
    assert len(eager[0]["top"]) == 3 and eager[0]["top"][0]["class"] == names[eager[0]["top"][0]["id"]]
    for a, b in zip(eager, export, strict=True):
        assert [t["id"] for t in a["top"]] == [t["id"] for t in b["top"]]
        assert all(abs(s["probability"] - t["probability"]) < 1e-5 for s, t in zip(a["top"], b["top"], strict=True))


@GIVEN
def test_command_line_errors_are_clear(tmp_path):
    from PIL import Image

    with pytest.raises(FileNotFoundError, match="run the paper's notebook first"):
        vit.main(["predict", str(tmp_path / "x.png"), "--checkpoint", str(tmp_path / "missing.pt")])
    with pytest.raises(SystemExit):
        vit.main(["predict"])
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    bare = export_model(tiny_vit(), torch.rand(2, 1, 8, 8), tmp_path / "bare.pt2")
    with pytest.raises(ValueError, match="lacks image_size, in_channels, class_names"):
        vit.main(["predict", str(image), "--export", str(bare)])
    with pytest.raises(ValueError, match="class_names must name the 3 classes"):
        tiny_vit(class_names=["a", "b"])


@GIVEN
def test_predict_refuses_an_empty_batch_and_pixels_outside_0_1():
    model = tiny_vit()
    with pytest.raises(ValueError, match="images is empty"):
        vit.predict(model, torch.rand(0, 1, 8, 8))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*divide 0..255 pixels by 255"):
        vit.predict(model, torch.rand(2, 1, 8, 8) * 255)
    assert vit.predict(model, torch.rand(2, 1, 8, 8)).shape == (2, 3)
