"""A memorisation set: the first N training windows (frame 0 of a clip) of a shard folder, with the
benchmark requests, real clips and references of those clips, for benchmarks/memorisation_curve.sh.

Writes under ``--out``: ``shards/`` (the chosen windows' index lines, sample files linked, split
train), ``bench/`` (``build_benchmark`` of the world's training clips: requests.jsonl, real/, refs/)
and ``requests.jsonl`` + ``real/`` holding the chosen clips only, beside ``refs`` (a link to
``bench/refs``): a benchmark folder as ``scripts/sample_and_score.sh`` reads one.

    python benchmarks/memorisation_set.py --world runs/id/world --shards runs/id/shards_fb --windows 32 --out runs/memo/set32
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from facevox.evaluation.benchmark import build_benchmark
from facevox.io.atomic import atomic_write_text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", required=True, help="the synthetic world the shards were curated from")
    p.add_argument("--shards", required=True, help="shard folder (facevox encode) of that world")
    p.add_argument("--windows", type=int, required=True, help="training windows to keep")
    p.add_argument("--max-clips", type=int, default=80, help="benchmark clips to build first (default 80)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    src = Path(args.shards)
    first = {}  # clip -> its frame-0 training window
    for line in (src / "index.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e["split"] == "train" and e["sample_id"].endswith("_s00_f00000"):
            first[e["sample_id"].split("_")[0]] = e
    bench = args.out / "bench"
    if not (bench / "requests.jsonl").is_file():
        build_benchmark(args.world, bench, duration=1.0, max_clips=args.max_clips, split="train")
    requests = [json.loads(x) for x in (bench / "requests.jsonl").read_text().splitlines()]
    keep = [r for r in requests if r["name"] in first][: args.windows]
    if len(keep) < args.windows:
        raise SystemExit(f"only {len(keep)} of {args.windows} windows found: raise --max-clips")
    shards, real = args.out / "shards", args.out / "real"
    (shards / "samples").mkdir(parents=True, exist_ok=True)
    real.mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "encode.json", "null_caption.safetensors"):
        shutil.copy(src / name, shards / name)
    lines = []
    for r in keep:
        e = first[r["name"]]
        lines.append(json.dumps(e) + "\n")
        link = shards / e["file"]
        if not link.exists():
            link.symlink_to((src / e["file"]).resolve())
        for ext in ("mp4", "json"):
            clip = real / f"{r['name']}.{ext}"
            if not clip.exists():
                clip.symlink_to((bench / "real" / f"{r['name']}.{ext}").resolve())
    atomic_write_text(shards / "index.jsonl", "".join(lines))
    if not (args.out / "refs").exists():
        (args.out / "refs").symlink_to("bench/refs")
    atomic_write_text(args.out / "requests.jsonl", "".join(json.dumps(r) + "\n" for r in keep))
    people = sum(len(r["people"]) for r in keep)
    print(f"{len(keep)} windows, {people} people -> {args.out}")


if __name__ == "__main__":
    main()
