"""`facevox encode`: a curated folder -> latent shards (shapes, references, captions, resume, bad samples)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from curate_fixtures import frame, have_espeak, speech, talking_clip
from facevox.data.encode import EncodeConfig, EncodeError, encode
from facevox.data.references import ReferenceError, face_crop_from_photo, face_reference, voice_reference
from facevox.data.shards import read_index, read_null_caption, read_sample
from facevox.io.atomic import atomic_path
from facevox.io.media import read_av
from latent_fixtures import write_tiny_codecs

pytestmark = pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng")


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hand-made curation output: two clips, one subject each, references from the other clip."""
    d = tmp_path_factory.mktemp("curated")
    records = []
    clips = {}
    for i, text in enumerate(["hello there my friend", "how are you doing today"]):
        path = d / "videos" / f"c{i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        talking_clip(path, [(0.2, text)], 2.5, flip=bool(i))
        clips[i] = read_av(path)
    for i in range(2):
        other = 1 - i
        crop = clips[other].video[10][20:140, 40:160]
        (d / "crops").mkdir(exist_ok=True)
        Image.fromarray(crop).save(d / "crops" / f"p{i}.png")
        sf.write(d / f"voice{i}.wav", clips[other].audio[: 16000 * 2], 16000)
        records.append(
            {
                "sample_id": f"c{i}_s00",
                "clip_id": f"c{i}",
                "video_path": str(d / "videos" / f"c{i}.mp4"),
                "start": 0.0,
                "end": 2.5,
                "start_frame": 0,
                "end_frame": clips[i].video.shape[0],
                "fps": 10.0,
                "sample_rate": 16000,
                "width": 192,
                "height": 160,
                "kind": "single",
                "multiview": False,
                "subjects": [
                    {
                        "slot": 1,
                        "person_id": f"P{i:05d}",
                        "track_id": 0,
                        "voice_id": 0,
                        "box": [40, 20, 160, 140],
                        "face_refs": [
                            {"path": f"crops/p{i}.png", "clip_id": f"c{other}", "frame": 10, "yaw": 0.0}
                        ],
                        "voice_refs": [
                            {"path": f"voice{i}.wav", "clip_id": f"c{other}", "start": 0.0, "end": 2.0}
                        ],
                    }
                ],
                "speech": [
                    {"slot": 1, "start": 0.2, "end": 1.8, "text": "hello there", "text_source": "test"}
                ],
                "caption": {
                    "scene": {
                        "shot": "close-up",
                        "lighting": "soft",
                        "background": "grey",
                        "num_subjects": 1,
                    },
                    "subjects": [
                        {"slot": 1, "person_id": f"P{i:05d}", "position": "centre", "appearance": "a person"}
                    ],
                    "speech": [{"slot": 1, "start": 0.2, "end": 1.8, "text": "hello there"}],
                },
                "caption_text": "",
            }
        )
    # a third record whose video is corrupt: skipped with a reason, the rest goes on
    bad = dict(records[0], sample_id="bad_s00", video_path=str(d / "videos" / "bad.mp4"))
    (d / "videos" / "bad.mp4").write_bytes(b"not a video")
    records.append(bad)
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return d


@pytest.fixture(scope="module")
def codecs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_codecs(tmp_path_factory.mktemp("codecs"))


def _cfg(codecs: tuple[Path, Path], **kw) -> EncodeConfig:
    base = dict(
        video_codec=str(codecs[0]),
        audio_codec=str(codecs[1]),
        width=64,
        height=48,
        window_frames=9,
        windows_per_sample=2,
        face_size=32,
        heldout_fraction=0.5,
        seed=1,
        threads=1,
    )
    return EncodeConfig(**{**base, **kw})


def test_encode_writes_samples_index_and_reasons(
    curated: Path, codecs: tuple[Path, Path], tmp_path: Path
) -> None:
    counts = encode(_cfg(codecs), curated / "manifest.jsonl", tmp_path, progress=False)  # or the folder
    entries = read_index(tmp_path)
    assert counts["windows"] == len(entries) == 4 and counts["made_this_run"] == 4
    assert {e.split for e in entries} == {"train", "heldout"}  # seed 1 holds one of the two people out
    skipped = [json.loads(line) for line in (tmp_path / "skipped.jsonl").read_text().splitlines()]
    assert [s["sample_id"].split("_")[0] for s in skipped] == ["bad", "bad"]
    s = read_sample(tmp_path / entries[0].file)
    assert tuple(s.video_mean.shape) == (4, 3, 6, 8)  # 9 frames -> 3 latent frames; 48x64 / 8
    assert s.audio_mean.shape == (23, 6)  # 9 frames at 10 fps = 0.9 s = 14,400 samples / 640, rounded up
    assert s.face_refs.shape == (1, 1, 4, 1, 4, 4) and bool(s.face_refs_mask.all())
    assert bool(s.voice_refs_mask.all()) and s.voice_refs.shape[1] == 50  # 2 s of reference voice
    assert s.caption.shape[1] == 384 and int(s.caption_slot_ids.max()) == 0  # <REF_1_S> -> slot 0
    assert "<REF_1_S>" in s.meta["caption_text"]
    # the person's face box, as fractions of the 192x160 frame (the region of the face-weighted loss)
    assert s.meta["face_boxes"] == [pytest.approx([40 / 192, 20 / 160, 160 / 192, 140 / 160], abs=1e-4)]
    cap, mask = read_null_caption(tmp_path)
    assert cap.shape[1] == 384 and bool(mask.all())
    enc = json.loads((tmp_path / "encode.json").read_text())
    assert enc["alignment"]["num_frames"] == 9 and enc["counts"]["windows"] == 4


