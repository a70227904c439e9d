"""The training objective: rectified-flow velocity regression on both streams, with condition dropout.

Every random draw of a sample (posterior sample, sigmas, noise, dropout) comes from that sample's
own ``torch.Generator``, in a fixed order. The trainer seeds it from (run seed, step, micro-batch,
position in the global batch), so a step is a pure function of (weights, batch, step): resumed runs
are bit-exact, and N processes holding 1/N of the global batch draw exactly what one process
holding all of it draws.

Shape legend as in :mod:`facevox.data.loader`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from facevox.alignment import Clock
from facevox.data.loader import LatentBatch
from facevox.diffusion.path import TimestepSampling, interpolate, resolution_shift, velocity
from facevox.models.inputs import ModalityInput, References
from facevox.training.strategies import Strategy


@dataclass(frozen=True, kw_only=True)
class ObjectiveConfig:
    logit_mean: float = 0.0  # logit-normal timestep sampling (SD3)
    logit_std: float = 1.0
    shift: float = 0.0  # timestep shift; 0 = resolution-dependent (from the video token count)
    shared_timesteps: bool = False  # one sigma for both streams (reported to slow voice learning)
    # share of samples whose sigmas are drawn uniformly in [0, 1] instead: the logit-normal almost never
    # draws sigma > 0.95, where generation starts and a small model must learn the layout of a frame
    uniform_fraction: float = 0.0
    # share of samples (per stream) trained at sigma = 1 exactly, where every sampler starts: there the
    # input holds no signal and the answer is the conditional mean, a point no continuous draw reaches
    max_sigma_fraction: float = 0.0
    video_weight: float = 1.0
    audio_weight: float = 1.0
    drop_text: float = 0.1  # probability of the null caption
    drop_faces: float = 0.1  # probability of no face references
    drop_voices: float = 0.1  # probability of no voice references
    drop_all: float = 0.05  # probability of dropping text, faces and voices together
    # "independent": the four drop_* draws above. "nested": one draw per sample of the condition set
    # the guidance chain contrasts (diffusion.guidance.VARIANTS: none, text, text+faces, all) with
    # probabilities nested_probs, so every prediction guidance subtracts is trained as often as asked
    # (independent drops give "caption, no references" to about 1 % of samples); drop_text then
    # applies to the "all" samples alone
    dropout: str = "independent"
    nested_probs: tuple[float, float, float, float] = (0.1, 0.1, 0.1, 0.7)
    sample_posterior: bool = True  # x0 = mean + std * eps (False: the posterior mean)
    # reference augmentation (1.0 = off): each face view kept with this probability (at least one
    # stays), and each voice reference cut to a random contiguous span of at least this fraction of
    # its frames. A person's curated references are one fixed set, a key that a small world lets the
    # model memorise; varying them asks for the identity instead.
    ref_view_keep: float = 1.0
    voice_ref_min_span: float = 1.0
    # extra weight of the video error inside the people's face boxes (0 = off): latent cells whose
    # centre lies in a face box count 1 + this much. A face is ~15 % of a one-person frame, and the
    # references can only help there, so a plain mean lets the background set what the model learns.
    # Needs shards whose windows carry face boxes (`facevox encode` writes them).
    face_region_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "uniform_fraction",
            "max_sigma_fraction",
            "drop_text",
            "drop_faces",
            "drop_voices",
            "drop_all",
            "ref_view_keep",
            "voice_ref_min_span",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")
        if not 0 <= self.face_region_weight < float("inf"):
            raise ValueError(
                f"face_region_weight must be a finite number >= 0, got {self.face_region_weight}"
            )
        if self.dropout not in ("independent", "nested"):
            raise ValueError(f"dropout must be 'independent' or 'nested', got {self.dropout!r}")
        if (
            len(self.nested_probs) != 4
            or min(self.nested_probs) < 0
            or abs(sum(self.nested_probs) - 1) > 1e-6
        ):
            raise ValueError(f"nested_probs must be 4 probabilities summing to 1, got {self.nested_probs}")


@dataclass(frozen=True)
class StepLoss:
    loss: Tensor  # scalar, what is backpropagated
    video: Tensor  # (B,) per-sample video loss (nan where the stream carries no loss)
    audio: Tensor  # (B,)
    sigma_video: Tensor  # (B,)
    sigma_audio: Tensor  # (B,)
    # (B,) unweighted video MSE inside the face boxes (nan without boxes or without a video loss)
    video_face: Tensor | None = None


def _tokens(batch: LatentBatch, patch: tuple[int, int, int] = (1, 2, 2)) -> int:
    _, _, T, H, W = batch.video_mean.shape
    return max(1, (T // patch[0]) * (H // patch[1]) * (W // patch[2]))


class SampleDraws:
    """Per-sample random draws, stacked along the batch axis. Drawn on the generators' device (the
    CPU) and moved, so a run on another device draws exactly the CPU run's numbers."""

    def __init__(self, generators: Sequence[torch.Generator], device: torch.device) -> None:
        self.gens, self.device = list(generators), device

    def randn(self, shape: Sequence[int]) -> Tensor:
        """(B, *shape[1:]) standard normal, row b from generator b."""
        return torch.stack([torch.randn(tuple(shape[1:]), generator=g) for g in self.gens]).to(self.device)

    def uniform(self, shape: Sequence[int]) -> Tensor:
        """(B, *shape[1:]) uniform in [0, 1), row b from generator b."""
        return torch.stack([torch.rand(tuple(shape[1:]), generator=g) for g in self.gens]).to(self.device)

    def rand(self) -> Tensor:
        """(B,) uniform in [0, 1): one draw per sample."""
        return self.uniform((len(self.gens),))

    def sigma(self, ts: TimestepSampling) -> Tensor:
        return torch.cat([ts.sample(1, generator=g) for g in self.gens]).to(self.device)


