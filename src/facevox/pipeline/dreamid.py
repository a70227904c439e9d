"""``DreamIDOmniPipeline``: DreamID-Omni's released checkpoint, sampled as its engine samples it.

Read from ``dreamid_omni/dreamid_omni_engine.py`` (``generate``, ``load_image_latent_ref_ip_video``,
``get_scheduler_time_steps``), ``inference_r2av.py`` and ``configs/inference/inference_r2av.yaml`` of
GitHub ``Guoxu1233/DreamID-Omni`` at commit 9a9f456 (read, not copied):

1. Check inputs (pure text, before any weights): at most 2 people, one image and one voice each, the
   caption in DreamID-Omni's sectioned format (given, or written from a facevox caption), speaker
   times inside the clip (:func:`check_dreamid_request`).
2. Encode: the caption without its timestamp / audio sections and the two negative prompts through
   umT5 as plain sentencepiece text (no added tags), each cut to its real tokens and zero-padded to
   512, all 512 attended; each face padded with white to the video's size, one Wan-VAE latent frame;
   each voice seconds 1-2 of the file at 16 kHz, MMAudio latents (the posterior mean).
3. Noise: video (Cv, T + K, h, w) and audio (Na + sum Tr, Ca), each from its own generator seeded with
   the request's seed; the reference slots are overwritten before every forward, so only the targets
   are integrated here (UniPC acts element by element: the targets' trajectory is the engine's).
4. Denoise: FlowUniPC (order 2, bh2), 50 steps, shift 5, one grid for both streams; the model sees
   the scheduler's integer timestep ``int(1000 sigma)``. Four passes per step, each both towers:
   ``pos`` (caption, faces, voices), ``neg`` (video / audio negative prompts, faces, voices),
   ``no faces`` (caption, faces zeroed), ``no voices`` (caption, voices zeroed);
   ``v = neg + 3.0 (pos - neg) + 1.5 (pos - no faces)``, ``a = neg + 4.0 (pos - neg) + 2.0 (pos - no voices)``.
5. Crop the references out, decode, mux, write the sidecar.

Shape legend as in :mod:`facevox.release.dreamid_inputs`; ``G`` the four guidance passes.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from facevox.config import ConfigError
from facevox.diffusion.samplers import SamplerConfig, sample
from facevox.io.atomic import atomic_write_json
from facevox.io.media import write_av
from facevox.models import DualTowerDiT
from facevox.pipeline.dreamid_request import (
    DreamIDRequest,
    DreamIDSettings,
    PlainUMT5,
    check_dreamid_request,
    face_pixels,
    model_family,
    voice_window,
)
from facevox.pipeline.pipeline import PHASES, GenerationResult
from facevox.pipeline.request import GenerationRequest, RequestError, sidecar_media
from facevox.release.dreamid_inputs import dreamid_model_inputs, target_prediction
from facevox.release.dreamid_omni import DREAMID_OMNI_SETTINGS

log = logging.getLogger(__name__)

FORMAT = "facevox.generation/1"
FAMILY = "dreamid-omni"
NUM_TRAIN_TIMESTEPS = 1000
PASSES = ("pos", "neg", "no_faces", "no_voices")  # the engine's four forwards per step, in its order


@dataclass(frozen=True, kw_only=True)
class DreamIDGenerateConfig:
    """The engine's sampling settings (``inference_r2av.yaml``); ``facevox generate`` overrides them
    with ``steps=``, ``shift=``, ``video_cfg_scale=`` ... like any config."""

    solver: Literal["unipc"] = "unipc"  # the engine's default; its dpm++ / euler are not reproduced
    steps: int = DREAMID_OMNI_SETTINGS["sample_steps"]
    shift: float = DREAMID_OMNI_SETTINGS["shift"]
    video_cfg_scale: float = DREAMID_OMNI_SETTINGS["video_cfg_scale"]  # caption vs negative prompt
    video_ref_cfg_scale: float = DREAMID_OMNI_SETTINGS["video_ref_cfg_scale"]  # faces vs zeroed faces
    audio_cfg_scale: float = DREAMID_OMNI_SETTINGS["audio_cfg_scale"]
    audio_ref_cfg_scale: float = DREAMID_OMNI_SETTINGS["audio_ref_cfg_scale"]  # voices vs zeroed voices
    video_negative_prompt: str = DREAMID_OMNI_SETTINGS["video_negative_prompt"]
    audio_negative_prompt: str = DREAMID_OMNI_SETTINGS["audio_negative_prompt"]
    batch_guidance: bool = True  # the four passes as one batch-4 forward (False: four batch-1 forwards)

    def __post_init__(self) -> None:
        if self.solver != "unipc":
            raise ConfigError(f"DreamID-Omni runs with solver unipc here, got {self.solver!r}")
        if self.steps < 1 or self.shift <= 0:
            raise ConfigError(f"steps must be >= 1 and shift > 0, got {self.steps}, {self.shift}")


@dataclass(frozen=True)
class DreamIDConditions:
    """Step-independent inputs of the four passes."""

    prompt: str
    context: Tensor  # (3, 512, E): caption, video negative prompt, audio negative prompt
    faces: Tensor  # (1, Cv, K, h, w) one latent frame per person
    voices: list[Tensor]  # K x (1, Tr_k, Ca)


@torch.no_grad()
def dreamid_denoise(
    model: DualTowerDiT,
    conditions: DreamIDConditions,
    video: Tensor,
    audio: Tensor,
    cfg: DreamIDGenerateConfig,
    callback: Callable[[int, int], None] | None = None,
) -> tuple[Tensor, Tensor, int]:
    """Integrate the targets (video (1, Cv, T, h, w), audio (1, Na, Ca)) from noise to clean latents under
    the engine's four-pass guidance, the references re-inserted at every forward and their predictions
    dropped; returns the latents and the number of model forwards. Needs only the model (benchmarks)."""
    dtype = next(model.parameters()).dtype
    state = torch.promote_types(dtype, torch.float32)  # integrate in >= float32 (the engine: bf16)
    video, audio = video.to(state), audio.to(state)
    faces, voices = conditions.faces.to(dtype), [v.to(dtype) for v in conditions.voices]
    K, Tr = faces.shape[2], sum(v.shape[1] for v in voices)
    G = len(PASSES)
    # per pass: (video caption row, audio caption row, faces kept, voices kept)
    plan = {
        "pos": (0, 0, 1.0, 1.0),
        "neg": (1, 2, 1.0, 1.0),
        "no_faces": (0, 0, 0.0, 1.0),
        "no_voices": (0, 0, 1.0, 0.0),
    }
    ctx = conditions.context.to(dtype)
    ctx_v = torch.stack([ctx[plan[p][0]] for p in PASSES])  # (G, 512, E)
    ctx_a = torch.stack([ctx[plan[p][1]] for p in PASSES])
    keep_f = torch.tensor([plan[p][2] for p in PASSES], dtype=dtype, device=faces.device)
    keep_a = torch.tensor([plan[p][3] for p in PASSES], dtype=dtype, device=faces.device)
    faces_g = faces.expand(G, -1, -1, -1, -1) * keep_f.view(G, 1, 1, 1, 1)
    voices_g = [v.expand(G, -1, -1) * keep_a.view(G, 1, 1) for v in voices]
    mask = torch.ones(G, ctx.shape[1], dtype=torch.bool, device=ctx.device)
    forwards = 0

    def run(rows: list[int], xv: Tensor, xa: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        nonlocal forwards
        n = len(rows)
        vin, ain = dreamid_model_inputs(
            xv.expand(n, -1, -1, -1, -1).to(dtype),
            faces_g[rows],
            xa.expand(n, -1, -1).to(dtype),
            [v[rows] for v in voices_g],
            t[rows],
            ctx_v[rows],
            mask[rows],
            model.config.video.patch,
        )
        forwards += 1
        out = model(vin, replace(ain, context=ctx_a[rows]))
        out = target_prediction(out, K, Tr)
        return out.video, out.audio

    def velocity(xv: Tensor, xa: Tensor, sv: Tensor, sa: Tensor) -> tuple[Tensor, Tensor]:
        # the sampler hands int(1000 sigma) / 1000; rounded back to the integer in float64, one value for
        # both towers (the engine passes the video scheduler's t to both)
        t = (torch.round(sv[:1].double() * NUM_TRAIN_TIMESTEPS) / NUM_TRAIN_TIMESTEPS).expand(G)
        if cfg.batch_guidance:
            pv, pa = run(list(range(G)), xv, xa, t)
        else:
            outs = [run([g], xv, xa, t) for g in range(G)]
            pv, pa = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
        v = {p: pv[i : i + 1] for i, p in enumerate(PASSES)}
        a = {p: pa[i : i + 1] for i, p in enumerate(PASSES)}
        guided_v = (
            v["neg"]
            + cfg.video_cfg_scale * (v["pos"] - v["neg"])
            + cfg.video_ref_cfg_scale * (v["pos"] - v["no_faces"])
        )
        guided_a = (
            a["neg"]
            + cfg.audio_cfg_scale * (a["pos"] - a["neg"])
            + cfg.audio_ref_cfg_scale * (a["pos"] - a["no_voices"])
        )
        return guided_v.to(xv.dtype), guided_a.to(xa.dtype)  # the engine's arithmetic: in the model dtype

    # Wan's FlowUniPC: its own sigma grid (from float32(1 - 1/1000)) and integer timesteps
    sampler = SamplerConfig(
        solver="unipc", steps=cfg.steps, shift=cfg.shift, sigma_grid="wan", integer_timesteps=True
    )
    video, audio = sample(velocity, video, audio, sampler, callback)
    return video, audio, forwards


class DreamIDOmniPipeline:
    """umT5 -> DreamID-Omni's towers with in-sequence references -> Wan2.2 VAE + MMAudio."""

    config_type = DreamIDGenerateConfig

    def __init__(
        self,
        model: DualTowerDiT,
        video_codec: Any,
        audio_codec: Any,
        text_encoder: PlainUMT5,
        settings: DreamIDSettings | None = None,
        *,
        device: torch.device | str = "cpu",
        offload: bool = False,
        source: str = "",
    ) -> None:
        mv, ma = model.config.video.in_channels, model.config.audio.in_channels
        if (mv, ma) != (video_codec.latent_channels, audio_codec.latent_channels):
            raise RequestError(
                f"the codecs do not fit the model: it takes {mv} video / {ma} audio latent channels, the codecs "
                f"make {video_codec.latent_channels} / {audio_codec.latent_channels}"
            )
        self.model, self.video_codec, self.audio_codec = model.eval(), video_codec.eval(), audio_codec.eval()
        self.text, self.settings = text_encoder, settings or DreamIDSettings()
        self.device, self.offload, self.source = torch.device(device), offload, source
        if not offload:
            for m in (self.model, self.video_codec, self.audio_codec, self.text):
                m.to(self.device)

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.bfloat16,
        offload: bool = False,
    ) -> DreamIDOmniPipeline:
        """A ``ckpts/``-like folder: DreamID-Omni's safetensors (checked key by key before any weight is
        read), the Wan2.2 VAE in diffusers layout, umT5 in transformers layout and a facevox MMAudio
        folder, found by content as for the IaP release (``docs/release.md``); the towers' sizes from
        DreamID-Omni's ``video.json`` / ``audio.json`` when the folder carries them
        (:func:`facevox.release.dreamid_omni.dit_configs`), else the released size."""
        from facevox.codecs.mmaudio import MMAudioCodec
        from facevox.codecs.video import WanVideoCodec
        from facevox.release.dreamid_omni import dit_configs, load_dreamid_omni_model
        from facevox.release.loader import ReleaseError, find_parts

        parts = find_parts(folder, marker=None)
        for what, found in (
            ("a Wan2.2 VAE in diffusers layout (config.json with z_dim 48)", parts.video_vae),
            ("a umT5 encoder in transformers layout (config.json, model_type umt5)", parts.text_encoder),
            (
                "a facevox MMAudio folder (`facevox convert-mmaudio` on v1-16.pth, best_netG.pt)",
                parts.mmaudio,
            ),
        ):
            if found is None:
                raise ReleaseError(f"{folder}: no {what}")
        assert parts.video_vae and parts.text_encoder and parts.mmaudio  # for mypy: checked above
        model = load_dreamid_omni_model(folder, dtype=dtype, dit=dit_configs(folder))
        text_dir = parts.text_encoder
        if text_dir.name == "text_encoder" and (text_dir.parent / "tokenizer").is_dir():
            text_dir = text_dir.parent
        settings = DreamIDSettings()
        return cls(
            model,
            WanVideoCodec.from_pretrained(parts.video_vae),
            MMAudioCodec.from_pretrained(parts.mmaudio),
            PlainUMT5.from_pretrained(text_dir, settings.max_caption_tokens),
            settings,
            device=device,
            offload=offload,
            source=str(folder),
        )

    def _on(self, module: Any) -> Any:
        return module.to(self.device) if self.offload else module

    def _off(self, module: Any) -> None:
        if self.offload:
            module.to("cpu")

    # ------------------------------------------------------------------ generation, step by step
    @staticmethod
    def check_request(req: GenerationRequest) -> DreamIDRequest:
        """:func:`check_dreamid_request` at the engine's settings (no pipeline needed: before loading)."""
        return check_dreamid_request(req)

    def check(self, req: GenerationRequest) -> DreamIDRequest:
        return check_dreamid_request(req, self.settings)

    @torch.no_grad()
    def encode_conditions(
        self, req: GenerationRequest, checked: DreamIDRequest, cfg: DreamIDGenerateConfig
    ) -> DreamIDConditions:
        """Caption and negative prompts through umT5; faces through the VAE (one latent frame each) and
        voices through MMAudio (posterior means); zeros for references the request leaves out."""
        s, dev = self.settings, self.device
        pixels = [face_pixels(p.faces[0], checked.height, checked.width) for p in req.people]
        waves = []
        for p in req.people:
            try:
                waves.append(voice_window(p.voice, s))
            except RequestError as e:
                raise RequestError(f"person {p.name!r}: {e}") from e
        te = self._on(self.text)
        context = te.encode([checked.prompt, cfg.video_negative_prompt, cfg.audio_negative_prompt])
        self._off(te)
        vc = self._on(self.video_codec)
        faces = vc.encode_image(torch.stack(pixels).to(dev)).mean  # (K, Cv, 1, h, w)
        self._off(vc)
        ac = self._on(self.audio_codec)
        voices = [ac.encode(w[None, None].to(dev)).mean.transpose(1, 2) for w in waves]  # (1, Tr, Ca)
        self._off(ac)
        faces = faces.squeeze(2).transpose(0, 1)[None]  # (1, Cv, K, h, w)
        if not req.use_faces:
            faces = torch.zeros_like(faces)
        if not req.use_voices:
            voices = [torch.zeros_like(v) for v in voices]
        return DreamIDConditions(checked.prompt, context.to(dev), faces, voices)

    def prepare_latents(
        self, req: GenerationRequest, checked: DreamIDRequest, conditions: DreamIDConditions
    ) -> tuple[Tensor, Tensor]:
        """The engine's noise, targets only: video (1, Cv, T, h, w), audio (1, Na, Ca). Drawn at full
        length (references included) in the model's dtype from two CPU generators seeded with ``req.seed``,
        as the engine draws them on its device (a CUDA generator draws other numbers for the same seed).
        The solver integrates them in float32 or wider (the engine's scheduler keeps bf16 at release)."""
        C, T, h, w = self.video_codec.latent_shape(checked.frames, checked.height, checked.width)
        Na = self.audio_codec.latent_frames(
            round(checked.frames / self.settings.fps * self.settings.sample_rate)
        )
        K = conditions.faces.shape[2]
        Tr = sum(v.shape[1] for v in conditions.voices)
        dtype = next(self.model.parameters()).dtype  # the engine draws in its target dtype
        gen_v = torch.Generator(device="cpu").manual_seed(req.seed)
        gen_a = torch.Generator(device="cpu").manual_seed(req.seed)
        video = torch.randn(C, T + K, h, w, generator=gen_v, dtype=dtype)[:, :T]
        audio = torch.randn(Na + Tr, self.audio_codec.latent_channels, generator=gen_a, dtype=dtype)[:Na]
        return video[None].to(self.device), audio[None].to(self.device)

    @torch.no_grad()
    def denoise(
        self,
        conditions: DreamIDConditions,
        video: Tensor,
        audio: Tensor,
        cfg: DreamIDGenerateConfig,
        callback: Callable[[int, int], None] | None = None,
    ) -> tuple[Tensor, Tensor, int]:
        """:func:`dreamid_denoise` with this pipeline's model (on the device while it runs)."""
        model = self._on(self.model)
        out = dreamid_denoise(model, conditions, video, audio, cfg, callback)
        self._off(model)
        return out

    @torch.no_grad()
    def decode(self, video: Tensor, audio: Tensor, samples: int) -> tuple[np.ndarray, np.ndarray]:
        """Latents to frames (F, H, W, 3) uint8 and speech (S,) float32 in [-1, 1]."""
        vc = self._on(self.video_codec)
        pixels = vc.decode(video.float())[0]  # (3, F, H, W)
        self._off(vc)
        ac = self._on(self.audio_codec)
        wav = ac.decode(audio.float().transpose(1, 2))[0, 0, :samples]
        self._off(ac)
        frames = ((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0).cpu().numpy()
        return frames, wav.float().clamp(-1, 1).cpu().numpy()

    @torch.no_grad()
    def __call__(
        self,
        req: GenerationRequest,
        out_dir: str | Path,
        *,
        config: DreamIDGenerateConfig | None = None,
        callback: Callable[[int, int], None] | None = None,
        on_phase: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        """Check, encode, draw the noise, denoise, decode, write ``NAME.mp4`` + ``NAME.json``."""
        cfg = config or DreamIDGenerateConfig()
        phase = on_phase or (lambda name: None)
        t0 = time.perf_counter()
        phase(PHASES[0])
        checked = self.check(req)
        phase(PHASES[1])
        conditions = self.encode_conditions(req, checked, cfg)
        video, audio = self.prepare_latents(req, checked, conditions)
        t_prepared = time.perf_counter()
        phase(PHASES[2])
        video, audio, forwards = self.denoise(conditions, video, audio, cfg, callback)
        t_sampled = time.perf_counter()
        phase(PHASES[3])
        samples = round(checked.frames / self.settings.fps * self.settings.sample_rate)
        frames, wav = self.decode(video, audio, samples)
        t_decoded = time.perf_counter()
        phase(PHASES[4])
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        mp4 = write_av(out / f"{req.name}.mp4", frames, self.settings.fps, wav, self.settings.sample_rate)
        sidecar = self.sidecar(req, checked, cfg, forwards)
        sidecar["timings"] = {
            "prepare_s": round(t_prepared - t0, 3),
            "sample_s": round(t_sampled - t_prepared, 3),
            "decode_write_s": round(t_decoded - t_sampled, 3),
            "total_s": round(t_decoded - t0, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        side = out / f"{req.name}.json"
        atomic_write_json(side, sidecar)
        return GenerationResult(video_path=mp4, sidecar_path=side, sidecar=sidecar, frames=frames, audio=wav)

    def sidecar(
        self, req: GenerationRequest, checked: DreamIDRequest, cfg: DreamIDGenerateConfig, forwards: int
    ) -> dict[str, Any]:
        """What the clip is: family, seed, model, resolved config, geometry, people, caption."""
        s = self.settings
        turns = [
            {
                "slot": t["slot"] - 1,
                "name": req.people[t["slot"] - 1].name,
                **{k: t.get(k) for k in ("text", "start", "end")},
            }
            for t in checked.structured.get("speech", [])
        ]
        return {
            "format": FORMAT,
            "family": FAMILY,
            "seed": req.seed,
            "model": self.source,
            "config": {**asdict(cfg), "passes": list(PASSES), "forwards": forwards},
            **sidecar_media(
                req,
                frames=checked.frames,
                fps=s.fps,
                sample_rate=s.sample_rate,
                width=checked.width,
                height=checked.height,
            ),
            "caption": checked.structured,
            "caption_text": checked.prompt,
            "dreamid_caption": checked.caption,
            "turns": turns,
        }


__all__ = [
    "DreamIDGenerateConfig",
    "DreamIDOmniPipeline",
    "DreamIDSettings",
    "check_dreamid_request",
    "dreamid_denoise",
    "model_family",
]
