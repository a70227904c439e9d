"""Generation: an mp4 + sidecar from faces, voices and a script; determinism; bad inputs; CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from curate_fixtures import have_espeak
from facevox.io.media import read_av
from facevox.pipeline import FacevoxPipeline, GenerationRequest, Person, RequestError
from facevox.pipeline.pipeline import GenerateConfig
from facevox.pipeline.request import parse_person, parse_script, structured_caption
from pipeline_fixtures import make_inputs, make_pipeline_dir

pytestmark = pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng")


@pytest.fixture(scope="module")
def pipe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pipeline_dir(tmp_path_factory.mktemp("pipe"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def pipe(pipe_dir: Path) -> FacevoxPipeline:
    return FacevoxPipeline.from_pretrained(pipe_dir)


def _two(inputs: dict[str, Path], **kw) -> GenerationRequest:
    people = (
        Person(
            name="alice",
            faces=(str(inputs["alice.png"]), str(inputs["bob.png"])),
            voice=str(inputs["alice.wav"]),
        ),
        Person(name="bob", faces=(str(inputs["bob.png"]),), voice=str(inputs["bob.wav"])),
    )
    return GenerationRequest(
        **{
            "name": "two",
            "people": people,
            "script": "[alice] Hello there. [bob] Hi!",
            "duration": 1.2,
            "seed": 3,
            **kw,
        }
    )


def test_generate_writes_mp4_and_sidecar_deterministically(
    pipe: FacevoxPipeline, inputs, tmp_path: Path
) -> None:
    cfg = GenerateConfig(steps=3)
    steps = []
    a = pipe(_two(inputs), tmp_path / "a", config=cfg, callback=lambda i, n: steps.append((i, n)))
    b = pipe(_two(inputs), tmp_path / "b", config=cfg)
    assert steps == [(1, 3), (2, 3), (3, 3)]
    clip = read_av(a.video_path)
    assert clip.video.shape == (13, 32, 48, 3)  # 1.2 s at 10 fps -> 13 frames (1 + 4k)
    assert abs(clip.audio.shape[0] - 1.3 * 16000) < 2048
    side = json.loads(a.sidecar_path.read_text())
    assert side["format"] == "facevox.generation/1" and [p["name"] for p in side["people"]] == [
        "alice",
        "bob",
    ]
    assert [t["slot"] for t in side["turns"]] == [0, 1] and "<S1>" in side["caption_text"]
    assert (
        side["config"]["variants"] == ["none", "text", "text+faces", "all"]
        and side["config"]["forwards"] == 3
    )
    # same seed -> same samples (the encoded mp4s may differ in bits, see test_synth_world)
    from facevox.io.media import read_av as r

    assert np.abs(r(b.video_path).video.astype(int) - clip.video).mean() < 1.0
    c = pipe(_two(inputs, seed=4), tmp_path / "c", config=cfg)
    assert np.abs(r(c.video_path).video.astype(int) - clip.video).mean() > 1.0


def test_cache_and_batched_guidance_give_the_same_sample(
    pipe: FacevoxPipeline, inputs, tmp_path: Path
) -> None:
    base = pipe(_two(inputs, name="x"), tmp_path / "x", config=GenerateConfig(steps=2, solver="euler"))
    slow = pipe(
        _two(inputs, name="y"),
        tmp_path / "y",
        config=GenerateConfig(steps=2, solver="euler", use_cache=False, batch_guidance=False),
    )
    assert slow.sidecar["config"]["forwards"] == 8
    va, vb = read_av(base.video_path).video.astype(int), read_av(slow.video_path).video.astype(int)
    assert np.abs(va - vb).mean() < 1.0


def test_another_supported_size(pipe: FacevoxPipeline, inputs, tmp_path: Path) -> None:
    res = pipe(_two(inputs, name="wide", width=64, height=48), tmp_path, config=GenerateConfig(steps=1))
    assert read_av(res.video_path).video.shape == (13, 48, 64, 3)
    assert (res.sidecar["width"], res.sidecar["height"]) == (64, 48)


def test_bad_requests_fail_before_work(pipe: FacevoxPipeline, inputs, tmp_path: Path) -> None:
    with pytest.raises(RequestError, match=r"\['carol'\]"):
        pipe.check(_two(inputs, script="[alice] hi [carol] hello"))
    with pytest.raises(RequestError, match="unsupported size: width=50"):
        pipe.check(_two(inputs, width=50))
    with pytest.raises(RequestError, match="unsupported size: height=128"):
        pipe.check(_two(inputs, height=128))
    with pytest.raises(RequestError, match="at most 21"):
        pipe.check(_two(inputs, duration=5.0))
    alice = Person(name="alice", faces=(str(inputs["noface.png"]),), voice=str(inputs["alice.wav"]))
    with pytest.raises(RequestError, match="no face"):
        pipe(GenerationRequest(name="z", people=(alice,), script="[alice] hi"), tmp_path / "z")
    for bad in ("empty.wav", "text.wav"):
        p = Person(name="alice", faces=(str(inputs["alice.png"]),), voice=str(inputs[bad]))
        with pytest.raises(RequestError, match="audio"):
            pipe(GenerationRequest(name="z", people=(p,), script="[alice] hi"), tmp_path / "z")
    assert not (tmp_path / "z").exists() or not list((tmp_path / "z").iterdir())
    with pytest.raises(RequestError, match="does not exist"):
        Person(name="x", faces=("missing.png",), voice=str(inputs["text.wav"]))
    with pytest.raises(RequestError, match="expected name"):
        parse_person("alice-a.png")
    assert parse_script("[a] one two. [b] three") == [
        ("a", "one two.", None, None),
        ("b", "three", None, None),
    ]
    assert parse_script("[a 0-0.5] one [b 0.4 - 1] two") == [("a", "one", 0.0, 0.5), ("b", "two", 0.4, 1.0)]


def test_cli_generate_single_person(pipe_dir: Path, inputs, tmp_path: Path) -> None:
    from facevox.cli import main

    rc = main(
        [
            "generate",
            "--model",
            str(pipe_dir),
            "--person",
            f"alice={inputs['alice.png']}:{inputs['alice.wav']}",
            "--script",
            "[alice] Hello there.",
            "--steps",
            "2",
            "--out",
            str(tmp_path),
            "--no-references",
        ]
    )
    assert rc == 0
    side = json.loads((tmp_path / "clip.json").read_text())
    assert side["references_used"] == {"faces": False, "voices": False}
    assert (
        main(
            [
                "generate",
                "--model",
                str(pipe_dir),
                "--person",
                f"alice={inputs['alice.png']}:{inputs['alice.wav']}",
                "--script",
                "[bob] hi",
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )


def test_cli_no_references_applies_to_every_request_of_a_file(pipe_dir: Path, inputs, tmp_path: Path) -> None:
    """The benchmark floor: ``--requests FILE --no-references`` must drop the references of each request."""
    from facevox.cli import main

    person = {"name": "alice", "faces": [str(inputs["alice.png"])], "voice": str(inputs["alice.wav"])}
    reqs = tmp_path / "requests.jsonl"
    reqs.write_text(
        "".join(
            json.dumps({"name": n, "people": [person], "script": "[alice] hi", "duration": 0.4}) + "\n"
            for n in "ab"
        )
    )
    base = ["generate", "--model", str(pipe_dir), "--requests", str(reqs), "--steps", "1"]
    assert main([*base, "--out", str(tmp_path / "floor"), "--no-references"]) == 0
    assert main([*base, "--out", str(tmp_path / "faces"), "--no-voice-references"]) == 0
    for n in "ab":
        floor = json.loads((tmp_path / "floor" / f"{n}.json").read_text())
        faces = json.loads((tmp_path / "faces" / f"{n}.json").read_text())
        assert floor["references_used"] == {"faces": False, "voices": False}
        assert faces["references_used"] == {"faces": True, "voices": False}


def test_the_named_steps_compose_to_the_call(pipe: FacevoxPipeline, inputs, tmp_path: Path) -> None:
    """check_inputs -> encode_conditions -> prepare_latents -> denoise -> decode -> write, each on its
    own, gives what __call__ gives."""
    import torch

    from facevox.diffusion.guidance import Guidance

    req, cfg = _two(inputs), GenerateConfig(steps=2)
    checked = pipe.check_inputs(req)
    assert (checked.frames, checked.height, checked.width) == (13, 32, 48)  # 1.2 s at 10 fps -> 1 + 4k
    assert [len(c) for c in checked.face_crops] == [2, 1] and len(checked.voices) == 2
    cond = pipe.encode_conditions(req, checked, Guidance(video=cfg.video, audio=cfg.audio))
    G = len(cond.variants)
    assert cond.variants == ("none", "text", "text+faces", "all")
    assert cond.caption.shape[0] == cond.faces.mask.shape[0] == cond.voices.mask.shape[0] == G
    assert not bool(cond.faces.mask[:2].any()) and bool(cond.faces.mask[2:].any())  # faces from "text+faces"
    assert not bool(cond.voices.mask[:3].any()) and bool(cond.voices.mask[3].any())  # voices only in "all"
    assert bool((cond.caption_slot_ids[0] == -1).all())  # the empty caption names nobody
    video, audio = pipe.prepare_latents(req, checked)
    again, _ = pipe.prepare_latents(req, checked)
    assert torch.equal(video, again) and video.shape == (1, 4, 4, 4, 6)
    video, audio, forwards = pipe.denoise(cond, video, audio, cfg)
    assert forwards >= 2
    frames, wav = pipe.decode(video, audio, pipe.audio_samples(checked.frames))
    whole = pipe(req, tmp_path / "call", config=cfg)
    np.testing.assert_array_equal(frames, whole.frames)
    np.testing.assert_array_equal(wav, whole.audio)
    # the cache slices itself for a subset of the variants
    cache = pipe.model.prepare_references(
        cond.faces, cond.voices, video_frames=4, audio_tokens=audio.shape[1]
    )
    rows = torch.tensor([1, 3])
    part = cache.select(rows)
    assert part.batch_size == 2 and torch.equal(part.slot_present, cache.slot_present[rows])
    assert cache.select(torch.arange(G)) is cache


def test_a_plain_script_describes_each_person_from_their_first_face(pipe: FacevoxPipeline, inputs) -> None:
    """The generic "a person" of a plain script becomes curation's description of the first face
    photo (the training captions' words); not when faces are off, not where the caption says more."""
    import numpy as np
    from PIL import Image

    from facevox.curate.captions import appearance_words
    from facevox.curate.faces import appearance
    from facevox.data.references import largest_face

    req = _two(inputs)
    subjects = pipe.check_inputs(req).caption["subjects"]
    for s, p in zip(subjects, req.people, strict=True):
        img = np.asarray(Image.open(p.faces[0]).convert("RGB"))
        want = appearance_words(appearance(img, largest_face(img)))
        assert s["appearance"] == want and want.startswith("a person with ")
    assert [
        s["appearance"] for s in pipe.check_inputs(_two(inputs, use_faces=False)).caption["subjects"]
    ] == [
        "a person",
        "a person",
    ]
    caption, _ = structured_caption(req)
    caption["subjects"][0]["appearance"] = "a tall person in a red coat"
    del caption["subjects"][1]["person_id"]  # optional in a structured caption
    kept = pipe.check_inputs(_two(inputs, script=caption)).caption["subjects"]
    assert (
        kept[0]["appearance"] == "a tall person in a red coat"
        and kept[1]["appearance"] == subjects[1]["appearance"]
    )
