"""BigVGAN mel vocoder (arXiv 2206.04658), in the configuration MMAudio ships for 16 kHz.

Architecture only, written from the published design (hkchengrex/MMAudio ``mmaudio/ext/bigvgan``,
NVIDIA BigVGAN v1): a pre-conv, transposed-conv upsamplers, after each a mean of anti-aliased
multi-periodicity (AMP) residual blocks, an anti-aliased Snake(Beta) activation and a post-conv with
tanh. Each activation runs at twice the rate: upsample x2 with a Kaiser-windowed sinc filter,
activation, low-pass and decimate x2. Every convolution is weight-normalised
(``torch.nn.utils.parametrizations.weight_norm``), so the parameter names are those of the public
checkpoint (``best_netG.pt``'s ``generator``): ``*.parametrizations.weight.original0`` (the gain g,
``(C, 1, 1)``) and ``original1`` (the direction v); the filters are checkpoint buffers.

The 16 kHz config (:data:`BIGVGAN_16K`): 80 mel bins, hop 256 = 4 * 4 * 2 * 2 * 2 * 2, width 1536.

Shapes: ``B`` batch, ``M`` mel bins, ``F`` mel frames, ``C`` channels, ``S = F * hop`` samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


@dataclass(frozen=True, kw_only=True)
class BigVGANConfig:
    num_mels: int = 80
    upsample_rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (8, 8, 4, 4, 4, 4)
    upsample_initial_channel: int = 1536
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    activation: str = "snakebeta"  # "snake" | "snakebeta"
    snake_logscale: bool = True
    resblock: str = "1"  # AMPBlock1 (the only one MMAudio's 16 kHz vocoder uses)

    def __post_init__(self) -> None:
        if self.activation not in ("snake", "snakebeta"):
            raise ValueError(f"activation must be snake or snakebeta, got {self.activation!r}")
        if self.resblock != "1":
            raise ValueError(f"only resblock '1' (AMPBlock1) is implemented, got {self.resblock!r}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes need the same length")

    @property
    def hop(self) -> int:
        return math.prod(self.upsample_rates)


BIGVGAN_16K = BigVGANConfig()


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> Tensor:
    """A (1, 1, K) low-pass FIR: Kaiser-windowed sinc, unit DC gain (Kaiser's beta formula for the
    attenuation A of a transition band of width 2 * half_width)."""
    half = kernel_size // 2
    attenuation = 2.285 * (half - 1) * math.pi * 4 * half_width + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, periodic=False, beta=beta)
    if kernel_size % 2 == 0:
        time = torch.arange(-half, half) + 0.5
    else:
        time = torch.arange(kernel_size) - half
    taps = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    return (taps / taps.sum()).view(1, 1, kernel_size)


class UpSample1d(nn.Module):
    """x2 (``ratio``) interpolation by a transposed depthwise sinc filter; (B, C, L) -> (B, C, rL)."""

    filter: Tensor  # buffer

    def __init__(self, ratio: int = 2, kernel_size: int = 12) -> None:
        super().__init__()
        self.ratio = ratio
        self.pad = kernel_size // ratio - 1
        self.crop_left = self.pad * ratio + (kernel_size - ratio) // 2
        self.crop_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, kernel_size))

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = self.ratio * F.conv_transpose1d(x, self.filter.expand(c, -1, -1), stride=self.ratio, groups=c)
        return x[..., self.crop_left : -self.crop_right]


class LowPassFilter1d(nn.Module):
    filter: Tensor  # buffer

    def __init__(self, cutoff: float, half_width: float, stride: int, kernel_size: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad_left = kernel_size // 2 - int(kernel_size % 2 == 0)
        self.pad_right = kernel_size // 2
        self.register_buffer("filter", kaiser_sinc_filter(cutoff, half_width, kernel_size))

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(c, -1, -1), stride=self.stride, groups=c)


class DownSample1d(nn.Module):
    """Low-pass and decimate by ``ratio``; (B, C, rL) -> (B, C, L)."""

    def __init__(self, ratio: int = 2, kernel_size: int = 12) -> None:
        super().__init__()
        self.lowpass = LowPassFilter1d(0.5 / ratio, 0.6 / ratio, ratio, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.lowpass(x)


class Snake(nn.Module):
    """x + 1/b * sin^2(a x) per channel (Snake: b = a; SnakeBeta: its own b); log-scale a, b."""

    def __init__(self, channels: int, *, beta: bool, logscale: bool) -> None:
        super().__init__()
        self.logscale = logscale
        init = torch.zeros(channels) if logscale else torch.ones(channels)
        self.alpha = nn.Parameter(init.clone())
        if beta:
            self.beta = nn.Parameter(init.clone())

    def forward(self, x: Tensor) -> Tensor:  # (B, C, L)
        a = self.alpha[None, :, None]
        b = self.beta[None, :, None] if hasattr(self, "beta") else a
        if self.logscale:
            a, b = a.exp(), b.exp()
        return x + torch.sin(x * a).pow(2) / (b + 1e-9)


class Activation1d(nn.Module):
    """The activation at twice the sample rate (anti-aliased)."""

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.act = act
        self.upsample = UpSample1d(2, 12)
        self.downsample = DownSample1d(2, 12)

    def forward(self, x: Tensor) -> Tensor:
        return self.downsample(self.act(self.upsample(x)))


def _conv(c_in: int, c_out: int, kernel: int, dilation: int = 1) -> nn.Module:
    return weight_norm(
        nn.Conv1d(c_in, c_out, kernel, 1, dilation=dilation, padding=dilation * (kernel - 1) // 2)
    )


class AMPBlock1(nn.Module):
    """Three (activation, dilated conv, activation, conv) residual units at one width."""

    def __init__(self, cfg: BigVGANConfig, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(_conv(channels, channels, kernel, d) for d in dilations)
        self.convs2 = nn.ModuleList(_conv(channels, channels, kernel) for _ in dilations)
        self.activations = nn.ModuleList(
            Activation1d(Snake(channels, beta=cfg.activation == "snakebeta", logscale=cfg.snake_logscale))
            for _ in range(2 * len(dilations))
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C, L)
        acts = self.activations
        for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            x = x + c2(acts[2 * i + 1](c1(acts[2 * i](x))))
        return x


class BigVGANVocoder(nn.Module):
    """log-mel (B, M, F) -> waveform (B, 1, F * hop) in [-1, 1]."""

    def __init__(self, cfg: BigVGANConfig = BIGVGAN_16K) -> None:
        super().__init__()
        self.cfg = cfg
        width = cfg.upsample_initial_channel
        self.conv_pre = weight_norm(nn.Conv1d(cfg.num_mels, width, 7, 1, padding=3))
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True)):
            c_in, c_out = width // 2**i, width // 2 ** (i + 1)
            up = nn.ConvTranspose1d(c_in, c_out, kernel, rate, padding=(kernel - rate) // 2)
            self.ups.append(nn.ModuleList([weight_norm(up)]))
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True):
                self.resblocks.append(AMPBlock1(cfg, c_out, k, d))
        c = width // 2 ** len(cfg.upsample_rates)
        self.activation_post = Activation1d(
            Snake(c, beta=cfg.activation == "snakebeta", logscale=cfg.snake_logscale)
        )
        self.conv_post = weight_norm(nn.Conv1d(c, 1, 7, 1, padding=3))

    def forward(self, mel: Tensor) -> Tensor:
        n = len(self.cfg.resblock_kernel_sizes)
        x = self.conv_pre(mel)
        for i, (up,) in enumerate(cast("Iterable[nn.ModuleList]", self.ups)):
            x = up(x)
            x = sum(self.resblocks[i * n + j](x) for j in range(n)) / n
        return torch.tanh(self.conv_post(self.activation_post(x)))
