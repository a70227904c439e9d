"""A fabricated DreamID-Omni checkout at reduced width: ``ckpts/DreamID_Omni/dreamid_omni.safetensors``
(random tensors named and shaped as DreamID-Omni's, towers of width 32 on the real codecs' 48 / 20 latent
channels), the checkout's ``dreamid_omni/configs/model/dit/{video,audio}.json`` at that size, and the
rest of ``ckpts/`` as for the IaP fixtures (Wan2.2-family VAE, tiny umT5, reduced MMAudio); plus people
(an image and a 2.5 s voice each, no espeak needed)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image
from safetensors.torch import save_file

from facevox.models.manifests.describe_dreamid import AUDIO_DIT, VIDEO_DIT, describe_dreamid

SMALL = {"dim": 32, "ffn_dim": 64, "freq_dim": 32, "num_heads": 2, "num_layers": 2, "text_dim": 16}
E2E_VIDEO = replace(VIDEO_DIT, **SMALL)  # in_dim 48 (Wan2.2 VAE)
E2E_AUDIO = replace(AUDIO_DIT, **SMALL)  # in_dim 20 (MMAudio 16 kHz)


def write_dreamid_transformer(ckpts: Path, scale: float = 0.05) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    src = {k: scale * torch.randn(*v, generator=g) for k, v in describe_dreamid(E2E_VIDEO, E2E_AUDIO).items()}
    (ckpts / "DreamID_Omni").mkdir(parents=True)
    save_file(src, str(ckpts / "DreamID_Omni" / "dreamid_omni.safetensors"))
    return src


def make_dreamid_dir(root: Path) -> Path:
    """``root/ckpts`` of a reduced DreamID-Omni checkout (its DiT JSONs under ``root/dreamid_omni``)."""
    from facevox.codecs.bigvgan import BigVGANConfig
    from facevox.codecs.mmaudio import MMAudioCodec
    from facevox.codecs.mmaudio_vae import MMAudioVAEConfig
    from facevox.codecs.video import WanVideoCodec
    from facevox.release.wan22 import wan22_vae_config
    from release_fixtures import _append_eos
    from test_codecs_text import _tiny_umt5_folder

    ckpts = root / "ckpts"
    write_dreamid_transformer(ckpts)
    dit = root / "dreamid_omni" / "configs" / "model" / "dit"
    dit.mkdir(parents=True)
    for name, cfg in (("video", E2E_VIDEO), ("audio", E2E_AUDIO)):
        (dit / f"{name}.json").write_text(json.dumps(asdict(cfg)))
    torch.manual_seed(0)
    WanVideoCodec.from_config(wan22_vae_config(base_dim=8, decoder_base_dim=8)).save_pretrained(
        ckpts / "Wan2.2-TI2V-5B-Diffusers" / "vae"
    )
    _tiny_umt5_folder(ckpts / "umt5-xxl")
    _append_eos(ckpts / "umt5-xxl" / "tokenizer")
    MMAudioCodec.from_config(
        MMAudioVAEConfig(hidden_dim=8), BigVGANConfig(upsample_initial_channel=64)
    ).save_pretrained(ckpts / "MMAudio" / "facevox")
    return ckpts


def make_people(d: Path, n: int = 2) -> list[tuple[Path, Path]]:
    """(image, voice) per person: images of other aspects than the clip (so the white padding shows),
    voices of 2.5 s (a tone plus noise; DreamID-Omni keeps seconds 1-2)."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        img = rng.integers(0, 255, size=(48 + 16 * k, 40, 3), dtype=np.uint8)
        Image.fromarray(img).save(d / f"p{k}.png")
        t = np.arange(int(2.5 * 16000)) / 16000
        wav = 0.3 * np.sin(2 * np.pi * (180 + 60 * k) * t) + 0.02 * rng.standard_normal(t.size)
        sf.write(d / f"p{k}.wav", wav.astype(np.float32), 16000)
        out.append((d / f"p{k}.png", d / f"p{k}.wav"))
    return out
