"""Pre-trained encoders from local files (``model.pretrained``): tiny randomly initialised Hugging Face models
saved to a temporary folder and loaded from there (outputs against the model's own, frozen vs trained, CoMM
end to end with a checkpoint that reloads), and the open_clip branch against a small stand-in module.

open_clip itself is not installed here: its package imports torchvision (a multi-GB wheel this project does
not depend on), so the open_clip tests put a fake ``open_clip`` module with the documented calls
(``create_model(name, pretrained=<file>)``, ``model.visual`` with ``output_tokens``, ``encode_text``) into
``sys.modules``. Nothing may touch the network: every test runs with ``HF_HUB_OFFLINE=1`` and sockets that
refuse to connect.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from commlearn.config import ConfigError, ModelConfig, RunConfig, load_config
from commlearn.data.base import ModalitySpec
from commlearn.nn.factory import build_fusion
from commlearn.nn.pretrained import (
    HFImageEncoder,
    HFTextEncoder,
    PretrainedEncoder,
    build_pretrained_encoder,
)
from commlearn.train import fit, load_run, make_method

transformers = pytest.importorskip("transformers")

MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.3, 0.25]
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "on", "mat", "ran"]
WORDS += [f"w{i}" for i in range(32 - len(WORDS))]  # ≥ 32 ids: the synthetic token modality's vocabulary


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def clip_vision(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLIP vision tower (32 px, 8 px patches → 1 + 16 tokens of width 16) and its preprocessing file."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clip_vision")
    config = transformers.CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
        patch_size=8,
    )  # fmt: skip
    transformers.CLIPVisionModel(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"crop_size": {"height": 32, "width": 32}, "image_mean": MEAN, "image_std": STD})
    )
    return folder


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT (vocabulary of 32, width 16) and its WordPiece tokenizer in one folder."""
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("bert")
    config = transformers.BertConfig(
        vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=32,
    )  # fmt: skip
    transformers.BertModel(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    transformers.BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def _reference_pixels(x: Tensor) -> Tensor:
    """uint8 images at the model's size → CLIP pixel values, normalised with the file's mean and std."""
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (x.double() / 255.0 - mean.double()) / std.double()


def test_hf_image_tokens_equal_the_models_own(clip_vision: Path) -> None:
    spec = ModalitySpec("poster", "image", (3, 32, 32))
    encoder = build_pretrained_encoder(spec, {"library": "hf", "path": str(clip_vision)})
    assert isinstance(encoder, HFImageEncoder) and encoder.out_dim == 16 and encoder.frozen
    reference = transformers.CLIPVisionModel.from_pretrained(clip_vision, local_files_only=True).eval()
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        want = reference(pixel_values=_reference_pixels(x).float())
    got = encoder(x)
    assert got.shape == (3, 17, 16)  # class token + 4×4 patches
    torch.testing.assert_close(got, want.last_hidden_state, rtol=1e-5, atol=1e-5)
    pooled = build_pretrained_encoder(spec, {"library": "hf", "path": str(clip_vision), "features": "pooled"})
    torch.testing.assert_close(pooled(x), want.pooler_output, rtol=1e-5, atol=1e-5)
    # float images in [0, 1] (what the augmentations hand out) give the same tokens
    torch.testing.assert_close(encoder(x.float() / 255.0), got, rtol=1e-5, atol=1e-5)
    # another input size is resized to the model's 32 px (bilinear, antialiased) before normalising
    small = torch.randint(0, 256, (2, 3, 20, 20), dtype=torch.uint8)
    resized = F.interpolate(small.float() / 255.0, size=(32, 32), mode="bilinear", antialias=True)
    with torch.no_grad():
        want_small = reference(pixel_values=((resized - torch.tensor(MEAN).view(1, 3, 1, 1))
                                             / torch.tensor(STD).view(1, 3, 1, 1)))  # fmt: skip
    torch.testing.assert_close(encoder(small), want_small.last_hidden_state, rtol=1e-5, atol=1e-5)


def test_hf_text_tokens_honour_padding(bert: Path) -> None:
    texts = ["the cat sat on the mat", "a dog ran", "the"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(bert, local_files_only=True)
    own = tokenizer(texts, padding="max_length", max_length=10, truncation=True, return_tensors="pt")
    ids, padding = own["input_ids"], own["attention_mask"] == 0  # what the data layer hands out
    assert padding.sum(dim=1).tolist() == [2, 5, 7]  # [CLS] … [SEP], then [PAD]s
    spec = ModalitySpec("plot", "tokens", (10,))
    encoder = build_pretrained_encoder(spec, {"library": "hf", "path": str(bert)})
    assert isinstance(encoder, HFTextEncoder)
    reference = transformers.BertModel.from_pretrained(bert, local_files_only=True).eval()
    with torch.no_grad():
        want = reference(input_ids=ids, attention_mask=own["attention_mask"]).last_hidden_state
    got = encoder(ids, padding)
    assert got.shape == (3, 10, 16)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # the padding mask matters: without it the padded samples' tokens change
    assert not torch.allclose(encoder(ids)[1], got[1], atol=1e-4)
    # a sample made only of padding still gives finite tokens
    assert torch.isfinite(encoder(ids, torch.ones_like(padding))).all()


def _specs() -> list[ModalitySpec]:
    return [ModalitySpec("m0", "image", (3, 16, 16)), ModalitySpec("m1", "vector", (6,))]


def _model_cfg(clip_vision: Path, freeze: bool) -> ModelConfig:
    return ModelConfig(
        embed_dim=16, n_heads=2, head_hidden=[32], head_out=16, vector_dim=16,
        pretrained={"m0": {"library": "hf", "path": str(clip_vision), "freeze": freeze}},
    )  # fmt: skip


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_weights_get_no_gradient_and_stay_while_the_rest_trains(
    clip_vision: Path, freeze: bool
) -> None:
    torch.manual_seed(0)
    cfg = RunConfig()
    cfg.method.name = "comm"
    cfg.model = _model_cfg(clip_vision, freeze)
    method = make_method(cfg, _specs(), None)
    encoder = method.model.encoders[0]  # type: ignore[union-attr,index]
    assert isinstance(encoder, PretrainedEncoder)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    optimizer = method.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    backbone = list(encoder.backbone.parameters())
    assert all((id(p) in in_optimizer) == p.requires_grad for p in backbone)  # no optimiser state when fixed
    method.train()
    assert encoder.backbone.training != freeze and method.model.adapters[0].training  # type: ignore[union-attr,index]
    from commlearn.data.base import MultimodalBatch

    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        batch = MultimodalBatch(
            [
                torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=g),
                torch.randn(8, 6, generator=g),
            ],
            [None, None],
        )
        optimizer.zero_grad()
        method.compute_loss(batch).loss.backward()
        # trained: every parameter that trains gets a gradient (as DDP requires); CLIP's post_layernorm acts on
        # the pooled output only, so with token outputs it stays fixed
        assert all((p.grad is None) == (not p.requires_grad) for p in backbone)
        assert all(
            p.requires_grad != freeze for n, p in encoder.backbone.named_parameters() if "post_" not in n
        )
        optimizer.step()
    after = method.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("model.adapters.0.") for k in changed)
    backbone_changed = {k for k in changed if ".backbone." in k}
    assert (not backbone_changed) == freeze


