"""The voice bar: does resemblyzer tell our synthetic voices apart on different sentences?"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from facevox.evaluation.verification import equal_error_rate, pair_scores
from facevox.recognisers.voices import voice_embedding
from facevox.synth.voice import sample_voice, synthesize
from facevox.synth.words import random_sentence


def voice_verification_eer(
    num_voices: int = 50, utterances_per_voice: int = 4, seed: int = 7_000, sample_rate: int = 16_000
) -> dict[str, Any]:
    """Resemblyzer verification EER over fresh voices, each utterance a different random sentence.

    Voices are drawn from their own seed stream, apart from any world (held out by construction).
    """
    if num_voices < 2 or utterances_per_voice < 2:
        raise ValueError("need at least 2 voices and 2 utterances per voice")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 77]))
    embs, labels = [], []
    seconds = synth_time = 0.0
    for i in tqdm(range(num_voices), desc="voice bar", unit="voice"):
        voice = sample_voice(rng)
        for _ in range(utterances_per_voice):
            text = random_sentence(rng, 6, 10)
            t = time.perf_counter()
            audio = synthesize(voice, text, sample_rate)
            synth_time += time.perf_counter() - t
            seconds += len(audio) / sample_rate
            embs.append(voice_embedding(audio, sample_rate))
            labels.append(i)
    same, diff = pair_scores(np.array(embs), np.array(labels), "cosine")
    eer, thr = equal_error_rate(same, diff)
    return {
        "voices": num_voices,
        "utterances_per_voice": utterances_per_voice,
        "eer": eer,
        "threshold": thr,
        "mean_same_similarity": float(same.mean()),
        "mean_different_similarity": float(diff.mean()),
        "speech_seconds": round(seconds, 1),
        "synthesis_realtime_factor": round(seconds / max(synth_time, 1e-9), 1),
    }