def sample_generators(seed: int, step: int, micro: int, positions: Sequence[int]) -> list[torch.Generator]:
    """One generator per sample, seeded from (seed, step, micro-batch, global position)."""
    return [
        torch.Generator().manual_seed(
            int(np.random.SeedSequence([seed, step, micro, p]).generate_state(1)[0])
        )
        for p in positions
    ]


def _keep_views(mask: Tensor, d: SampleDraws, p: float) -> Tensor:
    """(B, K, V) view mask with each valid view kept with probability ``p``; a slot that had views
    keeps at least its first one."""
    kept = mask & (d.uniform(mask.shape) < p)
    first = mask & (mask.cumsum(-1) == 1)
    return kept | (first & ~kept.any(-1, keepdim=True))


def _random_span(mask: Tensor, d: SampleDraws, min_fraction: float) -> Tensor:
    """(B, K, T) frame mask cut, per slot, to a random contiguous span of its valid frames covering
    at least ``min_fraction`` of them (valid frames are a prefix: references are right-padded)."""
    n = mask.sum(-1, keepdim=True).float()  # (B, K, 1) valid frames
    u = d.uniform((*mask.shape[:2], 2))  # (B, K, 2): span length, span start
    length = torch.ceil(n * (min_fraction + (1 - min_fraction) * u[..., :1])).clamp(min=1)
    start = torch.floor((n - length + 1) * u[..., 1:]).clamp(min=0)
    t = torch.arange(mask.shape[-1], device=mask.device).float()
    return mask & (t >= start) & (t < start + length)


def face_region(boxes: Tensor, height: int, width: int) -> Tensor:
    """(B, K, 4) face boxes in fractions of the frame (NaN rows: none) -> (B, H, W) bool, the latent
    cells whose centre lies inside any of the sample's boxes."""
    y = (torch.arange(height, device=boxes.device, dtype=torch.float32) + 0.5) / height  # (H,)
    x = (torch.arange(width, device=boxes.device, dtype=torch.float32) + 0.5) / width  # (W,)
    b = boxes[:, :, :, None, None]  # (B, K, 4, 1, 1); NaN compares False, so no box covers nothing
    inside = (x >= b[:, :, 0]) & (x < b[:, :, 2]) & (y[:, None] >= b[:, :, 1]) & (y[:, None] < b[:, :, 3])
    return inside.any(1)


def speaking_masks(batch: LatentBatch, clock: Clock, video_patch_t: int = 1) -> tuple[Tensor, Tensor]:
    """Who speaks during each target token of each sample, from the batch's turn spans:
    video (B, T', K) per token frame and audio (B, Na, K) bool."""
    B, K = batch.slot_ids.shape
    T, Na = batch.video_mean.shape[2], batch.audio_mean.shape[1]
    masks = [clock.speaking(t, T, Na, K, video_patch_t) for t in batch.turns or [()] * B]
    dev = batch.video_mean.device
    return torch.stack([v for v, _ in masks]).to(dev), torch.stack([a for _, a in masks]).to(dev)


