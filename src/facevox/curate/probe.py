"""Finding inputs and the probe+decode step (PyAV; audio to 16 kHz mono).

Rejections, each with a reason: ``unreadable`` (not a regular readable file: a symlink loop, a
dangling link, no permission, a folder named like a video), ``zero_length``, ``cannot_open`` (not a
media container: corrupt bytes), ``no_video``, ``no_audio``, ``unknown_codec`` (a stream this
FFmpeg cannot decode), ``absurd_fps``, ``absurd_resolution``, ``too_small``, ``truncated`` (the
frames end well before the duration the container declares), ``too_short``, ``decode_failed``.

Odd but valid inputs are decoded as a player shows them: frames are turned upright by the display
matrix (phone videos), variable-frame-rate video is resampled onto a constant grid at its average
rate (each grid time shows the latest frame due by then), and any audio format or rate is
resampled to mono at ``probe.sample_rate``.
"""

from __future__ import annotations

import logging
import os
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from facevox.curate.records import ClipWork
from facevox.curate.step import Drop, Resources
from facevox.io.media import MediaError, read_audio

log = logging.getLogger(__name__)

SUBTITLE_SUFFIXES = (".srt", ".vtt")


def clip_id_for(path: Path, root: Path) -> str:
    """A file-system-safe unique id from the path relative to ``root`` ("a/b c.mp4" -> "a__b_c")."""
    rel = path.relative_to(root).with_suffix("")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "__".join(rel.parts))


def list_inputs(root: str | Path, extensions: tuple[str, ...]) -> list[Path]:
    """Every path under ``root`` whose suffix is a video extension, sorted; links are not followed
    into directories (a directory symlink loop cannot trap the walk), but a file-like link, or a
    folder named like a video, is listed so that the probe can reject it with a reason."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"input folder {root} does not exist or is not a folder")
    exts = {e.lower() for e in extensions}
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames + dirnames:
            if Path(name).suffix.lower() in exts:
                found.append(Path(dirpath) / name)
    return sorted(found)


def sidecar_subtitle(path: Path) -> str:
    for suffix in SUBTITLE_SUFFIXES:
        cand = path.with_suffix(suffix)
        if cand.exists() or cand.is_symlink():
            return str(cand)
    return ""


class ProbeDecode:
    """Open the container, check streams and sizes, decode frames (RGB) and audio (mono, 16 kHz)."""

    name = "probe"
    resources = Resources(cpus=1.0, memory_mb=1024)

    def setup(self) -> None:
        return None

    def process(self, work: ClipWork) -> ClipWork | Drop:
        cfg = work.cfg.probe
        path = Path(work.source)

        def drop(reason: str, detail: str) -> Drop:
            return Drop(stage=self.name, reason=reason, detail=detail)

        try:
            real = path.resolve(strict=True)
            st = real.stat()
        except (OSError, RuntimeError) as err:  # RuntimeError: symlink loop on some Pythons
            return drop("unreadable", f"{type(err).__name__}: {err}")
        if not real.is_file():
            return drop("unreadable", "not a regular file")
        if st.st_size == 0:
            return drop("zero_length", "the file is empty")
        if st.st_size > cfg.max_bytes:
            return drop("too_large", f"{st.st_size} bytes > {cfg.max_bytes}")
        try:
            container = av.open(str(real))
        except (av.FFmpegError, OSError, ValueError) as err:
            return drop("cannot_open", str(err))
        with container:
            if not container.streams.video:
                return drop("no_video", "the container has no video stream")
            if not container.streams.audio:
                return drop("no_audio", "the container has no audio stream")
            vs = container.streams.video[0]
            for stream in (vs, container.streams.audio[0]):
                if stream.codec_context is None:
                    return drop("unknown_codec", f"no decoder for the {stream.type} stream's codec")
            rate = vs.average_rate or vs.guessed_rate or Fraction(0)
            fps = float(rate)
            w, h = int(vs.codec_context.width or 0), int(vs.codec_context.height or 0)
            if not cfg.min_fps <= fps <= cfg.max_fps:
                return drop("absurd_fps", f"{fps:.3f} fps outside [{cfg.min_fps}, {cfg.max_fps}]")
            if max(w, h) > cfg.max_side:
                return drop("absurd_resolution", f"{w}x{h} has a side above {cfg.max_side}")
            if min(w, h) < cfg.min_side:
                return drop("too_small", f"{w}x{h} has a side below {cfg.min_side}")
            declared = _declared_seconds(vs)
            max_frames = int(cfg.max_duration * fps)
            frames: list[np.ndarray] = []
            times: list[float | None] = []  # presentation time of each frame, seconds
            rotation = 0  # counter-clockwise degrees the display matrix turns the picture by
            stopped = ""
            try:
                for frame in container.decode(vs):
                    rotation = rotation if frames else frame.rotation
                    frames.append(frame.to_ndarray(format="rgb24"))  # (H, W, 3)
                    times.append(frame.time)
                    if len(frames) >= max_frames:
                        break
            except (av.FFmpegError, ValueError) as err:
                if not frames:
                    return drop("decode_failed", f"video: {err}")
                stopped = f"video decode stopped at frame {len(frames)}: {err}"
        if not frames:
            return drop("decode_failed", "no decodable video frame")
        decoded = len(frames) / fps
        if len(frames) < max_frames and declared - decoded > max(0.5, 0.05 * declared):
            return drop(
                "truncated",
                f"{decoded:.2f} s of video decoded, the container declares {declared:.2f} s"
                + (f" ({stopped})" if stopped else ": the file ends early"),
            )
        if stopped:
            work.excluded.append(Drop(stage=self.name, reason="truncated", detail=stopped))
        duration = decoded
        if duration < cfg.min_duration:
            return drop("too_short", f"{duration:.2f} s < {cfg.min_duration} s")
        try:
            audio = read_audio(real, cfg.sample_rate)
        except MediaError as err:
            return drop("decode_failed", f"audio: {err}")
        n = round(duration * cfg.sample_rate)
        audio = audio[:n] if audio.shape[0] >= n else np.pad(audio, (0, n - audio.shape[0]))
        video = constant_rate(np.stack(frames), times, fps)  # (T, H, W, 3)
        work.video = np.ascontiguousarray(np.rot90(video, k=round(rotation / 90) % 4, axes=(1, 2)))
        work.audio = audio.astype(np.float32)  # (S,)
        work.fps, work.sample_rate = fps, cfg.sample_rate
        work.height, work.width = work.video.shape[1:3]
        work.duration = duration
        return work


def _declared_seconds(stream: av.video.stream.VideoStream) -> float:
    """The video stream's duration as the container states it (mp4, mov); 0.0 when it does not
    say (Matroska, WebM: there the check for a truncated file is skipped)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return 0.0


def constant_rate(video: np.ndarray, times: list[float | None], fps: float) -> np.ndarray:
    """``video`` (T, H, W, 3) on the grid ``k / fps``, k < T: each grid time shows the latest frame
    whose presentation time has come. Frames already on the grid (within half a frame) come back
    unchanged; so do frames without timestamps."""
    if len(times) < 2 or any(t is None for t in times):
        return video
    t = np.asarray(times, dtype=np.float64)
    t -= t[0]
    grid = np.arange(len(t)) / fps
    if np.all(np.abs(t - grid) <= 0.5 / fps):
        return video
    shown = np.searchsorted(t, grid + 1e-6, side="right") - 1  # (T,) the frame on screen at each grid time
    return video[np.clip(shown, 0, len(t) - 1)]