def _fit_overrides(run: Path, clip_vision: Path, bert: Path, freeze: bool) -> list[str]:
    return [
        "method.name=comm",
        "data.name=synthetic",
        "data.options.kinds=[image, tokens]",
        "data.options.n_samples=48",
        "data.batch_size=16",
        "model.embed_dim=16",
        "model.n_heads=2",
        "model.head_hidden=[32]",
        "model.head_out=16",
        "model.pretrained.m0.library=hf",
        f"model.pretrained.m0.path={clip_vision}",
        f"model.pretrained.m0.freeze={str(freeze).lower()}",
        "model.pretrained.m1.library=hf",
        f"model.pretrained.m1.path={bert}",
        "trainer.max_steps=3",
        "trainer.progress_bar=false",
        "trainer.accelerator=cpu",
        f"trainer.output={run}",
    ]


def _weights(folder: Path) -> dict[str, Tensor]:
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("freeze", [True, False])
def test_comm_fits_with_pretrained_encoders_and_the_checkpoint_reloads(
    tmp_path: Path, clip_vision: Path, bert: Path, freeze: bool
) -> None:
    cfg = load_config(None, _fit_overrides(tmp_path / "run", clip_vision, bert, freeze))
    assert cfg.model.pretrained["m0"] == {"library": "hf", "path": str(clip_vision), "freeze": freeze}
    result = fit(cfg)
    assert result.last_checkpoint is not None
    state = torch.load(result.last_checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    files = {"0": _weights(clip_vision), "1": _weights(bert)}
    for i, weights in files.items():
        prefix = f"model.encoders.{i}.backbone."
        stored = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        assert stored.keys() == weights.keys()
        same = all(torch.equal(stored[k], weights[k]) for k in weights)
        assert same == (freeze or i == "1"), f"encoder {i}"  # the text encoder is frozen in both runs
    method, cfg2, data = load_run(result.last_checkpoint)
    assert cfg2.model.pretrained == cfg.model.pretrained  # the config records the local paths
    batch = data.train.get_batch(torch.arange(10))
    torch.testing.assert_close(method.embed(batch), result.method.embed(batch), rtol=0, atol=0)


def test_config_errors_are_one_line(tmp_path: Path, clip_vision: Path, bert: Path) -> None:
    spec = ModalitySpec("image", "image", (3, 16, 16))
    cases: list[tuple[Any, str]] = [
        ({"library": "hf", "path": str(tmp_path / "nowhere")}, "no such file or folder: " + str(tmp_path)),
        ({"library": "hf", "path": str(tmp_path)}, f"{tmp_path} holds no Hugging Face model"),
        ({"library": "hf", "path": "some-org/not-cached-model"}, "neither a folder nor a model in the local"),
        ({"library": "torchhub", "path": "x"}, "library must be one of ['hf', 'open_clip']"),
        ({"library": "hf"}, "model.pretrained.image.path is required"),
        ({"library": "hf", "path": "x", "froze": True}, "unknown key(s) ['froze']"),
        ({"library": "hf", "path": "x", "features": "cls"}, "features must be one of"),
        ({"library": "hf", "path": "x", "freeze": "maybe"}, "freeze expects true/false"),
        ({"library": "hf", "path": "x", "mean": [0.5]}, "give mean and std together"),
        ({"library": "hf", "path": "x", "image_size": 0}, "image_size expects a positive integer"),
        ("hf", "must be a mapping"),
    ]
    (tmp_path / "empty").mkdir()
    for entry, expected in cases:
        with pytest.raises(ConfigError) as info:
            build_pretrained_encoder(spec, entry)
        message = str(info.value)
        assert "\n" not in message and expected in message, message
    with pytest.raises(ConfigError, match="no preprocessor_config.json"):
        bare = tmp_path / "bare"
        transformers.CLIPVisionModel.from_pretrained(clip_vision, local_files_only=True).save_pretrained(bare)
        build_pretrained_encoder(spec, {"library": "hf", "path": str(bare)})
    base = {"library": "hf", "path": str(clip_vision)}
    with pytest.raises(
        ConfigError, match=r"model.pretrained has an entry for modality 'imgae'.*\['image', 'v'\]"
    ):
        build_fusion([spec, ModalitySpec("v", "vector", (4,))], ModelConfig(pretrained={"imgae": base}))
    with pytest.raises(ConfigError, match="'v' is a 'vector' modality"):
        build_fusion([spec, ModalitySpec("v", "vector", (4,))], ModelConfig(pretrained={"v": base}))
    with pytest.raises(ConfigError, match="exceed the model's 32 positions"):
        build_pretrained_encoder(ModalitySpec("t", "tokens", (40,)), {"library": "hf", "path": str(bert)})
    with pytest.raises(ConfigError, match="is not a vision model"):
        build_pretrained_encoder(spec, {"library": "hf", "path": str(bert)})
    with pytest.raises(ConfigError, match="is not a text model"):
        build_pretrained_encoder(
            ModalitySpec("t", "tokens", (8,)), {"library": "hf", "path": str(clip_vision)}
        )


def test_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "open_clip", None)  # import open_clip now raises ImportError
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")
    with pytest.raises(ImportError, match=r"pip install 'commlearn\[clip\]'"):
        build_pretrained_encoder(
            ModalitySpec("image", "image", (3, 16, 16)),
            {"library": "open_clip", "path": str(weights), "name": "x"},
        )
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'commlearn\[hf\]'"):
        build_pretrained_encoder(ModalitySpec("image", "image", (3, 16, 16)), {"library": "hf", "path": "x"})


