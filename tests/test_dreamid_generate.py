"""``facevox generate --model`` on a fabricated reduced-width DreamID-Omni checkout: the sampling path
against an independent transcription of DreamID-Omni's engine loop, the CLI end to end, and the
refusals that come before any weight is read.

The transcription below is written from GitHub Guoxu1233/DreamID-Omni at commit 9a9f456
(``dreamid_omni/dreamid_omni_engine.py`` ``generate`` / ``get_scheduler_time_steps`` and
``dreamid_omni/utils/fm_solvers_unipc.py``), as plain tensors, independently of facevox's solver
(diffusers' UniPC) and of facevox's model (the network is ``dreamid_forward``, the plain re-statement
of ``FusionModel.forward`` in ``test_dreamid_omni.py``):

  noise   video (C, T + K, h, w) and audio (Na + sum Tr, Ca), each from a generator seeded ``seed``
  grid    sigma from float32(1 - 1/1000) to 0 in steps + 1 points, last dropped, shifted
          s sigma / (1 + (s - 1) sigma); the model sees int64(1000 sigma), the solver sigma; final 0
  step    the references replace the last K frames / sum Tr latents; four forwards (pos; neg with the
          video / audio negative prompts; faces zeroed; voices zeroed);
          v = neg + 3 (pos - neg) + 1.5 (pos - no faces), a = neg + 4 (pos - neg) + 2 (pos - no voices);
          FlowUniPC (predict x0, bh2, order 2 with warm-up, corrector from step 1, order 1 at the last
          step) on the whole tensors, references included
  end     the targets: video[:, :T], audio[:Na]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor

from dreamid_fixtures import make_dreamid_dir, make_people
from facevox.io.media import read_av
from facevox.models import get_config
from facevox.models.keymaps import KEYMAPS
from facevox.models.manifests import load_manifest
from facevox.models.manifests.describe_dreamid import load_dreamid_manifest
from facevox.pipeline import GenerationRequest, Person, RequestError
from facevox.pipeline.dreamid import (
    DreamIDGenerateConfig,
    DreamIDOmniPipeline,
    check_dreamid_request,
    model_family,
)
from facevox.release.dreamid_captions import to_dreamid_caption
from facevox.release.dreamid_omni import dreamid_omni_config
from test_dreamid_omni import dreamid_forward

SCRIPT = "[alice] Hello there. [bob] Good morning to you."


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dreamid_dir(tmp_path_factory.mktemp("dreamid"))


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> tuple[Person, ...]:
    files = make_people(tmp_path_factory.mktemp("people"))
    return tuple(
        Person(name=n, faces=(str(img),), voice=str(wav))
        for n, (img, wav) in zip(("alice", "bob"), files, strict=True)
    )


def _request(people: tuple[Person, ...], **kw: object) -> GenerationRequest:
    base: dict = {"name": "duo", "people": people, "script": SCRIPT, "duration": 0.35, "seed": 7}
    return GenerationRequest(**(base | {"width": 64, "height": 64} | kw))


# ---------------------------------------------------------------- registration
def test_registered_as_size_keymap_and_manifest() -> None:
    assert get_config("dreamid-omni") == dreamid_omni_config()
    assert KEYMAPS["dreamid-omni"].rules == KEYMAPS["ovi"].rules
    assert load_manifest("dreamid_omni") == load_dreamid_manifest()


# ---------------------------------------------------------------- the engine loop, transcribed
class EngineUniPC:
    """Wan's FlowUniPCMultistepScheduler(shift=1) after set_timesteps(steps, shift): predict x0, bh2,
    solver order 2, lower-order final, no thresholding."""

    def __init__(self, steps: int, shift: float) -> None:
        train = torch.from_numpy(1.0 - np.linspace(1, 1 / 1000, 1000)[::-1].copy()).float()
        s = np.linspace(train[0].item(), train[-1].item(), steps + 1)[:-1]
        s = shift * s / (1 + (shift - 1) * s)
        self.timesteps = torch.from_numpy(s * 1000).long()
        self.sigmas = torch.from_numpy(np.concatenate([s, [0.0]]).astype(np.float32)).double()
        self.outputs: list[Tensor] = []  # x0 predictions, newest last (two kept)
        self.index, self.last_sample, self.order, self.warm = 0, None, 1, 0

    def _lam(self, i: int) -> Tensor:
        return torch.log(1 - self.sigmas[i]) - torch.log(self.sigmas[i])

    def step(self, v: Tensor, x: Tensor) -> Tensor:
        i = self.index
        m = x - self.sigmas[i] * v
        if i > 0 and self.last_sample is not None:  # UniC on the previous step's prediction
            x = self._correct(m, self.last_sample, x, self.order)
        self.outputs = [*self.outputs, m][-2:]
        self.order = min(2, len(self.timesteps) - i, self.warm + 1)
        self.last_sample = x
        x = self._predict(x, self.order)
        self.warm = min(self.warm + 1, 2)
        self.index += 1
        return x

    def _predict(self, x: Tensor, order: int) -> Tensor:
        i = self.index
        m0 = self.outputs[-1]
        sig_t, sig_s = self.sigmas[i + 1], self.sigmas[i]
        h = self._lam(i + 1) - self._lam(i)
        phi = torch.expm1(-h)  # h phi_1 with hh = -h (x0 prediction); B(h) = expm1(hh) for bh2
        out = sig_t / sig_s * x - (1 - sig_t) * phi * m0
        if order == 2:
            r1 = (self._lam(i - 1) - self._lam(i)) / h
            out = out - (1 - sig_t) * phi * 0.5 * (self.outputs[-2] - m0) / r1
        return out

    def _correct(self, m_t: Tensor, x_prev: Tensor, x_t: Tensor, order: int) -> Tensor:
        i = self.index
        m0 = self.outputs[-1]
        sig_t, sig_s = self.sigmas[i], self.sigmas[i - 1]
        h = self._lam(i) - self._lam(i - 1)
        hh = -h
        phi = torch.expm1(hh)
        b1 = (phi / hh - 1) / phi
        b2 = ((phi / hh - 1) / hh - 0.5) * 2 / phi
        base = sig_t / sig_s * x_prev - (1 - sig_t) * phi * m0
        if order == 1:
            return base - (1 - sig_t) * phi * 0.5 * (m_t - m0)
        r1 = (self._lam(i - 2) - self._lam(i - 1)) / h
        rho = torch.linalg.solve(
            torch.tensor([[1.0, 1.0], [r1.item(), 1.0]], dtype=torch.float64), torch.stack([b1, b2])
        )
        d1 = (self.outputs[-2] - m0) / r1
        return base - (1 - sig_t) * phi * (rho[0] * d1 + rho[1] * (m_t - m0))


def engine_generate(
    p: dict[str, Tensor],
    seed: int,
    shape: tuple[int, int, int, int, int],  # (C, T, h, w, Na)
    faces: Tensor,  # (C, K, h, w)
    voices: list[Tensor],  # (Tr_k, Ca)
    context: Tensor,  # (3, 512, E): caption, video negative, audio negative
    steps: int,
    shift: float = 5.0,
    scales: tuple[float, float, float, float] = (3.0, 1.5, 4.0, 2.0),
    integer_t: bool = True,
) -> tuple[Tensor, Tensor]:
    C, T, h, w, Na = shape
    K, Tr = faces.shape[1], sum(v.shape[0] for v in voices)
    lengths = [v.shape[0] for v in voices]
    ref_audio = torch.cat(voices)
    video = torch.randn((C, T + K, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    audio = torch.randn(
        (Na + Tr, voices[0].shape[1]), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    sched_v, sched_a = EngineUniPC(steps, shift), EngineUniPC(steps, shift)
    pos, vneg, aneg = context[0], context[1], context[2]
    for i, t_int in enumerate(sched_v.timesteps):
        t = float(t_int) if integer_t else 1000 * sched_v.sigmas[i].item()
        mv = torch.cat([video[:, :-K], faces], 1)
        mv_neg = torch.cat([video[:, :-K], torch.zeros_like(faces)], 1)
        ma = torch.cat([audio[:-Tr], ref_audio], 0)
        ma_neg = torch.cat([audio[:-Tr], torch.zeros_like(ref_audio)], 0)
        v_pos, a_pos = dreamid_forward(p, mv, ma, t, pos, K, lengths)
        v_neg, a_neg = dreamid_forward(p, mv, ma, t, (vneg, aneg), K, lengths)
        v_ip, _ = dreamid_forward(p, mv_neg, ma, t, pos, K, lengths)
        _, a_ra = dreamid_forward(p, mv, ma_neg, t, pos, K, lengths)
        gv = v_neg + scales[0] * (v_pos - v_neg) + scales[1] * (v_pos - v_ip)
        ga = a_neg + scales[2] * (a_pos - a_neg) + scales[3] * (a_pos - a_ra)
        video, audio = sched_v.step(gv, video), sched_a.step(ga, audio)
    return video[:, :-K], audio[:-Tr]


def test_sampling_matches_the_engine_loop(checkout: Path, people: tuple[Person, ...]) -> None:
    from safetensors.torch import load_file

    pipe = DreamIDOmniPipeline.from_folder(checkout, dtype=torch.float64)
    req = _request(people)
    cfg = DreamIDGenerateConfig(steps=5)
    checked = pipe.check(req)
    cond = pipe.encode_conditions(req, checked, cfg)
    video, audio = pipe.prepare_latents(req, checked, cond)
    out_v, out_a, forwards = pipe.denoise(cond, video, audio, cfg)
    assert forwards == 5  # one batch of the four passes per step

    p = {
        k: v.double()
        for k, v in load_file(str(checkout / "DreamID_Omni" / "dreamid_omni.safetensors")).items()
    }
    C, T, h, w = video.shape[1:]
    args = (
        p,
        req.seed,
        (C, T, h, w, audio.shape[1]),
        cond.faces[0].double(),
        [v[0].double() for v in cond.voices],
        cond.context.double(),
        5,
    )
    want_v, want_a = engine_generate(*args)
    assert cond.faces.shape[2] == 2 and [v.shape[1] for v in cond.voices] == [32, 32]  # 1 s of voice each
    torch.testing.assert_close(out_v[0], want_v, atol=1e-5, rtol=0)
    torch.testing.assert_close(out_a[0], want_a, atol=1e-5, rtol=0)
    assert want_v.abs().max() > 0.1 and want_a.abs().max() > 0.1  # not a trivially small result
    # the comparison can fail: the engine's integer timesteps matter at this tolerance, as do the scales
    float_v, _ = engine_generate(*args, integer_t=False)
    assert (float_v - out_v[0]).abs().max() > 1e-4
    scaled_v, _ = engine_generate(*args, scales=(3.0, 1.0, 4.0, 2.0))
    assert (scaled_v - out_v[0]).abs().max() > 1e-3
    # four batch-1 forwards per step, as the engine runs them, give the same result
    single_v, single_a, n = pipe.denoise(
        cond, video, audio, DreamIDGenerateConfig(steps=5, batch_guidance=False)
    )
    assert n == 20
    torch.testing.assert_close(single_v, out_v, atol=1e-10, rtol=0)
    torch.testing.assert_close(single_a, out_a, atol=1e-10, rtol=0)


# ---------------------------------------------------------------- the CLI
def test_generate_cli_on_a_dreamid_checkout(
    checkout: Path, people: tuple[Person, ...], tmp_path: Path
) -> None:
    from facevox.cli import main

    out = tmp_path / "gen"
    argv = ["generate", "--model", str(checkout), "--out", str(out), "--name", "duo", "--dtype", "float32"]
    for person in people:
        argv += ["--person", f"{person.name}={person.faces[0]}:{person.voice}"]
    argv += ["--script", SCRIPT, "--duration", "0.35", "--width", "64", "--height", "64", "--steps", "2"]
    assert main(argv) == 0
    side = json.loads((out / "duo.json").read_text())
    assert side["family"] == "dreamid-omni"
    cfg = side["config"]
    assert (cfg["steps"], cfg["shift"], cfg["solver"], cfg["forwards"]) == (2, 5.0, "unipc", 2)
    assert (
        cfg["video_cfg_scale"],
        cfg["video_ref_cfg_scale"],
        cfg["audio_cfg_scale"],
        cfg["audio_ref_cfg_scale"],
    ) == (
        3.0,
        1.5,
        4.0,
        2.0,
    )
    assert cfg["passes"] == ["pos", "neg", "no_faces", "no_voices"]
    assert "<sub1>" in side["caption_text"] and "<S>Hello there.<E>" in side["caption_text"]
    assert (
        "SPEAKER_TIMESTAMPS" not in side["caption_text"] and "SPEAKER_TIMESTAMPS" in side["dreamid_caption"]
    )
    assert [(t["slot"], t["name"]) for t in side["turns"]] == [(0, "alice"), (1, "bob")]
    clip = read_av(out / "duo.mp4")
    assert clip.video.shape == (9, 64, 64, 3) and clip.fps == 24.0
    assert clip.audio is not None and clip.sample_rate == 16000
    assert abs(len(clip.audio) - 9 / 24 * 16000) < 1200
    # facevox eval reads its sidecar (people's image and voice, turns) and scores the clip
    assert main(["eval", str(out), "--out", str(tmp_path / "eval"), "--no-asr"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    aggregate = metrics["sets"]["generated"]["aggregate"]
    assert (aggregate["clips"], aggregate["errors"]) == (1, 0) and aggregate["voice_sim"] is not None


# ---------------------------------------------------------------- refused before any weight is read
def test_bad_requests_are_refused_before_loading(
    checkout: Path,
    people: tuple[Person, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from facevox.cli import main

    def no_loading(*a: object, **k: object) -> None:
        raise AssertionError("weights were loaded before the request was checked")

    monkeypatch.setattr(DreamIDOmniPipeline, "from_folder", no_loading)
    third = Person(name="carol", faces=people[0].faces, voice=people[0].voice)
    argv = ["generate", "--model", str(checkout), "--out", str(tmp_path / "o")]
    for person in (*people, third):
        argv += ["--person", f"{person.name}={person.faces[0]}:{person.voice}"]
    assert main([*argv, "--script", "[alice] Hi. [bob] Hello. [carol] Hey."]) == 2
    assert "3 people, but DreamID-Omni has 2 identity slots" in caplog.text

    # DreamID-Omni's own sectioned caption with a speaker past the 121-frame clip (as its example 20.json)
    caption = {
        "scene": {"shot": "medium shot", "lighting": "soft", "background": "grey"},
        "subjects": [
            {"slot": 1, "position": "left", "appearance": "a tall man"},
            {"slot": 2, "position": "right", "appearance": "a woman"},
        ],
        "speech": [
            {"slot": 1, "start": 0.0, "end": 2.0, "text": "Hi."},
            {"slot": 2, "start": 6.0, "end": 9.0, "text": "Hey."},
        ],
    }
    text = to_dreamid_caption(caption, clip_seconds=10)
    with pytest.raises(RequestError, match=r"<sub2> .*ends past the 5.042 s clip"):
        check_dreamid_request(_request(people, script=text, duration=5.04, width=None, height=None))
    with pytest.raises(
        RequestError, match="speech\\[1\\] \\(<sub2>\\): speaker timestamp 6.0-9.0 s ends past"
    ):
        check_dreamid_request(_request(people, script=caption, duration=5.04, width=None, height=None))
    with pytest.raises(RequestError, match="takes one image per person"):
        two_views = Person(name="alice", faces=(people[0].faces[0],) * 2, voice=people[0].voice)
        check_dreamid_request(_request((two_views, people[1])))
    with pytest.raises(RequestError, match="does not read the Identity-as-Presence tags"):
        check_dreamid_request(_request(people, script="<S1>Hi.<E1> <S2>Hello.<E2>"))
    with pytest.raises(RequestError, match="at most 121"):
        check_dreamid_request(_request(people, duration=6.0))
    with pytest.raises(RequestError, match="multiples of 32"):
        check_dreamid_request(_request(people, width=80))


def test_folders_of_no_family_name_the_first_mismatch(checkout: Path, tmp_path: Path) -> None:
    assert model_family(checkout) == "dreamid-omni"
    from safetensors.torch import load_file

    src = load_file(str(checkout / "DreamID_Omni" / "dreamid_omni.safetensors"))
    bad = tmp_path / "bad" / "ckpts"
    (bad / "DreamID_Omni").mkdir(parents=True)
    src["video_model.blocks.1.ffn.0.weight"] = torch.zeros(64, 31)
    save_file(src, str(bad / "DreamID_Omni" / "dreamid_omni.safetensors"))
    # the released size (no DiT JSONs next to it): the first key whose shape differs is named
    with pytest.raises(
        RequestError,
        match=r"neither a facevox pipeline folder.*nor DreamID-Omni's checkpoint \(first mismatch "
        r"'audio_model.blocks.0.cross_attn.k.bias': checkpoint \(32,\), DreamID-Omni \(3072,\)",
    ):
        model_family(bad)
    (bad.parent / "dreamid_omni").symlink_to(checkout.parent / "dreamid_omni")  # now at the reduced size
    with pytest.raises(
        RequestError,
        match=r"first mismatch 'video_model.blocks.1.ffn.0.weight': checkpoint \(64, 31\), DreamID-Omni \(64, 32\)",
    ):
        model_family(bad)
    wan = tmp_path / "wan"
    wan.mkdir()
    save_file({"blocks.0.self_attn.q.weight": torch.zeros(8, 8)}, str(wan / "model.safetensors"))
    with pytest.raises(RequestError, match=r"'audio_model.blocks.0.cross_attn.k.bias': checkpoint absent"):
        model_family(wan)
    with pytest.raises(RequestError, match="does not exist"):
        model_family(tmp_path / "nowhere")
