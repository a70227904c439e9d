"""The codec interface shared by the video and audio VAEs.

A codec is a frozen encoder/decoder pair around one diffusers autoencoder. :meth:`Codec.encode`
returns the *normalised* posterior (``(mu - latents_mean) / latents_std`` per channel, the same
convention as the Wan pipelines), and :meth:`Codec.decode` takes normalised latents back to media.
Weights are only ever read from a local folder: a missing folder or file is a
:class:`CodecFilesError` that names the folder, never a hub download.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

import torch


class CodecFilesError(FileNotFoundError):
    """A codec folder, or a file a codec needs inside it, is missing; the message names the folder."""


def require_files(folder: str | Path, names: Sequence[str], what: str) -> Path:
    """Return ``folder`` as a Path after checking it holds every file in ``names``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CodecFilesError(f"{what}: folder {folder} does not exist (weights are never downloaded)")
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise CodecFilesError(
            f"{what}: folder {folder} lacks {', '.join(missing)} (weights are never downloaded)"
        )
    return folder


@dataclass(frozen=True)
class LatentDist:
    """A diagonal Gaussian over normalised latents; ``mean`` and ``std`` share one shape."""

    mean: torch.Tensor  # video (B, C, t, h, w) / audio (B, C, n)
    std: torch.Tensor  # same shape as mean

    def __post_init__(self) -> None:
        if self.mean.shape != self.std.shape:
            raise ValueError(f"mean {tuple(self.mean.shape)} and std {tuple(self.std.shape)} differ")

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw ``mean + std * eps`` (``generator`` must live on the tensors' device)."""
        eps = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mean


@dataclass(frozen=True)
class LatentStats:
    """Per-channel statistics of the raw posterior means; normalised = (raw - mean) / std."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise ValueError(f"latent stats: {len(self.mean)} means but {len(self.std)} stds")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"latent stats: every std must be > 0, got {self.std}")

    @classmethod
    def identity(cls, channels: int) -> LatentStats:
        return cls(mean=(0.0,) * channels, std=(1.0,) * channels)

    def shared(self) -> LatentStats:
        """The same centring, one scale for every channel (the root mean square of the stds): the
        latent has unit variance overall and keeps its channels' relative energies."""
        rms = math.sqrt(sum(s * s for s in self.std) / len(self.std))
        return LatentStats(mean=self.mean, std=(rms,) * len(self.std))

    @classmethod
    def measure(cls, means: torch.Tensor) -> LatentStats:
        """Stats of raw posterior means ``(B, C, ...)`` over every axis but the channel axis."""
        flat = means.transpose(0, 1).reshape(means.shape[1], -1).double()  # (C, N)
        return cls(mean=tuple(flat.mean(1).tolist()), std=tuple(flat.std(1).clamp_min(1e-6).tolist()))

    def _view(self, like: torch.Tensor, values: tuple[float, ...]) -> torch.Tensor:
        if like.shape[1] != len(values):
            raise ValueError(f"latents have {like.shape[1]} channels, stats have {len(values)}")
        shape = (1, len(values)) + (1,) * (like.ndim - 2)
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(shape)

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self._view(raw, self.mean)) / self._view(raw, self.std)

    def denormalise(self, z: torch.Tensor) -> torch.Tensor:
        return z * self._view(z, self.std) + self._view(z, self.mean)

    def scale_std(self, raw_std: torch.Tensor) -> torch.Tensor:
        return raw_std / self._view(raw_std, self.std)


@runtime_checkable
class Codec(Protocol):
    """What the encode step and the pipeline need from a video or audio codec."""

    stats: LatentStats

    @property
    def latent_channels(self) -> int: ...

    @property
    def time_stride(self) -> int:
        """Input samples (audio) or frames (video, after the first) per latent step."""
        ...

    def encode(self, x: torch.Tensor) -> LatentDist: ...

    def decode(self, z: torch.Tensor) -> torch.Tensor: ...

    def save_pretrained(self, folder: str | Path) -> Path: ...

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> Self: ...


class LogMelDecoder(Protocol):
    """What :class:`MonoAudioCodecMixin` needs of its ``vae`` (a ``torch.nn.Module``)."""

    def decode(self, z: torch.Tensor) -> torch.Tensor: ...


class MonoAudioCodecMixin:
    """Geometry, statistics and the normalised coding of a mono log-mel audio codec. The class defines
    ``time_stride``, ``latent_channels``, ``raw_posterior(audio)`` and a ``vae`` whose ``decode`` maps
    raw latents to log-mels."""

    stats: LatentStats
    vae: LogMelDecoder

    if TYPE_CHECKING:  # read-only properties of the codec class

        @property
        def time_stride(self) -> int: ...

        @property
        def latent_channels(self) -> int: ...

    @abstractmethod
    def raw_posterior(self, audio: torch.Tensor) -> LatentDist: ...

    @property
    def audio_channels(self) -> int:
        return 1

    def latent_frames(self, samples: int) -> int:
        """Latent frames for ``samples`` input samples (zero-padded up to a whole latent frame)."""
        return math.ceil(samples / self.time_stride)

    def set_stats(self, stats: LatentStats) -> None:
        if len(stats.mean) != self.latent_channels:
            raise ValueError(f"stats have {len(stats.mean)} channels, codec has {self.latent_channels}")
        self.stats = stats

    @torch.no_grad()
    def encode(self, audio: torch.Tensor) -> LatentDist:
        """(B, 1, S) in [-1, 1] -> normalised LatentDist of (B, C, ceil(S / time_stride))."""
        raw = self.raw_posterior(audio)
        return LatentDist(mean=self.stats.normalise(raw.mean), std=self.stats.scale_std(raw.std))

    @torch.no_grad()
    def decode_mel(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised (B, C, n) -> log-mel (B, M, F)."""
        if z.ndim != 3 or z.shape[1] != self.latent_channels:
            raise ValueError(f"latents must be (B, {self.latent_channels}, n), got {tuple(z.shape)}")
        return self.vae.decode(self.stats.denormalise(z))
