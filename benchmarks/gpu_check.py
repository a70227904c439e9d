"""The prepared GPU check (issue 20 item 3): one table of MFU, CPU/CUDA training parity and release-size
generation time and memory. Never run in CI; ``benchmarks/gpu_check.sh`` runs it on a GPU machine.

    python benchmarks/gpu_check.py --device cuda                 # real sizes (<= 8 min on one H100/H200)
    python benchmarks/gpu_check.py --device cpu --reduced        # the same code paths at toy sizes

1. **MFU**: one optimiser-free forward + backward of release-size (``iap-5b``) dual blocks (``--blocks``,
   default 2, full width 3072 / FFN 14336) on the token counts of a 704x1280x121 clip (27,280 video +
   158 audio tokens, one 512-px face view, one 6-s voice), bf16 autocast over fp32 weights. FLOPs
   counted by ``FlopCounterMode`` on the same step; MFU = FLOP/s over the device's bf16 dense peak
   (``--peak-tflops``, else a table of known parts) and over a measured 8192^3 bf16 matmul.
2. **Training parity**: ``facevox train`` on the ``debug`` size for ``--train-steps`` steps on CPU and
   on ``--device`` from the same synthetic shards (tests/latent_fixtures.py), fp32, deterministic: the
   largest relative loss difference must stay under ``--loss-rtol``.
3. **Generation**: random weights at release size (iap-5b towers in bf16, umT5-XXL bf16 with a
   256k-entry stand-in tokenizer, Wan2.2 VAE, MMAudio 16 kHz VAE + vocoder) through
   ``FacevoxPipeline`` at 704x1280x121 (5.04 s, one person), ``--gen-steps`` UniPC steps, with
   ``offload=True`` and then everything resident: seconds per clip and the peak of
   ``torch.cuda.max_memory_allocated`` (CPU: peak RSS of the process).

``--reduced`` keeps every code path at toy sizes (width 48, 2 blocks, 64x64x9, tiny codecs), so a CPU
test runs it. Results: ``--json`` writes them; the table is printed last.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from facevox.devices import check_device
from facevox.models import DualTowerConfig, DualTowerDiT, ModalityInput, References, TowerConfig, get_config

ROOT = Path(__file__).resolve().parent.parent
# dense bf16 tensor-core peaks (TFLOP/s, no sparsity), from the vendors' data sheets
KNOWN_PEAKS = {"H200": 989.4, "H100 80GB HBM3": 989.4, "H100 PCIe": 756.0, "A100": 312.0, "L40S": 362.0}

REDUCED = DualTowerConfig(
    name="iap-reduced",
    video=TowerConfig(in_channels=48, dim=48, heads=4, ffn_dim=96, ref_params="copy"),
    audio=TowerConfig(in_channels=20, dim=48, heads=4, ffn_dim=96, ref_params="shared"),
    depth=2,
    text_dim=16,
    freq_dim=32,
    audio_ref_start=630,
    audio_ref_slot_gap=187,
)


@dataclasses.dataclass(frozen=True)
class Geometry:
    height: int
    width: int
    frames: int
    fps: float = 24.0
    text_tokens: int = 512
    face_px: int = 512
    voice_s: float = 6.0

    @property
    def latent(self) -> tuple[int, int, int]:
        return (self.frames - 1) // 4 + 1, self.height // 16, self.width // 16

    @property
    def audio_tokens(self) -> int:
        return math.ceil(self.frames / self.fps * 16000 / 512)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _random_(module: torch.nn.Module, device: torch.device, dtype: torch.dtype, std: float = 0.02) -> None:
    """Materialise a meta-built module on ``device`` with small random weights (speed and memory do
    not depend on the values)."""
    module.to(dtype)  # on meta: free; the device then holds the weights in ``dtype`` only
    module.to_empty(device=device)
    with torch.no_grad():
        for p in module.parameters():
            if p.is_floating_point():
                p.normal_(0, std)
        for b in module.buffers():
            if b.is_floating_point():
                b.fill_(1.0)


# ------------------------------------------------------------------ 1. MFU
def block_inputs(
    cfg: DualTowerConfig, g: Geometry, device: torch.device
) -> tuple[ModalityInput, ModalityInput]:
    t, h, w = g.latent
    f = g.face_px // 16
    voice = math.ceil(g.voice_s * 16000 / 512)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=device)

    ids = torch.zeros(1, 1, dtype=torch.long, device=device)
    ctx, cm = (
        rnd(1, g.text_tokens, cfg.text_dim),
        torch.ones(1, g.text_tokens, dtype=torch.bool, device=device),
    )
    tags = torch.full((1, g.text_tokens), -1, dtype=torch.long, device=device)
    one = torch.ones(1, 1, 1, dtype=torch.bool, device=device)
    faces = References(latents=rnd(1, 1, 1, cfg.video.in_channels, 1, f, f), mask=one, slot_ids=ids)
    voices = References(
        latents=rnd(1, 1, voice, cfg.audio.in_channels), mask=one.expand(1, 1, voice), slot_ids=ids
    )
    common = dict(
        timesteps=torch.full((1,), 0.5, device=device), context=ctx, context_mask=cm, context_slot_ids=tags
    )
    v = ModalityInput(latents=rnd(1, cfg.video.in_channels, t, h, w), references=faces, **common)
    a = ModalityInput(latents=rnd(1, g.audio_tokens, cfg.audio.in_channels), references=voices, **common)
    return v, a


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, reps: int = 10) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def check_mfu(device: torch.device, reduced: bool, blocks: int, peak_tflops: float | None) -> dict[str, Any]:
    cfg = REDUCED if reduced else dataclasses.replace(get_config("iap-5b"), depth=blocks)
    g = Geometry(64, 64, 9, text_tokens=16, face_px=64, voice_s=1.0) if reduced else Geometry(704, 1280, 121)
    bf16 = device.type == "cuda"
    with torch.device("meta"):
        model = DualTowerDiT(cfg)
    _random_(model, device, torch.float32)
    v, a = block_inputs(cfg, g, device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(v, a)
        (out.video.float().square().mean() + out.audio.float().square().mean()).backward()

    fc = FlopCounterMode(display=False)
    with fc:
        step()
    flops = fc.get_total_flops()
    times = []
    for _ in range(3):
        _sync(device)
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t)
    dt = min(times)
    dtype = torch.bfloat16 if bf16 else torch.float32
    measured = matmul_peak(device, dtype, 512 if reduced else 8192)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    nominal = peak_tflops or next((p for k, p in KNOWN_PEAKS.items() if k in name), None)
    achieved = flops / dt
    return {
        "device_name": name,
        "size": "iap-5b" if not reduced else cfg.name,
        "blocks": cfg.depth,
        "tokens": g.latent[0] * g.latent[1] * g.latent[2] // 4 + g.audio_tokens,
        "fwd_bwd_tflop": flops / 1e12,
        "step_s": dt,
        "achieved_tflops": achieved / 1e12,
        "matmul_peak_tflops": measured / 1e12,
        "mfu_vs_matmul": achieved / measured,
        "mfu_vs_datasheet": achieved / (nominal * 1e12) if nominal else None,
        "datasheet_tflops": nominal,
    }


# ------------------------------------------------------------------ 2. training parity
def check_train_parity(device: torch.device, steps: int, rtol: float) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from facevox.training.config import TrainConfig
    from facevox.training.metrics import read_metrics
    from facevox.training.trainer import train
    from latent_fixtures import write_shards

    with tempfile.TemporaryDirectory() as tmp:
        shards = write_shards(Path(tmp) / "shards", train=8, heldout=0)
        losses = {}
        for where in ("cpu", str(device)):
            out = Path(tmp) / f"run-{where.replace(':', '')}"
            cfg = TrainConfig(
                data=str(shards), out=str(out), size="debug", strategy="stage2", steps=steps, batch_size=2,
                warmup=1, lr=3e-3, log_every=1, eval_every=10_000, checkpoint_every=10_000, val_split="",
                threads=1, device=where, deterministic=True,
            )  # fmt: skip
            train(cfg, progress=False)
            losses[where] = [r["loss"] for r in read_metrics(out) if "loss" in r]
    ref, got = np.array(losses["cpu"]), np.array(losses[str(device)])
    diff = float(np.max(np.abs(got - ref) / np.abs(ref)))
    return {
        "steps": steps,
        "loss_cpu": ref.tolist(),
        "loss_device": got.tolist(),
        "max_rel_diff": diff,
        "ok": diff <= rtol,
    }


# ------------------------------------------------------------------ 3. generation
def _stand_in_tokenizer(vocab: int) -> Any:
    """A word-level tokenizer with ``vocab`` entries (umT5's 256,384: the embedding keeps its real size)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "</s>", "<unk>", "a", "person", "says", "hello", "there", "."]
    words += [f"w{i}" for i in range(vocab - len(words))]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def release_parts(device: torch.device, reduced: bool) -> tuple[DualTowerDiT, Any, Any, Any]:
    """Random-weight towers (bf16 on CUDA), umT5, Wan2.2 VAE and MMAudio, left on the CPU."""
    from transformers import UMT5Config, UMT5EncoderModel

    from facevox.codecs.bigvgan import BigVGANConfig
    from facevox.codecs.mmaudio import MMAudioCodec
    from facevox.codecs.mmaudio_vae import MMAudioVAEConfig
    from facevox.codecs.text import T5TextEncoder
    from facevox.codecs.video import WanVideoCodec
    from facevox.release.memory import UMT5_XXL
    from facevox.release.wan22 import wan22_vae_config

    low = torch.bfloat16 if device.type == "cuda" else torch.float32
    cfg = REDUCED if reduced else get_config("iap-5b")
    with torch.device("meta"):
        model = DualTowerDiT(cfg)
    _random_(model, device, low)  # initialised on the device (fast), parked on the CPU
    model.to("cpu")
    t5 = (
        dict(UMT5_XXL, vocab_size=300, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2)
        if reduced
        else UMT5_XXL
    )
    with torch.device("meta"):
        t5_model = UMT5EncoderModel(UMT5Config(**t5))
    _random_(t5_model, device, low)
    text = T5TextEncoder(_stand_in_tokenizer(int(t5["vocab_size"])), t5_model.to("cpu"), max_length=512)
    vae = WanVideoCodec.from_config(wan22_vae_config(8, 8) if reduced else wan22_vae_config())
    audio = (
        MMAudioCodec.from_config(MMAudioVAEConfig(hidden_dim=8), BigVGANConfig(upsample_initial_channel=64))
        if reduced
        else MMAudioCodec.from_config()
    )
    return model, vae, audio, text


def _inputs(folder: Path) -> tuple[Path, Path]:
    """A face (the astronaut) and a voiced synthetic voice; no espeak needed on the GPU machine."""
    import soundfile as sf
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()[:300, 100:400]).save(folder / "face.png")
    t = np.arange(16000 * 3) / 16000
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))  # three "syllables" a second
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12)) * envelope
    sf.write(folder / "voice.wav", (0.3 * voice / np.abs(voice).max()).astype(np.float32), 16000)
    return folder / "face.png", folder / "voice.wav"


