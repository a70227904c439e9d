"""Turn a folder laid out like the release's ``ckpts/`` into facevox components, lazily and strictly.

The transformer is built on the meta device and filled tensor by tensor from its safetensors files
(``safe_open``), renamed through the declarative ``iap`` key map and loaded with
``load_state_dict(strict=True, assign=True)``: the 15B-parameter model is never materialised twice,
and the peak is one copy in the requested dtype (bf16: about 31 GB).

Accepted folder (``DIR``; every part found by content, not by a fixed file name):

- the release transformer: ``*.safetensors`` files anywhere under ``DIR`` whose keys are the release
  layout (``video_model.blocks.0.self_attn.q_prime.weight`` ...), possibly sharded;
- the Wan2.2-TI2V-5B video VAE in diffusers layout (a folder whose ``config.json`` has
  ``"z_dim": 48``, e.g. ``Wan2.2-TI2V-5B-Diffusers/vae``); the original ``Wan2.2_VAE.pth`` is a
  pickle and is not read;
- the umT5-XXL encoder in transformers layout (``config.json`` with ``"model_type": "umt5"``,
  safetensors, tokenizer next to it or in ``../tokenizer``);
- MMAudio's 16 kHz VAE + vocoder as a facevox MMAudio folder (``config.json`` with
  ``"_class_name": "MMAudioCodec"``, ``vae.safetensors``, ``vocoder.safetensors``); the release's
  ``MMAudio/ext_weights/{v1-16.pth,best_netG.pt}`` are pickles: ``facevox convert-mmaudio`` turns
  them into that folder once, offline (:func:`load_release` says so when only the pickles are there);
- optionally the release's inference YAML (``configs/ovi_fusion_id_5b_av_infer.yaml``, in ``DIR``,
  ``DIR/configs`` or ``DIR/../configs``): its ``video_config`` / ``audio_config`` give the towers'
  sizes (checked against what facevox supports); without it the size is ``iap-5b``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import safe_open

from facevox.models import DualTowerConfig, DualTowerDiT, get_config
from facevox.models.keymaps import KEYMAPS, convert_state_dict

logger = logging.getLogger(__name__)

MARKER_KEY = "video_model.blocks.0.self_attn.q_prime.weight"

# pipeline.json values of the release (Ovi 1.1 960x960_5s + IAP inference settings,
# ../shared/docs/paper-detail.md sections 2.5 and 5): 121 frames at 24 fps (31 latent frames), 16 kHz
# audio (157 latent frames), 960x960, UniPC shift 5, voice references up to 6 s.
RELEASE_SETTINGS: dict[str, Any] = {
    "format": "facevox.pipeline/1",
    "fps": 24.0,
    "sample_rate": 16000,
    "height": 960,
    "width": 960,
    "num_frames": 121,
    "max_frames": 121,
    "face_size": 512,
    "voice_seconds": 6.0,
    "max_caption_tokens": 512,
    "shift": 5.0,
    "trained_with": {"release": "WeChatCV/Identity-as-Presence (single-subject weights)"},
}


class ReleaseError(ValueError):
    """The folder is not a usable release layout (raised before any heavy work)."""


@dataclass(frozen=True)
class ReleaseParts:
    """What :func:`find_parts` located under a release folder."""

    transformer: tuple[Path, ...]
    video_vae: Path | None
    text_encoder: Path | None
    mmaudio: Path | None  # a facevox MMAudio folder
    mmaudio_pickles: tuple[Path, ...]  # MMAudio's original .pth / .pt files (need converting)
    release_yaml: Path | None


def _keys(path: Path) -> list[str]:
    with safe_open(str(path), framework="pt") as fh:
        return list(fh.keys())


def _config_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def find_parts(folder: str | Path, marker: str | None = MARKER_KEY) -> ReleaseParts:
    """Locate the release's components under ``folder`` by content; ReleaseError if it is no release.

    ``marker``: the key that identifies the transformer (None: any two-tower file, for other families
    laid out the same way, e.g. DreamID-Omni, whose loader checks the tensors itself)."""
    root = Path(folder)
    if not root.is_dir():
        raise ReleaseError(f"{root} is not a folder")
    transformer = []
    for path in sorted(root.rglob("*.safetensors")):
        keys = _keys(path)
        if any(k.startswith("video_model.") or k.startswith("audio_model.") for k in keys):
            transformer.append(path)
    if marker is not None and not any(marker in _keys(p) for p in transformer):
        raise ReleaseError(
            f"{root}: no safetensors file holds the release transformer (looked for {MARKER_KEY!r}); "
            "an Ovi checkpoint without the *_prime copies loads with layout 'ovi' instead"
        )
    video_vae = text = mmaudio = None
    for cfg in sorted(root.rglob("config.json")):
        d = _config_json(cfg)
        if d.get("z_dim") == 48 and video_vae is None:
            video_vae = cfg.parent
        if d.get("model_type") == "umt5" and text is None:
            text = cfg.parent
        if d.get("_class_name") == "MMAudioCodec" and mmaudio is None:
            mmaudio = cfg.parent
    pickles = tuple(sorted({*root.rglob("v1-16.pth"), *root.rglob("best_netG.pt")}))
    return ReleaseParts(tuple(transformer), video_vae, text, mmaudio, pickles, _release_yaml(root))


def _release_yaml(root: Path) -> Path | None:
    for where in (root, root / "configs", root.parent / "configs"):
        for path in sorted(where.glob("*.yaml")):
            d = yaml.safe_load(path.read_text()) if path.is_file() else None
            if isinstance(d, dict) and {"video_config", "audio_config"} <= d.keys():
                return path
    return None


def unsupported_tower_settings(
    towers: tuple[tuple[str, dict[str, Any], list[int]], ...], flags: tuple[str, ...]
) -> list[str]:
    """The settings of two towers' configs (name, config dict, the patch size facevox implements)
    that facevox does not implement: another patch size, a boolean flag in ``flags`` switched off,
    unequal depths. Empty when all is supported."""
    problems = [
        f"{name}.{key}={cfg.get(key)!r}"
        for name, cfg, patch in towers
        for key, ok in (
            ("patch_size", list(cfg.get("patch_size", patch)) == patch),
            *((flag, cfg.get(flag, True) is True) for flag in flags),
        )
        if not ok
    ]
    (_, v, _), (_, a, _) = towers
    if v["num_layers"] != a["num_layers"]:
        problems.append(f"num_layers video {v['num_layers']} != audio {a['num_layers']}")
    return problems


def config_from_yaml(path: Path) -> DualTowerConfig:
    """The towers' sizes from the release's inference YAML, as an ``iap-5b``-shaped config.

    ReleaseError when the file asks for something facevox does not implement (another patch size,
    unequal depths, no qk-norm / cross-attention norm, an audio voice offset that is not an int).
    """
    d = yaml.safe_load(path.read_text())
    v, a = d["video_config"], d["audio_config"]
    base = get_config("iap-5b")
    problems = unsupported_tower_settings(
        (("video_config", v, [1, 2, 2]), ("audio_config", a, [1])),
        ("qk_norm", "cross_attn_norm", "support_x_prime"),
    )
    if problems:
        raise ReleaseError(f"{path}: unsupported release settings: {', '.join(problems)}")
    text_dim = int(d.get("text_encoder_kwargs", {}).get("dim", base.text_dim))
    try:
        return replace(
            base,
            name="iap-release",
            video=replace(
                base.video, in_channels=v["in_dim"], dim=v["dim"], heads=v["num_heads"], ffn_dim=v["ffn_dim"]
            ),
            audio=replace(
                base.audio, in_channels=a["in_dim"], dim=a["dim"], heads=a["num_heads"], ffn_dim=a["ffn_dim"]
            ),
            depth=v["num_layers"],
            text_dim=text_dim,
            freq_dim=v.get("freq_dim", base.freq_dim),
            rope_time_scale=float(a.get("temporal_rope_scaling_factor", base.rope_time_scale)),
            audio_ref_start=int(a.get("x_prime_rope_offsets", [base.audio_ref_start])[0]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ReleaseError(f"{path}: bad release config ({e})") from e


def release_config(base: DualTowerConfig | None = None, parts: ReleaseParts | None = None) -> DualTowerConfig:
    """``base`` if given, else the release YAML's sizes if the folder has one, else ``iap-5b``."""
    if base is not None:
        return base
    if parts is not None and parts.release_yaml is not None:
        return config_from_yaml(parts.release_yaml)
    return get_config("iap-5b")


