"""Declarative key maps from public checkpoints onto :class:`DualTowerDiT` (data, not code paths).

A :class:`KeyMap` is four tables of regular expressions (each matched against the *whole* key):

- ``rules``: (source pattern, target template) renames; every source key must match exactly one
  rule or an ``ignore`` pattern;
- ``ignore``: source keys that have no counterpart here;
- ``clone``: (target pattern, target template) - a model key with no source counterpart that starts
  as a copy of another (already mapped) model key, e.g. the release's ``*_prime`` reference copies;
- ``fresh``: model keys that keep their initialisation (identity embedding, reference adapters, and
  for video-only checkpoints the whole audio tower and the bridge).

Every model key must be covered by exactly one of: a rule's target, a clone, or fresh. Shapes must
match exactly. :func:`load_foreign` then loads the result with ``strict=True``.

Layouts (names and shapes from the public code: Wan-Video/Wan2.2 ``wan/modules/model.py``,
huggingface/diffusers ``transformer_wan.py``, character-ai/Ovi ``ovi/modules/{model,fusion}.py``):

- ``wan`` : original Wan 2.x ``WanModel`` (Wan2.2-TI2V-5B: dim 3072, 30 blocks) -> the video tower;
- ``wan-diffusers``: diffusers ``WanTransformer3DModel`` -> the video tower;
- ``ovi``: Ovi's ``FusionModel`` (``video_model.*``, ``audio_model.*`` with ``k_fusion`` /
  ``v_fusion`` / ``norm_k_fusion`` / ``pre_attn_norm_fusion`` in each cross-attention) -> both towers.
- ``iap``: the Identity-as-Presence release (WeChatCV/Identity-as-Presence ``FusionModelIDAV``):
  Ovi's layout (block ``modulation`` bare, or Ovi's ``modulation.modulation``) plus ``*_prime``
  reference copies in every block of both towers. The video tower's ``self_attn.{q,k,v,o}_prime``,
  ``self_attn.norm_{q,k}_prime``, ``ffn_prime`` and ``modulation_prime`` -> ``blocks.N.video.ref.*``
  (``ref_params="copy"``). Copies the release's forward never uses are ignored: ``norm3_prime`` and
  ``cross_attn_prime`` (``enable_prime_cross_attn = False``) in both towers, and every audio
  ``*_prime`` (the audio tower runs voice references through its shared weights, ``"shared"``). The
  release has no identity embedding, so ``identity.table`` stays fresh
  (:func:`facevox.release.load_release_model` zeroes it, which reproduces the release's function).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import torch
from torch import Tensor

from facevox.models.dual_tower import DualTowerDiT

logger = logging.getLogger(__name__)

B = r"blocks\.(\d+)"  # a block index, captured as \1


@dataclass(frozen=True)
class KeyMap:
    """A checkpoint layout's renames; see the module docstring."""

    name: str
    rules: tuple[tuple[str, str], ...]
    ignore: tuple[str, ...] = ()
    clone: tuple[tuple[str, str], ...] = ()
    fresh: tuple[str, ...] = ()


