"""Trifeature images (Hermann & Lampinen, NeurIPS 2020): 10 shapes x 10 textures x 10 colours.

Each image is one textured, coloured shape on a grey (0.5) background. The shape template (``shape_size``
px) is rotated by a random angle and placed at a random position on the canvas; the texture is a periodic
pattern with a random phase, rotated by its own random angle about the canvas centre (the vectorised form
of "render the texture at 2x, rotate it, crop the centre": the sampling coordinates are rotated instead);
the colour multiplies the textured shape.

Rendering is analytic and vectorised: every shape is a union of primitives (polygons tested with the
even-odd crossing rule, rectangles, a disc, a diamond) evaluated on a float64 coordinate grid, every texture
is a closed-form function of the rotated texture coordinates, and all random draws come from a counter-based
hash of the image's own seed. So an image's pixels depend on (attributes, seed, settings) only — never on
which other images are rendered with it or on the chunking. Only the shape's bounding window
(``shape_size + 1`` px square) is evaluated per image, then pasted onto the background.

Rotation angles are drawn on a 0.01 degree grid and their sines and cosines come from one fixed table, so no
transcendental function is evaluated per image or per pixel (bit-exact reproducibility across subsets and
against the per-pixel reference renderer in ``benchmarks/render_reference.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

logger = logging.getLogger(__name__)

SHAPES: tuple[str, ...] = (
    "triangle",
    "square",
    "plus",
    "circle",
    "tee",
    "rhombus",
    "pentagon",
    "star",
    "fivesquare",
    "trapezoid",
)
TEXTURES: tuple[str, ...] = (
    "solid",
    "stripes",
    "grid",
    "hexgrid",
    "dots",
    "noise",
    "triangles",
    "zigzags",
    "rain",
    "pluses",
)
COLORS: tuple[str, ...] = (
    "red",
    "green",
    "blue",
    "yellow",
    "pink",
    "cyan",
    "purple",
    "ocean",
    "orange",
    "white",
)
#: RGB (0-255) of each colour, aligned with ``COLORS``.
COLOR_RGB: tuple[tuple[int, int, int], ...] = (
    (230, 30, 30),  # red
    (30, 190, 40),  # green
    (40, 70, 240),  # blue
    (245, 225, 30),  # yellow
    (250, 130, 200),  # pink
    (40, 230, 235),  # cyan
    (150, 40, 190),  # purple
    (20, 110, 130),  # ocean
    (250, 140, 20),  # orange
    (255, 255, 255),  # white
)
ATTRIBUTES: tuple[str, ...] = ("shape", "texture", "color")
N_VALUES = 10
BACKGROUND = 0.5
N_COMBINATIONS = N_VALUES**3
N_TRAIN_COMBINATIONS = 800  # 80 % of the combinations
N_TEST_COMBINATIONS = N_COMBINATIONS - N_TRAIN_COMBINATIONS
TRAIN_RENDERS = 3
TEST_RENDERS = 1

# Bump when the pixels produced for given (attributes, seed, settings) change: it is part of the cache key.
RENDER_VERSION = 1

# Texture intensity of the dark parts of a pattern (the light parts are 1); the colour is multiplied by it.
_DARK = 0.2
# Background value on the 0-255 scale (grey 0.5).
_BG255 = 255.0 * BACKGROUND
# Texture phases are drawn in [0, _PHASE_RANGE) periods (a common multiple of every pattern's lattice).
_PHASE_RANGE = 16.0
# Rotation angles live on a grid of 1/_ANGLE_STEPS_PER_DEG degrees.
_ANGLE_STEPS_PER_DEG = 100

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_NOISE_KX = 0xD6E8FEB86659FD93
_NOISE_KY = 0xA0761D6478BD642F
_SALT_PARAMS = 0x243F6A8885A308D3
_SALT_NOISE = 0x13198A2E03707344
_SALT_SPLIT = 0xA4093822299F31D0
_SALT_IMAGE = 0x082EFA98EC4E6C89
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class RenderSettings:
    """How Trifeature images are drawn. The defaults are those of the ``trifeature-cpu`` preset; the paper draws
    224 px images with a 128 px shape template and a 16 px texture period, without supersampling
    (``trifeature-paper``).

    Attributes:
        canvas_size: side of the square image, px.
        shape_size: side of the shape template, px; the shape is inscribed in its circle, so any rotation
            stays inside the template.
        texture_period: the texture's base length, px (stripes repeat every period; other patterns use
            a fixed multiple of it).
        max_shape_rotation: the shape is rotated by an angle uniform in ±this, degrees.
        max_texture_rotation: the texture is rotated by an angle uniform in ±this, degrees.
        supersample: each pixel is the mean of ``supersample**2`` samples (anti-aliasing; 1 = none).

    The shape position (anywhere the template fits on the canvas) and the texture phase are always random.
    """

    canvas_size: int = 64
    shape_size: int = 56
    texture_period: float = 5.0
    max_shape_rotation: float = 45.0
    max_texture_rotation: float = 45.0
    supersample: int = 2

    def __post_init__(self) -> None:
        if self.shape_size < 4:
            raise ValueError(f"shape_size must be >= 4 px, got {self.shape_size}")
        if self.canvas_size < self.shape_size + 2:
            raise ValueError(
                f"canvas_size must be >= shape_size + 2 = {self.shape_size + 2} px, got {self.canvas_size}"
            )
        if not self.texture_period > 0:
            raise ValueError(f"texture_period must be > 0 px, got {self.texture_period}")
        for name in ("max_shape_rotation", "max_texture_rotation"):
            value = getattr(self, name)
            if not 0.0 <= value <= 180.0:
                raise ValueError(f"{name} must be in [0, 180] degrees, got {value}")
        if not 1 <= self.supersample <= 8:
            raise ValueError(f"supersample must be in [1, 8], got {self.supersample}")

    def cache_key(self) -> str:
        """A short hex hash of these settings and the renderer version (names cache files)."""
        text = json.dumps({"version": RENDER_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RenderParams:
    """The random pose of N images, drawn from their seeds by :func:`render_params`.

    Attributes:
        centre: (N, 2) float64, the shape centre (x, y) in canvas px (pixel (i, j) spans [j, j+1) x [i, i+1)).
        origin: (N, 2) int64, the top-left pixel (x, y) of the shape's ``shape_size + 1`` px window.
        shape_matrix: (N, 2, 2) float64, maps a canvas offset from ``centre`` to template units (the shape's
            circumscribed circle has radius 1).
        texture_matrix: (N, 2, 2) float64, maps a canvas offset from the canvas centre to texture periods.
        phase: (N, 2) float64, texture phase added after ``texture_matrix``, periods.
        noise_key: (N,) uint64, the key of the "noise" texture's per-cell hash.
    """

    centre: np.ndarray
    origin: np.ndarray
    shape_matrix: np.ndarray
    texture_matrix: np.ndarray
    phase: np.ndarray
    noise_key: np.ndarray

    def subset(self, index: np.ndarray) -> RenderParams:
        """The parameters of images ``index`` (K,)."""
        return RenderParams(
            centre=self.centre[index],
            origin=self.origin[index],
            shape_matrix=self.shape_matrix[index],
            texture_matrix=self.texture_matrix[index],
            phase=self.phase[index],
            noise_key=self.noise_key[index],
        )


@dataclass
class TrifeatureImages:
    """Rendered Trifeature images with their attributes.

    Attributes:
        images: (N, 3, H, W) uint8 tensor.
        attributes: (N, 3) int64 tensor, columns [shape, texture, color] (indices into SHAPES, TEXTURES,
            COLORS).
        split: "train" or "test".
    """

    images: Tensor
    attributes: Tensor
    split: str

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[1] != 3 or self.images.dtype != torch.uint8:
            raise ValueError(
                "images must be a uint8 (N, 3, H, W) tensor, "
                f"got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.attributes.shape != (self.images.shape[0], 3) or self.attributes.dtype != torch.int64:
            raise ValueError(
                f"attributes must be int64 ({self.images.shape[0]}, 3), "
                f"got {self.attributes.dtype} {tuple(self.attributes.shape)}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])


# ----------------------------------------------------------------------------------------------- hashing
def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, element-wise on a uint64 array (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(_MIX1)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(_MIX2)
    return x ^ (x >> np.uint64(31))


def _to_unit(h: np.ndarray) -> np.ndarray:
    """uint64 hashes → float64 uniform in [0, 1) (top 53 bits)."""
    return (h >> np.uint64(11)).astype(np.float64) * (2.0**-53)


def _uniform(key: np.ndarray, stream: int) -> np.ndarray:
    """Uniform [0, 1) float64 draw number ``stream`` for each uint64 key (N,)."""
    return _to_unit(_mix64(key + np.uint64(((stream + 1) * _GOLDEN) & _MASK64)))


def _seed_key(seed: int, salt: int) -> np.ndarray:
    """A (1,) uint64 key from a non-negative int seed and a salt."""
    return _mix64(np.array([(seed * _GOLDEN + salt) & _MASK64], dtype=np.uint64))


def image_seeds(seed: int, index: np.ndarray) -> np.ndarray:
    """Render seeds (N,) int64 >= 0 of images ``index`` (N,) in the data set generated from ``seed``."""
    index = np.asarray(index, dtype=np.int64)
    key = _seed_key(seed, _SALT_IMAGE)
    h = _mix64(key + index.astype(np.uint64) * np.uint64(_GOLDEN))
    return (h >> np.uint64(1)).astype(np.int64)


@lru_cache(maxsize=1)
def _trig_table() -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of every angle in [-180, 180] degrees on the 0.01 degree grid, (36001,) float64 each."""
    steps = 180 * _ANGLE_STEPS_PER_DEG
    angles = np.deg2rad(np.arange(-steps, steps + 1, dtype=np.float64) / _ANGLE_STEPS_PER_DEG)
    return np.cos(angles), np.sin(angles)


