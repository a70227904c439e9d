"""Dual-tower DiT: shapes, slot handling, asymmetric attention, reference cache, checkpointing."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from facevox.models import DualTowerDiT, ModalityInput, References, get_config
from model_inputs import make_inputs


@pytest.fixture(scope="module")
def model() -> DualTowerDiT:
    torch.manual_seed(0)
    m = DualTowerDiT(get_config("debug")).eval()
    # Random (not zero-initialised) reference adapters and identity table so every path matters.
    with torch.no_grad():
        for name, p in m.named_parameters():
            if ".ref." in name or name.startswith("identity"):
                p.normal_(0, 0.1)
    return m


def _perm_refs(r: References, perm: list[int]) -> References:
    return References(latents=r.latents[:, perm], mask=r.mask[:, perm], slot_ids=r.slot_ids[:, perm])


@pytest.mark.parametrize("slots", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("views", [1, 2, 3])
def test_output_shapes(model: DualTowerDiT, slots: int, views: int) -> None:
    video, audio = make_inputs(model.config, slots=slots, views=views)
    with torch.no_grad():
        out = model(video, audio)
    assert out.video.shape == video.latents.shape
    assert out.audio.shape == audio.latents.shape
    assert torch.isfinite(out.video).all() and torch.isfinite(out.audio).all()


def test_per_token_timesteps_and_before_mode() -> None:
    cfg = dataclasses.replace(get_config("debug"), ref_position_mode="before")
    m = DualTowerDiT(cfg).eval()
    video, audio = make_inputs(cfg, slots=2, views=2)
    Nv = 3 * 4 * 4
    video = dataclasses.replace(video, timesteps=torch.rand(2, Nv))
    with torch.no_grad():
        out = m(video, audio)
    assert out.video.shape == video.latents.shape and torch.isfinite(out.video).all()


def test_slot_order_is_irrelevant(model: DualTowerDiT) -> None:
    """Reordering the K reference groups (slot ids travel with them) changes nothing."""
    video, audio = make_inputs(model.config, slots=3, views=2, ragged=True)
    perm = [2, 0, 1]
    video_p = dataclasses.replace(video, references=_perm_refs(video.references, perm))
    audio_p = dataclasses.replace(audio, references=_perm_refs(audio.references, [1, 2, 0]))
    with torch.no_grad():
        a, b = model(video, audio), model(video_p, audio_p)
    torch.testing.assert_close(a.video, b.video, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.audio, b.audio, atol=1e-5, rtol=1e-5)


def test_relabelling_slots_consistently_vs_binding(model: DualTowerDiT) -> None:
    """Swapping which caption span names which person changes the output (the binding matters)."""
    video, audio = make_inputs(model.config, slots=2, views=1, ragged=False)
    tags = video.context_slot_ids.clone()
    swapped = torch.where(tags == 0, 1, torch.where(tags == 1, 0, tags))
    with torch.no_grad():
        a = model(video, audio)
        b = model(
            dataclasses.replace(video, context_slot_ids=swapped),
            dataclasses.replace(audio, context_slot_ids=swapped),
        )
    assert (a.video - b.video).abs().max() > 1e-4
    assert (a.audio - b.audio).abs().max() > 1e-4


def test_reference_stream_ignores_targets(model: DualTowerDiT) -> None:
    """Reference keys/values do not change when the noisy tokens or the timestep change."""
    video, audio = make_inputs(model.config, slots=2, views=2, seed=1)
    captured = []
    original = model.prepare_references

    def spy(*args: object, **kwargs: object) -> object:
        cache = original(*args, **kwargs)
        captured.append(cache)
        return cache

    model.prepare_references = spy  # type: ignore[method-assign]
    try:
        with torch.no_grad():
            model(video, audio)
            v2, a2 = make_inputs(model.config, slots=2, views=2, seed=2)
            model(
                dataclasses.replace(video, latents=v2.latents, timesteps=torch.tensor([0.9, 0.05])),
                dataclasses.replace(audio, latents=a2.latents, timesteps=torch.tensor([0.3, 0.7])),
            )
    finally:
        del model.prepare_references
    c1, c2 = captured
    for s1, s2 in ((c1.video, c2.video), (c1.audio, c2.audio)):
        for kv1, kv2 in zip(s1, s2, strict=True):
            torch.testing.assert_close(kv1.k, kv2.k, atol=0, rtol=0)
            torch.testing.assert_close(kv1.v, kv2.v, atol=0, rtol=0)


def test_targets_see_references_but_not_padding(model: DualTowerDiT) -> None:
    video, audio = make_inputs(model.config, slots=2, views=3, seed=3, ragged=True)
    # The last sample's last view and last two voice frames are padding: changing them changes nothing.
    fl = video.references.latents.clone()
    fl[-1, :, -1] += 5.0
    vl = audio.references.latents.clone()
    vl[-1, :, -2:] += 5.0
    fl_pad = dataclasses.replace(video.references, latents=fl)
    vl_pad = dataclasses.replace(audio.references, latents=vl)
    with torch.no_grad():
        base = model(video, audio)
        padded = model(
            dataclasses.replace(video, references=fl_pad), dataclasses.replace(audio, references=vl_pad)
        )
        no_refs = model(
            dataclasses.replace(video, references=None, context_slot_ids=None),
            dataclasses.replace(audio, references=None, context_slot_ids=None),
        )
    torch.testing.assert_close(base.video, padded.video, atol=1e-6, rtol=0)
    torch.testing.assert_close(base.audio, padded.audio, atol=1e-6, rtol=0)
    assert (base.video - no_refs.video).abs().max() > 1e-4
    assert (base.audio - no_refs.audio).abs().max() > 1e-4
    # Real reference latents of both modalities reach both towers' outputs (via the bridge too).
    faces = video.references.latents.clone().requires_grad_(True)
    out = model(
        dataclasses.replace(video, references=dataclasses.replace(video.references, latents=faces)), audio
    )
    (g,) = torch.autograd.grad(out.audio.square().sum(), faces)
    assert g[0].abs().sum() > 0
    assert g[-1, :, -1].abs().sum() == 0  # padded views get no gradient


@pytest.mark.parametrize("ref_params", ["lora", "copy", "shared"])
def test_reference_cache_matches_uncached(ref_params: str) -> None:
    cfg = get_config("debug")
    cfg = dataclasses.replace(
        cfg,
        video=dataclasses.replace(cfg.video, ref_params=ref_params),
        audio=dataclasses.replace(cfg.audio, ref_params="shared" if ref_params == "copy" else ref_params),
    )
    torch.manual_seed(0)
    model = DualTowerDiT(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ref." in name:
                p.normal_(0, 0.1)
    video, audio = make_inputs(model.config, slots=2, views=3, seed=4)
    with torch.no_grad():
        cache = model.prepare_references(
            video.references,
            audio.references,
            video_frames=video.latents.shape[2],
            audio_tokens=audio.latents.shape[1],
        )
        for step, t in enumerate([0.95, 0.5, 0.1]):
            nv, na = make_inputs(model.config, slots=2, views=3, seed=10 + step)
            v = dataclasses.replace(video, latents=nv.latents, timesteps=torch.full((2,), t))
            a = dataclasses.replace(audio, latents=na.latents, timesteps=torch.full((2,), t))
            ref = model(v, a)
            got = model(
                dataclasses.replace(v, references=None),
                dataclasses.replace(a, references=None),
                references=cache,
            )
            torch.testing.assert_close(got.video, ref.video, atol=1e-6, rtol=0)
            torch.testing.assert_close(got.audio, ref.audio, atol=1e-6, rtol=0)


def test_gradient_checkpointing_equivalence() -> None:
    torch.manual_seed(1)
    m = DualTowerDiT(get_config("debug"))
    video, audio = make_inputs(m.config, slots=2, views=2, seed=5)

    def grads(enabled: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m.zero_grad()
        m.set_gradient_checkpointing(enabled)
        out = m(video, audio)
        loss = out.video.square().mean() + out.audio.square().mean()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}

    l0, g0 = grads(False)
    l1, g1 = grads(True)
    torch.testing.assert_close(l0, l1)
    assert g0.keys() == g1.keys() and len(g0) > 50
    for n in g0:
        torch.testing.assert_close(g0[n], g1[n], atol=1e-6, rtol=1e-5, msg=n)


def test_clear_errors(model: DualTowerDiT) -> None:
    video, audio = make_inputs(model.config, slots=2, views=2)
    with pytest.raises(ValueError, match="channels"):
        model(dataclasses.replace(video, latents=torch.randn(2, 5, 3, 8, 8)), audio)
    with pytest.raises(ValueError, match="context"):
        model(video, dataclasses.replace(audio, context=torch.randn(2, 7, 3)))
    bad_tags = video.context_slot_ids.clone()
    bad_tags[0, 0] = 3  # slot 3 has no face and no voice
    with pytest.raises(ValueError, match="slot 3.*no face or voice reference"):
        model(dataclasses.replace(video, context_slot_ids=bad_tags), audio)
    dup = dataclasses.replace(video.references, slot_ids=torch.tensor([[0, 0], [0, -1]]))
    with pytest.raises(ValueError, match="repeat a slot"):
        model(dataclasses.replace(video, references=dup), audio)
    with pytest.raises(ValueError, match="views per face slot"):
        v, a = make_inputs(model.config, slots=1, views=model.config.video_ref_slot_gap + 1)
        model(v, a)
    cache = model.prepare_references(video.references, audio.references, video_frames=5, audio_tokens=10)
    with pytest.raises(ValueError, match="prepared for"):
        model(
            dataclasses.replace(video, references=None),
            dataclasses.replace(audio, references=None),
            references=cache,
        )
    with pytest.raises(ValueError, match="not both"):
        model(video, audio, references=cache)


def test_real_size_builds_on_meta_quickly() -> None:
    for name in ("ovi-11b", "iap-5b"):
        start = time.perf_counter()
        with torch.device("meta"):
            m = DualTowerDiT(get_config(name))
        elapsed = time.perf_counter() - start
        counts = {"video": 0, "video_bridge": 0, "audio": 0, "ref": 0}
        for n, p in m.named_parameters():
            if ".ref." in n:
                counts["ref"] += p.numel()
            elif n.startswith("video_") or ".video." in n:
                counts["video_bridge" if "bridge" in n else "video"] += p.numel()
            elif n.startswith("audio_") or ".audio." in n:
                counts["audio"] += p.numel()
        assert elapsed < 20, f"{name} took {elapsed:.1f}s to build on meta"
        # The video tower without the bridge is Wan2.2-TI2V-5B (~5.0B); Ovi is ~11B without references.
        assert 4.9e9 < counts["video"] < 5.1e9, counts
        assert 11.0e9 < counts["video"] + counts["video_bridge"] + counts["audio"] < 12.0e9, counts


def test_modality_input_is_frozen() -> None:
    video, _ = make_inputs(get_config("debug"), slots=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        video.latents = torch.zeros(1)  # type: ignore[misc]
    assert isinstance(video, ModalityInput)


def test_bfloat16_forward_runs() -> None:
    """The caller picks the dtype: a bf16 model on bf16 inputs runs and stays close to fp32."""
    torch.manual_seed(0)
    m = DualTowerDiT(get_config("debug")).eval()
    video, audio = make_inputs(m.config, slots=1, views=1, batch=1, ragged=False)
    with torch.no_grad():
        ref = m(video, audio)
        m16 = m.to(torch.bfloat16)

        def cast(x: ModalityInput) -> ModalityInput:
            r = x.references
            r16 = dataclasses.replace(r, latents=r.latents.bfloat16())
            return dataclasses.replace(
                x, latents=x.latents.bfloat16(), context=x.context.bfloat16(), references=r16
            )

        out = m16(cast(video), cast(audio))
    assert out.video.dtype == torch.bfloat16
    assert (out.video.float() - ref.video).abs().max() < 0.1 * ref.video.abs().max()