# ---------------------------------------------------------------- tables
# Original Wan WanModel tower keys, relative to the tower's root; "{t}" = facevox tower name,
# "{s}" = source prefix (escaped) of the tower inside the checkpoint.
_WAN_TOWER_RULES: tuple[tuple[str, str], ...] = (
    (r"{s}text_embedding\.0\.(weight|bias)", r"{t}_text.linear_1.\1"),
    (r"{s}text_embedding\.2\.(weight|bias)", r"{t}_text.linear_2.\1"),
    (r"{s}time_embedding\.0\.(weight|bias)", r"{t}_time.linear_1.\1"),
    (r"{s}time_embedding\.2\.(weight|bias)", r"{t}_time.linear_2.\1"),
    (r"{s}time_projection\.1\.(weight|bias)", r"{t}_time.proj.\1"),
    (r"{s}" + B + r"\.self_attn\.(q|k|v|o)\.(weight|bias)", r"blocks.\1.{t}.self_attn.\2.\3"),
    (r"{s}" + B + r"\.self_attn\.norm_(q|k)\.weight", r"blocks.\1.{t}.self_attn.norm_\2.weight"),
    (r"{s}" + B + r"\.cross_attn\.(q|k|v|o)\.(weight|bias)", r"blocks.\1.{t}.cross_attn.\2.\3"),
    (r"{s}" + B + r"\.cross_attn\.norm_(q|k)\.weight", r"blocks.\1.{t}.cross_attn.norm_\2.weight"),
    (r"{s}" + B + r"\.norm3\.(weight|bias)", r"blocks.\1.{t}.cross_norm.\2"),
    (r"{s}" + B + r"\.ffn\.0\.(weight|bias)", r"blocks.\1.{t}.ffn.fc1.\2"),
    (r"{s}" + B + r"\.ffn\.2\.(weight|bias)", r"blocks.\1.{t}.ffn.fc2.\2"),
    # Wan: a Parameter ``modulation``; Ovi wraps it as ``modulation.modulation``.
    (r"{s}" + B + r"\.modulation(?:\.modulation)?", r"blocks.\1.{t}.modulation"),
    (r"{s}head\.head\.(weight|bias)", r"{t}_head.proj.\1"),
    (r"{s}head\.modulation", r"{t}_head.modulation"),
)
_WAN_VIDEO_EMBED: tuple[tuple[str, str], ...] = (
    (r"{s}patch_embedding\.(weight|bias)", r"{t}_embed.proj.\1"),
)
# Ovi's audio tower: Sequential(conv1d k=7, SiLU, ConvMLP(w1, w2, w3)).
_OVI_AUDIO_EMBED: tuple[tuple[str, str], ...] = (
    (r"{s}patch_embedding\.0\.(weight|bias)", r"{t}_embed.conv.\1"),
    (r"{s}patch_embedding\.2\.(w1|w2|w3)\.weight", r"{t}_embed.mlp.\1.weight"),
)
# Ovi's bridge, injected into each block's cross-attention.
_OVI_BRIDGE: tuple[tuple[str, str], ...] = (
    (r"{s}" + B + r"\.cross_attn\.k_fusion\.(weight|bias)", r"blocks.\1.{t}.cross_attn.k_bridge.\2"),
    (r"{s}" + B + r"\.cross_attn\.v_fusion\.(weight|bias)", r"blocks.\1.{t}.cross_attn.v_bridge.\2"),
    (r"{s}" + B + r"\.cross_attn\.norm_k_fusion\.weight", r"blocks.\1.{t}.cross_attn.norm_k_bridge.weight"),
    (
        r"{s}" + B + r"\.cross_attn\.pre_attn_norm_fusion\.(weight|bias)",
        r"blocks.\1.{t}.cross_attn.bridge_norm.\2",
    ),
)
# diffusers WanTransformer3DModel.
_DIFFUSERS_WAN_RULES: tuple[tuple[str, str], ...] = (
    (r"patch_embedding\.(weight|bias)", r"video_embed.proj.\1"),
    (r"condition_embedder\.text_embedder\.linear_1\.(weight|bias)", r"video_text.linear_1.\1"),
    (r"condition_embedder\.text_embedder\.linear_2\.(weight|bias)", r"video_text.linear_2.\1"),
    (r"condition_embedder\.time_embedder\.linear_1\.(weight|bias)", r"video_time.linear_1.\1"),
    (r"condition_embedder\.time_embedder\.linear_2\.(weight|bias)", r"video_time.linear_2.\1"),
    (r"condition_embedder\.time_proj\.(weight|bias)", r"video_time.proj.\1"),
    (B + r"\.attn1\.to_(q|k|v)\.(weight|bias)", r"blocks.\1.video.self_attn.\2.\3"),
    (B + r"\.attn1\.to_out\.0\.(weight|bias)", r"blocks.\1.video.self_attn.o.\2"),
    (B + r"\.attn1\.norm_(q|k)\.weight", r"blocks.\1.video.self_attn.norm_\2.weight"),
    (B + r"\.attn2\.to_(q|k|v)\.(weight|bias)", r"blocks.\1.video.cross_attn.\2.\3"),
    (B + r"\.attn2\.to_out\.0\.(weight|bias)", r"blocks.\1.video.cross_attn.o.\2"),
    (B + r"\.attn2\.norm_(q|k)\.weight", r"blocks.\1.video.cross_attn.norm_\2.weight"),
    (B + r"\.norm2\.(weight|bias)", r"blocks.\1.video.cross_norm.\2"),  # diffusers norm2 = Wan norm3
    (B + r"\.ffn\.net\.0\.proj\.(weight|bias)", r"blocks.\1.video.ffn.fc1.\2"),
    (B + r"\.ffn\.net\.2\.(weight|bias)", r"blocks.\1.video.ffn.fc2.\2"),
    (B + r"\.scale_shift_table", r"blocks.\1.video.modulation"),
    (r"proj_out\.(weight|bias)", r"video_head.proj.\1"),
    (r"scale_shift_table", r"video_head.modulation"),
)

