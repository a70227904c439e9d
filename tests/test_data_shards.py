"""The latent shard format: round trip, validation, truncated files."""

import pytest
import torch

from facevox.data.shards import (
    IndexEntry,
    LatentSample,
    ShardError,
    read_index,
    read_null_caption,
    read_sample,
    write_index,
    write_null_caption,
    write_sample,
)


def make_sample(sample_id="s0", K=2, C=4, Ca=6, seed=0, **overrides):
    g = torch.Generator().manual_seed(seed)
    L = 10
    slot_tags = torch.full((L,), -1)
    slot_tags[2:4] = 0
    slot_tags[5:7] = K - 1
    kw = dict(
        sample_id=sample_id,
        video_mean=torch.randn(C, 3, 4, 4, generator=g),
        video_std=torch.rand(C, 3, 4, 4, generator=g),
        audio_mean=torch.randn(12, Ca, generator=g),
        audio_std=torch.rand(12, Ca, generator=g),
        caption=torch.randn(L, 16, generator=g).half(),
        caption_mask=torch.arange(L) < 8,
        caption_slot_ids=slot_tags,
        slot_ids=torch.arange(K),
        face_refs=torch.randn(K, 3, C, 1, 2, 2, generator=g),
        face_refs_mask=torch.tensor([[True, True, False]] * K),
        voice_refs=torch.randn(K, 5, Ca, generator=g),
        voice_refs_mask=torch.ones(K, 5, dtype=torch.bool),
        face_refs_self=torch.randn(K, 1, C, 1, 2, 2, generator=g),
        face_refs_self_mask=torch.ones(K, 1, dtype=torch.bool),
        voice_refs_self=torch.randn(K, 4, Ca, generator=g),
        voice_refs_self_mask=torch.ones(K, 4, dtype=torch.bool),
        meta={"person_ids": [f"p{i}" for i in range(K)], "split": "train"},
    )
    kw.update(overrides)
    return LatentSample(**kw)


def test_round_trip(tmp_path):
    s = make_sample()
    write_sample(tmp_path / "s0.safetensors", s)
    r = read_sample(tmp_path / "s0.safetensors")
    assert r.sample_id == "s0" and r.meta == s.meta and r.num_slots == 2
    for name in ("video_mean", "audio_std", "caption", "caption_mask", "face_refs", "voice_refs_self_mask"):
        assert torch.equal(getattr(r, name), getattr(s, name)), name
        assert getattr(r, name).dtype == getattr(s, name).dtype


def test_validation_names_the_problem():
    with pytest.raises(ShardError, match="face_refs must be"):
        make_sample(face_refs=torch.zeros(2, 3, 5, 1, 2, 2))  # wrong channel count
    with pytest.raises(ShardError, match="caption tags"):
        make_sample(K=1, caption_slot_ids=torch.tensor([-1, 3] + [-1] * 8))
    with pytest.raises(ShardError, match="at least one real token"):
        make_sample(caption_mask=torch.zeros(10, dtype=torch.bool))


def test_truncated_and_foreign_files_are_clear_errors(tmp_path):
    p = tmp_path / "s0.safetensors"
    write_sample(p, make_sample())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match="unreadable"):
        read_sample(p)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ShardError, match="not a facevox.latents"):
        read_sample(tmp_path / "other.safetensors")


def test_index_and_null_caption(tmp_path):
    with pytest.raises(ShardError, match="facevox encode"):
        read_index(tmp_path)
    e = [
        IndexEntry(
            sample_id=f"s{i}",
            file=f"samples/s{i}.safetensors",
            split="train",
            num_slots=1,
            person_ids=["p1"],
            video_shape=[4, 3, 4, 4],
            audio_frames=12,
            duration=2.0,
        )
        for i in (2, 1)
    ]
    write_index(tmp_path, e)
    assert [x.sample_id for x in read_index(tmp_path)] == ["s1", "s2"]
    write_null_caption(tmp_path, torch.zeros(3, 16).half(), torch.tensor([True, True, False]))
    cap, mask = read_null_caption(tmp_path)
    assert cap.shape == (3, 16) and mask.tolist() == [True, True, False]
