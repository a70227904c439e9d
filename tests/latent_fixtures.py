"""Random but learnable latent shards in the ``facevox encode`` format, for trainer tests.

Each person has a fixed random "look" (video pattern) and "voice" (audio pattern); a sample's
latents are its people's patterns plus noise, and its references are noisy copies of the same
patterns, so identity references carry real information about the target.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from facevox.data.shards import IndexEntry, LatentSample, write_index, write_null_caption, write_sample

C, T, H, W = 4, 2, 4, 4
NA, CA, E, L = 8, 6, 16, 6


def write_shards(folder: Path, *, train: int = 12, heldout: int = 4, people: int = 6, seed: int = 0) -> Path:
    g = torch.Generator().manual_seed(seed)
    looks = torch.randn(people, C, 1, H, W, generator=g)
    voices = torch.randn(people, 1, CA, generator=g)
    entries = []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(train + heldout):
        split = "train" if i < train else "heldout"
        pool = range(people - 2) if split == "train" else range(people - 2, people)
        K = 1 + i % 2
        who = [list(pool)[(i + k) % len(pool)] for k in range(K)]
        video = sum(looks[p].expand(C, T, H, W) for p in who) / K + 0.3 * torch.randn(C, T, H, W, generator=g)
        audio = sum(voices[p].expand(NA, CA) for p in who) / K + 0.3 * torch.randn(NA, CA, generator=g)
        tags = torch.full((L,), -1)
        for k in range(K):
            tags[1 + 2 * k] = k

        def faces(v: int, who: list[int] = who, K: int = K) -> torch.Tensor:
            return torch.stack([looks[p].expand(v, C, 1, H, W) for p in who]) + 0.2 * torch.randn(
                K, v, C, 1, H, W, generator=g
            )

        def voice(n: int, who: list[int] = who, K: int = K) -> torch.Tensor:
            return torch.stack([voices[p].expand(n, CA) for p in who]) + 0.2 * torch.randn(
                K, n, CA, generator=g
            )

        s = LatentSample(
            sample_id=f"s{i:03d}",
            video_mean=video,
            video_std=torch.full((C, T, H, W), 0.05),
            audio_mean=audio,
            audio_std=torch.full((NA, CA), 0.05),
            caption=torch.randn(L, E, generator=g).half(),
            caption_mask=torch.ones(L, dtype=torch.bool),
            caption_slot_ids=tags,
            slot_ids=torch.arange(K),
            face_refs=faces(2),
            face_refs_mask=torch.ones(K, 2, dtype=torch.bool),
            voice_refs=voice(4),
            voice_refs_mask=torch.ones(K, 4, dtype=torch.bool),
            face_refs_self=faces(1),
            face_refs_self_mask=torch.ones(K, 1, dtype=torch.bool),
            voice_refs_self=voice(3),
            voice_refs_self_mask=torch.ones(K, 3, dtype=torch.bool),
            meta={
                "person_ids": [f"p{p}" for p in who],
                "split": split,
                # one face box per person, side by side (fractions of the frame)
                "face_boxes": [[k / K + 0.1 / K, 0.2, (k + 1) / K - 0.1 / K, 0.7] for k in range(K)],
                # one turn each, one after the other: the turn embedding sees who speaks when
                "caption": {
                    "speech": [
                        {"slot": k + 1, "start": k / K, "end": (k + 1) / K, "text": "x"} for k in range(K)
                    ]
                },
            },
        )
        write_sample(folder / "samples" / f"{s.sample_id}.safetensors", s)
        entries.append(
            IndexEntry(
                sample_id=s.sample_id,
                file=f"samples/{s.sample_id}.safetensors",
                split=split,
                num_slots=K,
                person_ids=s.meta["person_ids"],
                video_shape=[C, T, H, W],
                audio_frames=NA,
                duration=1.0,
            )
        )
    write_index(folder, entries)
    write_null_caption(folder, torch.zeros(2, E).half(), torch.tensor([True, False]))
    (folder / "fixture.json").write_text(json.dumps({"seed": seed}))
    return folder


def write_photo_shards(folder: Path, *, photos: int = 8, people: int = 4, seed: int = 1) -> Path:
    """One-frame, silent samples in the ``facevox encode-photos`` format (``meta["modality"] ==
    "video"``, voice references masked), same channels and caption width as :func:`write_shards`."""
    g = torch.Generator().manual_seed(seed)
    looks = torch.randn(people, C, 1, H, W, generator=g)
    entries = []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(photos):
        p = i % people
        s = LatentSample(
            sample_id=f"ph{i:03d}",
            video_mean=looks[p] + 0.3 * torch.randn(C, 1, H, W, generator=g),
            video_std=torch.full((C, 1, H, W), 0.05),
            audio_mean=torch.zeros(2, CA),
            audio_std=torch.full((2, CA), 0.05),
            caption=torch.randn(L, E, generator=g).half(),
            caption_mask=torch.ones(L, dtype=torch.bool),
            caption_slot_ids=torch.tensor([-1, 0, -1, -1, -1, -1]),
            slot_ids=torch.arange(1),
            face_refs=looks[p].expand(1, 2, C, 1, H, W) + 0.2 * torch.randn(1, 2, C, 1, H, W, generator=g),
            face_refs_mask=torch.ones(1, 2, dtype=torch.bool),
            voice_refs=torch.zeros(1, 1, CA),
            voice_refs_mask=torch.zeros(1, 1, dtype=torch.bool),
            face_refs_self=looks[p].expand(1, 1, C, 1, H, W).clone(),
            face_refs_self_mask=torch.ones(1, 1, dtype=torch.bool),
            voice_refs_self=torch.zeros(1, 1, CA),
            voice_refs_self_mask=torch.zeros(1, 1, dtype=torch.bool),
            meta={
                "person_ids": [f"q{p}"],
                "split": "train",
                "modality": "video",
                "face_boxes": [[0.3, 0.2, 0.7, 0.8]],
                "caption": {"speech": []},
            },
        )
        write_sample(folder / "samples" / f"{s.sample_id}.safetensors", s)
        entries.append(
            IndexEntry(
                sample_id=s.sample_id,
                file=f"samples/{s.sample_id}.safetensors",
                split="train",
                num_slots=1,
                person_ids=s.meta["person_ids"],
                video_shape=[C, 1, H, W],
                audio_frames=2,
                duration=0.0,
            )
        )
    write_index(folder, entries)
    write_null_caption(folder, torch.zeros(2, E).half(), torch.tensor([True, False]))
    return folder


def write_tiny_codecs(folder: Path) -> tuple[Path, Path]:
    """A tiny Wan-style video codec (4 channels, x8 space) and mel audio codec (6 channels) with seeded
    random weights, saved as codec folders: what the encoder tests encode with."""
    from facevox.codecs.mel import MelAudioCodec, MelCodecConfig
    from facevox.codecs.video import WanVideoCodec, tiny_wan_config

    torch.manual_seed(0)
    WanVideoCodec.from_config(tiny_wan_config(base_dim=8, z_dim=4)).save_pretrained(folder / "video")
    MelAudioCodec(MelCodecConfig(width=16, latent_channels=6)).save_pretrained(folder / "audio")
    return folder / "video", folder / "audio"