def check_layout(
    shapes: dict[str, tuple[int, ...]], config: DualTowerConfig, layout: str = "iap"
) -> tuple[list[str], list[str]]:
    """Map a checkpoint's key -> shape table onto ``config`` built on the meta device, strictly.

    Returns (mapped model keys, fresh model keys); ValueError on any unmatched, missing, duplicate
    or mis-shaped key (the key map's rules). Nothing is materialised.
    """
    with torch.device("meta"):
        model = DualTowerDiT(config)
    target = {k: v.shape for k, v in model.state_dict().items()}
    source = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    mapped, fresh = convert_state_dict(source, KEYMAPS[layout], target)
    return sorted(mapped), fresh


def absent_release_keys(shapes: dict[str, tuple[int, ...]], depth: int) -> list[str]:
    """The release checkpoint's names (its manifest at ``depth`` blocks) that facevox uses and
    ``shapes`` lacks; the unused ``*_prime`` copies may be absent (the release's loader clones them)."""
    from facevox.models.manifests.describe import Dims, describe

    ignore = KEYMAPS["iap"].ignore
    return [
        k
        for k in describe("iap", Dims(depth=depth))
        if k not in shapes and not any(re.fullmatch(p, k) for p in ignore)
    ]


def load_release_model(
    folder: str | Path,
    *,
    dtype: torch.dtype = torch.bfloat16,
    device: str | torch.device = "cpu",
    config: DualTowerConfig | None = None,
) -> DualTowerDiT:
    """The release transformer as a facevox ``DualTowerDiT`` (``iap-5b``), strictly, tensor by tensor.

    ``identity.table`` (absent in the single-subject release) is set to zeros, which leaves the
    release's function unchanged. ``config`` overrides the size (tests use a reduced width).
    """
    parts = find_parts(folder)
    cfg = release_config(config, parts)
    shapes: dict[str, tuple[int, ...]] = {}
    owner: dict[str, Path] = {}
    for path in parts.transformer:
        with safe_open(str(path), framework="pt") as fh:
            for k in fh.keys():  # noqa: SIM118 (safe_open is not iterable)
                if k in owner:
                    raise ReleaseError(f"{k!r} appears in both {owner[k]} and {path}")
                shapes[k], owner[k] = tuple(fh.get_slice(k).get_shape()), path
    with torch.device("meta"):
        model = DualTowerDiT(cfg)
    target = {k: v.shape for k, v in model.state_dict().items()}
    # names and shapes first (meta tensors): fail before reading any weight
    absent = absent_release_keys(shapes, cfg.depth)
    if absent:
        more = f" and {len(absent) - 1} more, e.g. {absent[1:5]}" if len(absent) > 1 else ""
        raise ReleaseError(f"{folder}: the release transformer lacks {absent[0]!r}{more}")
    source = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    try:
        mapped, fresh = convert_state_dict(source, KEYMAPS["iap"], target)
    except ValueError as err:
        raise ReleaseError(f"{folder}: {err}") from err
    if set(fresh) != {"identity.table"}:
        raise ReleaseError(f"{folder}: unexpected keys left without a source: {fresh[:5]}")
    by_id = {id(v): k for k, v in source.items()}
    rename = {by_id[id(v)]: k for k, v in mapped.items()}  # release key -> model key
    state: dict[str, torch.Tensor] = {}
    for path in parts.transformer:  # one tensor at a time: the peak is the finished model
        with safe_open(str(path), framework="pt", device=str(device)) as fh:
            for k in fh.keys():  # noqa: SIM118 (safe_open is not iterable)
                if k in rename:
                    state[rename[k]] = fh.get_tensor(k).to(dtype)
    state["identity.table"] = torch.zeros(target["identity.table"], dtype=dtype, device=device)
    model.load_state_dict(state, strict=True, assign=True)
    logger.info("release transformer: %d tensors from %d files", len(state) - 1, len(parts.transformer))
    return model.eval()


