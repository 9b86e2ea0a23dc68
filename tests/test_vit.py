"""papers/vit.py: patches, patch embedding, the pre-norm block, the classifier, rollout, export, CLI.

The patch embedding is checked against ``F.conv2d`` (a P x P convolution with stride P), the
block against ``nn.MultiheadAttention`` / ``F.layer_norm`` / ``F.gelu`` carrying the same
weights, gradients against numeric ones, attention rollout against a plain loop, and the
export and the command line against the eager model.

The student's objects may live in the grader's worker (``tests/under_test.py``): weights are set
with ``load_state_dict``, autograd runs there (``backward_through``), and so do training, exports
and the command line's files (``tests/papers_support.py``).
"""

import json

import pytest
import torch
import torch.nn.functional as F
from papers_support import folder_in_worker, png_bytes, rule_mark
from torch import nn
from under_test import load, rules_of

from helpers.gradcheck import compute_numeric_gradient, rel_error

vit = load("papers.vit")
ConvStem = vit.ConvStem
PatchEmbedding = vit.PatchEmbedding
VisionTransformer = vit.VisionTransformer
ViTBlock = vit.ViTBlock
accuracy = vit.accuracy
attention_maps = vit.attention_maps
attention_rollout = vit.attention_rollout
patchify = vit.patchify
position_similarity = vit.position_similarity
unpatchify = vit.unpatchify
vit_loss_fn = vit.vit_loss_fn
export = load("helpers.export")          # given code, run where the model lives
support = load("papers_support")
worker_folder = pytest.fixture(folder_in_worker, name="worker_folder")  # a scratch folder where the model lives
backward_through = load("under_test").backward_through

PATCHES = pytest.mark.grade("patchify and PatchEmbedding", points=3)
BLOCK = pytest.mark.grade("ViTBlock (pre-norm)", points=3)
MODEL = pytest.mark.grade("VisionTransformer", points=3)
LOOK = pytest.mark.grade("attention rollout", points=2)
GIVEN = pytest.mark.grade("given code: input checks, loss, export, command line", points=0)


def set_weights(model, **values) -> None:
    """Set some of the model's parameters or buffers (``head__weight`` names ``head.weight``)."""
    model.load_state_dict({name.replace("__", "."): value for name, value in values.items()}, strict=False)


def normal_head(model) -> None:
    """``nn.init.normal_`` on the model's head weight (the zero-initialised head hides everything)."""
    set_weights(model, head__weight=torch.randn_like(model.head.weight))


def tiny_vit(**kwargs):
    settings = dict(image_size=8, patch_size=4, in_channels=1, num_classes=3, emb_dim=8, depth=2, num_heads=2,
                    mlp_dim=16)
    settings.update(kwargs)
    return VisionTransformer(**settings)


# --------------------------------------------------------------------------- rules

# The rules the docstrings state: which functions are loop-free, and that attention is A4's own.
RULES = [("patchify", PATCHES, 0, ()), ("unpatchify", PATCHES, 0, ()),
         ("PatchEmbedding.forward", PATCHES, 0, ("conv2d", "Conv2d")),
         ("ViTBlock.forward", BLOCK, 0, ("MultiheadAttention", "scaled_dot_product_attention",
                                        "multi_head_attention_forward"))]


@pytest.mark.parametrize("name, loops, forbid", [pytest.param(n, loops, forbid, marks=rule_mark(mark), id=n)
                                                 for n, mark, loops, forbid in RULES])
def test_rules(name, loops, forbid):
    rules_of("papers.vit", name, loops=loops, forbid=forbid)


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


def reference_block(weights: dict, num_heads: int, x: torch.Tensor) -> torch.Tensor:
    """The same computation with PyTorch's layers, carrying the block's weights (its ``state_dict``)."""
    D = x.shape[-1]
    mha = nn.MultiheadAttention(D, num_heads, batch_first=True).to(x.dtype)
    with torch.no_grad():
        for kind, target in (("weight", mha.in_proj_weight), ("bias", mha.in_proj_bias)):
            target.copy_(torch.cat([weights[f"attn.heads.{h}.{name}.{kind}"]
                                    for name in ("q", "k", "v") for h in range(num_heads)]))
        mha.out_proj.weight.copy_(weights["attn.linear.weight"])
        mha.out_proj.bias.copy_(weights["attn.linear.bias"])
    h = F.layer_norm(x, (D,), weights["norm1.gamma"], weights["norm1.beta"], eps=1e-6)
    x = x + mha(h, h, h, need_weights=False)[0]
    h = F.layer_norm(x, (D,), weights["norm2.gamma"], weights["norm2.beta"], eps=1e-6)
    h = F.linear(F.gelu(F.linear(h, weights["fc1.weight"], weights["fc1.bias"])), weights["fc2.weight"],
                 weights["fc2.bias"])
    return x + h


