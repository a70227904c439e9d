"""Small real-media fixtures for the curation tests: a real face photo (scikit-image's astronaut)
that opens its mouth with the loudness of real synthetic speech (espeak-ng), and broken inputs."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from facevox.io.media import write_av

SR = 16_000
FACE_BOX = (64, 23, 104, 63)  # where the astronaut's face lies in frame() before shifting


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def speech(text: str, voice: str = "en-us+m3", speed: int = 170) -> np.ndarray:
    """espeak-ng speech as (S,) float32 at 16 kHz."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], capture_output=True, check=True
    ).stdout
    audio, sr = sf.read(io.BytesIO(wav), dtype="float32")
    g = np.gcd(int(sr), SR)
    return resample_poly(audio, SR // g, int(sr) // g).astype(np.float32)


def frame(flip: bool = False) -> np.ndarray:
    from skimage import data

    img = cv2.resize(data.astronaut(), (192, 192), interpolation=cv2.INTER_AREA)[:160]  # (160, 192, 3)
    return img[:, ::-1].copy() if flip else img


def talking_clip(
    path: Path,
    lines: list[tuple[float, str]],
    duration: float,
    voice: str = "en-us+m3",
    fps: float = 10.0,
    flip: bool = False,
) -> dict[str, list[tuple[float, float]]]:
    """An mp4 of the astronaut saying ``lines`` ([(start second, text)]); the mouth region opens
    with the speech envelope. Returns the speech spans actually written."""
    n = int(duration * fps)
    audio = np.zeros(int(duration * SR), np.float32)
    spans = []
    for start, text in lines:
        s = speech(text, voice)
        a = int(start * SR)
        s = s[: audio.shape[0] - a]
        audio[a : a + s.shape[0]] += s
        spans.append((start, start + s.shape[0] / SR))
    base = frame(flip)
    x0, y0, x1, y1 = FACE_BOX
    if flip:
        x0, x1 = base.shape[1] - x1, base.shape[1] - x0
    frames = []
    for f in range(n):
        img = base.copy()
        block = audio[int(f / fps * SR) : int((f + 1) / fps * SR)]
        loud = float(np.sqrt(np.mean(block**2))) if block.size else 0.0
        opening = int(min(1.0, loud * 8) * 7)
        if opening:
            cx, cy = (x0 + x1) // 2, y0 + int(0.78 * (y1 - y0))
            cv2.ellipse(img, (cx, cy), (8, opening), 0, 0, 360, (40, 10, 10), -1)
        frames.append(np.roll(img, int(3 * np.sin(f / 7)), axis=1))
    write_av(path, np.stack(frames), fps, audio, SR)
    return {"speech": spans}


def bad_inputs(folder: Path) -> dict[str, str]:
    """Broken inputs in ``folder``: file name -> the reason the probe must give."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (folder / "empty.mov").write_bytes(b"")
    loop = folder / "loop.mp4"
    if not loop.is_symlink():
        loop.symlink_to(loop.name)  # points at itself
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, (12, 64, 96, 3), dtype=np.uint8)
    write_av(folder / "silent.mp4", video, 10.0, None, SR)
    write_av(folder / "short.mp4", video[:3], 10.0, np.zeros(int(0.3 * SR), np.float32), SR)
    write_av(
        folder / "tiny.mkv",
        rng.integers(0, 255, (20, 32, 40, 3), dtype=np.uint8),
        10.0,
        np.zeros(2 * SR, np.float32),
        SR,
    )
    write_av(
        folder / "fast.webm",
        rng.integers(0, 255, (30, 96, 96, 3), dtype=np.uint8),
        300.0,
        np.zeros(SR // 5, np.float32),
        SR,
    )
    return {
        "corrupt.mp4": "cannot_open",
        "empty.mov": "zero_length",
        "loop.mp4": "unreadable",
        "silent.mp4": "no_audio",
        "short.mp4": "too_short",
        "tiny.mkv": "too_small",
        "fast.webm": "absurd_fps",
    }
