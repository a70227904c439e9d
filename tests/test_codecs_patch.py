"""The patch PCA video codec: closed-form fit, Wan-like geometry, the one-frame path, files, loading by
kind, fingerprints, and the train-codec recipe path (fit + refiner, resumable)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from facevox.cli import main
from facevox.codecs import Codec, CodecFilesError
from facevox.codecs.loading import codec_fingerprint, load_video_codec, video_codec_kind
from facevox.codecs.patch_pca import PatchCodecConfig, PatchPCAVideoCodec
from facevox.codecs.training import load_trained
from facevox.codecs.video import WanVideoCodec, tiny_wan_config
from facevox.io.media import write_av


def _clips(n: int = 4, frames: int = 9, h: int = 32, w: int = 48, seed: int = 0) -> list[torch.Tensor]:
    """Smooth moving colour patterns in [-1, 1], each (1, 3, T, H, W)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    out = []
    for _ in range(n):
        a, b, ph = (
            torch.rand(3, generator=g) * 6,
            torch.rand(3, generator=g) * 4,
            torch.rand(3, generator=g) * 6,
        )
        clip = torch.stack(
            [
                torch.stack([torch.sin(a[c] * xx + b[c] * yy + ph[c] + 0.2 * t) for c in range(3)])
                for t in range(frames)
            ],
            dim=1,
        )
        out.append(clip.unsqueeze(0) * 0.8)
    return out


def _fitted(channels: int = 12, refiner: int = 0) -> PatchPCAVideoCodec:
    codec = PatchPCAVideoCodec(PatchCodecConfig(latent_channels=channels, refiner_width=refiner))
    codec.fit(_clips())
    return codec


def test_fit_orders_channels_by_energy_and_reconstructs_what_it_was_fitted_on():
    codec = _fitted()
    assert isinstance(codec, Codec)
    basis = codec.basis
    torch.testing.assert_close(basis @ basis.T, torch.eye(12), atol=1e-4, rtol=0)
    raw = torch.cat([codec.raw_posterior(c).mean for c in _clips()])  # the clips it was fitted on
    energy = raw.pow(2).mean(dim=(0, 2, 3, 4))
    assert bool((energy[:-1] >= energy[1:] * 0.999).all()), energy  # channels ordered by variance
    x = _clips(1, seed=5)[0]  # a clip of the same family, not fitted on
    y = codec.decode(codec.encode(x).mean)
    assert y.shape == x.shape
    mse = float((y - x).pow(2).mean())
    assert 10 * math.log10(4 / mse) > 30, mse  # PSNR over the [-1, 1] range
    # fewer channels reconstruct worse: the fit is a real projection, not a copy
    few = _fitted(channels=2)
    assert float((few.decode(few.encode(x).mean) - x).pow(2).mean()) > 2 * mse


def test_geometry_matches_the_causal_layout_and_one_frame_images_take_the_same_path():
    codec = _fitted()
    assert (codec.time_stride, codec.space_stride, codec.latent_channels) == (4, 8, 12)
    x = _clips(1, frames=9)[0]
    z = codec.encode(x).mean
    assert z.shape == (1, *codec.latent_shape(9, 32, 48)) == (1, 12, 3, 4, 6)
    image = codec.encode_image(x[:, :, 0]).mean
    assert image.shape == (1, 12, 1, 4, 6)
    torch.testing.assert_close(image[:, :, 0], z[:, :, 0])  # frame 0 is coded alone, as an image is
    assert codec.decode(image).shape == (1, 3, 1, 32, 48)
    with pytest.raises(ValueError, match="1 \\+ k"):
        codec.encode(x[:, :, :4])
    with pytest.raises(ValueError, match="multiple of 8"):
        codec.encode(x[..., :30])
    with pytest.raises(ValueError, match="latents must be"):
        codec.decode(z[:, :5])
    with pytest.raises(ValueError, match="needs more patches"):
        PatchPCAVideoCodec(PatchCodecConfig()).fit([x[:, :, :1, :8, :8]])


def test_stats_whiten_the_latents():
    from facevox.codecs.base import LatentStats

    codec = _fitted()
    raw = torch.cat([codec.raw_posterior(c).mean for c in _clips(6, seed=2)])
    codec.set_stats(LatentStats.measure(raw))
    z = torch.cat([codec.encode(c).mean for c in _clips(6, seed=2)])
    std = z.transpose(0, 1).reshape(12, -1).std(1)
    torch.testing.assert_close(std, torch.ones(12), atol=1e-3, rtol=0)
    x = _clips(1, seed=2)[0]
    torch.testing.assert_close(
        codec.linear_decode(codec.encode(x).mean),
        codec.decode(codec.encode(x).mean).clamp(-1, 1),
        atol=1e-5,
        rtol=0,
    )


def test_shared_scaling_keeps_the_channels_energies_with_unit_variance_overall():
    from facevox.codecs.base import LatentStats

    codec = _fitted()
    raw = torch.cat([codec.raw_posterior(c).mean for c in _clips(6, seed=2)])
    per_channel = LatentStats.measure(raw)
    shared = per_channel.shared()
    assert shared.mean == per_channel.mean and len(set(shared.std)) == 1
    codec.set_stats(shared)
    z = torch.cat([codec.encode(c).mean for c in _clips(6, seed=2)])
    assert abs(float(z.pow(2).mean()) - 1.0) < 0.05  # unit variance overall
    std = z.transpose(0, 1).reshape(12, -1).std(1)
    assert float(std[0] / std[-1]) > 5  # the leading channel keeps its energy over the weakest
    with pytest.raises(ValueError, match="latent_scaling"):
        PatchCodecConfig(latent_scaling="whiten")


