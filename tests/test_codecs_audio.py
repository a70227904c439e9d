"""Oobleck audio codec at 16 kHz: tiny round trips, padding, stats file, errors, brief training."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from facevox.codecs import Codec, CodecFilesError, LatentStats, OobleckAudioCodec, tiny_oobleck_config
from facevox.codecs.losses import gaussian_kl, multires_stft_loss


def _tiny(seed: int = 0) -> OobleckAudioCodec:
    torch.manual_seed(seed)
    return OobleckAudioCodec.from_config(
        tiny_oobleck_config(
            hidden=8, latent_channels=4, downsampling_ratios=(2, 4, 8), channel_multiples=(1, 2, 4)
        )
    )


def _tone(samples: int, batch: int = 1, sr: int = 16_000) -> torch.Tensor:
    t = torch.arange(samples) / sr
    waves = [
        0.5 * torch.sin(2 * math.pi * (180 + 60 * b) * t) * (0.6 + 0.4 * torch.sin(9 * t))
        for b in range(batch)
    ]
    return torch.stack(waves).unsqueeze(1)  # (B, 1, S)


def test_default_tiny_geometry_matches_the_tiny_alignment():
    from facevox.alignment import PRESETS

    cfg = tiny_oobleck_config()
    hop = math.prod(cfg["downsampling_ratios"])
    assert hop == PRESETS["tiny"].audio_hop == 640
    assert cfg["encoder_hidden_size"] == 2 * cfg["decoder_input_channels"]


def test_round_trip_shapes_and_padding():
    codec = _tiny()
    assert isinstance(codec, Codec)
    assert (codec.time_stride, codec.latent_channels, codec.sample_rate) == (64, 4, 16_000)
    x = _tone(1000, batch=2)  # not a multiple of the hop: padded up to 16 * 64
    dist = codec.encode(x)
    assert dist.mean.shape == (2, 4, 16) and codec.latent_frames(1000) == 16
    assert codec.decode(dist.mean).shape == (2, 1, 1024)
    with pytest.raises(ValueError, match="audio must be"):
        codec.encode(torch.zeros(2, 2, 1024))
    with pytest.raises(ValueError, match="latents must be"):
        codec.decode(torch.zeros(1, 5, 8))


def test_stats_file_round_trip(tmp_path):
    codec = _tiny()
    stats = LatentStats(mean=(0.1, 0.2, 0.3, 0.4), std=(1.0, 2.0, 3.0, 4.0))
    codec.set_stats(stats)
    codec.save_pretrained(tmp_path)
    assert (tmp_path / "latent_stats.json").is_file()
    loaded = OobleckAudioCodec.from_pretrained(tmp_path)
    assert loaded.stats == stats
    x = _tone(640)
    torch.testing.assert_close(loaded.encode(x).mean, codec.encode(x).mean)
    raw = codec.raw_posterior(x).mean.detach()
    torch.testing.assert_close(codec.encode(x).mean[:, 3], (raw[:, 3] - 0.4) / 4.0)


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(CodecFilesError, match="does not exist"):
        OobleckAudioCodec.from_pretrained(tmp_path / "absent")


def test_stft_loss_is_zero_on_identity_and_positive_otherwise():
    x = _tone(4096)
    assert float(multires_stft_loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(multires_stft_loss(0.5 * x, x)) > 0.1


def test_brief_training_reconstructs_better_than_init():
    codec = _tiny(seed=2)
    vae = codec.vae.train().requires_grad_(True)
    x = _tone(2048, batch=2)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)

    def error() -> float:
        with torch.no_grad():
            return float(multires_stft_loss(vae.decode(codec.raw_posterior(x).mean).sample, x))

    before = error()
    for _ in range(30):
        post = codec.raw_posterior(x)
        y = vae.decode(post.mean).sample
        loss = multires_stft_loss(y, x) + (y - x).abs().mean() + 1e-4 * gaussian_kl(post)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = error()
    assert after < 0.7 * before, (before, after)


def _mel_codec(seed: int = 0):
    from facevox.codecs.mel import MelAudioCodec, MelCodecConfig

    torch.manual_seed(seed)
    return MelAudioCodec(MelCodecConfig(width=16, latent_channels=4, griffin_lim_iters=24))


def test_mel_codec_shapes_and_save_load(tmp_path):
    from facevox.codecs.mel import MelAudioCodec

    codec = _mel_codec()
    assert isinstance(codec, Codec)
    assert (codec.time_stride, codec.latent_channels, codec.sample_rate) == (640, 4, 16_000)
    x = _tone(1000, batch=2)
    dist = codec.encode(x)
    assert dist.mean.shape == (2, 4, 2)
    assert codec.decode_mel(dist.mean).shape == (2, 80, 8)
    assert codec.decode(dist.mean).shape == (2, 1, 1280)
    codec.set_stats(LatentStats(mean=(0.0, 1.0, 2.0, 3.0), std=(1.0, 1.0, 2.0, 2.0)))
    codec.save_pretrained(tmp_path)
    loaded = MelAudioCodec.from_pretrained(tmp_path)
    assert loaded.stats == codec.stats
    torch.testing.assert_close(loaded.encode(x).mean, codec.encode(x).mean)
    with pytest.raises(CodecFilesError, match="model.safetensors"):
        (tmp_path / "model.safetensors").unlink()
        MelAudioCodec.from_pretrained(tmp_path)


def test_griffin_lim_inverts_a_mel_spectrogram():
    codec = _mel_codec()
    x = _tone(6400)
    mel = codec.log_mel(x)
    y = codec.griffin_lim(mel, torch.Generator().manual_seed(0))
    assert y.shape == x.shape

    def convergence(codec_) -> float:  # noqa: ANN001
        """Spectral convergence of the re-analysed mel of Griffin-Lim's waveform against ``mel``."""
        y = codec_.griffin_lim(mel, torch.Generator().manual_seed(0))
        return float(torch.linalg.norm(codec_.log_mel(y).exp() - mel.exp()) / torch.linalg.norm(mel.exp()))

    random_phase = _mel_codec()
    random_phase.cfg = dataclasses.replace(random_phase.cfg, griffin_lim_iters=0)
    sc, sc_random = convergence(codec), convergence(random_phase)
    assert sc < 0.25 and sc < 0.5 * sc_random, (sc, sc_random)
