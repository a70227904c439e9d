"""GPU memory plan for generating with the release: towers + umT5-XXL + Wan2.2 VAE + MMAudio, per GPU size.

Every weight figure is counted from the configs, built on the meta device (nothing is read or
allocated): the towers from :mod:`facevox.models.registry`, umT5-XXL from its public transformers
config (below), the Wan2.2 VAE from :func:`facevox.release.wan22.wan22_vae_config`, MMAudio from its
16 kHz configs. Activations are a formula, not a measurement (a GPU run checks them,
``benchmarks/gpu_check.sh``):

- one block of one tower, per guidance variant, holds per token the hidden state, its normed copy,
  q, k, v, the attention output (6 x D) and the FFN's hidden layer before and after GELU (2 x F), in the
  compute dtype; flash / memory-efficient SDPA keeps no N^2 score matrix;
- the reference K/V cache: every block's keys and values of the reference tokens;
- the VAE decode: the Wan decoder runs causally, a few latent frames at a time; its largest tensor is
  ``decoder_base_dim`` channels x 4 frames x (H / 2) x (W / 2); the decode peak is taken as
  :data:`DECODE_FACTOR` such tensors (an estimate);
- :data:`RESERVE_GIB` for the CUDA context and the caching allocator's slack.

Plans, cheapest first: ``resident`` (everything on the GPU), ``offload`` (each component on the GPU
only while it runs: ``FacevoxPipeline(offload=True)``), ``stream`` (as offload, and the towers' blocks
copied in one or two at a time: **not implemented**, listed to show what 24 GB would need).

``python -m facevox.release.memory [--size iap-5b] [--height 704 --width 1280 --frames 121]``
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from facevox.alignment import get_alignment

GIB = 2**30
RESERVE_GIB = 1.5  # CUDA context + allocator slack (assumed, not measured)
DECODE_FACTOR = 6  # Wan VAE decode peak in units of its largest activation (estimate)
# google/umt5-xxl, encoder only (what Wan and the release run): d_model 4096, 24 layers, 64 heads x 64
UMT5_XXL: dict[str, Any] = {
    "vocab_size": 256384,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "feed_forward_proj": "gated-gelu",
}


@dataclass(frozen=True)
class Component:
    name: str
    params: int
    activation_bytes: int  # its peak activations while it runs

    def weight_bytes(self, bytes_per_param: int) -> int:
        return self.params * bytes_per_param


def _meta_params(build: Callable[[], torch.nn.Module]) -> int:
    with torch.device("meta"):
        module = build()
    return sum(p.numel() for p in module.parameters())


def components(
    size: str = "iap-5b",
    height: int = 704,
    width: int = 1280,
    frames: int = 121,
    variants: int = 3,
    bytes_per: int = 2,
) -> list[Component]:
    """The four components with their weights (meta-built) and activation estimates at this clip."""
    from transformers import UMT5Config, UMT5EncoderModel

    from facevox.codecs.mmaudio import MMAudioCodec
    from facevox.codecs.video import WanVideoCodec
    from facevox.models import DualTowerDiT, get_config
    from facevox.release.wan22 import wan22_vae_config

    cfg = get_config(size)
    al = get_alignment("iap-5b")
    stride = al.vae_space_stride
    if height % (stride * cfg.video.patch[1]) or width % (stride * cfg.video.patch[2]) or (frames - 1) % 4:
        raise ValueError(f"{width}x{height}x{frames}: sides must be multiples of 32 and frames 1 + 4k")
    latent_frames = (frames - 1) // 4 + 1
    video_tokens = (
        latent_frames * (height // stride // cfg.video.patch[1]) * (width // stride // cfg.video.patch[2])
    )
    audio_tokens = math.ceil(frames / al.fps * al.sample_rate / al.audio_hop)
    ref_tokens = (512 // stride // 2) ** 2 + al.audio_tokens_for(6.0)  # one face view + one 6-s voice
    d, f = cfg.video.dim, cfg.video.ffn_dim
    per_token = (6 * d + 2 * f) * bytes_per
    block = variants * (video_tokens + audio_tokens) * per_token
    ref_cache = cfg.depth * ref_tokens * 2 * d * bytes_per
    towers = _meta_params(lambda: DualTowerDiT(cfg))
    t5 = _meta_params(lambda: UMT5EncoderModel(UMT5Config(**UMT5_XXL)))
    t5_act = 2 * 512 * (6 * UMT5_XXL["d_model"] + 2 * UMT5_XXL["d_ff"]) * bytes_per  # cond + negative caption
    vae_cfg = wan22_vae_config()
    vae = _meta_params(lambda: WanVideoCodec.from_config(vae_cfg))
    decode = DECODE_FACTOR * vae_cfg["decoder_base_dim"] * 4 * (height // 2) * (width // 2) * bytes_per
    audio = _meta_params(lambda: MMAudioCodec.from_config())
    return [
        Component("umT5-XXL", t5, t5_act),
        Component(f"towers ({size})", towers, block + ref_cache),
        Component("Wan2.2 VAE", vae, decode),
        Component("MMAudio VAE + vocoder", audio, 0),
    ]


@dataclass(frozen=True)
class Plan:
    name: str
    resident: str
    offloaded: str
    peak_bytes: int
    implemented: bool


def plans(
    parts: list[Component], bytes_per: int = 2, depth: int = 30, streamed_blocks: int = 2
) -> list[Plan]:
    t5, towers, vae, audio = parts
    w = {c.name: c.weight_bytes(bytes_per) for c in parts}
    all_w = sum(w.values())
    resident = all_w + max(c.activation_bytes for c in parts)
    # one component at a time (the VAE decode and MMAudio's vocoder run at the same stage)
    stages = {
        t5.name: w[t5.name] + t5.activation_bytes,
        towers.name: w[towers.name] + towers.activation_bytes,
        "decoders": w[vae.name] + w[audio.name] + vae.activation_bytes,
    }
    per_block = w[towers.name] // depth  # blocks hold all but ~5 % of the towers (an upper bound)
    streamed = {**stages, towers.name: streamed_blocks * per_block + towers.activation_bytes}
    return [
        Plan("resident", "everything", "nothing", resident, True),
        Plan(
            "offload",
            "the running component",
            "the other three (host RAM)",
            max(stages.values()),
            True,
        ),
        Plan(
            "stream",
            f"{streamed_blocks} tower blocks at a time + activations",
            "everything else",
            max(streamed.values()),
            False,
        ),
    ]


def memory_table(
    gpus: tuple[int, ...], parts: list[Component], bytes_per: int = 2
) -> list[dict[str, object]]:
    """For each GPU size (GiB): the first plan whose peak + reserve fits, with every plan's peak."""
    ps = plans(parts, bytes_per)
    rows: list[dict[str, object]] = []
    for gib in gpus:
        fits = [p for p in ps if p.peak_bytes / GIB + RESERVE_GIB <= gib]
        chosen = fits[0] if fits else None
        rows.append(
            {
                "gpu_gib": gib,
                "plan": chosen.name if chosen else "none",
                "resident": chosen.resident if chosen else "-",
                "offloaded": chosen.offloaded if chosen else "-",
                "peak_gib": round(chosen.peak_bytes / GIB + RESERVE_GIB, 1) if chosen else None,
                "implemented": chosen.implemented if chosen else False,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="iap-5b")
    p.add_argument("--height", type=int, default=704)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--frames", type=int, default=121)
    p.add_argument("--variants", type=int, default=3, help="guidance variants batched per step (release: 2)")
    p.add_argument("--gpus", type=int, nargs="+", default=[24, 48, 80], help="GPU memory sizes, GiB")
    a = p.parse_args(argv)
    parts = components(a.size, a.height, a.width, a.frames, a.variants)
    print(f"{a.size} at {a.width}x{a.height}x{a.frames}, bf16 weights, {a.variants} guidance variants:")
    print(f"{'component':<24}{'params':>16}{'weights GiB':>13}{'activations GiB':>17}")
    for c in parts:
        print(f"{c.name:<24}{c.params:>16,}{c.weight_bytes(2) / GIB:>13.2f}{c.activation_bytes / GIB:>17.2f}")
    print(f"\nplans (peak includes {RESERVE_GIB} GiB reserve):")
    for pl in plans(parts):
        status = "" if pl.implemented else "  (not implemented)"
        print(f"  {pl.name:<9}{pl.peak_bytes / GIB + RESERVE_GIB:>7.1f} GiB  resident: {pl.resident}{status}")
    print(f"\n{'GPU':>6}  {'plan':<9}{'peak GiB':>9}  resident / offloaded")
    for r in memory_table(tuple(a.gpus), parts):
        peak = f"{r['peak_gib']:>9.1f}" if r["peak_gib"] is not None else f"{'-':>9}"
        note = "" if r["implemented"] else "  NOT IMPLEMENTED"
        print(f"{r['gpu_gib']:>4} GB  {r['plan']!s:<9}{peak}  {r['resident']} / {r['offloaded']}{note}")


if __name__ == "__main__":
    main()
