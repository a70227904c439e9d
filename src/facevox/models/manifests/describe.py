"""Write the committed manifests from the published architectures (names and shapes only).

Sources (read for facts; dimensions from their configs):

- Ovi ``FusionModel`` (character-ai/Ovi ``ovi/modules/{model,fusion}.py``, ``configs/model/dit/
  {video,audio}.json``): two Wan-style towers of 30 blocks, width 3072, 24 heads, FFN 14336, umT5-XXL
  captions (4096), 256 sinusoidal timestep features; video latents 48 channels (Wan2.2 VAE) with
  patch (1, 2, 2); audio latents 20 channels (MMAudio 16 kHz VAE) through a conv-SwiGLU embedding
  (kernel 7, hidden ``256 * ceil(8/3 * 3072 / 256)`` = 8192); every cross-attention carries the
  other tower's ``k_fusion`` / ``v_fusion`` / ``norm_k_fusion`` / ``pre_attn_norm_fusion``;
  block modulation stored as ``modulation.modulation`` (1, 6, D).
- Identity-as-Presence release (WeChatCV/Identity-as-Presence, read at commit 9d87f9b:
  ``identity_as_presence/models/iap_base_model.py``, ``iap_fusion_model.py``,
  ``configs/ovi_fusion_id_5b_av_infer.yaml``): the state dict of its ``FusionModelIDAV``, whose two
  towers are both built with ``support_x_prime: true``. Every block of *both* towers therefore holds,
  beside Ovi's weights, the reference copies ``self_attn.{q,k,v,o}_prime``,
  ``self_attn.norm_{q,k}_prime``, ``norm3_prime`` (affine), ``cross_attn_prime`` (q/k/v/o + q/k
  RMSNorms), ``ffn_prime`` and ``modulation_prime`` (a bare (1, 6, D) Parameter, as is ``modulation``);
  ``norm1_prime`` / ``norm2_prime`` carry no parameters. Only the *video* tower's self-attention, FFN
  and modulation copies are used by the release's forward (the audio tower runs its references
  through the shared weights, and ``enable_prime_cross_attn`` is False). No identity embedding in the
  single-subject release.

Run ``python -m facevox.models.manifests.describe`` to rewrite the JSON files.
"""

from __future__ import annotations

from dataclasses import dataclass

