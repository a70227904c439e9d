"""What a user asks for: people (faces + voice), a script of who says what, and render settings.

Scripts: the simple form ``[alice] Hello there. [bob] Hi!`` (names must be given people), optionally
timed ``[alice 0.0-1.2] Hello there. [bob 1.2-2.0] Hi!`` (seconds; every turn or none), a
structured caption (the curation format, ``docs/curate.md``) as a dict / JSON file, or a caption
already written in the release's tagged format (``<REF_1_S>a tall man<REF_1_E> says <S1>Hello.<E1>``,
Ovi's ``<S>...<E>`` for one person, ``Audio: ...``), which is used as is: ``<REF_k_*>`` / ``<Sk>`` bind
to the k-th given person. The first two are rendered with the paper's tags.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facevox.codecs.tags import caption_tags, slot_ids, tag_roles
from facevox.curate.captions import appearance_words, render
from facevox.layout import Box, check_box


class RequestError(ValueError):
    """A request that cannot be generated; raised before any heavy work, naming what is wrong."""


@dataclass(frozen=True, kw_only=True)
class Person:
    name: str
    faces: tuple[str, ...]  # image paths (any photo with a face; several views allowed)
    voice: str  # audio path (any format PyAV decodes)
    person_id: str | None = None
    # where this person's face is drawn, (x0, y0, x1, y1) in fractions of the frame; None = the model's
    # planned layout (read by models that place face references on boxes; facevox.layout)
    box: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", self.name):
            raise RequestError(f"person name {self.name!r}: use letters, digits, '_' or '-'")
        if not self.faces:
            raise RequestError(f"person {self.name!r} has no face image")
        if not all(isinstance(p, str) and p for p in (*self.faces, self.voice)):
            raise RequestError(f"person {self.name!r}: face and voice files must be paths")
        for p in (*self.faces, self.voice):
            if not Path(p).is_file():
                raise RequestError(f"person {self.name!r}: file {p} does not exist")
        if self.box is not None:
            try:
                object.__setattr__(self, "box", check_box(self.box, f"person {self.name!r}"))
            except ValueError as e:
                raise RequestError(str(e)) from e


@dataclass(frozen=True, kw_only=True)
class GenerationRequest:
    name: str  # output stem: NAME.mp4 + NAME.json
    people: tuple[Person, ...]
    script: str | dict[str, Any]  # "[alice] hi. [bob] hey" or a structured caption
    duration: float = 1.0  # seconds
    seed: int = 0
    width: int | None = None  # pixels; None = the size the model was trained at
    height: int | None = None
    use_faces: bool = True  # False (with use_voices False): the no-reference baseline
    use_voices: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*", self.name):
            raise RequestError(
                f"request name {self.name!r}: use letters, digits, '_', '-' or '.' (it names the files)"
            )
        if not isinstance(self.script, str | dict):
            raise RequestError(
                f"script must be text or a structured caption object, got {type(self.script).__name__}"
            )
        for key in ("width", "height"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise RequestError(f"{key} must be a positive number of pixels, got {v!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise RequestError(f"seed must be an integer, got {self.seed!r}")
        if not self.people:
            raise RequestError("a request needs at least one person")
        names = [p.name for p in self.people]
        if len(set(names)) != len(names):
            raise RequestError(f"person names must be unique, got {names}")
        if not _number(self.duration) or self.duration <= 0:
            raise RequestError(f"duration must be a number of seconds > 0, got {self.duration!r}")


def parse_person(spec: str) -> Person:
    """``name=face1.png,face2.png:voice.wav`` -> Person."""
    m = re.fullmatch(r"([^=]+)=([^:]+):(.+)", spec)
    if not m:
        raise RequestError(f"--person {spec!r}: expected name=face1.png[,face2.png...]:voice.wav")
    return Person(name=m[1], faces=tuple(f for f in m[2].split(",") if f), voice=m[3])


def with_boxes(people: tuple[Person, ...], specs: list[str]) -> tuple[Person, ...]:
    """``["alice=0.1,0.2,0.5,0.8"]`` -> the people with those face boxes (``--box``)."""
    boxes: dict[str, Box] = {}
    names = [p.name for p in people]
    for spec in specs:
        m = re.fullmatch(r"([^=]+)=([^,]+),([^,]+),([^,]+),([^,]+)", spec)
        if not m:
            raise RequestError(f"--box {spec!r}: expected NAME=X0,Y0,X1,Y1 (fractions of the frame)")
        if m[1] not in names:
            raise RequestError(f"--box {spec!r}: no --person named {m[1]!r} (people: {names})")
        try:
            boxes[m[1]] = check_box(m.groups()[1:], f"--box {spec!r}")
        except ValueError as e:
            raise RequestError(str(e)) from e
    return tuple(dataclasses.replace(p, box=boxes[p.name]) if p.name in boxes else p for p in people)


_TIMED_TAG = re.compile(r"\s*(\S+?)(?:\s+(-?[0-9.]+)\s*-\s*(-?[0-9.]+))?\s*")


def parse_script(script: str) -> list[tuple[str, str, float | None, float | None]]:
    """``[alice] Hello there. [bob 1.2-2.0] Hi!`` -> [("alice", "Hello there.", None, None),
    ("bob", "Hi!", 1.2, 2.0)] (name, text, start, end)."""
    parts = re.split(r"\[([^\]]+)\]", script)
    if parts[0].strip():
        raise RequestError(f"script must start with a [name] tag, got {script[:40]!r}")
    turns = []
    for i in range(1, len(parts), 2):
        text = parts[i + 1].strip()
        m = _TIMED_TAG.fullmatch(parts[i])
        if m is None:
            raise RequestError(f"script tag [{parts[i]}]: write [name] or [name START-END] (seconds)")
        if not text:
            continue
        try:
            start, end = (None, None) if m[2] is None else (float(m[2]), float(m[3]))
        except ValueError as e:
            raise RequestError(f"script tag [{parts[i]}]: times must be numbers of seconds ({e})") from e
        turns.append((m[1], text, start, end))
    if not turns:
        raise RequestError("script has no lines: write e.g. '[alice] Hello there.'")
    return turns


def check_turn_times(turns: list[dict[str, Any]], duration: float) -> None:
    """RequestError for a turn that ends before it starts, runs past the clip, or overlaps another
    turn of the same person (one person says one line at a time; two people may overlap)."""
    for t in turns:
        if not 0 <= t["start"] < t["end"]:
            raise RequestError(
                f"turn of {t['name']!r} ({t['text'][:30]!r}): start {t['start']} must be >= 0 and < end {t['end']}"
            )
        if t["end"] > duration + 0.02:
            raise RequestError(
                f"turn of {t['name']!r} ({t['text'][:30]!r}) ends at {t['end']} s, past the clip ({duration} s)"
            )
    for a in turns:
        for b in turns:
            if a is not b and a["slot"] == b["slot"] and a["start"] < b["end"] and b["start"] < a["end"]:
                raise RequestError(
                    f"turns of {a['name']!r} overlap: {a['start']}-{a['end']} s and {b['start']}-{b['end']} s"
                )


def timed_turns(
    lines: list[tuple[int, str, float | None, float | None]], names: list[str], duration: float
) -> list[dict[str, Any]]:
    """Turns with the times given (every line timed), or planned over ``duration`` in proportion to
    their words (no line timed); ``planned`` says which. Mixed is an error."""
    timed = [s is not None and e is not None for _, _, s, e in lines]
    if any(timed) and not all(timed):
        raise RequestError("give start and end times for every turn of the script or for none")
    if not all(timed):
        return _timed([(k, t) for k, t, _, _ in lines], names, duration)
    turns = [
        {"slot": k, "name": names[k], "text": t, "start": float(s), "end": float(e), "planned": False}
        for k, t, s, e in lines
        if s is not None and e is not None
    ]
    check_turn_times(turns, duration)
    return turns


_POSITIONS = {1: ["centre"], 2: ["left", "right"], 3: ["left", "centre", "right"]}
_TAG = re.compile(r"<(?:REF_\d+_[SE]|[SE]\d*)>")


def is_tagged(script: str) -> bool:
    """Whether ``script`` is a caption in the release's tagged format (rather than ``[name] text``)."""
    return bool(_TAG.search(script)) and not script.lstrip().startswith("[")


