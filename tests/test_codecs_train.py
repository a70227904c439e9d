"""``facevox train-codec``: runs on a folder of mp4s, writes loadable weights, resumes exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from facevox.cli import main
from facevox.codecs.training import CHECKPOINT, load_trained
from facevox.io.media import write_av

TINY_VIDEO = [
    "video.base_dim=8",
    "video.z_dim=4",
    "video.size=16",
    "video.short_side=20",
    "batch_size=1",
    "stats_batches=1",
    "threads=1",
    "checkpoint_every=1",
    "log_every=1",
]
TINY_AUDIO = [
    "audio.arch=oobleck",
    "audio.hidden=8",
    "audio.latent_channels=4",
    "audio.downsampling_ratios=[2,4,8]",
    "audio.channel_multiples=[1,2,4]",
    "audio.segment_samples=1024",
    "batch_size=2",
    "stats_batches=1",
    "threads=1",
    "checkpoint_every=1",
    "log_every=1",
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for i in range(2):
        t = np.arange(12)[:, None, None, None]
        yy, xx = (g[..., None] for g in np.mgrid[0:48, 0:64])
        video = 127 + 100 * np.sin(0.2 * xx + 0.1 * yy + 0.5 * t + i + np.arange(3))
        audio = 0.3 * np.sin(2 * math.pi * (150 + 50 * i) * np.arange(8000) / 16000)
        audio = audio + 0.01 * rng.standard_normal(8000)
        write_av(folder / f"c{i}.mp4", video.astype(np.uint8), 25.0, audio.astype(np.float32), 16000)
    return folder


def test_video_training_writes_loadable_codec_and_resumes_exactly(clips, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    cmd = ["train-codec", "video", str(clips)]
    assert main([*cmd, "--out", str(straight), *TINY_VIDEO, "steps=3"]) == 0
    assert main([*cmd, "--out", str(resumed), *TINY_VIDEO, "steps=2"]) == 0
    assert main([*cmd, "--out", str(resumed), *TINY_VIDEO, "steps=3"]) == 0
    a, b = load_file(str(straight / CHECKPOINT)), load_file(str(resumed / CHECKPOINT))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
    assert (resumed / "config.yaml").is_file() and (resumed / "diffusion_pytorch_model.safetensors").is_file()
    assert len((resumed / "metrics.jsonl").read_text().splitlines()) == 3
    codec = load_trained(resumed)
    assert codec.latent_channels == 4 and codec.stats.std != (1.0,) * 4
    dist = codec.encode(torch.zeros(1, 3, 5, 16, 16))
    assert dist.mean.shape == (1, 4, 2, 2, 2)


def test_audio_training_writes_loadable_codec(clips, tmp_path):
    out = tmp_path / "audio"
    assert main(["train-codec", "audio", str(clips), "--out", str(out), *TINY_AUDIO, "steps=2"]) == 0
    codec = load_trained(out)
    assert (codec.time_stride, codec.latent_channels) == (64, 4)
    assert (out / "latent_stats.json").is_file()
    assert codec.decode(codec.encode(torch.zeros(1, 1, 1024)).mean).shape == (1, 1, 1024)


def test_bad_override_is_a_config_error(clips, tmp_path):
    assert main(["train-codec", "audio", str(clips), "--out", str(tmp_path), "audio.nope=1"]) == 2


def test_mel_audio_training_writes_loadable_codec(clips, tmp_path):
    from facevox.codecs.mel import MelAudioCodec

    out = tmp_path / "mel"
    args = ["audio.mel_width=16", "audio.latent_channels=4", "audio.segment_samples=2560"]
    args += ["batch_size=2", "stats_batches=1", "threads=1", "steps=2", "log_every=1"]
    assert main(["train-codec", "audio", str(clips), "--out", str(out), *args]) == 0
    codec = load_trained(out)
    assert isinstance(codec, MelAudioCodec) and codec.time_stride == 640
    assert codec.decode(codec.encode(torch.zeros(1, 1, 1280)).mean).shape == (1, 1, 1280)


def test_video_training_starts_from_init_weights_and_rejects_other_shapes(clips, tmp_path):
    from facevox.codecs.training import TrainCodecConfig, VideoCodecConfig, build_codec

    first = tmp_path / "first"
    cmd = ["train-codec", "video", str(clips)]
    assert main([*cmd, "--out", str(first), *TINY_VIDEO, "steps=1"]) == 0
    video = VideoCodecConfig(base_dim=8, z_dim=4, size=16, short_side=20)
    start = build_codec(TrainCodecConfig(init=str(first), video=video))
    saved = load_trained(first).vae.state_dict()
    fresh = build_codec(TrainCodecConfig(video=video)).vae.state_dict()
    for key, value in start.vae.state_dict().items():
        torch.testing.assert_close(value, saved[key], msg=key)
    assert any(not torch.equal(fresh[k], saved[k]) for k in saved)  # the load did something
    with pytest.raises(ValueError, match="does not match the configured video codec"):
        build_codec(TrainCodecConfig(init=str(first), video=VideoCodecConfig(base_dim=8, z_dim=6)))


def test_video_image_term_is_trained_and_logged(clips, tmp_path):
    import json

    out = tmp_path / "images"
    args = [*TINY_VIDEO, "steps=1", "video.image_batch=2", "video.image_size=16"]
    assert main(["train-codec", "video", str(clips), "--out", str(out), *args]) == 0
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["image"] > 0 and row["loss"] > row["l1"] + row["l2"]


@pytest.mark.parametrize("kind", ["video", "audio"])
def test_decoder_fine_tune_keeps_encoder_and_latent_stats(clips, tmp_path, kind):
    tiny = (
        TINY_VIDEO
        if kind == "video"
        else [
            "audio.mel_width=16",
            "audio.latent_channels=4",
            "audio.segment_samples=2560",
            "batch_size=2",
            "stats_batches=1",
            "threads=1",
            "log_every=1",
        ]
    )
    cmd = ["train-codec", kind, str(clips)]
    first, tuned = tmp_path / "first", tmp_path / "tuned"
    assert main([*cmd, "--out", str(first), *tiny, "steps=1"]) == 0
    assert (
        main([*cmd, "--out", str(tuned), *tiny, "steps=2", "lr=1e-2", "trainable=decoder", f"init={first}"])
        == 0
    )
    a, b = load_trained(first), load_trained(tuned)
    before, after = a.vae.state_dict(), b.vae.state_dict()
    enc = [k for k in before if not k.startswith(("decoder.", "post_quant_conv."))]
    dec = [k for k in before if k.startswith("decoder.")]
    assert enc and dec
    for k in enc:
        torch.testing.assert_close(after[k], before[k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(after[k], before[k]) for k in dec)
    assert b.stats == a.stats
    assert load_file(str(tuned / CHECKPOINT))  # resumable state written as for a full run
    assert main([*cmd, "--out", str(tmp_path / "bad"), *tiny, "steps=1", "trainable=decoder"]) == 2
