"""Tests of the Trifeature renderer, its splits and its cache."""

from __future__ import annotations

import importlib.util
import logging
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from commlearn.config import load_config
from commlearn.data import trifeature as tf
from commlearn.data.trifeature import (
    ATTRIBUTES,
    COLOR_RGB,
    COLORS,
    SHAPES,
    TEXTURES,
    RenderSettings,
    TrifeatureImages,
    cache_path,
    default_cache_dir,
    image_seeds,
    load_or_render,
    make_splits,
    render,
    render_params,
    split_combinations,
)

# A tiny canvas keeps full 2600-image splits and the per-pixel reference fast.
TINY = RenderSettings(canvas_size=24, shape_size=16, texture_period=3.0, supersample=1)
TINY_AA = RenderSettings(canvas_size=24, shape_size=16, texture_period=3.0, supersample=2)
BG = 128


def _reference() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "render_reference.py"
    spec = importlib.util.spec_from_file_location("render_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _all_pairs_of_values() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """20 images covering every shape and every texture twice, with varied colours."""
    shape = np.r_[np.arange(10), np.arange(10)]
    texture = np.r_[np.arange(10), (np.arange(10) + 5) % 10]
    color = (np.arange(20) * 3) % 10
    return shape, texture, color


# ------------------------------------------------------------------------------------------- constants
def test_constants() -> None:
    assert len(SHAPES) == len(TEXTURES) == len(COLORS) == len(COLOR_RGB) == 10
    assert ATTRIBUTES == ("shape", "texture", "color")
    assert SHAPES[0] == "triangle" and TEXTURES[5] == "noise" and COLORS[7] == "ocean"
    assert all(0 <= c <= 255 for rgb in COLOR_RGB for c in rgb)
    assert len(set(COLOR_RGB)) == 10


def _preset_render(name: str) -> RenderSettings:
    """The render settings of a packaged preset."""
    return RenderSettings(**load_config(f"trifeature-{name}").data.options["render"])


PAPER, CPU = _preset_render("paper"), _preset_render("cpu")


def test_presets() -> None:
    assert (PAPER.canvas_size, PAPER.shape_size, PAPER.max_shape_rotation, PAPER.max_texture_rotation) == (
        224,
        128,
        45.0,
        45.0,
    )
    assert (CPU.canvas_size, CPU.shape_size, CPU.texture_period) == (64, 56, 5.0)
    assert RenderSettings() == CPU  # the defaults are the cpu preset's
    assert PAPER.cache_key() != CPU.cache_key() and len(CPU.cache_key()) == 16
    assert RenderSettings(**vars(CPU)).cache_key() == CPU.cache_key()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape_size": 2}, "shape_size must be >= 4"),
        ({"canvas_size": 30, "shape_size": 36}, "canvas_size must be >= shape_size"),
        ({"texture_period": 0.0}, "texture_period must be > 0"),
        ({"max_shape_rotation": -1.0}, "max_shape_rotation must be in"),
        ({"max_texture_rotation": 200.0}, "max_texture_rotation must be in"),
        ({"supersample": 0}, "supersample must be in"),
    ],
)
def test_settings_errors(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RenderSettings(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- rendering
def test_render_shape_dtype_and_determinism() -> None:
    shape, texture, color = _all_pairs_of_values()
    seeds = np.arange(20) * 31 + 5
    a = render(shape, texture, color, seeds, TINY_AA)
    assert a.shape == (20, 3, 24, 24) and a.dtype == np.uint8
    b = render(shape, texture, color, seeds, TINY_AA, chunk_size=3)  # other chunking, same pixels
    np.testing.assert_array_equal(a, b)
    # a subset, in another order, gives the same pixels for each image
    sub = np.array([17, 2, 9])
    np.testing.assert_array_equal(render(shape[sub], texture[sub], color[sub], seeds[sub], TINY_AA), a[sub])
    # another seed moves the shape
    c = render(shape, texture, color, seeds + 1, TINY_AA)
    assert all(not np.array_equal(a[i], c[i]) for i in range(20))


def test_render_matches_per_pixel_reference() -> None:
    reference = _reference()
    shape, texture, color = _all_pairs_of_values()
    seeds = np.arange(20) * 7919 + 1
    for settings in (TINY, TINY_AA):
        fast = render(shape, texture, color, seeds, settings)
        slow = reference.render_reference(shape, texture, color, seeds, settings)
        np.testing.assert_array_equal(fast, slow)


def test_params_depend_only_on_own_seed() -> None:
    seeds = np.array([3, 99, 12345, 2**62])
    full = render_params(seeds, PAPER)
    part = render_params(seeds[2:], PAPER)
    for name in ("centre", "origin", "shape_matrix", "texture_matrix", "phase", "noise_key"):
        np.testing.assert_array_equal(getattr(full, name)[2:], getattr(part, name))
    # the shape window always lies on the canvas
    many = render_params(np.arange(5000), CPU)
    assert many.origin.min() >= 0 and many.origin.max() + CPU.shape_size + 1 <= CPU.canvas_size
    # rotations are rotations scaled by 1 / (template half size): determinant (2 / shape_size)^2
    det = np.linalg.det(many.shape_matrix)
    np.testing.assert_allclose(det, (2 / CPU.shape_size) ** 2, rtol=1e-12)


def test_solid_shapes_have_exact_colour_and_stay_in_window() -> None:
    settings = RenderSettings(canvas_size=64, shape_size=36, texture_period=5.0, supersample=1)
    seeds = np.arange(10) + 100
    shape = np.arange(10)
    color = np.arange(10)
    imgs = render(shape, np.zeros(10, dtype=np.int64), color, seeds, settings)
    params = render_params(seeds, settings)
    for i in range(10):
        pix = imgs[i].reshape(3, -1).T
        fg = np.any(pix != BG, axis=1)
        assert set(map(tuple, pix[fg].tolist())) == {COLOR_RGB[i]}
        area = fg.mean() / (36 / 64) ** 2  # fraction of the template covered
        assert 0.15 < area < 0.75, (SHAPES[i], area)
        ys, xs = np.nonzero(np.any(imgs[i] != BG, axis=0))
        ox, oy = params.origin[i]
        assert xs.min() >= ox and xs.max() <= ox + 36 and ys.min() >= oy and ys.max() <= oy + 36


def test_every_attribute_changes_the_image() -> None:
    # one pose for all 1000 combinations: every combination gives a different image
    settings = CPU
    combos = np.stack(np.meshgrid(*[np.arange(10)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    imgs = render(combos[:, 0], combos[:, 1], combos[:, 2], np.full(1000, 42), settings)
    flat = imgs.reshape(1000, -1)
    assert len(np.unique(flat, axis=0)) == 1000


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2)), "seeds must be a 1-d integer array"),
        ((np.zeros(2, int), np.zeros(2, int), np.zeros(2, int), np.array([1, -1])), "seeds must be >= 0"),
        (
            (np.zeros(3, int), np.zeros(2, int), np.zeros(2, int), np.zeros(2, int)),
            r"shape must be .* \(2,\)",
        ),
        (
            (np.zeros(2, int), np.array([0, 10]), np.zeros(2, int), np.zeros(2, int)),
            r"texture values must be in",
        ),
        (
            (np.zeros(2, int), np.zeros(2, int), np.array([-1, 0]), np.zeros(2, int)),
            r"color values must be in",
        ),
    ],
)
def test_render_errors(args: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], match: str) -> None:
    shape, texture, color, seeds = args
    with pytest.raises(ValueError, match=match):
        render(shape, texture, color, seeds, settings=TINY)


def test_render_chunk_size_error() -> None:
    z = np.zeros(1, dtype=np.int64)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        render(z, z, z, z, TINY, chunk_size=0)


def test_empty_render() -> None:
    z = np.zeros(0, dtype=np.int64)
    assert render(z, z, z, z, TINY).shape == (0, 3, 24, 24)


# ---------------------------------------------------------------------------------------------- splits
def test_split_combinations() -> None:
    train, test = split_combinations(0)
    assert train.shape == (800, 3) and test.shape == (200, 3)
    ids_train = set((train @ [100, 10, 1]).tolist())
    ids_test = set((test @ [100, 10, 1]).tolist())
    assert len(ids_train) == 800 and len(ids_test) == 200
    assert ids_train.isdisjoint(ids_test) and ids_train | ids_test == set(range(1000))
    again_train, _ = split_combinations(0)
    np.testing.assert_array_equal(train, again_train)
    other, _ = split_combinations(1)
    assert set((other @ [100, 10, 1]).tolist()) != ids_train


def test_make_splits() -> None:
    train, test = make_splits(3, TINY)
    assert isinstance(train, TrifeatureImages) and (train.split, test.split) == ("train", "test")
    assert train.images.shape == (2400, 3, 24, 24) and test.images.shape == (200, 3, 24, 24)
    assert train.images.dtype == torch.uint8 and train.attributes.dtype == torch.int64
    ids_train = (train.attributes.numpy() @ [100, 10, 1]).tolist()
    ids_test = (test.attributes.numpy() @ [100, 10, 1]).tolist()
    counts = np.bincount(ids_train, minlength=1000)
    assert set(counts[counts > 0].tolist()) == {3} and (counts > 0).sum() == 800
    assert len(set(ids_test)) == 200 and set(ids_test).isdisjoint(ids_train)
    # the three renders of a training combination differ
    assert not torch.equal(train.images[0], train.images[1])
    # images are rendered from image_seeds(seed, index), train first
    attrs = test.attributes.numpy()
    again = render(attrs[:, 0], attrs[:, 1], attrs[:, 2], image_seeds(3, np.arange(2400, 2600)), TINY)
    np.testing.assert_array_equal(test.images.numpy(), again)
    # determinism
    train2, test2 = make_splits(3, TINY)
    assert torch.equal(train.images, train2.images) and torch.equal(test.attributes, test2.attributes)


def test_make_splits_seed_error() -> None:
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        make_splits(-1, TINY)


def test_trifeature_images_validation() -> None:
    with pytest.raises(ValueError, match=r"images must be a uint8 \(N, 3, H, W\)"):
        TrifeatureImages(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, dtype=torch.int64), "train")
    with pytest.raises(ValueError, match=r"attributes must be int64 \(2, 3\)"):
        TrifeatureImages(
            torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, 2, dtype=torch.int64), "x"
        )


# ----------------------------------------------------------------------------------------------- cache
def _assert_same(a: tuple[TrifeatureImages, ...], b: tuple[TrifeatureImages, ...]) -> None:
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.images, y.images) and torch.equal(x.attributes, y.attributes)
        assert x.split == y.split


def test_cache_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = make_splits(5, TINY)
    first = load_or_render(TINY, 5, tmp_path)
    path = cache_path(TINY, 5, tmp_path)
    assert path.exists() and TINY.cache_key() in path.name
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("should have been read from the cache")

    monkeypatch.setattr(tf, "make_splits", fail)
    second = load_or_render(TINY, 5, str(tmp_path))
    _assert_same(first, second)
    _assert_same(first, fresh)


def _corrupt_and_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, corrupt: Callable[[Path], None], reason: str
) -> None:
    good = load_or_render(TINY, 1, tmp_path)
    path = cache_path(TINY, 1, tmp_path)
    corrupt(path)
    with caplog.at_level(logging.WARNING, logger="commlearn.data.trifeature"):
        again = load_or_render(TINY, 1, tmp_path)
    messages = [r.getMessage() for r in caplog.records]
    assert any("unusable" in m and str(path) in m and re.search(reason, m) for m in messages), messages
    _assert_same(good, again)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="commlearn.data.trifeature"):
        load_or_render(TINY, 1, tmp_path)  # the re-rendered file was written back and is valid
    assert not caplog.records


def test_truncated_cache_is_rerendered(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def truncate(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    _corrupt_and_reload(tmp_path, caplog, truncate, "not a zip file")


def test_bit_flipped_cache_is_rerendered(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def flip(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[len(data) // 3] ^= 0x10  # inside the train images
        path.write_bytes(bytes(data))

    _corrupt_and_reload(tmp_path, caplog, flip, "CRC|checksum")


def test_rewritten_cache_with_wrong_checksum_is_rerendered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a well-formed zip whose arrays no longer match the stored checksum
    def tamper(path: Path) -> None:
        with np.load(path) as z:
            arrays = {name: z[name].copy() for name in z.files}
        arrays["test_images"][0, 0, 0, 0] ^= 1
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    _corrupt_and_reload(tmp_path, caplog, tamper, "checksum mismatch")


def test_cache_with_wrong_entries_is_rerendered(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def replace(path: Path) -> None:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("something.npy", b"not an array")

    _corrupt_and_reload(tmp_path, caplog, replace, "entries")


def test_cache_of_other_seed_is_rerendered(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def swap(path: Path) -> None:
        load_or_render(TINY, 2, tmp_path)
        path.write_bytes(cache_path(TINY, 2, tmp_path).read_bytes())

    _corrupt_and_reload(tmp_path, caplog, swap, "it was written for")


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COMMLEARN_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert cache_path(TINY, 0).parent == tmp_path / "c"
    monkeypatch.delenv("COMMLEARN_CACHE")
    assert "commlearn" in str(default_cache_dir())


def test_unwritable_cache_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="commlearn.data.trifeature"):
        train, test = load_or_render(TINY, 0, blocker)
    assert len(train) == 2400 and len(test) == 200
    assert any("could not write" in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------------------------------------------- speed
@pytest.mark.slow
def test_paper_size_render_speed() -> None:
    """The paper-size set (2600 images at 224 px) renders in < 30 s and >= 100x faster than per pixel."""
    timing = _reference().time_speedup(PAPER, n_reference=2, n_fast=2600)
    assert timing["fast_total_s"] < 30.0
    assert timing["speedup"] >= 100.0


def test_render_is_fast_on_cpu_preset() -> None:
    attrs = np.random.default_rng(0).integers(0, 10, size=(260, 3))
    start = time.perf_counter()
    render(attrs[:, 0], attrs[:, 1], attrs[:, 2], np.arange(260), CPU)
    assert time.perf_counter() - start < 5.0
