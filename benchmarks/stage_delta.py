"""Did a stage lower the held-out loss, beyond the noise of the measurement?

For each pair ``BEFORE:AFTER`` (model or run folders: a stage's starting weights and its release)
the held-out velocity loss (video + audio) of every sample is taken under both weights with the same
noise and sigmas (the trainer's validation, but over as many held-out batches as the shards hold),
and the per-sample difference AFTER - BEFORE is summarised: mean, its standard error and the
fraction of samples that got better. A stage "clearly" improves when the mean is negative by
several standard errors.

    python benchmarks/stage_delta.py --data runs/big/shards \\
      runs/big/train/base:runs/big/train/stage1:self runs/big/train/stage1:runs/big/train/stage2:self \\
      runs/big/train/stage2:runs/big/train/stage3:cross

The third field picks the references: ``self`` (the sample's own clip, stages 1-2) or ``cross``
(other clips of the person, stage 3).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from facevox.data.shards import read_null_caption
from facevox.models.dual_tower import DualTowerDiT
from facevox.training.config import TrainConfig
from facevox.training.strategies import get_strategy
from facevox.training.trainer import Validator, model_dir_of

sys.path.insert(0, str(Path(__file__).parent))
from reference_gain import REFERENCES  # noqa: E402  (the strategies whose batches feed each reference kind)


def per_sample(model_path: str, validator: Validator) -> torch.Tensor:
    """(N,) held-out video + audio loss per sample (a missing stream counts 0)."""
    model = DualTowerDiT.from_pretrained(model_dir_of(model_path)).eval()
    with torch.no_grad():
        v, a = validator.sample_losses(model, validator.objective)
    return torch.nan_to_num(v) + torch.nan_to_num(a)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pairs", nargs="+", help="BEFORE:AFTER:self|cross")
    p.add_argument("--data", required=True, help="shard folder written by facevox encode")
    p.add_argument("--split", default="heldout")
    p.add_argument("--batches", type=int, default=1000, help="fixed batches at most (default: all)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    null = read_null_caption(args.data)
    cfg = TrainConfig(
        data=args.data, val_split=args.split, batch_size=args.batch_size, val_batches=args.batches
    )
    validators: dict[str, Validator] = {}
    rows = []
    print(
        f"{'before':<24} {'after':<24} {'refs':<5} {'n':>4} {'before':>7} {'after':>7} {'delta':>8} {'s.e.':>7} {'better':>6}"
    )
    for pair in args.pairs:
        try:
            before, after, kind = pair.rsplit(":", 2)
            strategy = REFERENCES[kind]
        except (ValueError, KeyError):
            raise SystemExit(f"pair {pair!r} is not BEFORE:AFTER:self|cross") from None
        if kind not in validators:
            validators[kind] = Validator(cfg, get_strategy(strategy), null)
            if not validators[kind].batches:
                raise SystemExit(f"no {args.split!r} samples in {args.data}")
        lb, la = per_sample(before, validators[kind]), per_sample(after, validators[kind])
        d = la - lb
        n = d.numel()
        row = {
            "before": before,
            "after": after,
            "references": kind,
            "samples": n,
            "loss_before": float(lb.mean()),
            "loss_after": float(la.mean()),
            "delta": float(d.mean()),
            "stderr": float(d.std() / math.sqrt(n)),
            "fraction_better": float((d < 0).float().mean()),
        }
        rows.append(row)
        print(
            f"{before[-24:]:<24} {after[-24:]:<24} {kind:<5} {n:4d} {row['loss_before']:7.4f} {row['loss_after']:7.4f}"
            f" {row['delta']:+8.4f} {row['stderr']:7.4f} {row['fraction_better']:6.2f}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
