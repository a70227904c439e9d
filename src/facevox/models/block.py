"""The dual-stream block: both towers' sublayers and the bidirectional cross-modal bridge.

Shape legend: ``B`` batch, ``Nv`` / ``Na`` video / audio target tokens, ``L`` caption tokens,
``Dv`` / ``Da`` tower widths.

Order of operations (Ovi's fusion block, paper Fig. "Block"): audio self-attention; video
self-attention; audio caption + A<-V bridge (reading the video tokens just updated) and audio FFN;
video caption + V<-A bridge (reading the audio tokens from before the audio cross step) and video FFN.
Reference streams run separately (``TowerLayers.reference_step``): their keys / values enter the
targets' self-attention through :class:`ReferenceKV`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from facevox.models.config import DualTowerConfig
from facevox.models.reference_cache import ReferenceKV
from facevox.models.tower import TowerLayers
from facevox.nn.modulation import split_modulation
from facevox.nn.rope import RotaryTable


@dataclass(frozen=True)
class StreamContext:
    """Per-forward, per-tower tensors shared by every block."""

    mod: Tensor  # (B, N or 1, 6, D) projected timestep embedding
    rope: RotaryTable  # this tower's targets, this tower's head width
    other_rope: RotaryTable  # the other tower's targets, laid out for this tower's head width
    text: Tensor  # (B, L, D) projected caption (identity embeddings added)
    text_mask: Tensor  # (B, L) bool


class DualStreamBlock(nn.Module):
    """One block of both towers."""

    def __init__(self, cfg: DualTowerConfig) -> None:
        super().__init__()
        self.video = TowerLayers(cfg.video, cfg.audio.dim, cfg.eps)
        self.audio = TowerLayers(cfg.audio, cfg.video.dim, cfg.eps)

    def forward(
        self,
        xv: Tensor,
        xa: Tensor,
        cv: StreamContext,
        ca: StreamContext,
        ref_v: ReferenceKV | None,
        ref_a: ReferenceKV | None,
    ) -> tuple[Tensor, Tensor]:
        """xv (B, Nv, Dv), xa (B, Na, Da) -> updated (xv, xa)."""
        mv = split_modulation(self.video.modulation, cv.mod, 6)
        ma = split_modulation(self.audio.modulation, ca.mod, 6)
        xa = self.audio.self_attention(xa, ma, ca.rope, ref_a)
        xv = self.video.self_attention(xv, mv, cv.rope, ref_v)
        xa_before_bridge = xa
        xa = self.audio.cross_and_ffn(xa, ma, ca.rope, ca.text, ca.text_mask, xv, ca.other_rope)
        xv = self.video.cross_and_ffn(xv, mv, cv.rope, cv.text, cv.text_mask, xa_before_bridge, cv.other_rope)
        return xv, xa
