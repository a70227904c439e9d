"""DreamID-Omni's in-sequence references as ``DualTowerDiT`` inputs (its Syn-RoPE layout).

Shape legend: ``B`` batch; ``Cv`` / ``Ca`` latent channels; ``T`` target video latent frames; ``K``
people (one face latent frame and one voice each); ``H, W`` latent grid; ``Na`` target audio tokens;
``Tr_k`` voice-reference tokens of person k; ``L`` caption tokens; ``E`` caption width.

DreamID-Omni (``dreamid_omni_engine.py`` ``generate`` and ``modules/model.py`` ``rope_apply_3d`` /
``rope_apply_1d`` at commit 9a9f456) appends each person's face latent (one frame, the image padded to
the video's size) after the ``T`` target frames, and each person's voice latents (1 s of the voice file)
after the ``Na`` target audio tokens. All of them go through the target weights, at the sampling
timestep, with full attention, caption and bridge attention; only their RoPE time differs:

- face ``k`` (0-based) at time ``150 (k + 1)`` (video latent frames), its (h, w) grid as the targets';
- voice ``k``'s token ``i`` at audio index ``int(150 / s) (k + 1) + i`` with ``s`` = ``TIME_SCALE`` =
  bfloat16(31 / 157) = 0.197265625, i.e. ``760 (k + 1) + i``; audio index ``n`` rotates by ``n s``
  video frames, so face k and voice k share one temporal margin (about ``150 (k + 1)``).

facevox takes positions in video latent-frame units (:mod:`facevox.models.positions`), so these are
passed as ``ModalityInput.positions``; the model's ``References`` path is not used. (Quirk of the
public code: ``rope_apply_1d`` reassigns ``offset_base`` inside its per-sample loop, so batch rows after
the first would get other voice offsets; the engine always runs batch 1. Here every row gets row 0's.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import repeat
from torch import Tensor

from facevox.models import DualTowerOutput, ModalityInput
from facevox.release.dreamid_omni import MAX_PEOPLE, TIME_SCALE, DreamIDOmniError

REF_OFFSET = 150  # offset_base of rope_apply_3d / rope_apply_1d (video latent frames)


def voice_offset(time_scale: float = TIME_SCALE) -> int:
    """First audio index of voice 0: ``int(150 / s)`` (760 at DreamID-Omni's scale)."""
    return int(REF_OFFSET / time_scale)


def video_positions(batch: int, grid: tuple[int, int, int], faces: int) -> Tensor:
    """(B, T'H'W', 3) (t, h, w) positions of a token grid (T', H', W') whose last ``faces`` token frames
    are face references: targets at t = 0..T'-K-1, face k at t = 150 (k + 1)."""
    frames, h, w = grid
    if not 0 <= faces <= frames:
        raise DreamIDOmniError(f"{faces} face frames in a sequence of {frames} token frames")
    t = torch.arange(frames, dtype=torch.float32)
    t[frames - faces :] = REF_OFFSET * torch.arange(1, faces + 1, dtype=torch.float32)
    hh, ww = torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32)
    pos = torch.stack(torch.meshgrid(t, hh, ww, indexing="ij"), -1)  # (T', H', W', 3)
    return repeat(pos, "t h w c -> b (t h w) c", b=batch)


def audio_positions(
    batch: int, target_tokens: int, voice_lengths: Sequence[int], time_scale: float = TIME_SCALE
) -> Tensor:
    """(B, Na + sum Tr_k) audio positions in video latent-frame units: target token n at ``n s``, voice
    k's token i at ``(int(150 / s) (k + 1) + i) s``."""
    base = voice_offset(time_scale)
    parts = [torch.arange(target_tokens, dtype=torch.float64)]
    for k, n in enumerate(voice_lengths):
        parts.append(base * (k + 1) + torch.arange(n, dtype=torch.float64))
    index = torch.cat(parts)
    return repeat((index * time_scale).float(), "n -> b n", b=batch)


def dreamid_model_inputs(
    video_latents: Tensor,
    faces: Tensor,
    audio_latents: Tensor,
    voices: Sequence[Tensor],
    sigma: Tensor,
    context: Tensor,
    context_mask: Tensor,
    patch: tuple[int, int, int] = (1, 2, 2),
) -> tuple[ModalityInput, ModalityInput]:
    """The (video, audio) inputs of one DreamID-Omni denoising call.

    Args:
        video_latents: (B, Cv, T, H, W) noisy target latents.
        faces: (B, Cv, K, H, W) one clean latent frame per person, in ``<sub1>``, ``<sub2>`` order
            (zeros for the engine's reference-dropped guidance branch).
        audio_latents: (B, Na, Ca) noisy target latents.
        voices: K tensors (B, Tr_k, Ca), the voice references in the same order.
        sigma: (B,) noise level in [0, 1]; DreamID-Omni gives every token, references included, the
            sampling timestep (``t = 1000 sigma``).
        context: (B, L, E) caption hidden states; DreamID-Omni zero-pads to 512 tokens and attends to
            all of them (``context_lens=None``), so pass the padded states with ``context_mask`` all True
            to reproduce it.
        context_mask: (B, L) bool.
        patch: the video tower's patch (DreamID-Omni: (1, 2, 2)); a face is one token frame.

    The same caption goes to both towers. DreamIDOmniError for more people than the model's slots or
    faces and voices that disagree in number or size.
    """
    B, _, T, H, W = video_latents.shape
    K = faces.shape[2]
    if patch[0] != 1 or H % patch[1] or W % patch[2]:
        raise DreamIDOmniError(f"patch {patch} does not tile one-frame faces on a {H}x{W} latent grid")
    if K > MAX_PEOPLE:
        raise DreamIDOmniError(f"{K} people: DreamID-Omni takes at most {MAX_PEOPLE}")
    if len(voices) != K:
        raise DreamIDOmniError(
            f"{K} faces but {len(voices)} voices: DreamID-Omni takes one of each per person"
        )
    if faces.shape[:2] != video_latents.shape[:2] or faces.shape[3:] != (H, W):
        raise DreamIDOmniError(
            f"faces {tuple(faces.shape)} must be (B, Cv, K, H, W) like the targets {tuple(video_latents.shape)}"
        )
    for k, v in enumerate(voices):
        if v.ndim != 3 or v.shape[0] != B or v.shape[2] != audio_latents.shape[2]:
            raise DreamIDOmniError(f"voice {k} has shape {tuple(v.shape)}, expected (B={B}, Tr, Ca)")
    video = torch.cat([video_latents, faces.to(video_latents.dtype)], 2)  # (B, Cv, T + K, H, W)
    audio = torch.cat(
        [audio_latents, *(v.to(audio_latents.dtype) for v in voices)], 1
    )  # (B, Na + sum Tr, Ca)
    return (
        ModalityInput(
            latents=video,
            timesteps=sigma,
            context=context,
            context_mask=context_mask,
            positions=video_positions(B, (T + K, H // patch[1], W // patch[2]), K).to(video.device),
        ),
        ModalityInput(
            latents=audio,
            timesteps=sigma,
            context=context,
            context_mask=context_mask,
            positions=audio_positions(B, audio_latents.shape[1], [v.shape[1] for v in voices]).to(
                audio.device
            ),
        ),
    )


def target_prediction(out: DualTowerOutput, faces: int, voice_tokens: int) -> DualTowerOutput:
    """Drop the references' predictions: video (B, Cv, T, H, W), audio (B, Na, Ca)."""
    video = out.video[:, :, : out.video.shape[2] - faces]
    audio = out.audio[:, : out.audio.shape[1] - voice_tokens]
    return DualTowerOutput(video=video, audio=audio)
