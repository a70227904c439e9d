"""Speaker binding on a trained model: swap two people's voice references, see who the turns sound like.

For every request of a benchmark batch with two or more people (held-out people, as ``facevox
benchmark`` writes them), it generates the clip as asked and again with the first two people's voice
references exchanged (faces, script and turn spans unchanged), for each seed. Per turn of person 0 or
1 (the spans the sidecar records; turns under ``--min-turn`` seconds are skipped) it embeds the
generated speech (resemblyzer) and takes ``d = sim(voice A) - sim(voice B)``, A / B the two original
references. If the speech follows the speaking slot's reference, ``d`` flips when the references are
swapped: the per-turn swap margin ``(d_asked - d_swapped) * (+1 for person 0's turns, -1 for person
1's)`` is > 0. A model that ignores the references (or follows them regardless of slot) gives 0.
Clips go to OUT/asked and OUT/swapped (``facevox eval OUT/asked --ceiling BENCH/real`` scores the asked
ones). Prints one JSON line: the margin's mean, standard deviation, standard error, share > 0 and count,
and the speaker-minus-other similarity of the asked clips (the per-turn specificity).

    .venv/bin/python benchmarks/binding_swap.py MODEL_DIR BENCH/requests.jsonl --out OUT [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from facevox.pipeline import FacevoxPipeline
from facevox.pipeline.pipeline import GenerateConfig
from facevox.pipeline.request import read_requests
from facevox.recognisers.voices import voice_embedding


def voice_embedding_file(path: str) -> np.ndarray:
    from facevox.io.media import read_audio

    return voice_embedding(read_audio(path, sample_rate=16_000), 16_000)


def turn_d(result, refs: np.ndarray, min_turn: float) -> list[tuple[int, float]]:
    """(slot, sim to A - sim to B) per turn of person 0 or 1 long enough to embed."""
    sr = result.sidecar["sample_rate"]
    out = []
    for t in result.sidecar["turns"]:
        if t["slot"] > 1 or t["end"] - t["start"] < min_turn:
            continue
        seg = result.audio[int(t["start"] * sr) : int(t["end"] * sr)]
        try:
            e = voice_embedding(seg, sr)
        except ValueError:
            continue
        s = refs @ e
        out.append((int(t["slot"]), float(s[0] - s[1])))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("requests")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--min-turn", type=float, default=0.3)
    p.add_argument("--limit", type=int, default=12, help="at most this many multi-person requests")
    a = p.parse_args()
    pipe = FacevoxPipeline.load(a.model)
    reqs = [r for r in read_requests(a.requests) if len(r.people) >= 2][: a.limit]
    margins, specificity = [], []
    for req in reqs:
        a_voice, b_voice = req.people[0].voice, req.people[1].voice
        refs = np.stack([voice_embedding_file(a_voice), voice_embedding_file(b_voice)])
        swapped_people = (
            dataclasses.replace(req.people[0], voice=b_voice),
            dataclasses.replace(req.people[1], voice=a_voice),
            *req.people[2:],
        )
        for seed in a.seeds:
            asked = dataclasses.replace(req, seed=seed, name=f"{req.name}_s{seed}")
            swapped = dataclasses.replace(asked, people=swapped_people, name=f"{req.name}_s{seed}_swap")
            cfg = GenerateConfig(steps=a.steps)
            d_asked = turn_d(pipe(asked, Path(a.out) / "asked", config=cfg), refs, a.min_turn)
            d_swap = turn_d(pipe(swapped, Path(a.out) / "swapped", config=cfg), refs, a.min_turn)
            for (k, d0), (_, d1) in zip(d_asked, d_swap, strict=True):
                sign = 1.0 if k == 0 else -1.0
                margins.append((d0 - d1) * sign)
                specificity.append(d0 * sign)
    m, s = np.asarray(margins), np.asarray(specificity)
    n = len(m)
    print(
        json.dumps(
            {
                "model": a.model,
                "requests": len(reqs),
                "seeds": a.seeds,
                "turns": n,
                "swap_margin_mean": float(m.mean()) if n else None,
                "swap_margin_std": float(m.std()) if n else None,
                "swap_margin_sem": float(m.std() / np.sqrt(n)) if n > 1 else None,
                "swap_margin_positive": float((m > 0).mean()) if n else None,
                "asked_own_minus_other": float(s.mean()) if n else None,
            }
        )
    )


if __name__ == "__main__":
    main()
