"""DETR: End-to-End Object Detection with Transformers (Carion et al., 2020), written by hand.

A CNN turns the image into a grid of features; a transformer **encoder** lets every cell of the
grid look at every other; a transformer **decoder** turns ``num_queries`` learned *object
queries* into ``num_queries`` predictions (a class among ``C`` classes plus "no object", and a
box) at once.  By default each query is a learned box refined by every decoder layer (DAB-DETR,
2022), which learns far faster than the paper's free query vectors (also kept; compared in
``bench/detr_queries.py``).  No hand-placed anchors, no NMS: training matches the predictions
one-to-one to the ground truth with the **Hungarian algorithm**, so each object is claimed by
exactly one query and the others learn to say "no object".

* :func:`hungarian` -- the optimal assignment of a rectangular cost matrix (shortest augmenting
  paths with potentials, O(n² m)), the same result as ``scipy.optimize.linear_sum_assignment``;
* :func:`box_cxcywh_to_xyxy` / :func:`box_xyxy_to_cxcywh` -- DETR's box coding (centre and size,
  normalised by the image size);
* :func:`position_encoding_2d` -- the 2-D sinusoidal encoding of the grid (A4's 1-D sinusoid for
  the row, the same for the column, side by side);
* :func:`sine_encoding` and :func:`box_position_code` -- the same sinusoids at real positions, and
  the code of a box on the grid (its centre's cell code, then its size): an anchor query's position;
* :class:`EncoderLayer`, :class:`DecoderLayer` -- DETR's transformer layers, built on A4's
  ``MultiHeadAttention``, ``LayerNormalization`` and ``FeedForwardBlock``: positional encodings
  are added to the queries and keys of every attention, never to the values;
* :class:`DETR` -- backbone (``helpers.backbone.SmallTrunk``, A5's, from scratch), transformer, object queries
  (``query_type="anchor"``: learned boxes refined layer by layer; ``"learned"``: the paper's), heads;
  ``model(images) -> (class_logits, boxes)``, the graph that :func:`helpers.export.export_model`
  exports;
* :func:`matching_cost` and :func:`match_predictions` -- the cost of giving target ``j`` to query
  ``i`` (class probability, L1 and generalised IoU of the boxes) and the optimal matching;
* :func:`weighted_cross_entropy` and :func:`set_loss` -- the set loss: cross-entropy with a
  down-weighted "no object" class, L1 and ``1 - GIoU`` on the matched boxes, summed over the
  outputs of every decoder layer (auxiliary losses);
* :func:`decode_predictions` / :func:`predict_detections` -- probabilities and pixel boxes, as
  ``A5_detection.common.evaluate_detections`` wants them; thresholding stays outside the graph.

Command line: ``python -m papers.detr predict IMAGE... [--checkpoint P | --export P] [--out DIR]``
and ``python -m papers.detr export [--checkpoint P] [--out FILE.pt2]``.

Batches use the course's format: ``images (B, 3, H, W)`` floats in [0, 1], ``H`` and ``W``
multiples of 32, and ``gt_boxes (B, M, 5)`` rows ``(x1, y1, x2, y2, class)`` in continuous pixel
coordinates, padding rows all ``-1``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from A4_rnn_transformer.transformer import (
    SINUSOID_BASE,
    FeedForwardBlock,
    LayerNormalization,
    MultiHeadAttention,
    position_encoding_sinusoid,
)
from A5_detection.common import check_gt_boxes, class_candidates, generalized_box_iou, predict_in_batches
from helpers.backbone import IMAGENET_MEAN, IMAGENET_STD, make_trunk, regnet_available
from papers import checks

__all__ = [
    "DETR",
    "DecoderLayer",
    "EncoderLayer",
    "box_cxcywh_to_xyxy",
    "box_position_code",
    "box_xyxy_to_cxcywh",
    "decode_predictions",
    "gt_boxes_to_set_targets",
    "hungarian",
    "inference_metadata",
    "main",
    "match_predictions",
    "no_object_weight_for",
    "matching_cost",
    "position_encoding_2d",
    "predict_detections",
    "queries_for",
    "set_loss",
    "sine_encoding",
    "weighted_cross_entropy",
]

# --------------------------------------------------------------------------- the Hungarian algorithm


def hungarian(cost) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of rows to columns of a rectangular cost matrix.

    Every row is given a different column when there are at least as many columns as rows (else
    every column a different row), so that the sum of the chosen costs is the smallest possible.
    Written as the shortest-augmenting-path form of the Kuhn-Munkres algorithm with potentials
    (Jonker-Volgenant style): rows join one at a time; for each, a Dijkstra-like search over
    *reduced* costs ``cost[i, j] - u[i] - v[j]`` (never negative) finds the cheapest way to make
    room for it, the potentials ``u, v`` are raised by the distances found, and the alternating
    path is flipped.  ``O(n² m)`` for ``n <= m`` (the inner loop over columns is vectorised).

    Args:
        cost: ``(n, m)`` finite real numbers (a NumPy array, a tensor or nested lists).

    Returns:
        ``(rows, cols)``: int64 arrays of length ``min(n, m)``, ``rows`` increasing, row
        ``rows[k]`` assigned to column ``cols[k]`` -- the format of
        ``scipy.optimize.linear_sum_assignment``.

    Rule: you may not use ``scipy.optimize.linear_sum_assignment`` (the notebook and the tests
    compare with it).  Hint: keep the potentials ``u, v`` as NumPy arrays and vectorise the
    loop over columns.
    """
    cost = checks.cost_matrix(cost)  # a float64 NumPy array
    empty = np.zeros(0, dtype=np.int64)
    if cost.size == 0:
        return empty, empty.copy()
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    ### BEGIN SOLUTION
    n, m = cost.shape  # n <= m: every row gets a column
    # Index 0 is a virtual column / row, so rows and columns are numbered from 1 below.
    u = np.zeros(n + 1)  # row potentials
    v = np.zeros(m + 1)  # column potentials
    owner = np.zeros(m + 1, dtype=np.int64)  # owner[j]: the row holding column j (0: free)
    for row in range(1, n + 1):
        owner[0] = row  # the new row sits on the virtual column 0
        column = 0
        dist = np.full(m + 1, np.inf)  # shortest reduced distance to each column so far
        came_from = np.zeros(m + 1, dtype=np.int64)  # previous column on that shortest path
        done = np.zeros(m + 1, dtype=bool)
        while owner[column] != 0:
            done[column] = True
            i = owner[column]
            # Relax every column not yet reached through row i (reduced costs from row i).
            reduced = cost[i - 1] - u[i] - v[1:]
            better = ~done[1:] & (reduced < dist[1:])
            dist[1:][better] = reduced[better]
            came_from[1:][better] = column
            # The closest column not yet reached; ties: the lowest index.
            candidates = np.where(done[1:], np.inf, dist[1:])
            nxt = int(np.argmin(candidates)) + 1
            delta = candidates[nxt - 1]
            # Raise the potentials so reduced costs along the search tree stay 0.
            u[owner[done]] += delta
            v[done] -= delta
            dist[1:][~done[1:]] -= delta
            column = nxt
        # Flip the alternating path from the free column found back to the virtual column.
        while column != 0:
            previous = came_from[column]
            owner[column] = owner[previous]
            column = previous
    cols_of_row = np.zeros(n, dtype=np.int64)
    for j in range(1, m + 1):
        if owner[j]:
            cols_of_row[owner[j] - 1] = j - 1
    rows, cols = np.arange(n, dtype=np.int64), cols_of_row
    ### END SOLUTION
    if transposed:
        order = np.argsort(cols, kind="stable")
        rows, cols = cols[order], rows[order]
    return rows, cols