def _rotation(u: np.ndarray, max_degrees: float, scale: float) -> np.ndarray:
    """(N, 2, 2) matrices ``R(-angle) / scale``, angles uniform on the grid in ±max_degrees (u in [0, 1))."""
    n_steps = int(round(max_degrees * _ANGLE_STEPS_PER_DEG))
    steps = np.floor(u * (2 * n_steps + 1)).astype(np.int64) - n_steps
    cos_table, sin_table = _trig_table()
    c = cos_table[steps + 180 * _ANGLE_STEPS_PER_DEG]
    s = sin_table[steps + 180 * _ANGLE_STEPS_PER_DEG]
    return np.stack([np.stack([c, s], axis=-1), np.stack([-s, c], axis=-1)], axis=-2) / scale


def render_params(seeds: np.ndarray, settings: RenderSettings) -> RenderParams:
    """Draw the pose of each image from its own seed.

    Args:
        seeds: (N,) non-negative integer seeds.
        settings: render settings.

    Returns:
        The :class:`RenderParams` of the N images; entry n depends only on ``seeds[n]`` and ``settings``.
    """
    seeds = _check_seeds(seeds)
    key = _mix64(seeds.astype(np.uint64) * np.uint64(_GOLDEN) + np.uint64(_SALT_PARAMS))
    half = settings.shape_size / 2.0
    span = float(settings.canvas_size - settings.shape_size - 1)
    centre = np.stack([half + _uniform(key, 0) * span, half + _uniform(key, 1) * span], axis=-1)
    origin = np.floor(centre - half).astype(np.int64)
    shape_matrix = _rotation(_uniform(key, 2), settings.max_shape_rotation, half)
    texture_matrix = _rotation(_uniform(key, 3), settings.max_texture_rotation, settings.texture_period)
    phase = np.stack([_uniform(key, 4), _uniform(key, 5)], axis=-1) * _PHASE_RANGE
    noise_key = _mix64(key ^ np.uint64(_SALT_NOISE))
    return RenderParams(centre, origin, shape_matrix, texture_matrix, phase, noise_key)


