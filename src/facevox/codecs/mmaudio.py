"""MMAudio's 16 kHz audio codec: log10-mel front end, mel VAE (:mod:`facevox.codecs.mmaudio_vae`) and
BigVGAN vocoder (:mod:`facevox.codecs.bigvgan`), behind facevox's codec interface.

This is the audio latent space of Ovi and of the Identity-as-Presence release: 20 channels, one
latent frame per 512 samples (31.25 per second). The front end is MMAudio's 16 kHz mel: STFT 1024
(Hann, no centring, reflect-padded by 384 per side), hop 256, 80 Slaney mel bins over 0-8 kHz,
``log10(max(mel, 1e-5))``. The release (and Ovi) feed the towers the raw posterior, so the latent
statistics default to the identity.

A facevox MMAudio folder holds ``config.json``, ``vae.safetensors`` and ``vocoder.safetensors`` with
the public checkpoints' own tensor names (``facevox convert-mmaudio`` writes it from MMAudio's
``v1-16.pth`` and ``best_netG.pt``); every load is strict and names the first bad key.

Shapes: ``B`` batch, ``S`` samples (16 kHz mono in [-1, 1]), ``M`` mel bins, ``F = S / 256`` mel
frames, ``C`` latent channels, ``n = S / 512`` latent frames.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Self

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from facevox.codecs.base import LatentDist, LatentStats, MonoAudioCodecMixin, require_files
from facevox.codecs.bigvgan import BIGVGAN_16K, BigVGANConfig, BigVGANVocoder
from facevox.codecs.mmaudio_vae import VAE_16K, MMAudioVAE, MMAudioVAEConfig
from facevox.io.atomic import atomic_path, atomic_write_json

CONFIG_FILE = "config.json"
VAE_FILE = "vae.safetensors"
VOCODER_FILE = "vocoder.safetensors"
STATS_FILE = "latent_stats.json"


class CheckpointError(ValueError):
    """A weights file does not match the architecture; the message names the file and the key."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class MelConfig:
    sample_rate: int = 16_000
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8_000.0


