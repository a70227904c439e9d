"""``facevox encode CURATED_DIR --out SHARDS video_codec=DIR audio_codec=DIR [key=value ...]``."""

from __future__ import annotations

import argparse

from facevox.cli_conventions import add_out, out_folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("curated_dir", help="output folder of `facevox curate`, or its manifest.jsonl")
    add_out(p, "shard folder to create or resume", legacy_positional=True)
    p.add_argument("--recipe", help="YAML with EncodeConfig fields")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. video_codec=runs/codec-video")


def run(args: argparse.Namespace) -> int:
    from facevox.config import load
    from facevox.data.encode import EncodeConfig, encode

    out = out_folder(args, "encode")
    cfg = load(EncodeConfig, args.recipe, args.overrides)
    encode(cfg, args.curated_dir, out)
    return 0
