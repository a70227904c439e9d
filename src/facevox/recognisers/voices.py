"""Speaker identity embeddings with resemblyzer's bundled encoder (256-d, 16 kHz input)."""

from __future__ import annotations

import functools
import warnings

import numpy as np

SAMPLE_RATE = 16_000


@functools.cache
def _encoder():  # noqa: ANN202 - resemblyzer object
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # webrtcvad imports pkg_resources
            from resemblyzer import VoiceEncoder
    except ImportError as err:
        raise RuntimeError("resemblyzer is not installed: pip install resemblyzer 'setuptools<81'") from err
    return VoiceEncoder("cpu", verbose=False)


def voice_embedding(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """L2-normalised speaker embedding (256,) of mono ``audio`` at 16 kHz."""
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"resemblyzer expects {SAMPLE_RATE} Hz audio, got {sample_rate} Hz: resample first")
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1 or audio.size < SAMPLE_RATE // 4:
        raise ValueError(f"need at least 0.25 s of mono audio, got shape {audio.shape}")
    from resemblyzer import preprocess_wav

    wav = preprocess_wav(audio, source_sr=SAMPLE_RATE)
    if wav.size < SAMPLE_RATE // 4:  # preprocess trims silence; fall back to the raw signal
        wav = audio
    return _encoder().embed_utterance(wav).astype(np.float32)
