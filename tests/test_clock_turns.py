"""One audio-video clock and timed turns (issue: time and turns).

Every token's position comes from seconds; turn spans reach the model as a per-token speaker mask;
scripts carry times or get them planned; bad times are refused before anything heavy runs.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from facevox.alignment import MAX_FPS, MIN_FPS, Alignment, Clock, ClockError, speaking_mask
from facevox.models import DualTowerDiT, get_config
from facevox.models.inputs import ModalityInput
from facevox.models.positions import audio_positions


def _clock_for(fps: float) -> tuple[Clock, int]:
    """The tiny world's codecs (x4 time, 16 kHz, 640 samples per audio latent) at ``fps``; returns the
    clock and the training window in frames (~1 s)."""
    frames = 1 + 4 * round(fps / 4)
    a = Alignment(fps=fps, num_frames=frames, height=64, width=64, sample_rate=16000, audio_hop=640)
    return a.clock, frames


@pytest.mark.parametrize("fps", [24.0, 25.0, 30.0])
@pytest.mark.parametrize("times", [1, 2, 4])
def test_audio_positions_land_on_their_video_time(fps: float, times: int) -> None:
    clock, window = _clock_for(fps)
    cfg = dataclasses.replace(get_config("tiny"), clock=clock, rope_time_scale=clock.rope_time_scale)
    frames = 1 + (window - 1) * times  # 1x, 2x, 4x the training length
    seconds = frames / fps
    Na = int(seconds * clock.audio_token_rate)
    pos = audio_positions(1, Na, cfg.rope_time_scale, torch.device("cpu"))[0].double()
    # the video position of the instant each audio token starts: seconds / seconds-per-latent-frame
    truth = clock.audio_token_seconds(Na) / clock.latent_seconds
    err = (pos - truth).abs().max().item()
    assert err < 0.5, f"{fps} fps x{times}: audio token off its video time by {err:.3f} latent frames"
    # and the video latent frames sit at their own start times on the same axis
    T = 1 + (frames - 1) // 4
    assert torch.allclose(clock.video_frame_seconds(T) / clock.latent_seconds, torch.arange(T).double())


def test_the_old_per_size_constant_drifts() -> None:
    """What the clock replaces: 0.28 per audio token at 25 fps is 0.75 latent frames off after 1 s."""
    clock, _ = _clock_for(25.0)
    Na = 4 * 25
    drift = (torch.arange(Na) * 0.28 - clock.audio_token_seconds(Na) / clock.latent_seconds).abs().max()
    assert drift > 0.5


def test_release_sizes_keep_the_release_constant() -> None:
    assert get_config("iap-5b").rope_time_scale == pytest.approx(0.19676, abs=1e-6)
    assert get_config("iap-5b").clock is None and not get_config("iap-5b").turn_embedding


def test_clock_bounds_and_consistency() -> None:
    for fps in (MIN_FPS, MAX_FPS):
        Clock(fps=fps, audio_token_rate=25.0)
    for fps in (MIN_FPS - 1, MAX_FPS + 1):
        with pytest.raises(ClockError, match="fps"):
            Clock(fps=fps, audio_token_rate=25.0)
    with pytest.raises(ValueError, match="disagrees with its clock"):
        dataclasses.replace(get_config("tiny"), rope_time_scale=0.28)


def test_speaking_mask_marks_tokens_inside_turns() -> None:
    clock = Clock(fps=25.0, audio_token_rate=25.0)
    sec = clock.audio_token_seconds(25)
    m = speaking_mask([(0, 0.0, 0.4), (1, 0.3, 1.0)], sec, 1 / 25, 2)
    assert m.shape == (25, 2)
    assert m[:10, 0].all() and not m[10:, 0].any()  # tokens 0..9 = 0.00-0.40 s
    assert m[8:, 1].all() and not m[:7, 1].any()  # overlap: both marked on 0.32-0.40 s
    with pytest.raises(ValueError, match="slot 2"):
        speaking_mask([(2, 0.0, 1.0)], sec, 1 / 25, 2)


def _inputs(
    speak_v: torch.Tensor | None, speak_a: torch.Tensor | None
) -> tuple[ModalityInput, ModalityInput]:
    g = torch.Generator().manual_seed(0)
    ctx, mask = torch.randn(1, 5, 16, generator=g), torch.ones(1, 5, dtype=torch.bool)
    v = ModalityInput(
        latents=torch.randn(1, 4, 3, 4, 4, generator=g),
        timesteps=torch.tensor([0.5]),
        context=ctx,
        context_mask=mask,
        speaking=speak_v,
    )
    a = ModalityInput(
        latents=torch.randn(1, 12, 6, generator=g),
        timesteps=torch.tensor([0.5]),
        context=ctx,
        context_mask=mask,
        speaking=speak_a,
    )
    return v, a


def test_the_model_hears_who_speaks_when() -> None:
    cfg = get_config("debug")
    assert cfg.turn_embedding and cfg.clock is not None
    torch.manual_seed(0)
    model = DualTowerDiT(cfg).eval()
    sv = torch.zeros(1, 3, 2, dtype=torch.bool)
    sa = torch.zeros(1, 12, 2, dtype=torch.bool)
    sa[0, :6, 0] = sa[0, 6:, 1] = True
    sv[0, :2, 0] = sv[0, 2:, 1] = True
    with torch.no_grad():
        base = model(*_inputs(None, None))
        none = model(*_inputs(torch.zeros_like(sv), torch.zeros_like(sa)))
        turns = model(*_inputs(sv, sa))
        swapped = model(*_inputs(sv.flip(-1), sa.flip(-1)))
    assert torch.equal(base.audio, none.audio)  # nobody speaking adds nothing
    assert not torch.allclose(turns.audio, base.audio)
    assert not torch.allclose(turns.audio, swapped.audio)  # which person speaks matters
    plain = DualTowerDiT(dataclasses.replace(cfg, turn_embedding=False))
    with pytest.raises(ValueError, match="no turn embedding"):
        plain(*_inputs(sv, sa))
    with pytest.raises(ValueError, match="speaking has 4 tokens"):
        model(*_inputs(sv, sa[:, :4]))


def _request(tmp_path, script, duration: float = 2.0):
    from facevox.pipeline.request import GenerationRequest, Person

    people = []
    for name in ("alice", "bob"):
        (tmp_path / f"{name}.png").write_bytes(b"x")
        (tmp_path / f"{name}.wav").write_bytes(b"x")
        people.append(
            Person(name=name, faces=(str(tmp_path / f"{name}.png"),), voice=str(tmp_path / f"{name}.wav"))
        )
    return GenerationRequest(name="r", people=tuple(people), script=script, duration=duration)


def test_timed_scripts_keep_their_times_and_untimed_ones_are_planned(tmp_path) -> None:
    from facevox.pipeline.request import structured_caption

    caption, turns = structured_caption(_request(tmp_path, "[alice 0.1-0.9] hi there [bob 0.8-1.9] hello"))
    assert [(t["slot"], t["start"], t["end"], t["planned"]) for t in turns] == [
        (0, 0.1, 0.9, False),
        (1, 0.8, 1.9, False),
    ]
    assert [(s["start"], s["end"]) for s in caption["speech"]] == [(0.1, 0.9), (0.8, 1.9)]
    _, planned = structured_caption(_request(tmp_path, "[alice] one two three [bob] four"))
    assert all(t["planned"] for t in planned) and planned[-1]["end"] == pytest.approx(2.0)
    timed_caption = {**caption, "speech": [{"slot": 2, "start": 0.5, "end": 1.5, "text": "yes"}]}
    _, from_caption = structured_caption(_request(tmp_path, timed_caption))
    assert (from_caption[0]["start"], from_caption[0]["end"], from_caption[0]["planned"]) == (0.5, 1.5, False)


_CAPTION = {
    "scene": {"shot": "medium shot", "lighting": "soft", "background": "grey"},
    "subjects": [
        {"slot": 1, "position": "left", "appearance": "a person"},
        {"slot": 2, "position": "right", "appearance": "a person"},
    ],
    "speech": [],
}


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("[alice 0.5-3.0] too long", "past the clip"),
        ("[alice 0.9-0.5] backwards", "must be >= 0 and < end"),
        ("[alice 0.0-1.0] one [alice 0.5-1.5] two", "turns of 'alice' overlap"),
        ("[alice 0.0-1.0] one [bob] two", "every turn of the script or for none"),
        ("[alice 0.a-1] one", "write \\[name\\] or \\[name START-END\\]"),
        ("[carol 0-1] one", "names \\['carol'\\]"),
        ({**_CAPTION, "speech": [{"slot": 3, "text": "x"}]}, "speech\\[0\\] names slot 3"),
        (
            {**_CAPTION, "speech": [{"slot": 1, "text": "x", "start": "soon"}]},
            "speech\\[0\\].start must be seconds",
        ),
        ({**_CAPTION, "scene": {}}, "scene.shot must be a string"),
        ({**_CAPTION, "subjects": _CAPTION["subjects"][:1]}, "1 subjects but 2 people"),
    ],
)
def test_impossible_turn_times_are_refused(tmp_path, script, message) -> None:
    from facevox.pipeline.request import RequestError, structured_caption

    with pytest.raises(RequestError, match=message):
        structured_caption(_request(tmp_path, script))
