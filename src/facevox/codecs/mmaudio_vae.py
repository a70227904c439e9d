"""MMAudio's 1D mel-spectrogram VAE (the audio latent space of Ovi and the Identity-as-Presence release).

Architecture only, written from the published design (hkchengrex/MMAudio ``mmaudio/ext/autoencoder``,
EDM2's magnitude-preserving layers, arXiv 2312.02696): convolutions whose weights are normalised to
unit norm per output channel at every call ("forced weight normalisation", EDM2 eq. 47 / 66), SiLU
divided by 0.596 (eq. 81), residual sums that keep the magnitude (eq. 88), pixel norm before every
residual block, one single-head attention with normalised q / k / v in the middle. The 16 kHz
configuration (:data:`VAE_16K`): 80 log10-mel bins in, 20 latent channels, width 384 x (1, 2, 4),
time halved once, so one latent frame per 2 mel frames = 512 samples.

Parameter and buffer names follow the public checkpoint (``v1-16.pth``) so that it loads with
``strict=True`` unchanged; ``data_mean`` / ``data_std`` (the mel statistics) are checkpoint buffers.

Shapes: ``B`` batch, ``M`` mel bins, ``F`` mel frames, ``C`` channels, ``Z`` latent channels,
``n = F / 2`` latent frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

EPS = 1e-4  # EDM2's normalisation epsilon


@dataclass(frozen=True, kw_only=True)
class MMAudioVAEConfig:
    data_dim: int = 80  # mel bins M
    embed_dim: int = 20  # latent channels Z
    hidden_dim: int = 384  # base width
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    attn_levels: tuple[int, ...] = (3,)  # levels with attention after each block (none at 3 levels)
    down_levels: tuple[int, ...] = (0,)  # levels followed by a x2 time downsampling
    kernel_size: int = 3
    clip_act: float = 256.0  # activations are clamped to +-clip_act after each block

    @property
    def time_downsample(self) -> int:
        return 2 ** len(self.down_levels)


VAE_16K = MMAudioVAEConfig()


def unit_norm(x: Tensor, dim: int | list[int]) -> Tensor:
    """``x`` over its RMS along ``dim`` (plus EPS), computed in fp32 (EDM2's ``normalize``)."""
    dims = [dim] if isinstance(dim, int) else dim
    norm = torch.linalg.vector_norm(x, dim=dims, keepdim=True, dtype=torch.float32)
    count = math.prod(x.shape[d] for d in dims)
    return x / (EPS + norm / math.sqrt(count)).to(x.dtype)


def mp_silu(x: Tensor) -> Tensor:
    return F.silu(x) / 0.596


def mp_sum(a: Tensor, b: Tensor, t: float = 0.3) -> Tensor:
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t**2)


class MPConv1d(nn.Module):
    """Conv1d (no bias, 'same' padding) whose per-output-channel weight is rescaled to norm 1 each call."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim, kernel_size))  # (out, in, k)

    def forward(self, x: Tensor, gain: Tensor | float = 1.0) -> Tensor:
        w = self.weight.float()
        w = unit_norm(w, [1, 2]) / math.sqrt(w[0].numel())
        w = w.to(x.dtype) * gain
        return F.conv1d(x, w, padding=w.shape[-1] // 2)


class ResBlock1d(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = MPConv1d(in_dim, out_dim, kernel_size)
        self.conv2 = MPConv1d(out_dim, out_dim, kernel_size)
        if in_dim != out_dim:
            self.nin_shortcut = MPConv1d(in_dim, out_dim, 1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, L) -> (B, C_out, L)
        x = unit_norm(x, 1)  # pixel norm; the shortcut carries the normalised input too
        h = self.conv2(mp_silu(self.conv1(mp_silu(x))))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return mp_sum(x, h)


class AttnBlock1d(nn.Module):
    """Single-head self-attention over time with unit-normalised q, k, v (cosine attention)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = MPConv1d(dim, 3 * dim, 1)
        self.proj_out = MPConv1d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, L)
        # the 3C qkv channels are interleaved (c, 3); normalise each of q, k, v over C
        y = rearrange(self.qkv(x), "b (c three) l -> b 1 c three l", three=3)
        q, k, v = (rearrange(t, "b h c l -> b h l c") for t in unit_norm(y, 2).unbind(3))
        h = rearrange(F.scaled_dot_product_attention(q, k, v), "b h l c -> b (h c) l")
        return mp_sum(x, self.proj_out(h))


class Downsample1d(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = MPConv1d(dim, dim, 1)
        self.conv2 = MPConv1d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, L) -> (B, C, L / 2)
        return self.conv2(F.avg_pool1d(self.conv1(x), kernel_size=2, stride=2))


class Upsample1d(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = MPConv1d(dim, dim, 3)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, L) -> (B, C, 2L)
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest-exact"))


