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


def wrapping_plan(model: torch.nn.Module, cfg: ParallelConfig, world: int) -> list[dict[str, object]]:
    """What :func:`parallelize` does to ``model`` with ``world`` ranks, without doing it (works on
    the meta device): one row per FSDP2 unit (each block, then the root holding the rest) with its
    parameters, its bytes per rank of fp32 master weights and of the compute-dtype copy gathered
    for a forward, and whether its activations are recomputed."""
    blocks = list(getattr(model, "blocks", []))
    compute = 2 if cfg.bf16 else 4
    rows: list[dict[str, object]] = []
    in_blocks = 0
    for i, block in enumerate(blocks):
        n = sum(p.numel() for p in block.parameters())
        in_blocks += n
        rows.append(
            {
                "unit": f"blocks.{i}",
                "params": n,
                "fp32_shard_bytes": 4 * n // world,
                "gathered_bytes": compute * n,
                "recompute": cfg.activation_checkpointing,
            }
        )
    rest = sum(p.numel() for p in model.parameters()) - in_blocks
    rows.append(
        {
            "unit": "root",
            "params": rest,
            "fp32_shard_bytes": 4 * rest // world,
            "gathered_bytes": compute * rest,
            "recompute": False,
        }
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    """``python -m facevox.training.parallel --size iap-5b --world 8 [--bf16] [--checkpointing]``:
    build the size on the meta device and print its FSDP2 wrapping plan."""
    import argparse

    from facevox.models import DualTowerDiT, get_config

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--size", default="iap-5b")
    p.add_argument("--world", type=int, default=8)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--checkpointing", action="store_true")
    a = p.parse_args(argv)
    with torch.device("meta"):
        model = DualTowerDiT(get_config(a.size))
    cfg = ParallelConfig(bf16=a.bf16, activation_checkpointing=a.checkpointing)
    rows = wrapping_plan(model, cfg, a.world)
    total = sum(int(str(r["params"])) for r in rows)
    print(
        f"{a.size}: {total / 1e9:.3f} B parameters, {len(rows)} FSDP2 units over {a.world} ranks, "
        f"compute {'bf16' if a.bf16 else 'fp32'} (reduce fp32), activation checkpointing {a.checkpointing}"
    )
    print(f"{'unit':<12}{'params':>16}{'fp32 shard/rank':>18}{'gathered':>14}  recompute")
    for r in rows:
        print(
            f"{r['unit']!s:<12}{int(str(r['params'])):>16,}{int(str(r['fp32_shard_bytes'])) / 2**30:>15.2f} GiB"
            f"{int(str(r['gathered_bytes'])) / 2**30:>11.2f} GiB  {r['recompute']}"
        )


if __name__ == "__main__":
    main()
