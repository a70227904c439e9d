"""A corrupt corpus for the curation pipeline: a few good talking clips among many odd or broken files.

:func:`build_corpus` writes ``ROOT/good/`` (the good clips alone) and ``ROOT/corrupt/`` (the same
clips, byte for byte, among the odd and broken files) and returns what each file of ``corrupt/`` is
and what curation must do with it. The odd-but-valid files (rotation, variable frame rate, 4K,
8 kHz 8-bit audio) hold no face, so they add no person and no reference candidate: the good clips'
samples must come out exactly as from ``good/`` alone.
"""

from __future__ import annotations

import io
import shutil
import wave
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from curate_fixtures import SR, bad_inputs, talking_clip

KEPT = "kept"  # the outcome of a file curation must process (a good clip or an odd but valid one)
GOOD = "good talking clip"


@dataclass(frozen=True)
class CorpusFile:
    name: str  # path relative to the corrupt folder
    kind: str  # what is odd or broken about it, in words
    expect: str  # KEPT, or the probe's reason for dropping the whole file


def _encode(
    path: Path,
    video: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    *,
    sample_rate: int = SR,
    audio_codec: str = "aac",
    audio_format: str = "fltp",
    pts_ms: list[int] | None = None,
    rotation: int = 0,
    options: dict[str, str] | None = None,
) -> None:
    """H.264 video (T, H, W, 3 uint8) with optional mono audio; ``pts_ms`` gives each frame its own
    presentation time (variable frame rate), ``rotation`` a display matrix (counter-clockwise)."""
    with av.open(str(path), "w", options=options or {}) as container:
        vs = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
        vs.codec_context.thread_count = 1  # byte-identical files from run to run
        if pts_ms is not None:
            vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            vs.set_display_rotation(rotation)
        astream = None
        if audio is not None:
            astream = container.add_stream(audio_codec, rate=sample_rate)
            astream.layout = "mono"
        for i, img in enumerate(video):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            container.mux(vs.encode(frame))
        container.mux(vs.encode())
        if astream is not None and audio is not None:
            for start in range(0, audio.shape[0], 1024):
                block = np.ascontiguousarray(audio[None, start : start + 1024])  # (1, S)
                af = av.AudioFrame.from_ndarray(block, format=audio_format, layout="mono")
                af.sample_rate, af.pts = sample_rate, start
                container.mux(astream.encode(af))
            container.mux(astream.encode())


