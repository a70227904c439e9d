"""The held-out benchmark builder: requests for unseen people, references from other clips, real set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facevox.curate.captions import colour_name
from facevox.curate.shots import scene_stats
from facevox.evaluation.benchmark import build_benchmark
from facevox.io.media import read_av
from facevox.pipeline.request import parse_script, read_requests, structured_caption
from facevox.synth.config import SynthConfig
from facevox.synth.world import generate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    cfg = SynthConfig(
        num_people=4,
        heldout_people=2,
        num_clips=8,
        heldout_clip_fraction=0.5,
        min_duration=2.0,
        max_duration=3.0,
        width=160,
        height=120,
    )
    generate_world(cfg, out, progress=False)
    return out


def test_benchmark_uses_only_heldout_people_and_other_clips(world: Path, tmp_path: Path) -> None:
    counts = build_benchmark(world, tmp_path, duration=1.0, max_clips=4, caption="plain")
    assert counts["requests"] >= 2 and counts["multi_person"] >= 1
    people = {
        json.loads(line)["person_id"]: json.loads(line)["split"]
        for line in (world / "ground_truth" / "people.jsonl").read_text().splitlines()
    }
    reqs = read_requests(tmp_path / "requests.jsonl")  # also checks every reference file exists
    assert [r.seed for r in reqs] == list(range(len(reqs)))  # one seed per request: no shared noise layout
    for r in reqs:
        assert {people[p.person_id] for p in r.people} == {"heldout"}
        lines = parse_script(r.script)
        assert {n for n, *_ in lines} <= {p.name for p in r.people}
        assert all(s is not None and 0 <= s < e <= r.duration + 0.02 for _, _, s, e in lines)  # real spans
        for p in r.people:  # references come from other clips than the request's own
            for f in p.faces:  # named REQUEST_PERSON_from_SOURCECLIP_fFRAME.png
                assert Path(f).name.startswith(f"{r.name}_{p.person_id}_from_")
                assert Path(f).name.split("_from_")[1].split("_f")[0] != r.name
            assert (tmp_path / "refs" / "heldout" / f"{p.person_id}.png").is_file()
        side = json.loads((tmp_path / "real" / f"{r.name}.json").read_text())
        assert side["format"] == "facevox.generation/1" and len(side["people"]) == len(r.people)
        assert read_av(tmp_path / "real" / f"{r.name}.mp4").video.shape[0] == 25  # 1 s at 25 fps
    with pytest.raises(ValueError, match="no 'nobody' clips"):
        build_benchmark(world, tmp_path / "x", split="nobody")


def test_described_captions_follow_the_real_clip_and_keep_its_spans(world: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    build_benchmark(world, plain, duration=1.0, max_clips=4, caption="plain")
    counts = build_benchmark(world, tmp_path / "described", duration=1.0, max_clips=4)
    assert counts["caption"] == "described"
    described = {r.name: r for r in read_requests(tmp_path / "described" / "requests.jsonl")}
    for r in read_requests(plain / "requests.jsonl"):
        d = described[r.name]
        caption, turns = structured_caption(d)  # a valid structured caption for these people
        assert [s["person_id"] for s in caption["subjects"]] == [p.name for p in d.people]
        assert caption["scene"]["num_subjects"] == len(d.people)
        for s in caption["subjects"]:
            assert s["appearance"].startswith("a person with ") and s["appearance"].endswith(" hair")
        # the same lines at the same real spans as the plain script
        spans = [(n, t, round(a, 2), round(b, 2)) for n, t, a, b in parse_script(r.script)]
        assert [(x["name"], x["text"], round(x["start"], 2), round(x["end"], 2)) for x in turns] == spans
        real = json.loads((tmp_path / "described" / "real" / f"{r.name}.json").read_text())
        assert real["caption"] == d.script and "<REF_1_S>a person with " in real["caption_text"]
        # the background is the real clip's, named as curation names it
        frame = read_av(world / "videos" / f"{r.name}.mp4").video[12]
        assert caption["scene"]["background"] == colour_name(list(scene_stats(frame)["background_rgb"]))
    with pytest.raises(ValueError, match="caption must be"):
        build_benchmark(world, tmp_path / "y", caption="fancy")
