"""Per-clip metrics of a talking clip against the references its sidecar names.

Everything is read from files (mp4 + ``facevox.generation/1`` sidecar); the model is never imported.

- **face identity**: every ``face_stride``-th frame, Haar faces -> dlib ResNet embeddings; each face
  is assigned to the slot whose references it is closest to (Hungarian per frame when several);
  reported as cosine similarity to its own slot's references and to the other slots' (confusion),
  and as the share of faces within dlib distance ``same_threshold`` of their slot;
- **voice identity**: resemblyzer cosine similarity of each turn's audio (its intended span, or the
  whole clip when the span is under ``min_turn_s``) to the speaking slot's voice, and to the others;
- **lip sync** (SyncNet-style, from mouth motion): correlation of the mouth-region motion of the
  speaker's face with the change of the speech envelope over offsets of +-``max_offset`` frames:
  ``sync_offset`` (frames at the peak), ``sync_conf`` = peak - median (LSE-C-like),
  ``sync_dist`` = 1 - peak (LSE-D-like, lower is better);
- **speaker attribution** (several people), per turn against the sidecar's turns (the planned spans
  for generated clips): ``mouth_attribution_acc`` (the face whose mouth moves most with the speech),
  ``voice_attribution_acc`` (the reference voice the turn's speech is closest to) and
  ``attribution_acc`` (both: the voice is the speaker's and, where a mouth is measured, so is it);
- **speech content**: pocketsphinx WER against the turns' text.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from facevox.io.media import read_audio, read_av

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    face_stride: int = 2  # frames between face measurements
    same_threshold: float = 0.43  # dlib distance: the world's EER threshold (README bars, in-clip)
    min_turn_s: float = 0.6  # shorter turns are scored on the whole clip's audio
    max_offset: int = 5  # lip-sync offset search, frames
    asr: bool = True  # pocketsphinx WER (slow-ish)


@dataclass(frozen=True)
class _Span:
    start: float
    end: float


class ClipError(ValueError):
    """A clip that cannot be scored (no sidecar, unreadable media); the run goes on without it."""


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True).clip(1e-8)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True).clip(1e-8)
    return a @ b.T


class ReferenceEmbeddings:
    """dlib / resemblyzer embeddings of reference files, cached by path."""

    def __init__(self) -> None:
        self._faces: dict[str, np.ndarray] = {}
        self._voices: dict[str, np.ndarray] = {}

    def face(self, path: str) -> np.ndarray | None:
        """(128,) embedding of the largest face in an image, None if none is found."""
        if path not in self._faces:
            from facevox.recognisers.faces import detect_faces, face_embeddings

            img = np.asarray(Image.open(path).convert("RGB"))
            boxes = detect_faces(img, min_size=24)
            if len(boxes) == 0:
                self._faces[path] = np.zeros(0, np.float32)
            else:
                big = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
                self._faces[path] = face_embeddings(img, [big])[0]
        e = self._faces[path]
        return e if e.size else None

    def voice(self, path: str) -> np.ndarray:
        if path not in self._voices:
            from facevox.recognisers.voices import voice_embedding

            self._voices[path] = voice_embedding(read_audio(path))
        return self._voices[path]


def read_sidecar(mp4: Path) -> dict[str, Any]:
    side = mp4.with_suffix(".json")
    if not side.is_file():
        raise ClipError(f"{mp4}: no sidecar {side.name}")
    try:
        d = json.loads(side.read_text())
    except json.JSONDecodeError as e:
        raise ClipError(f"{side}: not JSON ({e})") from e
    if d.get("format") != "facevox.generation/1":
        raise ClipError(f"{side}: format {d.get('format')!r}, expected facevox.generation/1")
    return d


def word_errors(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance between two word sequences (substitutions, insertions, deletions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def _wer(ref: str, hyp: str) -> tuple[int, int]:
    r = ref.lower().split()
    return word_errors(r, hyp.lower().split()), len(r)


def _norm_words(text: str) -> str:
    return " ".join("".join(c for c in w if c.isalnum() or c == "'") for w in text.split())


def score_clip(
    mp4: Path, refs: ReferenceEmbeddings, cfg: EvalConfig, asr: Any = None, heldout_views: Path | None = None
) -> dict[str, Any]:
    """All metrics of one clip; raises :class:`ClipError` for unusable input.

    ``heldout_views``: a folder of ``PERSON_ID.png`` views never given to the model; then
    ``copy_paste_gap`` = similarity to the given references minus similarity to that view (a face
    that copies the reference picture scores high; a face that is the person, near 0).
    """
    from facevox.curate.binding import _smooth, segment_scores, speech_envelope
    from facevox.curate.faces import mouth_motion
    from facevox.recognisers.faces import detect_faces, face_embeddings
    from facevox.recognisers.voices import voice_embedding

    side = read_sidecar(mp4)
    try:
        clip = read_av(mp4)
    except Exception as err:  # PyAV raises several types for corrupt files
        raise ClipError(f"{mp4}: unreadable media ({type(err).__name__}: {err})") from err
    fps, sr = float(side["fps"]), 16_000
    people = sorted(side["people"], key=lambda p: p["slot"])
    K = len(people)
    ref_faces = []
    for p in people:
        embs = [e for e in (refs.face(f) for f in p["faces"]) if e is not None]
        ref_faces.append(np.stack(embs) if embs else np.zeros((0, 128), np.float32))
    ref_voice = np.stack([refs.voice(p["voice"]) for p in people])  # (K, 256)
    held: list[np.ndarray | None] = []
    for p in people:
        path = heldout_views / f"{p.get('person_id')}.png" if heldout_views and p.get("person_id") else None
        held.append(refs.face(str(path)) if path is not None and path.is_file() else None)
    gaps: list[float] = []
    out: dict[str, Any] = {"clip": mp4.stem, "people": K, "references_used": side.get("references_used")}

    # ---- faces, per measured frame; tracks of boxes per slot for lip sync
    F = clip.video.shape[0]
    own, other, close, n_faces, n_frames = [], [], [], 0, 0
    boxes_by_slot: dict[int, dict[int, list[float]]] = {k: {} for k in range(K)}
    for f in range(0, F, cfg.face_stride):
        img = clip.video[f]
        boxes = detect_faces(img, min_size=max(16, min(img.shape[:2]) // 10))
        n_frames += 1
        if len(boxes) == 0 or not any(len(r) for r in ref_faces):
            continue
        emb = face_embeddings(img, boxes)
        sim = np.stack([_cos(emb, r).mean(1) if len(r) else np.full(len(emb), -1.0) for r in ref_faces], 1)
        rows, cols = linear_sum_assignment(-sim)  # (faces, slots)
        for i, k in zip(rows, cols, strict=True):
            n_faces += 1
            own.append(float(sim[i, k]))
            if K > 1:
                other.append(float(np.delete(sim[i], k).mean()))
            if len(ref_faces[k]):
                close.append(float(np.linalg.norm(ref_faces[k] - emb[i], axis=1).min() < cfg.same_threshold))
            boxes_by_slot[k][f] = boxes[i].tolist()
            if held[k] is not None:
                gaps.append(float(sim[i, k] - _cos(emb[i : i + 1], held[k][None])[0, 0]))
    out["face_detect_rate"] = n_faces / max(1, n_frames * K)
    out["face_sim"] = float(np.mean(own)) if own else None
    out["face_sim_other"] = float(np.mean(other)) if other else None
    out["face_same_rate"] = float(np.mean(close)) if close else None
    out["copy_paste_gap"] = float(np.mean(gaps)) if gaps else None

    # ---- voices per turn
    # generated clips carry audio; a clip without any still fails below, as it always has
    audio = cast(np.ndarray, clip.audio)
    vs, vo = [], []
    voice_pick: list[int | None] = []  # per turn, the reference voice the turn's speech is closest to
    for t in side["turns"]:
        voice_pick.append(None)
        s, e = t.get("start"), t.get("end")
        seg = audio if s is None or e is None or e - s < cfg.min_turn_s else audio[int(s * sr) : int(e * sr)]
        if seg.size < sr // 4:
            seg = audio
        try:
            emb = voice_embedding(seg)
        except ValueError:
            continue
        sims = ref_voice @ emb
        voice_pick[-1] = int(np.argmax(sims))
        vs.append(float(sims[t["slot"]]))
        if K > 1:
            vo.append(float(np.delete(sims, t["slot"]).mean()))
    out["voice_sim"] = float(np.mean(vs)) if vs else None
    out["voice_sim_other"] = float(np.mean(vo)) if vo else None
    # own minus the others' similarity on the same turns: aggregated over multi-person clips only, it
    # is the paired speaker-specificity figure (voice_sim's aggregate also covers single-person clips)
    out["voice_specificity"] = out["voice_sim"] - out["voice_sim_other"] if vo else None

    # ---- lip sync and attribution: mouth motion of each slot's face vs the speech envelope change
    env_raw = speech_envelope(audio, sr, fps, F)
    env = _smooth(np.abs(np.diff(env_raw, prepend=env_raw[:1])))
    motion = np.full((K, F), np.nan)
    for k, bx in boxes_by_slot.items():
        if len(bx) < 4:
            continue
        frames = sorted(bx)
        span = np.arange(frames[0], frames[-1] + 1)
        coords = np.stack([np.interp(span, frames, [bx[f][c] for f in frames]) for c in range(4)], 1)
        motion[k, span] = mouth_motion(clip.video, span.tolist(), coords.tolist())
    curves = []
    for t in side["turns"]:
        k = t["slot"]
        a = int((t.get("start") or 0) * fps)
        b = min(F, int((t.get("end") or F / fps) * fps))
        if np.isnan(motion[k, a:b]).mean() > 0.5:
            continue
        m = _smooth(np.nan_to_num(motion[k]))
        corr = []
        for off in range(-cfg.max_offset, cfg.max_offset + 1):
            lo, hi = max(0, a + off), min(F, b + off)
            x, y = m[lo:hi], env[lo - off : hi - off]
            ok = len(x) > 3 and x.std() > 0 and y.std() > 0
            corr.append(float(np.corrcoef(x, y)[0, 1]) if ok else 0.0)
        curves.append(corr)
    if curves:
        c = np.mean(curves, 0)
        out["sync_offset"] = int(np.argmax(c)) - cfg.max_offset
        out["sync_conf"] = float(c.max() - np.median(c))
        out["sync_dist"] = float(1 - c.max())
    else:
        out["sync_offset"] = out["sync_conf"] = out["sync_dist"] = None
    # speaker attribution per turn of a multi-person clip: by the mouth (whose mouth moves with the
    # speech, curation's binding score), by the voice (whose reference the speech sounds like), and
    # both: a turn counts when its voice is the speaker's and, where a mouth is measured, so is the mouth
    out["attribution_acc"] = out["mouth_attribution_acc"] = out["voice_attribution_acc"] = None
    if K > 1:
        turns = [_Span(t.get("start") or 0.0, t.get("end") or F / fps) for t in side["turns"]]
        scores = segment_scores(turns, motion, env_raw, fps)  # (turns, K), curation's binding score
        mouth = [int(np.argmax(sc)) if np.isfinite(sc).any() else None for sc in scores]
        slots = [t["slot"] for t in side["turns"]]
        by_mouth = [m == k for m, k in zip(mouth, slots, strict=True) if m is not None]
        by_voice = [v == k for v, k in zip(voice_pick, slots, strict=True) if v is not None]
        both = [
            v == k and (m is None or m == k)
            for v, m, k in zip(voice_pick, mouth, slots, strict=True)
            if v is not None
        ]
        out["mouth_attribution_acc"] = float(np.mean(by_mouth)) if by_mouth else None
        out["voice_attribution_acc"] = float(np.mean(by_voice)) if by_voice else None
        out["attribution_acc"] = float(np.mean(both)) if both else None

    # ---- speech content
    if cfg.asr and asr is not None:
        hyp = asr.transcribe(audio, sr)
        errs, words = _wer(_norm_words(" ".join(t["text"] for t in side["turns"])), _norm_words(hyp))
        out["wer_errors"], out["wer_words"], out["asr"] = errs, words, hyp
    out["face_embeddings_n"] = n_faces
    return out