def faceless_video(frames: int, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8: a smooth colour ramp whose brightness steps with the frame index (each
    frame tells which it is: red = 10 * index), and no face for the detector to find."""
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :]  # (1, W)
    video = np.empty((frames, height, width, 3), np.uint8)
    for i in range(frames):
        video[i, :, :, 0] = 10 * i % 256
        video[i, :, :, 1] = ramp.astype(np.uint8)
        video[i, :, :, 2] = 128
    return video


def tone(seconds: float, sample_rate: int = SR, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def good_clips(folder: Path) -> list[str]:
    """The three talking clips of the curation tests (one astronaut, flipped in b), with c's subtitle."""
    talking_clip(folder / "a.mp4", [(0.3, "hello there my friend"), (2.2, "how are you doing today")], 4.0)
    talking_clip(folder / "sub" / "b.mp4", [(0.4, "the weather is very nice")], 3.0, flip=True)
    talking_clip(folder / "c.mov", [(0.2, "good morning to you all"), (1.9, "see you again soon")], 3.5)
    (folder / "c.srt").write_text("1\n00:00:00,200 --> 00:00:01,700\ngood morning to you all\n")
    return ["a.mp4", "sub/b.mp4", "c.mov"]


def audio_8k_u8(path: Path) -> None:
    """2 s of video with a 440 Hz tone as 8-bit unsigned PCM at 8 kHz (mov)."""
    u8 = np.round(tone(2.0, 8000) * 127 + 128).astype(np.uint8)
    video = faceless_video(20, 96, 128)
    _encode(path, video, 10.0, u8, sample_rate=8000, audio_codec="pcm_u8", audio_format="u8")


def odd_files(folder: Path) -> list[CorpusFile]:
    """Odd but valid files, which curation decodes as a player shows them."""
    folder.mkdir(parents=True, exist_ok=True)
    _encode(folder / "rotated.mp4", faceless_video(20, 96, 128), 10.0, tone(2.0), rotation=90)
    rng = np.random.default_rng(1)
    pts = np.cumsum([0, *rng.choice([33, 100, 200], 19)]).tolist()  # frames 33 to 200 ms apart
    _encode(folder / "vfr.mp4", faceless_video(20, 96, 128), 10.0, tone(2.5), pts_ms=pts)
    _encode(folder / "uhd_4k.mp4", faceless_video(12, 2160, 3840), 10.0, tone(1.2))
    audio_8k_u8(folder / "audio_8k_u8.mov")
    return [
        CorpusFile("rotated.mp4", "rotation metadata (display matrix, 90 degrees)", KEPT),
        CorpusFile("vfr.mp4", "variable frame rate (frames 33-200 ms apart)", KEPT),
        CorpusFile("uhd_4k.mp4", "4K frames (3840x2160, 12 frames)", KEPT),
        CorpusFile("audio_8k_u8.mov", "8 kHz 8-bit mono audio (PCM u8 in mov)", KEPT),
    ]


def broken_files(folder: Path, clip: Path) -> list[CorpusFile]:
    """Broken files, several cut or damaged from the good clip ``clip`` (an mp4, moov at the end)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = clip.read_bytes()
    (folder / "truncated_no_index.mp4").write_bytes(data[: len(data) * 6 // 10])
    video, audio = faceless_video(20, 96, 128), tone(2.0)
    faststart = folder / ".faststart.mp4"
    _encode(faststart, video, 10.0, audio, options={"movflags": "faststart"})  # the index first
    fast = faststart.read_bytes()
    faststart.unlink()
    (folder / "truncated_half.mp4").write_bytes(fast[: len(fast) // 2])
    (folder / "truncated_tail.mp4").write_bytes(fast[: len(fast) * 97 // 100])
    (folder / "zero_length.mp4").write_bytes(b"")
    _encode(folder / "zero_length_audio.mp4", video, 10.0, np.zeros(0, np.float32))
    _encode(folder / "one_frame.mp4", video[:1], 10.0, audio)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(np.round(tone(2.0, 8000) * 127 + 128).astype(np.uint8).tobytes())
    (folder / "wav_8k_u8.mp4").write_bytes(buf.getvalue())
    unknown = bytearray(data)
    at = unknown.index(b"avc1", unknown.index(b"stsd"))  # the sample entry's codec, not the brand
    unknown[at : at + 4] = b"zzzz"
    (folder / "unknown_codec.mp4").write_bytes(bytes(unknown))
    garbage = bytearray(data)
    at = garbage.index(b"mdat") + 8
    end = garbage.index(b"moov") - 8
    garbage[at:end] = np.random.default_rng(2).integers(0, 256, end - at, dtype=np.uint8).tobytes()
    (folder / "garbage_stream.mp4").write_bytes(bytes(garbage))
    (folder / "text.mp4").write_text("not a video, only text named like one\n")
    (folder / "folder.mp4").mkdir(exist_ok=True)
    files = [
        CorpusFile("truncated_no_index.mp4", "truncated mp4 (cut at 60 %, index at the end)", "cannot_open"),
        CorpusFile("truncated_half.mp4", "truncated mp4 (cut at 50 %, index first)", "truncated"),
        CorpusFile("truncated_tail.mp4", "truncated mp4 (cut at 97 %, index first)", "decode_failed"),
        CorpusFile("zero_length.mp4", "zero-length file", "zero_length"),
        CorpusFile("zero_length_audio.mp4", "zero-length audio (no audio sample written)", "no_audio"),
        CorpusFile("one_frame.mp4", "one-frame video", "too_short"),
        CorpusFile("wav_8k_u8.mp4", "8 kHz 8-bit mono WAV named .mp4", "no_video"),
        CorpusFile("unknown_codec.mp4", "unknown codec (sample entry 'zzzz')", "unknown_codec"),
        CorpusFile("garbage_stream.mp4", "garbage video payload, index intact", "decode_failed"),
        CorpusFile("text.mp4", "a text file named .mp4", "cannot_open"),
        CorpusFile("folder.mp4", "a directory named .mp4", "unreadable"),
    ]
    kinds = {
        "corrupt.mp4": "random bytes after an mp4 header",
        "empty.mov": "zero-length mov",
        "loop.mp4": "a symlink to itself",
        "silent.mp4": "no audio stream",
        "short.mp4": "0.3 s long",
        "tiny.mkv": "40x32 pixels",
        "fast.webm": "300 fps",
    }
    for name, reason in bad_inputs(folder / "older").items():
        files.append(CorpusFile(f"older/{name}", kinds[name], reason))
    return files


def build_corpus(root: Path) -> tuple[list[str], list[CorpusFile]]:
    """``root/good`` (the good clips) and ``root/corrupt`` (the same clips among the odd and broken
    files): returns the good clips' names and every file of ``corrupt/`` with what is expected."""
    good = good_clips(root / "good")
    corrupt = root / "corrupt"
    shutil.copytree(root / "good", corrupt)
    files = [CorpusFile(name, GOOD, KEPT) for name in good]
    files += [replace(f, name=f"odd/{f.name}") for f in odd_files(corrupt / "odd")]
    files += [
        replace(f, name=f"broken/{f.name}") for f in broken_files(corrupt / "broken", corrupt / "a.mp4")
    ]
    return good, files
