"""papers/detr: short runs behind the notebook's DETR -- its object queries, token grid and recipe.

    python bench/detr_queries.py              # every run, about an hour and a half in all on one core
    python bench/detr_queries.py learned      # only the runs whose name contains "learned"

Each run trains ``DETR(d_model=128, num_heads=4, 2 encoder + 3 decoder layers, ffn_dim=256,
num_queries=12)`` on the 10,000 96-px training scenes (flips), batch 32, AdamW with weight decay
1e-4, warm-up over 120 steps then cosine, gradients clipped at 0.5, seed 0, and scores the 1,000
validation scenes (the test split is not touched): mAP over every (query, class) pair,
class-agnostic AP over one detection per query.  Two sets of runs:

* **queries** (1,200 steps, peak learning rate 5e-4): the object queries (``"learned"``: the 2020
  paper's embeddings; ``"anchor"``: learned boxes refined layer by layer) and the backbone map
  the transformer reads (stride 16: 6 x 6 tokens; stride 8: 12 x 12);
* **recipe** (1,400 steps, anchor queries on stride 8): the peak learning rate and the weight of
  the class term in the matching cost and the loss (the paper's 1, or 2).

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
from helpers.datasets import DetectionDataset, gt_boxes_to_targets, load_detection
from papers.detr import DEFAULT_WEIGHTS, DETR, gt_boxes_to_set_targets, predict_detections, set_loss

BATCH, WARMUP, IMAGE_SIZE = 32, 120, 96
# name: (query type, feature stride, steps, peak learning rate, class weight)
RUNS = {
    "learned queries, stride 16": ("learned", 16, 1200, 5e-4, 1.0),
    "anchor queries, stride 16": ("anchor", 16, 1200, 5e-4, 1.0),
    "anchor queries, stride 8": ("anchor", 8, 1200, 5e-4, 1.0),
    "recipe lr 5e-4, class 1": ("anchor", 8, 1400, 5e-4, 1.0),
    "recipe lr 5e-4, class 2": ("anchor", 8, 1400, 5e-4, 2.0),
    "recipe lr 1e-3, class 1": ("anchor", 8, 1400, 1e-3, 1.0),
    "recipe lr 1e-3, class 2": ("anchor", 8, 1400, 1e-3, 2.0),
    "recipe lr 2e-3, class 1": ("anchor", 8, 1400, 2e-3, 1.0),
}


def run(train, val, query_type: str, stride: int, steps: int, lr: float,
        class_weight: float) -> tuple[float, float, float]:
    """Validation mAP@0.5, class-agnostic AP and seconds of one short run."""
    seed_everything(0)
    model = DETR(num_classes=len(train["class_names"]), d_model=128, num_heads=4, num_encoder_layers=2,
                 num_decoder_layers=3, ffn_dim=256, num_queries=12, feature_stride=stride, image_size=IMAGE_SIZE,
                 query_type=query_type)
    weights = {**DEFAULT_WEIGHTS, "class": class_weight}
    loader = DataLoader(DetectionDataset(train, flip_prob=0.5), batch_size=BATCH, shuffle=True, drop_last=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / WARMUP) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    start, step = time.perf_counter(), 0
    while step < steps:
        for images, gt_boxes in loader:
            targets = gt_boxes_to_set_targets(gt_boxes, IMAGE_SIZE)
            loss = set_loss(*model.forward_all_layers(images), targets, weights)["loss"]
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
            scheduler.step()
            step += 1
            if step == steps:
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
    print(f"batch {BATCH}; {torch.get_num_threads()} threads")
    print(f"{'run':28s} {'steps':>6s} {'val mAP':>8s} {'agnostic':>9s} {'seconds':>8s}")
    for name, (query_type, stride, steps, lr, class_weight) in RUNS.items():
        if patterns and not any(p in name for p in patterns):
            continue
        val_map, agnostic, seconds = run(train, val, query_type, stride, steps, lr, class_weight)
        print(f"{name:28s} {steps:6d} {val_map:8.3f} {agnostic:9.3f} {seconds:8.0f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
