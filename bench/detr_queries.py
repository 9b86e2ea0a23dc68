"""papers/detr: why the notebook's DETR uses anchor-box queries -- short runs, validation mAP.

    python bench/detr_queries.py              # 3 runs, about 25 minutes in all on one core
    python bench/detr_queries.py learned      # only the runs whose name contains "learned"

Each run trains ``DETR(d_model=128, num_heads=4, 2 encoder + 3 decoder layers, ffn_dim=256,
num_queries=12)`` for ``STEPS`` steps of 32 on the 10,000 96-px training scenes (flips), AdamW at
5e-4, weight decay 1e-4, warm-up over 120 steps then cosine, gradients clipped at 0.5, seed 0, and
scores the 1,000 validation scenes (the test split is not touched): mAP over every (query, class) pair,
class-agnostic AP over one detection per query.  The runs differ in the object
queries (``"learned"``: the 2020 paper's embeddings; ``"anchor"``: learned boxes refined layer by
layer) and in the backbone map the transformer reads (stride 16: 6 x 6 tokens; stride 8: 12 x 12).
Prints a table; asserts nothing.
"""

from __future__ import annotations

import math
import sys
import time

import torch
from torch.utils.data import DataLoader

from A5_detection.common import evaluate_detections, ignore_classes
from helpers.config import seed_everything
from helpers.data import DetectionDataset, gt_boxes_to_targets, load_detection
from papers.detr import DETR, gt_boxes_to_set_targets, predict_detections, set_loss

STEPS, BATCH, LR, WARMUP, IMAGE_SIZE = 1200, 32, 5e-4, 120, 96
RUNS = {"learned queries, stride 16": ("learned", 16), "anchor queries, stride 16": ("anchor", 16),
        "anchor queries, stride 8": ("anchor", 8)}


def run(train, val, query_type: str, stride: int) -> tuple[float, float, float]:
    """Validation mAP@0.5, class-agnostic AP and seconds of one short run."""
    seed_everything(0)
    model = DETR(num_classes=len(train["class_names"]), d_model=128, num_heads=4, num_encoder_layers=2,
                 num_decoder_layers=3, ffn_dim=256, num_queries=12, feature_stride=stride, image_size=IMAGE_SIZE,
                 query_type=query_type)
    loader = DataLoader(DetectionDataset(train, flip_prob=0.5), batch_size=BATCH, shuffle=True, drop_last=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / WARMUP) * 0.5 * (1 + math.cos(math.pi * min(s, STEPS) / STEPS)))
    start, step = time.perf_counter(), 0
    while step < STEPS:
        for images, gt_boxes in loader:
            loss = set_loss(*model.forward_all_layers(images), gt_boxes_to_set_targets(gt_boxes, IMAGE_SIZE))["loss"]
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
            scheduler.step()
            step += 1
            if step == STEPS:
                break
    seconds = time.perf_counter() - start
    model.eval()
    predictions = predict_detections(model, val["images"])
    # with every class, a query's box would come back once per class: "an object here?" takes one per query
    one_class = predict_detections(model, val["images"], best_class_only=True)
    targets = gt_boxes_to_targets(val["gt_boxes"], val["difficult"])
    num_classes = len(val["class_names"])
    return (evaluate_detections(predictions, targets, num_classes)["mAP"],
            evaluate_detections(ignore_classes(one_class), ignore_classes(targets), 1)["mAP"], seconds)


def main(patterns: list[str]) -> None:
    train = load_detection("detection_scenes", "train", image_size=IMAGE_SIZE)
    val = load_detection("detection_scenes", "val", image_size=IMAGE_SIZE)
    print(f"{STEPS} steps of {BATCH}; {torch.get_num_threads()} threads")
    print(f"{'run':28s} {'val mAP':>8s} {'agnostic':>9s} {'seconds':>8s}")
    for name, (query_type, stride) in RUNS.items():
        if patterns and not any(p in name for p in patterns):
            continue
        val_map, agnostic, seconds = run(train, val, query_type, stride)
        print(f"{name:28s} {val_map:8.3f} {agnostic:9.3f} {seconds:8.0f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
