"""The Identity-as-Presence release's sampling (``recipes/release_iap.yaml``) against an independent
transcription of the release's loop, on a fabricated reduced-width release (random tensors in the
release's key layout, loaded by facevox's release loader; the same model is called by both sides).

The transcription is written here from reading the release's code (WeChatCV/Identity-as-Presence at
9d87f9b: ``inference.py``, ``identity_as_presence/pipeline.py`` ``IDAVPipeline.__call__``,
``identity_as_presence/models/iap_fusion_model.py`` ``FusionModelIDAV.forward``) and Wan's
``FlowUniPCMultistepScheduler`` (Wan2.2 ``wan/utils/fm_solvers_unipc.py``, which the release imports as
``identity_as_presence/utils/fm_solvers_unipc.py``), in plain tensor algebra:

- noise: one generator, video ``(1, C, (F - 1) // 4 + 1, H / 16, W / 16)`` then audio
  ``(1, int((F / fps * sr) // 512), Ca)``;
- per step with integer timestep ``t``: conditional pass (caption in both towers, faces and voices),
  unconditional pass (video negative caption in the video tower, audio negative caption in the audio
  tower, faces kept, ``spkid=None``, fused block ``slg_layer`` left out for targets and references);
  ``v = v_u + s (v_c - v_u)``, video 4, audio 3; each caption trimmed to its tokens and zero-padded
  to ``text_len`` with no attention mask;
- Wan's UniPC (order 2, bh2, x0 prediction, lower order final, corrector from the second step).

The skipped block is left out here by a copy of the model without it (not by facevox's
``skip_blocks``), and the references are recomputed inside every forward (not facevox's cache).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import Tensor, nn

from facevox.alignment import PRESETS, audio_latent_frames
from facevox.config import load
from facevox.models import DualTowerDiT
from facevox.models.inputs import ModalityInput, References
from facevox.pipeline.pipeline import FacevoxPipeline, GenerateConfig
from facevox.pipeline.two_pass import Caption, TwoPassConditions, denoise_two_pass, pad_captions
from facevox.release import ReleaseError, load_release_model
from facevox.release.recipe import RELEASE_RECIPE, is_release_folder
from release_fixtures import CFG, DIMS, write_transformer

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "release_iap.yaml"
DEPTH, SLG = 3, 1  # reduced depth; the release skips block 11 of 30 (its rule: slg_layer > 0)
FRAMES, FPS, SR, SIZE = 121, 24.0, 16000, 64  # the release's clip length; a small frame
TEXT_LEN = 12  # Wan's text_len at reduced size (the release: 512)


# ---------------------------------------------------------------- Wan's FlowUniPC, transcribed
class WanFlowUniPC:
    """``FlowUniPCMultistepScheduler(num_train_timesteps=1000, shift=1.0)`` with its defaults
    (solver_order 2, predict_x0, bh2, lower_order_final, final sigma 0), ``set_timesteps(n, shift=s)``."""

    def __init__(self, steps: int, shift: float, train: int = 1000) -> None:
        alphas = np.linspace(1, 1 / train, train)[::-1].copy()
        train_sigmas = torch.from_numpy(1.0 - alphas).to(torch.float32)
        sigma_max, sigma_min = train_sigmas[0].item(), train_sigmas[-1].item()
        sigmas = np.linspace(sigma_max, sigma_min, steps + 1).copy()[:-1]
        sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
        self.timesteps = torch.from_numpy(sigmas * train).to(torch.int64)
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))
        self.outputs: list[Tensor | None] = [None, None]
        self.lower_order_nums, self.step_index, self.order = 0, 0, 1
        self.last_sample: Tensor | None = None

    def _lambda(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        s = self.sigmas[i]
        alpha = 1 - s
        return alpha, s, torch.log(alpha) - torch.log(s)

    def _coefficients(self, h: Tensor, order: int, rks: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        hh = -h
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        b_h = torch.expm1(hh)
        r_rows, b, fact = [], [], 1
        rk_t = torch.tensor([*[float(r) for r in rks], 1.0])
        for i in range(1, order + 1):
            r_rows.append(torch.pow(rk_t, i - 1))
            b.append(h_phi_k * fact / b_h)
            fact *= i + 1
            h_phi_k = h_phi_k / hh - 1 / fact
        return torch.stack(r_rows), torch.tensor(b), b_h

    def _predict(self, x: Tensor, order: int) -> Tensor:
        m0 = self.outputs[-1]
        assert m0 is not None
        alpha_t, sigma_t, lam_t = self._lambda(self.step_index + 1)
        _, sigma_s0, lam_s0 = self._lambda(self.step_index)
        h = lam_t - lam_s0
        rks, d1s = [], []
        for i in range(1, order):
            _, _, lam_si = self._lambda(self.step_index - i)
            rk = (lam_si - lam_s0) / h
            rks.append(rk)
            d1s.append((self.outputs[-(i + 1)] - m0) / rk)
        _, _, b_h = self._coefficients(h, order, rks)
        x_t = sigma_t / sigma_s0 * x - alpha_t * torch.expm1(-h) * m0
        if d1s:
            x_t = x_t - alpha_t * b_h * 0.5 * d1s[0]  # order 2: rhos_p = 0.5
        return x_t

    def _correct(self, x0_now: Tensor, last: Tensor, this: Tensor, order: int) -> Tensor:
        m0 = self.outputs[-1]
        assert m0 is not None
        alpha_t, sigma_t, lam_t = self._lambda(self.step_index)
        _, sigma_s0, lam_s0 = self._lambda(self.step_index - 1)
        h = lam_t - lam_s0
        rks, d1s = [], []
        for i in range(1, order):
            _, _, lam_si = self._lambda(self.step_index - (i + 1))
            rk = (lam_si - lam_s0) / h
            rks.append(rk)
            d1s.append((self.outputs[-(i + 1)] - m0) / rk)
        r, b, b_h = self._coefficients(h, order, rks)
        rhos = torch.tensor([0.5]) if order == 1 else torch.linalg.solve(r, b)
        corr = sum((rhos[k] * d1s[k] for k in range(len(d1s))), torch.zeros_like(m0))
        x_t_ = sigma_t / sigma_s0 * last - alpha_t * torch.expm1(-h) * m0
        return x_t_ - alpha_t * b_h * (corr + rhos[-1] * (x0_now - m0))

    def step(self, v: Tensor, x: Tensor) -> Tensor:
        x0 = x - self.sigmas[self.step_index] * v
        if self.step_index > 0 and self.last_sample is not None:
            x = self._correct(x0, self.last_sample, x, self.order)
        self.outputs = [self.outputs[1], x0]
        order = min(2, len(self.timesteps) - self.step_index)
        self.order = min(order, self.lower_order_nums + 1)
        self.last_sample = x
        out = self._predict(x, self.order)
        self.lower_order_nums = min(self.lower_order_nums + 1, 2)
        self.step_index += 1
        return out


# ---------------------------------------------------------------- the release's loop, transcribed
def _context(hidden: Tensor) -> tuple[Tensor, Tensor]:
    """A caption trimmed to its tokens, zero-padded to text_len, no mask (Wan's text embedding input)."""
    padded = torch.cat([hidden[0], hidden.new_zeros(TEXT_LEN - hidden.shape[1], hidden.shape[2])])[None]
    return padded, torch.ones(1, TEXT_LEN, dtype=torch.bool)


def _forward(
    m: DualTowerDiT,
    video: Tensor,
    audio: Tensor,
    sigma: Tensor,
    video_context: tuple[Tensor, Tensor],
    audio_context: tuple[Tensor, Tensor],
    faces: References,
    voices: References | None,
) -> tuple[Tensor, Tensor]:
    """One pass: each tower its caption; references given inside the inputs (recomputed every call)."""
    vi = ModalityInput(
        latents=video,
        timesteps=sigma,
        context=video_context[0],
        context_mask=video_context[1],
        references=faces,
    )
    ai = ModalityInput(
        latents=audio,
        timesteps=sigma,
        context=audio_context[0],
        context_mask=audio_context[1],
        references=voices,
    )
    out = m(vi, ai)
    return out.video, out.audio


def release_loop(
    model: DualTowerDiT, seed: int, text: dict[str, Tensor], faces: References, voices: References
) -> tuple[Tensor, Tensor]:
    video_scale, audio_scale, steps, shift = 4.0, 3.0, 50, 5.0
    gen = torch.Generator().manual_seed(seed)
    video = torch.randn((1, 8, (FRAMES - 1) // 4 + 1, SIZE // 16, SIZE // 16), generator=gen)
    audio = torch.randn((1, int((FRAMES / FPS * SR) // 512), 5), generator=gen)
    assert audio.shape[1] == 157
    skipped = copy.copy(model)  # the fused block slg_layer left out, for targets and references
    skipped._modules = dict(model._modules)
    skipped.blocks = nn.ModuleList(b for i, b in enumerate(model.blocks) if i != SLG)
    sched_v, sched_a = WanFlowUniPC(steps, shift), WanFlowUniPC(steps, shift)
    ctx, ctx_mask = _context(text["prompt"])
    neg_v, neg_v_mask = _context(text["video_negative"])
    neg_a, neg_a_mask = _context(text["audio_negative"])
    for t_v, t_a in zip(sched_v.timesteps, sched_a.timesteps, strict=True):
        assert t_v == t_a
        sigma = (t_v / 1000).float().reshape(1)  # the model embeds sigma * 1000 = the integer timestep
        cond_v, cond_a = _forward(model, video, audio, sigma, (ctx, ctx_mask), (ctx, ctx_mask), faces, voices)
        unc_v, unc_a = _forward(
            skipped, video, audio, sigma, (neg_v, neg_v_mask), (neg_a, neg_a_mask), faces, None
        )
        v_video = unc_v + video_scale * (cond_v - unc_v)
        v_audio = unc_a + audio_scale * (cond_a - unc_a)
        video = sched_v.step(v_video, video)
        audio = sched_a.step(v_audio, audio)
    return video, audio


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def release_model(tmp_path_factory: pytest.TempPathFactory) -> DualTowerDiT:
    root = tmp_path_factory.mktemp("release")
    write_transformer(root, dims=dataclasses.replace(DIMS, depth=DEPTH))
    return load_release_model(root, config=dataclasses.replace(CFG, depth=DEPTH), dtype=torch.float32)


def _inputs() -> tuple[dict[str, Tensor], References, References]:
    g = torch.Generator().manual_seed(7)
    text = {k: torch.randn(1, n, 16, generator=g) for k, n in (("prompt", 6), ("video_negative", 4))}
    text["audio_negative"] = torch.randn(1, 5, 16, generator=g)
    slot = torch.zeros(1, 1, dtype=torch.long)
    faces = References(  # two face views (the release concatenates id images along time)
        latents=torch.randn(1, 1, 2, 8, 1, 4, 4, generator=g),
        mask=torch.ones(1, 1, 2, dtype=torch.bool),
        slot_ids=slot,
    )
    voices = References(
        latents=torch.randn(1, 1, 9, 5, generator=g),
        mask=torch.ones(1, 1, 9, dtype=torch.bool),
        slot_ids=slot,
    )
    return text, faces, voices


def _pipeline_stand_in(model: DualTowerDiT) -> Any:
    """What ``denoise_two_pass`` / ``prepare_latents`` read from a pipeline, with the release's clock."""
    ns = SimpleNamespace(
        model=model,
        device=torch.device("cpu"),
        settings=SimpleNamespace(fps=FPS, sample_rate=SR, shift=5.0),
        video_codec=SimpleNamespace(latent_shape=lambda f, h, w: (8, 1 + (f - 1) // 4, h // 16, w // 16)),
        audio_codec=SimpleNamespace(latent_channels=5, time_stride=512),
        _on=lambda m: m,
        _off=lambda m: None,
    )
    ns.audio_tokens = lambda frames: FacevoxPipeline.audio_tokens(ns, frames)
    ns.sampler_config = lambda cfg, video: FacevoxPipeline.sampler_config(ns, cfg, video)
    return ns


def _facevox(model: DualTowerDiT, cfg: GenerateConfig, seed: int) -> tuple[Tensor, Tensor, int]:
    text, faces, voices = _inputs()
    pipe = _pipeline_stand_in(model)
    video, audio = FacevoxPipeline.prepare_latents(
        pipe, SimpleNamespace(seed=seed), SimpleNamespace(frames=FRAMES, height=SIZE, width=SIZE)
    )
    none = torch.full((1, 1), -1, dtype=torch.long)
    captions = [
        Caption(text[k], torch.ones(1, text[k].shape[1], dtype=torch.bool), none.expand(1, text[k].shape[1]))
        for k in ("prompt", "video_negative", "audio_negative")
    ]
    cond, vneg, aneg = pad_captions(captions, cfg.two_pass.caption_length)
    conditions = TwoPassConditions(
        caption_text="", caption=cond, video_negative=vneg, audio_negative=aneg, faces=faces, voices=voices
    )
    return denoise_two_pass(pipe, conditions, video, audio, cfg)


# ---------------------------------------------------------------- tests
def test_release_recipe_loop_matches_the_release_loop(release_model: DualTowerDiT) -> None:
    cfg = load(GenerateConfig, RECIPE, [f"two_pass.skip_block={SLG}", f"two_pass.caption_length={TEXT_LEN}"])
    with torch.no_grad():
        got_v, got_a, forwards = _facevox(release_model, cfg, seed=103)
        want_v, want_a = release_loop(release_model, 103, *_inputs())
    assert got_a.shape == (1, 157, 5) and got_v.shape == (1, 8, 31, 4, 4) and forwards == 100
    torch.testing.assert_close(got_v, want_v, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_a, want_a, atol=1e-5, rtol=0)
    # the comparison can fail: each release setting changed alone (no skip-layer guidance, voices kept,
    # diffusers' grid, continuous timesteps, masked captions) lands elsewhere
    for change in (
        ["two_pass.skip_block=-1"],
        ["two_pass.uncond_voices=true"],
        ["sigma_grid=diffusers"],
        ["integer_timesteps=false"],
        ["two_pass.caption_length=0"],
    ):
        other = load(
            GenerateConfig,
            RECIPE,
            [f"two_pass.skip_block={SLG}", f"two_pass.caption_length={TEXT_LEN}", *change],
        )
        with torch.no_grad():
            v, a, _ = _facevox(release_model, other, seed=103)
        assert (v - want_v).abs().max() > 1e-3 or (a - want_a).abs().max() > 1e-3, change


def test_wan_grid_and_integer_timesteps() -> None:
    from diffusers import UniPCMultistepScheduler

    from facevox.diffusion.samplers import wan_grid

    want = WanFlowUniPC(50, 5.0)
    sched = UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=5.0)
    sched.set_timesteps(sigmas=wan_grid(50))
    assert torch.equal(sched.sigmas, want.sigmas) and torch.equal(sched.timesteps, want.timesteps)
    assert want.timesteps[:3].tolist() == [999, 995, 991] and want.timesteps[-1] == 92


def test_157_audio_frames_at_121_frames() -> None:
    assert audio_latent_frames(121, 24.0, 16000, 512) == 157  # the release's int((F / fps * sr) // 512)
    assert PRESETS["ovi"].audio_latent_frames == 157
    pipe = _pipeline_stand_in(None)
    assert pipe.audio_tokens(121) == 157  # what the pipeline draws noise for (was 158: ceil of 80,667 / 512)
    assert pipe.audio_tokens(9) == 11


def test_recipe_file_is_the_release_recipe() -> None:
    assert yaml.safe_load(RECIPE.read_text()) == RELEASE_RECIPE
    cfg = load(GenerateConfig, RECIPE)
    assert (cfg.solver, cfg.steps, cfg.shift, cfg.sigma_grid, cfg.integer_timesteps) == (
        "unipc",
        50,
        5.0,
        "wan",
        True,
    )
    g = cfg.two_pass
    assert (cfg.guidance, g.video, g.audio, g.skip_block, g.uncond_faces, g.uncond_voices) == (
        "two_pass",
        4.0,
        3.0,
        11,
        True,
        False,
    )
    assert (g.video_negative, g.audio_negative, g.caption_length) == (
        "jitter, bad hands, blur, distortion",
        "robotic, muffled, echo, distorted",
        512,
    )


def test_release_folder_is_detected(tmp_path: Path) -> None:
    assert not is_release_folder(tmp_path)
    write_transformer(tmp_path / "ckpts")
    assert is_release_folder(tmp_path / "ckpts")


def test_caption_tags_stay_word_pieces(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from facevox.codecs.text import T5TextEncoder
    from test_codecs_text import _tiny_umt5_folder

    _tiny_umt5_folder(tmp_path)
    plain = AutoTokenizer.from_pretrained(str(tmp_path / "tokenizer"))
    caption = "kitchen . <REF_1_S> a tall man <REF_1_E> <S1> hello there <E1>"
    enc = T5TextEncoder.from_pretrained(tmp_path, max_length=32, tags_as_tokens=False)
    out = enc.encode([caption])
    assert len(enc.tokenizer) == len(plain)  # nothing added: the release's tokenizer as it is
    assert out.input_ids[0].tolist() == plain(caption)["input_ids"]
    assert not (out.slot_ids >= 0).any()
    tagged = T5TextEncoder.from_pretrained(tmp_path, max_length=32)
    assert len(tagged.tokenizer) > len(plain) and tagged.encode([caption]).input_ids.shape[1] < 20


def test_damaged_release_names_the_tensor_before_reading_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facevox.models.manifests.describe import describe
    from facevox.release import loader

    reads: list[str] = []
    real = loader.safe_open

    class Counting:
        def __init__(self, *a: Any, **k: Any) -> None:
            self.fh = real(*a, **k)

        def __enter__(self) -> Counting:
            self.fh.__enter__()
            return self

        def __exit__(self, *a: Any) -> None:
            self.fh.__exit__(*a)

        def keys(self) -> list[str]:
            return list(self.fh.keys())

        def get_slice(self, k: str) -> Any:
            return self.fh.get_slice(k)

        def get_tensor(self, k: str) -> Tensor:
            reads.append(k)
            return self.fh.get_tensor(k)

    monkeypatch.setattr(loader, "safe_open", Counting)
    for name, damage in (
        ("video_model.blocks.1.ffn_prime.0.weight", None),
        ("audio_model.blocks.0.cross_attn.k_fusion.weight", (48, 47)),
    ):
        shapes = dict(describe("iap", DIMS))
        if damage is None:
            shapes.pop(name)
        else:
            shapes[name] = damage
        root = tmp_path / name
        write_transformer(root, shapes)
        with pytest.raises(ReleaseError) as err:
            load_release_model(root, config=CFG)
        assert f"{name!r}" in str(err.value)  # the release's own name for it
        assert reads == []  # no tensor was read