@BLOCK
def test_block_matches_pytorch_layers():
    torch.manual_seed(1)
    block = ViTBlock(emb_dim=12, num_heads=3, mlp_dim=20).double()
    norms = {}
    for norm in ("norm1", "norm2"):
        norms[f"{norm}__gamma"] = torch.empty(12, dtype=torch.float64).uniform_(0.5, 1.5)
        norms[f"{norm}__beta"] = torch.empty(12, dtype=torch.float64).uniform_(-0.3, 0.3)
    set_weights(block, **norms)
    x = torch.randn(2, 7, 12, dtype=torch.float64)
    assert rel_error(block(x), reference_block(block.state_dict(), 3, x)) < 1e-10
    assert block.attn.weights_softmax.shape == (2, 3, 7, 7)


@BLOCK
def test_block_gradient_matches_numeric_gradient():
    torch.manual_seed(2)
    block = ViTBlock(emb_dim=8, num_heads=2, mlp_dim=12).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    dout = torch.randn(2, 5, 8, dtype=torch.float64)
    _, (grad,) = backward_through(block, [x], dout)
    numeric = compute_numeric_gradient(lambda t: block(t), x.detach().clone(), dout)
    assert rel_error(grad, numeric) < 1e-7


@BLOCK
def test_block_residual_path_is_an_identity_when_sublayers_output_zero():
    block = ViTBlock(emb_dim=8, num_heads=2, mlp_dim=12)
    weights = block.state_dict()
    set_weights(block, **{name.replace(".", "__"): torch.zeros_like(weights[name])
                          for name in ("attn.linear.weight", "attn.linear.bias", "fc2.weight", "fc2.bias")})
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
    normal_head(model)
    images = torch.rand(2, 1, 12, 12)
    order = torch.randperm(9)
    shuffled = unpatchify(patchify(images, 4)[:, order], 4, 12, 12)
    assert rel_error(model(images), model(shuffled)) > 1e-4, "position embeddings make patch order matter"
    set_weights(model, pos_embedding=torch.zeros_like(model.pos_embedding))
    assert rel_error(model(images), model(shuffled)) < 1e-5


