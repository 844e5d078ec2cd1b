"""Batched SimCLR image augmentation with per-sample random parameters (DESIGN.md section 10).

The whole batch is augmented by a handful of tensor operations on the input's device, with no Python
loop over samples:

* random resized crop + horizontal flip (+ resize to ``size``) as ONE resampling. When every crop is
  enlarged (the output is at least as large as the input, the default) it is one ``grid_sample`` with a
  per-sample grid (bilinear; the flip is a reversed x axis). When the output is smaller than the input,
  crops may be shrunk, and bilinear sampling would alias, so it becomes a separable product
  ``out = R_h · x · R_wᵀ`` with per-sample triangle-filter matrices (antialiased, like torchvision's
  ``antialias=True``);
* colour jitter (brightness, contrast, saturation, hue) in a random order drawn per sample, as batched
  arithmetic: brightness, contrast and saturation are all "blend with a target" steps
  (``clamp(f·x + (1 - f)·target)`` with target 0, the grey mean, the grey image), hue is an exact HSV
  rotation written in RGB (no colour-space round trip for the other three);
* random grayscale, on the selected samples only;
* Gaussian blur of the selected samples as another separable product with banded Gaussian matrices
  (reflect border), so every sample has its own σ.

After the resampling every step works in place on a buffer the call owns (on CPU, fresh tensors of a
few tens of MB cost more in page faults than the arithmetic): the input is never modified.

No kornia: its pipeline of the same recipe (``RandomResizedCrop``, ``RandomHorizontalFlip``,
``ColorJitter(p=0.8)``, ``RandomGrayscale``, ``RandomGaussianBlur(p=0.5)``, kornia 0.9) was measured
against this one on the project's shared 2-core CPU, batch 64 of uint8 images, best of 25 interleaved
runs: 64×64 — 8.1 ms here vs 30.7 ms kornia (2 threads), 11.5 vs 36.6 (1 thread); 224×224 — 125 vs
284 ms (2 threads), 214 vs 427 (1 thread). Most of the gap is the colour jitter (kornia goes through HSV
and allocates per step) and the crop (kornia's ``RandomResizedCrop`` slices and resizes each sample in a
Python loop). kornia's grouped-convolution blur is a little faster than the banded product at 224 px
(≈ 60 vs 74 ms for 32 images, 1 thread) and slower at 64 px (12 vs 7 ms).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from commlearn.augment.sequence import _check_generator, _check_probability, _uniform

__all__ = ["ImageAugment"]

_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision's rgb_to_grayscale
_NONE, _BRIGHTNESS, _CONTRAST, _SATURATION, _HUE = -1, 0, 1, 2, 3


def _two_floats(value: object, name: str) -> tuple[float, float]:
    """Read a (low, high) pair (tuple or list, as YAML gives it) of numbers."""
    try:
        lo, hi = (float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from None
    return lo, hi


def _pair(value: float | tuple[float, float], name: str, center: float, lower: float) -> tuple[float, float]:
    """Turn a jitter strength ``s`` into (max(lower, center - s), center + s); check ranges given as such."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
        return (max(lower, center - float(value)), center + float(value))
    lo, hi = _two_floats(value, name)
    if not lower <= lo <= hi:
        raise ValueError(f"{name} range must satisfy {lower} <= low <= high, got ({lo}, {hi})")
    return (lo, hi)


def _range(value: tuple[float, float], name: str, low: float, high: float) -> tuple[float, float]:
    """Validate a (lo, hi) range with low < lo <= hi <= high."""
    lo, hi = _two_floats(value, name)
    if not low < lo <= hi <= high:
        raise ValueError(f"{name} must satisfy {low} < low <= high <= {high}, got ({lo}, {hi})")
    return (lo, hi)


def _gray(x: Tensor, out: Tensor | None = None) -> Tensor:
    """Luma (B, 1, H, W) of an RGB batch (B, 3, H, W), written to ``out`` (B, 1, H, W) when given.

    A 1-channel batch is its own luma: it is copied to ``out``, or returned as is without one.
    """
    if x.shape[1] == 1:
        return x if out is None else out.copy_(x)
    r, g, b = x.unbind(dim=1)
    gray = (
        torch.mul(r, _GRAY_WEIGHTS[0]) if out is None else torch.mul(r, _GRAY_WEIGHTS[0], out=out.squeeze(1))
    )
    gray.add_(g, alpha=_GRAY_WEIGHTS[1]).add_(b, alpha=_GRAY_WEIGHTS[2])
    return gray.unsqueeze(1)


