"""DreamID-Omni requests before the network: the checks that read no weights, the references and the
caption prepared as its engine prepares them, and which family a ``--model`` folder holds.

Read from ``dreamid_omni/dreamid_omni_engine.py`` (``load_image_latent_ref_ip_video``) and
``inference_r2av.py`` of GitHub ``Guoxu1233/DreamID-Omni`` at commit 9a9f456 (read, not copied).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from facevox.io.media import MediaError, read_audio
from facevox.pipeline.request import (
    GenerationRequest,
    RequestError,
    check_caption,
    frame_count,
    structured_caption,
)
from facevox.release.dreamid_captions import (
    DreamIDCaptionError,
    dreamid_prompt,
    from_dreamid_caption,
    to_dreamid_caption,
)
from facevox.release.dreamid_omni import DREAMID_OMNI_SETTINGS, MAX_PEOPLE

_SECTIONED = "[IMAGE_CAPTIONS_START]"


@dataclass(frozen=True, kw_only=True)
class DreamIDSettings:
    """The clip DreamID-Omni makes (``DREAMID_OMNI_SETTINGS``)."""

    fps: float = DREAMID_OMNI_SETTINGS["fps"]
    sample_rate: int = DREAMID_OMNI_SETTINGS["sample_rate"]
    height: int = DREAMID_OMNI_SETTINGS["height"]
    width: int = DREAMID_OMNI_SETTINGS["width"]
    max_frames: int = DREAMID_OMNI_SETTINGS["num_frames"]  # 121: the engine's only length
    size_unit: int = 32  # VAE stride 16 x patch 2 (the engine's DivisibleCrop)
    voice_window: tuple[float, float] = DREAMID_OMNI_SETTINGS["voice_window"]
    max_caption_tokens: int = DREAMID_OMNI_SETTINGS["max_caption_tokens"]


@dataclass(frozen=True)
class DreamIDRequest:
    """A request that passed every text check (no file read yet)."""

    frames: int
    height: int
    width: int
    caption: str  # DreamID-Omni's sectioned caption
    prompt: str  # what the text encoder reads (timestamps and audio description removed)
    structured: dict[str, Any]  # the same caption as a facevox structured caption (for the sidecar)


# ---------------------------------------------------------------- 1. check inputs (no weights)
def check_dreamid_request(req: GenerationRequest, s: DreamIDSettings | None = None) -> DreamIDRequest:
    """Every check DreamID-Omni needs that reads no weights and no media: RequestError naming the problem
    (too many people, several face images for a person, a size that does not tile, a clip too long, a
    caption it cannot take, a speaker time past the clip)."""
    s = s or DreamIDSettings()
    if len(req.people) > MAX_PEOPLE:
        raise RequestError(
            f"request {req.name!r}: {len(req.people)} people, but DreamID-Omni has {MAX_PEOPLE} identity slots "
            f"(<sub1>..<sub{MAX_PEOPLE}>)"
        )
    for p in req.people:
        if len(p.faces) != 1:
            raise RequestError(
                f"person {p.name!r}: DreamID-Omni takes one image per person, got {len(p.faces)}"
            )
    height, width = req.height or s.height, req.width or s.width
    for name, got, trained in (("height", height, s.height), ("width", width, s.width)):
        if got % s.size_unit or not got <= 2 * trained:
            raise RequestError(
                f"unsupported size: {name}={got}; DreamID-Omni takes multiples of {s.size_unit} up to "
                f"{2 * trained} (its engine runs {s.height}x{s.width} or 512x992)"
            )
    frames = frame_count(req.duration, s.fps, s.max_frames, "DreamID-Omni")
    clip = frames / s.fps
    try:
        if isinstance(req.script, str) and _SECTIONED in req.script:
            text = req.script.strip()
            structured = from_dreamid_caption(text, clip_seconds=clip)
            if len(structured["subjects"]) != len(req.people):
                raise RequestError(
                    f"the caption has {len(structured['subjects'])} <imgK> lines but {len(req.people)} people "
                    "were given"
                )
        else:
            if isinstance(req.script, dict):
                check_caption(req.script, len(req.people))
                structured = req.script
            else:
                structured, _ = structured_caption(req)
                if "tagged" in structured:
                    raise RequestError(
                        "DreamID-Omni does not read the Identity-as-Presence tags; give its sectioned caption "
                        "([IMAGE_CAPTIONS_START] ...), a structured caption or a '[name] text' script"
                    )
            text = to_dreamid_caption(structured, clip_seconds=clip)
    except DreamIDCaptionError as err:
        raise RequestError(f"request {req.name!r}: {err}") from err
    return DreamIDRequest(frames, height, width, text, dreamid_prompt(text), structured)


# ---------------------------------------------------------------- references as the engine prepares them
def face_pixels(path: str | Path, height: int, width: int) -> Tensor:
    """One reference image as the engine prepares it: fitted inside (height, width) keeping its aspect
    (Lanczos), centred on white, in [-1, 1]: (3, height, width). (Its NaResize / DivisibleCrop are
    identities at a size of multiples of 32.)"""
    try:
        with Image.open(path) as im:
            img = im.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise RequestError(f"{path} is not a readable image ({e})") from e
    ratio, target = img.width / img.height, width / height
    new_w, new_h = (width, int(width / ratio)) if ratio > target else (int(height * ratio), height)
    img = img.resize((new_w, new_h), Image.Resampling.LANCZOS)
    dw, dh = width - new_w, height - new_h
    img = ImageOps.expand(img, (dw // 2, dh // 2, dw - dw // 2, dh - dh // 2), fill=(255, 255, 255))
    pixels = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255.0
    return pixels * 2 - 1


def voice_window(path: str | Path, s: DreamIDSettings) -> Tensor:
    """Seconds ``voice_window`` (1-2) of a voice file at the model's rate: (S,). RequestError when the
    file ends before 1.25 s (the engine would be handed less than a quarter second)."""
    try:
        audio = read_audio(path, sample_rate=s.sample_rate)
    except MediaError as e:
        raise RequestError(f"{path} has no readable audio ({e})") from e
    a, b = (round(t * s.sample_rate) for t in s.voice_window)
    if audio.size < a + s.sample_rate // 4:
        raise RequestError(
            f"{path} holds {audio.size / s.sample_rate:.2f} s; DreamID-Omni keeps seconds "
            f"{s.voice_window[0]:g}-{s.voice_window[1]:g} of a voice file, give at least {a / s.sample_rate + 0.25:g} s"
        )
    return torch.from_numpy(np.ascontiguousarray(audio[a:b])).float()


# ---------------------------------------------------------------- the text encoder as the engine uses it
class PlainUMT5:
    """umT5 with its own tokenizer, no added tags: each text's hidden states at its real tokens (the
    engine's ``T5EncoderModel.__call__``), zero-padded to ``length`` (its ``text_len``, fully attended)."""

    def __init__(self, tokenizer: Any, model: Any, length: int = 512) -> None:
        self.tokenizer, self.model, self.length = tokenizer, model.eval().requires_grad_(False), length

    @classmethod
    def from_pretrained(cls, folder: str | Path, length: int = 512) -> PlainUMT5:
        from transformers import AutoTokenizer, UMT5EncoderModel

        path = Path(folder)
        text_dir = path / "text_encoder" if (path / "text_encoder" / "config.json").is_file() else path
        tok_dir = path / "tokenizer" if (path / "tokenizer").is_dir() else text_dir
        model = UMT5EncoderModel.from_pretrained(str(text_dir), local_files_only=True)
        return cls(AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True), model, length)

    def to(self, device: torch.device | str) -> PlainUMT5:
        self.model.to(device)
        return self

    @torch.no_grad()
    def encode(self, texts: list[str]) -> Tensor:
        """(len(texts), length, E) float32."""
        dev = next(self.model.parameters()).device
        batch = self.tokenizer(
            texts, padding="max_length", truncation=True, max_length=self.length, return_tensors="pt"
        )
        mask = batch["attention_mask"].to(dev)
        hidden = self.model(input_ids=batch["input_ids"].to(dev), attention_mask=mask).last_hidden_state
        return (hidden * mask[..., None]).float()  # states past each text's tokens are zeros


