"""The reduce phase: dataset-wide person ids, references without leakage, samples with captions.

Inputs are the map phase's per-video analyses. One sample per shot that holds at least one face
track; its *target span* is the shot. For each subject:

- face references are crops of the same person from *other videos* (never the target video),
  chosen for pose spread (the pose proxy) and not near-duplicates of each other (dlib distance);
- voice references are that person's bound speech segments from other videos.

A subject without a face reference, or a speaking subject without a voice reference, makes the
sample unusable for identity training: it goes to the exclusion log with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from facevox.curate.captions import describe_scene, describe_subject, render
from facevox.curate.clustering import cluster_embeddings
from facevox.curate.config import CurateConfig
from facevox.curate.records import SpeechSegment, Track, segment_from_dict, track_from_dict

log = logging.getLogger(__name__)


@dataclass
class FaceRef:
    path: str  # PNG crop, relative to the output folder
    clip_id: str  # the video it comes from (never the sample's own)
    frame: int
    yaw: float  # pose proxy


@dataclass
class VoiceRef:
    path: str  # WAV 16 kHz mono, relative to the output folder
    clip_id: str
    start: float  # seconds in its source video
    end: float


@dataclass
class Subject:
    slot: int  # 1-based, left to right
    person_id: str  # dataset-wide id ("P00012")
    track_id: int  # face track in the target video
    voice_id: int | None  # diarized voice in the target video, when bound
    box: list[float]  # median face box over the target span, pixels
    face_refs: list[FaceRef] = field(default_factory=list)
    voice_refs: list[VoiceRef] = field(default_factory=list)


@dataclass
class Turn:
    slot: int  # the speaking subject's slot
    start: float  # seconds in the source video, clipped to the target span
    end: float
    text: str
    text_source: str


@dataclass
class Sample:
    sample_id: str  # "{clip_id}_s{shot:02d}"
    clip_id: str
    video_path: str  # the source video (absolute)
    start: float  # target span, seconds
    end: float
    start_frame: int  # target span, frames [start_frame, end_frame)
    end_frame: int
    fps: float
    sample_rate: int
    width: int
    height: int
    kind: str  # "single" or "multi" (subjects on screen)
    multiview: bool  # every subject has >= 2 face references of distinct pose
    subjects: list[Subject]
    speech: list[Turn]
    caption: dict[str, Any]
    caption_text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Dataset:
    """All kept videos' analyses with dataset-wide ids attached."""

    clips: list[dict[str, Any]]
    tracks: dict[str, list[Track]]  # clip_id -> tracks
    segments: dict[str, list[SpeechSegment]]  # clip_id -> segments
    person_of: dict[tuple[str, int], str]  # (clip_id, track_id) -> person id
    segment_person: dict[tuple[str, int], str]  # (clip_id, seg_id) -> person id of its speaker


def assign_people(analyses: list[dict[str, Any]], cfg: CurateConfig) -> Dataset:
    """Cluster every face track of the data set into person ids; carry them to speech segments."""
    clips = sorted(analyses, key=lambda a: a["clip_id"])
    tracks = {a["clip_id"]: [track_from_dict(t) for t in a["tracks"]] for a in clips}
    segments = {a["clip_id"]: [segment_from_dict(s) for s in a["segments"]] for a in clips}
    keys = [(c, t) for c in tracks for t in tracks[c]]
    person_of: dict[tuple[str, int], str] = {}
    if keys:
        emb = np.asarray([t.embedding for _, t in keys], np.float64)  # (N, 128)
        index = {c: i for i, c in enumerate(tracks)}
        clip_idx = np.asarray([index[c] for c, _ in keys])
        spans = [(t.frames[0], t.frames[-1]) for _, t in keys]
        same_clip = clip_idx[:, None] == clip_idx[None, :]
        overlap = np.asarray([[a[0] <= b[1] and b[0] <= a[1] for b in spans] for a in spans])
        labels = cluster_embeddings(
            emb,
            cfg.references.same_person_distance,
            "euclidean",
            same_clip & overlap & ~np.eye(len(keys), dtype=bool),
        )
        person_of = {(c, t.track_id): f"P{int(lab):05d}" for (c, t), lab in zip(keys, labels, strict=True)}
    segment_person: dict[tuple[str, int], str] = {}
    for c, segs in segments.items():
        votes: dict[int, dict[str, float]] = {}
        for s in segs:
            if s.track_id is not None:
                p = person_of[(c, s.track_id)]
                votes.setdefault(s.voice_id, {}).setdefault(p, 0.0)
                votes[s.voice_id][p] += s.end - s.start
        for s in segs:
            if s.track_id is not None:
                segment_person[(c, s.seg_id)] = person_of[(c, s.track_id)]
            elif s.voice_id in votes:  # unbound piece of a voice bound elsewhere in the video
                segment_person[(c, s.seg_id)] = max(votes[s.voice_id].items(), key=lambda kv: kv[1])[0]
    return Dataset(clips, tracks, segments, person_of, segment_person)


