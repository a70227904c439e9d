"""The dual-tower DiT with identity injection (paper Fig. 1; Ovi twin towers).

Shape legend: ``B`` batch; ``Cv`` / ``Ca`` latent channels; ``T, H, W`` video latent grid;
``T', H', W'`` token grid; ``Nv = T'H'W'`` video tokens; ``Na`` audio tokens; ``K`` reference groups;
``V`` views; ``Tr`` voice frames; ``Nrv`` / ``Nra`` reference tokens; ``L`` caption tokens;
``Dv`` / ``Da`` widths; ``S`` slots.

Five inputs: video, audio, face references, voice references, structured caption. Each tower embeds
its target latents and its references with the same patch embedding; the identity embedding of slot k
is added to slot k's reference tokens in both towers, to the caption tokens tagged k and (sizes with
``turn_embedding``) to the target tokens during slot k's turns; positions
follow :mod:`facevox.models.positions`. References run through every block on their own stream
(references attend only to references, t = 0 modulation, decoupled parameters per
``TowerConfig.ref_params``, no caption / bridge attention), so their per-block keys / values do not
depend on the noisy inputs or the step: :meth:`DualTowerDiT.prepare_references` computes them once
and :meth:`DualTowerDiT.forward` reuses them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import torch
from einops import rearrange, repeat
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from facevox.models.block import DualStreamBlock, StreamContext
from facevox.models.checks import check_caption_tags, check_modality, check_references, slots_present
from facevox.models.config import DualTowerConfig
from facevox.models.inputs import ModalityInput, References
from facevox.models.positions import (
    audio_positions,
    audio_reference_positions,
    video_grid_positions,
    video_reference_positions,
)
from facevox.models.reference_cache import ReferenceCache, ReferenceKV
from facevox.models.tower import TowerLayers
from facevox.models.tower_io import AudioEmbed, IdentityEmbedding, OutputHead, TextProjection
from facevox.models.weights import from_pretrained, save_pretrained
from facevox.nn.patchify import GridPositionEmbedding, PatchEmbed3d, unpatchify
from facevox.nn.rope import RotaryTable, rotary_table
from facevox.nn.timestep import TimestepEmbedding

logger = logging.getLogger(__name__)

_R = TypeVar("_R")


@dataclass(frozen=True)
class DualTowerOutput:
    """Predicted velocities: video (B, Cv, T, H, W) and audio (B, Na, Ca)."""

    video: Tensor
    audio: Tensor


class DualTowerDiT(nn.Module):
    """Video tower + audio tower, joined block by block; predicts the velocity of both modalities."""

    def __init__(self, config: DualTowerConfig) -> None:
        super().__init__()
        self.config = config
        cv, ca = config.video, config.audio
        self.video_embed = PatchEmbed3d(cv.in_channels, cv.dim, cv.patch)
        self.video_grid_position = GridPositionEmbedding(cv.dim) if config.video_grid_position else None
        self.audio_embed = AudioEmbed(ca.in_channels, ca.dim, ca.embed_kernel, ca.embed_multiple_of)
        self.video_time = TimestepEmbedding(config.freq_dim, cv.dim)
        self.audio_time = TimestepEmbedding(config.freq_dim, ca.dim)
        self.video_text = TextProjection(config.text_dim, cv.dim)
        self.audio_text = TextProjection(config.text_dim, ca.dim)
        self.identity = IdentityEmbedding(config.max_slots, cv.dim, ca.dim, config.init_std)
        self.blocks = nn.ModuleList(DualStreamBlock(config) for _ in range(config.depth))
        self.video_head = OutputHead(cv.dim, cv.in_channels * math.prod(cv.patch), config.eps)
        self.audio_head = OutputHead(ca.dim, ca.in_channels, config.eps)
        self.gradient_checkpointing = False

    def save_pretrained(self, directory: str | Path) -> Path:
        """Safetensors with the config in its metadata (see :mod:`facevox.models.weights`)."""
        return save_pretrained(self, directory)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> DualTowerDiT:
        """Build on meta and load strictly (see :mod:`facevox.models.weights`)."""
        return from_pretrained(cls, directory, device=device, dtype=dtype)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute each block (and each reference step) in backward (plain torch.utils.checkpoint)."""
        self.gradient_checkpointing = enabled

    def _run(self, fn: Callable[..., _R], *args: object) -> _R:
        """Call ``fn``, through activation checkpointing when it is on and gradients are recorded."""
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    # ------------------------------------------------------------------ references
    def _ref_modulation(self, time: TimestepEmbedding, batch: int, device: torch.device) -> Tensor:
        """Modulation input of the clean (t = 0) references: (B, 1, 6, D)."""
        _, mod = time(torch.zeros(batch, 1, device=device))
        return mod

    @staticmethod
    def _ref_attention_mask(valid: Tensor) -> Tensor:
        """(B, Nr) -> (B, 1, Nr, Nr): attend to valid references; padded queries also see themselves
        so no row is empty (their outputs are never read)."""
        eye = torch.eye(valid.shape[1], dtype=torch.bool, device=valid.device)
        return (valid[:, None, :] | eye)[:, None]

    def _video_reference_tokens(
        self, r: References, video_frames: int, target_hw: tuple[int, int] | None
    ) -> tuple[Tensor, Tensor, RotaryTable]:
        cfg = self.config
        B, K, V = r.latents.shape[:3]
        tok = self.video_embed(rearrange(r.latents, "b k v c t h w -> (b k v) c t h w"))  # (BKV, 1, h, w, Dv)
        h, w = tok.shape[2:4]
        tok = rearrange(tok, "(b k v) t h w d -> b k (v t h w) d", b=B, k=K)
        tok = tok + self.identity.video(r.slot_ids)[:, :, None]
        valid = r.mask & (r.slot_ids >= 0)[..., None]  # (B, K, V)
        valid = repeat(valid, "b k v -> b (k v n)", n=h * w)
        pos = video_reference_positions(
            r.slot_ids,
            V,
            (h, w),
            target_frames=video_frames,
            gap=cfg.video_ref_slot_gap,
            mode=cfg.ref_position_mode,
            boxes=r.boxes,
            target_hw=target_hw,
            margin=cfg.ref_view_margin,
        )
        return (
            rearrange(tok, "b k n d -> b (k n) d"),
            valid,
            rotary_table(pos, cfg.video.head_dim, cfg.rope_theta),
        )

    def _audio_reference_tokens(self, r: References, audio_tokens: int) -> tuple[Tensor, Tensor, RotaryTable]:
        cfg = self.config
        B, K, Tr = r.latents.shape[:3]
        valid = r.mask & (r.slot_ids >= 0)[..., None]  # (B, K, Tr)
        tok = self.audio_embed(
            rearrange(r.latents, "b k n c -> (b k) n c"), rearrange(valid, "b k n -> (b k) n")
        )  # (BK, Tr, Da)
        tok = rearrange(tok, "(b k) n d -> b k n d", b=B) + self.identity.audio(r.slot_ids)[:, :, None]
        pos = audio_reference_positions(
            r.slot_ids,
            Tr,
            target_tokens=audio_tokens,
            start=cfg.audio_ref_start,
            gap=cfg.audio_ref_slot_gap,
            time_scale=cfg.rope_time_scale,
            mode=cfg.ref_position_mode,
        )
        rope = rotary_table(pos, cfg.audio.head_dim, cfg.rope_theta)
        return rearrange(tok, "b k n d -> b (k n) d"), rearrange(valid, "b k n -> b (k n)"), rope

    def prepare_references(
        self,
        video_refs: References | None,
        audio_refs: References | None,
        *,
        video_frames: int,
        audio_tokens: int,
        batch_size: int | None = None,
        skip_blocks: frozenset[int] = frozenset(),
        video_hw: tuple[int, int] | None = None,
    ) -> ReferenceCache:
        """Run the reference streams through all blocks once and keep each block's keys / values.

        Args:
            video_refs: face references (see :class:`References`), or None.
            audio_refs: voice references, or None.
            video_frames: target video latent frames T (references are laid out after T / pt).
            audio_tokens: target audio tokens Na.
            batch_size: needed only when both reference inputs are None.
            skip_blocks: blocks the references pass by, as :meth:`forward` with the same set does.
            video_hw: target video latent (H, W); needed by ``ref_position_mode="placed"``, which
                spreads each face over its box in the target's token grid.
        """
        cfg = self.config
        self._check_skip(skip_blocks)
        if video_refs is not None:
            check_references("video", video_refs, cfg, cfg.video.in_channels)
        if audio_refs is not None:
            check_references("audio", audio_refs, cfg, cfg.audio.in_channels)
        given = [r.slot_ids for r in (video_refs, audio_refs) if r is not None]
        if given:
            B, device = given[0].shape[0], given[0].device
            if any(g.shape[0] != B for g in given):
                raise ValueError(
                    f"video and audio references disagree on batch size: {[g.shape[0] for g in given]}"
                )
        elif batch_size is None:
            raise ValueError("prepare_references needs batch_size when there are no references")
        else:
            B, device = batch_size, self.identity.table.device
        if batch_size is not None and batch_size != B:
            raise ValueError(f"references have batch size {B}, the targets {batch_size}")
        present = slots_present(video_refs, B, cfg.max_slots, device) | slots_present(
            audio_refs, B, cfg.max_slots, device
        )
        streams: dict[str, tuple[ReferenceKV, ...] | None] = {"video": None, "audio": None}
        for name, refs in (("video", video_refs), ("audio", audio_refs)):
            if refs is None or refs.latents.shape[1] == 0:
                continue
            if name == "video":
                ph, pw = cfg.video.patch[1:]
                target_hw = None if video_hw is None else (video_hw[0] // ph, video_hw[1] // pw)
                r, valid, rope = self._video_reference_tokens(
                    refs, video_frames // cfg.video.patch[0], target_hw
                )
                mod = self._ref_modulation(self.video_time, B, device)
            else:
                r, valid, rope = self._audio_reference_tokens(refs, audio_tokens)
                mod = self._ref_modulation(self.audio_time, B, device)
            mask = self._ref_attention_mask(valid)
            kvs = []
            for i, block in enumerate(self.blocks):
                tower = cast(TowerLayers, block.video if name == "video" else block.audio)
                r_next, kv = self._run(tower.reference_step, r, mod, rope, mask, valid)
                kvs.append(kv)  # a skipped block's entry is never read
                r = r if i in skip_blocks else r_next
            streams[name] = tuple(kvs)
        return ReferenceCache(
            video=streams["video"],
            audio=streams["audio"],
            slot_present=present,
            video_frames=video_frames,
            audio_tokens=audio_tokens,
            skip_blocks=frozenset(skip_blocks),
            video_hw=video_hw if cfg.ref_position_mode == "placed" else None,
        )

    def _check_skip(self, skip_blocks: frozenset[int]) -> None:
        if any(not 0 <= i < self.config.depth for i in skip_blocks):
            raise ValueError(f"skip_blocks {sorted(skip_blocks)} outside the {self.config.depth} blocks")

    # ------------------------------------------------------------------ forward
    def _caption(self, m: ModalityInput, proj: TextProjection, ident: Callable[[Tensor], Tensor]) -> Tensor:
        """Projected caption (B, L, D) with the identity embedding added to tagged tokens."""
        text = proj(m.context)  # (B, L, D)
        if m.context_slot_ids is not None:
            text = text + ident(m.context_slot_ids)
        return text

    def forward(
        self,
        video: ModalityInput,
        audio: ModalityInput,
        *,
        references: ReferenceCache | None = None,
        skip_blocks: frozenset[int] = frozenset(),
    ) -> DualTowerOutput:
        """Predict velocities for both modalities.

        Pass either references inside ``video`` / ``audio`` (computed here, with gradients: training)
        or a :class:`ReferenceCache` from :meth:`prepare_references` (reused across denoising steps).
        ``skip_blocks``: blocks left out entirely, targets and references alike (skip-layer guidance,
        the release's ``slg_layer``); a cache must have been prepared with the same set.
        """
        cfg = self.config
        self._check_skip(skip_blocks)
        B = check_modality("video", video, cfg, 5, cfg.video.in_channels)
        if check_modality("audio", audio, cfg, 3, cfg.audio.in_channels) != B:
            raise ValueError(f"video batch {B} != audio batch {audio.latents.shape[0]}")
        T = video.latents.shape[2]
        Na = audio.latents.shape[1]
        if references is None:
            references = self.prepare_references(
                video.references,
                audio.references,
                video_frames=T,
                audio_tokens=Na,
                batch_size=B,
                skip_blocks=skip_blocks,
                video_hw=(video.latents.shape[3], video.latents.shape[4]),
            )
        else:
            if video.references is not None or audio.references is not None:
                raise ValueError("pass references either inside the inputs or as a ReferenceCache, not both")
            if (references.batch_size, references.video_frames, references.audio_tokens) != (B, T, Na):
                raise ValueError(
                    f"reference cache was prepared for (B, T, Na)="
                    f"{(references.batch_size, references.video_frames, references.audio_tokens)}, "
                    f"inputs are {(B, T, Na)}"
                )
            hw = (video.latents.shape[3], video.latents.shape[4])
            if references.video_hw is not None and references.video_hw != hw:
                raise ValueError(
                    f"reference cache placed the faces in a {references.video_hw} latent frame, "
                    f"the video input is {hw}"
                )
            if references.skip_blocks != skip_blocks:
                raise ValueError(
                    f"reference cache was prepared skipping blocks {sorted(references.skip_blocks)}, "
                    f"forward skips {sorted(skip_blocks)}"
                )
        for name, m in (("video", video), ("audio", audio)):
            if m.context_slot_ids is not None:
                check_caption_tags(name, m.context_slot_ids, m.context_mask, references.slot_present)

        # ---- tokens
        xv = self.video_embed(video.latents)  # (B, T', H', W', Dv)
        if self.video_grid_position is not None:
            xv = self.video_grid_position(xv)
        grid = tuple(xv.shape[1:4])
        xa = self.audio_embed(audio.latents)  # (B, Na, Da)
        if video.speaking is not None:  # who speaks during each token frame -> their identity vectors
            if video.speaking.shape[1] != grid[0]:
                raise ValueError(f"video.speaking has {video.speaking.shape[1]} frames, the tokens {grid[0]}")
            xv = xv + self.identity.video_sum(video.speaking)[:, :, None, None]
        if audio.speaking is not None:
            if audio.speaking.shape[1] != Na:
                raise ValueError(f"audio.speaking has {audio.speaking.shape[1]} tokens, the latents {Na}")
            xa = xa + self.identity.audio_sum(audio.speaking)
        xv = rearrange(xv, "b t h w d -> b (t h w) d")
        device = xv.device

        # ---- positions
        pos_v = video.positions if video.positions is not None else video_grid_positions(B, grid, device)
        pos_a = (
            audio.positions
            if audio.positions is not None
            else audio_positions(B, Na, cfg.rope_time_scale, device)
        )
        if pos_v.shape[:2] != xv.shape[:2] or pos_a.shape != xa.shape[:2]:
            raise ValueError(
                f"positions {tuple(pos_v.shape)} / {tuple(pos_a.shape)} do not match tokens "
                f"{tuple(xv.shape[:2])} / {tuple(xa.shape[:2])}"
            )
        hv, ha = cfg.video.head_dim, cfg.audio.head_dim
        rope_v, rope_a = rotary_table(pos_v, hv, cfg.rope_theta), rotary_table(pos_a, ha, cfg.rope_theta)
        rope_a_in_v = rope_a if hv == ha else rotary_table(pos_a, hv, cfg.rope_theta)
        rope_v_in_a = rope_v if hv == ha else rotary_table(pos_v, ha, cfg.rope_theta)

        # ---- timesteps and captions
        tv = video.timesteps if video.timesteps.ndim == 2 else video.timesteps[:, None]
        ta = audio.timesteps if audio.timesteps.ndim == 2 else audio.timesteps[:, None]
        ev, mod_v = self.video_time(tv * cfg.timestep_scale)  # (B, Nv or 1, Dv), (B, Nv or 1, 6, Dv)
        ea, mod_a = self.audio_time(ta * cfg.timestep_scale)
        cv = StreamContext(
            mod_v,
            rope_v,
            rope_a_in_v,
            self._caption(video, self.video_text, self.identity.video),
            video.context_mask,
        )
        ca = StreamContext(
            mod_a,
            rope_a,
            rope_v_in_a,
            self._caption(audio, self.audio_text, self.identity.audio),
            audio.context_mask,
        )

        for i, block in enumerate(self.blocks):
            if i in skip_blocks:
                continue
            ref_v = references.video[i] if references.video is not None else None
            ref_a = references.audio[i] if references.audio is not None else None
            xv, xa = self._run(block, xv, xa, cv, ca, ref_v, ref_a)

        out_v = unpatchify(self.video_head(xv, ev), grid, cfg.video.patch)  # (B, Cv, T, H, W)
        if cfg.video_prediction == "sample":  # x0 -> velocity (x_sigma - x0) / sigma
            sigma = video.timesteps if video.timesteps.ndim == 1 else video.timesteps[:, 0]
            if video.timesteps.ndim == 2 and not bool((video.timesteps == sigma[:, None]).all()):
                raise ValueError("video_prediction='sample' takes one sigma per sample, not per token")
            s = sigma.clamp_min(cfg.min_prediction_sigma).to(out_v.dtype).view(-1, 1, 1, 1, 1)
            out_v = (video.latents.to(out_v.dtype) - out_v) / s
        out_a = self.audio_head(xa, ea)  # (B, Na, Ca)
        return DualTowerOutput(video=out_v, audio=out_a)