# ------------------------------------------------------------------------------------------------ shapes
# Each shape is a union of primitives in template units (x right, y down, circumradius < 1):
#   ("rect", cx, cy, hx, hy): |u - cx| <= hx and |v - cy| <= hy
#   ("disc", r2): u*u + v*v <= r2
#   ("diamond", ia, ib): |u|*ia + |v|*ib <= 1
#   ("poly", edges): even-odd crossing rule; each edge (y1, y2, x1, k): the edge from (x1, y1) to
#       (x1 + (y2 - y1)*k, y2), horizontal edges left out.
_Primitive = tuple


def _regular(n: int, radii: tuple[float, ...]) -> list[tuple[float, float]]:
    """Vertices of a regular (star) polygon pointing up, radii cycled over the n vertices."""
    out = []
    for i in range(n):
        angle = -np.pi / 2 + 2 * np.pi * i / n
        r = radii[i % len(radii)]
        out.append((float(r * np.cos(angle)), float(r * np.sin(angle))))
    return out


def _poly(vertices: list[tuple[float, float]]) -> _Primitive:
    edges = []
    for i, (x1, y1) in enumerate(vertices):
        x2, y2 = vertices[(i + 1) % len(vertices)]
        if y1 != y2:
            edges.append((y1, y2, x1, (x2 - x1) / (y2 - y1)))
    return ("poly", tuple(edges))


