"""Fabricated public-weights folders for fine-tuning tests: an Ovi checkpoint folder at reduced width
(random tensors in Ovi's key layout, ``describe("ovi", dims)``, with its tower JSONs) and a curated
folder of two one-person clips to encode with the release's (reduced) codecs."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import save_file

from curate_fixtures import talking_clip
from facevox.io.media import read_av
from facevox.models.manifests.describe import Dims, describe
from release_fixtures import E2E_DIMS


def make_ovi_dir(root: Path, dims: Dims = E2E_DIMS, heads: int = 4) -> tuple[Path, dict[str, torch.Tensor]]:
    """``root/Ovi/model.safetensors`` in Ovi's layout, with Ovi's ``video.json`` / ``audio.json`` beside it."""
    g = torch.Generator().manual_seed(1)
    src = {k: torch.randn(*v, generator=g) * 0.05 for k, v in describe("ovi", dims).items()}
    folder = root / "Ovi"
    folder.mkdir(parents=True)
    save_file(src, str(folder / "model.safetensors"))
    tower = {"dim": dims.dim, "ffn_dim": dims.ffn, "freq_dim": dims.freq, "num_heads": heads}
    tower |= {"num_layers": dims.depth, "text_dim": dims.text, "qk_norm": True, "cross_attn_norm": True}
    video = {**tower, "patch_size": [1, 2, 2], "in_dim": dims.video_channels, "model_type": "ti2v"}
    audio = {
        **tower,
        "patch_size": [1],
        "in_dim": dims.audio_channels,
        "temporal_rope_scaling_factor": 0.19676,
    }
    (folder / "video.json").write_text(json.dumps(video))
    (folder / "audio.json").write_text(json.dumps(audio))
    return folder, src


def make_curated(d: Path) -> Path:
    """Two 1.5 s one-person clips at 10 fps, each person's references taken from the other clip."""
    import soundfile as sf

    records = []
    clips = {}
    for i, text in enumerate(["hello there my friend", "how are you doing"]):
        path = d / "videos" / f"c{i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        talking_clip(path, [(0.1, text)], 1.5, flip=bool(i))
        clips[i] = read_av(path)
    (d / "crops").mkdir()
    for i in range(2):
        other = 1 - i
        Image.fromarray(clips[other].video[5][20:140, 40:160]).save(d / "crops" / f"p{i}.png")
        sf.write(d / f"voice{i}.wav", clips[other].audio[:16000], 16000)
        subject = {"slot": 1, "person_id": f"P{i:05d}", "position": "centre", "appearance": "a person"}
        speech = [{"slot": 1, "start": 0.1, "end": 1.2, "text": "hello there"}]
        records.append(
            {
                "sample_id": f"c{i}_s00",
                "clip_id": f"c{i}",
                "video_path": str(path.parent / f"c{i}.mp4"),
                "start": 0.0,
                "end": 1.5,
                "start_frame": 0,
                "end_frame": clips[i].video.shape[0],
                "fps": 10.0,
                "sample_rate": 16000,
                "width": 192,
                "height": 160,
                "kind": "single",
                "multiview": False,
                "subjects": [
                    {
                        "slot": 1,
                        "person_id": f"P{i:05d}",
                        "track_id": 0,
                        "voice_id": 0,
                        "box": [40, 20, 160, 140],
                        "face_refs": [
                            {"path": f"crops/p{i}.png", "clip_id": f"c{other}", "frame": 5, "yaw": 0.0}
                        ],
                        "voice_refs": [
                            {"path": f"voice{i}.wav", "clip_id": f"c{other}", "start": 0.0, "end": 1.0}
                        ],
                    }
                ],
                "speech": [{**speech[0], "text_source": "test"}],
                "caption": {
                    "scene": {
                        "shot": "close-up",
                        "lighting": "soft",
                        "background": "grey",
                        "num_subjects": 1,
                    },
                    "subjects": [subject],
                    "speech": speech,
                },
                "caption_text": "",
            }
        )
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return d
