"""Where in the noise schedule a model has learned its job: held-out video velocity MSE per sigma,
beside the trivial guess that predicts the *average training latent* as the clean sample.

At sigma near 1 the input is almost pure noise and the model must lay out the frame from the
conditions alone; a model that is no better than the average-latent guess there draws no person,
however well it denoises at mid sigma. Every sigma uses the same windows and the same noise.

``no_faces`` is the same prediction with the face references removed (everything else equal), so
``no_faces - model`` is the face-reference gain per sigma: identity is decided where the input holds
little signal, so a model that uses its references gains most at high sigma. On shards with face
boxes the same figures are given inside the boxes (``*_face``), where a face reference can help; a
face is ~15 % of a one-person frame, so the whole-frame gain dilutes it. ``--no-caption`` measures
with the null caption, where the references are the only description of the people.

    python benchmarks/sigma_profile.py SHARD_DIR MODEL_DIR [MODEL_DIR ...] [--windows 32] [--no-caption] [--references self]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from facevox.data.loader import LatentDataset
from facevox.data.shards import read_null_caption
from facevox.diffusion.path import interpolate, velocity
from facevox.models import DualTowerDiT
from facevox.training.objective import (
    ObjectiveConfig,
    build_inputs,
    face_region,
    region_mean,
    sample_generators,
)
from facevox.training.strategies import get_strategy
from facevox.training.trainer import model_dir_of, turn_inputs

SIGMAS = (0.2, 0.5, 0.8, 0.9, 0.95, 0.98, 1.0)


@torch.no_grad()
def profile(
    model: DualTowerDiT,
    ds: LatentDataset,
    mean_latent: torch.Tensor,
    null,
    windows: int,
    caption: bool = True,
    references: str = "cross",
) -> dict:
    strategy = dataclasses.replace(get_strategy("stage3"), unimodal=False, references=references)
    whole = ObjectiveConfig(
        drop_text=0 if caption else 1, drop_faces=0, drop_voices=0, drop_all=0, sample_posterior=False
    )
    rows: dict[str, dict[str, float]] = {}
    n = min(windows, len(ds))
    for start in range(0, n, 8):
        idx = list(range(start, min(n, start + 8)))
        b = ds.batch(idx)
        gens = sample_generators(7, 0, start, range(len(idx)))
        video_in, audio_in, *_ = build_inputs(b, strategy, whole, null, gens, **turn_inputs(model.config))
        gens = sample_generators(7, 0, start, range(len(idx)))  # the same draws, faces removed
        faceless, faceless_audio, *_ = build_inputs(
            b, strategy, dataclasses.replace(whole, drop_faces=1.0), null, gens, **turn_inputs(model.config)
        )
        x0 = b.video_mean
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(start))
        target = velocity(x0, noise)
        boxes = b.face_boxes if b.face_boxes is not None else torch.full((len(idx), 1, 4), float("nan"))
        region = face_region(boxes, x0.shape[3], x0.shape[4])  # (B, H, W)
        every = torch.ones(len(idx), dtype=torch.bool)

        for s in SIGMAS:
            sigma = torch.full((len(idx),), s)
            vin = dataclasses.replace(video_in, latents=interpolate(x0, noise, sigma), timesteps=sigma)
            ain = dataclasses.replace(audio_in, timesteps=torch.full((len(idx),), s))
            pred = model(vin, ain).video
            fin = dataclasses.replace(faceless, latents=vin.latents, timesteps=sigma)
            fain = dataclasses.replace(faceless_audio, timesteps=ain.timesteps)  # its caption tags match
            pred_faceless = model(fin, fain).video
            guess = velocity(mean_latent.expand_as(x0), noise)  # the average clean latent
            r = rows.setdefault(f"{s:.2f}", dict.fromkeys(_SUMS, 0.0))
            for name, err in (
                ("model", (pred - target).pow(2)),
                ("no_faces", (pred_faceless - target).pow(2)),
                ("average_latent", (guess - target).pow(2)),
            ):
                r[name] += float(err.mean(dim=(1, 2, 3, 4)).sum())
                face = region_mean(err, region, every)  # (B,), NaN for a sample without a face box
                r[name + "_face"] += float(face.nansum())
            r["n"] += len(idx)
            r["n_face"] += int(region.flatten(1).any(1).sum())
    out = {}
    for k, v in rows.items():
        row = {name: v[name] / v["n"] for name in ("model", "no_faces", "average_latent")}
        row["face_gain"] = row["no_faces"] - row["model"]
        if v["n_face"]:
            face = {
                f"{name}_face": v[f"{name}_face"] / v["n_face"]
                for name in ("model", "no_faces", "average_latent")
            }
            face["face_gain_face"] = face["no_faces_face"] - face["model_face"]
            row |= face
        out[k] = row
    return out


_SUMS = (
    "model",
    "no_faces",
    "average_latent",
    "model_face",
    "no_faces_face",
    "average_latent_face",
    "n",
    "n_face",
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shards", type=Path)
    p.add_argument("models", nargs="+", help="model folders or training run folders")
    p.add_argument("--windows", type=int, default=32, help="held-out windows to use")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--references",
        default="cross",
        choices=("cross", "self"),
        help="other clips' (stage 3) or the window's own",
    )
    p.add_argument(
        "--no-caption", action="store_true", help="the null caption: references alone describe the people"
    )
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    train = LatentDataset(a.shards, splits=["train"])
    mean_latent = torch.stack([train[i].video_mean for i in range(len(train))]).mean(0, keepdim=True)
    held = LatentDataset(a.shards, splits=["heldout"])
    null = read_null_caption(a.shards)
    out = {}
    for m in a.models:
        model = DualTowerDiT.from_pretrained(model_dir_of(m)).eval()
        out[m] = profile(
            model, held, mean_latent, null, a.windows, caption=not a.no_caption, references=a.references
        )
    print(
        json.dumps(
            {
                "windows": min(a.windows, len(held)),
                "caption": not a.no_caption,
                "references": a.references,
                "video_velocity_mse": out,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
