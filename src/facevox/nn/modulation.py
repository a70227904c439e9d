"""AdaLN modulation helpers (Wan's six-way shift / scale / gate)."""

from __future__ import annotations

from torch import Tensor


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """``x * (1 + scale) + shift``; x (B, N, D), shift / scale (B, N or 1, D)."""
    return x * (1 + scale) + shift


def split_modulation(table: Tensor, emb: Tensor, parts: int) -> list[Tensor]:
    """Add a block's learned table (1, parts, D) to the projected timestep embedding
    (B, N or 1, parts, D) and split it into ``parts`` tensors of shape (B, N or 1, D)."""
    return list((table.unsqueeze(0) + emb).unbind(2))
