"""``facevox curate INPUT_DIR --out CURATED``: raw talking videos -> identity-annotated training samples."""

from __future__ import annotations

import argparse
import json
import logging

from facevox.cli_conventions import add_out, out_folder

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input_dir", help="folder of videos (mp4, mkv, webm, mov), searched recursively")
    add_out(
        p, "output folder (created; a rerun resumes where a previous run stopped)", legacy_positional=True
    )
    p.add_argument("--recipe", help="YAML file with CurateConfig fields")
    p.add_argument("--workers", type=int, help="parallel worker processes / Ray actors (default 2)")
    p.add_argument("--executor", choices=["local", "ray"], help="local process pool (default) or Ray Data")
    p.add_argument("--shard-size", type=int, help="videos per shard, i.e. per completion marker (default 4)")
    p.add_argument(
        "--ground-truth",
        metavar="GT_DIR",
        help="a synthetic world folder: score the run against its ground truth and write score.json",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. faces.detect_every=2"
    )


def run(args: argparse.Namespace) -> int:
    from facevox.config import load
    from facevox.curate.config import CurateConfig
    from facevox.curate.pipeline import curate
    from facevox.io.atomic import atomic_write_json

    cfg = load(
        CurateConfig,
        args.recipe,
        args.overrides,
        input_dir=args.input_dir,
        out_dir=out_folder(args, "curate"),
        workers=args.workers,
        executor=args.executor,
        shard_size=args.shard_size,
    )
    stats = curate(cfg, progress=not args.no_progress)
    log.info("stats: %s", json.dumps(stats, sort_keys=True))
    if args.ground_truth:
        from pathlib import Path

        from facevox.curate.score import score

        result = score(cfg.out_dir, args.ground_truth)
        atomic_write_json(Path(cfg.out_dir) / "score.json", result)
        log.info("score: %s", json.dumps(result, sort_keys=True))
    return 0
