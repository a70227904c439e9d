"""The map phase over shards: run the step chain on each video of a shard and write the shard's
outputs atomically, the completion marker last.

Files per shard ``k`` under ``OUT/shards/``::

    {name}.analysis.jsonl   one line per kept video (``ClipWork.analysis()``)
    {name}.excluded.jsonl   one line per dropped input or part (stage, reason, detail, item)
    {name}.done             completion marker (JSON: clip ids, per-stage counts, seconds)

A shard's name holds a hash of its members, so a rerun over the same inputs finds the same
shards and skips those with a marker; a shard killed half-way has no marker and is redone from
scratch, overwriting its partial files (nothing is appended, so nothing is duplicated).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facevox.curate.binding import ActiveSpeaker
from facevox.curate.config import CurateConfig
from facevox.curate.faces import FaceTracks
from facevox.curate.probe import ProbeDecode, clip_id_for, list_inputs, sidecar_subtitle
from facevox.curate.records import ClipWork
from facevox.curate.shots import ShotBoundaries
from facevox.curate.step import Drop, Step, StepCounts
from facevox.curate.transcripts import Transcribe
from facevox.curate.voice import VoiceDiarization
from facevox.io.atomic import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    name: str
    inputs: tuple[str, ...]  # absolute paths
    clip_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "inputs": list(self.inputs), "clip_ids": list(self.clip_ids)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Shard:
        return cls(d["name"], tuple(d["inputs"]), tuple(d["clip_ids"]))


def plan_shards(cfg: CurateConfig) -> list[Shard]:
    root = Path(cfg.input_dir)
    paths = list_inputs(root, cfg.extensions)
    shards = []
    for k in range(0, len(paths), cfg.shard_size):
        members = paths[k : k + cfg.shard_size]
        ids = tuple(clip_id_for(p, root) for p in members)
        digest = hashlib.sha1("\n".join(ids).encode()).hexdigest()[:8]
        shards.append(
            Shard(f"{k // cfg.shard_size:05d}-{digest}", tuple(str(p.absolute()) for p in members), ids)
        )
    return shards


def shard_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "shards"


def is_done(out_dir: str | Path, shard: Shard) -> bool:
    return (shard_dir(out_dir) / f"{shard.name}.done").exists()


def build_steps(cfg: CurateConfig) -> list[Step]:
    return [
        ProbeDecode(),
        ShotBoundaries(),
        FaceTracks(),
        VoiceDiarization(),
        ActiveSpeaker(),
        Transcribe(cfg.asr),
    ]


class ShardRunner:
    """Loads every step's model once, then processes whole shards. Used by both executors."""

    def __init__(self, cfg: CurateConfig) -> None:
        import torch

        torch.set_num_threads(1)  # one core per worker; parallelism comes from the executor
        self.cfg = cfg
        self.steps = build_steps(cfg)
        for step in self.steps:
            step.setup()

    def __call__(self, shard: Shard) -> dict[str, Any]:
        t0, c0 = time.perf_counter(), time.process_time()
        counts = {s.name: StepCounts() for s in self.steps}
        analyses: list[str] = []
        excluded: list[dict[str, str]] = []
        seconds = 0.0
        for source, clip_id in zip(shard.inputs, shard.clip_ids, strict=True):
            work = ClipWork(
                source=source,
                clip_id=clip_id,
                out_dir=self.cfg.out_dir,
                cfg=self.cfg,
                subtitle=sidecar_subtitle(Path(source)),
            )
            result: ClipWork | Drop = work
            for step in self.steps:
                counts[step.name].seen += 1
                t = time.perf_counter()
                try:
                    result = step.process(work)
                except Exception as err:  # bad input never stops the run: the video is dropped, with why
                    log.warning("%s: step %s failed: %r", source, step.name, err)
                    result = Drop(stage=step.name, reason="error", detail=f"{type(err).__name__}: {err}")
                work.timings[step.name] = round(time.perf_counter() - t, 4)
                if isinstance(result, Drop):
                    counts[step.name].dropped[result.reason] = (
                        counts[step.name].dropped.get(result.reason, 0) + 1
                    )
                    break
                counts[step.name].kept += 1
            excluded += [d.to_dict(source) for d in work.excluded]
            if isinstance(result, Drop):
                excluded.append(result.to_dict(source))
                continue
            seconds += work.duration
            analyses.append(json.dumps(work.analysis(), sort_keys=True))
        out = shard_dir(self.cfg.out_dir)
        atomic_write_text(out / f"{shard.name}.analysis.jsonl", "".join(a + "\n" for a in analyses))
        atomic_write_text(
            out / f"{shard.name}.excluded.jsonl",
            "".join(json.dumps(e, sort_keys=True) + "\n" for e in excluded),
        )
        summary = {
            "shard": shard.name,
            "clip_ids": list(shard.clip_ids),
            "kept": len(analyses),
            "video_seconds": round(seconds, 3),
            "wall_seconds": round(time.perf_counter() - t0, 3),
            "cpu_seconds": round(time.process_time() - c0, 3),  # this worker's CPU time (all threads)
            "counts": {k: v.to_dict() for k, v in counts.items()},
        }
        atomic_write_json(out / f"{shard.name}.done", summary)  # the marker: written last
        return summary


def read_shard(
    out_dir: str | Path, shard: Shard
) -> tuple[list[dict[str, Any]], list[dict[str, str]], dict[str, Any]]:
    d = shard_dir(out_dir)
    analyses = [
        json.loads(x) for x in (d / f"{shard.name}.analysis.jsonl").read_text().splitlines() if x.strip()
    ]
    excluded = [
        json.loads(x) for x in (d / f"{shard.name}.excluded.jsonl").read_text().splitlines() if x.strip()
    ]
    return analyses, excluded, json.loads((d / f"{shard.name}.done").read_text())
