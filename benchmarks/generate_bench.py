"""Generation benchmark at ``tiny`` size (random weights: speed and memory do not depend on them).

Run: ``.venv/bin/python benchmarks/generate_bench.py [--out runs/bench/generate]`` (~1.5 minutes with --threads 1 on 2 cores).

Measured in this run, on this machine (fp32, CPU, ``--threads`` threads, recorded in the JSON):

1. **Seconds per clip and peak memory at 8/16/32 steps**: one ``facevox generate`` process per step
   count over a ``requests.jsonl`` of two identical 1 s, two-person requests (25 frames 64x64 at
   25 fps + 16 kHz speech; UniPC, all guidance variants batched, reference K/V cache on). The
   sidecar of each clip gives its wall-clock ``total_s`` (checks, encoders, sampling, decoders,
   mux) and ``sample_s``; the first clip of a process is cold (VAD and encoder warm-up), the second
   warm. Peak memory is the process's peak RSS (``ru_maxrss``, model + codecs + text encoder).
2. **Speed-ups** (one process, same request, 16 Euler steps, each variant timed ``--repeats`` times
   interleaved, minimum ``sample_s`` kept): reference K/V cache on vs recomputing the reference
   keys/values every step; the guidance variants in one batched forward vs one forward each.
3. **Determinism**: the same seed twice -> the frames and audio handed to the encoders compared
   (max abs diff in 8-bit levels / float samples), and the decoded mp4s (PSNR, None = identical;
   libx264 does not always give the same bitstream for the same frames); another seed for contrast.

Writes ``OUT/generate_bench.json``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facevox.codecs.mel import MelAudioCodec, MelCodecConfig
from facevox.codecs.video import WanVideoCodec, tiny_wan_config
from facevox.io.media import read_av
from facevox.models import DualTowerDiT, get_config
from facevox.pipeline import FacevoxPipeline, GenerationRequest, Person
from facevox.pipeline.pipeline import GenerateConfig


def tiny_pipeline(folder: Path) -> Path:
    """A pipeline folder: random ``tiny`` model, random tiny codecs, 64x64 at 25 fps."""
    torch.manual_seed(0)
    WanVideoCodec.from_config(tiny_wan_config()).save_pretrained(folder / "video_codec")
    audio = MelAudioCodec(MelCodecConfig(latent_channels=8))
    audio.save_pretrained(folder / "audio_codec")
    cfg = get_config("tiny")
    cfg = dataclasses.replace(  # channels come from the codecs
        cfg,
        video=dataclasses.replace(cfg.video, in_channels=tiny_wan_config()["z_dim"]),
        audio=dataclasses.replace(cfg.audio, in_channels=audio.latent_channels),
    )
    DualTowerDiT(cfg).save_pretrained(folder / "model")
    settings = {
        "format": "facevox.pipeline/1",
        "fps": 25.0,
        "sample_rate": 16000,
        "height": 64,
        "width": 64,
        "num_frames": 25,
        "max_frames": 101,
        "face_size": 64,
        "voice_seconds": 3.0,
        "text_encoder": "minilm",
        "max_caption_tokens": 64,
        "shift": 0.0,
        "trained_with": {"note": "random weights (generate_bench)"},
    }
    (folder / "pipeline.json").write_text(json.dumps(settings))
    return folder


def user_inputs(folder: Path) -> list[dict]:
    """Two people: a photo each (skimage's astronaut, mirrored for bob) and espeak-ng voices."""
    import cv2
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    img = cv2.resize(data.astronaut(), (192, 192), interpolation=cv2.INTER_AREA)[:160]
    people = []
    for name, voice, flip in (("alice", "en-us+f3", False), ("bob", "en-gb+m3", True)):
        Image.fromarray(np.ascontiguousarray(img[:, ::-1] if flip else img)).save(folder / f"{name}.png")
        wav = subprocess.run(
            ["espeak-ng", "-v", voice, "--stdout", "hello there, this is my voice for the benchmark"],
            capture_output=True,
            check=True,
        ).stdout
        (folder / f"{name}.wav").write_bytes(wav)
        people.append(
            {"name": name, "faces": [str(folder / f"{name}.png")], "voice": str(folder / f"{name}.wav")}
        )
    return people


SPEED_STEPS = 16  # steps of the speed-up runs (long enough to time the sampling loop well)
SCRIPT = "[alice] Hello there, how are you? [bob] Fine, thank you."


def per_steps(model: Path, people: list[dict], steps: int, out: Path) -> dict:
    reqs = out / "requests.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    reqs.write_text(
        "".join(
            json.dumps({"name": f"r{i}", "seed": 0, "duration": 1.0, "people": people, "script": SCRIPT})
            + "\n"
            for i in range(2)
        )
    )
    cmd = [sys.executable, "-m", "facevox.cli", "--log-level", "WARNING", "generate", "--model", str(model)]
    cmd += ["--requests", str(reqs), "--steps", str(steps), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the same threads as here
    subprocess.run(cmd, check=True, env=env)
    cold, warm = (json.loads((out / f"r{i}.json").read_text())["timings"] for i in range(2))
    return {
        "steps": steps,
        "cold_total_s": cold["total_s"],
        "warm_total_s": warm["total_s"],
        "warm_sample_s": warm["sample_s"],
        "peak_rss_mb": warm["peak_rss_mb"],
        "warm_timings": warm,
    }


def speedups(pipe: FacevoxPipeline, req: GenerationRequest, out: Path, repeats: int) -> dict:
    variants = {
        "cache+batched": GenerateConfig(solver="euler", steps=SPEED_STEPS),
        "no cache": GenerateConfig(solver="euler", steps=SPEED_STEPS, use_cache=False),
        "sequential guidance": GenerateConfig(solver="euler", steps=SPEED_STEPS, batch_guidance=False),
    }
    pipe(req, out / "warmup", config=variants["cache+batched"])
    best = {k: float("inf") for k in variants}
    for r in range(repeats):
        for k, cfg in variants.items():
            res = pipe(req, out / f"{k.replace(' ', '_')}_{r}", config=cfg)
            best[k] = min(best[k], res.sidecar["timings"]["sample_s"])
    return {
        "sample_s": best,
        "kv_cache_speedup": best["no cache"] / best["cache+batched"],
        "batched_guidance_speedup": best["sequential guidance"] / best["cache+batched"],
        "forwards_per_step": {"batched": 1, "sequential": 4},
    }


def determinism(pipe: FacevoxPipeline, req: GenerationRequest, out: Path) -> dict:
    cfg = GenerateConfig(steps=8)
    a, b = (pipe(req, out / d, config=cfg) for d in ("a", "b"))
    c = pipe(dataclasses.replace(req, seed=req.seed + 1), out / "c", config=cfg)
    va, vb = read_av(a.video_path), read_av(b.video_path)
    mse = float(np.mean((va.video.astype(np.float64) - vb.video) ** 2))
    return {
        "same_seed_max_frame_diff": int(np.abs(a.frames.astype(int) - b.frames).max()),
        "same_seed_max_audio_diff": float(np.abs(a.audio - b.audio).max()),
        "same_seed_mp4_psnr_db": None if mse == 0 else round(float(10 * np.log10(255**2 / mse)), 1),
        "same_seed_mp4_audio_max_diff": float(np.abs(va.audio - vb.audio).max()),
        "other_seed_mean_frame_diff": float(np.abs(a.frames.astype(int) - c.frames).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/generate")
    ap.add_argument("--steps", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_pipeline(Path(tmp) / "pipe")
        people = user_inputs(Path(tmp) / "inputs")
        t0 = time.perf_counter()
        rows = [per_steps(model, people, s, Path(tmp) / f"steps{s}") for s in args.steps]
        pipe = FacevoxPipeline.from_pretrained(model)
        req = GenerationRequest(
            name="clip",
            people=tuple(Person(name=p["name"], faces=tuple(p["faces"]), voice=p["voice"]) for p in people),
            script=SCRIPT,
            duration=1.0,
            seed=0,
        )
        speed = speedups(pipe, req, Path(tmp) / "speed", args.repeats)
        det = determinism(pipe, req, Path(tmp) / "det")
    result = {
        "machine": {"threads": torch.get_num_threads(), "torch": torch.__version__},
        "clip": "1.0 s, 2 people, 25 frames 64x64 @ 25 fps, 16 kHz audio; tiny model, random weights, fp32 CPU",
        "per_steps": rows,
        "speedups": speed,
        "determinism": det,
        "bench_wall_s": round(time.perf_counter() - t0, 1),
        "bench_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    (out / "generate_bench.json").write_text(json.dumps(result, indent=2))
    print("| steps | s/clip (warm) | s/clip (cold) | sampling s | decode+mux s | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['steps']} | {r['warm_total_s']:.2f} | {r['cold_total_s']:.2f} | {r['warm_sample_s']:.2f} "
            f"| {r['warm_timings']['decode_write_s']:.2f} | {r['peak_rss_mb']:.0f} |"
        )
    print(
        f"\nreference K/V cache speed-up: x{speed['kv_cache_speedup']:.2f}; batched guidance speed-up: "
        f"x{speed['batched_guidance_speedup']:.2f} ({SPEED_STEPS} Euler steps, sampling time, min of {args.repeats})"
    )
    print(f"determinism: {det}")


if __name__ == "__main__":
    main()
