"""Do real recognisers treat the synthetic people as people? The world's acceptance bars.

- Face detection: OpenCV's Haar cascade finds >= 95% of ground-truth faces (|yaw| <= 30 deg)
  in the world's frames.
- Face identity: dlib's ResNet separates identities across views (different clips, or fresh
  stills with new pose, light, background and camera): verification EER <= 10% over >= 50
  identities.
- Voice identity: resemblyzer separates voices on different sentences (EER <= 10%, >= 50 voices),
  measured by :mod:`facevox.synth.voice_bar`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from facevox.evaluation.verification import equal_error_rate, pair_scores
from facevox.io.atomic import atomic_write_json
from facevox.io.media import read_av
from facevox.recognisers.faces import SAME_PERSON_DISTANCE, box_iou, detect_faces, face_embeddings
from facevox.synth.config import SynthConfig
from facevox.synth.face import sample_face
from facevox.synth.scene import Person, plan_still, render_clip
from facevox.synth.voice import sample_voice

log = logging.getLogger(__name__)

FACE_RECALL_BAR = 0.95
EER_BAR = 0.10


def face_detection_recall(
    world_dir: str | Path, frame_stride: int = 10, max_yaw: float = 30.0, iou: float = 0.3
) -> dict[str, Any]:
    """Recall/precision of the Haar detector against ground-truth boxes on sampled frames.

    A ground-truth face counts as found when a detection overlaps it with IoU >= ``iou``
    (the cascade's square boxes and our brow-to-chin boxes differ in convention, so the
    default is looser than 0.5; recall at 0.5 is reported too).
    """
    world = Path(world_dir)
    gt_files = sorted((world / "ground_truth" / "clips").glob("*.json"))
    if not gt_files:
        raise ValueError(f"{world} has no ground truth clips")
    found = found_50 = total = dets = true_dets = 0
    for gt_path in tqdm(gt_files, desc="face detection bar", unit="clip"):
        gt = json.loads(gt_path.read_text())
        clip = read_av(world / "videos" / f"{gt['clip_id']}.mp4")
        for t in range(0, len(clip.video), frame_stride):
            boxes = np.array([p["boxes"][t] for p in gt["people"] if abs(p["yaws"][t]) <= max_yaw])
            det = detect_faces(clip.video[t])
            dets += len(det)
            if len(boxes) == 0:
                continue
            total += len(boxes)
            if len(det):
                m = box_iou(boxes, det)
                found += int((m.max(1) >= iou).sum())
                found_50 += int((m.max(1) >= 0.5).sum())
                true_dets += int((m.max(0) >= iou).sum())
    return {
        "faces": total,
        "recall": found / max(total, 1),
        "recall_iou50": found_50 / max(total, 1),
        "precision": true_dets / max(dets, 1),
        "iou_threshold": iou,
        "frame_stride": frame_stride,
    }


def world_face_eer(world_dir: str | Path, frames_per_clip: int = 2) -> dict[str, Any]:
    """dlib verification EER over the world's people, views = frames of different clips."""
    world = Path(world_dir)
    embs, labels, clips_of = [], [], []
    for gt_path in tqdm(
        sorted((world / "ground_truth" / "clips").glob("*.json")), desc="face id (world)", unit="clip"
    ):
        gt = json.loads(gt_path.read_text())
        clip = read_av(world / "videos" / f"{gt['clip_id']}.mp4")
        ts = np.linspace(0, len(clip.video) - 1, frames_per_clip + 2)[1:-1].round().astype(int)
        for t in ts:
            people = gt["people"]
            e = face_embeddings(clip.video[t], [p["boxes"][t] for p in people])
            for p, v in zip(people, e, strict=True):
                embs.append(v)
                labels.append(p["person_id"])
                clips_of.append(gt["clip_id"])
    embs_a, labels_a, clips_a = np.array(embs), np.array(labels), np.array(clips_of)
    same, diff = pair_scores(embs_a, labels_a, "neg_l2")
    # keep only same-person pairs from different clips: views, not neighbouring frames
    iu = np.triu_indices(len(labels_a), 1)
    same_mask = labels_a[iu[0]] == labels_a[iu[1]]
    cross_clip = (clips_a[iu[0]] != clips_a[iu[1]])[same_mask]
    same = same[cross_clip]
    eer, thr = equal_error_rate(same, diff)
    return {
        "identities": len(set(labels)),
        "embeddings": len(labels),
        "eer": eer,
        "threshold_distance": -thr,
        "mean_same_distance": float(-same.mean()),
        "mean_different_distance": float(-diff.mean()),
        "accuracy_at_0.6": float(
            ((-same < SAME_PERSON_DISTANCE).sum() + (-diff >= SAME_PERSON_DISTANCE).sum())
            / (same.size + diff.size)
        ),
    }


def fresh_face_eer(
    num_identities: int = 60, views: int = 4, seed: int = 10_000, cfg: SynthConfig | None = None
) -> dict[str, Any]:
    """dlib EER and Haar recall on identities drawn apart from any world (held out by construction).

    Each view is a fresh still: new yaw in [-30, 30], pitch, roll, light, background, scale,
    blur, noise and H.264-level quality; the face box comes from the renderer's ground truth.
    """
    cfg = cfg or SynthConfig()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 99]))
    embs, labels = [], []
    found = 0
    for i in tqdm(range(num_identities), desc="face id (fresh)", unit="person"):
        person = Person(f"q{i:04d}", "heldout", sample_face(rng), sample_voice(rng))
        for v in range(views):
            plan = plan_still(person, cfg, rng, clip_id=f"q{i:04d}v{v}")
            frames, _, gt = render_clip(plan, cfg, rng)
            box = np.array([gt[0]["boxes"][0]])
            det = detect_faces(frames[0])
            found += int(len(det) > 0 and box_iou(box, det).max() >= 0.3)
            embs.append(face_embeddings(frames[0], box)[0])
            labels.append(i)
    same, diff = pair_scores(np.array(embs), np.array(labels), "neg_l2")
    eer, thr = equal_error_rate(same, diff)
    return {
        "identities": num_identities,
        "views": views,
        "eer": eer,
        "threshold_distance": -thr,
        "mean_same_distance": float(-same.mean()),
        "mean_different_distance": float(-diff.mean()),
        "haar_recall": found / (num_identities * views),
    }


def measure_bars(world_dir: str | Path, voices: int = 50) -> dict[str, Any]:
    """Measure every bar on ``world_dir`` (and fresh identities) and write ``bars.json`` there."""
    from facevox.synth.voice_bar import voice_verification_eer

    cfg_path = Path(world_dir) / "config.yaml"
    from facevox.config import load

    cfg = load(SynthConfig, cfg_path)
    result = {
        "face_detection": face_detection_recall(world_dir),
        "face_identity_world": world_face_eer(world_dir),
        "face_identity_fresh": fresh_face_eer(cfg=cfg),
        "voice_identity_fresh": voice_verification_eer(num_voices=voices),
    }
    result["bars_met"] = {
        "face_detection_recall>=0.95": result["face_detection"]["recall"] >= FACE_RECALL_BAR,
        "face_eer_fresh<=0.10": result["face_identity_fresh"]["eer"] <= EER_BAR,
        "voice_eer<=0.10": result["voice_identity_fresh"]["eer"] <= EER_BAR,
    }
    atomic_write_json(Path(world_dir) / "bars.json", result)
    log.info("bars: %s", json.dumps(result, indent=1))
    return result