def _fivesquare() -> list[_Primitive]:
    d, h = 0.46, 0.2
    return [("rect", 0.0, 0.0, h, h)] + [("rect", sx * d, sy * d, h, h) for sx in (-1, 1) for sy in (-1, 1)]


_SHAPE_PRIMITIVES: dict[str, list[_Primitive]] = {
    "triangle": [_poly(_regular(3, (0.95,)))],
    "square": [("rect", 0.0, 0.0, 0.64, 0.64)],
    "plus": [("rect", 0.0, 0.0, 0.85, 0.26), ("rect", 0.0, 0.0, 0.26, 0.85)],
    "circle": [("disc", 0.78 * 0.78)],
    "tee": [("rect", 0.0, -0.42, 0.68, 0.2), ("rect", 0.0, 0.3, 0.2, 0.55)],
    "rhombus": [("diamond", 1.0 / 0.5, 1.0 / 0.92)],
    "pentagon": [_poly(_regular(5, (0.9,)))],
    "star": [_poly(_regular(10, (0.95, 0.42)))],
    "fivesquare": _fivesquare(),
    "trapezoid": [_poly([(-0.4, -0.5), (0.4, -0.5), (0.8, 0.5), (-0.8, 0.5)])],
}


def _shape_inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bool mask of the points (u, v) (any shape, template units) inside ``shape``."""
    inside = np.zeros(u.shape, dtype=bool)
    for prim in _SHAPE_PRIMITIVES[shape]:
        kind = prim[0]
        if kind == "rect":
            _, cx, cy, hx, hy = prim
            inside |= (np.abs(u - cx) <= hx) & (np.abs(v - cy) <= hy)
        elif kind == "disc":
            inside |= u * u + v * v <= prim[1]
        elif kind == "diamond":
            inside |= np.abs(u) * prim[1] + np.abs(v) * prim[2] <= 1.0
        else:
            crossings = np.zeros(u.shape, dtype=bool)
            for y1, y2, x1, k in prim[1]:
                crossings ^= ((v < y1) != (v < y2)) & (u < x1 + (v - y1) * k)
            inside |= crossings
    return inside


# ---------------------------------------------------------------------------------------------- textures
# Every texture is a function of the texture coordinates (s, t) in periods; it returns the intensity that
# multiplies the colour: 1 on the light parts, _DARK on the pattern (noise: uniform in [_DARK, 1]).
def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def _texture_value(texture: str, s: np.ndarray, t: np.ndarray, noise_key: np.ndarray) -> np.ndarray:
    """Texture intensity (float64, same shape as ``s``) at texture coordinates (s, t), periods.

    ``noise_key`` is (n,) uint64, one per image along the first axis of ``s`` (used by "noise" only).
    """
    if texture == "solid":
        return np.ones(s.shape, dtype=np.float64)
    if texture == "noise":
        ix = np.floor(s * 2.5).astype(np.int64).astype(np.uint64)
        iy = np.floor(t * 2.5).astype(np.int64).astype(np.uint64)
        key = noise_key.reshape((-1,) + (1,) * (s.ndim - 1))
        h = _mix64(key + ix * np.uint64(_NOISE_KX) + iy * np.uint64(_NOISE_KY))
        return _DARK + (1.0 - _DARK) * _to_unit(h)
    if texture == "stripes":
        dark = _frac(s) < 0.5
    elif texture == "grid":
        dark = (_frac(s * 0.625) < 0.28) | (_frac(t * 0.625) < 0.28)
    elif texture == "hexgrid":
        a = s * 0.5
        b = t * 0.5
        r3 = 1.7320508075688772
        ax = a - np.floor(a + 0.5)
        ay = b - r3 * np.floor(b / r3 + 0.5)
        bx = a - np.floor(a) - 0.5
        by = b - r3 * np.floor(b / r3) - 0.5 * r3
        use_a = ax * ax + ay * ay <= bx * bx + by * by
        dx = np.where(use_a, ax, bx)
        dy = np.where(use_a, ay, by)
        h1 = np.abs(0.5 * dx + 0.8660254037844386 * dy)
        h2 = np.abs(0.5 * dx - 0.8660254037844386 * dy)
        dark = np.maximum(np.abs(dx), np.maximum(h1, h2)) > 0.41
    elif texture == "dots":
        fa = _frac(s * 0.7) - 0.5
        fb = _frac(t * 0.7) - 0.5
        dark = fa * fa + fb * fb < 0.09
    elif texture == "triangles":
        fa = _frac(s * 0.625)
        fb = _frac(t * 0.625)
        dark = (fb < 0.8) & (np.abs(fa - 0.5) * 2.0 < fb - 0.1)
    elif texture == "zigzags":
        y = t - np.abs(2.0 * _frac(s * 0.5) - 1.0)
        dark = _frac(y * 0.8) < 0.32
    elif texture == "rain":
        a = s + 0.3 * t
        col = np.floor(a)
        b = t * 0.5 + 0.5 * (col - 2.0 * np.floor(col * 0.5))
        dark = (np.abs(_frac(a) - 0.5) < 0.18) & (_frac(b) < 0.5)
    elif texture == "pluses":
        fa = np.abs(_frac(s * 0.625) - 0.5)
        fb = np.abs(_frac(t * 0.625) - 0.5)
        dark = ((fa < 0.09) & (fb < 0.32)) | ((fb < 0.09) & (fa < 0.32))
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(f"unknown texture {texture!r}")
    return np.where(dark, _DARK, 1.0)


# -------------------------------------------------------------------------------------------- rendering
def _check_seeds(seeds: np.ndarray) -> np.ndarray:
    arr = np.asarray(seeds)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"seeds must be a 1-d integer array, got {arr.dtype} with shape {arr.shape}")
    if arr.size and int(arr.min()) < 0:
        raise ValueError(f"seeds must be >= 0, got minimum {int(arr.min())}")
    return arr.astype(np.int64)


def _check_values(name: str, values: np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array of shape ({n},), got {arr.dtype} {arr.shape}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= N_VALUES):
        raise ValueError(
            f"{name} values must be in [0, {N_VALUES}), got range [{int(arr.min())}, {int(arr.max())}]"
        )
    return arr.astype(np.int64)


def _runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, stop, value) of the runs of equal values in a 1-d array."""
    if values.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], cuts])
    stops = np.concatenate([cuts, [values.size]])
    return [(int(a), int(b), int(values[a])) for a, b in zip(starts, stops, strict=True)]


