"""One DreamID-Omni request's sampling at real size: wall time per step and peak accelerator memory.

    python benchmarks/dreamid_gpu_request.py --device cuda [--model CKPTS] [--steps 50] [--out FILE.json]

Runs facevox's DreamID-Omni sampling path (``facevox.pipeline.dreamid.dreamid_denoise``: the engine's
four guidance passes per step, UniPC, shift 5) on one two-person request at the engine's geometry
(704x1280, 121 frames: 31 + 2 video latent frames of 44x80, 157 + 2 x 32 audio latents, a 512-token
caption and two negative prompts). The transformer is DreamID-Omni's checkpoint when ``--model`` names a
folder holding it (strict load, bf16), else the same architecture (``get_config("dreamid-omni")``,
11.66 B parameters) with random weights: the time and memory are the network's and the loop's either
way, the output is only meaningful with the real weights. Conditions (caption states, face and voice
latents) are random tensors of the real shapes; the umT5 / VAE / MMAudio encoders and decoders are not
timed here. ``--reduced`` builds a width-32 model instead (a CPU smoke run of this script).

Prints one JSON object (and writes it to ``--out``): family, parameters, dtype, device, steps,
forwards, load seconds, sampling seconds, seconds per step, peak memory while loading and while
sampling (GiB, CUDA only).
``benchmarks/gpu_check.sh`` calls it for the DreamID-Omni family.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import torch

from facevox.models import DualTowerDiT, get_config
from facevox.pipeline.dreamid import DreamIDConditions, DreamIDGenerateConfig, dreamid_denoise

log = logging.getLogger("dreamid_gpu_request")


def build_model(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> DualTowerDiT:
    if args.model:
        from facevox.release.dreamid_omni import dit_configs, load_dreamid_omni_model

        return load_dreamid_omni_model(args.model, dtype=dtype, device=device, dit=dit_configs(args.model))
    cfg = get_config("dreamid-omni")
    if args.reduced:
        cfg = replace(
            cfg,
            video=replace(cfg.video, dim=32, heads=2, ffn_dim=64),
            audio=replace(cfg.audio, dim=32, heads=2, ffn_dim=64),
            depth=2,
            text_dim=16,
            freq_dim=32,
        )
    with torch.device("meta"):
        model = DualTowerDiT(cfg).to(dtype)
    model = model.to_empty(device=device)  # allocated once, in dtype (the model has no buffers)
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():  # small random weights, drawn on the device
            p.normal_(0.0, 0.02, generator=g)
    return model.eval()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--model", help="a folder holding DreamID-Omni's safetensors (default: random weights)")
    ap.add_argument("--steps", type=int, default=50, help="solver steps (the engine: 50)")
    ap.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    ap.add_argument("--reduced", action="store_true", help="width-32 random model (CPU smoke run)")
    ap.add_argument("--height", type=int, default=704)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--out", help="write the JSON here too")
    args = ap.parse_args(argv)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    model = build_model(args, device, dtype)
    load_s = time.perf_counter() - t0
    load_peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)  # the sampling peak below: model + activations
    cfg = model.config
    h, w = args.height // 16, args.width // 16
    g = torch.Generator(device="cpu").manual_seed(1)
    conditions = DreamIDConditions(
        prompt="(random caption states)",
        context=torch.randn(3, 512, cfg.text_dim, generator=g).to(device),
        faces=torch.randn(1, cfg.video.in_channels, 2, h, w, generator=g).to(device),
        voices=[torch.randn(1, 32, cfg.audio.in_channels, generator=g).to(device) for _ in range(2)],
    )
    video = torch.randn(1, cfg.video.in_channels, 31, h, w, generator=g).to(device, dtype)
    audio = torch.randn(1, 157, cfg.audio.in_channels, generator=g).to(device, dtype)
    steps_done: list[float] = []

    def on_step(i: int, n: int) -> None:
        if cuda:
            torch.cuda.synchronize(device)
        steps_done.append(time.perf_counter())

    t1 = time.perf_counter()
    _, _, forwards = dreamid_denoise(
        model, conditions, video, audio, DreamIDGenerateConfig(steps=args.steps), on_step
    )
    sample_s = time.perf_counter() - t1
    per_step = [b - a for a, b in zip([t1, *steps_done[:-1]], steps_done, strict=True)]
    result = {
        "family": "dreamid-omni",
        "weights": args.model or ("random (reduced)" if args.reduced else "random (real size)"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": args.dtype,
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if cuda else ""),
        "geometry": {
            "height": args.height,
            "width": args.width,
            "video_latents": [31 + 2, h, w],
            "audio_latents": 157 + 64,
        },
        "steps": args.steps,
        "forwards": forwards,
        "load_s": round(load_s, 2),
        "sample_s": round(sample_s, 2),
        "step_s_first": round(per_step[0], 3),
        "step_s_median": round(sorted(per_step)[len(per_step) // 2], 3),
        "load_peak_memory_gib": None if load_peak is None else round(load_peak, 2),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if cuda else None,
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
