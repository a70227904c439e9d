"""Scale-out applied from outside the model: activation checkpointing -> compile -> FSDP2.

The model files hold architecture only (STYLE: torchtitan's ``parallelize``). Launch with
``torchrun --nproc-per-node N -m facevox.cli train ...``; on CPU the process group uses gloo.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import torch
import torch.distributed as dist

from facevox.training.config import ParallelConfig

if TYPE_CHECKING:
    from facevox.models.dual_tower import DualTowerDiT

log = logging.getLogger(__name__)

_M = TypeVar("_M", bound="DualTowerDiT")


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(
        rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", 0))
    )


def parallelize(model: _M, cfg: ParallelConfig, env: Dist, device: torch.device) -> _M:
    """Apply checkpointing, compile and FSDP2 sharding in that order; returns the same module."""
    if cfg.activation_checkpointing:
        model.set_gradient_checkpointing(True)
    blocks = getattr(model, "blocks", None)
    if cfg.compile and blocks is not None:
        for i, block in enumerate(blocks):
            blocks[i] = torch.compile(block)
    if env.world > 1 and cfg.fsdp:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = (
            MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            if cfg.bf16
            else MixedPrecisionPolicy()
        )
        mesh = torch.distributed.device_mesh.init_device_mesh(device.type, (env.world,))
        if blocks is not None:
            for block in blocks:
                fully_shard(block, mesh=mesh, mp_policy=mp)
        fully_shard(model, mesh=mesh, mp_policy=mp)
        log.info("FSDP2: %d blocks + root sharded over %d ranks", len(blocks or []), env.world)
    return model
