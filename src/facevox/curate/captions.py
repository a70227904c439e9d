"""Structured captions and their rendered text form (the paper's tag format).

JSON caption of one sample::

    {"scene": {"shot": "close-up" | "medium shot" | "wide shot", "lighting": "dim" | "soft" | "bright",
               "background": "<colour name>", "num_subjects": int},
     "subjects": [{"slot": k, "person_id": str, "position": "left" | "centre" | "right",
                   "appearance": "<words>"}],
     "speech": [{"slot": k, "start": s, "end": s, "text": str}]}

Rendered text: a description of the shot, each subject's appearance wrapped as
``<REF_k_S>…<REF_k_E>`` and each spoken line as ``<Sk>…<Ek>`` (one speaker alone: ``<S>…<E>``),
ending with the background sound sentence, as in the paper (arXiv 2603.17889).
"""

from __future__ import annotations

import colorsys
from typing import Any

_HUES = [
    (15, "red"),
    (40, "orange"),
    (70, "yellow"),
    (160, "green"),
    (200, "teal"),
    (255, "blue"),
    (290, "purple"),
    (340, "pink"),
    (360, "red"),
]


def colour_name(rgb: list[float]) -> str:
    """A coarse English name of an RGB colour in [0, 1]."""
    h, lum, sat = colorsys.rgb_to_hls(*[min(max(float(c), 0.0), 1.0) for c in rgb])
    if lum < 0.12:
        return "black"
    if lum > 0.9:
        return "white"
    if sat < 0.15:
        return "grey" if 0.3 < lum < 0.7 else ("dark grey" if lum <= 0.3 else "light grey")
    hue = next(name for bound, name in _HUES if h * 360 <= bound)
    if hue == "orange" and lum < 0.45:
        hue = "brown"
    return f"dark {hue}" if lum < 0.3 else (f"light {hue}" if lum > 0.7 else hue)


def skin_tone(rgb: list[float]) -> str:
    lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return "dark" if lum < 0.35 else ("medium" if lum < 0.6 else "light")


def shot_type(face_height: float, frame_height: int) -> str:
    ratio = face_height / max(frame_height, 1)
    return "close-up" if ratio > 0.4 else ("medium shot" if ratio > 0.2 else "wide shot")


def position(x_centre: float, width: int) -> str:
    r = x_centre / max(width, 1)
    return "left" if r < 0.4 else ("right" if r > 0.6 else "centre")


def lighting(brightness: float) -> str:
    return "dim" if brightness < 0.3 else ("bright" if brightness > 0.6 else "soft")


def describe_scene(
    face_height: float, height: int, brightness: float, background_rgb: list[float], n: int
) -> dict[str, Any]:
    """The ``scene`` of a structured caption from measured quantities: the biggest face's height
    (px) in a frame ``height`` px tall, mean luma and border RGB in [0, 1], the number of people."""
    return {
        "shot": shot_type(face_height, height),
        "lighting": lighting(brightness),
        "background": colour_name(background_rgb),
        "num_subjects": n,
    }


def describe_subject(
    slot: int, person_id: str, x_centre: float, width: int, ap: dict[str, list[float]]
) -> dict[str, Any]:
    """One ``subjects`` entry: where the face is across the frame and its skin and hair colours
    (``ap``: mean RGB in [0, 1] under "skin" and "hair", as :func:`facevox.curate.faces.appearance`)."""
    return {
        "slot": slot,
        "person_id": person_id,
        "position": position(x_centre, width),
        "appearance": appearance_words(ap),
    }


def appearance_words(ap: dict[str, list[float]]) -> str:
    """ "a person with medium skin and dark red hair" from mean skin and hair RGB in [0, 1]."""
    return f"a person with {skin_tone(ap['skin'])} skin and {colour_name(ap['hair'])} hair"


_NUM = {1: "one person", 2: "two people", 3: "three people"}


def render(caption: dict[str, Any]) -> str:
    """The text form of a structured caption, with ``<REF_k_S>``/``<Sk>`` tags."""
    scene, subjects, speech = caption["scene"], caption["subjects"], caption["speech"]
    n = len(subjects)
    who = _NUM.get(n, f"{n} people")
    parts = [
        f"A {scene['shot']} of {who} in front of a {scene['background']} background, in {scene['lighting']} light."
    ]
    for s in subjects:
        parts.append(f"On the {s['position']}, <REF_{s['slot']}_S>{s['appearance']}<REF_{s['slot']}_E>.")
    speakers = {t["slot"] for t in speech}
    for t in speech:
        if len(speakers) == 1 and n == 1:
            parts.append(f"<S>{t['text']}<E>")
        else:
            parts.append(f"<S{t['slot']}>{t['text']}<E{t['slot']}>")
    parts.append(
        "The background sound includes quiet room tone."
        if speech
        else "The background sound includes quiet room tone and no speech."
    )
    return " ".join(parts)
