"""Named model sizes.

``debug`` (tests, milliseconds), ``tiny`` (the CPU demo), ``wide`` (tiny at twice the width), ``small``, ``ovi-11b`` (real size: a
Wan2.2-TI2V-5B video tower and a symmetric audio tower on MMAudio latents, ~5.5B parameters each)
and ``iap-5b`` (the same towers with the release's reference parameterisation: a full reference copy
in the video tower, shared weights in the audio tower, voices from index 630; mapping it onto the
release checkpoint: ``docs/release.md``), and ``dreamid-omni`` (DreamID-Omni's checkpoint, Ovi's towers
with no reference parameters; ``docs/models.md``).
"""

from __future__ import annotations

import dataclasses

from facevox.alignment import PRESETS
from facevox.models.config import DualTowerConfig, TowerConfig

_OVI_SCALE = round(PRESETS["ovi"].release_time_scale, 5)  # 0.19676, Ovi's audio.json value
# the sizes trained here follow the seconds clock of the data they are trained on (the trainer sets it
# from the shards); this default is the CPU world's 25 fps, x4 time stride, 25 audio tokens/s
_TINY_CLOCK = PRESETS["tiny"].clock
_TINY_SCALE = _TINY_CLOCK.rope_time_scale

_TINY = DualTowerConfig(
    name="tiny",
    video=TowerConfig(in_channels=4, dim=128, heads=4, ffn_dim=512, ref_lora_rank=16),
    audio=TowerConfig(in_channels=8, dim=128, heads=4, ffn_dim=512, ref_lora_rank=16, embed_multiple_of=32),
    depth=4,
    text_dim=384,
    freq_dim=128,
    rope_time_scale=_TINY_SCALE,
    clock=_TINY_CLOCK,
    turn_embedding=True,
    audio_ref_slot_gap=64,
    video_grid_position=True,
    # the head predicts the clean latent (a token carries 32 ch x 2x2 = 128 numbers, the tower's
    # width): lower error where the layout is decided, sigma 0.8-0.95 (docs/results.md)
    video_prediction="sample",
)


def _twice_as_wide(cfg: DualTowerConfig, name: str) -> DualTowerConfig:
    """``cfg`` with both towers at twice the width (model, FFN and reference-LoRA rank), same heads."""

    def wider(t: TowerConfig) -> TowerConfig:
        return dataclasses.replace(t, dim=2 * t.dim, ffn_dim=2 * t.ffn_dim, ref_lora_rank=2 * t.ref_lora_rank)

    return dataclasses.replace(cfg, name=name, video=wider(cfg.video), audio=wider(cfg.audio))


SIZES: dict[str, DualTowerConfig] = {
    "debug": DualTowerConfig(
        name="debug",
        video=TowerConfig(in_channels=4, dim=32, heads=2, ffn_dim=64, ref_lora_rank=4),
        audio=TowerConfig(
            in_channels=6, dim=24, heads=2, ffn_dim=48, ref_lora_rank=4, embed_kernel=3, embed_multiple_of=8
        ),
        depth=2,
        text_dim=16,
        freq_dim=32,
        max_slots=6,
        rope_time_scale=_TINY_SCALE,
        clock=_TINY_CLOCK,
        turn_embedding=True,
        audio_ref_slot_gap=32,
    ),
    "tiny": _TINY,
    # tiny's layout at twice the width (head width 64): 15.2M parameters; the training step runs at
    # 40-49 % of the 2-core matmul peak where tiny runs at 24-26 % (benchmarks/train_bench.py)
    "wide": _twice_as_wide(_TINY, "wide"),
    "small": DualTowerConfig(
        name="small",
        video=TowerConfig(in_channels=16, dim=384, heads=6, ffn_dim=1536, ref_lora_rank=32),
        audio=TowerConfig(
            in_channels=20, dim=384, heads=6, ffn_dim=1536, ref_lora_rank=32, embed_multiple_of=64
        ),
        depth=8,
        text_dim=384,
        rope_time_scale=_TINY_SCALE,
        clock=_TINY_CLOCK,
        turn_embedding=True,
        audio_ref_slot_gap=128,
        video_grid_position=True,
    ),
    "ovi-11b": DualTowerConfig(
        name="ovi-11b",
        video=TowerConfig(in_channels=48, dim=3072, heads=24, ffn_dim=14336, ref_lora_rank=128),
        audio=TowerConfig(in_channels=20, dim=3072, heads=24, ffn_dim=14336, ref_lora_rank=128),
        depth=30,
        text_dim=4096,
        rope_time_scale=_OVI_SCALE,
        audio_ref_slot_gap=192,
    ),
    "iap-5b": DualTowerConfig(
        name="iap-5b",
        video=TowerConfig(in_channels=48, dim=3072, heads=24, ffn_dim=14336, ref_params="copy"),
        audio=TowerConfig(in_channels=20, dim=3072, heads=24, ffn_dim=14336, ref_params="shared"),
        depth=30,
        text_dim=4096,
        rope_time_scale=_OVI_SCALE,
        audio_ref_start=630,
        audio_ref_slot_gap=187,
    ),
    # DreamID-Omni (Ovi's FusionModel layout, no reference weights; references travel inside the
    # target sequences: facevox.release.dreamid_inputs). Time scale: the engine's bf16(31 / 157).
    "dreamid-omni": DualTowerConfig(
        name="dreamid-omni",
        video=TowerConfig(in_channels=48, dim=3072, heads=24, ffn_dim=14336, ref_params="shared"),
        audio=TowerConfig(in_channels=20, dim=3072, heads=24, ffn_dim=14336, ref_params="shared"),
        depth=30,
        text_dim=4096,
        max_slots=2,
        rope_time_scale=0.197265625,
    ),
}


def get_config(name: str) -> DualTowerConfig:
    """A named size; ValueError lists the names on a miss."""
    if name not in SIZES:
        raise ValueError(f"unknown model size {name!r}; known: {sorted(SIZES)}")
    return SIZES[name]
