"""``FacevoxPipeline``: references + script -> mp4 (H.264 + AAC) and a JSON sidecar.

One ``__call__``: validate the request (before any heavy work), encode the caption and the
references once, compute the reference keys/values once (:meth:`DualTowerDiT.prepare_references`;
the asymmetric attention makes them step-independent) and reuse them at every step, integrate both
streams jointly with a flow solver under per-stream guidance (all needed condition variants in one
batched forward), decode, mux and write the sidecar — every file atomically.

Shape legend: ``G`` guidance variants batched together, ``K`` people, ``V`` face views, otherwise
as in :mod:`facevox.models.inputs`.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from facevox.alignment import Clock, ClockError, audio_latent_frames
from facevox.config import ConfigError
from facevox.curate.faces import appearance
from facevox.data.references import (
    ReferenceError,
    face_crop_at,
    face_reference,
    largest_face,
    voice_reference,
)
from facevox.diffusion.guidance import Guidance, GuidanceScales, TwoPassGuidance, combine
from facevox.diffusion.path import resolution_shift
from facevox.diffusion.samplers import SamplerConfig, sample
from facevox.io.atomic import atomic_write_json
from facevox.io.media import MediaError, read_audio, write_av
from facevox.layout import Box, plan_face_boxes
from facevox.models import DualTowerDiT
from facevox.models.inputs import ModalityInput, References
from facevox.pipeline.request import (
    GenerationRequest,
    RequestError,
    caption_text,
    describe_people,
    frame_count,
    sidecar_media,
    structured_caption,
)
from facevox.pipeline.two_pass import TwoPassConditions, denoise_two_pass, encode_two_pass

log = logging.getLogger(__name__)

FORMAT = "facevox.generation/1"
# the steps of one generation, in order, as ``FacevoxPipeline.__call__(on_phase=...)`` reports them
PHASES = ("check", "encode", "denoise", "decode", "write")


@dataclass(frozen=True, kw_only=True)
class PipelineSettings:
    """``pipeline.json`` of a pipeline folder (contract written by ``facevox train``)."""

    fps: float
    sample_rate: int
    height: int
    width: int
    num_frames: int  # training window (frames)
    max_frames: int  # longest clip this model may generate
    face_size: int
    voice_seconds: float
    text_encoder: str = "minilm"
    max_caption_tokens: int = 128
    shift: float = 0.0  # 0: resolution-dependent, the rule training used (facevox.diffusion.path)

    @classmethod
    def read(cls, folder: Path) -> PipelineSettings:
        path = folder / "pipeline.json"
        if not path.is_file():
            raise RequestError(f"{folder} is not a facevox pipeline folder: no pipeline.json")
        d = json.loads(path.read_text())
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True, kw_only=True)
class VideoGuidanceScales(GuidanceScales):
    """The video stream's defaults (a class of their own so that ``video.faces=2`` keeps the rest)."""

    text: float = 2.0
    faces: float = 1.5
    voices: float = 1.0


@dataclass(frozen=True, kw_only=True)
class AudioGuidanceScales(GuidanceScales):
    text: float = 2.0
    faces: float = 1.0
    voices: float = 1.5


@dataclass(frozen=True, kw_only=True)
class GenerateConfig:
    solver: Literal["unipc", "euler"] = "unipc"
    steps: int = 16
    shift: float = 0.0  # 0 = the pipeline's default
    audio_shift: float = 0.0  # the audio stream's own sigma-grid shift (0 = the same grid as video)
    video: VideoGuidanceScales = field(default_factory=VideoGuidanceScales)
    audio: AudioGuidanceScales = field(default_factory=AudioGuidanceScales)
    use_cache: bool = True  # reuse reference keys/values across steps (False: recompute each step)
    batch_guidance: bool = True  # one forward for all guidance variants (False: one per variant)
    # "compositional": video.* / audio.* over nested condition sets; "two_pass": conditional and
    # unconditional pass, plain CFG with two_pass.* (the release's sampling, pipeline/two_pass.py)
    guidance: Literal["compositional", "two_pass"] = "compositional"
    two_pass: TwoPassGuidance = field(default_factory=TwoPassGuidance)
    sigma_grid: Literal["diffusers", "wan"] = "diffusers"  # unipc's grid (facevox.diffusion.samplers)
    integer_timesteps: bool = False  # unipc: the network sees int(sigma * 1000), as Wan's solver

    def __post_init__(self) -> None:
        if self.solver not in ("unipc", "euler"):
            raise ConfigError(f"solver must be unipc or euler, got {self.solver!r}")
        if self.steps < 1 or self.shift < 0 or self.audio_shift < 0:
            raise ConfigError(f"steps must be >= 1 and shift >= 0, got {self.steps}, {self.shift}")


