"""The ``facevox`` command: one verb per stage, each a thin ``main`` over the library.

Each verb module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and keeps heavy imports
inside ``run``, so ``facevox --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from facevox.cli_conventions import collect_overrides
from facevox.config import ConfigError
from facevox.logs import setup_logging

# verb -> (module, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "synth": ("facevox.synth.cli", "generate the synthetic talking world (people, clips, ground truth)"),
    "train-codec": ("facevox.codecs.cli", "train a tiny video or audio codec on a folder of mp4s"),
    "curate": ("facevox.curate.cli", "curate raw talking videos into identity-annotated training samples"),
    "encode": ("facevox.data.cli", "encode curated samples into latent shards for training"),
    "encode-photos": (
        "facevox.data.photos_cli",
        "encode an identity-labelled photo set into one-frame latent shards (joint image training)",
    ),
    "train": ("facevox.training.cli", "train one stage of the dual-tower DiT on latent shards"),
    "generate": (
        "facevox.pipeline.cli",
        "generate talking clips with speech from faces, voices and a script",
    ),
    "eval": (
        "facevox.evaluation.cli",
        "score generated clips (identity, sync, WER) between a floor and a ceiling",
    ),
    "serve": (
        "facevox.serve.cli",
        "a local web page: upload faces and voices, write a script, play the clip",
    ),
    "demo": ("facevox.demo", "run the whole system end to end on the embedded default"),
    "convert-mmaudio": (
        "facevox.codecs.mmaudio_convert",
        "convert MMAudio's 16 kHz VAE + vocoder pickles into a safetensors codec folder (once, offline)",
    ),
}

log = logging.getLogger("facevox")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facevox", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (module, help_text) in VERBS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come before or after the options: argparse leaves some over
    args, extra = parser.parse_known_args(argv)
    stray = collect_overrides(args, extra)
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if not args.verb:
        parser.print_help()
        return 2
    setup_logging(args.log_level)
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except ConfigError as err:
        log.error("config error: %s", err)
        return 2
    except ValueError as err:  # request, shard and model errors: a clear message, no traceback
        log.error("%s: %s", type(err).__name__, err)
        return 2
    # facevox's own RuntimeErrors (EncodeError, TrainError, CheckpointError, ...): said, no traceback
    except RuntimeError as err:
        if not type(err).__module__.startswith("facevox."):
            raise
        log.error("%s: %s", type(err).__name__, err)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
