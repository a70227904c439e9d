"""Active speaker binding: which face track speaks which speech segment (audio-visual synchrony).

Evidence: the synchrony of a person's mouth-region motion (``Track.mouth_motion``, per frame; a
person's tracks in one video joined) with the speech envelope; see :func:`segment_scores`.

Binding is decided at two levels: each diarized voice id is assigned to one on-screen person by
the Hungarian method over summed segment scores (a voice is one person throughout the clip), and
a segment whose own evidence clearly points at another visible face (diarization confused two
voices, e.g. in overlapped speech) follows its own evidence. Voices whose best score stays below
``bind_min_sync`` stay unbound (an off-screen speaker or a narrator).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

from facevox.curate.records import ClipWork, Track
from facevox.curate.step import Drop, Resources


def speech_envelope(audio: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """RMS of the audio over each video frame: (num_frames,)."""
    hop = sample_rate / fps
    out = np.zeros(num_frames, np.float32)
    for f in range(num_frames):
        block = audio[int(f * hop) : int((f + 1) * hop)]
        out[f] = float(np.sqrt(np.mean(block.astype(np.float64) ** 2))) if block.size else 0.0
    return out


def _smooth(x: np.ndarray, k: int = 3) -> np.ndarray:
    return np.convolve(x, np.ones(k) / k, mode="same")


def person_motion(tracks: list[Track], person: int, num_frames: int) -> np.ndarray:
    """(num_frames,) mouth motion of one local person over all their tracks; NaN where off screen."""
    out = np.full(num_frames, np.nan)
    for tr in tracks:
        if tr.local_person == person:
            out[tr.frames[0] : tr.frames[0] + len(tr.mouth_motion)] = tr.mouth_motion[
                : num_frames - tr.frames[0]
            ]
    return out


class TimeSpan(Protocol):
    """A span of seconds, e.g. a :class:`SpeechSegment`."""

    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float: ...


def segment_scores(
    segments: Sequence[TimeSpan], motions: np.ndarray, envelope: np.ndarray, fps: float, pad: float = 0.5
) -> np.ndarray:
    """(num_segments, num_people) synchrony of each person's mouth with each segment's speech.

    Synchrony = Pearson correlation between the smoothed mouth motion and the smoothed change of
    the speech envelope (a mouth moves when the loudness changes: syllable onsets and offsets),
    over the segment padded by ``pad`` seconds. Correlation is blind to a face's own noise level
    (stubble, compression), which a raw motion level is not. -inf where the person is on screen
    for less than half of the segment.
    """
    n = envelope.shape[0]
    d_env = _smooth(np.abs(np.diff(envelope, prepend=envelope[:1])))  # (F,)
    scores = np.full((len(segments), motions.shape[0]), -np.inf)
    for i, seg in enumerate(segments):
        fa, fb = int(seg.start * fps), min(n, max(int(seg.start * fps) + 1, int(np.ceil(seg.end * fps))))
        a, b = max(0, fa - int(pad * fps)), min(n, fb + int(pad * fps))
        for j, motion in enumerate(motions):
            present = ~np.isnan(motion[a:b])
            if (~np.isnan(motion[fa:fb])).sum() < 0.5 * (fb - fa) or present.sum() < 5:
                continue
            m = _smooth(np.nan_to_num(motion[a:b]))[present]
            e = d_env[a:b][present]
            if m.std() < 1e-9 or e.std() < 1e-9:
                scores[i, j] = 0.0
                continue
            scores[i, j] = float(np.corrcoef(m, e)[0, 1])
    return scores


class ActiveSpeaker:
    """Bind speech segments to face tracks (``SpeechSegment.track_id``)."""

    name = "binding"
    resources = Resources(cpus=0.2, memory_mb=64)

    def setup(self) -> None:
        return None

    def process(self, work: ClipWork) -> ClipWork | Drop:
        if not work.segments or not work.tracks:
            return work
        assert work.audio is not None
        cfg = work.cfg.voice
        n = work.num_frames
        env = speech_envelope(work.audio, work.sample_rate, work.fps, n)
        people = sorted({t.local_person for t in work.tracks})
        motions = np.stack([person_motion(work.tracks, p, n) for p in people])  # (P, F)
        scores = segment_scores(work.segments, motions, env, work.fps)  # (S, P)
        voices = sorted({s.voice_id for s in work.segments})
        vp = np.zeros((len(voices), len(people)))  # (V, P) duration-weighted synchrony
        for i, seg in enumerate(work.segments):
            ok = np.isfinite(scores[i])
            vp[voices.index(seg.voice_id), ok] += scores[i, ok] * (seg.end - seg.start)
        rows, cols = linear_sum_assignment(-vp)
        voice_person = {voices[r]: c for r, c in zip(rows, cols, strict=True) if vp[r, c] > 0}
        for i, seg in enumerate(work.segments):
            row = scores[i]
            if not np.isfinite(row).any():
                continue
            pick = int(np.argmax(row))
            j = voice_person.get(seg.voice_id)
            # the voice's person keeps the segment unless another face is clearly more in sync
            if j is not None and np.isfinite(row[j]) and row[pick] - row[j] < cfg.bind_margin:
                pick = j
            if row[pick] < cfg.bind_min_sync:
                continue
            mine = [t for t in work.tracks if t.local_person == people[pick]]
            fa, fb = seg.start * work.fps, seg.end * work.fps
            best = max(mine, key=lambda t: min(fb, t.frames[-1] + 1) - max(fa, t.frames[0]))
            seg.track_id = best.track_id
            seg.bind_score = round(float(row[pick]), 3)
        return work
