"""``facevox eval GENERATED_DIR --out OUT [--floor DIR] [--ceiling DIR]`` and
``facevox eval --build-benchmark WORLD --out OUT``."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("generated", nargs="?", help="folder of NAME.mp4 + NAME.json clips")
    p.add_argument("--out", required=True, help="where metrics.json and report.html go (or the benchmark)")
    p.add_argument("--floor", help="no-reference baseline clips (facevox generate --no-references)")
    p.add_argument("--ceiling", help="real held-out clips in the same format (the benchmark's real/)")
    p.add_argument(
        "--references",
        help="held-back views PERSON_ID.png (the benchmark's refs/heldout) for the copy-paste rate",
    )
    p.add_argument("--no-asr", action="store_true", help="skip the pocketsphinx WER")
    p.add_argument(
        "--build-benchmark", metavar="WORLD", help="write requests.jsonl + real/ from a synthetic world"
    )
    p.add_argument(
        "--idbench-omni",
        metavar="DIR",
        help="write requests.jsonl from a folder of DreamID-Omni-style test cases (oneip/ twoip/ imgs, audios, "
        "captions; docs/models.md), for `facevox generate --requests`",
    )
    p.add_argument("--duration", type=float, default=2.0, help="benchmark clip length in seconds")
    p.add_argument("--max-clips", type=int, default=8)
    p.add_argument(
        "--caption",
        choices=("described", "plain"),
        default="described",
        help="benchmark captions: 'described' (shot, background, each person's skin and hair, as curation "
        "describes clips) or 'plain' (the script alone; the pipeline's generic caption)",
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from facevox.evaluation.benchmark import build_benchmark
    from facevox.evaluation.metrics import EvalConfig
    from facevox.evaluation.suite import evaluate

    log = logging.getLogger(__name__)
    if args.idbench_omni:
        from facevox.evaluation.idbench import build_idbench_requests

        counts = build_idbench_requests(args.idbench_omni, args.out)
        log.info(
            "IDBench-Omni-style folder: %d requests (%d multi-person, %d skipped) in %s",
            counts["requests"],
            counts["multi_person"],
            counts["skipped"],
            args.out,
        )
        return 0
    if args.build_benchmark:
        counts = build_benchmark(
            args.build_benchmark,
            args.out,
            duration=args.duration,
            max_clips=args.max_clips,
            caption=args.caption,
        )
        log.info(
            "benchmark: %d requests (%d multi-person) in %s",
            counts["requests"],
            counts["multi_person"],
            args.out,
        )
        return 0
    if not args.generated:
        raise ValueError("give GENERATED_DIR (or --build-benchmark WORLD)")
    res = evaluate(
        args.generated,
        args.out,
        floor=args.floor,
        ceiling=args.ceiling,
        references=args.references,
        cfg=EvalConfig(asr=not args.no_asr),
    )
    log.info("metrics: %s", {k: v for k, v in res["sets"]["generated"]["aggregate"].items()})
    return 0
