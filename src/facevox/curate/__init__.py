"""Data curation: raw talking videos -> identity-annotated samples (``facevox curate``).

Map phase (per video, in parallel, resumable per shard): probe/decode -> shots -> face tracks
and identities -> voice diarization -> active speaker binding -> transcripts. Reduce phase:
dataset-wide person ids -> references (no leakage) -> structured captions -> manifest.
"""
