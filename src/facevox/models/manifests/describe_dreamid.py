"""DreamID-Omni's transformer: its two DiT configs and the key / shape table of its checkpoint.

Read from the public code (GitHub ``Guoxu1233/DreamID-Omni``, Apache-2.0, at commit 9a9f456):
``dreamid_omni/configs/model/dit/{video,audio}.json`` give the sizes; ``dreamid_omni/modules/fusion.py``
``FusionModel(video_config, audio_config)`` builds one ``WanModel`` per tower
(``dreamid_omni/modules/model.py``) and injects Ovi's ``k_fusion`` / ``v_fusion`` /
``pre_attn_norm_fusion`` (affine LayerNorm) / ``norm_k_fusion`` (RMSNorm) into every block's
cross-attention; ``utils/model_loading_utils.py`` loads ``dreamid_omni.safetensors`` into that module
with ``strict=True``, so the checkpoint's keys are exactly the module's state dict:

- per tower (``video_model.`` / ``audio_model.``): ``patch_embedding`` (video: Conv3d over the patch;
  audio: ``Sequential(ChannelLastConv1d(in, D, 7), SiLU, ConvMLP(D, 4 D, 7))``, the ConvMLP's hidden
  width ``256 * ceil(int(2 * 4 D / 3) / 256)``, its three convolutions bias-free),
  ``text_embedding.{0,2}``, ``time_embedding.{0,2}``, ``time_projection.1``, ``head.head`` and
  ``head.modulation`` (1, 2, D);
- per block: ``self_attn`` and ``cross_attn`` q / k / v / o with full-width RMSNorms ``norm_q`` /
  ``norm_k``, ``norm3`` (affine, ``cross_attn_norm``), ``ffn.{0,2}``, the block modulation as
  ``modulation.modulation`` (1, 6, D) (a ``ModulationAdd`` module), and the four bridge tensors;
  ``norm1`` / ``norm2`` / ``head.norm`` carry no parameters, and the RoPE table ``freqs`` is a plain
  attribute, not a buffer.

No other parameter exists: identity enters DreamID-Omni only through where the references sit in the
sequence (their RoPE offsets) and the ``<subK>`` tags of the caption. This table is written here from
the module tree, independently of :mod:`facevox.models.manifests.describe`; ``tests/test_dreamid_omni.py``
checks that it equals Ovi's table, key for key, at full size.

Run ``python -m facevox.models.manifests.describe_dreamid`` to rewrite ``dreamid_omni.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from importlib import resources
from typing import Any

from facevox.models.manifests import MANIFEST_FORMAT, write_manifests

Shapes = dict[str, tuple[int, ...]]

MANIFEST_NAME = "dreamid_omni"
SOURCE = (
    "Guoxu1233/DreamID-Omni dreamid_omni.safetensors (FusionModel state dict from "
    "configs/model/dit/{video,audio}.json), from the published code at commit 9a9f456"
)


@dataclass(frozen=True, kw_only=True)
class DiTConfig:
    """One tower's ``WanModel`` keyword arguments, as DreamID-Omni's ``configs/model/dit/*.json`` spell
    them (unknown keys are refused by :meth:`from_json`; absent ones take ``WanModel``'s defaults)."""

    model_type: str  # "ti2v" (video tower) or "t2a" (audio tower); i2v / tt2a add an image MLP: unsupported
    patch_size: tuple[int, ...]  # video (1, 2, 2); audio (1,)
    dim: int  # tower width D
    ffn_dim: int  # FFN hidden width
    freq_dim: int  # sinusoidal timestep features
    num_heads: int
    num_layers: int
    in_dim: int  # latent channels in
    out_dim: int  # latent channels out
    text_len: int = 512  # caption tokens the context is zero-padded to (and attended in full)
    text_dim: int = 4096  # umT5-XXL hidden width (WanModel's default; the JSON files do not set it)
    window_size: tuple[int, int] = (-1, -1)
    qk_norm: bool = True
    cross_attn_norm: bool = True
    eps: float = 1e-6
    temporal_rope_scaling_factor: float = 1.0  # audio only; replaced at inference (see dreamid_inputs)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DiTConfig:
        """From a ``video.json`` / ``audio.json`` dict; ValueError naming unknown or missing keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"DreamID-Omni DiT config has unknown keys {unknown}; known: {sorted(known)}")
        values = dict(data)
        for key in ("patch_size", "window_size"):
            if key in values:
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except TypeError as err:
            raise ValueError(f"DreamID-Omni DiT config: {err}") from err

    @property
    def audio_hidden(self) -> int:
        """Hidden width of the audio ConvMLP(D, 4 D): ``int(2 * 4D / 3)`` rounded up to 256."""
        return 256 * ((int(2 * 4 * self.dim / 3) + 255) // 256)


# dreamid_omni/configs/model/dit/video.json and audio.json at commit 9a9f456, quoted as data
VIDEO_DIT = DiTConfig.from_json(
    {
        "patch_size": [1, 2, 2],
        "model_type": "ti2v",
        "dim": 3072,
        "ffn_dim": 14336,
        "freq_dim": 256,
        "num_heads": 24,
        "num_layers": 30,
        "in_dim": 48,
        "out_dim": 48,
        "text_len": 512,
        "window_size": [-1, -1],
        "qk_norm": True,
        "cross_attn_norm": True,
        "eps": 1e-6,
    }
)
AUDIO_DIT = DiTConfig.from_json(
    {
        "patch_size": [1],
        "model_type": "t2a",
        "dim": 3072,
        "ffn_dim": 14336,
        "freq_dim": 256,
        "num_heads": 24,
        "num_layers": 30,
        "in_dim": 20,
        "out_dim": 20,
        "text_len": 512,
        "window_size": [-1, -1],
        "qk_norm": True,
        "cross_attn_norm": True,
        "eps": 1e-6,
        "temporal_rope_scaling_factor": 0.19676,
    }
)


def _linear(name: str, out_dim: int, in_dim: int, bias: bool = True) -> Shapes:
    return {f"{name}.weight": (out_dim, in_dim)} | ({f"{name}.bias": (out_dim,)} if bias else {})


def _wan_model(c: DiTConfig) -> Shapes:
    """One ``WanModel`` (t2v-style cross-attention) plus the bridge ``FusionModel`` injects."""
    if c.model_type not in ("ti2v", "t2v", "t2a"):
        raise ValueError(f"model_type {c.model_type!r} adds an image MLP (i2v / tt2a): not described here")
    D = c.dim
    s: Shapes = {}
    if c.model_type == "t2a":
        s |= {"patch_embedding.0.weight": (D, c.in_dim, 7), "patch_embedding.0.bias": (D,)}
        for w, shape in (
            ("w1", (c.audio_hidden, D, 7)),
            ("w2", (D, c.audio_hidden, 7)),
            ("w3", (c.audio_hidden, D, 7)),
        ):
            s[f"patch_embedding.2.{w}.weight"] = shape
    else:
        s |= {"patch_embedding.weight": (D, c.in_dim, *c.patch_size), "patch_embedding.bias": (D,)}
    s |= _linear("text_embedding.0", D, c.text_dim) | _linear("text_embedding.2", D, D)
    s |= _linear("time_embedding.0", D, c.freq_dim) | _linear("time_embedding.2", D, D)
    s |= _linear("time_projection.1", 6 * D, D)
    for i in range(c.num_layers):
        b = f"blocks.{i}"
        for attn in ("self_attn", "cross_attn"):
            for p in "qkvo":
                s |= _linear(f"{b}.{attn}.{p}", D, D)
            if c.qk_norm:
                s |= {f"{b}.{attn}.norm_q.weight": (D,), f"{b}.{attn}.norm_k.weight": (D,)}
        if c.cross_attn_norm:
            s |= {f"{b}.norm3.weight": (D,), f"{b}.norm3.bias": (D,)}
        s |= _linear(f"{b}.ffn.0", c.ffn_dim, D) | _linear(f"{b}.ffn.2", D, c.ffn_dim)
        s[f"{b}.modulation.modulation"] = (1, 6, D)
        x = f"{b}.cross_attn"  # FusionModel.inject_cross_attention_kv_projections
        s |= _linear(f"{x}.k_fusion", D, D) | _linear(f"{x}.v_fusion", D, D)
        s |= {f"{x}.pre_attn_norm_fusion.weight": (D,), f"{x}.pre_attn_norm_fusion.bias": (D,)}
        if c.qk_norm:
            s[f"{x}.norm_k_fusion.weight"] = (D,)
    s |= _linear("head.head", math.prod(c.patch_size) * c.out_dim, D) | {"head.modulation": (1, 2, D)}
    return s


def describe_dreamid(video: DiTConfig = VIDEO_DIT, audio: DiTConfig = AUDIO_DIT) -> Shapes:
    """Key -> shape of ``FusionModel(video, audio).state_dict()``; ValueError when the towers cannot
    be fused (unequal depth: ``FusionModel`` asserts equal block counts)."""
    if video.num_layers != audio.num_layers:
        raise ValueError(
            f"FusionModel needs equal depths, got video {video.num_layers}, audio {audio.num_layers}"
        )
    return {f"video_model.{k}": v for k, v in _wan_model(video).items()} | {
        f"audio_model.{k}": v for k, v in _wan_model(audio).items()
    }


def load_dreamid_manifest() -> Shapes:
    """The committed ``dreamid_omni.json`` as key -> shape."""
    text = resources.files(__package__).joinpath(f"{MANIFEST_NAME}.json").read_text()
    data = json.loads(text)
    if data.get("format") != MANIFEST_FORMAT:
        raise ValueError(
            f"{MANIFEST_NAME}.json has format {data.get('format')!r}, expected {MANIFEST_FORMAT}"
        )
    return {k: tuple(v) for k, v in data["tensors"].items()}


def main() -> None:
    """Rewrite ``dreamid_omni.json`` next to this module."""
    write_manifests(lambda _name: describe_dreamid(), {MANIFEST_NAME: SOURCE})


if __name__ == "__main__":
    main()
