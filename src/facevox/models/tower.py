"""One tower's sublayers inside a dual-stream block (owned and driven by ``DualStreamBlock``).

Shape legend: ``B`` batch, ``N`` target tokens, ``Nr`` reference tokens, ``No`` the other tower's
tokens, ``L`` caption tokens, ``D`` this tower's width, ``Do`` the other tower's width, ``H`` heads,
``Dh`` head width.

Module names follow Wan / Ovi roles one-to-one (``self_attn.{q,k,v,o,norm_q,norm_k}``,
``cross_norm`` = Wan ``norm3``, ``cross_attn`` with the bridge's ``k_bridge``/``v_bridge``/
``norm_k_bridge``/``bridge_norm`` = Ovi ``k_fusion``/``v_fusion``/``norm_k_fusion``/
``pre_attn_norm_fusion``, ``ffn.{fc1,fc2}``, ``modulation`` (1, 6, D)) so that
:mod:`facevox.models.keymaps` is a table of renames.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from facevox.models.config import TowerConfig
from facevox.models.reference_cache import ReferenceKV
from facevox.nn.attention import attend, key_mask, merge_heads, split_heads
from facevox.nn.lora import LoRA, linear_with_lora
from facevox.nn.mlp import GeluMLP
from facevox.nn.modulation import modulate, split_modulation
from facevox.nn.norms import LayerNorm, RMSNorm
from facevox.nn.rope import RotaryTable, apply_rotary


class ReferenceLoRA(nn.Module):
    """Reference-only adapters on the self-attention projections (``ref_params="lora"``)."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.q = LoRA(dim, dim, rank)
        self.k = LoRA(dim, dim, rank)
        self.v = LoRA(dim, dim, rank)
        self.o = LoRA(dim, dim, rank)


