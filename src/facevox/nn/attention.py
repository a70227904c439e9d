"""Multi-head attention on ``torch.nn.functional.scaled_dot_product_attention``.

Shape legend: ``B`` batch, ``Nq`` / ``Nk`` query / key tokens, ``H`` heads, ``Dh`` head width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor


def split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, N, H*Dh) -> (B, H, N, Dh)."""
    return rearrange(x, "b n (h d) -> b h n d", h=heads)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, N, Dh) -> (B, N, H*Dh)."""
    return rearrange(x, "b h n d -> b n (h d)")


def key_mask(valid: Tensor) -> Tensor:
    """Boolean key-padding mask (B, Nk) -> SDPA mask (B, 1, 1, Nk); True = may attend."""
    return valid[:, None, None, :]


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """Scaled dot-product attention.

    Args:
        q: (B, H, Nq, Dh); k, v: (B, H, Nk, Dh).
        mask: None, a boolean mask broadcastable to (B, H, Nq, Nk) (True = attend), or an additive
            float mask of that shape. Every query row must keep at least one key.
    Returns:
        (B, H, Nq, Dh).
    """
    if mask is not None and mask.dtype != torch.bool and not mask.is_floating_point():
        raise ValueError(f"attention mask must be bool or float, got {mask.dtype}")
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
