"""What a user asks for: people (faces + voice), a script of who says what, and render settings.

Scripts: the simple form ``[alice] Hello there. [bob] Hi!`` (names must be given people), or a
structured caption (the curation format, ``docs/curate.md``) as a dict / JSON file. Both become the
structured caption the model was trained on, rendered with the paper's tags.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facevox.curate.captions import render


class RequestError(ValueError):
    """A request that cannot be generated; raised before any heavy work, naming what is wrong."""


@dataclass(frozen=True, kw_only=True)
class Person:
    name: str
    faces: tuple[str, ...]  # image paths (any photo with a face; several views allowed)
    voice: str  # audio path (any format PyAV decodes)
    person_id: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", self.name):
            raise RequestError(f"person name {self.name!r}: use letters, digits, '_' or '-'")
        if not self.faces:
            raise RequestError(f"person {self.name!r} has no face image")
        for p in (*self.faces, self.voice):
            if not Path(p).is_file():
                raise RequestError(f"person {self.name!r}: file {p} does not exist")


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
        if not self.people:
            raise RequestError("a request needs at least one person")
        names = [p.name for p in self.people]
        if len(set(names)) != len(names):
            raise RequestError(f"person names must be unique, got {names}")
        if self.duration <= 0:
            raise RequestError(f"duration must be > 0, got {self.duration}")


def parse_person(spec: str) -> Person:
    """``name=face1.png,face2.png:voice.wav`` -> Person."""
    m = re.fullmatch(r"([^=]+)=([^:]+):(.+)", spec)
    if not m:
        raise RequestError(f"--person {spec!r}: expected name=face1.png[,face2.png...]:voice.wav")
    return Person(name=m[1], faces=tuple(f for f in m[2].split(",") if f), voice=m[3])


def parse_script(script: str) -> list[tuple[str, str]]:
    """``[alice] Hello there. [bob] Hi!`` -> [("alice", "Hello there."), ("bob", "Hi!")]."""
    parts = re.split(r"\[([^\]]+)\]", script)
    if parts[0].strip():
        raise RequestError(f"script must start with a [name] tag, got {script[:40]!r}")
    turns = [(parts[i].strip(), parts[i + 1].strip()) for i in range(1, len(parts), 2)]
    turns = [(n, t) for n, t in turns if t]
    if not turns:
        raise RequestError("script has no lines: write e.g. '[alice] Hello there.'")
    return turns


_POSITIONS = {1: ["centre"], 2: ["left", "right"], 3: ["left", "centre", "right"]}


def structured_caption(req: GenerationRequest) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The structured caption and the turns (slot, name, text, start, end) of a request."""
    slot_of = {p.name: k for k, p in enumerate(req.people)}
    if isinstance(req.script, dict):
        caption = req.script
        for key in ("scene", "subjects", "speech"):
            if key not in caption:
                raise RequestError(f"structured caption lacks {key!r}")
        if len(caption["subjects"]) != len(req.people):
            raise RequestError(
                f"caption has {len(caption['subjects'])} subjects but {len(req.people)} people were given"
            )
        names = [p.name for p in req.people]
        turns = [
            {
                "slot": t["slot"] - 1,
                "name": names[t["slot"] - 1],
                "text": t["text"],
                "start": t.get("start"),
                "end": t.get("end"),
            }
            for t in caption["speech"]
        ]
        return caption, turns
    lines = parse_script(req.script)
    unknown = sorted({n for n, _ in lines} - set(slot_of))
    if unknown:
        raise RequestError(f"script names {unknown} but only {sorted(slot_of)} have references (--person)")
    words = [max(1, len(t.split())) for _, t in lines]
    total, t = sum(words), 0.0
    turns = []
    for (n, text), w in zip(lines, words, strict=True):
        span = req.duration * w / total
        turns.append(
            {"slot": slot_of[n], "name": n, "text": text, "start": round(t, 2), "end": round(t + span, 2)}
        )
        t += span
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
            {"slot": k + 1, "person_id": p.name, "position": _POSITIONS[n][k], "appearance": "a person"}
            for k, p in enumerate(req.people)
        ],
        "speech": [
            {"slot": x["slot"] + 1, "start": x["start"], "end": x["end"], "text": x["text"]} for x in turns
        ],
    }
    return caption, turns


def caption_text(caption: dict[str, Any]) -> str:
    return render(caption)


def read_requests(path: str | Path) -> list[GenerationRequest]:
    """A ``requests.jsonl`` benchmark batch (one request per line)."""
    out = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            people = tuple(
                Person(
                    name=p["name"], faces=tuple(p["faces"]), voice=p["voice"], person_id=p.get("person_id")
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
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise RequestError(f"{path}:{i}: bad request ({e})") from e
    return out
