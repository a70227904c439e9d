"""DreamID-Omni's structured caption <-> facevox's structured caption (``facevox.curate.captions``).

DreamID-Omni's caption (its ``test_case/*/captions/*.json`` files, each a JSON string; format read from
the public repo at commit 9a9f456) is one text of marked sections::

    [IMAGE_CAPTIONS_START]
    <img1>: <what reference image 1 shows>, identified as <sub1>.        (one line per person)
    [IMAGE_CAPTIONS_END]

    [FINAL_VIDEO_CAPTION_START]
    [VISUAL_DESCRIPTION_START]
    **Overall Environment/Scene**: <scene>
    **Main Characters/Subjects Appearance**: <sub1>, on the left, <...>. <sub2>, on the right, <...>.
    **Main Characters/Subjects Actions**: <...>
    [VISUAL_DESCRIPTION_END]

    [AUDIO_DESCRIPTION_START]
    <sound>
    [AUDIO_DESCRIPTION_END]

    [CO_ANALYSIS_START]
    <sub1> ... says, <S>line one<E> <sub2> ... replies, <S>line two<E>
    [CO_ANALYSIS_END]
    [FINAL_VIDEO_CAPTION_END]

    [SPEAKER_TIMESTAMPS_START]
    {
        "<sub1>": ["<Time_S>00:02-00:05<Time_E>"],
        "<sub2>": ["<Time_S>00:06-00:09<Time_E>"]
    }
    [SPEAKER_TIMESTAMPS_END]

``<subK>`` is the person whose face is reference image K and whose voice is reference audio K: facevox
slot K. Times are ``MM:SS`` or ``MM.SS.mmm`` (both appear in the examples). The public inference script
feeds the text encoder the caption *without* the timestamp and audio-description sections
(:func:`dreamid_prompt`), so in the released R2AV code speaker times do not reach the model.

Mapping: subjects <- image captions + the appearance line (position from "on the left" / "in the
centre" / "on the right", else ``"unstated"``); speech <- each ``<S>...<E>`` span in order, its slot and
times from the timestamp block (spans paired in time order, checked against the sentence's first
``<subK>``). Free text facevox has no field for (the scene when it is not facevox's own sentence, the
actions, the sound, the words around the speech, the image captions) is kept under the caption's
``"dreamid"`` key only where it differs from what :func:`to_dreamid_caption` would write, so that
DreamID text -> facevox -> DreamID text and facevox -> DreamID text -> facevox are both exact
(``person_id`` excepted: DreamID-Omni's caption has none; pass ``person_ids`` to restore them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from facevox.release.dreamid_omni import DREAMID_OMNI_SETTINGS, MAX_PEOPLE

CLIP_SECONDS = DREAMID_OMNI_SETTINGS["num_frames"] / DREAMID_OMNI_SETTINGS["fps"]  # 121 / 24 = 5.04 s
UNSTATED = "unstated"  # a scene or position field the DreamID-Omni caption does not give
TIME_FORMATS = ("mm.ss.mmm", "mm:ss")

_POSITION_PHRASE = {"left": ", on the left,", "centre": ", in the centre,", "right": ", on the right,"}
_POSITION_READ = {
    "on the left": "left",
    "on the right": "right",
    "in the centre": "centre",
    "in the center": "centre",
    "in the middle": "centre",
}
_WHO = {1: "one person", 2: "two people"}
_LABELS = (
    ("scene", "Overall Environment/Scene"),
    ("appearance", "Main Characters/Subjects Appearance"),
    ("actions", "Main Characters/Subjects Actions"),
)


class DreamIDCaptionError(ValueError):
    """A caption DreamID-Omni cannot take, or a DreamID-Omni caption that cannot be read."""


class TooManyPeopleError(DreamIDCaptionError):
    """More people than DreamID-Omni's identity slots."""


