"""Image + text data sets read from their published files, with images kept on disk (DESIGN.md sections 7, 11).

MM-IMDb's JSON + JPEG release and Hateful Memes, written small in their layouts with a planted signal (the label
decides the image's colour and a word of the text): splits, ids, labels, multi-hot order, token ids and padding
masks; the disk-backed batches against the files decoded directly; the training loader's workers, resume and
one-line errors (also from a worker mid-epoch); CoMM a few steps through ``commlearn fit`` and a probe of the
test split through ``commlearn probe``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from commlearn.cli import main
from commlearn.data.hateful_memes import load_hateful_memes
from commlearn.data.images import FileImageDataset
from commlearn.data.loader import BatchLoader
from commlearn.data.mmimdb import GENRES, load_mmimdb_raw
from commlearn.data.text import UNKNOWN_ID, WordVocabulary, tokenize_splits, words

Image = pytest.importorskip("PIL.Image")

TINY = [
    "trainer.max_steps=3",
    "data.batch_size=8",
    "trainer.progress_bar=false",
    "trainer.log_every_n_steps=1",
    "model.embed_dim=16",
    "model.n_heads=2",
    "model.head_hidden=[32]",
    "model.head_out=16",
    "model.sequence_dim=16",
    "model.image_channels=[8, 8]",
    "data.options.image_size=16",
    "data.options.max_length=8",
    "data.options.vocab_size=64",
    "model.vocab_size=64",
    "data.options.num_workers=1",
]
IMDB_SIZES = {"train": 24, "dev": 8, "test": 12}
MEME_SIZES = {"train.jsonl": 24, "dev_seen.jsonl": 8, "test_seen.jsonl": 12}
FILLER = "the a of and to in is it that on was for with as his her they at by from".split()
RED, BLUE = (200, 30, 30), (30, 30, 200)


def _picture(
    rng: np.random.Generator, colour: tuple[int, int, int], w: int, h: int, smooth: bool = False
) -> np.ndarray:
    """(h, w, 3) uint8: ``colour`` (the planted signal) with noise, or with smooth ramps (``smooth``)."""
    if smooth:
        y, x = np.mgrid[0:h, 0:w]
        noise = np.stack([40 * x / w, 40 * y / h, 20 * (x + y) / (w + h)], axis=-1) - 20
    else:
        noise = rng.integers(-20, 21, size=(h, w, 3))
    return np.clip(np.array(colour)[None, None] + noise, 0, 255).astype(np.uint8)


def _text(rng: np.random.Generator, word: str, n: int) -> str:
    parts = [str(w) for w in rng.choice(FILLER, size=n)]
    parts.insert(int(rng.integers(0, n + 1)), word)
    return " ".join(parts).capitalize() + "."


def write_mmimdb_raw(
    root: Path, seed: int = 0, w: int = 20, h: int = 30, smooth: bool = False
) -> dict[str, Any]:
    """split.json + dataset/<id>.json|.jpeg; drama decides the colour and a word of the first plot."""
    rng = np.random.default_rng(seed)
    folder = root / "dataset"
    folder.mkdir(parents=True)
    split: dict[str, list[str]] = {}
    films: dict[str, dict[str, Any]] = {}
    k = 0
    for name, n in IMDB_SIZES.items():
        split[name] = []
        for _ in range(n):
            film = f"{k:07d}"
            k += 1
            drama = bool(rng.integers(0, 2))
            genres = ["Drama"] if drama else ["Action"]
            genres += [str(g) for g in rng.choice(["Sci-Fi", "Film-Noir", "Comedy", "News"], size=1)]
            word = "tears" if drama else "explosion"
            plot = [_text(rng, word, int(rng.integers(3, 12))), "A second summary nobody reads."]
            if name == "test" and k % 3 == 0:
                plot[0] += " zyzzyva"  # a word only the test split holds: unknown to the vocabulary
            doc = {"plot": plot, "genres": genres, "title": f"Film {k}", "cast": []}
            (folder / f"{film}.json").write_text(json.dumps(doc))
            pixels = _picture(rng, RED if drama else BLUE, w, h, smooth)
            Image.fromarray(pixels).save(folder / f"{film}.jpeg", quality=95)
            split[name].append(film)
            films[film] = {"genres": genres, "plot": plot, "drama": drama}
    (root / "split.json").write_text(json.dumps(split))
    return {"split": split, "films": films}


def write_memes(root: Path, seed: int = 0, w: int = 20, h: int = 16) -> dict[str, list[dict[str, Any]]]:
    """img/<id>.png + train/dev_seen/test_seen.jsonl; the label decides the colour and a word of the text."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True)
    out: dict[str, list[dict[str, Any]]] = {}
    k = 10_000
    for name, n in MEME_SIZES.items():
        rows = []
        for _ in range(n):
            k += 7
            label = int(rng.integers(0, 2))
            pixels = _picture(rng, RED if label else BLUE, w, h)
            Image.fromarray(pixels).save(root / "img" / f"{k}.png")
            text = _text(rng, "hate" if label else "love", int(rng.integers(2, 10)))
            rows.append({"id": k, "img": f"img/{k}.png", "label": label, "text": text, "pixels": pixels})
        lines = [json.dumps({key: v for key, v in r.items() if key != "pixels"}) for r in rows]
        (root / name).write_text("\n".join(lines) + "\n")
        out[name] = rows
    return out


