"""Fabricated Identity-as-Presence release folders at reduced width: random tensors in the release's
key layout (``describe("iap", dims)``), and for the end-to-end tests the rest of ``ckpts/``: the release's
inference YAML, a Wan2.2-family VAE (48 ch), a tiny umT5 and a reduced MMAudio codec folder."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

from facevox.models import DualTowerConfig, TowerConfig
from facevox.models.manifests.describe import Dims, describe

DIMS = Dims(dim=48, ffn=96, depth=2, text=16, freq=32, video_channels=8, audio_channels=5)
CFG = DualTowerConfig(
    name="iap-reduced",
    video=TowerConfig(in_channels=8, dim=48, heads=4, ffn_dim=96, ref_params="copy"),
    audio=TowerConfig(in_channels=5, dim=48, heads=4, ffn_dim=96, ref_params="shared"),
    depth=2,
    text_dim=16,
    freq_dim=32,
    audio_ref_start=630,
    audio_ref_slot_gap=187,
)
# the end-to-end release: the real codecs' latent channels (Wan2.2 48, MMAudio 20)
E2E_DIMS = Dims(dim=48, ffn=96, depth=2, text=16, freq=32, video_channels=48, audio_channels=20)


def write_transformer(
    root: Path, shapes: dict[str, tuple[int, ...]] | None = None, dims: Dims = DIMS
) -> dict[str, torch.Tensor]:
    """The release transformer as two safetensors shards under ``root/IAP`` (+ an unrelated file)."""
    g = torch.Generator().manual_seed(0)
    src = {k: torch.randn(*v, generator=g) * 0.05 for k, v in (shapes or describe("iap", dims)).items()}
    (root / "IAP").mkdir(parents=True)
    for name, prefix in (("a", "video_model."), ("b", "audio_model.")):
        save_file(
            {k: v for k, v in src.items() if k.startswith(prefix)}, str(root / "IAP" / f"{name}.safetensors")
        )
    save_file({"unrelated.weight": torch.zeros(2)}, str(root / "other.safetensors"))
    return src


def write_release_yaml(path: Path, d: Dims = E2E_DIMS, heads: int = 4) -> Path:
    """The release's ``configs/ovi_fusion_id_5b_av_infer.yaml`` fields facevox reads, at ``d``'s size."""
    tower = {"dim": d.dim, "ffn_dim": d.ffn, "freq_dim": d.freq, "num_heads": heads, "num_layers": d.depth}
    tower |= {"qk_norm": True, "cross_attn_norm": True, "eps": 1e-6, "support_x_prime": True}
    cfg = {
        "text_encoder_kwargs": {"dim": d.text, "text_length": 512},
        "video_config": {
            **tower,
            "patch_size": [1, 2, 2],
            "in_dim": d.video_channels,
            "x_prime_rope_offsets": [31, 0, 0],
        },
        "audio_config": {
            **tower,
            "patch_size": [1],
            "in_dim": d.audio_channels,
            "temporal_rope_scaling_factor": 0.19676,
            "x_prime_rope_offsets": [630],
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def make_release_dir(root: Path) -> Path:
    """A whole release checkout at reduced width: ``root/configs/*.yaml`` + ``root/ckpts/...``."""
    from facevox.codecs.bigvgan import BigVGANConfig
    from facevox.codecs.mmaudio import MMAudioCodec
    from facevox.codecs.mmaudio_vae import MMAudioVAEConfig
    from facevox.codecs.video import WanVideoCodec
    from facevox.release.wan22 import wan22_vae_config
    from test_codecs_text import _tiny_umt5_folder

    ckpts = root / "ckpts"
    write_release_yaml(root / "configs" / "ovi_fusion_id_5b_av_infer.yaml")
    write_transformer(ckpts / "Identity-as-Presence", dims=E2E_DIMS)
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


def _append_eos(folder: Path) -> None:
    """End every sequence with ``</s>`` as umT5's real tokenizer does (so an empty caption is 1 token)."""
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(str(folder))
    eos = tok.convert_tokens_to_ids("</s>")
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", eos)]
    )
    tok.save_pretrained(str(folder))
