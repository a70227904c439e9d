"""MMAudio's 16 kHz audio codec (mel VAE + BigVGAN vocoder): the real configs map one-to-one onto the
committed checkpoint manifests on the meta device; a reduced-width build round-trips shapes and
safetensors strictly; damaged folders and the offline pickle conversion fail or succeed clearly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from facevox.codecs.base import CodecFilesError
from facevox.codecs.bigvgan import BigVGANConfig, BigVGANVocoder
from facevox.codecs.mmaudio import CheckpointError, MMAudioCodec, check_state
from facevox.codecs.mmaudio_convert import convert
from facevox.codecs.mmaudio_vae import MMAudioVAE, MMAudioVAEConfig
from facevox.models.manifests import load_manifest
from facevox.models.manifests.describe_codecs import describe_codec

SMALL_VAE = MMAudioVAEConfig(hidden_dim=8)
SMALL_VOCODER = BigVGANConfig(upsample_initial_channel=64)


def _small(seed: int = 0) -> MMAudioCodec:
    torch.manual_seed(seed)
    codec = MMAudioCodec.from_config(SMALL_VAE, SMALL_VOCODER)
    with torch.no_grad():  # non-trivial mel statistics and gains (the checkpoint's buffers)
        codec.vae.data_mean.normal_()
        codec.vae.data_std.uniform_(0.5, 1.5)
        codec.vae.encoder.learnable_gain.fill_(0.3)
    return codec.eval()


def test_committed_codec_manifests_match_the_description() -> None:
    for name in ("mmaudio_vae_16k", "bigvgan_16k"):
        assert load_manifest(name) == describe_codec(name), f"{name}.json is stale: rerun describe_codecs"


def test_real_configs_map_one_to_one_onto_the_checkpoints() -> None:
    with torch.device("meta"):
        codec = MMAudioCodec.from_config()
    for module, name, tensors, params in (
        (codec.vae, "mmaudio_vae_16k", 57, 171_657_378),
        (codec.vocoder, "bigvgan_16k", 784, 112_233_866),
    ):
        manifest = load_manifest(name)
        check_state(module, manifest, name)  # raises on any missing / extra / mis-shaped key
        assert len(manifest) == tensors and sum(math.prod(s) for s in manifest.values()) == params
        damaged = dict(manifest)
        key = sorted(damaged)[len(damaged) // 2]
        damaged[key] = (*damaged[key][:-1], damaged[key][-1] + 1) if damaged[key] else (2,)
        with pytest.raises(CheckpointError, match="has shape"):
            check_state(module, damaged, name)
    # the release's audio latents: 20 channels, one frame per 512 samples at 16 kHz
    assert (codec.latent_channels, codec.time_stride, codec.sample_rate) == (20, 512, 16_000)
    assert codec.latent_frames(round(121 / 24 * 16_000)) == 158  # ceil(80,667 / 512)
    assert codec.latent_frames(5 * 16_000) == 157


def test_reduced_codec_shapes_and_strict_round_trip(tmp_path: Path) -> None:
    codec = _small()
    audio = torch.sin(torch.linspace(0, 900, 8_000))[None, None] * 0.5  # 0.5 s at 16 kHz
    dist = codec.encode(audio)
    assert dist.mean.shape == dist.std.shape == (1, 20, 16)  # ceil(8000 / 512)
    assert codec.encode(audio[..., :1_000]).mean.shape == (1, 20, 2)
    assert codec.log_mel(audio).shape == (1, 80, 32)
    wav = codec.decode(dist.mean)
    assert wav.shape == (1, 1, 16 * 512) and wav.abs().max() <= 1
    folder = codec.save_pretrained(tmp_path / "mmaudio")
    loaded = MMAudioCodec.from_pretrained(folder)
    for a, b in ((codec.vae, loaded.vae), (codec.vocoder, loaded.vocoder)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(loaded.encode(audio).mean, dist.mean)
    assert torch.equal(loaded.decode(dist.mean), wav)
    with pytest.raises(ValueError, match="latents must be"):
        loaded.decode(dist.mean[:, :5])


@pytest.mark.parametrize("damage", ["missing", "extra", "no_file"])
def test_damaged_codec_folder_names_the_problem(tmp_path: Path, damage: str) -> None:
    folder = _small().save_pretrained(tmp_path / "mmaudio")
    if damage == "no_file":
        (folder / "vocoder.safetensors").unlink()
        with pytest.raises(CodecFilesError, match="vocoder.safetensors"):
            MMAudioCodec.from_pretrained(folder)
        return
    path = folder / ("vae.safetensors" if damage == "missing" else "vocoder.safetensors")
    state = load_file(str(path))
    if damage == "missing":
        del state["decoder.up.1.upsample.conv.weight"]
        expected = "missing key 'decoder.up.1.upsample.conv.weight'"
    else:
        state["conv_post.weight_g"] = torch.zeros(1, 1, 1)
        expected = "unexpected key 'conv_post.weight_g'"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=expected):
        MMAudioCodec.from_pretrained(folder)


def test_offline_conversion_of_the_public_pickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``facevox convert-mmaudio``: v1-16.pth (a state dict) + best_netG.pt ({"generator": ...}, legacy
    weight_g / weight_v spelling) -> a strict safetensors folder with the same function."""
    import facevox.codecs.mmaudio_convert as conv

    torch.manual_seed(1)
    vae, vocoder = MMAudioVAE(SMALL_VAE), BigVGANVocoder(SMALL_VOCODER)
    legacy = {
        k.replace(".parametrizations.weight.original0", ".weight_g").replace(
            ".parametrizations.weight.original1", ".weight_v"
        ): v
        for k, v in vocoder.state_dict().items()
    }
    assert any(k.endswith(".weight_g") for k in legacy)
    src = tmp_path / "ext_weights"
    src.mkdir()
    torch.save(vae.state_dict(), src / "v1-16.pth")
    torch.save({"generator": legacy}, src / "best_netG.pt")
    # the reduced sizes stand in for the real ones the converter builds
    monkeypatch.setattr(conv, "_architecture", lambda: (MMAudioVAE(SMALL_VAE), BigVGANVocoder(SMALL_VOCODER)))
    folder = convert(src / "v1-16.pth", src / "best_netG.pt", tmp_path / "out")
    codec = MMAudioCodec.from_pretrained(folder)
    mel = torch.randn(1, 80, 8)
    assert torch.equal(codec.vocoder(mel), vocoder.eval()(mel))
    z = torch.randn(1, 20, 4)
    assert torch.equal(codec.vae.decode(z), vae.decode(z))
    torch.save({"generator": {**legacy, "extra.bias": torch.zeros(1)}}, src / "best_netG.pt")
    with pytest.raises(CheckpointError, match="unexpected key 'extra.bias'"):
        convert(src / "v1-16.pth", src / "best_netG.pt", tmp_path / "out2")
    with pytest.raises(CodecFilesError, match="nope.pth"):
        convert(src / "nope.pth", src / "best_netG.pt", tmp_path / "out3")
