"""Active speaker binding: which face track speaks which speech segment (audio-visual synchrony).

Evidence: a track's mouth-region motion (``Track.mouth_motion``, per frame), compared with that
face's own resting level (its motion while nobody speaks). A segment's score for a track is the
mean over the segment's frames weighted by the speech envelope (loud frames count more, so the
score follows the syllables and not a head turn in a pause); see :func:`segment_scores`.

Binding is decided at two levels: each diarized voice id is assigned to one on-screen person by
the Hungarian method over summed segment scores (a voice is one person throughout the clip), and
a segment whose own evidence clearly points at another visible face (diarization confused two
voices, e.g. in overlapped speech) follows its own evidence. Voices whose best score stays below
``bind_min_z`` stay unbound (an off-screen speaker or a narrator).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from facevox.curate.records import ClipWork, SpeechSegment, Track
from facevox.curate.step import Drop, Resources


def speech_envelope(audio: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """RMS of the audio over each video frame: (num_frames,)."""
    hop = sample_rate / fps
    out = np.zeros(num_frames, np.float32)
    for f in range(num_frames):
        block = audio[int(f * hop) : int((f + 1) * hop)]
        out[f] = float(np.sqrt(np.mean(block.astype(np.float64) ** 2))) if block.size else 0.0
    return out


def segment_scores(
    segments: list[SpeechSegment], tracks: list[Track], envelope: np.ndarray, fps: float
) -> np.ndarray:
    """(num_segments, num_tracks) evidence that a track speaks a segment; -inf where the track is on
    screen for less than half of the segment.

    Evidence = envelope-weighted mean mouth motion over the segment, minus the track's median motion
    in frames where nobody speaks (its mouth at rest), over the track's motion spread. A face that
    is silent while others talk scores near 0; the speaker's face scores clearly above.
    """
    speaking = np.zeros(envelope.shape[0], bool)
    for seg in segments:
        speaking[int(seg.start * fps) : int(np.ceil(seg.end * fps))] = True
    scores = np.full((len(segments), len(tracks)), -np.inf)
    for k, tr in enumerate(tracks):
        motion = np.asarray(tr.mouth_motion, np.float64)  # (F_track,)
        first = tr.frames[0]
        quiet = motion[~speaking[first : first + motion.shape[0]]]
        rest = float(np.median(quiet)) if quiet.size >= 5 else float(np.median(motion))
        z = (motion - rest) / (motion.std() + 1e-6)
        for i, seg in enumerate(segments):
            fa, fb = int(seg.start * fps), max(int(seg.start * fps) + 1, int(np.ceil(seg.end * fps)))
            a, b = max(fa, first), min(fb, tr.frames[-1] + 1)
            if b - a < 0.5 * (fb - fa):
                continue
            w = envelope[a:b].astype(np.float64) + 1e-6
            scores[i, k] = float((z[a - first : b - first] * w).sum() / w.sum())
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
        min_z = work.cfg.voice.bind_min_z
        env = speech_envelope(work.audio, work.sample_rate, work.fps, work.num_frames)
        scores = segment_scores(work.segments, work.tracks, env, work.fps)  # (S, K)
        people = sorted({t.local_person for t in work.tracks})
        voices = sorted({s.voice_id for s in work.segments})
        # (V, P): summed evidence of voice v for person p (best of p's tracks per segment)
        vp = np.zeros((len(voices), len(people)))
        for i, seg in enumerate(work.segments):
            for j, p in enumerate(people):
                best = max(
                    (scores[i, k] for k, t in enumerate(work.tracks) if t.local_person == p), default=-np.inf
                )
                if np.isfinite(best):
                    vp[voices.index(seg.voice_id), j] += best * (seg.end - seg.start)
        rows, cols = linear_sum_assignment(-vp)
        voice_person = {voices[r]: people[c] for r, c in zip(rows, cols, strict=True) if vp[r, c] > 0}
        for i, seg in enumerate(work.segments):
            row = scores[i]
            if not np.isfinite(row).any():
                continue
            own = int(np.argmax(row))
            pick = own
            person = voice_person.get(seg.voice_id)
            mine = [k for k, t in enumerate(work.tracks) if t.local_person == person and np.isfinite(row[k])]
            if mine:
                k_voice = max(mine, key=lambda k: row[k])
                # the voice's person keeps the segment unless another face moves clearly more
                pick = own if row[own] > row[k_voice] + 1.0 else k_voice
            if row[pick] >= min_z:
                seg.track_id = work.tracks[pick].track_id
                seg.bind_score = round(float(row[pick]), 3)
        return work