@MODEL
def test_model_normalises_inputs_with_its_buffers():
    model = tiny_vit(in_channels=3, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.25))
    normal_head(model)
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
    normal_head(model)
    images = torch.rand(3, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    dout = torch.randn(3, 3, dtype=torch.float64)
    _, (grad,) = backward_through(model, [images], dout)
    numeric = compute_numeric_gradient(lambda t: model(t), images.detach().clone(), dout)
    assert rel_error(grad, numeric) < 1e-7


@MODEL
def test_model_learns_a_small_training_set():
    from helpers.datasets import load_fashion_mnist

    torch.manual_seed(0)
    x, y, _, _ = load_fashion_mnist(num_train=64, num_test=1)
    model = VisionTransformer(emb_dim=32, depth=2, num_heads=2, mlp_dim=64, patch_size=7)
    loss_fn = vit_loss_fn(smoothing=0.0, augment=False)
    losses = support.train_steps(model, loss_fn, (x, y), steps=60, lr=3e-3, optimizer="adamw")
    assert losses[-1] < losses[0] / 10
    assert accuracy(model, x, y) == 1.0


# --------------------------------------------------------------------------- the hybrid (a CNN stem)


def trained_like_stem(model) -> None:
    """Give the stem's BatchNorms non-trivial running statistics and affine weights."""
    torch.manual_seed(11)
    weights = model.state_dict()
    values = {}
    for norm in [name.removesuffix(".running_mean") for name in weights if name.endswith(".running_mean")]:
        for name, low, high in (("running_mean", -0.5, 0.5), ("running_var", 0.5, 2.0), ("weight", 0.5, 1.5),
                                ("bias", -0.2, 0.2)):
            values[f"{norm}.{name}"] = torch.empty_like(weights[f"{norm}.{name}"]).uniform_(low, high)
    model.load_state_dict(values, strict=False)


@MODEL
def test_hybrid_cuts_its_patches_from_the_stem_features():
    torch.manual_seed(8)
    model = tiny_vit(stem_channels=(3, 5)).eval()
    trained_like_stem(model)
    normal_head(model)
    images = torch.rand(2, 1, 8, 8)
    features = (images - model.mean) / model.std
    w = model.state_dict()
    for conv, norm in ((0, 1), (3, 4)):  # conv, BatchNorm, ReLU per stem layer
        eps = model.stem.layers[norm].eps
        features = F.conv2d(features, w[f"stem.layers.{conv}.weight"], padding=1)
        features = F.relu(F.batch_norm(features, *(w[f"stem.layers.{norm}.{name}"] for name in (
            "running_mean", "running_var", "weight", "bias")), eps=eps))
    assert f"stem.layers.{6}.weight" not in w, "two convolutions"
    assert features.shape == (2, 5, 8, 8), "stride 1: the feature map keeps the image size"
    assert model.patch_embed.proj.in_features == 5 * 4 * 4
    tokens = model.patch_embed(features)
    x = torch.cat([model.cls_token.expand(2, -1, -1), tokens], 1) + model.pos_embedding
    for block in model.blocks:
        x = block(x)
    assert rel_error(model(images), model.head(model.norm(x)[:, 0])) < 1e-6
    plain = tiny_vit()
    assert not any(name.startswith("stem.") for name in plain.state_dict()), "no stem: the plain ViT"
    assert torch.equal(plain.stem(images), images), "the plain ViT's stem is an identity"


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
def test_hybrid_export_and_saved_model_equal_the_eager_model(worker_folder):
    torch.manual_seed(10)
    config = dict(image_size=8, patch_size=4, in_channels=1, num_classes=3, emb_dim=8, depth=2, num_heads=2,
                  mlp_dim=16, stem_channels=[3, 4])
    model = VisionTransformer(**config).eval()
    trained_like_stem(model)
    normal_head(model)
    exported = export.load_exported(export.export_model(model, torch.rand(2, 1, 8, 8), f"{worker_folder}/hybrid.pt2"))
    reloaded = export.load_model(export.save_model(model, config, f"{worker_folder}/hybrid.pt"), VisionTransformer)
    for batch in (1, 5):
        images = torch.rand(batch, 1, 8, 8)
        assert export.max_difference(model, exported, images) < 1e-5
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
    normal_head(model)
    images, labels = torch.rand(5, 1, 8, 8), torch.randint(0, 3, (5,))
    loss, metrics = vit_loss_fn(smoothing=0.1, augment=False)(model, (images, labels))
    # The course's smoothing puts 0.1 on the wrong classes; PyTorch's spreads eps over all V classes.
    expected = F.cross_entropy(model(images), labels, label_smoothing=0.1 * 3 / 2)
    assert rel_error(loss, expected) < 1e-6
    assert 0.0 <= metrics["acc"] <= 1.0


@GIVEN
def test_export_equals_the_eager_model(worker_folder):
    torch.manual_seed(7)
    model = tiny_vit()
    normal_head(model)
    exported = export.load_exported(export.export_model(model, torch.rand(2, 1, 8, 8), f"{worker_folder}/vit.pt2"))
    for batch in (1, 5):
        assert export.max_difference(model, exported, torch.rand(batch, 1, 8, 8)) < 1e-5


@GIVEN
def test_command_line_predicts_from_a_saved_model_and_from_its_export(worker_folder):
    torch.manual_seed(8)
    names = [f"kind{i}" for i in range(10)]
    config = dict(image_size=8, patch_size=4, in_channels=1, num_classes=10, emb_dim=8, depth=1, num_heads=2,
                  mlp_dim=8, class_names=names)
    model = VisionTransformer(**config)
    normal_head(model)
    saved = f"{worker_folder}/vit_model.pt"
    export.save_model(model, config, saved)
    paths = [support.write_bytes(f"{worker_folder}/img{i}.png", png_bytes((torch.rand(8, 8, 3) * 255).to(torch.uint8)))
             for i in range(2)]
    assert vit.main(["predict", *paths, "--checkpoint", saved, "--out", f"{worker_folder}/a"]) == 0
    assert vit.main(["export", "--checkpoint", saved, "--out", f"{worker_folder}/vit.pt2"]) == 0
    assert vit.main(["predict", *paths, "--export", f"{worker_folder}/vit.pt2", "--out", f"{worker_folder}/b"]) == 0
    eager = json.loads(support.read_text(f"{worker_folder}/a/predictions.json"))["predictions"]
    exported = json.loads(support.read_text(f"{worker_folder}/b/predictions.json"))["predictions"]
    assert [row["image"] for row in eager] == paths
    assert len(eager[0]["top"]) == 3 and eager[0]["top"][0]["class"] == names[eager[0]["top"][0]["id"]]
    for a, b in zip(eager, exported, strict=True):
        assert [t["id"] for t in a["top"]] == [t["id"] for t in b["top"]]
        assert all(abs(s["probability"] - t["probability"]) < 1e-5 for s, t in zip(a["top"], b["top"], strict=True))


@GIVEN
def test_command_line_errors_are_clear(worker_folder):
    with pytest.raises(FileNotFoundError, match="run the paper's notebook first"):
        vit.main(["predict", f"{worker_folder}/x.png", "--checkpoint", f"{worker_folder}/missing.pt"])
    assert support.exit_code(vit.main, ["predict"]) == 2, "argparse refuses a missing --checkpoint/--export"
    image = support.write_bytes(f"{worker_folder}/a.png", png_bytes(torch.zeros(8, 8, 3)))
    bare = f"{worker_folder}/bare.pt2"
    export.export_model(tiny_vit(), torch.rand(2, 1, 8, 8), bare)
    with pytest.raises(ValueError, match="lacks image_size, in_channels, class_names"):
        vit.main(["predict", image, "--export", bare])
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
