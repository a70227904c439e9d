"""Face detection (OpenCV Haar) and face identity embeddings (dlib ResNet, 128-d).

Boxes are ``(x0, y0, x1, y1)`` in pixels; images are ``(H, W, 3)`` uint8 RGB.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import cv2
import numpy as np

# Detector settings used everywhere a face is looked for (curation, pipeline, bars). Of OpenCV's
# frontal-face cascades, alt2 holds up best under yaw on our faces (benchmarks/face_detectors.py).
HAAR_CASCADE = "haarcascade_frontalface_alt2.xml"
HAAR_SCALE_FACTOR = 1.05
HAAR_MIN_NEIGHBORS = 3
SAME_PERSON_DISTANCE = 0.6  # dlib's convention: embeddings closer than this are one person


@functools.cache
def _haar() -> cv2.CascadeClassifier:
    if not hasattr(cv2, "data"):
        raise RuntimeError(
            "this OpenCV has no Haar cascades (OpenCV 5 dropped them): pip install 'opencv-python-headless<5'"
        )
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + HAAR_CASCADE)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's {HAAR_CASCADE} could not be loaded")
    return cascade


def detect_faces(image: np.ndarray, min_size: int = 32) -> np.ndarray:
    """Haar frontal-face detections, ``(N, 4)`` float boxes ``x0, y0, x1, y1``."""
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got {image.shape}")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    found = _haar().detectMultiScale(
        gray, HAAR_SCALE_FACTOR, HAAR_MIN_NEIGHBORS, minSize=(min_size, min_size)
    )
    if len(found) == 0:
        return np.zeros((0, 4), np.float32)
    xywh = np.asarray(found, np.float32)
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between (N, 4) and (M, 4) boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.clip(area_a[:, None] + area_b[None] - inter, 1e-9, None)


@functools.cache
def _face_recognition():  # noqa: ANN202 - module object
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
            import face_recognition
    except ImportError as err:
        raise RuntimeError(
            "dlib face recognition is not installed: pip install dlib-bin face_recognition_models "
            "'setuptools<81' && pip install --no-deps face_recognition"
        ) from err
    return face_recognition


def face_embeddings(image: np.ndarray, boxes: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """dlib ResNet embeddings ``(N, 128)`` of the faces in ``boxes`` (5-point alignment inside dlib)."""
    if len(boxes) == 0:
        return np.zeros((0, 128), np.float32)
    locs = [(int(y0), int(x1), int(y1), int(x0)) for x0, y0, x1, y1 in np.asarray(boxes)]
    enc = _face_recognition().face_encodings(np.ascontiguousarray(image), known_face_locations=locs)
    return np.asarray(enc, np.float32)