@dataclass(frozen=True)
class GenerationResult:
    video_path: Path
    sidecar_path: Path
    sidecar: dict[str, Any]
    frames: np.ndarray  # (F, H, W, 3) uint8, as handed to the H.264 encoder
    audio: np.ndarray  # (S,) float32 in [-1, 1], as handed to the AAC encoder


def _speech_only(audio: np.ndarray, sr: int) -> np.ndarray:
    """The speech regions of ``audio`` (silero-vad), concatenated; the input if VAD finds none."""
    threads = torch.get_num_threads()
    from silero_vad import get_speech_timestamps, load_silero_vad

    torch.set_num_threads(threads)  # importing silero_vad sets torch to 1 thread process-wide
    stamps = get_speech_timestamps(
        torch.from_numpy(np.ascontiguousarray(audio)), load_silero_vad(), sampling_rate=sr
    )
    if not stamps:
        return audio
    return np.concatenate([audio[s["start"] : s["end"]] for s in stamps])


def check_clock(model: DualTowerDiT, video_codec: Any, audio_codec: Any, settings: PipelineSettings) -> None:
    """ClockError when the pipeline's frame rate and codecs put tokens on another clock than the one
    the model was trained on (models without a clock: nothing to check)."""
    want = model.config.clock
    if want is None:
        return
    have = Clock.of_codecs(settings.fps, settings.sample_rate, video_codec, audio_codec)
    if not have.same_as(want):
        raise ClockError(
            f"the pipeline runs at {have.describe()}, its model was trained at {want.describe()}: "
            "use the model's frame rate and codecs"
        )


def check_codecs_fit_model(model: DualTowerDiT, video_codec: Any, audio_codec: Any) -> None:
    """RequestError naming both sides when a codec's latents are not what the model was built on."""
    mv, ma = model.config.video.in_channels, model.config.audio.in_channels
    vc, ac = video_codec.latent_channels, audio_codec.latent_channels
    if (mv, ma) != (vc, ac):
        raise RequestError(
            f"the codecs do not fit the model: the model ({model.config.name}) takes {mv} video / {ma} audio "
            f"latent channels, the video codec ({type(video_codec).__name__}) makes {vc} and the audio codec "
            f"({type(audio_codec).__name__}) {ac}"
        )


@dataclass(frozen=True)
class CheckedRequest:
    """A request that passed every check, with its people's media read and prepared."""

    frames: int  # video frames to generate
    height: int  # pixels
    width: int
    caption: dict[str, Any]  # the structured caption
    turns: list[dict[str, Any]]  # who speaks when (planned)
    face_crops: list[list[np.ndarray]]  # per person, aligned face crops (H, W, 3) uint8
    voices: list[Tensor]  # per person, the speech-trimmed voice reference (S,)
    # per person, where the face is drawn (x0, y0, x1, y1 fractions): the request's or the planned
    # layout's; None for a model that does not place its face references (facevox.layout)
    face_boxes: list[Box] | None = None


@dataclass(frozen=True)
class Conditions:
    """Every guidance variant's conditions, stacked along the batch axis: G = len(variants)."""

    variants: tuple[str, ...]  # diffusion.guidance.VARIANTS the scales need
    caption_text: str  # the tagged caption fed to the text encoder
    caption: Tensor  # (G, L, E) caption hidden states (the empty caption for "none")
    caption_mask: Tensor  # (G, L) bool
    caption_slot_ids: Tensor  # (G, L) long, -1 where a token names no referenced slot
    faces: References  # (G, K, V, C, 1, h, w) masked per variant
    voices: References  # (G, K, Tr, Ca) masked per variant
    # who speaks during each target token (models with a turn embedding; dropped with the caption):
    # video (G, T', K) per token frame, audio (G, Na, K); None for other models
    speaking_video: Tensor | None = None
    speaking_audio: Tensor | None = None


M = TypeVar("M", bound=torch.nn.Module)


