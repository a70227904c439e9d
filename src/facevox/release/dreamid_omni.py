"""DreamID-Omni (GitHub ``Guoxu1233/DreamID-Omni``, arXiv 2602.12160) as a facevox ``DualTowerDiT``.

What the checkpoint is (``ckpts/DreamID_Omni/dreamid_omni.safetensors``, read from the public code at
commit 9a9f456, :mod:`facevox.models.manifests.describe_dreamid`): Ovi's ``FusionModel`` layout key for
key, 2,073 tensors, 11,660,753,108 parameters (video tower 5,566,479,552, audio tower 6,094,273,556). It
has no reference weights and no identity embedding: faces ride along as extra latent frames and voices
as extra audio latents *inside* the target sequences, through the target weights, told apart only by
their RoPE offsets (Syn-RoPE) and the caption's ``<subK>`` tags.

How facevox represents it: both towers ``ref_params="shared"`` (no reference parameters), the
identity table (absent in the checkpoint) set to zeros and never read, and the references passed as
extra target frames / tokens with explicit positions (:mod:`facevox.release.dreamid_inputs`). The model's
own reference path (``References`` / ``ReferenceCache``: references on a stream of their own, at t = 0,
without caption or bridge attention) is *not* DreamID-Omni's function and must not be used with these
weights; ``docs/models.md`` lists the differences.

Accepted folder: ``*.safetensors`` files anywhere under it whose keys are ``video_model.*`` /
``audio_model.*`` (one file as released, or shards). An Identity-as-Presence folder (``*_prime`` keys) is
refused with a pointer to :func:`facevox.release.load_release_model`; any other folder, or tensors that
differ from the expected table, is refused naming the first differing key and both shapes, before any
weight is read. Ovi's base ``FusionModel`` checkpoint has the same names and shapes and cannot be told
apart by its tensors: it loads here too (and then computes Ovi, not DreamID-Omni).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open

from facevox.models import DualTowerConfig, DualTowerDiT, TowerConfig
from facevox.models.keymaps import KEYMAPS, KeyMap, convert_state_dict
from facevox.models.manifests.describe_dreamid import AUDIO_DIT, VIDEO_DIT, DiTConfig, describe_dreamid
from facevox.release.loader import MARKER_KEY as IAP_MARKER_KEY

logger = logging.getLogger(__name__)

Shapes = dict[str, tuple[int, ...]]
Family = Literal["iap", "dreamid-omni"]

# DreamIDOmniEngine.generate: rope_apply_1d's freqs_scaling is torch.tensor(31 / 157,
# dtype=bfloat16), i.e. 0.197265625 (the audio.json value 0.19676 is never used at inference)
TIME_SCALE = 0.197265625
MAX_PEOPLE = 2  # the engine takes image0 / image1 and audio0 / audio1; the README tags <sub1>, <sub2>

# dreamid_omni/configs/inference/inference_r2av.yaml and dreamid_omni_engine.py at commit 9a9f456
DREAMID_OMNI_SETTINGS: dict[str, Any] = {
    "fps": 24.0,
    "sample_rate": 16000,
    "height": 704,  # video_frame_height_width [704, 1280]; the YAML also names [512, 992]
    "width": 1280,
    "num_frames": 121,  # video_latent_length 31 (Wan2.2 VAE, time stride 4)
    "video_latent_frames": 31,
    "audio_latent_frames": 157,  # MMAudio 16 kHz, one latent per 512 samples
    "max_people": MAX_PEOPLE,
    "voice_window": (1.0, 2.0),  # seconds of each voice file kept as its reference (librosa, 16 kHz)
    "max_caption_tokens": 512,
    "sample_steps": 50,
    "solver": "unipc",
    "shift": 5.0,
    "video_cfg_scale": 3.0,
    "video_ref_cfg_scale": 1.5,
    "audio_cfg_scale": 4.0,
    "audio_ref_cfg_scale": 2.0,
    "video_negative_prompt": "jitter, bad hands, blur, distortion",
    "audio_negative_prompt": "robotic, muffled, echo, distorted",
    "trained_with": {"release": "Guoxu1233/DreamID-Omni R2AV v1 (up to two people)"},
}

# The checkpoint is Ovi's FusionModel layout: Ovi's renames, and nothing but the identity table left
# without a source (DualTowerDiT always builds one; the loader zeroes it). Registered as KEYMAPS entry.
DREAMID_OMNI_KEYMAP: KeyMap = KEYMAPS["dreamid-omni"]
_OVI_MARKER_KEY = "video_model.blocks.0.cross_attn.k_fusion.weight"


class DreamIDOmniError(ValueError):
    """The folder or config is not a usable DreamID-Omni checkpoint (raised before any weight is read)."""


def dreamid_omni_config(video: DiTConfig = VIDEO_DIT, audio: DiTConfig = AUDIO_DIT) -> DualTowerConfig:
    """The ``DualTowerDiT`` size that holds ``FusionModel(video, audio)`` (full size by default: the
    registered size ``get_config("dreamid-omni")``).

    DreamIDOmniError naming every setting facevox does not implement (an image MLP, no qk-norm or
    cross-attention norm, windowed attention, towers that differ in depth, width, text or timestep
    features, an audio patch other than 1, output channels unequal to input channels).
    """
    problems = [
        f"{name}.{key}={value!r}"
        for name, c, types in (("video", video, ("ti2v", "t2v")), ("audio", audio, ("t2a",)))
        for key, value, ok in (
            ("model_type", c.model_type, c.model_type in types),
            ("qk_norm", c.qk_norm, c.qk_norm),
            ("cross_attn_norm", c.cross_attn_norm, c.cross_attn_norm),
            ("window_size", c.window_size, tuple(c.window_size) == (-1, -1)),
            ("out_dim", c.out_dim, c.out_dim == c.in_dim),
        )
        if not ok
    ]
    if len(video.patch_size) != 3:
        problems.append(f"video.patch_size={video.patch_size!r}")
    if tuple(audio.patch_size) != (1,):
        problems.append(f"audio.patch_size={audio.patch_size!r}")
    for key in ("num_layers", "dim", "text_dim", "freq_dim", "eps"):
        if getattr(video, key) != getattr(audio, key):
            problems.append(f"{key} video {getattr(video, key)} != audio {getattr(audio, key)}")
    if problems:
        raise DreamIDOmniError(f"unsupported DreamID-Omni DiT settings: {', '.join(problems)}")
    pt, ph, pw = video.patch_size
    return DualTowerConfig(
        name="dreamid-omni",
        video=TowerConfig(
            in_channels=video.in_dim,
            dim=video.dim,
            heads=video.num_heads,
            ffn_dim=video.ffn_dim,
            ref_params="shared",
            patch=(pt, ph, pw),
        ),
        audio=TowerConfig(
            in_channels=audio.in_dim,
            dim=audio.dim,
            heads=audio.num_heads,
            ffn_dim=audio.ffn_dim,
            ref_params="shared",
            embed_kernel=7,  # ChannelLastConv1d(in, D, 7) and ConvMLP(D, 4D, kernel_size=7): hard-coded
            embed_multiple_of=256,
        ),
        depth=video.num_layers,
        text_dim=video.text_dim,
        freq_dim=video.freq_dim,
        eps=video.eps,
        max_slots=MAX_PEOPLE,
        rope_time_scale=TIME_SCALE,
    )


# ---------------------------------------------------------------- the folder
def _shapes(path: Path) -> Shapes:
    with safe_open(str(path), framework="pt") as fh:
        return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118 (not iterable)


def _tower_file(shapes: Shapes) -> bool:
    return any(k.startswith(("video_model.", "audio_model.")) for k in shapes)


def transformer_files(folder: str | Path) -> dict[Path, Shapes]:
    """The safetensors files under ``folder`` holding a two-tower transformer (``video_model.*`` /
    ``audio_model.*`` keys), with their key -> shape tables; when none does, every safetensors file
    (so that the mismatch can be named). DreamIDOmniError when there is no safetensors file at all."""
    root = Path(folder)
    if not root.is_dir():
        raise DreamIDOmniError(f"{root} is not a folder")
    tables = {path: _shapes(path) for path in sorted(root.rglob("*.safetensors"))}
    if not tables:
        raise DreamIDOmniError(f"{root}: no *.safetensors file (DreamID-Omni ships dreamid_omni.safetensors)")
    towers = {p: s for p, s in tables.items() if _tower_file(s)}
    return towers or tables


def dit_configs(folder: str | Path) -> tuple[DiTConfig, DiTConfig]:
    """The towers' sizes for a checkpoint folder: DreamID-Omni's ``video.json`` / ``audio.json`` when the
    folder carries them (in ``DIR``, ``DIR/configs/model/dit`` or, for ``DIR`` = a checkout's ``ckpts/``,
    ``DIR/../dreamid_omni/configs/model/dit``), else the released size. DreamIDOmniError for a config
    that does not parse."""
    root = Path(folder)
    for where in (
        root,
        root / "configs" / "model" / "dit",
        root.parent / "dreamid_omni" / "configs" / "model" / "dit",
    ):
        video, audio = where / "video.json", where / "audio.json"
        if video.is_file() and audio.is_file():
            try:
                return DiTConfig.from_json(json.loads(video.read_text())), DiTConfig.from_json(
                    json.loads(audio.read_text())
                )
            except (ValueError, json.JSONDecodeError) as err:
                raise DreamIDOmniError(f"{where}: {err}") from err
    return VIDEO_DIT, AUDIO_DIT


def checkpoint_family(folder: str | Path) -> Family:
    """``"iap"`` (Identity-as-Presence release, ``*_prime`` copies) or ``"dreamid-omni"`` (Ovi's
    ``FusionModel`` layout; Ovi's base checkpoint reads the same); DreamIDOmniError for anything else.
    Names only: shapes are checked by the loaders."""
    files = transformer_files(folder)
    keys = {k for s in files.values() for k in s}
    if IAP_MARKER_KEY in keys:
        return "iap"
    if _OVI_MARKER_KEY in keys:
        return "dreamid-omni"
    first = min(keys) if keys else "(no tensors)"
    raise DreamIDOmniError(
        f"{folder}: neither DreamID-Omni's layout ({_OVI_MARKER_KEY!r}) nor Identity-as-Presence's "
        f"({IAP_MARKER_KEY!r}); its first key is {first!r}"
    )


def first_mismatch(shapes: Shapes, expected: Shapes) -> str | None:
    """The first key (in sorted order over both tables) where ``shapes`` and ``expected`` disagree,
    described with both shapes; None when they are equal. Also counts the other differences."""
    differing = [k for k in sorted(shapes.keys() | expected.keys()) if shapes.get(k) != expected.get(k)]
    if not differing:
        return None
    key = differing[0]
    got = shapes.get(key)
    want = expected.get(key)
    got_text = "absent" if got is None else str(got)
    want_text = "no such key" if want is None else str(want)
    more = f" ({len(differing) - 1} more keys differ)" if len(differing) > 1 else ""
    return f"first mismatch {key!r}: checkpoint {got_text}, DreamID-Omni {want_text}{more}"


def check_dreamid_layout(
    shapes: Shapes, video: DiTConfig = VIDEO_DIT, audio: DiTConfig = AUDIO_DIT
) -> tuple[dict[str, str], list[str]]:
    """Check a checkpoint's key -> shape table against DreamID-Omni's (at ``video`` / ``audio`` size)
    and map it onto the matching ``DualTowerDiT`` built on the meta device.

    Returns (checkpoint key -> model key for every tensor, model keys without a source); nothing is
    materialised. DreamIDOmniError naming the first differing key and both shapes, or the key map's
    complaint (an unmapped or mis-shaped key).
    """
    if IAP_MARKER_KEY in shapes:
        raise DreamIDOmniError(
            f"this is the Identity-as-Presence release layout ({IAP_MARKER_KEY!r}): "
            "load it with facevox.release.load_release_model"
        )
    problem = first_mismatch(shapes, describe_dreamid(video, audio))
    if problem is not None:
        raise DreamIDOmniError(f"not DreamID-Omni's checkpoint: {problem}")
    config = dreamid_omni_config(video, audio)
    with torch.device("meta"):
        model = DualTowerDiT(config)
    target = {k: v.shape for k, v in model.state_dict().items()}
    source = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    try:
        mapped, fresh = convert_state_dict(source, DREAMID_OMNI_KEYMAP, target)
    except ValueError as err:
        raise DreamIDOmniError(str(err)) from err
    by_id = {id(v): k for k, v in source.items()}
    return {by_id[id(v)]: k for k, v in mapped.items()}, fresh


def load_dreamid_omni_model(
    folder: str | Path,
    *,
    dtype: torch.dtype = torch.bfloat16,
    device: str | torch.device = "cpu",
    dit: tuple[DiTConfig, DiTConfig] = (VIDEO_DIT, AUDIO_DIT),
) -> DualTowerDiT:
    """DreamID-Omni's transformer as a ``DualTowerDiT`` (size :func:`dreamid_omni_config`), strictly.

    Names and shapes are checked first (meta tensors); then the model is built on the meta device and
    filled tensor by tensor from the safetensors files (``safe_open``), cast to ``dtype`` on ``device``,
    and loaded with ``strict=True, assign=True``. ``identity.table`` (not in the checkpoint, never read
    on DreamID-Omni's path) is zeros. ``dit`` = (video, audio) DiT configs; tests pass reduced widths.
    """
    files = transformer_files(folder)
    shapes: Shapes = {}
    owner: dict[str, Path] = {}
    for path, table in files.items():
        for key, shape in table.items():
            if key in owner:
                raise DreamIDOmniError(f"{key!r} appears in both {owner[key]} and {path}")
            shapes[key], owner[key] = shape, path
    try:
        rename, fresh = check_dreamid_layout(shapes, *dit)
    except DreamIDOmniError as err:
        raise DreamIDOmniError(f"{folder}: {err}") from err
    if fresh != ["identity.table"]:
        raise DreamIDOmniError(f"{folder}: model keys left without a source: {fresh[:5]}")
    with torch.device("meta"):
        model = DualTowerDiT(dreamid_omni_config(*dit))
    state: dict[str, torch.Tensor] = {}
    for path in files:  # one tensor at a time: the peak is the finished model
        with safe_open(str(path), framework="pt", device=str(device)) as fh:
            for key in fh.keys():  # noqa: SIM118 (safe_open is not iterable)
                state[rename[key]] = fh.get_tensor(key).to(dtype)
    state["identity.table"] = torch.zeros(model.identity.table.shape, dtype=dtype, device=device)
    model.load_state_dict(state, strict=True, assign=True)
    logger.info("DreamID-Omni transformer: %d tensors from %d files", len(state) - 1, len(files))
    return model.eval()
