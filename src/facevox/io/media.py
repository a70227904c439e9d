"""Talking-video media on disk: H.264/AAC mp4 write and read with PyAV (bundled FFmpeg).

Shapes: video ``(T, H, W, 3)`` uint8 RGB, audio ``(S,)`` float32 mono in [-1, 1].
AAC adds encoder priming and padding; :func:`read_av` trims the decoded audio to the duration
of the video so a round trip returns the written length.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from facevox.io.atomic import atomic_path


class MediaError(ValueError):
    """A media file that cannot be read or written as asked; the message says why."""


@dataclass(frozen=True)
class AVClip:
    video: np.ndarray  # (T, H, W, 3) uint8 RGB
    fps: float
    audio: np.ndarray | None  # (S,) float32 mono, or None when the file has no audio stream
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.video.shape[0] / self.fps


def write_av(
    path: str | Path,
    video: np.ndarray,
    fps: float,
    audio: np.ndarray | None,
    sample_rate: int,
    crf: int = 20,
    preset: str = "veryfast",
    audio_bitrate: int = 96_000,
) -> Path:
    """Write ``video`` (T, H, W, 3 uint8) and mono ``audio`` as an H.264/AAC mp4, atomically."""
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise MediaError(f"video must be (T, H, W, 3) uint8, got {video.shape} {video.dtype}")
    t, h, w, _ = video.shape
    if h % 2 or w % 2:
        raise MediaError(f"H.264 (yuv420p) needs even sizes, got {w}x{h}")
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        vs = container.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": str(crf), "preset": preset}
        # x264 threads make output depend on scheduling; one thread keeps files byte-identical.
        vs.codec_context.thread_count = 1
        a_stream = None
        if audio is not None:
            a_stream = container.add_stream("aac", rate=sample_rate)
            a_stream.layout = "mono"
            a_stream.bit_rate = audio_bitrate
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(video[i], format="rgb24")
            for packet in vs.encode(frame):
                container.mux(packet)
        for packet in vs.encode():
            container.mux(packet)
        if a_stream is not None and audio is not None:
            samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
            chunk = 1024
            for start in range(0, samples.shape[0], chunk):
                block = samples[start : start + chunk][None, :]
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout="mono")
                af.sample_rate = sample_rate
                af.pts = start
                for packet in a_stream.encode(af):
                    container.mux(packet)
            for packet in a_stream.encode():
                container.mux(packet)
    return path


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise MediaError(f"{path}: cannot open ({err})") from err


def read_av(path: str | Path, sample_rate: int = 16_000, max_frames: int | None = None) -> AVClip:
    """Decode all video frames (RGB) and the audio (mono, resampled to ``sample_rate``)."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path}: no video stream")
        vstream = container.streams.video[0]
        fps = float(vstream.average_rate or vstream.guessed_rate or 0)
        frames = []
        try:
            for frame in container.decode(vstream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
        except av.FFmpegError as err:
            raise MediaError(f"{path}: video decode failed ({err})") from err
        if not frames:
            raise MediaError(f"{path}: no decodable video frames")
        has_audio = bool(container.streams.audio)
    audio = read_audio(path, sample_rate) if has_audio else None
    video = np.stack(frames)
    if audio is not None and fps > 0:
        n = round(video.shape[0] / fps * sample_rate)
        audio = audio[:n] if audio.shape[0] >= n else np.pad(audio, (0, n - audio.shape[0]))
    return AVClip(video=video, fps=fps, audio=audio, sample_rate=sample_rate)


def read_audio(path: str | Path, sample_rate: int = 16_000) -> np.ndarray:
    """Decode the first audio stream of any media file to mono float32 at ``sample_rate``."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{path}: no audio stream")
        astream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        try:
            for frame in container.decode(astream):
                frame.pts = None
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as err:
            raise MediaError(f"{path}: audio decode failed ({err})") from err
    if not chunks:
        raise MediaError(f"{path}: audio stream holds no samples")
    audio = np.concatenate(chunks).astype(np.float32)
    # AAC priming: the encoder delays the signal by 1024 samples at its own rate; PyAV's decoder
    # already drops the priming given in the stream's edit list, so nothing more is trimmed here.
    return audio