class TimestampPastClipError(DreamIDCaptionError):
    """A speaker timestamp ends after the clip (or is otherwise impossible)."""


# ---------------------------------------------------------------- pieces both directions share
def _noun_phrase(text: str) -> bool:
    return re.match(r"(a|an|the)\s", text, flags=re.IGNORECASE) is not None


def _appearance_sentence(slot: int, position: str, appearance: str) -> str:
    predicate = f"is {appearance}" if _noun_phrase(appearance) else appearance
    return f"<sub{slot}>{_POSITION_PHRASE.get(position, '')} {predicate}."


def _image_caption(slot: int, appearance: str) -> str:
    if _noun_phrase(appearance):
        return f"{appearance[0].upper()}{appearance[1:]}, identified as <sub{slot}>."
    return f"A person identified as <sub{slot}>."


def _scene_sentence(scene: dict[str, Any], people: int) -> str:
    who = _WHO.get(people, f"{people} people")
    return f"A {scene['shot']} of {who} in front of a {scene['background']} background, in {scene['lighting']} light."


def _actions(slots: Sequence[int], speakers: set[int]) -> str:
    return " ".join(f"<sub{k}> speaks." if k in speakers else f"<sub{k}> listens." for k in slots)


def _sound(has_speech: bool) -> str:
    return "The background sound includes quiet room tone" + ("." if has_speech else " and no speech.")


def _analysis_template(slots: Sequence[int]) -> str:
    """The words around the speech, each line's text left out (``<S><E>``)."""
    return " ".join(f"<sub{k}> says, <S><E>" for k in slots)


def _format_time(seconds: float, fmt: str) -> str:
    ms = round(seconds * 1000)
    minutes, rest = divmod(ms, 60_000)
    if fmt == "mm:ss":
        if rest % 1000:
            raise DreamIDCaptionError(
                f"time {seconds} s has a fraction; the 'mm:ss' form writes whole seconds"
            )
        return f"{minutes:02d}:{rest // 1000:02d}"
    return f"{minutes:02d}.{rest // 1000:02d}.{rest % 1000:03d}"


def _parse_time(text: str) -> tuple[float, str]:
    m = re.fullmatch(r"(\d+)[.:](\d{1,2})(?:[.:](\d{1,3}))?", text.strip())
    if m is None:
        raise DreamIDCaptionError(f"speaker timestamp {text!r} is neither MM:SS nor MM.SS.mmm")
    minutes, seconds, millis = m.groups()
    value = int(minutes) * 60 + int(seconds) + (int(millis.ljust(3, "0")) / 1000 if millis else 0.0)
    return round(value, 3), ("mm.ss.mmm" if millis else "mm:ss")


def _check_span(who: str, start: float, end: float, clip_seconds: float) -> None:
    if not 0 <= start < end:
        raise TimestampPastClipError(f"{who}: speaker time {start}-{end} s is not a span (0 <= start < end)")
    if end > clip_seconds + 1e-9:
        raise TimestampPastClipError(
            f"{who}: speaker timestamp {start}-{end} s ends past the {clip_seconds:.3f} s clip"
        )


def _structure(caption: Any) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(scene, subjects, speech) of a facevox caption; DreamIDCaptionError naming an ill-typed field."""
    if not isinstance(caption, dict) or not all(k in caption for k in ("scene", "subjects", "speech")):
        raise DreamIDCaptionError("not a structured caption: an object with scene, subjects and speech")
    scene, subjects, speech = caption["scene"], caption["subjects"], caption["speech"]
    if not isinstance(scene, dict) or not all(
        isinstance(scene.get(k), str) for k in ("shot", "lighting", "background")
    ):
        raise DreamIDCaptionError("scene must be an object with string shot, lighting and background")
    if not isinstance(subjects, list) or not isinstance(speech, list):
        raise DreamIDCaptionError("subjects and speech must be lists")
    for i, sub in enumerate(subjects):
        if not isinstance(sub, dict) or not all(
            isinstance(sub.get(k), str) for k in ("position", "appearance")
        ):
            raise DreamIDCaptionError(f"subjects[{i}] must be an object with string position and appearance")
    for i, turn in enumerate(speech):
        if not isinstance(turn, dict) or not isinstance(turn.get("text"), str):
            raise DreamIDCaptionError(f"speech[{i}] must be an object with a string text")
    return scene, subjects, speech


def _seconds(value: Any) -> float | None:
    """A number of seconds, or None for anything else (a missing time, a bool, a string)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _check_people(people: int) -> None:
    if people > MAX_PEOPLE:
        raise TooManyPeopleError(
            f"{people} people, but DreamID-Omni has {MAX_PEOPLE} identity slots (<sub1>..<sub{MAX_PEOPLE}>)"
        )


