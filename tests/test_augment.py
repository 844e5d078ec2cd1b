"""Tests for commlearn.augment: batched, per-sample, label-preserving augmentations."""

from __future__ import annotations

import colorsys
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from commlearn.augment import (
    DropNoise,
    GaussianNoise,
    ImageAugment,
    MultimodalAugment,
    TokenMask,
    default_augment,
)
from commlearn.data.base import ModalitySpec

OFF = dict(crop_scale=None, p_flip=0.0, p_jitter=0.0, p_gray=0.0, p_blur=0.0)  # every image op off


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(b: int = 8, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> Tensor:
    return torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=_gen(seed))


def _only(**kwargs: object) -> ImageAugment:
    """An ImageAugment with every op off except the ones named."""
    return ImageAugment(**{**OFF, **kwargs})  # type: ignore[arg-type]


# ---------------------------------------------------------------- images: shapes, ranges, identity


@pytest.mark.parametrize("size", [None, 20, (16, 40)])
def test_image_shape_dtype_range(size: int | tuple[int, int] | None) -> None:
    x = _images(6, 3, 32, 24)
    y = ImageAugment(size=size)(x, generator=_gen(1))
    expected = (32, 24) if size is None else ((size, size) if isinstance(size, int) else size)
    assert y.shape == (6, 3, *expected)
    assert y.dtype == torch.float32 and y.device == x.device
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_image_never_modifies_its_input() -> None:
    xf = torch.rand(8, 3, 16, 16)
    x8 = _images(8, 3, 16, 16)
    copies = (xf.clone(), x8.clone())
    for aug in (ImageAugment(), _only(p_flip=1.0, p_jitter=1.0, p_gray=1.0, p_blur=1.0)):
        aug(xf, generator=_gen(0))
        aug(x8, generator=_gen(0))
    assert torch.equal(xf, copies[0]) and torch.equal(x8, copies[1])


@pytest.mark.parametrize("size", [None, 12])
def test_image_memory_format_does_not_matter(size: int | None) -> None:
    x = _images(4, 3, 16, 16)
    aug = ImageAugment(size=size)
    y = aug(x.to(memory_format=torch.channels_last), generator=_gen(2))
    assert torch.allclose(y, aug(x, generator=_gen(2)), atol=1e-5)
    expanded = x[:1].expand(4, 3, 16, 16)
    assert torch.allclose(
        aug(expanded, generator=_gen(2)), aug(expanded.contiguous(), generator=_gen(2)), atol=1e-5
    )


def test_image_float_input_keeps_dtype_and_gray_images_work() -> None:
    x = torch.rand(4, 3, 16, 16, dtype=torch.float64)
    assert ImageAugment()(x).dtype == torch.float64
    g = torch.rand(4, 1, 16, 16)
    y = ImageAugment()(g, generator=_gen(0))
    assert y.shape == g.shape and float(y.min()) >= 0 and float(y.max()) <= 1