def test_encode_resumes_and_redoes_a_truncated_sample(
    curated: Path, codecs: tuple[Path, Path], tmp_path: Path
) -> None:
    encode(_cfg(codecs), curated, tmp_path, progress=False)
    files = sorted((tmp_path / "samples").glob("*.safetensors"))
    before = read_sample(files[0])
    before = {
        n: getattr(before, n).clone()
        for n in ("video_mean", "audio_mean", "face_refs", "voice_refs", "caption")
    }
    files[0].write_bytes(files[0].read_bytes()[:100])  # a half-written file from a killed run
    counts = encode(_cfg(codecs), curated, tmp_path, progress=False)
    assert counts["made_this_run"] == 1 and counts["reused"] == 3
    after = read_sample(files[0])
    # the redo matches up to oneDNN's float reduction order (~4e-7 measured), not bit for bit
    for name in ("video_mean", "audio_mean", "face_refs", "voice_refs", "caption"):
        torch.testing.assert_close(getattr(after, name), before[name], atol=1e-4, rtol=1e-4)
    # resuming with another video codec would mix two codecs' latents in one folder: refused
    from facevox.codecs.patch_pca import PatchCodecConfig, PatchPCAVideoCodec

    other = tmp_path.parent / f"{tmp_path.name}-pca"
    PatchPCAVideoCodec(PatchCodecConfig(latent_channels=4, refiner_width=0)).save_pretrained(other)
    with pytest.raises(EncodeError, match="other codecs"):
        encode(_cfg((other, codecs[1])), curated, tmp_path, progress=False)


def test_encode_resume_removes_what_a_kill_mid_write_left(
    curated: Path, codecs: tuple[Path, Path], tmp_path: Path
) -> None:
    """A kill inside an atomic write (benchmarks/kill_resume.py lands some) leaves its hidden temporary
    file; it used to stay in the shard folder (and in its byte count) after the resume."""
    encode(_cfg(codecs), curated, tmp_path, progress=False)
    index = (tmp_path / "index.jsonl").read_text()
    killed = [atomic_path(sorted((tmp_path / "samples").glob("*"))[0]), atomic_path(tmp_path / "index.jsonl")]
    for write in killed:  # entered and never left, as a kill leaves them (keep the objects alive)
        write.__enter__().write_bytes(b"half")
    assert len(list(tmp_path.rglob(".*"))) == 2
    counts = encode(_cfg(codecs), curated, tmp_path, progress=False)
    assert (counts["made_this_run"], counts["reused"]) == (0, 4)
    assert list(tmp_path.rglob(".*")) == [] and (tmp_path / "index.jsonl").read_text() == index


@pytest.mark.slow  # two spawned workers each import torch, diffusers and MiniLM
def test_encode_with_two_workers_writes_the_same_shards(
    curated: Path, codecs: tuple[Path, Path], tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    a = encode(_cfg(codecs), curated, one, progress=False)
    b = encode(_cfg(codecs, workers=2, threads=2), curated, two, progress=False)
    assert (a["windows"], a["skipped"]) == (b["windows"], b["skipped"]) == (4, 2)
    assert read_index(one) == read_index(two)
    assert (one / "skipped.jsonl").read_text() == (two / "skipped.jsonl").read_text()
    for e in read_index(one):
        x, y = read_sample(one / e.file), read_sample(two / e.file)
        for name in ("video_mean", "audio_mean", "face_refs", "voice_refs_self", "caption"):
            torch.testing.assert_close(getattr(y, name), getattr(x, name), atol=1e-4, rtol=1e-4)


def test_encode_errors_before_work(tmp_path: Path, codecs: tuple[Path, Path]) -> None:
    with pytest.raises(EncodeError, match="manifest.jsonl"):
        encode(_cfg(codecs), tmp_path, tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        EncodeConfig(window_frames=10)


def test_reference_preprocessing() -> None:
    img = frame()
    x = face_reference(img[:100, :60], 32)
    assert x.shape == (3, 32, 32) and float(x.min()) >= -1 and float(x.max()) <= 1
    assert torch.allclose(x[:, :, 0], torch.ones(3, 32))  # padded square with white
    assert face_crop_from_photo(img).shape[0] > 40  # the astronaut's face
    with pytest.raises(ReferenceError, match="no face"):
        face_crop_from_photo(np.full((120, 120, 3), 128, np.uint8))
    v = voice_reference(speech("hello there"), 16000, 0.5)
    assert v.shape == (1, 8000) and abs(float(v.abs().max()) - 0.9) < 1e-5
    assert voice_reference(speech("hello")[::2].copy(), 8000, 10).shape[1] > 8000  # resampled 8 -> 16 kHz
    with pytest.raises(ReferenceError, match="silent"):
        voice_reference(np.zeros(16000, np.float32), 16000, 1)