def _render_windows(
    shape: np.ndarray, texture: np.ndarray, rgb: np.ndarray, params: RenderParams, settings: RenderSettings
) -> np.ndarray:
    """Render the shape windows of n images sorted by (shape, texture).

    Args:
        shape, texture: (n,) int64, sorted by ``shape * 10 + texture``.
        rgb: (n, 3) float64 colours, 0-255.
        params: the n images' parameters.
        settings: render settings.

    Returns:
        (n, 3, w, w) uint8 with w = shape_size + 1: the pixels of each image's window.
    """
    n = shape.shape[0]
    w = settings.shape_size + 1
    k = settings.supersample
    grid = np.arange(w, dtype=np.float64)
    xs = params.origin[:, 0].astype(np.float64)[:, None] + grid[None, :]  # (n, w) pixel x
    ys = params.origin[:, 1].astype(np.float64)[:, None] + grid[None, :]  # (n, w) pixel y
    half_canvas = settings.canvas_size / 2.0
    sm = params.shape_matrix[:, :, :, None, None]  # (n, 2, 2, 1, 1)
    tm = params.texture_matrix[:, :, :, None, None]
    phase = params.phase[:, :, None, None]  # (n, 2, 1, 1)
    color = rgb[:, :, None, None]  # (n, 3, 1, 1)
    shape_runs = _runs(shape)
    texture_runs = _runs(shape * N_VALUES + texture)
    total: np.ndarray | None = None
    for sy in range(k):
        for sx in range(k):
            px = xs + (sx + 0.5) / k  # sample x, canvas px
            py = ys + (sy + 0.5) / k
            dx = (px - params.centre[:, 0:1])[:, None, :]  # (n, 1, w)
            dy = (py - params.centre[:, 1:2])[:, :, None]  # (n, w, 1)
            u = sm[:, 0, 0] * dx + sm[:, 0, 1] * dy  # (n, w, w)
            v = sm[:, 1, 0] * dx + sm[:, 1, 1] * dy
            inside = np.empty((n, w, w), dtype=bool)
            for a, b, value in shape_runs:
                inside[a:b] = _shape_inside(SHAPES[value], u[a:b], v[a:b])
            tx = (px - half_canvas)[:, None, :]
            ty = (py - half_canvas)[:, :, None]
            s = tm[:, 0, 0] * tx + tm[:, 0, 1] * ty + phase[:, 0]
            t = tm[:, 1, 0] * tx + tm[:, 1, 1] * ty + phase[:, 1]
            tex = np.empty((n, w, w), dtype=np.float64)
            for a, b, value in texture_runs:
                tex[a:b] = _texture_value(TEXTURES[value % N_VALUES], s[a:b], t[a:b], params.noise_key[a:b])
            sample = np.where(inside[:, None], color * tex[:, None], _BG255)  # (n, 3, w, w), 0-255
            total = sample if total is None else total + sample
    assert total is not None
    # Every sample lies in [0, 255], so the rounded mean does too.
    return np.floor(total / (k * k) + 0.5).astype(np.uint8)


