"""A pipeline folder with a random debug-size model and random tiny codecs, plus user inputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import soundfile as sf
import torch
from PIL import Image

from curate_fixtures import frame, speech
from facevox.alignment import Clock
from facevox.codecs.mel import MelAudioCodec, MelCodecConfig
from facevox.codecs.video import WanVideoCodec, tiny_wan_config
from facevox.models import DualTowerDiT, get_config


def make_pipeline_dir(d: Path, **model: object) -> Path:
    """``model``: DualTowerConfig fields to change from the debug size's."""
    torch.manual_seed(0)
    WanVideoCodec.from_config(tiny_wan_config(base_dim=8, z_dim=4)).save_pretrained(d / "video_codec")
    MelAudioCodec(MelCodecConfig(width=16, latent_channels=6)).save_pretrained(d / "audio_codec")
    clock = Clock(fps=10.0, video_time_stride=4, audio_token_rate=25.0)  # the settings below, these codecs
    cfg = dataclasses.replace(
        get_config("debug"), text_dim=384, clock=clock, rope_time_scale=clock.rope_time_scale, **model
    )
    DualTowerDiT(cfg).save_pretrained(d / "model")
    settings = {
        "format": "facevox.pipeline/1",
        "fps": 10.0,
        "sample_rate": 16000,
        "height": 32,
        "width": 48,
        "num_frames": 9,
        "max_frames": 21,
        "face_size": 32,
        "voice_seconds": 2.0,
        "text_encoder": "minilm",
        "max_caption_tokens": 64,
        "shift": 3.0,
    }
    (d / "pipeline.json").write_text(json.dumps(settings))
    return d


def make_inputs(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame()).save(d / "alice.png")
    Image.fromarray(frame(flip=True)).save(d / "bob.png")
    sf.write(d / "alice.wav", speech("hello there my friend"), 16000)
    sf.write(d / "bob.wav", speech("good morning to you", voice="en-gb+f2"), 16000)
    Image.new("RGB", (64, 64), (120, 120, 120)).save(d / "noface.png")
    (d / "empty.wav").write_bytes(b"")
    (d / "text.wav").write_text("not audio")
    return {p.name: p for p in d.iterdir()}
