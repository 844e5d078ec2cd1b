"""Label-preserving augmentations for sequences, tabular vectors and token ids (DESIGN.md section 10).

Every module here draws its random parameters per sample for the whole batch at once, on the input's
device, and never loops over samples in Python. ``forward(x, padding=None, generator=None)``:

* ``padding`` — None or a bool mask (B, T), True where a time step is padding; padding steps are never
  changed and never counted as signal.
* ``generator`` — a ``torch.Generator`` on ``x.device`` makes the output deterministic; without one the
  global RNG is used.

The paper's settings (CoMM, Dufumier et al., ICLR 2025, after MultiBench): time series and feature
sequences get "drop" (zero a random fraction U(0, 0.8) of the time steps) then Gaussian noise (σ = 0.1),
each with probability 0.5; tabular vectors get Gaussian noise (σ = 0.1, p = 0.5); token ids get 15 %
random masking.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["DropNoise", "GaussianNoise", "TokenMask"]


def _check_probability(name: str, p: float) -> float:
    """Return ``p`` as a float if it lies in [0, 1], else raise a one-line ValueError."""
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    return float(p)


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    """Raise if ``generator`` lives on another device type than the data it will draw for."""
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device} but the input is on {device}; use one on {device}"
        )


def _check_padding(padding: Tensor | None, x: Tensor, what: str) -> Tensor | None:
    """Validate a padding mask (B, T) bool against ``x`` (B, T, ...)."""
    if padding is None:
        return None
    if padding.dtype != torch.bool:
        raise ValueError(f"{what}: padding must be a bool mask (True = padding), got dtype {padding.dtype}")
    if padding.ndim != 2 or x.ndim < 2 or tuple(padding.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"{what}: padding must have shape (B, T) = {tuple(x.shape[:2])}, got {tuple(padding.shape)}"
        )
    return padding.to(x.device)


def _uniform(n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """Draw ``n`` samples of U(0, 1) in float32 on ``device``."""
    return torch.rand(n, device=device, generator=generator)


def _random_subset(candidates: Tensor, count: Tensor, generator: torch.Generator | None) -> Tensor:
    """Pick ``count[b]`` positions uniformly without replacement among ``candidates[b]``, for every row.

    Args:
        candidates: bool (B, T), the positions that may be picked.
        count: int64 (B,), how many to pick per row (at most the number of candidates of that row).
        generator: optional RNG.

    Returns:
        bool (B, T), True at the picked positions (always a subset of ``candidates``).
    """
    b, t = candidates.shape
    scores = torch.rand(b, t, device=candidates.device, generator=generator)
    scores = scores.masked_fill(~candidates, 2.0)  # non-candidates rank after every candidate
    order = scores.argsort(dim=1)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(t, device=order.device).expand(b, t))
    return (ranks < count.unsqueeze(1)) & candidates


class DropNoise(nn.Module):
    """Time-step drop then Gaussian noise for padded sequences (B, T, d), the paper's "drop + noise".

    Per sample: with probability ``p_drop`` a fraction U(0, ``max_drop``) of its non-padding time steps
    (rounded down) is chosen uniformly and zeroed (all d features); then with probability ``p_noise``
    N(0, ``sigma``²) noise is added to its non-padding steps. Padding steps are returned unchanged.

    Args:
        p_drop: probability that a sample gets time steps dropped.
        max_drop: largest fraction of (non-padding) steps dropped, in [0, 1].
        p_noise: probability that a sample gets noise.
        sigma: noise standard deviation (same units as the features), >= 0.

    Raises:
        ValueError: on probabilities outside [0, 1], ``max_drop`` outside [0, 1] or ``sigma`` < 0.
    """

    per_sample: bool = True
    """Every sample draws its own parameters, so two views can be computed in one call on a 2B batch."""

    def __init__(self, p_drop: float = 0.5, max_drop: float = 0.8, p_noise: float = 0.5, sigma: float = 0.1):
        super().__init__()
        self.p_drop = _check_probability("p_drop", p_drop)
        self.max_drop = _check_probability("max_drop", max_drop)
        self.p_noise = _check_probability("p_noise", p_noise)
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def extra_repr(self) -> str:
        return f"p_drop={self.p_drop}, max_drop={self.max_drop}, p_noise={self.p_noise}, sigma={self.sigma}"

    def forward(
        self, x: Tensor, padding: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Augment a batch of sequences.

        Args:
            x: float (B, T, d).
            padding: None or bool (B, T), True = padding.
            generator: optional RNG on ``x.device``.

        Returns:
            float (B, T, d), same dtype and device as ``x``.
        """
        if x.ndim != 3 or not x.is_floating_point():
            raise ValueError(
                f"DropNoise expects a float tensor (B, T, d), got {x.dtype} of shape {tuple(x.shape)}"
            )
        pad = _check_padding(padding, x, "DropNoise")
        _check_generator(generator, x.device)
        b = x.shape[0]
        valid = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if pad is None else ~pad
        out = x
        if self.p_drop > 0 and self.max_drop > 0:
            apply = _uniform(b, x.device, generator) < self.p_drop
            frac = _uniform(b, x.device, generator) * self.max_drop
            n_drop = torch.floor(frac * valid.sum(dim=1)).long() * apply
            drop = _random_subset(valid, n_drop, generator)
            out = out.masked_fill(drop.unsqueeze(-1), 0.0)
        if self.p_noise > 0 and self.sigma > 0:
            apply = _uniform(b, x.device, generator) < self.p_noise
            noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
            where = (valid & apply.unsqueeze(1)).unsqueeze(-1)
            out = torch.where(where, out + self.sigma * noise, out)
        return out


