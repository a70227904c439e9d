"""``facevox encode CURATED_DIR --out OUT_DIR``: curated samples -> latent shards for training.

For every curated sample (a shot) up to ``windows_per_sample`` windows of ``window_frames`` frames
are cut, resized to ``width x height`` and encoded with the frozen codecs; each window becomes one
:class:`~facevox.data.shards.LatentSample` with

- the window's video and audio latents (posterior mean and std);
- face references: the curated crops from *other* videos (``face_refs``) and a crop of the person
  in the window's middle frame (``face_refs_self``), each through :func:`face_reference` and the
  video codec as a single frame;
- voice references: the curated clips from other videos (``voice_refs``) and the person's own
  speech in this shot (``voice_refs_self``), through :func:`voice_reference` and the audio codec;
- the caption restricted to the window's speech, rendered with the paper's tags and encoded per
  token (tags -> identity slots: ``<S1>``/``<REF_1_S>`` -> slot 0).

Splits are by person: a seeded choice of ``heldout_fraction`` of the curated person ids is held out; a window
whose people are all held out is ``heldout``, none ``train``, mixed ones are skipped (said why).
Resumable: a window whose file exists and reads back is not redone; the index is rewritten whole.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import cv2
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from facevox.alignment import Clock
from facevox.config import to_dict, write_resolved
from facevox.curate.captions import render
from facevox.curate.faces import crop
from facevox.curate.pipeline import read_manifest
from facevox.data.references import ReferenceError, face_reference, voice_reference
from facevox.data.shards import (
    IndexEntry,
    LatentSample,
    ShardError,
    read_sample,
    write_index,
    write_null_caption,
    write_sample,
)
from facevox.io.atomic import atomic_write_json, atomic_write_text, partial_writes
from facevox.io.media import MediaError, read_audio, read_av
from facevox.layout import frame_fractions

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class EncodeConfig:
    video_codec: str = (
        ""  # video codec folder (patch PCA or Wan VAE); "" = the tiny codec shipped in the package
    )
    audio_codec: str = ""  # MelAudioCodec or MMAudioCodec folder (the release's); "" = the shipped tiny codec
    text_encoder: str = "minilm"  # "minilm" (embedded default) or a local T5/umT5 folder
    width: int = 128  # frames are resized to width x height (multiples of 16)
    height: int = 96
    window_frames: int = 25  # frames per training window, 1 + 4k (25 = 1 s at 25 fps)
    windows_per_sample: int = 2  # evenly spaced windows per curated shot (at most)
    face_size: int = 64  # face-reference side in pixels
    max_face_views: int = 3  # face references per person from other videos
    voice_seconds: float = (
        2.5  # voice-reference length per person (tiny: 62 latents <= audio_ref_slot_gap 64)
    )
    max_caption_tokens: int = 128
    heldout_fraction: float = 0.2  # share of curated person ids held out for validation (seeded choice)
    seed: int = 0
    threads: int = 2  # torch threads in all (split between the workers)
    workers: int = 1  # processes, each with its own codecs; windows of one video stay in one process
    device: str = "cpu"  # where the codecs and the text encoder run (cpu, cuda, cuda:N); shards are written from the CPU

    def __post_init__(self) -> None:
        if (self.window_frames - 1) % 4 or self.window_frames < 5:
            raise ValueError(f"window_frames must be 1 + 4k >= 5, got {self.window_frames}")
        if self.width % 16 or self.height % 16:
            raise ValueError(f"width and height must be multiples of 16, got {self.width}x{self.height}")
        if self.workers < 1 or self.threads < 1:
            raise ValueError(f"workers and threads must be >= 1, got {self.workers} and {self.threads}")
        if not 0 <= self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in [0, 1), got {self.heldout_fraction}")


class EncodeError(RuntimeError):
    """The run cannot start (no manifest, no codec folder); the message says what to do."""


def heldout_people(person_ids: set[str], cfg: EncodeConfig) -> set[str]:
    """A seeded choice of ``round(heldout_fraction * n)`` people (at least one when n >= 2)."""
    people = sorted(person_ids)
    if cfg.heldout_fraction <= 0 or len(people) < 2:
        return set()
    n = min(len(people) - 1, max(1, round(cfg.heldout_fraction * len(people))))
    order = np.random.default_rng(cfg.seed).permutation(len(people))
    return {people[i] for i in order[:n]}


@dataclass
class Codecs:
    video: Any
    audio: Any
    text: Any


def load_codecs(cfg: EncodeConfig) -> Codecs:
    from facevox.codecs.loading import load_audio_codec, load_video_codec
    from facevox.codecs.text import MiniLMTextEncoder, T5TextEncoder
    from facevox.devices import check_device

    device = check_device(cfg.device)  # before any weight is read

    text = (
        MiniLMTextEncoder.from_pretrained(max_length=cfg.max_caption_tokens)
        if cfg.text_encoder == "minilm"
        else T5TextEncoder.from_pretrained(cfg.text_encoder, max_length=cfg.max_caption_tokens)
    )
    return Codecs(
        load_video_codec(codec_dir(cfg, "video")).eval().to(device),
        load_audio_codec(codec_dir(cfg, "audio")).to(device),
        text.to(device),
    )


def shards_clock(folder: str | Path) -> Clock | None:
    """The clock of a shard folder: recorded in its ``encode.json``, or for folders written before it
    was, derived from the codecs it names; None when neither can be read."""
    path = Path(folder) / "encode.json"
    if not path.is_file():
        return None
    enc = json.loads(path.read_text())
    if "clock" in enc:
        return Clock(**enc["clock"])
    from facevox.codecs.loading import load_audio_codec, load_video_codec

    fps = float(enc.get("alignment", {}).get("fps", 25.0))
    try:
        audio = load_audio_codec(enc["audio_codec"])
        return Clock.of_codecs(fps, audio.sample_rate, load_video_codec(enc["video_codec"]), audio)
    except (KeyError, OSError, ValueError) as e:
        log.warning("%s: no clock recorded and its codecs cannot be read (%s)", path, e)
        return None


def codec_dir(cfg: EncodeConfig, kind: Literal["video", "audio"]) -> Path:
    """The configured codec folder, or the tiny one shipped in the package."""
    from facevox.codecs.shipped import default_codec_dir

    folder = cfg.video_codec if kind == "video" else cfg.audio_codec
    return Path(folder) if folder else default_codec_dir(kind)


def codec_fingerprints(cfg: EncodeConfig) -> dict[str, str]:
    """``{"video": ..., "audio": ...}``: what the latents of this run are tied to."""
    from facevox.codecs.loading import codec_fingerprint

    kinds: tuple[Literal["video", "audio"], ...] = ("video", "audio")
    return {kind: codec_fingerprint(codec_dir(cfg, kind)) for kind in kinds}


def video_tensor(frames: np.ndarray, width: int, height: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (1, 3, T, height, width) in [-1, 1]."""
    small = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])
    return torch.from_numpy(small).permute(3, 0, 1, 2).unsqueeze(0).float() / 127.5 - 1.0