def render(
    shape: np.ndarray,
    texture: np.ndarray,
    color: np.ndarray,
    seeds: np.ndarray,
    settings: RenderSettings | None = None,
    chunk_size: int = 16,
) -> np.ndarray:
    """Render N Trifeature images.

    Args:
        shape: (N,) int indices into ``SHAPES``.
        texture: (N,) int indices into ``TEXTURES``.
        color: (N,) int indices into ``COLORS``.
        seeds: (N,) non-negative int seeds; image n depends only on its attributes, ``seeds[n]`` and
            ``settings``.
        settings: render settings (default: ``RenderSettings()``, the CPU preset).
        chunk_size: images rendered together (bounds memory to about ``chunk_size * (shape_size + 1)**2 * 80``
            bytes); does not change the pixels.

    Returns:
        (N, 3, canvas_size, canvas_size) uint8 images.

    Raises:
        ValueError: on arrays of the wrong shape, out-of-range values, negative seeds or chunk_size < 1.
    """
    settings = settings if settings is not None else RenderSettings()
    seeds = _check_seeds(seeds)
    n = seeds.shape[0]
    shape = _check_values("shape", shape, n)
    texture = _check_values("texture", texture, n)
    color = _check_values("color", color, n)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    size = settings.canvas_size
    w = settings.shape_size + 1
    bg = int(np.floor(_BG255 + 0.5))
    out = np.full((n, 3, size, size), bg, dtype=np.uint8)
    params = render_params(seeds, settings)
    rgb = np.asarray(COLOR_RGB, dtype=np.float64)
    order = np.argsort(shape * N_VALUES + texture, kind="stable")
    # Flat index of every window pixel relative to the window's top-left pixel in channel 0: (3, w, w).
    offsets = np.arange(w)
    template = (
        np.arange(3)[:, None, None] * (size * size) + offsets[None, :, None] * size + offsets[None, None, :]
    )
    flat = out.reshape(-1)
    for start in range(0, n, chunk_size):
        idx = order[start : start + chunk_size]
        sub = params.subset(idx)
        pix = _render_windows(shape[idx], texture[idx], rgb[color[idx]], sub, settings)  # (m, 3, w, w)
        corner = idx * (3 * size * size) + sub.origin[:, 1] * size + sub.origin[:, 0]  # (m,)
        flat[corner[:, None, None, None] + template] = pix
    return out


