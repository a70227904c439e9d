"""``facevox train-codec {video,audio} DATA --out DIR [--recipe YAML] [key=value ...]``."""

from __future__ import annotations

import argparse

from facevox.cli_conventions import add_out, deprecated, out_folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    # One sub-parser per kind, so that overrides may follow the options (argparse cannot take a
    # positional list after options when another positional precedes them).
    kinds = p.add_subparsers(dest="kind", metavar="{video,audio}", required=True)
    for kind in ("video", "audio"):
        k = kinds.add_parser(kind, help=f"train the tiny {kind} codec")
        k.add_argument("data", nargs="?", help="a synthetic world folder or any folder of mp4s")
        k.add_argument("--data", dest="legacy_data", help=argparse.SUPPRESS)
        add_out(k, "run folder (created, or resumed from its checkpoint)")
        k.add_argument("--recipe", help="YAML file with TrainCodecConfig fields")
        k.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. steps=500 video.z_dim=16")


def run(args: argparse.Namespace) -> int:
    from facevox.cli_conventions import UsageError
    from facevox.codecs.training import TrainCodecConfig, train_codec
    from facevox.config import load

    data = args.data
    if args.legacy_data:
        if data:
            raise UsageError(
                f"facevox train-codec: give the data folder once (got {data} and --data {args.legacy_data})"
            )
        deprecated("train-codec", f"--data {args.legacy_data}", f"the positional {args.legacy_data}")
        data = args.legacy_data
    if not data:
        raise UsageError(
            "facevox train-codec: the data folder is required (a world folder or a folder of mp4s)"
        )
    out = out_folder(args, "train-codec")
    cfg = load(TrainCodecConfig, args.recipe, args.overrides, kind=args.kind)
    train_codec(cfg, data, out)
    return 0
