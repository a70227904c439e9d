"""Solvers for the joint flow ODE of both streams, from sigma = 1 (noise) to 0 (data).

A velocity function ``f(x_video, x_audio, sigma_video, sigma_audio) -> (v_video, v_audio)`` (sigmas
(B,)) is integrated over one sigma grid per stream. ``euler`` is the first-order step of
:mod:`facevox.diffusion.path`; ``unipc`` is diffusers' ``UniPCMultistepScheduler`` in flow mode
(``prediction_type="flow_prediction"``: ``x0 = x - sigma * v``), one scheduler per stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from facevox.diffusion.path import inference_sigmas

VelocityFn = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
StepCallback = Callable[[int, int], None]  # (step done, total)


@dataclass(frozen=True, kw_only=True)
class SamplerConfig:
    solver: Literal["euler", "unipc"] = "unipc"
    steps: int = 16
    shift: float = 3.0  # timestep shift of the sigma grid (same rule as training)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def _batch(sigma: float, like: Tensor) -> Tensor:
    return torch.full((like.shape[0],), float(sigma), dtype=like.dtype, device=like.device)


def euler(fn: VelocityFn, xv: Tensor, xa: Tensor, cfg: SamplerConfig, callback: StepCallback | None = None):
    """First-order flow steps on the shifted uniform grid."""
    sig = inference_sigmas(cfg.steps, shift=cfg.shift)
    for i in range(cfg.steps):
        s, s_next = float(sig[i]), float(sig[i + 1])
        vv, va = fn(xv, xa, _batch(s, xv), _batch(s, xa))
        xv, xa = xv + (s_next - s) * vv, xa + (s_next - s) * va
        if callback is not None:
            callback(i + 1, cfg.steps)
    return xv, xa


def unipc(fn: VelocityFn, xv: Tensor, xa: Tensor, cfg: SamplerConfig, callback: StepCallback | None = None):
    """diffusers' UniPC multistep solver (order 2 predictor-corrector) in flow mode."""
    from diffusers import UniPCMultistepScheduler

    sched = [
        UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=cfg.shift)
        for _ in range(2)
    ]
    for s in sched:
        s.set_timesteps(cfg.steps, device=xv.device)
    for i, t in enumerate(sched[0].timesteps):
        sigma = float(sched[0].sigmas[i])
        vv, va = fn(xv, xa, _batch(sigma, xv), _batch(sigma, xa))
        xv = sched[0].step(vv, t, xv, return_dict=False)[0]
        xa = sched[1].step(va, sched[1].timesteps[i], xa, return_dict=False)[0]
        if callback is not None:
            callback(i + 1, cfg.steps)
    return xv, xa


SOLVERS = {"euler": euler, "unipc": unipc}


def sample(fn: VelocityFn, xv: Tensor, xa: Tensor, cfg: SamplerConfig, callback: StepCallback | None = None):
    """Integrate both streams from the noise ``(xv, xa)`` to data with ``cfg.solver``."""
    return SOLVERS[cfg.solver](fn, xv, xa, cfg, callback)