ModelFamily = Literal["facevox", "iap", "dreamid-omni"]


def model_family(folder: str | Path) -> ModelFamily:
    """Which family a ``--model`` folder holds, from file names and tensor headers only (no weight is
    read): a facevox pipeline folder (``pipeline.json``), the Identity-as-Presence release (``*_prime``
    keys) or DreamID-Omni (Ovi's ``FusionModel`` layout, every key and shape as DreamID-Omni's).
    RequestError otherwise, naming the first key whose name or shape differs from DreamID-Omni's."""
    from facevox.models.manifests.describe_dreamid import describe_dreamid
    from facevox.release.dreamid_omni import DreamIDOmniError, dit_configs, first_mismatch, transformer_files
    from facevox.release.loader import MARKER_KEY

    root = Path(folder)
    if not root.is_dir():
        raise RequestError(f"model folder {root} does not exist")
    if (root / "pipeline.json").is_file():
        return "facevox"
    try:
        files = transformer_files(root)
    except DreamIDOmniError as err:
        raise RequestError(f"{root}: no pipeline.json and {err}") from err
    shapes = {k: v for table in files.values() for k, v in table.items()}
    if MARKER_KEY in shapes:
        return "iap"
    try:
        problem = first_mismatch(shapes, describe_dreamid(*dit_configs(root)))
    except (DreamIDOmniError, ValueError) as err:
        raise RequestError(f"{root}: {err}") from err
    if problem is None:
        return "dreamid-omni"
    raise RequestError(
        f"{root}: neither a facevox pipeline folder (no pipeline.json), nor the Identity-as-Presence release "
        f"(no {MARKER_KEY!r}), nor DreamID-Omni's checkpoint ({problem})"
    )
