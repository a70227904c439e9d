"""Executors that run :class:`~facevox.curate.shards.ShardRunner` over the shards not yet done.

``local`` (default): a process pool (spawned workers, one core each), models loaded once per
worker, a tqdm bar over shards. ``ray``: Ray Data ``map`` over the shard list with an actor pool of
the same runner class (an optional extra: ``pip install 'facevox[ray]'``). Both write the same
files, so the reduce phase cannot tell which one ran.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tqdm.auto import tqdm

from facevox.config import from_dict, to_dict
from facevox.curate.config import CurateConfig
from facevox.curate.shards import Shard, ShardRunner

log = logging.getLogger(__name__)

_RUNNER: ShardRunner | None = None


def _init_worker(cfg_dict: dict[str, Any]) -> None:
    global _RUNNER
    _RUNNER = ShardRunner(from_dict(CurateConfig, cfg_dict))


def _run_shard(shard: Shard) -> dict[str, Any]:
    assert _RUNNER is not None, "worker not initialised"
    return _RUNNER(shard)


def run_local(cfg: CurateConfig, shards: list[Shard], progress: bool = True) -> list[dict[str, Any]]:
    if not shards:
        return []
    bar = tqdm(total=len(shards), desc="curate shards", unit="shard", disable=not progress)
    out = []
    if cfg.workers == 1:
        runner = ShardRunner(cfg)
        for shard in shards:
            out.append(runner(shard))
            bar.update()
    else:
        ctx = mp.get_context("spawn")  # no forked torch/OpenMP state in the workers
        with ProcessPoolExecutor(
            min(cfg.workers, len(shards)), mp_context=ctx, initializer=_init_worker, initargs=(to_dict(cfg),)
        ) as pool:
            for fut in as_completed([pool.submit(_run_shard, s) for s in shards]):
                out.append(fut.result())
                bar.update()
    bar.close()
    return out


class _RayShardRunner:
    """Ray Data callable class: one per actor, models loaded once in ``__init__``."""

    def __init__(self, cfg_dict: dict[str, Any]) -> None:
        self.runner = ShardRunner(from_dict(CurateConfig, cfg_dict))

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        summary = self.runner(Shard.from_dict(row))
        return {"shard": summary["shard"], "kept": summary["kept"], "video_seconds": summary["video_seconds"]}


def run_ray(cfg: CurateConfig, shards: list[Shard], progress: bool = True) -> list[dict[str, Any]]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as err:
        raise RuntimeError("the ray executor needs the optional extra: pip install 'facevox[ray]'") from err
    if not shards:
        return []
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=cfg.workers, include_dashboard=False, log_to_driver=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        items = ray.data.from_items([s.to_dict() for s in shards], override_num_blocks=len(shards))
        ds = items.map(
            _RayShardRunner,  # type: ignore[arg-type]  # ray's stub types callable classes as plain callables
            fn_constructor_args=(to_dict(cfg),),
            concurrency=min(cfg.workers, len(shards)),
            num_cpus=1,
        )
        return ds.take_all()
    finally:
        if started:
            ray.shutdown()