# The release's reference copies in the video tower (``ref_params="copy"``).
_IAP_PRIME: tuple[tuple[str, str], ...] = (
    (r"{s}" + B + r"\.self_attn\.(q|k|v|o)_prime\.(weight|bias)", r"blocks.\1.{t}.ref.self_attn.\2.\3"),
    (
        r"{s}" + B + r"\.self_attn\.norm_(q|k)_prime\.weight",
        r"blocks.\1.{t}.ref.self_attn.norm_\2.weight",
    ),
    (r"{s}" + B + r"\.ffn_prime\.0\.(weight|bias)", r"blocks.\1.{t}.ref.ffn.fc1.\2"),
    (r"{s}" + B + r"\.ffn_prime\.2\.(weight|bias)", r"blocks.\1.{t}.ref.ffn.fc2.\2"),
    (r"{s}" + B + r"\.modulation_prime(?:\.modulation)?", r"blocks.\1.{t}.ref.modulation"),
)

# Release copies its forward never reads: the disabled reference cross-attention (both towers) and
# every audio copy (the audio tower shares its weights with the voice references).
_IAP_UNUSED: tuple[str, ...] = (
    r"(video|audio)_model\." + B + r"\.(norm3_prime|cross_attn_prime)\..+",
    r"audio_model\."
    + B
    + r"\.(self_attn\.(q|k|v|o)_prime\.(weight|bias)|self_attn\.norm_(q|k)_prime\.weight)",
    r"audio_model\." + B + r"\.(ffn_prime\..+|modulation_prime)",
)

# Model keys a pretrained backbone never holds.
_ALWAYS_FRESH: tuple[str, ...] = (
    r"identity\..*",
    B + r"\.(video|audio)\.ref\.(q|k|v|o)\.(down|up)\.weight",  # reference LoRA adapters
)
# Reference copies (ref_params="copy") start as clones of the target weights, as the release does.
_REF_COPY_CLONES: tuple[tuple[str, str], ...] = (
    (B + r"\.(video|audio)\.ref\.self_attn\.(.+)", r"blocks.\1.\2.self_attn.\3"),
    (B + r"\.(video|audio)\.ref\.ffn\.(.+)", r"blocks.\1.\2.ffn.\3"),
    (B + r"\.(video|audio)\.ref\.modulation", r"blocks.\1.\2.modulation"),
)
# A video-only checkpoint leaves the audio tower and the bridge at their initialisation.
_VIDEO_ONLY_FRESH: tuple[str, ...] = (
    r"audio_.*",
    B + r"\.audio\..*",
    B + r"\.video\.cross_attn\.(bridge_norm|k_bridge|v_bridge|norm_k_bridge)\..*",
)


def _tower(rules: tuple[tuple[str, str], ...], source_prefix: str, tower: str) -> tuple[tuple[str, str], ...]:
    return tuple((p.replace("{s}", re.escape(source_prefix)), t.replace("{t}", tower)) for p, t in rules)


