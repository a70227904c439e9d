"""A held-out benchmark from a synthetic world: generation requests and their real counterparts.

For held-out clips (people never in training) with 1-3 people, each person gets face references
cropped from *other* held-out clips of that person (``views`` crops of different frames, with the
ground-truth box grown as curation grows it) and a voice reference cut from their speech in another
clip. Then

- ``requests.jsonl``: one generation request per clip for ``facevox generate --requests``: the
  ground-truth lines of the clip's first ``duration`` seconds with their real spans, seed ``seed + i`` for the i-th request,
  and (``caption="described"``, the default) the structured caption a user of the paper's format
  writes, described from the real clip's middle frame by curation's own functions: shot, lighting,
  background colour, and each person's place and skin and hair colours (as the training captions
  describe them). ``caption="plain"`` gives the script alone, so the pipeline fills in a generic
  caption (grey background, "a person"); no training caption looks like that;
- ``refs/heldout/PERSON.png``: one more view of each person (another clip when there is one) that
  is never given to the model, for the copy-paste rate;
- ``real/``: the same first ``duration`` seconds of the real clip as ``NAME.mp4`` + a
  ``facevox.generation/1`` sidecar naming the same references and turns: the ceiling, scored by
  ``facevox eval`` exactly like generated clips.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from PIL import Image

from facevox.curate.captions import describe_scene, describe_subject, render
from facevox.curate.faces import appearance, crop
from facevox.curate.shots import scene_stats
from facevox.io.atomic import atomic_write_json, atomic_write_text
from facevox.io.media import read_av, write_av
from facevox.layout import frame_fractions
from facevox.recognisers.faces import box_iou, detect_faces

log = logging.getLogger(__name__)


def _load_gt(world: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((world / "ground_truth" / "clips").glob("*.json"))]


def build_benchmark(
    world_dir: str | Path,
    out_dir: str | Path,
    *,
    duration: float = 2.0,
    max_clips: int = 8,
    views: int = 2,
    voice_seconds: float = 3.0,
    split: str = "heldout",
    seed: int = 0,
    caption: str = "described",
) -> dict[str, Any]:
    """Write ``requests.jsonl``, ``real/`` and ``refs/`` under ``out_dir``; returns counts."""
    if caption not in ("described", "plain"):
        raise ValueError(f"caption must be 'described' or 'plain', got {caption!r}")
    world, out = Path(world_dir), Path(out_dir)
    clips = [g for g in _load_gt(world) if g["split"] == split]
    if not clips:
        raise ValueError(f"{world} has no {split!r} clips")
    by_person: dict[str, list[dict[str, Any]]] = {}
    for g in clips:
        for p in g["people"]:
            by_person.setdefault(p["person_id"], []).append(g)
    rng = np.random.default_rng(seed)
    refs_dir, real_dir = out / "refs", out / "real"
    refs_dir.mkdir(parents=True, exist_ok=True)
    real_dir.mkdir(parents=True, exist_ok=True)
    requests: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    cache: dict[str, Any] = {}

    def media(g: dict[str, Any]) -> Any:
        if g["clip_id"] not in cache:
            cache.clear()
            cache[g["clip_id"]] = read_av(world / "videos" / f"{g['clip_id']}.mp4")
        return cache[g["clip_id"]]

    multi = [g for g in clips if len(g["people"]) > 1]
    single = [g for g in clips if len(g["people"]) == 1]
    order = [g for pair in zip(single, multi, strict=False) for g in pair]  # alternate single / multi
    order += single[len(multi) :] + multi[len(single) :]
    for g in order:
        if len(requests) >= max_clips:
            break
        name = g["clip_id"]
        others = {
            p["person_id"]: [
                o
                for o in by_person[p["person_id"]]
                if o["clip_id"] != name and any(s["person_id"] == p["person_id"] for s in o["segments"])
            ]
            for p in g["people"]
        }
        if any(not v for v in others.values()):
            skipped.append({"clip": name, "reason": "a person speaks in no other held-out clip"})
            continue
        lines = [s for s in g["segments"] if s["start"] < duration]
        if not lines:
            skipped.append({"clip": name, "reason": f"no speech in the first {duration} s"})
            continue
        people = []
        for p in sorted(g["people"], key=lambda p: p["slot"]):
            pid = p["person_id"]
            src = others[pid][int(rng.integers(len(others[pid])))]
            clip = media(src)
            entry = next(q for q in src["people"] if q["person_id"] == pid)
            faces = []
            for f in np.linspace(0, src["num_frames"] - 1, views + 2)[1:-1].astype(int):
                path = refs_dir / f"{name}_{pid}_from_{src['clip_id']}_f{f}.png"
                Image.fromarray(np.ascontiguousarray(crop(clip.video[f], entry["boxes"][f], 0.25))).save(path)
                faces.append(str(path.resolve()))
            held = refs_dir / "heldout" / f"{pid}.png"  # a view the model is not given (copy-paste rate)
            if not held.is_file():
                rest = [o for o in others[pid] if o["clip_id"] != src["clip_id"]]
                hsrc = rest[0] if rest else src
                hclip = media(hsrc) if rest else clip
                hent = next(q for q in hsrc["people"] if q["person_id"] == pid)
                hf = hsrc["num_frames"] // 2 if rest else hsrc["num_frames"] - 1
                held.parent.mkdir(exist_ok=True)
                Image.fromarray(np.ascontiguousarray(crop(hclip.video[hf], hent["boxes"][hf], 0.25))).save(
                    held
                )
                clip = media(src)
            segs = [s for s in src["segments"] if s["person_id"] == pid]
            audio = np.concatenate(
                [clip.audio[int(s["start"] * 16000) : int(s["end"] * 16000)] for s in segs]
            )
            voice = refs_dir / f"{name}_{pid}.wav"
            sf.write(voice, audio[: int(voice_seconds * 16000)], 16000)
            people.append(
                {
                    "name": pid,
                    "person_id": pid,
                    "faces": faces,
                    "voice": str(voice.resolve()),
                    "slot": p["slot"],
                }
            )
        turns = [
            {
                "slot": s["slot"],
                "name": s["person_id"],
                "text": s["text"],
                "start": round(s["start"], 2),
                "end": round(min(s["end"], duration), 2),
            }
            for s in lines
        ]
        clip = media(g)
        n = int(round(duration * g["fps"]))
        # the real turn spans ride in the script, so generated clips are asked for (and scored on) them
        script: str | dict[str, Any] = " ".join(
            f"[{t['name']} {t['start']:.2f}-{t['end']:.2f}] {t['text']}" for t in turns
        )
        mid = min(n, len(clip.video)) // 2  # the middle frame of the clip's window
        if caption == "described":
            script = described_caption(g, clip.video[mid], mid, people, turns)
        # where each face is in the real clip (as the shards record it for training): the layout a model
        # that places its face references is asked for, as the described caption asks for the scene
        for person in people:
            entry = next(q for q in g["people"] if q["person_id"] == person["person_id"])
            person["box"] = frame_fractions(entry["boxes"][mid], clip.video[mid].shape)
        requests.append(
            {
                "name": name,
                # one seed per request (the release's "seed = 103 + prompt index"): one seed for all
                # gave every one-person request the same noise, hence the same layout
                "seed": seed + len(requests),
                "duration": duration,
                "script": script,
                "people": [{k: v for k, v in p.items() if k != "slot"} for p in people],
            }
        )
        write_av(
            real_dir / f"{name}.mp4", clip.video[:n], g["fps"], clip.audio[: int(duration * 16000)], 16000
        )
        atomic_write_json(
            real_dir / f"{name}.json",
            {
                "format": "facevox.generation/1",
                "seed": None,
                "model": "real",
                "config": {},
                "timings": {},
                "fps": g["fps"],
                "sample_rate": 16000,
                "duration": duration,
                "width": g["width"],
                "height": g["height"],
                "references_used": {"faces": True, "voices": True},
                "people": [{k: v for k, v in p.items() if k != "name"} | {"name": p["name"]} for p in people],
                "caption": script if isinstance(script, dict) else {},
                "caption_text": render(script) if isinstance(script, dict) else "",
                "turns": turns,
            },
        )
    atomic_write_text(out / "requests.jsonl", "".join(json.dumps(r) + "\n" for r in requests))
    counts = {
        "requests": len(requests),
        "skipped": skipped,
        "people": sorted({p["person_id"] for r in requests for p in r["people"]}),
        "multi_person": sum(len(r["people"]) > 1 for r in requests),
        "caption": caption,
    }
    atomic_write_json(out / "benchmark.json", counts)
    return counts


def described_caption(
    g: dict[str, Any], frame: np.ndarray, f: int, people: list[dict[str, Any]], turns: list[dict[str, Any]]
) -> dict[str, Any]:
    """The structured caption of clip ``g`` as curation describes a clip (``docs/curate.md``), from
    its frame ``f``: scene from the frame, each person's place and colours from their face box there
    (curation's detector's box overlapping the ground-truth box most, so the skin and hair bands fall
    where curation measures them; the ground-truth box when none does). ``people`` are the request's
    people in slot order; ``turns`` the timed lines."""
    found = detect_faces(frame)
    boxes = {}
    for p in g["people"]:
        truth = [float(x) for x in p["boxes"][min(f, len(p["boxes"]) - 1)]]
        ious = box_iou(np.asarray(truth), found)[0]  # (len(found),)
        best = int(np.argmax(ious)) if len(found) else -1
        boxes[p["person_id"]] = [float(x) for x in found[best]] if best >= 0 and ious[best] > 0.2 else truth
    stats: dict[str, Any] = scene_stats(frame)
    height, width = frame.shape[:2]
    slot = {p["name"]: k + 1 for k, p in enumerate(people)}
    return {
        "scene": describe_scene(
            max(b[3] - b[1] for b in boxes.values()),
            height,
            float(stats["brightness"]),
            list(stats["background_rgb"]),
            len(people),
        ),
        "subjects": [
            describe_subject(
                k + 1,
                p["name"],
                (boxes[p["person_id"]][0] + boxes[p["person_id"]][2]) / 2,
                width,
                appearance(frame, boxes[p["person_id"]]),
            )
            for k, p in enumerate(people)
        ],
        "speech": [
            {"slot": slot[t["name"]], "start": t["start"], "end": t["end"], "text": t["text"]} for t in turns
        ],
    }
