"""Face layouts: boxes checked, the training windows' mean layouts, a request's planned boxes, and
generation with a model that places its face references on them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from curate_fixtures import have_espeak
from facevox.io.media import read_av
from facevox.layout import check_box, frame_fractions, mean_face_layouts, plan_face_boxes
from facevox.pipeline import FacevoxPipeline, GenerationRequest, Person, RequestError
from facevox.pipeline.pipeline import GenerateConfig
from facevox.pipeline.request import parse_person, read_requests, with_boxes
from pipeline_fixtures import make_inputs, make_pipeline_dir


def test_boxes_are_checked() -> None:
    assert check_box([0.1, 0.2, 0.5, 0.6], "x") == (0.1, 0.2, 0.5, 0.6)
    for bad in ([0.5, 0.2, 0.1, 0.6], [0.1, 0.2, 0.5, 1.2], [0.1, 0.2, 0.5], "abcd"):
        with pytest.raises(ValueError, match="x: "):
            check_box(bad, "x")  # type: ignore[arg-type]
    assert frame_fractions([10, 20, 50, 60], (100, 200, 3)) == [0.05, 0.2, 0.25, 0.6]


def _shard(path: Path, boxes: list[list[float]] | None) -> Path:
    meta = {} if boxes is None else {"face_boxes": boxes}
    save_file({"x": torch.zeros(1)}, str(path), metadata={"meta": json.dumps(meta)})
    return path


def test_mean_layouts_by_number_of_people_left_to_right(tmp_path: Path) -> None:
    paths = [
        _shard(tmp_path / "a", [[0.2, 0.1, 0.6, 0.5]]),
        _shard(tmp_path / "b", [[0.4, 0.3, 0.8, 0.7]]),
        _shard(tmp_path / "c", [[0.6, 0.2, 0.9, 0.5], [0.1, 0.2, 0.4, 0.5]]),  # right one listed first
        _shard(tmp_path / "d", None),
    ]
    layouts = mean_face_layouts(paths)
    assert layouts[0] == ((0.3, 0.2, 0.7, 0.6),)
    assert layouts[1] == ((0.1, 0.2, 0.4, 0.5), (0.6, 0.2, 0.9, 0.5))
    assert mean_face_layouts([tmp_path / "d"]) == ()


def test_planned_boxes() -> None:
    one = ((0.3, 0.2, 0.7, 0.6),)
    two = ((0.1, 0.2, 0.4, 0.5), (0.6, 0.2, 0.9, 0.5))
    layouts = (one, two)
    assert plan_face_boxes([None], layouts) == [one[0]]
    own = (0.0, 0.0, 0.5, 0.5)
    assert plan_face_boxes([own, None], layouts) == [own, two[1]]
    four = plan_face_boxes([None] * 4, layouts)  # none recorded for 4: two's face size, spread evenly
    assert len(four) == 4 and all(b[2] - b[0] == pytest.approx(0.25) for b in four)
    assert [round((b[0] + b[2]) / 2, 3) for b in four] == [0.125, 0.375, 0.625, 0.875]
    with pytest.raises(ValueError, match="records no face layout"):
        plan_face_boxes([None], ())


def test_a_person_box_is_checked_and_read(tmp_path: Path) -> None:
    (tmp_path / "f.png").write_bytes(b"x")
    (tmp_path / "v.wav").write_bytes(b"x")
    f, v = str(tmp_path / "f.png"), str(tmp_path / "v.wav")
    assert Person(name="a", faces=(f,), voice=v, box=(0.1, 0.1, 0.5, 0.5)).box == (0.1, 0.1, 0.5, 0.5)
    with pytest.raises(RequestError, match="person 'a': face box"):
        Person(name="a", faces=(f,), voice=v, box=(0.5, 0.1, 0.1, 0.5))
    line = {
        "name": "r",
        "script": "[a] hi",
        "people": [{"name": "a", "faces": [f], "voice": v, "box": [0, 0, 1, 1]}],
    }
    (tmp_path / "r.jsonl").write_text(json.dumps(line) + "\n")
    assert read_requests(tmp_path / "r.jsonl")[0].people[0].box == (0.0, 0.0, 1.0, 1.0)


@pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng")
def test_generation_places_the_faces(tmp_path: Path) -> None:
    layouts = (((0.3, 0.1, 0.7, 0.7),), ((0.05, 0.1, 0.45, 0.7), (0.55, 0.1, 0.95, 0.7)))
    d = make_pipeline_dir(tmp_path / "pipe", ref_position_mode="placed", face_layouts=layouts)
    pipe = FacevoxPipeline.from_pretrained(d)
    inputs = make_inputs(tmp_path / "in")

    def request(name: str, box: tuple[float, float, float, float] | None) -> GenerationRequest:
        people = (
            Person(name="alice", faces=(str(inputs["alice.png"]),), voice=str(inputs["alice.wav"]), box=box),
            Person(name="bob", faces=(str(inputs["bob.png"]),), voice=str(inputs["bob.wav"])),
        )
        return GenerationRequest(
            name=name, people=people, script="[alice] Hello. [bob] Hi!", duration=1.0, seed=1
        )

    cfg = GenerateConfig(steps=2)
    planned = pipe(request("planned", None), tmp_path / "out", config=cfg)
    assert planned.sidecar["face_boxes"] == [list(b) for b in layouts[1]]
    moved = pipe(request("moved", (0.5, 0.3, 0.9, 0.9)), tmp_path / "out", config=cfg)
    assert moved.sidecar["face_boxes"] == [[0.5, 0.3, 0.9, 0.9], list(layouts[1][1])]
    a, b = (read_av(r.video_path).video.astype(int) for r in (planned, moved))
    assert np.abs(a - b).mean() > 0.5  # where alice's face goes is part of the conditions
    again = pipe(request("again", None), tmp_path / "out", config=cfg)
    assert np.abs(read_av(again.video_path).video.astype(int) - a).mean() < 1.0
    floor = pipe(
        dataclasses.replace(request("floor", None), use_faces=False, use_voices=False),
        tmp_path / "out",
        config=cfg,
    )
    assert "face_boxes" not in floor.sidecar  # no face references, nothing placed
    two_pass = pipe(
        request("two_pass", None), tmp_path / "out", config=GenerateConfig(steps=2, guidance="two_pass")
    )
    assert two_pass.sidecar["face_boxes"] == planned.sidecar["face_boxes"]


def test_box_flags(tmp_path: Path) -> None:
    (tmp_path / "f.png").write_bytes(b"x")
    (tmp_path / "v.wav").write_bytes(b"x")
    people = (
        parse_person(f"alice={tmp_path / 'f.png'}:{tmp_path / 'v.wav'}"),
        parse_person(f"bob={tmp_path / 'f.png'}:{tmp_path / 'v.wav'}"),
    )
    placed = with_boxes(people, ["bob=0.5,0.2,0.9,0.8"])
    assert placed[0].box is None and placed[1].box == (0.5, 0.2, 0.9, 0.8)
    for spec, message in (
        ("carol=0,0,1,1", "no --person named 'carol'"),
        ("bob=0,0,1", "expected NAME=X0,Y0,X1,Y1"),
        ("bob=0,0,x,1", "four numbers"),
        ("bob=0.5,0,0.1,1", "must lie in the frame"),
    ):
        with pytest.raises(RequestError, match=message):
            with_boxes(people, [spec])
