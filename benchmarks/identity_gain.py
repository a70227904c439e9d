"""Whether a model reads *who* its face references show, not only that there are some.

The trainer's ``ref_gain_video_face`` compares the loss without face references to the loss with
them. A reference also says where a face is (a model that places its references on the face box) and
that a face is wanted at all, so that gain is an upper bound on what identity adds. Here each
held-out sample's face references are replaced by *another sample's person* (the first group of the
next sample in the batch; same slot, same box, same number of views), and the loss inside the face
boxes is compared: ``identity gain = loss(another person's references) - loss(own references)``.
Positive: the model draws the referenced person, not just a face. Same samples, noise and sigmas for
every model and reference kind. A swapped-in person is the same person as the original only when two
windows of one person share a batch (12 held-out people): that can only shrink the gain.

    python benchmarks/identity_gain.py --data runs/id/shards_fb runs/placed/tiny runs/width/tiny
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from pathlib import Path

import torch

from facevox.data.loader import LatentBatch
from facevox.data.shards import read_null_caption
from facevox.models.dual_tower import DualTowerDiT
from facevox.training.config import TrainConfig
from facevox.training.objective import ObjectiveConfig
from facevox.training.strategies import get_strategy
from facevox.training.trainer import Validator, model_dir_of


def other_people(b: LatentBatch) -> LatentBatch:
    """Every referenced group's face views replaced by the next sample's first group (both kinds)."""
    nxt = torch.roll(torch.arange(b.size), -1)
    swapped = {}
    for name in ("face_refs", "face_refs_self"):
        lat, mask = getattr(b, name), getattr(b, name + "_mask")
        swapped[name] = lat[nxt, :1].expand_as(lat).clone()
        swapped[name + "_mask"] = mask[nxt, :1].expand_as(mask) & mask.any(-1, keepdim=True)
    return dataclasses.replace(b, **swapped)


def face_losses(model: DualTowerDiT, val: Validator, objective: ObjectiveConfig) -> dict[str, float]:
    """Mean loss inside the face boxes with own / another person's / no face references."""
    own = val._per_sample(model, objective)[2]
    none = val._per_sample(model, dataclasses.replace(objective, drop_faces=1.0))[2]
    swapped = copy.copy(val)  # the same validator on batches whose faces are other people's
    swapped.batches = [other_people(b) for b in val.batches]
    other = swapped._per_sample(model, objective)[2]
    ok = ~torch.isnan(own)
    return {
        "face_own": float(own[ok].mean()),
        "face_other": float(other[ok].mean()),
        "face_none": float(none[ok].mean()),
        "identity_gain": float((other - own)[ok].mean()),
        "reference_gain": float((none - own)[ok].mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="model folders or run folders (their release/model)")
    p.add_argument("--data", required=True, help="shard folder written by facevox encode (with face boxes)")
    p.add_argument("--split", default="heldout")
    p.add_argument("--batches", type=int, default=8, help="fixed batches (default 8)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--shift", type=float, default=3.0, help="noise-level shift of the sigma draw (default 3)")
    p.add_argument(
        "--references",
        choices=["cross", "self"],
        default="cross",
        help="other clips of the person (default; what generation gives) or the window's own middle frame",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(
        data=args.data, val_split=args.split, batch_size=args.batch_size, val_batches=args.batches
    )
    cfg = dataclasses.replace(cfg, objective=dataclasses.replace(cfg.objective, shift=args.shift))
    strategy = get_strategy("stage3" if args.references == "cross" else "stage2")
    val = Validator(cfg, strategy, read_null_caption(args.data))
    if not val.batches:
        raise SystemExit(f"no {args.split!r} samples in {args.data}")
    rows = []
    print(
        f"{'model':<32} {'own refs':>9} {'other':>9} {'none':>9} {'identity gain':>14} {'reference gain':>15}"
    )
    for m in args.models:
        model = DualTowerDiT.from_pretrained(model_dir_of(m)).eval()
        with torch.no_grad():
            r = face_losses(model, val, val.objective)
        rows.append({"model": m, "mode": model.config.ref_position_mode, **r})
        print(
            f"{m[-32:]:<32} {r['face_own']:9.4f} {r['face_other']:9.4f} {r['face_none']:9.4f}"
            f" {r['identity_gain']:+14.4f} {r['reference_gain']:+15.4f}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
