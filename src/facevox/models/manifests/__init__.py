"""Committed key / shape manifests of public checkpoints (names and shapes only, JSON data).

Each ``NAME.json`` is ``{"format": "facevox.manifest/1", "source": ..., "tensors": {key: shape}}``,
written by :mod:`facevox.models.manifests.describe` from the checkpoints' published architectures
(``python -m facevox.models.manifests.describe``), never from downloaded weights. Tests check that
facevox's real-size models map onto them one-to-one (``tests/test_release_manifests.py``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from importlib import resources
from pathlib import Path

MANIFEST_FORMAT = "facevox.manifest/1"
MANIFESTS = ("iap", "ovi", "mmaudio_vae_16k", "bigvgan_16k", "dreamid_omni")


def load_manifest(name: str) -> dict[str, tuple[int, ...]]:
    """The key -> shape table of a committed manifest; ValueError lists the names on a miss."""
    if name not in MANIFESTS:
        raise ValueError(f"unknown manifest {name!r}; known: {list(MANIFESTS)}")
    text = resources.files(__package__).joinpath(f"{name}.json").read_text()
    data = json.loads(text)
    if data.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"manifest {name!r} has format {data.get('format')!r}, expected {MANIFEST_FORMAT}")
    return {k: tuple(v) for k, v in data["tensors"].items()}


def write_manifests(describe: Callable[[str], dict[str, tuple[int, ...]]], sources: dict[str, str]) -> None:
    """Rewrite ``NAME.json`` next to this module for every name in ``sources``."""
    from facevox.io.atomic import atomic_write_json

    here = Path(__file__).parent
    for name, source in sources.items():
        tensors = {k: list(v) for k, v in describe(name).items()}
        atomic_write_json(
            here / f"{name}.json", {"format": MANIFEST_FORMAT, "source": source, "tensors": tensors}
        )
        logging.getLogger(__name__).info("%s: %d tensors", name, len(tensors))