# ---------------------------------------------------------------- facevox -> DreamID-Omni
def to_dreamid_caption(caption: dict[str, Any], *, clip_seconds: float = CLIP_SECONDS) -> str:
    """DreamID-Omni's caption text for a facevox structured caption (slot K -> ``<subK>``).

    TooManyPeopleError for more subjects than DreamID-Omni's slots, TimestampPastClipError for a turn
    ending after ``clip_seconds`` (121 frames at 24 fps by default), DreamIDCaptionError for anything
    else it cannot write (slots not 1..n, a turn of an unknown slot or without times, a stale
    ``"dreamid"`` override). Pure text: call it before loading any weights.
    """
    scene, subjects, speech = _structure(caption)
    _check_people(len(subjects))
    slots = [s.get("slot") for s in subjects]
    if slots != list(range(1, len(subjects) + 1)):
        raise DreamIDCaptionError(f"subject slots must be 1..{len(subjects)} in order, got {slots}")
    extra: dict[str, Any] = dict(caption.get("dreamid") or {})
    fmt = extra.get("time_format", TIME_FORMATS[0])
    if fmt not in TIME_FORMATS:
        raise DreamIDCaptionError(f"dreamid.time_format {fmt!r} is not one of {TIME_FORMATS}")
    spans: dict[int, list[tuple[float, float]]] = {}
    previous_start = 0.0
    for i, turn in enumerate(speech):
        slot = turn.get("slot")
        if not isinstance(slot, int) or slot not in slots:
            raise DreamIDCaptionError(f"speech[{i}] is slot {slot!r}; the subjects are slots {slots}")
        start, end = _seconds(turn.get("start")), _seconds(turn.get("end"))
        if start is None or end is None:
            raise DreamIDCaptionError(
                f"speech[{i}] has no start / end seconds; DreamID-Omni times every turn"
            )
        _check_span(f"speech[{i}] (<sub{slot}>)", start, end, clip_seconds)
        if start < previous_start:
            raise DreamIDCaptionError(
                f"speech[{i}] starts at {start} s, before the turn above it ({previous_start} s): DreamID-Omni "
                "pairs the <S>..<E> lines with the timestamps in time order, so list the turns in time order"
            )
        previous_start = start
        spans.setdefault(slot, []).append((start, end))

    images = extra.get("image_captions") or [_image_caption(s["slot"], s["appearance"]) for s in subjects]
    if len(images) != len(subjects):
        raise DreamIDCaptionError(
            f"dreamid.image_captions has {len(images)} lines for {len(subjects)} subjects"
        )
    analysis = extra.get("analysis", _analysis_template([t["slot"] for t in speech]))
    if analysis.count("<S><E>") != len(speech):
        raise DreamIDCaptionError(
            f"dreamid.analysis has {analysis.count('<S><E>')} speech places for {len(speech)} turns"
        )
    for turn in speech:
        analysis = analysis.replace("<S><E>", f"<S>{turn['text']}<E>", 1)
    sections = {
        "scene": extra.get("scene", _scene_sentence(scene, len(subjects))),
        "appearance": extra.get(
            "appearance",
            " ".join(_appearance_sentence(s["slot"], s["position"], s["appearance"]) for s in subjects),
        ),
        "actions": extra.get("actions", _actions(slots, set(spans))),
    }
    sound = extra.get("audio", _sound(bool(speech)))
    text = " ".join([*images, *sections.values(), sound, analysis])
    for k in sorted({int(n) for n in re.findall(r"<sub(\d+)>", text)}):
        if k not in slots:
            raise DreamIDCaptionError(f"the caption names <sub{k}> but has subjects {slots}")
    timestamps = ",\n".join(
        f'    "<sub{k}>": ['
        + ", ".join(
            json.dumps(f"<Time_S>{_format_time(a, fmt)}-{_format_time(b, fmt)}<Time_E>")
            for a, b in sorted(spans[k])
        )
        + "]"
        for k in slots
        if k in spans
    )
    image_lines = "\n".join(f"<img{k}>: {line}" for k, line in zip(slots, images, strict=True))
    visual = "\n".join(f"**{label}**: {sections[key]}" for key, label in _LABELS)
    return (
        f"[IMAGE_CAPTIONS_START]\n{image_lines}\n[IMAGE_CAPTIONS_END]\n\n"
        f"[FINAL_VIDEO_CAPTION_START]\n[VISUAL_DESCRIPTION_START]\n{visual}\n[VISUAL_DESCRIPTION_END]\n\n"
        f"[AUDIO_DESCRIPTION_START]\n{sound}\n[AUDIO_DESCRIPTION_END]\n\n"
        f"[CO_ANALYSIS_START]\n{analysis}\n[CO_ANALYSIS_END]\n[FINAL_VIDEO_CAPTION_END]\n\n"
        f"[SPEAKER_TIMESTAMPS_START]\n{{\n{timestamps}\n}}\n[SPEAKER_TIMESTAMPS_END]"
    )