# ------------------------------------------------------------------------------------------------ loading
def test_mmimdb_raw_splits_labels_and_tokens(tmp_path: Path) -> None:
    written = write_mmimdb_raw(tmp_path)
    data = load_mmimdb_raw(str(tmp_path), image_size=16, max_length=8, vocab_size=64, min_count=1)
    assert data.val is not None and data.test is not None and data.probe_train is None
    vocab = WordVocabulary([written["films"][f]["plot"][0] for f in written["split"]["train"]], 64)
    for part, key in ((data.train, "train"), (data.val, "dev"), (data.test, "test")):
        films = written["split"][key]
        assert isinstance(part, FileImageDataset) and len(part) == IMDB_SIZES[key]
        assert part.ids is not None and list(part.ids) == films
        assert part.task_type == "multilabel" and part.task_names == list(GENRES)
        batch = part.get_batch(torch.arange(len(part)))
        image, text = batch.inputs
        assert image.shape == (len(part), 3, 16, 16) and image.dtype == torch.uint8
        assert text.shape == (len(part), 8) and text.dtype == torch.int64
        assert batch.padding[0] is None and batch.padding[1] is not None
        assert batch.labels is not None and batch.labels.dtype == torch.float32
        for row, film in enumerate(films):
            info = written["films"][film]
            want = np.zeros(len(GENRES), np.float32)  # News is not one of the 23 genres
            for g in info["genres"]:
                if g.lower() in GENRES:
                    want[GENRES.index(g.lower())] = 1.0
            assert np.array_equal(batch.labels[row].numpy(), want)
            assert (
                want[GENRES.index("sci-fi")] + want[GENRES.index("film-noir")] + want[GENRES.index("comedy")]
                <= 1.0
            )
            plot_words = words(info["plot"][0])  # the first summary only
            n = min(len(plot_words), 8)
            assert batch.padding[1][row].tolist() == [False] * n + [True] * (8 - n)
            assert text[row, :n].tolist() == [vocab.ids.get(w, UNKNOWN_ID) for w in plot_words[:n]]
            red = image[row, 0].float().mean() > image[row, 2].float().mean()
            assert bool(red) == info["drama"]
    assert "zyzzyva" not in vocab.ids  # the vocabulary comes from the train split only
    again = load_mmimdb_raw(str(tmp_path), image_size=16, max_length=8, vocab_size=64, min_count=1)
    assert torch.equal(again.test.inputs[1], data.test.inputs[1])  # type: ignore[union-attr]
    only_text = load_mmimdb_raw(str(tmp_path), ["text"], max_length=4)
    assert [s.name for s in only_text.train.modality_specs] == ["text"]


def test_word_vocabulary_order_cap_and_min_count() -> None:
    vocab = WordVocabulary(["b b b a a c", "A c d_e"], vocab_size=5, min_count=2)
    assert vocab.ids == {"a": 2, "b": 3, "c": 4}  # counts 3, 3, 2: ties alphabetically; d, e seen once
    ids, pad = vocab.encode(["B, x!", "", "a a a a a a"], max_length=4)
    assert ids.tolist() == [[3, UNKNOWN_ID, 0, 0], [UNKNOWN_ID, 0, 0, 0], [2, 2, 2, 2]]
    assert pad.tolist() == [[False, False, True, True], [False, True, True, True], [False] * 4]
    _, (test_ids, _) = tokenize_splits([["x y"], ["y z"]], 3, vocab_size=10)  # the first split: train
    assert test_ids.tolist() == [[3, UNKNOWN_ID, 0]]