class GaussianNoise(nn.Module):
    """Additive Gaussian noise for tabular vectors (B, d), or any float batch (B, ...).

    Per sample, with probability ``p``, add N(0, ``sigma``²) noise to every entry; if ``padding`` (B, T)
    is given (for x of shape (B, T, ...)), padding steps are left unchanged.

    Args:
        sigma: noise standard deviation, >= 0.
        p: probability that a sample gets noise.

    Raises:
        ValueError: on ``p`` outside [0, 1] or ``sigma`` < 0.
    """

    per_sample: bool = True
    """Every sample draws its own parameters, so two views can be computed in one call on a 2B batch."""

    def __init__(self, sigma: float = 0.1, p: float = 0.5):
        super().__init__()
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)
        self.p = _check_probability("p", p)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, p={self.p}"

    def forward(
        self, x: Tensor, padding: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Augment a batch.

        Args:
            x: float (B, ...), e.g. (B, d).
            padding: None or bool (B, T) for x of shape (B, T, ...), True = padding.
            generator: optional RNG on ``x.device``.

        Returns:
            float tensor of x's shape, dtype and device.
        """
        if x.ndim < 1 or not x.is_floating_point():
            raise ValueError(
                f"GaussianNoise expects a float tensor (B, ...), got {x.dtype} of shape {tuple(x.shape)}"
            )
        pad = _check_padding(padding, x, "GaussianNoise")
        _check_generator(generator, x.device)
        if self.p == 0 or self.sigma == 0:
            return x
        apply = _uniform(x.shape[0], x.device, generator) < self.p
        where = apply.view(-1, *([1] * (x.ndim - 1)))
        if pad is not None:
            where = where & ~pad.view(*pad.shape, *([1] * (x.ndim - 2)))
        noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return torch.where(where, x + self.sigma * noise, x)


class TokenMask(nn.Module):
    """Random masking of token ids (B, T), as in BERT pre-training but without the 80/10/10 split.

    Per sample, a random ``p`` fraction of the tokens that are neither padding nor in ``special_ids``
    is replaced by ``mask_id``. The count is ``p · n`` stochastically rounded (floor(p·n + U(0, 1))),
    so it is exact up to one token and right in expectation even for short sequences.

    Args:
        mask_id: the id written at masked positions.
        p: fraction of eligible tokens to mask, in [0, 1].
        special_ids: ids never masked (e.g. [CLS], [SEP], the padding id).

    Raises:
        ValueError: on ``p`` outside [0, 1].
    """

    per_sample: bool = True
    """Every sample draws its own parameters, so two views can be computed in one call on a 2B batch."""

    special: Tensor

    def __init__(self, mask_id: int, p: float = 0.15, special_ids: Sequence[int] = ()):
        super().__init__()
        self.mask_id = int(mask_id)
        self.p = _check_probability("p", p)
        self.register_buffer(
            "special", torch.tensor([int(i) for i in special_ids], dtype=torch.long), persistent=False
        )

    def extra_repr(self) -> str:
        return f"mask_id={self.mask_id}, p={self.p}, special_ids={self.special.tolist()}"

    def forward(
        self, x: Tensor, padding: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Mask a batch of token ids.

        Args:
            x: integer ids (B, T).
            padding: None or bool (B, T), True = padding.
            generator: optional RNG on ``x.device``.

        Returns:
            ids (B, T), x's dtype and device.
        """
        if x.ndim != 2 or x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise ValueError(
                f"TokenMask expects integer token ids (B, T), got {x.dtype} of shape {tuple(x.shape)}"
            )
        pad = _check_padding(padding, x, "TokenMask")
        _check_generator(generator, x.device)
        if self.p == 0:
            return x
        candidates = ~torch.isin(x, self.special.to(x.device))
        if pad is not None:
            candidates &= ~pad
        n = candidates.sum(dim=1)
        count = torch.floor(self.p * n + _uniform(x.shape[0], x.device, generator)).long().clamp_(max=n)
        chosen = _random_subset(candidates, count, generator)
        return x.masked_fill(chosen, self.mask_id)