def tagged_turns(text: str, req: GenerationRequest) -> list[dict[str, Any]]:
    """The spoken lines of a tagged caption: ``<Sk>...<Ek>`` -> person k (``<S>`` for one person)."""
    n = len(req.people)
    pieces = [p for p in re.split(f"({_TAG.pattern})", text) if p]
    try:
        slots = slot_ids(pieces, tag_roles(max(n, 1)))
    except ValueError as e:
        raise RequestError(f"tagged caption: {e}") from e
    for tag in dict.fromkeys(_TAG.findall(text)):  # in order of appearance: the first misfit is named
        k = int(re.sub(r"\D", "", tag) or 0)
        if tag not in caption_tags(max(n, 1)) or k > n:
            raise RequestError(
                f"tagged caption uses {tag} but {n} {'person was' if n == 1 else 'people were'} given"
            )
        if k == 0 and n > 1:
            raise RequestError(f"tagged caption: {tag} names no speaker; with {n} people write <S1>...<E1>")
    lines: list[list[Any]] = []  # [slot, text] per <Sk>...<Ek>
    speaking = False
    for piece, slot in zip(pieces, slots, strict=True):
        if re.fullmatch(r"<S\d*>", piece):
            lines.append([max(slot, 0), ""])  # <S> (one person) is person 1
            speaking = True
        elif re.fullmatch(r"<E\d*>", piece):
            speaking = False
        elif speaking and not _TAG.fullmatch(piece):
            lines[-1][1] += piece
    names = [p.name for p in req.people]
    return _timed([(k, t.strip()) for k, t in lines if t.strip()], names, req.duration)  # untimed: planned


