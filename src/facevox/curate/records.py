"""What one video carries through the map phase (:class:`ClipWork`) and what it leaves on disk.

Times are seconds from the start of the video; frames are 0-based indices at the video's fps;
boxes are ``[x0, y0, x1, y1]`` pixels. Arrays: ``video`` (T, H, W, 3) uint8 RGB, ``audio`` (S,)
float32 mono at ``sample_rate``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facevox.curate.config import CurateConfig
from facevox.curate.step import Drop


@dataclass
class FaceCrop:
    path: str  # PNG, relative to the output folder
    frame: int
    yaw: float  # pose proxy in [-1, 1]: nose offset from the eye midpoint over the eye distance
    embedding: list[float]  # dlib 128-d of this crop


@dataclass
class Track:
    track_id: int
    shot: int
    frames: list[int]  # contiguous frame indices
    boxes: list[list[float]]  # one box per frame (interpolated where the detector missed)
    detected: list[bool]  # whether the detector found the face on that frame
    size: float = 0.0  # median box height, pixels
    blur: float = 0.0  # median Laplacian variance of the face crop (higher = sharper)
    yaw_spread: float = 0.0  # spread of the pose proxy over the embedded frames
    embedding: list[float] | None = None  # mean dlib embedding of the track (128,)
    local_person: int = -1  # person within this video
    crops: list[FaceCrop] = field(default_factory=list)
    mouth_motion: list[float] = field(default_factory=list)  # per frame, mouth-region change
    appearance: dict[str, list[float]] = field(default_factory=dict)  # mean RGB in [0, 1] of "skin", "hair"


@dataclass
class SpeechSegment:
    seg_id: int
    start: float
    end: float
    voice_id: int = -1  # diarized voice within this video
    embedding: list[float] | None = None  # resemblyzer 256-d of the segment
    track_id: int | None = None  # the face track bound to this segment (active speaker)
    bind_score: float = 0.0  # mouth-motion evidence for the binding (z-score)
    text: str = ""
    text_source: str = ""  # "asr:pocketsphinx", "asr:whisper", "subtitle:<file name>"
    audio_path: str = ""  # WAV 16 kHz of the segment, relative to the output folder


@dataclass
class ClipWork:
    """One video in flight. Steps fill the fields below in order."""

    source: str  # path of the input file
    clip_id: str  # unique name derived from the path relative to the input folder
    out_dir: str
    cfg: CurateConfig
    subtitle: str = ""  # sidecar .srt/.vtt path, if one exists
    fps: float = 0.0
    sample_rate: int = 0
    width: int = 0
    height: int = 0
    duration: float = 0.0
    video: np.ndarray | None = None  # (T, H, W, 3) uint8
    audio: np.ndarray | None = None  # (S,) float32
    shots: list[tuple[int, int]] = field(default_factory=list)  # [start, end) frames
    scenes: list[dict[str, float | list[float]]] = field(
        default_factory=list
    )  # per shot: brightness, background RGB
    tracks: list[Track] = field(default_factory=list)
    segments: list[SpeechSegment] = field(default_factory=list)
    excluded: list[Drop] = field(default_factory=list)  # parts dropped along the way
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step

    @property
    def num_frames(self) -> int:
        return 0 if self.video is None else int(self.video.shape[0])

    def out_path(self, *parts: str) -> Path:
        return Path(self.out_dir, *parts)

    def analysis(self) -> dict[str, Any]:
        """The JSON-able result of the map phase for this video (no pixel or sample arrays)."""
        return {
            "clip_id": self.clip_id,
            "source": self.source,
            "subtitle": self.subtitle,
            "fps": self.fps,
            "sample_rate": self.sample_rate,
            "width": self.width,
            "height": self.height,
            "duration": self.duration,
            "num_frames": self.num_frames,
            "shots": [list(s) for s in self.shots],
            "scenes": self.scenes,
            "tracks": [asdict(t) for t in self.tracks],
            "segments": [asdict(s) for s in self.segments],
            "timings": self.timings,
        }


def track_from_dict(d: dict[str, Any]) -> Track:
    crops = [FaceCrop(**c) for c in d.get("crops", [])]
    return Track(**{**d, "crops": crops})


def segment_from_dict(d: dict[str, Any]) -> SpeechSegment:
    return SpeechSegment(**d)
