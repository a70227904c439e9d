"""Frozen latent codecs (video VAE, audio VAE) and the caption text encoder.

Heavy libraries (diffusers, transformers) are imported inside the constructors, so importing this
package is cheap.
"""

from facevox.codecs.audio import OobleckAudioCodec, tiny_oobleck_config
from facevox.codecs.base import Codec, CodecFilesError, LatentDist, LatentStats
from facevox.codecs.video import WanVideoCodec, tiny_wan_config

__all__ = [
    "Codec",
    "CodecFilesError",
    "LatentDist",
    "LatentStats",
    "OobleckAudioCodec",
    "WanVideoCodec",
    "tiny_oobleck_config",
    "tiny_wan_config",
]
