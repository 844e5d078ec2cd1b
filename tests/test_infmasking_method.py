"""The InfMasking method: its masked fusions against a per-sample reference, and training end to end."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from commlearn.cli import main
from commlearn.config import ModelConfig
from commlearn.data.synthetic import make_synthetic
from commlearn.losses import draw_token_keep_masks
from commlearn.methods import InfMasking, build_method

_MODEL = ModelConfig(embed_dim=16, n_heads=2, head_hidden=[16], head_out=8, vector_encoder="tokenizer")


def _method(**options: float) -> tuple[InfMasking, list]:
    torch.manual_seed(0)
    data = make_synthetic(6, ("vector", "sequence"), dim=5, seq_len=4)
    method = build_method("infmasking", data.modality_specs, _MODEL, options=options)
    assert isinstance(method, InfMasking)
    method.eval()
    batch = data.get_batch(torch.arange(6))
    return method, method.model.tokenize(batch.inputs, batch.padding)


def test_no_masking_gives_the_full_fusion() -> None:
    method, tokens = _method(mask_ratio=0.0, n_masked_views=3)
    with torch.no_grad():
        masked = method.masked_fusions(tokens)
        full = method.model.fuse(tokens)
    assert masked.shape == (3, 6, 16)
    for t in range(3):
        torch.testing.assert_close(masked[t], full, atol=1e-5, rtol=1e-5)


def test_masked_fusions_equal_a_per_sample_reference() -> None:
    """Each (view, sample): the kept tokens stay, the others become the mask token, padding is kept, and the
    fusion of that one sequence alone gives the batched result."""
    method, tokens = _method(mask_ratio=0.5, n_masked_views=2)
    lengths = [tok.shape[1] for tok, _ in tokens]
    torch.manual_seed(7)
    with torch.no_grad():
        masked = method.masked_fusions(tokens)
    torch.manual_seed(7)
    keep = draw_token_keep_masks(lengths, 6, 0.5, 2)
    assert [int(k[0, 0].sum()) for k in keep] == [max(1, n // 2) for n in lengths]
    with torch.no_grad():
        for t in range(2):
            for b in range(6):
                seq, pad = [], []
                for (tok, p), k in zip(tokens, keep, strict=True):
                    for j in range(tok.shape[1]):
                        seq.append(tok[b, j] if k[t, b, j] else method.mask_token)
                        pad.append(bool(p[b, j]) if p is not None else False)
                z = method.model.fusion(torch.stack(seq)[None], torch.tensor([pad]))
                torch.testing.assert_close(masked[t, b], z[0], atol=1e-5, rtol=1e-5)


def test_infmasking_trains_through_the_cli(tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ["fit", "method.name=infmasking", "method.options={n_masked_views: 2}"]
    argv += ["data.options.kinds=[vector,sequence]", "data.options.n_samples=128", "data.batch_size=32"]
    argv += ["model.embed_dim=32", "model.n_heads=2", "model.head_hidden=[64]", "model.head_out=32"]
    argv += ["trainer.max_epochs=6", "trainer.log_every_n_steps=1", "trainer.progress_bar=false"]
    assert main([*argv, f"trainer.output={run}"]) == 0
    with open(run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    losses = [float(r["train/loss"]) for r in rows]
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.1, losses
    assert {"train/inf_v1", "train/inf_v2", "train/nce_full"} <= set(rows[0])
