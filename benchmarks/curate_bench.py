"""Curate a synthetic world (or part of it) and print the scores against its ground truth.

    python benchmarks/curate_bench.py WORLD_DIR OUT_DIR [--clips N] [--workers 2] [key=value ...]

Takes the first N videos of WORLD_DIR/videos (symlinked into OUT_DIR/inputs), runs the pipeline
from scratch and prints detection recall/precision, identity purity/NMI, DER, binding accuracy,
ASR WER, reference leakage and throughput (video seconds per wall-clock second, map phase), each
measured in this one run.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

from facevox.config import load
from facevox.curate.config import CurateConfig
from facevox.curate.pipeline import curate
from facevox.curate.score import score


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("world")
    p.add_argument("out")
    p.add_argument("--clips", type=int, default=0, help="first N videos only (0 = all)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("overrides", nargs="*")
    args = p.parse_intermixed_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    inputs = out / "inputs"
    inputs.mkdir(parents=True)
    videos = sorted((Path(args.world) / "videos").glob("*.mp4"))
    for v in videos[: args.clips or None]:
        (inputs / v.name).symlink_to(v.resolve())
    cfg = load(
        CurateConfig,
        overrides=[
            f"input_dir={inputs}",
            f"out_dir={out / 'curated'}",
            f"workers={args.workers}",
            *args.overrides,
        ],
    )
    stats = curate(cfg, progress=False)
    result = score(cfg.out_dir, args.world)
    result["stages"] = stats["stages"]
    result["samples_by_kind"] = stats["samples_by_kind"]
    result["samples_dropped"] = stats["samples_dropped"]
    print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
