"""Each curation step on small real-media fixtures (tests/curate_fixtures.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from curate_fixtures import FACE_BOX, bad_inputs, have_espeak, speech, talking_clip
from facevox.config import load
from facevox.curate.binding import ActiveSpeaker
from facevox.curate.captions import colour_name, render
from facevox.curate.clustering import cluster_embeddings
from facevox.curate.config import CurateConfig, FaceConfig
from facevox.curate.faces import FaceTracks, track_shot
from facevox.curate.probe import ProbeDecode, list_inputs
from facevox.curate.records import ClipWork, SpeechSegment, Track
from facevox.curate.shots import ShotBoundaries
from facevox.curate.step import Drop, Step
from facevox.curate.transcripts import Transcribe, WhisperLocalBackend, parse_subtitles
from facevox.recognisers.faces import box_iou

pytestmark = pytest.mark.skipif(not have_espeak(), reason="espeak-ng (Debian package) is not installed")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("clip")
    info = talking_clip(d / "a.mp4", [(0.3, "hello there my friend"), (2.3, "how are you doing today")], 4.0)
    return d / "a.mp4", info


def _work(path: Path, out: Path, cfg: CurateConfig | None = None) -> ClipWork:
    return ClipWork(source=str(path), clip_id=path.stem, out_dir=str(out), cfg=cfg or CurateConfig())


@pytest.fixture(scope="module")
def decoded(clip: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> ClipWork:
    work = ProbeDecode().process(_work(clip[0], tmp_path_factory.mktemp("out")))
    assert isinstance(work, ClipWork)
    return work


def test_steps_follow_the_protocol() -> None:
    from facevox.curate.shards import build_steps

    for step in build_steps(CurateConfig()):
        assert isinstance(step, Step), step
        assert step.resources.cpus > 0


def test_probe_decodes_video_and_16k_mono_audio(decoded: ClipWork) -> None:
    assert decoded.video is not None and decoded.video.shape == (40, 160, 192, 3)
    assert decoded.fps == pytest.approx(10.0)
    assert decoded.audio is not None and decoded.audio.dtype == np.float32
    assert decoded.audio.shape == (4 * 16_000,)
    assert np.abs(decoded.audio).max() > 0.05  # the speech survived AAC


def test_probe_rejects_bad_inputs_with_reasons(tmp_path: Path) -> None:
    expected = bad_inputs(tmp_path / "bad")
    found = {p.name: p for p in list_inputs(tmp_path / "bad", CurateConfig().extensions)}
    assert set(found) == set(expected)  # the symlink loop is listed, not followed
    for name, reason in expected.items():
        result = ProbeDecode().process(_work(found[name], tmp_path / "out"))
        assert isinstance(result, Drop), name
        assert result.reason == reason, (name, result)
        assert result.detail


def test_probe_rejects_absurd_resolution(clip: tuple[Path, dict], tmp_path: Path) -> None:
    cfg = load(CurateConfig, overrides=["probe.max_side=150"])
    result = ProbeDecode().process(_work(clip[0], tmp_path, cfg))
    assert isinstance(result, Drop) and result.reason == "absurd_resolution"


def test_list_inputs_survives_a_directory_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "sub" / "x.mp4").write_bytes(b"")
    assert [p.name for p in list_inputs(tmp_path, (".mp4",))] == ["x.mp4"]


def test_shot_boundaries_find_a_cut(decoded: ClipWork) -> None:
    work = ClipWork(source="", clip_id="cut", out_dir="", cfg=CurateConfig())
    work.video = np.concatenate([decoded.video, 255 - decoded.video[:, ::-1]])  # (80, H, W, 3)
    work.fps = decoded.fps
    step = ShotBoundaries()
    step.setup()
    step.process(work)
    assert work.shots == [(0, 40), (40, 80)]
    assert len(work.scenes) == 2 and 0 <= work.scenes[0]["brightness"] <= 1


def test_tracker_bridges_gaps_and_keeps_two_faces_apart() -> None:
    cfg = FaceConfig(detect_every=1, max_gap=3)
    a, b = np.array([10.0, 10, 50, 50]), np.array([100.0, 10, 140, 50])
    dets = {f: np.stack([a + f, b]) if f not in (4, 5) else b[None] for f in range(12)}
    tracks = track_shot(dets, 0, 12, cfg)
    assert len(tracks) == 2
    moving = next(t for t in tracks if t["boxes"][0][0] < 60)
    assert moving["frames"] == list(range(12))
    assert moving["detected"][4:6] == [False, False]
    np.testing.assert_allclose(moving["boxes"][4], a + 4)  # linear interpolation across the gap


def test_tracker_ends_a_track_after_a_long_gap() -> None:
    cfg = FaceConfig(detect_every=1, max_gap=2)
    a = np.array([[10.0, 10, 50, 50]])
    dets = {f: (a if f < 3 or f > 8 else np.zeros((0, 4))) for f in range(12)}
    assert len(track_shot(dets, 0, 12, cfg)) == 2


def test_face_tracks_on_a_real_face(decoded: ClipWork) -> None:
    decoded.shots = [(0, decoded.num_frames)]
    step = FaceTracks()
    step.setup()
    step.process(decoded)
    assert len(decoded.tracks) == 1
    tr = decoded.tracks[0]
    assert len(tr.frames) >= 0.9 * decoded.num_frames
    assert box_iou(np.asarray(tr.boxes[0]), np.asarray(FACE_BOX, float)).max() > 0.3
    assert tr.embedding is not None and len(tr.embedding) == 128
    assert tr.blur > 0 and tr.size > 30
    assert len(tr.crops) == decoded.cfg.faces.crops_per_track
    assert all((Path(decoded.out_dir) / c.path).exists() for c in tr.crops)
    assert len(tr.mouth_motion) == len(tr.frames)


def test_clustering_threshold_and_cannot_link() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 8)) * 3
    emb = np.concatenate(
        [centres[0] + 0.05 * rng.normal(size=(3, 8)), centres[1] + 0.05 * rng.normal(size=(2, 8))]
    )
    labels = cluster_embeddings(emb, 0.6)
    assert labels.tolist() == [0, 0, 0, 1, 1]
    forbid = np.zeros((5, 5), bool)
    forbid[0, 1] = forbid[1, 0] = True
    labels = cluster_embeddings(emb, 0.6, cannot_link=forbid)
    assert labels[0] != labels[1]


def test_voice_diarization_separates_two_voices(tmp_path: Path) -> None:
    from facevox.curate.voice import VoiceDiarization

    sr = 16_000
    a = speech("the quick brown fox jumps over the lazy dog near the river bank", "en-us+m3")
    b = speech("she sells sea shells by the sea shore every summer morning", "en-us+f4")
    gap = np.zeros(int(0.6 * sr), np.float32)
    audio = np.concatenate([gap, a, gap, b, gap, a[: len(a) // 2], gap])
    work = ClipWork(source="", clip_id="v", out_dir=str(tmp_path), cfg=CurateConfig())
    work.audio, work.sample_rate = audio, sr
    step = VoiceDiarization()
    step.setup()
    step.process(work)
    assert len(work.segments) >= 3
    first = work.segments[0].voice_id
    second = next(s for s in work.segments if s.start > (len(gap) + len(a)) / sr + 0.3).voice_id
    third = work.segments[-1].voice_id
    assert first != second and first == third
    assert all(len(s.embedding or []) == 256 for s in work.segments)
    assert all((tmp_path / s.audio_path).exists() for s in work.segments)
    starts = [s.start for s in work.segments]
    assert starts == sorted(starts) and abs(starts[0] - 0.6) < 0.3


def test_active_speaker_binds_each_voice_to_the_mouth_in_sync() -> None:
    fps, sr, n = 10.0, 16_000, 60
    rng = np.random.default_rng(0)
    work = ClipWork(source="", clip_id="b", out_dir="", cfg=CurateConfig())
    work.fps, work.sample_rate = fps, sr
    work.video = np.zeros((n, 2, 2, 3), np.uint8)
    loud = np.zeros(n)  # per-frame loudness: syllables at random while someone speaks
    spans = [(5, 20, 0), (25, 40, 1), (45, 58, 0)]
    for a, b, _ in spans:
        loud[a:b] = 0.05 + 0.4 * rng.random(b - a)
    work.audio = np.repeat(loud, sr // int(fps)).astype(np.float32)  # (S,) a square-wave "speech"
    change = np.abs(np.diff(loud, prepend=0.0))
    motions = [0.2 * rng.random(n), 0.2 * rng.random(n)]  # face 0 speaks voice 1, face 1 voice 0
    for a, b, v in spans:
        motions[1 - v][a:b] += 5 * change[a:b]
    work.tracks = [
        Track(
            track_id=k,
            shot=0,
            frames=list(range(n)),
            boxes=[[0, 0, 10, 10]] * n,
            detected=[True] * n,
            local_person=k,
            mouth_motion=motions[k].tolist(),
        )
        for k in range(2)
    ]
    work.segments = [
        SpeechSegment(seg_id=i, start=a / fps, end=b / fps, voice_id=v) for i, (a, b, v) in enumerate(spans)
    ]
    ActiveSpeaker().process(work)
    assert [s.track_id for s in work.segments] == [1, 0, 1]
    assert all(s.bind_score > 0.3 for s in work.segments), [s.bind_score for s in work.segments]


def test_subtitles_srt_and_vtt(tmp_path: Path) -> None:
    (tmp_path / "a.srt").write_text(
        "1\n00:00:00,500 --> 00:00:01,700\nhello there\n\n2\n00:00:02,000 --> 00:00:03,250\n<i>bye</i>\n"
    )
    (tmp_path / "b.vtt").write_text("WEBVTT\n\n00:01.000 --> 00:02.500 align:start\nfirst line\n")
    cues = parse_subtitles(tmp_path / "a.srt")
    assert [(c.start, c.end, c.text) for c in cues] == [(0.5, 1.7, "hello there"), (2.0, 3.25, "bye")]
    assert parse_subtitles(tmp_path / "b.vtt")[0].text == "first line"
    (tmp_path / "bad.srt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError):
        parse_subtitles(tmp_path / "bad.srt")


def test_transcripts_prefer_subtitles_and_skip_unreadable_ones(decoded: ClipWork, tmp_path: Path) -> None:
    from copy import copy

    step = Transcribe(CurateConfig().asr)
    step.setup()
    work = copy(decoded)
    work.excluded = []
    work.segments = [SpeechSegment(seg_id=0, start=0.3, end=1.7), SpeechSegment(seg_id=1, start=2.3, end=3.6)]
    (tmp_path / "a.srt").write_text("1\n00:00:00,400 --> 00:00:01,500\nhello there my friend\n")
    work.subtitle = str(tmp_path / "a.srt")
    step.process(work)
    assert (
        work.segments[0].text == "hello there my friend" and work.segments[0].text_source == "subtitle:a.srt"
    )
    (tmp_path / "a.srt").write_bytes(b"\xff\xfe\xfd")
    work.segments = [SpeechSegment(seg_id=0, start=0.3, end=1.7)]
    step.process(work)
    assert [d.reason for d in work.excluded] == ["unreadable_subtitle"]
    assert work.segments[0].text_source == "asr:pocketsphinx" and work.segments[0].text  # fell back to ASR


def test_whisper_backend_needs_a_local_model() -> None:
    with pytest.raises(ValueError, match="not a local folder"):
        WhisperLocalBackend("/nonexistent/whisper").load()


def test_caption_render_tags() -> None:
    cap = {
        "scene": {"shot": "medium shot", "lighting": "soft", "background": "blue", "num_subjects": 2},
        "subjects": [
            {"slot": 1, "person_id": "P1", "position": "left", "appearance": "a person with light skin"},
            {"slot": 2, "person_id": "P2", "position": "right", "appearance": "a person with dark skin"},
        ],
        "speech": [
            {"slot": 2, "start": 0.1, "end": 1.0, "text": "hi"},
            {"slot": 1, "start": 1.2, "end": 2.0, "text": "hello"},
        ],
    }
    text = render(cap)
    assert "<REF_1_S>a person with light skin<REF_1_E>" in text and "<REF_2_S>" in text
    assert text.index("<S2>hi<E2>") < text.index("<S1>hello<E1>")
    single = {
        **cap,
        "subjects": cap["subjects"][:1],
        "speech": [{"slot": 1, "start": 0, "end": 1, "text": "hey"}],
    }
    assert "<S>hey<E>" in render(single)
    assert colour_name([0.05, 0.05, 0.05]) == "black" and colour_name([0.1, 0.2, 0.8]).endswith("blue")
