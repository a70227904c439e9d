"""Shot boundaries with PySceneDetect's ContentDetector, run on the frames already decoded.

PySceneDetect's wheel declares ``opencv-python`` (OpenCV 5, which has no Haar cascades and would
overwrite our ``opencv-python-headless<5``): install it with ``pip install --no-deps scenedetect
click platformdirs``; it works with the headless OpenCV 4 build.
"""

from __future__ import annotations

import cv2
import numpy as np

from facevox.curate.records import ClipWork
from facevox.curate.step import Drop, Resources


class ShotBoundaries:
    """Split the video into shots ``[start, end)`` (frames); tracks never cross a cut."""

    name = "shots"
    resources = Resources(cpus=1.0, memory_mb=256)

    def setup(self) -> None:
        try:
            import scenedetect  # noqa: F401
        except ImportError as err:
            raise RuntimeError(
                "PySceneDetect is not installed: pip install --no-deps scenedetect click platformdirs"
            ) from err

    def process(self, work: ClipWork) -> ClipWork | Drop:
        from scenedetect import FrameTimecode
        from scenedetect.detectors import ContentDetector

        cfg = work.cfg.shots
        assert work.video is not None
        detector = ContentDetector(
            threshold=cfg.threshold, min_scene_len=max(1, round(cfg.min_shot_seconds * work.fps))
        )
        cuts: list[int] = []
        for i, frame in enumerate(work.video):
            bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)  # PySceneDetect expects OpenCV's BGR order
            cuts += [tc.frame_num for tc in detector.process_frame(FrameTimecode(i, work.fps), bgr)]
        bounds = [0, *sorted(c for c in set(cuts) if 0 < c < work.num_frames), work.num_frames]
        work.shots = [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
        work.scenes = [scene_stats(work.video[(a + b) // 2]) for a, b in work.shots]
        return work


def scene_stats(frame: np.ndarray) -> dict[str, float | list[float]]:
    """Brightness (mean luma in [0, 1]) and the mean RGB of the frame border (a background proxy)."""
    h, w = frame.shape[:2]
    bh, bw = max(1, h // 8), max(1, w // 8)
    border = np.concatenate(
        [
            frame[:bh].reshape(-1, 3),
            frame[-bh:].reshape(-1, 3),
            frame[:, :bw].reshape(-1, 3),
            frame[:, -bw:].reshape(-1, 3),
        ]
    )
    luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return {
        "brightness": round(float(luma.mean()) / 255.0, 3),
        "background_rgb": [round(float(c) / 255.0, 3) for c in border.mean(0)],
    }
