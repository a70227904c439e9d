"""The tiny model this project trained and ships inside the package.

``scripts/train_shipped_model.sh`` reproduces it (synthetic world of its own people -> curate ->
encode -> base -> stages 1-3, every command recorded in ``PROVENANCE.json`` beside the weights).
Its people are drawn with another world seed than ``facevox demo``'s, so the demo's people, held-out
or not, were never seen by it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


class ShippedModelError(FileNotFoundError):
    """This install has no shipped model; the message says how to make or pass one."""


def default_model_dir(name: str = "tiny") -> Path:
    """Folder of the shipped ``name`` model (``model.safetensors`` + ``PROVENANCE.json``)."""
    folder = Path(str(resources.files("facevox") / "assets" / "models" / name))
    if not (folder / "model.safetensors").is_file():
        raise ShippedModelError(
            f"no shipped {name!r} model at {folder}: pass a model folder instead "
            "(make one with scripts/train_shipped_model.sh or `facevox train`)"
        )
    return folder
