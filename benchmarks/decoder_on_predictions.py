"""Whether the blocks in generated frames are the decoder's or the model's: fine-tune a copy of the
patch codec's refiner on a model's own x0 predictions and see what it changes.

The generated frames of the tiny model show 16-pixel blocks (one DiT token = 2x2 latent cells). The
shipped refiner learned on clean and white-noised latents only. Here a copy of it learns to render
the model's predictions: a training window of a shard folder is noised at sigma ~ U[0, 1], the model
predicts x0 from it (caption, references: stage 3's conditions, nested dropout), and the refiner
decodes that prediction towards the frozen codec's decode of the clean latents (L1 + L2 on a few
frames per clip; a quarter of the samples decode their clean latents, so clean decoding holds).
Printed before and after, on fixed held-out windows: PSNR of decoding the predictions (sigma < 0.5
and >= 0.5) and of the clean latents, against the frozen decode of the clean latents. The tuned
codec folder is written to ``--out`` (its fingerprint is the original's: decoder-only); decode a
generated latent with both to look at the difference.

    python benchmarks/decoder_on_predictions.py --data runs/id/shards_fb --steps 200 --out runs/dec/tuned
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from facevox.codecs.loading import codec_fingerprint
from facevox.codecs.patch_pca import PatchPCAVideoCodec
from facevox.codecs.shipped import default_codec_dir
from facevox.data.loader import BucketSampler, LatentBatch, LatentDataset
from facevox.data.shards import read_null_caption
from facevox.models.dual_tower import DualTowerDiT
from facevox.models.shipped import default_model_dir
from facevox.training.objective import ObjectiveConfig, build_inputs, sample_generators
from facevox.training.strategies import get_strategy
from facevox.training.trainer import model_dir_of, turn_inputs


def batches(data: str, split: str, size: int, seed: int) -> Iterator[LatentBatch]:
    ds = LatentDataset(data, splits=[split])
    sampler = BucketSampler(ds.entries, size, seed=seed)
    while True:
        yield ds.batch(next(sampler))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(4 / (a - b).pow(2).mean()))  # pixels in [-1, 1]: peak-to-peak 2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data", required=True, help="shard folder encoded with the codec (train + heldout splits)"
    )
    p.add_argument("--model", default=str(default_model_dir()), help="model or run folder (default: shipped)")
    p.add_argument(
        "--codec", default=str(default_codec_dir("video")), help="patch codec folder (default: shipped)"
    )
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--frames", type=int, default=4, help="frames per clip through the refiner per step")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--val-batches", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, required=True, help="tuned codec folder")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    model = DualTowerDiT.from_pretrained(model_dir_of(args.model)).eval().requires_grad_(False)
    frozen = PatchPCAVideoCodec.from_pretrained(args.codec)
    codec = PatchPCAVideoCodec.from_pretrained(args.codec)
    if codec.refiner is None:
        raise SystemExit(f"{args.codec} has no refiner to tune")
    codec.refiner.requires_grad_(True)
    null = read_null_caption(args.data)
    strategy = get_strategy("stage3")
    objective = ObjectiveConfig(shift=3.0, uniform_fraction=1.0, dropout="nested", drop_text=0.0)
    turns = turn_inputs(model.config)

    @torch.no_grad()
    def predict(b: LatentBatch, step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x0 predicted from the window noised at its drawn sigma: (B, C, T, H, W), sigmas (B,)."""
        gens = sample_generators(1234, step, micro, range(b.size))
        video_in, audio_in, *_ = build_inputs(b, strategy, objective, null, gens, **turns)
        v = model(video_in, audio_in).video
        return video_in.latents - video_in.timesteps.view(-1, 1, 1, 1, 1) * v, video_in.timesteps

    held = batches(args.data, "heldout", args.batch_size, seed=7)
    val = []
    for i in range(args.val_batches):
        b = next(held)
        val.append((b.video_mean, *predict(b, 0, i)))

    @torch.no_grad()
    def report(tag: str) -> None:
        rows: dict[str, list[float]] = {"clean": [], "sigma<0.5": [], "sigma>=0.5": []}
        for clean, pred, sigma in val:
            target = frozen.decode(clean)
            rows["clean"].append(psnr(codec.decode(clean), target))
            for j in range(clean.shape[0]):
                key = "sigma<0.5" if sigma[j] < 0.5 else "sigma>=0.5"
                rows[key].append(psnr(codec.decode(pred[j : j + 1]), target[j : j + 1]))
        cells = "  ".join(f"{k} {sum(v) / len(v):.2f} dB (n={len(v)})" for k, v in rows.items() if v)
        print(f"{tag:<12} {cells}", flush=True)

    def frames(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:  # (B, 3, T, H, W) -> (B * k, 3, H, W)
        return x[:, :, idx].permute(0, 2, 1, 3, 4).flatten(0, 1)

    report("before")
    assert codec.refiner is not None
    opt = torch.optim.AdamW(codec.refiner.parameters(), lr=args.lr)
    train = batches(args.data, "train", args.batch_size, seed=0)
    gen = torch.Generator().manual_seed(0)
    start = time.monotonic()
    for step in range(args.steps):
        b = next(train)
        pred, _ = predict(b, step, 0)
        clean = torch.rand(b.size, generator=gen) < 0.25
        z = torch.where(clean.view(-1, 1, 1, 1, 1), b.video_mean, pred)
        pixel_frames = 1 + (b.video_mean.shape[2] - 1) * codec.time_stride
        idx = torch.randint(0, pixel_frames, (args.frames,), generator=gen)
        with torch.no_grad():
            target = frozen.refiner(frames(frozen.linear_decode(b.video_mean), idx)).clamp(-1, 1)  # type: ignore[misc]
            linear = frames(codec.linear_decode(z), idx)
        out = codec.refiner(linear)
        loss = (out - target).abs().mean() + (out - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 50 == 0:
            print(f"step {step + 1}: loss {loss.item():.4f} ({time.monotonic() - start:.0f} s)", flush=True)
    codec.eval().requires_grad_(False)
    report(f"after {args.steps}")
    codec.save_pretrained(args.out)
    same = codec_fingerprint(args.out) == codec_fingerprint(args.codec)
    print(f"wrote {args.out} (fingerprint {'unchanged' if same else 'CHANGED'})")


if __name__ == "__main__":
    main()
