"""Video codec: the Wan 2.x causal 3D VAE as diffusers implements it (``AutoencoderKLWan``).

Shapes (letters): ``B`` batch, ``T`` pixel frames (``1 + k * time_stride``), ``H``/``W`` pixels,
``C`` latent channels, ``t = 1 + (T - 1) / time_stride`` latent frames, ``h``/``w = H/W / space_stride``.
Pixels are RGB floats in [-1, 1].

The real Wan 2.1 VAE (z 16, x4 time, x8 space) and Wan 2.2 VAE (z 48, x4 time, x16 space) load
from a local folder (the VAE folder itself, or a pipeline folder with a ``vae/`` subfolder) and
normalise with the ``latents_mean``/``latents_std`` of their own config, as the Wan pipelines do.
A tiny config of the same class (:func:`tiny_wan_config`) is what ``facevox train-codec video``
trains; its measured statistics are written into that same config.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Self

import torch

from facevox.codecs.base import CodecFilesError, LatentDist, LatentStats, require_files

log = logging.getLogger(__name__)


def tiny_wan_config(
    base_dim: int = 16, z_dim: int = 8, dim_mult: tuple[int, ...] = (1, 2, 4, 4), num_res_blocks: int = 1
) -> dict[str, Any]:
    """An ``AutoencoderKLWan`` config at CPU size: x4 time, and x8 space with 4 ``dim_mult`` levels
    (Wan's layout) or x4 space with 3 (a face spans twice the latent cells; the last two
    downsamplings are the temporal ones either way)."""
    if len(dim_mult) not in (3, 4):
        raise ValueError(
            f"dim_mult needs 4 entries (x8 space) or 3 (x4 space), got {len(dim_mult)}: {dim_mult}"
        )
    levels = len(dim_mult) - 1
    return {
        "base_dim": base_dim,
        "z_dim": z_dim,
        "dim_mult": list(dim_mult),
        "num_res_blocks": num_res_blocks,
        "attn_scales": [],
        "temperal_downsample": [False] * (levels - 2) + [True, True],
        "scale_factor_spatial": 2**levels,
        "latents_mean": [0.0] * z_dim,
        "latents_std": [1.0] * z_dim,
    }


def _vae_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    if (folder / "vae" / "config.json").is_file() and not (folder / "config.json").is_file():
        folder = folder / "vae"
    folder = require_files(folder, ["config.json"], "Wan video VAE")
    if not any(folder.glob("*.safetensors")):
        raise CodecFilesError(
            f"Wan video VAE: folder {folder} holds no *.safetensors weights (weights are never downloaded)"
        )
    return folder


class WanVideoCodec(torch.nn.Module):
    """Frozen Wan VAE: ``encode`` (B, 3, T, H, W) -> normalised LatentDist (B, C, t, h, w)."""

    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        cfg = vae.config
        self.stats = LatentStats(mean=tuple(cfg.latents_mean), std=tuple(cfg.latents_std))
        if len(self.stats.mean) != cfg.z_dim:
            raise ValueError(f"latents_mean has {len(self.stats.mean)} entries but z_dim is {cfg.z_dim}")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        """A randomly initialised codec (for training or tests)."""
        from diffusers import AutoencoderKLWan

        return cls(AutoencoderKLWan(**config))

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype = torch.float32) -> Self:
        from diffusers import AutoencoderKLWan

        path = _vae_folder(folder)
        vae = AutoencoderKLWan.from_pretrained(str(path), local_files_only=True, torch_dtype=dtype)
        log.info("loaded Wan VAE from %s (z %d)", path, vae.config.z_dim)
        return cls(vae)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write config (with the latent stats) and safetensors weights into ``folder``."""
        self.vae.register_to_config(latents_mean=list(self.stats.mean), latents_std=list(self.stats.std))
        self.vae.save_pretrained(str(folder), safe_serialization=True)
        return Path(folder)

    def set_stats(self, stats: LatentStats) -> None:
        if len(stats.mean) != self.latent_channels:
            raise ValueError(f"stats have {len(stats.mean)} channels, codec has {self.latent_channels}")
        self.stats = stats

    # ---- geometry
    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.z_dim)

    @property
    def time_stride(self) -> int:
        return int(self.vae.config.scale_factor_temporal)

    @property
    def space_stride(self) -> int:
        return int(self.vae.config.scale_factor_spatial)

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """``(C, t, h, w)`` for a clip of ``frames`` x ``height`` x ``width``; ValueError if it does not fit."""
        if frames < 1 or (frames - 1) % self.time_stride:
            raise ValueError(f"frames={frames} must be 1 + k * {self.time_stride} (causal video VAE)")
        if height % self.space_stride or width % self.space_stride:
            raise ValueError(f"size {height}x{width} must be a multiple of {self.space_stride}")
        return (
            self.latent_channels,
            1 + (frames - 1) // self.time_stride,
            height // self.space_stride,
            width // self.space_stride,
        )

    # ---- coding
    def raw_posterior(self, video: torch.Tensor) -> LatentDist:
        """Un-normalised posterior, with gradients (the trainer uses this)."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"video must be (B, 3, T, H, W), got {tuple(video.shape)}")
        self.latent_shape(video.shape[2], video.shape[3], video.shape[4])
        post = self.vae.encode(video).latent_dist
        return LatentDist(mean=post.mean, std=post.std)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> LatentDist:
        """(B, 3, T, H, W) in [-1, 1] -> normalised LatentDist of (B, C, t, h, w)."""
        raw = self.raw_posterior(video)
        return LatentDist(mean=self.stats.normalise(raw.mean), std=self.stats.scale_std(raw.std))

    @torch.no_grad()
    def encode_image(self, image: torch.Tensor) -> LatentDist:
        """A face reference (B, 3, H, W) as a single-frame clip -> LatentDist of (B, C, 1, h, w)."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
        return self.encode(image.unsqueeze(2))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised (B, C, t, h, w) -> (B, 3, 1 + (t - 1) * time_stride, H, W) in [-1, 1]."""
        if z.ndim != 5 or z.shape[1] != self.latent_channels:
            raise ValueError(f"latents must be (B, {self.latent_channels}, t, h, w), got {tuple(z.shape)}")
        return self.vae.decode(self.stats.denormalise(z)).sample
