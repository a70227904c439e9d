"""The tiny model shipped in the package: loads strictly, fits the shipped codecs, never saw the demo's people."""

from __future__ import annotations

import json

import pytest

from facevox.codecs.loading import codec_fingerprint, load_video_codec
from facevox.codecs.shipped import default_codec_dir
from facevox.demo import DemoConfig
from facevox.models import DualTowerDiT
from facevox.models.shipped import ShippedModelError, default_model_dir


def test_shipped_model_loads_strictly_and_matches_the_shipped_codecs() -> None:
    folder = default_model_dir()
    model = DualTowerDiT.from_pretrained(folder)
    audio = json.loads((default_codec_dir("audio") / "config.json").read_text())
    assert model.config.name == "tiny"
    assert model.config.video.in_channels == load_video_codec(default_codec_dir("video")).latent_channels
    assert model.config.audio.in_channels == audio["latent_channels"]
    assert model.config.text_dim == 384  # MiniLM, the embedded caption encoder
    # and it was trained on latents of exactly these codecs
    prov = json.loads((folder / "PROVENANCE.json").read_text())
    assert prov["codec_fingerprints"] == {
        k: codec_fingerprint(default_codec_dir(k)) for k in ("video", "audio")
    }


def test_shipped_model_was_trained_on_other_people_than_the_demo() -> None:
    prov = json.loads((default_model_dir() / "PROVENANCE.json").read_text())
    assert prov["world"]["seed"] != DemoConfig().world.seed
    strategies = [s["strategy"] for s in prov["stages"]]  # the base may run in phases (base1, base)
    # the paper's three stages after the base; an identity phase (stages 2 and 3 again on a world of
    # more people, scripts/train_identity_phase.sh) may follow, on a world of its own
    first = strategies.index("stage1")
    assert set(strategies[:first]) == {"base"} and strategies[first : first + 3] == [
        "stage1",
        "stage2",
        "stage3",
    ]
    extra = strategies[first + 3 :]
    if extra:  # own-face references first, then other clips' (one or more runs)
        assert extra[0] == "stage2" and set(extra[1:]) == {"stage3"}
        assert len(extra) == len(prov["identity_phase"]["runs"])
        assert prov["identity_phase"]["world"]["seed"] not in (DemoConfig().world.seed, prov["world"]["seed"])


def test_missing_shipped_model_says_what_to_do() -> None:
    with pytest.raises(ShippedModelError, match="train_shipped_model.sh"):
        default_model_dir("no-such-model")


def test_demo_stages_train_with_the_recipes_objective() -> None:
    """The demo fine-tunes the shipped model: it must keep the objective (shift, dropout) the shipped
    model was trained with, since the release's pipeline.json samples on that shift."""
    from pathlib import Path

    from facevox.config import load
    from facevox.training.config import TrainConfig

    recipes = Path(__file__).resolve().parent.parent / "recipes"
    demo = DemoConfig()
    for name in ("stage1", "stage2", "stage3"):
        recipe = load(TrainConfig, recipes / f"{name}_tiny.yaml")
        assert getattr(demo, name).objective == recipe.objective, name
    assert demo.base.objective == load(TrainConfig, recipes / "base_tiny.yaml").objective
