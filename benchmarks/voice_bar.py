"""How well does resemblyzer tell our procedural voices apart, and what does each part add?

Prints the voice bar (resemblyzer verification EER over fresh voices, a different random sentence
per utterance) for the full voice distribution and for two ablations measured in the same run:
"variants only" (espeak accent x variant, everything else at espeak defaults) and "no sox/noise"
(pitch, range and speed kept; spectral shift, EQ tilt and breath noise removed). Also prints
seconds of speech synthesised per wall-clock second (redrawn sentences count as wall time). With ``--asr N`` it transcribes N utterances
with pocketsphinx (its bundled US English model; poor on synthetic speech) and prints the word
error rate of our voices next to stock espeak-ng ``en-us`` on the same sentences.

    .venv/bin/python benchmarks/voice_bar.py [--voices 50] [--utterances 4] [--seed 7000] [--asr 12]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

from facevox.evaluation.metrics import word_errors
from facevox.synth.voice import VoiceIdentity, synthesize
from facevox.synth.voice_bar import held_out_voices, utterance, verification_eer


def variants_only(v: VoiceIdentity) -> VoiceIdentity:
    return VoiceIdentity(
        accent=v.accent, variant=v.variant, pitch=50, speed=160, spectral_shift=0, bass=0.0, treble=0.0
    )


def no_post_processing(v: VoiceIdentity) -> VoiceIdentity:
    return dataclasses.replace(v, spectral_shift=0, bass=0.0, treble=0.0, breathiness=0.0)


def asr_wer(voices: list[VoiceIdentity], count: int, seed: int) -> dict[str, float]:
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=16_000, logfn="/dev/null")
    stock = VoiceIdentity(
        accent="en-us", variant="m1", pitch=50, speed=160, spectral_shift=0, bass=0.0, treble=0.0
    )
    rng = np.random.default_rng(seed)
    errors = {"ours": 0, "stock_espeak_en_us": 0}
    words = 0
    for k in range(count):
        text, _ = utterance(stock, rng)
        words += len(text.split())
        for name, voice in (("ours", voices[k % len(voices)]), ("stock_espeak_en_us", stock)):
            pcm = (synthesize(voice, text) * 32767).astype(np.int16).tobytes()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp().hypstr.split() if decoder.hyp() is not None else []
            errors[name] += word_errors(text.split(), hyp)
    return {name: round(e / words, 3) for name, e in errors.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", type=int, default=50)
    ap.add_argument("--utterances", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7_000)
    ap.add_argument("--asr", type=int, default=0, help="pocketsphinx WER over this many utterances (0: skip)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    voices = held_out_voices(args.voices, args.seed)
    rows = {}
    for name, transform in (
        ("full", None),
        ("no_sox_noise", no_post_processing),
        ("variants_only", variants_only),
    ):
        vs = voices if transform is None else [transform(v) for v in voices]
        t = time.perf_counter()
        rows[name] = verification_eer(vs, args.utterances, args.seed)
        rows[name]["wall_seconds"] = round(time.perf_counter() - t, 1)
    print(
        f"{'voices':<14} {'EER':>6} {'same':>6} {'diff':>6} {'speech s/wall s':>16} {'utt s (min/med/max)':>22}"
    )
    for name, r in rows.items():
        print(
            f"{name:<14} {r['eer']:>6.3f} {r['mean_same_similarity']:>6.3f} {r['mean_different_similarity']:>6.3f}"
            f" {r['synthesis_realtime_factor']:>16.1f} {str(r['utterance_seconds_min_median_max']):>22}"
        )
    full = rows["full"]
    print(
        f"full: {full['voices']} voices x {full['utterances_per_voice']} utterances,"
        f" {full['same_pairs']} same / {full['different_pairs']} different pairs,"
        f" EER {full['eer']:.3f} at cosine {full['threshold']:.3f};"
        f" EER ratio variants_only/full = {rows['variants_only']['eer'] / max(full['eer'], 1e-9):.1f}"
    )
    if args.asr:
        print("pocketsphinx WER:", json.dumps(asr_wer(voices, args.asr, args.seed)))


if __name__ == "__main__":
    main()
