"""``facevox encode CURATED_DIR OUT_DIR video_codec=DIR audio_codec=DIR [key=value ...]``."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("curated_dir", help="output folder of `facevox curate`, or its manifest.jsonl")
    p.add_argument("out_dir", help="shard folder to create or resume")
    p.add_argument("--recipe", help="YAML with EncodeConfig fields")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. video_codec=runs/codec-video")


def run(args: argparse.Namespace) -> int:
    from facevox.config import load
    from facevox.data.encode import EncodeConfig, encode

    cfg = load(EncodeConfig, args.recipe, args.overrides)
    encode(cfg, args.curated_dir, args.out_dir)
    return 0
