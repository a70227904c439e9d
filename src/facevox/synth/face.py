"""Procedural faces: identity parameters and a shaded 2.5-D head renderer.

A head is drawn once per frame on a square *canvas* in the canonical frontal frame (coordinates
``u, v`` in [-1, 1], ``v`` pointing down): a height field ``z(u, v)`` (skull ellipsoid plus brow
ridge, eye sockets, nose, cheekbones, lips, chin), an albedo (skin tone with gradients, eyes,
brows, lips, hair, facial hair, glasses) and an alpha mask. Lighting is Lambert + ambient +
a little specular on the height field's normals after they are rotated to the head pose, and
the head is then warped to its yaw/pitch by inverting the height-field projection
(fixed-point iteration) and to its roll by an in-plane rotation. Real face detectors and face
recognisers look for exactly these cues (dark eye sockets under a brow, a lit nose bridge,
lips), which flat cartoons lack.

Shapes: canvas images ``(S, S, 3)`` float32 in [0, 1], masks ``(S, S)``.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from facevox import config

# Skin tones (linear-ish sRGB in [0, 1]) spanning light to dark; identities jitter around them.
SKIN_TONES = np.array(
    [
        [0.96, 0.80, 0.69],
        [0.93, 0.75, 0.62],
        [0.87, 0.68, 0.55],
        [0.80, 0.60, 0.46],
        [0.72, 0.52, 0.38],
        [0.62, 0.43, 0.31],
        [0.52, 0.35, 0.25],
        [0.42, 0.28, 0.20],
        [0.34, 0.22, 0.16],
        [0.90, 0.72, 0.60],
        [0.76, 0.57, 0.45],
        [0.58, 0.40, 0.30],
    ],
    dtype=np.float32,
)
HAIR_COLOURS = np.array(
    [
        [0.08, 0.06, 0.05],
        [0.18, 0.12, 0.08],
        [0.32, 0.20, 0.12],
        [0.50, 0.33, 0.18],
        [0.72, 0.55, 0.32],
        [0.85, 0.72, 0.48],
        [0.55, 0.22, 0.10],
        [0.62, 0.60, 0.58],
        [0.85, 0.85, 0.83],
        [0.25, 0.25, 0.26],
    ],
    dtype=np.float32,
)
IRIS_COLOURS = np.array(
    [[0.30, 0.18, 0.10], [0.20, 0.12, 0.07], [0.25, 0.40, 0.60], [0.30, 0.45, 0.30], [0.45, 0.35, 0.20]],
    dtype=np.float32,
)
MOUTH_LEVELS = 12  # mouth openings are quantised to this many steps (albedo cache)
BLINK_LEVELS = 4
HAIR_STYLES = ("bald", "buzz", "short", "side_part", "long", "bob", "curly", "bun")


@dataclass(frozen=True, kw_only=True)
class FaceIdentity:
    """Everything that makes a face a particular person (constant across clips and views)."""

    face_width: float  # half-width of the face ellipse in canvas units (0.5..0.66)
    face_length: float  # half-height (0.70..0.86)
    jaw_width: float  # lower-face width relative to the cheeks (0.62..0.95)
    chin_length: float  # extra chin drop (0..0.08)
    skin: tuple[float, float, float]
    cheek_blush: float  # redness of the cheeks (0..0.12)
    eye_y: float  # eye line height (negative is up) (-0.16..-0.04)
    eye_spacing: float  # half distance between eye centres (0.20..0.30)
    eye_size: float  # eye half-width (0.085..0.125)
    eye_openness: float  # eye half-height relative to width (0.32..0.50)
    eye_tilt: float  # outer-corner tilt in radians (-0.12..0.12)
    iris: tuple[float, float, float]
    brow_thickness: float  # (0.015..0.05)
    brow_height: float  # distance of the brow above the eye (0.09..0.16)
    brow_arch: float  # (0..0.05)
    brow_colour: tuple[float, float, float]
    nose_length: float  # tip below the eye line (0.22..0.36)
    nose_width: float  # (0.07..0.14)
    nose_depth: float  # protrusion (0.12..0.26)
    mouth_y: float  # mouth height (0.36..0.50)
    mouth_width: float  # half width (0.13..0.22)
    lip_thickness: float  # (0.025..0.06)
    lip_colour: tuple[float, float, float]
    cheekbone: float  # cheekbone prominence (0..0.08)
    hair_style: str
    hair_colour: tuple[float, float, float]
    hairline: float  # forehead hairline height (-0.75..-0.45)
    facial_hair: str  # none | moustache | goatee | beard | stubble
    glasses: str  # none | round | rect
    glasses_colour: tuple[float, float, float]
    age: float  # 0 young .. 1 old: wrinkles, grey
    ear_size: float  # (0.10..0.16)

    def stable_key(self) -> int:
        """A process-independent 32-bit key (Python's ``hash`` of strings is salted per process)."""
        return zlib.crc32(repr(sorted(self.to_dict().items())).encode())

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaceIdentity:
        """Strict inverse of :meth:`to_dict` (unknown keys and wrong types are errors)."""
        return config.from_dict(cls, data)


def _colour(rng: np.random.Generator, palette: np.ndarray, jitter: float) -> tuple[float, float, float]:
    base = palette[rng.integers(len(palette))]
    c = np.clip(base * rng.uniform(1 - jitter, 1 + jitter, 3), 0, 1)
    return (float(c[0]), float(c[1]), float(c[2]))


def sample_face(rng: np.random.Generator) -> FaceIdentity:
    """Draw a random identity; every parameter is independent so identities differ in many ways."""
    u = rng.uniform
    age = float(u(0, 1) ** 1.5)
    hair_colour = _colour(rng, HAIR_COLOURS, 0.08)
    if age > 0.7 and u() < 0.6:
        hair_colour = _colour(rng, HAIR_COLOURS[7:9], 0.05)
    style = HAIR_STYLES[rng.integers(len(HAIR_STYLES))]
    facial = ("none", "none", "moustache", "goatee", "beard", "stubble")[rng.integers(6)]
    glasses = ("none", "none", "none", "round", "rect")[rng.integers(5)]
    brow_dark = float(u(0.35, 0.9))
    skin = _colour(rng, SKIN_TONES, 0.05)
    # brows are darker than the skin whatever the hair colour (grey/blond hair keeps darker brows)
    brow = tuple(
        min(float(h) * (1 - brow_dark), float(s) * 0.42) for h, s in zip(hair_colour, skin, strict=True)
    )
    lip_base = np.array(skin) * np.array([0.82, 0.55, 0.55]) + np.array([0.04, 0.0, 0.0])
    lip = tuple(float(c) for c in np.clip(lip_base * u(0.85, 1.05, 3), 0.05, 0.95))
    return FaceIdentity(
        face_width=float(u(0.56, 0.70)),
        face_length=float(u(0.72, 0.84)),
        jaw_width=float(u(0.62, 0.95)),
        chin_length=float(u(0.0, 0.08)),
        skin=skin,
        cheek_blush=float(u(0.0, 0.12)),
        eye_y=float(u(-0.16, -0.04)),
        eye_spacing=float(u(0.20, 0.30)),
        eye_size=float(u(0.095, 0.13)),
        eye_openness=float(u(0.32, 0.50)),
        eye_tilt=float(u(-0.12, 0.12)),
        iris=_colour(rng, IRIS_COLOURS, 0.1),
        brow_thickness=float(u(0.025, 0.06)),
        brow_height=float(u(0.09, 0.16)),
        brow_arch=float(u(0.0, 0.05)),
        brow_colour=brow,  # type: ignore[arg-type]
        nose_length=float(u(0.22, 0.36)),
        nose_width=float(u(0.07, 0.14)),
        nose_depth=float(u(0.12, 0.26)),
        mouth_y=float(u(0.36, 0.50)),
        mouth_width=float(u(0.13, 0.22)),
        lip_thickness=float(u(0.025, 0.06)),
        lip_colour=lip,  # type: ignore[arg-type]
        cheekbone=float(u(0.0, 0.08)),
        hair_style=style,
        hair_colour=hair_colour,
        hairline=float(u(-0.75, -0.45)),
        facial_hair=facial,
        glasses=glasses,
        glasses_colour=_colour(rng, np.array([[0.05, 0.05, 0.05], [0.4, 0.25, 0.1], [0.6, 0.6, 0.65]]), 0.1),
        age=age,
        ear_size=float(u(0.10, 0.16)),
    )


@dataclass(frozen=True, kw_only=True)
class HeadPose:
    """Per-frame nuisance of one head: angles in degrees, light direction in camera space."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    light: tuple[float, float, float] = (-0.3, -0.4, 0.85)
    ambient: float = 0.35
    mouth_open: float = 0.0  # 0 closed .. 1 wide open
    blink: float = 0.0  # 0 open .. 1 closed


def _gauss(U: np.ndarray, V: np.ndarray, cu: float, cv: float, su: float, sv: float) -> np.ndarray:
    return np.exp(-(((U - cu) / su) ** 2) - ((V - cv) / sv) ** 2)


class FaceRenderer:
    """Renders :class:`FaceIdentity` heads on an ``S x S`` canvas; caches per-identity geometry."""

    def __init__(self, size: int = 192) -> None:
        if size < 64:
            raise ValueError(f"canvas size must be >= 64, got {size}")
        self.size = size
        lin = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
        self.V, self.U = np.meshgrid(lin, lin, indexing="ij")
        self._geom: dict[int, tuple[np.ndarray, ...]] = {}
        self._albedos: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    # -- canvas helpers -----------------------------------------------------------------------
    def _px(self, u: float, v: float) -> tuple[int, int]:
        """Canvas units -> fixed-point pixel coordinates (4 fractional bits) for cv2 drawing."""
        s = self.size
        return (round((u + 1) / 2 * s * 16), round((v + 1) / 2 * s * 16))

    def _len(self, d: float) -> int:
        return max(1, round(d / 2 * self.size * 16))

    def _ellipse_mask(
        self,
        cu: float,
        cv: float,
        au: float,
        av: float,
        angle: float = 0.0,
        start: float = 0,
        end: float = 360,
    ) -> np.ndarray:
        m = np.zeros((self.size, self.size), np.float32)
        cv2.ellipse(
            m, self._px(cu, cv), (self._len(au), self._len(av)), angle, start, end, 1.0, -1, cv2.LINE_AA, 4
        )
        return m

    def _poly_mask(self, pts: list[tuple[float, float]]) -> np.ndarray:
        m = np.zeros((self.size, self.size), np.float32)
        arr = np.array([self._px(u, v) for u, v in pts], np.int32)
        cv2.fillPoly(m, [arr], 1.0, cv2.LINE_AA, 4)
        return m

    # -- geometry -----------------------------------------------------------------------------
    def _face_mask(self, f: FaceIdentity) -> np.ndarray:
        """Face outline: wide at the cheeks, narrowing to the jaw and chin."""
        U, V = self.U, self.V
        top, bottom = -f.face_length, f.face_length + f.chin_length
        t = np.clip((V - top) / (bottom - top), 0, 1)
        # half-width profile along v: round forehead, cheeks, jaw taper
        width = f.face_width * np.where(
            t < 0.45,
            np.sqrt(np.clip(1 - ((0.45 - t) / 0.45) ** 2 * 0.85, 0, 1)),
            1 - (1 - f.jaw_width) * (np.clip(t - 0.45, 0, None) / 0.55) ** 1.3,
        )
        chin_round = np.where(t > 0.85, np.sqrt(np.clip(1 - ((t - 0.85) / 0.15) ** 2, 0, 1)), 1.0)
        width = width * chin_round
        inside = (np.abs(U) <= width) & (V >= top) & (V <= bottom)
        mask = inside.astype(np.float32)
        return cv2.GaussianBlur(mask, (0, 0), self.size / 256)

    def _height(self, f: FaceIdentity) -> np.ndarray:
        """Height field z(u, v) (towards the camera) of head, face and features."""
        U, V = self.U, self.V
        hw, hh = f.face_width * 1.08, f.face_length * 1.05
        skull = np.sqrt(np.clip(1 - (U / hw) ** 2 - ((V + 0.02) / hh) ** 2, 0, 1)) * 0.55
        z = skull
        ey, es = f.eye_y, f.eye_spacing
        z = z + 0.05 * _gauss(U, V, 0, ey - f.brow_height * 0.9, 0.45, 0.06)  # brow ridge
        for side in (-1, 1):
            z = z - 0.07 * _gauss(U, V, side * es, ey, f.eye_size * 1.3, f.eye_size * 0.9)  # sockets
            z = z + f.cheekbone * _gauss(U, V, side * (es + 0.05), ey + 0.16, 0.12, 0.08)
            z = z + 0.02 * _gauss(U, V, side * es, ey, f.eye_size * 0.8, f.eye_size * 0.5)  # eyeball
        # nose: a ridge from between the eyes to the tip, widening at the wings
        nv = ey + f.nose_length
        t = np.clip((V - ey) / max(f.nose_length, 1e-3), 0, 1.15)
        ridge_w = 0.03 + 0.6 * f.nose_width * t**2
        ridge = np.exp(-((U / ridge_w) ** 2)) * np.clip(t, 0, 1) ** 0.8 * (V <= nv + 0.04)
        ridge = ridge * np.exp(-(np.clip(V - nv, 0, None) ** 2) / 0.0008)
        z = z + f.nose_depth * ridge + 0.03 * _gauss(U, V, 0, nv, f.nose_width * 0.7, 0.04)
        z = z + 0.03 * _gauss(U, V, 0, f.mouth_y, f.mouth_width, f.lip_thickness * 1.5)  # lips
        z = z + 0.04 * _gauss(U, V, 0, f.face_length + f.chin_length - 0.1, 0.16, 0.08)  # chin
        z = z - 0.02 * _gauss(U, V, 0, (nv + f.mouth_y) / 2, 0.03, 0.03)  # philtrum
        return cv2.GaussianBlur(z.astype(np.float32), (0, 0), self.size / 200)

    def _hair_mask(self, f: FaceIdentity) -> tuple[np.ndarray, np.ndarray]:
        """(hair in front of the forehead, hair behind the head)."""
        hw, hl = f.face_width, f.face_length
        front = np.zeros((self.size, self.size), np.float32)
        back = np.zeros((self.size, self.size), np.float32)
        if f.hair_style == "bald":
            return front, back
        cap = self._ellipse_mask(0, -0.05, hw * 1.12, hl * 1.1, 0, 180, 360)
        above = (self.V < f.hairline + 0.05 * np.cos(self.U * 3)).astype(np.float32)
        front = cap * above
        if f.hair_style == "buzz":
            front = front * 0.6
        elif f.hair_style == "side_part":
            front = np.maximum(front, self._ellipse_mask(-hw * 0.35, f.hairline + 0.02, hw * 0.75, 0.12, -8))
            front = front * self._ellipse_mask(0, -0.05, hw * 1.15, hl * 1.1)
        elif f.hair_style in ("long", "bob"):
            drop = hl * (1.15 if f.hair_style == "long" else 0.55)
            back = self._ellipse_mask(0, -0.05 + drop * 0.35, hw * 1.32, hl * 1.0 + drop * 0.35)
        elif f.hair_style == "curly":
            front = self._ellipse_mask(0, -0.12, hw * 1.3, hl * 1.05, 0, 180, 360) * (
                self.V < f.hairline + 0.04
            ).astype(np.float32)
            back = self._ellipse_mask(0, -0.1, hw * 1.35, hl * 0.95)
        elif f.hair_style == "bun":
            back = self._ellipse_mask(0, -hl - 0.12, 0.2, 0.16)
        if f.hair_style in ("short", "side_part", "curly", "long", "bob"):
            for side in (-1, 1):  # sideburns
                front = np.maximum(front, self._ellipse_mask(side * hw * 0.98, f.eye_y - 0.05, 0.05, 0.16))
        return np.clip(front, 0, 1), np.clip(back, 0, 1)

    def _geometry(self, f: FaceIdentity) -> tuple[np.ndarray, ...]:
        """Per-identity static maps: face, hair (front, back), ears, height field, face-box region."""
        key = f.stable_key()
        if key not in self._geom:
            face = self._face_mask(f)
            hair_front, hair_back = self._hair_mask(f)
            ears = np.zeros_like(face)
            for side in (-1, 1):
                ears = np.maximum(
                    ears,
                    self._ellipse_mask(
                        side * f.face_width * 1.02, f.eye_y + 0.12, f.ear_size * 0.45, f.ear_size
                    ),
                )
            # the conventional face box: brows to chin, cheek to cheek
            top = f.eye_y - f.brow_height - 0.10
            box_region = face * (self.V >= top).astype(np.float32)
            if len(self._geom) > 32:
                self._geom.clear()
            self._geom[key] = (face, hair_front, hair_back, ears, self._height(f), box_region)
        return self._geom[key]

    # -- albedo -------------------------------------------------------------------------------
    def _albedo(
        self, f: FaceIdentity, mouth_open: float, blink: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Albedo (S, S, 3), alpha (S, S) and specular map (S, S), cached per quantised mouth/blink."""
        key = (f.stable_key(), round(mouth_open * MOUTH_LEVELS), round(blink * BLINK_LEVELS))
        if key not in self._albedos:
            if len(self._albedos) > 256:
                self._albedos.clear()
            self._albedos[key] = self._paint(f, key[1] / MOUTH_LEVELS, key[2] / BLINK_LEVELS)
        return self._albedos[key]

    def _paint(
        self, f: FaceIdentity, mouth_open: float, blink: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        U, V, S = self.U, self.V, self.size
        face, hair_front, hair_back, ears, _, _ = self._geometry(f)
        skin = np.array(f.skin, np.float32)
        alb: np.ndarray = np.broadcast_to(skin, (S, S, 3)).copy()
        # skin gradients: warmer cheeks, darker temples/jaw edge, slightly lighter T-zone
        for side in (-1, 1):
            blush = _gauss(U, V, side * (f.eye_spacing + 0.04), f.eye_y + 0.22, 0.12, 0.09)[..., None]
            alb = alb + f.cheek_blush * blush * np.array([0.6, -0.25, -0.2], np.float32)
        edge = np.clip((np.abs(U) / f.face_width) ** 4, 0, 1)[..., None]
        alb = alb * (1 - 0.18 * edge)
        alb = alb * (1 + 0.06 * _gauss(U, V, 0, f.eye_y - 0.25, 0.18, 0.25))[..., None]
        rng = np.random.default_rng(f.stable_key())
        tex = cv2.GaussianBlur(rng.normal(0, 1, (S, S)).astype(np.float32), (0, 0), S / 64)
        alb = alb * (1 + 0.03 * tex / (tex.std() + 1e-6))[..., None]
        spec: np.ndarray = np.full((S, S), 0.10, np.float32)
        ey, es = f.eye_y, f.eye_spacing

        def paint(mask: np.ndarray, colour: Any, strength: float = 1.0) -> None:
            nonlocal alb
            m = (mask * strength)[..., None]
            alb = alb * (1 - m) + np.asarray(colour, np.float32) * m

        # age: forehead wrinkles and nasolabial folds (darker lines)
        if f.age > 0.35:
            w = np.zeros((S, S), np.float32)
            for k in range(3):
                vv = f.hairline + 0.12 + k * 0.06
                cv2.ellipse(
                    w,
                    self._px(0, vv + 0.25),
                    (self._len(0.25), self._len(0.25)),
                    0,
                    235,
                    305,
                    1.0,
                    max(1, S // 160),
                    cv2.LINE_AA,
                    4,
                )
            for side in (-1, 1):
                cv2.line(
                    w,
                    self._px(side * (f.nose_width + 0.03), ey + f.nose_length),
                    self._px(side * (f.mouth_width + 0.03), f.mouth_y + 0.03),
                    1.0,
                    max(1, S // 128),
                    cv2.LINE_AA,
                    4,
                )
            paint(cv2.GaussianBlur(w, (0, 0), S / 256), skin * 0.7, (f.age - 0.35) * 1.2)
        # eyes: socket shadow, sclera, iris, pupil, lids, lashes
        open_h = f.eye_size * f.eye_openness * (1 - 0.95 * blink)
        for side in (-1, 1):
            cu = side * es
            ang = -side * math.degrees(f.eye_tilt)
            socket = cv2.GaussianBlur(
                self._ellipse_mask(cu, ey - 0.015, f.eye_size * 1.4, f.eye_size * 0.9, ang), (0, 0), S / 90
            )
            paint(socket, skin * 0.5, 0.8)
            eye = self._ellipse_mask(cu, ey, f.eye_size, max(open_h, 0.004), ang)
            paint(eye, (0.80, 0.78, 0.76))
            iris = self._ellipse_mask(cu, ey, f.eye_size * 0.56, f.eye_size * 0.56) * eye
            paint(iris, f.iris)
            paint(self._ellipse_mask(cu, ey, f.eye_size * 0.2, f.eye_size * 0.2) * eye, (0.02, 0.02, 0.02))
            spec = spec + 0.8 * self._ellipse_mask(cu - 0.02, ey - 0.02, 0.012, 0.012) * eye
            lid = np.zeros((S, S), np.float32)
            cv2.ellipse(
                lid,
                self._px(cu, ey),
                (self._len(f.eye_size), self._len(max(open_h, 0.004))),
                ang,
                180,
                360,
                1.0,
                max(2, S // 55),
                cv2.LINE_AA,
                4,
            )
            paint(lid, (0.05, 0.04, 0.04), 0.95)
            crease = np.zeros((S, S), np.float32)
            cv2.ellipse(
                crease,
                self._px(cu, ey - 0.01),
                (self._len(f.eye_size * 1.05), self._len(f.eye_size * f.eye_openness + 0.03)),
                ang,
                200,
                340,
                1.0,
                max(1, S // 150),
                cv2.LINE_AA,
                4,
            )
            paint(cv2.GaussianBlur(crease, (0, 0), S / 250), skin * 0.45, 0.6)
            # brow: an arched band
            brow = np.zeros((S, S), np.float32)
            by = ey - f.brow_height
            pts = [
                (cu + side * t * f.eye_size * 1.3, by - f.brow_arch * (1 - t * t) + 0.02 * t)
                for t in np.linspace(-1, 1, 9)
            ]
            arr = np.array([self._px(u, v) for u, v in pts], np.int32)
            cv2.polylines(brow, [arr], False, 1.0, max(1, round(f.brow_thickness * S / 2)), cv2.LINE_AA, 4)
            paint(cv2.GaussianBlur(brow, (0, 0), S / 300), f.brow_colour, 0.92)
        # nose: nostrils and a soft shadow under the tip
        nv = ey + f.nose_length
        for side in (-1, 1):
            paint(
                self._ellipse_mask(side * f.nose_width * 0.45, nv + 0.01, f.nose_width * 0.28, 0.018),
                skin * 0.35,
                0.8,
            )
        # mouth: lips, and when open a dark interior with teeth
        mw, lt, my = f.mouth_width, f.lip_thickness, f.mouth_y
        gap = mouth_open * 0.11
        upper = self._ellipse_mask(0, my - gap / 2 - lt * 0.45, mw, lt * 0.75, 0, 180, 360)
        lower = self._ellipse_mask(0, my + gap / 2 + lt * 0.1, mw * 0.92, lt, 0, 0, 180)
        lips = np.clip(upper + lower + self._ellipse_mask(0, my, mw, lt * 0.35), 0, 1)
        paint(lips, f.lip_colour)
        spec = spec + 0.25 * lower
        if gap > 0.004:
            inner = self._ellipse_mask(0, my, mw * 0.82, gap / 2 + 0.004)
            paint(inner, (0.12, 0.04, 0.04))
            teeth = inner * (self.V < my - gap / 2 + 0.012 + 0.015 * mouth_open).astype(np.float32)
            paint(teeth, (0.78, 0.76, 0.70), 0.85)
        line = np.zeros((S, S), np.float32)
        cv2.line(line, self._px(-mw, my), self._px(mw, my), 1.0, max(1, S // 200), cv2.LINE_AA, 4)
        paint(line * (gap <= 0.004), np.asarray(f.lip_colour, np.float32) * 0.45, 0.8)
        # facial hair
        hair_col = np.array(f.hair_colour, np.float32)
        grain = np.clip(0.7 + 0.3 * rng.normal(0, 1, (S, S)).astype(np.float32), 0, 1)
        if f.facial_hair in ("moustache", "beard"):
            paint(self._ellipse_mask(0, my - lt - 0.035, mw * 1.05, 0.035) * grain, hair_col, 0.9)
        if f.facial_hair in ("goatee", "beard"):
            chin_v = f.face_length + f.chin_length
            region = self._ellipse_mask(
                0,
                (my + chin_v) / 2 + 0.03,
                mw * (0.8 if f.facial_hair == "goatee" else 2.6),
                (chin_v - my) / 2 + 0.04,
            )
            region = region * (1 - lips) * (1 - (gap > 0.004) * self._ellipse_mask(0, my, mw, gap / 2 + 0.02))
            paint(region * face * grain, hair_col, 0.85)
        if f.facial_hair == "stubble":
            region = self._ellipse_mask(0, my + 0.1, f.face_width * 0.95, 0.3) * (self.V > ey + f.nose_length)
            paint(region * face * (1 - lips) * grain, skin * 0.6 + hair_col * 0.2, 0.3)
        # ears, skin under the hair, hair
        alpha = np.clip(np.maximum(face, ears), 0, 1)
        hair_tex = 0.85 + 0.15 * np.sin(self.U * 40 + tex * 3)
        hair_rgb = hair_col * hair_tex[..., None]
        if f.hair_style == "curly":
            hair_rgb = hair_rgb * (0.8 + 0.2 * (np.sin(self.U * 60) * np.sin(self.V * 60)))[..., None]
        back = hair_back * (1 - alpha)
        alb = alb * (1 - back[..., None]) + hair_rgb * back[..., None]
        alb = alb * (1 - hair_front[..., None]) + hair_rgb * hair_front[..., None]
        alpha = np.clip(np.maximum(alpha, np.maximum(hair_front, hair_back)), 0, 1)
        spec = spec * (1 - hair_front) + 0.15 * hair_front
        # glasses: frames in front of the eyes, slightly shiny lenses
        if f.glasses != "none":
            g = np.zeros((S, S), np.float32)
            thick = max(1, S // 110)
            for side in (-1, 1):
                c = self._px(side * es, ey)
                if f.glasses == "round":
                    cv2.circle(g, c, self._len(f.eye_size * 1.45), 1.0, thick, cv2.LINE_AA, 4)
                else:
                    d = (self._len(f.eye_size * 1.55), self._len(f.eye_size * 1.05))
                    cv2.rectangle(
                        g, (c[0] - d[0], c[1] - d[1]), (c[0] + d[0], c[1] + d[1]), 1.0, thick, cv2.LINE_AA, 4
                    )
                cv2.line(
                    g,
                    self._px(side * (es + f.eye_size * 1.45), ey - 0.01),
                    self._px(side * f.face_width * 1.0, ey - 0.03),
                    1.0,
                    thick,
                    cv2.LINE_AA,
                    4,
                )
            cv2.line(
                g,
                self._px(-es + f.eye_size * 1.4, ey - 0.02),
                self._px(es - f.eye_size * 1.4, ey - 0.02),
                1.0,
                thick,
                cv2.LINE_AA,
                4,
            )
            paint(g, f.glasses_colour)
            spec = spec + 0.5 * g
        return np.clip(alb, 0, 1), alpha, spec

    # -- shading and pose ---------------------------------------------------------------------
    def render(self, f: FaceIdentity, pose: HeadPose) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render one head: RGB (S, S, 3) float32 in [0, 1], alpha (S, S) and the face-box region (S, S)."""
        S = self.size
        _, _, _, _, z, box_region = self._geometry(f)
        alb, alpha, spec_map = self._albedo(f, pose.mouth_open, pose.blink)
        # hair sits on top of the skull: lift its height slightly so it occludes correctly
        # normals in canonical frame (u right, v down, z towards camera)
        dzdv, dzdu = np.gradient(z, 2.0 / S)
        n = np.stack([-dzdu, -dzdv, np.ones_like(z)], -1)
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        yaw, pitch, roll = (math.radians(a) for a in (pose.yaw, pose.pitch, pose.roll))
        ry = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
        rp = np.array(
            [[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]]
        )
        R = (rp @ ry).astype(np.float32)
        n_cam = n @ R.T
        light = np.asarray(pose.light, np.float32)
        light = light / np.linalg.norm(light)
        lambert = np.clip(n_cam @ light, 0, 1)
        half = light + np.array([0, 0, 1], np.float32)
        half /= np.linalg.norm(half)
        specular = np.clip(n_cam @ half, 0, 1) ** 24
        shade = pose.ambient + (1 - pose.ambient) * lambert
        rgb = alb * shade[..., None] + (spec_map * specular)[..., None] * 0.6
        # warp to pose: output (x', y') = R @ (u, v, z); invert by fixed-point iteration on (u, v)
        xs, ys = self.U, self.V
        u, v = xs.copy(), ys.copy()
        zmap = (z * 1.0).astype(np.float32)
        for _ in range(4):
            zz = cv2.remap(
                zmap,
                ((u + 1) / 2 * S - 0.5).astype(np.float32),
                ((v + 1) / 2 * S - 0.5).astype(np.float32),
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            # forward: x' = cos(yaw) u + sin(yaw) z ; y' = cos(p) v - sin(p) (-sin(yaw) u + cos(yaw) z)
            u = (xs - math.sin(yaw) * zz) / math.cos(yaw)
            zc = -math.sin(yaw) * u + math.cos(yaw) * zz
            v = (ys + math.sin(pitch) * zc) / math.cos(pitch)
        mapx = ((u + 1) / 2 * S - 0.5).astype(np.float32)
        mapy = ((v + 1) / 2 * S - 0.5).astype(np.float32)
        rgb_w = cv2.remap(
            rgb.astype(np.float32), mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        masks = cv2.remap(
            np.stack([alpha, box_region], -1).astype(np.float32),
            mapx,
            mapy,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        if abs(pose.roll) > 1e-3:
            M = cv2.getRotationMatrix2D((S / 2, S / 2), -math.degrees(roll), 1.0)
            rgb_w = cv2.warpAffine(rgb_w, M, (S, S), flags=cv2.INTER_LINEAR)
            masks = cv2.warpAffine(masks, M, (S, S), flags=cv2.INTER_LINEAR)
        return np.clip(rgb_w, 0, 1), np.clip(masks[..., 0], 0, 1), masks[..., 1]
