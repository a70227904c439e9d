"""``facevox synth --out WORLD``: generate the synthetic talking world."""

from __future__ import annotations

import argparse
import logging

from facevox.cli_conventions import add_out, out_folder

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_out(p, "world folder to create (or resume)", legacy_positional=True)
    p.add_argument("--recipe", help="YAML file with SynthConfig fields")
    p.add_argument("--num-people", type=int, help="identities to draw (default 60)")
    p.add_argument("--heldout-people", type=int, help="identities never seen in train clips (default 12)")
    p.add_argument("--num-clips", type=int, help="clips to make (default 200)")
    p.add_argument("--seed", type=int, help="world seed (default 0)")
    p.add_argument("--workers", type=int, help="parallel processes (default 2)")
    p.add_argument(
        "--photos",
        type=int,
        metavar="VIEWS",
        help="instead of clips, photograph every person VIEWS times: an identity-labelled photo set "
        "for joint image training (`facevox encode-photos`)",
    )
    p.add_argument(
        "--measure-bars",
        action="store_true",
        help="after generation, measure the face/voice recogniser bars and write bars.json",
    )
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. fps=24 width=256"
    )


def run(args: argparse.Namespace) -> int:
    from facevox.config import load
    from facevox.synth.config import SynthConfig
    from facevox.synth.world import generate_world

    out = out_folder(args, "synth")
    cfg = load(
        SynthConfig,
        args.recipe,
        args.overrides,
        num_people=args.num_people,
        heldout_people=args.heldout_people,
        num_clips=args.num_clips,
        seed=args.seed,
        workers=args.workers,
    )
    if args.photos is not None:
        from facevox.synth.photos import generate_photos

        generate_photos(cfg, out, views=args.photos)
        return 0
    stats = generate_world(cfg, out)
    log.info(
        "%d clips in %.1f s (%.2f clips/s on %d workers)",
        stats["clips_made_this_run"],
        stats["wall_seconds"],
        stats["clips_per_second"] or 0.0,
        cfg.workers,
    )
    if args.measure_bars:
        from facevox.synth.bars import measure_bars

        measure_bars(out)
    return 0
