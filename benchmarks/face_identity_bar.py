"""What reconstruction quality keeps face identity in encode's view: known degradations, measured.

The video codec's face-identity target is the dlib similarity between a held-out frame and
its reconstruction, over the same person's similarity across clips ("self-similarity"), >= 0.9. This
script applies fixed, codec-free degradations to the same frames ``codec_bench.py --video`` uses (the
same clips, view, face boxes and embedding) and prints, for each, PSNR and the face-identity ratio, so
a codec's PSNR can be read against the quality the target asks for.

    python benchmarks/face_identity_bar.py --world runs/pre-world --clips 8
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from codec_bench import encode_view, face_embedding_view, heldout_clips, pair_bars, psnr, to_uint8
from facevox.io.media import read_av


def _jpeg(q: int):  # noqa: ANN202
    return lambda a: cv2.imdecode(cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR)


def _down_up(f: int):  # noqa: ANN202
    def run(a: np.ndarray) -> np.ndarray:
        h, w = a.shape[:2]
        small = cv2.resize(a, (w // f, h // f), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    return run


DEGRADATIONS = {
    "gaussian blur sigma 0.7 px": lambda a: cv2.GaussianBlur(a, (0, 0), 0.7),
    "gaussian blur sigma 1.0 px": lambda a: cv2.GaussianBlur(a, (0, 0), 1.0),
    "gaussian blur sigma 1.5 px": lambda a: cv2.GaussianBlur(a, (0, 0), 1.5),
    "gaussian blur sigma 2.0 px": lambda a: cv2.GaussianBlur(a, (0, 0), 2.0),
    "down 2x, up": _down_up(2),
    "down 4x, up": _down_up(4),
    "jpeg quality 30": _jpeg(30),
    "jpeg quality 10": _jpeg(10),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", type=Path, required=True)
    p.add_argument("--clips", type=int, default=8, help="held-out single-person clips (codec_bench's)")
    p.add_argument("--frames", type=int, nargs="+", default=[0, 12, 24], help="frame indices per clip")
    args = p.parse_args()
    clips = heldout_clips(args.world, args.clips)
    if not clips:
        raise SystemExit(f"no held-out single-person clips in {args.world}")
    sims: dict[str, list[float]] = {k: [] for k in DEGRADATIONS}
    psnrs: dict[str, list[float]] = {k: [] for k in DEGRADATIONS}
    originals: dict[str, list[np.ndarray]] = {}
    for info in clips:
        video = read_av(
            args.world / "videos" / f"{info['clip_id']}.mp4", max_frames=max(args.frames) + 1
        ).video
        x, sx, sy = encode_view(video, 128, 96)
        person = info["people"][0]
        for t in args.frames:
            a = to_uint8(x[:, t])
            ea = face_embedding_view(a, person["boxes"][t], sx, sy)
            if ea is None:
                continue
            if t == args.frames[0]:
                originals.setdefault(person["person_id"], []).append(ea)
            for name, degrade in DEGRADATIONS.items():
                b = np.ascontiguousarray(degrade(a))
                psnrs[name].append(psnr(a, b))
                eb = face_embedding_view(b, person["boxes"][t], sx, sy)
                if eb is not None:
                    sims[name].append(1 - float(np.linalg.norm(ea - eb)))
    same, diff = pair_bars(originals, lambda a, b: 1 - float(np.linalg.norm(a - b)))
    rows = {
        name: {
            "psnr_db": round(float(np.mean(psnrs[name])), 2),
            "face_sim_orig_vs_degraded": round(float(np.mean(sims[name])), 4),
            "over_self_similarity": round(float(np.mean(sims[name])) / same, 4),
            "pairs": len(sims[name]),
        }
        for name in DEGRADATIONS
    }
    print(
        json.dumps(
            {"face_sim_same_person_other_clip": same, "face_sim_different_people": diff, **rows}, indent=2
        )
    )


if __name__ == "__main__":
    main()
