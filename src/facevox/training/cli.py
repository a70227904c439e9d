"""``facevox train --recipe recipes/stage2_tiny.yaml data=SHARDS out=RUN init=PREV_RUN``."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", help="YAML with TrainConfig fields (recipes/stage*_tiny.yaml)")
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="e.g. data=runs/shards out=runs/base steps=100"
    )


def run(args: argparse.Namespace) -> int:
    from facevox.config import load
    from facevox.training.config import TrainConfig
    from facevox.training.trainer import train

    cfg = load(TrainConfig, args.recipe, args.overrides)
    train(cfg)
    return 0
