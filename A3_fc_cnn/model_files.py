"""Saving and loading A3's models (given code, not part of the assignment).

Every model's ``save(path)`` writes one dict of plain values and CPU tensors,
readable with ``torch.load(path, weights_only=True)``, tagged with the model's
class name and :data:`SAVE_FORMAT`; ``load(path, dtype, device)`` reads it back
through :func:`load_model`, which refuses another model's file or another format.
"""

from __future__ import annotations

from pathlib import Path

import torch

from helpers.train import atomic_save, check_weights_only, load_verified

__all__ = ["SAVE_FORMAT", "load_model", "loaded_params", "save_model"]

SAVE_FORMAT = 1


def save_model(path, payload: dict) -> None:
    """Write ``payload`` (plain values and tensors only) to ``path``, creating its folder."""
    check_weights_only(payload, "model file")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(payload, path)


def load_model(path, kind: str) -> dict:
    """The payload saved in ``path`` by ``kind.save`` (``kind`` a class name such as ``"TwoLayerNet"``)."""
    path = Path(path)
    payload = load_verified(path, "saved model")
    if not isinstance(payload, dict) or payload.get("model") != kind or "params" not in payload:
        found = payload.get("model") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path} does not hold a {kind} saved with {kind}.save (found {found!r})")
    if payload.get("format") != SAVE_FORMAT:
        raise ValueError(f"{path} has save format {payload.get('format')!r}; this code reads format {SAVE_FORMAT}")
    return payload


def loaded_params(params: dict, dtype: torch.dtype | None, device) -> dict:
    """``params`` moved to ``device``, converted to ``dtype`` (None: each keeps its saved dtype)."""
    return {name: value.to(device=device, dtype=dtype or value.dtype) for name, value in params.items()}
