"""Patchify / unpatchify of video latents.

Shape legend: ``B`` batch, ``C`` latent channels, ``T, H, W`` latent grid, ``pt, ph, pw`` patch,
``D`` width. Output channels of the head are ordered ``(pt ph pw c)`` as in Wan, so Wan's head
weights unpatchify correctly.
"""

from __future__ import annotations

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
