"""Finding inputs and the probe+decode step (PyAV; audio to 16 kHz mono).

Rejections, each with a reason: ``unreadable`` (not a regular readable file: a symlink loop, a
dangling link, no permission), ``zero_length``, ``cannot_open`` (not a media container: corrupt
bytes), ``no_video``, ``no_audio``, ``absurd_fps``, ``absurd_resolution``, ``too_small``,
``too_short``, ``decode_failed``.
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
    """Every file under ``root`` whose suffix is a video extension, sorted; links are not followed
    into directories (a directory symlink loop cannot trap the walk), but a file-like link is
    listed so that the probe can reject it with a reason."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"input folder {root} does not exist or is not a folder")
    exts = {e.lower() for e in extensions}
    found = []
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
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
            rate = vs.average_rate or vs.guessed_rate or Fraction(0)
            fps = float(rate)
            w, h = int(vs.codec_context.width or 0), int(vs.codec_context.height or 0)
            if not cfg.min_fps <= fps <= cfg.max_fps:
                return drop("absurd_fps", f"{fps:.3f} fps outside [{cfg.min_fps}, {cfg.max_fps}]")
            if max(w, h) > cfg.max_side:
                return drop("absurd_resolution", f"{w}x{h} has a side above {cfg.max_side}")
            if min(w, h) < cfg.min_side:
                return drop("too_small", f"{w}x{h} has a side below {cfg.min_side}")
            max_frames = int(cfg.max_duration * fps)
            frames: list[np.ndarray] = []
            try:
                for frame in container.decode(vs):
                    frames.append(frame.to_ndarray(format="rgb24"))  # (H, W, 3)
                    if len(frames) >= max_frames:
                        break
            except (av.FFmpegError, ValueError) as err:
                if not frames:
                    return drop("decode_failed", f"video: {err}")
                work.excluded.append(
                    Drop(
                        stage=self.name,
                        reason="truncated",
                        detail=f"video decode stopped at frame {len(frames)}: {err}",
                    )
                )
        if not frames:
            return drop("decode_failed", "no decodable video frame")
        duration = len(frames) / fps
        if duration < cfg.min_duration:
            return drop("too_short", f"{duration:.2f} s < {cfg.min_duration} s")
        try:
            audio = read_audio(real, cfg.sample_rate)
        except MediaError as err:
            return drop("decode_failed", f"audio: {err}")
        n = round(duration * cfg.sample_rate)
        audio = audio[:n] if audio.shape[0] >= n else np.pad(audio, (0, n - audio.shape[0]))
        work.video = np.stack(frames)  # (T, H, W, 3)
        work.audio = audio.astype(np.float32)  # (S,)
        work.fps, work.sample_rate, work.width, work.height = fps, cfg.sample_rate, w, h
        work.duration = duration
        return work
