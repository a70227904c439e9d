"""Random inputs for the dual-tower model tests (debug size)."""

from __future__ import annotations

import torch

from facevox.models import DualTowerConfig, ModalityInput, References


def make_inputs(
    cfg: DualTowerConfig,
    *,
    batch: int = 2,
    slots: int = 2,
    views: int = 2,
    frames: int = 3,
    hw: tuple[int, int] = (8, 8),
    audio_len: int = 10,
    voice_len: int = 6,
    text_len: int = 7,
    seed: int = 0,
    ragged: bool = True,
) -> tuple[ModalityInput, ModalityInput]:
    """Video + audio inputs with ``slots`` people (faces with ``views`` views, voices) per sample.

    With ``ragged`` the last sample has one person fewer, one view fewer and a shorter voice (padding).
    Caption tokens 1-2 are tagged with slot 0 and tokens 3-4 with slot 1 (where those slots exist).
    """
    g = torch.Generator().manual_seed(seed)
    Cv, Ca = cfg.video.in_channels, cfg.audio.in_channels

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    slot_ids = torch.full((batch, slots), -1, dtype=torch.long)
    view_mask = torch.zeros(batch, slots, views, dtype=torch.bool)
    voice_mask = torch.zeros(batch, slots, voice_len, dtype=torch.bool)
    for b in range(batch):
        k_b = slots - 1 if ragged and b == batch - 1 and slots > 1 else slots
        for k in range(k_b):
            slot_ids[b, k] = k
            view_mask[b, k, : max(1, views - (1 if ragged and b == batch - 1 else 0))] = True
            voice_mask[b, k, : voice_len - (2 if ragged and b == batch - 1 else 0)] = True
    tags = torch.full((batch, text_len), -1, dtype=torch.long)
    for b in range(batch):
        present = set(slot_ids[b].tolist()) - {-1}
        if 0 in present:
            tags[b, 1:3] = 0
        if 1 in present:
            tags[b, 3:5] = 1
    ctx_mask = torch.ones(batch, text_len, dtype=torch.bool)
    ctx_mask[-1, -2:] = False
    faces = References(latents=rnd(batch, slots, views, Cv, 1, *hw), mask=view_mask, slot_ids=slot_ids)
    voices = References(latents=rnd(batch, slots, voice_len, Ca), mask=voice_mask, slot_ids=slot_ids.clone())
    context = rnd(batch, text_len, cfg.text_dim)
    video = ModalityInput(
        latents=rnd(batch, Cv, frames, *hw),
        timesteps=torch.rand(batch, generator=g),
        context=context,
        context_mask=ctx_mask,
        context_slot_ids=tags,
        references=faces if slots else None,
    )
    audio = ModalityInput(
        latents=rnd(batch, audio_len, Ca),
        timesteps=torch.rand(batch, generator=g),
        context=context,
        context_mask=ctx_mask,
        context_slot_ids=tags,
        references=voices if slots else None,
    )
    return video, audio
