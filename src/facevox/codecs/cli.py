"""``facevox train-codec {video,audio} --data DIR --out DIR [key=value ...]``."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    # One sub-parser per kind, so that overrides may follow the options (argparse cannot take a
    # positional list after options when another positional precedes them).
    kinds = p.add_subparsers(dest="kind", metavar="{video,audio}", required=True)
    for kind in ("video", "audio"):
        k = kinds.add_parser(kind, help=f"train the tiny {kind} codec")
        k.add_argument("--data", required=True, help="a synthetic world folder or any folder of mp4s")
        k.add_argument("--out", required=True, help="run folder (created, or resumed from its checkpoint)")
        k.add_argument("--recipe", help="YAML file with TrainCodecConfig fields")
        k.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. steps=500 video.z_dim=16")


def run(args: argparse.Namespace) -> int:
    from facevox.codecs.training import TrainCodecConfig, train_codec
    from facevox.config import load

    cfg = load(TrainCodecConfig, args.recipe, args.overrides, kind=args.kind)
    train_codec(cfg, args.data, args.out)
    return 0
