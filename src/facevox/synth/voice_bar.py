"""The voice bar: does resemblyzer tell our synthetic voices apart on different sentences?

Issue 2's bar is a resemblyzer verification EER <= 10% over >= 50 held-out voices, every
utterance a different random sentence. Scores are cosine similarities over all same-voice and
different-voice utterance pairs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from facevox.evaluation.verification import equal_error_rate, pair_scores
from facevox.recognisers.voices import voice_embedding
from facevox.synth.voice import VoiceIdentity, sample_voice, synthesize
from facevox.synth.words import random_sentence

WORDS_PER_UTTERANCE = (5, 9)  # mostly 2-4 s at the sampled 135-185 words per minute
UTTERANCE_SECONDS = (2.0, 4.0)  # sentences outside this are redrawn (up to MAX_DRAWS times)
MAX_DRAWS = 20


def utterance(
    voice: VoiceIdentity, rng: np.random.Generator, sample_rate: int = 16_000
) -> tuple[str, np.ndarray]:
    """A fresh random sentence that ``voice`` speaks in 2-4 s, and its (S,) audio."""
    lo, hi = UTTERANCE_SECONDS
    for _ in range(MAX_DRAWS):
        text = random_sentence(rng, *WORDS_PER_UTTERANCE)
        audio = synthesize(voice, text, sample_rate)
        if lo <= len(audio) / sample_rate <= hi:
            break
    return text, audio


def held_out_voices(num_voices: int, seed: int) -> list[VoiceIdentity]:
    """``num_voices`` fresh voices from their own seed stream, apart from any world."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 77]))
    return [sample_voice(rng) for _ in range(num_voices)]


def verification_eer(
    voices: Sequence[VoiceIdentity],
    utterances_per_voice: int = 4,
    seed: int = 7_000,
    sample_rate: int = 16_000,
) -> dict[str, Any]:
    """Resemblyzer verification EER of ``voices``, each utterance a different random sentence."""
    if len(voices) < 2 or utterances_per_voice < 2:
        raise ValueError(
            f"need >= 2 voices and >= 2 utterances per voice, got {len(voices)}, {utterances_per_voice}"
        )
    rng = np.random.default_rng(np.random.SeedSequence([seed, 78]))
    embs, labels, durations = [], [], []
    synth_time = 0.0
    for i, voice in enumerate(tqdm(voices, desc="voice bar", unit="voice")):
        for _ in range(utterances_per_voice):
            t = time.perf_counter()
            _, audio = utterance(voice, rng, sample_rate)
            synth_time += time.perf_counter() - t
            durations.append(len(audio) / sample_rate)
            embs.append(voice_embedding(audio, sample_rate))  # (256,)
            labels.append(i)
    same, diff = pair_scores(np.stack(embs), np.array(labels), "cosine")
    eer, thr = equal_error_rate(same, diff)
    dur = np.array(durations)
    return {
        "voices": len(voices),
        "utterances_per_voice": utterances_per_voice,
        "same_pairs": int(same.size),
        "different_pairs": int(diff.size),
        "eer": eer,
        "threshold": thr,
        "mean_same_similarity": float(same.mean()),
        "mean_different_similarity": float(diff.mean()),
        "utterance_seconds_min_median_max": [round(float(q), 2) for q in np.percentile(dur, [0, 50, 100])],
        "speech_seconds": round(float(dur.sum()), 1),
        "synthesis_realtime_factor": round(float(dur.sum()) / max(synth_time, 1e-9), 1),
    }


def voice_verification_eer(
    num_voices: int = 50, utterances_per_voice: int = 4, seed: int = 7_000, sample_rate: int = 16_000
) -> dict[str, Any]:
    """The bar: verification EER over ``num_voices`` fresh voices drawn with :func:`sample_voice`."""
    if num_voices < 2:
        raise ValueError(f"need at least 2 voices, got {num_voices}")
    return verification_eer(held_out_voices(num_voices, seed), utterances_per_voice, seed, sample_rate)
