"""A folder laid out as DreamID-Omni's public inference script reads its test cases (``oneip/`` and
``twoip/`` with ``imgs``, ``audios``, ``captions``) read into requests that DreamID-Omni's checks accept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dreamid_fixtures import make_people
from facevox.evaluation.idbench import build_idbench_requests, read_idbench_omni
from facevox.pipeline import RequestError
from facevox.pipeline.dreamid import check_dreamid_request
from facevox.pipeline.request import read_requests
from facevox.release.dreamid_captions import to_dreamid_caption


def _caption(people: int, end: float = 4.0) -> str:
    subjects = [
        {
            "slot": k,
            "position": ("left", "right")[k - 1] if people > 1 else "centre",
            "appearance": "a person",
        }
        for k in range(1, people + 1)
    ]
    speech = [
        {"slot": k, "start": 2.0 * (k - 1), "end": min(end, 2.0 * k), "text": f"Line {k}."}
        for k in range(1, people + 1)
    ]
    scene = {"shot": "medium shot", "lighting": "soft", "background": "grey"}
    return to_dreamid_caption({"scene": scene, "subjects": subjects, "speech": speech})


def make_bench(root: Path) -> Path:
    (img0, wav0), (img1, wav1) = make_people(root / "src")
    one, two = root / "bench" / "oneip", root / "bench" / "twoip"
    for sub in ("imgs/9", "audios/9", "captions"):
        (one / sub).mkdir(parents=True)
    (one / "imgs/9/9.png").write_bytes(img0.read_bytes())
    (one / "audios/9/9.wav").write_bytes(wav0.read_bytes())
    (one / "captions/9.json").write_text(json.dumps(_caption(1)))
    for item in ("20", "21"):
        for sub in (f"imgs/{item}", f"audios/{item}", "captions"):
            (two / sub).mkdir(parents=True, exist_ok=True)
        (two / f"imgs/{item}/0.png").write_bytes(img0.read_bytes())
        (two / f"imgs/{item}/1.png").write_bytes(img1.read_bytes())
        (two / f"audios/{item}/0.wav").write_bytes(wav0.read_bytes())
        (two / f"captions/{item}.json").write_text(json.dumps(_caption(2)))
    (two / "audios/20/1.wav").write_bytes(wav1.read_bytes())  # item 21 lacks its second voice
    return root / "bench"


def test_reads_the_engines_test_case_layout(tmp_path: Path) -> None:
    bench = make_bench(tmp_path)
    requests, skipped = read_idbench_omni(bench)
    assert [r.name for r in requests] == ["oneip_9", "twoip_20"]
    assert skipped == [("twoip_21", f"missing {bench / 'twoip/audios/21/1.wav'}")]
    duo = requests[1]
    assert [p.name for p in duo.people] == ["sub1", "sub2"]
    assert duo.people[1].faces == (str(bench / "twoip/imgs/20/1.png"),)
    assert duo.people[1].voice == str(bench / "twoip/audios/20/1.wav")
    assert (duo.duration, duo.seed) == (121 / 24, 100)
    for r in requests:  # DreamID-Omni's own checks accept them (people, caption, times, clip)
        checked = check_dreamid_request(r)
        assert checked.frames == 121 and (checked.height, checked.width) == (704, 1280)
        assert "<S>Line 1.<E>" in checked.prompt

    counts = build_idbench_requests(bench, tmp_path / "out")
    assert counts == {"requests": 2, "multi_person": 1, "skipped": 1}
    again = read_requests(tmp_path / "out" / "requests.jsonl")
    assert [(r.name, r.script, r.people) for r in again] == [(r.name, r.script, r.people) for r in requests]
    assert json.loads((tmp_path / "out" / "skipped.json").read_text())[0]["item"] == "twoip_21"


def test_cli_and_refusals(tmp_path: Path) -> None:
    from facevox.cli import main

    bench = make_bench(tmp_path)
    assert main(["eval", "--idbench-omni", str(bench), "--out", str(tmp_path / "out")]) == 0
    assert len((tmp_path / "out" / "requests.jsonl").read_text().splitlines()) == 2
    with pytest.raises(RequestError, match="no oneip/imgs or twoip/imgs"):
        read_idbench_omni(tmp_path / "src")
    (bench / "oneip/captions/9.json").write_text(json.dumps({"not": "a string"}))
    requests, skipped = read_idbench_omni(bench)
    assert [r.name for r in requests] == ["twoip_20"]
    assert skipped[0] == ("oneip_9", f"{bench / 'oneip/captions/9.json'}: expected a JSON string, got dict")