# ----------------------------------------------------------------------------------------------- splits
def split_combinations(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle the 1000 (shape, texture, color) combinations with ``seed`` and split them 80/20.

    Returns:
        (train, test): (800, 3) and (200, 3) int64 combination arrays, disjoint.
    """
    _check_seed(seed)
    combos = np.stack(np.meshgrid(*[np.arange(N_VALUES)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    key = _seed_key(seed, _SALT_SPLIT)
    ranks = _mix64(key + np.arange(N_COMBINATIONS, dtype=np.uint64) * np.uint64(_GOLDEN))
    order = np.argsort(ranks, kind="stable")
    train, test = order[:N_TRAIN_COMBINATIONS], order[N_TRAIN_COMBINATIONS:]
    return combos[train].astype(np.int64), combos[test].astype(np.int64)


def make_splits(
    seed: int, settings: RenderSettings | None = None
) -> tuple[TrifeatureImages, TrifeatureImages]:
    """Render the Trifeature train and test splits.

    The 1000 combinations are shuffled by ``seed``; 800 go to train with 3 renders each (2400 images), 200 to
    test with 1 render each (200 images), so test combinations are never seen in training. Image i (train
    0..2399, then test 2400..2599) is rendered with seed ``image_seeds(seed, i)``.

    Args:
        seed: non-negative int.
        settings: render settings (default: CPU preset).

    Returns:
        (train, test) :class:`TrifeatureImages`.
    """
    settings = settings if settings is not None else RenderSettings()
    train_combos, test_combos = split_combinations(seed)
    attributes = np.concatenate(
        [np.repeat(train_combos, TRAIN_RENDERS, axis=0), np.repeat(test_combos, TEST_RENDERS, axis=0)]
    )
    seeds = image_seeds(seed, np.arange(attributes.shape[0]))
    images = render(attributes[:, 0], attributes[:, 1], attributes[:, 2], seeds, settings)
    n_train = train_combos.shape[0] * TRAIN_RENDERS
    return (
        TrifeatureImages(torch.from_numpy(images[:n_train]), torch.from_numpy(attributes[:n_train]), "train"),
        TrifeatureImages(torch.from_numpy(images[n_train:]), torch.from_numpy(attributes[n_train:]), "test"),
    )


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


# ------------------------------------------------------------------------------------------------ cache
_CACHE_KEYS = ("train_images", "train_attributes", "test_images", "test_attributes", "meta", "checksum")


def default_cache_dir() -> Path:
    """``$COMMLEARN_CACHE``, else platformdirs' user cache dir for "commlearn" if installed, else
    ``~/.cache/commlearn``."""
    env = os.environ.get("COMMLEARN_CACHE")
    if env:
        return Path(env).expanduser()
    try:
        import platformdirs  # type: ignore[import-not-found]
    except ImportError:
        return Path.home() / ".cache" / "commlearn"
    return Path(platformdirs.user_cache_dir("commlearn"))


def cache_path(settings: RenderSettings, seed: int, cache_dir: str | Path | None = None) -> Path:
    """The cache file of the splits rendered with (settings, seed)."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / f"trifeature-{settings.cache_key()}-seed{seed}.npz"


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.view(np.uint8).reshape(-1).data)
    return digest.hexdigest()


