"""Configuration of the synthetic talking world (``facevox synth``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    seed: int = 0  # the whole world is a function of this seed
    num_people: int = 60  # identities drawn (face + voice)
    heldout_people: int = 12  # identities that never appear in train clips
    num_clips: int = 200  # clips in total (train + held-out)
    heldout_clip_fraction: float = 0.2  # share of clips that hold only held-out people
    people_per_clip: tuple[float, float, float] = (0.5, 0.3, 0.2)  # P(1), P(2), P(3) people in frame
    fps: float = 25.0
    sample_rate: int = 16_000
    width: int = 320  # frame size in pixels (even numbers; H.264 yuv420p)
    height: int = 240
    min_duration: float = 2.0  # seconds
    max_duration: float = 8.0
    max_yaw: float = 30.0  # |yaw| of a head never exceeds this (degrees), motion included
    max_pitch: float = 12.0
    max_roll: float = 8.0
    overlap_prob: float = 0.15  # chance that a turn starts before the previous one ends
    words_per_turn: tuple[int, int] = (3, 9)
    crf: tuple[int, int] = (18, 28)  # H.264 quality range drawn per clip (compression nuisance)
    blur: tuple[float, float] = (0.0, 0.8)  # Gaussian blur sigma range in pixels
    noise: tuple[float, float] = (0.0, 0.015)  # sensor noise std range
    workers: int = 2  # parallel clip workers (processes)

    def __post_init__(self) -> None:
        if self.num_people < 2:
            raise ValueError(f"num_people must be >= 2, got {self.num_people}")
        if not 1 <= self.heldout_people < self.num_people:
            raise ValueError(f"heldout_people must be in [1, num_people - 1], got {self.heldout_people}")
        if self.num_clips < 1:
            raise ValueError(f"num_clips must be >= 1, got {self.num_clips}")
        if not 0.0 < self.heldout_clip_fraction < 1.0:
            raise ValueError(f"heldout_clip_fraction must be in (0, 1), got {self.heldout_clip_fraction}")
        if len(self.people_per_clip) != 3 or min(self.people_per_clip) < 0 or sum(self.people_per_clip) <= 0:
            raise ValueError(f"people_per_clip must be 3 non-negative weights, got {self.people_per_clip}")
        if (
            self.width % 2
            or self.height % 2
            or min(self.width, self.height) < 96
            or max(self.width, self.height) > 1920
        ):
            raise ValueError(
                f"frame size must be even and within 96..1920 pixels, got {self.width}x{self.height}"
            )
        if not 1.0 <= self.fps <= 120.0:
            raise ValueError(f"fps must be in [1, 120], got {self.fps}")
        if self.sample_rate not in (8_000, 16_000, 22_050, 24_000, 44_100, 48_000):
            raise ValueError(f"sample_rate {self.sample_rate} is not a standard rate")
        if not 0.5 <= self.min_duration <= self.max_duration <= 60.0:
            raise ValueError(
                f"durations must satisfy 0.5 <= min_duration <= max_duration <= 60, got "
                f"{self.min_duration}, {self.max_duration}"
            )
        if not 0 <= self.max_yaw <= 60:
            raise ValueError(f"max_yaw must be in [0, 60] degrees, got {self.max_yaw}")
        if self.words_per_turn[0] < 1 or self.words_per_turn[0] > self.words_per_turn[1]:
            raise ValueError(f"words_per_turn must be an increasing pair >= 1, got {self.words_per_turn}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        n_heldout_clips = round(self.num_clips * self.heldout_clip_fraction)
        if self.num_clips > 1 and not 1 <= n_heldout_clips < self.num_clips:
            raise ValueError(
                f"{self.num_clips} clips at fraction {self.heldout_clip_fraction} leave a split empty"
            )
