"""Which OpenCV Haar frontal-face cascade and settings find our synthetic faces best?

Renders fresh stills (yaw uniform in [-30, 30] deg, new light/background/camera per view) and
prints recall (IoU >= 0.3 with the renderer's face box) for each cascade x preprocessing x
(scaleFactor, minNeighbors). The chosen setting lives in facevox.recognisers.faces.

    .venv/bin/python benchmarks/face_detectors.py [--identities 50] [--views 4]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from facevox.recognisers.faces import box_iou
from facevox.synth.config import SynthConfig
from facevox.synth.face import sample_face
from facevox.synth.scene import Person, plan_still, render_clip
from facevox.synth.voice import sample_voice


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=50)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()
    cfg = SynthConfig()
    rng = np.random.default_rng(np.random.SeedSequence([args.seed, 99]))
    data = []
    for _ in range(args.identities):
        person = Person("q", "heldout", sample_face(rng), sample_voice(rng))
        for _ in range(args.views):
            plan = plan_still(person, cfg, rng)
            frames, _, gt = render_clip(plan, cfg, rng)
            data.append((frames[0], np.array([gt[0]["boxes"][0]])))
    clahe = cv2.createCLAHE(2.0, (8, 8))
    preps = {"none": lambda g: g, "equalize": cv2.equalizeHist, "clahe": clahe.apply}
    print(f"{len(data)} views of {args.identities} identities")
    print(f"{'cascade':<34} {'prep':<9} {'sf':>5} {'mn':>3} {'recall':>7}")
    for name in (
        "haarcascade_frontalface_default.xml",
        "haarcascade_frontalface_alt.xml",
        "haarcascade_frontalface_alt2.xml",
    ):
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
        for pname, prep in preps.items():
            for sf, mn in ((1.05, 3), (1.1, 3)):
                hits = 0
                for img, box in data:
                    d = cascade.detectMultiScale(
                        prep(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)), sf, mn, minSize=(32, 32)
                    )
                    if len(d):
                        d = np.concatenate([d[:, :2], d[:, :2] + d[:, 2:]], 1)
                        hits += int(box_iou(box, d).max() >= 0.3)
                print(f"{name:<34} {pname:<9} {sf:>5} {mn:>3} {hits / len(data):>7.3f}")


if __name__ == "__main__":
    main()
