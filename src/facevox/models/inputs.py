"""Typed inputs of the dual-tower DiT, one frozen dataclass per stream.

Shape legend: ``B`` batch; ``C`` latent channels; ``T, H, W`` video latent grid; ``Ta`` audio latent
frames; ``K`` reference groups (people) per sample, padded; ``V`` views per face group, padded;
``Tr`` voice-reference latent frames, padded; ``L`` caption tokens; ``E`` text-encoder width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True, kw_only=True)
class References:
    """Identity references of one modality for a batch.

    Video (faces): ``latents`` (B, K, V, C, 1, H, W) single-frame VAE latents, ``mask`` (B, K, V) True
    for a real view. Audio (voices): ``latents`` (B, K, Tr, C), ``mask`` (B, K, Tr) True for a real
    latent frame. ``slot_ids`` (B, K) long: the identity slot each group belongs to (the index of its
    identity embedding and of its position region), -1 for a padding group. A slot appears at most
    once per sample and modality; the order of the K groups does not matter.
    ``boxes`` (faces only, optional): (B, K, 4) where each group's face is to be drawn in the target,
    (x0, y0, x1, y1) in fractions of the frame; read by models whose ``ref_position_mode`` is
    ``"placed"`` (the face views' (h, w) positions then span that box), required there.
    """

    latents: Tensor
    mask: Tensor
    slot_ids: Tensor
    boxes: Tensor | None = None

    def select(self, rows: Tensor) -> References:
        """The batch rows ``rows`` (1-D index tensor)."""
        return References(
            latents=self.latents[rows],
            mask=self.mask[rows],
            slot_ids=self.slot_ids[rows],
            boxes=None if self.boxes is None else self.boxes[rows],
        )

    def disabled(self) -> References:
        """The same tensors with every group masked out (no slot referenced)."""
        return References(
            latents=self.latents,
            mask=torch.zeros_like(self.mask),
            slot_ids=torch.full_like(self.slot_ids, -1),
            boxes=self.boxes,
        )


@dataclass(frozen=True, kw_only=True)
class ModalityInput:
    """One stream's inputs.

    ``latents``: video (B, C, T, H, W) or audio (B, Ta, C) noisy latents.
    ``timesteps``: (B,) or per token (B, N) noise level sigma in [0, 1] (0 = clean); the model embeds
    ``sigma * config.timestep_scale``.
    ``context``: (B, L, E) caption hidden states; ``context_mask`` (B, L) bool, True = real token
    (each sample needs at least one).
    ``context_slot_ids``: (B, L) long, the identity slot a caption token is tagged with (``<REF_k>`` /
    ``<Sk>`` spans, mapped to slots by the text side) or -1; tagged tokens get that slot's identity
    embedding. None = no tags.
    ``references``: this modality's identity references, or None (or pass a prepared
    :class:`~facevox.models.reference_cache.ReferenceCache` to the model instead).
    ``positions``: optional override of the target RoPE positions: video (B, N, 3) (t, h, w) in token
    units, audio (B, N) in video latent-frame units; None = the default grid.
    ``speaking``: (B, Nt, S) bool, True where identity slot s speaks during target token time t (the
    turn spans through :func:`facevox.alignment.speaking_mask`): video Nt = token frames T' (shared by
    the frame's H'W' tokens), audio Nt = Na; S <= max_slots. Models with ``turn_embedding`` add those
    slots' identity embeddings to the tokens. None = no turn spans.
    """

    latents: Tensor
    timesteps: Tensor
    context: Tensor
    context_mask: Tensor
    context_slot_ids: Tensor | None = None
    references: References | None = None
    positions: Tensor | None = None
    speaking: Tensor | None = None
