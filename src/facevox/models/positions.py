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
- ``placed``: ``after`` on the time axis; a face view's (h, w) grid is spread over the square it shows
  in the target token grid: slot k's face box, grown by the crop margin on each side and squared about
  its centre, as curation crops a face reference. The reference token and the target tokens at the
  same place in the face then share their spatial position, and attention can read a face across by
  position, not by search. Voices as ``after``.
"""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange, repeat
from torch import Tensor

PositionMode = Literal["after", "before", "placed"]


def video_grid_positions(batch: int, grid: tuple[int, int, int], device: torch.device) -> Tensor:
    """Target video positions (B, T*H*W, 3) for a token grid (T, H, W)."""
    t, h, w = (torch.arange(n, device=device, dtype=torch.float32) for n in grid)
    pos = torch.stack(torch.meshgrid(t, h, w, indexing="ij"), -1)  # (T, H, W, 3)
    return repeat(pos, "t h w c -> b (t h w) c", b=batch)


def audio_positions(batch: int, length: int, time_scale: float, device: torch.device) -> Tensor:
    """Target audio positions (B, N) on the video clock."""
    return repeat(torch.arange(length, device=device, dtype=torch.float32) * time_scale, "n -> b n", b=batch)


def _slot_base(slot_ids: Tensor, start: int, gap: int, mode: PositionMode) -> Tensor:
    """First position of each group's region: (B, K) float. Padding groups (-1) map to slot 0."""
    k = slot_ids.clamp(min=0).float()
    return -(k + 1) * gap if mode == "before" else start + k * gap


def _placed_grid(
    boxes: Tensor, slot_ids: Tensor, grid_hw: tuple[int, int], target_hw: tuple[int, int], margin: float
) -> tuple[Tensor, Tensor]:
    """(B, K, h) rows and (B, K, w) columns of each group's view grid, spread over the square the
    view shows in the target: the face box grown by ``margin`` of its size on each side, squared about
    its centre (a face crop is the box grown so, padded square; token cells are square in pixels).

    ``boxes`` (B, K, 4) in fractions of the frame; padding groups (slot -1) may hold anything.
    """
    valid = slot_ids >= 0
    if bool(torch.isnan(boxes[valid]).any()):
        raise ValueError(
            "ref_position_mode 'placed' needs a face box for every referenced person "
            f"(References.boxes has NaN rows for slots {slot_ids[torch.isnan(boxes).any(-1) & valid].tolist()})"
        )
    b = torch.where(valid[..., None], boxes, torch.tensor([0.0, 0.0, 1.0, 1.0], device=boxes.device))
    h, w = grid_hw
    H, W = target_hw
    cy, cx = (b[..., 1] + b[..., 3]) * H / 2, (b[..., 0] + b[..., 2]) * W / 2  # (B, K) token units
    half = torch.maximum((b[..., 3] - b[..., 1]) * H, (b[..., 2] - b[..., 0]) * W) * (0.5 + margin)  # (B, K)
    i = (torch.arange(h, device=boxes.device, dtype=torch.float32) + 0.5) / h * 2 - 1  # (h,) in (-1, 1)
    j = (torch.arange(w, device=boxes.device, dtype=torch.float32) + 0.5) / w * 2 - 1  # (w,)
    rows = cy[..., None] + i * half[..., None] - 0.5  # (B, K, h)
    cols = cx[..., None] + j * half[..., None] - 0.5  # (B, K, w)
    return rows, cols


def video_reference_positions(
    slot_ids: Tensor,
    views: int,
    grid_hw: tuple[int, int],
    *,
    target_frames: int,
    gap: int,
    mode: PositionMode,
    boxes: Tensor | None = None,
    target_hw: tuple[int, int] | None = None,
    margin: float = 0.0,
) -> Tensor:
    """Face-reference positions (B, K*V*h*w, 3) for groups (B, K) of V single-frame views of (h, w)
    tokens; ``placed`` also needs ``boxes`` (B, K, 4) and the target's token grid ``target_hw``."""
    if views > gap:
        raise ValueError(f"{views} views per face slot exceed video_ref_slot_gap={gap}")
    device = slot_ids.device
    base = _slot_base(slot_ids, target_frames, gap, mode)  # (B, K)
    h, w = grid_hw
    t = base[:, :, None] + torch.arange(views, device=device, dtype=torch.float32)  # (B, K, V)
    B, K = slot_ids.shape
    if mode == "placed":
        if boxes is None or target_hw is None:
            raise ValueError("ref_position_mode 'placed' needs the face boxes and the target's token grid")
        rows, cols = _placed_grid(
            boxes.to(device=device, dtype=torch.float32), slot_ids, grid_hw, target_hw, margin
        )
    else:
        rows = repeat(torch.arange(h, device=device, dtype=torch.float32), "h -> b k h", b=B, k=K)
        cols = repeat(torch.arange(w, device=device, dtype=torch.float32), "w -> b k w", b=B, k=K)
    pos = torch.stack(
        [
            repeat(t, "b k v -> b k v h w", h=h, w=w),
            repeat(rows, "b k h -> b k v h w", v=views, w=w),
            repeat(cols, "b k w -> b k v h w", v=views, h=h),
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
    mode: PositionMode,
) -> Tensor:
    """Voice-reference positions (B, K*Tr) on the video clock for groups (B, K) of Tr frames."""
    if length > gap:
        raise ValueError(f"voice references of {length} frames exceed audio_ref_slot_gap={gap}")
    base = _slot_base(slot_ids, target_tokens if start is None else start, gap, mode)  # (B, K)
    idx = base[:, :, None] + torch.arange(length, device=slot_ids.device, dtype=torch.float32)
    return rearrange(idx * time_scale, "b k n -> b (k n)")