def build_inputs(
    batch: LatentBatch,
    strategy: Strategy,
    cfg: ObjectiveConfig,
    null_caption: tuple[Tensor, Tensor],
    generators: Sequence[torch.Generator],
    *,
    clock: Clock | None = None,
    video_patch_t: int = 1,
) -> tuple[ModalityInput, ModalityInput, Tensor, Tensor, Tensor, Tensor]:
    """Noisy inputs for both towers, the velocity targets and per-sample loss weights.

    ``clock``: give it (the model's, for models with ``turn_embedding``) to pass each token's speakers
    (:func:`speaking_masks`); they are dropped with the caption.

    Returns (video_in, audio_in, target_video (B,C,T,H,W), target_audio (B,Na,Ca), weight_video (B,),
    weight_audio (B,)).
    """
    dev, B = batch.video_mean.device, batch.size
    if len(generators) != B:
        raise ValueError(f"need one generator per sample: {len(generators)} for a batch of {B}")
    d = SampleDraws(generators, dev)
    # 1. clean latents drawn from the codec posteriors
    if cfg.sample_posterior:
        x0v = batch.video_mean + batch.video_std * d.randn(batch.video_mean.shape)
        x0a = batch.audio_mean + batch.audio_std * d.randn(batch.audio_mean.shape)
    else:
        x0v, x0a = batch.video_mean, batch.audio_mean
    # 2. noise levels
    shift = cfg.shift if cfg.shift > 0 else resolution_shift(_tokens(batch))
    ts = TimestepSampling(logit_mean=cfg.logit_mean, logit_std=cfg.logit_std, shift=shift)
    sv = d.sigma(ts)
    sa = d.sigma(ts)
    if cfg.uniform_fraction > 0:  # drawn only when on, so runs without it keep their draws
        uniform = d.rand() < cfg.uniform_fraction
        sv = torch.where(uniform, d.rand().clamp(ts.min_sigma, ts.max_sigma), sv)
        sa = torch.where(uniform, d.rand().clamp(ts.min_sigma, ts.max_sigma), sa)
    if cfg.max_sigma_fraction > 0:  # likewise drawn only when on
        sv = torch.where(d.rand() < cfg.max_sigma_fraction, torch.full_like(sv, ts.max_sigma), sv)
        sa = torch.where(d.rand() < cfg.max_sigma_fraction, torch.full_like(sa, ts.max_sigma), sa)
    if cfg.shared_timesteps:
        sa = sv.clone()
    wv = torch.full((B,), cfg.video_weight, device=dev)
    wa = torch.full((B,), cfg.audio_weight, device=dev)
    silent = batch.video_only if batch.video_only is not None else torch.zeros(B, dtype=torch.bool)
    silent = silent.to(dev)
    if strategy.unimodal:  # one stream per sample; the other is pure noise and carries no loss
        video_turn = (d.rand() < 0.5) | silent
        sv = torch.where(video_turn, sv, torch.ones_like(sv))
        sa = torch.where(video_turn, torch.ones_like(sa), sa)
        wv, wa = wv * video_turn, wa * ~video_turn
    elif bool(silent.any()):  # photos: no sound to learn, so their audio is pure noise without loss
        sa = torch.where(silent, torch.ones_like(sa), sa)
        wa = wa * ~silent
    nv = d.randn(x0v.shape)
    na = d.randn(x0a.shape)
    # 3. condition dropout (drawn even when unused, to keep each generator's stream fixed)
    if cfg.dropout == "nested":
        edges = torch.tensor(np.cumsum(cfg.nested_probs)[:-1], dtype=torch.float32, device=dev)
        variant = torch.bucketize(d.rand(), edges, right=True)  # 0 none, 1 text, 2 text+faces, 3 all
        # "all" samples also lose the caption with probability drop_text: references without a caption
        # (in a small world the caption alone names the clip, and the references would go unused)
        d_text = (variant < 1) | ((variant == 3) & (d.rand() < cfg.drop_text))
        d_face, d_voice = variant < 2, variant < 3
    else:
        d_all = d.rand() < cfg.drop_all
        d_text = (d.rand() < cfg.drop_text) | d_all
        d_face = (d.rand() < cfg.drop_faces) | d_all
        d_voice = (d.rand() < cfg.drop_voices) | d_all

    caption, cmask, ctags = batch.caption, batch.caption_mask, batch.caption_slot_ids
    if bool(d_text.any()):
        nc, nm = null_caption
        L = max(caption.shape[1], nc.shape[0])
        pad = L - caption.shape[1]
        caption = torch.nn.functional.pad(caption, (0, 0, 0, pad))
        cmask = torch.nn.functional.pad(cmask, (0, pad), value=False)
        ctags = torch.nn.functional.pad(ctags, (0, pad), value=-1)
        null = torch.zeros(L, caption.shape[2], device=dev, dtype=caption.dtype)
        null[: nc.shape[0]] = nc.to(caption.dtype)
        null_mask = torch.zeros(L, dtype=torch.bool, device=dev)
        null_mask[: nm.shape[0]] = nm
        caption = torch.where(d_text[:, None, None], null, caption)
        cmask = torch.where(d_text[:, None], null_mask, cmask)
        ctags = torch.where(d_text[:, None], -1, ctags)

    faces = voices = None
    if strategy.references != "none":
        suffix = "_self" if strategy.references == "self" else ""
        fl, fm = getattr(batch, "face_refs" + suffix), getattr(batch, "face_refs" + suffix + "_mask")
        vl, vm = getattr(batch, "voice_refs" + suffix), getattr(batch, "voice_refs" + suffix + "_mask")
        if cfg.ref_view_keep < 1:
            fm = _keep_views(fm, d, cfg.ref_view_keep)
        if cfg.voice_ref_min_span < 1:
            vm = _random_span(vm, d, cfg.voice_ref_min_span)
        fm = fm & ~d_face[:, None, None]
        vm = vm & ~d_voice[:, None, None]
        f_slots = torch.where(fm.any(-1), batch.slot_ids, -1)  # (B, K)
        v_slots = torch.where(vm.any(-1), batch.slot_ids, -1)
        faces = References(latents=fl, mask=fm, slot_ids=f_slots, boxes=batch.face_boxes)
        voices = References(latents=vl, mask=vm, slot_ids=v_slots)
        present = (f_slots >= 0) | (v_slots >= 0)  # (B, K)
        tag_ok = (ctags[..., None] == batch.slot_ids[:, None, :]) & present[:, None, :]  # (B, L, K)
        ctags = torch.where(tag_ok.any(-1), ctags, -1)
    else:
        ctags = torch.full_like(ctags, -1)

    speak_v = speak_a = None
    if clock is not None:  # the turns are part of the script: dropped with the caption
        speak_v, speak_a = speaking_masks(batch, clock, video_patch_t)
        speak_v = speak_v & ~d_text[:, None, None]
        speak_a = speak_a & ~d_text[:, None, None]
    video_in = ModalityInput(
        latents=interpolate(x0v, nv, sv),
        timesteps=sv,
        context=caption,
        context_mask=cmask,
        context_slot_ids=ctags,
        references=faces,
        speaking=speak_v,
    )
    audio_in = ModalityInput(
        latents=interpolate(x0a, na, sa),
        timesteps=sa,
        context=caption,
        context_mask=cmask,
        context_slot_ids=ctags,
        references=voices,
        speaking=speak_a,
    )
    return video_in, audio_in, velocity(x0v, nv), velocity(x0a, na), wv, wa


