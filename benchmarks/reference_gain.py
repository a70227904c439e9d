"""How much a trained model uses each condition, on fixed held-out batches of a shard folder.

For every model (a model folder or a run folder with ``release/model``) prints the held-out velocity
loss per stream with all conditions, and the *gain* of each condition: the loss without it minus the
loss with it (same samples, noise and sigmas; positive = the condition helps):

- ``face`` / ``voice``: the face / voice references, given two ways: from the sample's own clip
  (``self``, what stages 1-2 train on: copying is possible) and from *other* clips of the same person
  (``cross``, curation's multi-view references, what stage 3 trains on and generation gives);
- ``text``: the structured caption. On the training split beside the held-out one (``--splits
  train,heldout``) it shows memorisation: a caption that helps on training clips and hurts on
  held-out ones names the clip rather than describing it.

Identity is measured this way on every stage's weights with the same batches, so the figures are
comparable stage over stage (the trainer's own ``ref_gain_*`` uses each stage's reference kind).

    python benchmarks/reference_gain.py --data runs/shards runs/train/base runs/train/stage1 ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from facevox.data.shards import read_null_caption
from facevox.models.dual_tower import DualTowerDiT
from facevox.training.config import TrainConfig
from facevox.training.strategies import get_strategy
from facevox.training.trainer import Validator, model_dir_of

REFERENCES = {"self": "stage2", "cross": "stage3"}  # strategies whose batches feed each reference kind


def gains(model: DualTowerDiT, validator: Validator) -> dict[str, float]:
    """Held-out losses and condition gains of one model on one validator's fixed batches: the
    trainer's own evaluation (losses and reference gains), plus the caption's gain."""
    val = validator(model)
    tv, ta = validator.losses(model, dataclasses.replace(validator.objective, drop_text=1.0))
    return {
        "video": val["val_video"],
        "audio": val["val_audio"],
        "face_gain": val["ref_gain_video"],
        # the same inside the face boxes (NaN for shards without boxes)
        "face_region_gain": val.get("ref_gain_video_face", float("nan")),
        "voice_gain": val["ref_gain_audio"],
        "text_gain_video": tv - val["val_video"],
        "text_gain_audio": ta - val["val_audio"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="model folders or run folders (their release/model)")
    p.add_argument("--data", required=True, help="shard folder written by facevox encode")
    p.add_argument("--splits", default="heldout", help="comma-separated shard splits (default heldout)")
    p.add_argument("--batches", type=int, default=4, help="fixed batches per split (default 4)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    null = read_null_caption(args.data)
    validators = {
        (split, kind): Validator(
            TrainConfig(
                data=args.data, val_split=split, batch_size=args.batch_size, val_batches=args.batches
            ),
            get_strategy(strategy),
            null,
        )
        for split in args.splits.split(",")
        for kind, strategy in REFERENCES.items()
    }
    rows = []
    print(
        f"{'model':<28} {'split':<8} {'refs':<5} {'video':>7} {'audio':>7} {'face':>8} {'in box':>8} {'voice':>8}"
        f" {'text(v)':>8} {'text(a)':>8}"
    )
    for m in args.models:
        model = DualTowerDiT.from_pretrained(model_dir_of(m)).eval()
        for (split, kind), val in validators.items():
            if not val.batches:
                raise SystemExit(f"no {split!r} samples in {args.data}")
            with torch.no_grad():
                g = gains(model, val)
            rows.append({"model": m, "split": split, "references": kind, **g})
            print(
                f"{m[-28:]:<28} {split:<8} {kind:<5} {g['video']:7.4f} {g['audio']:7.4f} {g['face_gain']:+8.4f}"
                f" {g['face_region_gain']:+8.4f} {g['voice_gain']:+8.4f} {g['text_gain_video']:+8.4f} {g['text_gain_audio']:+8.4f}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
