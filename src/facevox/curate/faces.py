"""Face detection, IoU tracking per shot, track quality, identity embeddings and reference crops.

Detector: OpenCV Haar (``facevox.recognisers.faces.detect_faces``, alt2 cascade); identity:
dlib's ResNet (128-d) through ``face_recognition``; pose proxy from dlib's 5-point landmarks.
Shapes: frames (H, W, 3) uint8 RGB; boxes ``[x0, y0, x1, y1]``.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from facevox.curate.clustering import cluster_embeddings
from facevox.curate.config import FaceConfig
from facevox.curate.records import ClipWork, FaceCrop, Track
from facevox.curate.step import Drop, Resources
from facevox.io.atomic import atomic_write_bytes
from facevox.recognisers.faces import box_iou, detect_faces, face_embeddings

log = logging.getLogger(__name__)


def track_shot(detections: dict[int, np.ndarray], start: int, end: int, cfg: FaceConfig) -> list[dict]:
    """Greedy IoU tracking of per-frame detections over frames ``[start, end)``.

    Returns raw tracks ``{"frames", "boxes", "detected"}`` with gaps of at most ``cfg.max_gap``
    frames filled by linear interpolation of the boxes on both sides.
    """
    active: list[dict] = []
    done: list[dict] = []
    for f in range(start, end):
        dets = detections.get(f)
        if dets is None:  # frame not run through the detector (detect_every > 1)
            continue
        for tr in list(active):
            if f - tr["last"] > cfg.max_gap:
                active.remove(tr)
                done.append(tr)
        if len(dets) and active:
            iou = box_iou(np.asarray([tr["boxes"][-1] for tr in active]), dets)  # (A, D)
            used_t, used_d = set(), set()
            for flat in np.argsort(-iou, axis=None):
                a, d = np.unravel_index(flat, iou.shape)
                if iou[a, d] < cfg.track_iou:
                    break
                if a in used_t or d in used_d:
                    continue
                used_t.add(a)
                used_d.add(d)
                _extend(active[a], f, dets[d])
            new = [d for d in range(len(dets)) if d not in used_d]
        else:
            new = list(range(len(dets)))
        for d in new:
            active.append({"frames": [f], "boxes": [dets[d].tolist()], "detected": [True], "last": f})
    done += active
    pad = max(cfg.detect_every - 1, 0)  # frames between detector runs at either end of a track
    for tr in done:
        head = list(range(max(start, tr["frames"][0] - pad), tr["frames"][0]))
        tail = list(range(tr["frames"][-1] + 1, min(end, tr["frames"][-1] + 1 + pad)))
        tr["frames"] = head + tr["frames"] + tail
        tr["boxes"] = [tr["boxes"][0]] * len(head) + tr["boxes"] + [tr["boxes"][-1]] * len(tail)
        tr["detected"] = [False] * len(head) + tr["detected"] + [False] * len(tail)
    return sorted(done, key=lambda t: (t["frames"][0], t["boxes"][0][0]))


def _extend(track: dict, f: int, box: np.ndarray) -> None:
    last, prev = track["last"], np.asarray(track["boxes"][-1])
    for g in range(last + 1, f):  # interpolate the frames the detector missed
        a = (g - last) / (f - last)
        track["frames"].append(g)
        track["boxes"].append(((1 - a) * prev + a * box).tolist())
        track["detected"].append(False)
    track["frames"].append(f)
    track["boxes"].append(box.tolist())
    track["detected"].append(True)
    track["last"] = f


def crop(frame: np.ndarray, box: list[float], margin: float) -> np.ndarray:
    """The box grown by ``margin`` of its size on each side, clipped to the frame: (h, w, 3)."""
    x0, y0, x1, y1 = box
    mw, mh = (x1 - x0) * margin, (y1 - y0) * margin
    H, W = frame.shape[:2]
    xa, ya = max(0, int(x0 - mw)), max(0, int(y0 - mh))
    xb, yb = min(W, int(np.ceil(x1 + mw))), min(H, int(np.ceil(y1 + mh)))
    return frame[ya:yb, xa:xb]


def laplacian_var(img: np.ndarray) -> float:
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    return float(cv2.Laplacian(gray, cv2.CV_64F).var()) if gray.size else 0.0


def mouth_motion(video: np.ndarray, frames: list[int], boxes: list[list[float]]) -> list[float]:
    """Mean absolute change of the mouth region (lower middle of the face box) from frame to frame.

    The region is resampled to 24x12 grey pixels so that the signal does not depend on face size.
    """
    patches = []
    for f, (x0, y0, x1, y1) in zip(frames, boxes, strict=True):
        w, h = x1 - x0, y1 - y0
        region = video[f, int(y0 + 0.62 * h) : int(y0 + 0.95 * h), int(x0 + 0.22 * w) : int(x0 + 0.78 * w)]
        if region.size == 0:
            patches.append(np.zeros((12, 24), np.float32))
            continue
        gray = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2GRAY)
        patches.append(cv2.resize(gray, (24, 12), interpolation=cv2.INTER_AREA).astype(np.float32))
    stack = np.stack(patches)  # (F, 12, 24)
    diff = np.abs(np.diff(stack, axis=0)).mean(axis=(1, 2))  # (F-1,)
    return [float(diff[0]) if len(diff) else 0.0, *map(float, diff)]


def appearance(frame: np.ndarray, box: list[float]) -> dict[str, list[float]]:
    """Mean RGB in [0, 1] of the cheeks (skin) and of the band above the forehead (hair)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    H, W = frame.shape[:2]

    def mean_rgb(xa: float, ya: float, xb: float, yb: float) -> list[float]:
        region = frame[max(0, int(ya)) : min(H, int(yb)), max(0, int(xa)) : min(W, int(xb))]
        return (
            [round(float(c) / 255.0, 3) for c in region.reshape(-1, 3).mean(0)]
            if region.size
            else [0.0, 0.0, 0.0]
        )

    return {
        "skin": mean_rgb(x0 + 0.2 * w, y0 + 0.45 * h, x0 + 0.8 * w, y0 + 0.6 * h),
        "hair": mean_rgb(x0 + 0.25 * w, y0 - 0.12 * h, x0 + 0.75 * w, y0 + 0.02 * h),
    }