KEYMAPS: dict[str, KeyMap] = {
    "wan": KeyMap(
        name="wan",
        rules=_tower(_WAN_TOWER_RULES + _WAN_VIDEO_EMBED, "", "video"),
        ignore=(r"freqs",),
        clone=_REF_COPY_CLONES,
        fresh=_ALWAYS_FRESH + _VIDEO_ONLY_FRESH,
    ),
    "wan-diffusers": KeyMap(
        name="wan-diffusers",
        rules=_DIFFUSERS_WAN_RULES,
        clone=_REF_COPY_CLONES,
        fresh=_ALWAYS_FRESH + _VIDEO_ONLY_FRESH,
    ),
    "ovi": KeyMap(
        name="ovi",
        rules=_tower(_WAN_TOWER_RULES + _WAN_VIDEO_EMBED + _OVI_BRIDGE, "video_model.", "video")
        + _tower(_WAN_TOWER_RULES + _OVI_AUDIO_EMBED + _OVI_BRIDGE, "audio_model.", "audio"),
        ignore=(r"(video|audio)_model\.freqs",),
        clone=_REF_COPY_CLONES,
        fresh=_ALWAYS_FRESH,
    ),
    "iap": KeyMap(
        name="iap",
        rules=_tower(_WAN_TOWER_RULES + _WAN_VIDEO_EMBED + _OVI_BRIDGE + _IAP_PRIME, "video_model.", "video")
        + _tower(_WAN_TOWER_RULES + _OVI_AUDIO_EMBED + _OVI_BRIDGE, "audio_model.", "audio"),
        ignore=(r"(video|audio)_model\.freqs",) + _IAP_UNUSED,
        fresh=(r"identity\..*",),
    ),
}
# DreamID-Omni's checkpoint is Ovi's FusionModel layout with no reference weights: Ovi's renames, and
# only the identity table (never read on its path) without a source.
KEYMAPS["dreamid-omni"] = KeyMap(
    name="dreamid-omni", rules=KEYMAPS["ovi"].rules, ignore=KEYMAPS["ovi"].ignore, fresh=(r"identity\..*",)
)


def _match_one(key: str, table: tuple[tuple[str, str], ...], what: str) -> str | None:
    hits = [re.fullmatch(p, key) and re.sub(p, t, key) for p, t in table if re.fullmatch(p, key)]
    if len(hits) > 1:
        raise ValueError(f"{what} key {key!r} matches {len(hits)} rules")
    return hits[0] if hits else None


def convert_state_dict(
    source: dict[str, Tensor], keymap: KeyMap, target_shapes: dict[str, torch.Size]
) -> tuple[dict[str, Tensor], list[str]]:
    """Rename ``source`` into model keys; returns (mapped tensors incl. clones, fresh model keys).

    Raises ValueError listing unmatched source keys, unknown or duplicate targets, shape
    mismatches, and model keys covered by nothing.
    """
    mapped: dict[str, Tensor] = {}
    unmatched = []
    for key, value in source.items():
        target = _match_one(key, keymap.rules, "source")
        if target is None:
            if not any(re.fullmatch(p, key) for p in keymap.ignore):
                unmatched.append(key)
            continue
        if target not in target_shapes:
            raise ValueError(f"{keymap.name}: {key!r} maps to {target!r}, which the model does not have")
        if target in mapped:
            raise ValueError(f"{keymap.name}: two source keys map to {target!r}")
        if tuple(value.shape) != tuple(target_shapes[target]):
            raise ValueError(
                f"{keymap.name}: {key!r} has shape {tuple(value.shape)}, model key {target!r} "
                f"has {tuple(target_shapes[target])}"
            )
        mapped[target] = value
    if unmatched:
        raise ValueError(
            f"{keymap.name}: {len(unmatched)} checkpoint keys match no rule, e.g. {unmatched[:5]}"
        )
    fresh, missing = [], []
    for key in target_shapes:
        if key in mapped:
            continue
        origin = _match_one(key, keymap.clone, "clone")
        if origin is not None and origin in mapped:
            mapped[key] = mapped[origin].clone()
        elif any(re.fullmatch(p, key) for p in keymap.fresh):
            fresh.append(key)
        else:
            missing.append(key)
    if missing:
        raise ValueError(f"{keymap.name}: {len(missing)} model keys have no source, e.g. {missing[:5]}")
    return mapped, fresh


def load_foreign(model: DualTowerDiT, source: dict[str, Tensor], layout: str) -> list[str]:
    """Initialise ``model`` (built on a real device) from a foreign state dict; returns the model keys
    left at their initialisation. The final load is ``strict=True``."""
    if layout not in KEYMAPS:
        raise ValueError(f"unknown checkpoint layout {layout!r}; known: {sorted(KEYMAPS)}")
    own = model.state_dict()
    if any(v.is_meta for v in own.values()):
        raise ValueError(
            "load_foreign needs a model with initialised weights (fresh keys keep them), not meta"
        )
    mapped, fresh = convert_state_dict(source, KEYMAPS[layout], {k: v.shape for k, v in own.items()})
    full = {**{k: own[k] for k in fresh}, **{k: v.to(own[k].dtype) for k, v in mapped.items()}}
    model.load_state_dict(full, strict=True)
    logger.info("%s: loaded %d tensors, %d left at init", layout, len(mapped), len(fresh))
    return fresh
