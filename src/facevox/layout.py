"""Where faces go in the frame.

A model whose face references are *placed* (``DualTowerConfig.ref_position_mode == "placed"``) is told
where each person's face is drawn: a box (x0, y0, x1, y1) in fractions of the frame. Training reads the
true boxes from the shards; generation takes them from the request, or plans them from the layouts the
training windows had (:func:`mean_face_layouts`, recorded in the model's config as ``face_layouts``:
entry ``n - 1`` holds the mean boxes of the n-person windows, left to right).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from safetensors import safe_open

Box = tuple[float, float, float, float]


def check_box(box: Sequence[float | str], what: str) -> Box:
    """A face box as four fractions of the frame with x0 < x1 and y0 < y1; ValueError naming ``what``."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: a face box is four numbers x0, y0, x1, y1, got {box!r}") from e
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        raise ValueError(
            f"{what}: face box {[x0, y0, x1, y1]} must lie in the frame as fractions (0 <= x0 < x1 <= 1, "
            "0 <= y0 < y1 <= 1)"
        )
    return (x0, y0, x1, y1)


def frame_fractions(box: Sequence[float], shape: tuple[int, ...]) -> list[float]:
    """A pixel box (x0, y0, x1, y1) of a (H, W, 3) frame -> the same box in fractions of the frame."""
    h, w = shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    return [round(min(max(v, 0.0), 1.0), 4) for v in (x0 / w, y0 / h, x1 / w, y1 / h)]


def mean_face_layouts(
    paths: Sequence[Path], max_people: int = 8, limit: int = 4000
) -> tuple[tuple[Box, ...], ...]:
    """The mean face boxes, left to right, of the windows in ``paths`` (shard files; metadata only, at
    most ``limit`` files), by number of people: entry ``n - 1`` for n-person windows, up to the largest
    n seen (an n never seen between gets ``()``)."""
    sums: dict[int, list[list[float]]] = {}
    counts: dict[int, int] = {}
    for path in list(paths)[:limit]:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("meta", "{}"))
        boxes = meta.get("face_boxes")
        if not boxes or len(boxes) > max_people:
            continue
        ordered = sorted(boxes, key=lambda b: b[0] + b[2])
        n = len(ordered)
        acc = sums.setdefault(n, [[0.0] * 4 for _ in range(n)])
        for a, b in zip(acc, ordered, strict=True):
            for i in range(4):
                a[i] += float(b[i])
        counts[n] = counts.get(n, 0) + 1
    if not counts:
        return ()
    out: list[tuple[Box, ...]] = []
    for n in range(1, max(counts) + 1):
        if n not in counts:
            out.append(())
            continue
        out.append(tuple(tuple(round(v / counts[n], 4) for v in a) for a in sums[n]))  # type: ignore[misc]
    return tuple(out)


def plan_face_boxes(given: Sequence[Box | None], layouts: Sequence[Sequence[Box]]) -> list[Box]:
    """Each person's face box: their own where given, else the n-person layout's box for their place in
    the request (people are listed left to right). With no layout for n people, n boxes of the nearest
    recorded layout's face size spread evenly across the frame at its height."""
    n = len(given)
    layout = list(layouts[n - 1]) if n <= len(layouts) and layouts[n - 1] else _spread(n, layouts)
    return [g if g is not None else layout[k] for k, g in enumerate(given)]


def _spread(n: int, layouts: Sequence[Sequence[Box]]) -> list[Box]:
    recorded = [(len(lay), lay) for lay in layouts if lay]
    if not recorded:
        raise ValueError(
            "this model places face references on boxes but records no face layout: give each person a box"
        )
    _, lay = min(recorded, key=lambda r: abs(r[0] - n))
    w = min(sum(b[2] - b[0] for b in lay) / len(lay), 1.0 / n)
    y0 = sum(b[1] for b in lay) / len(lay)
    y1 = sum(b[3] for b in lay) / len(lay)
    return [((k + 0.5) / n - w / 2, y0, (k + 0.5) / n + w / 2, y1) for k in range(n)]
