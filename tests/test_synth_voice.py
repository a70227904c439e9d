"""Procedural voices: determinism, distinctness, ranges, envelope, missing tools, the bar (slow)."""

import dataclasses

import numpy as np
import pytest

from facevox.synth import voice as voice_mod
from facevox.synth.voice import VoiceIdentity, VoiceToolError, sample_voice, speech_envelope, synthesize
from facevox.synth.voice_bar import held_out_voices, voice_verification_eer
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
    with pytest.raises(ValueError, match="unknown config key colour"):
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
    assert len(words()) >= 1500 and len(set(words())) == len(words())
    assert all(w.isascii() and w.isalpha() and w.islower() for w in words())
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


BASE = VoiceIdentity(
    accent="en-us", variant="m3", pitch=50, speed=160, spectral_shift=0, bass=0.0, treble=0.0
)


def test_ground_truth_without_newer_fields_still_loads() -> None:
    old = {k: v for k, v in BASE.to_dict().items() if k not in ("pitch_range", "breathiness")}
    assert VoiceIdentity.from_dict(old) == BASE


def test_breathiness_adds_deterministic_high_band_noise() -> None:
    text = "the cat sat on a warm mat"
    clean = synthesize(BASE, text)
    breathy = dataclasses.replace(BASE, breathiness=0.1)
    a, b = synthesize(breathy, text), synthesize(breathy, text)
    assert np.array_equal(a, b) and a.shape == clean.shape
    residual = a - clean
    ratio = np.sqrt(np.mean(residual**2) / np.mean(clean**2))
    assert 0.05 < ratio < 0.15  # noise RMS follows the speech RMS at the chosen level
    spec = np.abs(np.fft.rfft(residual)) ** 2
    freqs = np.fft.rfftfreq(residual.size, 1 / 16_000)
    assert spec[freqs > 1_500].sum() > 4 * spec[freqs < 1_000].sum()
    other = synthesize(breathy, text + " again")
    assert not np.allclose(other[:4000] - synthesize(BASE, text + " again")[:4000], residual[:4000])


def test_pitch_range_changes_intonation_and_is_checked() -> None:
    text = "where are you going with that big blue box"
    flat, wide = (
        synthesize(dataclasses.replace(BASE, pitch_range=10), text),
        synthesize(dataclasses.replace(BASE, pitch_range=90), text),
    )
    n = min(len(flat), len(wide))
    assert not np.allclose(flat[:n], wide[:n], atol=1e-3)
    with pytest.raises(ValueError, match="pitch_range"):
        synthesize(dataclasses.replace(BASE, pitch_range=150), text)


def test_markup_characters_are_spoken_not_parsed() -> None:
    audio = synthesize(BASE, "salt & pepper <please>")
    assert len(audio) / 16_000 > 1.0


def test_sampled_voices_stay_plausible_and_diverse() -> None:
    voices = held_out_voices(400, seed=5)
    assert len(set(voices)) == 400
    assert {v.variant in voice_mod.FEMALE_VARIANTS for v in voices} == {True, False}
    assert len({v.accent for v in voices}) == len(voice_mod.ACCENTS)
    for v in voices:
        assert 20 <= v.pitch < 80 and 135 <= v.speed <= 185  # intelligible rate, no chipmunks
        assert abs(v.spectral_shift) <= 250 and abs(v.bass) <= 6 and abs(v.treble) <= 6
        assert 25 <= v.pitch_range <= 90 and 0.01 <= v.breathiness <= 0.08


def test_verification_eer_counts_pairs() -> None:
    pytest.importorskip("resemblyzer")
    result = voice_verification_eer(num_voices=3, utterances_per_voice=2, seed=1)
    assert result["same_pairs"] == 3 and result["different_pairs"] == 12
    assert 0.0 <= result["eer"] <= 1.0
    assert result["mean_same_similarity"] > result["mean_different_similarity"]
    with pytest.raises(ValueError, match="2 utterances"):
        voice_verification_eer(num_voices=3, utterances_per_voice=1)


@pytest.mark.slow
def test_resemblyzer_separates_fifty_voices() -> None:
    pytest.importorskip("resemblyzer")
    result = voice_verification_eer(num_voices=50, utterances_per_voice=4, seed=123)
    assert result["eer"] <= 0.10, result
    lo, _, hi = result["utterance_seconds_min_median_max"]
    assert lo >= 2.0 and hi <= 4.0, result  # different sentences of 2-4 s
