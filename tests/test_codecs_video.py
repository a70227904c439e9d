"""Wan video codec: tiny round trips, the full-size config from a local folder, stats, errors."""

from __future__ import annotations

import json

import pytest
import torch

from facevox.codecs import Codec, CodecFilesError, LatentStats, WanVideoCodec, tiny_wan_config
from facevox.codecs.losses import gaussian_kl


def _tiny(seed: int = 0, **kw) -> WanVideoCodec:
    torch.manual_seed(seed)
    return WanVideoCodec.from_config(tiny_wan_config(base_dim=8, z_dim=4, **kw))


def _clip(frames: int = 5, size: int = 32, seed: int = 0) -> torch.Tensor:
    """A smooth moving pattern in [-1, 1]: (1, 3, T, H, W)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    phase = torch.rand(3, generator=g) * 6
    frames_ = [
        torch.stack([torch.sin(4 * xx + 3 * yy + phase[c] + 0.3 * t) for c in range(3)])
        for t in range(frames)
    ]
    return torch.stack(frames_, dim=1).unsqueeze(0) * 0.8


def test_tiny_round_trip_shapes_and_strides():
    codec = _tiny()
    assert isinstance(codec, Codec)
    assert (codec.time_stride, codec.space_stride, codec.latent_channels) == (4, 8, 4)
    x = _clip(frames=9, size=32)
    dist = codec.encode(x)
    assert dist.mean.shape == (1, 4, 3, 4, 4) == (1, *codec.latent_shape(9, 32, 32))
    assert dist.std.shape == dist.mean.shape and bool((dist.std > 0).all())
    y = codec.decode(dist.mean)
    assert y.shape == x.shape
    assert float(y.abs().max()) <= 1.0
    image = codec.encode_image(x[:, :, 0])
    assert image.mean.shape == (1, 4, 1, 4, 4)
    # the first latent frame of a causal VAE depends on the first pixel frame only
    torch.testing.assert_close(image.mean[:, :, 0], dist.mean[:, :, 0], atol=1e-4, rtol=1e-4)


def test_three_level_config_halves_the_space_stride():
    codec = _tiny(dim_mult=(1, 2, 4))
    assert (codec.time_stride, codec.space_stride) == (4, 4)
    x = _clip(frames=9, size=32)
    assert codec.encode(x).mean.shape == (1, 4, 3, 8, 8) == (1, *codec.latent_shape(9, 32, 32))
    assert codec.decode(codec.encode(x).mean).shape == x.shape
    with pytest.raises(ValueError, match="dim_mult needs 4 entries"):
        tiny_wan_config(dim_mult=(1, 2))


def test_geometry_errors():
    codec = _tiny()
    with pytest.raises(ValueError, match="1 \\+ k"):
        codec.encode(torch.zeros(1, 3, 6, 32, 32))
    with pytest.raises(ValueError, match="multiple of 8"):
        codec.encode(torch.zeros(1, 3, 5, 36, 32))
    with pytest.raises(ValueError, match="latents must be"):
        codec.decode(torch.zeros(1, 7, 2, 4, 4))


def test_stats_normalise_and_save_load_round_trip(tmp_path):
    codec = _tiny()
    x = _clip()
    raw = codec.raw_posterior(x).mean.detach()
    stats = LatentStats(mean=(0.5, -1.0, 0.0, 2.0), std=(2.0, 0.5, 1.0, 4.0))
    codec.set_stats(stats)
    z = codec.encode(x).mean
    torch.testing.assert_close(z[:, 1], (raw[:, 1] + 1.0) / 0.5)
    codec.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["latents_std"] == [2.0, 0.5, 1.0, 4.0]
    loaded = WanVideoCodec.from_pretrained(tmp_path)
    assert loaded.stats == stats
    torch.testing.assert_close(loaded.encode(x).mean, z)
    torch.testing.assert_close(loaded.decode(z), codec.decode(z))


def test_full_size_wan21_config_loads_from_local_folder(tmp_path):
    """The real Wan 2.1 VAE geometry (diffusers defaults: base 96, z 16) with random weights."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    AutoencoderKLWan().save_pretrained(str(tmp_path / "vae"), safe_serialization=True)
    codec = WanVideoCodec.from_pretrained(tmp_path)  # a pipeline folder: picks up vae/
    assert (codec.latent_channels, codec.time_stride, codec.space_stride) == (16, 4, 8)
    assert codec.stats.mean[0] == pytest.approx(-0.7571)  # Wan's published latents_mean
    dist = codec.encode(torch.rand(1, 3, 5, 64, 64) * 2 - 1)
    assert dist.mean.shape == (1, 16, 2, 8, 8)
    assert bool(torch.isfinite(dist.mean).all())


def test_missing_folder_or_weights_names_the_folder(tmp_path):
    with pytest.raises(CodecFilesError, match=str(tmp_path / "nope")):
        WanVideoCodec.from_pretrained(tmp_path / "nope")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CodecFilesError, match="safetensors"):
        WanVideoCodec.from_pretrained(tmp_path)


def test_brief_training_reconstructs_better_than_init():
    codec = _tiny(seed=1)
    vae = codec.vae.train().requires_grad_(True)
    x = torch.cat([_clip(size=16, seed=0), _clip(size=16, seed=1)])
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)

    def error() -> float:
        with torch.no_grad():
            return float((vae.decode(codec.raw_posterior(x).mean).sample - x).abs().mean())

    before = error()
    for _ in range(25):
        post = codec.raw_posterior(x)
        loss = (vae.decode(post.mean).sample - x).abs().mean() + 1e-4 * gaussian_kl(post)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = error()
    assert after < 0.6 * before, (before, after)