# ---------------------------------------------------------------- DreamID-Omni -> facevox
def _section(text: str, name: str) -> str | None:
    found = re.findall(rf"\[{name}_START\](.*?)\[{name}_END\]", text, flags=re.DOTALL)
    if len(found) > 1:
        raise DreamIDCaptionError(f"the caption has {len(found)} [{name}_START] sections")
    return str(found[0]).strip() if found else None


def _required(text: str, name: str) -> str:
    found = _section(text, name)
    if found is None:
        raise DreamIDCaptionError(f"the caption has no [{name}_START] ... [{name}_END] section")
    return found


def _visual(text: str) -> dict[str, str]:
    parts = re.split(r"^\*\*(.+?)\*\*:[ \t]*", text, flags=re.MULTILINE)
    by_label = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    out = {}
    for key, label in _LABELS:
        if label not in by_label:
            raise DreamIDCaptionError(f"the visual description has no **{label}**: line")
        out[key] = by_label[label]
    return out


def _subject_sentences(appearance: str, people: int) -> dict[int, str]:
    """Each person's sentences of the appearance line: from a sentence starting ``<subK>`` to the next
    sentence starting with another person's tag."""
    starts = [m for m in re.finditer(r"(?:^|(?<=[.!?]\s))<sub(\d+)>", appearance)]
    chunks: dict[int, list[str]] = {}
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(appearance)
        chunks.setdefault(int(m.group(1)), []).append(appearance[m.end() : end].strip())
    return {k: " ".join(chunks.get(k, [])) for k in range(1, people + 1)}


def _position_and_appearance(rest: str) -> tuple[str, str]:
    position = UNSTATED
    m = re.match(r",\s*(on the left|on the right|in the centre|in the center|in the middle),\s*", rest)
    if m:
        position, rest = _POSITION_READ[m.group(1)], rest[m.end() :]
    rest = rest.strip().removesuffix(".")
    if rest.startswith("is ") and _noun_phrase(rest[3:]):
        rest = rest[3:]
    return position, rest


