"""Audio codec on log-mel spectrograms with a Griffin-Lim waveform decoder.

A small 1D-convolutional VAE over 80-bin log-mels (hop 160 at 16 kHz, 100 frames/s) downsampling
time by 4, so one latent frame covers 640 samples (25 per second, one per video frame in the tiny
alignment). The waveform comes back through Griffin-Lim on the mel's pseudo-inverse: no trained
vocoder, so it costs phase quality but trains in minutes on a CPU.

Shapes: ``B`` batch, ``S`` samples, ``M`` mel bins, ``F`` mel frames (``S / hop``), ``C`` latent
channels, ``n = F / 4`` latent frames.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from facevox.codecs.base import LatentDist, LatentStats, MonoAudioCodecMixin, require_files
from facevox.io.atomic import atomic_path, atomic_write_json

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATS_FILE = "latent_stats.json"


@dataclass(frozen=True, kw_only=True)
class MelCodecConfig:
    sample_rate: int = 16_000
    n_fft: int = 1024  # STFT size (window = n_fft)
    mel_hop: int = 160  # samples per mel frame
    n_mels: int = 80
    width: int = 128  # conv channels
    latent_channels: int = 16
    time_downsample: int = 4  # mel frames per latent frame (two stride-2 convs)
    griffin_lim_iters: int = 48

    def __post_init__(self) -> None:
        if self.time_downsample != 4:
            raise ValueError("time_downsample must be 4 (two stride-2 stages)")


class _ResBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.GroupNorm(8, width),
            nn.SiLU(),
            nn.Conv1d(width, width, 5, padding=2),
            nn.GroupNorm(8, width),
            nn.SiLU(),
            nn.Conv1d(width, width, 5, padding=2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class MelVAE(nn.Module):
    """log-mel (B, M, F) <-> latents (B, C, F / 4)."""

    def __init__(self, cfg: MelCodecConfig) -> None:
        super().__init__()
        w, c = cfg.width, cfg.latent_channels
        self.encoder = nn.Sequential(
            nn.Conv1d(cfg.n_mels, w, 3, padding=1),
            _ResBlock(w),
            nn.Conv1d(w, w, 4, stride=2, padding=1),
            _ResBlock(w),
            nn.Conv1d(w, w, 4, stride=2, padding=1),
            _ResBlock(w),
            nn.GroupNorm(8, w),
            nn.SiLU(),
            nn.Conv1d(w, 2 * c, 3, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.Conv1d(c, w, 3, padding=1),
            _ResBlock(w),
            nn.ConvTranspose1d(w, w, 4, stride=2, padding=1),
            _ResBlock(w),
            nn.ConvTranspose1d(w, w, 4, stride=2, padding=1),
            _ResBlock(w),
            nn.GroupNorm(8, w),
            nn.SiLU(),
            nn.Conv1d(w, cfg.n_mels, 3, padding=1),
        )

    def encode(self, mel: torch.Tensor) -> LatentDist:
        mean, logvar = self.encoder(mel).chunk(2, dim=1)  # (B, C, n) each
        return LatentDist(mean=mean, std=torch.exp(0.5 * logvar.clamp(-20, 10)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, M, 4n)


class MelAudioCodec(MonoAudioCodecMixin, nn.Module):
    """Frozen mel VAE + Griffin-Lim: ``encode`` (B, 1, S) -> normalised LatentDist (B, C, S / 640)."""

    vae: MelVAE
    mel_fb: torch.Tensor  # buffers
    mel_pinv: torch.Tensor
    window: torch.Tensor

    def __init__(self, cfg: MelCodecConfig, stats: LatentStats | None = None) -> None:
        super().__init__()
        import librosa

        self.cfg = cfg
        self.vae = MelVAE(cfg).eval().requires_grad_(False)
        fb = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels)  # (M, n_fft/2+1)
        self.register_buffer("mel_fb", torch.from_numpy(fb).float(), persistent=False)
        self.register_buffer("mel_pinv", torch.linalg.pinv(self.mel_fb), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        self.stats = stats or LatentStats.identity(cfg.latent_channels)

    # ---- geometry
    @property
    def latent_channels(self) -> int:
        return self.cfg.latent_channels

    @property
    def time_stride(self) -> int:
        """Samples per latent frame."""
        return self.cfg.mel_hop * self.cfg.time_downsample

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    # ---- spectra
    def _stft(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.stft(
            audio, self.cfg.n_fft, self.cfg.mel_hop, window=self.window, center=True, return_complex=True
        )

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, 1, S) -> (B, M, ceil(S / 640) * 4) log-mel magnitudes (S zero-padded to a whole hop)."""
        if audio.ndim != 3 or audio.shape[1] != 1:
            raise ValueError(f"audio must be (B, 1, S), got {tuple(audio.shape)}")
        frames = self.latent_frames(audio.shape[-1]) * self.cfg.time_downsample
        audio = F.pad(audio[:, 0], (0, frames * self.cfg.mel_hop - audio.shape[-1]))
        mag = self._stft(audio).abs()[..., :frames]  # (B, n_fft/2+1, F)
        return torch.log(torch.clamp(self.mel_fb @ mag, min=1e-5))

    def griffin_lim(self, log_mel: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, M, F) log-mel -> (B, 1, F * hop) waveform (fast Griffin-Lim, momentum 0.99)."""
        mag = (self.mel_pinv @ log_mel.exp()).clamp_min(0)  # (B, n_fft/2+1, F)
        length = log_mel.shape[-1] * self.cfg.mel_hop
        mag = F.pad(mag, (0, 1))  # the centred STFT of `length` samples has F + 1 frames
        phase = torch.exp(2j * math.pi * torch.rand(mag.shape, generator=generator, dtype=mag.dtype))
        prev = torch.zeros_like(phase)
        for _ in range(self.cfg.griffin_lim_iters):
            wav = torch.istft(
                mag * phase, self.cfg.n_fft, self.cfg.mel_hop, window=self.window, length=length
            )
            rebuilt = self._stft(wav)
            accel = rebuilt - 0.99 * prev
            prev = rebuilt
            phase = accel / accel.abs().clamp_min(1e-8)
        wav = torch.istft(mag * phase, self.cfg.n_fft, self.cfg.mel_hop, window=self.window, length=length)
        return wav.unsqueeze(1)

    # ---- coding
    def raw_posterior(self, audio: torch.Tensor) -> LatentDist:
        return self.vae.encode(self.log_mel(audio))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised (B, C, n) -> waveform (B, 1, n * 640) through Griffin-Lim (seeded, repeatable)."""
        return self.griffin_lim(self.decode_mel(z), torch.Generator().manual_seed(0))

    # ---- files
    @classmethod
    def from_pretrained(cls, folder: str | Path) -> Self:
        folder = require_files(folder, [CONFIG_FILE, WEIGHTS_FILE], "mel audio codec")
        data = json.loads((folder / CONFIG_FILE).read_text())
        if data.pop("_class_name", None) != cls.__name__:
            raise ValueError(f"{folder / CONFIG_FILE} does not describe a {cls.__name__}")
        stats = None
        if (folder / STATS_FILE).is_file():
            s = json.loads((folder / STATS_FILE).read_text())
            stats = LatentStats(mean=tuple(s["mean"]), std=tuple(s["std"]))
        codec = cls(MelCodecConfig(**data), stats)
        codec.vae.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
        return codec

    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        atomic_write_json(
            folder / CONFIG_FILE, {"_class_name": type(self).__name__, **dataclasses.asdict(self.cfg)}
        )
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            save_file({k: v.contiguous() for k, v in self.vae.state_dict().items()}, str(tmp))
        atomic_write_json(folder / STATS_FILE, {"mean": list(self.stats.mean), "std": list(self.stats.std)})
        return folder