from facevox.models.manifests import write_manifests

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class Dims:
    """Architecture sizes of an Ovi-family checkpoint (defaults: the released 960x960_5s model)."""

    dim: int = 3072
    ffn: int = 14336
    depth: int = 30
    text: int = 4096  # umT5-XXL
    freq: int = 256
    video_channels: int = 48  # Wan2.2 VAE
    audio_channels: int = 20  # MMAudio 16 kHz VAE
    audio_kernel: int = 7
    multiple_of: int = 256  # hidden rounding of the audio ConvMLP(dim, 4 * dim)

    @property
    def audio_hidden(self) -> int:
        m = self.multiple_of
        return m * ((int(2 * 4 * self.dim / 3) + m - 1) // m)


def _linear(name: str, out_dim: int, in_dim: int) -> Shapes:
    return {f"{name}.weight": (out_dim, in_dim), f"{name}.bias": (out_dim,)}


def _attention(prefix: str, d: Dims) -> Shapes:
    s: Shapes = {}
    for p in "qkvo":
        s |= _linear(f"{prefix}.{p}", d.dim, d.dim)
    return s | {f"{prefix}.norm_q.weight": (d.dim,), f"{prefix}.norm_k.weight": (d.dim,)}


def _ffn(prefix: str, d: Dims) -> Shapes:
    return _linear(f"{prefix}.0", d.ffn, d.dim) | _linear(f"{prefix}.2", d.dim, d.ffn)


def ovi_tower(prefix: str, *, audio: bool, prime: bool, d: Dims = Dims()) -> Shapes:  # noqa: B008
    """One Ovi tower (``video_model.`` / ``audio_model.``); ``prime`` adds the release's copies."""
    dim, text, freq, audio_ch, video_ch = d.dim, d.text, d.freq, d.audio_channels, d.video_channels
    kernel, hidden = d.audio_kernel, d.audio_hidden
    s: Shapes = {}
    if audio:
        s |= {"patch_embedding.0.weight": (dim, audio_ch, kernel), "patch_embedding.0.bias": (dim,)}
        s |= {
            "patch_embedding.2.w1.weight": (hidden, dim, kernel),
            "patch_embedding.2.w2.weight": (dim, hidden, kernel),
            "patch_embedding.2.w3.weight": (hidden, dim, kernel),
        }
        out = audio_ch
    else:
        s |= {"patch_embedding.weight": (dim, video_ch, 1, 2, 2), "patch_embedding.bias": (dim,)}
        out = video_ch * 4
    s |= _linear("text_embedding.0", dim, text) | _linear("text_embedding.2", dim, dim)
    s |= _linear("time_embedding.0", dim, freq) | _linear("time_embedding.2", dim, dim)
    s |= _linear("time_projection.1", 6 * dim, dim)
    for i in range(d.depth):
        b = f"blocks.{i}"
        s |= _attention(f"{b}.self_attn", d) | _attention(f"{b}.cross_attn", d)
        s |= {f"{b}.norm3.weight": (dim,), f"{b}.norm3.bias": (dim,)}
        # Ovi's checkpoint wraps the block modulation (``modulation.modulation``); the release's
        # module holds it bare (its loader renames Ovi's spelling).
        s |= _ffn(f"{b}.ffn", d) | {f"{b}.modulation" if prime else f"{b}.modulation.modulation": (1, 6, dim)}
        c = f"{b}.cross_attn"
        s |= _linear(f"{c}.k_fusion", dim, dim) | _linear(f"{c}.v_fusion", dim, dim)
        s |= {f"{c}.pre_attn_norm_fusion.weight": (dim,), f"{c}.pre_attn_norm_fusion.bias": (dim,)}
        s |= {f"{c}.norm_k_fusion.weight": (dim,)}
        if prime:
            for p in "qkvo":
                s |= _linear(f"{b}.self_attn.{p}_prime", dim, dim)
            s |= {f"{b}.self_attn.norm_q_prime.weight": (dim,), f"{b}.self_attn.norm_k_prime.weight": (dim,)}
            s |= _attention(f"{b}.cross_attn_prime", d) | _ffn(f"{b}.ffn_prime", d)
            s |= {f"{b}.modulation_prime": (1, 6, dim)}
            s |= {f"{b}.norm3_prime.weight": (dim,), f"{b}.norm3_prime.bias": (dim,)}
    s |= _linear("head.head", out, dim) | {"head.modulation": (1, 2, dim)}
    return {prefix + k: v for k, v in s.items()}


def describe(name: str, dims: Dims | None = None) -> Shapes:
    """The key -> shape table of checkpoint ``name`` ("ovi" or "iap"); ``dims`` for reduced widths."""
    if name not in ("ovi", "iap"):
        raise ValueError(f"no description for {name!r}")
    d = dims or Dims()
    prime = name == "iap"
    return ovi_tower("video_model.", audio=False, prime=prime, d=d) | ovi_tower(
        "audio_model.", audio=True, prime=prime, d=d
    )


SOURCES = {
    "ovi": "character-ai/Ovi FusionModel (960x960_5s), from the published architecture",
    "iap": "WeChatCV/Identity-as-Presence release checkpoint (FusionModelIDAV state dict: Ovi + "
    "*_prime copies in both towers), from the published code at commit 9d87f9b",
}


def main() -> None:
    """Rewrite this module's manifests next to it."""
    write_manifests(describe, SOURCES)


if __name__ == "__main__":
    main()
