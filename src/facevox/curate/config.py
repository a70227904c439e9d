"""Configuration of the curation pipeline (``facevox curate``): one frozen dataclass per stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    sample_rate: int = 16_000  # audio is resampled to this rate, mono
    min_duration: float = 1.0  # seconds; shorter videos are dropped ("too_short")
    max_duration: float = 600.0  # seconds decoded at most; longer videos are cut here
    min_side: int = 64  # pixels; a smaller width or height is "too_small"
    max_side: int = 4096  # pixels; a larger width or height is an "absurd_resolution"
    min_fps: float = 5.0  # frame rates outside [min_fps, max_fps] are "absurd_fps"
    max_fps: float = 120.0
    max_bytes: int = 8 << 30  # files above this size are not opened ("too_large")


@dataclass(frozen=True, kw_only=True)
class ShotConfig:
    threshold: float = 27.0  # PySceneDetect ContentDetector threshold (its default)
    min_shot_seconds: float = 0.6  # cuts closer than this are merged


@dataclass(frozen=True, kw_only=True)
class FaceConfig:
    min_face: int = 32  # pixels; smallest face the detector looks for
    detect_every: int = 3  # run the detector on every n-th frame; the tracker interpolates the rest
    track_iou: float = 0.3  # a detection continues a track when its IoU with the last box is above this
    max_gap: int = 9  # frames a track may go undetected before it ends (gaps are interpolated)
    min_track_frames: int = 10  # shorter tracks are dropped ("short_track"): mostly false positives
    min_detected_fraction: float = 0.4  # tracks detected on fewer of their frames are dropped
    verify_with_hog: bool = True  # confirm each track with dlib's HOG detector (drops Haar false positives)
    min_blur_var: float = 5.0  # median Laplacian variance of the crop below this is "blurry_track"
    embed_frames: int = 3  # frames per track embedded with dlib (sharpest, spread over the track)
    crops_per_track: int = 3  # reference candidates saved per track (PNG)
    crop_margin: float = 0.25  # crop = box grown by this fraction on each side


@dataclass(frozen=True, kw_only=True)
class VoiceConfig:
    vad_threshold: float = 0.5  # silero speech probability threshold
    min_speech: float = 0.3  # seconds; shorter speech regions are ignored
    min_silence: float = 0.15  # seconds of silence that split two speech regions
    min_side: float = 0.8  # seconds; a speaker change is looked for only with this much speech on each side
    hop: float = 0.2  # seconds between candidate change points
    change_distance: float = 0.36  # cosine distance between the two sides that marks a speaker change
    same_voice_distance: float = 0.3  # pieces closer than this (average linkage, cosine) are one voice
    bind_min_sync: float = 0.1  # mouth/speech synchrony (correlation) a face needs to be bound to a segment
    bind_margin: float = 0.15  # synchrony by which another face must beat the voice's face to take a segment


@dataclass(frozen=True, kw_only=True)
class AsrConfig:
    backend: Literal["pocketsphinx", "whisper", "none"] = "pocketsphinx"
    whisper_model_dir: str = ""  # a local folder with a faster-whisper / whisper model (no downloads)
    use_subtitles: bool = True  # a sidecar .srt/.vtt next to the video wins over ASR


@dataclass(frozen=True, kw_only=True)
class ReferenceConfig:
    faces_per_person: int = 3  # face crops per subject (multi-view)
    min_yaw_spread: float = 0.05  # pose-proxy difference that makes two crops distinct views
    near_duplicate_distance: float = 0.08  # dlib distance under which two crops are near-duplicates
    voices_per_person: int = 2  # reference speech segments per subject
    min_voice_seconds: float = 0.6  # shorter segments are not used as voice references
    # dataset-wide face clustering cut (dlib euclidean, average linkage): dlib's 0.6 convention for
    # real faces; the synthetic world's faces sit closer together (recipes/curate_synth_world.yaml)
    same_person_distance: float = 0.6


@dataclass(frozen=True, kw_only=True)
class CurateConfig:
    input_dir: str = ""
    out_dir: str = ""
    extensions: tuple[str, ...] = (".mp4", ".mkv", ".webm", ".mov")
    shard_size: int = 4  # videos per shard (one completion marker each)
    workers: int = 2  # processes (local) or actors (ray)
    executor: Literal["local", "ray"] = "local"
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    shots: ShotConfig = field(default_factory=ShotConfig)
    faces: FaceConfig = field(default_factory=FaceConfig)
    voice: VoiceConfig = field(default_factory=VoiceConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    references: ReferenceConfig = field(default_factory=ReferenceConfig)

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
