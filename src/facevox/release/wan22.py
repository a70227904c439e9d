"""The Wan2.2-TI2V-5B video VAE (48 latent channels, x4 time, x16 space) as diffusers'
``AutoencoderKLWan`` config, for :class:`facevox.codecs.video.WanVideoCodec`.

Values are the published ``Wan2.2-TI2V-5B-Diffusers/vae/config.json`` architecture: a residual
(``is_residual``) encoder / decoder on 2x2 pixel-shuffled input (``patch_size`` 2, 12 channels), encoder
width 160, decoder width 256, ``dim_mult`` (1, 2, 4, 4), 2 residual blocks per level. The per-channel
latent mean / std belong to the checkpoint: a real folder's ``config.json`` carries them and
``WanVideoCodec.from_pretrained`` reads that file, so this module only supplies them for random
builds (zeros / ones).
"""

from __future__ import annotations

from typing import Any

WAN22_Z = 48


def wan22_vae_config(base_dim: int = 160, decoder_base_dim: int = 256) -> dict[str, Any]:
    """The Wan2.2 VAE config; smaller ``base_dim`` / ``decoder_base_dim`` keep the same architecture
    family at test size."""
    return {
        "base_dim": base_dim,
        "decoder_base_dim": decoder_base_dim,
        "z_dim": WAN22_Z,
        "dim_mult": [1, 2, 4, 4],
        "num_res_blocks": 2,
        "attn_scales": [],
        "temperal_downsample": [False, True, True],
        "dropout": 0.0,
        "is_residual": True,
        "in_channels": 12,
        "out_channels": 12,
        "patch_size": 2,
        "scale_factor_temporal": 4,
        "scale_factor_spatial": 16,
        "latents_mean": [0.0] * WAN22_Z,
        "latents_std": [1.0] * WAN22_Z,
    }
