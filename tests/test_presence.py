"""Samples that lack a modality (a per-sample presence mask): CoMM embeds such a sample exactly as if the modality
were dropped for it; the unimodal baselines put zeros in its columns; data sets and the arrays loader carry
the mask; training refuses it in one line; ``commlearn embed`` writes sample ids."""

from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from commlearn.cli import main
from commlearn.config import ModelConfig, TaskInfo
from commlearn.data.arrays import load_arrays
from commlearn.data.base import ArrayDataset, MultimodalBatch, sample_ids
from commlearn.data.synthetic import make_synthetic
from commlearn.eval import extract_features
from commlearn.methods import BaseMethod, FusionMethod, build_method
from commlearn.nn.fusion import FusionTransformer

TINY = ModelConfig(embed_dim=16, n_heads=2, head_hidden=[32], head_out=16, vector_dim=16, sequence_dim=16)
KINDS = ("vector", "sequence", "vector")


def _present() -> torch.Tensor:
    """Every non-empty subset of 3 modalities, twice: (14, 3)."""
    rows = [r for r in product([True, False], repeat=3) if any(r)]
    return torch.tensor(rows + rows)


def _method(name: str, specs: Any, **options: Any) -> BaseMethod:
    torch.manual_seed(0)
    if name.startswith("factorcl"):
        options["critic_hidden"] = 16
    method = build_method(name, specs, TINY, task=TaskInfo(n_outputs=4), options=options)
    method.eval()
    return method


@pytest.mark.parametrize("name", ["comm", "infmasking", "supervised"])
def test_fusion_embeds_a_sample_as_if_its_missing_modalities_were_dropped(name: str) -> None:
    data = make_synthetic(14, KINDS, seed=1)
    present = _present()
    method = _method(name, data.modality_specs)
    assert isinstance(method, FusionMethod)
    batch = data.get_batch(torch.arange(14))
    masked = MultimodalBatch(batch.inputs, batch.padding, batch.labels, present)
    got = method.embed(masked)
    for b in range(14):
        one = data.get_batch(torch.tensor([b]))
        chosen = present[b].nonzero().flatten().tolist()
        with torch.no_grad():
            alone = method.model(one.inputs, one.padding, modalities=chosen)
        torch.testing.assert_close(got[b : b + 1], alone, atol=1e-5, rtol=1e-5)
    # with modalities: the sample keeps those of the chosen ones it has
    both = method.embed(masked, modalities=[0, 1])
    b = 4  # present = (False, True, True): modality 1 alone
    assert present[b].tolist() == [False, True, True]
    one = data.get_batch(torch.tensor([b]))
    with torch.no_grad():
        expected = method.model(one.inputs, one.padding, modalities=[1])
    torch.testing.assert_close(both[b : b + 1], expected, atol=1e-5, rtol=1e-5)
    # the features of the whole data set, batch by batch, are the same
    dataset = ArrayDataset(data.inputs, data.modality_specs, data.labels, data.padding, present=present)
    features, _ = extract_features(method, dataset, batch_size=5)
    torch.testing.assert_close(features, got, atol=1e-5, rtol=1e-5)


def test_placeholders_of_missing_modalities_do_not_matter() -> None:
    """Whatever a sample holds where it lacks a modality (here: noise) does not change its embedding."""
    data = make_synthetic(14, KINDS, seed=2)
    present = _present()
    method = _method("comm", data.modality_specs)
    batch = data.get_batch(torch.arange(14))
    noisy = [
        torch.where(present[:, i].view(-1, *[1] * (x.ndim - 1)), x, 100 * torch.randn_like(x))
        for i, x in enumerate(batch.inputs)
    ]
    a = method.embed(MultimodalBatch(batch.inputs, batch.padding, present=present))
    b = method.embed(MultimodalBatch(noisy, batch.padding, present=present))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["cross", "cross_self", "cmc", "supcon", "factorcl", "simclr"])
def test_unimodal_baselines_put_zeros_in_the_columns_of_a_missing_modality(name: str) -> None:
    data = make_synthetic(14, KINDS, seed=3)
    present = _present()
    method = _method(name, data.modality_specs)
    batch = data.get_batch(torch.arange(14))
    full = method.embed(batch)
    got = method.embed(MultimodalBatch(batch.inputs, batch.padding, batch.labels, present))
    used = method.feature_modalities(3)
    widths = [method.embed(batch, modalities=[i]).shape[1] for i in used]
    assert full.shape == got.shape and sum(widths) == full.shape[1]
    start = 0
    for i, width in zip(used, widths, strict=True):
        cols = slice(start, start + width)
        absent = ~present[:, i]
        assert bool((got[absent, cols] == 0).all())
        torch.testing.assert_close(got[~absent, cols], full[~absent, cols])
        start += width


def test_mean_pooled_fusion_of_a_sample_without_tokens_is_finite() -> None:
    torch.manual_seed(0)
    fusion = FusionTransformer(8, n_heads=2, pool="mean").eval()
    tokens = torch.randn(3, 4, 8)
    padding = torch.tensor([[False, False, True, True], [True, True, True, True], [False] * 4])
    out = fusion(tokens, padding)
    assert bool(torch.isfinite(out).all())
    torch.testing.assert_close(out[0:1], fusion(tokens[0:1, :2]))  # padding = dropping those tokens


