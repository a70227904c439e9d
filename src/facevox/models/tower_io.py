"""What enters and leaves each tower: audio patch embedding, caption projection, identity
embedding and the output head.

Shape legend: ``B`` batch, ``N`` tokens, ``C`` latent channels, ``E`` text width, ``D`` tower width,
``S`` identity slots.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facevox.nn.mlp import ChannelLastConv1d, ConvSwiGLU
from facevox.nn.modulation import modulate
from facevox.nn.norms import LayerNorm


class AudioEmbed(nn.Module):
    """Audio latents (B, N, C) -> tokens (B, N, D): conv1d -> SiLU -> conv SwiGLU (Ovi's embedding)."""

    def __init__(self, in_channels: int, dim: int, kernel: int, multiple_of: int) -> None:
        super().__init__()
        self.conv = ChannelLastConv1d(in_channels, dim, kernel, padding=kernel // 2)
        self.mlp = ConvSwiGLU(dim, 4 * dim, kernel, multiple_of)

    def forward(self, x: Tensor, valid: Tensor | None = None) -> Tensor:
        """``valid`` (B, N) bool marks real frames of padded references."""
        if valid is not None:
            x = x * valid[..., None].to(x.dtype)
        h = F.silu(self.conv(x))
        if valid is not None:
            h = h * valid[..., None].to(h.dtype)
        return self.mlp(h, valid)


class TextProjection(nn.Module):
    """Caption hidden states (B, L, E) -> (B, L, D): Linear -> GELU(tanh) -> Linear (Wan)."""

    def __init__(self, text_dim: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(text_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(F.gelu(self.linear_1(x), approximate="tanh"))


class IdentityEmbedding(nn.Module):
    """One learned vector per identity slot, shared by a person's face tokens, voice tokens and caption
    tags (paper: "identity embedding"; the figure colours Face ID k and Voice ID k alike).

    ``table`` (S, Dv) lives at the video width; when the audio tower is narrower or wider,
    ``to_audio`` (Dv -> Da, no bias) maps the same vector into the audio tower.
    """

    def __init__(self, slots: int, video_dim: int, audio_dim: int, init_std: float) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(slots, video_dim) * init_std)
        self.to_audio = nn.Linear(video_dim, audio_dim, bias=False) if audio_dim != video_dim else None

    def _lookup(self, slot_ids: Tensor) -> Tensor:
        """slot_ids (...) long, -1 = none -> (..., Dv) with zeros for -1."""
        emb = self.table[slot_ids.clamp(min=0)]
        return emb * (slot_ids >= 0)[..., None].to(emb.dtype)

    def video(self, slot_ids: Tensor) -> Tensor:
        return self._lookup(slot_ids)

    def audio(self, slot_ids: Tensor) -> Tensor:
        emb = self._lookup(slot_ids)
        return emb if self.to_audio is None else self.to_audio(emb)

    def video_sum(self, slots: Tensor) -> Tensor:
        """Multi-hot (..., S) bool -> (..., Dv): the sum of the marked slots' vectors."""
        return slots.to(self.table.dtype) @ self.table[: slots.shape[-1]]

    def audio_sum(self, slots: Tensor) -> Tensor:
        emb = self.video_sum(slots)
        return emb if self.to_audio is None else self.to_audio(emb)


class OutputHead(nn.Module):
    """Final norm, 2-way modulation by the timestep embedding e, and a linear to patch channels (Wan)."""

    def __init__(self, dim: int, out_dim: int, eps: float) -> None:
        super().__init__()
        self.norm = LayerNorm(dim, eps)
        self.proj = nn.Linear(dim, out_dim)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        """x (B, N, D), e (B, N or 1, D) -> (B, N, out_dim)."""
        shift, scale = (self.modulation.unsqueeze(0) + e.unsqueeze(2)).unbind(2)
        return self.proj(modulate(self.norm(x), shift, scale))
