"""The n+1 masked fusion passes of CoMM: one batched call against n+1 separately masked calls.

``batched``: ``MMFusion.forward_all_masks`` — the n single-modality fusions as one transformer call on an
(n·B, L_i) batch (masking by dropping the other modalities' tokens) plus one call for the full sequence.

``separate`` (what the public implementation does): n+1 calls of the same fusion transformer on the full
concatenated sequence (n·L_i tokens), each hiding the other modalities with an attention (key padding) mask.

Both include the backward pass (a training step needs it), start from the same tokens (encoders and adapters
are identities here: only the fusion is measured) and give the same embeddings (checked).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from commlearn.nn.fusion import MMFusion
from common import BenchResult, Metric, check_positive, interleaved, ratios


def _model(n: int, dim: int, heads: int) -> MMFusion:
    return MMFusion(
        [nn.Identity() for _ in range(n)], [nn.Identity() for _ in range(n)], dim, heads, n_layers=1
    )


def _separate(model: MMFusion, xs: list[Tensor]) -> list[Tensor]:
    """n+1 full-sequence fusions with attention masks: modality i alone (i = 1..n), then all."""
    tokens = model.tokenize(xs)
    full = torch.cat([t[0] for t in tokens if t is not None], dim=1)
    b, length = full.shape[:2]
    per = xs[0].shape[1]
    outs = []
    for i in range(len(xs)):
        padding = torch.ones(b, length, dtype=torch.bool, device=full.device)
        padding[:, i * per : (i + 1) * per] = False
        outs.append(model.fusion(full, padding))
    outs.append(model.fusion(full))
    return outs


def _train_call(model: MMFusion, xs: list[Tensor], batched: bool) -> Callable[[], None]:
    def call() -> None:
        outs = model.forward_all_masks(xs) if batched else _separate(model, xs)
        torch.stack([o.sum() for o in outs]).sum().backward()

    return call


def bench_fusion(
    geometry: str,
    ns: tuple[int, ...],
    batch: int,
    tokens: int,
    dim: int,
    heads: int,
    repeats: int,
    budget_s: float,
) -> BenchResult:
    """``fusion_batched_vs_separate`` (separate time ÷ batched time, forward + backward) for each n in ``ns``.

    Args:
        geometry: a label ("paper": 36 tokens of width 512, 8 heads; "cpu": 16 tokens of width 128, 4 heads).
        ns: numbers of modalities.
        batch: rows per call (CoMM fuses both views at once: 2 × the batch size).
        tokens: tokens per modality L_i.
        dim: token width D.
        heads: attention heads.
        repeats: timed repeats per n (interleaved batched / separate).
        budget_s: time budget per n.
    """
    for name, value in (("batch", batch), ("tokens", tokens), ("dim", dim), ("heads", heads)):
        check_positive(name, value)
    res = BenchResult(
        f"fusion_{geometry}",
        f"n+1 masked fusion passes, fwd+bwd: forward_all_masks vs n+1 attention-masked full-sequence calls "
        f"({batch} rows, {tokens} tokens/modality, width {dim}, {heads} heads, 1 layer)",
    )
    for n in ns:
        torch.manual_seed(n)
        model = _model(n, dim, heads)
        xs = [torch.randn(batch, tokens, dim, requires_grad=True) for _ in range(n)]
        with torch.no_grad():
            diff = max(
                float((a - b).abs().max())
                for a, b in zip(model.forward_all_masks(xs), _separate(model, xs), strict=True)
            )
        gflop = {}
        for label, batched in (("batched", True), ("separate", False)):
            with FlopCounterMode(display=False) as fc:
                _train_call(model, xs, batched)()
            gflop[label] = fc.get_total_flops() / 1e9
        fast, slow = interleaved(
            [_train_call(model, xs, True), _train_call(model, xs, False)], repeats, budget_s, warmup=0
        )
        res.metrics[f"fusion_batched_vs_separate_n{n}"] = Metric(
            "x",
            ratios(slow, fast),
            target=">= 1.0",
            note=f"FLOP ratio {gflop['separate'] / gflop['batched']:.2f}",
        )
        res.metrics[f"batched_ms_n{n}"] = Metric("ms", [1e3 * t for t in fast])
        res.metrics[f"separate_ms_n{n}"] = Metric("ms", [1e3 * t for t in slow])
        res.details[f"n{n}"] = {"gflop": gflop, "max_abs_diff": diff}
    return res