def _separable(x: Tensor, mh: Tensor, mw: Tensor, out: Tensor | None = None) -> Tensor:
    """Apply per-sample row and column matrices: ``out[b, c] = mh[b] @ x[b, c] @ mw[b]ᵀ``.

    Two batched matrix products and one intermediate buffer. ``out`` may be ``x`` itself when the shapes
    agree (``x`` is fully read before ``out`` is written).

    Args:
        x: (B, C, H, W) float, contiguous.
        mh: (B, Ho, H) row matrices.
        mw: (B, Wo, W) column matrices.
        out: optional contiguous (B, C, Ho, Wo) buffer for the result.

    Returns:
        (B, C, Ho, Wo), contiguous (``out`` when given).
    """
    b, c, h, w = x.shape
    ho, wo = mh.shape[1], mw.shape[1]
    if out is None:
        out = torch.empty(b, c, ho, wo, device=x.device, dtype=x.dtype)
    if h * wo * (w + ho) <= ho * w * (h + wo):  # columns first is cheaper (or equal)
        mid = torch.bmm(x.view(b, c * h, w), mw.transpose(1, 2)).view(b, c, h, wo)
        for ch in range(c):  # a loop over channels, not samples: each step is one batched product
            torch.bmm(mh, mid[:, ch], out=out[:, ch])
        return out
    mid = torch.empty(b, c, ho, w, device=x.device, dtype=x.dtype)
    for ch in range(c):
        torch.bmm(mh, x[:, ch], out=mid[:, ch])
    torch.bmm(mid.view(b, c * ho, w), mw.transpose(1, 2), out=out.view(b, c * ho, wo))
    return out


def _pixel_centers(start: Tensor, length: Tensor, n_out: int) -> Tensor:
    """Input coordinates (B, n_out) of the output pixel centres when [start, start + length) fills n_out.

    Coordinates are in input pixels with pixel i centred at i (its area is [i - 0.5, i + 0.5)); ``start``
    and ``length`` (B,) are measured on pixel edges, so the full image is start 0, length n_in.
    """
    step = (length / n_out).unsqueeze(1)
    return start.unsqueeze(1) + (torch.arange(n_out, device=start.device) + 0.5) * step - 0.5


def _resample_matrix(start: Tensor, length: Tensor, n_in: int, n_out: int) -> Tensor:
    """Per-sample 1-d resampling matrices that map the window [start, start + length) onto ``n_out`` pixels.

    Args:
        start: (B,) window start in input pixels (pixel edges: the first pixel covers [0, 1)).
        length: (B,) window length in input pixels.
        n_in: input size.
        n_out: output size.

    Returns:
        (B, n_out, n_in) float32 rows of triangle-filter weights that sum to 1: bilinear when enlarging,
        antialiased when shrinking (the triangle widens to the output pixel's footprint).
    """
    centers = _pixel_centers(start, length, n_out)  # (B, n_out)
    support = (length / n_out).clamp(min=1.0).view(-1, 1, 1)  # input pixels per output pixel, >= 1
    dist = torch.arange(n_in, device=start.device, dtype=centers.dtype) - centers.unsqueeze(
        2
    )  # (B, n_out, n_in)
    weights = (1.0 - dist.abs() / support).clamp_(min=0.0)
    return weights / weights.sum(dim=2, keepdim=True)


def _blur_matrix(sigma: Tensor, kernel: int, n: int) -> Tensor:
    """Per-sample banded matrices (B, n, n) convolving with a Gaussian of std ``sigma`` (B,), reflect border.

    The kernel has ``kernel`` taps (odd); out-of-range taps are reflected without repeating the edge pixel,
    as ``torch.nn.functional.pad(mode="reflect")``.
    """
    dev = sigma.device
    half = kernel // 2
    offsets = torch.arange(-half, half + 1, device=dev, dtype=torch.float32)
    taps = torch.exp(-(offsets**2) / (2.0 * sigma.unsqueeze(1) ** 2))  # (B, k)
    taps = taps / taps.sum(dim=1, keepdim=True)
    src = torch.arange(n, device=dev).unsqueeze(1) + torch.arange(-half, half + 1, device=dev)  # (n, k)
    if n > 1:
        period = 2 * (n - 1)
        src = torch.remainder(src, period)
        src = torch.where(src >= n, period - src, src)
    else:
        src = torch.zeros_like(src)
    out = torch.zeros(sigma.shape[0], n, n, device=dev, dtype=taps.dtype)
    index = src.unsqueeze(0).expand(sigma.shape[0], n, kernel)
    return out.scatter_add_(2, index, taps.unsqueeze(1).expand(-1, n, -1))


