"""`facevox eval`: per-clip metrics from files, bad clips reported, floor/ceiling scale, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from PIL import Image

from curate_fixtures import frame, have_espeak, speech, talking_clip
from facevox.evaluation.metrics import EvalConfig
from facevox.evaluation.suite import METRICS, evaluate, frechet_distance

pytestmark = pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng")


def _set(d: Path, refs: Path, *, face: str, voice: str, text: str = "hello there my friend") -> Path:
    d.mkdir(parents=True)
    talking_clip(d / "a.mp4", [(0.2, text)], 2.0)
    side = {
        "format": "facevox.generation/1",
        "fps": 10.0,
        "sample_rate": 16000,
        "duration": 2.0,
        "references_used": {"faces": True, "voices": True},
        "people": [
            {
                "slot": 0,
                "name": "astro",
                "person_id": "astro",
                "faces": [str(refs / face)],
                "voice": str(refs / voice),
            }
        ],
        "turns": [{"slot": 0, "name": "astro", "text": text, "start": 0.2, "end": 1.8}],
    }
    (d / "a.json").write_text(json.dumps(side))
    return d


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("refs")
    Image.fromarray(frame()).save(d / "astro.png")
    (d / "heldout").mkdir()
    Image.fromarray(frame(flip=True)).save(d / "heldout" / "astro.png")  # a view not given as reference
    sf.write(d / "same.wav", speech("good morning to you all", "en-us+m3"), 16000)
    sf.write(d / "other.wav", speech("good morning to you all", "en-gb+f4"), 16000)
    return d


def test_eval_scores_reports_and_places_between_floor_and_ceiling(refs: Path, tmp_path: Path) -> None:
    ceiling = _set(tmp_path / "ceiling", refs, face="astro.png", voice="same.wav")
    gen = _set(tmp_path / "gen", refs, face="astro.png", voice="same.wav")
    floor = _set(tmp_path / "floor", refs, face="astro.png", voice="other.wav")
    (gen / "broken.mp4").write_bytes(b"garbage")
    (gen / "broken.json").write_text((gen / "a.json").read_text())
    (gen / "nosidecar.mp4").write_bytes((gen / "a.mp4").read_bytes())
    res = evaluate(
        gen,
        tmp_path / "out",
        floor=floor,
        ceiling=ceiling,
        references=refs / "heldout",
        cfg=EvalConfig(asr=False),
        progress=False,
    )
    agg = res["sets"]["generated"]["aggregate"]
    assert agg["clips"] == 1 and agg["errors"] == 2
    reasons = " ".join(e["error"] for e in res["sets"]["generated"]["errors"])
    assert "no sidecar" in reasons and "unreadable media" in reasons
    assert agg["face_detect_rate"] > 0.9 and agg["face_sim"] > 0.95  # the clip shows the reference face
    assert agg["copy_paste_gap"] is not None and agg["copy_paste_gap"] > -0.05  # the clip *is* the reference
    assert agg["sync_conf"] > 0.1  # the fixture's mouth opens with its own speech
    f = res["sets"]["floor"]["aggregate"]
    assert f["voice_sim"] < agg["voice_sim"]  # another espeak voice as the floor's reference
    assert res["floor_to_ceiling"]["voice_sim"] == pytest.approx(1.0, abs=1e-6)  # gen == ceiling
    assert set(METRICS) <= set(res["floor_to_ceiling"])
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Speaker sim" in html and "broken.mp4" in html and "data:image/png;base64" in html


def test_frechet_distance() -> None:
    import numpy as np

    g = np.random.default_rng(0)
    a, b = g.normal(size=(200, 4)), g.normal(size=(200, 4))
    assert frechet_distance(a, b) < 0.3 < frechet_distance(a, b + 1.0)
    assert frechet_distance(a[:1], b) is None


def test_voice_specificity_is_own_minus_others_on_multi_person_clips(refs: Path, tmp_path: Path) -> None:
    gen = _set(tmp_path / "gen", refs, face="astro.png", voice="same.wav")
    side = json.loads((gen / "a.json").read_text())
    side["people"].append(
        {
            "slot": 1,
            "name": "bo",
            "person_id": "bo",
            "faces": [str(refs / "astro.png")],
            "voice": str(refs / "other.wav"),
        }
    )
    (gen / "a.json").write_text(json.dumps(side))
    single = _set(tmp_path / "single", refs, face="astro.png", voice="same.wav")
    res = evaluate(gen, tmp_path / "out", cfg=EvalConfig(asr=False), progress=False)
    clip = res["sets"]["generated"]["clips"][0]
    assert clip["voice_specificity"] == pytest.approx(clip["voice_sim"] - clip["voice_sim_other"])
    assert clip["voice_specificity"] > 0  # closer to the first reference, as the floor test shows
    assert clip["voice_attribution_acc"] == 1.0  # each turn sounds like its own speaker's reference
    assert clip["attribution_acc"] is not None and clip["attribution_acc"] <= clip["voice_attribution_acc"]
    side["turns"] = [{**t, "slot": 1} for t in side["turns"]]  # the same speech, credited to bo
    (gen / "a.json").write_text(json.dumps(side))
    res = evaluate(gen, tmp_path / "out2", cfg=EvalConfig(asr=False), progress=False)
    swapped = res["sets"]["generated"]["clips"][0]
    assert swapped["voice_attribution_acc"] == 0.0 and swapped["attribution_acc"] == 0.0
    one = evaluate(single, tmp_path / "out1", cfg=EvalConfig(asr=False), progress=False)
    assert one["sets"]["generated"]["clips"][0]["voice_specificity"] is None  # nobody else to tell apart
