"""Transcripts: sidecar subtitles (.srt/.vtt) when present, else a pluggable ASR backend.

Backends implement :class:`AsrBackend` (``load()`` once, ``transcribe(audio)`` per segment).
``pocketsphinx`` ships an en-US model and is the offline default (weak on synthetic speech; its
WER is the floor, not the goal); ``whisper`` loads a faster-whisper / openai-whisper model from a
local folder the user provides (no download: a missing folder is an error that says so).
Audio is (S,) float32 mono at 16 kHz.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from facevox.curate.config import AsrConfig
from facevox.curate.records import ClipWork
from facevox.curate.step import Drop, Resources

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cue:
    start: float  # seconds
    end: float
    text: str


_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})")


def _seconds(stamp: str) -> float:
    m = _TIME.fullmatch(stamp.strip())
    if not m:
        raise ValueError(f"bad timestamp {stamp!r}")
    h, mi, s, ms = m.groups()
    return int(h or 0) * 3600 + int(mi) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def parse_subtitles(path: str | Path) -> list[Cue]:
    """Cues of an .srt or .vtt file; raises ValueError when the file is unreadable or holds no cue."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path.name}: cannot read ({err})") from err
    cues = []
    for block in re.split(r"\r?\n\s*\r?\n", text.strip()):
        lines = [ln for ln in block.splitlines() if ln.strip()]
        for i, line in enumerate(lines):
            if "-->" not in line:
                continue
            left, right = line.split("-->", 1)
            try:
                start, end = _seconds(left), _seconds(right.split()[0] if right.split() else "")
            except ValueError as err:
                raise ValueError(f"{path.name}: {err}") from err
            words = re.sub(r"<[^>]+>", "", " ".join(lines[i + 1 :])).strip()
            if end > start and words:
                cues.append(Cue(start, end, words))
            break
    if not cues:
        raise ValueError(f"{path.name}: no subtitle cue found")
    return cues


class AsrBackend(Protocol):
    name: str

    def load(self) -> None: ...

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str: ...


class PocketsphinxBackend:
    """CMU pocketsphinx with its bundled en-US acoustic model, dictionary and language model."""

    name = "pocketsphinx"

    def load(self) -> None:
        from pocketsphinx import Config, Decoder

        # narrower beams and frame downsampling: ~10x faster than the defaults on a 2-core CPU for a
        # small WER change on our clips (both are poor on synthetic speech)
        config = Config(
            samprate=16_000,
            loglevel="FATAL",
            beam=1e-20,
            wbeam=1e-15,
            maxhmmpf=3000,
            pl_window=5,
            topn=2,
            ds=2,
        )
        self._decoder = Decoder(config)

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        if sample_rate != 16_000:
            raise ValueError(f"pocketsphinx expects 16 kHz audio, got {sample_rate} Hz")
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return " ".join(w for w in (hyp.hypstr if hyp else "").split() if not w.startswith("<"))


class WhisperLocalBackend:
    """A Whisper-family model from a local folder: faster-whisper (CTranslate2 folder) or openai-whisper
    (a ``.pt`` file). Nothing is downloaded."""

    name = "whisper"

    def __init__(self, model_dir: str) -> None:
        self.model_dir = model_dir

    def load(self) -> None:
        path = Path(self.model_dir)
        if not self.model_dir or not path.exists():
            raise ValueError(
                f"asr.whisper_model_dir={self.model_dir!r} is not a local folder or file with a model"
            )
        try:
            from faster_whisper import WhisperModel

            self._model, self._kind = WhisperModel(str(path), device="cpu", compute_type="int8"), "faster"
            return
        except ImportError:
            pass
        try:
            import whisper
        except ImportError as err:
            raise RuntimeError("neither faster-whisper nor openai-whisper is installed") from err
        self._model, self._kind = whisper.load_model(str(path), device="cpu"), "openai"

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        if sample_rate != 16_000:
            raise ValueError(f"whisper expects 16 kHz audio, got {sample_rate} Hz")
        if self._kind == "faster":
            segments, _info = self._model.transcribe(audio.astype(np.float32), language="en")
            return " ".join(s.text.strip() for s in segments)
        return str(
            self._model.transcribe(audio.astype(np.float32), language="en", fp16=False)["text"]
        ).strip()


def make_backend(cfg: AsrConfig) -> AsrBackend | None:
    if cfg.backend == "pocketsphinx":
        return PocketsphinxBackend()
    if cfg.backend == "whisper":
        return WhisperLocalBackend(cfg.whisper_model_dir)
    return None


class Transcribe:
    """Fill ``SpeechSegment.text``: subtitle cues overlapping the segment, else ASR of its audio."""

    name = "transcripts"
    resources = Resources(cpus=1.0, memory_mb=256)

    def __init__(self, cfg: AsrConfig) -> None:
        self.backend = make_backend(cfg)
        self.use_subtitles = cfg.use_subtitles

    def setup(self) -> None:
        if self.backend is not None:
            self.backend.load()

    def process(self, work: ClipWork) -> ClipWork | Drop:
        cues: list[Cue] = []
        if work.subtitle and self.use_subtitles:
            try:
                cues = parse_subtitles(work.subtitle)
            except ValueError as err:
                work.excluded.append(
                    Drop(
                        stage=self.name,
                        reason="unreadable_subtitle",
                        detail=str(err),
                        item=f"subtitle:{Path(work.subtitle).name}",
                    )
                )
        assert work.audio is not None
        sr = work.sample_rate
        for seg in work.segments:
            if cues:
                words = [
                    c.text
                    for c in cues
                    if c.start < seg.end and seg.start < c.end and _mid_in(c, seg.start, seg.end)
                ]
                seg.text, seg.text_source = " ".join(words), f"subtitle:{Path(work.subtitle).name}"
            elif self.backend is not None:
                seg.text = self.backend.transcribe(work.audio[int(seg.start * sr) : int(seg.end * sr)], sr)
                seg.text_source = f"asr:{self.backend.name}"
        return work


def _mid_in(cue: Cue, start: float, end: float) -> bool:
    mid = (cue.start + cue.end) / 2
    return start <= mid < end
