"""The photo set: `facevox synth --photos`, `facevox encode-photos`, and photos joining clip windows
in training (silent samples: their audio stream is noise without loss)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facevox.data.encode import EncodeConfig, EncodeError
from facevox.data.loader import BucketSampler, LatentDataset, MixedSampler
from facevox.data.photos import encode_photos
from facevox.data.shards import read_index, read_null_caption, read_sample
from facevox.synth.config import SynthConfig
from facevox.synth.photos import generate_photos
from facevox.training.config import TrainConfig
from facevox.training.objective import ObjectiveConfig, build_inputs, sample_generators
from facevox.training.strategies import get_strategy
from facevox.training.trainer import TrainError, train
from latent_fixtures import write_photo_shards, write_shards, write_tiny_codecs

WORLD = SynthConfig(seed=4, num_people=4, heldout_people=1, num_clips=1, width=160, height=120, workers=1)


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("photos")
    generate_photos(WORLD, out, views=3, progress=False)
    return out


@pytest.fixture(scope="module")
def codecs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_codecs(tmp_path_factory.mktemp("codecs"))


def _enc(codecs: tuple[Path, Path]) -> EncodeConfig:
    return EncodeConfig(
        video_codec=str(codecs[0]),
        audio_codec=str(codecs[1]),
        width=64,
        height=48,
        face_size=32,
        max_face_views=3,
        heldout_fraction=0.25,
        threads=1,
    )


def test_photo_set_layout_resume_and_config_guard(photo_set: Path, tmp_path: Path) -> None:
    people = sorted(d.name for d in (photo_set / "photos").iterdir())
    assert len(people) == 4
    for p in people:
        files = sorted(f.name for f in (photo_set / "photos" / p).iterdir())
        assert files == ["00.png", "01.png", "02.png"]
    info = json.loads((photo_set / "photos.json").read_text())
    assert info["views"] == 3 and info["people"] == {"train": 3, "heldout": 1}
    # views of one person differ (pose, light, background), photos are a function of the seed
    a = np.asarray(Image.open(photo_set / "photos" / people[0] / "00.png"))
    b = np.asarray(Image.open(photo_set / "photos" / people[0] / "01.png"))
    assert a.shape == (120, 160, 3) and np.abs(a.astype(int) - b.astype(int)).mean() > 5
    again = generate_photos(WORLD, photo_set, views=3, progress=False)
    assert again["photos_made_this_run"] == 0  # resumed: every person done
    with pytest.raises(ValueError, match="another config"):
        generate_photos(SynthConfig(**{**WORLD.__dict__, "seed": 5}), photo_set, views=3, progress=False)
    with pytest.raises(ValueError, match="views per person"):
        generate_photos(WORLD, photo_set, views=4, progress=False)
    with pytest.raises(ValueError, match=">= 2 views"):
        generate_photos(WORLD, tmp_path / "one", views=1, progress=False)


def test_encode_photos_writes_one_frame_silent_samples_with_other_views_as_references(
    photo_set: Path, codecs: tuple[Path, Path], tmp_path: Path
) -> None:
    src = tmp_path / "set"
    shutil.copytree(photo_set, src)
    victim = sorted((src / "photos").iterdir())[0]
    (victim / "01.png").write_bytes(b"not a png")  # unreadable: skipped with its reason
    lonely = sorted((src / "photos").iterdir())[1]
    for f in ("01.png", "02.png"):
        (lonely / f).unlink()  # one photo left: no reference to take, the person is skipped
    out = tmp_path / "shards"
    counts = encode_photos(_enc(codecs), src, out, progress=False)
    assert counts["people"] == 3 and counts["photos"] == 2 + 3 + 3
    reasons = {json.loads(line)["reason"] for line in (out / "skipped.jsonl").read_text().splitlines()}
    assert reasons == {"no_face", "too_few_photos"}
    entries = read_index(out)
    assert {e.split for e in entries} == {"train", "heldout"}
    s = read_sample(out / entries[-1].file)
    C = s.video_mean.shape[0]
    assert s.video_mean.shape == (C, 1, 6, 8)  # one latent frame of 64x48 at the x8 tiny codec
    assert s.meta["modality"] == "video" and s.meta["caption"]["speech"] == []
    assert "no speech" in s.meta["caption_text"] and "<REF_1_S>a person with" in s.meta["caption_text"]
    assert s.face_refs.shape[:2] == (1, 2) and bool(s.face_refs_mask.all())  # the two other views
    assert not bool(s.voice_refs_mask.any()) and not bool(s.voice_refs_self_mask.any())
    # the reference of a photo is another photo's crop: it equals that photo's own-crop latent
    own = {
        read_sample(out / e.file).sample_id: read_sample(out / e.file).face_refs_self[0, 0] for e in entries
    }
    pid = s.meta["person_ids"][0]
    mates = [v for k, v in own.items() if k.startswith(pid) and k != s.sample_id]
    assert all(any(torch.allclose(r, m) for m in mates) for r in s.face_refs[0])
    again = encode_photos(_enc(codecs), src, out, progress=False)
    assert again["made_this_run"] == 0 and again["reused"] == counts["photos"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncodeError, match="no photo folders"):
        encode_photos(_enc(codecs), tmp_path / "empty", tmp_path / "x", progress=False)


def test_silent_samples_get_noise_audio_and_no_audio_loss(tmp_path: Path) -> None:
    clips = write_shards(tmp_path / "clips", train=4, heldout=0)
    photos = write_photo_shards(tmp_path / "photos", photos=4)
    ds = LatentDataset(clips, extra=[photos])
    assert len(ds) == 8 and ds.path(5).parent.parent == photos
    batch = ds.batch([4, 5])
    assert batch.video_only is not None and bool(batch.video_only.all())
    null = read_null_caption(clips)
    for name in ("stage2", "stage1"):  # joint and unimodal stages alike
        v, a, _, _, wv, wa = build_inputs(
            batch, get_strategy(name), ObjectiveConfig(), null, sample_generators(0, 0, 0, [0, 1])
        )
        assert torch.equal(a.timesteps, torch.ones(2)) and torch.equal(wa, torch.zeros(2))
        assert bool((wv > 0).all()) and bool((v.timesteps < 1).all())
    mixed = ds.batch([0, 1])
    assert mixed.video_only is not None and not bool(mixed.video_only.any())


def test_mixed_sampler_share_offset_and_exact_resume(tmp_path: Path) -> None:
    clips = write_shards(tmp_path / "clips", train=8, heldout=0)
    photos = write_photo_shards(tmp_path / "photos", photos=8)
    ds = LatentDataset(clips, extra=[photos])

    def make() -> MixedSampler:
        return MixedSampler(
            BucketSampler(ds.entries[:8], 2), BucketSampler(ds.entries[8:], 2), 0.25, offset=8, seed=3
        )

    s = make()
    drawn = [next(s) for _ in range(400)]
    share = sum(b[0] >= 8 for b in drawn) / len(drawn)
    assert 0.18 < share < 0.32
    assert all(all(i >= 8 for i in b) or all(i < 8 for i in b) for b in drawn)
    s1 = make()
    for _ in range(37):
        next(s1)
    state = json.loads(json.dumps(s1.state_dict()))
    s2 = make()
    s2.load_state_dict(state)
    assert [next(s1) for _ in range(20)] == [next(s2) for _ in range(20)]
    with pytest.raises(ValueError, match="without photos"):
        s2.load_state_dict(BucketSampler(ds.entries[:8], 2).state_dict())
    with pytest.raises(ValueError, match="share"):
        MixedSampler(BucketSampler(ds.entries[:8], 2), BucketSampler(ds.entries[8:], 2), 1.0, offset=8)


def _train_cfg(data: Path, photos: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        data=str(data),
        photos=str(photos),
        out=str(out),
        strategy="stage3",
        size="debug",
        steps=6,
        batch_size=2,
        log_every=1,
        eval_every=6,
        checkpoint_every=6,
        warmup=1,
        lr=3e-3,
        threads=1,
        photo_share=0.5,
    )
    return TrainConfig(**{**base, **kw})


def test_training_with_photos_trains_both_kinds_and_refuses_other_codecs(tmp_path: Path) -> None:
    clips = write_shards(tmp_path / "clips")
    photos = write_photo_shards(tmp_path / "photos")
    info = {
        "codec_fingerprints": {"video": "a" * 16, "audio": "b" * 16},
        "text_encoder": "minilm",
    }
    (photos / "encode.json").write_text(json.dumps(info))  # the clip fixture records nothing to compare
    out = tmp_path / "run"
    train(_train_cfg(clips, photos, out), progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    audio = [r.get("loss_audio") for r in steps]
    # photo batches carry no audio loss (NaN / absent), clip batches do
    assert any(a is None or (isinstance(a, float) and math.isnan(a)) for a in audio)
    assert any(isinstance(a, float) and not math.isnan(a) for a in audio)
    (clips / "encode.json").write_text(json.dumps(info))
    (photos / "encode.json").write_text(
        json.dumps({**info, "codec_fingerprints": {"video": "c" * 16, "audio": "b" * 16}})
    )
    with pytest.raises(TrainError, match="codec_fingerprints differ"):
        train(_train_cfg(clips, photos, tmp_path / "run2"), progress=False)
    with pytest.raises(ValueError, match="photo_share"):
        _train_cfg(clips, photos, tmp_path / "run3", photo_share=0.0)


def test_cli_photo_set_then_encode(codecs: tuple[Path, Path], tmp_path: Path) -> None:
    from facevox.cli import main

    photos, shards = tmp_path / "photos", tmp_path / "shards"
    args = ["synth", "--photos", "2", "--out", str(photos), "--num-people", "3", "--heldout-people", "1"]
    assert main([*args, "--seed", "2", "--workers", "1", "width=160", "height=120"]) == 0
    assert len(list((photos / "photos").glob("*/*.png"))) == 6
    enc = [f"video_codec={codecs[0]}", f"audio_codec={codecs[1]}", "width=64", "height=48", "face_size=32"]
    assert main(["encode-photos", str(photos), "--out", str(shards), *enc]) == 0
    assert json.loads((shards / "encode.json").read_text())["kind"] == "photos"
    assert main(["encode-photos", str(tmp_path / "nothing"), "--out", str(tmp_path / "x"), *enc]) == 2
