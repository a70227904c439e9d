"""The alignment object: token counts and the RoPE time scale."""

from __future__ import annotations

import pytest

from facevox.alignment import Alignment, get_alignment


def test_ovi_preset_matches_the_release() -> None:
    a = get_alignment("iap-5b")
    a.self_test()
    assert a.latent_frames == 31
    assert a.video_grid == (31, 22, 40) and a.video_tokens == 27280
    assert a.audio_tokens == 157
    assert a.release_time_scale == pytest.approx(0.19676, abs=1e-5)  # Ovi's audio.json
    assert a.rope_time_scale == pytest.approx(0.192)  # the seconds clock: (24 / 4) / 31.25
    assert a.reference_tokens(512, 512) == 256
    assert a.audio_tokens_for(6.0) == 187


def test_tiny_preset() -> None:
    a = get_alignment("tiny")
    a.self_test()
    assert a.latent_frames == 7 and a.video_grid == (7, 4, 4)
    assert a.audio_tokens == 25 and a.audio_latent_rate == 25.0
    assert a.rope_time_scale == pytest.approx(0.25)  # 25 audio tokens/s, 6.25 latent frames/s


def test_bad_geometry_is_rejected() -> None:
    with pytest.raises(ValueError, match="1 \\+ k"):
        Alignment(fps=25, num_frames=24, height=64, width=64, sample_rate=16000)
    with pytest.raises(ValueError, match="height"):
        Alignment(fps=25, num_frames=25, height=60, width=64, sample_rate=16000)
    with pytest.raises(ValueError, match="unknown alignment"):
        get_alignment("nope")
