"""Odd and broken inputs of the curation pipeline: the probe decodes odd but valid files as a player
shows them (rotation, variable frame rate, 8 kHz 8-bit audio) and names what is wrong with broken
ones; (slow) a corpus of 22 odd or broken files among three good clips curates without a crash,
every bad file with a reason, and the good clips' samples as without the bad files."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from corrupt_fixtures import GOOD, KEPT, _encode, audio_8k_u8, broken_files, faceless_video, tone
from curate_fixtures import have_espeak, talking_clip
from facevox.curate.config import CurateConfig
from facevox.curate.probe import ProbeDecode, constant_rate, list_inputs
from facevox.curate.records import ClipWork
from facevox.curate.step import Drop

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
REPO = Path(__file__).resolve().parents[1]


def _probe(path: Path, tmp: Path) -> ClipWork | Drop:
    cfg = CurateConfig(input_dir=str(path.parent), out_dir=str(tmp / "out"))
    return ProbeDecode().process(ClipWork(source=str(path), clip_id=path.stem, out_dir=cfg.out_dir, cfg=cfg))


def _kept(result: ClipWork | Drop) -> ClipWork:
    assert isinstance(result, ClipWork), result
    assert result.video is not None and result.audio is not None
    return result


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_probe_turns_a_rotated_video_upright(tmp_path: Path, rotation: int) -> None:
    video = faceless_video(12, 96, 128)
    video[:, :16, :16] = 255  # a white mark in the top-left corner
    _encode(tmp_path / "plain.mp4", video, 10.0, tone(1.2))
    _encode(tmp_path / "turned.mp4", video, 10.0, tone(1.2), rotation=rotation)
    plain, turned = (
        _kept(_probe(tmp_path / "plain.mp4", tmp_path)),
        _kept(_probe(tmp_path / "turned.mp4", tmp_path)),
    )
    assert plain.video is not None and turned.video is not None
    k = rotation // 90 % 4
    assert np.array_equal(turned.video, np.rot90(plain.video, k, axes=(1, 2)))  # same pixels, turned
    assert (turned.width, turned.height) == ((96, 128) if k % 2 else (128, 96))
    # the display matrix turns the picture counter-clockwise by `rotation` (FFmpeg's convention)
    corner = {1: (-8, 8), 3: (8, -8), 2: (-8, -8)}[k]  # where the top-left mark lands
    assert turned.video[0, corner[0], corner[1]].min() > 200


def test_constant_rate_shows_the_latest_frame_due() -> None:
    video = np.arange(5)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)  # frame i holds i
    regular = constant_rate(video, [0.0, 0.1, 0.2, 0.3, 0.4], 10.0)
    assert regular is video  # on the grid already: untouched
    assert constant_rate(video, [None] * 5, 10.0) is video
    # frames at 0, 0.03, 0.25, 0.26, 0.45 s on a 10 fps grid (0, 0.1, 0.2, 0.3, 0.4 s)
    shown = constant_rate(video, [1.0, 1.03, 1.25, 1.26, 1.45], 10.0)[:, 0, 0, 0]
    assert shown.tolist() == [0, 1, 1, 3, 3]


def test_probe_puts_variable_frame_rate_video_on_a_constant_grid(tmp_path: Path) -> None:
    pts = [0, 33, 233, 433, 466, 566, 766, 866, 899, 1099, 1299, 1499, 1532, 1565, 1765]
    _encode(tmp_path / "vfr.mp4", faceless_video(len(pts), 96, 128), 10.0, tone(2.0), pts_ms=pts)
    work = _kept(_probe(tmp_path / "vfr.mp4", tmp_path))
    assert work.video is not None and work.audio is not None
    assert work.video.shape[0] == len(pts) and work.audio.shape[0] == round(work.duration * 16_000)
    grid_ms = np.arange(len(pts)) * 1000 / work.fps
    due = np.searchsorted(pts, grid_ms + 1e-3, side="right") - 1  # the frame a player shows then
    red = np.round(work.video[:, 48, 64, 0].astype(float) / 10).astype(int)  # frame i is red 10 * i
    assert red.tolist() == due.tolist()
    assert len(set(due.tolist())) < len(pts)  # the test means something: frames were moved


def test_probe_resamples_8_bit_8_khz_audio(tmp_path: Path) -> None:
    audio_8k_u8(tmp_path / "audio_8k_u8.mov")
    work = _kept(_probe(tmp_path / "audio_8k_u8.mov", tmp_path))
    assert work.audio is not None and work.sample_rate == 16_000
    assert work.audio.shape == (32_000,) and work.video is not None and work.video.shape[0] == 20
    spectrum = np.abs(np.fft.rfft(work.audio))
    assert np.argmax(spectrum) * 16_000 / work.audio.shape[0] == pytest.approx(440, abs=2)
    assert float(np.sqrt(np.mean(work.audio[1000:-1000] ** 2))) == pytest.approx(0.2 / np.sqrt(2), rel=0.05)


@pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng")
def test_probe_names_each_broken_file(tmp_path: Path) -> None:
    clip = tmp_path / "a.mp4"
    talking_clip(clip, [(0.3, "hello there my friend")], 2.0)
    files = broken_files(tmp_path / "broken", clip)
    listed = {
        p.relative_to(tmp_path / "broken").as_posix()
        for p in list_inputs(tmp_path / "broken", (".mp4", ".mov", ".mkv", ".webm"))
    }
    assert listed == {f.name for f in files}  # the folder named a.mp4 and the self-link too
    got = {}
    for f in files:
        result = _probe(tmp_path / "broken" / f.name, tmp_path)
        assert isinstance(result, Drop) and result.detail, f.name
        got[f.name] = result.reason
    assert got == {f.name: f.expect for f in files}


@pytest.mark.slow  # two curation runs (~40 s with the corpus on 2 busy cores)
@pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng")
def test_corrupt_corpus_curates_good_files_as_without_the_bad_ones(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from corrupt_corpus import good_samples, run

    report = run(tmp_path, workers=1)
    bad = [f for f in report.files if f.kind != GOOD]
    assert len(bad) >= 0.1 * len(report.files) and len(bad) == 22
    assert {f.name: f.outcome for f in report.files} == {f.name: f.expect for f in report.files}
    inputs, curated = tmp_path / "corpus" / "corrupt", tmp_path / "curated_corrupt"
    excluded = [json.loads(x) for x in (curated / "exclusions.jsonl").read_text().splitlines()]
    assert not [e for e in excluded if e["reason"] == "error"], "a step raised instead of giving a reason"
    sources = {e["source"] for e in excluded if e["reason"] and e["detail"]}
    assert {str((inputs / f.name).absolute()) for f in bad} <= sources  # every bad file has a reason
    # the odd but valid files were decoded and went through every step (no face: no sample)
    assert {f.name for f in report.files if f.outcome == KEPT} == {
        *(f.name for f in report.files if f.kind == GOOD),
        "odd/rotated.mp4",
        "odd/vfr.mp4",
        "odd/uhd_4k.mp4",
        "odd/audio_8k_u8.mov",
    }
    ids = {"a", "sub__b", "c"}
    among = good_samples(curated, inputs, ids)
    alone = good_samples(tmp_path / "curated_good", tmp_path / "corpus" / "good", ids)
    assert (
        [m["sample_id"] for m in among] == [m["sample_id"] for m in alone] == ["a_s00", "c_s00", "sub__b_s00"]
    )
    assert among == alone and all(s["face_refs"] for m in among for s in m["subjects"])
    assert report.good_samples_equal and not report.failures
