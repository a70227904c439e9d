"""The release loader on a fabricated release folder at reduced width (random tensors in the release's
key layout, two shards): strict, lazy (meta build + assign), checks before reading weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from facevox.models.manifests.describe import describe
from facevox.release import ReleaseError, load_release, load_release_model
from release_fixtures import CFG, DIMS
from release_fixtures import write_transformer as _release


def test_release_transformer_loads_strictly(tmp_path: Path) -> None:
    src = _release(tmp_path)
    model = load_release_model(tmp_path, config=CFG, dtype=torch.float32)
    sd = model.state_dict()
    assert torch.equal(
        sd["blocks.1.video.ref.self_attn.q.weight"], src["video_model.blocks.1.self_attn.q_prime.weight"]
    )
    assert torch.equal(sd["blocks.0.video.ref.ffn.fc2.bias"], src["video_model.blocks.0.ffn_prime.2.bias"])
    assert torch.equal(sd["blocks.0.video.ref.modulation"], src["video_model.blocks.0.modulation_prime"])
    assert torch.equal(
        sd["blocks.1.audio.cross_attn.k_bridge.weight"],
        src["audio_model.blocks.1.cross_attn.k_fusion.weight"],
    )
    assert torch.equal(sd["audio_embed.mlp.w3.weight"], src["audio_model.patch_embedding.2.w3.weight"])
    assert not sd["identity.table"].any()  # the release has none: zeros keep its function
    assert not any(v.is_meta for v in [*sd.values(), *model.buffers()])
    bf16 = load_release_model(tmp_path, config=CFG)
    assert {v.dtype for v in bf16.state_dict().values()} == {torch.bfloat16}


@pytest.mark.parametrize("damage", ["missing", "shape"])
def test_damaged_release_fails_before_loading(tmp_path: Path, damage: str) -> None:
    shapes = dict(describe("iap", DIMS))
    if damage == "missing":
        shapes.pop("video_model.blocks.1.ffn_prime.0.weight")
    else:
        shapes["audio_model.head.head.weight"] = (6, 48)
    _release(tmp_path, shapes)
    with pytest.raises(
        ReleaseError,
        match="lacks 'video_model.blocks.1.ffn_prime.0.weight'" if damage == "missing" else "has shape",
    ):
        load_release_model(tmp_path, config=CFG)


def test_not_a_release(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="not a folder"):
        load_release_model(tmp_path / "nope")
    save_file(
        {"video_model.blocks.0.self_attn.q.weight": torch.zeros(2, 2)}, str(tmp_path / "ovi.safetensors")
    )
    with pytest.raises(ReleaseError, match="q_prime"):
        load_release_model(tmp_path, config=CFG)


def test_full_release_names_what_is_missing(tmp_path: Path) -> None:
    _release(tmp_path)
    with pytest.raises(ReleaseError, match="Wan2.2 VAE"):
        load_release(tmp_path)
    vae = tmp_path / "Wan2.2-TI2V-5B-Diffusers" / "vae"
    vae.mkdir(parents=True)
    (vae / "config.json").write_text('{"z_dim": 48}')
    t5 = tmp_path / "umt5-xxl"
    t5.mkdir()
    (t5 / "config.json").write_text('{"model_type": "umt5"}')
    with pytest.raises(
        ReleaseError, match=r"no MMAudio 16 kHz codec folder \(config.json of an MMAudioCodec\); put MMAudio"
    ):
        load_release(tmp_path)
    pickles = tmp_path / "MMAudio" / "ext_weights"
    pickles.mkdir(parents=True)
    (pickles / "v1-16.pth").write_bytes(b"")
    with pytest.raises(ReleaseError, match=r"found MMAudio's pickles \(v1-16.pth\): convert them once"):
        load_release(tmp_path)
