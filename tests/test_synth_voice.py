"""Procedural voices: determinism, distinctness, ranges, envelope, missing tools, the bar (slow)."""

import numpy as np
import pytest

from facevox.synth import voice as voice_mod
from facevox.synth.voice import VoiceIdentity, VoiceToolError, sample_voice, speech_envelope, synthesize
from facevox.synth.voice_bar import voice_verification_eer
from facevox.synth.words import random_sentence, words


def test_deterministic_and_distinct() -> None:
    rng = np.random.default_rng(1)
    a, b = sample_voice(rng), sample_voice(rng)
    x1 = synthesize(a, "hello there my old friend")
    x2 = synthesize(a, "hello there my old friend")
    y = synthesize(b, "hello there my old friend")
    assert np.array_equal(x1, x2)
    assert x1.dtype == np.float32 and x1.ndim == 1 and np.abs(x1).max() <= 1.0
    assert 0.5 < len(x1) / 16_000 < 5.0
    n = min(len(x1), len(y))
    assert not np.allclose(x1[:n], y[:n], atol=1e-3)
    assert VoiceIdentity.from_dict(a.to_dict()) == a
    with pytest.raises(ValueError, match="unknown voice parameters"):
        VoiceIdentity.from_dict({**a.to_dict(), "colour": 1})


def test_sample_rates() -> None:
    v = sample_voice(np.random.default_rng(2))
    a16, a8 = synthesize(v, "one two three", 16_000), synthesize(v, "one two three", 8_000)
    assert abs(len(a16) / 2 - len(a8)) < 200


def test_envelope_speech_vs_silence() -> None:
    sr, fps = 16_000, 25
    speech = synthesize(
        sample_voice(np.random.default_rng(3)), "a quiet river runs under the old stone bridge"
    )
    signal = np.concatenate([np.zeros(sr, np.float32), speech, np.zeros(sr, np.float32)])
    env = speech_envelope(signal, sr, fps)
    assert env.shape == (len(signal) // (sr // fps),)
    assert env[:20].max() < 0.05 and env[-20:].max() < 0.05
    assert env[25 : 25 + len(speech) * fps // sr].mean() > 0.3


def test_words_and_sentences() -> None:
    assert len(words()) >= 500 and len(set(words())) == len(words())
    s = random_sentence(np.random.default_rng(0), 3, 5)
    assert 3 <= len(s.split()) <= 5 and all(w in words() for w in s.split())
    with pytest.raises(ValueError):
        random_sentence(np.random.default_rng(0), 0, 2)


def test_missing_tools_are_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    voice_mod._tool.cache_clear()
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(VoiceToolError, match="apt-get install"):
        synthesize(sample_voice(np.random.default_rng(0)), "hello")
    voice_mod._tool.cache_clear()


def test_empty_text() -> None:
    with pytest.raises(ValueError, match="empty"):
        synthesize(sample_voice(np.random.default_rng(0)), "  ")


@pytest.mark.slow
def test_resemblyzer_separates_fifty_voices() -> None:
    result = voice_verification_eer(num_voices=50, utterances_per_voice=4, seed=123)
    assert result["eer"] <= 0.10, result
