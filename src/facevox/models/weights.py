"""Release weights: one safetensors file carrying the model config in its metadata.

``save_pretrained(model, dir)`` writes ``dir/model.safetensors`` (atomically); ``from_pretrained(dir)``
reads the config from the metadata, builds the model on the meta device and loads every tensor with
``strict=True, assign=True`` (no flags needed, nothing pickled).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from facevox.config import from_dict, to_dict
from facevox.io.atomic import atomic_path
from facevox.models.config import DualTowerConfig

if TYPE_CHECKING:
    from facevox.models.dual_tower import DualTowerDiT

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_KEY = "facevox.config"
FORMAT_KEY = "facevox.format"
FORMAT = "dual_tower_dit/1"


def save_pretrained(model: torch.nn.Module, directory: str | Path) -> Path:
    """Write the model's weights and config; returns the file written."""
    path = Path(directory) / WEIGHTS_NAME
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {CONFIG_KEY: json.dumps(to_dict(model.config)), FORMAT_KEY: FORMAT}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    logger.info("saved %d tensors to %s", len(tensors), path)
    return path


def read_config(directory: str | Path) -> DualTowerConfig:
    """The config stored in a saved model's metadata."""
    path = Path(directory) / WEIGHTS_NAME
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get(FORMAT_KEY) != FORMAT or CONFIG_KEY not in meta:
        raise ValueError(f"{path} is not a facevox {FORMAT} file (metadata keys: {sorted(meta)})")
    return from_dict(DualTowerConfig, json.loads(meta[CONFIG_KEY]))


def from_pretrained(
    cls: type[DualTowerDiT],
    directory: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> DualTowerDiT:
    """Build ``cls`` on the meta device and load strictly; ``dtype`` casts floating tensors if given.
    (The model class is passed in, so this module does not import the model module back.)"""
    config = read_config(directory)
    with torch.device("meta"):
        model = cls(config)
    state = load_file(str(Path(directory) / WEIGHTS_NAME), device=str(device))
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model