class FacevoxPipeline:
    """Text encoder -> towers -> decoders; ``offload`` keeps each on the CPU until it runs."""

    def __init__(
        self,
        model: DualTowerDiT,
        video_codec: Any,
        audio_codec: Any,
        text_encoder: Any,
        settings: PipelineSettings,
        *,
        device: torch.device | str = "cpu",
        offload: bool = False,
        source: str = "",
    ) -> None:
        check_codecs_fit_model(model, video_codec, audio_codec)
        check_clock(model, video_codec, audio_codec, settings)
        self.model = model.eval()
        self.video_codec, self.audio_codec, self.text = video_codec.eval(), audio_codec.eval(), text_encoder
        self.settings, self.device, self.offload, self.source = (
            settings,
            torch.device(device),
            offload,
            source,
        )
        if not offload:
            for m in (self.model, self.video_codec, self.audio_codec, self.text):
                m.to(self.device)
        # a voice reference may not outgrow its slot on the audio axis (audio_ref_slot_gap latent
        # frames, one kept as margin for the codec's edge frame)
        per_second = audio_codec.latent_frames(settings.sample_rate)
        self.voice_seconds = min(settings.voice_seconds, (model.config.audio_ref_slot_gap - 1) / per_second)
        if self.voice_seconds < settings.voice_seconds:
            log.warning(
                "voice references trimmed to %.2f s (pipeline.json says %.2f s; the model's voice slots hold %d "
                "latent frames)",
                self.voice_seconds,
                settings.voice_seconds,
                model.config.audio_ref_slot_gap,
            )

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        offload: bool = False,
    ) -> FacevoxPipeline:
        """Load a pipeline folder: a training run's ``release/`` (``pipeline.json``, ``model/``,
        ``video_codec/``, ``audio_codec/``), or a shipped model folder (``pipeline.json`` beside
        ``model.safetensors``, whose codecs are the package's; see :meth:`from_shipped`)."""
        from facevox.codecs.loading import codec_fingerprint, load_audio_codec, load_video_codec
        from facevox.codecs.shipped import default_codec_dir
        from facevox.codecs.text import MiniLMTextEncoder, T5TextEncoder

        folder = Path(folder)
        s = PipelineSettings.read(folder)
        if (folder / "model.safetensors").is_file() and not (folder / "model").is_dir():
            model_dir = folder
            codecs = {k: default_codec_dir(k) for k in ("video", "audio")}
            want = json.loads((folder / "pipeline.json").read_text()).get("codec_fingerprints")
            have = {k: codec_fingerprint(d) for k, d in codecs.items()}
            if want is not None and want != have:
                raise RequestError(
                    f"model folder {folder} was trained on latents of codecs {want}; this package's codecs "
                    f"are {have}: use the release folder of that training run instead"
                )
        else:
            for sub in ("model", "video_codec", "audio_codec"):
                if not (folder / sub).is_dir():
                    raise RequestError(f"pipeline folder {folder} lacks {sub}/")
            model_dir = folder / "model"
            codecs = {"video": folder / "video_codec", "audio": folder / "audio_codec"}
        model = DualTowerDiT.from_pretrained(model_dir).to(dtype)
        text = (
            MiniLMTextEncoder.from_pretrained(max_length=s.max_caption_tokens)
            if s.text_encoder == "minilm"
            else T5TextEncoder.from_pretrained(s.text_encoder, max_length=s.max_caption_tokens)
        )
        return cls(
            model,
            load_video_codec(codecs["video"]),
            load_audio_codec(codecs["audio"]),  # the mel codec, or MMAudio's (a run on the release's latents)
            text,
            s,
            device=device,
            offload=offload,
            source=str(folder),
        )

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        offload: bool = False,
    ) -> FacevoxPipeline:
        """Whatever ``folder`` is: a facevox pipeline folder (it has ``pipeline.json``; see
        :meth:`from_pretrained`) or an Identity-as-Presence release ``ckpts/`` folder (see
        :meth:`from_release`). Logs which it found; ``dtype`` None = each kind's default."""
        from facevox.devices import check_device

        check_device(device, bf16=dtype == torch.bfloat16)  # before any weight is read
        folder = Path(folder)
        if not folder.is_dir():
            raise RequestError(f"model folder {folder} does not exist")
        if (folder / "pipeline.json").is_file():
            log.info("%s: a facevox pipeline folder", folder)
            return cls.from_pretrained(folder, device=device, dtype=dtype or torch.float32, offload=offload)
        log.info("%s: no pipeline.json, reading it as a release ckpts/ folder (docs/release.md)", folder)
        return cls.from_release(folder, device=device, dtype=dtype or torch.bfloat16, offload=offload)

    @classmethod
    def from_shipped(
        cls, *, device: str = "cpu", dtype: torch.dtype = torch.float32, offload: bool = False
    ) -> FacevoxPipeline:
        """The model and codecs shipped in the package (``facevox generate`` with no ``--model``)."""
        from facevox.models.shipped import default_model_dir

        return cls.from_pretrained(default_model_dir(), device=device, dtype=dtype, offload=offload)

    @classmethod
    def from_release(
        cls,
        folder: str | Path,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.bfloat16,
        offload: bool = False,
    ) -> FacevoxPipeline:
        """A folder laid out like the Identity-as-Presence release's ``ckpts/`` (``docs/release.md``).

        The released weights were trained single-subject; several people run mechanically (one identity
        slot each, the paper's design), untested in quality.
        """
        from facevox.release import load_release

        model, video, audio, text, d = load_release(folder, dtype=dtype)
        names = set(PipelineSettings.__dataclass_fields__)
        settings = PipelineSettings(**{k: v for k, v in d.items() if k in names})
        return cls(model, video, audio, text, settings, device=device, offload=offload, source=str(folder))

    # ------------------------------------------------------------------ preparation
    def _on(self, module: M) -> M:
        return module.to(self.device) if self.offload else module

    def _off(self, module: torch.nn.Module) -> None:
        if self.offload:
            module.to("cpu")

    def size(self, req: GenerationRequest) -> tuple[int, int]:
        """(height, width) of the clip: the trained size, or the request's within what the model supports.

        Sides must be multiples of the codec stride times the patch (16 for the tiny codecs) and within
        half to twice the trained side (RoPE extrapolates; beyond that we do not trust it).
        """
        s = self.settings
        h, w = req.height or s.height, req.width or s.width
        unit = self.video_codec.space_stride * self.model.config.video.patch[1]
        for name, got, trained in (("height", h, s.height), ("width", w, s.width)):
            if got % unit or not trained / 2 <= got <= trained * 2:
                raise RequestError(
                    f"unsupported size: {name}={got}; this model takes multiples of {unit} between "
                    f"{trained // 2} and {trained * 2} (trained at {s.width}x{s.height})"
                )
        return h, w

    def check(self, req: GenerationRequest) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
        """Cheap validation: frames, size, caption and the number of people."""
        frames = frame_count(req.duration, self.settings.fps, self.settings.max_frames)
        self.size(req)
        caption, turns = structured_caption(req)
        if len(req.people) > self.model.config.max_slots:
            raise RequestError(
                f"{len(req.people)} people; this model has {self.model.config.max_slots} slots"
            )
        return frames, caption, turns

    def _face_crops(
        self, req: GenerationRequest
    ) -> tuple[list[list[np.ndarray]], list[dict[str, list[float]] | None]]:
        """Per person, the aligned face crops of every photo, and the skin and hair colours of the
        first (as curation measures them; None for a person without photos)."""
        out, looks = [], []
        for p in req.people:
            crops: list[np.ndarray] = []
            look = None
            for f in p.faces:
                try:
                    img = np.asarray(Image.open(f).convert("RGB"))
                except (UnidentifiedImageError, OSError) as e:
                    raise RequestError(f"person {p.name!r}: {f} is not a readable image ({e})") from e
                try:
                    box = largest_face(img)
                except ReferenceError as e:
                    raise RequestError(f"person {p.name!r}: {f}: {e}") from e
                crops.append(face_crop_at(img, box))
                look = look or appearance(img, box)
            out.append(crops)
            looks.append(look)
        return out, looks

    def _voices(self, req: GenerationRequest) -> list[Tensor]:
        out = []
        for p in req.people:
            try:
                audio = read_audio(p.voice, sample_rate=self.settings.sample_rate)
            except MediaError as e:
                raise RequestError(f"person {p.name!r}: {p.voice} has no readable audio ({e})") from e
            if audio.size < self.settings.sample_rate // 4:
                raise RequestError(f"person {p.name!r}: {p.voice} holds less than 0.25 s of audio")
            try:
                out.append(
                    voice_reference(
                        _speech_only(audio, self.settings.sample_rate),
                        self.settings.sample_rate,
                        self.voice_seconds,
                    )
                )
            except ReferenceError as e:
                raise RequestError(f"person {p.name!r}: {p.voice}: {e}") from e
        return out

    @torch.no_grad()
    def _references(
        self, crops: list[list[np.ndarray]], voices: list[Tensor], boxes: list[Box] | None = None
    ) -> tuple[References, References]:
        s, dev = self.settings, self.device
        K = len(crops)
        vc = self._on(self.video_codec)
        faces = [
            vc.encode_image(torch.stack([face_reference(c, s.face_size) for c in cs]).to(dev)).mean
            for cs in crops
        ]
        self._off(vc)
        ac = self._on(self.audio_codec)
        vlat = [ac.encode(v[None].to(dev)).mean[0].T for v in voices]  # (Tr, Ca)
        self._off(ac)
        V, Tr = max(f.shape[0] for f in faces), max(v.shape[0] for v in vlat)
        fl = torch.zeros(1, K, V, *faces[0].shape[1:], device=dev)
        fm = torch.zeros(1, K, V, dtype=torch.bool, device=dev)
        al = torch.zeros(1, K, Tr, vlat[0].shape[1], device=dev)
        am = torch.zeros(1, K, Tr, dtype=torch.bool, device=dev)
        for k in range(K):
            fl[0, k, : faces[k].shape[0]], fm[0, k, : faces[k].shape[0]] = faces[k], True
            al[0, k, : vlat[k].shape[0]], am[0, k, : vlat[k].shape[0]] = vlat[k], True
        slots = torch.arange(K, device=dev)[None]
        placed = (
            None if boxes is None else torch.tensor([boxes], dtype=torch.float32, device=dev)
        )  # (1, K, 4)
        return References(latents=fl, mask=fm, slot_ids=slots, boxes=placed), References(
            latents=al, mask=am, slot_ids=slots
        )

    # ------------------------------------------------------------------ generation, step by step
    def check_inputs(self, req: GenerationRequest) -> CheckedRequest:
        """Every check, and the people's media read and prepared (face crops, speech-trimmed voices);
        a :class:`RequestError` before anything heavy runs."""
        frames, caption, turns = self.check(req)
        height, width = self.size(req)
        crops, looks = self._face_crops(req)
        if req.use_faces and "subjects" in caption:  # a plain script's "a person": described from the faces
            caption = describe_people(caption, looks)
        return CheckedRequest(
            frames=frames,
            height=height,
            width=width,
            caption=caption,
            turns=turns,
            face_crops=crops,
            voices=self._voices(req),
            face_boxes=self.face_boxes(req),
        )

    def face_boxes(self, req: GenerationRequest) -> list[Box] | None:
        """Where each person's face is drawn, for a model that places its face references: the
        request's boxes, the rest from the model's recorded layouts (people listed left to right)."""
        cfg = self.model.config
        if cfg.ref_position_mode != "placed":
            return None
        try:
            return plan_face_boxes([p.box for p in req.people], cfg.face_layouts)
        except ValueError as e:
            raise RequestError(str(e)) from e

    @torch.no_grad()
    def encode_conditions(
        self, req: GenerationRequest, checked: CheckedRequest, guidance: Guidance
    ) -> Conditions:
        """The caption and the references through their encoders, once, laid out for every guidance
        variant along the batch axis (G = ``len(guidance.variants)``)."""
        dev = self.device
        text = caption_text(checked.caption)
        te = self._on(self.text)
        enc, null = te.encode([text]), te.encode([""])
        self._off(te)
        faces, voices = self._references(checked.face_crops, checked.voices, checked.face_boxes)
        if not req.use_faces:
            faces = faces.disabled()
        if not req.use_voices:
            voices = voices.disabled()
        length = max(enc.hidden.shape[1], null.hidden.shape[1])

        def pad(t: Tensor, value: float | int | bool) -> Tensor:  # to ``length`` caption tokens
            return torch.nn.functional.pad(
                t, (0, 0, 0, length - t.shape[1]) if t.ndim == 3 else (0, length - t.shape[1]), value=value
            )

        hidden, masks, tags, with_faces, with_voices = [], [], [], [], []
        for variant in guidance.variants:
            use_text, use_faces, use_voices = (
                variant != "none",
                variant in ("text+faces", "all"),
                variant == "all",
            )
            e = enc if use_text else null
            hidden.append(pad(e.hidden.float(), 0.0))
            masks.append(pad(e.mask, False))
            referenced = torch.zeros(len(req.people), dtype=torch.bool, device=dev)
            if (use_faces and req.use_faces) or (use_voices and req.use_voices):
                referenced |= True
            slot_tags = pad(e.slot_ids, -1).to(dev)  # a tag may only name a slot with a reference
            tags.append(torch.where((slot_tags >= 0) & referenced[slot_tags.clamp(min=0)], slot_tags, -1))
            with_faces.append(use_faces)
            with_voices.append(use_voices)
        dtype = next(self.model.parameters()).dtype
        speak_v, speak_a = self.speaking(checked, [v != "none" for v in guidance.variants])
        return Conditions(
            variants=guidance.variants,
            caption_text=text,
            caption=torch.cat(hidden).to(dev),
            caption_mask=torch.cat(masks).to(dev),
            caption_slot_ids=torch.cat(tags),
            faces=_per_variant(faces, with_faces, dtype),
            voices=_per_variant(voices, with_voices, dtype),
            speaking_video=speak_v,
            speaking_audio=speak_a,
        )

    def speaking(self, checked: CheckedRequest, with_text: list[bool]) -> tuple[Tensor | None, Tensor | None]:
        """Per guidance variant, who speaks during each target token, from the planned turn spans:
        video (G, T', K), audio (G, Na, K); (None, None) for a model without a turn embedding."""
        cfg = self.model.config
        if not cfg.turn_embedding or cfg.clock is None:
            return None, None
        clock, pt = cfg.clock, cfg.video.patch[0]
        T = 1 + (checked.frames - 1) // clock.video_time_stride
        Na = self.audio_tokens(checked.frames)
        K = max(1, len(checked.face_crops))
        spans = [(int(t["slot"]), float(t["start"]), float(t["end"])) for t in checked.turns]
        v, a = clock.speaking(spans, T, Na, K, pt)
        keep = torch.tensor(with_text)[:, None, None]
        return (v[None] & keep).to(self.device), (a[None] & keep).to(self.device)

    def prepare_latents(self, req: GenerationRequest, checked: CheckedRequest) -> tuple[Tensor, Tensor]:
        """Starting noise from the request's seed: video (1, C, T, H, W) and audio (1, Na, Ca)."""
        C, T, H, W = self.video_codec.latent_shape(checked.frames, checked.height, checked.width)
        Na = self.audio_tokens(checked.frames)
        gen = torch.Generator(device="cpu").manual_seed(req.seed)
        video = torch.randn(1, C, T, H, W, generator=gen).to(self.device)
        audio = torch.randn(1, Na, self.audio_codec.latent_channels, generator=gen).to(self.device)
        return video, audio

    def audio_tokens(self, frames: int) -> int:
        """Audio latent frames generated with ``frames`` video frames (floor of the exact length, as the
        release: 121 frames at 24 fps -> 157; :func:`facevox.alignment.audio_latent_frames`)."""
        s = self.settings
        return audio_latent_frames(frames, s.fps, s.sample_rate, self.audio_codec.time_stride)

    def audio_samples(self, frames: int) -> int:
        """Audio samples covering ``frames`` video frames."""
        return round(frames / self.settings.fps * self.settings.sample_rate)

    def sampler_config(self, cfg: GenerateConfig, video: Tensor) -> SamplerConfig:
        """The solver settings; shift: the request's, else the pipeline's, else the resolution rule."""
        _, _, T, H, W = video.shape
        shift = cfg.shift or self.settings.shift or resolution_shift(T * (H // 2) * (W // 2))
        return SamplerConfig(
            solver=cfg.solver,
            steps=cfg.steps,
            shift=shift,
            audio_shift=cfg.audio_shift,
            sigma_grid=cfg.sigma_grid,
            integer_timesteps=cfg.integer_timesteps,
        )

    @torch.no_grad()
    def denoise(
        self,
        conditions: Conditions,
        video: Tensor,
        audio: Tensor,
        cfg: GenerateConfig,
        callback: Callable[[int, int], None] | None = None,
    ) -> tuple[Tensor, Tensor, int]:
        """Integrate both streams from noise to clean latents with guidance; returns the latents and
        the number of model forwards."""
        dev = self.device
        model = self._on(self.model)
        dtype = next(model.parameters()).dtype
        n_variants = len(conditions.variants)
        cache = (
            model.prepare_references(
                conditions.faces,
                conditions.voices,
                video_frames=video.shape[2],
                audio_tokens=audio.shape[1],
                video_hw=(video.shape[3], video.shape[4]),
            )
            if cfg.use_cache
            else None
        )
        forwards = 0

        def forward(rows: list[int], xv: Tensor, xa: Tensor, sv: Tensor, sa: Tensor) -> tuple[Tensor, Tensor]:
            nonlocal forwards
            sel = torch.tensor(rows, device=dev)
            n = len(rows)
            caption = {
                "context": conditions.caption[sel].to(dtype),
                "context_mask": conditions.caption_mask[sel],
                "context_slot_ids": conditions.caption_slot_ids[sel],
            }
            sv_rows, sa_rows = conditions.speaking_video, conditions.speaking_audio
            vi = ModalityInput(
                latents=xv.expand(n, -1, -1, -1, -1).to(dtype),
                timesteps=sv.expand(n).to(dtype),
                references=None if cache is not None else conditions.faces.select(sel),
                speaking=None if sv_rows is None else sv_rows[sel],
                **caption,
            )
            ai = ModalityInput(
                latents=xa.expand(n, -1, -1).to(dtype),
                timesteps=sa.expand(n).to(dtype),
                references=None if cache is not None else conditions.voices.select(sel),
                speaking=None if sa_rows is None else sa_rows[sel],
                **caption,
            )
            forwards += 1
            out = model(vi, ai, references=cache.select(sel) if cache is not None else None)
            return out.video.float(), out.audio.float()

        def velocity(xv: Tensor, xa: Tensor, sv: Tensor, sa: Tensor) -> tuple[Tensor, Tensor]:
            if cfg.batch_guidance:
                out_v, out_a = forward(list(range(n_variants)), xv, xa, sv, sa)
            else:
                outs = [forward([i], xv, xa, sv, sa) for i in range(n_variants)]
                out_v, out_a = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
            pred_v = {v: out_v[i : i + 1] for i, v in enumerate(conditions.variants)}
            pred_a = {v: out_a[i : i + 1] for i, v in enumerate(conditions.variants)}
            return combine(pred_v, cfg.video), combine(pred_a, cfg.audio)

        video, audio = sample(velocity, video, audio, self.sampler_config(cfg, video), callback)
        self._off(model)
        return video, audio, forwards

    @torch.no_grad()
    def decode(self, video: Tensor, audio: Tensor, samples: int) -> tuple[np.ndarray, np.ndarray]:
        """Latents to media: frames (F, H, W, 3) uint8 and speech (S,) float32 in [-1, 1]."""
        vc = self._on(self.video_codec)
        pixels = vc.decode(video)[0]  # (3, F, H, W) in [-1, 1]
        self._off(vc)
        ac = self._on(self.audio_codec)
        wav = ac.decode(audio.transpose(1, 2))[0, 0, :samples]
        self._off(ac)
        frames = ((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0).cpu().numpy()
        return frames, wav.float().clamp(-1, 1).cpu().numpy()

    def write(
        self,
        req: GenerationRequest,
        out_dir: str | Path,
        frames: np.ndarray,
        wav: np.ndarray,
        sidecar: dict[str, Any],
    ) -> GenerationResult:
        """``NAME.mp4`` and its ``NAME.json`` sidecar, each written atomically."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        mp4 = write_av(out / f"{req.name}.mp4", frames, self.settings.fps, wav, self.settings.sample_rate)
        side = out / f"{req.name}.json"
        atomic_write_json(side, sidecar)
        return GenerationResult(video_path=mp4, sidecar_path=side, sidecar=sidecar, frames=frames, audio=wav)

    def sidecar(
        self,
        req: GenerationRequest,
        checked: CheckedRequest,
        conditions: Conditions | TwoPassConditions,
        cfg: GenerateConfig,
        sampler: SamplerConfig,
        forwards: int,
        timings: dict[str, float],
    ) -> dict[str, Any]:
        """What the clip is: seed, model, resolved config, timings, geometry, people, caption, turns."""
        s = self.settings
        return {
            "format": FORMAT,
            "seed": req.seed,
            "model": self.source,
            "config": {
                "solver": cfg.solver,
                "steps": cfg.steps,
                "shift": sampler.shift,
                "audio_shift": sampler.shifts[1],
                "guidance_video": asdict(cfg.video),
                "guidance_audio": asdict(cfg.audio),
                "variants": list(conditions.variants),
                "guidance": cfg.guidance,
                **({"two_pass": asdict(cfg.two_pass)} if cfg.guidance == "two_pass" else {}),
                "sigma_grid": cfg.sigma_grid,
                "integer_timesteps": cfg.integer_timesteps,
                "use_cache": cfg.use_cache,
                "batch_guidance": cfg.batch_guidance,
                "forwards": forwards,
            },
            "timings": {
                **timings,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            },
            **sidecar_media(
                req,
                frames=checked.frames,
                fps=s.fps,
                sample_rate=s.sample_rate,
                width=checked.width,
                height=checked.height,
            ),
            "caption": checked.caption,
            "caption_text": conditions.caption_text,
            "turns": checked.turns,
            # the boxes the faces were placed on (models that place their face references, faces used)
            **(
                {"face_boxes": [list(b) for b in checked.face_boxes]}
                if checked.face_boxes is not None and req.use_faces
                else {}
            ),
        }

    @torch.no_grad()
    def __call__(
        self,
        req: GenerationRequest,
        out_dir: str | Path,
        *,
        config: GenerateConfig | None = None,
        callback: Callable[[int, int], None] | None = None,
        on_phase: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        """Check, encode the conditions, draw the noise, denoise, decode, write.

        ``callback(step, steps)`` after each solver step; ``on_phase(name)`` as each of
        :data:`PHASES` begins (a progress display names what is running).
        """
        cfg = config or GenerateConfig()
        phase = on_phase or (lambda name: None)
        t0 = time.perf_counter()
        phase("check")
        checked = self.check_inputs(req)
        t_checked = time.perf_counter()
        phase("encode")
        conditions: Conditions | TwoPassConditions
        if cfg.guidance == "two_pass":
            conditions = two_pass = encode_two_pass(self, req, checked, cfg.two_pass)
        else:
            conditions = self.encode_conditions(req, checked, Guidance(video=cfg.video, audio=cfg.audio))
        t_prepared = time.perf_counter()
        video, audio = self.prepare_latents(req, checked)
        sampler = self.sampler_config(cfg, video)
        phase("denoise")
        if cfg.guidance == "two_pass":
            video, audio, forwards = denoise_two_pass(self, two_pass, video, audio, cfg, callback)
        else:
            assert isinstance(conditions, Conditions)
            video, audio, forwards = self.denoise(conditions, video, audio, cfg, callback)
        t_sampled = time.perf_counter()
        phase("decode")
        frames, wav = self.decode(video, audio, self.audio_samples(checked.frames))
        timings = {
            "check_s": round(t_checked - t0, 3),
            "prepare_s": round(t_prepared - t_checked, 3),
            "sample_s": round(t_sampled - t_prepared, 3),
        }
        # the sidecar carries the decode + write time of everything but itself
        t_decoded = time.perf_counter()
        timings["decode_write_s"] = round(t_decoded - t_sampled, 3)
        timings["total_s"] = round(t_decoded - t0, 3)
        phase("write")
        result = self.write(
            req, out_dir, frames, wav, self.sidecar(req, checked, conditions, cfg, sampler, forwards, timings)
        )
        return result


def _per_variant(refs: References, keep: list[bool], dtype: torch.dtype) -> References:
    """One row of ``refs`` (batch 1) repeated for each guidance variant, masked where ``keep`` is False."""
    k = torch.tensor(keep, device=refs.mask.device)
    G = len(keep)
    mask = refs.mask.expand(G, *refs.mask.shape[1:]) & k[:, None, None]
    slots = torch.where(mask.any(-1), refs.slot_ids.expand(G, -1), -1)
    return References(
        latents=refs.latents.expand(G, *refs.latents.shape[1:]).to(dtype),
        mask=mask,
        slot_ids=slots,
        boxes=None if refs.boxes is None else refs.boxes.expand(G, -1, -1),
    )