def test_save_load_round_trip_loader_by_kind_and_fingerprint(tmp_path):
    codec = _fitted(refiner=8)
    torch.nn.init.normal_(codec.refiner.out.weight, std=0.01)  # a refiner that does something
    codec.save_pretrained(tmp_path / "pca")
    loaded = load_video_codec(tmp_path / "pca")
    assert isinstance(loaded, PatchPCAVideoCodec)
    x = _clips(1)[0]
    torch.testing.assert_close(loaded.decode(loaded.encode(x).mean), codec.decode(codec.encode(x).mean))
    assert video_codec_kind(tmp_path / "pca") == "PatchPCAVideoCodec"
    torch.manual_seed(0)
    WanVideoCodec.from_config(tiny_wan_config(base_dim=8, z_dim=4)).save_pretrained(tmp_path / "wan")
    assert isinstance(load_video_codec(tmp_path / "wan"), WanVideoCodec)
    # fingerprints: stable, and they tell codecs apart
    assert codec_fingerprint(tmp_path / "pca") == codec_fingerprint(tmp_path / "pca")
    assert codec_fingerprint(tmp_path / "pca") != codec_fingerprint(tmp_path / "wan")
    # a decoder fine-tune keeps the latents, so the fingerprint; a refit of the encoder does not
    before = codec_fingerprint(tmp_path / "pca")
    torch.nn.init.normal_(codec.refiner.out.weight, std=0.02)
    codec.save_pretrained(tmp_path / "pca")
    assert codec_fingerprint(tmp_path / "pca") == before
    codec.fit(_clips(seed=9))
    codec.save_pretrained(tmp_path / "pca")
    assert codec_fingerprint(tmp_path / "pca") != before
    # a missing tensor is refused (strict load), and so is a folder of another kind
    from safetensors.torch import load_file, save_file

    state = load_file(str(tmp_path / "pca" / "model.safetensors"))
    del state["basis"]
    save_file(state, str(tmp_path / "pca" / "model.safetensors"))
    with pytest.raises(RuntimeError, match="basis"):
        load_video_codec(tmp_path / "pca")
    with pytest.raises(ValueError, match="not a PatchPCAVideoCodec"):
        PatchPCAVideoCodec.from_pretrained(tmp_path / "wan")
    cfg = json.loads((tmp_path / "wan" / "config.json").read_text())
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text(json.dumps({**cfg, "_class_name": "SomethingElse"}))
    with pytest.raises(CodecFilesError, match="SomethingElse"):
        load_video_codec(tmp_path / "odd")


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pca-clips")
    for i in range(2):
        t = np.arange(12)[:, None, None, None]
        yy, xx = (g[..., None] for g in np.mgrid[0:48, 0:64])
        video = 127 + 100 * np.sin(0.2 * xx + 0.1 * yy + 0.5 * t + i + np.arange(3))
        write_av(folder / f"c{i}.mp4", video.astype(np.uint8), 25.0, None, 16000)
    return folder


PCA = [
    "video.arch=pca",
    "video.z_dim=8",
    "video.frames=5",
    "video.size=16",
    "video.short_side=24",
    "video.fit_batches=4",
    "video.refiner_width=4",
    "batch_size=2",
    "stats_batches=2",
    "threads=1",
    "checkpoint_every=1",
    "log_every=1",
]


def test_train_codec_fits_then_trains_the_refiner_and_resumes_exactly(clip_folder, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    cmd = ["train-codec", "video", str(clip_folder)]
    assert main([*cmd, "--out", str(straight), *PCA, "steps=3"]) == 0
    assert main([*cmd, "--out", str(resumed), *PCA, "steps=1"]) == 0
    assert main([*cmd, "--out", str(resumed), *PCA, "steps=3"]) == 0
    a, b = load_trained(straight), load_trained(resumed)
    assert isinstance(a, PatchPCAVideoCodec)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, msg=k)
    assert a.stats == b.stats
    assert len(set(a.stats.std)) == 1  # the default scaling: shared
    fit = json.loads((straight / "fit.json").read_text())
    assert fit["patches"] > 0 and 0 < fit["explained_variance"] <= 1
    assert float(a.refiner.out.weight.abs().sum()) > 0  # the refiner trained (it starts at zero)
    x = torch.zeros(1, 3, 5, 16, 16)
    assert a.encode(x).mean.shape == (1, 8, 2, 2, 2)


def test_token_block_perturbation_is_constant_over_each_token_and_leaves_half_the_samples_clean():
    from facevox.codecs.training import VideoCodecConfig, perturb_latents

    z = torch.randn(64, 4, 2, 6, 8)
    gen = torch.Generator().manual_seed(0)
    v = VideoCodecConfig(arch="pca", latent_noise=0.0, latent_block_noise=0.5, latent_block=2)
    d = perturb_latents(z, v, gen) - z
    clean = d.flatten(1).abs().amax(1) == 0
    assert 16 < int(clean.sum()) < 48  # about half untouched
    blocks = d.unfold(3, 2, 2).unfold(4, 2, 2)  # (B, C, t, 3, 4, 2, 2): one token's cells last
    assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks), atol=1e-6)  # one offset per token
    assert float(d[~clean].std()) > 0.05
    # off by default: the white-noise draws are those of a run without it
    w = VideoCodecConfig(arch="pca", latent_noise=0.5)
    a = perturb_latents(z, w, torch.Generator().manual_seed(1))
    b = perturb_latents(z, dataclasses.replace(w, latent_block_noise=0.0), torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
