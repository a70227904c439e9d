"""``curate(cfg)``: plan shards, run the map phase on those not done, then the reduce phase.

Outputs under ``cfg.out_dir``::

    config.yaml              resolved CurateConfig
    shards/                  per-shard analyses, exclusions and completion markers
    crops/{clip_id}/*.png    face crops (reference candidates)
    audio/{clip_id}/*.wav    speech segments, 16 kHz mono (reference candidates)
    manifest.jsonl           one :class:`~facevox.curate.samples.Sample` per line
    manifest.parquet         the same records (pyarrow), when pyarrow is installed
    people.jsonl             dataset-wide person ids: tracks and speech per person
    exclusions.jsonl         every dropped input, part or sample, with stage and reason
    stats.json               per-stage counts and reasons, sample counts, throughput

The reduce phase reads only finished shards and rewrites its outputs whole (atomically), so
rerunning after a crash, or with nothing left to do, gives the same files.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from facevox.config import write_resolved
from facevox.curate.config import CurateConfig
from facevox.curate.samples import assign_people, build_samples
from facevox.curate.shards import is_done, plan_shards, read_shard
from facevox.curate.step import StepCounts
from facevox.io.atomic import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


def curate(cfg: CurateConfig, progress: bool = True) -> dict[str, Any]:
    if not cfg.input_dir or not cfg.out_dir:
        raise ValueError("curate needs both input_dir and out_dir")
    out = Path(cfg.out_dir)
    if out.resolve() == Path(cfg.input_dir).resolve():
        raise ValueError("out_dir must differ from input_dir")
    out.mkdir(parents=True, exist_ok=True)
    _remove_partial_writes(out)
    write_resolved(cfg, out)
    shards = plan_shards(cfg)
    todo = [s for s in shards if not is_done(out, s)]
    log.info(
        "%d videos in %d shards; %d shards to run", sum(len(s.inputs) for s in shards), len(shards), len(todo)
    )
    t0 = time.perf_counter()
    if cfg.executor == "ray":
        from facevox.curate.executors import run_ray

        run_ray(cfg, todo, progress)
    else:
        from facevox.curate.executors import run_local

        run_local(cfg, todo, progress)
    map_wall = time.perf_counter() - t0
    return reduce(cfg, shards, todo_names={s.name for s in todo}, map_wall=map_wall)


def _remove_partial_writes(out: Path) -> None:
    """Delete temporary files that a killed run's atomic writes left behind (hidden ``.name.*``)."""
    for sub in ("shards", "crops", "audio"):
        for tmp in (out / sub).rglob(".*"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
    for tmp in out.glob(".*"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def reduce(cfg: CurateConfig, shards: list, todo_names: set[str], map_wall: float) -> dict[str, Any]:
    out = Path(cfg.out_dir)
    analyses: list[dict[str, Any]] = []
    excluded: list[dict[str, str]] = []
    counts: dict[str, StepCounts] = {}
    seconds_this_run = cpu_this_run = 0.0
    for shard in shards:
        a, e, summary = read_shard(out, shard)
        analyses += a
        excluded += e
        for name, c in summary["counts"].items():
            counts.setdefault(name, StepCounts()).add(StepCounts(c["seen"], c["kept"], dict(c["dropped"])))
        if shard.name in todo_names:
            seconds_this_run += summary["video_seconds"]
            cpu_this_run += summary.get("cpu_seconds", 0.0)
    ds = assign_people(analyses, cfg)
    samples, dropped_samples = build_samples(ds, cfg)
    excluded += dropped_samples
    records = [s.to_dict() for s in samples]
    atomic_write_text(out / "manifest.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    _write_parquet(out / "manifest.parquet", records)
    atomic_write_text(
        out / "exclusions.jsonl", "".join(json.dumps(e, sort_keys=True) + "\n" for e in excluded)
    )
    people: dict[str, dict[str, Any]] = {}
    for (c, tid), p in sorted(ds.person_of.items()):
        people.setdefault(p, {"person_id": p, "tracks": [], "speech_seconds": 0.0})["tracks"].append([c, tid])
    for (c, sid), p in ds.segment_person.items():
        seg = next(s for s in ds.segments[c] if s.seg_id == sid)
        people[p]["speech_seconds"] = round(people[p]["speech_seconds"] + seg.end - seg.start, 3)
    atomic_write_text(
        out / "people.jsonl", "".join(json.dumps(v, sort_keys=True) + "\n" for _, v in sorted(people.items()))
    )
    total_seconds = sum(a["duration"] for a in analyses)
    stats = {
        "inputs": sum(len(s.inputs) for s in shards),
        "videos_kept": len(analyses),
        "video_seconds_kept": round(total_seconds, 3),
        "stages": {k: v.to_dict() for k, v in counts.items()},
        "samples": len(samples),
        "samples_by_kind": dict(Counter(s.kind for s in samples)),
        "samples_multiview": sum(s.multiview for s in samples),
        "samples_dropped": dict(Counter(d["reason"] for d in dropped_samples)),
        "exclusions_by_reason": dict(Counter(f"{e['stage']}:{e['reason']}" for e in excluded)),
        "people": len(people),
        "this_run": {
            "shards_run": len(todo_names),
            "video_seconds": round(seconds_this_run, 3),
            "map_wall_seconds": round(map_wall, 3),
            "realtime_factor": round(seconds_this_run / map_wall, 3) if todo_names and map_wall > 0 else None,
            # video seconds per CPU-second of the workers: the wall-clock figure on an idle machine
            # is about this times the number of workers (the wall figure above counts the machine's
            # other load too)
            "worker_cpu_seconds": round(cpu_this_run, 3),
            "video_seconds_per_cpu_second": round(seconds_this_run / cpu_this_run, 3)
            if cpu_this_run > 0
            else None,
            "workers": cfg.workers,
            "executor": cfg.executor,
        },
    }
    atomic_write_json(out / "stats.json", stats)
    log.info(
        "curated %d samples from %d videos (%d excluded items)", len(samples), len(analyses), len(excluded)
    )
    return stats


def _write_parquet(path: Path, records: list[dict[str, Any]]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        log.info(
            "pyarrow not installed: manifest.parquet not written (manifest.jsonl holds the same records)"
        )
        return
    # nested records: the caption dict is stored as its JSON text so the schema stays fixed
    rows = [{**r, "caption": json.dumps(r["caption"], sort_keys=True)} for r in records]
    table = pa.Table.from_pylist(rows) if rows else pa.table({"sample_id": pa.array([], pa.string())})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_manifest(out_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / "manifest.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
