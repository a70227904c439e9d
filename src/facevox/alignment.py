"""All audio-video alignment arithmetic in one object.

From frame rate, sample rate, VAE strides and patch sizes, :class:`Alignment` derives every token
count the model and the codecs agree on, and the RoPE time scale that puts audio tokens on the
video latent-frame clock (Ovi's "scaled RoPE": latent frames per clip / audio tokens per clip).

Named presets: ``tiny`` (our CPU world) and ``ovi`` / ``iap-5b`` (the release: 121 frames at 24 fps,
704x1280, Wan2.2 VAE x4 time / x16 space, MMAudio 16 kHz VAE with 512 samples per latent, giving
31 latent frames, 27,280 video tokens, 157 audio tokens and the release's time scale of 0.19676).

:class:`Clock` is the one audio-video clock of the models trained here: every token's time position
comes from seconds. Video latent frame ``j`` starts at pixel frame ``j * stride`` (the causal VAE's
first frame is frame 0), i.e. at ``j * stride / fps`` seconds, and is position ``j``; audio token
``i`` starts at ``i / audio_token_rate`` seconds and is position ``i * fps / (stride * rate)``. Both
are linear in seconds, so a token's position error is zero at any frame rate and any length. The
release sizes keep the release's own constant (Ovi: 31 latent frames over the 157.55 audio tokens of
its 121-frame clip, :attr:`Alignment.release_time_scale`), which their weights were trained with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

MIN_FPS, MAX_FPS = 5.0, 120.0  # the frame rates curation accepts without resampling


class ClockError(ValueError):
    """Two things that disagree on time (shards and a model, a pipeline and its model); says which."""


@dataclass(frozen=True, kw_only=True)
class Clock:
    """Seconds -> token positions for one (frame rate, video time stride, audio token rate)."""

    fps: float  # video frames per second
    video_time_stride: int = 4  # pixel frames per video latent frame (after the first)
    audio_token_rate: float  # audio tokens per second (sample_rate / hop / audio patch)

    def __post_init__(self) -> None:
        if not MIN_FPS <= self.fps <= MAX_FPS:
            raise ClockError(f"fps={self.fps} outside [{MIN_FPS:g}, {MAX_FPS:g}]")
        if self.video_time_stride < 1 or self.audio_token_rate <= 0:
            raise ClockError(
                f"video_time_stride={self.video_time_stride} and audio_token_rate={self.audio_token_rate} "
                "must be positive"
            )

    @property
    def latent_seconds(self) -> float:
        """Seconds per video latent frame (one unit of the shared position axis)."""
        return self.video_time_stride / self.fps

    @property
    def rope_time_scale(self) -> float:
        """Video latent frames per audio token: audio token index x this = its position."""
        return 1.0 / (self.audio_token_rate * self.latent_seconds)

    def video_frame_seconds(self, latent_frames: int) -> Tensor:
        """Start time (s) of each video latent frame: (T,)."""
        return torch.arange(latent_frames, dtype=torch.float64) * self.latent_seconds

    def audio_token_seconds(self, tokens: int) -> Tensor:
        """Start time (s) of each audio token: (Na,)."""
        return torch.arange(tokens, dtype=torch.float64) / self.audio_token_rate

    @classmethod
    def of_codecs(cls, fps: float, sample_rate: float, video_codec: Any, audio_codec: Any) -> Clock:
        """The clock of latents the codecs make from clips at ``fps`` and audio at ``sample_rate``
        (the codecs' ``time_stride``: pixel frames per video latent, samples per audio latent)."""
        return cls(
            fps=fps,
            video_time_stride=int(video_codec.time_stride),
            audio_token_rate=sample_rate / audio_codec.time_stride,
        )

    def speaking(
        self,
        turns: Sequence[tuple[int, float, float]],
        latent_frames: int,
        audio_tokens: int,
        slots: int,
        video_patch_t: int = 1,
    ) -> tuple[Tensor, Tensor]:
        """Who speaks during each target token of one clip (:func:`speaking_mask`): video
        (latent_frames / video_patch_t, slots) per token frame and audio (audio_tokens, slots) bool."""
        video = speaking_mask(
            turns,
            self.video_frame_seconds(latent_frames)[::video_patch_t],
            self.latent_seconds * video_patch_t,
            slots,
        )
        audio = speaking_mask(
            turns, self.audio_token_seconds(audio_tokens), 1.0 / self.audio_token_rate, slots
        )
        return video, audio

    def same_as(self, other: Clock, tol: float = 1e-6) -> bool:
        return (
            abs(self.fps - other.fps) <= tol * self.fps
            and self.video_time_stride == other.video_time_stride
            and abs(self.audio_token_rate - other.audio_token_rate) <= tol * self.audio_token_rate
        )

    def describe(self) -> str:
        return (
            f"{self.fps:g} fps, {self.video_time_stride} frames per latent, {self.audio_token_rate:g} audio "
            f"tokens/s (audio position scale {self.rope_time_scale:.5f})"
        )


def audio_latent_frames(video_frames: int, fps: float, sample_rate: int, hop: int) -> int:
    """Audio latent frames generated alongside ``video_frames`` frames: the floor of the clip's exact
    length in hops (the release's ``int((frames / fps * sample_rate) // 512)``: 121 frames at 24 fps,
    16 kHz, hop 512 -> 157; MMAudio's VAE makes the same count from that many samples)."""
    return int((video_frames / fps * sample_rate) // hop)


def speaking_mask(
    turns: Sequence[tuple[int, float, float]], seconds: Tensor, span: float, slots: int
) -> Tensor:
    """Who speaks during each token: (N, slots) bool, True where turn (slot, start, end) covers more
    than half of the token's ``span`` seconds starting at ``seconds`` (N,). Overlapping turns of
    different people mark both."""
    out = torch.zeros(seconds.shape[0], slots, dtype=torch.bool)
    for slot, start, end in turns:
        if not 0 <= slot < slots:
            raise ValueError(f"turn names slot {slot}, only {slots} slots")
        covered = torch.minimum(seconds + span, torch.tensor(end)) - torch.maximum(
            seconds, torch.tensor(start)
        )
        out[:, slot] |= covered > span / 2
    return out


@dataclass(frozen=True, kw_only=True)
class Alignment:
    """Clip geometry and the token counts it implies."""

    fps: float  # video frames per second
    num_frames: int  # pixel frames per clip; must be 1 + k * vae_time_stride
    height: int  # pixels
    width: int  # pixels
    sample_rate: int  # audio samples per second
    vae_time_stride: int = 4  # pixel frames per latent frame (after the first frame)
    vae_space_stride: int = 8  # pixels per latent cell, each spatial axis
    audio_hop: int = 512  # audio samples per audio latent frame
    video_patch: tuple[int, int, int] = (1, 2, 2)  # (t, h, w) latent cells per video token
    audio_patch: int = 1  # audio latent frames per audio token

    def __post_init__(self) -> None:
        if (self.num_frames - 1) % self.vae_time_stride:
            raise ValueError(
                f"num_frames={self.num_frames} must be 1 + k * {self.vae_time_stride} (causal video VAE)"
            )
        for name, size in (("height", self.height), ("width", self.width)):
            if size % (self.vae_space_stride * self.video_patch[1]):
                raise ValueError(
                    f"{name}={size} must be a multiple of vae_space_stride * patch = "
                    f"{self.vae_space_stride * self.video_patch[1]}"
                )
        if self.latent_frames % self.video_patch[0]:
            raise ValueError(
                f"latent frames {self.latent_frames} not divisible by patch {self.video_patch[0]}"
            )

    # ---- video
    @property
    def duration(self) -> float:
        """Clip length in seconds (``num_frames / fps``)."""
        return self.num_frames / self.fps

    @property
    def latent_frames(self) -> int:
        """Video latent frames ``T = 1 + (frames - 1) / stride``."""
        return 1 + (self.num_frames - 1) // self.vae_time_stride

    @property
    def latent_hw(self) -> tuple[int, int]:
        """Video latent (H, W)."""
        return self.height // self.vae_space_stride, self.width // self.vae_space_stride

    @property
    def video_grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W') after patchify."""
        h, w = self.latent_hw
        pt, ph, pw = self.video_patch
        return self.latent_frames // pt, h // ph, w // pw

    @property
    def tokens_per_frame(self) -> int:
        """Video tokens per latent frame."""
        _, h, w = self.video_grid
        return h * w

    @property
    def video_tokens(self) -> int:
        """Video tokens per clip."""
        return math.prod(self.video_grid)

    def reference_tokens(self, ref_height: int, ref_width: int) -> int:
        """Tokens of one single-frame face reference of the given pixel size."""
        s = self.vae_space_stride
        return (ref_height // s // self.video_patch[1]) * (ref_width // s // self.video_patch[2])

    # ---- audio
    @property
    def audio_samples(self) -> int:
        """Audio samples covering the clip (``round(duration * sample_rate)``)."""
        return round(self.duration * self.sample_rate)

    @property
    def audio_latent_rate(self) -> float:
        """Audio latent frames per second."""
        return self.sample_rate / self.audio_hop

    @property
    def audio_latent_frames(self) -> int:
        """Audio latent frames per clip (floor, as MMAudio's VAE produces; :func:`audio_latent_frames`)."""
        return audio_latent_frames(self.num_frames, self.fps, self.sample_rate, self.audio_hop)

    @property
    def audio_tokens(self) -> int:
        """Audio tokens per clip."""
        return self.audio_latent_frames // self.audio_patch

    def audio_tokens_for(self, seconds: float) -> int:
        """Audio tokens for a reference clip of ``seconds``."""
        return int(seconds * self.sample_rate) // self.audio_hop // self.audio_patch

    @property
    def clock(self) -> Clock:
        """The seconds clock of this geometry."""
        return Clock(
            fps=self.fps,
            video_time_stride=self.vae_time_stride,
            audio_token_rate=self.audio_latent_rate / self.audio_patch,
        )

    @property
    def rope_time_scale(self) -> float:
        """Video latent frames per audio token on the seconds clock (:class:`Clock`)."""
        return self.clock.rope_time_scale

    @property
    def release_time_scale(self) -> float:
        """Ovi's constant: latent frames over audio tokens of this clip (31 / 157.55 = 0.19676 for
        the release), exact only at this clip length; the release sizes keep it."""
        return self.latent_frames / (self.duration * self.audio_latent_rate / self.audio_patch)

    def self_test(self) -> None:
        """Check the derived counts are consistent; raises ValueError naming the first failure."""
        if self.latent_frames != 1 + (self.num_frames - 1) // self.vae_time_stride:
            raise ValueError("latent frame count inconsistent")
        if self.video_tokens != self.video_grid[0] * self.tokens_per_frame:
            raise ValueError("video token count inconsistent")
        if (
            abs(self.audio_tokens * self.audio_hop * self.audio_patch - self.audio_samples)
            >= self.audio_hop * self.audio_patch
        ):
            raise ValueError("audio tokens do not cover the clip to within one token")
        # The last audio token must land inside the video time span on the shared clock.
        last = (self.audio_tokens - 1) * self.rope_time_scale
        if not 0 <= last <= self.latent_frames:
            raise ValueError(f"last audio token at video time {last:.3f} outside [0, {self.latent_frames}]")
        if not 0 < self.rope_time_scale < 1e3:
            raise ValueError(f"rope time scale {self.rope_time_scale} out of range")


PRESETS: dict[str, Alignment] = {
    # Our CPU world: 25 fps, 1 s clips of 64x64, tiny Wan-style VAE (x4 time, x8 space), 16 kHz audio
    # with 640 samples per latent (25 audio tokens per second, one per video frame).
    "tiny": Alignment(
        fps=25.0, num_frames=25, height=64, width=64, sample_rate=16000, vae_space_stride=8, audio_hop=640
    ),
    # The release / Ovi 960x960_5s bucket used by the example script.
    "ovi": Alignment(
        fps=24.0,
        num_frames=121,
        height=704,
        width=1280,
        sample_rate=16000,
        vae_space_stride=16,
        audio_hop=512,
    ),
}
PRESETS["iap-5b"] = PRESETS["ovi"]


def get_alignment(name: str) -> Alignment:
    """A named preset; ValueError lists the names on a miss."""
    if name not in PRESETS:
        raise ValueError(f"unknown alignment preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]
