"""The synthetic talking world: people, splits by identity, clips in parallel, ground truth apart.

Layout of a world folder::

    config.yaml                         resolved SynthConfig
    videos/{clip_id}.mp4                H.264/AAC media: all a curation pipeline may look at
    ground_truth/people.jsonl           identities (face and voice parameters) and their split
    ground_truth/clips/{clip_id}.json   people, per-frame face boxes and yaw, speech segments
    stats.json                          counts and throughput

Every clip is a pure function of (seed, clip index), so the world is the same whatever the
number of workers, and an interrupted run resumes where it stopped (a clip is done once its
ground-truth file exists; media and ground truth are written atomically, media first).
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from facevox.config import dump, write_resolved
from facevox.io.atomic import atomic_write_json, atomic_write_text
from facevox.io.media import write_av
from facevox.synth.config import SynthConfig
from facevox.synth.face import sample_face
from facevox.synth.scene import Person, plan_clip, render_clip
from facevox.synth.voice import sample_voice

log = logging.getLogger(__name__)


def world_rng(seed: int, *key: int) -> np.random.Generator:
    """The generator of one part of a world: keys 0 split, 1 people, 2 casting, 3 clips, 5 photos."""
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def make_people(cfg: SynthConfig) -> list[Person]:
    """Draw identities; the last ``heldout_people`` of a seeded shuffle are held out."""
    order = world_rng(cfg.seed, 0).permutation(cfg.num_people)
    heldout = set(order[cfg.num_people - cfg.heldout_people :].tolist())
    people = []
    for i in range(cfg.num_people):
        rng = world_rng(cfg.seed, 1, i)
        people.append(
            Person(f"p{i:04d}", "heldout" if i in heldout else "train", sample_face(rng), sample_voice(rng))
        )
    return people


def cast_clips(cfg: SynthConfig, people: list[Person]) -> list[tuple[str, str, list[int]]]:
    """(clip_id, split, person indices) per clip; people are spread evenly over their split's clips."""
    rng = world_rng(cfg.seed, 2)
    n_held = round(cfg.num_clips * cfg.heldout_clip_fraction) if cfg.num_clips > 1 else 0
    splits = ["heldout"] * n_held + ["train"] * (cfg.num_clips - n_held)
    splits = [splits[i] for i in rng.permutation(len(splits))]
    pools = {s: [i for i, p in enumerate(people) if p.split == s] for s in ("train", "heldout")}
    uses = np.zeros(len(people))
    weights = np.asarray(cfg.people_per_clip, float)
    out = []
    for c, split in enumerate(splits):
        pool = pools[split]
        k = int(min(rng.choice(3, p=weights / weights.sum()) + 1, len(pool)))
        # least-used first, random tie-break: every person gets several clips (multi-view references)
        order = sorted(pool, key=lambda i: (uses[i], rng.random()))
        chosen = order[:k]
        uses[chosen] += 1
        out.append((f"c{c:06d}", split, chosen))
    return out


def _make_clip(
    cfg: SynthConfig, index: int, clip_id: str, split: str, people: list[Person], out_dir: str
) -> dict[str, Any]:
    rng = world_rng(cfg.seed, 3, index)
    plan = plan_clip(clip_id, split, people, cfg, rng)
    frames, audio, gt_people = render_clip(plan, cfg, rng)
    out = Path(out_dir)
    write_av(out / "videos" / f"{clip_id}.mp4", frames, cfg.fps, audio, cfg.sample_rate, crf=plan.crf)
    gt = {
        "clip_id": clip_id,
        "split": split,
        "fps": cfg.fps,
        "sample_rate": cfg.sample_rate,
        "num_frames": plan.num_frames,
        "duration": plan.duration,
        "width": cfg.width,
        "height": cfg.height,
        "people": gt_people,
        "segments": [
            {
                "person_id": people[s.slot].person_id,
                "slot": s.slot,
                "start": s.start,
                "end": s.end,
                "text": s.text,
            }
            for s in plan.segments
        ],
        "nuisance": {
            "blur": plan.blur,
            "noise": plan.noise,
            "crf": plan.crf,
            "light": list(plan.light),
            "ambient": plan.ambient,
            "head_px": plan.head_px,
        },
    }
    atomic_write_json(out / "ground_truth" / "clips" / f"{clip_id}.json", gt)
    return {"clip_id": clip_id, "frames": plan.num_frames, "seconds": plan.duration}


def start_folder(cfg: SynthConfig, out: Path, what: str) -> list[Person]:
    """Check that ``out`` is new or made with ``cfg`` (ValueError naming ``what`` otherwise), write the
    resolved config and the people's ground truth; return the people."""
    cfg_path = out / "config.yaml"
    if cfg_path.exists() and cfg_path.read_text() != dump(cfg):
        raise ValueError(f"{out} holds {what} made with another config; use a new folder or the same config")
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(cfg, out)
    people = make_people(cfg)
    atomic_write_text(
        out / "ground_truth" / "people.jsonl",
        "".join(json.dumps(p.to_dict(), sort_keys=True) + "\n" for p in people),
    )
    return people


def generate_world(cfg: SynthConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Generate (or finish generating) the world described by ``cfg`` in ``out_dir``."""
    out = Path(out_dir)
    people = start_folder(cfg, out, "a world")
    casts = cast_clips(cfg, people)
    todo = [
        (i, cid, split, idx)
        for i, (cid, split, idx) in enumerate(casts)
        if not (out / "ground_truth" / "clips" / f"{cid}.json").exists()
    ]
    if len(todo) < len(casts):
        log.info("resuming: %d of %d clips already done", len(casts) - len(todo), len(casts))
    t0 = time.perf_counter()
    made: list[dict[str, Any]] = []
    bar = tqdm(total=len(todo), desc="synth clips", unit="clip", disable=not progress)
    if cfg.workers == 1:
        for i, cid, split, idx in todo:
            made.append(_make_clip(cfg, i, cid, split, [people[j] for j in idx], str(out)))
            bar.update()
    else:
        with ProcessPoolExecutor(cfg.workers) as pool:
            futures = [
                pool.submit(_make_clip, cfg, i, cid, split, [people[j] for j in idx], str(out))
                for i, cid, split, idx in todo
            ]
            for fut in as_completed(futures):
                made.append(fut.result())
                bar.update()
    bar.close()
    wall = time.perf_counter() - t0
    n_people = {s: sum(p.split == s for p in people) for s in ("train", "heldout")}
    n_clips = {s: sum(c[1] == s for c in casts) for s in ("train", "heldout")}
    stats = {
        "people": n_people,
        "clips": n_clips,
        "clips_made_this_run": len(made),
        "seconds_made_this_run": round(sum(m["seconds"] for m in made), 2),
        "wall_seconds": round(wall, 2),
        "workers": cfg.workers,
        "clips_per_second": round(len(made) / wall, 3) if made and wall > 0 else None,
        "media_seconds_per_second": round(sum(m["seconds"] for m in made) / wall, 3)
        if made and wall > 0
        else None,
    }
    atomic_write_json(out / "stats.json", stats)
    log.info("world %s: %s", out, stats)
    return stats


def load_people(world_dir: str | Path) -> list[Person]:
    path = Path(world_dir) / "ground_truth" / "people.jsonl"
    return [Person.from_dict(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