class _Level(nn.Module):
    """One resolution level: residual blocks, their attention (maybe none), and a resampler."""

    downsample: nn.Module  # set on levels that resample (encoder: down, decoder: up)
    upsample: nn.Module

    def __init__(self, blocks: Sequence[nn.Module], attn: Sequence[nn.Module]) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attn)

    def run(self, h: Tensor, clip: float) -> Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn):
                h = self.attn[i](h)
            h = h.clamp(-clip, clip)
        return h


class _Mid(nn.Module):
    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__()
        self.block_1 = ResBlock1d(dim, dim, kernel_size)
        self.attn_1 = AttnBlock1d(dim)
        self.block_2 = ResBlock1d(dim, dim, kernel_size)

    def forward(self, h: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class Encoder1d(nn.Module):
    """Normalised mel (B, M, F) -> posterior moments (B, 2Z, F / 2)."""

    def __init__(self, cfg: MMAudioVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        k, width = cfg.kernel_size, cfg.hidden_dim
        self.conv_in = MPConv1d(cfg.data_dim, width, k)
        self.down = nn.ModuleList()
        c_in = width
        for level, mult in enumerate(cfg.ch_mult):
            c_out = width * mult
            blocks = [ResBlock1d(c_in if i == 0 else c_out, c_out, k) for i in range(cfg.num_res_blocks)]
            attn = [AttnBlock1d(c_out) for _ in blocks] if level in cfg.attn_levels else []
            lvl = _Level(blocks, attn)
            if level in cfg.down_levels:
                lvl.downsample = Downsample1d(c_out)
            self.down.append(lvl)
            c_in = c_out
        self.mid = _Mid(c_in, k)
        self.conv_out = MPConv1d(c_in, 2 * cfg.embed_dim, k)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, x: Tensor) -> Tensor:
        clip = self.cfg.clip_act
        h = self.conv_in(x)
        for lvl in cast("Iterable[_Level]", self.down):
            h = lvl.run(h, clip)
            if hasattr(lvl, "downsample"):
                h = lvl.downsample(h)
        h = self.mid(h).clamp(-clip, clip)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)


class Decoder1d(nn.Module):
    """Latents (B, Z, n) -> normalised mel (B, M, 2n)."""

    def __init__(self, cfg: MMAudioVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        k, width = cfg.kernel_size, cfg.hidden_dim
        c_in = width * cfg.ch_mult[-1]
        self.conv_in = MPConv1d(cfg.embed_dim, c_in, k)
        self.mid = _Mid(c_in, 3)
        levels: list[_Level] = []
        for level in reversed(range(len(cfg.ch_mult))):
            c_out = width * cfg.ch_mult[level]
            blocks = [ResBlock1d(c_in if i == 0 else c_out, c_out) for i in range(cfg.num_res_blocks + 1)]
            attn = [AttnBlock1d(c_out) for _ in blocks] if level in cfg.attn_levels else []
            lvl = _Level(blocks, attn)
            if level - 1 in cfg.down_levels:  # undo the encoder's downsampling after `level - 1`
                lvl.upsample = Upsample1d(c_out)
            levels.insert(0, lvl)  # index = level
            c_in = c_out
        self.up = nn.ModuleList(levels)
        self.conv_out = MPConv1d(c_in, cfg.data_dim, k)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, z: Tensor) -> Tensor:
        clip = self.cfg.clip_act
        h = self.mid(self.conv_in(z)).clamp(-clip, clip)
        for lvl in reversed(cast("Sequence[_Level]", self.up)):
            h = lvl.run(h, clip)
            if hasattr(lvl, "upsample"):
                h = lvl.upsample(h)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)


class MMAudioVAE(nn.Module):
    """log10-mel (B, M, F) <-> raw latents (B, Z, F / 2); the mel statistics are checkpoint buffers."""

    data_mean: Tensor  # buffers
    data_std: Tensor

    def __init__(self, cfg: MMAudioVAEConfig = VAE_16K) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("data_mean", torch.zeros(1, cfg.data_dim, 1))
        self.register_buffer("data_std", torch.ones(1, cfg.data_dim, 1))
        self.encoder = Encoder1d(cfg)
        self.decoder = Decoder1d(cfg)

    def encode(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        """(B, M, F) -> posterior (mean, std), each (B, Z, F / 2); log-variance clamped to [-30, 20]."""
        moments = self.encoder((mel - self.data_mean) / self.data_std)
        mean, logvar = moments.chunk(2, dim=1)
        return mean, torch.exp(0.5 * logvar.clamp(-30.0, 20.0))

    def decode(self, z: Tensor) -> Tensor:
        """(B, Z, n) -> log10-mel (B, M, 2n)."""
        return self.decoder(z) * self.data_std + self.data_mean
