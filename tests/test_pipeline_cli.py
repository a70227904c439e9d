"""``facevox generate`` config layering: guidance scales per stream from key=value overrides."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from facevox.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from curate_fixtures import have_espeak  # noqa: E402
from pipeline_fixtures import make_inputs, make_pipeline_dir  # noqa: E402

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