def _hue_shift_(x: Tensor, shift: Tensor, work: Tensor) -> None:
    """Rotate, in place, the HSV hue of an RGB batch (B, 3, H, W) in [0, 1] by ``shift`` (B,) turns.

    Saturation and value are kept. With V = max, d = max - min (= V·S) and h = 6·hue, HSV → RGB is
    ``channel = V - d·clamp(min(k, 4 - k), 0, 1)``, ``k = (n + h) mod 6``, n = 5, 3, 1 for R, G, B. As
    ``min(k, 4 - k) = 2 - |k - 2|``, the weight is ``clamp(2 - dist, 0, 1)`` where dist is the circular
    distance between h and the channel's centre c = 3, 5, 1. Here h ∈ [-4, 8] (hue in [-1, 5] plus at
    most ±3), so ``a = |h - c| <= 9`` and ``2 - dist = max(2 - a, min(a - 4, 8 - a))``: no ``remainder``
    and no bool masks (both several times slower than float arithmetic on CPU).

    Args:
        x: (B, 3, H, W), modified in place.
        shift: (B,) hue shift in turns, within [-0.5, 0.5].
        work: a scratch buffer (4, B, H, W) of x's dtype and device (fresh buffers cost page faults on CPU).
    """
    r, g, b = x.unbind(dim=1)
    w0, w1, w2, hue6 = work.unbind(0)
    maxc = x.amax(dim=1)
    delta = x.amin(dim=1).neg_().add_(maxc)  # max - min
    # exact 0/1 indicators of the channel holding the max (first of R, G, B on ties) from sign(c - max)
    is_r = torch.sub(r, maxc, out=w0).sign_().add_(1.0)
    is_g = torch.sub(g, maxc, out=w1).sign_().add_(1.0)
    is_g.addcmul_(is_g, is_r, value=-1.0)  # not R
    is_b = torch.add(is_r, is_g, out=w2).neg_().add_(1.0)
    # hue6 = (g - b)/d if R is max, (b - r)/d + 2 if G, (r - g)/d + 4 if B
    torch.sub(g, b, out=hue6).mul_(is_r)
    hue6.addcmul_(torch.sub(b, r, out=w0), is_g).addcmul_(torch.sub(r, g, out=w0), is_b)
    hue6.div_(torch.clamp(delta, min=1e-12, out=w0))  # grey pixels: the numerator is 0 as well
    hue6.add_(is_g, alpha=2.0).add_(is_b, alpha=4.0).add_(6.0 * shift.view(-1, 1, 1))
    for channel, center in enumerate((3.0, 5.0, 1.0)):
        a = torch.sub(hue6, center, out=w0).abs_()
        weight = torch.neg(a, out=w1).add_(8.0)  # 8 - a
        torch.minimum(a.sub_(4.0), weight, out=weight)  # min(a - 4, 8 - a)
        torch.maximum(a.neg_().sub_(2.0), weight, out=weight)  # a now holds -(a - 4) - 2 = 2 - a
        weight.clamp_(0.0, 1.0).mul_(delta)
        torch.sub(maxc, weight, out=x[:, channel])