def pick_face_refs(
    candidates: list[tuple[str, Any]], k: int, min_yaw: float, near_dup: float
) -> list[FaceRef]:
    """Greedy pose spread: start from the most frontal crop, then add the crop whose yaw is farthest
    from those chosen, skipping near-duplicates (dlib distance) and repeated poses."""
    pool = sorted(candidates, key=lambda cc: (abs(cc[1].yaw), cc[0], cc[1].frame))
    chosen: list[tuple[str, Any]] = []
    while pool and len(chosen) < k:
        if not chosen:
            chosen.append(pool.pop(0))
            continue

        def gap(cc: tuple[str, Any]) -> float:
            return min(abs(cc[1].yaw - o[1].yaw) for o in chosen)

        best = max(pool, key=gap)
        pool.remove(best)
        dists = [np.linalg.norm(np.subtract(best[1].embedding, o[1].embedding)) for o in chosen]
        if gap(best) < min_yaw and min(dists) < near_dup:
            continue
        if min(dists) < near_dup:
            continue
        chosen.append(best)
    return [FaceRef(path=cr.path, clip_id=c, frame=cr.frame, yaw=round(cr.yaw, 4)) for c, cr in chosen]


def build_samples(ds: Dataset, cfg: CurateConfig) -> tuple[list[Sample], list[dict[str, str]]]:
    rc = cfg.references
    crops_of: dict[str, list[tuple[str, Any]]] = {}
    p: str | None  # a person id; the speaker look-ups below may find none
    for (c, tid), p in ds.person_of.items():
        tr = next(t for t in ds.tracks[c] if t.track_id == tid)
        crops_of.setdefault(p, []).extend((c, cr) for cr in tr.crops)
    speech_of: dict[str, list[tuple[str, SpeechSegment]]] = {}
    for c, segs in ds.segments.items():
        for s in segs:
            p = ds.segment_person.get((c, s.seg_id))
            if p is not None and s.end - s.start >= rc.min_voice_seconds:
                speech_of.setdefault(p, []).append((c, s))
    samples: list[Sample] = []
    dropped: list[dict[str, str]] = []
    for a in ds.clips:
        c, fps = a["clip_id"], a["fps"]
        for shot, (fa, fb) in enumerate(a["shots"]):
            sid = f"{c}_s{shot:02d}"
            in_shot = [t for t in ds.tracks[c] if t.shot == shot]
            if not in_shot:
                dropped.append(_drop(a, sid, "no_face", "no face track in this shot"))
                continue
            # one subject per person: their longest track in the shot
            by_person: dict[str, Track] = {}
            for t in in_shot:
                p = ds.person_of[(c, t.track_id)]
                if p not in by_person or len(t.frames) > len(by_person[p].frames):
                    by_person[p] = t
            ordered = sorted(
                by_person.items(), key=lambda kv: float(np.median([b[0] + b[2] for b in kv[1].boxes]))
            )
            start, end = fa / fps, fb / fps
            subjects, reason = [], ""
            for slot, (p, t) in enumerate(ordered, start=1):
                faces = pick_face_refs(
                    [cc for cc in crops_of.get(p, []) if cc[0] != c],
                    rc.faces_per_person,
                    rc.min_yaw_spread,
                    rc.near_duplicate_distance,
                )
                voices = sorted(
                    (cs for cs in speech_of.get(p, []) if cs[0] != c),
                    key=lambda cs: (-(cs[1].end - cs[1].start), cs[0], cs[1].start),
                )
                voice_refs = [
                    VoiceRef(path=s.audio_path, clip_id=vc, start=s.start, end=s.end)
                    for vc, s in voices[: rc.voices_per_person]
                ]
                bound = [s for s in ds.segments[c] if s.track_id == t.track_id]
                subjects.append(
                    Subject(
                        slot=slot,
                        person_id=p,
                        track_id=t.track_id,
                        voice_id=bound[0].voice_id if bound else None,
                        box=[round(float(v), 1) for v in np.median(np.asarray(t.boxes), axis=0)],
                        face_refs=faces,
                        voice_refs=voice_refs,
                    )
                )
                if not faces:
                    reason = reason or f"no_face_reference:{p}"
            slot_of = {s.person_id: s.slot for s in subjects}
            turns = []
            for s in ds.segments[c]:
                p = ds.segment_person.get((c, s.seg_id))
                if s.end <= start or s.start >= end or p not in slot_of:
                    continue
                turns.append(
                    Turn(
                        slot=slot_of[p],
                        start=round(max(s.start, start), 3),
                        end=round(min(s.end, end), 3),
                        text=s.text,
                        text_source=s.text_source,
                    )
                )
            for sub in subjects:
                if any(tu.slot == sub.slot for tu in turns) and not sub.voice_refs:
                    reason = reason or f"no_voice_reference:{sub.person_id}"
            if reason:
                dropped.append(_drop(a, sid, reason.split(":")[0], reason))
                continue
            caption = make_caption(a, shot, subjects, ordered, turns)
            samples.append(
                Sample(
                    sample_id=sid,
                    clip_id=c,
                    video_path=a["source"],
                    start=round(start, 4),
                    end=round(end, 4),
                    start_frame=fa,
                    end_frame=fb,
                    fps=fps,
                    sample_rate=a["sample_rate"],
                    width=a["width"],
                    height=a["height"],
                    kind="single" if len(subjects) == 1 else "multi",
                    multiview=all(len({round(f.yaw, 2) for f in s.face_refs}) >= 2 for s in subjects),
                    subjects=subjects,
                    speech=turns,
                    caption=caption,
                    caption_text=render(caption),
                )
            )
    return samples, dropped