def load_release(
    folder: str | Path,
    *,
    dtype: torch.dtype = torch.bfloat16,
    device: str | torch.device = "cpu",
    config: DualTowerConfig | None = None,
) -> tuple[DualTowerDiT, Any, Any, Any, dict[str, Any]]:
    """(model, video_codec, audio_codec, text_encoder, pipeline settings) from a release folder.

    Every part's presence is checked before any weight is read. The towers load in ``dtype``, the
    codecs and the text encoder in float32 (the pipeline moves each to ``device`` when it runs).
    ``settings`` are :data:`RELEASE_SETTINGS` plus the text encoder's folder.
    """
    from facevox.codecs.mmaudio import MMAudioCodec
    from facevox.codecs.text import T5TextEncoder
    from facevox.codecs.video import WanVideoCodec

    parts = find_parts(folder)
    if parts.video_vae is None:
        raise ReleaseError(f"{folder}: no Wan2.2 VAE in diffusers layout (config.json with z_dim 48)")
    if parts.text_encoder is None:
        raise ReleaseError(f"{folder}: no umT5 encoder in transformers layout (config.json, model_type umt5)")
    if parts.mmaudio is None:
        hint = (
            f"found MMAudio's pickles ({', '.join(p.name for p in parts.mmaudio_pickles)}): convert them once with "
            f"`facevox convert-mmaudio {parts.mmaudio_pickles[0].parent} {parts.mmaudio_pickles[0].parent.parent / 'facevox'}`"
            if parts.mmaudio_pickles
            else "put MMAudio's ext_weights/v1-16.pth and best_netG.pt there and run `facevox convert-mmaudio`"
        )
        raise ReleaseError(
            f"{folder}: no MMAudio 16 kHz codec folder (config.json of an MMAudioCodec); {hint}"
        )
    text_dir = parts.text_encoder
    if text_dir.name == "text_encoder" and (text_dir.parent / "tokenizer").is_dir():
        text_dir = text_dir.parent  # diffusers pipeline layout: text_encoder/ + tokenizer/
    model = load_release_model(folder, dtype=dtype, device=device, config=config)
    video = WanVideoCodec.from_pretrained(parts.video_vae)
    audio = MMAudioCodec.from_pretrained(parts.mmaudio)
    # the release feeds its tags to umT5 as plain text (docs/release.md, "Caption tags")
    text = T5TextEncoder.from_pretrained(
        text_dir, max_length=RELEASE_SETTINGS["max_caption_tokens"], tags_as_tokens=False
    )
    settings = {**RELEASE_SETTINGS, "text_encoder": str(text_dir)}
    logger.info(
        "release: video VAE %s, audio codec %s, text encoder %s", parts.video_vae, parts.mmaudio, text_dir
    )
    return model, video, audio, text, settings