def check_state(module: nn.Module, shapes: dict[str, tuple[int, ...]], where: str) -> None:
    """Names and shapes of a checkpoint against ``module``; CheckpointError names the first misfit."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    bad = sorted(k for k in set(expected) & set(shapes) if expected[k] != tuple(shapes[k]))
    if missing:
        raise CheckpointError(f"{where}: missing key {missing[0]!r} ({len(missing)} missing in all)")
    if extra:
        raise CheckpointError(f"{where}: unexpected key {extra[0]!r} ({len(extra)} unexpected in all)")
    if bad:
        k = bad[0]
        raise CheckpointError(f"{where}: key {k!r} has shape {tuple(shapes[k])}, expected {expected[k]}")


def load_strict(module: nn.Module, path: Path) -> None:
    """Fill ``module`` (usually built on the meta device) from a safetensors file, strictly."""
    with safe_open(str(path), framework="pt") as fh:
        shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
    check_state(module, shapes, str(path))
    module.load_state_dict(load_file(str(path)), strict=True, assign=True)


class MMAudioCodec(MonoAudioCodecMixin, nn.Module):
    """Frozen mel VAE + vocoder: ``encode`` (B, 1, S) -> LatentDist (B, C, S / 512); ``decode`` back."""

    vae: MMAudioVAE
    mel_fb: torch.Tensor  # buffers
    window: torch.Tensor

    def __init__(
        self,
        vae: MMAudioVAE,
        vocoder: BigVGANVocoder,
        mel: MelConfig | None = None,
        stats: LatentStats | None = None,
    ) -> None:
        super().__init__()
        import librosa

        self.mel_cfg = mel or MelConfig()
        m = self.mel_cfg
        if vae.cfg.data_dim != m.n_mels or vocoder.cfg.num_mels != m.n_mels:
            raise ValueError(f"VAE ({vae.cfg.data_dim}) and vocoder ({vocoder.cfg.num_mels}) mel bins differ")
        if vocoder.cfg.hop != m.hop:
            raise ValueError(f"vocoder hop {vocoder.cfg.hop} != mel hop {m.hop}")
        self.vae = vae.eval().requires_grad_(False)
        self.vocoder = vocoder.eval().requires_grad_(False)
        fb = librosa.filters.mel(sr=m.sample_rate, n_fft=m.n_fft, n_mels=m.n_mels, fmin=m.fmin, fmax=m.fmax)
        self.register_buffer("mel_fb", torch.from_numpy(fb).float(), persistent=False)  # (M, n_fft/2+1)
        self.register_buffer("window", torch.hann_window(m.n_fft), persistent=False)
        self.stats = stats or LatentStats.identity(self.latent_channels)

    @classmethod
    def from_config(
        cls,
        vae: MMAudioVAEConfig = VAE_16K,
        vocoder: BigVGANConfig = BIGVGAN_16K,
        mel: MelConfig | None = None,
    ) -> Self:
        """Random weights (tests, or a meta build under ``torch.device('meta')``)."""
        return cls(MMAudioVAE(vae), BigVGANVocoder(vocoder), mel)

    # ---- geometry
    @property
    def latent_channels(self) -> int:
        return self.vae.cfg.embed_dim

    @property
    def time_stride(self) -> int:
        """Samples per latent frame (512 at 16 kHz)."""
        return self.mel_cfg.hop * self.vae.cfg.time_downsample

    @property
    def sample_rate(self) -> int:
        return self.mel_cfg.sample_rate

    # ---- coding
    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, 1, S) -> (B, M, ceil(S / 512) * 2) log10-mel (S zero-padded to a whole latent frame)."""
        if audio.ndim != 3 or audio.shape[1] != 1:
            raise ValueError(f"audio must be (B, 1, S), got {tuple(audio.shape)}")
        m = self.mel_cfg
        samples = self.latent_frames(audio.shape[-1]) * self.time_stride
        wav = F.pad(audio[:, 0].clamp(-1, 1), (0, samples - audio.shape[-1]))
        side = (m.n_fft - m.hop) // 2
        wav = F.pad(wav[:, None], (side, side), mode="reflect")[:, 0]
        spec = torch.stft(
            wav, m.n_fft, m.hop, window=self.window.to(wav.dtype), center=False, return_complex=True
        )
        mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)  # (B, n_fft/2+1, F)
        return torch.log10((self.mel_fb.to(mag.dtype) @ mag).clamp_min(1e-5))

    def raw_posterior(self, audio: torch.Tensor) -> LatentDist:
        """(B, 1, S) at 16 kHz -> un-normalised posterior of (B, C, ceil(S / 512)); ``encode`` (the
        mixin) normalises it, ``decode_mel`` maps normalised latents to (B, M, 2n) log10-mels."""
        mean, std = self.vae.encode(self.log_mel(audio))
        return LatentDist(mean=mean, std=std)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised (B, C, n) -> waveform (B, 1, n * 512) through the vocoder."""
        return self.vocoder(self.decode_mel(z))

    # ---- files
    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / CONFIG_FILE, config_dict(self.vae.cfg, self.vocoder.cfg, self.mel_cfg))
        for name, module in ((VAE_FILE, self.vae), (VOCODER_FILE, self.vocoder)):
            with atomic_path(folder / name) as tmp:
                save_file(
                    {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}, str(tmp)
                )
        atomic_write_json(folder / STATS_FILE, {"mean": list(self.stats.mean), "std": list(self.stats.std)})
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype = torch.float32) -> Self:
        """Build on the meta device from ``config.json``, then load both files strictly."""
        folder = require_files(folder, [CONFIG_FILE, VAE_FILE, VOCODER_FILE], "MMAudio codec")
        vae_cfg, voc_cfg, mel_cfg = read_config(folder / CONFIG_FILE)
        with torch.device("meta"):
            vae, vocoder = MMAudioVAE(vae_cfg), BigVGANVocoder(voc_cfg)
        load_strict(vae, folder / VAE_FILE)
        load_strict(vocoder, folder / VOCODER_FILE)
        stats = None
        if (folder / STATS_FILE).is_file():
            s = json.loads((folder / STATS_FILE).read_text())
            stats = LatentStats(mean=tuple(s["mean"]), std=tuple(s["std"]))
        return cls(vae.to(dtype), vocoder.to(dtype), mel_cfg, stats)


def config_dict(vae: MMAudioVAEConfig, vocoder: BigVGANConfig, mel: MelConfig) -> dict[str, Any]:
    return {
        "_class_name": MMAudioCodec.__name__,
        "vae": dataclasses.asdict(vae),
        "vocoder": dataclasses.asdict(vocoder),
        "mel": dataclasses.asdict(mel),
    }


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    return {
        k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
        for k, v in d.items()
    }


def read_config(path: Path) -> tuple[MMAudioVAEConfig, BigVGANConfig, MelConfig]:
    """The three configs of a facevox MMAudio folder; ValueError on another class or unknown fields."""
    d = json.loads(path.read_text())
    if d.get("_class_name") != MMAudioCodec.__name__:
        raise ValueError(f"{path} does not describe an {MMAudioCodec.__name__}")
    try:
        return (
            MMAudioVAEConfig(**_tuples(d["vae"])),
            BigVGANConfig(**_tuples(d["vocoder"])),
            MelConfig(**d["mel"]),
        )
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: bad MMAudio codec config ({e})") from e
