"""A deliberately straightforward per-pixel Trifeature renderer, the baseline of the rendering benchmark.

It draws the same images as :func:`commlearn.data.trifeature.render` — same poses (from
:func:`render_params`), same shape primitives, same texture formulas, same arithmetic in the same order —
but one pixel and one sub-sample at a time in plain Python floats over the whole canvas. It exists only to
measure the vectorised renderer's speed-up and to cross-check its pixels (tests/test_trifeature.py); do not
use it to make data.
"""

from __future__ import annotations

import math

import numpy as np

from commlearn.data.trifeature import (
    _BG255,
    _DARK,
    _MASK64,
    _MIX1,
    _MIX2,
    _NOISE_KX,
    _NOISE_KY,
    _SHAPE_PRIMITIVES,
    COLOR_RGB,
    SHAPES,
    TEXTURES,
    RenderSettings,
    render_params,
)


def _mix64(x: int) -> int:
    x &= _MASK64
    x ^= x >> 30
    x = (x * _MIX1) & _MASK64
    x ^= x >> 27
    x = (x * _MIX2) & _MASK64
    return x ^ (x >> 31)


def _frac(x: float) -> float:
    return x - math.floor(x)


def _inside(shape: str, u: float, v: float) -> bool:
    for prim in _SHAPE_PRIMITIVES[shape]:
        kind = prim[0]
        if kind == "rect":
            _, cx, cy, hx, hy = prim
            if abs(u - cx) <= hx and abs(v - cy) <= hy:
                return True
        elif kind == "disc":
            if u * u + v * v <= prim[1]:
                return True
        elif kind == "diamond":
            if abs(u) * prim[1] + abs(v) * prim[2] <= 1.0:
                return True
        else:
            crossings = 0
            for y1, y2, x1, k in prim[1]:
                if ((v < y1) != (v < y2)) and u < x1 + (v - y1) * k:
                    crossings += 1
            if crossings % 2 == 1:
                return True
    return False


def _texture(texture: str, s: float, t: float, noise_key: int) -> float:
    dark = False
    if texture == "solid":
        return 1.0
    if texture == "noise":
        ix = math.floor(s * 2.5) & _MASK64
        iy = math.floor(t * 2.5) & _MASK64
        h = _mix64(noise_key + ix * _NOISE_KX + iy * _NOISE_KY)
        return _DARK + (1.0 - _DARK) * ((h >> 11) * 2.0**-53)
    if texture == "stripes":
        dark = _frac(s) < 0.5
    elif texture == "grid":
        dark = _frac(s * 0.625) < 0.28 or _frac(t * 0.625) < 0.28
    elif texture == "hexgrid":
        a = s * 0.5
        b = t * 0.5
        r3 = 1.7320508075688772
        ax = a - math.floor(a + 0.5)
        ay = b - r3 * math.floor(b / r3 + 0.5)
        bx = a - math.floor(a) - 0.5
        by = b - r3 * math.floor(b / r3) - 0.5 * r3
        if ax * ax + ay * ay <= bx * bx + by * by:
            dx, dy = ax, ay
        else:
            dx, dy = bx, by
        h1 = abs(0.5 * dx + 0.8660254037844386 * dy)
        h2 = abs(0.5 * dx - 0.8660254037844386 * dy)
        dark = max(abs(dx), h1, h2) > 0.41
    elif texture == "dots":
        fa = _frac(s * 0.7) - 0.5
        fb = _frac(t * 0.7) - 0.5
        dark = fa * fa + fb * fb < 0.09
    elif texture == "triangles":
        fa = _frac(s * 0.625)
        fb = _frac(t * 0.625)
        dark = fb < 0.8 and abs(fa - 0.5) * 2.0 < fb - 0.1
    elif texture == "zigzags":
        y = t - abs(2.0 * _frac(s * 0.5) - 1.0)
        dark = _frac(y * 0.8) < 0.32
    elif texture == "rain":
        a = s + 0.3 * t
        col = math.floor(a)
        b = t * 0.5 + 0.5 * (col - 2.0 * math.floor(col * 0.5))
        dark = abs(_frac(a) - 0.5) < 0.18 and _frac(b) < 0.5
    elif texture == "pluses":
        fa = abs(_frac(s * 0.625) - 0.5)
        fb = abs(_frac(t * 0.625) - 0.5)
        dark = (fa < 0.09 and fb < 0.32) or (fb < 0.09 and fa < 0.32)
    return _DARK if dark else 1.0


