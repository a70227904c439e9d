"""The tiny model shipped in the package: loads strictly, fits the shipped codecs, never saw the demo's people."""

from __future__ import annotations

import json

import pytest

from facevox.codecs.shipped import default_codec_dir
from facevox.demo import DemoConfig
from facevox.models import DualTowerDiT
from facevox.models.shipped import ShippedModelError, default_model_dir


def test_shipped_model_loads_strictly_and_matches_the_shipped_codecs() -> None:
    folder = default_model_dir()
    model = DualTowerDiT.from_pretrained(folder)
    video = json.loads((default_codec_dir("video") / "config.json").read_text())
    audio = json.loads((default_codec_dir("audio") / "config.json").read_text())
    assert model.config.name == "tiny"
    assert model.config.video.in_channels == video["z_dim"]
    assert model.config.audio.in_channels == audio["latent_channels"]
    assert model.config.text_dim == 384  # MiniLM, the embedded caption encoder


def test_shipped_model_was_trained_on_other_people_than_the_demo() -> None:
    prov = json.loads((default_model_dir() / "PROVENANCE.json").read_text())
    assert prov["world"]["seed"] != DemoConfig().world.seed
    assert [s["strategy"] for s in prov["stages"]] == ["base", "stage1", "stage2", "stage3"]


def test_missing_shipped_model_says_what_to_do() -> None:
    with pytest.raises(ShippedModelError, match="train_shipped_model.sh"):
        default_model_dir("no-such-model")