def _timed(lines: list[tuple[int, str]], names: list[str], duration: float) -> list[dict[str, Any]]:
    """Turns (slot, name, text, start, end) spread over ``duration`` in proportion to their words
    (times to the millisecond); RequestError when a turn would get no time at all."""
    words = [max(1, len(t.split())) for _, t in lines]
    total, start, turns = sum(words), 0.0, []
    for (k, text), w in zip(lines, words, strict=True):
        span = duration * w / total
        t0, t1 = round(start, 3), round(start + span, 3)
        if t1 <= t0:
            raise RequestError(f"a {duration} s clip is too short to plan {len(lines)} turns")
        turns.append({"slot": k, "name": names[k], "text": text, "start": t0, "end": t1, "planned": True})
        start += span
    return turns


def structured_caption(req: GenerationRequest) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The structured caption and the turns (slot, name, text, start, end) of a request."""
    slot_of = {p.name: k for k, p in enumerate(req.people)}
    if isinstance(req.script, dict):
        caption = req.script
        check_caption(caption, len(req.people))
        names = [p.name for p in req.people]
        turns = timed_turns(
            [(t["slot"] - 1, t["text"], t.get("start"), t.get("end")) for t in caption["speech"]],
            names,
            req.duration,
        )
        return caption, turns
    if is_tagged(req.script):
        return {"tagged": req.script.strip()}, tagged_turns(req.script, req)
    lines = parse_script(req.script)
    unknown = sorted({n for n, *_ in lines} - set(slot_of))
    if unknown:
        raise RequestError(f"script names {unknown} but only {sorted(slot_of)} have references (--person)")
    turns = timed_turns(
        [(slot_of[n], t, s, e) for n, t, s, e in lines], [p.name for p in req.people], req.duration
    )
    n = len(req.people)
    if n > 3:
        raise RequestError(f"at most 3 people per clip are supported, got {n}")
    caption = {
        "scene": {
            "shot": "close-up" if n == 1 else "medium shot",
            "lighting": "soft",
            "background": "grey",
            "num_subjects": n,
        },
        "subjects": [
            {
                "slot": k + 1,
                "person_id": p.name,
                "position": _POSITIONS[n][k],
                "appearance": GENERIC_APPEARANCE,
            }
            for k, p in enumerate(req.people)
        ],
        "speech": [
            {"slot": x["slot"] + 1, "start": x["start"], "end": x["end"], "text": x["text"]} for x in turns
        ],
    }
    return caption, turns


GENERIC_APPEARANCE = "a person"  # what a plain script's caption says of each person


def describe_people(caption: dict[str, Any], looks: list[dict[str, list[float]] | None]) -> dict[str, Any]:
    """``caption`` with each generic appearance ("a person") described as curation describes people
    in the training captions ("a person with medium skin and dark red hair"), from ``looks[k]``: the
    mean skin and hair RGB of person k's first face reference (:func:`facevox.curate.faces.appearance`;
    None keeps the generic words). Appearances a caption already gives are kept."""
    subjects = [
        s
        if s["appearance"] != GENERIC_APPEARANCE or look is None
        else s | {"appearance": appearance_words(look)}
        for s, look in zip(caption["subjects"], looks, strict=True)
    ]
    return caption | {"subjects": subjects}


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def check_caption(caption: Any, people: int) -> None:
    """RequestError naming the first field of a structured caption that cannot be used with
    ``people`` given people (the format of ``docs/curate.md``)."""
    if not isinstance(caption, dict):
        raise RequestError(f"structured caption must be a JSON object, got {type(caption).__name__}")
    for key in ("scene", "subjects", "speech"):
        if key not in caption:
            raise RequestError(f"structured caption lacks {key!r}")
    scene, subjects, speech = caption["scene"], caption["subjects"], caption["speech"]
    if not isinstance(scene, dict):
        raise RequestError("structured caption: 'scene' must be an object with shot, lighting and background")
    for key in ("shot", "lighting", "background"):
        if not isinstance(scene.get(key), str):
            raise RequestError(f"structured caption: scene.{key} must be a string, got {scene.get(key)!r}")
    if not isinstance(subjects, list) or len(subjects) != people:
        got = len(subjects) if isinstance(subjects, list) else repr(subjects)[:30]
        raise RequestError(f"caption has {got} subjects but {people} people were given")
    for i, sub in enumerate(subjects):
        if not isinstance(sub, dict):
            raise RequestError(f"structured caption: subjects[{i}] must be an object")
        if sub.get("slot") != i + 1 or isinstance(sub.get("slot"), bool):
            raise RequestError(
                f"structured caption: subjects[{i}].slot must be {i + 1}, got {sub.get('slot')!r}"
            )
        for key in ("position", "appearance"):
            if not isinstance(sub.get(key), str):
                raise RequestError(f"structured caption: subjects[{i}].{key} must be a string")
    if not isinstance(speech, list):
        raise RequestError("structured caption: 'speech' must be a list of turns")
    for i, t in enumerate(speech):
        if not isinstance(t, dict):
            raise RequestError(f"structured caption: speech[{i}] must be an object")
        slot = t.get("slot")
        if not isinstance(slot, int) or isinstance(slot, bool) or not 1 <= slot <= people:
            raise RequestError(
                f"structured caption: speech[{i}] names slot {slot!r}; the {people} given people are slots "
                f"1..{people}"
            )
        if not isinstance(t.get("text"), str) or not t["text"].strip():
            raise RequestError(f"structured caption: speech[{i}].text must be a non-empty string")
        for key in ("start", "end"):
            if t.get(key) is not None and not _number(t[key]):
                raise RequestError(f"structured caption: speech[{i}].{key} must be seconds, got {t[key]!r}")


def caption_text(caption: dict[str, Any]) -> str:
    """The caption the text encoder reads: a tagged caption as given, else the rendered structure."""
    return caption["tagged"] if "tagged" in caption else render(caption)


def frame_count(duration: float, fps: float, max_frames: int, model: str = "this model") -> int:
    """Video frames generated for ``duration`` seconds: ``1 + 4k`` (the video codecs' causal x4 time
    stride), at least 5; RequestError naming ``model`` when that is more than it makes."""
    n = max(5, round(duration * fps))
    frames = 1 + 4 * max(1, round((n - 1) / 4))
    if frames > max_frames:
        raise RequestError(
            f"duration {duration:.2f} s needs {frames} frames; {model} generates at most {max_frames} "
            f"({max_frames / fps:.2f} s)"
        )
    return frames


def sidecar_media(
    req: GenerationRequest, *, frames: int, fps: float, sample_rate: int, width: int, height: int
) -> dict[str, Any]:
    """The part of a clip's sidecar JSON that every model family writes alike: the clip's geometry,
    which references were used and the people with their reference files."""
    return {
        "fps": fps,
        "sample_rate": sample_rate,
        "duration": frames / fps,
        "width": width,
        "height": height,
        "references_used": {"faces": req.use_faces, "voices": req.use_voices},
        "people": [
            {
                "slot": k,
                "name": p.name,
                "person_id": p.person_id,
                "faces": [str(Path(f).resolve()) for f in p.faces],
                "voice": str(Path(p.voice).resolve()),
            }
            for k, p in enumerate(req.people)
        ],
    }


def read_requests(path: str | Path) -> list[GenerationRequest]:
    """A ``requests.jsonl`` benchmark batch (one request per line)."""
    out = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if not isinstance(d, dict) or not isinstance(d.get("people"), list):
                raise TypeError("each line must be a JSON object with a list of people")
            people = tuple(
                Person(
                    name=p["name"],
                    faces=tuple(p["faces"]),
                    voice=p["voice"],
                    person_id=p.get("person_id"),
                    box=None if p.get("box") is None else tuple(p["box"]),
                )
                for p in d["people"]
            )
            out.append(
                GenerationRequest(
                    name=d["name"],
                    people=people,
                    script=d["script"],
                    duration=float(d.get("duration", 1.0)),
                    seed=int(d.get("seed", 0)),
                    width=d.get("width"),
                    height=d.get("height"),
                    use_faces=bool(d.get("use_faces", True)),
                    use_voices=bool(d.get("use_voices", True)),
                )
            )
        except (
            KeyError,
            TypeError,
            AttributeError,
            ValueError,
            OverflowError,
        ) as e:  # ValueError: JSON, checks
            raise RequestError(f"{path}:{i}: bad request ({type(e).__name__}: {e})") from e
    return out
