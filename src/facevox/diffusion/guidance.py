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
