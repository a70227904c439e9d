"""Open any video codec folder by what its ``config.json`` says it is, and name a codec by its bytes.

Two kinds live behind the same interface: the Wan causal VAE (``AutoencoderKLWan``; the real Wan 2.x
VAEs and the earlier tiny one) and the linear patch codec (:mod:`facevox.codecs.patch_pca`, the
tiny default). :func:`codec_fingerprint` is what shards, releases and models record, so that latents
of one codec are never trained or decoded with another.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from facevox.codecs.base import CodecFilesError, require_files

WAN_CLASS = "AutoencoderKLWan"


def _codec_folder(folder: str | Path) -> Path:
    """The folder itself, or its ``vae/`` subfolder for a pipeline folder laid out like Wan's."""
    folder = Path(folder)
    if (folder / "vae" / "config.json").is_file() and not (folder / "config.json").is_file():
        folder = folder / "vae"
    return folder


def _config_folder(folder: str | Path) -> Path:
    return require_files(_codec_folder(folder), ["config.json"], "video codec")


def video_codec_kind(folder: str | Path) -> str:
    """The ``_class_name`` of a video codec folder (``AutoencoderKLWan`` or ``PatchPCAVideoCodec``)."""
    from facevox.codecs.patch_pca import CLASS_NAME

    path = _config_folder(folder) / "config.json"
    try:
        kind = json.loads(path.read_text()).get("_class_name")
    except (json.JSONDecodeError, AttributeError) as err:
        raise CodecFilesError(f"video codec: {path} is not a JSON object ({err})") from err
    if kind not in (WAN_CLASS, CLASS_NAME):
        raise CodecFilesError(
            f"video codec: {path} names class {kind!r}; facevox reads {WAN_CLASS} and {CLASS_NAME} folders"
        )
    return str(kind)


def load_video_codec(folder: str | Path) -> Any:
    """The video codec in ``folder``, frozen, whichever kind it is."""
    from facevox.codecs.patch_pca import CLASS_NAME, PatchPCAVideoCodec
    from facevox.codecs.video import WanVideoCodec

    if video_codec_kind(folder) == CLASS_NAME:
        return PatchPCAVideoCodec.from_pretrained(_config_folder(folder))
    return WanVideoCodec.from_pretrained(folder).eval()


def load_audio_codec(folder: str | Path) -> Any:
    """The audio codec in ``folder``, frozen: facevox's mel codec (``MelAudioCodec``) or MMAudio's 16 kHz
    VAE + vocoder (``MMAudioCodec``, the release's), by the ``_class_name`` of its ``config.json``."""
    from facevox.codecs.mel import MelAudioCodec
    from facevox.codecs.mmaudio import MMAudioCodec

    path = require_files(folder, ["config.json"], "audio codec") / "config.json"
    try:
        kind = json.loads(path.read_text()).get("_class_name")
    except (json.JSONDecodeError, AttributeError) as err:
        raise CodecFilesError(f"audio codec: {path} is not a JSON object ({err})") from err
    if kind == MMAudioCodec.__name__:
        return MMAudioCodec.from_pretrained(path.parent).eval()
    if kind == MelAudioCodec.__name__:
        return MelAudioCodec.from_pretrained(path.parent).eval()
    raise CodecFilesError(
        f"audio codec: {path} names class {kind!r}; facevox reads MelAudioCodec and MMAudioCodec folders"
    )


DECODER_ONLY = ("decoder", "post_quant_conv", "refiner", "griffin")  # names of the decoding half


def codec_fingerprint(folder: str | Path) -> str:
    """What a codec's latents are tied to, as 16 hex digits: a sha256 over its encoding half (every
    weight tensor outside the decoder, by name), its latent statistics and its config less the
    decoder-only entries. Fine-tuning a decoder keeps the fingerprint (latents, shards and models
    trained on them stay valid); refitting or retraining the encoder changes it."""
    from safetensors import safe_open

    folder = _codec_folder(folder)
    weights = sorted(folder.glob("*.safetensors"))
    if not (folder / "config.json").is_file() or not weights:
        raise CodecFilesError(f"codec folder {folder} needs config.json and *.safetensors weights")
    config = json.loads((folder / "config.json").read_text())
    h = hashlib.sha256()
    kept = {k: v for k, v in sorted(config.items()) if not any(d in k for d in DECODER_ONLY)}
    h.update(json.dumps(kept, sort_keys=True).encode())
    if (folder / "latent_stats.json").is_file():
        h.update((folder / "latent_stats.json").read_bytes())
    for path in weights:
        with safe_open(str(path), framework="pt") as fh:
            for key in sorted(fh.keys()):
                if key.split(".")[0] in DECODER_ONLY:
                    continue
                h.update(key.encode())
                h.update(fh.get_tensor(key).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
