"""Two-pass guidance for :class:`~facevox.pipeline.FacevoxPipeline`: the Identity-as-Presence
release's sampling (``GenerateConfig(guidance="two_pass")``, ``recipes/release_iap.yaml``).

Per solver step, as the release's ``IDAVPipeline.__call__`` (``identity_as_presence/pipeline.py``,
read at commit 9d87f9b) does it:

- conditional pass: the caption in both towers, faces and voices, every block;
- unconditional pass: the video tower reads the video negative caption and the audio tower the audio
  negative caption, the faces are kept and the voices dropped (``spkid=None``), and one block is left
  out entirely, targets and references alike (``slg_layer``, skip-layer guidance);
- per stream ``v = v_u + s (v_c - v_u)`` (:func:`facevox.diffusion.guidance.cfg_combine`).

Each pass has its own reference cache (the unconditional one prepared without the skipped block),
computed once per sample. Shapes: ``L`` caption tokens, ``E`` caption width, ``K`` people, as in
:mod:`facevox.pipeline.pipeline`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from facevox.diffusion.guidance import TwoPassGuidance, cfg_combine
from facevox.diffusion.samplers import sample
from facevox.models.inputs import ModalityInput, References
from facevox.pipeline.request import GenerationRequest, RequestError, caption_text

if TYPE_CHECKING:
    from facevox.models import DualTowerDiT
    from facevox.models.reference_cache import ReferenceCache
    from facevox.pipeline.pipeline import CheckedRequest, FacevoxPipeline, GenerateConfig

VARIANTS = ("conditional", "unconditional")


@dataclass(frozen=True)
class Caption:
    """One caption as a tower reads it: hidden states (1, L, E), mask (1, L), slot ids (1, L)."""

    hidden: Tensor
    mask: Tensor
    slot_ids: Tensor


@dataclass(frozen=True)
class TwoPassConditions:
    """What both passes read, prepared once per sample."""

    caption_text: str  # the tagged caption fed to the text encoder
    caption: Caption  # the conditional pass, both towers
    video_negative: Caption  # the unconditional pass, video tower
    audio_negative: Caption  # the unconditional pass, audio tower
    faces: References  # (1, K, V, C, 1, h, w)
    voices: References  # (1, K, Tr, Ca)
    speaking_video: Tensor | None = None  # (1, T', K) conditional pass only (turn-embedding models)
    speaking_audio: Tensor | None = None  # (1, Na, K)
    variants: tuple[str, ...] = VARIANTS


def pad_captions(encodings: list[Caption], length: int) -> list[Caption]:
    """Every caption to a common length: ``length`` > 0 pads with zero vectors that stay attended (Wan's
    fixed ``text_len``; the release trims each caption to its tokens and pads zeros); 0 pads to the
    longest with masked padding."""
    longest = max(e.hidden.shape[1] for e in encodings)
    if length and longest > length:
        raise RequestError(f"a caption has {longest} tokens, more than caption_length={length}")
    target = length or longest
    out = []
    for e in encodings:
        n = target - e.hidden.shape[1]
        hidden = torch.nn.functional.pad(e.hidden, (0, 0, 0, n))
        mask = torch.nn.functional.pad(e.mask, (0, n), value=bool(length))
        out.append(Caption(hidden, mask, torch.nn.functional.pad(e.slot_ids, (0, n), value=-1)))
    return out


@torch.no_grad()
def encode_two_pass(
    pipe: FacevoxPipeline, req: GenerationRequest, checked: CheckedRequest, g: TwoPassGuidance
) -> TwoPassConditions:
    """The caption, both negative captions and the references through their encoders, once."""
    text = caption_text(checked.caption)
    te = pipe._on(pipe.text)
    raw = []
    for caption in (text, g.video_negative, g.audio_negative):
        e = te.encode([caption])
        raw.append(Caption(e.hidden.float(), e.mask, e.slot_ids))
    pipe._off(te)
    cond, vneg, aneg = (
        Caption(c.hidden.to(pipe.device), c.mask.to(pipe.device), c.slot_ids.to(pipe.device))
        for c in pad_captions(raw, g.caption_length)
    )
    faces, voices = pipe._references(checked.face_crops, checked.voices, checked.face_boxes)
    if not req.use_faces:
        faces = faces.disabled()
    if not req.use_voices:
        voices = voices.disabled()
    speak_v, speak_a = pipe.speaking(checked, [True])
    return TwoPassConditions(
        caption_text=text,
        caption=cond,
        video_negative=vneg,
        audio_negative=aneg,
        faces=faces,
        voices=voices,
        speaking_video=speak_v,
        speaking_audio=speak_a,
    )


def two_pass_velocity(
    model: DualTowerDiT,
    conditions: TwoPassConditions,
    g: TwoPassGuidance,
    *,
    video_frames: int,
    audio_tokens: int,
    video_hw: tuple[int, int] | None = None,
) -> tuple[Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]], list[int]]:
    """The guided velocity function for the solver and a one-element list counting model forwards.

    Both reference caches are prepared here, once.
    """
    if g.skip_block >= model.config.depth:
        raise RequestError(
            f"two_pass.skip_block={g.skip_block} but the model has {model.config.depth} blocks "
            "(the release skips block 11 of 30; give two_pass.skip_block=-1 or a block that exists)"
        )
    dtype = next(model.parameters()).dtype
    skip = frozenset() if g.skip_block < 0 else frozenset({g.skip_block})
    faces, voices = (
        dataclasses.replace(r, latents=r.latents.to(dtype)) for r in (conditions.faces, conditions.voices)
    )
    cache_cond = model.prepare_references(
        faces, voices, video_frames=video_frames, audio_tokens=audio_tokens, video_hw=video_hw
    )
    cache_uncond = model.prepare_references(
        faces if g.uncond_faces else None,
        voices if g.uncond_voices else None,
        video_frames=video_frames,
        audio_tokens=audio_tokens,
        batch_size=1,
        skip_blocks=skip,
        video_hw=video_hw,
    )
    forwards = [0]

    def run(
        xv: Tensor,
        xa: Tensor,
        sv: Tensor,
        sa: Tensor,
        video_caption: Caption,
        audio_caption: Caption,
        cache: ReferenceCache,
        skip_blocks: frozenset[int],
        speaking: tuple[Tensor | None, Tensor | None],
    ) -> tuple[Tensor, Tensor]:
        vi = ModalityInput(
            latents=xv.to(dtype),
            timesteps=sv.to(dtype),
            context=video_caption.hidden.to(dtype),
            context_mask=video_caption.mask,
            context_slot_ids=video_caption.slot_ids,
            speaking=speaking[0],
        )
        ai = ModalityInput(
            latents=xa.to(dtype),
            timesteps=sa.to(dtype),
            context=audio_caption.hidden.to(dtype),
            context_mask=audio_caption.mask,
            context_slot_ids=audio_caption.slot_ids,
            speaking=speaking[1],
        )
        forwards[0] += 1
        out = model(vi, ai, references=cache, skip_blocks=skip_blocks)
        return out.video.float(), out.audio.float()

    def velocity(xv: Tensor, xa: Tensor, sv: Tensor, sa: Tensor) -> tuple[Tensor, Tensor]:
        c = conditions
        cond_v, cond_a = run(
            xv,
            xa,
            sv,
            sa,
            c.caption,
            c.caption,
            cache_cond,
            frozenset(),
            (c.speaking_video, c.speaking_audio),
        )
        uncond_v, uncond_a = run(
            xv, xa, sv, sa, c.video_negative, c.audio_negative, cache_uncond, skip, (None, None)
        )
        return cfg_combine(cond_v, uncond_v, g.video), cfg_combine(cond_a, uncond_a, g.audio)

    return velocity, forwards


@torch.no_grad()
def denoise_two_pass(
    pipe: FacevoxPipeline,
    conditions: TwoPassConditions,
    video: Tensor,
    audio: Tensor,
    cfg: GenerateConfig,
    callback: Callable[[int, int], None] | None = None,
) -> tuple[Tensor, Tensor, int]:
    """Integrate both streams from noise to clean latents; returns the latents and the model forwards."""
    model = pipe._on(pipe.model)
    velocity, forwards = two_pass_velocity(
        model,
        conditions,
        cfg.two_pass,
        video_frames=video.shape[2],
        audio_tokens=audio.shape[1],
        video_hw=(video.shape[3], video.shape[4]),
    )
    video, audio = sample(velocity, video, audio, pipe.sampler_config(cfg, video), callback)
    pipe._off(model)
    return video, audio, forwards[0]
