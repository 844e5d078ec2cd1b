"""Loaders of the published real-world files (DESIGN.md section 11) on small files written in their formats.

Each format: the split, the labels, the masks and the cleaning rules against the values written; a few CoMM
steps through ``commlearn fit --config <preset> data.root=<tmp>`` and a probe of the test split through
``commlearn probe``; and one-line errors for a missing root, a missing file, a missing key, a wrong shape and
a truncated file.
"""

from __future__ import annotations

import json
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from real_data_files import (
    AFFECT_FILES,
    AFFECT_SIZES,
    MMIMDB_SIZES,
    STEPS,
    write_affect,
    write_mimic,
    write_mmimdb,
    write_vision_touch,
)

from commlearn.cli import main
from commlearn.config import ConfigError, DataConfig
from commlearn.data import GENRES, load_affect, load_mimic, load_mmimdb_hdf5, load_vision_touch
from commlearn.data.registry import build_data
from commlearn.data.vision_touch import MAX_OPEN_FILES, VisionTouchEpisodes

TINY = [
    "trainer.max_steps=2",
    "data.batch_size=8",
    "trainer.progress_bar=false",
    "trainer.log_every_n_steps=1",
    "model.embed_dim=16",
    "model.n_heads=2",
    "model.head_hidden=[32]",
    "model.head_out=16",
    "model.sequence_dim=16",
    "model.vector_dim=16",
]


# ------------------------------------------------------------------------------------------------ affect
@pytest.mark.parametrize("dataset", ["mosi", "mosei", "ur-funny", "mustard"])
def test_affect_split_cleaning_labels_and_masks(tmp_path: Path, dataset: str) -> None:
    content = write_affect(tmp_path, dataset)
    data = load_affect(str(tmp_path), dataset)
    assert data.probe_train is None
    assert data.val is not None and data.test is not None
    for part, key in ((data.train, "train"), (data.val, "valid"), (data.test, "test")):
        raw = content[key]
        n = AFFECT_SIZES[key] - 2  # the two all-zero-text samples are dropped
        assert len(part) == n
        assert [s.name for s in part.modality_specs] == ["vision", "audio", "text"]
        assert all(s.kind == "sequence" and s.shape[0] == STEPS for s in part.modality_specs)
        batch = part.get_batch(torch.arange(n))
        vision, audio, text = batch.inputs
        lengths = (raw["text"][:n] != 0).any(axis=2).sum(axis=1)
        want_pad = np.arange(STEPS)[None, :] >= lengths[:, None]
        for pad in batch.padding:
            assert pad is not None and np.array_equal(pad.numpy(), want_pad)
        i = int(np.argmin(lengths))  # the shortest sequence: its words moved to the front
        length = int(lengths[i])
        np.testing.assert_array_equal(text[i, :length].numpy(), raw["text"][i, STEPS - length :])
        assert bool((text[i, length:] == 0).all()) and bool((vision[i, length:] == 0).all())
        assert not bool((vision == 7.0).any())  # steps before the first word are cut off
        assert bool(torch.isfinite(audio).all())
        if key == "train":  # its first sample's last step held -inf audio: now 0
            assert float(audio[0, int(lengths[0]) - 1, 0]) == 0.0
        labels = raw["labels"].reshape(-1)[:n]
        assert batch.labels is not None and torch.equal(batch.labels, torch.from_numpy(labels > 0).long())
        assert part.task_type == "multiclass"
    task = {"mosi": "positive", "mosei": "positive", "ur-funny": "humor", "mustard": "sarcasm"}[dataset]
    assert data.train.task_names == [task]