def encode_audio(codecs: Codecs, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, S) -> mean, std of (n, Ca), on the CPU."""
    d = codecs.audio.encode(audio.unsqueeze(0).to(module_device(codecs.audio)))  # (1, Ca, n)
    return d.mean[0].T.contiguous().cpu(), d.std[0].T.contiguous().cpu()


def module_device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


_D = TypeVar("_D")


def on_cpu(x: _D) -> _D:
    """A LatentDist or TextEncoding with every tensor on the CPU (shards are written from there)."""
    fields = {f.name: getattr(x, f.name) for f in dataclasses.fields(x)}  # type: ignore[arg-type]
    return dataclasses.replace(x, **{k: v.cpu() for k, v in fields.items() if isinstance(v, torch.Tensor)})  # type: ignore[type-var]


class _Encoder:
    def __init__(self, cfg: EncodeConfig, curated: Path, codecs: Codecs) -> None:
        self.cfg, self.curated, self.c = cfg, curated, codecs
        self._clip: tuple[str, Any] | None = None
        C = codecs.video.latent_channels
        s = cfg.face_size // codecs.video.space_stride
        self.empty_face = torch.zeros(C, 1, s, s)
        self.empty_voice = torch.zeros(1, codecs.audio.latent_channels)

    def clip(self, path: str) -> Any:
        if self._clip is None or self._clip[0] != path:
            self._clip = (path, read_av(path))
        return self._clip[1]

    def face_latents(self, images: list[np.ndarray]) -> torch.Tensor:
        """(V, C, 1, h, w) latent means of face crops."""
        x = torch.stack([face_reference(im, self.cfg.face_size) for im in images])  # (V, 3, S, S)
        return self.c.video.encode_image(x.to(module_device(self.c.video))).mean.cpu()

    def voice_latents(self, audio: np.ndarray) -> torch.Tensor:
        """(Tr, Ca) latent means of a voice clip."""
        wav = voice_reference(audio, 16_000, self.cfg.voice_seconds)
        return (
            self.c.audio.encode(wav.unsqueeze(0).to(module_device(self.c.audio))).mean[0].T.contiguous().cpu()
        )

    def window(self, rec: dict[str, Any], f0: int, wid: str, split: str) -> LatentSample:
        cfg = self.cfg
        av = self.clip(rec["video_path"])
        T = cfg.window_frames
        if av.video.shape[0] < f0 + T:
            raise MediaError(f"{rec['video_path']} has {av.video.shape[0]} frames, the window needs {f0 + T}")
        fps, sr = float(rec["fps"]), 16_000
        clip = video_tensor(av.video[f0 : f0 + T], cfg.width, cfg.height).to(module_device(self.c.video))
        video = on_cpu(self.c.video.encode(clip))
        a0 = round(f0 / fps * sr)
        n = round(T / fps * sr)
        seg = np.zeros(n, np.float32)
        part = av.audio[a0 : a0 + n]
        seg[: part.shape[0]] = part
        am, asd = encode_audio(self.c, torch.from_numpy(seg).unsqueeze(0))
        t0, t1 = f0 / fps, (f0 + T) / fps

        subjects = sorted(rec["subjects"], key=lambda s: s["slot"])
        K = len(subjects)
        face_x, face_self, voice_x, voice_self = [], [], [], []
        mid = av.video[f0 + T // 2]
        for s in subjects:
            refs = s["face_refs"][: cfg.max_face_views]
            imgs = [np.asarray(Image.open(self.curated / r["path"]).convert("RGB")) for r in refs]
            face_x.append(self.face_latents(imgs) if imgs else self.empty_face[None])
            face_self.append(self.face_latents([np.ascontiguousarray(crop(mid, s["box"], 0.25))]))
            clips = [read_audio(self.curated / r["path"]) for r in s["voice_refs"]]
            voice_x.append(self.voice_latents(np.concatenate(clips)) if clips else self.empty_voice)
            own = [t for t in rec["speech"] if t["slot"] == s["slot"]]
            own_audio = [av.audio[round(t["start"] * sr) : round(t["end"] * sr)] for t in own]
            own_audio = [x for x in own_audio if x.size > sr // 10]
            try:
                voice_self.append(
                    self.voice_latents(np.concatenate(own_audio)) if own_audio else self.empty_voice
                )
            except ReferenceError:
                voice_self.append(self.empty_voice)

        def stack_faces(groups: list[torch.Tensor], real: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
            V = max(g.shape[0] for g in groups)
            out = torch.zeros(K, V, *groups[0].shape[1:])
            mask = torch.zeros(K, V, dtype=torch.bool)
            for k, g in enumerate(groups):
                out[k, : g.shape[0]] = g
                mask[k, : real[k]] = True
            return out, mask

        def stack_voices(groups: list[torch.Tensor], real: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
            Tr = max(g.shape[0] for g in groups)
            out = torch.zeros(K, Tr, groups[0].shape[1])
            mask = torch.zeros(K, Tr, dtype=torch.bool)
            for k, g in enumerate(groups):
                out[k, : g.shape[0]] = g
                mask[k, : g.shape[0]] = real[k]
            return out, mask

        fx, fxm = stack_faces(face_x, [min(len(s["face_refs"]), cfg.max_face_views) for s in subjects])
        fs, fsm = stack_faces(face_self, [1] * K)
        vx, vxm = stack_voices(voice_x, [bool(s["voice_refs"]) for s in subjects])
        vs, vsm = stack_voices(voice_self, [g is not self.empty_voice for g in voice_self])

        caption = copy.deepcopy(rec["caption"])
        caption["speech"] = [
            {**t, "start": round(max(t["start"], t0) - t0, 2), "end": round(min(t["end"], t1) - t0, 2)}
            for t in caption["speech"]
            if t["end"] > t0 and t["start"] < t1
        ]
        text = render(caption)
        enc = on_cpu(self.c.text.encode([text]))
        L = int(enc.mask[0].sum())
        return LatentSample(
            sample_id=wid,
            video_mean=video.mean[0],
            video_std=video.std[0],
            audio_mean=am,
            audio_std=asd,
            caption=enc.hidden[0, :L].half(),
            caption_mask=enc.mask[0, :L],
            caption_slot_ids=enc.slot_ids[0, :L],
            slot_ids=torch.tensor([s["slot"] - 1 for s in subjects]),
            face_refs=fx,
            face_refs_mask=fxm,
            voice_refs=vx,
            voice_refs_mask=vxm,
            face_refs_self=fs,
            face_refs_self_mask=fsm,
            voice_refs_self=vs,
            voice_refs_self_mask=vsm,
            meta={
                "person_ids": [s["person_id"] for s in subjects],
                "split": split,
                "source": rec["sample_id"],
                "video_path": rec["video_path"],
                "start_frame": f0,
                "fps": fps,
                "sample_rate": sr,
                "caption_text": text,
                "caption": caption,
                # each person's face box (x0, y0, x1, y1) as fractions of the frame, slot order: the
                # region a face-weighted loss and the face-region metrics look at
                "face_boxes": [frame_fractions(s["box"], mid.shape) for s in subjects],
            },
        )


class _Job(NamedTuple):
    """One window to encode and where its shard goes."""

    rec: dict[str, Any]
    f0: int
    wid: str
    split: str
    path: Path


_ENCODER: _Encoder | None = None  # one per worker process
_ENCODE_ERRORS = (MediaError, ReferenceError, ShardError, OSError, KeyError)


def _worker_init(cfg: EncodeConfig, curated: Path) -> None:
    global _ENCODER
    torch.set_num_threads(max(1, cfg.threads // cfg.workers))
    _ENCODER = _Encoder(cfg, curated, load_codecs(cfg))


def _encode_windows(enc: _Encoder, jobs: list[_Job]) -> list[tuple[str, dict[str, Any]]]:
    """Encode and write each job's window; per job ``("ok", shapes)`` or
    ``("skip", reason)``. Jobs are the windows of one video, so its decoded clip is read once."""
    out: list[tuple[str, dict[str, Any]]] = []
    for rec, f0, wid, split, path in jobs:
        try:
            sample = enc.window(rec, f0, wid, split)
        except _ENCODE_ERRORS as e:
            out.append(("skip", {"sample_id": wid, "reason": type(e).__name__, "detail": str(e)[:300]}))
            continue
        write_sample(path, sample)
        out.append(("ok", _shapes(sample)))
    return out


def _encode_windows_in_worker(
    jobs: list[_Job],
) -> list[tuple[str, dict[str, Any]]]:
    if _ENCODER is None:
        raise RuntimeError("encode worker used before _worker_init")
    return _encode_windows(_ENCODER, jobs)


def _shapes(sample: LatentSample) -> dict[str, Any]:
    return {
        "num_slots": sample.num_slots,
        "video_shape": list(sample.video_mean.shape),
        "audio_frames": int(sample.audio_mean.shape[0]),
    }


def _run_jobs(
    cfg: EncodeConfig,
    curated: Path,
    codecs: Codecs,
    jobs: list[_Job],
    bar: Any,
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Results by window id, in this process (``workers=1``) or in a process pool, one video per task."""
    by_video: dict[str, list[_Job]] = {}
    for job in jobs:
        by_video.setdefault(job.rec["video_path"], []).append(job)
    results: dict[str, tuple[str, dict[str, Any]]] = {}

    def collect(group: list[_Job], res: list[tuple[str, dict[str, Any]]]) -> None:
        for job, r in zip(group, res, strict=True):
            results[job.wid] = r
        bar.update(len(group))

    if cfg.workers == 1 or len(by_video) < 2:
        enc = _Encoder(cfg, curated, codecs)
        for group in by_video.values():
            collect(group, _encode_windows(enc, group))
        return results
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(
        max_workers=min(cfg.workers, len(by_video)),
        mp_context=mp.get_context("spawn"),
        initializer=_worker_init,
        initargs=(cfg, curated),
    ) as pool:
        futures = {pool.submit(_encode_windows_in_worker, g): g for g in by_video.values()}
        for fut in as_completed(futures):
            collect(futures[fut], fut.result())
    return results


