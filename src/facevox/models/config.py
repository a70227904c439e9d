"""Typed configuration of the dual-tower DiT (frozen, kw_only dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from facevox.alignment import Clock

RefParams = Literal["lora", "copy", "shared"]


@dataclass(frozen=True, kw_only=True)
class TowerConfig:
    """One tower (video or audio). Widths may differ between the towers (asymmetric towers)."""

    in_channels: int  # latent channels of this modality's VAE
    dim: int  # hidden width D
    heads: int  # attention heads; head width D / heads must be even and >= 6 (RoPE split)
    ffn_dim: int  # FFN hidden width
    # How reference tokens get their "decoupled" parameters (paper: W^(r) apart from W^(z)):
    #   "lora"   - shared base weights + reference-only low-rank adapters on self-attention q/k/v/o
    #              (Stand-In, the default: a pretrained tower is reused unchanged for targets);
    #   "copy"   - a full separate self-attention, FFN and modulation table for references
    #              (the release's video tower, `*_prime` weights);
    #   "shared" - references use the target weights (the release's audio tower).
    ref_params: RefParams = "lora"
    ref_lora_rank: int = 128  # rank of the reference adapters when ref_params == "lora"
    patch: tuple[int, int, int] = (1, 2, 2)  # video only: latent cells per token (t, h, w)
    embed_kernel: int = 7  # audio only: kernel of the conv patch embedding (Ovi: 7)
    embed_multiple_of: int = 256  # audio only: hidden-width rounding of the conv SwiGLU embedding

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} not divisible by heads {self.heads}")
        hd = self.dim // self.heads
        if hd % 2 or hd < 6:
            raise ValueError(f"head width {hd} must be even and >= 6 for 3-axis RoPE")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


@dataclass(frozen=True, kw_only=True)
class DualTowerConfig:
    """The whole model. Sizes live in :mod:`facevox.models.registry`."""

    name: str = "custom"  # registry name, recorded in checkpoints
    video: TowerConfig
    audio: TowerConfig
    depth: int  # dual-stream blocks (both towers have this depth)
    text_dim: int  # caption hidden width from the text encoder (MiniLM 384, umT5-XXL 4096)
    freq_dim: int = 256  # sinusoidal timestep features
    eps: float = 1e-6  # norm epsilon
    rope_theta: float = 10000.0
    timestep_scale: float = (
        1000.0  # the model embeds sigma * timestep_scale (Wan: sigma in [0, 1] -> [0, 1000])
    )
    max_slots: int = 8  # identity-embedding table size; any 0..max_slots people per sample
    rope_time_scale: float = 0.25  # audio token index -> video latent-frame position (Clock.rope_time_scale)
    # the seconds clock the positions follow (fps, time stride, audio token rate): set for the sizes
    # trained here (the trainer takes it from the shards and refuses other clocks); None = a fixed
    # rope_time_scale with no frame rate attached (the release sizes, and weights saved before the clock)
    clock: Clock | None = None
    # add the identity embedding of every slot that speaks during a target token to that token (video:
    # per latent frame, audio: per token), from the turn spans (ModalityInput.speaking); it reuses the
    # identity table, so no weights are added. Off for the release sizes (their weights never saw it)
    turn_embedding: bool = False
    # Where reference tokens sit in position space:
    #   "after"  - slot k's face views at token frames T + k * video_ref_slot_gap + v (release: 31 for k=0);
    #              slot k's voice at audio index A + k * audio_ref_slot_gap + i (A = audio_ref_start or
    #              the target length);
    #   "before" - negative time: slot k at -(k + 1) * gap + v / + i (ID-LoRA style ablation);
    #   "placed" - "after" on the time axis, and each face view's (h, w) grid spread over the box where
    #              that slot's face is drawn in the target (References.boxes), so a reference token and
    #              the target tokens at the same place in the face share their spatial position.
    ref_position_mode: Literal["after", "before", "placed"] = "after"
    # "placed": a face view shows its face box grown by this much of the box's size on each side,
    # padded square (curation's and generation's face crops: facevox.data.references.face_crop_at)
    ref_view_margin: float = 0.25
    video_ref_slot_gap: int = 4  # token frames per face slot (>= views per slot)
    # where the training windows' faces were, by number of people: face_layouts[n - 1] holds the mean
    # boxes (x0, y0, x1, y1, fractions of the frame) of n-person windows, left to right; generation
    # places a request's faces there unless it gives boxes ("placed" only; facevox.layout)
    face_layouts: tuple[tuple[tuple[float, float, float, float], ...], ...] = ()
    audio_ref_slot_gap: int = 192  # audio tokens per voice slot (>= voice reference length)
    audio_ref_start: int | None = None  # first voice-reference index; None = right after the target
    init_std: float = 0.02  # identity-embedding init std
    # an absolute (row, column) signal on the video target tokens (nn.patchify.GridPositionEmbedding):
    # off for the release sizes (their weights have none), on for the sizes trained here from scratch
    video_grid_position: bool = False
    # what the video head outputs: "velocity" (Wan / Ovi) or "sample", the clean latent x0, turned
    # into the velocity (x_sigma - x0) / sigma inside forward, so every caller still sees velocities.
    # Predicting x0 suits a tower whose token (channels x patch) is as wide as its width: the clean
    # latent lies on a low-dimensional manifold, the noise does not (Li & He 2025, "Back to Basics")
    video_prediction: Literal["velocity", "sample"] = "velocity"
    min_prediction_sigma: float = 0.05  # sigma floor of that division

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        if self.max_slots < 1:
            raise ValueError(f"max_slots must be >= 1, got {self.max_slots}")
        if self.clock is not None and abs(self.clock.rope_time_scale - self.rope_time_scale) > 1e-9:
            raise ValueError(
                f"rope_time_scale={self.rope_time_scale} disagrees with its clock ({self.clock.describe()})"
            )
