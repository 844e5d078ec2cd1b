"""A synthetic multimodal data set with known redundant, unique and synergistic labels (for tests and demos)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from commlearn.data.base import ArrayDataset, ModalityKind, ModalitySpec


def make_synthetic(
    n_samples: int = 512,
    kinds: Sequence[ModalityKind] = ("vector", "vector"),
    dim: int = 16,
    seq_len: int = 12,
    image_size: int = 16,
    seed: int = 0,
) -> ArrayDataset:
    """Build ``n`` modalities that carry known factors.

    Every modality carries the redundant factor ``r`` (4 classes) and its own unique factor ``u_i`` (4 classes);
    the synergy label is the parity of the first bits of ``u_0`` and ``u_1``. Factors are embedded by random
    (seeded) linear maps plus noise: ``"vector"`` → (dim,), ``"sequence"`` → (seq_len, dim) with random
    front padding, ``"image"`` → (3, image_size, image_size) uint8, ``"tokens"`` → (seq_len,) ids.

    Labels: (N, 2 + n + 1) columns ``R``, ``U0``..``U{n-1}``, ``S``.
    """
    if len(kinds) < 1:
        raise ValueError("make_synthetic needs at least one modality kind")
    g = torch.Generator().manual_seed(seed)
    n = len(kinds)
    r = torch.randint(0, 4, (n_samples,), generator=g)
    us = [torch.randint(0, 4, (n_samples,), generator=g) for _ in range(n)]
    syn = (us[0] % 2) ^ (us[1 % n] % 2)

    def code(labels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(labels, 4).float()

    inputs: list[torch.Tensor] = []
    padding: list[torch.Tensor | None] = []
    specs: list[ModalitySpec] = []
    for i, kind in enumerate(kinds):
        factors = torch.cat([code(r), code(us[i])], dim=1)  # (N, 8)
        proj = torch.randn(8, dim, generator=g)
        base = factors @ proj + 0.1 * torch.randn(n_samples, dim, generator=g)
        name = f"m{i}"
        if kind == "vector":
            inputs.append(base)
            padding.append(None)
            specs.append(ModalitySpec(name, "vector", (dim,)))
        elif kind == "sequence":
            seq = base[:, None, :] + 0.1 * torch.randn(n_samples, seq_len, dim, generator=g)
            lengths = torch.randint(seq_len // 2, seq_len + 1, (n_samples,), generator=g)
            pad = torch.arange(seq_len)[None, :] < (seq_len - lengths)[:, None]  # front padding
            inputs.append(seq.masked_fill(pad[..., None], 0.0))
            padding.append(pad)
            specs.append(ModalitySpec(name, "sequence", (seq_len, dim)))
        elif kind == "image":
            pix = torch.randn(dim, 3 * image_size * image_size, generator=g) / dim**0.5
            img = torch.sigmoid(base @ pix).reshape(n_samples, 3, image_size, image_size)
            inputs.append((img * 255).round().to(torch.uint8))
            padding.append(None)
            specs.append(ModalitySpec(name, "image", (3, image_size, image_size)))
        elif kind == "tokens":
            vocab = 32
            ids = (base[:, None, :].argmax(-1) * 4 + torch.arange(seq_len)[None, :]) % vocab
            inputs.append(ids)
            padding.append(None)
            specs.append(ModalitySpec(name, "tokens", (seq_len,)))
        else:
            raise ValueError(f"unknown modality kind {kind!r}; use vector, sequence, image or tokens")
    labels = torch.stack([r, *us, syn], dim=1)
    names = ["R", *[f"U{i}" for i in range(n)], "S"]
    return ArrayDataset(inputs, specs, labels, padding, task_names=names, task_type="multiclass")
