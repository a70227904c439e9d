"""Where in the noise schedule a model has learned its job: held-out video velocity MSE per sigma,
beside the trivial guess that predicts the *average training latent* as the clean sample.

At sigma near 1 the input is almost pure noise and the model must lay out the frame from the
conditions alone; a model that is no better than the average-latent guess there draws no person,
however well it denoises at mid sigma. Every sigma uses the same windows and the same noise.

``no_faces`` is the same prediction with the face references removed (everything else equal), so
``no_faces - model`` is the face-reference gain per sigma: identity is decided where the input holds
little signal, so a model that uses its references gains most at high sigma.

    python benchmarks/sigma_profile.py SHARD_DIR MODEL_DIR [MODEL_DIR ...] [--windows 32]
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
from facevox.training.objective import ObjectiveConfig, build_inputs, sample_generators
from facevox.training.strategies import get_strategy
from facevox.training.trainer import model_dir_of, turn_inputs

SIGMAS = (0.2, 0.5, 0.8, 0.9, 0.95, 0.98, 1.0)


@torch.no_grad()
def profile(model: DualTowerDiT, ds: LatentDataset, mean_latent: torch.Tensor, null, windows: int) -> dict:
    strategy = dataclasses.replace(get_strategy("stage3"), unimodal=False)
    whole = ObjectiveConfig(drop_text=0, drop_faces=0, drop_voices=0, drop_all=0, sample_posterior=False)
    rows: dict[str, dict[str, float]] = {}
    n = min(windows, len(ds))
    for start in range(0, n, 8):
        idx = list(range(start, min(n, start + 8)))
        b = ds.batch(idx)
        gens = sample_generators(7, 0, start, range(len(idx)))
        video_in, audio_in, *_ = build_inputs(b, strategy, whole, null, gens, **turn_inputs(model.config))
        gens = sample_generators(7, 0, start, range(len(idx)))  # the same draws, faces removed
        faceless, *_ = build_inputs(
            b, strategy, dataclasses.replace(whole, drop_faces=1.0), null, gens, **turn_inputs(model.config)
        )
        x0 = b.video_mean
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(start))
        target = velocity(x0, noise)
        for s in SIGMAS:
            sigma = torch.full((len(idx),), s)
            vin = dataclasses.replace(video_in, latents=interpolate(x0, noise, sigma), timesteps=sigma)
            ain = dataclasses.replace(audio_in, timesteps=torch.full((len(idx),), s))
            pred = model(vin, ain).video
            fin = dataclasses.replace(faceless, latents=vin.latents, timesteps=sigma)
            pred_faceless = model(fin, ain).video
            guess = velocity(mean_latent.expand_as(x0), noise)  # the average clean latent
            r = rows.setdefault(f"{s:.2f}", {"model": 0.0, "no_faces": 0.0, "average_latent": 0.0, "n": 0})
            r["model"] += float((pred - target).pow(2).mean(dim=(1, 2, 3, 4)).sum())
            r["no_faces"] += float((pred_faceless - target).pow(2).mean(dim=(1, 2, 3, 4)).sum())
            r["average_latent"] += float((guess - target).pow(2).mean(dim=(1, 2, 3, 4)).sum())
            r["n"] += len(idx)
    return {
        k: {
            "model": v["model"] / v["n"],
            "no_faces": v["no_faces"] / v["n"],
            "face_gain": (v["no_faces"] - v["model"]) / v["n"],
            "average_latent": v["average_latent"] / v["n"],
        }
        for k, v in rows.items()
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shards", type=Path)
    p.add_argument("models", nargs="+", help="model folders or training run folders")
    p.add_argument("--windows", type=int, default=32, help="held-out windows to use")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    train = LatentDataset(a.shards, splits=["train"])
    mean_latent = torch.stack([train[i].video_mean for i in range(len(train))]).mean(0, keepdim=True)
    held = LatentDataset(a.shards, splits=["heldout"])
    null = read_null_caption(a.shards)
    out = {}
    for m in a.models:
        model = DualTowerDiT.from_pretrained(model_dir_of(m)).eval()
        out[m] = profile(model, held, mean_latent, null, a.windows)
    print(json.dumps({"windows": min(a.windows, len(held)), "video_velocity_mse": out}, indent=1))


if __name__ == "__main__":
    main()
