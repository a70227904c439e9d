"""Numerical parity at reduced width: facevox's dual-stream block (video references with a full
``*_prime`` copy, audio references sharing the target weights, as ``iap-5b``) against an independent
re-statement of the release's block equations written here from ../shared/docs/paper-detail.md
sections 2.5-2.8 (plain tensor algebra on the state dict, complex-number RoPE, per-head loops).

Equations (per tower, widths D, heads H):
  e      = projected timestep embedding, per token (B, N, 6, D); references use e(t = 0)
  m      = modulation table (1, 6, D) + e  ->  shift1, scale1, gate1, shift2, scale2, gate2
  SA(x)  : q = rms(Wq x~) * gq, k = rms(Wk x~) * gk, v = Wv x~ with x~ = LN(x) (1 + scale1) + shift1,
           RoPE on q, k; targets attend over [target ; reference] keys, references over references
  x     += Wo(SA) * gate1
  CA(x)  : q = rms(Wq LN3(x)), text keys / values without RoPE, plus the other tower's tokens
           o = LNf(other), k = rope(rms(Wkf o)), v = Wvf o, queries rotated; the two outputs summed
  x     += Wo(CA)                      (targets only: references skip caption and bridge)
  x     += W2 gelu_tanh(W1 (LN(x) (1 + scale2) + shift2)) * gate2
Block order: audio SA, video SA, audio CA (reads the updated video) + FFN, video CA (reads the audio
from before its CA) + FFN; references: SA + FFN with their own weights (video: prime copy).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from facevox.models.block import DualStreamBlock, StreamContext
from facevox.models.config import DualTowerConfig, TowerConfig
from facevox.models.positions import (
    audio_positions,
    audio_reference_positions,
    video_grid_positions,
    video_reference_positions,
)
from facevox.models.registry import get_config
from facevox.nn.rope import rotary_table

D, HEADS, FFN = 64, 2, 128
SCALE = get_config("iap-5b").rope_time_scale
EPS = 1e-6


# ---------------------------------------------------------------- the release's equations
def _ln(x: Tensor, w: Tensor | None = None, b: Tensor | None = None) -> Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + EPS)
    return y if w is None else y * w + b


def _rms(x: Tensor, g: Tensor) -> Tensor:
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + EPS) * g


def _lin(p: dict[str, Tensor], name: str, x: Tensor) -> Tensor:
    return x @ p[name + ".weight"].T + p[name + ".bias"]


def _angles(pos: Tensor, head_dim: int) -> Tensor:
    """Wan's frequency tables: pairs split c - 2 (c // 3) / c // 3 / c // 3 over (t, h, w), c = Dh / 2;
    axis width w_a has frequencies 10000 ** (-2 j / w_a). pos (N, 3) or (N,) -> angles (N, c)."""
    c = head_dim // 2
    split = (c - 2 * (c // 3), c // 3, c // 3)
    if pos.ndim == 1:  # 1-D audio positions: only the time pairs rotate
        pos = torch.stack([pos, torch.zeros_like(pos), torch.zeros_like(pos)], -1)
    parts = []
    for axis, pairs in enumerate(split):
        freqs = 1.0 / 10000 ** (torch.arange(pairs, dtype=torch.float64) * 2 / (2 * pairs))
        parts.append(pos[:, axis : axis + 1].double() * freqs)
    return torch.cat(parts, -1)


def _rope(x: Tensor, angles: Tensor) -> Tensor:
    """x (N, Dh) real -> rotated as complex pairs (x[2i] + i x[2i+1]) * exp(i angle)."""
    z = torch.view_as_complex(x.double().reshape(x.shape[0], -1, 2).contiguous())
    return torch.view_as_real(z * torch.polar(torch.ones_like(angles), angles)).reshape(x.shape).float()


def _attention(q: Tensor, k: Tensor, v: Tensor, qa: Tensor | None, ka: Tensor | None) -> Tensor:
    """One sample, per-head loop; q (Nq, D), k / v (Nk, D); optional RoPE angles."""
    hd = D // HEADS
    out = []
    for h in range(HEADS):
        sl = slice(h * hd, (h + 1) * hd)
        qh, kh = q[:, sl], k[:, sl]
        if qa is not None:
            qh = _rope(qh, qa)
        if ka is not None:
            kh = _rope(kh, ka)
        w = torch.softmax(qh @ kh.T / math.sqrt(hd), -1)
        out.append(w @ v[:, sl])
    return torch.cat(out, -1)


def _mod(p: dict[str, Tensor], table: str, e: Tensor) -> list[Tensor]:
    return list((p[table] + e).unbind(-2))  # (N or 1, 6, D) -> 6 x (N or 1, D)


def _qkv(p: dict[str, Tensor], a: str, x: Tensor, m: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    xn = _ln(x) * (1 + m[1]) + m[0]
    q = _rms(_lin(p, f"{a}.q", xn), p[f"{a}.norm_q.weight"])
    k = _rms(_lin(p, f"{a}.k", xn), p[f"{a}.norm_k.weight"])
    return q, k, _lin(p, f"{a}.v", xn)


def _ffn(p: dict[str, Tensor], f: str, x: Tensor, m: list[Tensor]) -> Tensor:
    h = torch.nn.functional.gelu(_lin(p, f"{f}.fc1", _ln(x) * (1 + m[4]) + m[3]), approximate="tanh")
    return x + _lin(p, f"{f}.fc2", h) * m[5]


def release_block(p: dict[str, Tensor], s: dict[str, Tensor]) -> dict[str, Tensor]:
    """One sample through one block of both towers, references included; returns the new streams."""
    out = {}
    refs = {}
    for t, w in (("video", "video.ref."), ("audio", "audio.")):  # references (video: the prime copy)
        m = _mod(p, f"{w}modulation", s[f"{t}_e0"])
        q, k, v = _qkv(p, f"{w}self_attn", s[f"{t}_ref"], m)
        ra = _angles(s[f"{t}_ref_pos"], D // HEADS)
        y = _attention(q, k, v, ra, ra)
        r = s[f"{t}_ref"] + _lin(p, f"{w}self_attn.o", y) * m[2]
        out[f"{t}_ref"] = _ffn(p, f"{w}ffn", r, m)
        refs[t] = (_rope_heads(k, ra), v)  # keys as the targets see them
    x = {}
    mods = {}
    for t in ("audio", "video"):  # target self-attention over [targets ; references]
        m = mods[t] = _mod(p, f"{t}.modulation", s[f"{t}_e"])
        q, k, v = _qkv(p, f"{t}.self_attn", s[t], m)
        ta = _angles(s[f"{t}_pos"], D // HEADS)
        k = torch.cat([_rope_heads(k, ta), refs[t][0]])
        y = _attention(_rope_heads(q, ta), k, torch.cat([v, refs[t][1]]), None, None)
        x[t] = s[t] + _lin(p, f"{t}.self_attn.o", y) * m[2]
    audio_before = x["audio"]
    for t, other in (("audio", "video"), ("video", "audio")):
        o_tokens = x["video"] if t == "audio" else audio_before
        c = f"{t}.cross_attn"
        xn = _ln(x[t], p[f"{t}.cross_norm.weight"], p[f"{t}.cross_norm.bias"])
        q = _rms(_lin(p, f"{c}.q", xn), p[f"{c}.norm_q.weight"])
        text = s["text"][: s["text_len"]]
        y = _attention(
            q, _rms(_lin(p, f"{c}.k", text), p[f"{c}.norm_k.weight"]), _lin(p, f"{c}.v", text), None, None
        )
        on = _ln(o_tokens, p[f"{c}.bridge_norm.weight"], p[f"{c}.bridge_norm.bias"])
        kb = _rms(_lin(p, f"{c}.k_bridge", on), p[f"{c}.norm_k_bridge.weight"])
        qa, oa = _angles(s[f"{t}_pos"], D // HEADS), _angles(s[f"{other}_pos"], D // HEADS)
        y = y + _attention(q, kb, _lin(p, f"{c}.v_bridge", on), qa, oa)
        out[t] = _ffn(p, f"{t}.ffn", x[t] + _lin(p, f"{c}.o", y), mods[t])
    return out


def _rope_heads(x: Tensor, angles: Tensor) -> Tensor:
    hd = D // HEADS
    return torch.cat([_rope(x[:, h * hd : (h + 1) * hd], angles) for h in range(HEADS)], -1)


# ---------------------------------------------------------------- the comparison
def test_block_matches_the_release_equations() -> None:
    torch.manual_seed(0)
    tower = {"in_channels": 4, "dim": D, "heads": HEADS, "ffn_dim": FFN}
    cfg = DualTowerConfig(
        name="parity",
        video=TowerConfig(**tower, ref_params="copy"),
        audio=TowerConfig(**tower, ref_params="shared"),
        depth=1,
        text_dim=16,
        rope_time_scale=SCALE,
        audio_ref_start=630,
        audio_ref_slot_gap=187,
    )
    block = DualStreamBlock(cfg).eval()
    with torch.no_grad():  # non-trivial norm gains and biases
        for name, prm in block.named_parameters():
            if name.endswith("norm_q.weight") or name.endswith("norm_k.weight") or "norm" in name:
                prm.add_(0.3 * torch.randn_like(prm))
    p = {k: v.detach() for k, v in block.state_dict().items()}

    B, grid, views, voice = 1, (3, 2, 2), 2, 5
    na = 9
    pos_v = video_grid_positions(B, grid, torch.device("cpu"))
    pos_a = audio_positions(B, na, SCALE, torch.device("cpu"))
    slot = torch.zeros(B, 1, dtype=torch.long)
    # the release's offsets: faces at time 31 (+ view), h / w from 0; the voice from audio index 630
    ref_pos_v = video_reference_positions(slot, views, grid[1:], target_frames=31, gap=4, mode="after")
    ref_pos_a = audio_reference_positions(
        slot, voice, target_tokens=na, start=630, gap=187, time_scale=SCALE, mode="after"
    )
    assert ref_pos_v[0, :, 0].unique().tolist() == [31.0, 32.0] and ref_pos_v[0, :4, 1:].min() == 0
    assert torch.allclose(ref_pos_a[0] / SCALE, torch.arange(630, 630 + voice).float())

    nv, nrv = pos_v.shape[1], ref_pos_v.shape[1]
    s = {
        "video": torch.randn(nv, D),
        "audio": torch.randn(na, D),
        "video_ref": torch.randn(nrv, D),
        "audio_ref": torch.randn(voice, D),
        "video_e": 0.3 * torch.randn(nv, 6, D),
        "audio_e": 0.3 * torch.randn(na, 6, D),
        "video_e0": 0.3 * torch.randn(1, 6, D),
        "audio_e0": 0.3 * torch.randn(1, 6, D),
        "text": torch.randn(7, D),
        "text_len": torch.tensor(5),
        "video_pos": pos_v[0],
        "audio_pos": pos_a[0],
        "video_ref_pos": ref_pos_v[0],
        "audio_ref_pos": ref_pos_a[0],
    }
    hd = D // HEADS
    rope_v, rope_a = rotary_table(pos_v, hd), rotary_table(pos_a, hd)
    text_mask = torch.arange(7)[None] < 5
    with torch.no_grad():
        kvs, new_refs = {}, {}
        for t, pos in (("video", ref_pos_v), ("audio", ref_pos_a)):
            n = pos.shape[1]
            valid = torch.ones(B, n, dtype=torch.bool)
            r, kv = getattr(block, t).reference_step(
                s[f"{t}_ref"][None], s[f"{t}_e0"][None], rotary_table(pos, hd), valid[:, None, None, :], valid
            )
            kvs[t], new_refs[t] = kv, r[0]
        cv = StreamContext(s["video_e"][None], rope_v, rope_a, s["text"][None], text_mask)
        ca = StreamContext(s["audio_e"][None], rope_a, rope_v, s["text"][None], text_mask)
        xv, xa = block(s["video"][None], s["audio"][None], cv, ca, kvs["video"], kvs["audio"])
        want = release_block(p, s)
    for name, got in (("video", xv[0]), ("audio", xa[0])):
        torch.testing.assert_close(got, want[name], atol=2e-4, rtol=2e-4, msg=name)
    for t in ("video", "audio"):
        torch.testing.assert_close(new_refs[t], want[f"{t}_ref"], atol=2e-4, rtol=2e-4, msg=t)
    # the comparison can fail: the video references must use the prime copy, not the target weights
    p_wrong = dict(p)
    for k in [k for k in p if k.startswith("video.ref.")]:
        p_wrong[k] = p[k.replace("video.ref.", "video.")]
    assert not torch.allclose(release_block(p_wrong, s)["video"], xv[0], atol=1e-3)
