"""The release's Wan2.2 video VAE through facevox's WanVideoCodec: real config on the meta device
(geometry, parameter count) and a reduced-width build of the same family saved / loaded strictly."""

from __future__ import annotations

from pathlib import Path

import torch

from facevox.codecs.video import WanVideoCodec
from facevox.release.wan22 import wan22_vae_config


def test_wan22_vae_real_config_geometry() -> None:
    from diffusers import AutoencoderKLWan

    with torch.device("meta"):
        codec = WanVideoCodec(AutoencoderKLWan(**wan22_vae_config()))
    assert codec.latent_channels == 48
    # the release's clip: 121 frames at 960x960 -> 31 latent frames of 60x60
    assert codec.latent_shape(121, 960, 960) == (48, 31, 60, 60)
    params = sum(p.numel() for p in codec.vae.parameters())
    assert 6.0e8 < params < 7.5e8, params  # ~0.7 B: 1.4 GB in bf16 (docs/release.md)


def test_wan22_vae_family_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    codec = WanVideoCodec.from_config(wan22_vae_config(base_dim=8, decoder_base_dim=8)).eval()
    codec.save_pretrained(tmp_path)
    assert list(tmp_path.glob("*.safetensors"))
    loaded = WanVideoCodec.from_pretrained(tmp_path)
    ref = codec.vae.state_dict()
    got = loaded.vae.state_dict()
    assert set(ref) == set(got) and all(torch.equal(ref[k], got[k]) for k in ref)
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    z = loaded.encode(video).mean
    assert z.shape == (1, 48, 2, 2, 2)
    assert torch.equal(z, codec.encode(video).mean)
    assert loaded.decode(z).shape == (1, 3, 5, 32, 32)
