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


def _config_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    if (folder / "vae" / "config.json").is_file() and not (folder / "config.json").is_file():
        folder = folder / "vae"
    return require_files(folder, ["config.json"], "video codec")


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


def codec_fingerprint(folder: str | Path) -> str:
    """sha256 (first 16 hex digits) over a codec folder's config and weight files, by name."""
    folder = Path(folder)
    if (folder / "vae" / "config.json").is_file() and not (folder / "config.json").is_file():
        folder = folder / "vae"
    files = sorted(p for p in folder.iterdir() if p.suffix in (".json", ".safetensors") and p.is_file())
    files = [p for p in files if p.name != "PROVENANCE.json"]
    if not files:
        raise CodecFilesError(f"codec folder {folder} holds no config or weights")
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]
