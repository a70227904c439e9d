"""Committed key / shape manifests of public checkpoints (names and shapes only, JSON data).

Each ``NAME.json`` is ``{"format": "facevox.manifest/1", "source": ..., "tensors": {key: shape}}``,
written by :mod:`facevox.models.manifests.describe` from the checkpoints' published architectures
(``python -m facevox.models.manifests.describe``), never from downloaded weights. Tests check that
facevox's real-size models map onto them one-to-one (``tests/test_release_manifests.py``).
"""

from __future__ import annotations

import json
from importlib import resources

MANIFEST_FORMAT = "facevox.manifest/1"
MANIFESTS = ("iap", "ovi")


def load_manifest(name: str) -> dict[str, tuple[int, ...]]:
    """The key -> shape table of a committed manifest; ValueError lists the names on a miss."""
    if name not in MANIFESTS:
        raise ValueError(f"unknown manifest {name!r}; known: {list(MANIFESTS)}")
    text = resources.files(__package__).joinpath(f"{name}.json").read_text()
    data = json.loads(text)
    if data.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"manifest {name!r} has format {data.get('format')!r}, expected {MANIFEST_FORMAT}")
    return {k: tuple(v) for k, v in data["tensors"].items()}
