"""Codec training losses: reconstruction, multi-resolution STFT and the Gaussian KL."""

from __future__ import annotations

from typing import Any

import torch

from facevox.codecs.base import LatentDist


def gaussian_kl(post: LatentDist) -> torch.Tensor:
    """Mean per latent element of KL(N(mean, std^2) || N(0, 1))."""
    var = post.std.pow(2)
    return 0.5 * (post.mean.pow(2) + var - torch.log(var) - 1.0).mean()


def multires_stft_loss(
    pred: torch.Tensor, target: torch.Tensor, fft_sizes: tuple[int, ...] = (256, 512, 1024)
) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over resolutions (Parallel WaveGAN, eq. 4-6).

    pred, target: (B, 1, S) or (B, S).
    """
    pred = pred.reshape(-1, pred.shape[-1])
    target = target.reshape(-1, target.shape[-1])
    total = pred.new_zeros(())
    for n_fft in fft_sizes:
        window = torch.hann_window(n_fft, device=pred.device, dtype=pred.dtype)
        kw: dict[str, Any] = {
            "n_fft": n_fft,
            "hop_length": n_fft // 4,
            "window": window,
            "return_complex": True,
        }
        p = torch.stft(pred, **kw).abs().clamp_min(1e-5)  # (B, F, N)
        t = torch.stft(target, **kw).abs().clamp_min(1e-5)
        sc = torch.linalg.norm(t - p) / torch.linalg.norm(t).clamp_min(1e-5)
        mag = (t.log() - p.log()).abs().mean()
        total = total + sc + mag
    return total / len(fft_sizes)
