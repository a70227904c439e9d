"""Feed-forward layers."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class GeluMLP(nn.Module):
    """Linear -> GELU(tanh) -> Linear, the Wan FFN."""

    def __init__(self, dim: int, hidden: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class ChannelLastConv1d(nn.Conv1d):
    """Conv1d over the token axis of (B, N, C) inputs; returns (B, N, C_out)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ConvSwiGLU(nn.Module):
    """SwiGLU whose three projections are 1D convolutions over tokens (Ovi's audio ConvMLP).

    ``w2(silu(w1(x)) * w3(x))``; hidden width ``round_up(2/3 * hidden, multiple_of)``.
    """

    def __init__(self, dim: int, hidden: int, kernel_size: int = 7, multiple_of: int = 256) -> None:
        super().__init__()
        width = int(2 * hidden / 3)
        width = multiple_of * ((width + multiple_of - 1) // multiple_of)
        pad = kernel_size // 2
        self.w1 = ChannelLastConv1d(dim, width, kernel_size, padding=pad, bias=False)
        self.w2 = ChannelLastConv1d(width, dim, kernel_size, padding=pad, bias=False)
        self.w3 = ChannelLastConv1d(dim, width, kernel_size, padding=pad, bias=False)

    def forward(self, x: Tensor, valid: Tensor | None = None) -> Tensor:
        """x (B, N, C) -> (B, N, C). ``valid`` (B, N) bool zeroes padded frames between the convs, so
        a padded sequence gives the same outputs on its real frames as the unpadded one."""
        h = F.silu(self.w1(x)) * self.w3(x)
        if valid is not None:
            h = h * valid[..., None].to(h.dtype)
        return self.w2(h)
