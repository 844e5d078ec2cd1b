"""Config merging, data containers, the batch loader and the generic array loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from commlearn.config import (
    ConfigError,
    DataConfig,
    config_differences,
    config_from_dict,
    config_to_dict,
    load_config,
    preset_names,
)
from commlearn.data import ArrayDataset, ModalitySpec, MultimodalBatch
from commlearn.data.arrays import load_arrays
from commlearn.data.loader import BatchLoader
from commlearn.data.registry import build_data, split_dataset
from commlearn.data.synthetic import make_synthetic


def test_config_layers_and_round_trip(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("method:\n  lr: 1e-3\n  options: {temperature: 0.2}\nmodel:\n  embed_dim: 64\n")
    cfg = load_config(f, ["method.lr=3e-4", "trainer.max_steps=5", "data.options.kinds=[vector,image]"])
    assert cfg.method.lr == 3e-4 and cfg.model.embed_dim == 64 and cfg.trainer.max_steps == 5
    assert cfg.method.options == {"temperature": 0.2}
    assert cfg.data.options["kinds"] == ["vector", "image"]
    assert config_from_dict(config_to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "overrides,match",
    [
        (["method.lrr=1"], "unknown config key 'method.lrr'"),
        (["foo.bar=1"], "unknown config key 'foo'"),
        (["method.lr=abc"], "expects a number"),
        (["trainer.max_epochs=1.5"], "expects an integer"),
        (["model.head_hidden=5"], "expects a list"),
        (["method.augment=maybe"], "expects true/false"),
        (["noequals"], "section.key=value"),
    ],
)
def test_config_errors(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("method:\n  lr: 1e-3\n  name: [comm\n")
    with pytest.raises(ConfigError, match="not valid YAML at line 4, column 1"):
        load_config(bad)
    with pytest.raises(
        ConfigError, match="unknown preset 'trifeature-gpu'; packaged presets: .*trifeature-cpu"
    ):
        load_config("trifeature-gpu")
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        load_config(listed)


def test_presets_are_complete_and_layered(tmp_path: Path) -> None:
    """Packaged presets load by name; a file extends one with ``preset:``; overrides come last; options merge
    key by key."""
    assert {"trifeature-cpu", "trifeature-paper", "trifeature-tiny"} <= set(preset_names())
    paper = load_config("trifeature-paper")
    assert paper.model.image_encoder == "alexnet" and paper.data.options["render"]["canvas_size"] == 224
    assert paper.method.lr == 3e-4 and paper.trainer.max_epochs == 100
    user = tmp_path / "mine.yaml"
    user.write_text("preset: trifeature-cpu\ndata:\n  options:\n    render: {canvas_size: 48}\n")
    cfg = load_config(user, ["trainer.max_epochs=2"])
    cpu = load_config("trifeature-cpu")
    assert cfg.data.options["render"] == {**cpu.data.options["render"], "canvas_size": 48}
    assert cfg.trainer.max_epochs == 2 and cfg.model == cpu.model
    assert [d[0] for d in config_differences(config_to_dict(cpu), config_to_dict(cfg))] == [
        "data.options.render.canvas_size",
        "trainer.max_epochs",
    ]
    assert config_differences(config_to_dict(cpu), config_to_dict(cfg), ignore=["trainer", "data"]) == []


def test_array_dataset_and_batch() -> None:
    ds = ArrayDataset([torch.randn(10, 3), torch.randn(10, 4, 2)], labels=torch.arange(10))
    assert [s.kind for s in ds.modality_specs] == ["vector", "sequence"]
    b = ds.get_batch(torch.tensor([3, 1]))
    assert isinstance(b, MultimodalBatch) and b.labels.tolist() == [3, 1]  # type: ignore[union-attr]
    assert b.inputs[1].shape == (2, 4, 2) and b.padding == [None, None]
    with pytest.raises(ValueError, match="modality 1 has 9 samples"):
        ArrayDataset([torch.randn(10, 3), torch.randn(9, 3)])
    with pytest.raises(ValueError, match="NaN or Inf"):
        ArrayDataset([torch.tensor([[1.0], [float("inf")]])])
    with pytest.raises(ValueError, match="labels have 3 rows"):
        ArrayDataset([torch.randn(10, 3)], labels=torch.zeros(3))
    with pytest.raises(ValueError, match="needs a 1-d shape"):
        ModalitySpec("v", "vector", (3, 4))
    with pytest.raises(ValueError, match="modality kind must be one of"):
        ModalitySpec("v", "audio", (3,))  # type: ignore[arg-type]


def test_loader_covers_epoch_and_reshuffles() -> None:
    ds = ArrayDataset([torch.arange(10).float()[:, None]], labels=torch.arange(10))
    loader = BatchLoader(ds, 3, shuffle=True, drop_last=True, seed=1)
    assert len(loader) == 3
    first = torch.cat([b.labels for b in loader])  # type: ignore[misc]
    second = torch.cat([b.labels for b in loader])  # type: ignore[misc]
    assert len(set(first.tolist())) == 9 and not torch.equal(first, second)
    loader.set_epoch(0)
    assert torch.equal(torch.cat([b.labels for b in loader]), first)  # type: ignore[misc]
    full = BatchLoader(ds, 4, shuffle=False, drop_last=False)
    assert [len(b.labels) for b in full] == [4, 4, 2]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fewer than one batch"):
        BatchLoader(ds, 11)


def test_synthetic_and_split() -> None:
    ds = make_synthetic(64, ("vector", "sequence", "image", "tokens"))
    assert ds.task_names == ["R", "U0", "U1", "U2", "U3", "S"]
    assert ds.padding[1] is not None and ds.padding[1].any()
    train, val = split_dataset(ds, 0.25, seed=0)
    assert val is not None and len(train) + len(val) == 64
    with pytest.raises(ConfigError, match="unknown data set 'nope'"):
        build_data(DataConfig(name="nope"), 0)
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['size'\] for data set 'synthetic'"):
        build_data(DataConfig(name="synthetic", options={"size": 3}), 0)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['px'\] in data.options.render"):
        build_data(DataConfig(name="trifeature", options={"render": {"px": 3}}), 0)


def test_load_arrays_npz_and_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (6, 3, 8, 8), dtype=np.uint8)
    seq = rng.standard_normal((6, 5, 2)).astype(np.float32)
    pad = np.zeros((6, 5), dtype=bool)
    pad[:, 0] = True
    np.savez(tmp_path / "d.npz", image=img, audio=seq, audio_pad=pad, labels=np.arange(6) % 2)
    ds = load_arrays(tmp_path / "d.npz", ["image", "audio"], padding=[None, "audio_pad"])
    assert [s.name for s in ds.modality_specs] == ["image", "audio"]
    assert ds.get_batch(torch.tensor([0])).padding[1].tolist() == [[True, False, False, False, False]]  # type: ignore[union-attr]
    folder = tmp_path / "f"
    folder.mkdir()
    np.save(folder / "a.npy", seq)
    np.save(folder / "labels.npy", np.arange(6))
    assert len(load_arrays(folder)) == 6
    with pytest.raises(ValueError, match="data path not found"):
        load_arrays(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="not found in"):
        load_arrays(tmp_path / "d.npz", ["video"])
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match="cannot read"):
        load_arrays(tmp_path / "corrupt.npz")
    np.savez(tmp_path / "nan.npz", a=np.array([[np.nan]], dtype=np.float32))
    with pytest.raises(ValueError, match="NaN or Inf"):
        load_arrays(tmp_path / "nan.npz")


@pytest.mark.parametrize("name", preset_names())
def test_every_packaged_preset_is_valid(name: str) -> None:
    """Every key of a preset is known: config keys, its data set's options, its methods' options."""
    from commlearn.config import check_options
    from commlearn.data.registry import dataset_options
    from commlearn.methods.registry import method_class

    cfg = load_config(name)
    assert set(cfg.data.options) <= set(dataset_options(cfg.data.name))
    check_options(method_class(cfg.method.name), cfg.method.options, name)
    for method, options in cfg.experiment.method_options.items():
        check_options(method_class(method), options, name)
    cfg.method.optim()  # the optimiser settings are valid


def test_float64_arrays_train_as_float32(tmp_path: Path) -> None:
    """NumPy's default float64 is the models' float32 once loaded (it used to fail in the first matmul)."""
    np.savez(
        tmp_path / "d.npz",
        a=np.ones((4, 3)),
        b=np.zeros((4, 2), dtype=np.float16),
        t=np.arange(8).reshape(4, 2),
    )
    ds = load_arrays(tmp_path / "d.npz", ["a", "b", "t"], labels=None)
    assert [x.dtype for x in ds.inputs] == [torch.float32, torch.float32, torch.int64]