class ImageAugment(nn.Module):
    """The SimCLR image augmentation (Chen et al., 2020), batched with per-sample parameters.

    In order: random resized crop (area fraction ``crop_scale``, aspect ratio ``crop_ratio``, log-uniform;
    10 tries per sample as torchvision, else a centre crop) resized to ``size``; horizontal flip with
    ``p_flip``; with ``p_jitter``, colour jitter (brightness, contrast, saturation, hue) in a random
    per-sample order; grayscale with ``p_gray``; Gaussian blur with ``p_blur``, σ ~ U(``blur_sigma``),
    ``blur_kernel`` taps (default: 10 % of the output size, odd). No normalisation: encoders normalise.
    The input is never modified; the output does not carry gradients (augmentations act on data).

    Args:
        size: output (H, W) or an int for square outputs; None keeps the input size.
        crop_scale: (min, max) crop area as a fraction of the image, within (0, 1]; None disables cropping.
        crop_ratio: (min, max) crop aspect ratio width/height.
        p_flip: horizontal flip probability.
        brightness: strength b (factor ~ U(max(0, 1 - b), 1 + b)) or a (min, max) factor range.
        contrast: as ``brightness``.
        saturation: as ``brightness``.
        hue: strength h in [0, 0.5] (shift ~ U(-h, h) turns) or a (min, max) range within [-0.5, 0.5].
        p_jitter: probability that a sample gets colour jitter.
        p_gray: probability that a sample is converted to grayscale (kept as C channels).
        blur_sigma: (min, max) blur standard deviation in output pixels.
        p_blur: blur probability; set 0 for small images.
        blur_kernel: odd number of kernel taps; None = ``int(0.1 · min(H_out, W_out))`` made odd, >= 3.

    Raises:
        ValueError: on invalid arguments.
    """

    per_sample: bool = True
    """Every sample draws its own parameters, so two views can be computed in one call on a 2B batch."""

    sync_free: bool | None = None
    """How samples that skip a step are handled. False: the step runs on the chosen samples only (least work;
    finding them is a host synchronisation). True: it runs on the whole batch and a per-sample select keeps the
    skipped samples unchanged (no synchronisation: the host keeps queueing GPU work). None (default): True on
    CUDA tensors, False elsewhere. Both give the same images for the same random draws."""

    cpu_chunk_bytes: int = 10 * 2**20
    """Bytes of images per pass of the colour jitter on CPU (see :meth:`_chunk_size`)."""

    def __init__(
        self,
        size: int | tuple[int, int] | None = None,
        crop_scale: tuple[float, float] | None = (0.08, 1.0),
        crop_ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        p_flip: float = 0.5,
        brightness: float | tuple[float, float] = 0.4,
        contrast: float | tuple[float, float] = 0.4,
        saturation: float | tuple[float, float] = 0.4,
        hue: float | tuple[float, float] = 0.1,
        p_jitter: float = 0.8,
        p_gray: float = 0.2,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        p_blur: float = 0.5,
        blur_kernel: int | None = None,
    ) -> None:
        super().__init__()
        if size is not None:
            size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
            if min(size) < 1:
                raise ValueError(f"size must be positive, got {size}")
        self.size: tuple[int, int] | None = size
        self.crop_scale = None if crop_scale is None else _range(crop_scale, "crop_scale", 0.0, 1.0)
        self.crop_ratio = _range(crop_ratio, "crop_ratio", 0.0, math.inf)
        self.p_flip = _check_probability("p_flip", p_flip)
        self.brightness = _pair(brightness, "brightness", 1.0, 0.0)
        self.contrast = _pair(contrast, "contrast", 1.0, 0.0)
        self.saturation = _pair(saturation, "saturation", 1.0, 0.0)
        if isinstance(hue, (int, float)):
            if not 0.0 <= hue <= 0.5:
                raise ValueError(f"hue must be in [0, 0.5], got {hue}")
            self.hue = (-float(hue), float(hue))
        else:
            self.hue = _pair(hue, "hue", 0.0, -0.5)
            if self.hue[1] > 0.5:
                raise ValueError(f"hue range must lie within [-0.5, 0.5], got {self.hue}")
        self.p_jitter = _check_probability("p_jitter", p_jitter)
        self.p_gray = _check_probability("p_gray", p_gray)
        self.blur_sigma = _range(blur_sigma, "blur_sigma", 0.0, math.inf)
        self.p_blur = _check_probability("p_blur", p_blur)
        if blur_kernel is not None and (blur_kernel < 1 or blur_kernel % 2 == 0):
            raise ValueError(f"blur_kernel must be a positive odd int, got {blur_kernel}")
        self.blur_kernel = blur_kernel

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, crop_scale={self.crop_scale}, crop_ratio={self.crop_ratio}, "
            f"p_flip={self.p_flip}, brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation}, hue={self.hue}, p_jitter={self.p_jitter}, p_gray={self.p_gray}, "
            f"blur_sigma={self.blur_sigma}, p_blur={self.p_blur}, "
            f"blur_kernel={self.blur_kernel}"
        )

    def _sync_free(self, x: Tensor) -> bool:
        return x.is_cuda if self.sync_free is None else self.sync_free

    def _chunk_size(self, x: Tensor) -> int:
        """Samples per pass of the colour jitter: the whole batch on accelerators, cache-sized parts on CPU.

        The jitter is some thirty elementwise passes over the images. On CPU they run from memory when the batch
        is larger than the cache: in parts of ``cpu_chunk_bytes`` they run from cache, 2.6× faster for 128
        images of 224 px (194 → 74 ms, 2 cores; parts of 16 images). On GPUs one launch per step is better.
        """
        if x.device.type != "cpu":
            return x.shape[0]
        per_sample = x[0].numel() * x.element_size()
        return max(1, min(x.shape[0], self.cpu_chunk_bytes // per_sample))

    def kernel_size(self, height: int, width: int) -> int:
        """Number of blur taps used for an output of ``height`` × ``width`` pixels."""
        if self.blur_kernel is not None:
            return self.blur_kernel
        return max(3, int(0.1 * min(height, width)) // 2 * 2 + 1)

    def forward(
        self, x: Tensor, padding: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Augment a batch of images.

        Args:
            x: (B, C, H, W), uint8 in 0..255 or float in [0, 1]; C = 1 or 3 when jitter/grayscale are used.
            padding: ignored (images have no padding); accepted for a uniform augmentation signature.
            generator: optional RNG on ``x.device`` for a deterministic output.

        Returns:
            (B, C, H_out, W_out) float in [0, 1] (float32 for uint8 input, else x's float dtype).
        """
        if x.ndim != 4 or not (x.dtype == torch.uint8 or x.is_floating_point()):
            raise ValueError(
                "ImageAugment expects uint8 or float images (B, C, H, W), "
                f"got {x.dtype} of shape {tuple(x.shape)}"
            )
        channels = x.shape[1]
        if channels not in (1, 3) and (self.p_jitter > 0 or self.p_gray > 0):
            raise ValueError(f"colour jitter and grayscale need 1 or 3 channels, got {channels}")
        _check_generator(generator, x.device)
        # Pixel arithmetic stays float32 under mixed precision (autocast would turn the resampling bmm into
        # bf16/fp16 and clash with the in-place buffers); the steps below work in place on a buffer this call owns.
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            owned = x.dtype == torch.uint8
            buf = x.to(torch.float32).div_(255.0) if owned else x
            buf = self._crop_flip_(buf, owned, generator)
            if self.p_jitter > 0:
                self._jitter_(buf, generator)
            if self.p_gray > 0 and channels == 3:
                gray = _uniform(buf.shape[0], buf.device, generator) < self.p_gray
                if self._sync_free(buf):
                    buf = torch.where(gray.view(-1, 1, 1, 1), _gray(buf), buf)
                else:
                    chosen = gray.nonzero().squeeze(1)
                    if chosen.numel() > 0:
                        buf[chosen] = _gray(buf[chosen])
            if self.p_blur > 0:
                self._blur_(buf, generator)
        return buf

    def _crop_flip_(self, x: Tensor, owned: bool, generator: torch.Generator | None) -> Tensor:
        """Random resized crop, resize to ``size`` and horizontal flip, as one separable resampling.

        Returns a tensor this call owns (``x`` itself when ``owned`` and it can be reused, else a new one),
        so that the later steps may work in place; returns ``x`` untouched when every step is off.
        """
        b, _, h, w = x.shape
        ho, wo = self.size if self.size is not None else (h, w)
        dev = x.device
        if self.crop_scale is None and (ho, wo) == (h, w):
            if not owned and max(self.p_flip, self.p_jitter, self.p_gray, self.p_blur) > 0:
                x = x.clone()
            if self.p_flip > 0:
                flip = (_uniform(b, dev, generator) < self.p_flip).nonzero().squeeze(1)
                if flip.numel() > 0:
                    x[flip] = x[flip].flip(-1)
            return x
        if self.crop_scale is None:
            ch = torch.full((b,), float(h), device=dev)
            cw = torch.full((b,), float(w), device=dev)
            top = torch.zeros(b, device=dev)
            left = torch.zeros(b, device=dev)
        else:
            top, left, ch, cw = self._crop_boxes(b, h, w, dev, generator)
        flipped = _uniform(b, dev, generator) < self.p_flip if self.p_flip > 0 else None
        if ho >= h and wo >= w:  # every crop is enlarged: plain bilinear, one fused grid_sample
            ys = _pixel_centers(top, ch, ho)
            xs = _pixel_centers(left, cw, wo)
            if flipped is not None:
                xs = torch.where(flipped.unsqueeze(1), xs.flip(1), xs)
            grid = torch.empty(b, ho, wo, 2, device=dev, dtype=x.dtype)
            grid[..., 0] = ((2.0 * xs + 1.0) / w - 1.0).unsqueeze(1)  # align_corners=False normalisation
            grid[..., 1] = ((2.0 * ys + 1.0) / h - 1.0).unsqueeze(2)
            return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        # some crops are shrunk: antialiased separable resampling with per-sample matrices
        mh = _resample_matrix(top, ch, h, ho)
        mw = _resample_matrix(left, cw, w, wo)
        if flipped is not None:
            mw = torch.where(flipped.view(-1, 1, 1), mw.flip(1), mw)
        out = x if owned and (ho, wo) == (h, w) and x.is_contiguous() else None
        return _separable(x.contiguous(), mh.to(x.dtype), mw.to(x.dtype), out=out)

    def _crop_boxes(
        self, b: int, h: int, w: int, dev: torch.device, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per-sample crop boxes (top, left, height, width) in pixels, each (B,), torchvision's rule.

        Ten (area, log-ratio) proposals per sample; the first that fits inside the image is used, and
        samples with none fall back to the largest centred crop with the aspect ratio clamped to range.
        """
        tries = 10
        area = float(h * w)
        assert self.crop_scale is not None
        scale = self.crop_scale[0] + (self.crop_scale[1] - self.crop_scale[0]) * torch.rand(
            b, tries, device=dev, generator=generator
        )
        log_lo, log_hi = math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
        ratio = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(b, tries, device=dev, generator=generator))
        cw = torch.sqrt(scale * area * ratio)
        ch = torch.sqrt(scale * area / ratio)
        fits = (cw <= w) & (ch <= h)
        first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # index of the first fitting try
        cw = cw.gather(1, first).squeeze(1)
        ch = ch.gather(1, first).squeeze(1)
        in_ratio = w / h
        if in_ratio < self.crop_ratio[0]:
            fw, fh = float(w), w / self.crop_ratio[0]
        elif in_ratio > self.crop_ratio[1]:
            fw, fh = h * self.crop_ratio[1], float(h)
        else:
            fw, fh = float(w), float(h)
        any_fit = fits.any(dim=1)
        cw = torch.where(any_fit, cw, torch.full_like(cw, fw))
        ch = torch.where(any_fit, ch, torch.full_like(ch, fh))
        top = (h - ch) * torch.where(any_fit, _uniform(b, dev, generator), torch.full_like(ch, 0.5))
        left = (w - cw) * torch.where(any_fit, _uniform(b, dev, generator), torch.full_like(cw, 0.5))
        return top, left, ch, cw

    def _jitter_(self, x: Tensor, generator: torch.Generator | None) -> None:
        """In place: colour jitter with probability ``p_jitter`` per sample, steps in per-sample random order.

        Each sample's order is a random permutation of (brightness, contrast, saturation, hue). The hue
        step runs once for all samples; the blend steps before and after it run as three batched
        "slots" each, a sample skipping a slot (factor 1, an exact identity) when it has no step there.
        Samples without jitter are saved before and written back after. The parameters are drawn for the
        whole batch, then the steps run on parts of :meth:`_chunk_size` samples (same images as one part).
        """
        b, dev = x.shape[0], x.device
        apply = _uniform(b, dev, generator) < self.p_jitter
        ranges = (self.brightness, self.contrast, self.saturation)
        factors = torch.stack(
            [lo + (hi - lo) * _uniform(b, dev, generator) for lo, hi in ranges] + [torch.ones(b, device=dev)],
            dim=1,
        )  # (B, 4): brightness, contrast, saturation, identity
        shift = self.hue[0] + (self.hue[1] - self.hue[0]) * _uniform(b, dev, generator)
        order = torch.rand(b, 4, device=dev, generator=generator).argsort(dim=1)  # (B, 4) step ids
        use_hue = x.shape[1] == 3 and self.hue != (0.0, 0.0)
        if use_hue:
            hue_pos = (order == _HUE).to(torch.uint8).argmax(dim=1)  # (B,)
        else:  # all three blend steps go "before" the skipped hue step
            order = torch.cat([order[order != _HUE].view(b, 3), torch.full_like(order[:, :1], _HUE)], dim=1)
            hue_pos = torch.full((b,), 3, device=dev, dtype=order.dtype)
        slots = torch.arange(3, device=dev)
        before = torch.where(slots < hue_pos.unsqueeze(1), order[:, :3], _NONE)  # (B, 3)
        after_pos = hue_pos.unsqueeze(1) + 1 + slots
        after = torch.where(after_pos < 4, order.gather(1, after_pos.clamp(max=3)), _NONE)
        ops = torch.cat([before, after], dim=1)  # (B, 6): the step of every slot, _NONE when skipped
        f = factors.gather(1, torch.where(ops < 0, 3, ops))
        params = torch.stack([1.0 - f, (ops == _CONTRAST).float(), (ops == _SATURATION).float()])
        params = params.to(x.dtype).transpose(1, 2).contiguous()  # (3, 6, B): 1 - f, is_contrast, is_sat
        sync_free = self._sync_free(x)
        keep: Tensor | None = None
        saved: Tensor | None
        if sync_free:
            saved = x.clone()
        else:
            keep = (~apply).nonzero().squeeze(1)
            saved = x[keep] if keep.numel() > 0 else None
        chunk = self._chunk_size(x)
        work = torch.empty(
            4 if use_hue else 1, min(b, chunk), x.shape[2], x.shape[3], device=dev, dtype=x.dtype
        )
        shift = shift.to(x.dtype)
        for start in range(0, b, chunk):
            part, stop = x[start : start + chunk], min(b, start + chunk)
            part_work = work[:, : stop - start]
            gray = part_work[0].unsqueeze(1)
            for slot in range(6 if use_hue else 3):
                if slot == 3:
                    _hue_shift_(part, shift[start:stop], part_work)
                p = params[:, slot, start:stop]
                self._blend_(part, p[0], p[1], p[2], gray)
        if sync_free:
            assert saved is not None
            x.copy_(torch.where(apply.view(-1, 1, 1, 1), x, saved))
        elif saved is not None:
            assert keep is not None
            x.index_copy_(0, keep, saved)

    @staticmethod
    def _blend_(
        x: Tensor, one_minus_f: Tensor, is_contrast: Tensor, is_saturation: Tensor, work: Tensor
    ) -> None:
        """One batched jitter step, in place: sample i does ``clamp(f·x + (1 - f)·target, 0, 1)``.

        The target is 0 for brightness, the mean grey level of the image for contrast (``is_contrast``)
        and the grey image for saturation (``is_saturation``); a skipped step has f = 1 (an exact identity).

        Args:
            x: (B, C, H, W) in [0, 1], modified in place.
            one_minus_f: (B,) 1 - the step's factor.
            is_contrast: (B,) 1.0 where the step is contrast, else 0.0.
            is_saturation: (B,) 1.0 where the step is saturation, else 0.0.
            work: a scratch buffer (B, 1, H, W).
        """
        target = _gray(x, out=work)
        mean = target.mean(dim=(2, 3), keepdim=True).mul_(is_contrast.view(-1, 1, 1, 1))
        target.mul_(is_saturation.view(-1, 1, 1, 1)).add_(mean)
        x.lerp_(target, one_minus_f.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)

    def _blur_(self, x: Tensor, generator: torch.Generator | None) -> None:
        """In place: Gaussian blur with probability ``p_blur`` per sample; only those samples are computed."""
        b, _, h, w = x.shape
        dev = x.device
        chosen = _uniform(b, dev, generator) < self.p_blur
        lo, hi = self.blur_sigma
        sigma = lo + (hi - lo) * _uniform(b, dev, generator)
        kernel = self.kernel_size(h, w)
        if self._sync_free(x):
            mh = _blur_matrix(sigma, kernel, h).to(x.dtype)
            mw = _blur_matrix(sigma, kernel, w).to(x.dtype)
            x.copy_(torch.where(chosen.view(-1, 1, 1, 1), _separable(x, mh, mw), x))
            return
        index = chosen.nonzero().squeeze(1)
        if index.numel() == 0:
            return
        sel = sigma[index]
        mh = _blur_matrix(sel, kernel, h).to(x.dtype)
        mw = _blur_matrix(sel, kernel, w).to(x.dtype)
        sub = x[index]
        x.index_copy_(0, index, _separable(sub, mh, mw, out=sub))
