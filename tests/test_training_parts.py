"""Trainer parts: strategies' parameter selection, objective inputs and dropout, the sampler."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from facevox.data.loader import BucketSampler, LatentDataset
from facevox.data.shards import ShardError, read_null_caption
from facevox.models import DualTowerDiT, get_config
from facevox.training.config import TrainConfig
from facevox.training.objective import (
    ObjectiveConfig,
    build_inputs,
    face_region,
    flow_loss,
    sample_generators,
)
from facevox.training.strategies import get_strategy
from facevox.training.trainer import Validator
from latent_fixtures import write_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shards(tmp_path_factory.mktemp("shards"))


def test_strategies_train_what_the_paper_says() -> None:
    m = DualTowerDiT(get_config("debug"))
    base = set(get_strategy("base").select(m))
    assert base == {n for n, _ in m.named_parameters()}
    s1 = set(get_strategy("stage1").select(m))
    assert s1 and all((".self_attn." in n or ".ref." in n or n.startswith("identity.")) for n in s1)
    assert any(".ref." in n for n in s1) and any(".self_attn." in n for n in s1)
    s2 = set(get_strategy("stage2").select(m))
    assert s1 < s2 and any("k_bridge" in n for n in s2) and any(".cross_attn.q" in n for n in s2)
    for name in ("stage1", "stage2", "stage3"):
        sel = get_strategy(name).select(m)
        assert not any(".ffn." in n or "embed" in n or "head" in n for n in sel), name
    assert {n for n, p in m.named_parameters() if p.requires_grad} == set(get_strategy("stage3").select(m))
    # the from-scratch departure: a stage may train every parameter, FFNs included
    assert set(get_strategy("stage3").select(m, "all")) == base
    assert all(p.requires_grad for p in m.parameters())
    video = set(get_strategy("stage3").select(m, "video"))
    paper = set(get_strategy("stage3").select(m))
    assert (
        paper < video < base and any("video.ffn." in n for n in video) and "video_head.proj.weight" in video
    )
    assert not any("audio.ffn." in n or n.startswith("audio_") for n in video)
    with pytest.raises(ValueError, match="'paper', 'video' or 'all'"):
        get_strategy("stage3").select(m, "ffn")  # type: ignore[arg-type]


def test_unimodal_stage_gives_the_other_stream_pure_noise_and_no_loss(shards: Path) -> None:
    ds = LatentDataset(shards, splits=["train"])
    b = ds.batch(range(8))
    v, a, tv, ta, wv, wa = build_inputs(
        b,
        get_strategy("stage1"),
        ObjectiveConfig(),
        read_null_caption(shards),
        sample_generators(0, 0, 0, range(8)),
    )
    assert bool(((wv > 0) ^ (wa > 0)).all())  # exactly one stream per sample
    assert bool((v.timesteps[wa > 0] == 1).all()) and bool((a.timesteps[wv > 0] == 1).all())
    assert v.references is not None and a.references is not None


def test_dropout_removes_conditions_and_their_caption_tags(shards: Path) -> None:
    ds = LatentDataset(shards, splits=["train"])
    b = ds.batch(range(4))
    null = read_null_caption(shards)
    gens = sample_generators(0, 0, 0, range(4))
    cfg = ObjectiveConfig(drop_all=1.0)
    v, a, *_ = build_inputs(b, get_strategy("stage2"), cfg, null, gens)
    assert not bool(v.references.mask.any()) and not bool(a.references.mask.any())
    assert bool((v.context_slot_ids == -1).all())
    assert torch.equal(v.context_mask[:, : null[1].shape[0]], null[1].expand(4, -1))
    keep = ObjectiveConfig(drop_all=0, drop_text=0, drop_faces=1.0, drop_voices=0)
    v, a, *_ = build_inputs(b, get_strategy("stage2"), keep, null, sample_generators(0, 0, 0, range(4)))
    assert not bool(v.references.mask.any()) and bool(a.references.mask.any())
    assert torch.equal(v.context_slot_ids, b.caption_slot_ids)  # voices still hold every slot
    # same seeds, same draws; another step, other draws
    v2, *_ = build_inputs(b, get_strategy("stage2"), keep, null, sample_generators(0, 0, 0, range(4)))
    v3, *_ = build_inputs(b, get_strategy("stage2"), keep, null, sample_generators(0, 1, 0, range(4)))
    assert torch.equal(v.latents, v2.latents) and not torch.equal(v.latents, v3.latents)


def test_sampler_resumes_and_ranks_split_the_global_batch(shards: Path) -> None:
    entries = LatentDataset(shards, splits=["train"]).entries
    s = BucketSampler(entries, 3, seed=5)
    first = [next(s) for _ in range(7)]  # crosses an epoch (12 samples -> 4 batches)
    r = BucketSampler(entries, 3, seed=5)
    [next(r) for _ in range(3)]
    state = r.state_dict()
    r2 = BucketSampler(entries, 3, seed=5)
    r2.load_state_dict(state)
    assert [next(r2) for _ in range(4)] == first[3:]
    ranks = [BucketSampler(entries, 2, seed=5, rank=k, world=2) for k in range(2)]
    glob = BucketSampler(entries, 4, seed=5)
    for _ in range(5):
        assert next(ranks[0]) + next(ranks[1]) == next(glob)
    with pytest.raises(ShardError, match="lower the batch size"):
        BucketSampler(entries, 64)
    with pytest.raises(ValueError, match="seed"):
        BucketSampler(entries, 3, seed=6).load_state_dict(state)


def test_reference_augmentation_keeps_a_subset_with_at_least_one_view_and_a_contiguous_voice_span(
    shards: Path,
) -> None:
    ds = LatentDataset(shards, splits=["train"])
    b = ds.batch(range(8))
    null = read_null_caption(shards)
    off = ObjectiveConfig(drop_all=0, drop_faces=0, drop_voices=0)
    on = ObjectiveConfig(drop_all=0, drop_faces=0, drop_voices=0, ref_view_keep=0.3, voice_ref_min_span=0.5)
    s3 = get_strategy("stage3")
    v0, a0, *_ = build_inputs(b, s3, off, null, sample_generators(0, 0, 0, range(8)))
    assert torch.equal(v0.references.mask, b.face_refs_mask) and torch.equal(
        a0.references.mask, b.voice_refs_mask
    )
    faces, voices = [], []
    for step in range(6):
        v, a, *_ = build_inputs(b, s3, on, null, sample_generators(0, step, 0, range(8)))
        fm, vm = v.references.mask, a.references.mask
        assert bool((fm <= b.face_refs_mask).all()) and bool((vm <= b.voice_refs_mask).all())  # subsets
        had = b.face_refs_mask.any(-1)
        assert torch.equal(fm.any(-1), had)  # every slot with views keeps one
        n = b.voice_refs_mask.sum(-1)
        kept = vm.sum(-1)
        assert bool((kept[n > 0] >= torch.ceil(0.5 * n[n > 0].float())).all())
        for row in vm[n > 0]:  # one contiguous span
            idx = row.nonzero().flatten()
            assert int(idx[-1] - idx[0] + 1) == len(idx)
        faces.append(fm.sum())
        voices.append(vm.sum())
    assert max(faces) < b.face_refs_mask.sum() and max(voices) < b.voice_refs_mask.sum()  # it does cut


def test_validation_sees_every_condition_whole() -> None:
    aug = ObjectiveConfig(drop_text=0.5, drop_faces=0.3, ref_view_keep=0.5, voice_ref_min_span=0.5)
    v = Validator(
        TrainConfig(val_split="", objective=aug), get_strategy("stage3"), (torch.zeros(1), torch.zeros(1))
    )
    o = v.objective
    assert (o.drop_text, o.drop_faces, o.drop_voices, o.drop_all) == (0, 0, 0, 0)
    assert (o.ref_view_keep, o.voice_ref_min_span) == (1.0, 1.0)


def test_validation_per_sample_losses_are_fixed_and_average_to_the_reported_loss(shards: Path) -> None:
    torch.manual_seed(0)
    model = DualTowerDiT(get_config("debug")).eval()
    null = read_null_caption(shards)
    v = Validator(TrainConfig(data=str(shards), batch_size=2, val_batches=2), get_strategy("stage2"), null)
    sv, sa = v.sample_losses(model, v.objective)
    assert sv.shape == sa.shape == (4,)  # 2 batches of 2 held-out samples, in order
    again = v.sample_losses(model, v.objective)
    assert torch.equal(sv, again[0]) and torch.equal(sa, again[1])  # same noise and sigmas each call
    mv, ma = v.losses(model, v.objective)
    assert mv == pytest.approx(float(sv[~sv.isnan()].mean())) and ma == pytest.approx(
        float(sa[~sa.isnan()].mean())
    )
    # a different model gives different per-sample losses: the figures depend on the weights
    other = DualTowerDiT(get_config("debug")).eval()
    assert not torch.equal(v.sample_losses(other, v.objective)[0], sv)


def test_nested_dropout_trains_each_guidance_variant_at_its_rate(shards: Path) -> None:
    ds = LatentDataset(shards, splits=["train"])
    b = ds.batch(range(4))
    null = read_null_caption(shards)
    counts = torch.zeros(4)
    cfg = ObjectiveConfig(dropout="nested", nested_probs=(0.25, 0.25, 0.25, 0.25), drop_text=0.0)
    for step in range(50):
        v, a, *_ = build_inputs(b, get_strategy("stage2"), cfg, null, sample_generators(0, step, 0, range(4)))
        text = v.context_mask.sum(1) > null[1].sum()  # the sample's own caption is longer than the null one
        faces, voices = v.references.mask.flatten(1).any(1), a.references.mask.flatten(1).any(1)
        # nested: faces only with text, voices only with faces
        assert bool((faces <= text).all()) and bool((voices <= faces).all())
        level = text.long() + faces.long() + voices.long()  # 0 none, 1 text, 2 text+faces, 3 all
        counts += torch.bincount(level, minlength=4)
    share = counts / counts.sum()
    assert bool(((share - 0.25).abs() < 0.1).all()), share
    # drop_text on top: every sample with references keeps them, "all" samples lose the caption
    refs_only = ObjectiveConfig(dropout="nested", nested_probs=(0, 0, 0, 1), drop_text=1.0)
    v, a, *_ = build_inputs(b, get_strategy("stage2"), refs_only, null, sample_generators(0, 0, 0, range(4)))
    assert bool(v.references.mask.flatten(1).any(1).all()) and bool(a.references.mask.flatten(1).any(1).all())
    assert bool((v.context_mask.sum(1) == null[1].sum()).all())
    with pytest.raises(ValueError, match="nested_probs"):
        ObjectiveConfig(dropout="nested", nested_probs=(0.5, 0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="dropout must be"):
        ObjectiveConfig(dropout="sometimes")


def test_uniform_fraction_puts_sigma_mass_at_the_top_of_the_schedule(shards: Path) -> None:
    ds = LatentDataset(shards, splits=["train"])
    b = ds.batch(range(8))
    null = read_null_caption(shards)

    def share_above(cfg: ObjectiveConfig, level: float) -> float:
        sig = torch.cat(
            [
                build_inputs(b, get_strategy("base"), cfg, null, sample_generators(0, s, 0, range(8)))[
                    0
                ].timesteps
                for s in range(40)
            ]
        )
        return float((sig > level).float().mean())

    assert share_above(ObjectiveConfig(), 0.9) < 0.05
    assert share_above(ObjectiveConfig(uniform_fraction=0.5), 0.9) > 0.03
    # off by default draws exactly what it drew before (golden losses unchanged)
    v1, *_ = build_inputs(
        b, get_strategy("base"), ObjectiveConfig(), null, sample_generators(0, 0, 0, range(8))
    )
    v2, *_ = build_inputs(
        b,
        get_strategy("base"),
        ObjectiveConfig(uniform_fraction=0.0),
        null,
        sample_generators(0, 0, 0, range(8)),
    )
    assert torch.equal(v1.latents, v2.latents)


def test_max_sigma_fraction_trains_where_sampling_starts(shards: Path) -> None:
    ds = LatentDataset(shards, splits=["train"])
    b = ds.batch(range(8))
    null = read_null_caption(shards)
    draws = [
        build_inputs(
            b,
            get_strategy("base"),
            ObjectiveConfig(max_sigma_fraction=0.5),
            null,
            sample_generators(0, s, 0, range(8)),
        )[:2]
        for s in range(20)
    ]
    sv = torch.cat([v.timesteps.reshape(8, -1)[:, 0] for v, _ in draws])
    sa = torch.cat([a.timesteps.reshape(8, -1)[:, 0] for _, a in draws])
    for s in (sv, sa):  # about half of each stream's draws sit exactly at 1, the rest below
        assert 0.3 < float((s == 1.0).float().mean()) < 0.7
        assert float((s < 0.999).float().mean()) > 0.3
    with pytest.raises(ValueError, match="max_sigma_fraction"):
        ObjectiveConfig(max_sigma_fraction=1.5)


def test_release_size_wrapping_plan_on_meta(capsys: pytest.CaptureFixture[str]) -> None:
    """iap-5b built on the meta device (no memory): every parameter lands in one FSDP2 unit."""
    from facevox.training.parallel import main

    main(["--size", "iap-5b", "--world", "8", "--bf16", "--checkpointing"])
    out = capsys.readouterr().out
    assert "iap-5b:" in out and "31 FSDP2 units over 8 ranks, compute bf16" in out
    assert out.count("blocks.") == 30 and "root" in out
    from facevox.models import DualTowerDiT, get_config

    with torch.device("meta"):
        model = DualTowerDiT(get_config("iap-5b"))
    total = float(out.split(": ")[1].split(" B ")[0])  # printed to 3 decimals, in billions
    assert total == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e9, abs=1e-3)
    assert total > 10  # two ~5B towers, the video tower's reference copy and the bridge


def test_face_region_covers_the_cells_whose_centres_lie_in_a_box() -> None:
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [float("nan")] * 4], [[float("nan")] * 4] * 2])
    r = face_region(boxes, 4, 6)  # (B=2, H=4, W=6)
    assert r.shape == (2, 4, 6)
    assert r[0].nonzero().tolist() == [[y, x] for y in range(2) for x in range(3)]  # the top-left quarter
    assert not r[1].any()  # no box, no region


def test_face_region_weight_weights_the_video_error_inside_the_face_boxes(shards: Path) -> None:
    torch.manual_seed(0)
    model = DualTowerDiT(get_config("debug")).eval()
    ds = LatentDataset(shards, splits=["train"])
    b = ds.batch(range(4))
    null, strategy = read_null_caption(shards), get_strategy("stage2")
    assert b.face_boxes is not None and b.face_boxes.shape == (4, 2, 4)  # K padded to 2 with NaN
    cfg = ObjectiveConfig(face_region_weight=3.0)
    with torch.no_grad():
        sl = flow_loss(model, b, strategy, cfg, null, sample_generators(0, 0, 0, range(4)))
        vin, ain, tv, *_ = build_inputs(b, strategy, cfg, null, sample_generators(0, 0, 0, range(4)))
        err = (model(vin, ain).video - tv).pow(2)
    region = face_region(b.face_boxes, err.shape[3], err.shape[4])[:, None, None].float()
    assert 0 < float(region.mean()) < 1
    e = 1 + 3.0 * region
    expect = (err * e).mean((1, 2, 3, 4)) / e.mean((1, 2, 3, 4))
    assert torch.allclose(sl.video, expect, rtol=1e-5)
    face = (err * region).sum((1, 2, 3, 4)) / (region.sum((1, 2, 3, 4)) * err.shape[1] * err.shape[2])
    assert sl.video_face is not None and torch.allclose(sl.video_face, face, rtol=1e-5)
    plain = flow_loss(model, b, strategy, ObjectiveConfig(), null, sample_generators(0, 0, 0, range(4)))
    assert torch.allclose(plain.video, err.mean((1, 2, 3, 4)), rtol=1e-5)
    assert not torch.allclose(plain.video, sl.video)  # the weight changes what is learned
    with pytest.raises(ValueError, match="re-encode"):  # shards written before boxes: refused, not ignored
        flow_loss(
            model,
            dataclasses.replace(b, face_boxes=None),
            strategy,
            cfg,
            null,
            sample_generators(0, 0, 0, range(4)),
        )
    with pytest.raises(ValueError, match="face_region_weight"):
        ObjectiveConfig(face_region_weight=-1.0)


def test_validation_reports_the_face_region_and_its_reference_gain(shards: Path) -> None:
    torch.manual_seed(0)
    model = DualTowerDiT(get_config("debug")).eval()
    cfg = TrainConfig(
        data=str(shards), batch_size=2, val_batches=2, objective=ObjectiveConfig(face_region_weight=4.0)
    )
    v = Validator(cfg, get_strategy("stage3"), read_null_caption(shards))
    assert v.objective.face_region_weight == 0.0  # val_video stays the plain mean, comparable across runs
    out = v(model)
    assert {"val_video_face", "ref_gain_video_face"} <= out.keys()
    assert out["val_video_face"] > 0 and out["val_video_face"] != out["val_video"]
