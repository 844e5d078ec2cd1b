"""Tests of the bimodal Trifeature pair data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from commlearn.data.base import MultimodalBatch, MultimodalDataset
from commlearn.data.trifeature import RenderSettings, TrifeatureImages, make_splits
from commlearn.data.trifeature_pairs import (
    TASK_NAMES,
    Roles,
    TrifeatureData,
    TrifeaturePairs,
    build_trifeature,
    count_pairs,
    pair_labels,
    sample_pairs,
    synergy_mapping,
)

TINY = RenderSettings(canvas_size=24, shape_size=16, texture_period=3.0, supersample=1)


@pytest.fixture(scope="module")
def splits() -> tuple[TrifeatureImages, TrifeatureImages]:
    return make_splits(0, TINY)


def _allowed(attrs: np.ndarray, roles: Roles, mapping: np.ndarray, biased: bool) -> np.ndarray:
    """Brute-force (N, N) bool matrix of allowed ordered pairs."""
    s = roles.share_index
    ok = (attrs[:, None, s] == attrs[None, :, s]) & ~np.eye(len(attrs), dtype=bool)
    if biased:
        a, b = roles.synergy_index
        ok &= mapping[attrs[:, None, a]] == attrs[None, :, b]
    return ok


def _expected_labels(attrs: np.ndarray, pairs: np.ndarray, roles: Roles, mapping: np.ndarray) -> np.ndarray:
    a1, a2 = attrs[pairs[:, 0]], attrs[pairs[:, 1]]
    s1, s2 = roles.synergy_index
    return np.stack(
        [
            a1[:, roles.share_index],
            a1[:, roles.unique_index],
            a2[:, roles.unique_index],
            (mapping[a1[:, s1]] == a2[:, s2]).astype(np.int64),
        ],
        axis=1,
    )


# ------------------------------------------------------------------------------------------------ roles
def test_roles_defaults_and_indices() -> None:
    roles = Roles()
    assert (roles.share, roles.unique, roles.synergy) == ("shape", "texture", ("texture", "color"))
    assert (roles.share_index, roles.unique_index, roles.synergy_index) == (0, 1, (1, 2))
    assert Roles(synergy=["color", "shape"]).synergy == ("color", "shape")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"share": "size"}, r"Roles.share must be one of \('shape', 'texture', 'color'\), got 'size'"),
        ({"unique": "Texture"}, "Roles.unique must be one of"),
        ({"synergy": ("texture",)}, "Roles.synergy must be two names from"),
        ({"synergy": ("texture", "hue")}, "Roles.synergy must be two names from"),
        ({"share": "color", "unique": "color"}, "Roles.share and Roles.unique must differ"),
    ],
)
def test_roles_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Roles(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- mapping
def test_synergy_mapping_is_a_pure_permutation() -> None:
    m = synergy_mapping(0, Roles())
    assert m.dtype == np.int64 and sorted(m.tolist()) == list(range(10))
    np.testing.assert_array_equal(m, synergy_mapping(0, Roles()))
    np.testing.assert_array_equal(m, synergy_mapping(0))
    # the roles that do not define M do not change it; the seed and the synergy roles do
    np.testing.assert_array_equal(m, synergy_mapping(0, Roles(share="color", unique="shape")))
    assert not np.array_equal(m, synergy_mapping(1, Roles()))
    assert not np.array_equal(m, synergy_mapping(0, Roles(synergy=("shape", "color"))))
    # draws of global random state do not matter
    np.random.seed(123)  # noqa: NPY002 - the legacy global state must not matter
    torch.manual_seed(5)
    np.testing.assert_array_equal(m, synergy_mapping(0))


def test_synergy_mapping_seed_error() -> None:
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        synergy_mapping(-3)


# ---------------------------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("biased", [False, True])
def test_sampling_all_pairs_gives_exactly_the_allowed_set(
    splits: tuple[TrifeatureImages, TrifeatureImages], biased: bool
) -> None:
    test = splits[1]
    roles, mapping = Roles(), synergy_mapping(0)
    allowed = _allowed(test.attributes.numpy(), roles, mapping, biased)
    assert count_pairs(test, roles, mapping, biased) == int(allowed.sum())
    pairs = sample_pairs(test, None, roles, mapping, biased, seed=4).pairs.numpy()
    assert len(pairs) == int(allowed.sum())
    assert set(map(tuple, pairs.tolist())) == set(zip(*np.nonzero(allowed), strict=True))


def test_unbiased_train_pairs(splits: tuple[TrifeatureImages, TrifeatureImages]) -> None:
    train = splits[0]
    roles, mapping = Roles(), synergy_mapping(0)
    attrs = train.attributes.numpy()
    assert count_pairs(train, roles, mapping, False) == int(_allowed(attrs, roles, mapping, False).sum())
    data = sample_pairs(train, 10_000, roles, mapping, biased=False, seed=1)
    pairs = data.pairs.numpy()
    assert pairs.shape == (10_000, 2) and data.pairs.dtype == torch.int64
    assert np.all(attrs[pairs[:, 0], 0] == attrs[pairs[:, 1], 0])  # shape always shared
    assert np.all(pairs[:, 0] != pairs[:, 1])  # never an image with itself
    assert len(np.unique(pairs[:, 0] * 10_000 + pairs[:, 1])) == 10_000  # without replacement
    np.testing.assert_array_equal(data.labels.numpy(), _expected_labels(attrs, pairs, roles, mapping))
    positives = data.labels[:, 3].float().mean().item()
    assert 0.07 < positives < 0.13  # S = 1 for about 1 pair in 10
    # textures of x1 and x2 vary independently: all 100 (U1, U2) combinations occur
    assert len(np.unique(data.labels[:, 1] * 10 + data.labels[:, 2])) == 100


def test_biased_pairs_respect_the_mapping(splits: tuple[TrifeatureImages, TrifeatureImages]) -> None:
    train = splits[0]
    roles, mapping = Roles(), synergy_mapping(0)
    data = sample_pairs(train, 10_000, roles, mapping, biased=True, seed=2)
    attrs, pairs = train.attributes.numpy(), data.pairs.numpy()
    assert np.all(mapping[attrs[pairs[:, 0], 1]] == attrs[pairs[:, 1], 2])
    assert np.all(attrs[pairs[:, 0], 0] == attrs[pairs[:, 1], 0])
    assert np.all(data.labels[:, 3].numpy() == 1)
    np.testing.assert_array_equal(data.labels.numpy(), _expected_labels(attrs, pairs, roles, mapping))


def test_other_roles(splits: tuple[TrifeatureImages, TrifeatureImages]) -> None:
    test = splits[1]
    roles = Roles(share="color", unique="shape", synergy=("shape", "texture"))
    mapping = synergy_mapping(7, roles)
    for biased in (False, True):
        data = sample_pairs(test, None, roles, mapping, biased=biased, seed=0)
        attrs, pairs = test.attributes.numpy(), data.pairs.numpy()
        assert np.all(attrs[pairs[:, 0], 2] == attrs[pairs[:, 1], 2])
        assert len(pairs) == int(_allowed(attrs, roles, mapping, biased).sum())
        np.testing.assert_array_equal(data.labels.numpy(), _expected_labels(attrs, pairs, roles, mapping))


def test_sampling_is_deterministic(splits: tuple[TrifeatureImages, TrifeatureImages]) -> None:
    train = splits[0]
    roles, mapping = Roles(), synergy_mapping(0)
    a = sample_pairs(train, 500, roles, mapping, biased=False, seed=9).pairs
    b = sample_pairs(train, 500, roles, mapping, biased=False, seed=9).pairs
    c = sample_pairs(train, 500, roles, mapping, biased=False, seed=10).pairs
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sampling_errors(splits: tuple[TrifeatureImages, TrifeatureImages]) -> None:
    test = splits[1]
    roles, mapping = Roles(), synergy_mapping(0)
    n_allowed = count_pairs(test, roles, mapping, True)
    with pytest.raises(
        ValueError, match=rf"asked for {n_allowed + 1} biased pairs but the test split has only"
    ):
        sample_pairs(test, n_allowed + 1, roles, mapping, biased=True, seed=0)
    with pytest.raises(ValueError, match="n_pairs must be a positive int or None, got 0"):
        sample_pairs(test, 0, roles, mapping, biased=False, seed=0)
    with pytest.raises(ValueError, match="mapping must be a permutation of 0..9"):
        sample_pairs(test, 5, roles, np.zeros(10, dtype=np.int64), biased=False, seed=0)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        sample_pairs(test, 5, roles, mapping, biased=False, seed=-1)


# ------------------------------------------------------------------------------------------ the data set
def test_pairs_dataset_protocol_and_batches(splits: tuple[TrifeatureImages, TrifeatureImages]) -> None:
    train = splits[0]
    roles, mapping = Roles(), synergy_mapping(0)
    data = sample_pairs(train, 300, roles, mapping, biased=False, seed=3)
    assert isinstance(data, MultimodalDataset)
    assert data.task_names == list(TASK_NAMES) == ["R", "U1", "U2", "S"]
    assert data.task_type == "multiclass" and data.n_classes == [10, 10, 10, 2]
    assert [s.name for s in data.modality_specs] == ["image1", "image2"]
    assert all(s.kind == "image" and s.shape == (3, 24, 24) for s in data.modality_specs)
    assert len(data) == 300
    assert data.images.data_ptr() == train.images.data_ptr()  # shared, not copied
    index = torch.tensor([5, 0, 299])
    batch = data.get_batch(index)
    assert isinstance(batch, MultimodalBatch) and batch.n_modalities == 2
    assert torch.equal(batch.inputs[0], train.images[data.pairs[index, 0]])
    assert torch.equal(batch.inputs[1], train.images[data.pairs[index, 1]])
    assert batch.inputs[0].dtype == torch.uint8 and batch.labels is not None
    assert batch.labels.shape == (3, 4) and torch.equal(batch.labels, data.labels[index])
    assert torch.equal(pair_labels(train.attributes, data.pairs, roles, mapping), data.labels)


def test_pairs_dataset_errors(splits: tuple[TrifeatureImages, TrifeatureImages]) -> None:
    test = splits[1]
    mapping = synergy_mapping(0)
    with pytest.raises(ValueError, match=r"pairs must be an integer \(P, 2\) array"):
        TrifeaturePairs(test, np.zeros((3, 3), dtype=np.int64), Roles(), mapping)
    with pytest.raises(ValueError, match=r"pairs must be an integer \(P, 2\) array"):
        TrifeaturePairs(test, np.zeros((3, 2)), Roles(), mapping)
    with pytest.raises(ValueError, match=r"pair indices must be in \[0, 200\), got range \[0, 200\]"):
        TrifeaturePairs(test, np.array([[0, 200]]), Roles(), mapping)


# ----------------------------------------------------------------------------------------------- builder
def test_build_trifeature(tmp_path: Path, splits: tuple[TrifeatureImages, TrifeatureImages]) -> None:
    data = build_trifeature(TINY, seed=0, n_train_pairs=2000, n_probe_train_pairs=1000, cache_dir=tmp_path)
    assert isinstance(data, TrifeatureData) and data.settings == TINY and data.roles == Roles()
    np.testing.assert_array_equal(data.mapping, synergy_mapping(0, Roles()))
    train, test = splits
    for name in ("pretrain_unbiased", "pretrain_biased", "probe_train", "probe_test"):
        pairs: TrifeaturePairs = getattr(data, name)
        np.testing.assert_array_equal(pairs.mapping, data.mapping)  # one M everywhere
        source = test if name == "probe_test" else train
        assert pairs.split == source.split and torch.equal(pairs.images, source.images)
    assert (len(data.pretrain_unbiased), len(data.pretrain_biased), len(data.probe_train)) == (
        2000,
        2000,
        1000,
    )
    assert len(data.probe_test) == count_pairs(test, Roles(), data.mapping, biased=False)
    assert torch.all(data.pretrain_biased.labels[:, 3] == 1)
    for probe in (data.probe_train, data.probe_test):
        assert 0.04 < probe.labels[:, 3].float().mean().item() < 0.2  # unbiased
    # a pure function of the seed (the second call reads the image cache)
    again = build_trifeature(TINY, seed=0, n_train_pairs=2000, n_probe_train_pairs=1000, cache_dir=tmp_path)
    for name in ("pretrain_unbiased", "pretrain_biased", "probe_train", "probe_test"):
        assert torch.equal(getattr(data, name).pairs, getattr(again, name).pairs)
    assert not torch.equal(data.pretrain_unbiased.pairs[:100], data.probe_train.pairs[:100])


def test_pairs_to_device_gives_the_same_batches(splits: tuple[TrifeatureImages, TrifeatureImages]) -> None:
    data = sample_pairs(splits[0], 50, Roles(), synergy_mapping(0), biased=False, seed=1)
    moved = data.to("meta")  # a device of its own: every tensor of the batch path must move
    assert moved.images.device.type == moved.pairs.device.type == moved.labels.device.type == "meta"
    assert data.images.device.type == "cpu"  # the original is untouched
    same = data.to("cpu")
    assert same.images.data_ptr() == data.images.data_ptr()  # already there: no copy
    index = torch.tensor([3, 0, 49])
    a, b = data.get_batch(index), same.get_batch(index)
    assert all(torch.equal(u, v) for u, v in zip(a.inputs, b.inputs, strict=True))
    assert a.labels is not None and b.labels is not None and torch.equal(a.labels, b.labels)
