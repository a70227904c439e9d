"""DreamID-Omni's checkpoint in facevox: the committed key / shape manifest (full size, meta device),
a strict load of a fabricated reduced-width checkpoint (random tensors named as DreamID-Omni names
them), refusals naming the first differing key, and numerical parity of the loaded model against an
independent re-statement of DreamID-Omni's ``FusionModel`` forward with its in-sequence references.

The re-statement below is written from GitHub Guoxu1233/DreamID-Omni at commit 9a9f456
(``dreamid_omni/modules/{model,fusion}.py``, ``dreamid_omni_engine.py``), as plain tensor algebra on the
checkpoint's own key names, one sample, in float64:

  tokens  video: Conv3d patch embedding of [target frames ; one face frame per person];
          audio: conv1d(k 7) -> SiLU -> w2(silu(w1 x) * w3 x) (k 7) of [target latents ; voices]
  time    e = L2(silu(L1([cos, sin](t w)))), e0 = P(silu(e)) as 6 x D; every token, references
          included, gets the sampling timestep t
  RoPE    video token (f, i, j): time f for targets, 150 (k + 1) for face k; audio index n for targets,
          int(150 / s) (k + 1) + m for voice k's token m, rotated by index x s (s = bf16(31 / 157)) on
          the time pairs only
  block   audio SA, video SA, audio (caption + bridge to the new video) + FFN, video (caption + bridge to
          the audio from before its cross step) + FFN; modulation = modulation.modulation + e0
  head    LN(x) (1 + scale) + shift with (shift, scale) = head.modulation + e; video unpatchified
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor

from facevox.models import DualTowerDiT
from facevox.models.manifests.describe import describe
from facevox.models.manifests.describe_dreamid import (
    AUDIO_DIT,
    VIDEO_DIT,
    DiTConfig,
    describe_dreamid,
    load_dreamid_manifest,
)
from facevox.release.dreamid_inputs import (
    audio_positions,
    dreamid_model_inputs,
    target_prediction,
    video_positions,
    voice_offset,
)
from facevox.release.dreamid_omni import (
    TIME_SCALE,
    DreamIDOmniError,
    check_dreamid_layout,
    checkpoint_family,
    dreamid_omni_config,
    load_dreamid_omni_model,
)
from release_fixtures import write_transformer as write_iap_transformer

SMALL = {"dim": 32, "ffn_dim": 64, "freq_dim": 32, "num_heads": 2, "num_layers": 2, "text_dim": 16}
V_SMALL = replace(VIDEO_DIT, **SMALL, in_dim=4, out_dim=4)
A_SMALL = replace(AUDIO_DIT, **SMALL, in_dim=5, out_dim=5)
DIT = (V_SMALL, A_SMALL)


def write_checkpoint(root: Path, shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, Tensor]:
    """A reduced-width ``ckpts/DreamID_Omni/dreamid_omni.safetensors`` (+ an unrelated file)."""
    g = torch.Generator().manual_seed(0)
    src = {k: 0.3 * torch.randn(*v, generator=g) for k, v in (shapes or describe_dreamid(*DIT)).items()}
    (root / "DreamID_Omni").mkdir(parents=True)
    save_file(src, str(root / "DreamID_Omni" / "dreamid_omni.safetensors"))
    save_file({"unrelated.weight": torch.zeros(2)}, str(root / "other.safetensors"))
    return src


# ---------------------------------------------------------------- manifest and full size (meta)
def test_manifest_is_ovis_fusion_layout_at_full_size() -> None:
    manifest = load_dreamid_manifest()
    assert manifest == describe_dreamid(), "dreamid_omni.json is stale: rerun describe_dreamid"
    # written from DreamID-Omni's module tree, independently of describe.py: the same table as Ovi's
    assert manifest == describe("ovi")
    assert len(manifest) == 2073
    assert sum(math.prod(v) for v in manifest.values()) == 11_660_753_108
    video = sum(math.prod(v) for k, v in manifest.items() if k.startswith("video_model."))
    assert video == 5_566_479_552  # the audio tower is 6,094,273,556
    assert manifest["video_model.blocks.29.modulation.modulation"] == (1, 6, 3072)
    assert manifest["audio_model.patch_embedding.2.w1.weight"] == (8192, 3072, 7)
    assert not any("_prime" in k or "identity" in k for k in manifest)


def test_full_size_model_on_meta_maps_every_tensor() -> None:
    rename, fresh = check_dreamid_layout(load_dreamid_manifest())
    assert fresh == ["identity.table"]  # DualTowerDiT's identity table: not in the checkpoint, zeroed
    assert len(rename) == 2073 and len(set(rename.values())) == 2073
    assert (
        rename["video_model.blocks.3.cross_attn.norm_k_fusion.weight"]
        == "blocks.3.video.cross_attn.norm_k_bridge.weight"
    )
    assert rename["audio_model.blocks.0.norm3.bias"] == "blocks.0.audio.cross_norm.bias"
    assert rename["video_model.head.head.weight"] == "video_head.proj.weight"
    with torch.device("meta"):
        model = DualTowerDiT(dreamid_omni_config())
    sd = model.state_dict()
    assert set(sd) == set(rename.values()) | {"identity.table"}
    assert not any(".ref." in k for k in sd)  # ref_params="shared": no reference weights
    assert sum(v.numel() for v in sd.values()) == 11_660_753_108 + 2 * 3072


def test_dit_configs_are_dreamids_files() -> None:
    assert (VIDEO_DIT.model_type, VIDEO_DIT.patch_size, VIDEO_DIT.in_dim, VIDEO_DIT.num_layers) == (
        "ti2v",
        (1, 2, 2),
        48,
        30,
    )
    assert (AUDIO_DIT.model_type, AUDIO_DIT.in_dim, AUDIO_DIT.temporal_rope_scaling_factor) == (
        "t2a",
        20,
        0.19676,
    )
    with pytest.raises(ValueError, match="unknown keys"):
        DiTConfig.from_json({"dim": 8, "support_x_prime": True})
    with pytest.raises(DreamIDOmniError, match=r"video.model_type='i2v'.*audio.qk_norm=False"):
        dreamid_omni_config(replace(V_SMALL, model_type="i2v"), replace(A_SMALL, qk_norm=False))
    with pytest.raises(DreamIDOmniError, match="num_layers video 2 != audio 3"):
        dreamid_omni_config(V_SMALL, replace(A_SMALL, num_layers=3))
    assert TIME_SCALE == torch.tensor(31 / 157, dtype=torch.bfloat16).item()  # the engine's freqs_scaling


# ---------------------------------------------------------------- the fabricated checkpoint
def test_reduced_checkpoint_loads_strictly(tmp_path: Path) -> None:
    src = write_checkpoint(tmp_path)
    assert checkpoint_family(tmp_path) == "dreamid-omni"
    model = load_dreamid_omni_model(tmp_path, dit=DIT, dtype=torch.float32)
    sd = model.state_dict()
    pairs = {
        "blocks.1.video.self_attn.q.weight": "video_model.blocks.1.self_attn.q.weight",
        "blocks.0.audio.modulation": "audio_model.blocks.0.modulation.modulation",
        "blocks.1.video.cross_attn.v_bridge.bias": "video_model.blocks.1.cross_attn.v_fusion.bias",
        "blocks.0.audio.cross_attn.bridge_norm.weight": "audio_model.blocks.0.cross_attn.pre_attn_norm_fusion.weight",
        "audio_embed.mlp.w2.weight": "audio_model.patch_embedding.2.w2.weight",
        "video_embed.proj.weight": "video_model.patch_embedding.weight",
        "video_time.proj.bias": "video_model.time_projection.1.bias",
        "audio_text.linear_2.weight": "audio_model.text_embedding.2.weight",
        "audio_head.modulation": "audio_model.head.modulation",
    }
    for ours, theirs in pairs.items():
        assert torch.equal(sd[ours], src[theirs]), ours
    assert not sd["identity.table"].any()
    assert not any(v.is_meta for v in [*sd.values(), *model.buffers()])
    bf16 = load_dreamid_omni_model(tmp_path, dit=DIT)
    assert {v.dtype for v in bf16.state_dict().values()} == {torch.bfloat16}


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("shape", r"'audio_model.blocks.1.ffn.0.weight': checkpoint \(64, 31\), DreamID-Omni \(64, 32\)"),
        (
            "missing",
            r"'video_model.blocks.0.self_attn.norm_k.weight': checkpoint absent, DreamID-Omni \(32,\)",
        ),
        (
            "extra",
            r"'video_model.blocks.0.self_attn.q_extra.weight': checkpoint \(32, 32\), DreamID-Omni no such key",
        ),
        ("deeper", r"'audio_model.blocks.2.cross_attn.k.bias': checkpoint \(32,\), DreamID-Omni no such key"),
    ],
)
def test_mismatching_tensors_are_refused_naming_the_first(tmp_path: Path, damage: str, expected: str) -> None:
    shapes = dict(describe_dreamid(*DIT))
    if damage == "shape":
        shapes["audio_model.blocks.1.ffn.0.weight"] = (64, 31)
    elif damage == "missing":
        shapes.pop("video_model.blocks.0.self_attn.norm_k.weight")
    elif damage == "extra":
        shapes["video_model.blocks.0.self_attn.q_extra.weight"] = (32, 32)
    else:  # a three-block checkpoint against the two-block config
        shapes |= {k.replace("blocks.1.", "blocks.2."): v for k, v in shapes.items() if ".blocks.1." in k}
    write_checkpoint(tmp_path, shapes)
    with pytest.raises(DreamIDOmniError, match=f"not DreamID-Omni's checkpoint: first mismatch {expected}"):
        load_dreamid_omni_model(tmp_path, dit=DIT)


def test_other_families_are_refused(tmp_path: Path) -> None:
    iap = tmp_path / "iap"
    write_iap_transformer(iap)
    assert checkpoint_family(iap) == "iap"
    with pytest.raises(DreamIDOmniError, match="Identity-as-Presence release layout.*load_release_model"):
        load_dreamid_omni_model(iap, dit=DIT)

    wan = tmp_path / "wan"  # a video-only Wan checkpoint: no two-tower keys at all
    wan.mkdir()
    save_file({"blocks.0.self_attn.q.weight": torch.zeros(32, 32)}, str(wan / "diffusion_model.safetensors"))
    with pytest.raises(
        DreamIDOmniError, match="neither DreamID-Omni's layout.*first key is 'blocks.0.self_attn.q.weight'"
    ):
        checkpoint_family(wan)
    with pytest.raises(
        DreamIDOmniError,
        match=r"first mismatch 'audio_model.blocks.0.cross_attn.k.bias': checkpoint absent, DreamID-Omni \(32,\) "
        r"\(\d+ more keys differ\)",
    ):
        load_dreamid_omni_model(wan, dit=DIT)

    with pytest.raises(DreamIDOmniError, match="is not a folder"):
        load_dreamid_omni_model(tmp_path / "nope", dit=DIT)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DreamIDOmniError, match="no \\*.safetensors file"):
        load_dreamid_omni_model(tmp_path / "empty", dit=DIT)

    shards = tmp_path / "shards"  # the same tensor in two shards
    src = write_checkpoint(shards)
    save_file(
        {"video_model.head.modulation": src["video_model.head.modulation"]}, str(shards / "dup.safetensors")
    )
    with pytest.raises(DreamIDOmniError, match="'video_model.head.modulation' appears in both"):
        load_dreamid_omni_model(shards, dit=DIT)


# ---------------------------------------------------------------- in-sequence references
def test_reference_positions_follow_syn_rope() -> None:
    pos = video_positions(1, (5, 2, 3), faces=2)[0]  # 3 target token frames + 2 faces, 2 x 3 grid
    assert pos[:, 0].unique().tolist() == [0.0, 1.0, 2.0, 150.0, 300.0]
    assert pos[-6:, 1:].tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert voice_offset() == 760
    a = audio_positions(1, 157, [31, 31])[0]
    assert a.shape == (219,)
    assert a[156].item() == 156 * TIME_SCALE
    assert a[157].item() == 760 * TIME_SCALE and a[188].item() == 1520 * TIME_SCALE  # voice k at 760 (k + 1)
    assert abs(a[157].item() - 150) < 0.1 and abs(a[188].item() - 300) < 0.2  # face k and voice k together


def test_inputs_refuse_more_people_than_slots() -> None:
    video, audio, text = torch.zeros(1, 4, 3, 4, 4), torch.zeros(1, 9, 5), torch.zeros(1, 6, 16)
    mask = torch.ones(1, 6, dtype=torch.bool)
    voices = [torch.zeros(1, 3, 5)] * 3
    with pytest.raises(DreamIDOmniError, match="3 people: DreamID-Omni takes at most 2"):
        dreamid_model_inputs(video, torch.zeros(1, 4, 3, 4, 4), audio, voices, torch.ones(1), text, mask)
    with pytest.raises(DreamIDOmniError, match="2 faces but 3 voices"):
        dreamid_model_inputs(video, torch.zeros(1, 4, 2, 4, 4), audio, voices, torch.ones(1), text, mask)


# ---------------------------------------------------------------- parity with DreamID-Omni's forward
def _lin(p: dict[str, Tensor], name: str, x: Tensor) -> Tensor:
    bias = p.get(name + ".bias")
    return x @ p[name + ".weight"].T + (0 if bias is None else bias)


def _ln(x: Tensor, p: dict[str, Tensor] | None = None, name: str = "") -> Tensor:
    y = F.layer_norm(x, x.shape[-1:], eps=1e-6)
    return y if p is None else y * p[name + ".weight"] + p[name + ".bias"]


def _rms(x: Tensor, g: Tensor) -> Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * g


def _ladder(pairs: int) -> Tensor:
    return 1.0 / 10000 ** (torch.arange(0, 2 * pairs, 2, dtype=torch.float64) / (2 * pairs))


def _rope(x: Tensor, angles: Tensor, heads: int) -> Tensor:
    """x (N, heads * hd) rotated per head as complex pairs by angles (N, P <= hd / 2); other pairs kept."""
    z = torch.view_as_complex(x.reshape(x.shape[0], heads, -1, 2).contiguous())
    rot = torch.ones(z.shape[0], z.shape[2], dtype=z.dtype)
    rot[:, : angles.shape[1]] = torch.polar(torch.ones_like(angles), angles)
    return torch.view_as_real(z * rot[:, None]).reshape(x.shape)


def _attend(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    q, k, v = (t.reshape(t.shape[0], heads, -1).transpose(0, 1) for t in (q, k, v))
    w = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), -1)
    return (w @ v).transpose(0, 1).reshape(q.shape[1], -1)


def dreamid_forward(
    p: dict[str, Tensor],
    video: Tensor,
    audio: Tensor,
    t: float,
    context: Tensor | tuple[Tensor, Tensor],
    faces: int,
    voices: list[int],
) -> tuple[Tensor, Tensor]:
    """DreamID-Omni's FusionModel on one sample: video (C, F, H, W) with its last ``faces`` frames the
    faces, audio (L, C) ending with the voices; ``context`` one caption for both towers or (video
    caption, audio caption) as in the engine's negative pass; returns the predictions (all tokens,
    references too)."""
    contexts = context if isinstance(context, tuple) else (context, context)
    heads, s = SMALL["num_heads"], TIME_SCALE
    hd = SMALL["dim"] // heads
    c = hd // 2
    ct, ch = c - 2 * (c // 3), c // 3
    vm, am = "video_model.", "audio_model."
    xv = F.conv3d(
        video[None], p[vm + "patch_embedding.weight"], p[vm + "patch_embedding.bias"], stride=(1, 2, 2)
    )[0]
    frames, h, w = xv.shape[1:]
    xv = xv.flatten(1).T  # (Nv, D)
    a = F.silu(
        F.conv1d(
            audio.T[None], p[am + "patch_embedding.0.weight"], p[am + "patch_embedding.0.bias"], padding=3
        )
    )
    w1, w2, w3 = (p[f"{am}patch_embedding.2.{n}.weight"] for n in ("w1", "w2", "w3"))
    xa = F.conv1d(F.silu(F.conv1d(a, w1, padding=3)) * F.conv1d(a, w3, padding=3), w2, padding=3)[
        0
    ].T  # (Na, D)

    half = SMALL["freq_dim"] // 2
    ang = t * 10000 ** (-torch.arange(half, dtype=torch.float64) / half)
    sinus = torch.cat([ang.cos(), ang.sin()])
    e, e0, text = {}, {}, {}
    for m, ctx in ((vm, contexts[0]), (am, contexts[1])):
        e[m] = _lin(p, m + "time_embedding.2", F.silu(_lin(p, m + "time_embedding.0", sinus)))
        e0[m] = _lin(p, m + "time_projection.1", F.silu(e[m])).reshape(6, -1)
        text[m] = _lin(
            p, m + "text_embedding.2", F.gelu(_lin(p, m + "text_embedding.0", ctx), approximate="tanh")
        )

    t_frame = torch.arange(frames, dtype=torch.float64)
    t_frame[frames - faces :] = 150 * torch.arange(1, faces + 1, dtype=torch.float64)
    f_i, h_i, w_i = torch.meshgrid(t_frame, torch.arange(h).double(), torch.arange(w).double(), indexing="ij")
    ang_v = torch.cat(
        [
            f_i.reshape(-1, 1) * _ladder(ct),
            h_i.reshape(-1, 1) * _ladder(ch),
            w_i.reshape(-1, 1) * _ladder(ch),
        ],
        1,
    )
    index = torch.arange(xa.shape[0], dtype=torch.float64)
    start = xa.shape[0] - sum(voices)
    for k, n in enumerate(voices):
        index[start : start + n] = int(150 / s) * (k + 1) + torch.arange(n)
        start += n
    ang_a = (index * s)[:, None] * _ladder(ct)
    angles = {vm: ang_v, am: ang_a}

    def self_attention(m: str, i: int, x: Tensor, mod: Tensor) -> Tensor:
        b = f"{m}blocks.{i}.self_attn"
        xn = _ln(x) * (1 + mod[1]) + mod[0]
        q = _rope(_rms(_lin(p, b + ".q", xn), p[b + ".norm_q.weight"]), angles[m], heads)
        k = _rope(_rms(_lin(p, b + ".k", xn), p[b + ".norm_k.weight"]), angles[m], heads)
        return x + _lin(p, b + ".o", _attend(q, k, _lin(p, b + ".v", xn), heads)) * mod[2]

    def cross_and_ffn(m: str, i: int, x: Tensor, other: Tensor, other_m: str, mod: Tensor) -> Tensor:
        b = f"{m}blocks.{i}"
        q = _rms(_lin(p, b + ".cross_attn.q", _ln(x, p, b + ".norm3")), p[b + ".cross_attn.norm_q.weight"])
        k = _rms(_lin(p, b + ".cross_attn.k", text[m]), p[b + ".cross_attn.norm_k.weight"])
        y = _attend(q, k, _lin(p, b + ".cross_attn.v", text[m]), heads)
        o = _ln(other, p, b + ".cross_attn.pre_attn_norm_fusion")
        kf = _rms(_lin(p, b + ".cross_attn.k_fusion", o), p[b + ".cross_attn.norm_k_fusion.weight"])
        y = y + _attend(
            _rope(q, angles[m], heads),
            _rope(kf, angles[other_m], heads),
            _lin(p, b + ".cross_attn.v_fusion", o),
            heads,
        )
        x = x + _lin(p, b + ".cross_attn.o", y)
        hidden = F.gelu(_lin(p, b + ".ffn.0", _ln(x) * (1 + mod[4]) + mod[3]), approximate="tanh")
        return x + _lin(p, b + ".ffn.2", hidden) * mod[5]

    for i in range(SMALL["num_layers"]):
        mod_v = p[f"{vm}blocks.{i}.modulation.modulation"][0] + e0[vm]
        mod_a = p[f"{am}blocks.{i}.modulation.modulation"][0] + e0[am]
        xa = self_attention(am, i, xa, mod_a)
        xv = self_attention(vm, i, xv, mod_v)
        audio_before = xa
        xa = cross_and_ffn(am, i, xa, xv, vm, mod_a)
        xv = cross_and_ffn(vm, i, xv, audio_before, am, mod_v)

    out = {}
    for m, x in ((vm, xv), (am, xa)):
        shift, scale = p[m + "head.modulation"][0] + e[m]
        out[m] = _lin(p, m + "head.head", _ln(x) * (1 + scale) + shift)
    cv = video.shape[0]
    v = out[vm].reshape(frames, h, w, 1, 2, 2, cv)
    v = torch.einsum("fhwpqrc->cfphqwr", v).reshape(cv, frames, 2 * h, 2 * w)
    return v, out[am]


def test_loaded_model_computes_dreamid_omnis_forward(tmp_path: Path) -> None:
    src = write_checkpoint(tmp_path)
    model = load_dreamid_omni_model(tmp_path, dit=DIT, dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    video, faces = torch.randn(1, 4, 3, 4, 4, generator=g), torch.randn(1, 4, 2, 4, 4, generator=g)
    audio = torch.randn(1, 9, 5, generator=g)
    voices = [torch.randn(1, 3, 5, generator=g), torch.randn(1, 2, 5, generator=g)]
    context, sigma = torch.randn(1, 6, 16, generator=g), torch.tensor([0.7])
    mask = torch.ones(1, 6, dtype=torch.bool)  # DreamID-Omni attends to every (padded) caption token
    vin, ain = dreamid_model_inputs(video, faces, audio, voices, sigma, context, mask)
    with torch.no_grad():
        out = model(vin, ain)
        p = {k: v.double() for k, v in src.items()}
        want_v, want_a = dreamid_forward(
            p, vin.latents[0].double(), ain.latents[0].double(), 700.0, context[0].double(), 2, [3, 2]
        )
    torch.testing.assert_close(out.video[0].double(), want_v, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.audio[0].double(), want_a, atol=1e-4, rtol=1e-4)
    target = target_prediction(out, faces=2, voice_tokens=5)
    assert target.video.shape == video.shape and target.audio.shape == audio.shape
    # the comparison can fail: references laid out right after the targets (facevox's default grid)
    plain_v = replace(vin, positions=None)
    plain_a = replace(ain, positions=None)
    with torch.no_grad():
        plain = model(plain_v, plain_a)
    assert not torch.allclose(plain.video[0].double(), want_v, atol=1e-3)
    assert not torch.allclose(plain.audio[0].double(), want_a, atol=1e-3)