def test_hateful_memes_split_labels_and_pixels(tmp_path: Path) -> None:
    written = write_memes(tmp_path)
    data = load_hateful_memes(str(tmp_path), ["text", "image"], image_size=16, max_length=6)
    for part, name in (
        (data.train, "train.jsonl"),
        (data.val, "dev_seen.jsonl"),
        (data.test, "test_seen.jsonl"),
    ):
        rows = written[name]
        assert isinstance(part, FileImageDataset) and len(part) == len(rows)
        assert list(part.ids) == [r["id"] for r in rows]  # type: ignore[arg-type]
        assert part.task_type == "multiclass" and part.task_names == ["hateful"]
        batch = part.get_batch(torch.arange(len(part)).flip(0))
        assert batch.labels is not None and batch.labels.tolist() == [r["label"] for r in rows][::-1]
        text, image = batch.inputs
        for row, r in enumerate(rows[::-1]):
            # PNG is lossless and 20 × 16 → 16 × 16 needs no resize: the centre columns exactly as written
            assert np.array_equal(image[row].permute(1, 2, 0).numpy(), r["pixels"][:, 2:18])
            assert batch.padding[0] is not None
            assert int((~batch.padding[0][row]).sum()) == min(len(words(r["text"])), 6)


def test_disk_batches_equal_the_files_decoded_directly(tmp_path: Path) -> None:
    """JPEG posters: the data set's batch against Pillow's decode of each file and torch's antialiased resize."""
    written = write_mmimdb_raw(tmp_path, w=40, h=60, smooth=True)
    data = load_mmimdb_raw(str(tmp_path), ["image"], image_size=20, num_workers=0)
    index = torch.tensor([5, 0, 17, 3])
    got = data.train.get_batch(index).inputs[0]
    for row, i in enumerate(index.tolist()):
        film = written["split"]["train"][i]
        with Image.open(tmp_path / "dataset" / f"{film}.jpeg") as img:
            full = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).float()
        small = F.interpolate(full[None], size=(30, 20), mode="bilinear", antialias=True, align_corners=False)
        want = small[0, :, 5:25, :].round().clamp(0, 255)  # shorter side 40 → 20, centre 20 rows of 30
        diff = (got[row].float() - want).abs()
        assert diff.mean() < 1.0 and diff.max() <= 6, (diff.mean(), diff.max())
    assert torch.equal(got, data.train.get_batch(index).inputs[0])  # decoding is deterministic


def test_training_loader_workers_give_the_same_batches_and_resume(tmp_path: Path) -> None:
    write_memes(tmp_path)
    data = load_hateful_memes(str(tmp_path), image_size=16, max_length=6, num_workers=1)
    assert isinstance(data.train, FileImageDataset)
    loader = data.train.training_loader(batch_size=4, seed=3)
    assert isinstance(loader, BatchLoader) and loader.num_workers == 1 and len(loader) == 6
    reference = BatchLoader(data.train, 4, shuffle=True, drop_last=True, seed=3)  # decoded here
    for epoch in range(2):
        for a, b in zip(loader, reference, strict=True):
            assert torch.equal(a.inputs[0], b.inputs[0]) and torch.equal(a.inputs[1], b.inputs[1])
            assert a.labels is not None and b.labels is not None and torch.equal(a.labels, b.labels)
        assert loader.epoch == reference.epoch == epoch + 1
    # stopped after 2 batches of epoch 2, resumed by a new loader: the remaining 4 batches are the same
    it = iter(loader)
    seen = [next(it) for _ in range(2)]
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": 2}
    rest = list(it)
    resumed = data.train.training_loader(batch_size=4, seed=3)
    resumed.load_state_dict(state)
    again = list(resumed)
    assert len(seen) + len(again) == 6 and len(again) == len(rest)
    for a, b in zip(again, rest, strict=True):
        assert torch.equal(a.inputs[0], b.inputs[0]) and torch.equal(a.inputs[1], b.inputs[1])


