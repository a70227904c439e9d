"""One synthetic talking clip: a dialogue, a layout, and the frames and audio it produces.

A clip is planned from its own random generator (so clips can be made in any order, in parallel,
with the same result): who is in frame and where, the turn-taking dialogue (speech segments with
silences and some overlaps), head pose, lighting, background and camera nuisance. Each person's
mouth opening is driven by the envelope of their *own* speech track, so the active speaker's
mouth moves with the audio and listeners' mouths stay closed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from facevox.synth.config import SynthConfig
from facevox.synth.face import FaceIdentity, FaceRenderer, HeadPose
from facevox.synth.voice import VoiceIdentity, speech_envelope, synthesize
from facevox.synth.words import random_sentence

EXPOSURE_TARGET = 0.5  # mean luminance the camera aims for on the darkest face


@dataclass(frozen=True)
class Person:
    person_id: str
    split: str  # "train" | "heldout"
    face: FaceIdentity
    voice: VoiceIdentity

    def to_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "split": self.split,
            "face": self.face.to_dict(),
            "voice": self.voice.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Person:
        return cls(
            d["person_id"], d["split"], FaceIdentity.from_dict(d["face"]), VoiceIdentity.from_dict(d["voice"])
        )


@dataclass(frozen=True)
class Segment:
    slot: int  # index of the speaker among the clip's people
    start: float  # seconds
    end: float
    text: str


@dataclass
class ClipPlan:
    clip_id: str
    split: str
    people: list[Person]
    segments: list[Segment]
    tracks: list[np.ndarray]  # per person (S,) float32 speech track
    duration: float
    num_frames: int
    centres: list[tuple[float, float]]  # head centre per person, in pixels
    head_px: float  # displayed canvas size in pixels
    base_pose: list[tuple[float, float, float]]  # (yaw, pitch, roll) per person
    light: tuple[float, float, float]
    ambient: float
    clothes: list[tuple[float, float, float]]
    blur: float
    noise: float
    crf: int
    extras: dict[str, Any] = field(default_factory=dict)


def _trim_silence(audio: np.ndarray, sr: int, threshold: float = 0.01) -> np.ndarray:
    """Drop leading and trailing silence (espeak pads its output) so segment times are tight."""
    frame = max(1, sr // 100)
    n = len(audio) // frame
    if n == 0:
        return audio
    rms = np.sqrt((audio[: n * frame].reshape(n, frame) ** 2).mean(1))
    active = np.flatnonzero(rms > threshold * max(rms.max(), 1e-9) * 5)
    if active.size == 0:
        return audio[:0]
    return audio[active[0] * frame : (active[-1] + 1) * frame]


def plan_clip(
    clip_id: str, split: str, people: list[Person], cfg: SynthConfig, rng: np.random.Generator
) -> ClipPlan:
    """Plan a clip: dialogue audio first (it fixes the duration), then layout and nuisance."""
    sr, k = cfg.sample_rate, len(people)
    cursor = float(rng.uniform(0.15, 0.5))
    placed: list[tuple[int, float, np.ndarray, str]] = []
    speaker = int(rng.integers(k))
    target = float(rng.uniform(cfg.min_duration, cfg.max_duration))
    for _attempt in range(40):
        lo, hi = cfg.words_per_turn
        text = random_sentence(rng, lo, hi)
        audio = _trim_silence(synthesize(people[speaker].voice, text, sr), sr)
        length = len(audio) / sr
        if length == 0:
            continue
        if cursor + length > cfg.max_duration - 0.1:
            if placed:
                break
            lo = hi = 1 if hi <= 2 else max(1, hi // 2)
            continue
        placed.append((speaker, cursor, audio, text))
        end = cursor + length
        if end >= target - 0.3:
            break
        if k > 1 and rng.random() < cfg.overlap_prob:
            cursor = end - float(rng.uniform(0.2, min(0.6, length * 0.5)))
        else:
            cursor = end + float(rng.uniform(0.15, 0.9))
        if k > 1 and rng.random() < 0.85:
            speaker = int((speaker + rng.integers(1, k)) % k)
    if not placed:
        raise RuntimeError(f"{clip_id}: could not fit any speech into {cfg.max_duration} s")
    last_end = max(start + len(a) / sr for _, start, a, _ in placed)
    duration = min(cfg.max_duration, max(cfg.min_duration, last_end + float(rng.uniform(0.2, 0.5))))
    num_frames = max(1, math.floor(duration * cfg.fps))
    duration = num_frames / cfg.fps
    n = round(duration * sr)
    tracks = [np.zeros(n, np.float32) for _ in people]
    segments = []
    for slot, start, audio, text in placed:
        i0 = round(start * sr)
        seg = audio[: max(0, n - i0)]
        tracks[slot][i0 : i0 + len(seg)] += seg
        segments.append(Segment(slot, round(start, 4), round(start + len(seg) / sr, 4), text))

    # layout: one close-up, a two-shot or a three-shot
    W, H = cfg.width, cfg.height
    head_frac = {1: rng.uniform(0.78, 0.95), 2: rng.uniform(0.58, 0.68), 3: rng.uniform(0.46, 0.52)}[k]
    head_px = float(min(head_frac * H, 0.92 * W / k * 1.35))
    xs = {1: [0.5], 2: [0.28, 0.72], 3: [0.18, 0.5, 0.82]}[k]
    centres = [(float((x + rng.uniform(-0.04, 0.04)) * W), float(H * rng.uniform(0.40, 0.50))) for x in xs]
    base_pose = []
    for (cx, _), _p in zip(centres, people, strict=True):
        towards = -math.copysign(1.0, cx - W / 2) if k > 1 and abs(cx - W / 2) > 1 else 0.0
        yaw = float(
            np.clip(rng.uniform(-18, 18) + towards * rng.uniform(0, 8), -cfg.max_yaw + 6, cfg.max_yaw - 6)
        )
        base_pose.append(
            (yaw, float(rng.uniform(-0.5, 0.5) * cfg.max_pitch), float(rng.uniform(-0.5, 0.5) * cfg.max_roll))
        )
    return ClipPlan(
        clip_id=clip_id,
        split=split,
        people=people,
        segments=segments,
        tracks=tracks,
        duration=duration,
        num_frames=num_frames,
        centres=centres,
        head_px=head_px,
        base_pose=base_pose,
        light=(float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.8, 0.0)), float(rng.uniform(0.6, 1.0))),
        ambient=float(rng.uniform(0.35, 0.6)),
        clothes=[tuple(float(c) for c in rng.uniform(0.05, 0.85, 3)) for _ in people],  # type: ignore[misc]
        blur=float(rng.uniform(*cfg.blur)),
        noise=float(rng.uniform(*cfg.noise)),
        crf=int(rng.integers(cfg.crf[0], cfg.crf[1] + 1)),
        extras={"background_seed": int(rng.integers(2**31))},
    )


def _background(W: int, H: int, rng: np.random.Generator) -> np.ndarray:
    """A plausible room: a wall with a vertical gradient, a few blurred shapes, a vignette."""
    wall = rng.uniform(0.25, 0.85, 3).astype(np.float32)
    y = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    img = wall * (1.05 - 0.25 * y) * np.ones((H, W, 3), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, W)), int(rng.integers(0, H))
        w, h = int(rng.integers(W // 10, W // 2)), int(rng.integers(H // 10, H // 2))
        cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), tuple(float(c) for c in rng.uniform(0.1, 0.95, 3)), -1)
    img = cv2.GaussianBlur(img, (0, 0), max(W, H) / 80)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    vig = 1 - 0.25 * (((xx - W / 2) / W) ** 2 + ((yy - H / 2) / H) ** 2) * 2
    return np.clip(img * vig[..., None], 0, 1)


def _mouth_curve(track: np.ndarray, sr: int, fps: float, num_frames: int) -> np.ndarray:
    env = speech_envelope(track, sr, fps)[:num_frames]
    if len(env) < num_frames:
        env = np.pad(env, (0, num_frames - len(env)))
    return np.clip(env * 1.3, 0, 1).astype(np.float32)


def _blinks(num_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(num_frames, np.float32)
    t = rng.uniform(0.3, 3.0)
    while t * fps < num_frames:
        i = int(t * fps)
        for d, v in enumerate((0.6, 1.0, 0.5)):
            if i + d < num_frames:
                out[i + d] = v
        t += rng.uniform(2.0, 6.0)
    return out


def render_clip(
    plan: ClipPlan, cfg: SynthConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Render frames (T, H, W, 3) uint8, the mixed audio (S,) and per-person ground-truth tracks."""
    W, H, T, fps = cfg.width, cfg.height, plan.num_frames, cfg.fps
    bg = _background(W, H, np.random.default_rng(plan.extras["background_seed"]))
    S = max(64, int(round(plan.head_px)) // 2 * 2)
    renderer = FaceRenderer(S)
    mouths = [_mouth_curve(tr, cfg.sample_rate, fps, T) for tr in plan.tracks]
    blinks = [_blinks(T, fps, rng) for _ in plan.people]
    t_axis = np.arange(T, dtype=np.float32) / fps
    motion = []
    for _ in plan.people:
        ph = rng.uniform(0, 2 * np.pi, 3)
        fr = rng.uniform(0.15, 0.5, 3)
        amp = np.array([4.0, 3.0, 2.0], np.float32) * (0.0 if plan.extras.get("still") else 1.0)
        motion.append(amp[:, None] * np.sin(2 * np.pi * fr[:, None] * t_axis[None] + ph[:, None]))
    # static layer: background + bodies (necks and shoulders under each head)
    base = bg.copy()
    for (cx, cy), person, cloth in zip(plan.centres, plan.people, plan.clothes, strict=True):
        skin = np.array(person.face.skin, np.float32) * 0.8
        neck_w, top = S * 0.16, cy + S * 0.25
        cv2.rectangle(
            base, (int(cx - neck_w), int(top)), (int(cx + neck_w), int(cy + S * 0.55)), skin.tolist(), -1
        )
        cv2.ellipse(
            base,
            (int(cx), int(cy + S * 0.75)),
            (int(S * 0.55), int(S * 0.32)),
            0,
            180,
            360,
            cloth,
            -1,
            cv2.LINE_AA,
        )
        cv2.rectangle(base, (int(cx - S * 0.55), int(cy + S * 0.75)), (int(cx + S * 0.55), H), cloth, -1)
    # camera auto-exposure metered on the darkest face (skin albedo under the clip's nominal shading)
    lum = [
        float(np.dot(person.face.skin, (0.2126, 0.7152, 0.0722))) * (plan.ambient + (1 - plan.ambient) * 0.7)
        for person in plan.people
    ]
    gain = float(np.clip(EXPOSURE_TARGET / min(lum), 1.0, 2.5))
    frames = np.empty((T, H, W, 3), np.uint8)
    boxes: list[list[list[float]]] = [[] for _ in plan.people]
    yaws: list[list[float]] = [[] for _ in plan.people]
    for t in range(T):
        img = base.copy()
        for p, person in enumerate(plan.people):
            y0, p0, r0 = plan.base_pose[p]
            nod = 2.0 * mouths[p][t]
            yaw = float(np.clip(y0 + motion[p][0, t], -cfg.max_yaw, cfg.max_yaw))
            pose = HeadPose(
                yaw=yaw,
                pitch=float(np.clip(p0 + motion[p][1, t] + nod, -cfg.max_pitch, cfg.max_pitch)),
                roll=float(np.clip(r0 + motion[p][2, t], -cfg.max_roll, cfg.max_roll)),
                light=plan.light,
                ambient=plan.ambient,
                mouth_open=float(mouths[p][t]),
                blink=float(blinks[p][t]),
            )
            rgb, alpha, box_region = renderer.render(person.face, pose)
            cx, cy = plan.centres[p]
            x0, y0i = int(round(cx - S / 2)), int(round(cy - S / 2))
            _paste(img, rgb, alpha, x0, y0i)
            ys, xs = np.nonzero(box_region > 0.5)
            if len(xs):
                boxes[p].append(
                    [
                        float(np.clip(x0 + xs.min(), 0, W)),
                        float(np.clip(y0i + ys.min(), 0, H)),
                        float(np.clip(x0 + xs.max() + 1, 0, W)),
                        float(np.clip(y0i + ys.max() + 1, 0, H)),
                    ]
                )
            else:
                boxes[p].append([0.0, 0.0, 0.0, 0.0])
            yaws[p].append(round(yaw, 2))
        img = np.minimum(img * gain, 1.0)
        if plan.blur > 0.05:
            img = cv2.GaussianBlur(img, (0, 0), plan.blur)
        if plan.noise > 0:
            img = img + rng.normal(0, plan.noise, img.shape).astype(np.float32)
        frames[t] = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    mix = np.sum(plan.tracks, axis=0)
    peak = float(np.abs(mix).max())
    if peak > 0:
        mix = mix * (0.9 / peak)
    mix = (mix + rng.normal(0, 3e-4, mix.shape)).astype(np.float32)  # room tone
    gt_people = [
        {
            "person_id": person.person_id,
            "slot": p,
            "yaw": plan.base_pose[p][0],
            "pitch": plan.base_pose[p][1],
            "roll": plan.base_pose[p][2],
            "yaws": yaws[p],
            "boxes": boxes[p],
        }
        for p, person in enumerate(plan.people)
    ]
    return frames, mix, gt_people


def _paste(img: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x0: int, y0: int) -> None:
    """Alpha-composite ``rgb`` at (x0, y0) into ``img`` in place, clipped to the frame."""
    H, W = img.shape[:2]
    S = rgb.shape[0]
    ax0, ay0 = max(0, -x0), max(0, -y0)
    bx0, by0 = max(0, x0), max(0, y0)
    bx1, by1 = min(W, x0 + S), min(H, y0 + S)
    if bx1 <= bx0 or by1 <= by0:
        return
    a = alpha[ay0 : ay0 + by1 - by0, ax0 : ax0 + bx1 - bx0, None]
    region = img[by0:by1, bx0:bx1]
    img[by0:by1, bx0:bx1] = region * (1 - a) + rgb[ay0 : ay0 + by1 - by0, ax0 : ax0 + bx1 - bx0] * a


def plan_still(
    person: Person, cfg: SynthConfig, rng: np.random.Generator, clip_id: str = "still"
) -> ClipPlan:
    """A one-frame, silent close-up of ``person`` with fresh pose, light, background and camera nuisance.

    Used for reference portraits (several views of one person) and for the recogniser bars.
    """
    W, H = cfg.width, cfg.height
    head_px = float(min(rng.uniform(0.7, 0.95) * H, 0.92 * W * 1.35))
    yaw = float(rng.uniform(-1, 1) * cfg.max_yaw)
    return ClipPlan(
        clip_id=clip_id,
        split=person.split,
        people=[person],
        segments=[],
        tracks=[np.zeros(int(cfg.sample_rate // cfg.fps) + 1, np.float32)],
        duration=1 / cfg.fps,
        num_frames=1,
        centres=[(float(W * rng.uniform(0.42, 0.58)), float(H * rng.uniform(0.40, 0.50)))],
        head_px=head_px,
        base_pose=[
            (yaw, float(rng.uniform(-0.5, 0.5) * cfg.max_pitch), float(rng.uniform(-0.5, 0.5) * cfg.max_roll))
        ],
        light=(float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.8, 0.0)), float(rng.uniform(0.6, 1.0))),
        ambient=float(rng.uniform(0.35, 0.6)),
        clothes=[tuple(float(c) for c in rng.uniform(0.05, 0.85, 3))],  # type: ignore[list-item]
        blur=float(rng.uniform(*cfg.blur)),
        noise=float(rng.uniform(*cfg.noise)),
        crf=int(rng.integers(cfg.crf[0], cfg.crf[1] + 1)),
        extras={"background_seed": int(rng.integers(2**31)), "still": True},
    )
