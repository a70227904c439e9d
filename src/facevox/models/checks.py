"""Input checks at the model's public boundary; every failure is a ValueError naming the input.

Value checks (which sync with the device) are skipped for meta tensors, so the model can be traced on
the meta device for FLOP counting.
"""

from __future__ import annotations

import torch
from torch import Tensor

from facevox.models.config import DualTowerConfig
from facevox.models.inputs import ModalityInput, References


def _shape(name: str, x: Tensor, expected: tuple[int | None, ...]) -> None:
    if x.ndim != len(expected) or any(
        e is not None and e != s for e, s in zip(expected, x.shape, strict=True)
    ):
        want = tuple("*" if e is None else e for e in expected)
        raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {want}")


def check_modality(name: str, m: ModalityInput, cfg: DualTowerConfig, latent_ndim: int, channels: int) -> int:
    """Check one stream's tensors; returns the batch size."""
    lat = m.latents
    if lat.ndim != latent_ndim:
        raise ValueError(f"{name}.latents must have {latent_ndim} dims, got shape {tuple(lat.shape)}")
    B = lat.shape[0]
    ch = lat.shape[1] if name == "video" else lat.shape[-1]
    if ch != channels:
        raise ValueError(f"{name}.latents has {ch} channels, the model expects {channels}")
    if m.timesteps.ndim not in (1, 2) or m.timesteps.shape[0] != B:
        raise ValueError(
            f"{name}.timesteps must be (B,) or (B, N) with B={B}, got {tuple(m.timesteps.shape)}"
        )
    _shape(f"{name}.context", m.context, (B, None, cfg.text_dim))
    L = m.context.shape[1]
    _shape(f"{name}.context_mask", m.context_mask, (B, L))
    if m.context_mask.dtype != torch.bool:
        raise ValueError(f"{name}.context_mask must be bool, got {m.context_mask.dtype}")
    if not m.context_mask.is_meta and not bool(m.context_mask.any(1).all()):
        raise ValueError(f"{name}.context_mask: every sample needs at least one real caption token")
    if m.context_slot_ids is not None:
        _shape(f"{name}.context_slot_ids", m.context_slot_ids, (B, L))
        if not m.context_slot_ids.is_meta and bool((m.context_slot_ids >= cfg.max_slots).any()):
            raise ValueError(f"{name}.context_slot_ids names a slot >= max_slots={cfg.max_slots}")
    if m.speaking is not None:
        if not cfg.turn_embedding:
            raise ValueError(f"{name}.speaking given, but model {cfg.name!r} has no turn embedding")
        if m.speaking.ndim != 3 or m.speaking.shape[0] != B or m.speaking.dtype != torch.bool:
            raise ValueError(f"{name}.speaking must be (B={B}, Nt, S) bool, got {tuple(m.speaking.shape)}")
        if m.speaking.shape[2] > cfg.max_slots:
            raise ValueError(f"{name}.speaking has {m.speaking.shape[2]} slots > max_slots={cfg.max_slots}")
    return B


def check_references(name: str, r: References, cfg: DualTowerConfig, channels: int) -> None:
    """Check a modality's references: shapes, slot-id range, no slot twice in one sample."""
    B, K = r.slot_ids.shape[:2] if r.slot_ids.ndim == 2 else (None, None)
    if B is None:
        raise ValueError(f"{name}.references.slot_ids must be (B, K), got {tuple(r.slot_ids.shape)}")
    if name == "video":
        _shape(f"{name}.references.latents", r.latents, (B, K, None, channels, 1, None, None))
        _shape(f"{name}.references.mask", r.mask, (B, K, r.latents.shape[2]))
    else:
        _shape(f"{name}.references.latents", r.latents, (B, K, None, channels))
        _shape(f"{name}.references.mask", r.mask, (B, K, r.latents.shape[2]))
    if r.mask.dtype != torch.bool:
        raise ValueError(f"{name}.references.mask must be bool, got {r.mask.dtype}")
    ids = r.slot_ids
    if ids.is_meta:  # shapes only (e.g. FLOP counting on the meta device)
        return
    if bool(((ids < -1) | (ids >= cfg.max_slots)).any()):
        raise ValueError(f"{name}.references.slot_ids must lie in [-1, {cfg.max_slots}), got {ids.tolist()}")
    s = ids.sort(1).values
    dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
    if bool(dup.any()):
        raise ValueError(f"{name}.references.slot_ids repeat a slot within a sample: {ids.tolist()}")


def check_caption_tags(name: str, slot_ids: Tensor, mask: Tensor, slot_present: Tensor) -> None:
    """Every tagged caption token must name a slot that has a face or voice reference."""
    if slot_ids.is_meta:
        return
    tagged = (slot_ids >= 0) & mask  # (B, L)
    ok = slot_present.gather(1, slot_ids.clamp(min=0)) | ~tagged
    if not bool(ok.all()):
        b, l_ = (~ok).nonzero()[0].tolist()
        k = int(slot_ids[b, l_])
        raise ValueError(
            f"{name}.context_slot_ids: sample {b} tags caption token {l_} with slot {k}, "
            f"but no face or voice reference of that sample has slot_id {k}"
        )


def slots_present(refs: References | None, batch: int, slots: int, device: torch.device) -> Tensor:
    """(B, S) bool: slots with at least one real view / frame in these references."""
    present = torch.zeros(batch, slots, dtype=torch.bool, device=device)
    if refs is None:
        return present
    real = (refs.slot_ids >= 0) & refs.mask.flatten(2).any(-1)  # (B, K)
    return present.int().scatter_add(1, refs.slot_ids.clamp(min=0), real.int()) > 0
