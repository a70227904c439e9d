"""``facevox convert-mmaudio SRC OUT``: MMAudio's public 16 kHz checkpoints -> a facevox MMAudio folder.

MMAudio publishes its VAE (``ext_weights/v1-16.pth``, a state dict) and vocoder
(``ext_weights/best_netG.pt``, ``{"generator": state dict}``) as torch pickles. This explicit, offline
step reads them once with ``torch.load(weights_only=True)`` (tensors only, no code), checks every name
and shape against the architecture (a misfit names the key) and writes ``config.json``,
``vae.safetensors`` and ``vocoder.safetensors`` with the same tensor names. The library itself only
ever reads the safetensors folder (:meth:`facevox.codecs.mmaudio.MMAudioCodec.from_pretrained`).

The vocoder may spell its weight norm the old way (``weight_g`` / ``weight_v``, torch's
``nn.utils.weight_norm``) or the new one (``parametrizations.weight.original0`` / ``original1``);
both are written in the new spelling, as torch's own compatibility hook reads them.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from facevox.codecs.base import CodecFilesError

if TYPE_CHECKING:
    from facevox.codecs.bigvgan import BigVGANVocoder
    from facevox.codecs.mmaudio_vae import MMAudioVAE

log = logging.getLogger(__name__)

VAE_NAME = "v1-16.pth"
VOCODER_NAME = "best_netG.pt"
_LEGACY_WEIGHT_NORM = (
    (r"\.weight_g$", ".parametrizations.weight.original0"),
    (r"\.weight_v$", ".parametrizations.weight.original1"),
)


def _read_pickle(path: Path, what: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CodecFilesError(f"{what}: {path} does not exist (weights are never downloaded)")
    data = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(data, dict) and "generator" in data:
        data = data["generator"]
    if not isinstance(data, dict) or not all(torch.is_tensor(v) for v in data.values()):
        raise ValueError(f"{what}: {path} is not a state dict of tensors")
    return data


def modern_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename legacy ``weight_g`` / ``weight_v`` keys to the parametrization spelling."""
    out = {}
    for k, v in state.items():
        for pattern, new in _LEGACY_WEIGHT_NORM:
            k = re.sub(pattern, new, k)
        out[k] = v
    return out


def _architecture() -> tuple[MMAudioVAE, BigVGANVocoder]:
    """The 16 kHz VAE and vocoder (built under the caller's device context)."""
    from facevox.codecs.bigvgan import BigVGANVocoder
    from facevox.codecs.mmaudio_vae import MMAudioVAE

    return MMAudioVAE(), BigVGANVocoder()


def convert(vae_path: str | Path, vocoder_path: str | Path, out: str | Path) -> Path:
    """Check and rewrite the two pickles as a facevox MMAudio folder; returns ``out``."""
    from facevox.codecs.mmaudio import MMAudioCodec, check_state

    vae_sd = _read_pickle(Path(vae_path), "MMAudio VAE")
    voc_sd = modern_weight_norm(_read_pickle(Path(vocoder_path), "MMAudio vocoder"))
    with torch.device("meta"):
        vae, vocoder = _architecture()
    check_state(vae, {k: tuple(v.shape) for k, v in vae_sd.items()}, str(vae_path))
    check_state(vocoder, {k: tuple(v.shape) for k, v in voc_sd.items()}, str(vocoder_path))
    vae.load_state_dict({k: v.float() for k, v in vae_sd.items()}, strict=True, assign=True)
    vocoder.load_state_dict({k: v.float() for k, v in voc_sd.items()}, strict=True, assign=True)
    folder = MMAudioCodec(vae, vocoder).save_pretrained(out)
    log.info("wrote %s (%d + %d tensors)", folder, len(vae_sd), len(voc_sd))
    return folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "src", help=f"folder with MMAudio's {VAE_NAME} and {VOCODER_NAME} (ckpts/MMAudio/ext_weights)"
    )
    p.add_argument("out", help="output folder (config.json, vae.safetensors, vocoder.safetensors)")
    p.add_argument("--vae", help=f"the VAE file (default SRC/{VAE_NAME})")
    p.add_argument("--vocoder", help=f"the vocoder file (default SRC/{VOCODER_NAME})")


def run(args: argparse.Namespace) -> int:
    src = Path(args.src)
    convert(args.vae or src / VAE_NAME, args.vocoder or src / VOCODER_NAME, args.out)
    return 0
