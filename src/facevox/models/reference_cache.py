"""Step-independent reference keys / values, computed once per sample and reused at every step.

Shape legend: ``B`` batch, ``H`` heads, ``Nr`` reference tokens (padded), ``Dh`` head width,
``S`` identity slots.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class ReferenceKV:
    """One block's reference keys (RoPE applied) and values for one tower."""

    k: Tensor  # (B, H, Nr, Dh)
    v: Tensor  # (B, H, Nr, Dh)
    valid: Tensor  # (B, Nr) bool, False for padding views / frames / groups

    def select(self, rows: Tensor) -> ReferenceKV:
        """The batch rows ``rows`` (1-D index tensor)."""
        return ReferenceKV(k=self.k[rows], v=self.v[rows], valid=self.valid[rows])


@dataclass(frozen=True)
class ReferenceCache:
    """Per-block reference K/V of both towers plus what forward needs to check it fits.

    ``video`` / ``audio``: one :class:`ReferenceKV` per block, or None when that modality has no
    references. ``slot_present``: (B, S) bool, which identity slots have a reference in either
    modality (caption tags may only name those). ``video_frames`` / ``audio_tokens``: the target
    lengths the reference positions were laid out after; ``video_hw``: the target latent (H, W) the
    face views were placed in (``ref_position_mode="placed"``), None when the layout does not use it.
    """

    video: tuple[ReferenceKV, ...] | None
    audio: tuple[ReferenceKV, ...] | None
    slot_present: Tensor
    video_frames: int
    audio_tokens: int
    skip_blocks: frozenset[int] = frozenset()  # blocks the reference streams passed by (skip-layer guidance)
    video_hw: tuple[int, int] | None = None

    @property
    def batch_size(self) -> int:
        return self.slot_present.shape[0]

    def select(self, rows: Tensor) -> ReferenceCache:
        """The batch rows ``rows`` (1-D index tensor); all rows in order: the cache itself."""
        if rows.numel() == self.batch_size and bool(
            (rows == torch.arange(self.batch_size, device=rows.device)).all()
        ):
            return self
        return replace(
            self,
            video=None if self.video is None else tuple(kv.select(rows) for kv in self.video),
            audio=None if self.audio is None else tuple(kv.select(rows) for kv in self.audio),
            slot_present=self.slot_present[rows],
        )
