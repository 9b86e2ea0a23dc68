"""Tests for the COCO-captions loader of helpers.datasets, on a tiny COCO-format folder written here.

Nothing touches the network: COCO is never downloaded, and every file is written into tmp_path.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

import helpers.datasets as data
from helpers.config import get_config
from helpers.datasets import captions
from helpers.text import decode_captions, tokenize

# image id -> (file name, size (w, h), colour); ids deliberately not in file order
TRAIN_IMAGES = {
    42: ("000000000042.png", (40, 30), (255, 0, 0)),
    7: ("000000000007.png", (25, 50), (0, 255, 0)),
    19: ("000000000019.png", (64, 64), None),          # a gradient: checks the resizing itself
}
VAL_IMAGES = {
    3: ("000000000003.png", (30, 30), (0, 0, 255)),
    11: ("000000000011.png", (50, 20), (255, 255, 0)),
    5: ("000000000005.png", (20, 40), (0, 255, 255)),
    8: ("000000000008.png", (33, 21), (128, 128, 128)),
}
TRAIN_CAPTIONS = [   # (annotation id, image id, caption)
    (901, 42, "A red square on a table."),
    (400, 42, "A red box."),
    (17, 7, "A green door, very tall"),
    (18, 7, "a TALL green door"),
    (19, 7, "Green door!"),
    (500, 19, "A smooth gradient of colour"),
    (501, 19, "a gradient"),
]
VAL_CAPTIONS = [
    (1, 3, "A blue square"),
    (2, 11, "A yellow banner, wide"),
    (3, 5, "a cyan rectangle"),
    (4, 8, "a grey patch"),
    (5, 8, "a grey square"),
]


def gradient(size):
    w, h = size
    ramp_x = np.linspace(0, 255, w, dtype=np.float64)[None, :].repeat(h, 0)
    ramp_y = np.linspace(0, 255, h, dtype=np.float64)[:, None].repeat(w, 1)
    return np.stack([ramp_x, ramp_y, 255 - ramp_x], axis=-1).round().astype(np.uint8)


def write_split(root, folder, images, captions):
    (root / folder).mkdir(parents=True)
    for file_name, size, colour in images.values():
        pixels = gradient(size) if colour is None else np.full((size[1], size[0], 3), colour, dtype=np.uint8)
        Image.fromarray(pixels).save(root / folder / file_name)
    content = {
        "info": {"description": "tiny COCO-format test set", "version": "1.0", "year": 2017},
        "licenses": [{"url": "http://example.invalid", "id": 1, "name": "test"}],
        "images": [{"license": 1, "file_name": f, "coco_url": "", "height": s[1], "width": s[0],
                    "date_captured": "2013-11-14 11:18:45", "flickr_url": "", "id": image_id}
                   for image_id, (f, s, _) in images.items()],
        "annotations": [{"image_id": image_id, "id": ann_id, "caption": caption}
                        for ann_id, image_id, caption in captions],
    }
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"captions_{folder}.json").write_text(json.dumps(content))


@pytest.fixture()
def coco(tmp_path):
    """A tiny COCO folder and a config whose data_dir holds it (as <data_dir>/coco)."""
    root = tmp_path / "data" / "coco"
    write_split(root, "train2017", TRAIN_IMAGES, TRAIN_CAPTIONS)
    write_split(root, "val2017", VAL_IMAGES, VAL_CAPTIONS)
    cfg = dataclasses.replace(get_config(), data_dir=tmp_path / "data", offline=True)
    return root, cfg


def test_read_coco_captions(coco):
    root, _ = coco
    images, captions = data.read_coco_captions(root / "annotations" / "captions_train2017.json")
    assert images == [(7, "000000000007.png"), (19, "000000000019.png"), (42, "000000000042.png")]
    assert captions[42] == ["A red box.", "A red square on a table."]          # by annotation id
    assert captions[7] == ["A green door, very tall", "a TALL green door", "Green door!"]
    assert sum(len(c) for c in captions.values()) == len(TRAIN_CAPTIONS)


def test_train_split(coco):
    root, cfg = coco
    out = data.load_captions("coco_captions", "train", cfg=cfg, image_size=16, min_count=2)
    assert out["images"].dtype == torch.uint8 and out["images"].shape == (3, 3, 16, 16)
    assert out["image_ids"].tolist() == [7, 19, 42]
    assert out["captions"].dtype == torch.int64 and out["captions"].shape == (7, 18)
    assert out["image_index"].tolist() == [0, 0, 0, 1, 1, 2, 2]
    # every caption sits with its own image
    by_image = {}
    for _, image_id, caption in sorted(TRAIN_CAPTIONS):
        by_image.setdefault(image_id, []).append(caption)
    ids = out["image_ids"].tolist()
    for text, index in zip(out["texts"], out["image_index"].tolist(), strict=True):
        assert text in by_image[ids[index]]
    # vocabulary: specials, then the words seen at least twice in train captions (count desc, then a-z)
    counts = {}
    for _, _, caption in TRAIN_CAPTIONS:
        for word in tokenize(caption):
            counts[word] = counts.get(word, 0) + 1
    frequent = sorted((w for w, c in counts.items() if c >= 2), key=lambda w: (-counts[w], w))
    assert out["idx_to_word"] == ["<NULL>", "<START>", "<END>", "<UNK>"] + frequent
    assert out["word_to_idx"] == {w: i for i, w in enumerate(out["idx_to_word"])}
    decoded = decode_captions(out["captions"], out["idx_to_word"])
    assert decoded[0] == "a green door <UNK> tall"
    assert decoded[-2:] == ["a red <UNK>", "a red <UNK> <UNK> a <UNK>"]   # annotation ids 400, 901
    # resizing: a solid image stays solid; the gradient matches PIL's own bilinear resize
    assert (out["images"][2] == torch.tensor([255, 0, 0], dtype=torch.uint8)[:, None, None]).all()
    assert (out["images"][0] == torch.tensor([0, 255, 0], dtype=torch.uint8)[:, None, None]).all()
    expected = Image.fromarray(gradient((64, 64))).resize((16, 16), Image.Resampling.BILINEAR)
    assert torch.equal(out["images"][1], torch.from_numpy(np.asarray(expected).transpose(2, 0, 1).copy()))


def test_val_and_test_halves_share_the_train_vocabulary(coco):
    root, cfg = coco
    train = data.load_captions("coco_captions", "train", cfg=cfg, image_size=8, min_count=2)
    val = data.load_captions("coco_captions", "val", cfg=cfg, image_size=8, min_count=2)
    test = data.load_captions("coco_captions", "test", cfg=cfg, image_size=8, min_count=2)
    assert val["image_ids"].tolist() == [3, 5] and test["image_ids"].tolist() == [8, 11]
    assert val["texts"] == ["A blue square", "a cyan rectangle"]
    assert test["texts"] == ["a grey patch", "a grey square", "A yellow banner, wide"]
    assert test["image_index"].tolist() == [0, 0, 1]
    assert val["word_to_idx"] == train["word_to_idx"] == test["word_to_idx"]
    assert decode_captions(test["captions"][2], test["idx_to_word"]) == "a <UNK> <UNK> <UNK>"
    assert (test["images"][1] == torch.tensor([255, 255, 0], dtype=torch.uint8)[:, None, None]).all()
    assert test["images"].shape == (2, 3, 8, 8)


def test_default_size_num_and_max_length(coco):
    _, cfg = coco
    out = data.load_captions("coco_captions", "train", num=2, cfg=cfg, max_length=3, min_count=1)
    assert out["images"].shape == (2, 3, data.COCO_IMAGE_SIZE, data.COCO_IMAGE_SIZE)
    assert out["captions"].shape == (5, 5) and len(out["texts"]) == 5
    assert decode_captions(out["captions"][0], out["idx_to_word"]) == "a green door"   # cut to 3 words
    with pytest.raises(ValueError, match=r"num must lie in \[1, 3\]"):
        data.load_captions("coco_captions", "train", num=4, cfg=cfg, max_length=3, min_count=1)


def test_preprocessed_once_then_cached(coco, monkeypatch):
    root, cfg = coco
    first = data.load_captions("coco_captions", "val", cfg=cfg, image_size=8, min_count=1)
    cached = sorted((cfg.data_dir / "coco" / "preprocessed").glob("*.pt"))
    assert [p.name for p in cached] == ["coco_val_8px_len16_min1.pt", "coco_vocabulary_min1.pt"]
    content = torch.load(cached[0], weights_only=True)       # plain tensors, lists and strings only
    assert content["images"].dtype == torch.uint8 and content["captions"].dtype == torch.int64

    def no_parsing(path):
        raise AssertionError(f"{path} parsed again although it is cached")

    def no_reading(path, size):
        raise AssertionError(f"{path} read again although it is cached")

    monkeypatch.setattr(captions, "read_coco_captions", no_parsing)
    monkeypatch.setattr(captions, "read_resized", no_reading)
    again = data.load_captions("coco_captions", "val", cfg=cfg, image_size=8, min_count=1)
    for key in ("images", "captions", "image_index", "image_ids"):
        assert torch.equal(again[key], first[key])
    assert again["texts"] == first["texts"] and again["word_to_idx"] == first["word_to_idx"]
    fewer = data.load_captions("coco_captions", "val", num=1, cfg=cfg, image_size=8, min_count=1)
    assert fewer["images"].shape[0] == 1 and fewer["texts"] == first["texts"][:1]
    # another size is another preprocessing, which needs the parser
    with pytest.raises(AssertionError, match="parsed again"):
        data.load_captions("coco_captions", "val", cfg=cfg, image_size=12, min_count=1)


def test_cache_grows_when_more_images_are_asked_and_follows_the_annotations(coco):
    root, cfg = coco
    one = data.load_captions("coco_captions", "train", num=1, cfg=cfg, image_size=8)
    assert one["images"].shape[0] == 1
    both = data.load_captions("coco_captions", "train", num=2, cfg=cfg, image_size=8)
    assert both["images"].shape[0] == 2 and torch.equal(both["images"][:1], one["images"])
    # a rewritten annotation file (new captions) is parsed again
    path = root / "annotations" / "captions_train2017.json"
    content = json.loads(path.read_text())
    content["annotations"].append({"image_id": 7, "id": 2, "caption": "an extra green caption here"})
    path.write_text(json.dumps(content))
    more = data.load_captions("coco_captions", "train", num=2, cfg=cfg, image_size=8)
    assert "an extra green caption here" in more["texts"]
    assert len(more["texts"]) == len(both["texts"]) + 1


def test_folder_given_by_argument(coco, tmp_path):
    root, _ = coco
    cfg = dataclasses.replace(get_config(), data_dir=tmp_path / "elsewhere", offline=True)
    out = data.load_captions("coco_captions", "val", cfg=cfg, root=root, image_size=8)
    assert out["image_ids"].tolist() == [3, 5]
    assert (tmp_path / "elsewhere" / "coco" / "preprocessed" / "coco_val_8px_len16_min5.pt").is_file()


def test_missing_files_give_one_clear_error(coco, tmp_path):
    root, cfg = coco
    empty_cfg = dataclasses.replace(cfg, data_dir=tmp_path / "nothing")
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_captions("coco_captions", "train", cfg=empty_cfg)
    message = str(info.value)
    assert str(tmp_path / "nothing" / "coco") in message
    assert "DL4CV_DATASET=captioned_scenes" in message and "captions_train2017.json" in message
    assert "never downloaded" in message
    (root / "val2017" / "000000000011.png").unlink()
    with pytest.raises(data.DatasetNotFoundError, match="missing image val2017/000000000011.png"):
        data.load_captions("coco_captions", "test", cfg=cfg, image_size=8)
    (root / "annotations" / "captions_val2017.json").unlink()
    with pytest.raises(data.DatasetNotFoundError, match="captions_val2017.json"):
        data.load_captions("coco_captions", "val", cfg=cfg, image_size=8)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"images": []}', "needs 'images' and 'annotations'"),
    ('{"images": [{"id": 1}], "annotations": []}', "malformed entry"),
    ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 2, "id": 1, "caption": "x"}]}',
     "image id 2"),
])
def test_malformed_annotation_files(tmp_path, content, message):
    path = tmp_path / "captions_train2017.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        data.read_coco_captions(path)


def test_bad_image_size(coco):
    _, cfg = coco
    with pytest.raises(ValueError, match="image_size must be an int >= 8"):
        data.load_captions("coco_captions", "val", cfg=cfg, image_size=4)
