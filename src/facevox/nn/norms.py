"""Normalisation layers (Wan conventions: RMSNorm over the full width, eps 1e-6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned gain; computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return y.to(x.dtype) * self.weight


class LayerNorm(nn.LayerNorm):
    """LayerNorm normalised in float32, affine (optional; off by default as in Wan's pre-norms) applied
    in the parameters' dtype, so low-precision weights work."""

    def __init__(self, dim: int, eps: float = 1e-6, affine: bool = False) -> None:
        super().__init__(dim, eps=eps, elementwise_affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.float(), self.normalized_shape, None, None, self.eps).to(x.dtype)
        if self.weight is not None:
            y = y * self.weight + self.bias
        return y