def test_each_process_decodes_its_share_of_every_global_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes with batches of 4 see the two halves of one process's batches of 8 (BatchLoader's rule)."""
    from commlearn import dist

    write_memes(tmp_path)
    data = load_hateful_memes(str(tmp_path), ["image"], image_size=16, num_workers=1)
    assert isinstance(data.train, FileImageDataset)
    whole = [b.inputs[0] for b in BatchLoader(data.train, 8, seed=5)]  # one process, decoded here
    monkeypatch.setattr(dist, "world_size", lambda: 2)
    halves = []
    for r in (0, 1):
        monkeypatch.setattr(dist, "rank", lambda r=r: r)
        halves.append([b.inputs[0] for b in data.train.training_loader(4, seed=5)])  # decoded by a worker
    assert len(halves[0]) == len(halves[1]) == len(whole) == 3
    for k, images in enumerate(whole):
        assert halves[0][k].shape == (4, 3, 16, 16)
        assert torch.equal(torch.cat([halves[0][k], halves[1][k]]), images)


class _Killed(Exception):
    """Stands for the process being killed."""


def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker decodes the images; the loader's position travels in the checkpoint (3 steps per epoch)."""
    from commlearn.config import load_config
    from commlearn.methods.base import BaseMethod
    from commlearn.train import fit, read_checkpoint

    write_memes(tmp_path / "memes")

    def run(folder: str) -> dict[str, torch.Tensor]:
        extra = [f"data.root={tmp_path / 'memes'}", *TINY, "trainer.max_steps=-1", "trainer.max_epochs=2"]
        # no schedule: with warm-up or cosine, configure_optimizers reads trainer.estimated_stepping_batches,
        # which makes Lightning build the train loader before the checkpoint's loader state is restored, and a
        # resumed run restarts the epoch's batches (train.py / methods, any data set; reported, not fixed here)
        extra += ["method.scheduler=none", "method.warmup_epochs=0"]
        extra += ["trainer.checkpoint_every_n_steps=4", f"trainer.output={tmp_path / folder}"]
        fit(load_config("hateful-memes", extra))
        return read_checkpoint(tmp_path / folder / "checkpoints" / "last.ckpt")["state_dict"]  # type: ignore[no-any-return]

    whole = run("whole")
    step = BaseMethod.training_step

    def dies(self: BaseMethod, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.trainer.global_step == 4:  # one step into the second epoch
            raise _Killed
        return step(self, batch, batch_idx)

    monkeypatch.setattr(BaseMethod, "training_step", dies)
    with pytest.raises(_Killed):
        run("killed")
    monkeypatch.setattr(BaseMethod, "training_step", step)
    resumed = run("killed")
    assert whole.keys() == resumed.keys()
    for key in whole:
        torch.testing.assert_close(
            resumed[key], whole[key], atol=1e-6, rtol=0, msg=lambda m, k=key: f"{k}: {m}"
        )


# ---------------------------------------------------------------------------------------- fit and probe
def _fit_and_probe(tmp_path: Path, preset: str, root: Path, *extra: str) -> dict[str, Any]:
    run = tmp_path / f"run-{preset}"
    args = ["fit", "--config", preset, f"data.root={root}", *TINY, *extra, f"trainer.output={run}"]
    assert main(args) == 0
    scores = tmp_path / f"{preset}.json"
    assert (
        main(["probe", "--checkpoint", str(run / "checkpoints" / "last.ckpt"), "--output", str(scores)]) == 0
    )
    return json.loads(scores.read_text())  # type: ignore[no-any-return]


def test_presets_fit_and_probe_the_test_split(tmp_path: Path) -> None:
    write_mmimdb_raw(tmp_path / "imdb")
    scores = _fit_and_probe(tmp_path, "mm-imdb-raw", tmp_path / "imdb")
    assert scores["multilabel"]["metric"] == "weighted_f1" and "macro_f1" in scores["multilabel"]["extra"]
    write_memes(tmp_path / "memes")
    scores = _fit_and_probe(tmp_path, "hateful-memes", tmp_path / "memes")
    result = scores["hateful"]
    assert result["metric"] == "balanced_accuracy" and set(result["extra"]) >= {"accuracy", "auroc"}
    assert result["extra"]["auroc"] > 75.0, result  # the colour and the word give the label away


# ------------------------------------------------------------------------------------------------ errors
def _damage_imdb(root: Path, how: str) -> None:
    film = root / "dataset" / "0000003"
    if how == "no split":
        (root / "split.json").unlink()
    elif how == "no json":
        film.with_suffix(".json").unlink()
    elif how == "no poster":
        film.with_suffix(".jpeg").unlink()
    elif how == "no genres":
        film.with_suffix(".json").write_text(json.dumps({"plot": ["x"]}))
    elif how == "plot shape":
        film.with_suffix(".json").write_text(json.dumps({"plot": 3, "genres": ["Drama"]}))
    elif how == "bad json":
        film.with_suffix(".json").write_text('{"plot": ["x"], "genres": ')
    elif how == "bad split":
        (root / "split.json").write_text(json.dumps({"train": "0000001", "dev": [], "test": []}))


def _damage_memes(root: Path, how: str) -> None:
    if how == "bad line":
        with (root / "dev_seen.jsonl").open("a") as f:
            f.write('{"id": 1, "img": "img/1.png", \n')
    elif how == "bad label":
        lines = (root / "train.jsonl").read_text().splitlines()
        first = json.loads(lines[0])
        first["label"] = 2
        (root / "train.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]))
    elif how == "no test file":
        (root / "test_seen.jsonl").unlink()
    elif how == "no image":
        first = json.loads((root / "train.jsonl").read_text().splitlines()[0])
        (root / first["img"]).unlink()


ERROR_CASES = [
    ("mm-imdb-raw", "no split", ["split.json not found", "mm-imdb-raw file split.json"]),
    ("mm-imdb-raw", "no json", ["0000003.json not found", "plot (a list of strings)"]),
    ("mm-imdb-raw", "no poster", ["0000003.jpeg not found", "its poster"]),
    ("mm-imdb-raw", "no genres", ["0000003.json has no key 'genres'", "genres (a list of strings)"]),
    ("mm-imdb-raw", "plot shape", ["0000003.json: plot is a int, expected a list of strings"]),
    ("mm-imdb-raw", "bad json", ["cannot read", "0000003.json: truncated or not JSON"]),
    ("mm-imdb-raw", "bad split", ["split.json: train is not a non-empty list of film ids"]),
    ("hateful-memes", "bad line", ["dev_seen.jsonl line 9 is not valid JSON", "one JSON object per line"]),
    ("hateful-memes", "bad label", ["train.jsonl sample 1: label 2", "expected label 0 or 1"]),
    ("hateful-memes", "no test file", ["test_seen.jsonl not found", "Hateful Memes file"]),
    ("hateful-memes", "no image", [".png not found", "train.jsonl sample 1 names it as its image"]),
]


@pytest.mark.parametrize("preset,how,parts", ERROR_CASES)
def test_bad_files_give_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], preset: str, how: str, parts: list[str]
) -> None:
    folder = tmp_path / "data"
    if preset == "mm-imdb-raw":
        write_mmimdb_raw(folder)
        _damage_imdb(folder, how)
    else:
        write_memes(folder)
        _damage_memes(folder, how)
    capsys.readouterr()
    args = ["fit", "--config", preset, f"data.root={folder}", *TINY, f"trainer.output={tmp_path / 'run'}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for part in parts:
        assert part in err, err
    assert not (tmp_path / "run").exists()  # nothing written before the data is read


@pytest.mark.parametrize("image", ["jpeg", "png"])
def test_a_corrupt_image_found_by_a_worker_mid_epoch_gives_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], image: str
) -> None:
    """The files exist when the data is built; a worker meets the damaged one while training."""
    folder = tmp_path / "data"
    if image == "jpeg":
        written = write_mmimdb_raw(folder)
        bad = folder / "dataset" / f"{written['split']['train'][0]}.jpeg"
        bad.write_bytes(bad.read_bytes()[:200])  # truncated after the headers
        preset = "mm-imdb-raw"
    else:
        write_memes(folder)
        first = json.loads((folder / "train.jsonl").read_text().splitlines()[0])
        bad = folder / first["img"]
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG signature, then garbage
        preset = "hateful-memes"
    run = tmp_path / "run"
    args = ["fit", "--config", preset, f"data.root={folder}", *TINY, "trainer.max_epochs=1",
            "trainer.max_steps=-1", f"trainer.output={run}"]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot decode {bad}: truncated or not an image") and "\n" not in err, err
    assert "expected a JPEG or PNG file" in err and "worker" not in err, err


# ------------------------------------------------------------------------------------------ tokenizer
def test_a_local_hugging_face_tokenizer(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers", reason="the tokenizer option needs transformers")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hate", "love", *FILLER]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(str(tmp_path / "tok"))
    write_memes(tmp_path / "memes")
    data = load_hateful_memes(
        str(tmp_path / "memes"), ["text"], max_length=10, tokenizer=str(tmp_path / "tok")
    )
    batch = data.train.get_batch(torch.arange(4))
    ids, pad = batch.inputs[0], batch.padding[0]
    assert pad is not None and ids.shape == (4, 10) and ids.dtype == torch.int64
    assert (ids[:, 0] == vocab.index("[CLS]")).all() and torch.equal(pad, ids == vocab.index("[PAD]"))
