"""``facevox generate --model`` on a fabricated reduced-width release checkout (random weights in
the release's layout and key names: transformer, inference YAML, Wan2.2-family VAE, umT5, MMAudio):
two people on top of the single-subject layout, the release's tagged caption as is, an mp4 with audio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from curate_fixtures import have_espeak
from facevox.io.media import read_av
from facevox.release import load_release
from facevox.release.loader import config_from_yaml, find_parts, unsupported_tower_settings
from pipeline_fixtures import make_inputs
from release_fixtures import E2E_DIMS, make_release_dir, write_release_yaml

CAPTION = (
    "A medium shot of two people in a kitchen. <REF_1_S>a tall man<REF_1_E> on the left says, "
    "<S1>Hello there.<E1> <REF_2_S>a woman<REF_2_E> on the right answers, <S2>Good morning to you.<E2> "
    "Audio: quiet room tone."
)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_release_dir(tmp_path_factory.mktemp("release"))


def test_release_config_comes_from_the_release_yaml(release: Path, tmp_path: Path) -> None:
    parts = find_parts(release)
    assert parts.release_yaml is not None and parts.release_yaml.parent.name == "configs"
    cfg = config_from_yaml(parts.release_yaml)
    assert (cfg.video.dim, cfg.video.heads, cfg.depth, cfg.text_dim) == (48, 4, 2, 16)
    assert (cfg.video.in_channels, cfg.audio.in_channels, cfg.audio_ref_start) == (48, 20, 630)
    assert (cfg.video.ref_params, cfg.audio.ref_params) == ("copy", "shared")
    bad = write_release_yaml(tmp_path / "bad.yaml")
    bad.write_text(bad.read_text().replace("- 2\n  - 2", "- 1\n  - 1"))
    from facevox.release import ReleaseError

    with pytest.raises(ReleaseError, match=r"video_config.patch_size=\[1, 1, 1\]"):
        config_from_yaml(bad)


def test_unsupported_tower_settings_names_each_one() -> None:
    """The check the release YAML and Ovi's tower JSONs share (config_from_yaml, ovi_config)."""
    v = {"patch_size": [1, 2, 2], "num_layers": 2}
    a = {"patch_size": [1], "num_layers": 3, "qk_norm": False}
    towers = (("video", v, [1, 2, 2]), ("audio", a, [1]))
    assert unsupported_tower_settings(towers, ("qk_norm",)) == [
        "audio.qk_norm=False",
        "num_layers video 2 != audio 3",
    ]
    fine = (("video", v, [1, 2, 2]), ("audio", {**a, "qk_norm": True, "num_layers": 2}, [1]))
    assert unsupported_tower_settings(fine, ("qk_norm", "cross_attn_norm")) == []  # absent flags default on


def test_load_release_returns_every_component(release: Path) -> None:
    model, video, audio, text, settings = load_release(release, dtype=torch.float32)
    assert model.config.video.dim == E2E_DIMS.dim and not model.state_dict()["identity.table"].any()
    assert (video.latent_channels, audio.latent_channels, audio.time_stride) == (48, 20, 512)
    assert text.encode([CAPTION]).hidden.shape[-1] == 16
    assert settings["fps"] == 24.0 and settings["text_encoder"].endswith("umt5-xxl")


@pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng")
def test_generate_model_release_folder_two_people_tagged_caption(release: Path, tmp_path: Path) -> None:
    from facevox.cli import main

    inputs = make_inputs(tmp_path / "inputs")
    out = tmp_path / "gen"
    argv = ["generate", "--model", str(release), "--out", str(out), "--name", "duo"]
    argv += ["--person", f"alice={inputs['alice.png']}:{inputs['alice.wav']}"]
    argv += ["--person", f"bob={inputs['bob.png']}:{inputs['bob.wav']}"]
    argv += ["--script", CAPTION, "--duration", "0.35", "--width", "480", "--height", "480", "--steps", "2"]
    argv += ["two_pass.skip_block=1"]  # the release skips block 11; this release has 2
    assert main(argv) == 0
    side = json.loads((out / "duo.json").read_text())
    # a release folder samples as the release (recipes/release_iap.yaml), flags and overrides on top
    conf = side["config"]
    assert (conf["guidance"], conf["steps"], conf["shift"], conf["sigma_grid"]) == ("two_pass", 2, 5.0, "wan")
    assert conf["two_pass"]["video_negative"] == "jitter, bad hands, blur, distortion"
    assert conf["two_pass"]["skip_block"] == 1 and conf["forwards"] == 4
    assert side["caption_text"] == CAPTION  # the release's format, as given
    assert [(t["slot"], t["name"], t["text"]) for t in side["turns"]] == [
        (0, "alice", "Hello there."),
        (1, "bob", "Good morning to you."),
    ]
    assert (side["width"], side["height"], side["fps"], side["sample_rate"]) == (480, 480, 24.0, 16000)
    clip = read_av(out / "duo.mp4")
    assert clip.video.shape == (9, 480, 480, 3) and clip.fps == 24.0
    assert clip.audio is not None and clip.sample_rate == 16000
    assert abs(len(clip.audio) - 9 / 24 * 16000) < 1200 and clip.audio.std() > 0


def test_tagged_caption_errors_name_the_tag(tmp_path: Path) -> None:
    from facevox.pipeline import GenerationRequest, Person, RequestError
    from facevox.pipeline.request import structured_caption

    for f in ("a.png", "a.wav"):
        (tmp_path / f).write_bytes(b"x")
    person = {"faces": (str(tmp_path / "a.png"),), "voice": str(tmp_path / "a.wav")}
    two = (Person(name="a", **person), Person(name="b", **person))
    for script, message in (
        (CAPTION.replace("<E2>", "<E1>"), "caption tag <E1> closes <S2>"),
        ("<REF_3_S>a child<REF_3_E> says <S3>Hi.<E3>", "uses <REF_3_S> but 2 people were given"),
        ("<S>Hi.<E>", "<S> names no speaker; with 2 people write <S1>"),
    ):
        with pytest.raises(RequestError, match=message):
            structured_caption(GenerationRequest(name="x", people=two, script=script))
    one = GenerationRequest(
        name="x", people=two[:1], script="<REF_1_S>a man<REF_1_E> says <S>等你好久了。<E>"
    )
    assert [t["text"] for t in structured_caption(one)[1]] == ["等你好久了。"]