def _windows(rec: dict[str, Any], cfg: EncodeConfig) -> list[int]:
    n = rec["end_frame"] - rec["start_frame"]
    k = min(cfg.windows_per_sample, n // cfg.window_frames)
    if k <= 0:
        return []
    return sorted({int(x) for x in np.linspace(rec["start_frame"], rec["end_frame"] - cfg.window_frames, k)})


def open_shard_folder(cfg: EncodeConfig, out: Path, fps: float) -> tuple[Codecs, Clock, dict[str, str]]:
    """Load the codecs and make ``out`` ready to (re)write samples: a folder a previous run wrote must
    hold latents of these codecs on this clock (EncodeError otherwise), a killed run's half-written
    files go, the resolved config and the empty caption's states are written. Returns the codecs, the
    clock at ``fps`` and the codec fingerprints."""
    torch.set_num_threads(cfg.threads)
    fingerprints = codec_fingerprints(cfg)
    previous = out / "encode.json"
    before_run = json.loads(previous.read_text()) if previous.is_file() else {}
    before = before_run.get("codec_fingerprints")
    if before is not None and before != fingerprints:  # resuming: the samples written come from these codecs
        raise EncodeError(
            f"{out} holds latents of other codecs ({before}) than this run's ({fingerprints}): "
            "shards of two codecs cannot be mixed; encode into a new folder"
        )
    codecs = load_codecs(cfg)
    clock = Clock.of_codecs(fps, codecs.audio.sample_rate, codecs.video, codecs.audio)
    if "clock" in before_run:  # and on the same clock
        before_clock = Clock(**before_run["clock"])
        if not before_clock.same_as(clock):
            raise EncodeError(
                f"{out} holds samples on another clock ({before_clock.describe()}) than this run's "
                f"({clock.describe()}); encode into a new folder"
            )
    out.mkdir(parents=True, exist_ok=True)
    for tmp in partial_writes(out) + partial_writes(out / "samples"):  # a killed run's half-written files
        tmp.unlink(missing_ok=True)
    write_resolved(cfg, out)
    null = on_cpu(codecs.text.encode([""]))
    n0 = int(null.mask[0].sum())
    write_null_caption(out, null.hidden[0, :n0].half(), null.mask[0, :n0])
    return codecs, clock, fingerprints


def encode_record(cfg: EncodeConfig, fingerprints: dict[str, str], clock: Clock) -> dict[str, Any]:
    """What ``encode.json`` says of every shard folder: the config, codecs (folders and fingerprints),
    text encoder and clock the samples were written with."""
    return {
        "format": "facevox.encode/1",
        "config": to_dict(cfg),
        "video_codec": str(codec_dir(cfg, "video").resolve()),
        "audio_codec": str(codec_dir(cfg, "audio").resolve()),
        "codec_fingerprints": fingerprints,
        "text_encoder": cfg.text_encoder,
        "clock": dataclasses.asdict(clock),
    }


def encode(
    cfg: EncodeConfig, curated_dir: str | Path, out_dir: str | Path, progress: bool = True
) -> dict[str, Any]:
    """Encode every curated sample of ``curated_dir`` into ``out_dir``; returns the counts."""
    curated, out = Path(curated_dir), Path(out_dir)
    if curated.is_file() and curated.name == "manifest.jsonl":  # MANIFEST given: its folder holds the crops
        curated = curated.parent
    if not (curated / "manifest.jsonl").is_file():
        raise EncodeError(
            f"{curated} has no manifest.jsonl: run `facevox curate INPUT --out {curated}` first"
        )
    records = read_manifest(curated)
    rates = sorted({float(r["fps"]) for r in records})
    if len(rates) > 1:
        raise EncodeError(
            f"{curated} mixes frame rates {rates}: one shard folder has one audio-video clock; curate or "
            "encode each rate into its own folder"
        )
    codecs, clock, fingerprints = open_shard_folder(cfg, out, rates[0] if rates else 25.0)
    entries: list[IndexEntry] = []
    skipped: list[dict[str, Any]] = []
    made = reused = 0
    t_start = time.perf_counter()
    media_seconds = 0.0
    heldout = heldout_people({s["person_id"] for r in records for s in r["subjects"]}, cfg)
    todo = [
        (r, f0)
        for r in sorted(records, key=lambda r: (r["video_path"], r["start_frame"]))
        for f0 in _windows(r, cfg)
    ]
    for rec in records:
        if not _windows(rec, cfg):
            skipped.append(
                {
                    "sample_id": rec["sample_id"],
                    "reason": "shorter_than_window",
                    "detail": f"{rec['end_frame'] - rec['start_frame']} frames < {cfg.window_frames}",
                }
            )
    # 1. what exists already (resume) and what is skipped before any work; 2. the rest, encoded
    planned: list[tuple[_Job, dict[str, Any] | None]] = []  # every window, with its shapes if on disk
    for rec, f0 in todo:
        wid = f"{rec['sample_id']}_f{f0:05d}"
        held = {s["person_id"] in heldout for s in rec["subjects"]}
        if len(held) != 1:
            skipped.append(
                {"sample_id": wid, "reason": "mixed_split", "detail": "train and held-out people together"}
            )
            continue
        split = "heldout" if held == {True} else "train"
        path = out / "samples" / f"{wid}.safetensors"
        shapes = None
        if path.is_file():
            try:
                shapes, reused = _shapes(read_sample(path)), reused + 1
            except ShardError as e:
                log.warning("redoing %s: %s", path, e)
        planned.append((_Job(rec, f0, wid, split, path), shapes))
    jobs = [job for job, shapes in planned if shapes is None]
    with tqdm(total=len(todo), initial=reused, desc="encode", unit="window", disable=not progress) as bar:
        results = _run_jobs(cfg, curated, codecs, jobs, bar)
    for (rec, _, wid, split, _), shapes in planned:
        if shapes is None:
            status, info = results[wid]
            if status == "skip":
                skipped.append(info)
                continue
            shapes, made = info, made + 1
            media_seconds += cfg.window_frames / float(rec["fps"])
        entries.append(
            IndexEntry(
                sample_id=wid,
                file=f"samples/{wid}.safetensors",
                split=split,
                person_ids=[s["person_id"] for s in rec["subjects"]],
                duration=cfg.window_frames / float(rec["fps"]),
                **shapes,
            )
        )
    wall = time.perf_counter() - t_start
    write_index(out, entries)
    atomic_write_text(out / "skipped.jsonl", "".join(json.dumps(s, sort_keys=True) + "\n" for s in skipped))
    shard_bytes = sum(p.stat().st_size for p in (out / "samples").glob("*.safetensors")) if entries else 0
    seconds = sum(e.duration for e in entries)
    counts = {
        "windows": len(entries),
        "train": sum(e.split == "train" for e in entries),
        "heldout": sum(e.split == "heldout" for e in entries),
        "made_this_run": made,
        "reused": reused,
        "skipped": len(skipped),
        "wall_seconds": round(wall, 2),
        "windows_per_second": round(made / wall, 3) if made and wall > 0 else None,
        "media_seconds_per_second": round(media_seconds / wall, 3) if made and wall > 0 else None,
        "shard_bytes_per_media_second": round(shard_bytes / seconds) if seconds else None,
    }
    atomic_write_json(
        out / "encode.json",
        {
            **encode_record(cfg, fingerprints, clock),
            "alignment": {
                "fps": float(records[0]["fps"]) if records else 25.0,
                "sample_rate": 16_000,
                "height": cfg.height,
                "width": cfg.width,
                "num_frames": cfg.window_frames,
                # RoPE lets the model run past its training window; 4x is where we stop trusting it
                "max_frames": 4 * (cfg.window_frames - 1) + 1,
                "shift": 0.0,  # 0: the resolution-dependent shift training used (diffusion.path)
                "face_size": cfg.face_size,
                "voice_seconds": cfg.voice_seconds,
                "max_caption_tokens": cfg.max_caption_tokens,
            },
            "counts": counts,
        },
    )
    log.info("encode %s: %s", out, counts)
    return counts
