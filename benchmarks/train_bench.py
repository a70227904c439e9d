"""Trainer throughput on real latent shards: samples/s, achieved FLOP/s over this machine's matmul
peak (both measured in this run), and peak resident memory.

One optimiser step of the real objective (``flow_loss`` with references, the stage's trainable
parameters) is timed after warm-up; its FLOPs are counted with ``FlopCounterMode`` on the same
batch. The peak is the best of a few fp32 2048^3 matmuls.

    python benchmarks/train_bench.py SHARD_DIR --size tiny --strategy stage2 --batch-size 4 --steps 10
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from facevox.data.loader import BucketSampler, LatentDataset
from facevox.data.shards import read_null_caption
from facevox.models import DualTowerDiT
from facevox.training.config import ParallelConfig, TrainConfig
from facevox.training.objective import ObjectiveConfig, flow_loss, sample_generators
from facevox.training.parallel import Dist, parallelize
from facevox.training.strategies import get_strategy
from facevox.training.trainer import model_config_for, turn_inputs

sys.path.insert(0, str(Path(__file__).parent))
from model_bench import matmul_peak  # noqa: E402  (the same peak measurement as the model benchmark)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shards")
    p.add_argument("--size", default="tiny")
    p.add_argument("--strategy", default="stage2")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="torch.compile each block, as train compile=true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ds = LatentDataset(a.shards, splits=["train"])
    cfg = TrainConfig(data=a.shards, size=a.size, strategy=a.strategy, batch_size=a.batch_size)
    model = DualTowerDiT(model_config_for(cfg, ds))
    if a.compile:
        parallelize(model, ParallelConfig(compile=True), Dist(), torch.device("cpu"))
    strategy = get_strategy(a.strategy)
    names = strategy.select(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    null = read_null_caption(a.shards)
    sampler = BucketSampler(ds.entries, a.batch_size)
    obj = ObjectiveConfig()
    batches = [ds.batch(next(sampler)) for _ in range(a.steps + 2)]

    def step(i: int) -> None:
        b = batches[i]
        opt.zero_grad(set_to_none=True)
        gens = sample_generators(0, i, 0, range(b.size))
        flow_loss(model, b, strategy, obj, null, gens, **turn_inputs(model.config)).loss.backward()
        opt.step()

    step(0)
    fc = FlopCounterMode(display=False)
    with fc:
        step(1)
    flops = fc.get_total_flops()
    t = time.perf_counter()
    for i in range(2, a.steps + 2):
        step(i)
    dt = (time.perf_counter() - t) / a.steps
    peak = matmul_peak()
    b = batches[2]
    tokens = b.video_mean.shape[2] * (b.video_mean.shape[3] // 2) * (b.video_mean.shape[4] // 2)
    out = {
        "size": a.size,
        "strategy": a.strategy,
        "params_total": sum(p.numel() for p in model.parameters()),
        "params_trainable": sum(p.numel() for n, p in model.named_parameters() if n in set(names)),
        "batch_size": a.batch_size,
        "video_tokens_per_sample": tokens,
        "audio_tokens_per_sample": b.audio_mean.shape[1],
        "seconds_per_step": round(dt, 4),
        "samples_per_s": round(a.batch_size / dt, 3),
        "flops_per_step": flops,
        "achieved_flops_per_s": flops / dt,
        "matmul_peak_flops_per_s": peak,
        "fraction_of_peak": round(flops / dt / peak, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": a.threads,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