def yaw_proxy(landmarks: dict[str, list[tuple[int, int]]]) -> float:
    """Nose-tip offset from the eye midpoint over the eye distance: 0 frontal, +-0.3 strongly turned."""
    eyes = np.asarray(landmarks["left_eye"] + landmarks["right_eye"], np.float64)
    nose = np.asarray(landmarks["nose_tip"][0], np.float64)
    left, right = eyes[: len(landmarks["left_eye"])].mean(0), eyes[len(landmarks["left_eye"]) :].mean(0)
    dist = np.linalg.norm(right - left)
    return float((nose[0] - (left[0] + right[0]) / 2) / dist) if dist > 0 else 0.0


def co_occurring(tracks: list[Track]) -> np.ndarray:
    """(N, N) bool: tracks that share a frame are two different people."""
    spans = [(t.frames[0], t.frames[-1]) for t in tracks]
    return np.asarray([[a[0] <= b[1] and b[0] <= a[1] for b in spans] for a in spans]) & ~np.eye(
        len(spans), dtype=bool
    )


class FaceTracks:
    """Detect faces on every ``detect_every``-th frame, track per shot, score and embed tracks."""

    name = "faces"
    resources = Resources(cpus=1.0, memory_mb=512)

    def setup(self) -> None:
        import dlib

        from facevox.recognisers.faces import _face_recognition

        self._fr = _face_recognition()  # dlib models load once per worker
        self._hog = dlib.get_frontal_face_detector()

    def process(self, work: ClipWork) -> ClipWork | Drop:
        cfg = work.cfg.faces
        video = work.video
        assert video is not None
        detections = {
            f: detect_faces(video[f], min_size=cfg.min_face)
            for f in range(0, work.num_frames, cfg.detect_every)
        }
        tracks: list[Track] = []
        for s, (a, b) in enumerate(work.shots):
            for raw in track_shot(detections, a, b, cfg):
                tid = len(tracks) + sum(1 for d in work.excluded if d.item.startswith("track:"))
                reason = self._quality_reason(raw, cfg)
                if reason:
                    work.excluded.append(
                        Drop(stage=self.name, reason=reason[0], detail=reason[1], item=f"track:{tid}")
                    )
                    continue
                tr = Track(
                    track_id=tid, shot=s, frames=raw["frames"], boxes=raw["boxes"], detected=raw["detected"]
                )
                if cfg.verify_with_hog and not self._confirmed(video, tr):
                    work.excluded.append(
                        Drop(
                            stage=self.name,
                            reason="not_a_face",
                            detail="dlib HOG finds no face in the track's crops",
                            item=f"track:{tid}",
                        )
                    )
                    continue
                heights = [b[3] - b[1] for b in tr.boxes]
                tr.size = float(np.median(heights))
                tr.blur = float(
                    np.median([laplacian_var(crop(video[f], bx, 0.0)) for f, bx in self._sample(tr, 8)])
                )
                if tr.blur < cfg.min_blur_var:
                    work.excluded.append(
                        Drop(
                            stage=self.name,
                            reason="blurry_track",
                            detail=f"Laplacian variance {tr.blur:.1f}",
                            item=f"track:{tid}",
                        )
                    )
                    continue
                self._embed(work, tr, cfg)
                tr.mouth_motion = mouth_motion(video, tr.frames, tr.boxes)
                tracks.append(tr)
        if tracks:
            emb = np.asarray([t.embedding for t in tracks], np.float64)
            labels = cluster_embeddings(
                emb, work.cfg.references.same_person_distance, "euclidean", co_occurring(tracks)
            )
            for t, lab in zip(tracks, labels, strict=True):
                t.local_person = int(lab)
        work.tracks = tracks
        return work

    def _confirmed(self, video: np.ndarray, tr: Track) -> bool:
        """A second, independent detector (dlib HOG) must find a face in one of 3 crops of the track:
        Haar cascades fire on face-like texture (a shoulder patch, a logo) now and then."""
        for f, box in self._sample(tr, 3):
            if len(self._hog(np.ascontiguousarray(crop(video[f], box, 0.3)), 1)):
                return True
        return False

    @staticmethod
    def _quality_reason(raw: dict, cfg: FaceConfig) -> tuple[str, str] | None:
        n = len(raw["frames"])
        if n < cfg.min_track_frames:
            return "short_track", f"{n} frames < {cfg.min_track_frames}"
        runs = sum(1 for f in raw["frames"] if f % cfg.detect_every == 0)  # frames the detector saw
        frac = sum(raw["detected"]) / max(runs, 1)
        if frac < cfg.min_detected_fraction:
            return "unstable_track", f"detected on {frac:.0%} of its frames"
        return None

    @staticmethod
    def _sample(tr: Track, k: int) -> list[tuple[int, list[float]]]:
        """``k`` detected frames spread evenly over the track."""
        idx = [i for i, d in enumerate(tr.detected) if d]
        pick = np.unique(np.linspace(0, len(idx) - 1, num=min(k, len(idx))).round().astype(int))
        return [(tr.frames[idx[i]], tr.boxes[idx[i]]) for i in pick]

    def _embed(self, work: ClipWork, tr: Track, cfg: FaceConfig) -> None:
        video = work.video
        assert video is not None
        picks = self._sample(tr, max(cfg.embed_frames, cfg.crops_per_track))
        embs, yaws = [], []
        for f, box in picks:
            frame = np.ascontiguousarray(video[f])
            emb = face_embeddings(frame, [box])[0]
            loc = [(int(box[1]), int(box[2]), int(box[3]), int(box[0]))]
            marks = self._fr.face_landmarks(frame, loc, model="small")
            yaw = yaw_proxy(marks[0]) if marks else 0.0
            embs.append(emb)
            yaws.append(yaw)
            if len(tr.crops) < cfg.crops_per_track:
                rel = f"crops/{work.clip_id}/t{tr.track_id:03d}_f{f:05d}.png"
                img = crop(frame, box, cfg.crop_margin)
                ok, png = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
                if ok:
                    atomic_write_bytes(work.out_path(rel), png.tobytes())
                    tr.crops.append(FaceCrop(path=rel, frame=f, yaw=yaw, embedding=emb.tolist()))
        f, box = picks[len(picks) // 2]
        tr.appearance = appearance(video[f], box)
        mean = np.mean(embs, axis=0)
        tr.embedding = mean.tolist()
        tr.yaw_spread = float(np.ptp(yaws)) if yaws else 0.0
