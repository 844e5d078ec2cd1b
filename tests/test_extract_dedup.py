"""Probe feature extraction on shared-source data (``SharedSourceDataset``): each distinct input is encoded
once, and the features equal the plain per-batch ``embed`` path."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from commlearn.config import ModelConfig, TaskInfo
from commlearn.data.base import (
    ArrayDataset,
    ModalitySpec,
    MultimodalBatch,
    MultimodalDataset,
    SharedSourceDataset,
)
from commlearn.data.trifeature import TrifeatureImages
from commlearn.data.trifeature_pairs import Roles, TrifeaturePairs, synergy_mapping
from commlearn.eval import extract_features
from commlearn.methods import METHODS, BaseMethod, FusionMethod, SimCLR, build_method

TINY = ModelConfig(embed_dim=32, n_heads=2, head_hidden=[64], head_out=32, image_channels=[8, 16, 16])
N_IMAGES, N_USED, N_PAIRS = 30, 24, 70  # images 24..29 are in no pair


@pytest.fixture(scope="module")
def pairs() -> TrifeaturePairs:
    g = torch.Generator().manual_seed(0)
    images = TrifeatureImages(
        images=torch.randint(0, 256, (N_IMAGES, 3, 32, 32), dtype=torch.uint8, generator=g),
        attributes=torch.randint(0, 10, (N_IMAGES, 3), generator=g),
        split="train",
    )
    index = torch.randint(0, N_USED, (N_PAIRS, 2), generator=g)
    return TrifeaturePairs(images, index, Roles(), synergy_mapping(0))


class _Plain:
    """The same samples through ``MultimodalDataset`` only (no ``modality_sources``)."""

    def __init__(self, dataset: MultimodalDataset) -> None:
        self.dataset = dataset
        self.modality_specs = dataset.modality_specs
        self.task_names = dataset.task_names
        self.task_type = dataset.task_type

    def __len__(self) -> int:
        return len(self.dataset)

    def get_batch(self, index: Tensor) -> MultimodalBatch:
        return self.dataset.get_batch(index)


def _method(name: str, specs: list[ModalitySpec]) -> BaseMethod:
    torch.manual_seed(0)
    options: dict[str, Any] = {"modality": 1} if name == "simclr" else {}
    if name.startswith("factorcl"):
        options["critic_hidden"] = 16
    method = build_method(name, specs, TINY, task=TaskInfo(n_outputs=10), options=options)
    return method


def _encoders(method: BaseMethod) -> dict[int, nn.Module]:
    """The encoder of each modality the probe features use."""
    if isinstance(method, FusionMethod):
        return dict(enumerate(method.model.encoders))
    if isinstance(method, SimCLR):
        return {method.modality: method.encoder.encoders[0]}
    return dict(enumerate(method.encoders.encoders))  # type: ignore[arg-type,union-attr]


def _count_rows(method: BaseMethod) -> tuple[dict[int, int], list[Any]]:
    """Rows seen by each modality's encoder (filled in by forward hooks; remove the returned handles)."""
    rows = dict.fromkeys(_encoders(method), 0)

    def hook(i: int) -> Any:
        def count(module: nn.Module, args: tuple[Tensor, ...]) -> None:
            rows[i] += int(args[0].shape[0])

        return count

    handles = [enc.register_forward_pre_hook(hook(i)) for i, enc in _encoders(method).items()]
    return rows, handles


@pytest.mark.parametrize("name", sorted(METHODS))
def test_shared_sources_match_plain_path_and_encode_each_image_once(
    name: str, pairs: TrifeaturePairs
) -> None:
    assert isinstance(pairs, SharedSourceDataset)
    assert not isinstance(_Plain(pairs), SharedSourceDataset)
    method = _method(name, pairs.modality_specs)
    with torch.no_grad():  # non-default BatchNorm running statistics
        method.train()
        method.compute_loss(pairs.get_batch(torch.arange(32)))

    rows, handles = _count_rows(method)
    features, labels = extract_features(method, pairs, batch_size=16)
    for h in handles:
        h.remove()
    assert method.training  # the mode is restored
    distinct = [len(torch.unique(pairs.pairs[:, i])) for i in range(2)]
    assert rows == {i: distinct[i] for i in rows} and all(n < N_PAIRS for n in rows.values())

    plain_rows, handles = _count_rows(method)
    plain, plain_labels = extract_features(method, _Plain(pairs), batch_size=16)
    for h in handles:
        h.remove()
    assert plain_rows == dict.fromkeys(rows, N_PAIRS)

    method.eval()
    with torch.no_grad():
        direct = method.embed(pairs.get_batch(torch.arange(N_PAIRS)))
    assert features.dtype == torch.float32 and features.device.type == "cpu"
    assert features.shape == plain.shape == direct.shape and features.shape[0] == N_PAIRS
    torch.testing.assert_close(features, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(features, direct, atol=1e-5, rtol=1e-5)
    assert labels is not None and plain_labels is not None
    assert torch.equal(labels, plain_labels) and torch.equal(labels, pairs.labels)
    assert labels.data_ptr() != pairs.labels.data_ptr()  # a copy, not the data set's own tensor


@pytest.mark.parametrize("name", ["comm", "cross", "factorcl"])
def test_data_set_without_sources(name: str) -> None:
    g = torch.Generator().manual_seed(1)
    data = ArrayDataset(
        [torch.randn(40, 6, generator=g), torch.randn(40, 5, generator=g)], labels=torch.arange(40) % 3
    )
    assert not isinstance(data, SharedSourceDataset)
    method = _method(name, data.modality_specs)
    features, labels = extract_features(method, data, batch_size=16)
    method.eval()
    with torch.no_grad():
        direct = method.embed(data.get_batch(torch.arange(40)))
    torch.testing.assert_close(features, direct, atol=1e-5, rtol=1e-5)
    assert labels is not None and torch.equal(labels, data.labels)


class _Gathered:
    """A generic shared-source data set of vectors without labels: sample n = (a[ia[n]], b[ib[n]])."""

    task_names: list[str] = []
    task_type = "multiclass"
    labels = None

    def __init__(self, a: Tensor, ia: Tensor, b: Tensor, ib: Tensor) -> None:
        self.sources = [(a, ia), (b, ib)]
        self.modality_specs = [
            ModalitySpec("a", "vector", (a.shape[1],)),
            ModalitySpec("b", "vector", (b.shape[1],)),
        ]

    def __len__(self) -> int:
        return int(self.sources[0][1].shape[0])

    def modality_sources(self) -> list[tuple[Tensor, Tensor]]:
        return self.sources

    def get_batch(self, index: Tensor) -> MultimodalBatch:
        return MultimodalBatch([src[idx[index]] for src, idx in self.sources])


def test_generic_shared_sources_without_labels() -> None:
    g = torch.Generator().manual_seed(2)
    data = _Gathered(
        torch.randn(7, 6, generator=g),
        torch.randint(0, 7, (50,), generator=g),
        torch.randn(12, 5, generator=g),
        torch.randint(2, 12, (50,), generator=g),
    )
    assert isinstance(data, SharedSourceDataset)
    method = _method("comm", data.modality_specs)
    features, labels = extract_features(method, data, batch_size=8)
    plain, plain_labels = extract_features(method, _Plain(data), batch_size=8)
    assert labels is None and plain_labels is None
    torch.testing.assert_close(features, plain, atol=1e-5, rtol=1e-5)
