"""An identity-labelled photo set of the synthetic world: many people, a few one-person photos each.

Clips are expensive (speech, 25 frames a second, curation); a photo is one frame. The field trains
appearance and identity on far more people from stills than from clips (joint image and video
training: Wan, LTX-Video, HunyuanVideo, ConsisID); this is the synthetic world's stills set, laid out
as the public face-identity sets are (one folder per person)::

    config.yaml                       resolved SynthConfig (its people and nuisances; clips unused)
    photos.json                       {"format", "views", "people": {"train": n, "heldout": n}}
    photos/{person_id}/{view:02d}.png one RGB photo: a close-up with fresh pose, light, background,
                                      clothes, blur and noise (``plan_still``)
    ground_truth/people.jsonl         identities and their split (not read by ``facevox encode-photos``)

Every photo is a pure function of (seed, person, view); a person is done once their last view exists,
so an interrupted run resumes. ``facevox encode-photos`` turns the set into one-frame latent shards.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from facevox.io.atomic import atomic_path, atomic_write_json
from facevox.synth.config import SynthConfig
from facevox.synth.scene import Person, plan_still, render_clip
from facevox.synth.world import start_folder, world_rng

log = logging.getLogger(__name__)

PHOTOS_FORMAT = "facevox.photos/1"


def _photograph(cfg: SynthConfig, index: int, person: Person, views: int, out_dir: str) -> int:
    """Write ``views`` photos of one person (the last one last: it marks the person done)."""
    folder = Path(out_dir) / "photos" / person.person_id
    folder.mkdir(parents=True, exist_ok=True)
    for v in range(views):
        rng = world_rng(cfg.seed, 5, index, v)
        plan = plan_still(person, cfg, rng, clip_id=f"{person.person_id}v{v}")
        frames, _, _ = render_clip(plan, cfg, rng)
        path = folder / f"{v:02d}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(frames[0]).save(tmp, format="PNG")
    return views


def generate_photos(
    cfg: SynthConfig, out_dir: str | Path, views: int = 4, progress: bool = True
) -> dict[str, Any]:
    """Photograph every person of the world ``cfg`` describes ``views`` times into ``out_dir``."""
    if views < 2:
        raise ValueError(
            f"a photo set needs >= 2 views per person (one is the others' reference), got {views}"
        )
    out = Path(out_dir)
    info_path = out / "photos.json"
    have = json.loads(info_path.read_text()).get("views") if info_path.exists() else views
    if have != views:
        raise ValueError(f"{out} holds {have} views per person, not {views}")
    people = start_folder(cfg, out, "photos")
    todo = [
        (i, p)
        for i, p in enumerate(people)
        if not (out / "photos" / p.person_id / f"{views - 1:02d}.png").exists()
    ]
    if len(todo) < len(people):
        log.info("resuming: %d of %d people already photographed", len(people) - len(todo), len(people))
    t0 = time.perf_counter()
    made = 0
    with tqdm(
        total=len(people),
        initial=len(people) - len(todo),
        desc="synth photos",
        unit="person",
        disable=not progress,
    ) as bar:
        if cfg.workers == 1:
            for i, p in todo:
                made += _photograph(cfg, i, p, views, str(out))
                bar.update()
        else:
            with ProcessPoolExecutor(cfg.workers) as pool:
                futures = [pool.submit(_photograph, cfg, i, p, views, str(out)) for i, p in todo]
                for fut in as_completed(futures):
                    made += fut.result()
                    bar.update()
    wall = time.perf_counter() - t0
    stats = {
        "format": PHOTOS_FORMAT,
        "views": views,
        "people": {s: sum(p.split == s for p in people) for s in ("train", "heldout")},
        "photos_made_this_run": made,
        "wall_seconds": round(wall, 2),
        "photos_per_second": round(made / wall, 2) if made and wall > 0 else None,
    }
    atomic_write_json(info_path, stats)
    log.info("photo set %s: %s", out, stats)
    return stats