def _meta(settings: RenderSettings, seed: int) -> str:
    return json.dumps(
        {"version": RENDER_VERSION, "seed": int(seed), "settings": asdict(settings)}, sort_keys=True
    )


def _save_cache(path: Path, train: TrifeatureImages, test: TrifeatureImages, meta: str) -> None:
    arrays = {
        "train_images": train.images.numpy(),
        "train_attributes": train.attributes.numpy(),
        "test_images": test.images.numpy(),
        "test_attributes": test.attributes.numpy(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            entries: dict[str, Any] = {
                "meta": np.array(meta),
                "checksum": np.array(_checksum(arrays)),
                **arrays,
            }
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _load_cache(path: Path, settings: RenderSettings, meta: str) -> tuple[TrifeatureImages, TrifeatureImages]:
    """Read and verify a cache file; raises ValueError saying what is wrong."""
    with np.load(path, allow_pickle=False) as z:
        if sorted(z.files) != sorted(_CACHE_KEYS):
            raise ValueError(f"entries {sorted(z.files)} instead of {sorted(_CACHE_KEYS)}")
        if str(z["meta"]) != meta:
            raise ValueError(f"it was written for {z['meta']!s}, expected {meta}")
        arrays = {name: z[name] for name in _CACHE_KEYS[:4]}
        stored = str(z["checksum"])
    size = settings.canvas_size
    n_train = N_TRAIN_COMBINATIONS * TRAIN_RENDERS
    n_test = N_TEST_COMBINATIONS * TEST_RENDERS
    expected = {
        "train_images": ((n_train, 3, size, size), np.uint8),
        "train_attributes": ((n_train, 3), np.int64),
        "test_images": ((n_test, 3, size, size), np.uint8),
        "test_attributes": ((n_test, 3), np.int64),
    }
    for name, (shape, dtype) in expected.items():
        arr = arrays[name]
        if arr.shape != shape or arr.dtype != dtype:
            raise ValueError(f"{name} is {arr.dtype} {arr.shape}, expected {np.dtype(dtype)} {shape}")
    actual = _checksum(arrays)
    if actual != stored:
        raise ValueError(f"checksum mismatch (stored {stored}, computed {actual})")
    return (
        TrifeatureImages(
            torch.from_numpy(arrays["train_images"]), torch.from_numpy(arrays["train_attributes"]), "train"
        ),
        TrifeatureImages(
            torch.from_numpy(arrays["test_images"]), torch.from_numpy(arrays["test_attributes"]), "test"
        ),
    )


def load_or_render(
    settings: RenderSettings | None = None, seed: int = 0, cache_dir: str | Path | None = None
) -> tuple[TrifeatureImages, TrifeatureImages]:
    """The (train, test) splits for (settings, seed), read from the cache or rendered and cached.

    The cache holds one ``.npz`` file per (settings, seed) (its name carries a hash of the settings and the
    renderer version), written atomically (temporary file + ``os.replace``) with a checksum of its arrays.
    On load the entries, shapes, dtypes, metadata and checksum are verified; a corrupt, partial or stale
    file is reported with a logged warning and re-rendered, never used. A cache that cannot be written only
    logs a warning.

    Args:
        settings: render settings (default: CPU preset).
        seed: non-negative int.
        cache_dir: cache folder; None → :func:`default_cache_dir`.

    Returns:
        (train, test) :class:`TrifeatureImages`, identical to ``make_splits(seed, settings)``.
    """
    settings = settings if settings is not None else RenderSettings()
    _check_seed(seed)
    path = cache_path(settings, seed, cache_dir)
    meta = _meta(settings, seed)
    if path.exists():
        try:
            return _load_cache(path, settings, meta)
        except Exception as exc:  # any failure to read or verify means: do not use the file
            logger.warning("Trifeature cache file %s is unusable (%s); re-rendering it", path, exc)
    train, test = make_splits(seed, settings)
    try:
        _save_cache(path, train, test, meta)
    except OSError as exc:
        logger.warning("could not write the Trifeature cache file %s (%s); continuing without it", path, exc)
    return train, test