# --------------------------------------------------------------------------- boxes


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` boxes ``(cx, cy, w, h)`` -> ``(x1, y1, x2, y2)``.

    Rule: no loops.  Hint: ``unbind(-1)``, then ``torch.stack(..., dim=-1)``.
    """
    checks.box_tensor(boxes, "(cx, cy, w, h)")
    ### BEGIN SOLUTION
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    ### END SOLUTION


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` boxes ``(x1, y1, x2, y2)`` -> ``(cx, cy, w, h)``.

    Rule: no loops.  Hint: ``unbind(-1)``, then ``torch.stack(..., dim=-1)``.
    """
    checks.box_tensor(boxes, "(x1, y1, x2, y2)")
    ### BEGIN SOLUTION
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)
    ### END SOLUTION


def gt_boxes_to_set_targets(gt_boxes: torch.Tensor, image_size) -> list[dict]:
    """The course's padded ground truth -> DETR's targets, one dict per image.

    Args:
        gt_boxes: ``(B, N, 5)`` rows ``(x1, y1, x2, y2, class)`` in pixels, padding rows all ``-1``.
        image_size: ``(H, W)`` of the images (or one int for squares): boxes are divided by it.

    Returns:
        ``B`` dicts ``{"labels": int64 (K,), "boxes": (K, 4)}``, boxes as ``(cx, cy, w, h)`` in
        ``[0, 1]`` (fractions of the image).

    Raises:
        ValueError, TypeError: from ``common.check_gt_boxes`` (a wrong shape or dtype, a non-integer
            class, a padding row that is not all ``-1``, a malformed box).
    """
    check_gt_boxes(gt_boxes)
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    scale = gt_boxes.new_tensor([width, height, width, height])
    targets = []
    for rows in gt_boxes:
        real = rows[:, 4] >= 0
        targets.append({"labels": rows[real, 4].long(), "boxes": box_xyxy_to_cxcywh(rows[real, :4] / scale)})
    return targets


# --------------------------------------------------------------------------- positional encoding


def position_encoding_2d(height: int, width: int, dim: int) -> torch.Tensor:
    """2-D sinusoidal positional encoding of an ``height x width`` grid.

    The first ``dim / 2`` features encode the row ``y`` with A4's
    ``position_encoding_sinusoid`` (``sin / cos`` of ``y / 10000^(2i / (dim/2))``), the last
    ``dim / 2`` the column ``x`` the same way, so two cells in the same row share their first
    half and the dot product of two codes depends on how far apart they are along each axis.

    Returns:
        ``(height * width, dim)`` float32, cells in row-major order (the order of
        ``features.flatten(2)``): ``out[y * width + x] = [PE(y), PE(x)]``.

    Rule: no loops.  Hint: A4's ``position_encoding_sinusoid`` for the rows and for the
    columns, ``expand`` each over the grid, then concatenate.
    """
    checks.grid_code(height, width, dim)
    ### BEGIN SOLUTION
    rows = position_encoding_sinusoid(height, dim // 2)[0]  # (H, dim/2)
    cols = position_encoding_sinusoid(width, dim // 2)[0]  # (W, dim/2)
    grid = torch.cat([rows[:, None, :].expand(height, width, dim // 2),
                      cols[None, :, :].expand(height, width, dim // 2)], dim=-1)
    return grid.reshape(height * width, dim)
    ### END SOLUTION


def sine_encoding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """A4's sinusoid at real-valued positions: ``(...)`` -> ``(..., dim)``.

    ``out[..., 2i] = sin(p / 10000^(2i / dim))``, ``out[..., 2i + 1] = cos(...)``: at the integers
    ``0 .. K-1`` it equals ``position_encoding_sinusoid(K, dim)``; between them it moves smoothly,
    so a box centre that lies between two grid cells gets a code between theirs.
    """
    checks.positions(positions, dim)
    ### BEGIN SOLUTION
    even = torch.arange(dim, device=positions.device) // 2 * 2
    angles = positions[..., None] / SINUSOID_BASE ** (even.to(positions.dtype) / dim)
    is_even = torch.arange(dim, device=positions.device) % 2 == 0
    return torch.where(is_even, angles.sin(), angles.cos())
    ### END SOLUTION


def box_position_code(boxes: torch.Tensor, grid: tuple[int, int], dim: int) -> torch.Tensor:
    """Sinusoid code of ``(cx, cy, w, h)`` boxes on an ``(h, w)`` feature grid: ``(..., 4)`` -> ``(..., 2 dim)``.

    The centre is measured in grid cells as :func:`position_encoding_2d` numbers them (cell ``y``
    has its centre at ``(y + 0.5) / h`` of the image), so a box centred on cell ``(y, x)`` gets the
    cell's own code ``[PE(y), PE(x)]`` as its first ``dim`` features; the last ``dim`` encode the
    box's height and width in cells the same way.  Each part has ``dim / 2`` features.
    """
    checks.box_code(boxes, dim)
    rows, cols = grid
    ### BEGIN SOLUTION
    cx, cy, w, h = boxes.unbind(-1)
    parts = (cy * rows - 0.5, cx * cols - 0.5, h * rows, w * cols)
    return torch.cat([sine_encoding(part, dim // 2) for part in parts], dim=-1)
    ### END SOLUTION


# --------------------------------------------------------------------------- transformer layers


class EncoderLayer(nn.Module):
    """DETR's encoder layer: self-attention over the grid, then a feed-forward block.

    ``x = norm1(x + attn(x + pos, x + pos, x))``, ``x = norm2(x + ffn(x))`` (post-norm, as the
    paper): the positional encoding enters every layer's queries and keys, not the values.

    ``forward(x (B, S, d), pos (S, d) or (B, S, d)) -> (B, S, d)``; ``attention.weights_softmax``
    keeps the last ``(B, heads, S, S)`` weights.

    Rule: attention is A4's ``MultiHeadAttention``: you may not use ``nn.MultiheadAttention`` or
    ``F.scaled_dot_product_attention``.
    """

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float = 0.0):
        super().__init__()
        checks.layer_sizes(d_model, num_heads)
        ### BEGIN SOLUTION
        self.attention = MultiHeadAttention(num_heads, d_model, d_model // num_heads)
        self.norm1 = LayerNormalization(d_model, epsilon=1e-5)
        self.ffn = FeedForwardBlock(d_model, ffn_dim)
        self.norm2 = LayerNormalization(d_model, epsilon=1e-5)
        self.dropout = nn.Dropout(dropout)
        ### END SOLUTION

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        keys = x + pos
        x = self.norm1(x + self.dropout(self.attention(keys, keys, x)))
        return self.norm2(x + self.dropout(self.ffn(x)))
        ### END SOLUTION


class DecoderLayer(nn.Module):
    """DETR's decoder layer: self-attention among the queries, cross-attention to the image, FFN.

    With ``q`` the learned query embeddings (the *object queries*, ``(Q, d)``) and ``memory`` the
    encoder's output::

        t = norm1(t + self_attn(t + q, t + q, t))
        t = norm2(t + cross_attn(t + q, memory + pos, memory))
        t = norm3(t + ffn(t))

    Self-attention lets the queries agree on who predicts what (no NMS needed); cross-attention
    lets each query gather the image features of "its" object.  ``cross_attention.weights_softmax``
    keeps the last ``(B, heads, Q, S)`` weights (the decoder attention maps of the notebook).

    Rule: attention is A4's ``MultiHeadAttention``: you may not use ``nn.MultiheadAttention`` or
    ``F.scaled_dot_product_attention``.
    """

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float = 0.0):
        super().__init__()
        checks.layer_sizes(d_model, num_heads)
        ### BEGIN SOLUTION
        self.self_attention = MultiHeadAttention(num_heads, d_model, d_model // num_heads)
        self.cross_attention = MultiHeadAttention(num_heads, d_model, d_model // num_heads)
        self.norm1 = LayerNormalization(d_model, epsilon=1e-5)
        self.norm2 = LayerNormalization(d_model, epsilon=1e-5)
        self.norm3 = LayerNormalization(d_model, epsilon=1e-5)
        self.ffn = FeedForwardBlock(d_model, ffn_dim)
        self.dropout = nn.Dropout(dropout)
        ### END SOLUTION

    def forward(self, target: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor,
                query_pos: torch.Tensor) -> torch.Tensor:
        """``target (B, Q, d)``, ``memory (B, S, d)``, ``pos (S, d)``, ``query_pos (Q, d)`` or ``(B, Q, d)``
        -> ``(B, Q, d)``."""
        ### BEGIN SOLUTION
        queries = target + query_pos
        target = self.norm1(target + self.dropout(self.self_attention(queries, queries, target)))
        attended = self.cross_attention(target + query_pos, memory + pos, memory)
        target = self.norm2(target + self.dropout(attended))
        return self.norm3(target + self.dropout(self.ffn(target)))
        ### END SOLUTION


# --------------------------------------------------------------------------- the model


class DETR(nn.Module):
    """DETR: CNN backbone, transformer encoder-decoder, ``num_queries`` object queries.

    The backbone is A5's trunk (given code, :func:`helpers.backbone.make_trunk`): its
    :class:`~helpers.backbone.SmallTrunk` from scratch (no download), or with ``pretrained=True``
    RegNetX-400MF from ImageNet weights (the paper starts from an ImageNet ResNet-50);
    its map at ``feature_stride`` (16: ``c4``, 32: ``c5``, 8: ``c3``) is projected to ``d_model``
    channels by a 1x1 convolution and flattened to ``S = H W / stride²`` tokens.  The heads turn
    every decoder output into ``num_classes + 1`` logits (the last one is "no object") and a box
    ``(cx, cy, w, h)`` in [0, 1] (a 3-layer MLP and a sigmoid).

    Two kinds of object queries (``query_type``):

    * ``"learned"`` -- the 2020 paper: each query is a learned ``d``-vector added to the queries of
      every attention; the decoder starts from zeros and every layer's output goes through the box
      head on its own.  Nothing tells a query *where* to look: cross-attention has to learn that
      from scratch, which is why the paper trains for 500 epochs.
    * ``"anchor"`` (default) -- each query is a learned **box** (its ``(cx, cy, w, h)`` kept as
      logits) plus a learned content vector, as in DAB-DETR (Liu et al., 2022).  Before each decoder
      layer the current box is coded by :func:`box_position_code` -- in the same sinusoids as the
      encoder's grid -- and a 2-layer MLP turns the code into the layer's query position, so a query
      attends near its box from the first step; the layer's box head predicts a *correction*
      ``box = sigmoid(logit(reference) + head(hidden))`` and the corrected box (no gradient through
      it) is the next layer's reference (iterative refinement, Deformable DETR).  Matching, set loss
      and inference are the paper's.

    Args:
        num_classes: ``C``, object classes (without "no object").
        d_model: width of the transformer.
        num_heads: attention heads.
        num_encoder_layers, num_decoder_layers: depth of the encoder and the decoder.
        ffn_dim: hidden width of the feed-forward blocks.
        num_queries: ``Q``, predictions per image (at least the most objects an image holds).
        feature_stride: which backbone map feeds the transformer (8, 16 or 32).
        query_type: ``"anchor"`` (learned boxes, refined layer by layer) or ``"learned"`` (the
            paper's learned embeddings); see above.
        dropout: inside the transformer layers.
        image_size: the side of the (square) training images: the size the command line and the
            export use; any multiple of 32 works in ``forward``.
        class_names: optional names of the ``C`` classes (kept for the command line).
        pretrained, trunk: the backbone (:func:`helpers.backbone.make_trunk`): ``self.backbone``,
            given; its maps have ``self.backbone.out_channels[level]`` channels.

    ``forward(images (B, 3, H, W))`` in [0, 1] returns ``(class_logits (B, Q, C + 1), boxes (B, Q, 4))``
    of the last decoder layer; :meth:`forward_all_layers` returns every decoder layer's
    ``(L, B, Q, C + 1)`` and ``(L, B, Q, 4)`` (for the auxiliary losses).
    """

    def __init__(self, num_classes: int, d_model: int = 128, num_heads: int = 4, num_encoder_layers: int = 2,
                 num_decoder_layers: int = 3, ffn_dim: int = 256, num_queries: int = 12, feature_stride: int = 16,
                 dropout: float = 0.0, image_size: int = 96, class_names=None, query_type: str = "anchor",
                 pretrained: bool = False, trunk: str | None = None):
        super().__init__()
        checks.detr_settings(num_classes, d_model, num_heads, num_encoder_layers, num_decoder_layers, ffn_dim,
                             num_queries, feature_stride, image_size, class_names, query_type)
        self.num_classes, self.num_queries, self.d_model = num_classes, num_queries, d_model
        self.feature_stride, self.image_size, self.query_type = feature_stride, image_size, query_type
        self.class_names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
        self.level = {8: "c3", 16: "c4", 32: "c5"}[feature_stride]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.backbone = make_trunk(pretrained, trunk, user="DETR")
        ### BEGIN SOLUTION
        self.input_proj = nn.Conv2d(self.backbone.out_channels[self.level], d_model, 1)
        self.encoder = nn.ModuleList([EncoderLayer(d_model, num_heads, ffn_dim, dropout)
                                      for _ in range(num_encoder_layers)])
        self.decoder = nn.ModuleList([DecoderLayer(d_model, num_heads, ffn_dim, dropout)
                                      for _ in range(num_decoder_layers)])
        self.decoder_norm = LayerNormalization(d_model, epsilon=1e-5)
        if query_type == "learned":
            self.query_embed = nn.Parameter(torch.randn(num_queries, d_model))
        else:
            # Start boxes: centres spread at random over the image, a quarter of its side.
            start = torch.cat([torch.rand(num_queries, 2), torch.full((num_queries, 2), 0.25)], dim=1)
            self.query_boxes = nn.Parameter(torch.logit(start))
            self.query_content = nn.Parameter(torch.zeros(num_queries, d_model))
            self.query_pos_mlp = nn.Sequential(nn.Linear(2 * d_model, d_model), nn.ReLU(),
                                               nn.Linear(d_model, d_model))
        self.class_head = nn.Linear(d_model, num_classes + 1)
        self.box_head = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, d_model),
                                      nn.ReLU(), nn.Linear(d_model, 4))
        ### END SOLUTION

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Backbone and encoder: ``memory (B, S, d)``, ``pos (S, d)`` and the grid's ``(h, w)``."""
        checks.detr_images(images)
        ### BEGIN SOLUTION
        features = self.input_proj(self.backbone((images - self.mean) / self.std)[self.level])
        h, w = features.shape[-2:]
        memory = features.flatten(2).transpose(1, 2)  # (B, h*w, d), row-major cells
        pos = position_encoding_2d(int(h), int(w), self.d_model).to(memory)
        for layer in self.encoder:
            memory = layer(memory, pos)
        ### END SOLUTION
        return memory, pos, (int(h), int(w))

    def forward_all_layers(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions of every decoder layer: ``(L, B, Q, C + 1)`` logits and ``(L, B, Q, 4)`` boxes."""
        memory, pos, grid = self.encode(images)
        if self.query_type == "learned":
            hidden, boxes = self._decode_learned(memory, pos)
        else:
            hidden, boxes = self._decode_anchored(memory, pos, grid)
        return self.class_head(hidden), boxes

    def _decode_learned(self, memory: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The paper's decoder: ``(L, B, Q, d)`` normalised outputs and ``(L, B, Q, 4)`` boxes."""
        ### BEGIN SOLUTION
        target = torch.zeros(memory.shape[0], self.num_queries, self.d_model, dtype=memory.dtype,
                             device=memory.device)
        outputs = []
        for layer in self.decoder:
            target = layer(target, memory, pos, self.query_embed)
            outputs.append(self.decoder_norm(target))
        hidden = torch.stack(outputs)  # (L, B, Q, d)
        return hidden, self.box_head(hidden).sigmoid()
        ### END SOLUTION

    def _decode_anchored(self, memory: torch.Tensor, pos: torch.Tensor,
                         grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchor-box queries refined layer by layer: ``(L, B, Q, d)`` outputs and ``(L, B, Q, 4)`` boxes."""
        batch = memory.shape[0]
        ### BEGIN SOLUTION
        reference = self.query_boxes.expand(batch, -1, -1)  # (B, Q, 4) box logits
        target = self.query_content.expand(batch, -1, -1)
        outputs, logits = [], []
        for layer in self.decoder:
            query_pos = self.query_pos_mlp(box_position_code(reference.sigmoid(), grid, self.d_model))
            target = layer(target, memory, pos, query_pos)
            hidden = self.decoder_norm(target)
            logits.append(reference + self.box_head(hidden))  # the layer's correction, in logit space
            outputs.append(hidden)
            reference = logits[-1].detach()  # the next layer refines this box; no gradient through it
        return torch.stack(outputs), torch.stack(logits).sigmoid()
        ### END SOLUTION

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, boxes = self.forward_all_layers(images)
        return logits[-1], boxes[-1]

    def decoder_attention(self) -> torch.Tensor:
        """The last decoder layer's cross-attention of the last forward pass, averaged over heads:
        ``(B, Q, S)``; reshape ``S`` to the grid ``(h, w)`` of :meth:`encode`."""
        weights = self.decoder[-1].cross_attention.weights_softmax
        if weights is None:
            raise RuntimeError("run the model on some images first")
        return weights.mean(dim=1)


# --------------------------------------------------------------------------- matching and the set loss


#: The paper's weights of the matching cost and of the loss: class, L1 on boxes, generalised IoU.
DEFAULT_WEIGHTS = {"class": 1.0, "l1": 5.0, "giou": 2.0}
#: Weight of the "no object" class in the cross-entropy (the paper's ``eos_coef``), with 12 queries.
NO_OBJECT_WEIGHT = 0.1


def queries_for(dataset: str) -> int:
    """Object queries for ``dataset``: PASCAL VOC 2007 50 (its images hold up to 42 objects, 37 in
    trainval), the generated scenes 12 (they hold at most 6; measured in ``bench/detr_queries.py``)."""
    return 50 if dataset == "voc2007" else 12


def no_object_weight_for(num_queries: int) -> float:
    """The "no object" weight for ``num_queries``: :data:`NO_OBJECT_WEIGHT` (measured with 12 queries)
    times ``12 / num_queries``.  With more queries, more of them are empty; shrinking their weight
    keeps the empty queries' share of the class loss what it was when the recipe was measured."""
    return NO_OBJECT_WEIGHT * 12 / num_queries


def matching_cost(logits: torch.Tensor, boxes: torch.Tensor, target: dict, weights: dict | None = None) -> torch.Tensor:
    """The cost of giving each target to each query, for ONE image.

    ``cost[i, j] = - w_class p_i(c_j) + w_l1 ||b_i - b_j||_1 - w_giou GIoU(b_i, b_j)``: the
    probability query ``i`` gives target ``j``'s class (the paper uses the probability, not its
    log, so the terms have comparable scales), the L1 distance of the ``(cx, cy, w, h)`` boxes
    and the generalised IoU of the corner boxes.

    Args:
        logits: ``(Q, C + 1)``; boxes: ``(Q, 4)`` ``(cx, cy, w, h)``.
        target: ``{"labels" (K,), "boxes" (K, 4)}``.
        weights: ``{"class", "l1", "giou"}`` (default: the paper's 1, 5, 2).

    Returns:
        ``(Q, K)`` cost, no gradient.

    Rule: no loops.  Hint: ``torch.cdist(..., p=1)`` gives every L1 distance at once.
    """
    checks.set_outputs(logits, boxes)
    if logits.dim() != 2:
        raise ValueError(f"logits must be (Q, C + 1) for one image, got {tuple(logits.shape)}")
    checks.set_target(target, logits.shape[1] - 1, "target")
    w = DEFAULT_WEIGHTS if weights is None else weights
    ### BEGIN SOLUTION
    with torch.no_grad():
        labels, target_boxes = target["labels"], target["boxes"].to(boxes)
        probs = logits.softmax(-1)[:, labels]  # (Q, K)
        l1 = torch.cdist(boxes, target_boxes, p=1)  # (Q, K)
        giou = generalized_box_iou(box_cxcywh_to_xyxy(boxes), box_cxcywh_to_xyxy(target_boxes))
        return -w["class"] * probs + w["l1"] * l1 - w["giou"] * giou
    ### END SOLUTION


def match_predictions(logits: torch.Tensor, boxes: torch.Tensor, targets: list, weights: dict | None = None) -> list:
    """The optimal one-to-one matching of queries to targets, image by image (:func:`hungarian`).

    Args:
        logits: ``(B, Q, C + 1)``; boxes: ``(B, Q, 4)``; targets: ``B`` dicts of
            :func:`gt_boxes_to_set_targets`.

    Returns:
        ``B`` pairs ``(query_index, target_index)`` of int64 tensors of length ``min(Q, K_b)``;
        query ``query_index[k]`` predicts target ``target_index[k]``.
    """
    checks.set_outputs(logits, boxes)
    if logits.dim() != 3 or not isinstance(targets, (list, tuple)) or len(targets) != logits.shape[0]:
        raise ValueError(f"logits must be (B, Q, C + 1) and targets a list of B = "
                         f"{logits.shape[0] if logits.dim() == 3 else '?'} dicts")
    for b, target in enumerate(targets):
        checks.set_target(target, logits.shape[-1] - 1, f"targets[{b}]")
    batch, num_queries = logits.shape[:2]
    sizes = [int(target["labels"].numel()) for target in targets]
    if sum(sizes) == 0:
        none = torch.zeros(0, dtype=torch.int64, device=logits.device)
        return [(none, none) for _ in targets]
    # One cost matrix for the whole batch, every query of every image against every target of the
    # batch: one call instead of B small ones, whose overhead dominated; image b's own block then
    # goes to the Hungarian algorithm.
    every_target = {"labels": torch.cat([t["labels"] for t in targets]),
                    "boxes": torch.cat([t["boxes"].to(boxes) for t in targets])}
    cost = matching_cost(logits.flatten(0, 1), boxes.flatten(0, 1), every_target, weights)
    cost = cost.view(batch, num_queries, -1).cpu().double().numpy()
    matches, start = [], 0
    for b, size in enumerate(sizes):
        rows, cols = hungarian(cost[b, :, start:start + size])
        matches.append((torch.as_tensor(rows, device=logits.device), torch.as_tensor(cols, device=logits.device)))
        start += size
    return matches


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with a weight per class, averaged by the weights (``F.cross_entropy(weight=)``).

    ``loss = sum_n w[y_n] (-log softmax(s_n)[y_n]) / sum_n w[y_n]``.

    Args:
        logits: ``(N, C)``; labels: int64 ``(N,)``; class_weights: ``(C,)``.

    Rule: you may not use ``F.cross_entropy`` (the tests compare with it).  Hint:
    ``torch.logsumexp`` for a stable log-softmax, ``gather`` for the labels' entries.
    """
    if logits.dim() != 2 or labels.shape != logits.shape[:1] or class_weights.shape != logits.shape[1:]:
        raise ValueError(f"logits (N, C), labels (N,) and class_weights (C,) must match, got "
                         f"{tuple(logits.shape)}, {tuple(labels.shape)}, {tuple(class_weights.shape)}")
    ### BEGIN SOLUTION
    log_probs = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    picked = log_probs.gather(1, labels[:, None])[:, 0]
    w = class_weights.to(logits)[labels]
    return -(w * picked).sum() / w.sum()
    ### END SOLUTION


def _layer_loss(logits, boxes, targets, weights, no_object_weight):
    """Class, L1 and GIoU losses of one decoder layer's ``(B, Q, C + 1)`` and ``(B, Q, 4)``."""
    num_classes = logits.shape[-1] - 1
    ### BEGIN SOLUTION
    matches = match_predictions(logits.detach(), boxes.detach(), targets, weights)
    classes = torch.full(logits.shape[:2], num_classes, dtype=torch.int64, device=logits.device)
    pred_boxes, true_boxes = [], []
    for b, (queries, which) in enumerate(matches):
        classes[b, queries] = targets[b]["labels"][which].to(logits.device)
        pred_boxes.append(boxes[b, queries])
        true_boxes.append(targets[b]["boxes"][which].to(boxes))
    class_weights = torch.ones(num_classes + 1, device=logits.device)
    class_weights[-1] = no_object_weight
    loss_class = weighted_cross_entropy(logits.flatten(0, 1), classes.flatten(), class_weights)
    pred_boxes, true_boxes = torch.cat(pred_boxes), torch.cat(true_boxes)
    num_boxes = max(true_boxes.shape[0], 1)
    loss_l1 = (pred_boxes - true_boxes).abs().sum() / num_boxes
    if true_boxes.shape[0]:
        giou = generalized_box_iou(box_cxcywh_to_xyxy(pred_boxes), box_cxcywh_to_xyxy(true_boxes)).diagonal()
        loss_giou = (1 - giou).sum() / num_boxes
    else:
        loss_giou = boxes.sum() * 0.0
    ### END SOLUTION
    return {"loss_class": loss_class, "loss_l1": loss_l1, "loss_giou": loss_giou}


def set_loss(logits: torch.Tensor, boxes: torch.Tensor, targets: list, weights: dict | None = None,
             no_object_weight: float = NO_OBJECT_WEIGHT) -> dict:
    """DETR's set loss, summed over the decoder layers (auxiliary decoding losses).

    For every layer: match queries to targets (:func:`match_predictions`); every unmatched query
    must predict "no object" (class ``C``); then

    * ``loss_class``: cross-entropy over all queries, the "no object" class weighted
      ``no_object_weight`` (most queries are empty: without it they would swamp the rest);
    * ``loss_l1``: L1 distance of the matched ``(cx, cy, w, h)`` boxes, summed, divided by the
      number of targets in the batch;
    * ``loss_giou``: ``1 - GIoU`` of the matched boxes, the same way.

    ``loss = sum over layers (w_class loss_class + w_l1 loss_l1 + w_giou loss_giou)``.

    Args:
        logits: ``(L, B, Q, C + 1)`` (or ``(B, Q, C + 1)`` for one layer).
        boxes: ``(L, B, Q, 4)`` ``(cx, cy, w, h)`` in [0, 1].
        targets: ``B`` dicts ``{"labels" (K,), "boxes" (K, 4)}`` (:func:`gt_boxes_to_set_targets`).
        weights: ``{"class", "l1", "giou"}``, used for the matching cost and the loss (the paper's
            1, 5, 2 by default).
        no_object_weight: weight of the "no object" class (the paper's 0.1).

    Returns:
        ``{"loss": total, "loss_class", "loss_l1", "loss_giou"}``, the last three of the last
        layer (for logging; detached).
    """
    checks.set_outputs(logits, boxes)
    if logits.dim() == 3:
        logits, boxes = logits[None], boxes[None]
    if logits.dim() != 4:
        raise ValueError(f"logits must be (L, B, Q, C + 1) or (B, Q, C + 1), got {tuple(logits.shape)}")
    if not isinstance(targets, (list, tuple)) or len(targets) != logits.shape[1]:
        raise ValueError(f"targets must be a list of B = {logits.shape[1]} dicts, got "
                         f"{len(targets) if isinstance(targets, (list, tuple)) else type(targets).__name__}")
    for b, target in enumerate(targets):
        checks.set_target(target, logits.shape[-1] - 1, f"targets[{b}]")
    w = DEFAULT_WEIGHTS if weights is None else {k: checks.weight(weights[k], f"weights[{k!r}]")
                                                 for k in DEFAULT_WEIGHTS}
    no_object_weight = checks.weight(no_object_weight, "no_object_weight")
    total = logits.new_zeros(())
    for layer in range(logits.shape[0]):
        parts = _layer_loss(logits[layer], boxes[layer], targets, w, no_object_weight)
        total = total + w["class"] * parts["loss_class"] + w["l1"] * parts["loss_l1"] + w["giou"] * parts["loss_giou"]
    return {"loss": total, **{name: value.detach() for name, value in parts.items()}}


# --------------------------------------------------------------------------- inference


def decode_predictions(logits: torch.Tensor, boxes: torch.Tensor, image_size, score_thresh: float = 0.0,
                       best_class_only: bool = False) -> list:
    """The network's raw outputs -> detections, outside the exported graph. No NMS.

    A query's class probabilities are the softmax over its ``C + 1`` logits with "no object" then
    left out.  Every (query, class) pair whose probability is at least ``score_thresh`` is a
    detection of the query's box (scaled to pixels) with that class and score
    (``A5_detection.common.class_candidates``): a query unsure between two classes enters both
    classes' rankings, as in Deformable and DAB-DETR's evaluation.  With ``best_class_only`` each
    query gives only its most probable class (the 2020 paper's rule).

    Args:
        logits: ``(B, Q, C + 1)``; boxes: ``(B, Q, 4)`` ``(cx, cy, w, h)`` in [0, 1].
        image_size: ``(H, W)`` or an int.
        score_thresh: keep the detections scoring at least this (0: all ``Q * C`` pairs, for mAP).
        best_class_only: one detection per query.

    Returns:
        ``B`` dicts ``{"boxes" (K, 4) x1 y1 x2 y2 pixels, "scores" (K,), "labels" (K,) int64}``,
        by decreasing score.

    Rule: one loop, over the images.  Hint: ``class_candidates`` picks the (query, class)
    pairs; sort them by score with ``stable=True``.
    """
    checks.set_outputs(logits, boxes)
    if logits.dim() != 3:
        raise ValueError(f"logits must be (B, Q, C + 1), got {tuple(logits.shape)}")
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    ### BEGIN SOLUTION
    probs = logits.detach().softmax(-1)[..., :-1]
    corners = box_cxcywh_to_xyxy(boxes.detach()) * boxes.new_tensor([width, height, width, height])
    corners = torch.stack([corners[..., 0].clamp(0, width), corners[..., 1].clamp(0, height),
                           corners[..., 2].clamp(0, width), corners[..., 3].clamp(0, height)], dim=-1)
    results = []
    for b in range(logits.shape[0]):
        queries, labels, scores = class_candidates(probs[b], score_thresh, best_class_only)
        order = torch.sort(scores, descending=True, stable=True).indices
        results.append({"boxes": corners[b, queries[order]], "scores": scores[order], "labels": labels[order]})
    ### END SOLUTION
    return results


def predict_detections(model: nn.Module, images: torch.Tensor, score_thresh: float = 0.0,
                       batch_size: int = 100, best_class_only: bool = False) -> list:
    """Run ``model`` (a :class:`DETR`, or its export: ``images -> (logits, boxes)``) over ``images``
    (uint8 or floats in [0, 1]) in batches, then :func:`decode_predictions`.  Returns one prediction dict per
    image, the ``predictions`` of ``A5_detection.common.evaluate_detections``."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be an (N, 3, H, W) tensor")
    size = tuple(images.shape[2:])
    with torch.no_grad():
        return predict_in_batches(model, images, lambda batch: decode_predictions(
            *model(batch), size, score_thresh, best_class_only), batch_size)


# --------------------------------------------------------------------------- command line


def inference_metadata(model: DETR) -> dict:
    """What predicting needs besides the network: image size and class names."""
    return {"image_size": model.image_size, "class_names": list(model.class_names)}


def save_export(model: DETR, path) -> Path:
    """Export the network with ``helpers.export.export_model`` (images -> class logits, boxes), with
    :func:`inference_metadata` stored inside the file."""
    from helpers.export import export_with_metadata

    return export_with_metadata(model, path, inference_metadata(model))


def _answer(network, images: torch.Tensor, meta: dict, score_thresh: float) -> list:
    """The command line's detections: ``network`` (model or export) decoded at ``meta``'s image size."""
    return decode_predictions(*network(images), meta["image_size"], score_thresh)


def train_defaults(cfg) -> dict:
    """The notebook's training recipe (papers/detr.ipynb) for ``cfg.dataset`` in ``cfg.mode``."""
    on_voc = cfg.dataset == "voc2007"
    return {"image_size": cfg.pick(128, 224) if on_voc else cfg.pick(64, 96),
            "train_size": cfg.pick(600 if on_voc else 1000, None), "val_size": cfg.pick(100 if on_voc else 200, None),
            "draws": 1 if on_voc else cfg.pick(1, 8), "epochs": cfg.pick(2 if on_voc else 3, 2),
            "batch_size": cfg.pick(16, 32), "lr": 1e-3, "warmup": cfg.pick(50, 300),
            "num_queries": queries_for(cfg.dataset), "pretrained": on_voc and regnet_available(cfg)}


def build_for_training(settings: dict, class_names) -> tuple[DETR, dict]:
    """The notebook's DETR for ``class_names`` at ``settings["image_size"]``, and the keyword arguments that
    rebuild it (the same trunk, not pretrained: the saved weights replace it)."""
    from A5_detection.harness import build_on_trunk

    config = {"num_classes": len(class_names), "d_model": 128, "num_heads": 4, "num_encoder_layers": 2,
              "num_decoder_layers": 3, "ffn_dim": 256, "num_queries": settings["num_queries"], "feature_stride": 8,
              "query_type": "anchor", "dropout": 0.0, "image_size": settings["image_size"],
              "class_names": list(class_names)}
    return build_on_trunk(DETR, config, settings)


def set_loss_fn(model: nn.Module, batch) -> tuple[torch.Tensor, dict]:
    """DETR's set loss on a batch of ``(images, gt_boxes)``, summed over the decoder layers; each term logged."""
    images, gt_boxes = batch
    targets = gt_boxes_to_set_targets(gt_boxes, tuple(images.shape[-2:]))
    weight = no_object_weight_for(model.num_queries)
    losses = set_loss(*model.forward_all_layers(images), targets, no_object_weight=weight)
    return losses["loss"], {name: float(value) for name, value in losses.items() if name != "loss"}


def warmup_cosine(optimizer, settings: dict, total_steps: int):
    """Linear warm-up over ``settings["warmup"]`` steps, then a cosine decay to 0 at the last step."""
    import math

    warmup = settings["warmup"]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(step, total_steps) / total_steps)))


def train_recipe():
    """``python -m papers.detr train``: the notebook's training (:func:`A5_detection.harness.detection_recipe`)."""
    from A5_detection import harness

    return harness.detection_recipe("detr", "detr", train_defaults, build_for_training, set_loss_fn,
                                    predict_detections, warmup_cosine, weight_decay=1e-4, grad_clip=0.5)


def main(argv=None) -> int:
    """``python -m papers.detr predict IMAGE... [--checkpoint P | --export P] [--out DIR]``, ``export`` or
    ``train [...]`` (``helpers.export.paper_main``; boxes in the original images' pixels)."""
    from helpers.export import paper_main

    return paper_main(argv, "detr", "DETR detector (papers/detr.ipynb): train, predict on images, or export", DETR,
                      inference_metadata, ("image_size", "class_names"), _answer, detector=True,
                      recipe=train_recipe())


if __name__ == "__main__":
    from helpers.export import run_command

    sys.exit(run_command(main))
