"""Rotary position embedding from explicit position ids (3D video, 1D audio on the video clock).

Shape legend: ``B`` batch, ``N`` tokens, ``H`` heads, ``Dh`` head width, ``P = Dh / 2`` rotary pairs.

Layout follows Wan / Ovi so that their weights keep their meaning: rotary pairs are *interleaved*
(channels ``2i, 2i+1`` form pair ``i``); the head width is split into a time part of
``Dh - 4 * (Dh // 6)`` channels and height / width parts of ``2 * (Dh // 6)`` channels each, and every
part has its own frequency ladder ``theta ** (-2j / part_width)``. A 1D (audio) position rotates the
time part only and leaves the height / width channels unrotated, as Ovi's audio tower does; its
position is given in *video latent-frame units* (audio token index x the alignment time scale), which
equals Ovi's frequency scaling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def axis_widths(head_dim: int) -> tuple[int, int, int]:
    """Channels per axis (time, height, width) for a head of width ``head_dim``."""
    if head_dim % 2 or head_dim < 6:
        raise ValueError(f"RoPE needs an even head width >= 6, got {head_dim}")
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


def _ladder(width: int, theta: float, device: torch.device | None) -> Tensor:
    """Frequencies of one axis: ``theta ** (-2j / width)`` for ``j < width / 2``; shape (width / 2,)."""
    return theta ** (-torch.arange(0, width, 2, dtype=torch.float64, device=device) / width)


@dataclass(frozen=True)
class RotaryTable:
    """cos / sin of every rotary pair of every token; (B, N, P) each, applied to all heads alike."""

    cos: Tensor  # (B, N, P)
    sin: Tensor  # (B, N, P)

    def cat(self, other: RotaryTable) -> RotaryTable:
        """Concatenate two tables along the token axis."""
        return RotaryTable(torch.cat([self.cos, other.cos], 1), torch.cat([self.sin, other.sin], 1))


def rotary_table(positions: Tensor, head_dim: int, theta: float = 10000.0) -> RotaryTable:
    """Build the rotary table for position ids.

    Args:
        positions: (B, N, 3) float (t, h, w) for video-like tokens, or (B, N) float time positions
            for audio-like tokens (already in video latent-frame units; h / w stay unrotated).
        head_dim: attention head width ``Dh``.
        theta: RoPE base.
    """
    t_w, h_w, w_w = axis_widths(head_dim)
    device = positions.device
    pos = positions.to(torch.float64)
    if pos.ndim == 2:
        ang_t = pos[..., None] * _ladder(t_w, theta, device)  # (B, N, t_w/2)
        rest = torch.zeros(*pos.shape, (h_w + w_w) // 2, dtype=torch.float64, device=device)
        angles = torch.cat([ang_t, rest], -1)
    elif pos.ndim == 3 and pos.shape[-1] == 3:
        angles = torch.cat(
            [
                pos[..., 0:1] * _ladder(t_w, theta, device),
                pos[..., 1:2] * _ladder(h_w, theta, device),
                pos[..., 2:3] * _ladder(w_w, theta, device),
            ],
            -1,
        )  # (B, N, P)
    else:
        raise ValueError(f"positions must be (B, N) or (B, N, 3), got {tuple(positions.shape)}")
    return RotaryTable(angles.cos().float(), angles.sin().float())


def apply_rotary(x: Tensor, table: RotaryTable) -> Tensor:
    """Rotate interleaved pairs of ``x`` (B, H, N, Dh) by ``table`` (B, N, Dh/2); returns x's dtype."""
    x2 = x.float().unflatten(-1, (-1, 2))  # (B, H, N, P, 2)
    cos, sin = table.cos[:, None], table.sin[:, None]  # (B, 1, N, P)
    real = x2[..., 0] * cos - x2[..., 1] * sin
    imag = x2[..., 0] * sin + x2[..., 1] * cos
    return torch.stack([real, imag], -1).flatten(-2).to(x.dtype)
