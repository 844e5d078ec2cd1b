"""Small files in the published formats of the real-world data sets (DESIGN.md section 11), with planted signals.

Shared by the real-data tests; each writer returns what the loader should find.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

AFFECT_DIMS = {"mosi": (20, 5), "mosei": (35, 74), "ur-funny": (371, 81), "mustard": (371, 81)}
AFFECT_FILES = {
    "mosi": "mosi_data.pkl",
    "mosei": "mosei_senti_data.pkl",
    "ur-funny": "humor.pkl",
    "mustard": "sarcasm.pkl",
}
AFFECT_SIZES = {"train": 64, "valid": 24, "test": 32}
STEPS = 50


def affect_split(
    n: int, d_v: int, d_a: int, regression: bool, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """One split: sequences zero-padded at the front (random lengths 5..50), the label planted in the text and
    vision features; the last two samples have all-zero text (the loader drops them); audio holds -inf."""
    lengths = rng.integers(5, STEPS + 1, size=n)
    labels = rng.uniform(-3, 3, size=n) if regression else rng.integers(0, 2, size=n).astype(np.float64)
    sign = np.where(labels > 0, 1.0, -1.0)
    vision = np.zeros((n, STEPS, d_v), np.float32)
    audio = np.zeros((n, STEPS, d_a), np.float32)
    text = np.zeros((n, STEPS, 300), np.float32)
    for i, length in enumerate(lengths):
        real = slice(STEPS - length, STEPS)
        text[i, real] = rng.normal(size=(length, 300)) * 0.3
        text[i, real, 0] = 2.0 * sign[i]
        vision[i, real] = rng.normal(size=(length, d_v))
        vision[i, real, 0] += 2.0 * sign[i]
        audio[i, real] = rng.normal(size=(length, d_a))
        # vision/audio may hold values before the first word: the loader cuts them off
        vision[i, : STEPS - length] = 7.0
    audio[0, -1, 0] = -np.inf
    text[-2:] = 0.0
    label_array = labels.reshape(n, 1, 1) if regression else labels.reshape(n, 1)
    return {
        "vision": vision,
        "audio": audio,
        "text": text,
        "labels": label_array,
        "id": np.array([f"clip{i}" for i in range(n)]),
    }


def write_affect(folder: Path, dataset: str, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """``folder/<published name>`` for ``dataset``; returns the pickled content."""
    rng = np.random.default_rng(seed)
    d_v, d_a = AFFECT_DIMS[dataset]
    regression = dataset in ("mosi", "mosei")
    content = {key: affect_split(n, d_v, d_a, regression, rng) for key, n in AFFECT_SIZES.items()}
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / AFFECT_FILES[dataset], "wb") as f:
        pickle.dump(content, f)
    return content


def write_mimic(folder: Path, n: int = 160, seed: int = 0) -> dict[str, np.ndarray]:
    """``folder/im.pk``: ICD-9 group 7 planted in the vitals, mortality in the static features."""
    rng = np.random.default_rng(seed)
    icd = (rng.random((n, 20)) < 0.3).astype(np.float64)
    adm = np.zeros((n, 6))
    cls = rng.integers(0, 6, size=n)
    for i, c in enumerate(cls):
        if c > 0:
            adm[i, c:] = 1.0  # windows c..5 positive: the class is the first one
    vitals = rng.normal(size=(n, 24, 12)) * 3.0 + 10.0
    vitals[:, :, 0] += 4.0 * icd[:, 7:8]
    vitals[0, 0, 1] = np.nan
    vitals[1, 2, 3] = np.inf
    static = rng.normal(size=(n, 5)) * 2.0 + 5.0
    static[:, 0] += 3.0 * cls
    content = {"ep_tdata": vitals, "adm_features_all": static, "adm_labels_all": adm, "y_icd9": icd}
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "im.pk", "wb") as f:
        pickle.dump(content, f)
    return {**content, "mortality": cls}


def write_episode(
    path: Path, rng: np.random.Generator, length: int = STEPS, size: int = 128
) -> dict[str, np.ndarray]:
    """One Vision&Touch episode file with the published datasets; the next contact follows the force, the
    image brightness follows the proprioception."""
    import h5py

    proprio = rng.normal(size=(length, 8)).astype(np.float64)
    force = rng.normal(size=(length, 50, 6)) * 2.0
    contact = np.zeros((length, 50))
    contact[1:, 0] = force[:-1, -1, 0] > 1.0  # the next step's contact follows the last force reading
    image = np.clip(
        rng.normal(size=(length, size, size, 3)) * 20 + 128 + 40 * proprio[:, 0, None, None, None], 0, 255
    )
    data = {
        "image": image.astype(np.uint8),
        "depth_data": np.zeros((length, size, size, 1), np.float32),
        "optical_flow": np.zeros((length, size, size, 2), np.float32),
        "ee_forces_continuous": force,
        "proprio": proprio,
        "contact": contact,
        "action": rng.normal(size=(length, 4)),
        "ee_pos": rng.normal(size=(length, 3)),
        "ee_vel": rng.normal(size=(length, 3)),
        "ee_vel_ori": rng.normal(size=(length, 3)),
        "ee_ori": rng.normal(size=(length, 4)),
        "ee_yaw": rng.normal(size=(length, 4)),
        "ee_yaw_delta": rng.normal(size=(length, 4)),
        "joint_pos": rng.normal(size=(length, 7)),
        "joint_vel": rng.normal(size=(length, 7)),
    }
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            f.create_dataset(key, data=value)
    return data


def write_vision_touch(
    folder: Path, n_files: int = 5, seed: int = 0, size: int = 128
) -> list[dict[str, np.ndarray]]:
    """``folder/triangle_real_data/episode_<k>.h5``; returns the episodes in sorted file order."""
    rng = np.random.default_rng(seed)
    data_dir = folder / "triangle_real_data"
    data_dir.mkdir(parents=True, exist_ok=True)
    return [write_episode(data_dir / f"episode_{k:03d}.h5", rng, size=size) for k in range(n_files)]


MMIMDB_SIZES = (40, 12, 20)


def write_mmimdb(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """``folder/multimodal_imdb.hdf5`` with 72 films; genre k planted in text feature k and image feature k."""
    import h5py

    rng = np.random.default_rng(seed)
    n = sum(MMIMDB_SIZES)
    genres = (rng.random((n, 23)) < 0.3).astype(np.int8)
    genres[:, 0] = np.arange(n) % 2  # every split holds both values of genre 0
    text = rng.normal(size=(n, 300)).astype(np.float32)
    text[:, :23] += 3.0 * genres
    vgg = np.abs(rng.normal(size=(n, 4096))).astype(np.float32)
    vgg[:, :23] += 3.0 * genres
    data = {
        "features": text,
        "vgg_features": vgg,
        "genres": genres,
        "images": rng.integers(0, 255, size=(n, 3, 8, 5), dtype=np.uint8),
        "imdb_ids": np.array([f"tt{i:07d}".encode() for i in range(n)]),
    }
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / "multimodal_imdb.hdf5", "w") as f:
        for key, value in data.items():
            f.create_dataset(key, data=value)
    return data
