"""``facevox train [SHARDS] --out RUN --recipe recipes/stage2_tiny.yaml [init=PREV_RUN] [key=value ...]``."""

from __future__ import annotations

import argparse

from facevox.cli_conventions import add_out, pop_override


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", help="shard folder written by `facevox encode` (or the recipe's data:)")
    add_out(p, "run folder (created, or resumed from its newest checkpoint)")
    p.add_argument("--recipe", help="YAML with TrainConfig fields (recipes/stage*_tiny.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. init=runs/base steps=100 lr=3e-4")


def run(args: argparse.Namespace) -> int:
    from facevox.cli_conventions import UsageError
    from facevox.config import load
    from facevox.training.config import TrainConfig
    from facevox.training.trainer import train

    data = args.data
    overrides, old_data = pop_override(args.overrides, "data", "train", "the positional SHARDS")
    overrides, old_out = pop_override(overrides, "out", "train", "--out")
    if (data and old_data) or (args.out and old_out):
        raise UsageError(
            "facevox train: give the shard folder and the run folder once each (SHARDS --out RUN)"
        )
    cfg = load(TrainConfig, args.recipe, overrides, data=data or old_data, out=args.out or old_out)
    if not cfg.out:
        raise UsageError("facevox train: --out RUN is required (the run folder)")
    train(cfg)
    return 0