def test_affect_modalities_and_regression(tmp_path: Path) -> None:
    content = write_affect(tmp_path, "mosi")
    data = load_affect(str(tmp_path / "mosi_data.pkl"), "mosi", ["text", "vision"], task="regression")
    assert [s.name for s in data.train.modality_specs] == ["text", "vision"]
    assert data.train.task_type == "regression" and data.train.task_names == ["sentiment"]
    want = content["test"]["labels"].reshape(-1)[:-2].astype(np.float32)
    labels = data.test.get_batch(torch.arange(len(data.test))).labels  # type: ignore[union-attr]
    assert labels is not None and np.allclose(labels.numpy(), want)
    write_affect(tmp_path, "ur-funny")
    with pytest.raises(ConfigError, match="task for ur-funny must be one of \\['binary'\\]"):
        load_affect(str(tmp_path), "ur-funny", task="regression")
    with pytest.raises(ConfigError, match="modalities must list distinct names"):
        load_affect(str(tmp_path), "ur-funny", ["video"])


# ------------------------------------------------------------------------------------------------- MIMIC
def test_mimic_split_zscore_and_tasks(tmp_path: Path) -> None:
    n = 160
    content = write_mimic(tmp_path, n)
    data = load_mimic(str(tmp_path / "im.pk"))
    # the published split: the public loader shuffles its samples after random.seed(10)
    random.seed(10)
    order = list(range(n))
    random.shuffle(order)
    parts = {"val": order[: n // 10], "test": order[n // 10 : n // 5], "train": order[n // 5 :]}
    icd = (content["y_icd9"][:, 7] > 0).astype(np.int64)
    statics = []
    for name, rows in parts.items():
        part = getattr(data, name)
        assert part is not None and len(part) == len(rows)
        batch = part.get_batch(torch.arange(len(rows)))
        assert part.task_names == ["icd9_7", "mortality"] and part.task_type == "multiclass"
        assert torch.equal(
            batch.labels, torch.from_numpy(np.stack([icd[rows], content["mortality"][rows]], 1))
        )
        assert part.modality_specs[0].kind == "vector" and part.modality_specs[1].shape == (24, 12)
        assert all(bool(torch.isfinite(x).all()) for x in batch.inputs)
        statics.append(batch.inputs[0])
    static = torch.cat(statics)  # z-scored over all N samples, per feature
    assert torch.allclose(static.mean(0), torch.zeros(5), atol=1e-5)
    assert torch.allclose(static.std(0, unbiased=False), torch.ones(5), atol=1e-4)
    only = load_mimic(str(tmp_path), ["vitals"], ["mortality", "icd9_3"])
    assert [s.name for s in only.train.modality_specs] == ["vitals"] and only.train.task_names == [
        "mortality",
        "icd9_3",
    ]
    with pytest.raises(ConfigError, match="MIMIC task 'death' is unknown"):
        load_mimic(str(tmp_path), tasks=["death"])


# ------------------------------------------------------------------------------------------ Vision&Touch
def test_vision_touch_split_samples_and_lazy_images(tmp_path: Path) -> None:
    episodes = write_vision_touch(tmp_path, n_files=5)
    data = load_vision_touch(str(tmp_path))  # the folder holding triangle_real_data/
    order = np.arange(5)
    np.random.default_rng(42).shuffle(order)
    train_files, test_files = order[:4], order[4:]
    assert isinstance(data.train, VisionTouchEpisodes) and isinstance(data.test, VisionTouchEpisodes)
    assert [f.name for f in data.train.files] == [f"episode_{k:03d}.h5" for k in train_files]
    assert [f.name for f in data.test.files] == [f"episode_{k:03d}.h5" for k in test_files]
    assert (len(data.train), len(data.test)) == (4 * (STEPS - 1), STEPS - 1) and data.val is None
    assert [(s.name, s.kind, s.shape) for s in data.train.modality_specs] == [
        ("image", "image", (3, 128, 128)),
        ("force", "sequence", (32, 6)),
        ("proprio", "vector", (8,)),
    ]
    index = torch.tensor([STEPS - 1 + 7, 3, STEPS - 2, 3 * (STEPS - 1) + 20])  # (episode, step) pairs
    batch = data.train.get_batch(index)
    image, force, proprio = batch.inputs
    assert image.dtype == torch.uint8 and batch.padding == [None, None, None]
    for row, (slot, t) in enumerate([(1, 7), (0, 3), (0, STEPS - 2), (3, 20)]):
        ep = episodes[train_files[slot]]
        np.testing.assert_array_equal(image[row].permute(1, 2, 0).numpy(), ep["image"][t])
        np.testing.assert_allclose(
            force[row].numpy(), np.tanh(ep["ee_forces_continuous"][t][-32:]), rtol=1e-6
        )
        np.testing.assert_allclose(proprio[row].numpy(), ep["proprio"][t][:8], rtol=1e-6)
        assert batch.labels is not None
        np.testing.assert_allclose(batch.labels[row].numpy(), ep["proprio"][t + 1][:4], rtol=1e-6)
    assert data.train.task_type == "regression" and data.train.task_names == ["ee_yaw_next"]
    assert len(data.train._handles) == 3 <= MAX_OPEN_FILES  # images read lazily from three episodes
    clone = pickle.loads(pickle.dumps(data.train))  # handles never travel to another process
    assert clone._handles == {} and torch.equal(clone.get_batch(index).inputs[0], image)
    data.train.close()

    contact = load_vision_touch(
        str(tmp_path / "triangle_real_data"), ["proprio", "image"], "contact_next", image_size=32
    )
    batch = contact.test.get_batch(torch.arange(STEPS - 1))  # type: ignore[union-attr]
    ep = episodes[test_files[0]]
    want = (ep["contact"][1:].sum(axis=1) > 0).astype(np.int64)
    assert batch.labels is not None and np.array_equal(batch.labels.numpy(), want)
    assert batch.inputs[1].shape == (STEPS - 1, 3, 32, 32) and batch.inputs[1].dtype == torch.uint8
    assert contact.train.task_type == "multiclass" and contact.train.task_names == ["contact_next"]


# ------------------------------------------------------------------------------------------------ MM-IMDb
def test_mmimdb_hdf5_split_labels_and_scaling(tmp_path: Path) -> None:
    raw = write_mmimdb(tmp_path)
    data = load_mmimdb_hdf5(str(tmp_path), split_sizes=MMIMDB_SIZES)
    bounds = np.cumsum([0, *MMIMDB_SIZES])
    for k, part in enumerate((data.train, data.val, data.test)):
        assert part is not None and len(part) == MMIMDB_SIZES[k]
        batch = part.get_batch(torch.arange(len(part)))
        assert batch.labels is not None
        assert np.array_equal(
            batch.labels.numpy(), raw["genres"][bounds[k] : bounds[k + 1]].astype(np.float32)
        )
        assert part.task_type == "multilabel" and part.task_names == list(GENRES)
    assert [(s.name, s.shape) for s in data.train.modality_specs] == [("image", (4096,)), ("text", (300,))]
    train = data.train.get_batch(torch.arange(MMIMDB_SIZES[0])).inputs
    assert all(torch.allclose(x.mean(0), torch.zeros(x.shape[1]), atol=1e-4) for x in train)
    raw_text = load_mmimdb_hdf5(str(tmp_path), ["text"], MMIMDB_SIZES, standardize=False)
    text = raw_text.test.get_batch(torch.arange(2)).inputs[0]  # type: ignore[union-attr]
    np.testing.assert_array_equal(text.numpy(), raw["features"][bounds[2] : bounds[2] + 2])


# ----------------------------------------------------------------------------------- fit + probe via CLI
def _fit_and_probe(tmp_path: Path, preset: str, root: Path, *extra: str) -> dict[str, Any]:
    run = tmp_path / f"run-{preset}"
    args = ["fit", "--config", preset, f"data.root={root}", *TINY, *extra, f"trainer.output={run}"]
    assert main(args) == 0
    scores = tmp_path / f"{preset}.json"
    assert (
        main(["probe", "--checkpoint", str(run / "checkpoints" / "last.ckpt"), "--output", str(scores)]) == 0
    )
    return json.loads(scores.read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "preset,metric",
    [
        ("mosi", "balanced_accuracy"),
        ("mosei", "balanced_accuracy"),
        ("ur-funny", "balanced_accuracy"),
        ("mustard", "balanced_accuracy"),
    ],
)
def test_affect_presets_fit_and_probe(tmp_path: Path, preset: str, metric: str) -> None:
    write_affect(tmp_path / "data", preset)
    scores = _fit_and_probe(tmp_path, preset, tmp_path / "data")
    (result,) = scores.values()
    assert result["metric"] == metric and 0.0 <= result["score"] <= 100.0


def test_mimic_vision_touch_mmimdb_presets_fit_and_probe(tmp_path: Path) -> None:
    write_mimic(tmp_path / "mimic")
    scores = _fit_and_probe(tmp_path, "mimic", tmp_path / "mimic" / "im.pk")
    assert set(scores) == {"icd9_7", "mortality"}
    write_vision_touch(tmp_path / "vt", n_files=5, size=32)
    small_cnn = "model.image_channels=[8, 8, 8]"
    scores = _fit_and_probe(tmp_path, "vision-touch", tmp_path / "vt", small_cnn)
    assert scores["ee_yaw_next"]["metric"] == "mse"
    scores = _fit_and_probe(tmp_path, "vision-touch-contact", tmp_path / "vt", small_cnn)
    assert scores["contact_next"]["metric"] == "balanced_accuracy"
    write_mmimdb(tmp_path / "imdb")
    sizes = f"data.options.split_sizes=[{', '.join(map(str, MMIMDB_SIZES))}]"
    scores = _fit_and_probe(tmp_path, "mm-imdb", tmp_path / "imdb", sizes)
    assert scores["multilabel"]["metric"] == "weighted_f1"


# ------------------------------------------------------------------------------------------------ errors
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _rewrite_pickle(path: Path, change: Any) -> None:
    content = pickle.loads(path.read_bytes())
    change(content)
    path.write_bytes(pickle.dumps(content))


def _rewrite_h5(path: Path, change: Any) -> None:
    import h5py

    with h5py.File(path, "a") as f:
        change(f)


def _flatten_text(c: dict[str, Any]) -> None:
    c["train"]["text"] = c["train"]["text"].reshape(len(c["train"]["text"]), -1)


def _image_without_channels(f: Any) -> None:
    image = f["image"][()]
    del f["image"]
    f.create_dataset("image", data=image[..., 0])


def _replace(f: Any, key: str, value: np.ndarray) -> None:
    del f[key]
    f.create_dataset(key, data=value)


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("true",))


ERROR_CASES = [
    # (preset, writer, file below the data folder, how to damage it, expected parts of the one-line message)
    ("mosi", "affect", None, None, ["data.root is not set", "mosi_data.pkl"]),
    ("mosi", "affect", "mosi_data.pkl", "delete", ["mosi_data.pkl not found", "mosi file mosi_data.pkl"]),
    (
        "mosi",
        "affect",
        "mosi_data.pkl",
        lambda c: c.pop("valid"),
        ["has no key 'valid'", "keys train, valid, test"],
    ),
    ("mosi", "affect", "mosi_data.pkl", _flatten_text, ["train/text has shape (64, 15000)", "(N, T, 300)"]),
    (
        "mosi",
        "affect",
        "mosi_data.pkl",
        "truncate",
        ["mosi_data.pkl is truncated or not a pickle", "train, valid"],
    ),
    (
        "mosi",
        "affect",
        "mosi_data.pkl",
        lambda c: c.update(x=_Evil()),
        ["refers to posix.system", "numpy arrays"],
    ),
    (
        "ur-funny",
        "affect",
        "humor.pkl",
        lambda c: c["test"].pop("labels"),
        ["test has no key 'labels'", "labels"],
    ),
    ("mimic", "mimic", None, None, ["data.root is not set", "im.pk"]),
    ("mimic", "mimic", "im.pk", lambda c: c.pop("y_icd9"), ["im.pk has no key 'y_icd9'", "y_icd9 (N, ≥20)"]),
    (
        "mimic",
        "mimic",
        "im.pk",
        lambda c: c.update(adm_features_all=c["adm_features_all"][:5]),
        ["has 5 rows", "(N, 5)"],
    ),
    ("mimic", "mimic", "im.pk", "truncate", ["im.pk is truncated or not a pickle", "ep_tdata (N, 24, 12)"]),
    ("vision-touch", "vt", None, None, ["data.root is not set", "triangle_real_data"]),
    ("vision-touch", "vt", "triangle_real_data", "empty", ["no .h5 files in", "triangle_real_data/*.h5"]),
    (
        "vision-touch",
        "vt",
        "triangle_real_data/episode_002.h5",
        lambda f: f.pop("proprio"),
        ["no dataset 'proprio'"],
    ),
    (
        "vision-touch",
        "vt",
        "triangle_real_data/episode_001.h5",
        _image_without_channels,
        ["image has shape (50, 16, 16)", "expected (L=50, H, W, 3) uint8"],
    ),
    (
        "vision-touch",
        "vt",
        "triangle_real_data/episode_004.h5",
        lambda f: _replace(f, "proprio", np.full((50, 8), np.nan)),
        ["episode_004.h5: proprio holds NaN or Inf"],
    ),
    (
        "vision-touch",
        "vt",
        "triangle_real_data/episode_003.h5",
        "truncate",
        ["episode_003.h5: truncated", "Vision&Touch episode"],
    ),
    ("mm-imdb", "imdb", None, None, ["data.root is not set", "multimodal_imdb.hdf5"]),
    (
        "mm-imdb",
        "imdb",
        "multimodal_imdb.hdf5",
        lambda f: f.pop("genres"),
        ["no dataset 'genres'", "genres (N, 23)"],
    ),
    (
        "mm-imdb",
        "imdb",
        "multimodal_imdb.hdf5",
        lambda f: _replace(f, "genres", f["genres"][:, :22]),
        ["genres has shape (72, 22)", "expected (N, 23) multi-hot"],
    ),
    (
        "mm-imdb",
        "imdb",
        "multimodal_imdb.hdf5",
        "truncate",
        ["multimodal_imdb.hdf5: truncated", "genres (N, 23)"],
    ),
]


@pytest.mark.parametrize("preset,writer,target,damage,parts", ERROR_CASES)
def test_bad_files_give_one_line_naming_the_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    preset: str,
    writer: str,
    target: str | None,
    damage: Any,
    parts: list[str],
) -> None:
    folder = tmp_path / "data"
    {
        "affect": lambda: write_affect(folder, preset),
        "mimic": lambda: write_mimic(folder),
        "vt": lambda: write_vision_touch(folder, n_files=5, size=16),
        "imdb": lambda: write_mmimdb(folder),
    }[writer]()
    args = ["fit", "--config", preset, *TINY, f"trainer.output={tmp_path / 'run'}"]
    if preset == "mm-imdb":
        args.append(f"data.options.split_sizes=[{', '.join(map(str, MMIMDB_SIZES))}]")
    if target is not None:
        path = folder / target
        if damage == "delete":
            path.unlink()
        elif damage == "truncate":
            _truncate(path)
        elif damage == "empty":
            for f in path.glob("*.h5"):
                f.unlink()
        elif path.suffix in (".h5", ".hdf5"):
            _rewrite_h5(path, damage)
        else:
            _rewrite_pickle(path, damage)
        args.append(f"data.root={folder}")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for part in parts:
        assert part in err, err
    assert not (tmp_path / "run").exists()  # nothing written before the data is read


def test_published_loaders_are_registered_with_their_options() -> None:
    from commlearn.data.registry import dataset_options

    for name in ("mosi", "mosei", "ur-funny", "mustard"):
        assert dataset_options(name) == {"modalities": None, "task": "binary"}
    assert dataset_options("mimic") == {"modalities": None, "tasks": None}
    assert dataset_options("vision-touch")["force_window"] == 32
    with pytest.raises(ConfigError, match="unknown option\\(s\\) \\['split'\\] for data set 'mimic'"):
        build_data(DataConfig(name="mimic", root="x", options={"split": "a"}), 0)
    assert AFFECT_FILES["ur-funny"] == "humor.pkl"
