"""Score a curation run against a synthetic world's ground truth (``ground_truth/clips/*.json``).

Figures (targets in brackets):

- face detection recall / precision at IoU >= 0.5, every frame of every GT clip (>= 0.95 recall);
  a clip the pipeline dropped counts all its faces as missed;
- identity clustering purity and NMI of dataset-wide person ids over face tracks (NMI >= 0.9);
- diarization error rate: (missed + false alarm + confusion) / reference speech, 10 ms frames, no
  collar, one-to-one speaker mapping per clip; overlapped speech counts both speakers (<= 15%);
- active-speaker binding accuracy: share of GT segments whose best-overlapping hypothesis segment
  is bound to a face track of the right person (>= 0.9);
- ASR word error rate per clip, words of all turns in time order;
- reference leakage: references taken from inside their own sample's target span (must be 0);
- throughput: seconds of video per wall-clock second in the map phase (>= 1 on 2 cores).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from scipy.optimize import linear_sum_assignment

from facevox.config import from_dict
from facevox.curate.config import CurateConfig
from facevox.curate.pipeline import read_manifest
from facevox.curate.samples import assign_people
from facevox.curate.shards import plan_shards, read_shard
from facevox.recognisers.faces import box_iou

if TYPE_CHECKING:
    from collections.abc import Callable

    from facevox.curate.records import SpeechSegment

FRAME = 0.01  # seconds per diarization scoring frame


def load_ground_truth(gt_dir: str | Path) -> dict[str, dict[str, Any]]:
    root = Path(gt_dir)
    clips = root / "ground_truth" / "clips" if (root / "ground_truth").is_dir() else root / "clips"
    if not clips.is_dir():
        raise ValueError(f"{gt_dir}: no ground_truth/clips folder")
    return {p.stem: json.loads(p.read_text()) for p in sorted(clips.glob("*.json"))}


def match_frame(hyp: np.ndarray, ref: np.ndarray, thr: float = 0.5) -> list[tuple[int, int]]:
    """One-to-one matches (hyp index, ref index) with IoU >= ``thr``, maximising total IoU."""
    if len(hyp) == 0 or len(ref) == 0:
        return []
    iou = box_iou(hyp, ref)
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= thr]


def nmi(true: list[str], pred: list[str]) -> float:
    """Normalised mutual information (arithmetic-mean normalisation, as scikit-learn's default)."""
    n = len(true)
    if n == 0:
        return float("nan")
    ct = Counter(zip(true, pred, strict=True))
    pt, pp = Counter(true), Counter(pred)
    mi = sum(c / n * math.log(c * n / (pt[a] * pp[b])) for (a, b), c in ct.items())
    h = [-sum(c / n * math.log(c / n) for c in cnt.values()) for cnt in (pt, pp)]
    if h[0] == 0 and h[1] == 0:
        return 1.0
    denom = (h[0] + h[1]) / 2
    return float(mi / denom) if denom > 0 else 0.0


def purity(true: list[str], pred: list[str]) -> float:
    if not true:
        return float("nan")
    by: dict[str, Counter] = {}
    for t, p in zip(true, pred, strict=True):
        by.setdefault(p, Counter())[t] += 1
    return sum(c.most_common(1)[0][1] for c in by.values()) / len(true)


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def edit_distance(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def der_counts(
    ref: list[tuple[float, float, str]], hyp: list[tuple[float, float, str]], duration: float
) -> tuple[float, float, float, float]:
    """(missed, false alarm, confusion, reference) speech seconds for one clip."""
    n = int(math.ceil(duration / FRAME)) + 1
    rl, hl = sorted({r[2] for r in ref}), sorted({h[2] for h in hyp})
    R = np.zeros((n, len(rl)), bool)
    H = np.zeros((n, len(hl)), bool)
    for a, b, s in ref:
        R[int(a / FRAME) : int(b / FRAME), rl.index(s)] = True
    for a, b, s in hyp:
        H[int(a / FRAME) : int(b / FRAME), hl.index(s)] = True
    if rl and hl:
        overlap = R.T.astype(np.float64) @ H.astype(np.float64)  # (ref spk, hyp spk) co-active frames
        rows, cols = linear_sum_assignment(-overlap)
        mapped = {int(c): int(r) for r, c in zip(rows, cols, strict=True)}
    else:
        mapped = {}
    nr, nh = R.sum(1), H.sum(1)
    correct = np.zeros(n)
    for c, r in mapped.items():
        correct += R[:, r] & H[:, c]
    miss = np.clip(nr - nh, 0, None).sum()
    fa = np.clip(nh - nr, 0, None).sum()
    conf = (np.minimum(nr, nh) - correct).sum()
    return miss * FRAME, fa * FRAME, conf * FRAME, nr.sum() * FRAME


def score(out_dir: str | Path, gt_dir: str | Path) -> dict[str, Any]:
    out = Path(out_dir)
    cfg = from_dict(CurateConfig, _yaml(out / "config.yaml"))
    shards = plan_shards(cfg)
    planned = {c for s in shards for c in s.clip_ids}
    # only the clips this run was given (a run over part of a world is scored on that part);
    # a given clip the pipeline dropped still counts, with all its faces and speech missed
    gt = {c: g for c, g in load_ground_truth(gt_dir).items() if c in planned}
    if not gt:
        raise ValueError(f"no ground-truth clip of {gt_dir} matches the inputs of {out_dir}")
    analyses = []
    for shard in shards:
        analyses += read_shard(out, shard)[0]
    ds = assign_people(analyses, cfg)
    by_clip = {a["clip_id"]: a for a in analyses}
    tp = fn = fp = 0
    track_true: dict[tuple[str, int], str] = {}
    miss_t = fa_t = conf_t = ref_t = 0.0
    bind_ok = bind_n = 0
    wer_err = wer_n = 0
    for cid, g in gt.items():
        tracks = ds.tracks.get(cid, [])
        votes: dict[int, Counter] = {t.track_id: Counter() for t in tracks}
        for f in range(g["num_frames"]):
            ref = np.asarray(
                [p["boxes"][f] for p in g["people"] if p["boxes"][f] is not None], np.float64
            ).reshape(-1, 4)
            ref_ids = [p["person_id"] for p in g["people"] if p["boxes"][f] is not None]
            live = [(t, t.boxes[f - t.frames[0]]) for t in tracks if t.frames[0] <= f <= t.frames[-1]]
            hyp = np.asarray([b for _, b in live], np.float64).reshape(-1, 4)
            m = match_frame(hyp, ref)
            tp += len(m)
            fn += len(ref) - len(m)
            fp += len(hyp) - len(m)
            for h, r in m:
                votes[live[h][0].track_id][ref_ids[r]] += 1
        for tid, v in votes.items():
            if v:
                track_true[(cid, tid)] = v.most_common(1)[0][0]
        if cid not in by_clip:
            ref_spk = [(s["start"], s["end"], s["person_id"]) for s in g["segments"]]
            miss_t += sum(b - a for a, b, _ in ref_spk)
            ref_t += sum(b - a for a, b, _ in ref_spk)
            bind_n += len(g["segments"])
            wer_n += sum(len(_words(s["text"])) for s in g["segments"])
            wer_err += sum(len(_words(s["text"])) for s in g["segments"])
            continue
        segs = ds.segments[cid]
        hyp_spk = [
            (s.start, s.end, ds.segment_person.get((cid, s.seg_id), f"voice{s.voice_id}")) for s in segs
        ]
        ref_spk = [(s["start"], s["end"], s["person_id"]) for s in g["segments"]]
        mi, fa, co, rt = der_counts(ref_spk, hyp_spk, by_clip[cid]["duration"] + 1.0)
        miss_t, fa_t, conf_t, ref_t = miss_t + mi, fa_t + fa, conf_t + co, ref_t + rt
        for s in g["segments"]:
            bind_n += 1
            best = max(
                segs,
                key=cast(
                    "Callable[[SpeechSegment], float]",
                    lambda h, s=s: min(h.end, s["end"]) - max(h.start, s["start"]),
                ),
                default=None,
            )
            if (
                best is not None
                and min(best.end, s["end"]) > max(best.start, s["start"])
                and best.track_id is not None
            ):
                bind_ok += track_true.get((cid, best.track_id)) == s["person_id"]
        ref_words = [w for s in sorted(g["segments"], key=lambda s: s["start"]) for w in _words(s["text"])]
        hyp_words = [w for s in sorted(segs, key=lambda s: s.start) for w in _words(s.text)]
        wer_err += edit_distance(ref_words, hyp_words)
        wer_n += len(ref_words)
    keys = [k for k in track_true if k in ds.person_of]
    true = [track_true[k] for k in keys]
    pred = [ds.person_of[k] for k in keys]
    leaks, n_refs = leakage(read_manifest(out))
    stats = json.loads((out / "stats.json").read_text())
    return {
        "clips_scored": len(gt),
        "clips_curated": sum(1 for c in gt if c in by_clip),
        "face_detection": {
            "recall": _r(tp / max(tp + fn, 1)),
            "precision": _r(tp / max(tp + fp, 1)),
            "tp": tp,
            "fn": fn,
            "fp": fp,
        },
        "identity": {
            "tracks": len(keys),
            "unmatched_tracks": sum(len(v) for v in ds.tracks.values()) - len(keys),
            "true_people": len(set(true)),
            "predicted_people": len(set(pred)),
            "purity": _r(purity(true, pred)),
            "nmi": _r(nmi(true, pred)),
        },
        "diarization": {
            "der": _r((miss_t + fa_t + conf_t) / max(ref_t, 1e-9)),
            "missed": _r(miss_t / max(ref_t, 1e-9)),
            "false_alarm": _r(fa_t / max(ref_t, 1e-9)),
            "confusion": _r(conf_t / max(ref_t, 1e-9)),
            "reference_seconds": _r(ref_t),
        },
        "binding_accuracy": _r(bind_ok / max(bind_n, 1)),
        "binding_segments": bind_n,
        "asr_wer": _r(wer_err / max(wer_n, 1)),
        "reference_leakage": leaks,
        "references_checked": n_refs,
        "samples": stats.get("samples"),
        "throughput_realtime": stats.get("this_run", {}).get("realtime_factor"),
    }


def leakage(manifest: list[dict[str, Any]]) -> tuple[int, int]:
    """(references drawn from inside their own sample's target span, references checked)."""
    leaks = n = 0
    for s in manifest:
        for sub in s["subjects"]:
            for f in sub["face_refs"]:
                n += 1
                leaks += f["clip_id"] == s["clip_id"] and s["start_frame"] <= f["frame"] < s["end_frame"]
            for v in sub["voice_refs"]:
                n += 1
                leaks += v["clip_id"] == s["clip_id"] and v["start"] < s["end"] and s["start"] < v["end"]
    return int(leaks), n


def _r(x: float) -> float:
    return round(float(x), 4)


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text())
