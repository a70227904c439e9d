"""Classifier-free guidance over three conditions, per stream.

With predictions for the nested condition sets ∅ ⊂ {text} ⊂ {text, faces} ⊂ {text, faces, voices},

    v = v(∅) + s_text (v(T) - v(∅)) + s_face (v(T,F) - v(T)) + s_voice (v(T,F,V) - v(T,F)),

a sum of differences (compositional guidance, Liu et al. 2022; InstructPix2Pix's two-scale form
extended by one condition). All scales 1 reduce to the fully conditional prediction; a scale above
1 pushes away from the prediction without that condition (identity guidance contrasts the
predictions with and without the references). Video and audio take their own scales. Only the
variants a scale needs are computed, batched into one forward along the batch axis.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

VARIANTS = ("none", "text", "text+faces", "all")  # nested condition sets, in this order


@dataclass(frozen=True, kw_only=True)
class GuidanceScales:
    text: float = 1.0
    faces: float = 1.0
    voices: float = 1.0

    @property
    def needed(self) -> tuple[str, ...]:
        """The variants whose predictions enter the sum (with all scales 1, only ``all``)."""
        need = {"all"}
        if self.voices != 1:
            need |= {"text+faces"}
        if self.faces != 1:
            need |= {"text+faces", "text"}
        if self.text != 1:
            need |= {"text", "none"}
        return tuple(v for v in VARIANTS if v in need)


@dataclass(frozen=True, kw_only=True)
class Guidance:
    video: GuidanceScales = GuidanceScales()
    audio: GuidanceScales = GuidanceScales()

    @property
    def variants(self) -> tuple[str, ...]:
        need = set(self.video.needed) | set(self.audio.needed)
        return tuple(v for v in VARIANTS if v in need)


_STEP_SCALE = {"text": "text", "text+faces": "faces", "all": "voices"}  # the scale of the step into a variant


def combine(preds: dict[str, Tensor], s: GuidanceScales) -> Tensor:
    """The guided velocity from the predictions of the variants ``s.needed``.

    Walks the needed variants upwards; a step that skips variants has scale 1 (a variant is only
    skipped when the scales on both sides of it are 1, so the skipped terms telescope).
    """
    needed = s.needed
    v = preds[needed[0]]
    for a, b in zip(needed, needed[1:], strict=False):
        adjacent = VARIANTS.index(b) - VARIANTS.index(a) == 1
        scale = getattr(s, _STEP_SCALE[b]) if adjacent else 1.0
        v = v + scale * (preds[b] - preds[a])
    return v


@dataclass(frozen=True, kw_only=True)
class TwoPassGuidance:
    """Classifier-free guidance from one conditional and one unconditional pass per step, per stream

        v = v_u + s (v_c - v_u),

    as Ovi and the Identity-as-Presence release sample (``IDAVPipeline.__call__``): the conditional
    pass sees the caption, the faces and the voices through every block; the unconditional pass sees
    each tower's negative caption, keeps or drops each kind of reference, and may leave one block out
    entirely (skip-layer guidance, the release's ``slg_layer``). The defaults are plain CFG; the
    release's values are in ``recipes/release_iap.yaml``.
    """

    video: float = 4.0  # the video stream's scale s
    audio: float = 3.0  # the audio stream's scale s
    video_negative: str = ""  # the unconditional pass's caption in the video tower
    audio_negative: str = ""  # the unconditional pass's caption in the audio tower
    skip_block: int = -1  # the block the unconditional pass leaves out (-1: none)
    uncond_faces: bool = True  # the unconditional pass keeps the face references
    uncond_voices: bool = False  # the unconditional pass keeps the voice references
    # pad every caption with zero vectors to this many tokens, all of them attended (Wan's text_len:
    # its text embedding runs on the zero rows and cross-attention has no mask); 0: pad to the longest
    # caption and mask the padding
    caption_length: int = 0


def cfg_combine(conditional: Tensor, unconditional: Tensor, scale: float) -> Tensor:
    """``v_u + scale (v_c - v_u)`` (:class:`TwoPassGuidance`)."""
    return unconditional + scale * (conditional - unconditional)
