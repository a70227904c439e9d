"""Requests from a folder of DreamID-Omni-style test cases (identity image, voice, caption per item).

The layout is the one DreamID-Omni's public inference script reads (``inference_r2av.py``
``load_mixed_data`` at GitHub ``Guoxu1233/DreamID-Omni`` commit 9a9f456, its ``test_case/`` folder)::

    ROOT/oneip/imgs/NAME/NAME.png      ROOT/twoip/imgs/NAME/0.png, 1.png
    ROOT/oneip/audios/NAME/NAME.wav    ROOT/twoip/audios/NAME/0.wav, 1.wav
    ROOT/oneip/captions/NAME.json      ROOT/twoip/captions/NAME.json

each caption file a JSON string in DreamID-Omni's sectioned format (``facevox.release.dreamid_captions``),
image ``k`` / voice ``k`` the person ``<sub{k+1}>``. IDBench-Omni (HF ``XuGuo699/IDBench-Omni``; the paper's
100 R2AV identity-timbre-caption items) is distributed for that script; its own file listing could not be
read here, so a release laid out otherwise needs its paths mapped onto this one (``docs/models.md``).

Each item becomes a :class:`~facevox.pipeline.GenerationRequest` named ``{mode}_{NAME}`` (the engine's
output stem) with people ``sub1`` / ``sub2``, the clip the engine makes (121 frames at 24 fps) and the
engine's seed (100). Items with a missing file are skipped with the reason, as the engine skips them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from facevox.io.atomic import atomic_write_json
from facevox.pipeline.request import GenerationRequest, Person, RequestError

log = logging.getLogger(__name__)

MODES = {"oneip": 1, "twoip": 2}  # sub-folder -> people per item
CLIP_SECONDS = 121 / 24
ENGINE_SEED = 100


def _item_files(mode: str, root: Path, name: str) -> tuple[Path, list[tuple[Path, Path]]]:
    base = root / mode
    if MODES[mode] == 1:
        pairs = [(base / "imgs" / name / f"{name}.png", base / "audios" / name / f"{name}.wav")]
    else:
        pairs = [(base / "imgs" / name / f"{k}.png", base / "audios" / name / f"{k}.wav") for k in range(2)]
    return base / "captions" / f"{name}.json", pairs


def read_idbench_omni(
    root: str | Path, *, seed: int = ENGINE_SEED
) -> tuple[list[GenerationRequest], list[tuple[str, str]]]:
    """(requests, skipped (item, reason)) for every item under ``root``; RequestError when ``root`` has
    neither ``oneip/imgs`` nor ``twoip/imgs``."""
    root = Path(root)
    modes = [m for m in MODES if (root / m / "imgs").is_dir()]
    if not modes:
        raise RequestError(
            f"{root}: no oneip/imgs or twoip/imgs folder (the layout of DreamID-Omni's test_case/, docs/models.md)"
        )
    requests: list[GenerationRequest] = []
    skipped: list[tuple[str, str]] = []
    for mode in modes:
        for item in sorted(p.name for p in (root / mode / "imgs").iterdir() if p.is_dir()):
            name = f"{mode}_{item}"
            caption_path, pairs = _item_files(mode, root, item)
            missing = [
                str(p) for p in (caption_path, *(f for pair in pairs for f in pair)) if not p.is_file()
            ]
            if missing:
                skipped.append((name, f"missing {', '.join(missing)}"))
                continue
            try:
                caption = json.loads(caption_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                skipped.append((name, f"{caption_path}: not JSON ({err})"))
                continue
            if not isinstance(caption, str):
                skipped.append(
                    (name, f"{caption_path}: expected a JSON string, got {type(caption).__name__}")
                )
                continue
            people = tuple(
                Person(name=f"sub{k + 1}", faces=(str(img),), voice=str(wav), person_id=f"{name}_sub{k + 1}")
                for k, (img, wav) in enumerate(pairs)
            )
            requests.append(
                GenerationRequest(name=name, people=people, script=caption, duration=CLIP_SECONDS, seed=seed)
            )
    for name, why in skipped:
        log.warning("skipping %s: %s", name, why)
    return requests, skipped


def write_requests(requests: list[GenerationRequest], out: str | Path) -> Path:
    """``OUT/requests.jsonl`` for ``facevox generate --requests`` (one request per line)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {
                "name": r.name,
                "people": [
                    {"name": p.name, "faces": list(p.faces), "voice": p.voice, "person_id": p.person_id}
                    for p in r.people
                ],
                "script": r.script,
                "duration": r.duration,
                "seed": r.seed,
            },
            ensure_ascii=False,
        )
        for r in requests
    ]
    path = folder / "requests.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)
    return path


def build_idbench_requests(root: str | Path, out: str | Path) -> dict[str, int]:
    """Read ``root`` and write ``out/requests.jsonl`` + ``out/skipped.json``; the counts."""
    requests, skipped = read_idbench_omni(root)
    write_requests(requests, out)
    atomic_write_json(Path(out) / "skipped.json", [{"item": n, "reason": r} for n, r in skipped])
    return {
        "requests": len(requests),
        "multi_person": sum(len(r.people) > 1 for r in requests),
        "skipped": len(skipped),
    }