def render_reference(
    shape: np.ndarray,
    texture: np.ndarray,
    color: np.ndarray,
    seeds: np.ndarray,
    settings: RenderSettings,
) -> np.ndarray:
    """Render N images pixel by pixel; same arguments and (N, 3, H, W) uint8 result as ``render``."""
    params = render_params(np.asarray(seeds), settings)
    size = settings.canvas_size
    k = settings.supersample
    half_canvas = size / 2.0
    out = np.empty((len(seeds), 3, size, size), dtype=np.uint8)
    for n in range(len(seeds)):
        shape_name = SHAPES[int(shape[n])]
        texture_name = TEXTURES[int(texture[n])]
        rgb = [float(c) for c in COLOR_RGB[int(color[n])]]
        cx, cy = (float(c) for c in params.centre[n])
        (m00, m01), (m10, m11) = params.shape_matrix[n].tolist()
        (t00, t01), (t10, t11) = params.texture_matrix[n].tolist()
        ph0, ph1 = (float(p) for p in params.phase[n])
        noise_key = int(params.noise_key[n])
        for i in range(size):
            for j in range(size):
                acc = [0.0, 0.0, 0.0]
                for sy in range(k):
                    for sx in range(k):
                        px = float(j) + (sx + 0.5) / k
                        py = float(i) + (sy + 0.5) / k
                        dx = px - cx
                        dy = py - cy
                        u = m00 * dx + m01 * dy
                        v = m10 * dx + m11 * dy
                        tx = px - half_canvas
                        ty = py - half_canvas
                        s = t00 * tx + t01 * ty + ph0
                        t = t10 * tx + t11 * ty + ph1
                        inside = _inside(shape_name, u, v)
                        tex = _texture(texture_name, s, t, noise_key) if inside else 0.0
                        for c in range(3):
                            acc[c] += rgb[c] * tex if inside else _BG255
                for c in range(3):
                    out[n, c, i, j] = min(255, max(0, math.floor(acc[c] / (k * k) + 0.5)))
    return out


def time_speedup(
    settings: RenderSettings | None = None, n_reference: int = 2, n_fast: int = 2600, seed: int = 0
) -> dict[str, float]:
    """Time the vectorised renderer on ``n_fast`` images and this reference on ``n_reference`` of them
    (``settings``: default the ``trifeature-paper`` preset's, 224 px).

    Returns:
        seconds per image of each renderer, the total time of the vectorised one and the speed-up (per
        image); the reference's pixels are checked against the vectorised ones.
    """
    import time

    from commlearn.config import load_config
    from commlearn.data.trifeature import image_seeds, render

    if settings is None:  # the paper's 224 px images
        settings = RenderSettings(**load_config("trifeature-paper").data.options["render"])
    rng = np.random.default_rng(seed)
    attributes = rng.integers(0, 10, size=(n_fast, 3))
    seeds = image_seeds(seed, np.arange(n_fast))
    start = time.perf_counter()
    fast = render(attributes[:, 0], attributes[:, 1], attributes[:, 2], seeds, settings)
    fast_total = time.perf_counter() - start
    sub = slice(0, n_reference)
    start = time.perf_counter()
    ref = render_reference(attributes[sub, 0], attributes[sub, 1], attributes[sub, 2], seeds[sub], settings)
    ref_total = time.perf_counter() - start
    if not np.array_equal(ref, fast[sub]):
        raise AssertionError("the reference and the vectorised renderer disagree")
    fast_per_image = fast_total / n_fast
    ref_per_image = ref_total / n_reference
    return {
        "fast_total_s": fast_total,
        "fast_per_image_s": fast_per_image,
        "reference_per_image_s": ref_per_image,
        "speedup": ref_per_image / fast_per_image,
    }


if __name__ == "__main__":
    for name, value in time_speedup().items():
        print(f"{name}: {value:.4g}")