def check_generation(device: torch.device, reduced: bool, steps: int) -> list[dict[str, Any]]:
    from facevox.pipeline import FacevoxPipeline, GenerationRequest, Person
    from facevox.pipeline.pipeline import GenerateConfig, PipelineSettings

    g = Geometry(64, 64, 9) if reduced else Geometry(704, 1280, 121)
    t0 = time.perf_counter()
    model, vae, audio, text = release_parts(device, reduced)
    build_s = time.perf_counter() - t0
    settings = PipelineSettings(
        fps=g.fps, sample_rate=16000, height=g.height, width=g.width, num_frames=g.frames, max_frames=g.frames,
        face_size=64 if reduced else 512, voice_seconds=1.0 if reduced else 6.0, text_encoder="stand-in",
        max_caption_tokens=512, shift=5.0,
    )  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        face, voice = _inputs(Path(tmp) / "in")
        person = Person(name="alice", faces=(str(face),), voice=str(voice))
        req = GenerationRequest(
            name="clip", people=(person,), script="[alice] hello there.", duration=g.frames / g.fps, seed=0,
            width=g.width, height=g.height,
        )  # fmt: skip
        for offload in (True, False):
            pipe = FacevoxPipeline(model, vae, audio, text, settings, device=device, offload=offload)
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            _sync(device)
            t = time.perf_counter()
            out = pipe(req, Path(tmp) / f"out-{offload}", config=GenerateConfig(steps=steps))
            _sync(device)
            rows.append(
                {
                    "offload": offload,
                    "steps": steps,
                    "seconds_per_clip": time.perf_counter() - t,
                    "peak_gib": _peak_memory(device) / 2**30,
                    "frames": int(out.frames.shape[0]),
                    "size": f"{out.frames.shape[2]}x{out.frames.shape[1]}",
                    "random_weights_build_s": build_s,
                }
            )
            pipe.model.to("cpu")
            for m in (pipe.video_codec, pipe.audio_codec, pipe.text):
                m.to("cpu")
    return rows


