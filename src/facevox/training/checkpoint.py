"""Resumable training state, written atomically, without pickle.

A checkpoint is a folder ``OUT/checkpoints/step-NNNNNNN/`` holding

- ``model.safetensors``: every parameter and buffer of the model;
- ``ema.safetensors``: the exponential moving average of the parameters;
- ``optimizer.safetensors``: AdamW's per-parameter state, flattened to ``{name}.{key}`` tensors
  (keyed by parameter *name*, so a checkpoint survives a change of parameter order);
- ``rng.safetensors``: torch's global CPU RNG state (the objective's draws are seeded per step);
- ``state.json``: step, sampler position, optimiser hyper-parameters, config — written last.

The folder is assembled under a temporary name and renamed into place, so a ``kill -9`` leaves
either a complete checkpoint or a ``*.tmp`` folder that :func:`latest_checkpoint` ignores (and
:func:`save_checkpoint` removes).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that is incomplete or does not fit the model; the message names the folder."""


def _optimizer_tensors(opt: torch.optim.Optimizer, names: dict[int, str]) -> tuple[dict, list]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"{names[idx]}.{key}"] = t.detach().cpu().contiguous()
    groups = [
        {**{k: v for k, v in g.items() if k != "params"}, "params": [names[i] for i in g["params"]]}
        for g in sd["param_groups"]
    ]
    return tensors, groups


def save_checkpoint(
    folder: str | Path,
    step: int,
    *,
    model: nn.Module,
    ema: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    param_names: list[str],
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write ``folder/step-{step}`` atomically and keep the newest ``keep`` checkpoints."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = root / f"step-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    names = dict(enumerate(param_names))
    model_sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(model_sd, str(tmp / "model.safetensors"))
    save_file({k: v.detach().cpu().contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
    opt_tensors, groups = _optimizer_tensors(optimizer, names)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    save_file({"torch_cpu": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
    body = json.dumps({**state, "step": step, "param_groups": groups}, indent=1, sort_keys=True)
    with (tmp / "state.json").open("w") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in sorted(p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete checkpoint under ``folder`` (one with ``state.json``), or None."""
    root = Path(folder)
    done = sorted(
        p for p in root.glob("step-*") if not p.name.endswith(".tmp") and (p / "state.json").is_file()
    )
    return done[-1] if done else None


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    param_names: list[str],
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore model, optimiser and RNGs in place; return (state.json, EMA tensors)."""
    path = Path(path)
    need = ["model.safetensors", "ema.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json"]
    missing = [n for n in need if not (path / n).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: lacks {missing}")
    state = json.loads((path / "state.json").read_text())
    try:
        model.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not fit the model: {e}") from e
    flat = load_file(str(path / "optimizer.safetensors"))
    groups = state["param_groups"]
    index = {n: i for i, n in enumerate(param_names)}
    if sorted(n for g in groups for n in g["params"]) != sorted(param_names):
        raise CheckpointError(f"checkpoint {path} trained other parameters than this run's strategy selects")
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in flat.items():
        name, sub = key.rsplit(".", 1)
        opt_state.setdefault(index[name], {})[sub] = t
    optimizer.load_state_dict(
        {
            "state": opt_state,
            "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in groups],
        }
    )
    rng = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(rng["torch_cpu"])
    return state, load_file(str(path / "ema.safetensors"))
