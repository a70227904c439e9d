"""Logging set-up for the command line: one handler, on rank 0 only; the library only logs."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str | int = "INFO") -> None:
    """Configure the root logger once for a CLI process (quiet on non-zero distributed ranks)."""
    rank = int(os.environ.get("RANK", "0"))
    root = logging.getLogger()
    if any(getattr(h, "_facevox", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._facevox = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level if rank == 0 else logging.WARNING)
