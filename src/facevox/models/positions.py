"""Structured position ids (paper: "structured position embedding").

Shape legend: ``B`` batch, ``K`` reference groups, ``V`` views, ``T, H, W`` token grid, ``Tr`` voice
frames. Video positions are (t, h, w) in token units; audio positions are times in video
latent-frame units (audio index x ``rope_time_scale``), so both towers share one clock.

References sit in a disjoint region per identity slot k (not per group order), so references are
never confused with generated frames or with each other, and reordering the K groups changes nothing:

- ``after`` (default, the release's layout generalised): face view v of slot k at token frame
  ``T + k * video_gap + v`` keeping its own (h, w) grid; voice frame i of slot k at audio index
  ``A + k * audio_gap + i`` with ``A`` = ``audio_start`` or the target length.
- ``before`` (ID-LoRA-style ablation): frame ``-(k + 1) * gap + v`` / index ``-(k + 1) * gap + i``.
"""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange, repeat
from torch import Tensor


def video_grid_positions(batch: int, grid: tuple[int, int, int], device: torch.device) -> Tensor:
    """Target video positions (B, T*H*W, 3) for a token grid (T, H, W)."""
    t, h, w = (torch.arange(n, device=device, dtype=torch.float32) for n in grid)
    pos = torch.stack(torch.meshgrid(t, h, w, indexing="ij"), -1)  # (T, H, W, 3)
    return repeat(pos, "t h w c -> b (t h w) c", b=batch)


def audio_positions(batch: int, length: int, time_scale: float, device: torch.device) -> Tensor:
    """Target audio positions (B, N) on the video clock."""
    return repeat(torch.arange(length, device=device, dtype=torch.float32) * time_scale, "n -> b n", b=batch)


def _slot_base(slot_ids: Tensor, start: int, gap: int, mode: Literal["after", "before"]) -> Tensor:
    """First position of each group's region: (B, K) float. Padding groups (-1) map to slot 0."""
    k = slot_ids.clamp(min=0).float()
    return start + k * gap if mode == "after" else -(k + 1) * gap


def video_reference_positions(
    slot_ids: Tensor,
    views: int,
    grid_hw: tuple[int, int],
    *,
    target_frames: int,
    gap: int,
    mode: Literal["after", "before"],
) -> Tensor:
    """Face-reference positions (B, K*V*H*W, 3) for groups (B, K) of V single-frame views."""
    if views > gap:
        raise ValueError(f"{views} views per face slot exceed video_ref_slot_gap={gap}")
    device = slot_ids.device
    base = _slot_base(slot_ids, target_frames, gap, mode)  # (B, K)
    h, w = grid_hw
    t = base[:, :, None] + torch.arange(views, device=device, dtype=torch.float32)  # (B, K, V)
    hh, ww = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    B, K = slot_ids.shape
    pos = torch.stack(
        [
            repeat(t, "b k v -> b k v h w", h=h, w=w),
            repeat(hh, "h w -> b k v h w", b=B, k=K, v=views),
            repeat(ww, "h w -> b k v h w", b=B, k=K, v=views),
        ],
        -1,
    )
    return rearrange(pos, "b k v h w c -> b (k v h w) c")


def audio_reference_positions(
    slot_ids: Tensor,
    length: int,
    *,
    target_tokens: int,
    start: int | None,
    gap: int,
    time_scale: float,
    mode: Literal["after", "before"],
) -> Tensor:
    """Voice-reference positions (B, K*Tr) on the video clock for groups (B, K) of Tr frames."""
    if length > gap:
        raise ValueError(f"voice references of {length} frames exceed audio_ref_slot_gap={gap}")
    base = _slot_base(slot_ids, target_tokens if start is None else start, gap, mode)  # (B, K)
    idx = base[:, :, None] + torch.arange(length, device=slot_ids.device, dtype=torch.float32)
    return rearrange(idx * time_scale, "b k n -> b (k n)")