def _drop(a: dict[str, Any], sid: str, reason: str, detail: str) -> dict[str, str]:
    return {
        "source": a["source"],
        "stage": "samples",
        "reason": reason,
        "detail": detail,
        "item": f"sample:{sid}",
    }


def make_caption(
    a: dict[str, Any], shot: int, subjects: list[Subject], ordered: list[tuple[str, Track]], turns: list[Turn]
) -> dict[str, Any]:
    scene: dict[str, Any] = (
        a["scenes"][shot] if a.get("scenes") else {"brightness": 0.5, "background_rgb": [0.5, 0.5, 0.5]}
    )
    biggest = max(t.size for _, t in ordered)
    subj = [
        describe_subject(
            s.slot,
            s.person_id,
            (s.box[0] + s.box[2]) / 2,
            a["width"],
            t.appearance or {"skin": [0.5, 0.5, 0.5], "hair": [0.2, 0.2, 0.2]},
        )
        for s, (_, t) in zip(subjects, ordered, strict=True)
    ]
    return {
        "scene": describe_scene(
            biggest, a["height"], float(scene["brightness"]), list(scene["background_rgb"]), len(subjects)
        ),
        "subjects": subj,
        "speech": [{"slot": t.slot, "start": t.start, "end": t.end, "text": t.text} for t in turns],
    }