def test_image_all_probabilities_zero_is_identity() -> None:
    x = _images()
    assert torch.equal(_only()(x), x.float() / 255)
    xf = torch.rand(4, 3, 16, 16)
    assert torch.equal(_only()(xf), xf)
    # the resampling path with a full-image crop is exactly the identity too
    full = _only(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
    assert torch.equal(full(xf, generator=_gen(0)), xf)


def test_image_probability_zero_per_op_with_others_forced() -> None:
    # p_jitter=1 with neutral factors, everything else off: exact identity (the blend steps are exact at f=1)
    xf = torch.rand(4, 3, 16, 16)
    neutral = _only(p_jitter=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)
    assert torch.equal(neutral(xf, generator=_gen(0)), xf)


def test_image_flip() -> None:
    xf = torch.rand(5, 3, 8, 12)
    assert torch.equal(_only(p_flip=1.0)(xf), xf.flip(-1))
    through_crop = _only(p_flip=1.0, crop_scale=(1.0, 1.0), crop_ratio=(1.5, 1.5))
    assert torch.allclose(through_crop(xf), xf.flip(-1), atol=1e-6)
    # the antialiased (shrinking) resampling path flips too
    assert torch.allclose(_only(size=(4, 6), p_flip=1.0)(xf), _only(size=(4, 6))(xf).flip(-1), atol=1e-6)


def test_image_crop_keeps_geometry() -> None:
    # a horizontal ramp stays a ramp inside [0, 1]: increasing without flip, decreasing with flip
    ramp = torch.linspace(0, 1, 32).expand(16, 3, 32, 32).contiguous()
    y = _only(crop_scale=(0.08, 1.0))(ramp, generator=_gen(0))
    assert bool((y.diff(dim=-1) >= -1e-6).all())
    assert not torch.allclose(y, ramp)  # something was cropped
    y = _only(crop_scale=(0.08, 1.0), p_flip=1.0)(ramp, generator=_gen(0))
    assert bool((y.diff(dim=-1) <= 1e-6).all())
    # a constant image stays constant (interpolation weights sum to 1)
    const = torch.full((4, 3, 20, 20), 0.3)
    assert torch.allclose(_only(crop_scale=(0.08, 1.0))(const), const, atol=1e-6)


def test_image_crop_boxes_respect_scale_and_ratio() -> None:
    aug = ImageAugment(crop_scale=(0.2, 0.5), crop_ratio=(0.5, 2.0))
    top, left, ch, cw = aug._crop_boxes(4000, 30, 40, torch.device("cpu"), _gen(0))
    assert bool((top >= 0).all() and (left >= 0).all())
    assert bool((top + ch <= 30 + 1e-4).all() and (left + cw <= 40 + 1e-4).all())
    area = ch * cw / (30 * 40)
    assert float(area.min()) >= 0.2 - 1e-5 and float(area.max()) <= 0.5 + 1e-5
    ratio = cw / ch
    assert float(ratio.min()) >= 0.5 - 1e-5 and float(ratio.max()) <= 2.0 + 1e-5
    assert float(area.std()) > 0.05 and len(torch.unique(top)) > 3000  # per-sample boxes


def test_image_crop_fallback_when_nothing_fits() -> None:
    # a very wide image with ratios around 1 and scale 1: no proposal fits, centred crop with ratio clamped
    aug = ImageAugment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
    top, left, ch, cw = aug._crop_boxes(3, 10, 40, torch.device("cpu"), _gen(0))
    assert torch.allclose(ch, torch.full((3,), 10.0)) and torch.allclose(cw, torch.full((3,), 10.0))
    assert torch.allclose(left, torch.full((3,), 15.0)) and torch.allclose(top, torch.zeros(3))


def test_image_resize_down_is_antialiased() -> None:
    checker = ((torch.arange(32).view(-1, 1) + torch.arange(32)) % 2).float().expand(2, 3, 32, 32)
    y = _only(size=8)(checker.contiguous())
    assert torch.allclose(y, torch.full_like(y, 0.5), atol=0.05)


# ---------------------------------------------------------------- images: colour ops vs references


def _gray_ref(x: Tensor) -> Tensor:
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def test_image_brightness_contrast_saturation_match_formulas() -> None:
    x = torch.rand(3, 3, 10, 10)
    y = _only(p_jitter=1.0, brightness=(1.5, 1.5), contrast=0.0, saturation=0.0, hue=0.0)(x)
    assert torch.allclose(y, (1.5 * x).clamp(0, 1), atol=1e-6)
    y = _only(p_jitter=1.0, brightness=0.0, contrast=(0.5, 0.5), saturation=0.0, hue=0.0)(x)
    mean = _gray_ref(x).mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(y, (0.5 * x + 0.5 * mean).clamp(0, 1), atol=1e-6)
    y = _only(p_jitter=1.0, brightness=0.0, contrast=0.0, saturation=(0.0, 0.0), hue=0.0)(x)
    assert torch.allclose(y, _gray_ref(x).expand_as(x), atol=1e-6)


@pytest.mark.parametrize("shift", [-0.5, -0.1, 0.3, 0.5])
def test_image_hue_matches_colorsys(shift: float) -> None:
    x = torch.rand(2, 3, 4, 5, generator=_gen(3))
    x[0, :, 0, 0] = 0.5  # a grey pixel
    x[0, :, 0, 1] = torch.tensor([0.9, 0.9, 0.2])  # ties for the maximum
    y = _only(p_jitter=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=(shift, shift))(x)
    flat = x.permute(0, 2, 3, 1).reshape(-1, 3).tolist()
    ref = []
    for r, g, b in flat:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        ref.append(colorsys.hsv_to_rgb((h + shift) % 1.0, s, v))
    ref_t = torch.tensor(ref).view(2, 4, 5, 3).permute(0, 3, 1, 2)
    assert torch.allclose(y, ref_t, atol=1e-5)


def test_image_jitter_order_is_random_per_sample() -> None:
    # brightness x2 and contrast x0 (→ grey mean) do not commute: both orders must appear in one batch
    x = torch.rand(1, 3, 6, 6, generator=_gen(1)).expand(64, 3, 6, 6).contiguous() * 0.6
    aug = _only(p_jitter=1.0, brightness=(2.0, 2.0), contrast=(0.0, 0.0), saturation=0.0, hue=0.0)
    y = aug(x, generator=_gen(0))
    b_then_c = _gray_ref((2 * x[:1]).clamp(0, 1)).mean().expand(1, 3, 6, 6)
    c_then_b = (2 * _gray_ref(x[:1]).mean()).clamp(0, 1).expand(1, 3, 6, 6)
    first = torch.isclose(y, b_then_c, atol=1e-5).flatten(1).all(1)
    second = torch.isclose(y, c_then_b, atol=1e-5).flatten(1).all(1)
    assert bool((first | second).all()) and 10 < int(first.sum()) < 54


def test_image_grayscale() -> None:
    x = torch.rand(4, 3, 8, 8)
    y = _only(p_gray=1.0)(x)
    assert torch.allclose(y, _gray_ref(x).expand_as(x), atol=1e-6)


def test_image_blur_matches_conv_reference() -> None:
    x = torch.rand(3, 3, 17, 13)
    y = _only(p_blur=1.0, blur_sigma=(1.3, 1.3), blur_kernel=7)(x)
    t = torch.arange(7, dtype=torch.float32) - 3
    k1 = torch.exp(-(t**2) / (2 * 1.3**2))
    k1 = k1 / k1.sum()
    weight = (k1.view(-1, 1) * k1.view(1, -1)).expand(3, 1, 7, 7)
    ref = F.conv2d(F.pad(x, (3, 3, 3, 3), mode="reflect"), weight, groups=3)
    assert torch.allclose(y, ref, atol=1e-5)
    assert ImageAugment().kernel_size(224, 224) == 23 and ImageAugment().kernel_size(64, 64) == 7
    assert ImageAugment().kernel_size(16, 16) == 3


def test_image_blur_with_probability_half_leaves_others_exact() -> None:
    x = torch.rand(64, 3, 12, 12)
    y = _only(p_blur=0.5)(x, generator=_gen(0))
    same = (y == x).flatten(1).all(1)
    assert 10 < int(same.sum()) < 54


# ---------------------------------------------------------------- images: randomness


def test_image_per_sample_parameters_and_views_differ() -> None:
    x = _images(1).expand(16, 3, 32, 32).contiguous()
    aug = ImageAugment()
    y = aug(x, generator=_gen(0))
    flat = y.flatten(1)
    dists = torch.cdist(flat, flat)
    assert bool((dists + torch.eye(16) * 1e9 > 1e-3).all())  # every pair of samples differs
    assert not torch.allclose(y, aug(x, generator=_gen(1)))


def test_image_generator_determinism() -> None:
    x = _images()
    aug = ImageAugment()
    assert torch.equal(aug(x, generator=_gen(5)), aug(x, generator=_gen(5)))
    torch.manual_seed(0)
    a = aug(x)
    torch.manual_seed(0)
    assert torch.equal(a, aug(x))


def test_image_probabilities_are_per_sample() -> None:
    x = torch.rand(400, 3, 4, 4)
    y = _only(p_gray=0.2)(x, generator=_gen(0))
    changed = (y != x).flatten(1).any(1).float().mean()
    assert 0.13 < float(changed) < 0.27


# ---------------------------------------------------------------- images: errors


def test_image_errors() -> None:
    with pytest.raises(ValueError, match="uint8 or float images"):
        ImageAugment()(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="uint8 or float images"):
        ImageAugment()(torch.zeros(2, 3, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="1 or 3 channels, got 2"):
        ImageAugment()(torch.rand(2, 2, 8, 8))
    assert _only()(torch.rand(2, 2, 8, 8)).shape == (2, 2, 8, 8)  # any C when colour ops are off
    with pytest.raises(ValueError, match="generator is on cpu"):
        ImageAugment()(torch.empty(2, 3, 8, 8, device="meta"), generator=_gen(0))
    with pytest.raises(ValueError, match="size must be positive"):
        ImageAugment(size=0)
    with pytest.raises(ValueError, match="crop_scale must satisfy"):
        ImageAugment(crop_scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="crop_ratio must satisfy"):
        ImageAugment(crop_ratio=(2.0, 1.0))
    with pytest.raises(ValueError, match="p_flip must be a probability"):
        ImageAugment(p_flip=1.5)
    with pytest.raises(ValueError, match="brightness must be >= 0"):
        ImageAugment(brightness=-0.1)
    with pytest.raises(ValueError, match="contrast range must satisfy"):
        ImageAugment(contrast=(1.2, 0.8))
    with pytest.raises(ValueError, match=r"hue must be in \[0, 0.5\]"):
        ImageAugment(hue=0.7)
    with pytest.raises(ValueError, match="hue range must lie within"):
        ImageAugment(hue=(0.1, 0.6))
    with pytest.raises(
        ValueError, match=r"crop_scale must be a \(low, high\) pair of numbers, got \[0.1, 0.5, 1.0\]"
    ):
        ImageAugment(crop_scale=[0.1, 0.5, 1.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"saturation must be a \(low, high\) pair of numbers"):
        ImageAugment(saturation="strong")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="blur_sigma must satisfy"):
        ImageAugment(blur_sigma=(0.0, 1.0))
    with pytest.raises(ValueError, match="blur_kernel must be a positive odd int"):
        ImageAugment(blur_kernel=4)


# ---------------------------------------------------------------- sequences: DropNoise


def _sequences(b: int = 64, t: int = 20, d: int = 3, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = _gen(seed)
    x = torch.rand(b, t, d, generator=g) + 1.0  # no zeros in the signal
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    padding = torch.arange(t).unsqueeze(0) >= lengths.unsqueeze(1)
    return x, padding


def test_dropnoise_shape_dtype_and_identity_at_p0() -> None:
    x, pad = _sequences()
    y = DropNoise()(x, padding=pad, generator=_gen(1))
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert torch.equal(DropNoise(p_drop=0.0, p_noise=0.0)(x, padding=pad), x)


def test_dropnoise_padding_untouched() -> None:
    x, pad = _sequences()
    y = DropNoise(p_drop=1.0, p_noise=1.0)(x, padding=pad, generator=_gen(0))
    assert torch.equal(y[pad], x[pad])
    assert bool((y[~pad] != x[~pad]).all())  # every signal step was noised


def test_dropnoise_drop_fraction_bounds() -> None:
    x, pad = _sequences(b=2000, t=20)
    y = DropNoise(p_drop=1.0, max_drop=0.6, p_noise=0.0)(x, padding=pad, generator=_gen(0))
    dropped = (y == 0).all(dim=-1)
    assert not bool((dropped & pad).any())  # padding is never "dropped"
    assert bool(((y == 0) | (y == x)).all())  # steps are zeroed whole or kept
    n_valid = (~pad).sum(1)
    frac = dropped.sum(1) / n_valid
    assert bool((dropped.sum(1) <= torch.floor(0.6 * n_valid)).all())
    assert float(frac.min()) == 0.0 and float(frac.max()) > 0.5
    assert abs(float(frac[n_valid >= 10].mean()) - 0.3) < 0.05  # fraction ~ U(0, 0.6) rounded down


def test_dropnoise_per_sample_and_probabilities() -> None:
    x = torch.ones(1000, 10, 2)
    y = DropNoise(p_drop=0.5, max_drop=0.8, p_noise=0.0)(x, generator=_gen(0))
    hit = (y == 0).any(-1).any(-1).float().mean()
    assert 0.35 < float(hit) < 0.5  # p_drop = 0.5, minus draws whose fraction rounds to 0 steps
    patterns = {tuple(row.tolist()) for row in (y[:, :, 0] == 0)}
    assert len(patterns) > 100  # different samples drop different steps
    z = DropNoise(p_drop=0.0, p_noise=0.3, sigma=0.1)(x, generator=_gen(0))
    noisy = (z != x).flatten(1).any(1).float().mean()
    assert 0.24 < float(noisy) < 0.36
    diff = (z - x)[(z != x).flatten(1).any(1)]
    assert abs(float(diff.std()) - 0.1) < 0.01


def test_dropnoise_generator_determinism() -> None:
    x, pad = _sequences()
    aug = DropNoise()
    assert torch.equal(aug(x, pad, _gen(3)), aug(x, pad, _gen(3)))
    assert not torch.equal(aug(x, pad, _gen(3)), aug(x, pad, _gen(4)))


def test_dropnoise_errors() -> None:
    x, pad = _sequences()
    with pytest.raises(ValueError, match=r"DropNoise expects a float tensor \(B, T, d\)"):
        DropNoise()(x[:, :, 0])
    with pytest.raises(ValueError, match="padding must be a bool mask"):
        DropNoise()(x, padding=pad.long())
    with pytest.raises(ValueError, match=r"padding must have shape \(B, T\)"):
        DropNoise()(x, padding=pad[:, :5])
    with pytest.raises(ValueError, match="max_drop must be a probability"):
        DropNoise(max_drop=1.2)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        DropNoise(sigma=-1.0)
    with pytest.raises(ValueError, match="generator is on cpu"):
        DropNoise()(torch.empty(2, 3, 4, device="meta"), generator=_gen(0))


# ---------------------------------------------------------------- tabular: GaussianNoise


def test_gaussian_noise() -> None:
    x = torch.randn(2000, 5)
    assert torch.equal(GaussianNoise(p=0.0)(x), x)
    y = GaussianNoise(sigma=0.2, p=0.5)(x, generator=_gen(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    changed = (y != x).any(1)
    assert bool(((y == x).all(1) | (y != x).all(1)).all())  # per-sample: all features or none
    assert 0.45 < float(changed.float().mean()) < 0.55
    assert abs(float((y - x)[changed].std()) - 0.2) < 0.01
    assert torch.equal(GaussianNoise()(x, generator=_gen(1)), GaussianNoise()(x, generator=_gen(1)))


def test_gaussian_noise_respects_padding() -> None:
    x, pad = _sequences()
    y = GaussianNoise(p=1.0)(x, padding=pad)
    assert torch.equal(y[pad], x[pad]) and bool((y[~pad] != x[~pad]).all())


def test_gaussian_noise_errors() -> None:
    with pytest.raises(ValueError, match="GaussianNoise expects a float tensor"):
        GaussianNoise()(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        GaussianNoise(sigma=-0.1)
    with pytest.raises(ValueError, match="p must be a probability"):
        GaussianNoise(p=-0.1)


# ---------------------------------------------------------------- tokens: TokenMask


def test_token_mask() -> None:
    g = _gen(0)
    ids = torch.randint(5, 100, (500, 40), generator=g)
    ids[:, 0] = 1  # [CLS]
    lengths = torch.randint(10, 41, (500,), generator=g)
    pad = torch.arange(40).unsqueeze(0) >= lengths.unsqueeze(1)
    ids[pad] = 0
    aug = TokenMask(mask_id=3, p=0.15, special_ids=(0, 1))
    y = aug(ids, padding=pad, generator=_gen(1))
    assert y.shape == ids.shape and y.dtype == ids.dtype
    masked = y == 3
    assert torch.equal(y[~masked], ids[~masked])
    assert not bool((masked & pad).any()) and not bool(masked[:, 0].any())
    n_eligible = (lengths - 1).float()
    count = masked.sum(1).float()
    assert bool(((count - 0.15 * n_eligible).abs() < 1.0).all())
    assert abs(float(count.sum() / n_eligible.sum()) - 0.15) < 0.01
    assert torch.equal(TokenMask(3, p=0.0)(ids, pad), ids)
    everything = TokenMask(3, p=1.0, special_ids=(0, 1))(ids, pad)
    eligible = ~pad & (ids != 0) & (ids != 1)
    assert bool((everything[eligible] == 3).all()) and torch.equal(everything[~eligible], ids[~eligible])
    assert torch.equal(aug(ids, pad, _gen(2)), aug(ids, pad, _gen(2)))


def test_token_mask_errors() -> None:
    with pytest.raises(ValueError, match=r"TokenMask expects integer token ids \(B, T\)"):
        TokenMask(3)(torch.rand(2, 5))
    with pytest.raises(ValueError, match="p must be a probability"):
        TokenMask(3, p=2.0)


# ---------------------------------------------------------------- multimodal


def test_multimodal_two_views() -> None:
    images = _images(8, 3, 16, 16)
    seq, pad = _sequences(b=8)
    vec = torch.randn(8, 6)
    ids = torch.randint(0, 50, (8, 12))
    aug = MultimodalAugment([ImageAugment(), DropNoise(p_drop=1.0, p_noise=1.0), GaussianNoise(p=1.0), None])
    v1, v2 = aug([images, seq, vec, ids], padding=[None, pad, None, None], generator=_gen(0))
    assert [t.shape for t in v1] == [t.shape for t in v2] == [images.shape, seq.shape, vec.shape, ids.shape]
    assert v1[0].dtype == torch.float32
    for a, b in zip(v1[:3], v2[:3], strict=True):
        assert not torch.allclose(a, b)  # independent draws per view
    assert v1[3] is ids and v2[3] is ids  # None = identity, no copy
    assert torch.equal(v1[1][pad], seq[pad]) and torch.equal(v2[1][pad], seq[pad])
    w1, w2 = aug([images, seq, vec, ids], padding=[None, pad, None, None], generator=_gen(0))
    assert all(torch.equal(a, b) for a, b in zip(v1 + v2, w1 + w2, strict=True))


class _Counting(nn.Module):
    """Adds a constant per call and counts calls and batch sizes."""

    def __init__(self, per_sample: bool) -> None:
        super().__init__()
        self.per_sample = per_sample
        self.batches: list[int] = []

    def forward(
        self, x: Tensor, padding: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        self.batches.append(int(x.shape[0]))
        return x + len(self.batches)


def test_multimodal_batches_per_sample_augments_in_one_call() -> None:
    x = torch.zeros(4, 3)
    once, twice = _Counting(per_sample=True), _Counting(per_sample=False)
    (a1, b1), (a2, b2) = zip(*MultimodalAugment([once, twice])([x, x]), strict=True)
    assert once.batches == [8] and twice.batches == [4, 4]
    assert torch.equal(a1, b1) and float(a1[0, 0]) == 1.0  # one call serves both views
    assert float(a2[0, 0]) == 1.0 and float(b2[0, 0]) == 2.0


def test_multimodal_for_specs_and_defaults() -> None:
    specs = [
        ModalitySpec("img", "image", (3, 16, 16)),
        ModalitySpec("audio", "sequence", (10, 4)),
        ModalitySpec("tab", "vector", (5,)),
        ModalitySpec("text", "tokens", (7,)),
    ]
    assert isinstance(default_augment(specs[0]), ImageAugment)
    assert isinstance(default_augment(specs[1]), DropNoise)
    assert isinstance(default_augment(specs[2]), GaussianNoise)
    assert default_augment(specs[3]) is None
    aug = MultimodalAugment.for_specs(specs)
    assert aug.n_modalities == 4
    inputs = [_images(4, 3, 16, 16), torch.rand(4, 10, 4), torch.rand(4, 5), torch.randint(0, 9, (4, 7))]
    v1, v2 = aug(inputs)
    assert [t.shape for t in v1] == [t.shape for t in inputs]


def test_multimodal_one_view() -> None:
    seq, pad = _sequences(b=8)
    aug = MultimodalAugment([DropNoise(p_drop=1.0, p_noise=1.0), None])
    ids = torch.randint(0, 50, (8, 12))
    view = aug.one_view([seq, ids], padding=[pad, None], generator=_gen(0))
    assert len(view) == 2 and view[0].shape == seq.shape and view[1] is ids
    assert torch.equal(view[0][pad], seq[pad]) and not torch.equal(view[0], seq)
    with pytest.raises(ValueError, match="has 2 augmentations but got 1 modalities"):
        aug.one_view([seq])


def test_for_specs_with_options() -> None:
    specs = [
        ModalitySpec("img", "image", (3, 16, 16)),
        ModalitySpec("vitals", "sequence", (10, 4)),
        ModalitySpec("tab", "vector", (5,)),
        ModalitySpec("text", "tokens", (7,)),
    ]
    options = {
        "image": {"crop_scale": [0.2, 1.0], "p_blur": 0.0},  # lists, as YAML gives them
        "sequence": True,
        "vector": False,
        "tokens": {"mask_id": 4, "special_ids": [0, 1]},
    }
    aug = MultimodalAugment.for_specs(specs, options)
    image, seq, vec, tok = aug.augments
    assert isinstance(image, ImageAugment) and image.crop_scale == (0.2, 1.0) and image.p_blur == 0.0
    assert isinstance(seq, DropNoise) and seq.p_drop == 0.5
    assert not isinstance(vec, GaussianNoise)  # disabled: identity
    assert isinstance(tok, TokenMask) and tok.mask_id == 4
    x = torch.randn(3, 5)
    assert aug.one_view([_images(3, 3, 16, 16), torch.rand(3, 10, 4), x, torch.randint(5, 9, (3, 7))])[2] is x
    with pytest.raises(ValueError, match=r"unknown modality kinds \['audio'\]"):
        MultimodalAugment.for_specs(specs, {"audio": {}})
    with pytest.raises(ValueError, match=r"unknown ImageAugment option\(s\) \['blur'\] for modality 'img'"):
        MultimodalAugment.for_specs(specs, {"image": {"blur": 0.0}})
    with pytest.raises(ValueError, match="token masking for modality 'text' needs a 'mask_id' option"):
        MultimodalAugment.for_specs(specs, {"tokens": {"p": 0.2}})
    with pytest.raises(ValueError, match="must be a mapping, True or False, got 3"):
        MultimodalAugment.for_specs(specs, {"vector": 3})  # type: ignore[dict-item]


def test_multimodal_errors() -> None:
    aug = MultimodalAugment([GaussianNoise(), None])
    with pytest.raises(ValueError, match="has 2 augmentations but got 3 modalities"):
        aug([torch.rand(2, 3)] * 3)
    with pytest.raises(ValueError, match="padding has 1 entries but there are 2 modalities"):
        aug([torch.rand(2, 3)] * 2, padding=[None])
    with pytest.raises(ValueError, match="needs one augmentation"):
        MultimodalAugment([])


def test_drop_fraction_matches_uniform_mean() -> None:
    # long sequences: the dropped fraction is close to U(0, max_drop), mean max_drop / 2
    x = torch.ones(3000, 100, 1)
    y = DropNoise(p_drop=1.0, max_drop=0.8, p_noise=0.0)(x, generator=_gen(0))
    frac = (y == 0).float().mean(dim=(1, 2))
    assert abs(float(frac.mean()) - 0.4) < 0.02 and float(frac.max()) <= 0.8
    assert math.isclose(float(frac.min()), 0.0, abs_tol=0.02)


def test_image_augment_stays_float32_under_autocast() -> None:
    """Mixed-precision training wraps the step in autocast; pixel arithmetic must not change dtype."""
    x = _images(4)
    aug = ImageAugment(size=24)
    plain = aug(x, generator=_gen(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = aug(x, generator=_gen(3))
    assert mixed.dtype == torch.float32
    assert torch.equal(mixed, plain)


def test_image_sync_free_path_gives_the_same_images() -> None:
    """The CUDA path (whole-batch steps + per-sample select, no host synchronisation) equals the subset path."""
    x = _images(16, h=40, w=40, seed=4)
    subset, whole = ImageAugment(size=32, p_gray=0.5), ImageAugment(size=32, p_gray=0.5)
    subset.sync_free, whole.sync_free = False, True
    a, b = subset(x, generator=_gen(5)), whole(x, generator=_gen(5))
    assert a.shape == b.shape == (16, 3, 32, 32)
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, subset(x, generator=_gen(6)))  # the draws do matter


def test_image_jitter_in_cache_sized_parts_gives_the_same_images() -> None:
    """On CPU the colour jitter runs on parts of the batch; the random draws and the images do not change."""
    x = _images(10, h=24, w=24, seed=7)
    whole, parts = ImageAugment(p_gray=0.0, p_blur=0.0), ImageAugment(p_gray=0.0, p_blur=0.0)
    whole.cpu_chunk_bytes = 2**40
    parts.cpu_chunk_bytes = 3 * 3 * 24 * 24 * 4  # 3 float images per part: parts of 3, 3, 3, 1
    assert parts._chunk_size(x.float()) == 3 and whole._chunk_size(x.float()) == 10
    a, b = whole(x, generator=_gen(8)), parts(x, generator=_gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, parts(x, generator=_gen(9)))
