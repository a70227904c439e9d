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
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from facevox.config import ConfigError
from facevox.data.references import ReferenceError, face_crop_from_photo, face_reference, voice_reference
from facevox.diffusion.guidance import Guidance, GuidanceScales, combine
from facevox.diffusion.path import resolution_shift
from facevox.diffusion.samplers import SamplerConfig, sample
from facevox.io.atomic import atomic_write_json
from facevox.io.media import MediaError, read_audio, write_av
from facevox.models import DualTowerDiT
from facevox.models.inputs import ModalityInput, References
from facevox.pipeline.request import GenerationRequest, RequestError, caption_text, structured_caption

log = logging.getLogger(__name__)

FORMAT = "facevox.generation/1"


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
    solver: str = "unipc"  # unipc | euler
    steps: int = 16
    shift: float = 0.0  # 0 = the pipeline's default
    audio_shift: float = 0.0  # the audio stream's own sigma-grid shift (0 = the same grid as video)
    video: VideoGuidanceScales = field(default_factory=VideoGuidanceScales)
    audio: AudioGuidanceScales = field(default_factory=AudioGuidanceScales)
    use_cache: bool = True  # reuse reference keys/values across steps (False: recompute each step)
    batch_guidance: bool = True  # one forward for all guidance variants (False: one per variant)

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


