"""Codec benchmark on a synthetic world's held-out people (never seen by train-codec).

Video (``--video``): clips resized to ``--width x --height`` as ``facevox encode`` does (128x96),
first ``--frames`` frames (25, encode's window), encoded and decoded with the posterior mean. Prints
PSNR and SSIM over all frames (and of frame 0 alone: face references are one-frame latents), the
colour cast per clip (the largest mean signed error of one channel, in grey levels), and
dlib face identity (similarity ``1 - distance``, both images upsampled 4x, face box from the ground
truth) between original and reconstruction, beside the bars of the same original view: same person
in another clip ("self-similarity") and different people.

Audio (``--audio``): the first ``--seconds`` of each clip's 16 kHz speech through the codec. Prints
log-mel L1 (80 mels) and resemblyzer cosine similarity original vs reconstruction, beside the same
and different speaker bars of the originals.

    python benchmarks/codec_bench.py --world runs/world --video runs/codec-video --audio runs/codec-audio
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facevox.codecs.loading import load_video_codec
from facevox.codecs.training import load_trained
from facevox.data.encode import video_tensor
from facevox.io.media import read_av
from facevox.recognisers.faces import face_embeddings
from facevox.recognisers.voices import voice_embedding


def heldout_clips(world: Path, limit: int) -> list[dict]:
    """Held-out clips with one person (so the identity of the face and the voice is unambiguous)."""
    out = []
    for meta in sorted((world / "ground_truth" / "clips").glob("*.json")):
        info = json.loads(meta.read_text())
        if info["split"] == "heldout" and len(info["people"]) == 1:
            out.append(info)
    return out[:limit]


def encode_view(video: np.ndarray, width: int, height: int) -> tuple[torch.Tensor, float, float]:
    """(T, H, W, 3) uint8 -> (3, T, height, width) in [-1, 1], exactly as ``facevox encode`` resizes,
    with the x and y scales used."""
    return video_tensor(video, width, height)[0], width / video.shape[2], height / video.shape[1]


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))


def face_embedding_view(frame: np.ndarray, box: list[float], sx: float, sy: float) -> np.ndarray | None:
    """dlib embedding of a face in the encode view upsampled 4x, face box mapped from the full frame."""
    up = 4
    big = np.asarray(
        F.interpolate(
            torch.from_numpy(frame).permute(2, 0, 1)[None].float(), scale_factor=up, mode="bicubic"
        )[0]
        .clamp(0, 255)
        .byte()
        .permute(1, 2, 0)
    )
    bx = [box[0] * sx * up, box[1] * sy * up, box[2] * sx * up, box[3] * sy * up]
    bx = [float(np.clip(v, 0, lim - 1)) for v, lim in zip(bx, (big.shape[1], big.shape[0]) * 2, strict=True)]
    if bx[2] - bx[0] < 40 or bx[3] - bx[1] < 40:
        return None
    emb = face_embeddings(big, [bx])
    return emb[0] if len(emb) else None


def pair_bars(embs: dict[str, list[np.ndarray]], sim) -> tuple[float, float]:  # noqa: ANN001
    """Mean similarity of same-person pairs across clips and of different-person pairs."""
    items = [(pid, e) for pid, es in embs.items() for e in es]
    same, diff = [], []
    for (pa, ea), (pb, eb) in itertools.combinations(items, 2):
        (same if pa == pb else diff).append(sim(ea, eb))
    return (float(np.mean(same)) if same else float("nan")), (float(np.mean(diff)) if diff else float("nan"))


NOISY_LATENT_STD = 0.3


def bench_video(world: Path, folder: Path, clips: list[dict], frames: int, width: int, height: int) -> dict:
    from skimage.metrics import structural_similarity

    codec = load_video_codec(folder)
    psnrs, ssims, recon_sims, casts, noisy_psnrs = [], [], [], [], []
    originals: dict[str, list[np.ndarray]] = {}
    encode_seconds = 0.0
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for info in clips:
        video = read_av(world / "videos" / f"{info['clip_id']}.mp4", max_frames=frames).video
        x, sx, sy = encode_view(video[:frames], width, height)
        with torch.no_grad():
            te = time.perf_counter()
            z = codec.encode(x[None]).mean
            encode_seconds += time.perf_counter() - te
            y = codec.decode(z)[0]
            # an imperfect latent, as a generator makes: unit-variance latents + N(0, 0.3^2)
            noisy = codec.decode(z + NOISY_LATENT_STD * torch.randn(z.shape, generator=gen))[0]
        noisy_psnrs.append(
            np.mean([psnr(to_uint8(x[:, t]), to_uint8(noisy[:, t])) for t in range(x.shape[1])])
        )
        person = info["people"][0]
        casts.append(float(((y - x) * 127.5).mean(dim=(1, 2, 3)).abs().max()))  # worst channel, grey levels
        for t in range(x.shape[1]):
            a, b = to_uint8(x[:, t]), to_uint8(y[:, t])
            psnrs.append(psnr(a, b))
            ssims.append(structural_similarity(a, b, channel_axis=2, data_range=255))
        for t in (0, frames - 1):
            ea = face_embedding_view(to_uint8(x[:, t]), person["boxes"][t], sx, sy)
            eb = face_embedding_view(to_uint8(y[:, t]), person["boxes"][t], sx, sy)
            if ea is not None and eb is not None:
                recon_sims.append(1 - float(np.linalg.norm(ea - eb)))
            if ea is not None and t == 0:
                originals.setdefault(person["person_id"], []).append(ea)
    seconds = time.perf_counter() - t0
    same, diff = pair_bars(originals, lambda a, b: 1 - float(np.linalg.norm(a - b)))
    recon = float(np.mean(recon_sims)) if recon_sims else float("nan")
    return {
        "clips": len(clips),
        "frames_per_clip": frames,
        "psnr_db": float(np.mean(psnrs)),
        "ssim": float(np.mean(ssims)),
        "face_sim_orig_vs_recon": recon,
        "face_pairs_measured": len(recon_sims),
        "face_sim_same_person_other_clip": same,
        "face_sim_different_people": diff,
        "recon_over_self_similarity": recon / same,
        "view": f"{width}x{height}",
        "psnr_db_first_frame": float(np.mean(psnrs[::frames])),
        # per clip, the largest mean signed error of one colour channel (a cast, not blur)
        "colour_cast_grey_levels": [round(c, 1) for c in casts],
        "latent_shape": list(codec.latent_shape(frames, height, width)),
        "codec": type(codec).__name__,
        f"psnr_db_latent_noise_{NOISY_LATENT_STD}": float(np.mean(noisy_psnrs)),
        # media seconds encoded per wall second, at the clip's 25 fps (the resize not counted)
        "encode_x_real_time": len(clips) * frames / 25.0 / encode_seconds,
        "seconds": seconds,
    }


def log_mel(audio: np.ndarray, sr: int = 16_000) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(y=audio, sr=sr, n_fft=1024, hop_length=256, n_mels=80)
    return np.log10(np.maximum(mel, 1e-5))


def mel_griffin_lim(audio: np.ndarray, sr: int = 16_000) -> np.ndarray:
    """The original's own 80-mel spectrogram inverted by Griffin-Lim (32 iterations): the ceiling of a
    mel-spectrogram codec whose waveform decoder is Griffin-Lim."""
    import librosa

    mel = librosa.feature.melspectrogram(y=audio, sr=sr, n_fft=1024, hop_length=256, n_mels=80)
    out = librosa.feature.inverse.mel_to_audio(mel, sr=sr, n_fft=1024, hop_length=256, n_iter=32)
    return np.pad(out, (0, max(0, audio.shape[0] - out.shape[0])))[: audio.shape[0]].astype(np.float32)


def bench_audio(world: Path, folder: Path, clips: list[dict], seconds: float) -> dict:
    codec = load_trained(folder)  # Oobleck or mel + Griffin-Lim, from the folder's config.yaml
    mel_l1, sims, gl_sims = [], [], []
    originals: dict[str, list[np.ndarray]] = {}
    t0 = time.perf_counter()
    for info in clips:
        frames = int(np.ceil(seconds * info["fps"])) + 1  # read_av trims audio to the frames read
        audio = read_av(world / "videos" / f"{info['clip_id']}.mp4", max_frames=frames).audio
        if audio is None:
            continue
        audio = audio[: int(seconds * codec.sample_rate)]
        with torch.no_grad():
            x = torch.from_numpy(audio)[None, None]
            y = codec.decode(codec.encode(x).mean)[0, 0, : audio.shape[0]].numpy()
        mel_l1.append(float(np.abs(log_mel(audio) - log_mel(y)).mean()))
        ea, eb = voice_embedding(audio), voice_embedding(y)
        sims.append(float(ea @ eb))
        gl_sims.append(float(ea @ voice_embedding(mel_griffin_lim(audio))))
        originals.setdefault(info["people"][0]["person_id"], []).append(ea)
    elapsed = time.perf_counter() - t0
    same, diff = pair_bars(originals, lambda a, b: float(a @ b))
    return {
        "clips": len(mel_l1),
        "seconds_per_clip": seconds,
        "log_mel_l1": float(np.mean(mel_l1)),
        "voice_sim_orig_vs_recon": float(np.mean(sims)),
        "voice_sim_min": float(np.min(sims)),
        "voice_sim_orig_vs_mel_griffin_lim": float(np.mean(gl_sims)),
        "voice_sim_same_person_other_clip": same,
        "voice_sim_different_people": diff,
        "codec": type(codec).__name__,
        "hop": codec.time_stride,
        "latent_channels": codec.latent_channels,
        "seconds": elapsed,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", type=Path, required=True)
    p.add_argument("--video", type=Path, help="a trained video codec folder")
    p.add_argument("--audio", type=Path, help="a trained audio codec folder")
    p.add_argument("--clips", type=int, default=12, help="held-out single-person clips to use")
    p.add_argument("--frames", type=int, default=25, help="video frames per clip (1 + 4k; encode's window)")
    p.add_argument("--width", type=int, default=128, help="frames resized to this (encode's default)")
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--seconds", type=float, default=4.0, help="audio seconds per clip")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    clips = heldout_clips(args.world, args.clips)
    if not clips:
        raise SystemExit(f"no held-out single-person clips in {args.world}")
    report = {}
    if args.video:
        report["video"] = bench_video(args.world, args.video, clips, args.frames, args.width, args.height)
    if args.audio:
        report["audio"] = bench_audio(args.world, args.audio, clips, args.seconds)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
