"""Sinusoidal timestep features and the timestep MLP (Wan layout)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sinusoidal_features(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """``[cos(t w_i), sin(t w_i)]`` with ``w_i = max_period ** (-i / (dim/2))``; t (...,) -> (..., dim).

    Computed in float64 then cast to float32, as Wan does.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal dim must be even, got {dim}")
    half = dim // 2
    freqs = max_period ** (-torch.arange(half, dtype=torch.float64, device=t.device) / half)
    ang = t.to(torch.float64)[..., None] * freqs
    return torch.cat([ang.cos(), ang.sin()], -1).float()


class TimestepEmbedding(nn.Module):
    """t -> (embedding e (.., D), modulation input (.., parts, D)).

    ``linear_1 -> SiLU -> linear_2`` gives ``e`` (used by the output head); ``SiLU -> proj`` gives the
    per-block AdaLN input with ``parts`` chunks.
    """

    def __init__(self, freq_dim: int, dim: int, parts: int = 6) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.parts = parts
        self.linear_1 = nn.Linear(freq_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, parts * dim)

    def forward(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """t (B, N) in model units (Wan: sigma * 1000) -> e (B, N, D), mod (B, N, parts, D)."""
        e = self.linear_2(
            F.silu(self.linear_1(sinusoidal_features(t, self.freq_dim).to(self.linear_1.weight.dtype)))
        )
        mod = self.proj(F.silu(e)).unflatten(-1, (self.parts, -1))
        return e, mod
