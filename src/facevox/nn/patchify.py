"""Patchify / unpatchify of video latents.

Shape legend: ``B`` batch, ``C`` latent channels, ``T, H, W`` latent grid, ``pt, ph, pw`` patch,
``D`` width. Output channels of the head are ordered ``(pt ph pw c)`` as in Wan, so Wan's head
weights unpatchify correctly.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn


class PatchEmbed3d(nn.Module):
    """Non-overlapping 3D patches -> tokens: (B, C, T, H, W) -> (B, T', H', W', D) via a strided Conv3d."""

    def __init__(self, in_channels: int, dim: int, patch: tuple[int, int, int]) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        T, H, W = x.shape[-3:]
        pt, ph, pw = self.patch
        if T % pt or H % ph or W % pw:
            raise ValueError(f"latent grid {(T, H, W)} is not divisible by the patch {self.patch}")
        return rearrange(self.proj(x), "b d t h w -> b t h w d")


def unpatchify(x: Tensor, grid: tuple[int, int, int], patch: tuple[int, int, int]) -> Tensor:
    """(B, T'*H'*W', pt*ph*pw*C) -> (B, C, T'*pt, H'*ph, W'*pw)."""
    t, h, w = grid
    pt, ph, pw = patch
    return rearrange(
        x, "b (t h w) (pt ph pw c) -> b c (t pt) (h ph) (w pw)", t=t, h=h, w=w, pt=pt, ph=ph, pw=pw
    )


class GridPositionEmbedding(nn.Module):
    """An absolute position signal for the video token grid: Fourier features of each token's
    (row, column) centre, normalised to [-1, 1] so any frame size maps onto the same range, through one
    linear layer that starts at zero (the tower is unchanged until it learns to use it).

    RoPE alone makes attention translation-equivariant: from pure noise (sigma = 1) a model cannot say
    where the frame's centre is, so it cannot lay out a centred head. (B, T', H', W', D) -> same shape.
    """

    def __init__(self, dim: int, frequencies: int = 6) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.proj = nn.Linear(4 * frequencies, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def features(self, h: int, w: int, device: torch.device) -> Tensor:
        """(H', W', 4F): sin and cos of (row, column) at octave frequencies."""
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h * 2 - 1
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w * 2 - 1
        freq = math.pi * 2.0 ** torch.arange(self.frequencies, device=device, dtype=torch.float32) / 2
        y = ys[:, None, None] * freq  # (H', 1, F)
        x = xs[None, :, None] * freq  # (1, W', F)
        y, x = y.expand(h, w, -1), x.expand(h, w, -1)
        return torch.cat([y.sin(), y.cos(), x.sin(), x.cos()], dim=-1)

    def forward(self, tokens: Tensor) -> Tensor:
        h, w = tokens.shape[2:4]
        pos = self.proj(self.features(h, w, tokens.device)).to(tokens.dtype)  # (H', W', D)
        return tokens + pos
