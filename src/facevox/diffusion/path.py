"""The rectified-flow path and its time axis.

Convention (Wan / Ovi / LTX-2 family, and the paper's objective): ``sigma`` in [0, 1], 1 = pure
noise, 0 = clean data;

    x_sigma = (1 - sigma) * x0 + sigma * noise,     v = d x_sigma / d sigma = noise - x0,

the backbone predicts ``v``, and an Euler step from ``sigma`` to ``sigma_next`` is
``x + (sigma_next - sigma) * v``. Training draws sigma from a logit-normal (SD3, Esser et al. 2024,
eq. 19) and applies the resolution-dependent *shift* ``s*sigma / (1 + (s-1)*sigma)`` (SD3 sec. 5.3.2),
which moves mass towards high noise for longer sequences; inference uses the same shift on a
uniform grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def shift_sigma(sigma: Tensor, shift: float) -> Tensor:
    """``s * sigma / (1 + (s - 1) * sigma)``; maps [0, 1] onto [0, 1] monotonically (s=1: identity)."""
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    return shift * sigma / (1 + (shift - 1) * sigma)


def resolution_shift(
    tokens: int,
    *,
    base_tokens: int = 256,
    base_shift: float = 1.0,
    max_tokens: int = 4096,
    max_shift: float = 3.0,
) -> float:
    """Shift for a sequence of ``tokens`` tokens: linear in the token count between two anchors
    (the rule Flux and LTX use, with anchors chosen for our sizes), clamped to the anchors' range."""
    if tokens <= 0:
        raise ValueError(f"tokens must be > 0, got {tokens}")
    slope = (max_shift - base_shift) / (max_tokens - base_tokens)
    mu = base_shift + slope * (tokens - base_tokens)
    return float(min(max(mu, min(base_shift, max_shift)), max(base_shift, max_shift)))


@dataclass(frozen=True, kw_only=True)
class TimestepSampling:
    """How training draws sigma."""

    logit_mean: float = 0.0  # mean of the logit-normal's underlying Gaussian
    logit_std: float = 1.0  # its standard deviation
    shift: float = 1.0  # applied after the draw (see :func:`shift_sigma`)
    min_sigma: float = 1e-3  # keep away from exactly clean / exactly noise
    max_sigma: float = 1.0

    def __post_init__(self) -> None:
        if self.logit_std <= 0:
            raise ValueError(f"logit_std must be > 0, got {self.logit_std}")
        if not 0 <= self.min_sigma < self.max_sigma <= 1:
            raise ValueError(f"need 0 <= min_sigma < max_sigma <= 1, got {self.min_sigma}, {self.max_sigma}")

    def sample(
        self, n: int, *, generator: torch.Generator | None = None, device: torch.device | None = None
    ) -> Tensor:
        """(n,) sigmas in [min_sigma, max_sigma]."""
        u = torch.randn(n, generator=generator, device=device) * self.logit_std + self.logit_mean
        sigma = shift_sigma(torch.sigmoid(u), self.shift)
        return sigma.clamp(self.min_sigma, self.max_sigma)


def interpolate(x0: Tensor, noise: Tensor, sigma: Tensor) -> Tensor:
    """``x_sigma``; ``sigma`` (B,) broadcasts over the trailing axes of ``x0`` (B, ...)."""
    if x0.shape != noise.shape:
        raise ValueError(f"x0 {tuple(x0.shape)} and noise {tuple(noise.shape)} differ")
    s = sigma.reshape(sigma.shape[0], *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1 - s) * x0 + s * noise


def velocity(x0: Tensor, noise: Tensor) -> Tensor:
    """The regression target ``noise - x0``."""
    return noise - x0


def inference_sigmas(steps: int, *, shift: float = 1.0, device: torch.device | None = None) -> Tensor:
    """(steps + 1,) decreasing sigmas from 1 to 0: a uniform grid, shifted."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    grid = torch.linspace(1.0, 0.0, steps + 1, device=device, dtype=torch.float64)
    return shift_sigma(grid, shift).float()


def predicted_clean(x: Tensor, v: Tensor, sigma: Tensor) -> Tensor:
    """``x0 = x - sigma * v`` (what the velocity implies about the clean sample)."""
    s = sigma.reshape(sigma.shape[0], *([1] * (x.ndim - 1))).to(x.dtype) if sigma.ndim else sigma
    return x - s * v


def logit_normal_density(sigma: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Density of the (unshifted) logit-normal at ``sigma`` in (0, 1); for tests and plots."""
    logit = torch.log(sigma) - torch.log1p(-sigma)
    return torch.exp(-((logit - mean) ** 2) / (2 * std**2)) / (
        std * math.sqrt(2 * math.pi) * sigma * (1 - sigma)
    )