# ------------------------------------------------------------------------------------------ open_clip
class _FakeVisual(nn.Module):
    """A ViT-like tower with open_clip's interface: ``output_tokens``, ``image_size``, ``preprocess_cfg``."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 12, 8, stride=8)
        self.proj = nn.Linear(12, 10)
        self.output_tokens = False
        self.image_size = (24, 24)
        self.preprocess_cfg = {"size": 24, "mean": (0.3, 0.4, 0.5), "std": (0.2, 0.2, 0.3)}

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # (B, 9, 12)
        pooled = self.proj(tokens.mean(dim=1))
        return (pooled, tokens) if self.output_tokens else pooled


class _FakeText(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 14)
        self.proj = nn.Linear(14, 10)
        self.output_tokens = False

    def forward(self, ids: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        tokens = torch.tanh(self.embed(ids))
        pooled = self.proj(tokens[:, -1])
        return (pooled, tokens) if self.output_tokens else pooled


class _FakeCLIP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.visual = _FakeVisual()
        self.text = _FakeText()

    def encode_image(self, x: Tensor) -> Tensor:
        out = self.visual(x)
        return out[0] if isinstance(out, tuple) else out

    def encode_text(self, ids: Tensor) -> Tensor:
        out = self.text(ids)
        return out[0] if isinstance(out, tuple) else out


@pytest.fixture
def fake_open_clip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[list[Any], Path]]:
    """A stand-in ``open_clip`` module and a weights file of one seeded model for it."""
    calls: list[Any] = []

    def create_model(
        name: str, pretrained: str | None = None, device: str = "cpu", **kwargs: Any
    ) -> nn.Module:
        calls.append((name, pretrained, device, kwargs))
        model = _FakeCLIP()
        if name.startswith("local-dir:"):
            pretrained = str(Path(name[len("local-dir:") :]) / "open_clip_model.pt")
        if pretrained is not None:
            model.load_state_dict(torch.load(pretrained, weights_only=True))
        return model

    module = types.ModuleType("open_clip")
    module.create_model = create_model  # type: ignore[attr-defined]
    module.OPENAI_DATASET_MEAN = (0.48145466, 0.4578275, 0.40821073)  # type: ignore[attr-defined]
    module.OPENAI_DATASET_STD = (0.26862954, 0.26130258, 0.27577711)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "open_clip", module)
    torch.manual_seed(3)
    weights = tmp_path / "open_clip_model.pt"
    torch.save(_FakeCLIP().state_dict(), weights)
    yield calls, weights


def test_open_clip_image_and_text_tokens(fake_open_clip: tuple[list[Any], Path]) -> None:
    calls, weights = fake_open_clip
    reference = _FakeCLIP()
    reference.load_state_dict(torch.load(weights, weights_only=True))
    reference.eval()
    image = ModalitySpec("image", "image", (3, 24, 24))
    entry = {"library": "open_clip", "path": str(weights), "name": "ViT-Tiny"}
    encoder = build_pretrained_encoder(image, entry)
    assert calls[-1][:3] == ("ViT-Tiny", str(weights), "cpu")
    assert encoder.out_dim == 12 and encoder.frozen
    x = torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8)
    pixels = (x.float() / 255.0 - torch.tensor([0.3, 0.4, 0.5]).view(1, 3, 1, 1)) / torch.tensor(
        [0.2, 0.2, 0.3]
    ).view(1, 3, 1, 1)
    reference.visual.output_tokens = True
    with torch.no_grad():
        pooled_ref, tokens_ref = reference.visual(pixels)
    torch.testing.assert_close(encoder(x), tokens_ref)
    pooled = build_pretrained_encoder(image, {**entry, "features": "pooled"})
    assert pooled.out_dim == 10
    torch.testing.assert_close(pooled(x), pooled_ref)
    # a model folder goes through open_clip's local-dir: schema
    build_pretrained_encoder(image, {"library": "open_clip", "path": str(weights.parent)})
    assert calls[-1][0] == f"local-dir:{weights.parent}"

    text = ModalitySpec("plot", "tokens", (7,))
    ids = torch.randint(0, 50, (3, 7))
    text_encoder = build_pretrained_encoder(text, {**entry, "freeze": False})
    assert text_encoder.out_dim == 14 and not text_encoder.frozen
    reference.text.output_tokens = True
    with torch.no_grad():
        text_pooled, text_tokens = reference.text(ids)
    torch.testing.assert_close(text_encoder(ids, torch.zeros(3, 7, dtype=torch.bool)), text_tokens)
    trained = {n for n, p in text_encoder.backbone.named_parameters() if p.requires_grad}
    assert trained == {"embed.weight"}  # proj serves the pooled output only: it stays fixed
    text_pooled_encoder = build_pretrained_encoder(text, {**entry, "features": "pooled"})
    torch.testing.assert_close(text_pooled_encoder(ids), text_pooled)
    assert not any(k.startswith("backbone.visual.patch") for k in text_pooled_encoder.state_dict())

    with pytest.raises(ConfigError, match="name is required with a weights file"):
        build_pretrained_encoder(image, {"library": "open_clip", "path": str(weights)})


def test_open_clip_encoder_fuses_and_stays_frozen(fake_open_clip: tuple[list[Any], Path]) -> None:
    _, weights = fake_open_clip
    specs = [ModalitySpec("image", "image", (3, 16, 16)), ModalitySpec("v", "vector", (4,))]
    cfg = ModelConfig(
        embed_dim=16, n_heads=2, vector_dim=16,
        pretrained={"image": {"library": "open_clip", "path": str(weights), "name": "ViT-Tiny"}},
    )  # fmt: skip
    fusion = build_fusion(specs, cfg)
    fusion.train()
    z = fusion([torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8), torch.randn(4, 4)])
    assert z.shape == (4, 16)
    z.sum().backward()
    encoder = fusion.encoders[0]
    assert isinstance(encoder, PretrainedEncoder) and not encoder.backbone.training
    assert all(p.grad is None for p in encoder.backbone.parameters())
    assert fusion.adapters[0].proj.weight.grad is not None  # type: ignore[union-attr]


def test_model_id_from_the_local_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, bert: Path) -> None:
    # the Hugging Face cache layout: models--<org>--<name>/refs/main → snapshots/<commit>/<files>
    commit = "0" * 40
    repo = tmp_path / "hub" / "models--tiny-org--tiny-bert"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(bert, repo / "snapshots" / commit)
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    encoder = build_pretrained_encoder(
        ModalitySpec("t", "tokens", (8,)), {"library": "hf", "path": "tiny-org/tiny-bert"}
    )
    reference = transformers.BertModel.from_pretrained(bert, local_files_only=True).eval()
    ids = torch.tensor([[2, 5, 7, 3, 0, 0, 0, 0]])
    padding = ids == 0
    with torch.no_grad():
        want = reference(input_ids=ids, attention_mask=(~padding).long()).last_hidden_state
    torch.testing.assert_close(encoder(ids, padding), want, rtol=1e-5, atol=1e-5)


def test_a_two_tower_clip_folder_gives_each_modality_its_tower(tmp_path: Path) -> None:
    torch.manual_seed(2)
    config = transformers.CLIPConfig(
        text_config={"vocab_size": 40, "hidden_size": 12, "intermediate_size": 24, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 16},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 16},
        projection_dim=8,
    )  # fmt: skip
    transformers.CLIPModel(config).save_pretrained(tmp_path)
    entry = {"library": "hf", "path": str(tmp_path), "mean": MEAN, "std": STD}
    image = build_pretrained_encoder(ModalitySpec("poster", "image", (3, 32, 32)), entry)
    text = build_pretrained_encoder(ModalitySpec("plot", "tokens", (9,)), entry)
    assert (image.out_dim, text.out_dim) == (16, 12)
    reference = transformers.CLIPModel.from_pretrained(tmp_path, local_files_only=True).eval()
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    ids = torch.randint(0, 40, (2, 9))
    padding = torch.arange(9)[None, :] >= torch.tensor([[9], [5]])
    with torch.no_grad():
        want_image = reference.vision_model(pixel_values=_reference_pixels(x).float()).last_hidden_state
        want_text = reference.text_model(input_ids=ids, attention_mask=(~padding).long()).last_hidden_state
    torch.testing.assert_close(image(x), want_image, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(text(ids, padding), want_text, rtol=1e-5, atol=1e-5)
    assert not any("text_model" in k for k in image.state_dict())  # each encoder keeps its own tower only
