"""``facevox serve [--model DIR] [--host 127.0.0.1 --port 7860]``: the local web page."""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", help="pipeline folder (a training run's release/); default: the shipped tiny model"
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--out", help="folder for uploads and results (default: a new temporary folder)")
    p.add_argument("--work", help=argparse.SUPPRESS)  # the old spelling of --out
    p.add_argument(
        "--max-waiting",
        type=int,
        default=16,
        help="jobs queued behind the running one before refusing (default 16)",
    )
    p.add_argument("--offload", action="store_true", help="keep each component on the CPU until it runs")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="the towers' dtype (default: float32)",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from facevox.pipeline import FacevoxPipeline
    from facevox.serve import JobRunner, make_server

    opts = {"device": args.device, "dtype": getattr(torch, args.dtype), "offload": args.offload}
    pipe = (
        FacevoxPipeline.from_pretrained(args.model, **opts)
        if args.model
        else FacevoxPipeline.from_shipped(**opts)
    )
    if args.work:
        from facevox.cli_conventions import UsageError, deprecated

        if args.out:
            raise UsageError("facevox serve: give the results folder once, as --out")
        deprecated("serve", f"--work {args.work}", f"--out {args.work}")
        args.out = args.work
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="facevox-serve-"))
    server = make_server(JobRunner(pipe, work, max_waiting=args.max_waiting), args.host, args.port)
    host, port = server.server_address[:2]
    log.info("facevox serve: http://%s:%d/ (uploads and results under %s; Ctrl-C stops)", host, port, work)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        server.server_close()
    return 0
