"""``facevox generate`` config layering: guidance scales per stream from key=value overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate_fixtures import have_espeak
from facevox.cli import main
from pipeline_fixtures import make_inputs, make_pipeline_dir

pytestmark = pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng")


def test_overrides_reach_the_sidecar_and_bad_ones_fail_early(tmp_path: Path) -> None:
    pipe_dir = make_pipeline_dir(tmp_path / "pipe")
    inputs = make_inputs(tmp_path / "inputs")
    base = [
        "generate",
        "--model",
        str(pipe_dir),
        "--person",
        f"alice={inputs['alice.png']}:{inputs['alice.wav']}",
    ]
    base += ["--script", "[alice] Hello there.", "--steps", "2"]
    recipe = tmp_path / "g.yaml"
    recipe.write_text("solver: euler\nvideo: {text: 1.0, faces: 1.0, voices: 1.0}\n")
    assert main([*base, "--out", str(tmp_path / "a"), "--recipe", str(recipe), "audio.voices=2.5"]) == 0
    side = json.loads((tmp_path / "a" / "clip.json").read_text())
    assert side["config"]["solver"] == "euler" and side["config"]["steps"] == 2
    assert side["config"]["guidance_video"] == {"text": 1.0, "faces": 1.0, "voices": 1.0}
    assert side["config"]["guidance_audio"]["voices"] == 2.5
    # text 2.0 stays on audio (the default), so the variants are what the audio scales need
    assert side["config"]["variants"] == ["none", "text", "text+faces", "all"]
    for bad in ("video.colour=2", "solver=heun", "steps=0"):
        assert main([*base, "--out", str(tmp_path / "bad"), bad]) == 2
    assert not (tmp_path / "bad").exists()


def test_a_model_folder_with_pipeline_json_loads_with_the_package_codecs_and_checks_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped layout (``model.safetensors`` + ``pipeline.json``, codecs from the package), as
    ``facevox generate`` with no --model uses it; codecs of another fingerprint are refused."""
    import shutil

    from facevox.codecs import shipped
    from facevox.codecs.loading import codec_fingerprint
    from facevox.pipeline import FacevoxPipeline, RequestError

    pipe_dir = make_pipeline_dir(tmp_path / "pipe")
    flat = tmp_path / "flat"
    shutil.copytree(pipe_dir / "model", flat)
    settings = json.loads((pipe_dir / "pipeline.json").read_text())
    fingerprints = {k: codec_fingerprint(pipe_dir / f"{k}_codec") for k in ("video", "audio")}
    (flat / "pipeline.json").write_text(json.dumps({**settings, "codec_fingerprints": fingerprints}))
    monkeypatch.setattr(shipped, "default_codec_dir", lambda kind: pipe_dir / f"{kind}_codec")
    pipe = FacevoxPipeline.from_pretrained(flat)
    assert pipe.video_codec.latent_channels == 4
    (flat / "pipeline.json").write_text(
        json.dumps({**settings, "codec_fingerprints": {**fingerprints, "video": "0" * 16}})
    )
    with pytest.raises(RequestError, match="trained on latents of codecs"):
        FacevoxPipeline.from_pretrained(flat)


def test_codecs_that_do_not_fit_the_model_are_refused_naming_both(tmp_path: Path) -> None:
    import torch

    from facevox.codecs.video import WanVideoCodec, tiny_wan_config
    from facevox.pipeline import FacevoxPipeline, RequestError

    pipe_dir = make_pipeline_dir(tmp_path / "pipe")
    torch.manual_seed(0)
    WanVideoCodec.from_config(tiny_wan_config(base_dim=8, z_dim=8)).save_pretrained(pipe_dir / "video_codec")
    with pytest.raises(
        RequestError, match="takes 4 video / 6 audio latent channels.*WanVideoCodec\\) makes 8"
    ):
        FacevoxPipeline.from_pretrained(pipe_dir)
