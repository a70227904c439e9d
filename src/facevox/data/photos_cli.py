"""``facevox encode-photos PHOTO_DIR --out SHARDS [--fps 25] [key=value ...]`` (EncodeConfig fields)."""

from __future__ import annotations

import argparse

from facevox.cli_conventions import add_out, out_folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "photo_dir", help="one folder of photos per person (`facevox synth --photos VIEWS` writes one)"
    )
    add_out(p, "shard folder to create or resume")
    p.add_argument(
        "--fps", type=float, default=25.0, help="frame rate of the clip shards these join (default 25)"
    )
    p.add_argument("--recipe", help="YAML with EncodeConfig fields")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. video_codec=runs/codec-video")


def run(args: argparse.Namespace) -> int:
    from facevox.config import load
    from facevox.data.encode import EncodeConfig
    from facevox.data.photos import encode_photos

    out = out_folder(args, "encode-photos")
    cfg = load(EncodeConfig, args.recipe, args.overrides)
    encode_photos(cfg, args.photo_dir, out, fps=args.fps)
    return 0
