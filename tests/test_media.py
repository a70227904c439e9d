from pathlib import Path

import numpy as np
import pytest

from facevox.io.atomic import atomic_path
from facevox.io.media import MediaError, read_audio, read_av, write_av


def _clip(t: int = 25, h: int = 64, w: int = 80) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.stack([((np.sin(xx / 7 + i / 3) + 1) * 100 + yy).clip(0, 255) for i in range(t)]).astype(
        np.uint8
    )
    video = np.repeat(frames[..., None], 3, -1)
    sr = 16_000
    s = np.arange(t * sr // 25) / sr
    audio = (0.4 * np.sin(2 * np.pi * 330 * s) * (s > 0.3) + 0.01 * rng.normal(size=s.shape)).astype(
        np.float32
    )
    return video, audio


def test_mp4_round_trip(tmp_path: Path) -> None:
    video, audio = _clip()
    path = write_av(tmp_path / "a.mp4", video, 25, audio, 16_000)
    clip = read_av(path)
    assert clip.video.shape == video.shape and clip.fps == 25
    assert np.abs(clip.video.astype(float) - video).mean() < 3.0  # H.264 at crf 20
    assert clip.audio is not None and clip.audio.shape == audio.shape
    assert np.corrcoef(clip.audio, audio)[0, 1] > 0.99  # AAC priming trimmed: aligned to the sample
    onset = int(np.argmax(np.abs(clip.audio) > 0.2))
    assert abs(onset - int(0.3 * 16_000)) < 40


def test_write_is_atomic_and_validates(tmp_path: Path) -> None:
    video, audio = _clip()
    with pytest.raises(MediaError, match="even"):
        write_av(tmp_path / "odd.mp4", video[:, :63], 25, audio, 16_000)
    assert not list(tmp_path.iterdir())  # nothing half-written is left behind
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.bin") as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert not (tmp_path / "x.bin").exists() and not list(tmp_path.iterdir())


def test_corrupt_and_missing_streams(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(MediaError, match="cannot open"):
        read_av(bad)
    video, _ = _clip()
    silent = write_av(tmp_path / "silent.mp4", video, 25, None, 16_000)
    assert read_av(silent).audio is None
    with pytest.raises(MediaError, match="no audio"):
        read_audio(silent)
