"""Video codec: a whitened linear (PCA) patch code with a small convolutional decoder on top.

The encoder is closed form: every ``time_stride x space_stride x space_stride`` RGB patch (768
numbers at 4 x 8 x 8) is projected on the leading ``C`` principal directions of the training
patches, fitted in one pass (a covariance and one eigendecomposition). Channels come ordered by
energy, and :class:`LatentStats` normalise them to unit variance, so the DiT sees whitened inputs.

The decoder is the transposed projection (a linear, patch-local synthesis) followed by a residual
2D conv net (``refiner``) trained on noised latents: a linear patch decoder renders an imperfect,
generated latent as visible blocks; the refiner learns to turn such latents back into images.

Geometry is the Wan causal layout, so the same Alignment and models apply: a clip of
``T = 1 + k * time_stride`` frames gives ``1 + k`` latent frames; frame 0 is coded alone (repeated
``time_stride`` times to fill a patch, its decode the mean of the patch's frames), and a one-frame
image (a face reference) takes that same path.

Shapes (letters): ``B`` batch, ``T`` pixel frames, ``H``/``W`` pixels, ``C`` latent channels,
``t`` latent frames, ``h``/``w`` latent cells, ``P = time_stride * space_stride**2 * 3`` patch size.
Pixels are RGB floats in [-1, 1].
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import torch
from einops import rearrange
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from facevox.codecs.base import LatentDist, LatentStats, require_files
from facevox.io.atomic import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

CLASS_NAME = "PatchPCAVideoCodec"
WEIGHTS = "model.safetensors"


@dataclass(frozen=True, kw_only=True)
class PatchCodecConfig:
    """Geometry and decoder size of a :class:`PatchPCAVideoCodec`."""

    latent_channels: int = 16  # principal directions kept per patch
    time_stride: int = 4  # frames per patch (after frame 0)
    space_stride: int = 8  # pixels per patch side
    refiner_width: int = 32  # conv width of the decoder's refiner; 0 = linear decode only
    refiner_dilations: tuple[int, ...] = (1, 2, 4, 2, 1)  # one 3x3 conv each (receptive field 21 px)
    # "shared": one scale for all channels (unit variance overall, the channels' energies kept: the
    # leading, spatially smooth ones dominate, as in pixel space); "channel": each channel whitened
    # to unit variance (measured: the 16 weakest, nearly white channels then look like noise to the
    # DiT, and a tiny model never separates them: docs/results.md)
    latent_scaling: str = "shared"

    def __post_init__(self) -> None:
        patch = self.patch_size
        if not 0 < self.latent_channels <= patch:
            raise ValueError(f"latent_channels must be in [1, {patch}], got {self.latent_channels}")
        if self.time_stride < 1 or self.space_stride < 1:
            raise ValueError(f"strides must be >= 1, got {self.time_stride}, {self.space_stride}")
        if self.refiner_width < 0:
            raise ValueError(f"refiner_width must be >= 0, got {self.refiner_width}")
        if self.latent_scaling not in ("shared", "channel"):
            raise ValueError(f"latent_scaling must be 'shared' or 'channel', got {self.latent_scaling!r}")

    @property
    def patch_size(self) -> int:
        return self.time_stride * self.space_stride**2 * 3


class Refiner(nn.Module):
    """Residual per-frame conv net: (N, 3, H, W) -> (N, 3, H, W); its last conv starts at zero, so an
    untrained refiner is the identity."""

    def __init__(self, width: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = 3
        for d in dilations:
            layers += [nn.Conv2d(ch, width, 3, padding=d, dilation=d), nn.SiLU()]
            ch = width
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(ch, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]  # Conv2d(bias=True) has a bias

    def forward(self, x: Tensor) -> Tensor:
        return x + self.out(self.body(x))


class PatchPCAVideoCodec(nn.Module):
    """Frozen at use: ``encode`` (B, 3, T, H, W) -> normalised LatentDist (B, C, t, h, w)."""

    patch_mean: Tensor  # (P,) buffer
    basis: Tensor  # (C, P) buffer, orthonormal rows

    def __init__(self, config: PatchCodecConfig) -> None:
        super().__init__()
        self.config = config
        P, C = config.patch_size, config.latent_channels
        self.register_buffer("patch_mean", torch.zeros(P))  # (P,)
        self.register_buffer("basis", torch.zeros(C, P))  # (C, P) orthonormal rows
        self.refiner = (
            Refiner(config.refiner_width, config.refiner_dilations) if config.refiner_width else None
        )
        self.stats = LatentStats.identity(C)

    # ---- geometry (the Codec protocol and what encode / the pipeline read)
    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @property
    def time_stride(self) -> int:
        return self.config.time_stride

    @property
    def space_stride(self) -> int:
        return self.config.space_stride

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """``(C, t, h, w)`` for a clip of ``frames`` x ``height`` x ``width``; ValueError if it does not fit."""
        ts, s = self.time_stride, self.space_stride
        if frames < 1 or (frames - 1) % ts:
            raise ValueError(f"frames={frames} must be 1 + k * {ts} (frame 0 is coded alone)")
        if height % s or width % s:
            raise ValueError(f"size {height}x{width} must be a multiple of {s}")
        return self.latent_channels, 1 + (frames - 1) // ts, height // s, width // s

    def set_stats(self, stats: LatentStats) -> None:
        if len(stats.mean) != self.latent_channels:
            raise ValueError(f"stats have {len(stats.mean)} channels, codec has {self.latent_channels}")
        self.stats = stats

    # ---- patches
    def patches(self, video: Tensor) -> Tensor:
        """(B, 3, T, H, W) -> (B, t, h, w, P): frame 0 repeated to a whole patch, then groups of frames."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"video must be (B, 3, T, H, W), got {tuple(video.shape)}")
        self.latent_shape(*video.shape[2:])
        ts, s = self.time_stride, self.space_stride
        first = video[:, :, :1].expand(-1, -1, ts, -1, -1)
        grouped = torch.cat([first, video[:, :, 1:]], dim=2)
        return rearrange(grouped, "b c (t pt) (h ph) (w pw) -> b t h w (pt ph pw c)", pt=ts, ph=s, pw=s)

    def unpatch(self, p: Tensor) -> Tensor:
        """(B, t, h, w, P) -> (B, 3, 1 + (t - 1) * time_stride, H, W); frame 0 = its patch's mean frame."""
        ts, s = self.time_stride, self.space_stride
        x = rearrange(p, "b t h w (pt ph pw c) -> b c (t pt) (h ph) (w pw)", pt=ts, ph=s, pw=s, c=3)
        return torch.cat([x[:, :, :ts].mean(2, keepdim=True), x[:, :, ts:]], dim=2)

    # ---- coding
    def raw_posterior(self, video: Tensor) -> LatentDist:
        """Un-normalised projection coefficients (a point posterior: std 0)."""
        p = self.patches(video.to(self.basis.dtype))
        z = torch.einsum("bthwp,cp->bcthw", p - self.patch_mean, self.basis)
        return LatentDist(mean=z, std=torch.zeros_like(z))

    @torch.no_grad()
    def encode(self, video: Tensor) -> LatentDist:
        """(B, 3, T, H, W) in [-1, 1] -> normalised LatentDist of (B, C, t, h, w)."""
        raw = self.raw_posterior(video)
        return LatentDist(mean=self.stats.normalise(raw.mean), std=torch.zeros_like(raw.mean))

    @torch.no_grad()
    def encode_image(self, image: Tensor) -> LatentDist:
        """A face reference (B, 3, H, W) as a single-frame clip -> LatentDist of (B, C, 1, h, w)."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
        return self.encode(image.unsqueeze(2))

    def linear_decode(self, z: Tensor) -> Tensor:
        """Normalised (B, C, t, h, w) -> pixels through the transposed projection alone."""
        if z.ndim != 5 or z.shape[1] != self.latent_channels:
            raise ValueError(f"latents must be (B, {self.latent_channels}, t, h, w), got {tuple(z.shape)}")
        raw = self.stats.denormalise(z.to(self.basis.dtype))
        p = torch.einsum("bcthw,cp->bthwp", raw, self.basis) + self.patch_mean
        return self.unpatch(p)

    def decode_with_grad(self, z: Tensor) -> Tensor:
        """:meth:`decode` with gradients into the refiner (training)."""
        x = self.linear_decode(z)
        if self.refiner is None:
            return x
        B = x.shape[0]
        frames = rearrange(x, "b c t h w -> (b t) c h w")
        return rearrange(self.refiner(frames), "(b t) c h w -> b c t h w", b=B)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Normalised (B, C, t, h, w) -> (B, 3, 1 + (t - 1) * time_stride, H, W) in [-1, 1]."""
        return self.decode_with_grad(z).clamp(-1, 1)

    # ---- fitting (closed form)
    @torch.no_grad()
    def fit(self, batches: Any) -> dict[str, float]:
        """Fit mean and basis on an iterable of clips (B, 3, T, H, W) in [-1, 1]; returns the share of
        the patch variance the kept channels explain. Statistics are measured afterwards by the caller
        (:meth:`set_stats`)."""
        P = self.config.patch_size
        total = torch.zeros(P, dtype=torch.float64)
        outer = torch.zeros(P, P, dtype=torch.float64)
        n = 0
        for clip in batches:
            p = self.patches(clip.float()).reshape(-1, P).double()
            total += p.sum(0)
            outer += p.T @ p
            n += p.shape[0]
        if n <= self.latent_channels:
            raise ValueError(
                f"fitting {self.latent_channels} channels needs more patches than that, got {n}: give more clips"
            )
        mean = total / n
        cov = outer / n - torch.outer(mean, mean)
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        order = torch.argsort(evals, descending=True)[: self.latent_channels]
        self.patch_mean.copy_(mean.float())
        self.basis.copy_(evecs[:, order].T.float())
        explained = float(evals[order].sum() / evals.clamp_min(0).sum())
        return {"patches": float(n), "explained_variance": explained}

    # ---- files
    def save_pretrained(self, folder: str | Path) -> Path:
        """``config.json`` (class, geometry, latent statistics) and ``model.safetensors``, atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(folder / WEIGHTS) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt"})
        cfg = {"_class_name": CLASS_NAME, **asdict(self.config)}
        cfg["refiner_dilations"] = list(self.config.refiner_dilations)
        cfg["latents_mean"], cfg["latents_std"] = list(self.stats.mean), list(self.stats.std)
        atomic_write_json(folder / "config.json", cfg)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> Self:
        folder = require_files(folder, ["config.json"], "patch PCA video codec")
        raw = json.loads((folder / "config.json").read_text())
        if raw.get("_class_name") != CLASS_NAME:
            raise ValueError(f"{folder}/config.json is a {raw.get('_class_name')!r}, not a {CLASS_NAME}")
        require_files(folder, [WEIGHTS], "patch PCA video codec")
        fields = {k: v for k, v in raw.items() if k in PatchCodecConfig.__dataclass_fields__}
        fields["refiner_dilations"] = tuple(fields.get("refiner_dilations", ()))
        codec = cls(PatchCodecConfig(**fields))
        codec.load_state_dict(load_file(str(folder / WEIGHTS)), strict=True)
        codec.set_stats(LatentStats(mean=tuple(raw["latents_mean"]), std=tuple(raw["latents_std"])))
        log.info("loaded patch PCA video codec from %s (%d channels)", folder, codec.latent_channels)
        return codec.eval().requires_grad_(False)