def flow_loss(
    model: nn.Module,
    batch: LatentBatch,
    strategy: Strategy,
    cfg: ObjectiveConfig,
    null_caption: tuple[Tensor, Tensor],
    generators: Sequence[torch.Generator],
    *,
    clock: Clock | None = None,
    video_patch_t: int = 1,
) -> StepLoss:
    """Velocity MSE per stream and sample; the scalar loss is the weight-normalised sum."""
    video_in, audio_in, tv, ta, wv, wa = build_inputs(
        batch, strategy, cfg, null_caption, generators, clock=clock, video_patch_t=video_patch_t
    )
    out = model(video_in, audio_in)
    err = (out.video.float() - tv).pow(2)  # (B, C, T, H, W)
    region = None
    if batch.face_boxes is not None:
        region = face_region(batch.face_boxes.to(err.device), err.shape[3], err.shape[4])  # (B, H, W)
    if cfg.face_region_weight > 0:
        people = batch.slot_ids >= 0
        if batch.face_boxes is None or bool(torch.isnan(batch.face_boxes[people]).any()):
            raise ValueError(
                "face_region_weight needs a face box for every person, and these shards have none for "
                f"some of {batch.sample_ids}: re-encode them into a new folder with this facevox (`facevox encode`)"
            )
        assert region is not None
        e = 1 + cfg.face_region_weight * region[:, None, None].float()  # (B, 1, 1, H, W)
        lv = (err * e).mean((1, 2, 3, 4)) / e.mean((1, 2, 3, 4))  # (B,) weighted mean
    else:
        lv = err.flatten(1).mean(1)  # (B,)
    la = (out.audio.float() - ta).pow(2).flatten(1).mean(1)
    loss = (wv * lv).sum() / wv.sum().clamp_min(1e-8) + (wa * la).sum() / wa.sum().clamp_min(1e-8)
    nan = torch.full_like(lv, float("nan"))
    return StepLoss(
        loss=loss,
        video=torch.where(wv > 0, lv.detach(), nan),
        audio=torch.where(wa > 0, la.detach(), nan),
        sigma_video=video_in.timesteps,
        sigma_audio=audio_in.timesteps,
        video_face=None if region is None else region_mean(err.detach(), region, wv > 0),
    )


def region_mean(err: Tensor, region: Tensor, has_loss: Tensor) -> Tensor:
    """(B, C, T, H, W) squared errors, (B, H, W) region, (B,) -> (B,) mean error inside the region,
    NaN where the region is empty or the sample carries no video loss."""
    m = region[:, None, None].float()
    cells = m.sum((1, 2, 3, 4)) * err.shape[1] * err.shape[2]
    mean = (err * m).sum((1, 2, 3, 4)) / cells.clamp_min(1)
    return torch.where((cells > 0) & has_loss, mean, torch.full_like(mean, float("nan")))
