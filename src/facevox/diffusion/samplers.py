"""Solvers for the joint flow ODE of both streams, from sigma = 1 (noise) to 0 (data).

A velocity function ``f(x_video, x_audio, sigma_video, sigma_audio) -> (v_video, v_audio)`` (sigmas
(B,)) is integrated over one sigma grid per stream. ``euler`` is the first-order step of
:mod:`facevox.diffusion.path`; ``unipc`` is diffusers' ``UniPCMultistepScheduler`` in flow mode
(``prediction_type="flow_prediction"``: ``x0 = x - sigma * v``), one scheduler per stream.

Two options reproduce Wan's own ``FlowUniPCMultistepScheduler`` (Wan2.1/2.2 ``wan/utils/
fm_solvers_unipc.py``, which Ovi and the Identity-as-Presence release use): ``sigma_grid="wan"`` (its
unshifted grid runs from ``1 - 1/1000`` down to 0, diffusers' from 1 down to ``1/1000``) and
``integer_timesteps`` (the network sees ``int64(sigma * 1000)``, the solver the exact sigma).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
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
    audio_shift: float = 0.0  # the audio stream's own shift (0: the same grid as video)
    sigma_grid: Literal["diffusers", "wan"] = "diffusers"  # unipc's unshifted grid (module docstring)
    integer_timesteps: bool = False  # unipc: the network sees floor(sigma * 1000) / 1000, as Wan's

    @property
    def shifts(self) -> tuple[float, float]:
        """(video, audio) shifts."""
        return self.shift, self.audio_shift or self.shift

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def _batch(sigma: float, like: Tensor) -> Tensor:
    return torch.full((like.shape[0],), float(sigma), dtype=like.dtype, device=like.device)


def euler(fn: VelocityFn, xv: Tensor, xa: Tensor, cfg: SamplerConfig, callback: StepCallback | None = None):
    """First-order flow steps on the shifted uniform grid."""
    sig_v, sig_a = (inference_sigmas(cfg.steps, shift=shift) for shift in cfg.shifts)
    for i in range(cfg.steps):
        sv, sv_next, sa, sa_next = (float(x) for x in (sig_v[i], sig_v[i + 1], sig_a[i], sig_a[i + 1]))
        vv, va = fn(xv, xa, _batch(sv, xv), _batch(sa, xa))
        xv, xa = xv + (sv_next - sv) * vv, xa + (sa_next - sa) * va
        if callback is not None:
            callback(i + 1, cfg.steps)
    return xv, xa


def wan_grid(steps: int, train_timesteps: int = 1000) -> np.ndarray:
    """Wan's unshifted UniPC grid: ``steps`` values from ``1 - 1/train_timesteps`` (as float32, the
    largest of its training sigmas) linearly down to 0, 0 excluded."""
    sigma_max = float(np.float32(1 - 1 / train_timesteps))
    return np.linspace(sigma_max, 0.0, steps + 1)[:-1].copy()


def unipc(fn: VelocityFn, xv: Tensor, xa: Tensor, cfg: SamplerConfig, callback: StepCallback | None = None):
    """diffusers' UniPC multistep solver (order 2 predictor-corrector) in flow mode."""
    from diffusers import UniPCMultistepScheduler

    # Any: mypy resolves diffusers' lazy top-level name to its torch-less dummy class, which has none
    # of the scheduler's methods
    sched: list[Any] = [
        UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=shift)
        for shift in cfg.shifts
    ]
    for s in sched:
        if cfg.sigma_grid == "wan":
            s.set_timesteps(sigmas=wan_grid(cfg.steps), device=xv.device)
        else:
            s.set_timesteps(cfg.steps, device=xv.device)
    for i, t in enumerate(sched[0].timesteps):
        if cfg.integer_timesteps:  # diffusers' timesteps are int64(sigma * 1000), as Wan's
            sv, sa = float(t) / 1000, float(sched[1].timesteps[i]) / 1000
        else:
            sv, sa = float(sched[0].sigmas[i]), float(sched[1].sigmas[i])
        vv, va = fn(xv, xa, _batch(sv, xv), _batch(sa, xa))
        xv = sched[0].step(vv, t, xv, return_dict=False)[0]
        xa = sched[1].step(va, sched[1].timesteps[i], xa, return_dict=False)[0]
        if callback is not None:
            callback(i + 1, cfg.steps)
    return xv, xa


SOLVERS = {"euler": euler, "unipc": unipc}


def sample(fn: VelocityFn, xv: Tensor, xa: Tensor, cfg: SamplerConfig, callback: StepCallback | None = None):
    """Integrate both streams from the noise ``(xv, xa)`` to data with ``cfg.solver``."""
    return SOLVERS[cfg.solver](fn, xv, xa, cfg, callback)
