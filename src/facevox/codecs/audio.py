"""Audio codec: a waveform VAE, diffusers' ``AutoencoderOobleck`` (Stable Audio's VAE).

Shapes: ``B`` batch, ``A`` audio channels (1 for our 16 kHz speech), ``S`` samples, ``C`` latent
channels, ``n = S / hop`` latent frames. Waveforms are floats in [-1, 1]. The decoder produces the
waveform itself, so there is no separate vocoder.

The real Stable Audio Open VAE (stereo, 44.1 kHz, hop 2048, 64 channels) loads from a local folder
(or a pipeline folder with a ``vae/`` subfolder). The tiny 16 kHz config (:func:`tiny_oobleck_config`,
hop 640 = one latent per video frame at 25 fps) is what ``facevox train-codec audio`` trains. Latent
statistics live beside the weights in ``latent_stats.json``; without that file they are the identity.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Self

import torch
import torch.nn.functional as F

from facevox.codecs.base import CodecFilesError, LatentDist, LatentStats, require_files
from facevox.io.atomic import atomic_write_json

log = logging.getLogger(__name__)

STATS_FILE = "latent_stats.json"


def tiny_oobleck_config(
    hidden: int = 32,
    latent_channels: int = 16,
    downsampling_ratios: tuple[int, ...] = (2, 4, 8, 10),
    channel_multiples: tuple[int, ...] = (1, 2, 4, 8),
    sample_rate: int = 16_000,
) -> dict[str, Any]:
    """A mono ``AutoencoderOobleck`` config; hop = product of ``downsampling_ratios``.

    Oobleck's encoder emits ``encoder_hidden_size`` channels split into mean and scale, so the
    encoder width is ``2 * latent_channels``; ``hidden`` is the decoder's base width.
    """
    if len(downsampling_ratios) != len(channel_multiples):
        raise ValueError("downsampling_ratios and channel_multiples need the same length")
    return {
        "encoder_hidden_size": 2 * latent_channels,
        "downsampling_ratios": list(downsampling_ratios),
        "channel_multiples": list(channel_multiples),
        "decoder_channels": hidden,
        "decoder_input_channels": latent_channels,
        "audio_channels": 1,
        "sampling_rate": sample_rate,
    }


def _vae_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    if (folder / "vae" / "config.json").is_file() and not (folder / "config.json").is_file():
        folder = folder / "vae"
    folder = require_files(folder, ["config.json"], "Oobleck audio VAE")
    if not any(folder.glob("*.safetensors")):
        raise CodecFilesError(
            f"Oobleck audio VAE: folder {folder} holds no *.safetensors weights (weights are never downloaded)"
        )
    return folder


class OobleckAudioCodec(torch.nn.Module):
    """Frozen waveform VAE: ``encode`` (B, A, S) -> normalised LatentDist (B, C, S / hop)."""

    def __init__(self, vae: Any, stats: LatentStats | None = None) -> None:
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        self.stats = stats or LatentStats.identity(self.latent_channels)
        if len(self.stats.mean) != self.latent_channels:
            raise ValueError(f"stats have {len(self.stats.mean)} channels, codec has {self.latent_channels}")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        from diffusers import AutoencoderOobleck

        return cls(AutoencoderOobleck(**config))

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype = torch.float32) -> Self:
        from diffusers import AutoencoderOobleck

        path = _vae_folder(folder)
        vae = AutoencoderOobleck.from_pretrained(str(path), local_files_only=True, torch_dtype=dtype)
        stats = None
        if (path / STATS_FILE).is_file():
            data = json.loads((path / STATS_FILE).read_text())
            stats = LatentStats(mean=tuple(data["mean"]), std=tuple(data["std"]))
        else:
            log.info("%s has no %s: latents are used un-normalised", path, STATS_FILE)
        return cls(vae, stats)

    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        self.vae.save_pretrained(str(folder), safe_serialization=True)
        atomic_write_json(folder / STATS_FILE, {"mean": list(self.stats.mean), "std": list(self.stats.std)})
        return folder

    def set_stats(self, stats: LatentStats) -> None:
        if len(stats.mean) != self.latent_channels:
            raise ValueError(f"stats have {len(stats.mean)} channels, codec has {self.latent_channels}")
        self.stats = stats

    # ---- geometry
    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.decoder_input_channels)

    @property
    def time_stride(self) -> int:
        """Samples per latent frame (the hop)."""
        return int(math.prod(self.vae.config.downsampling_ratios))

    @property
    def sample_rate(self) -> int:
        return int(self.vae.config.sampling_rate)

    @property
    def audio_channels(self) -> int:
        return int(self.vae.config.audio_channels)

    def latent_frames(self, samples: int) -> int:
        """Latent frames for ``samples`` input samples (the input is zero-padded up to a whole hop)."""
        return math.ceil(samples / self.time_stride)

    # ---- coding
    def raw_posterior(self, audio: torch.Tensor) -> LatentDist:
        """Un-normalised posterior, with gradients; pads ``S`` up to a multiple of the hop."""
        if audio.ndim != 3 or audio.shape[1] != self.audio_channels:
            raise ValueError(f"audio must be (B, {self.audio_channels}, S), got {tuple(audio.shape)}")
        pad = self.latent_frames(audio.shape[-1]) * self.time_stride - audio.shape[-1]
        if pad:
            audio = F.pad(audio, (0, pad))
        post = self.vae.encode(audio).latent_dist
        return LatentDist(mean=post.mean, std=post.std)

    @torch.no_grad()
    def encode(self, audio: torch.Tensor) -> LatentDist:
        """(B, A, S) in [-1, 1] at ``sample_rate`` -> normalised LatentDist of (B, C, ceil(S / hop))."""
        raw = self.raw_posterior(audio)
        return LatentDist(mean=self.stats.normalise(raw.mean), std=self.stats.scale_std(raw.std))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised (B, C, n) -> waveform (B, A, n * hop)."""
        if z.ndim != 3 or z.shape[1] != self.latent_channels:
            raise ValueError(f"latents must be (B, {self.latent_channels}, n), got {tuple(z.shape)}")
        return self.vae.decode(self.stats.denormalise(z)).sample
