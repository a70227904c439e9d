"""Speech segments (silero-vad), speaker embeddings (resemblyzer) and diarization into voice ids.

Diarization: each VAD region is split where the resemblyzer embeddings of the two sides differ
(speaker change inside a region: overlapping or back-to-back turns), and the pieces are clustered
into voice ids by average linkage on cosine distance. Audio is (S,) float32 mono at 16 kHz;
resemblyzer works on 40-band mel frames with a 10 ms hop.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import soundfile as sf
import torch

from facevox.curate.clustering import cluster_embeddings
from facevox.curate.config import VoiceConfig
from facevox.curate.records import ClipWork, SpeechSegment
from facevox.curate.step import Drop, Resources
from facevox.io.atomic import atomic_path

log = logging.getLogger(__name__)

MEL_HOP = 0.01  # seconds per resemblyzer mel frame


def speech_regions(
    audio: np.ndarray, model: torch.nn.Module, cfg: VoiceConfig, sample_rate: int
) -> list[tuple[float, float]]:
    """silero-vad speech regions ``[(start, end)]`` in seconds."""
    from silero_vad import get_speech_timestamps

    stamps = get_speech_timestamps(
        torch.from_numpy(np.ascontiguousarray(audio, np.float32)),
        model,
        threshold=cfg.vad_threshold,
        sampling_rate=sample_rate,
        min_speech_duration_ms=int(cfg.min_speech * 1000),
        min_silence_duration_ms=int(cfg.min_silence * 1000),
        return_seconds=True,
    )
    return [(float(s["start"]), float(s["end"])) for s in stamps]


def _embed(encoder: torch.nn.Module, mels: np.ndarray) -> np.ndarray:
    """L2-normed resemblyzer embedding (256,) of mel frames (F, 40)."""
    with torch.inference_mode():
        return encoder(torch.from_numpy(np.ascontiguousarray(mels[None], np.float32))).numpy()[0]


def split_region(mels: np.ndarray, a: int, b: int, encoder: torch.nn.Module, cfg: VoiceConfig) -> list[int]:
    """Speaker-change points (mel frames) inside ``[a, b)``: the best single split, kept when the two
    sides' embeddings are farther apart than ``cfg.change_distance``; applied again to each side."""
    min_len = round(cfg.min_side / MEL_HOP)
    if b - a < 2 * min_len:
        return []
    step = max(1, round(cfg.hop / MEL_HOP))
    best, best_d = -1, cfg.change_distance
    for m in range(a + min_len, b - min_len + 1, step):
        d = 1.0 - float(_embed(encoder, mels[a:m]) @ _embed(encoder, mels[m:b]))
        if d > best_d:
            best, best_d = m, d
    if best < 0:
        return []
    return [*split_region(mels, a, best, encoder, cfg), best, *split_region(mels, best, b, encoder, cfg)]


def diarize(
    mels: np.ndarray, regions: list[tuple[float, float]], encoder: torch.nn.Module, cfg: VoiceConfig
) -> list[tuple[float, float, int, np.ndarray]]:
    """Segments ``[(start, end, voice_id, embedding)]`` from mel frames ``(F, 40)`` and VAD regions.

    Each VAD region is split at speaker changes (:func:`split_region`); the pieces are clustered
    into voices by average linkage on cosine distance of their embeddings.
    """
    pieces: list[tuple[int, int]] = []
    for start, end in regions:
        a, b = round(start / MEL_HOP), min(mels.shape[0], round(end / MEL_HOP))
        if b - a < 10:
            continue
        cuts = [a, *split_region(mels, a, b, encoder, cfg), b]
        pieces += list(zip(cuts[:-1], cuts[1:], strict=True))
    if not pieces:
        return []
    emb = np.stack([_embed(encoder, mels[a:b]) for a, b in pieces])  # (P, 256)
    labels = cluster_embeddings(emb, cfg.same_voice_distance, "cosine")
    return [(a * MEL_HOP, b * MEL_HOP, int(v), e) for (a, b), v, e in zip(pieces, labels, emb, strict=True)]


class VoiceDiarization:
    """VAD, diarization, a speaker embedding and a 16 kHz WAV per segment."""

    name = "voice"
    resources = Resources(cpus=1.0, memory_mb=512)

    def setup(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # webrtcvad imports pkg_resources
            from resemblyzer import VoiceEncoder
        from silero_vad import load_silero_vad

        self._vad = load_silero_vad()
        self._encoder = VoiceEncoder("cpu", verbose=False)

    def process(self, work: ClipWork) -> ClipWork | Drop:
        from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram

        cfg = work.cfg.voice
        audio = work.audio
        assert audio is not None
        regions = speech_regions(audio, self._vad, cfg, work.sample_rate)
        if not regions:
            work.excluded.append(
                Drop(stage=self.name, reason="no_speech", detail="silero-vad found no speech")
            )
            return work
        wav = normalize_volume(audio.astype(np.float32), -30, increase_only=True)
        mels = wav_to_mel_spectrogram(wav)  # (F, 40), 10 ms hop
        pieces = diarize(mels, regions, self._encoder, cfg)
        sr = work.sample_rate
        for i, (a, b, v, emb) in enumerate(pieces):
            seg = SpeechSegment(
                seg_id=i, start=round(a, 3), end=round(b, 3), voice_id=v, embedding=emb.tolist()
            )
            clip = audio[int(a * sr) : int(b * sr)]
            seg.audio_path = f"audio/{work.clip_id}/s{i:03d}.wav"
            with atomic_path(work.out_path(seg.audio_path)) as tmp:
                sf.write(tmp, clip, sr, subtype="PCM_16", format="WAV")
            work.segments.append(seg)
        return work