def _timestamps(
    block: str | None, people: int, clip_seconds: float
) -> tuple[list[tuple[float, float, int]], str]:
    if block is None:
        return [], TIME_FORMATS[0]
    try:
        data = json.loads(block)
    except json.JSONDecodeError as err:
        raise DreamIDCaptionError(f"[SPEAKER_TIMESTAMPS] is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise DreamIDCaptionError("[SPEAKER_TIMESTAMPS] must be a JSON object of <subK>: [times]")
    spans, formats = [], set()
    for tag, times in data.items():
        m = re.fullmatch(r"<sub(\d+)>", str(tag))
        if m is None or not isinstance(times, list):
            raise DreamIDCaptionError(
                f'[SPEAKER_TIMESTAMPS] entry {tag!r}: expected "<subK>": ["<Time_S>.."]'
            )
        slot = int(m.group(1))
        if not 1 <= slot <= people:
            raise DreamIDCaptionError(f"[SPEAKER_TIMESTAMPS] names {tag} but the caption has {people} people")
        for item in times:
            t = re.fullmatch(r"<Time_S>(.+?)-(.+?)<Time_E>", str(item))
            if t is None:
                raise DreamIDCaptionError(f"speaker timestamp {item!r} is not <Time_S>START-END<Time_E>")
            (start, f1), (end, f2) = _parse_time(t.group(1)), _parse_time(t.group(2))
            _check_span(f"<sub{slot}> {item}", start, end, clip_seconds)
            spans.append((start, end, slot))
            formats |= {f1, f2}
    if len(formats) > 1:
        raise DreamIDCaptionError(f"speaker timestamps mix the forms {sorted(formats)}")
    return sorted(spans), (formats.pop() if formats else TIME_FORMATS[0])


def from_dreamid_caption(
    text: str, *, person_ids: Sequence[str] | None = None, clip_seconds: float = CLIP_SECONDS
) -> dict[str, Any]:
    """A facevox structured caption from DreamID-Omni's caption text (see the module docstring).

    ``person_ids`` name the subjects (default ``"sub1"``, ``"sub2"``). TooManyPeopleError,
    TimestampPastClipError or DreamIDCaptionError (a missing section, unnumbered images, speech that
    the timestamps or the words do not attribute consistently) naming what is wrong.
    """
    image_block = _required(text, "IMAGE_CAPTIONS")
    lines = [line.strip() for line in image_block.splitlines() if line.strip()]
    images = []
    for k, line in enumerate(lines, 1):
        m = re.fullmatch(rf"<img{k}>:\s*(.*)", line)
        if m is None:
            raise DreamIDCaptionError(f"image caption line {k} must start '<img{k}>:', got {line[:40]!r}")
        images.append(m.group(1))
    people = len(images)
    _check_people(people)
    if people == 0:
        raise DreamIDCaptionError("the caption has no <img1> line: DreamID-Omni needs a reference per person")
    ids = list(person_ids) if person_ids is not None else [f"sub{k}" for k in range(1, people + 1)]
    if len(ids) != people:
        raise DreamIDCaptionError(f"{len(ids)} person_ids for {people} people")
    for k in {int(n) for n in re.findall(r"<sub(\d+)>", text)}:
        if not 1 <= k <= people:
            raise TooManyPeopleError(f"the caption names <sub{k}> but has {people} reference images")

    visual = _visual(_required(text, "VISUAL_DESCRIPTION"))
    sentences = _subject_sentences(visual["appearance"], people)
    subjects: list[dict[str, Any]] = []
    for k in range(1, people + 1):
        position, appearance = _position_and_appearance(sentences[k])
        subjects.append({"slot": k, "person_id": ids[k - 1], "position": position, "appearance": appearance})

    analysis_block = _required(text, "CO_ANALYSIS")
    lines_said = [
        (m.start(), m.end(), m.group(1)) for m in re.finditer(r"<S>(.*?)<E>", analysis_block, re.DOTALL)
    ]
    spans, fmt = _timestamps(_section(text, "SPEAKER_TIMESTAMPS"), people, clip_seconds)
    if spans and len(spans) != len(lines_said):
        raise DreamIDCaptionError(f"{len(lines_said)} <S>..<E> lines but {len(spans)} speaker timestamps")
    speech: list[dict[str, Any]] = []
    previous_end = 0
    for i, (start, end, said) in enumerate(lines_said):
        tags = re.findall(r"<sub(\d+)>", analysis_block[previous_end:start])
        named = int(tags[0]) if tags else None
        previous_end = end
        if spans:
            t0, t1, slot = spans[i]
            if named is not None and named != slot:
                raise DreamIDCaptionError(
                    f"speech line {i + 1} ({said[:30]!r}) follows <sub{named}>, but the timestamps give that "
                    f"turn ({t0}-{t1} s) to <sub{slot}>"
                )
            speech.append({"slot": slot, "start": t0, "end": t1, "text": said})
        elif named is None:
            raise DreamIDCaptionError(
                f"speech line {i + 1} ({said[:30]!r}) names no <subK> and has no timestamp"
            )
        else:
            speech.append({"slot": named, "start": None, "end": None, "text": said})

    scene_text = visual["scene"]
    m = re.fullmatch(r"A (.+?) of (.+?) in front of a (.+?) background, in (.+?) light\.", scene_text)
    if m and m.group(2) == _WHO.get(people, f"{people} people"):
        scene = {"shot": m.group(1), "lighting": m.group(4), "background": m.group(3), "num_subjects": people}
    else:
        shot = next(
            (s for s in ("close-up", "medium shot", "wide shot") if s in scene_text.lower()), UNSTATED
        )
        scene = {"shot": shot, "lighting": UNSTATED, "background": UNSTATED, "num_subjects": people}
    caption: dict[str, Any] = {"scene": scene, "subjects": subjects, "speech": speech}

    # keep, verbatim, the free text the structured fields do not regenerate
    slots = list(range(1, people + 1))
    sound = _section(text, "AUDIO_DESCRIPTION") or ""
    template = re.sub(r"<S>.*?<E>", "<S><E>", analysis_block, flags=re.DOTALL)
    generated = {
        "image_captions": [_image_caption(s["slot"], s["appearance"]) for s in subjects],
        "scene": _scene_sentence(scene, people),
        "appearance": " ".join(
            _appearance_sentence(s["slot"], s["position"], s["appearance"]) for s in subjects
        ),
        "actions": _actions(slots, {t["slot"] for t in speech}),
        "audio": _sound(bool(speech)),
        "analysis": _analysis_template([t["slot"] for t in speech]),
        "time_format": TIME_FORMATS[0],
    }
    found = {
        "image_captions": images,
        "scene": scene_text,
        "appearance": visual["appearance"],
        "actions": visual["actions"],
        "audio": sound,
        "analysis": template,
        "time_format": fmt,
    }
    extra = {k: v for k, v in found.items() if v != generated[k]}
    if extra:
        caption["dreamid"] = extra
    return caption


def dreamid_prompt(text: str) -> str:
    """What DreamID-Omni's ``inference_r2av.py`` hands the text encoder: the caption without its
    ``[SPEAKER_TIMESTAMPS]`` and ``[AUDIO_DESCRIPTION]`` sections, section markers removed and blank
    lines collapsed."""
    for name in ("SPEAKER_TIMESTAMPS", "AUDIO_DESCRIPTION"):
        text = re.sub(rf"\[{name}_START\].*?\[{name}_END\]", "", text, flags=re.DOTALL).strip()
    text = re.sub(r"\[[A-Z_]+\]", "", text)
    return re.sub(r"\n\s*\n", "\n", text).strip()