def _frames_for(duration: float, s: PipelineSettings) -> int:
    n = max(5, round(duration * s.fps))
    frames = 1 + 4 * max(1, round((n - 1) / 4))
    if frames > s.max_frames:
        raise RequestError(
            f"duration {duration:.2f} s needs {frames} frames; this model generates at most {s.max_frames} "
            f"({s.max_frames / s.fps:.2f} s)"
        )
    return frames


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
        from facevox.codecs.loading import codec_fingerprint, load_video_codec
        from facevox.codecs.mel import MelAudioCodec
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
            MelAudioCodec.from_pretrained(codecs["audio"]),
            text,
            s,
            device=device,
            offload=offload,
            source=str(folder),
        )

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
    def _on(self, module: torch.nn.Module) -> torch.nn.Module:
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
        frames = _frames_for(req.duration, self.settings)
        self.size(req)
        caption, turns = structured_caption(req)
        if len(req.people) > self.model.config.max_slots:
            raise RequestError(
                f"{len(req.people)} people; this model has {self.model.config.max_slots} slots"
            )
        return frames, caption, turns

    def _face_crops(self, req: GenerationRequest) -> list[list[np.ndarray]]:
        out = []
        for p in req.people:
            crops = []
            for f in p.faces:
                try:
                    img = np.asarray(Image.open(f).convert("RGB"))
                except (UnidentifiedImageError, OSError) as e:
                    raise RequestError(f"person {p.name!r}: {f} is not a readable image ({e})") from e
                try:
                    crops.append(face_crop_from_photo(img))
                except ReferenceError as e:
                    raise RequestError(f"person {p.name!r}: {f}: {e}") from e
            out.append(crops)
        return out

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
        self, crops: list[list[np.ndarray]], voices: list[Tensor]
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
        return References(latents=fl, mask=fm, slot_ids=slots), References(
            latents=al, mask=am, slot_ids=slots
        )

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def __call__(
        self,
        req: GenerationRequest,
        out_dir: str | Path,
        *,
        config: GenerateConfig | None = None,
        callback: Callable[[int, int], None] | None = None,
    ) -> GenerationResult:
        cfg = config or GenerateConfig()
        s, dev = self.settings, self.device
        t0 = time.perf_counter()
        frames, caption, turns = self.check(req)
        crops = self._face_crops(req)
        voices = self._voices(req)
        t_checked = time.perf_counter()

        text = caption_text(caption)
        te = self._on(self.text)
        enc, null = te.encode([text]), te.encode([""])
        self._off(te)
        faces, voice_refs = self._references(crops, voices)
        if not req.use_faces:
            faces = References(
                latents=faces.latents, mask=torch.zeros_like(faces.mask), slot_ids=faces.slot_ids * 0 - 1
            )
        if not req.use_voices:
            voice_refs = References(
                latents=voice_refs.latents,
                mask=torch.zeros_like(voice_refs.mask),
                slot_ids=voice_refs.slot_ids * 0 - 1,
            )
        guidance = Guidance(video=cfg.video, audio=cfg.audio)
        variants = guidance.variants
        t_prepared = time.perf_counter()

        # ---- the batched condition variants (G, ...)
        L = max(enc.hidden.shape[1], null.hidden.shape[1])

        def pad(t: Tensor, value: float | int | bool) -> Tensor:
            return torch.nn.functional.pad(
                t, (0, 0, 0, L - t.shape[1]) if t.ndim == 3 else (0, L - t.shape[1]), value=value
            )

        cap, cmask, ctags, fvar, vvar = [], [], [], [], []
        for v in variants:
            use_text, use_f, use_v = v != "none", v in ("text+faces", "all"), v == "all"
            e = enc if use_text else null
            cap.append(pad(e.hidden.float(), 0.0))
            cmask.append(pad(e.mask, False))
            present = torch.zeros(len(req.people), dtype=torch.bool, device=dev)
            if use_f and req.use_faces:
                present |= True
            if use_v and req.use_voices:
                present |= True
            tags = pad(e.slot_ids, -1).to(dev)
            tags = torch.where((tags >= 0) & present[tags.clamp(min=0)], tags, -1)
            ctags.append(tags)
            fvar.append(use_f)
            vvar.append(use_v)
        G = len(variants)
        cap_t, cmask_t, ctags_t = torch.cat(cap).to(dev), torch.cat(cmask).to(dev), torch.cat(ctags)

        def refs_for(r: References, keep: list[bool]) -> References:
            k = torch.tensor(keep, device=dev)
            mask = r.mask.expand(G, *r.mask.shape[1:]) & k[:, None, None]
            slots = torch.where(mask.any(-1), r.slot_ids.expand(G, -1), -1)
            latents = r.latents.expand(G, *r.latents.shape[1:]).to(next(self.model.parameters()).dtype)
            return References(latents=latents, mask=mask, slot_ids=slots)

        fref, vref = refs_for(faces, fvar), refs_for(voice_refs, vvar)
        height, width = self.size(req)
        C, T, H, W = self.video_codec.latent_shape(frames, height, width)
        samples = round(frames / s.fps * s.sample_rate)
        Na = self.audio_codec.latent_frames(samples)
        model = self._on(self.model)
        dtype = next(model.parameters()).dtype
        cache = (
            model.prepare_references(fref, vref, video_frames=T, audio_tokens=Na) if cfg.use_cache else None
        )
        gen = torch.Generator(device="cpu").manual_seed(req.seed)
        xv = torch.randn(1, C, T, H, W, generator=gen).to(dev)
        xa = torch.randn(1, Na, self.audio_codec.latent_channels, generator=gen).to(dev)
        forwards = {"n": 0}

        def run(idx: list[int], xv_: Tensor, xa_: Tensor, sv: Tensor, sa: Tensor) -> tuple[Tensor, Tensor]:
            sel = torch.tensor(idx, device=dev)
            n = len(idx)
            vi = ModalityInput(
                latents=xv_.expand(n, -1, -1, -1, -1).to(dtype),
                timesteps=sv.expand(n).to(dtype),
                context=cap_t[sel].to(dtype),
                context_mask=cmask_t[sel],
                context_slot_ids=ctags_t[sel],
                references=None if cfg.use_cache else _take(fref, sel),
            )
            ai = ModalityInput(
                latents=xa_.expand(n, -1, -1).to(dtype),
                timesteps=sa.expand(n).to(dtype),
                context=cap_t[sel].to(dtype),
                context_mask=cmask_t[sel],
                context_slot_ids=ctags_t[sel],
                references=None if cfg.use_cache else _take(vref, sel),
            )
            forwards["n"] += 1
            out = model(vi, ai, references=_take_cache(cache, sel) if cache is not None else None)
            return out.video.float(), out.audio.float()

        def velocity(xv_: Tensor, xa_: Tensor, sv: Tensor, sa: Tensor) -> tuple[Tensor, Tensor]:
            if cfg.batch_guidance:
                ov, oa = run(list(range(G)), xv_, xa_, sv, sa)
            else:
                outs = [run([i], xv_, xa_, sv, sa) for i in range(G)]
                ov, oa = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
            pv = {v: ov[i : i + 1] for i, v in enumerate(variants)}
            pa = {v: oa[i : i + 1] for i, v in enumerate(variants)}
            return combine(pv, cfg.video), combine(pa, cfg.audio)

        shift = cfg.shift or s.shift or resolution_shift(T * (H // 2) * (W // 2))
        scfg = SamplerConfig(solver=cfg.solver, steps=cfg.steps, shift=shift, audio_shift=cfg.audio_shift)
        xv, xa = sample(velocity, xv, xa, scfg, callback)
        self._off(model)
        t_sampled = time.perf_counter()

        vc = self._on(self.video_codec)
        video = vc.decode(xv)[0]  # (3, F, H, W) in [-1, 1]
        self._off(vc)
        ac = self._on(self.audio_codec)
        audio = ac.decode(xa.transpose(1, 2))[0, 0, :samples]
        self._off(ac)
        frames_u8 = ((video.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0).cpu().numpy()
        wav = audio.float().clamp(-1, 1).cpu().numpy()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        mp4 = write_av(out / f"{req.name}.mp4", frames_u8, s.fps, wav, s.sample_rate)
        t_done = time.perf_counter()
        sidecar = {
            "format": FORMAT,
            "seed": req.seed,
            "model": self.source,
            "config": {
                "solver": cfg.solver,
                "steps": cfg.steps,
                "shift": scfg.shift,
                "audio_shift": scfg.shifts[1],
                "guidance_video": asdict(cfg.video),
                "guidance_audio": asdict(cfg.audio),
                "variants": list(variants),
                "use_cache": cfg.use_cache,
                "batch_guidance": cfg.batch_guidance,
                "forwards": forwards["n"],
            },
            "timings": {
                "check_s": round(t_checked - t0, 3),
                "prepare_s": round(t_prepared - t_checked, 3),
                "sample_s": round(t_sampled - t_prepared, 3),
                "decode_write_s": round(t_done - t_sampled, 3),
                "total_s": round(t_done - t0, 3),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            },
            "fps": s.fps,
            "sample_rate": s.sample_rate,
            "duration": frames / s.fps,
            "width": width,
            "height": height,
            "references_used": {"faces": req.use_faces, "voices": req.use_voices},
            "people": [
                {
                    "slot": k,
                    "name": p.name,
                    "person_id": p.person_id,
                    "faces": [str(Path(f).resolve()) for f in p.faces],
                    "voice": str(Path(p.voice).resolve()),
                }
                for k, p in enumerate(req.people)
            ],
            "caption": caption,
            "caption_text": text,
            "turns": turns,
        }
        side = out / f"{req.name}.json"
        atomic_write_json(side, sidecar)
        return GenerationResult(
            video_path=mp4, sidecar_path=side, sidecar=sidecar, frames=frames_u8, audio=wav
        )


def _take(r: References, sel: Tensor) -> References:
    return References(latents=r.latents[sel], mask=r.mask[sel], slot_ids=r.slot_ids[sel])


def _take_cache(cache: Any, sel: Tensor) -> Any:
    """The reference cache rows of the variants ``sel`` (all rows: the cache itself)."""
    if sel.numel() == cache.batch_size and bool(
        (sel == torch.arange(cache.batch_size, device=sel.device)).all()
    ):
        return cache
    from dataclasses import replace

    def take(kvs: Any) -> Any:
        if kvs is None:
            return None
        return tuple(
            type(kv)(
                **{
                    f: (getattr(kv, f)[sel] if torch.is_tensor(getattr(kv, f)) else getattr(kv, f))
                    for f in kv.__dataclass_fields__
                }
            )
            for kv in kvs
        )

    return replace(
        cache, video=take(cache.video), audio=take(cache.audio), slot_present=cache.slot_present[sel]
    )
