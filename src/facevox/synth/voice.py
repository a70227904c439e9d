"""Procedural voices: Debian ``espeak-ng`` voices x variants x pitch x speed, reshaped with ``sox``.

A voice identity is an espeak-ng accent (``en-us``, ``en-gb-scotland``, …) and variant
(formant/voicing preset such as ``m3`` or ``f2``), a base pitch, intonation range and speed, a
``sox`` post-chain that moves the whole spectrum (``pitch``, which shifts formants with the pitch)
and tilts it (``bass``/``treble``), and a breath-noise level. espeak's own ``-p`` then sets the
fundamental independently of that spectral shift, so formant scale and pitch vary separately, as
they do between people. Breath noise is high-passed white noise that follows the speech envelope,
seeded from the voice and the text so that synthesis stays deterministic.

Output: float32 mono in [-1, 1] at the requested sample rate; the same voice and text always give
the same samples.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from scipy import signal

from facevox import config

ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
MALE_VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "m8",
    "adam",
    "david",
    "john",
    "max",
    "paul",
    "rob",
    "robert",
    "travis",
    "victor",
    "benjamin",
    "edward",
    "norbert",
    "quincy",
    "sandro",
)
FEMALE_VARIANTS = (
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "Alicia",
    "Annie",
    "belinda",
    "linda",
    "steph",
    "shelby",
    "anika",
)


class VoiceToolError(RuntimeError):
    """espeak-ng or sox is missing or failed."""


@dataclass(frozen=True, kw_only=True)
class VoiceIdentity:
    """Everything that makes a voice a particular person (constant across utterances)."""

    accent: str  # espeak-ng voice, e.g. "en-us"
    variant: str  # espeak-ng variant, e.g. "m3", "f2"
    pitch: int  # espeak -p, 0..99
    speed: int  # espeak -s, words per minute
    spectral_shift: int  # sox pitch shift in cents (moves formants and pitch together)
    bass: float  # sox bass gain in dB at 200 Hz
    treble: float  # sox treble gain in dB at 3 kHz
    pitch_range: int = 50  # espeak intonation range (SSML prosody range), 0..100, 50 = espeak default
    breathiness: float = 0.0  # breath-noise RMS relative to the local speech RMS, 0 = none

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VoiceIdentity:
        """Strict inverse of :meth:`to_dict` (unknown keys and wrong types are errors)."""
        return config.from_dict(cls, data)

    @property
    def espeak_voice(self) -> str:
        return f"{self.accent}+{self.variant}"


def sample_voice(rng: np.random.Generator) -> VoiceIdentity:
    """Draw a random voice: accent, variant, pitch, speed and timbre are independent draws."""
    female = bool(rng.random() < 0.5)
    variants = FEMALE_VARIANTS if female else MALE_VARIANTS
    return VoiceIdentity(
        accent=ACCENTS[int(rng.integers(len(ACCENTS)))],
        variant=variants[int(rng.integers(len(variants)))],
        pitch=int(rng.integers(20, 80)),
        speed=int(rng.integers(135, 186)),
        spectral_shift=int(rng.integers(-250, 251)),
        bass=float(np.round(rng.uniform(-6, 6), 1)),
        treble=float(np.round(rng.uniform(-6, 6), 1)),
        pitch_range=int(rng.integers(25, 91)),
        breathiness=float(np.round(10 ** rng.uniform(-2.0, -1.1), 4)),  # -40 .. -22 dB
    )


@functools.cache
def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise VoiceToolError(f"{name} is not installed: apt-get install -y espeak-ng sox")
    return path


def synthesize(voice: VoiceIdentity, text: str, sample_rate: int = 16_000) -> np.ndarray:
    """Speak ``text`` with ``voice``: (S,) float32 mono at ``sample_rate``."""
    if not text.strip():
        raise ValueError("cannot synthesise empty text")
    if not 0 <= voice.pitch_range <= 100:
        raise ValueError(f"pitch_range must be in 0..100, got {voice.pitch_range}")
    if not 0.0 <= voice.breathiness <= 1.0:
        raise ValueError(f"breathiness must be in [0, 1], got {voice.breathiness}")
    ssml = f'<speak><prosody range="{voice.pitch_range}">{escape(text)}</prosody></speak>'
    espeak = [
        _tool("espeak-ng"),
        "-m",
        "-v",
        voice.espeak_voice,
        "-p",
        str(voice.pitch),
        "-s",
        str(voice.speed),
        "--stdout",
        ssml,
    ]
    try:
        wav = subprocess.run(espeak, capture_output=True, check=True, timeout=60).stdout
    except subprocess.CalledProcessError as err:
        raise VoiceToolError(
            f"espeak-ng failed for voice {voice.espeak_voice}: {err.stderr.decode()[-300:]}"
        ) from err
    sox = [
        _tool("sox"),
        "-D",
        "-q",
        "-t",
        "wav",
        "-",
        "-t",
        "f32",
        "-r",
        str(sample_rate),
        "-c",
        "1",
        "-",
        "pitch",
        str(voice.spectral_shift),
        "bass",
        str(voice.bass),
        "200",
        "treble",
        str(voice.treble),
        "3000",
        "gain",
        "-n",
        "-3",
    ]
    try:
        raw = subprocess.run(sox, input=wav, capture_output=True, check=True, timeout=60).stdout
    except subprocess.CalledProcessError as err:
        raise VoiceToolError(f"sox failed: {err.stderr.decode()[-300:]}") from err
    audio = np.frombuffer(raw, dtype=np.float32).copy()
    if audio.size == 0:
        raise VoiceToolError(f"espeak-ng produced no audio for {text!r} with voice {voice.espeak_voice}")
    if voice.breathiness > 0:
        audio = audio + _breath_noise(audio, sample_rate, voice.breathiness, _noise_seed(voice, text))
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def _noise_seed(voice: VoiceIdentity, text: str) -> int:
    """A process-independent seed from the voice and the text (``hash()`` is salted per process)."""
    key = json.dumps(voice.to_dict(), sort_keys=True) + "\n" + text
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def _breath_noise(audio: np.ndarray, sample_rate: int, level: float, seed: int) -> np.ndarray:
    """(S,) noise above 1.5 kHz whose RMS follows ``level`` x the 20 ms speech RMS of ``audio``."""
    noise = np.random.default_rng(seed).standard_normal(audio.size)
    cutoff = min(1_500.0, 0.4 * sample_rate)
    noise = signal.sosfilt(signal.butter(2, cutoff, "highpass", fs=sample_rate, output="sos"), noise)
    noise /= max(float(np.sqrt(np.mean(noise**2))), 1e-12)
    win = max(1, int(0.02 * sample_rate))
    local_rms = np.sqrt(np.convolve(audio.astype(np.float64) ** 2, np.ones(win) / win, mode="same"))
    return (level * local_rms * noise).astype(np.float32)


def speech_envelope(audio: np.ndarray, sample_rate: int, fps: float) -> np.ndarray:
    """Per-video-frame loudness in [0, 1]: frame RMS over the 95th percentile of voiced frames.

    (T,) with T = floor(len(audio) / (sample_rate / fps)); silence maps to ~0, normal speech to ~1.
    """
    hop = sample_rate / fps
    n = int(len(audio) // hop)
    if n == 0:
        return np.zeros(0, np.float32)
    idx = (np.arange(n + 1) * hop).astype(int)
    sq = np.concatenate([[0.0], np.cumsum(np.asarray(audio, np.float64) ** 2)])
    rms = np.sqrt((sq[idx[1:]] - sq[idx[:-1]]) / np.diff(idx).clip(1))
    voiced = rms[rms > 0.05 * rms.max()] if rms.max() > 0 else rms[:0]
    ref = np.percentile(voiced, 95) if voiced.size else 1.0
    return np.clip(rms / max(ref, 1e-6), 0, 1).astype(np.float32)