class SelfAttention(nn.Module):
    """q/k/v/o projections with qk-RMSNorm over the full width (Wan)."""

    def __init__(self, dim: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)

    def qkv(
        self, x: Tensor, rope: RotaryTable, lora: ReferenceLoRA | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, N, D) -> q, k, v (B, H, N, Dh), RoPE applied to q and k."""
        q = self.norm_q(linear_with_lora(self.q, lora.q if lora else None, x))
        k = self.norm_k(linear_with_lora(self.k, lora.k if lora else None, x))
        v = linear_with_lora(self.v, lora.v if lora else None, x)
        q, k, v = (split_heads(t, self.heads) for t in (q, k, v))
        return apply_rotary(q, rope), apply_rotary(k, rope), v

    def out(self, y: Tensor, lora: ReferenceLoRA | None = None) -> Tensor:
        """(B, H, N, Dh) -> (B, N, D)."""
        return linear_with_lora(self.o, lora.o if lora else None, merge_heads(y))


class TextAndBridgeAttention(nn.Module):
    """Cross-attention to the caption plus the cross-modal bridge, sharing q and o (Ovi).

    ``o(attn(q, text) + attn(rope(q), rope(k_bridge(other))))`` where the other tower's tokens are
    pre-normed by ``bridge_norm`` and their keys by ``norm_k_bridge``.
    """

    def __init__(self, dim: int, other_dim: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)
        self.bridge_norm = LayerNorm(other_dim, eps, affine=True)
        self.k_bridge = nn.Linear(other_dim, dim)
        self.v_bridge = nn.Linear(other_dim, dim)
        self.norm_k_bridge = RMSNorm(dim, eps)

    def forward(
        self,
        x: Tensor,
        rope: RotaryTable,
        text: Tensor,
        text_mask: Tensor,
        other: Tensor,
        other_rope: RotaryTable,
    ) -> Tensor:
        """x (B, N, D), text (B, L, D), text_mask (B, L), other (B, No, Do) -> (B, N, D)."""
        q = split_heads(self.norm_q(self.q(x)), self.heads)
        k = split_heads(self.norm_k(self.k(text)), self.heads)
        v = split_heads(self.v(text), self.heads)
        y = attend(q, k, v, key_mask(text_mask))
        o = self.bridge_norm(other)
        kb = apply_rotary(split_heads(self.norm_k_bridge(self.k_bridge(o)), self.heads), other_rope)
        vb = split_heads(self.v_bridge(o), self.heads)
        y = y + attend(apply_rotary(q, rope), kb, vb)
        return self.o(merge_heads(y))


class ReferenceCopy(nn.Module):
    """A full separate self-attention, FFN and modulation table for references (``ref_params="copy"``)."""

    def __init__(self, cfg: TowerConfig, eps: float) -> None:
        super().__init__()
        self.self_attn = SelfAttention(cfg.dim, cfg.heads, eps)
        self.ffn = GeluMLP(cfg.dim, cfg.ffn_dim)
        self.modulation = nn.Parameter(torch.randn(1, 6, cfg.dim) / cfg.dim**0.5)


class TowerLayers(nn.Module):
    """The sublayers of one tower in one block, with the steps the block composes."""

    def __init__(self, cfg: TowerConfig, other_dim: int, eps: float) -> None:
        super().__init__()
        self.ref_params = cfg.ref_params
        self.norm1 = LayerNorm(cfg.dim, eps)
        self.self_attn = SelfAttention(cfg.dim, cfg.heads, eps)
        self.cross_norm = LayerNorm(cfg.dim, eps, affine=True)
        self.cross_attn = TextAndBridgeAttention(cfg.dim, other_dim, cfg.heads, eps)
        self.norm2 = LayerNorm(cfg.dim, eps)
        self.ffn = GeluMLP(cfg.dim, cfg.ffn_dim)
        self.modulation = nn.Parameter(torch.randn(1, 6, cfg.dim) / cfg.dim**0.5)
        self.ref: nn.Module | None
        if cfg.ref_params == "lora":
            self.ref = ReferenceLoRA(cfg.dim, cfg.ref_lora_rank)
        elif cfg.ref_params == "copy":
            self.ref = ReferenceCopy(cfg, eps)
        else:
            self.ref = None

    # ---- target tokens
    def self_attention(
        self, x: Tensor, mod: list[Tensor], rope: RotaryTable, ref: ReferenceKV | None
    ) -> Tensor:
        """Targets attend to targets and to all valid reference keys. x (B, N, D) -> (B, N, D)."""
        shift, scale, gate = mod[0], mod[1], mod[2]
        q, k, v = self.self_attn.qkv(modulate(self.norm1(x), shift, scale), rope)
        mask = None
        if ref is not None:
            k, v = torch.cat([k, ref.k], 2), torch.cat([v, ref.v], 2)
            valid = torch.cat([torch.ones(x.shape[:2], dtype=torch.bool, device=x.device), ref.valid], 1)
            mask = key_mask(valid)
        return x + self.self_attn.out(attend(q, k, v, mask)) * gate

    def cross_and_ffn(
        self,
        x: Tensor,
        mod: list[Tensor],
        rope: RotaryTable,
        text: Tensor,
        text_mask: Tensor,
        other: Tensor,
        other_rope: RotaryTable,
    ) -> Tensor:
        """Caption + bridge cross-attention, then the modulated FFN. x (B, N, D) -> (B, N, D)."""
        x = x + self.cross_attn(self.cross_norm(x), rope, text, text_mask, other, other_rope)
        return x + self.ffn(modulate(self.norm2(x), mod[3], mod[4])) * mod[5]

    # ---- reference tokens
    def reference_step(
        self, r: Tensor, ref_mod: Tensor, rope: RotaryTable, mask: Tensor, valid: Tensor
    ) -> tuple[Tensor, ReferenceKV]:
        """One block on the reference stream: references attend only to references, modulated with
        the t = 0 embedding, no caption / bridge attention.

        r (B, Nr, D), ref_mod (B, 1, 6, D), mask (B, 1, Nr, Nr) bool, valid (B, Nr) bool
        -> (r', this block's reference keys / values for the targets).
        """
        attn, ffn, table, lora = self.self_attn, self.ffn, self.modulation, None
        if isinstance(self.ref, ReferenceCopy):
            attn, ffn, table = self.ref.self_attn, self.ref.ffn, self.ref.modulation
        elif isinstance(self.ref, ReferenceLoRA):
            lora = self.ref
        m = split_modulation(table, ref_mod, 6)
        q, k, v = attn.qkv(modulate(self.norm1(r), m[0], m[1]), rope, lora)
        r = r + attn.out(attend(q, k, v, mask), lora) * m[2]
        r = r + ffn(modulate(self.norm2(r), m[3], m[4])) * m[5]
        return r, ReferenceKV(k=k, v=v, valid=valid)
