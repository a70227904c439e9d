"""The tiny codecs this project trained on its synthetic world and ships inside the package.

``facevox train-codec video|audio WORLD --out DIR`` reproduces them (the command, data and
commit are recorded in each folder's ``PROVENANCE.json``); real-size codecs load from local folders.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from facevox.codecs.base import CodecFilesError


def default_codec_dir(kind: Literal["video", "audio"]) -> Path:
    """The shipped tiny codec folder of ``kind``; CodecFilesError if this install lacks it."""
    if kind not in ("video", "audio"):
        raise ValueError(f"kind must be 'video' or 'audio', got {kind!r}")
    folder = Path(str(resources.files("facevox") / "assets" / "codecs" / kind))
    if not (folder / "config.json").is_file():
        raise CodecFilesError(
            f"no shipped {kind} codec at {folder}: pass {kind}_codec=DIR (train one with `facevox train-codec {kind}`)"
        )
    return folder