def _run(name: str, fn: Callable[[], Any], results: dict[str, Any]) -> None:
    t = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as e:  # one failed check still leaves the others' figures in the table
        results[name] = {"error": f"{type(e).__name__}: {e}"}
    print(f"[gpu_check] {name}: {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)


def table(results: dict[str, Any]) -> str:
    def f(x: Any, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    lines = ["| check | figure | value |", "|---|---|---|"]
    m = results.get("mfu", {})
    if "error" in m:
        lines.append(f"| MFU | error | {m['error']} |")
    elif m:
        lines += [
            f"| MFU ({m['device_name']}, {m['blocks']} {m['size']} blocks, {m['tokens']:,} tokens) | fwd+bwd step | "
            f"{m['step_s']:.3f} s, {m['fwd_bwd_tflop']:.1f} TFLOP |",
            f"| | achieved | {m['achieved_tflops']:.1f} TFLOP/s |",
            f"| | MFU vs data sheet ({f(m['datasheet_tflops'], '.0f')} TFLOP/s) | {f(m['mfu_vs_datasheet'], '.1%')} |",
            f"| | MFU vs measured matmul ({m['matmul_peak_tflops']:.0f} TFLOP/s) | {m['mfu_vs_matmul']:.1%} |",
        ]
    t = results.get("train_parity", {})
    if "error" in t:
        lines.append(f"| training parity | error | {t['error']} |")
    elif t:
        verdict = "equal within tolerance" if t["ok"] else "DIFFERENT"
        lines.append(
            f"| training parity (debug, {t['steps']} steps) | max relative loss difference | "
            f"{t['max_rel_diff']:.2e} ({verdict}) |"
        )
    gen = results.get("generation", [])
    if isinstance(gen, dict):
        lines.append(f"| generation | error | {gen['error']} |")
    for r in gen:
        mode = "offload" if r["offload"] else "resident"
        lines.append(
            f"| generation {r['size']}x{r['frames']}, {mode}, {r['steps']} steps | s per clip, peak memory | "
            f"{r['seconds_per_clip']:.1f} s, {r['peak_gib']:.1f} GiB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--reduced", action="store_true", help="toy sizes: the code paths only (CPU tests)")
    p.add_argument("--only", nargs="+", choices=["mfu", "train_parity", "generation"], default=None)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the device")
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--loss-rtol", type=float, default=1e-3)
    p.add_argument("--gen-steps", type=int, default=10, help="sampling steps per clip (the release: 50)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    device = check_device(a.device, bf16=a.device != "cpu")
    if device.type == "cpu" and not a.reduced:
        p.error("real sizes need a GPU: pass --reduced on the CPU")
    todo = a.only or ["mfu", "train_parity", "generation"]
    results: dict[str, Any] = {"device": str(device), "reduced": a.reduced}
    if "mfu" in todo:
        _run("mfu", lambda: check_mfu(device, a.reduced, a.blocks, a.peak_tflops), results)
    if "train_parity" in todo:
        _run("train_parity", lambda: check_train_parity(device, a.train_steps, a.loss_rtol), results)
    if "generation" in todo:
        _run("generation", lambda: check_generation(device, a.reduced, a.gen_steps), results)
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    print(table(results))
    failed = [k for k, v in results.items() if isinstance(v, dict) and ("error" in v or v.get("ok") is False)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