def test_training_refuses_samples_that_lack_a_modality() -> None:
    data = make_synthetic(8, ("vector", "vector"))
    method = _method("comm", data.modality_specs)
    batch = data.get_batch(torch.arange(8))
    present = torch.ones(8, 2, dtype=torch.bool)
    present[3, 1] = False
    with pytest.raises(
        ValueError,
        match=r"^CoMM trains on samples with every modality, but the data has samples that lack one \(its "
        r"presence mask\): pre-train on the complete samples; embed and probe all of them$",
    ):
        method.training_step(MultimodalBatch(batch.inputs, present=present), 0)


def test_batch_and_data_set_check_the_mask() -> None:
    x = [torch.randn(4, 3), torch.randn(4, 2)]
    with pytest.raises(ValueError, match=r"present must be a bool \(4, 2\) mask \(batch, modalities\), got "):
        MultimodalBatch(x, present=torch.ones(4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="got torch.int64"):
        MultimodalBatch(x, present=torch.ones(4, 2, dtype=torch.long))
    batch = MultimodalBatch(x, present=torch.ones(4, 2, dtype=torch.bool)).to("cpu")
    assert batch.present is not None and batch.present.shape == (4, 2)
    with pytest.raises(ValueError, match=r"the presence mask must be bool \(4, 2\) \(samples, modalities\)"):
        ArrayDataset(x, present=torch.ones(4, 1, dtype=torch.bool))
    with pytest.raises(
        ValueError, match=r"samples \[2\] \(1 in all\) have no modality present: leave them out"
    ):
        ArrayDataset(x, present=torch.tensor([[1, 1], [1, 0], [0, 0], [0, 1]]).bool())
    # NaN where a modality is missing is a placeholder (stored as 0); where it is present, an error
    holes = x[0].clone()
    holes[1] = float("nan")
    present = torch.tensor([[1, 1], [0, 1], [1, 1], [1, 1]]).bool()
    data = ArrayDataset([holes, x[1]], present=present)
    assert bool(torch.isfinite(data.inputs[0]).all()) and bool((data.inputs[0][1] == 0).all())
    assert torch.equal(data.get_batch(torch.tensor([1, 3])).present, present[[1, 3]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="modality 0 contains NaN or Inf values where it is present"):
        ArrayDataset([holes, x[1]], present=torch.ones(4, 2, dtype=torch.bool))


def test_arrays_read_a_presence_entry(tmp_path: Path) -> None:
    g = np.random.default_rng(0)
    a, b = g.normal(size=(6, 3)).astype(np.float32), g.normal(size=(6, 2)).astype(np.float32)
    a[0] = np.nan  # sample 0 lacks modality a
    mask = np.array([[0, 1], [1, 1], [1, 0], [1, 1], [1, 1], [1, 1]], dtype=np.uint8)
    path = tmp_path / "d.npz"
    np.savez(path, a=a, b=b, seen=mask, labels=np.arange(6) % 2)
    data = load_arrays(path, present="seen")
    assert [s.name for s in data.modality_specs] == ["a", "b"]  # the mask is not a modality
    assert data.present is not None and data.present.tolist() == mask.astype(bool).tolist()
    np.savez(path, a=a, b=b, seen=mask * 2, labels=np.arange(6) % 2)
    with pytest.raises(ValueError, match=r"presence entry 'seen' of .* must hold booleans or 0/1"):
        load_arrays(path, present="seen")
    with pytest.raises(ValueError, match=r"entries \['nope'\] not found"):
        load_arrays(path, present="nope")


class _WithIds(ArrayDataset):
    ids = np.array(["s1", "s2", "s3"])


def test_sample_ids() -> None:
    plain = ArrayDataset([torch.zeros(3, 2)])
    assert sample_ids(plain).tolist() == [0, 1, 2]
    assert sample_ids(_WithIds([torch.zeros(3, 2)])).tolist() == ["s1", "s2", "s3"]
    with pytest.raises(ValueError, match=r"the data set's ids have shape \(3,\), expected \(4,\)"):
        sample_ids(_WithIds([torch.zeros(4, 2)]))


def test_embed_command_writes_ids_and_labels_in_every_mode(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fit = ["fit", "data.options.n_samples=64", "data.batch_size=16", "model.embed_dim=16", "model.n_heads=2"]
    assert main([*fit, "trainer.max_epochs=1", "trainer.progress_bar=false", f"trainer.output={run}"]) == 0
    ckpt = str(run / "checkpoints" / "last.ckpt")
    for extra in ([], ["--modalities", "1"], ["--modalities", "0,1"]):
        out = tmp_path / "e.npz"
        assert main(["embed", "--checkpoint", ckpt, "--output", str(out), *extra]) == 0
        arrays = np.load(out)
        assert sorted(arrays.files) == ["features", "ids", "labels"]
        assert arrays["ids"].tolist() == list(range(64))
        assert arrays["features"].shape == (64, 16) and arrays["labels"].shape == (64, 4)
