"""Save / load round trip and the declarative key maps (random state dicts in Wan / diffusers / Ovi
layouts at reduced width; never downloaded)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from facevox.models import DualTowerConfig, DualTowerDiT, TowerConfig, get_config
from facevox.models.keymaps import KEYMAPS, convert_state_dict, load_foreign
from facevox.models.weights import read_config
from model_inputs import make_inputs


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = dataclasses.replace(get_config("debug"), ref_position_mode="before", audio_ref_start=40)
    m = DualTowerDiT(cfg).eval()
    m.save_pretrained(tmp_path)
    assert read_config(tmp_path) == cfg
    loaded = DualTowerDiT.from_pretrained(tmp_path)
    assert loaded.config == cfg
    for k, v in m.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    video, audio = make_inputs(cfg, slots=2, views=2)
    with torch.no_grad():
        a, b = m(video, audio), loaded.eval()(video, audio)
    assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio)


def test_load_is_strict(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    DualTowerDiT(get_config("debug")).save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    state = load_file(str(path))
    state.pop("identity.table")
    save_file(state, str(path), metadata=meta)
    with pytest.raises(RuntimeError, match="identity.table"):
        DualTowerDiT.from_pretrained(tmp_path)


# ---------------------------------------------------------------- foreign layouts
D, F, HEADS, LAYERS, TEXT, FREQ = 48, 96, 4, 2, 16, 32
CV, CA = 8, 5


def _wan_tower(prefix: str, *, audio: bool, ovi: bool) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of Wan's ``WanModel`` (Ovi's copy when ``ovi``), written from the public
    model definition at reduced width."""
    s: dict[str, tuple[int, ...]] = {}
    if audio:  # Ovi audio: Sequential(ChannelLastConv1d(k=7), SiLU, ConvMLP(dim, 4 dim))
        hidden = 256 * ((int(2 * 4 * D / 3) + 255) // 256)
        s |= {"patch_embedding.0.weight": (D, CA, 7), "patch_embedding.0.bias": (D,)}
        s |= {"patch_embedding.2.w1.weight": (hidden, D, 7), "patch_embedding.2.w2.weight": (D, hidden, 7)}
        s |= {"patch_embedding.2.w3.weight": (hidden, D, 7)}
        out = CA
    else:
        s |= {"patch_embedding.weight": (D, CV, 1, 2, 2), "patch_embedding.bias": (D,)}
        out = CV * 4
    s |= {"text_embedding.0.weight": (D, TEXT), "text_embedding.0.bias": (D,)}
    s |= {"text_embedding.2.weight": (D, D), "text_embedding.2.bias": (D,)}
    s |= {"time_embedding.0.weight": (D, FREQ), "time_embedding.0.bias": (D,)}
    s |= {"time_embedding.2.weight": (D, D), "time_embedding.2.bias": (D,)}
    s |= {"time_projection.1.weight": (6 * D, D), "time_projection.1.bias": (6 * D,)}
    for i in range(LAYERS):
        b = f"blocks.{i}."
        for att in ("self_attn", "cross_attn"):
            for p in "qkvo":
                s |= {f"{b}{att}.{p}.weight": (D, D), f"{b}{att}.{p}.bias": (D,)}
            s |= {f"{b}{att}.norm_q.weight": (D,), f"{b}{att}.norm_k.weight": (D,)}
        s |= {f"{b}norm3.weight": (D,), f"{b}norm3.bias": (D,)}
        s |= {
            f"{b}ffn.0.weight": (F, D),
            f"{b}ffn.0.bias": (F,),
            f"{b}ffn.2.weight": (D, F),
            f"{b}ffn.2.bias": (D,),
        }
        s |= {f"{b}modulation.modulation" if ovi else f"{b}modulation": (1, 6, D)}
        if ovi:  # FusionModel.inject_cross_attention_kv_projections
            c = f"{b}cross_attn."
            s |= {f"{c}k_fusion.weight": (D, D), f"{c}k_fusion.bias": (D,)}
            s |= {f"{c}v_fusion.weight": (D, D), f"{c}v_fusion.bias": (D,)}
            s |= {f"{c}pre_attn_norm_fusion.weight": (D,), f"{c}pre_attn_norm_fusion.bias": (D,)}
            s |= {f"{c}norm_k_fusion.weight": (D,)}
    s |= {"head.head.weight": (out, D), "head.head.bias": (out,), "head.modulation": (1, 2, D)}
    return {prefix + k: v for k, v in s.items()}


def _diffusers_wan() -> dict[str, tuple[int, ...]]:
    """Key names and shapes of diffusers' ``WanTransformer3DModel`` (t2v) at reduced width."""
    s: dict[str, tuple[int, ...]] = {"patch_embedding.weight": (D, CV, 1, 2, 2), "patch_embedding.bias": (D,)}
    ce = "condition_embedder."
    s |= {f"{ce}time_embedder.linear_1.weight": (D, FREQ), f"{ce}time_embedder.linear_1.bias": (D,)}
    s |= {f"{ce}time_embedder.linear_2.weight": (D, D), f"{ce}time_embedder.linear_2.bias": (D,)}
    s |= {f"{ce}time_proj.weight": (6 * D, D), f"{ce}time_proj.bias": (6 * D,)}
    s |= {f"{ce}text_embedder.linear_1.weight": (D, TEXT), f"{ce}text_embedder.linear_1.bias": (D,)}
    s |= {f"{ce}text_embedder.linear_2.weight": (D, D), f"{ce}text_embedder.linear_2.bias": (D,)}
    for i in range(LAYERS):
        b = f"blocks.{i}."
        for att in ("attn1", "attn2"):
            for p in ("to_q", "to_k", "to_v", "to_out.0"):
                s |= {f"{b}{att}.{p}.weight": (D, D), f"{b}{att}.{p}.bias": (D,)}
            s |= {f"{b}{att}.norm_q.weight": (D,), f"{b}{att}.norm_k.weight": (D,)}
        s |= {f"{b}norm2.weight": (D,), f"{b}norm2.bias": (D,)}
        s |= {f"{b}ffn.net.0.proj.weight": (F, D), f"{b}ffn.net.0.proj.bias": (F,)}
        s |= {f"{b}ffn.net.2.weight": (D, F), f"{b}ffn.net.2.bias": (D,)}
        s |= {f"{b}scale_shift_table": (1, 6, D)}
    s |= {"proj_out.weight": (CV * 4, D), "proj_out.bias": (CV * 4,), "scale_shift_table": (1, 2, D)}
    return s


def _random(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(*v, generator=g) for k, v in shapes.items()}


def _config(video_ref: str = "lora", audio_ref: str = "lora") -> DualTowerConfig:
    return DualTowerConfig(
        name="keymap-test",
        video=TowerConfig(
            in_channels=CV, dim=D, heads=HEADS, ffn_dim=F, ref_params=video_ref, ref_lora_rank=4
        ),
        audio=TowerConfig(
            in_channels=CA, dim=D, heads=HEADS, ffn_dim=F, ref_params=audio_ref, ref_lora_rank=4
        ),
        depth=LAYERS,
        text_dim=TEXT,
        freq_dim=FREQ,
    )


def test_ovi_layout_loads_both_towers() -> None:
    src = _random(
        _wan_tower("video_model.", audio=False, ovi=True) | _wan_tower("audio_model.", audio=True, ovi=True)
    )
    m = DualTowerDiT(_config("copy", "shared"))
    fresh = load_foreign(m, src, "ovi")
    sd = m.state_dict()
    assert set(fresh) == {"identity.table"}
    assert torch.equal(
        sd["blocks.1.video.self_attn.q.weight"], src["video_model.blocks.1.self_attn.q.weight"]
    )
    assert torch.equal(
        sd["blocks.0.audio.cross_attn.k_bridge.weight"],
        src["audio_model.blocks.0.cross_attn.k_fusion.weight"],
    )
    assert torch.equal(
        sd["blocks.1.video.cross_attn.bridge_norm.bias"],
        src["video_model.blocks.1.cross_attn.pre_attn_norm_fusion.bias"],
    )
    assert torch.equal(sd["blocks.0.audio.modulation"], src["audio_model.blocks.0.modulation.modulation"])
    assert torch.equal(sd["audio_embed.mlp.w2.weight"], src["audio_model.patch_embedding.2.w2.weight"])
    assert torch.equal(sd["video_head.proj.weight"], src["video_model.head.head.weight"])
    # Reference copies start as clones of the pretrained target weights (the release's *_prime init).
    assert torch.equal(sd["blocks.1.video.ref.ffn.fc2.weight"], src["video_model.blocks.1.ffn.2.weight"])
    assert torch.equal(sd["blocks.0.video.ref.modulation"], src["video_model.blocks.0.modulation.modulation"])
    # Every source tensor landed somewhere, bit for bit.
    mapped, _ = convert_state_dict(src, KEYMAPS["ovi"], {k: v.shape for k, v in sd.items()})
    assert len(mapped) == len(src) + sum(1 for k in sd if ".ref." in k)


def test_wan_layouts_load_the_video_tower() -> None:
    wan = _random(_wan_tower("", audio=False, ovi=False), seed=1)
    m = DualTowerDiT(_config())
    fresh = load_foreign(m, wan, "wan")
    sd = m.state_dict()
    assert torch.equal(sd["blocks.0.video.cross_norm.weight"], wan["blocks.0.norm3.weight"])
    assert torch.equal(sd["video_time.proj.bias"], wan["time_projection.1.bias"])
    assert any(k.startswith("blocks.0.audio.") for k in fresh) and "video_embed.proj.weight" not in fresh
    assert all(".ref." in k or "audio" in k or "bridge" in k or k.startswith("identity") for k in fresh)

    diff = _random(_diffusers_wan(), seed=2)
    m2 = DualTowerDiT(_config())
    load_foreign(m2, diff, "wan-diffusers")
    sd2 = m2.state_dict()
    assert torch.equal(sd2["blocks.1.video.self_attn.o.weight"], diff["blocks.1.attn1.to_out.0.weight"])
    assert torch.equal(sd2["blocks.1.video.cross_norm.bias"], diff["blocks.1.norm2.bias"])
    assert torch.equal(sd2["video_head.modulation"], diff["scale_shift_table"])
    assert torch.equal(sd2["blocks.0.video.modulation"], diff["blocks.0.scale_shift_table"])


def test_wan_and_diffusers_give_the_same_model() -> None:
    """The same weights written in the two layouts load to the same facevox video tower."""
    wan = _random(_wan_tower("", audio=False, ovi=False), seed=3)
    rename = {
        "text_embedding.0": "condition_embedder.text_embedder.linear_1",
        "text_embedding.2": "condition_embedder.text_embedder.linear_2",
        "time_embedding.0": "condition_embedder.time_embedder.linear_1",
        "time_embedding.2": "condition_embedder.time_embedder.linear_2",
        "time_projection.1": "condition_embedder.time_proj",
        "head.head": "proj_out",
        "head.modulation": "scale_shift_table",
    }
    diff = {}
    for k, v in wan.items():
        n = k
        for a, b in rename.items():
            n = n.replace(a, b) if n.startswith(a) else n
        n = n.replace("self_attn.o.", "attn1.to_out.0.").replace("cross_attn.o.", "attn2.to_out.0.")
        for p in "qkv":
            n = n.replace(f"self_attn.{p}.", f"attn1.to_{p}.").replace(f"cross_attn.{p}.", f"attn2.to_{p}.")
        n = n.replace("self_attn.", "attn1.").replace("cross_attn.", "attn2.").replace("norm3.", "norm2.")
        n = n.replace("ffn.0.", "ffn.net.0.proj.").replace("ffn.2.", "ffn.net.2.")
        n = n.replace(".modulation", ".scale_shift_table") if n.startswith("blocks.") else n
        diff[n] = v
    assert set(diff) == set(_diffusers_wan())
    torch.manual_seed(0)
    a = DualTowerDiT(_config())
    torch.manual_seed(0)
    b = DualTowerDiT(_config())
    load_foreign(a, wan, "wan")
    load_foreign(b, diff, "wan-diffusers")
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_keymap_errors() -> None:
    src = _random(_wan_tower("", audio=False, ovi=False))
    m = DualTowerDiT(_config())
    with pytest.raises(ValueError, match="match no rule"):
        load_foreign(m, src | {"blocks.0.mystery.weight": torch.zeros(1)}, "wan")
    bad = dict(src)
    bad["blocks.0.ffn.0.weight"] = torch.zeros(F + 1, D)
    with pytest.raises(ValueError, match="has shape"):
        load_foreign(m, bad, "wan")
    missing = dict(src)
    missing.pop("blocks.1.self_attn.q.weight")
    with pytest.raises(ValueError, match="no source"):
        load_foreign(m, missing, "wan")
    with pytest.raises(ValueError, match="unknown checkpoint layout"):
        load_foreign(m, src, "hunyuan")
