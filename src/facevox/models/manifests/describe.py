"""Write the committed manifests from the published architectures (names and shapes only).

Sources (read for facts; dimensions from their configs):

- Ovi ``FusionModel`` (character-ai/Ovi ``ovi/modules/{model,fusion}.py``, ``configs/model/dit/
  {video,audio}.json``): two Wan-style towers of 30 blocks, width 3072, 24 heads, FFN 14336, umT5-XXL
  captions (4096), 256 sinusoidal timestep features; video latents 48 channels (Wan2.2 VAE) with
  patch (1, 2, 2); audio latents 20 channels (MMAudio 16 kHz VAE) through a conv-SwiGLU embedding
  (kernel 7, hidden ``256 * ceil(8/3 * 3072 / 256)`` = 8192); every cross-attention carries the
  other tower's ``k_fusion`` / ``v_fusion`` / ``norm_k_fusion`` / ``pre_attn_norm_fusion``;
  block modulation stored as ``modulation.modulation`` (1, 6, D).
- Identity-as-Presence release (WeChatCV/Identity-as-Presence; ``../shared/docs/paper-detail.md``
  section 2.6): the Ovi checkpoint plus, in each *video* block, a full reference copy
  ``self_attn_prime`` (q/k/v/o + q/k RMSNorms), ``modulation_prime``, ``norm3_prime`` (affine; its
  cross-attention branch is disabled, so it is unused) and ``ffn_prime``; Wan's norm1 / norm2 carry
  no parameters. The audio tower shares its weights with the voice references. No identity
  embedding in the single-subject release.

Run ``python -m facevox.models.manifests.describe`` to rewrite the JSON files.
"""

from __future__ import annotations

import logging
from pathlib import Path

from facevox.io.atomic import atomic_write_json
from facevox.models.manifests import MANIFEST_FORMAT

logger = logging.getLogger(__name__)

DIM, HEADS, FFN, DEPTH = 3072, 24, 14336, 30
TEXT, FREQ = 4096, 256
VIDEO_CH, AUDIO_CH = 48, 20
AUDIO_KERNEL = 7
AUDIO_HIDDEN = 256 * ((int(2 * 4 * DIM / 3) + 255) // 256)  # Ovi ConvMLP(dim, 4 * dim), multiple_of 256

Shapes = dict[str, tuple[int, ...]]


def _linear(name: str, out_dim: int, in_dim: int) -> Shapes:
    return {f"{name}.weight": (out_dim, in_dim), f"{name}.bias": (out_dim,)}


def _attention(prefix: str) -> Shapes:
    s: Shapes = {}
    for p in "qkvo":
        s |= _linear(f"{prefix}.{p}", DIM, DIM)
    return s | {f"{prefix}.norm_q.weight": (DIM,), f"{prefix}.norm_k.weight": (DIM,)}


def _ffn(prefix: str) -> Shapes:
    return _linear(f"{prefix}.0", FFN, DIM) | _linear(f"{prefix}.2", DIM, FFN)


def ovi_tower(prefix: str, *, audio: bool, prime: bool) -> Shapes:
    """One Ovi tower (``video_model.`` / ``audio_model.``); ``prime`` adds the release's copies."""
    s: Shapes = {}
    if audio:
        s |= {"patch_embedding.0.weight": (DIM, AUDIO_CH, AUDIO_KERNEL), "patch_embedding.0.bias": (DIM,)}
        s |= {
            "patch_embedding.2.w1.weight": (AUDIO_HIDDEN, DIM, AUDIO_KERNEL),
            "patch_embedding.2.w2.weight": (DIM, AUDIO_HIDDEN, AUDIO_KERNEL),
            "patch_embedding.2.w3.weight": (AUDIO_HIDDEN, DIM, AUDIO_KERNEL),
        }
        out = AUDIO_CH
    else:
        s |= {"patch_embedding.weight": (DIM, VIDEO_CH, 1, 2, 2), "patch_embedding.bias": (DIM,)}
        out = VIDEO_CH * 4
    s |= _linear("text_embedding.0", DIM, TEXT) | _linear("text_embedding.2", DIM, DIM)
    s |= _linear("time_embedding.0", DIM, FREQ) | _linear("time_embedding.2", DIM, DIM)
    s |= _linear("time_projection.1", 6 * DIM, DIM)
    for i in range(DEPTH):
        b = f"blocks.{i}"
        s |= _attention(f"{b}.self_attn") | _attention(f"{b}.cross_attn")
        s |= {f"{b}.norm3.weight": (DIM,), f"{b}.norm3.bias": (DIM,)}
        s |= _ffn(f"{b}.ffn") | {f"{b}.modulation.modulation": (1, 6, DIM)}
        c = f"{b}.cross_attn"
        s |= _linear(f"{c}.k_fusion", DIM, DIM) | _linear(f"{c}.v_fusion", DIM, DIM)
        s |= {f"{c}.pre_attn_norm_fusion.weight": (DIM,), f"{c}.pre_attn_norm_fusion.bias": (DIM,)}
        s |= {f"{c}.norm_k_fusion.weight": (DIM,)}
        if prime:
            s |= _attention(f"{b}.self_attn_prime") | _ffn(f"{b}.ffn_prime")
            s |= {f"{b}.modulation_prime.modulation": (1, 6, DIM)}
            s |= {f"{b}.norm3_prime.weight": (DIM,), f"{b}.norm3_prime.bias": (DIM,)}
    s |= _linear("head.head", out, DIM) | {"head.modulation": (1, 2, DIM)}
    return {prefix + k: v for k, v in s.items()}


def describe(name: str) -> Shapes:
    """The key -> shape table of checkpoint ``name`` ("ovi" or "iap")."""
    if name not in ("ovi", "iap"):
        raise ValueError(f"no description for {name!r}")
    prime = name == "iap"
    return ovi_tower("video_model.", audio=False, prime=prime) | ovi_tower(
        "audio_model.", audio=True, prime=False
    )


SOURCES = {
    "ovi": "character-ai/Ovi FusionModel (960x960_5s), from the published architecture",
    "iap": "WeChatCV/Identity-as-Presence release checkpoint (Ovi + video *_prime copies), "
    "from the published architecture; *_prime spellings per paper-detail.md section 2.6",
}


def main() -> None:
    """Rewrite every manifest next to this module."""
    here = Path(__file__).parent
    for name in ("ovi", "iap"):
        tensors = {k: list(v) for k, v in describe(name).items()}
        atomic_write_json(
            here / f"{name}.json", {"format": MANIFEST_FORMAT, "source": SOURCES[name], "tensors": tensors}
        )
        logger.info("%s: %d tensors", name, len(tensors))


if __name__ == "__main__":
    main()
